/* Native fast paths for ShardedDict (see conctools_native.h for the rules).
 *
 * Two types:
 *
 * _ShardLock   The lock of one shard, shared by both implementations: the
 *              Python code takes it with ``with lock:`` (compute_if_absent,
 *              compute, merge, popitem, snapshot, clear...), the C fast paths
 *              below take it directly.  So every compound operation on a
 *              shard excludes every other one, whichever side runs it.  A
 *              PyMutex on 3.13+ (both builds; blocking detaches the thread
 *              state, so with the GIL the holder can run), a PyThread lock
 *              before 3.13.  It records its holder: a thread that tries to
 *              take a shard lock it already holds (a key's __eq__ running
 *              under it re-entering the same shard) gets RuntimeError instead
 *              of a deadlock.
 *
 * _ShardedCore The base class of conctools.sharded_dict._ShardedBase when the
 *              accelerator is active.  It holds the storage (tuples of shard
 *              dicts, locks, reservation tables) and implements the hot
 *              methods of the pure-Python _PyShardedCore (the specification)
 *              for keys of exact type str, int, float, bytes or bool, whose
 *              hash and equality run no user code.  Every other key, bad
 *              argument list, or unusual state calls the pure-Python method,
 *              so exceptions and messages are the reference ones.
 *
 * Under a shard lock the C code only runs dict operations on the shard and
 * int/float additions.  Values replaced or removed are kept alive by a strong
 * reference until the lock is released (their finaliser runs outside it).
 * As in the pure code, a dict operation on a builtin key may compare it with
 * a stored wrapped user key of the same full hash (HashedKey.__eq__), which
 * then runs under the lock; re-entering the same shard from there raises
 * RuntimeError (see above).
 */
#include "conctools_native.h"
#include <time.h>

#if PY_VERSION_HEX >= 0x030D0000
#  define SH_PYMUTEX 1
#else
#  define SH_PYMUTEX 0
#endif

/* ------------------------------------------------------------------ lock */

typedef struct {
    PyObject_HEAD
#if SH_PYMUTEX
    PyMutex mutex;
#else
    PyThread_type_lock lock;
#endif
    unsigned long owner; /* ident of the holding thread, 0 when free */
} ShardLock;

static PyTypeObject *ShardLock_Type;
static PyTypeObject *ShardedCore_Type;

static inline unsigned long
sh_owner_load(ShardLock *l)
{
    return __atomic_load_n(&l->owner, __ATOMIC_RELAXED);
}

static inline void
sh_owner_store(ShardLock *l, unsigned long v)
{
    __atomic_store_n(&l->owner, v, __ATOMIC_RELAXED);
}

static inline int
sh_trylock(ShardLock *l)
{
#if SH_PYMUTEX
    uint8_t expected = 0;
    if (__atomic_compare_exchange_n(&l->mutex._bits, &expected, 1, 0,
                                    __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
        sh_owner_store(l, PyThread_get_thread_ident());
        return 1;
    }
    return 0;
#else
    if (PyThread_acquire_lock(l->lock, NOWAIT_LOCK)) {
        sh_owner_store(l, PyThread_get_thread_ident());
        return 1;
    }
    return 0;
#endif
}

static inline int
sh_is_locked(ShardLock *l)
{
#if SH_PYMUTEX
    return (__atomic_load_n(&l->mutex._bits, __ATOMIC_RELAXED) & 1) != 0;
#else
    if (PyThread_acquire_lock(l->lock, NOWAIT_LOCK)) {
        PyThread_release_lock(l->lock);
        return 0;
    }
    return 1;
#endif
}

static int
sh_self_deadlock(ShardLock *l)
{
    if (sh_owner_load(l) == PyThread_get_thread_ident()) {
        PyErr_SetString(PyExc_RuntimeError,
                        "shard lock already held by this thread: a key's __eq__ (or a "
                        "finaliser) re-entered the same shard of the map");
        return 1;
    }
    return 0;
}

/* Blocking acquire.  0 on success, -1 with RuntimeError (self-deadlock). */
static int
sh_lock(ShardLock *l)
{
    if (sh_trylock(l)) {
        return 0;
    }
    if (sh_self_deadlock(l)) {
        return -1;
    }
#if SH_PYMUTEX
    PyMutex_Lock(&l->mutex); /* parks with the thread state detached */
#else
    Py_BEGIN_ALLOW_THREADS
    PyThread_acquire_lock(l->lock, WAIT_LOCK);
    Py_END_ALLOW_THREADS
#endif
    sh_owner_store(l, PyThread_get_thread_ident());
    return 0;
}

static inline void
sh_unlock(ShardLock *l)
{
    sh_owner_store(l, 0);
#if SH_PYMUTEX
    PyMutex_Unlock(&l->mutex);
#else
    PyThread_release_lock(l->lock);
#endif
}

static double
sh_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Timed acquire (rare: the library only uses ``with``): poll with short
 * sleeps, the GIL released, signals checked.  1 acquired, 0 timed out, -1
 * error. */
static int
sh_lock_timed(ShardLock *l, double timeout)
{
    if (sh_trylock(l)) {
        return 1;
    }
    if (sh_self_deadlock(l)) {
        return -1;
    }
    double deadline = sh_monotonic() + timeout;
    long pause_ns = 20000;
    for (;;) {
        double left = deadline - sh_monotonic();
        if (left <= 0) {
            return sh_trylock(l);
        }
        struct timespec ts = {0, pause_ns};
        if ((double)pause_ns * 1e-9 > left) {
            ts.tv_nsec = (long)(left * 1e9) + 1;
        }
        Py_BEGIN_ALLOW_THREADS
        nanosleep(&ts, NULL);
        Py_END_ALLOW_THREADS
        if (sh_trylock(l)) {
            return 1;
        }
        if (PyErr_CheckSignals() < 0) {
            return -1;
        }
        if (pause_ns < 1000000) {
            pause_ns *= 2;
        }
    }
}

static PyObject *
ShardLock_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if ((args != NULL && PyTuple_GET_SIZE(args) != 0) || (kwds != NULL && PyDict_GET_SIZE(kwds) != 0)) {
        PyErr_SetString(PyExc_TypeError, "_ShardLock() takes no arguments");
        return NULL;
    }
    ShardLock *self = (ShardLock *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
#if SH_PYMUTEX
    self->mutex = (PyMutex){0};
#else
    self->lock = PyThread_allocate_lock();
    if (self->lock == NULL) {
        Py_DECREF(self);
        PyErr_SetString(PyExc_MemoryError, "cannot allocate lock");
        return NULL;
    }
#endif
    self->owner = 0;
    return (PyObject *)self;
}

static void
ShardLock_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
#if !SH_PYMUTEX
    ShardLock *self = (ShardLock *)op;
    if (self->lock != NULL) {
        if (sh_is_locked(self)) {
            PyThread_release_lock(self->lock);
        }
        PyThread_free_lock(self->lock);
    }
#endif
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyObject *
ShardLock_acquire(PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    ShardLock *self = (ShardLock *)op;
    static const char *const names[] = {"blocking", "timeout"};
    PyObject *vals[2] = {NULL, NULL};
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    if (nargs > 2) {
        PyErr_Format(PyExc_TypeError, "acquire() takes at most 2 arguments (%zd given)", nargs + nkw);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        vals[i] = args[i];
    }
    for (Py_ssize_t j = 0; j < nkw; j++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, j);
        int found = 0;
        for (int k = 0; k < 2; k++) {
            if (PyUnicode_CompareWithASCIIString(name, names[k]) == 0) {
                if (vals[k] != NULL) {
                    PyErr_Format(PyExc_TypeError, "argument for acquire() given by name ('%s') and position", names[k]);
                    return NULL;
                }
                vals[k] = args[nargs + j];
                found = 1;
            }
        }
        if (!found) {
            PyErr_Format(PyExc_TypeError, "acquire() got an unexpected keyword argument '%U'", name);
            return NULL;
        }
    }
    /* Arguments follow the library's one timeout rule, in Python
     * (conctools._internal.timeouts.check_lock_args): None, -1 or inf wait
     * forever; NaN, other negatives and a timeout with blocking=False raise
     * ValueError; bools and non-numbers raise TypeError.  It returns None
     * (forever), 0.0 (one attempt) or the seconds to wait. */
    double timeout = -1.0; /* forever */
    int blocking = 1;
    if (vals[0] != NULL || vals[1] != NULL) {
        PyObject *mod = PyImport_ImportModule("conctools._internal.timeouts");
        if (mod == NULL) {
            return NULL;
        }
        PyObject *t = PyObject_CallMethod(mod, "check_lock_args", "OO", vals[0] != NULL ? vals[0] : Py_True,
                                          vals[1] != NULL ? vals[1] : Py_None);
        Py_DECREF(mod);
        if (t == NULL) {
            return NULL;
        }
        if (t != Py_None) {
            timeout = PyFloat_AsDouble(t);
            if (timeout == -1.0 && PyErr_Occurred()) {
                Py_DECREF(t);
                return NULL;
            }
            blocking = timeout > 0.0;
        }
        Py_DECREF(t);
    }
    int r;
    if (!blocking) {
        r = sh_trylock(self);
    }
    else if (timeout < 0.0) {
        r = sh_lock(self) == 0 ? 1 : -1;
    }
    else {
        r = sh_lock_timed(self, timeout);
    }
    if (r < 0) {
        return NULL;
    }
    return PyBool_FromLong(r);
}

static PyObject *
ShardLock_enter(PyObject *op, PyObject *unused)
{
    if (sh_lock((ShardLock *)op) < 0) {
        return NULL;
    }
    Py_RETURN_TRUE;
}

static int
sh_release_checked(ShardLock *self)
{
    if (!sh_is_locked(self)) {
        PyErr_SetString(PyExc_RuntimeError, "release unlocked lock");
        return -1;
    }
    sh_unlock(self);
    return 0;
}

static PyObject *
ShardLock_release(PyObject *op, PyObject *unused)
{
    if (sh_release_checked((ShardLock *)op) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
ShardLock_exit(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    if (sh_release_checked((ShardLock *)op) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
ShardLock_locked(PyObject *op, PyObject *unused)
{
    return PyBool_FromLong(sh_is_locked((ShardLock *)op));
}

static PyObject *
ShardLock_repr(PyObject *op)
{
    return PyUnicode_FromFormat("<%s %s object at %p>", sh_is_locked((ShardLock *)op) ? "locked" : "unlocked",
                                Py_TYPE(op)->tp_name, op);
}

static PyMethodDef ShardLock_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))ShardLock_acquire, METH_FASTCALL | METH_KEYWORDS,
     "acquire(blocking=True, timeout=-1) -> bool\n\nLike threading.Lock.acquire."},
    {"release", ShardLock_release, METH_NOARGS, "Release the lock (RuntimeError if it is not held)."},
    {"locked", ShardLock_locked, METH_NOARGS, "Whether the lock is held."},
    {"__enter__", ShardLock_enter, METH_NOARGS, "Acquire the lock."},
    {"__exit__", (PyCFunction)(void (*)(void))ShardLock_exit, METH_FASTCALL, "Release the lock."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot ShardLock_slots[] = {
    {Py_tp_new, ShardLock_new},
    {Py_tp_dealloc, ShardLock_dealloc},
    {Py_tp_repr, ShardLock_repr},
    {Py_tp_methods, ShardLock_methods},
    {Py_tp_doc, "The lock of one ShardedDict shard: usable with ``with`` from Python and from C."},
    {0, NULL},
};

static PyType_Spec ShardLock_spec = {
    .name = "conctools._native._ShardLock",
    .basicsize = sizeof(ShardLock),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = ShardLock_slots,
};

/* ------------------------------------------------------------------ core */

typedef struct {
    PyObject_HEAD
    PyObject *shards;  /* tuple of dict */
    PyObject *locks;   /* tuple of locks */
    PyObject *loading; /* tuple of dict (reservations, Python side only) */
    PyObject *n_obj;   /* int */
    Py_ssize_t n;      /* shard count when ``fast`` */
    int fast;          /* storage consistent: exact dicts, _ShardLock locks */
} ShardedCore;

/* Set once by _sharded_setup(): the MISSING sentinel and the pure-Python
 * methods (the fallback for everything the fast paths do not handle). */
static PyObject *sh_missing;
enum {
    FB_GETITEM,
    FB_GET,
    FB_CONTAINS,
    FB_SETITEM,
    FB_DELITEM,
    FB_POP,
    FB_INCREMENT,
    FB_GET_OR_SET,
    FB_COMPARE_AND_SET,
    FB_COUNT
};
static const char *const fb_method_names[FB_COUNT] = {
    "__getitem__", "get", "__contains__", "__setitem__", "__delitem__",
    "pop", "increment", "get_or_set", "compare_and_set",
};
static PyObject *fb_funcs[FB_COUNT];

static PyObject *
sh_fallback(int which, PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *fn = fb_funcs[which];
    if (fn == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "conctools._native: _sharded_setup() was not called");
        return NULL;
    }
    PyObject *small[8];
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    Py_ssize_t total = nargs + nkw;
    PyObject **stack = small;
    if (total + 1 > 8) {
        stack = PyMem_Malloc((size_t)(total + 1) * sizeof(PyObject *));
        if (stack == NULL) {
            return PyErr_NoMemory();
        }
    }
    stack[0] = self;
    for (Py_ssize_t i = 0; i < total; i++) {
        stack[i + 1] = args[i];
    }
    PyObject *res = PyObject_Vectorcall(fn, stack, (size_t)(nargs + 1), kwnames);
    if (stack != small) {
        PyMem_Free(stack);
    }
    return res;
}

static inline int
sh_fast_key(PyObject *key)
{
    PyTypeObject *tp = Py_TYPE(key);
    return tp == &PyUnicode_Type || tp == &PyLong_Type || tp == &PyFloat_Type
        || tp == &PyBytes_Type || tp == &PyBool_Type;
}

/* Shard index of a fast key; -1 with an exception set. */
static inline Py_ssize_t
sh_index(ShardedCore *self, PyObject *key)
{
    Py_hash_t h = PyObject_Hash(key);
    if (h == -1) {
        return -1;
    }
    Py_ssize_t i = (Py_ssize_t)(h % (Py_hash_t)self->n);
    if (i < 0) {
        i += self->n;
    }
    return i;
}

#define SH_SHARD(self, i) PyTuple_GET_ITEM((self)->shards, (i))
#define SH_LOCK(self, i) ((ShardLock *)PyTuple_GET_ITEM((self)->locks, (i)))

static PyObject *
sh_missing_or_error(void)
{
    if (sh_missing == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "conctools._native: _sharded_setup() was not called");
    }
    return sh_missing;
}

/* ---- reads (lock-free: one dict operation) ---- */

static PyObject *
core_subscript(PyObject *op, PyObject *key)
{
    ShardedCore *self = (ShardedCore *)op;
    if (self->fast && sh_fast_key(key)) {
        Py_ssize_t i = sh_index(self, key);
        if (i < 0) {
            return NULL;
        }
        PyObject *v;
        int r = ct_dict_get_ref(SH_SHARD(self, i), key, &v);
        if (r != 0) {
            return r > 0 ? v : NULL;
        }
        /* a miss: __missing__ / KeyError exactly as the pure code */
    }
    return sh_fallback(FB_GETITEM, op, &key, 1, NULL);
}

static PyObject *
core_get(PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    ShardedCore *self = (ShardedCore *)op;
    if (self->fast && kwnames == NULL && (nargs == 1 || nargs == 2) && sh_fast_key(args[0])) {
        Py_ssize_t i = sh_index(self, args[0]);
        if (i < 0) {
            return NULL;
        }
        PyObject *v;
        int r = ct_dict_get_ref(SH_SHARD(self, i), args[0], &v);
        if (r != 0) {
            return r > 0 ? v : NULL;
        }
        return Py_NewRef(nargs == 2 ? args[1] : Py_None);
    }
    return sh_fallback(FB_GET, op, args, nargs, kwnames);
}

static int
core_contains(PyObject *op, PyObject *key)
{
    ShardedCore *self = (ShardedCore *)op;
    if (self->fast && sh_fast_key(key)) {
        Py_ssize_t i = sh_index(self, key);
        if (i < 0) {
            return -1;
        }
        return PyDict_Contains(SH_SHARD(self, i), key);
    }
    PyObject *r = sh_fallback(FB_CONTAINS, op, &key, 1, NULL);
    if (r == NULL) {
        return -1;
    }
    int b = PyObject_IsTrue(r);
    Py_DECREF(r);
    return b;
}

/* ---- writes (under the shard lock) ---- */

static int
core_ass_subscript(PyObject *op, PyObject *key, PyObject *value)
{
    ShardedCore *self = (ShardedCore *)op;
    if (!(self->fast && sh_fast_key(key))) {
        PyObject *args[2] = {key, value};
        PyObject *r = sh_fallback(value != NULL ? FB_SETITEM : FB_DELITEM, op, args,
                                  value != NULL ? 2 : 1, NULL);
        if (r == NULL) {
            return -1;
        }
        Py_DECREF(r);
        return 0;
    }
    Py_ssize_t i = sh_index(self, key);
    if (i < 0) {
        return -1;
    }
    PyObject *shard = SH_SHARD(self, i);
    ShardLock *lock = SH_LOCK(self, i);
    PyObject *old = NULL;
    int rc;
    if (sh_lock(lock) < 0) {
        return -1;
    }
    rc = ct_dict_get_ref(shard, key, &old); /* keeps the old value alive past the unlock */
    if (rc >= 0) {
        if (value != NULL) {
            rc = PyDict_SetItem(shard, key, value);
        }
        else if (rc == 0) {
            rc = 1; /* absent: KeyError below */
        }
        else {
            rc = PyDict_DelItem(shard, key);
        }
    }
    sh_unlock(lock);
    Py_XDECREF(old);
    if (rc == 1) {
        PyObject *exc = PyObject_CallOneArg(PyExc_KeyError, key);
        if (exc != NULL) {
            PyErr_SetObject(PyExc_KeyError, exc);
            Py_DECREF(exc);
        }
        return -1;
    }
    return rc < 0 ? -1 : 0;
}

static PyObject *
core_pop(PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    ShardedCore *self = (ShardedCore *)op;
    if (!(self->fast && kwnames == NULL && (nargs == 1 || nargs == 2) && sh_fast_key(args[0]))) {
        return sh_fallback(FB_POP, op, args, nargs, kwnames);
    }
    PyObject *key = args[0];
    Py_ssize_t i = sh_index(self, key);
    if (i < 0) {
        return NULL;
    }
    PyObject *shard = SH_SHARD(self, i);
    ShardLock *lock = SH_LOCK(self, i);
    PyObject *v = NULL;
    if (sh_lock(lock) < 0) {
        return NULL;
    }
    int rc = ct_dict_get_ref(shard, key, &v);
    if (rc > 0 && PyDict_DelItem(shard, key) < 0) {
        rc = -1;
    }
    sh_unlock(lock);
    if (rc < 0) {
        Py_XDECREF(v);
        return NULL;
    }
    if (rc > 0) {
        return v;
    }
    if (nargs == 2) {
        return Py_NewRef(args[1]);
    }
    PyObject *exc = PyObject_CallOneArg(PyExc_KeyError, key);
    if (exc != NULL) {
        PyErr_SetObject(PyExc_KeyError, exc);
        Py_DECREF(exc);
    }
    return NULL;
}

/* ---- compound ---- */

static PyObject *
core_increment(PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    ShardedCore *self = (ShardedCore *)op;
    PyObject *delta;
    if (!(self->fast && kwnames == NULL && (nargs == 1 || nargs == 2) && sh_fast_key(args[0]))) {
        return sh_fallback(FB_INCREMENT, op, args, nargs, kwnames);
    }
    if (nargs == 2) {
        delta = args[1];
        if (!(PyLong_CheckExact(delta) || PyFloat_CheckExact(delta))) {
            return sh_fallback(FB_INCREMENT, op, args, nargs, kwnames);
        }
    }
    else {
        delta = NULL; /* 1 */
    }
    PyObject *key = args[0];
    Py_ssize_t i = sh_index(self, key);
    if (i < 0) {
        return NULL;
    }
    PyObject *one = NULL;
    if (delta == NULL) {
        one = PyLong_FromLong(1); /* a small int: immortal/cached, no allocation */
        if (one == NULL) {
            return NULL;
        }
        delta = one;
    }
    PyObject *shard = SH_SHARD(self, i);
    ShardLock *lock = SH_LOCK(self, i);
    PyObject *cur = NULL, *result = NULL;
    int other_type = 0;
    if (sh_lock(lock) < 0) {
        Py_XDECREF(one);
        return NULL;
    }
    int rc = ct_dict_get_ref(shard, key, &cur);
    if (rc == 0) {
        if (PyDict_SetItem(shard, key, delta) == 0) {
            result = Py_NewRef(delta);
        }
    }
    else if (rc > 0) {
        if (PyLong_CheckExact(cur) || PyFloat_CheckExact(cur)) {
            result = PyNumber_Add(cur, delta); /* builtin numbers: no user code */
            if (result != NULL && PyDict_SetItem(shard, key, result) < 0) {
                Py_CLEAR(result);
            }
        }
        else {
            other_type = 1;
        }
    }
    sh_unlock(lock);
    Py_XDECREF(cur);
    Py_XDECREF(one);
    if (other_type) { /* not a number: the pure code's optimistic loop */
        return sh_fallback(FB_INCREMENT, op, args, nargs, kwnames);
    }
    return result;
}

static PyObject *
core_get_or_set(PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    ShardedCore *self = (ShardedCore *)op;
    if (!(self->fast && kwnames == NULL && nargs == 2 && sh_fast_key(args[0]))) {
        return sh_fallback(FB_GET_OR_SET, op, args, nargs, kwnames);
    }
    PyObject *key = args[0];
    Py_ssize_t i = sh_index(self, key);
    if (i < 0) {
        return NULL;
    }
    PyObject *shard = SH_SHARD(self, i);
    PyObject *v;
    int rc = ct_dict_get_ref(shard, key, &v); /* lock-free probe first */
    if (rc != 0) {
        return rc > 0 ? v : NULL;
    }
    ShardLock *lock = SH_LOCK(self, i);
    if (sh_lock(lock) < 0) {
        return NULL;
    }
    rc = ct_dict_get_ref(shard, key, &v);
    if (rc == 0) {
        rc = PyDict_SetItem(shard, key, args[1]);
        v = rc == 0 ? Py_NewRef(args[1]) : NULL;
    }
    sh_unlock(lock);
    return rc < 0 ? NULL : v;
}

static PyObject *
core_compare_and_set(PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    ShardedCore *self = (ShardedCore *)op;
    if (!(self->fast && kwnames == NULL && nargs == 3 && sh_fast_key(args[0]))) {
        return sh_fallback(FB_COMPARE_AND_SET, op, args, nargs, kwnames);
    }
    PyObject *missing = sh_missing_or_error();
    if (missing == NULL) {
        return NULL;
    }
    PyObject *key = args[0], *expected = args[1], *newv = args[2];
    Py_ssize_t i = sh_index(self, key);
    if (i < 0) {
        return NULL;
    }
    PyObject *shard = SH_SHARD(self, i);
    ShardLock *lock = SH_LOCK(self, i);
    for (;;) {
        PyObject *cur;
        int rc = ct_dict_get_ref(shard, key, &cur);
        if (rc < 0) {
            return NULL;
        }
        if (rc == 0) {
            cur = Py_NewRef(missing);
        }
        int match;
        if (expected == missing || cur == missing) {
            match = cur == expected;
        }
        else {
            /* ``cur is expected or bool(cur == expected)``: no lock held */
            match = PyObject_RichCompareBool(cur, expected, Py_EQ);
            if (match < 0) {
                Py_DECREF(cur);
                return NULL;
            }
        }
        if (!match) {
            Py_DECREF(cur);
            Py_RETURN_FALSE;
        }
        if (sh_lock(lock) < 0) {
            Py_DECREF(cur);
            return NULL;
        }
        PyObject *now;
        rc = ct_dict_get_ref(shard, key, &now);
        int done = 0;
        if (rc >= 0) {
            PyObject *seen = rc > 0 ? now : missing;
            if (seen == cur) {
                done = 1;
                if (newv == missing) {
                    if (cur != missing) {
                        rc = PyDict_DelItem(shard, key);
                    }
                }
                else {
                    rc = PyDict_SetItem(shard, key, newv);
                }
            }
        }
        sh_unlock(lock);
        Py_XDECREF(now);
        Py_DECREF(cur); /* the replaced value, if any: its finaliser runs here */
        if (rc < 0) {
            return NULL;
        }
        if (done) {
            Py_RETURN_TRUE;
        }
        /* changed since it was compared: compare the newer value */
    }
}

/* ---- storage ---- */

static void
core_recheck(ShardedCore *self)
{
    self->fast = 0;
    if (self->shards == NULL || self->locks == NULL || self->n_obj == NULL
        || !PyTuple_CheckExact(self->shards) || !PyTuple_CheckExact(self->locks)
        || !PyLong_CheckExact(self->n_obj)) {
        return;
    }
    Py_ssize_t n = PyLong_AsSsize_t(self->n_obj);
    if (n == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return;
    }
    if (n < 1 || PyTuple_GET_SIZE(self->shards) != n || PyTuple_GET_SIZE(self->locks) != n) {
        return;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyDict_CheckExact(PyTuple_GET_ITEM(self->shards, i))
            || !Py_IS_TYPE(PyTuple_GET_ITEM(self->locks, i), ShardLock_Type)) {
            return;
        }
    }
    self->n = n;
    self->fast = 1;
}

static PyObject *
core_get_field(PyObject *op, void *closure)
{
    ShardedCore *self = (ShardedCore *)op;
    PyObject **slot;
    const char *name;
    switch ((int)(intptr_t)closure) {
    case 0: slot = &self->shards; name = "_shards"; break;
    case 1: slot = &self->locks; name = "_locks"; break;
    case 2: slot = &self->loading; name = "_loading"; break;
    default: slot = &self->n_obj; name = "_n"; break;
    }
    if (*slot == NULL) {
        PyErr_Format(PyExc_AttributeError, "'%s' object has no attribute '%s'", Py_TYPE(op)->tp_name, name);
        return NULL;
    }
    return Py_NewRef(*slot);
}

/* Set while the object is being built (or by tests, before it is shared). */
static int
core_set_field(PyObject *op, PyObject *value, void *closure)
{
    ShardedCore *self = (ShardedCore *)op;
    PyObject **slot;
    switch ((int)(intptr_t)closure) {
    case 0: slot = &self->shards; break;
    case 1: slot = &self->locks; break;
    case 2: slot = &self->loading; break;
    default: slot = &self->n_obj; break;
    }
    self->fast = 0;
    Py_XSETREF(*slot, Py_XNewRef(value));
    core_recheck(self);
    return 0;
}

static PyGetSetDef core_getset[] = {
    {"_shards", core_get_field, core_set_field, "tuple of shard dicts", (void *)0},
    {"_locks", core_get_field, core_set_field, "tuple of shard locks", (void *)1},
    {"_loading", core_get_field, core_set_field, "tuple of reservation tables", (void *)2},
    {"_n", core_get_field, core_set_field, "number of shards", (void *)3},
    {NULL, NULL, NULL, NULL, NULL},
};

static int
core_traverse(PyObject *op, visitproc visit, void *arg)
{
    ShardedCore *self = (ShardedCore *)op;
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(self->shards);
    Py_VISIT(self->locks);
    Py_VISIT(self->loading);
    Py_VISIT(self->n_obj);
    return 0;
}

static int
core_clear(PyObject *op)
{
    ShardedCore *self = (ShardedCore *)op;
    self->fast = 0;
    Py_CLEAR(self->shards);
    Py_CLEAR(self->locks);
    Py_CLEAR(self->loading);
    Py_CLEAR(self->n_obj);
    return 0;
}

static void
core_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    core_clear(op);
    tp->tp_free(op);
    Py_DECREF(tp);
}

/* Docstrings: the same text as the pure-Python methods (tests compare them). */
PyDoc_STRVAR(doc_get,
    "get($self, key, default=None)\n--\n\n"
    "``d[key]`` if present, else ``default`` (lock-free).");
PyDoc_STRVAR(doc_pop,
    ""
    "Remove ``key`` and return its value; ``default`` (or ``KeyError``) if absent.");
PyDoc_STRVAR(doc_increment,
    "increment($self, key, delta=1)\n--\n\n"
    "Add ``delta`` to the value of ``key`` (absent counts as 0); return the new value.\n"
    "\n"
    "For ``int``/``float`` values and deltas the addition runs under the\n"
    "shard lock (no user code runs there); for other types it runs outside\n"
    "the lock and is retried if the value changed meanwhile (as\n"
    ":meth:`compute`).\n");
PyDoc_STRVAR(doc_get_or_set,
    "get_or_set($self, key, default)\n--\n\n"
    "Return the value of ``key``; if absent, store ``default`` and return it.\n"
    "\n"
    "Atomic: among concurrent callers on an absent key exactly one value is\n"
    "stored and every caller gets that value.  The key is hashed once; for\n"
    "keys of types other than the plain builtins the lookup and the store\n"
    "are one dict operation under the shard lock (the key's ``__eq__``\n"
    "runs at most once per colliding key, as for ``dict.setdefault``).\n");
PyDoc_STRVAR(doc_compare_and_set,
    "compare_and_set($self, key, expected, new)\n--\n\n"
    "If ``key`` maps to a value ``== expected``, store ``new``; return whether it did.\n"
    "\n"
    "``expected=MISSING`` means \"``key`` is absent\" (insert-if-absent);\n"
    "``new=MISSING`` removes the key.  The ``==`` comparison runs with no\n"
    "lock held; the store is validated by identity under the shard lock.\n");

static PyMethodDef core_methods[] = {
    {"get", (PyCFunction)(void (*)(void))core_get, METH_FASTCALL | METH_KEYWORDS, doc_get},
    {"pop", (PyCFunction)(void (*)(void))core_pop, METH_FASTCALL | METH_KEYWORDS, doc_pop},
    {"increment", (PyCFunction)(void (*)(void))core_increment, METH_FASTCALL | METH_KEYWORDS, doc_increment},
    {"get_or_set", (PyCFunction)(void (*)(void))core_get_or_set, METH_FASTCALL | METH_KEYWORDS, doc_get_or_set},
    {"compare_and_set", (PyCFunction)(void (*)(void))core_compare_and_set, METH_FASTCALL | METH_KEYWORDS, doc_compare_and_set},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot core_slots[] = {
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, core_dealloc},
    {Py_tp_traverse, core_traverse},
    {Py_tp_clear, core_clear},
    {Py_tp_methods, core_methods},
    {Py_tp_getset, core_getset},
    {Py_mp_subscript, core_subscript},
    {Py_mp_ass_subscript, core_ass_subscript},
    {Py_sq_contains, core_contains},
    {Py_tp_doc, "Native hot paths of ShardedDict (the pure-Python _PyShardedCore is the reference)."},
    {0, NULL},
};

static PyType_Spec core_spec = {
    .name = "conctools._native._ShardedCore",
    .basicsize = sizeof(ShardedCore),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = core_slots,
};

/* _sharded_setup(missing, pure_core): register the MISSING sentinel and the
 * pure-Python class whose methods are the fallback (called once at import of
 * conctools.sharded_dict). */
static PyObject *
sharded_setup(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_sharded_setup(missing, pure_core)");
        return NULL;
    }
    PyObject *funcs[FB_COUNT];
    for (int k = 0; k < FB_COUNT; k++) {
        funcs[k] = PyObject_GetAttrString(args[1], fb_method_names[k]);
        if (funcs[k] == NULL) {
            for (int j = 0; j < k; j++) {
                Py_DECREF(funcs[j]);
            }
            return NULL;
        }
    }
    for (int k = 0; k < FB_COUNT; k++) {
        Py_XSETREF(fb_funcs[k], funcs[k]);
    }
    Py_XSETREF(sh_missing, Py_NewRef(args[0]));
    Py_RETURN_NONE;
}

static PyMethodDef sharded_functions[] = {
    {"_sharded_setup", (PyCFunction)(void (*)(void))sharded_setup, METH_FASTCALL,
     "Register MISSING and the pure-Python fallback methods of the ShardedDict core."},
    {NULL, NULL, 0, NULL},
};

int
ct_exec_sharded(PyObject *module)
{
    ShardLock_Type = (PyTypeObject *)PyType_FromModuleAndSpec(module, &ShardLock_spec, NULL);
    if (ShardLock_Type == NULL || PyModule_AddType(module, ShardLock_Type) < 0) {
        return -1;
    }
    ShardedCore_Type = (PyTypeObject *)PyType_FromModuleAndSpec(module, &core_spec, NULL);
    if (ShardedCore_Type == NULL || PyModule_AddType(module, ShardedCore_Type) < 0) {
        return -1;
    }
    if (PyModule_AddFunctions(module, sharded_functions) < 0) {
        return -1;
    }
    return 0;
}
