/* Native fast paths of conctools.counters (see conctools_native.h for the rules).
 *
 * _StripedCellCore      base of StripedCounterHandle: one thread's cell.
 * _StripedCounterCore   base of StripedCounter: increment/add/decrement.
 *
 * The pure-Python cores in conctools/counters.py (_PyStripedCellCore,
 * _PyStripedCounterCore) are the specification; these types implement the
 * same methods with the same exceptions and messages.
 *
 * A cell holds its value as an int64 ``small`` (the hot path: the owner
 * thread loads it, adds, stores it; readers load it) plus an optional Python
 * int ``big`` that absorbs overflows and big deltas (ints are unbounded).
 * ``big`` only changes under the cell's mutex, which readers take; the slow
 * path adds to ``big`` and never rewrites ``small``.  Only the owner thread writes a cell (the
 * documented contract); a foreign writer may lose increments but cannot
 * corrupt memory: ``big`` is only touched under the mutex with strong
 * references.
 *
 * The counter's plain increment finds the calling thread's cell without
 * touching a shared Python object: a per-OS-thread cache (C thread-local
 * storage) maps the counter's state (a serial number, never reused) to the
 * cell, holding a strong reference to it.  The cache is emptied when the
 * thread state's dict is cleared (a sentinel object stored there), so the
 * references it holds die with the thread.  A cached cell that its thread
 * exit has retired (folded into the counter's base) is marked ``retired`` and
 * never used again by the fast path.  Misses take the pure-Python path
 * (threading.local lookup, registration, shared adds).
 */
#include "conctools_native.h"

#include <stddef.h>

#if PY_VERSION_HEX < 0x030C0000
#  include "structmember.h"
#  define Py_T_OBJECT_EX T_OBJECT_EX
#  define Py_READONLY READONLY
#endif

/* ---- the cell ----------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    int64_t small;      /* owner writes (relaxed store); readers load */
    PyObject *big;      /* NULL or an exact int; changed under mu only */
    int retired;        /* set once by _retire (folded into the base) */
    ct_mutex mu;
} CellObject;

static PyTypeObject *CellType;   /* _StripedCellCore */
static PyTypeObject *CounterType; /* _StripedCounterCore */

static PyObject *str_value;      /* "value" */
static PyObject *str_slow_add;   /* "_slow_add" */
static PyObject *str_name;       /* "__name__" */
static PyObject *str_delta;      /* "delta" */
static PyObject *str__value;     /* "_value" */
static PyObject *str_base;       /* "base" */
static PyObject *str_values;     /* "values" */
static PyObject *str_acquire;    /* "acquire" */
static PyObject *str_release;    /* "release" */
static PyObject *str_local, *str_lock, *str_registry, *str_live;

/* TypeError "{what} must be an int, not {type(obj).__name__}" */
static void
ct_delta_type_error(PyObject *obj, const char *what)
{
    PyObject *name = PyObject_GetAttr((PyObject *)Py_TYPE(obj), str_name);
    if (name == NULL) {
        return;
    }
    PyErr_Format(PyExc_TypeError, "%s must be an int, not %U", what, name);
    Py_DECREF(name);
}

/* Check ``arg`` as the pure code does (exact int, or int subclass converted
 * with int(); bool and everything else: TypeError).  ``negate``: the delta is
 * subtracted.  Returns 0 with *small set (and *big NULL), 1 with *big a new
 * reference to an exact int that does not fit int64, -1 on error. */
static int
ct_delta(PyObject *arg, const char *what, int negate, int64_t *small, PyObject **big)
{
    PyObject *v;
    *big = NULL;
    if (PyLong_CheckExact(arg)) {
        v = Py_NewRef(arg);
    }
    else if (PyLong_Check(arg) && !PyBool_Check(arg)) {
        v = PyNumber_Long(arg);
        if (v == NULL) {
            return -1;
        }
    }
    else {
        ct_delta_type_error(arg, what);
        return -1;
    }
    int overflow = 0;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (x == -1 && PyErr_Occurred()) {
        Py_DECREF(v);
        return -1;
    }
    if (!overflow && !(negate && x == INT64_MIN)) {
        Py_DECREF(v);
        *small = negate ? -(int64_t)x : (int64_t)x;
        return 0;
    }
    if (negate) {
        Py_SETREF(v, PyNumber_Negative(v));
        if (v == NULL) {
            return -1;
        }
    }
    *big = v;
    return 1;
}

/* Fast check for the common case: an exact int that fits a C long. */
static inline int
ct_small_delta(PyObject *arg, int64_t *out)
{
    if (!PyLong_CheckExact(arg)) {
        return 0;
    }
#if PY_VERSION_HEX >= 0x030C0000
    if (PyUnstable_Long_IsCompact((PyLongObject *)arg)) {
        *out = (int64_t)PyUnstable_Long_CompactValue((PyLongObject *)arg);
        return 1;
    }
    return 0;
#else
    int overflow = 0;
    long long x = PyLong_AsLongLongAndOverflow(arg, &overflow);
    if (overflow || (x == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    *out = (int64_t)x;
    return 1;
#endif
}

/* Add a Python int (the slow path: overflow, big deltas) to ``big``.
 *
 * ``small`` is left as it is: only the fast path's load-add-store writes it.
 * Moving ``small`` into ``big`` here would store a value derived from an
 * earlier load, and a (wrongly) sharing thread's fast-path store of the same
 * old ``small`` would then count it twice; like the pure-Python cell, a
 * shared handle may lose increments but never counts one twice. */
static int
cell_add_big(CellObject *c, PyObject *delta)
{
    for (;;) {
        ct_lock(&c->mu);
        PyObject *old = c->big;
        Py_XINCREF(old);
        ct_unlock(&c->mu);

        /* new = old + delta, computed with no lock held */
        PyObject *sum = old != NULL ? PyNumber_Add(old, delta) : Py_NewRef(delta);
        if (sum == NULL) {
            Py_XDECREF(old);
            return -1;
        }
        int done = 0;
        PyObject *drop = NULL;
        ct_lock(&c->mu);
        /* Only the owner writes the cell; this check only matters when the
         * handle is (wrongly) shared: then retry instead of losing memory. */
        if (c->big == old) {
            drop = c->big;
            c->big = sum;
            done = 1;
        }
        ct_unlock(&c->mu);
        Py_XDECREF(old);
        if (done) {
            Py_XDECREF(drop);
            return 0;
        }
        Py_DECREF(sum);
    }
}

static int
cell_add_small_slow(CellObject *c, int64_t d)
{
    PyObject *delta = PyLong_FromLongLong((long long)d);
    if (delta == NULL) {
        return -1;
    }
    int r = cell_add_big(c, delta);
    Py_DECREF(delta);
    return r;
}

static inline int
cell_add_small(CellObject *c, int64_t d)
{
    int64_t cur = CT_ATOMIC_LOAD_RELAXED(&c->small);
    int64_t nv;
    if (__builtin_add_overflow(cur, d, &nv)) {
        return cell_add_small_slow(c, d);
    }
    CT_ATOMIC_STORE_RELAXED(&c->small, nv);
    return 0;
}

/* Add ``arg`` checked as a delta (``negate``: subtract it). */
static int
cell_add_arg(CellObject *c, PyObject *arg, int negate)
{
    int64_t d;
    if (ct_small_delta(arg, &d) && !(negate && d == INT64_MIN)) {
        return cell_add_small(c, negate ? -d : d);
    }
    PyObject *big;
    int r = ct_delta(arg, "delta", negate, &d, &big);
    if (r < 0) {
        return -1;
    }
    if (r == 0) {
        return cell_add_small(c, d);
    }
    r = cell_add_big(c, big);
    Py_DECREF(big);
    return r;
}

/* The cell's value as a new int (one consistent read). */
static PyObject *
cell_value(CellObject *c)
{
    ct_lock(&c->mu);
    int64_t s = CT_ATOMIC_LOAD_RELAXED(&c->small);
    PyObject *b = c->big;
    Py_XINCREF(b);
    ct_unlock(&c->mu);
    PyObject *res = PyLong_FromLongLong((long long)s);
    if (b != NULL) {
        if (res != NULL) {
            Py_SETREF(res, PyNumber_Add(b, res));
        }
        Py_DECREF(b);
    }
    return res;
}

/* ---- argument parsing: (delta=1) or (delta), positional or keyword ------ */

static int
ct_parse_delta(const char *fname, PyObject *const *args, Py_ssize_t nargs,
               PyObject *kwnames, int required, PyObject **out)
{
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    *out = NULL;
    if (nargs + nkw > 1) {
        if (nargs > 1) {
            PyErr_Format(PyExc_TypeError,
                         "%s() takes %s positional argument%s but %zd were given",
                         fname, required ? "1" : "at most 1", "", nargs);
        }
        else {
            PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument 'delta'",
                         fname);
        }
        return -1;
    }
    if (nargs == 1) {
        *out = args[0];
        return 0;
    }
    if (nkw == 1) {
        PyObject *k = PyTuple_GET_ITEM(kwnames, 0);
        int eq = PyUnicode_Compare(k, str_delta);
        if (eq != 0) {
            if (!PyErr_Occurred()) {
                PyErr_Format(PyExc_TypeError,
                             "%s() got an unexpected keyword argument '%U'", fname, k);
            }
            return -1;
        }
        *out = args[0];
        return 0;
    }
    if (required) {
        PyErr_Format(PyExc_TypeError,
                     "%s() missing 1 required positional argument: 'delta'", fname);
        return -1;
    }
    return 0;
}

/* ---- _StripedCellCore methods ------------------------------------------- */

static PyObject *
cell_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (PyTuple_GET_SIZE(args) != 0 || (kwds != NULL && PyDict_GET_SIZE(kwds) != 0)) {
        PyErr_Format(PyExc_TypeError, "%s() takes no arguments", type->tp_name);
        return NULL;
    }
    CellObject *self = (CellObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->small = 0;
    self->big = NULL;
    self->retired = 0;
    return (PyObject *)self;
}

static int
cell_traverse(CellObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->big);
    return 0;
}

static int
cell_clear(CellObject *self)
{
    Py_CLEAR(self->big);
    return 0;
}

static void
cell_dealloc(CellObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    cell_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *
cell_increment(CellObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs == 0 && kwnames == NULL) {
        if (cell_add_small(self, 1) < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    PyObject *arg;
    if (ct_parse_delta("increment", args, nargs, kwnames, 0, &arg) < 0) {
        return NULL;
    }
    if (cell_add_arg(self, arg, 0) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
cell_add(CellObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *arg;
    if (nargs == 1 && kwnames == NULL) {
        arg = args[0];
    }
    else if (ct_parse_delta("add", args, nargs, kwnames, 1, &arg) < 0) {
        return NULL;
    }
    if (cell_add_arg(self, arg, 0) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
cell_decrement(CellObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs == 0 && kwnames == NULL) {
        if (cell_add_small(self, -1) < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    PyObject *arg;
    if (ct_parse_delta("decrement", args, nargs, kwnames, 0, &arg) < 0) {
        return NULL;
    }
    if (cell_add_arg(self, arg, 1) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* _retire(): mark the cell folded (called by the counter's state, under its
 * registry lock, right after reading the value it folds).  The plain
 * increment's cache never uses a retired cell. */
static PyObject *
cell_retire(CellObject *self, PyObject *Py_UNUSED(ignored))
{
    CT_ATOMIC_STORE(&self->retired, 1);
    Py_RETURN_NONE;
}

static PyObject *
cell_get_value(CellObject *self, void *closure)
{
    return cell_value(self);
}

static int
cell_set_value(CellObject *self, PyObject *value, void *closure)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete a cell's value");
        return -1;
    }
    if (!PyLong_Check(value)) {
        ct_delta_type_error(value, "_value");
        return -1;
    }
    PyObject *v = PyNumber_Long(value);
    if (v == NULL) {
        return -1;
    }
    int overflow = 0;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (x == -1 && PyErr_Occurred()) {
        Py_DECREF(v);
        return -1;
    }
    PyObject *drop;
    ct_lock(&self->mu);
    drop = self->big;
    if (overflow) {
        self->big = v;
        CT_ATOMIC_STORE_RELAXED(&self->small, 0);
        v = NULL;
    }
    else {
        self->big = NULL;
        CT_ATOMIC_STORE_RELAXED(&self->small, (int64_t)x);
    }
    ct_unlock(&self->mu);
    Py_XDECREF(v);
    Py_XDECREF(drop);
    return 0;
}

static PyObject *
cell_get_retired(CellObject *self, void *closure)
{
    return PyBool_FromLong(CT_ATOMIC_LOAD(&self->retired));
}

#define CELL_INCREMENT_DOC \
    "increment($self, /, delta=1)\n--\n\nAdd ``delta`` (default 1) to the counter."
#define CELL_ADD_DOC "add($self, /, delta)\n--\n\nAdd ``delta`` to the counter."
#define CELL_DECREMENT_DOC \
    "decrement($self, /, delta=1)\n--\n\nSubtract ``delta`` (default 1) from the counter."

static PyMethodDef cell_methods[] = {
    {"increment", (PyCFunction)(void (*)(void))cell_increment, METH_FASTCALL | METH_KEYWORDS,
     CELL_INCREMENT_DOC},
    {"add", (PyCFunction)(void (*)(void))cell_add, METH_FASTCALL | METH_KEYWORDS, CELL_ADD_DOC},
    {"decrement", (PyCFunction)(void (*)(void))cell_decrement, METH_FASTCALL | METH_KEYWORDS,
     CELL_DECREMENT_DOC},
    {"_retire", (PyCFunction)cell_retire, METH_NOARGS,
     "Mark the cell as folded into its counter (its thread has exited)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef cell_getset[] = {
    {"_value", (getter)cell_get_value, (setter)cell_set_value,
     "This cell's contribution (an int).", NULL},
    {"_retired", (getter)cell_get_retired, NULL, "Whether the cell was folded.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot cell_slots[] = {
    {Py_tp_doc, "Native core of StripedCounterHandle: one thread's cell."},
    {Py_tp_new, cell_new},
    {Py_tp_dealloc, cell_dealloc},
    {Py_tp_traverse, cell_traverse},
    {Py_tp_clear, cell_clear},
    {Py_tp_methods, cell_methods},
    {Py_tp_getset, cell_getset},
    {0, NULL},
};

static PyType_Spec cell_spec = {
    .name = "conctools._native._StripedCellCore",
    .basicsize = sizeof(CellObject),
    .itemsize = 0,
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = cell_slots,
};

/* ---- the per-thread cache of the plain increment ------------------------ */

#define CT_CACHE_WAYS 8

typedef struct {
    uint64_t serial;      /* the counter state's serial; 0: empty */
    CellObject *cell;     /* strong reference */
} ct_cache_entry;

typedef struct {
    PyThreadState *tstate;    /* the thread state the entries belong to */
    PyThreadState *closed;    /* a thread state whose dict was cleared */
    ct_cache_entry e[CT_CACHE_WAYS];
} ct_cache_t;

static _Thread_local ct_cache_t ct_cache;

static uint64_t ct_next_serial = 1; /* next state serial (atomic) */

/* Sentinel kept in the thread state's dict: when that dict is cleared
 * (thread exit), it empties this OS thread's cache. */
typedef struct {
    PyObject_HEAD
    ct_cache_t *cache;        /* the cache of the thread that stored it */
    PyThreadState *tstate;
} SentinelObject;

static PyTypeObject *SentinelType;
static PyObject *str_sentinel_key;

static void
ct_cache_release(ct_cache_t *cache)
{
    CellObject *drop[CT_CACHE_WAYS];
    for (int i = 0; i < CT_CACHE_WAYS; i++) {
        drop[i] = cache->e[i].cell;
        cache->e[i].cell = NULL;
        cache->e[i].serial = 0;
    }
    cache->tstate = NULL;
    for (int i = 0; i < CT_CACHE_WAYS; i++) {
        Py_XDECREF(drop[i]);
    }
}

static void
sentinel_dealloc(SentinelObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    /* Only this OS thread's cache, and only if it still belongs to the
     * thread state whose dict is being cleared. */
    if (self->cache == &ct_cache && ct_cache.tstate == self->tstate) {
        ct_cache_release(&ct_cache);
        /* Its thread is being torn down: never cache for it again (a new
         * dict made now would never be cleared). */
        ct_cache.closed = self->tstate;
    }
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyType_Slot sentinel_slots[] = {
    {Py_tp_dealloc, sentinel_dealloc},
    {0, NULL},
};

static PyType_Spec sentinel_spec = {
    .name = "conctools._native._CounterCacheSentinel",
    .basicsize = sizeof(SentinelObject),
    .itemsize = 0,
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = sentinel_slots,
};

/* Make the cache belong to the calling thread state (storing the sentinel in
 * its dict).  Returns 0 when the cache may be used, 1 when it may not (the
 * thread state's dict is unavailable), -1 on error. */
static int
ct_cache_claim(PyThreadState *tstate)
{
    if (ct_cache.tstate == tstate) {
        return 0;
    }
    if (ct_cache.closed == tstate) {
        return 1;
    }
    /* Entries of an earlier thread state of this OS thread (one whose dict
     * was never cleared): drop them. */
    ct_cache_release(&ct_cache);
    PyObject *dict = PyThreadState_GetDict();
    if (dict == NULL) {
        return 1;
    }
    SentinelObject *s = PyObject_New(SentinelObject, SentinelType);
    if (s == NULL) {
        return -1;
    }
    s->cache = &ct_cache;
    s->tstate = tstate;
    /* Set the owner first: replacing an older sentinel of this thread state
     * (left by an interrupted claim) must not empty the new cache. */
    ct_cache.tstate = tstate;
    int r = PyDict_SetItem(dict, str_sentinel_key, (PyObject *)s);
    Py_DECREF(s);
    if (r < 0) {
        ct_cache.tstate = NULL;
        return -1;
    }
    return 0;
}

/* ---- _StripedCounterCore ------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    uint64_t serial;       /* unique, never reused; set by _init_core */
    PyObject *local;       /* per_thread.local */
    PyObject *per_thread;
    PyObject *lock;        /* per_thread.lock */
    PyObject *live;        /* per_thread._registry.live (never replaced), or NULL */
    PyObject *state;
} CounterObject;

static PyObject *
counter_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    CounterObject *self = (CounterObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->serial = 0;
    self->local = self->per_thread = self->lock = self->state = self->live = NULL;
    return (PyObject *)self;
}

static int
counter_traverse(CounterObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->local);
    Py_VISIT(self->per_thread);
    Py_VISIT(self->lock);
    Py_VISIT(self->state);
    Py_VISIT(self->live);
    return 0;
}

static int
counter_clear(CounterObject *self)
{
    Py_CLEAR(self->local);
    Py_CLEAR(self->per_thread);
    Py_CLEAR(self->lock);
    Py_CLEAR(self->state);
    Py_CLEAR(self->live);
    return 0;
}

static void
counter_dealloc(CounterObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (tp->tp_weaklistoffset) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    counter_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

/* _init_core(per_thread, state): set once, before the counter is shared. */
static PyObject *
counter_init_core(CounterObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_init_core(per_thread, state)");
        return NULL;
    }
    if (self->per_thread != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the counter is already initialised");
        return NULL;
    }
    PyObject *local = PyObject_GetAttr(args[0], str_local);
    if (local == NULL) {
        return NULL;
    }
    PyObject *lock = PyObject_GetAttr(args[0], str_lock);
    if (lock == NULL) {
        Py_DECREF(local);
        return NULL;
    }
    /* The registry dict, when it is the one PerThread keeps (a plain dict). */
    PyObject *live = NULL;
    PyObject *registry = PyObject_GetAttr(args[0], str_registry);
    if (registry != NULL) {
        live = PyObject_GetAttr(registry, str_live);
        Py_DECREF(registry);
    }
    if (live == NULL || !PyDict_CheckExact(live)) {
        PyErr_Clear();
        Py_CLEAR(live);
    }
    self->live = live;
    self->local = local;
    self->lock = lock;
    self->per_thread = Py_NewRef(args[0]);
    self->state = Py_NewRef(args[1]);
    self->serial = __atomic_fetch_add(&ct_next_serial, 1, __ATOMIC_RELAXED);
    Py_RETURN_NONE;
}

static PyObject *
counter_attr_error(CounterObject *self, const char *name)
{
    PyErr_Format(PyExc_AttributeError, "'%s' object has no attribute '%s'",
                 Py_TYPE(self)->tp_name, name);
    return NULL;
}

/* The slow path: everything the pure code does (registration, adds of a
 * thread that cannot own a cell), then the cache is filled. */
static PyObject *
counter_slow(CounterObject *self, PyObject *delta)
{
    return PyObject_CallMethodOneArg((PyObject *)self, str_slow_add, delta);
}

/* Find the calling thread's cell: a new reference, NULL with no error when
 * the slow path must run, NULL with an error on failure. */
static CellObject *
counter_find_cell(CounterObject *self)
{
    PyThreadState *tstate = PyThreadState_Get();
    uint64_t serial = self->serial;
    ct_cache_entry *e;
    /* Miss: ask the thread's threading.local (the pure code's lookup). */
    if (self->local == NULL || serial == 0) {
        counter_attr_error(self, "_local");
        return NULL;
    }
    PyObject *v = PyObject_GetAttr(self->local, str_value);
    if (v == NULL) {
        if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
            PyErr_Clear();
        }
        return NULL;
    }
    if (!PyObject_TypeCheck(v, CellType) || CT_ATOMIC_LOAD(&((CellObject *)v)->retired)) {
        Py_DECREF(v);
        return NULL;  /* not ours to add into: the slow path decides */
    }
    int r = ct_cache_claim(tstate);
    if (r < 0) {
        Py_DECREF(v);
        return NULL;
    }
    if (r == 0) {
        e = &ct_cache.e[serial % CT_CACHE_WAYS];
        CellObject *old = e->cell;
        e->cell = (CellObject *)Py_NewRef(v);
        e->serial = serial;
        Py_XDECREF(old);
    }
    return (CellObject *)v;
}

static PyObject *
counter_add_common(CounterObject *self, PyObject *arg, int negate, int64_t dflt)
{
    int64_t d = dflt;
    PyObject *big = NULL;
    if (arg != NULL) {
        if (ct_small_delta(arg, &d) && !(negate && d == INT64_MIN)) {
            if (negate) {
                d = -d;
            }
        }
        else {
            int r = ct_delta(arg, "delta", negate, &d, &big);
            if (r < 0) {
                return NULL;
            }
        }
    }
    int r;
    /* The hit: the cache holds a strong reference, and nothing below runs
     * code that could drop it (int arithmetic only). */
    uint64_t serial = self->serial;
    ct_cache_entry *e = &ct_cache.e[serial % CT_CACHE_WAYS];
    if (e->serial == serial && serial != 0 && ct_cache.tstate == PyThreadState_Get()
        && !CT_ATOMIC_LOAD_RELAXED(&e->cell->retired)) {
        if (big != NULL) {
            r = cell_add_big(e->cell, big);
            Py_DECREF(big);
        }
        else {
            r = cell_add_small(e->cell, d);
        }
        if (r < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    CellObject *cell = counter_find_cell(self);
    if (cell == NULL) {
        if (PyErr_Occurred()) {
            Py_XDECREF(big);
            return NULL;
        }
        PyObject *delta = big != NULL ? big : PyLong_FromLongLong((long long)d);
        big = NULL;
        if (delta == NULL) {
            return NULL;
        }
        PyObject *res = counter_slow(self, delta);
        Py_DECREF(delta);
        return res;
    }
    if (big != NULL) {
        r = cell_add_big(cell, big);
        Py_DECREF(big);
    }
    else {
        r = cell_add_small(cell, d);
    }
    Py_DECREF(cell);
    if (r < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
counter_increment(CounterObject *self, PyObject *const *args, Py_ssize_t nargs,
                  PyObject *kwnames)
{
    PyObject *arg = NULL;
    if (nargs == 1 && kwnames == NULL) {
        arg = args[0];
    }
    else if ((nargs != 0 || kwnames != NULL)
             && ct_parse_delta("increment", args, nargs, kwnames, 0, &arg) < 0) {
        return NULL;
    }
    return counter_add_common(self, arg, 0, 1);
}

static PyObject *
counter_add(CounterObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *arg;
    if (nargs == 1 && kwnames == NULL) {
        arg = args[0];
    }
    else if (ct_parse_delta("add", args, nargs, kwnames, 1, &arg) < 0) {
        return NULL;
    }
    return counter_add_common(self, arg, 0, 0);
}

static PyObject *
counter_decrement(CounterObject *self, PyObject *const *args, Py_ssize_t nargs,
                  PyObject *kwnames)
{
    PyObject *arg = NULL;
    if (nargs == 1 && kwnames == NULL) {
        arg = args[0];
    }
    else if ((nargs != 0 || kwnames != NULL)
             && ct_parse_delta("decrement", args, nargs, kwnames, 0, &arg) < 0) {
        return NULL;
    }
    return counter_add_common(self, arg, 1, -1);
}

/* value() / sum_then_reset(): under the registry lock, like the pure code.
 * The lock is always released once acquired: no Python code runs between
 * the acquire and the release except PerThread.values(), whose exception
 * (an interrupt) is propagated after the release. */
static PyObject *
counter_locked_sum(CounterObject *self, int reset)
{
    if (self->lock == NULL || self->per_thread == NULL || self->state == NULL) {
        return counter_attr_error(self, "_lock");
    }
    PyObject *r = PyObject_CallMethodNoArgs(self->lock, str_acquire);
    if (r == NULL) {
        return NULL;
    }
    Py_DECREF(r);
    PyObject *res = NULL;
    /* The registry's live cells: list(per_thread._registry.live.values()),
     * read while holding its lock (which every change of it holds). */
    PyObject *cells = self->live != NULL ? PyDict_Values(self->live)
                                         : PyObject_CallMethodNoArgs(self->per_thread, str_values);
    if (cells != NULL) {
        PyObject *fast = PySequence_Fast(cells, "values() must return a sequence");
        PyObject *sum = NULL;
        if (fast != NULL) {
            int64_t acc = 0;
            sum = PyLong_FromLong(0);
            Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
            for (Py_ssize_t i = 0; sum != NULL && i < n; i++) {
                PyObject *cell = PySequence_Fast_GET_ITEM(fast, i);
                PyObject *v = NULL;
                if (PyObject_TypeCheck(cell, CellType)) {
                    CellObject *c = (CellObject *)cell;
                    ct_lock(&c->mu);
                    int64_t sm = CT_ATOMIC_LOAD_RELAXED(&c->small);
                    PyObject *b = c->big;
                    Py_XINCREF(b);
                    ct_unlock(&c->mu);
                    int64_t t;
                    if (!__builtin_add_overflow(acc, sm, &t)) {
                        acc = t;
                        sm = 0;
                    }
                    if (b != NULL || sm != 0) {
                        PyObject *x = PyLong_FromLongLong((long long)sm);
                        if (x != NULL && b != NULL) {
                            Py_SETREF(x, PyNumber_Add(b, x));
                        }
                        Py_XDECREF(b);
                        v = x;
                        if (v == NULL) {
                            Py_CLEAR(sum);
                            break;
                        }
                    }
                }
                else {
                    v = PyObject_GetAttr(cell, str__value);
                    if (v == NULL) {
                        Py_CLEAR(sum);
                        break;
                    }
                }
                if (v != NULL) {
                    Py_SETREF(sum, PyNumber_Add(sum, v));
                    Py_DECREF(v);
                }
            }
            if (sum != NULL && acc != 0) {
                PyObject *x = PyLong_FromLongLong((long long)acc);
                if (x == NULL) {
                    Py_CLEAR(sum);
                }
                else {
                    Py_SETREF(sum, PyNumber_Add(sum, x));
                    Py_DECREF(x);
                }
            }
            Py_DECREF(fast);
        }
        Py_DECREF(cells);
        if (sum != NULL) {
            PyObject *base = PyObject_GetAttr(self->state, str_base);
            if (base != NULL) {
                res = PyNumber_Add(base, sum);
                Py_DECREF(base);
                if (res != NULL && reset) {
                    /* one store: the reset */
                    PyObject *neg = PyNumber_Negative(sum);
                    if (neg == NULL || PyObject_SetAttr(self->state, str_base, neg) < 0) {
                        Py_CLEAR(res);
                    }
                    Py_XDECREF(neg);
                }
            }
            Py_DECREF(sum);
        }
    }
    /* release on every path, keeping the pending exception */
    PyObject *et, *ev, *tb;
    PyErr_Fetch(&et, &ev, &tb);
    r = PyObject_CallMethodNoArgs(self->lock, str_release);
    if (r == NULL) {
        Py_CLEAR(res);
        if (et != NULL) {
            PyErr_Clear();
            PyErr_Restore(et, ev, tb);
        }
        return NULL;
    }
    Py_DECREF(r);
    PyErr_Restore(et, ev, tb);
    return res;
}

static PyObject *
counter_value(CounterObject *self, PyObject *Py_UNUSED(ignored))
{
    return counter_locked_sum(self, 0);
}

static PyObject *
counter_sum_then_reset(CounterObject *self, PyObject *Py_UNUSED(ignored))
{
    return counter_locked_sum(self, 1);
}

static PyMemberDef counter_members[] = {
    {"_local", Py_T_OBJECT_EX, offsetof(CounterObject, local), Py_READONLY, NULL},
    {"_per_thread", Py_T_OBJECT_EX, offsetof(CounterObject, per_thread), Py_READONLY, NULL},
    {"_lock", Py_T_OBJECT_EX, offsetof(CounterObject, lock), Py_READONLY, NULL},
    {"_state", Py_T_OBJECT_EX, offsetof(CounterObject, state), Py_READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

#define COUNTER_VALUE_DOC \
    "value($self, /)\n--\n\nThe sum of all deltas added (since the last reset).\n\n" \
    "Exact when no thread is adding; otherwise not a snapshot."
#define COUNTER_SUM_THEN_RESET_DOC \
    "sum_then_reset($self, /)\n--\n\n" \
    "Return :meth:`value` and reset to zero, losing no concurrent delta.\n\n" \
    "Each delta is counted by exactly one ``sum_then_reset`` (or stays in\n" \
    "the counter), even when other threads add meanwhile."

#define COUNTER_INCREMENT_DOC "increment($self, /, delta=1)\n--\n\nAdd ``delta`` (default 1)."
#define COUNTER_ADD_DOC "add($self, /, delta)\n--\n\nAdd ``delta``."
#define COUNTER_DECREMENT_DOC \
    "decrement($self, /, delta=1)\n--\n\nSubtract ``delta`` (default 1)."

static PyMethodDef counter_methods[] = {
    {"increment", (PyCFunction)(void (*)(void))counter_increment,
     METH_FASTCALL | METH_KEYWORDS, COUNTER_INCREMENT_DOC},
    {"add", (PyCFunction)(void (*)(void))counter_add, METH_FASTCALL | METH_KEYWORDS,
     COUNTER_ADD_DOC},
    {"decrement", (PyCFunction)(void (*)(void))counter_decrement,
     METH_FASTCALL | METH_KEYWORDS, COUNTER_DECREMENT_DOC},
    {"value", (PyCFunction)counter_value, METH_NOARGS, COUNTER_VALUE_DOC},
    {"sum_then_reset", (PyCFunction)counter_sum_then_reset, METH_NOARGS,
     COUNTER_SUM_THEN_RESET_DOC},
    {"_init_core", (PyCFunction)(void (*)(void))counter_init_core, METH_FASTCALL,
     "Set the per-thread registry and the shared state (once)."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot counter_slots[] = {
    {Py_tp_doc, "Native core of StripedCounter: the plain increments."},
    {Py_tp_new, counter_new},
    {Py_tp_dealloc, counter_dealloc},
    {Py_tp_traverse, counter_traverse},
    {Py_tp_clear, counter_clear},
    {Py_tp_methods, counter_methods},
    {Py_tp_members, counter_members},
    {0, NULL},
};

static PyType_Spec counter_spec = {
    .name = "conctools._native._StripedCounterCore",
    .basicsize = sizeof(CounterObject),
    .itemsize = 0,
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = counter_slots,
};

/* ---- registration -------------------------------------------------------- */

static int
ct_intern(PyObject **slot, const char *s)
{
    if (*slot == NULL) {
        *slot = PyUnicode_InternFromString(s);
    }
    return *slot == NULL ? -1 : 0;
}

int
ct_exec_counters(PyObject *module)
{
    if (ct_intern(&str_value, "value") < 0 || ct_intern(&str_slow_add, "_slow_add") < 0
        || ct_intern(&str_name, "__name__") < 0 || ct_intern(&str_delta, "delta") < 0
        || ct_intern(&str__value, "_value") < 0 || ct_intern(&str_base, "base") < 0
        || ct_intern(&str_values, "values") < 0 || ct_intern(&str_acquire, "acquire") < 0
        || ct_intern(&str_release, "release") < 0 || ct_intern(&str_local, "local") < 0
        || ct_intern(&str_lock, "lock") < 0 || ct_intern(&str_registry, "_registry") < 0
        || ct_intern(&str_live, "live") < 0
        || ct_intern(&str_sentinel_key, "conctools._native.counters.cache") < 0) {
        return -1;
    }
    CellType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &cell_spec, NULL);
    if (CellType == NULL || PyModule_AddType(module, CellType) < 0) {
        return -1;
    }
    CounterType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &counter_spec, NULL);
    if (CounterType == NULL || PyModule_AddType(module, CounterType) < 0) {
        return -1;
    }
    SentinelType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &sentinel_spec, NULL);
    if (SentinelType == NULL) {
        return -1;
    }
    return 0;
}
