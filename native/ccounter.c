/* Native fast path of ConcurrentCounter increments (see conctools_native.h).
 *
 * _ConcurrentShardCore    base of ConcurrentCounterHandle: one thread's shard
 *                         (its counts dict) and handle.increment(key, delta=1).
 * _ConcurrentCounterCore  base of ConcurrentCounter: counter.increment(key,
 *                         delta=1), finding the calling thread's shard.
 *
 * The pure-Python cores in conctools/counters.py (_PyConcurrentShardCore,
 * _PyConcurrentCounterCore) are the specification; these types implement the
 * same methods with the same exceptions and messages.  Everything else
 * (reads, compound writes, clear(), retirement, registration, the adds of a
 * thread that cannot own a shard) stays in Python.
 *
 * DESIGN
 *
 * 1. The counts dict is never used through a borrowed reference.  clear()
 *    replaces every live shard's ``_counts`` from another thread (under the
 *    registry lock) and drops the old dict; on the free-threaded build that
 *    can happen while the owner thread is in the middle of an increment.  The
 *    shard therefore keeps the dict in a C field ``counts`` guarded by a
 *    per-shard ct_mutex ``mu``, held only to read the pointer and take a
 *    strong reference (the ``_counts`` getter does the same), or to swap the
 *    pointer (the ``_counts`` setter, which drops the old dict after
 *    unlocking).  The dict update itself then runs on that strong reference
 *    with no lock held.  On GIL builds ct_mutex is a no-op: reading the
 *    pointer and incrementing its reference count run no Python code, so the
 *    GIL is not released between them.
 *
 * 2. Semantics of an increment overlapping clear(): it updates either the
 *    dict it took (the old one: the increment is discarded with it) or the
 *    new one (kept).  It touches exactly one dict, once: never counted twice,
 *    never resurrected (nothing copies an old dict into a new one).  This is
 *    what the pure code does (``d = shard._counts`` then ``d[key] = ...``).
 *
 * 3. No lock is held while Python code runs.  The dict operations
 *    (``d.get(key, 0) + delta`` then ``d[key] = ...``, as PyDict_GetItemRef +
 *    PyNumber_Add + PyDict_SetItem on an exact dict; the same calls through
 *    the mapping protocol otherwise) may run a key's ``__hash__``/``__eq__``
 *    (which may re-enter the counter) or a finaliser; they run with ``mu``
 *    released.  So every key type takes the native path: there is no lock to
 *    protect from user code.  The dict's own internal locking (free-threaded
 *    build) is CPython's.
 *
 * 4. Finding the thread's shard from counter.increment() without touching a
 *    shared Python object: a per-OS-thread cache (C thread-local storage,
 *    CC_CACHE_WAYS entries) maps the counter's serial number (unique, never
 *    reused) to the shard, holding a strong reference.  An entry is only
 *    ever filled from the calling thread's own ``threading.local`` value, so
 *    it always points at a shard of that thread.  The cache is emptied when
 *    the thread state's dict is cleared (a sentinel object stored there: its
 *    deallocation releases the references), so they die with the thread; a
 *    thread state whose dict was cleared never caches again.  A hit takes
 *    its own strong reference to the shard before the dict update (user code
 *    run by the update could evict the entry).
 *
 * 5. Threads that cannot own a shard, and thread exit.  A miss asks the
 *    thread's ``threading.local`` (the pure code's lookup); when the thread
 *    has no shard, or the value is not a native shard, or the shard is
 *    retired, the Python method ``_slow_increment`` runs the pure path:
 *    registration, or ``_add_shared`` for a thread that cannot own a shard
 *    (exiting or foreign).  A shard is marked ``retired`` (by the Python
 *    retirement, under the registry lock, in the exiting thread's teardown)
 *    before its counts are merged; the cache never uses a retired shard, so
 *    an increment made after that (a ``__del__`` during the teardown) goes
 *    to the shared shard and is counted exactly once.  Retirement and merging
 *    themselves are unchanged Python code.
 */
#include "conctools_native.h"

#include <stddef.h>

#if PY_VERSION_HEX < 0x030C0000
#  include "structmember.h"
#  define Py_T_OBJECT_EX T_OBJECT_EX
#  define Py_READONLY READONLY
#endif

/* ---- the shard ----------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *counts;   /* the counts dict (or NULL: deleted); under mu */
    int retired;        /* set by the retirement (atomic) */
    ct_mutex mu;        /* guards reading/replacing ``counts`` only */
} ShardObject;

static PyTypeObject *ShardType;    /* _ConcurrentShardCore */
static PyTypeObject *CCounterType; /* _ConcurrentCounterCore */

static PyObject *cc_str_value;          /* "value" */
static PyObject *cc_str_slow_increment; /* "_slow_increment" */
static PyObject *cc_str_name;           /* "__name__" */
static PyObject *cc_str_key;            /* "key" */
static PyObject *cc_str_delta;          /* "delta" */
static PyObject *cc_str_get;            /* "get" */
static PyObject *cc_str_local;          /* "local" */
static PyObject *cc_str_lock;           /* "lock" */
static PyObject *cc_str_sentinel_key;   /* key of the cache sentinel */
static PyObject *cc_zero;               /* 0 */
static PyObject *cc_one;                /* 1 */

/* The checked delta as a new reference to an exact int: the pure code's
 * ``if type(delta) is not int: delta = _check_delta(delta)`` (int subclasses
 * other than bool go through int(); everything else: TypeError). */
static PyObject *
cc_delta(PyObject *arg)
{
    if (arg == NULL) {
        return Py_NewRef(cc_one);
    }
    if (PyLong_CheckExact(arg)) {
        return Py_NewRef(arg);
    }
    if (PyLong_Check(arg) && !PyBool_Check(arg)) {
        return PyNumber_Long(arg); /* int(arg): always an exact int */
    }
    PyObject *name = PyObject_GetAttr((PyObject *)Py_TYPE(arg), cc_str_name);
    if (name != NULL) {
        PyErr_Format(PyExc_TypeError, "delta must be an int, not %U", name);
        Py_DECREF(name);
    }
    return NULL;
}

static PyObject *
cc_no_counts(ShardObject *s)
{
    PyErr_Format(PyExc_AttributeError, "'%s' object has no attribute '_counts'",
                 Py_TYPE(s)->tp_name);
    return NULL;
}

/* A strong reference to the shard's current counts dict (rule 1). */
static inline PyObject *
shard_counts_ref(ShardObject *s)
{
    ct_lock(&s->mu);
    PyObject *d = s->counts;
    Py_XINCREF(d);
    ct_unlock(&s->mu);
    if (d == NULL) {
        return cc_no_counts(s);
    }
    return d;
}

/* ``d[key] = d.get(key, 0) + delta`` with no lock held (rule 3).  ``d`` and
 * ``delta`` are strong references owned by the caller. */
static int
counts_add(PyObject *d, PyObject *key, PyObject *delta)
{
    PyObject *cur, *sum;
    int r;
    if (PyDict_CheckExact(d)) {
        if (ct_dict_get_ref(d, key, &cur) < 0) {
            return -1;
        }
        if (cur == NULL) {
            /* 0 + delta, delta an exact int */
            sum = Py_NewRef(delta);
        }
        else {
            sum = PyNumber_Add(cur, delta);
            Py_DECREF(cur);
            if (sum == NULL) {
                return -1;
            }
        }
        r = PyDict_SetItem(d, key, sum);
        Py_DECREF(sum);
        return r;
    }
    /* Not a plain dict (replaced by a test or a subclass): the same calls
     * the pure code makes. */
    cur = PyObject_CallMethodObjArgs(d, cc_str_get, key, cc_zero, NULL);
    if (cur == NULL) {
        return -1;
    }
    sum = PyNumber_Add(cur, delta);
    Py_DECREF(cur);
    if (sum == NULL) {
        return -1;
    }
    r = PyObject_SetItem(d, key, sum);
    Py_DECREF(sum);
    return r;
}

/* Add ``delta`` (an exact int) to the shard's count of ``key``. */
static int
shard_add(ShardObject *s, PyObject *key, PyObject *delta)
{
    PyObject *d = shard_counts_ref(s);
    if (d == NULL) {
        return -1;
    }
    int r = counts_add(d, key, delta);
    /* May be the last reference (clear() replaced it meanwhile): its keys'
     * finalisers run here, with no lock held. */
    Py_DECREF(d);
    return r;
}

/* ---- argument parsing: (key, delta=1), positional or keyword ------------- */

static int
cc_parse(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
         PyObject **key, PyObject **delta)
{
    *key = *delta = NULL;
    if (nargs > 2) {
        PyErr_Format(PyExc_TypeError,
                     "%s() takes from 2 to 3 positional arguments but %zd were given", fname,
                     nargs + 1);
        return -1;
    }
    if (nargs >= 1) {
        *key = args[0];
    }
    if (nargs == 2) {
        *delta = args[1];
    }
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *k = PyTuple_GET_ITEM(kwnames, i);
        PyObject **slot;
        if (PyUnicode_Compare(k, cc_str_key) == 0) {
            slot = key;
        }
        else if (PyUnicode_Compare(k, cc_str_delta) == 0) {
            slot = delta;
        }
        else {
            if (!PyErr_Occurred()) {
                PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'",
                             fname, k);
            }
            return -1;
        }
        if (*slot != NULL) {
            PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%U'", fname,
                         k);
            return -1;
        }
        *slot = args[nargs + i];
    }
    if (*key == NULL) {
        PyErr_Format(PyExc_TypeError, "%s() missing 1 required positional argument: 'key'",
                     fname);
        return -1;
    }
    return 0;
}

/* The arguments of increment(key, delta=1): the key (borrowed) and the checked
 * delta (a new reference).  0, or -1 with an exception set. */
static inline int
cc_key_delta(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, PyObject **key,
             PyObject **delta)
{
    PyObject *arg;
    if (kwnames == NULL && (nargs == 1 || nargs == 2)) {
        *key = args[0];
        arg = nargs == 2 ? args[1] : NULL;
    }
    else if (cc_parse("increment", args, nargs, kwnames, key, &arg) < 0) {
        return -1;
    }
    *delta = cc_delta(arg);
    return *delta == NULL ? -1 : 0;
}

/* ---- _ConcurrentShardCore methods ---------------------------------------- */

static PyObject *
shard_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (PyTuple_GET_SIZE(args) != 0 || (kwds != NULL && PyDict_GET_SIZE(kwds) != 0)) {
        PyErr_Format(PyExc_TypeError, "%s() takes no arguments", type->tp_name);
        return NULL;
    }
    PyObject *counts = PyDict_New(); /* created (owned) by the calling thread */
    if (counts == NULL) {
        return NULL;
    }
    ShardObject *self = (ShardObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_DECREF(counts);
        return NULL;
    }
    self->counts = counts;
    self->retired = 0;
    return (PyObject *)self;
}

static int
shard_traverse(ShardObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->counts);
    return 0;
}

static int
shard_clear(ShardObject *self)
{
    ct_lock(&self->mu);
    PyObject *d = self->counts;
    self->counts = NULL;
    ct_unlock(&self->mu);
    Py_XDECREF(d);
    return 0;
}

static void
shard_dealloc(ShardObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    shard_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *
shard_increment(ShardObject *self, PyObject *const *args, Py_ssize_t nargs,
                PyObject *kwnames)
{
    PyObject *key, *delta;
    if (cc_key_delta(args, nargs, kwnames, &key, &delta) < 0) {
        return NULL;
    }
    int r = shard_add(self, key, delta);
    Py_DECREF(delta);
    if (r < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
shard_get_counts(ShardObject *self, void *closure)
{
    return shard_counts_ref(self);
}

/* Replace the dict (clear() does, from another thread): swap under mu, drop
 * the old one after unlocking (its keys' finalisers may run). */
static int
shard_set_counts(ShardObject *self, PyObject *value, void *closure)
{
    Py_XINCREF(value);
    ct_lock(&self->mu);
    PyObject *old = self->counts;
    self->counts = value;
    ct_unlock(&self->mu);
    if (value == NULL && old == NULL) {
        cc_no_counts(self);
        return -1;
    }
    Py_XDECREF(old);
    return 0;
}

static PyObject *
shard_get_retired(ShardObject *self, void *closure)
{
    return PyBool_FromLong(CT_ATOMIC_LOAD(&self->retired));
}

static int
shard_set_retired(ShardObject *self, PyObject *value, void *closure)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete a shard's retired flag");
        return -1;
    }
    int t = PyObject_IsTrue(value);
    if (t < 0) {
        return -1;
    }
    CT_ATOMIC_STORE(&self->retired, t);
    return 0;
}

#define SHARD_INCREMENT_DOC \
    "increment($self, /, key, delta=1)\n--\n\nAdd ``delta`` (default 1) to the count of ``key``."

static PyMethodDef shard_methods[] = {
    {"increment", (PyCFunction)(void (*)(void))shard_increment, METH_FASTCALL | METH_KEYWORDS,
     SHARD_INCREMENT_DOC},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef shard_getset[] = {
    {"_counts", (getter)shard_get_counts, (setter)shard_set_counts,
     "This thread's counts (a dict written by its owner; replaced, never mutated, by clear()).",
     NULL},
    {"_retired", (getter)shard_get_retired, (setter)shard_set_retired,
     "Whether the shard's thread has exited (its counts are final).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot shard_slots[] = {
    {Py_tp_doc, "Native core of ConcurrentCounterHandle: one thread's shard."},
    {Py_tp_new, shard_new},
    {Py_tp_dealloc, shard_dealloc},
    {Py_tp_traverse, shard_traverse},
    {Py_tp_clear, shard_clear},
    {Py_tp_methods, shard_methods},
    {Py_tp_getset, shard_getset},
    {0, NULL},
};

static PyType_Spec shard_spec = {
    .name = "conctools._native._ConcurrentShardCore",
    .basicsize = sizeof(ShardObject),
    .itemsize = 0,
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = shard_slots,
};

/* ---- the per-thread cache of counter.increment() (rule 4) ---------------- */

#define CC_CACHE_WAYS 8

typedef struct {
    uint64_t serial;      /* the counter's serial; 0: empty */
    ShardObject *shard;   /* strong reference; a shard of this thread */
} cc_cache_entry;

typedef struct {
    PyThreadState *tstate;    /* the thread state the entries belong to */
    PyThreadState *closed;    /* a thread state whose dict was cleared */
    cc_cache_entry e[CC_CACHE_WAYS];
} cc_cache_t;

static _Thread_local cc_cache_t cc_cache;

static uint64_t cc_next_serial = 1; /* next counter serial (atomic) */

typedef struct {
    PyObject_HEAD
    cc_cache_t *cache;        /* the cache of the thread that stored it */
    PyThreadState *tstate;
} CCSentinelObject;

static PyTypeObject *CCSentinelType;

static void
cc_cache_release(cc_cache_t *cache)
{
    ShardObject *drop[CC_CACHE_WAYS];
    for (int i = 0; i < CC_CACHE_WAYS; i++) {
        drop[i] = cache->e[i].shard;
        cache->e[i].shard = NULL;
        cache->e[i].serial = 0;
    }
    cache->tstate = NULL;
    for (int i = 0; i < CC_CACHE_WAYS; i++) {
        Py_XDECREF(drop[i]);
    }
}

static void
cc_sentinel_dealloc(CCSentinelObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    /* Only this OS thread's cache, and only if it still belongs to the
     * thread state whose dict is being cleared. */
    if (self->cache == &cc_cache && cc_cache.tstate == self->tstate) {
        cc_cache_release(&cc_cache);
        /* Its thread is being torn down: never cache for it again (a new
         * dict made now would never be cleared). */
        cc_cache.closed = self->tstate;
    }
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyType_Slot cc_sentinel_slots[] = {
    {Py_tp_dealloc, cc_sentinel_dealloc},
    {0, NULL},
};

static PyType_Spec cc_sentinel_spec = {
    .name = "conctools._native._ConcurrentCounterCacheSentinel",
    .basicsize = sizeof(CCSentinelObject),
    .itemsize = 0,
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = cc_sentinel_slots,
};

/* Make the cache belong to the calling thread state (storing the sentinel in
 * its dict).  Returns 0 when the cache may be used, 1 when it may not, -1 on
 * error. */
static int
cc_cache_claim(PyThreadState *tstate)
{
    if (cc_cache.tstate == tstate) {
        return 0;
    }
    if (cc_cache.closed == tstate) {
        return 1;
    }
    /* Entries of an earlier thread state of this OS thread: drop them. */
    cc_cache_release(&cc_cache);
    PyObject *dict = PyThreadState_GetDict();
    if (dict == NULL) {
        return 1;
    }
    CCSentinelObject *s = PyObject_New(CCSentinelObject, CCSentinelType);
    if (s == NULL) {
        return -1;
    }
    s->cache = &cc_cache;
    s->tstate = tstate;
    /* Set the owner first: replacing an older sentinel of this thread state
     * (left by an interrupted claim) must not empty the new cache. */
    cc_cache.tstate = tstate;
    int r = PyDict_SetItem(dict, cc_str_sentinel_key, (PyObject *)s);
    Py_DECREF(s);
    if (r < 0) {
        cc_cache.tstate = NULL;
        return -1;
    }
    return 0;
}

/* ---- _ConcurrentCounterCore ---------------------------------------------- */

typedef struct {
    PyObject_HEAD
    uint64_t serial;       /* unique, never reused; set by _init_core */
    PyObject *local;       /* per_thread.local */
    PyObject *per_thread;
    PyObject *lock;        /* per_thread.lock */
    PyObject *state;
} CCounterObject;

static PyObject *
ccounter_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    CCounterObject *self = (CCounterObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->serial = 0;
    self->local = self->per_thread = self->lock = self->state = NULL;
    return (PyObject *)self;
}

static int
ccounter_traverse(CCounterObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->local);
    Py_VISIT(self->per_thread);
    Py_VISIT(self->lock);
    Py_VISIT(self->state);
    return 0;
}

static int
ccounter_clear(CCounterObject *self)
{
    Py_CLEAR(self->local);
    Py_CLEAR(self->per_thread);
    Py_CLEAR(self->lock);
    Py_CLEAR(self->state);
    return 0;
}

static void
ccounter_dealloc(CCounterObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (tp->tp_weaklistoffset) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    ccounter_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

/* _init_core(per_thread, state): set once, before the counter is shared. */
static PyObject *
ccounter_init_core(CCounterObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_init_core(per_thread, state)");
        return NULL;
    }
    if (self->per_thread != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the counter is already initialised");
        return NULL;
    }
    PyObject *local = PyObject_GetAttr(args[0], cc_str_local);
    if (local == NULL) {
        return NULL;
    }
    PyObject *lock = PyObject_GetAttr(args[0], cc_str_lock);
    if (lock == NULL) {
        Py_DECREF(local);
        return NULL;
    }
    self->local = local;
    self->lock = lock;
    self->per_thread = Py_NewRef(args[0]);
    self->state = Py_NewRef(args[1]);
    self->serial = __atomic_fetch_add(&cc_next_serial, 1, __ATOMIC_RELAXED);
    Py_RETURN_NONE;
}

/* Find the calling thread's shard on a cache miss: a new reference, NULL with
 * no error when the pure path must run, NULL with an error on failure. */
static ShardObject *
ccounter_find_shard(CCounterObject *self, PyThreadState *tstate)
{
    uint64_t serial = self->serial;
    if (self->local == NULL || serial == 0) {
        PyErr_Format(PyExc_AttributeError, "'%s' object has no attribute '_local'",
                     Py_TYPE(self)->tp_name);
        return NULL;
    }
    PyObject *v = PyObject_GetAttr(self->local, cc_str_value);
    if (v == NULL) {
        if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
            PyErr_Clear();
        }
        return NULL;
    }
    if (!PyObject_TypeCheck(v, ShardType) || CT_ATOMIC_LOAD(&((ShardObject *)v)->retired)) {
        Py_DECREF(v);
        return NULL; /* not ours to add into: the pure path decides */
    }
    int r = cc_cache_claim(tstate);
    if (r < 0) {
        Py_DECREF(v);
        return NULL;
    }
    if (r == 0) {
        cc_cache_entry *e = &cc_cache.e[serial % CC_CACHE_WAYS];
        ShardObject *old = e->shard;
        e->shard = (ShardObject *)Py_NewRef(v);
        e->serial = serial;
        /* May free a dead counter's shard (and run its keys' finalisers):
         * no lock is held and our entry is already stored. */
        Py_XDECREF(old);
    }
    return (ShardObject *)v;
}

static PyObject *
ccounter_increment(CCounterObject *self, PyObject *const *args, Py_ssize_t nargs,
                   PyObject *kwnames)
{
    PyObject *key, *delta;
    if (cc_key_delta(args, nargs, kwnames, &key, &delta) < 0) {
        return NULL;
    }
    ShardObject *shard;
    PyThreadState *tstate = PyThreadState_Get();
    uint64_t serial = self->serial;
    cc_cache_entry *e = &cc_cache.e[serial % CC_CACHE_WAYS];
    if (e->serial == serial && serial != 0 && cc_cache.tstate == tstate
        && !CT_ATOMIC_LOAD_RELAXED(&e->shard->retired)) {
        /* our own reference: the update may run code that evicts the entry */
        shard = (ShardObject *)Py_NewRef(e->shard);
    }
    else {
        shard = ccounter_find_shard(self, tstate);
        if (shard == NULL) {
            PyObject *res = NULL;
            if (!PyErr_Occurred()) {
                res = PyObject_CallMethodObjArgs((PyObject *)self, cc_str_slow_increment, key,
                                                 delta, NULL);
            }
            Py_DECREF(delta);
            return res;
        }
    }
    int r = shard_add(shard, key, delta);
    Py_DECREF(shard);
    Py_DECREF(delta);
    if (r < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMemberDef ccounter_members[] = {
    {"_local", Py_T_OBJECT_EX, offsetof(CCounterObject, local), Py_READONLY, NULL},
    {"_per_thread", Py_T_OBJECT_EX, offsetof(CCounterObject, per_thread), Py_READONLY, NULL},
    {"_lock", Py_T_OBJECT_EX, offsetof(CCounterObject, lock), Py_READONLY, NULL},
    {"_state", Py_T_OBJECT_EX, offsetof(CCounterObject, state), Py_READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

#define CCOUNTER_INCREMENT_DOC                                          \
    "increment($self, /, key, delta=1)\n--\n\n"                         \
    "Add ``delta`` (default 1) to the count of ``key``.\n\n"            \
    "``TypeError`` (and no change) if ``delta`` is not an int or ``key`` is\n" \
    "unhashable."

static PyMethodDef ccounter_methods[] = {
    {"increment", (PyCFunction)(void (*)(void))ccounter_increment,
     METH_FASTCALL | METH_KEYWORDS, CCOUNTER_INCREMENT_DOC},
    {"_init_core", (PyCFunction)(void (*)(void))ccounter_init_core, METH_FASTCALL,
     "Set the per-thread registry and the shared state (once)."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot ccounter_slots[] = {
    {Py_tp_doc, "Native core of ConcurrentCounter: the plain increment."},
    {Py_tp_new, ccounter_new},
    {Py_tp_dealloc, ccounter_dealloc},
    {Py_tp_traverse, ccounter_traverse},
    {Py_tp_clear, ccounter_clear},
    {Py_tp_methods, ccounter_methods},
    {Py_tp_members, ccounter_members},
    {0, NULL},
};

static PyType_Spec ccounter_spec = {
    .name = "conctools._native._ConcurrentCounterCore",
    .basicsize = sizeof(CCounterObject),
    .itemsize = 0,
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = ccounter_slots,
};

/* ---- registration -------------------------------------------------------- */

static int
cc_intern(PyObject **slot, const char *s)
{
    if (*slot == NULL) {
        *slot = PyUnicode_InternFromString(s);
    }
    return *slot == NULL ? -1 : 0;
}

int
ct_exec_ccounter(PyObject *module)
{
    if (cc_intern(&cc_str_value, "value") < 0
        || cc_intern(&cc_str_slow_increment, "_slow_increment") < 0
        || cc_intern(&cc_str_name, "__name__") < 0 || cc_intern(&cc_str_key, "key") < 0
        || cc_intern(&cc_str_delta, "delta") < 0 || cc_intern(&cc_str_get, "get") < 0
        || cc_intern(&cc_str_local, "local") < 0 || cc_intern(&cc_str_lock, "lock") < 0
        || cc_intern(&cc_str_sentinel_key, "conctools._native.ccounter.cache") < 0) {
        return -1;
    }
    if (cc_zero == NULL && (cc_zero = PyLong_FromLong(0)) == NULL) {
        return -1;
    }
    if (cc_one == NULL && (cc_one = PyLong_FromLong(1)) == NULL) {
        return -1;
    }
    ShardType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &shard_spec, NULL);
    if (ShardType == NULL || PyModule_AddType(module, ShardType) < 0) {
        return -1;
    }
    CCounterType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &ccounter_spec, NULL);
    if (CCounterType == NULL || PyModule_AddType(module, CCounterType) < 0) {
        return -1;
    }
    CCSentinelType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &cc_sentinel_spec, NULL);
    if (CCSentinelType == NULL) {
        return -1;
    }
    return 0;
}
