/* The module: dpone.taps.postgres._copyjson. See copyjson.h. */
#include "copyjson.h"

static PyObject *load(PyObject *self, PyObject *arg) {
    const char *path = PyUnicode_AsUTF8(arg);
    if (!path) return NULL;
    const char *why = NULL;
    if (pq_load(path, &why) < 0) {
        PyErr_SetString(PyExc_ImportError, why);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"load", load, METH_O, "Resolve libpq's functions from the library at this path (already loaded)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "dpone.taps.postgres._copyjson", "PostgreSQL COPY text rows to JSON lines.", -1, methods,
};

PyMODINIT_FUNC PyInit__copyjson(void) {
    if (PyType_Ready(&ReaderType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (!m) return NULL;
    if (PyModule_AddObjectRef(m, "Reader", (PyObject *)&ReaderType) < 0) { Py_DECREF(m); return NULL; }
    static const struct { const char *name; int value; } constants[] = {
        {"K_INT", K_INT}, {"K_FLOAT", K_FLOAT}, {"K_BOOL", K_BOOL}, {"K_TEXT", K_TEXT},
        {"K_TIMESTAMP", K_TIMESTAMP}, {"K_BYTEA", K_BYTEA}, {"K_JSON", K_JSON}, {"K_JSON_DOC", K_JSON_DOC},
        {"KEY_NONE", KEY_NONE}, {"KEY_JSON", KEY_JSON}, {"KEY_INTS", KEY_INTS},
    };
    for (size_t i = 0; i < sizeof(constants) / sizeof(constants[0]); i++)
        if (PyModule_AddIntConstant(m, constants[i].name, constants[i].value) < 0) { Py_DECREF(m); return NULL; }
    return m;
}
