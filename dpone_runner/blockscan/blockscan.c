/* dpone_runner._blockscan: the runner's block lane (dpone_runner/pump.py) in C.
 *
 * The lane forwards runs of RECORD lines whole and counts them per stream. Telling which lines are
 * such RECORDs takes a look at each line's start, which Python can only afford as whole-block
 * bytes.count calls (two passes over every byte, the newline count one byte at a time). Here each
 * line is found with memchr and its opening compared with memcmp: one pass, at memchr's speed.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* scan(block, heads, start) -> (counts, stop)
 *   block: bytes whose last byte is a newline; heads: a tuple of bytes, each stream's RECORD line
 *   opening. From offset `start`, each line beginning with heads[i] counts for i; the scan stops
 *   at the first line beginning with none of them. counts: a list, one per head; stop: that
 *   line's offset, or len(block) when every line was counted. */
static PyObject *scan(PyObject *self, PyObject *args) {
    Py_buffer block;
    PyObject *heads;
    Py_ssize_t start;
    if (!PyArg_ParseTuple(args, "y*O!n", &block, &PyTuple_Type, &heads, &start)) return NULL;
    Py_ssize_t nheads = PyTuple_GET_SIZE(heads);
    Py_ssize_t *counts = PyMem_Calloc((size_t)nheads + 1, sizeof(Py_ssize_t));
    if (!counts) {
        PyBuffer_Release(&block);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < nheads; i++) {
        if (!PyBytes_Check(PyTuple_GET_ITEM(heads, i))) {
            PyMem_Free(counts);
            PyBuffer_Release(&block);
            PyErr_SetString(PyExc_TypeError, "heads must be bytes");
            return NULL;
        }
    }
    const char *base = block.buf;
    const char *end = base + block.len;
    const char *p = base + (start < 0 ? 0 : start > block.len ? block.len : start);
    Py_ssize_t last = 0; /* lines of one stream come in runs: its head is tried first */
    Py_BEGIN_ALLOW_THREADS
    while (p < end) {
        Py_ssize_t found = -1;
        for (Py_ssize_t k = 0; k < nheads; k++) {
            Py_ssize_t i = k == 0 ? last : (k <= last ? k - 1 : k);
            PyObject *head = PyTuple_GET_ITEM(heads, i);
            Py_ssize_t n = PyBytes_GET_SIZE(head);
            if (end - p >= n && memcmp(p, PyBytes_AS_STRING(head), (size_t)n) == 0) {
                found = i;
                break;
            }
        }
        if (found < 0) break;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) break; /* a last line without its newline: not a line of this block */
        counts[found]++;
        last = found;
        p = nl + 1;
    }
    Py_END_ALLOW_THREADS
    Py_ssize_t stop = p - base;
    PyBuffer_Release(&block);
    PyObject *list = PyList_New(nheads);
    if (!list) {
        PyMem_Free(counts);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nheads; i++) {
        PyObject *n = PyLong_FromSsize_t(counts[i]);
        if (!n) {
            Py_DECREF(list);
            PyMem_Free(counts);
            return NULL;
        }
        PyList_SET_ITEM(list, i, n);
    }
    PyMem_Free(counts);
    return Py_BuildValue("(Nn)", list, stop);
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS,
     "scan(block, heads, start) -> (counts, stop): RECORD lines per head from start, up to the first other line"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "dpone_runner._blockscan", "The runner's block lane: lines told apart in C.", -1, methods,
};

PyMODINIT_FUNC PyInit__blockscan(void) { return PyModule_Create(&module_def); }
