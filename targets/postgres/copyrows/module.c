/* The module: dpone.targets.postgres._copyrows. See copyrows.h. */
#include "copyrows.h"

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "dpone.targets.postgres._copyrows",
    "Singer RECORD lines to PostgreSQL COPY text rows.", -1, NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__copyrows(void) {
    init_tables();
    if (PyType_Ready(&EncoderType) < 0 || PyType_Ready(&RouterType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    if (PyModule_AddObjectRef(m, "Encoder", (PyObject *)&EncoderType) < 0 ||
        PyModule_AddObjectRef(m, "Router", (PyObject *)&RouterType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    static const struct { const char *name; int value; } constants[] = {
        {"KIND_TEXT", KIND_TEXT}, {"KIND_INT", KIND_INT}, {"KIND_FLOAT", KIND_FLOAT},
        {"KIND_DECIMAL", KIND_DECIMAL}, {"KIND_BOOL", KIND_BOOL}, {"KIND_JSON", KIND_JSON},
        {"NUL_STRIP", NUL_STRIP}, {"NUL_REPLACE", NUL_REPLACE}, {"NUL_FAIL", NUL_FAIL},
    };
    for (size_t i = 0; i < sizeof(constants) / sizeof(constants[0]); i++)
        if (PyModule_AddIntConstant(m, constants[i].name, constants[i].value) < 0) { Py_DECREF(m); return NULL; }
    return m;
}
