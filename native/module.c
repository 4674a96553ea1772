/* conctools._native: multi-phase initialisation of the C accelerator. */
#include "conctools_native.h"

int ct_exec_ccounter(PyObject *module); /* native/ccounter.c */

static int
native_exec(PyObject *module)
{
    if (PyModule_AddIntConstant(module, "ABI_VERSION", CT_ABI_VERSION) < 0) {
        return -1;
    }
    if (PyModule_AddIntConstant(module, "FREE_THREADED", CT_FREE_THREADED) < 0) {
        return -1;
    }
    if (ct_exec_atomic(module) < 0 || ct_exec_counters(module) < 0
        || ct_exec_sharded(module) < 0 || ct_exec_cache(module) < 0
        || ct_exec_ccounter(module) < 0) {
        return -1;
    }
    return 0;
}

static PyModuleDef_Slot native_slots[] = {
    {Py_mod_exec, (void *)native_exec},
#if PY_VERSION_HEX >= 0x030C0000
    /* Types are kept in per-file static pointers: one interpreter only. */
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
#ifdef Py_mod_gil
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef native_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "conctools._native",
    .m_doc = "C accelerator for conctools (the pure-Python modules are the reference).",
    .m_size = 0,
    .m_slots = native_slots,
};

PyMODINIT_FUNC
PyInit__native(void)
{
    return PyModuleDef_Init(&native_def);
}
