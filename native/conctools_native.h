/* Shared definitions for conctools._native, the C accelerator of conctools.
 *
 * One extension module built from every C file in native/.  Each file owns its
 * types and registers them from its exec function (declared at the end), which
 * module.c calls during multi-phase initialisation.
 *
 * Locking discipline (both builds):
 *   - ct_mutex is a PyMutex on free-threaded builds.  On GIL builds it is
 *     empty: the GIL already excludes other threads as long as the holder
 *     runs no Python code and does not release the GIL.
 *   - Between ct_lock() and ct_unlock(): no call into Python code (no user
 *     __hash__/__eq__, no callbacks), no Py_DECREF that can drop the last
 *     reference of an object with a finaliser, no blocking call.  Collect the
 *     references to drop and release them after ct_unlock().
 *   - Never hand out a borrowed reference read from a shared container: take
 *     a strong reference (Py_NewRef / PyDict_GetItemRef) while the owner is
 *     locked.
 */
#ifndef CONCTOOLS_NATIVE_H
#define CONCTOOLS_NATIVE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

/* Bumped whenever the Python side relies on a changed native interface; the
 * loader refuses a stale extension (conctools/_internal/native.py). */
#define CT_ABI_VERSION 1

#ifdef Py_GIL_DISABLED
#  define CT_FREE_THREADED 1
#else
#  define CT_FREE_THREADED 0
#endif

#if !defined(__GNUC__) && !defined(__clang__)
#  error "conctools._native needs GCC or Clang atomics; the pure-Python code is used instead"
#endif

/* ---- mutex ------------------------------------------------------------ */
#if CT_FREE_THREADED
typedef PyMutex ct_mutex;
static inline void ct_lock(ct_mutex *m) { PyMutex_Lock(m); }
static inline void ct_unlock(ct_mutex *m) { PyMutex_Unlock(m); }
#else
typedef struct { char unused; } ct_mutex;
static inline void ct_lock(ct_mutex *m) { (void)m; }
static inline void ct_unlock(ct_mutex *m) { (void)m; }
#endif

/* ---- atomics ------------------------------------------------------------
 * Real atomics on free-threaded builds; plain memory operations on GIL
 * builds, where the GIL orders every access made while holding it. */
#if CT_FREE_THREADED
#  define CT_ATOMIC_LOAD(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#  define CT_ATOMIC_LOAD_RELAXED(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#  define CT_ATOMIC_STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#  define CT_ATOMIC_STORE_RELAXED(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#  define CT_ATOMIC_FETCH_ADD(p, v) __atomic_fetch_add((p), (v), __ATOMIC_SEQ_CST)
#  define CT_ATOMIC_EXCHANGE(p, v) __atomic_exchange_n((p), (v), __ATOMIC_SEQ_CST)
/* Returns nonzero on success; on failure *expected holds the current value. */
#  define CT_ATOMIC_CAS(p, expected, desired) \
     __atomic_compare_exchange_n((p), (expected), (desired), 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)
#else
#  define CT_ATOMIC_LOAD(p) (*(p))
#  define CT_ATOMIC_LOAD_RELAXED(p) (*(p))
#  define CT_ATOMIC_STORE(p, v) ((void)(*(p) = (v)))
#  define CT_ATOMIC_STORE_RELAXED(p, v) ((void)(*(p) = (v)))
#  define CT_ATOMIC_FETCH_ADD(p, v) ct_plain_fetch_add_i64((p), (v))
#  define CT_ATOMIC_EXCHANGE(p, v) __atomic_exchange_n((p), (v), __ATOMIC_RELAXED)
#  define CT_ATOMIC_CAS(p, expected, desired) \
     __atomic_compare_exchange_n((p), (expected), (desired), 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)
static inline int64_t ct_plain_fetch_add_i64(int64_t *p, int64_t v) {
    int64_t old = *p;
    *p = (int64_t)((uint64_t)old + (uint64_t)v);
    return old;
}
#endif

/* ---- strong-reference dict lookup ---------------------------------------
 * ``d[key]`` without the KeyError: 1 found (*out a strong reference), 0
 * absent (*out NULL), -1 error (a key's __hash__/__eq__ raised).  ``d`` is a
 * dict (exact or subclass; no __missing__).  3.13+: PyDict_GetItemRef, which
 * takes the lock-free read path on the free-threaded build.  Before 3.13 the
 * GIL is held throughout: the borrowed result is made strong before any other
 * code can run. */
static inline int
ct_dict_get_ref(PyObject *d, PyObject *key, PyObject **out)
{
#if PY_VERSION_HEX >= 0x030D0000
    return PyDict_GetItemRef(d, key, out);
#else
    PyObject *v = PyDict_GetItemWithError(d, key);
    if (v == NULL) {
        *out = NULL;
        return PyErr_Occurred() ? -1 : 0;
    }
    *out = Py_NewRef(v);
    return 1;
#endif
}

/* ---- per-file registration (called by module.c, in this order) ---------
 * Each returns 0 on success, -1 with an exception set.  Types are heap types
 * made with PyType_FromModuleAndSpec(module, ...) and added with
 * PyModule_AddType(). */
int ct_exec_atomic(PyObject *module);    /* native/atomic.c   */
int ct_exec_counters(PyObject *module);  /* native/counters.c */
int ct_exec_sharded(PyObject *module);   /* native/sharded.c  */
int ct_exec_cache(PyObject *module);     /* native/cache.c    */

#endif /* CONCTOOLS_NATIVE_H */
