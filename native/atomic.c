/* Native fast paths for conctools (see conctools_native.h for the rules). */
#include "conctools_native.h"

int
ct_exec_atomic(PyObject *module)
{
    (void)module;
    return 0;
}
