/* The module dpone_drivers._kafkafast (see kafkafast.h). */
#include "kafkafast.h"

static PyObject *load(PyObject *self, PyObject *arg) {
    const char *path = PyUnicode_AsUTF8(arg);
    if (!path) return NULL;
    const char *why = NULL;
    if (rdk_load(path, &why) < 0) {
        PyErr_SetString(PyExc_ImportError, why);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"load", load, METH_O, "Resolve librdkafka's functions from the library at this path (already loaded)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "dpone_drivers._kafkafast", "Kafka per-message work in C.", -1, methods,
};

PyMODINIT_FUNC PyInit__kafkafast(void) {
    init_tables();
    PyObject *module = PyModule_Create(&module_def);
    if (!module) return NULL;
    if (producer_init(module) < 0 || consumer_init(module) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
