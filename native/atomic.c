/* Native cores of conctools.atomic (see conctools_native.h for the rules).
 *
 * The public classes AtomicInt, AtomicBool, AtomicFloat and AtomicRef stay
 * Python classes (conctools/atomic.py); when this module is active their
 * base is one of the core types below, otherwise the pure-Python core of the
 * same name, which is the specification: same methods, same semantics, same
 * exceptions and messages.
 *
 * _AtomicIntCore: the value lives in one 64-bit word updated with CAS.  A
 * value outside (INT64_MIN, INT64_MAX] is kept as an exact Python int in
 * `big` and the word holds the marker CT_BIG; so "word != CT_BIG" exactly
 * when the value fits the word.  The word only leaves or enters CT_BIG while
 * `mutex` is held (so a reader that finds CT_BIG and takes the mutex reads a
 * stable `big`); small-to-small changes are lock-free CASes.  Every
 * big-number path is a compare-and-set loop over exact Python ints, which
 * never run user code.
 *
 * User functions (update's fn) are always called with no lock held.
 */
#include "conctools_native.h"

#include <math.h>
#include <string.h>

#define CT_BIG INT64_MIN

/* ---- argument helpers ------------------------------------------------- */

/* Parse the arguments of a METH_FASTCALL | METH_KEYWORDS method like a
 * Python def with positional-or-keyword parameters `names` (the first nreq
 * required).  `out` holds the defaults (or NULL) on entry; borrowed refs. */
static int
ct_parse(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
         const char *const *names, Py_ssize_t nreq, Py_ssize_t nmax, PyObject **out)
{
    if (nargs > nmax) {
        if (nreq == nmax) {
            PyErr_Format(PyExc_TypeError,
                         "%s() takes %zd positional argument%s but %zd were given", fname,
                         nmax + 1, nmax == 0 ? "" : "s", nargs + 1);
        }
        else {
            PyErr_Format(PyExc_TypeError,
                         "%s() takes from %zd to %zd positional arguments but %zd were given",
                         fname, nreq + 1, nmax + 1, nargs + 1);
        }
        return -1;
    }
    int given[4] = {0, 0, 0, 0};
    for (Py_ssize_t i = 0; i < nargs; i++) {
        out[i] = args[i];
        given[i] = 1;
    }
    if (kwnames != NULL) {
        Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t k = 0; k < nkw; k++) {
            PyObject *key = PyTuple_GET_ITEM(kwnames, k);
            Py_ssize_t j = 0;
            for (; j < nmax; j++) {
                if (PyUnicode_CompareWithASCIIString(key, names[j]) == 0) {
                    break;
                }
            }
            if (j == nmax) {
                PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%S'",
                             fname, key);
                return -1;
            }
            if (given[j]) {
                PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'",
                             fname, names[j]);
                return -1;
            }
            out[j] = args[nargs + k];
            given[j] = 1;
        }
    }
    Py_ssize_t missing = 0, first = -1, second = -1;
    for (Py_ssize_t j = 0; j < nreq; j++) {
        if (!given[j]) {
            if (missing == 0) {
                first = j;
            }
            else if (missing == 1) {
                second = j;
            }
            missing++;
        }
    }
    if (missing == 1) {
        PyErr_Format(PyExc_TypeError, "%s() missing 1 required positional argument: '%s'",
                     fname, names[first]);
        return -1;
    }
    if (missing == 2) {
        PyErr_Format(PyExc_TypeError,
                     "%s() missing 2 required positional arguments: '%s' and '%s'", fname,
                     names[first], names[second]);
        return -1;
    }
    return 0;
}

/* TypeError "<what> must be <kind>, not <type name>", as the pure code says. */
static void *
ct_type_error(const char *what, const char *kind, PyObject *v)
{
    PyObject *name = PyObject_GetAttrString((PyObject *)Py_TYPE(v), "__name__");
    if (name == NULL) {
        return NULL;
    }
    PyErr_Format(PyExc_TypeError, "%s must be %s, not %U", what, kind, name);
    Py_DECREF(name);
    return NULL;
}

/* An exact int from an int argument (int subclasses: int(v); bool and
 * anything else: TypeError).  New reference or NULL. */
static PyObject *
ct_int_arg(PyObject *v, const char *what)
{
    if (PyLong_CheckExact(v)) {
        return Py_NewRef(v);
    }
    if (PyLong_Check(v) && !PyBool_Check(v)) {
        return PyNumber_Long(v);
    }
    return ct_type_error(what, "an int", v);
}

/* ======================================================================
 * _AtomicIntCore
 * ==================================================================== */

typedef struct {
    PyObject_HEAD
    int64_t word;    /* the value, or CT_BIG when `big` holds it */
    PyObject *big;   /* exact int outside the word's range; read/written under mutex */
    ct_mutex mutex;  /* held to enter or leave big mode, and to read `big` */
} AtomicIntObject;

static PyTypeObject *AtomicInt_Type;

/* 1 with *out set when the exact int v fits the word, else 0 (never fails). */
static inline int
ai_small(PyObject *v, int64_t *out)
{
    int overflow;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow || x == CT_BIG) {
        return 0;
    }
    *out = (int64_t)x;
    return 1;
}

/* The current value: new reference. */
static PyObject *
ai_load(AtomicIntObject *self)
{
    int64_t w = CT_ATOMIC_LOAD(&self->word);
    if (w != CT_BIG) {
        return PyLong_FromLongLong(w);
    }
    PyObject *r = NULL;
    ct_lock(&self->mutex);
    w = CT_ATOMIC_LOAD(&self->word); /* cannot enter or leave CT_BIG meanwhile */
    if (w == CT_BIG) {
        r = Py_NewRef(self->big);
    }
    ct_unlock(&self->mutex);
    return r != NULL ? r : PyLong_FromLongLong(w);
}

/* Set the value to `nv` if it equals `cur` (both exact ints, borrowed).
 * Returns 1 (done), 0 (the value differs).  Never fails. */
static int
ai_cas_obj(AtomicIntObject *self, PyObject *cur, PyObject *nv)
{
    int64_t e, n;
    int n_small = ai_small(nv, &n);
    PyObject *drop = NULL;
    int ok = 0;
    if (ai_small(cur, &e)) {
        if (n_small) {
            return CT_ATOMIC_CAS(&self->word, &e, n) ? 1 : 0;
        }
        /* small -> big: publish `big` first, then swing the word, under the
         * mutex.  In big mode the value differs from the small `cur`, and
         * `big` must not be touched; the word cannot enter big mode while
         * we hold the mutex, so after this check `big` is ours (NULL). */
        ct_lock(&self->mutex);
        if (CT_ATOMIC_LOAD(&self->word) != CT_BIG) {
            self->big = Py_NewRef(nv);
            ok = CT_ATOMIC_CAS(&self->word, &e, CT_BIG) ? 1 : 0;
            if (!ok) {
                drop = self->big;
                self->big = NULL;
            }
        }
        ct_unlock(&self->mutex);
        Py_XDECREF(drop);
        return ok;
    }
    /* `cur` is big: the value can only equal it in big mode */
    if (CT_ATOMIC_LOAD(&self->word) != CT_BIG) {
        return 0;
    }
    ct_lock(&self->mutex);
    if (CT_ATOMIC_LOAD(&self->word) == CT_BIG
        && (self->big == cur || PyObject_RichCompareBool(self->big, cur, Py_EQ) == 1)) {
        ok = 1;
        drop = self->big;
        if (n_small) {
            self->big = NULL;
            CT_ATOMIC_STORE(&self->word, n);
        }
        else {
            self->big = Py_NewRef(nv);
        }
    }
    ct_unlock(&self->mutex);
    Py_XDECREF(drop);
    return ok;
}

/* value <- value + delta (sub: value - delta); return the new or old value. */
static PyObject *
ai_add(AtomicIntObject *self, PyObject *delta, int sub, int want_new)
{
    int64_t d;
    if (ai_small(delta, &d)) {
        if (sub) {
            d = -d; /* d > INT64_MIN */
        }
        int64_t w = CT_ATOMIC_LOAD(&self->word);
        while (w != CT_BIG) {
            int64_t r;
            if (__builtin_add_overflow(w, d, &r) || r == CT_BIG) {
                break;
            }
            if (CT_ATOMIC_CAS(&self->word, &w, r)) {
                return PyLong_FromLongLong(want_new ? r : w);
            }
        }
    }
    for (;;) { /* exact Python-int mode */
        PyObject *cur = ai_load(self);
        if (cur == NULL) {
            return NULL;
        }
        PyObject *nv = sub ? PyNumber_Subtract(cur, delta) : PyNumber_Add(cur, delta);
        if (nv == NULL) {
            Py_DECREF(cur);
            return NULL;
        }
        if (ai_cas_obj(self, cur, nv)) {
            if (want_new) {
                Py_DECREF(cur);
                return nv;
            }
            Py_DECREF(nv);
            return cur;
        }
        Py_DECREF(cur);
        Py_DECREF(nv);
    }
}

/* value <- v (exact int, borrowed); return the old value (new ref). */
static PyObject *
ai_exchange(AtomicIntObject *self, PyObject *v)
{
    int64_t n;
    if (ai_small(v, &n)) {
        int64_t w = CT_ATOMIC_LOAD(&self->word);
        while (w != CT_BIG) {
            if (CT_ATOMIC_CAS(&self->word, &w, n)) {
                return PyLong_FromLongLong(w);
            }
        }
    }
    for (;;) {
        PyObject *cur = ai_load(self);
        if (cur == NULL) {
            return NULL;
        }
        if (ai_cas_obj(self, cur, v)) {
            return cur;
        }
        Py_DECREF(cur);
    }
}

static int
AtomicInt_init(PyObject *op, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"value", NULL};
    PyObject *value = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:__init__", kwlist, &value)) {
        return -1;
    }
    if (value == NULL) {
        value = PyLong_FromLong(0);
    }
    else {
        value = ct_int_arg(value, "value");
    }
    if (value == NULL) {
        return -1;
    }
    PyObject *old = ai_exchange((AtomicIntObject *)op, value);
    Py_DECREF(value);
    if (old == NULL) {
        return -1;
    }
    Py_DECREF(old);
    return 0;
}

static void
AtomicInt_dealloc(PyObject *op)
{
    AtomicIntObject *self = (AtomicIntObject *)op;
    PyTypeObject *tp = Py_TYPE(op);
    Py_CLEAR(self->big);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyObject *
AtomicInt_get(PyObject *op, PyObject *Py_UNUSED(ignored))
{
    return ai_load((AtomicIntObject *)op);
}

static PyObject *
AtomicInt_value_getter(PyObject *op, void *Py_UNUSED(closure))
{
    return ai_load((AtomicIntObject *)op);
}

static const char *const NAMES_VALUE[] = {"value", NULL};
static const char *const NAMES_DELTA[] = {"delta", NULL};
static const char *const NAMES_EXP_NEW[] = {"expected", "new", NULL};
static const char *const NAMES_FN[] = {"fn", NULL};

/* One int argument: fast path for a positional exact int. */
#define CT_ONE_INT(fname, names, nreq, dflt, what, outvar)                                 \
    PyObject *outvar;                                                                    \
    if (nargs == 1 && kwnames == NULL && PyLong_CheckExact(args[0])) {                   \
        outvar = Py_NewRef(args[0]);                                                     \
    }                                                                                    \
    else {                                                                               \
        PyObject *a_[1] = {NULL};                                                        \
        if (ct_parse(fname, args, nargs, kwnames, names, nreq, 1, a_) < 0) {             \
            return NULL;                                                                 \
        }                                                                                \
        outvar = a_[0] == NULL ? PyLong_FromLong(dflt) : ct_int_arg(a_[0], what);        \
        if (outvar == NULL) {                                                            \
            return NULL;                                                                 \
        }                                                                                \
    }

static PyObject *
AtomicInt_set(PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    CT_ONE_INT("_AtomicIntCore.set", NAMES_VALUE, 1, 0, "value", v)
    PyObject *old = ai_exchange((AtomicIntObject *)op, v);
    Py_DECREF(v);
    if (old == NULL) {
        return NULL;
    }
    Py_DECREF(old);
    Py_RETURN_NONE;
}

static PyObject *
AtomicInt_get_and_set(PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    CT_ONE_INT("_AtomicIntCore.get_and_set", NAMES_VALUE, 1, 0, "value", v)
    PyObject *old = ai_exchange((AtomicIntObject *)op, v);
    Py_DECREF(v);
    return old;
}

#define CT_ADD_METHOD(cname, pyname, nreq, sub, want_new)                                   \
    static PyObject *cname(PyObject *op, PyObject *const *args, Py_ssize_t nargs,          \
                           PyObject *kwnames)                                              \
    {                                                                                      \
        if (nargs == 0 && kwnames == NULL && (nreq) == 0) {                                \
            AtomicIntObject *self = (AtomicIntObject *)op;                                 \
            int64_t w = CT_ATOMIC_LOAD(&self->word);                                       \
            const int64_t d = (sub) ? -1 : 1;                                              \
            while (w != CT_BIG && w != ((sub) ? INT64_MIN + 1 : INT64_MAX)) {              \
                if (CT_ATOMIC_CAS(&self->word, &w, w + d)) {                               \
                    return PyLong_FromLongLong(w + d);                                     \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
        CT_ONE_INT(pyname, NAMES_DELTA, nreq, 1, "delta", delta)                           \
        PyObject *r = ai_add((AtomicIntObject *)op, delta, sub, want_new);                 \
        Py_DECREF(delta);                                                                  \
        return r;                                                                          \
    }

CT_ADD_METHOD(AtomicInt_increment, "_AtomicIntCore.increment", 0, 0, 1)
CT_ADD_METHOD(AtomicInt_decrement, "_AtomicIntCore.decrement", 0, 1, 1)
CT_ADD_METHOD(AtomicInt_add_and_get, "_AtomicIntCore.add_and_get", 1, 0, 1)
CT_ADD_METHOD(AtomicInt_get_and_add, "_AtomicIntCore.get_and_add", 1, 0, 0)

static PyObject *
AtomicInt_compare_and_set(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames)
{
    AtomicIntObject *self = (AtomicIntObject *)op;
    if (nargs == 2 && kwnames == NULL && PyLong_CheckExact(args[0])
        && PyLong_CheckExact(args[1])) {
        int64_t e, n;
        if (ai_small(args[0], &e) && ai_small(args[1], &n)) {
            return PyBool_FromLong(CT_ATOMIC_CAS(&self->word, &e, n));
        }
        return PyBool_FromLong(ai_cas_obj(self, args[0], args[1]));
    }
    PyObject *a[2] = {NULL, NULL};
    if (ct_parse("_AtomicIntCore.compare_and_set", args, nargs, kwnames, NAMES_EXP_NEW, 2, 2,
                 a) < 0) {
        return NULL;
    }
    PyObject *e = ct_int_arg(a[0], "expected");
    if (e == NULL) {
        return NULL;
    }
    PyObject *n = ct_int_arg(a[1], "new");
    if (n == NULL) {
        Py_DECREF(e);
        return NULL;
    }
    int ok = ai_cas_obj(self, e, n);
    Py_DECREF(e);
    Py_DECREF(n);
    return PyBool_FromLong(ok);
}

static PyObject *
AtomicInt_update(PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    AtomicIntObject *self = (AtomicIntObject *)op;
    PyObject *a[1] = {NULL};
    if (ct_parse("_AtomicIntCore.update", args, nargs, kwnames, NAMES_FN, 1, 1, a) < 0) {
        return NULL;
    }
    PyObject *fn = a[0];
    for (;;) {
        PyObject *cur = ai_load(self);
        if (cur == NULL) {
            return NULL;
        }
        PyObject *res = PyObject_CallOneArg(fn, cur); /* no lock held */
        if (res == NULL) {
            Py_DECREF(cur);
            return NULL;
        }
        PyObject *nv = ct_int_arg(res, "update function result");
        Py_DECREF(res);
        if (nv == NULL) {
            Py_DECREF(cur);
            return NULL;
        }
        int ok = ai_cas_obj(self, cur, nv);
        Py_DECREF(cur);
        if (ok) {
            return nv;
        }
        Py_DECREF(nv);
    }
}

/* ---- in-place operators: atomic updates of this object ---------------- */

/* The right operand of an in-place operator: an int (not bool) or an
 * AtomicInt (its current value).  New reference or NULL. */
static PyObject *
ai_operand(PyObject *v)
{
    if (PyObject_TypeCheck(v, AtomicInt_Type)) {
        return ai_load((AtomicIntObject *)v);
    }
    return ct_int_arg(v, "operand");
}

/* value <- fn(value, n) by compare-and-set (n: exact int, borrowed); returns
 * self (new ref). */
static PyObject *
ai_inplace_n(PyObject *op, PyObject *n, binaryfunc fn)
{
    AtomicIntObject *self = (AtomicIntObject *)op;
    for (;;) {
        PyObject *cur = ai_load(self);
        if (cur == NULL) {
            return NULL;
        }
        PyObject *res = fn(cur, n);
        if (res == NULL) {
            Py_DECREF(cur);
            return NULL;
        }
        PyObject *nv = ct_int_arg(res, "result");
        Py_DECREF(res);
        if (nv == NULL) {
            Py_DECREF(cur);
            return NULL;
        }
        int ok = ai_cas_obj(self, cur, nv);
        Py_DECREF(cur);
        Py_DECREF(nv);
        if (ok) {
            return Py_NewRef(op);
        }
    }
}

static PyObject *
ai_inplace(PyObject *op, PyObject *other, binaryfunc fn)
{
    PyObject *n = ai_operand(other);
    if (n == NULL) {
        return NULL;
    }
    PyObject *r = ai_inplace_n(op, n, fn);
    Py_DECREF(n);
    return r;
}

static PyObject *
ai_iadd_sub(PyObject *op, PyObject *other, int sub)
{
    PyObject *n = ai_operand(other);
    if (n == NULL) {
        return NULL;
    }
    PyObject *r = ai_add((AtomicIntObject *)op, n, sub, 1);
    Py_DECREF(n);
    if (r == NULL) {
        return NULL;
    }
    Py_DECREF(r);
    return Py_NewRef(op);
}

static PyObject *AtomicInt_iadd(PyObject *a, PyObject *b) { return ai_iadd_sub(a, b, 0); }
static PyObject *AtomicInt_isub(PyObject *a, PyObject *b) { return ai_iadd_sub(a, b, 1); }
static PyObject *AtomicInt_imul(PyObject *a, PyObject *b) { return ai_inplace(a, b, PyNumber_Multiply); }
static PyObject *AtomicInt_ifloordiv(PyObject *a, PyObject *b) { return ai_inplace(a, b, PyNumber_FloorDivide); }
static PyObject *AtomicInt_imod(PyObject *a, PyObject *b) { return ai_inplace(a, b, PyNumber_Remainder); }
static PyObject *AtomicInt_ior(PyObject *a, PyObject *b) { return ai_inplace(a, b, PyNumber_Or); }
static PyObject *AtomicInt_iand(PyObject *a, PyObject *b) { return ai_inplace(a, b, PyNumber_And); }
static PyObject *AtomicInt_ixor(PyObject *a, PyObject *b) { return ai_inplace(a, b, PyNumber_Xor); }
static PyObject *AtomicInt_ilshift(PyObject *a, PyObject *b) { return ai_inplace(a, b, PyNumber_Lshift); }
static PyObject *AtomicInt_irshift(PyObject *a, PyObject *b) { return ai_inplace(a, b, PyNumber_Rshift); }

static PyObject *
ai_pow2(PyObject *a, PyObject *b)
{
    return PyNumber_Power(a, b, Py_None);
}

static PyObject *
AtomicInt_ipow(PyObject *a, PyObject *b, PyObject *mod)
{
    PyObject *n = ai_operand(b);
    if (n == NULL) {
        return NULL;
    }
    PyObject *zero = PyLong_FromLong(0);
    if (zero == NULL) {
        Py_DECREF(n);
        return NULL;
    }
    int neg = PyObject_RichCompareBool(n, zero, Py_LT);
    Py_DECREF(zero);
    if (neg != 0) {
        if (neg > 0) {
            PyErr_SetString(PyExc_ValueError,
                            "AtomicInt **= needs a non-negative exponent (the result is an int)");
        }
        Py_DECREF(n);
        return NULL;
    }
    PyObject *r = ai_inplace_n(a, n, ai_pow2);
    Py_DECREF(n);
    return r;
}

#define FASTKW(f) (PyCFunction)(void (*)(void))(f), METH_FASTCALL | METH_KEYWORDS

static PyMethodDef AtomicInt_methods[] = {
    {"get", AtomicInt_get, METH_NOARGS, "get($self, /)\n--\n\nThe current value."},
    {"set", FASTKW(AtomicInt_set), "set($self, /, value)\n--\n\nReplace the value."},
    {"increment", FASTKW(AtomicInt_increment),
     "increment($self, /, delta=1)\n--\n\nAdd ``delta`` (default 1) and return the new value."},
    {"decrement", FASTKW(AtomicInt_decrement),
     "decrement($self, /, delta=1)\n--\n\nSubtract ``delta`` (default 1) and return the new value."},
    {"add_and_get", FASTKW(AtomicInt_add_and_get), "add_and_get($self, /, delta)\n--\n\nAdd ``delta`` and return the new value."},
    {"get_and_add", FASTKW(AtomicInt_get_and_add),
     "get_and_add($self, /, delta)\n--\n\nAdd ``delta`` and return the previous value."},
    {"get_and_set", FASTKW(AtomicInt_get_and_set),
     "get_and_set($self, /, value)\n--\n\nReplace the value and return the previous one."},
    {"compare_and_set", FASTKW(AtomicInt_compare_and_set),
     "compare_and_set($self, /, expected, new)\n--\n\nSet the value to ``new`` if it equals ``expected``; return whether it did."},
    {"update", FASTKW(AtomicInt_update),
     "update($self, /, fn)\n--\n\nAtomically replace the value ``v`` by ``fn(v)``; return the new value.\n\n"
     "``fn`` runs outside the lock and is retried if another thread changed\n"
     "the value meanwhile: it may be called more than once and must have no\n"
     "side effects. If ``fn`` raises, or returns a non-int (``TypeError``),\n"
     "the value is unchanged."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef AtomicInt_getset[] = {
    {"_value", AtomicInt_value_getter, NULL, "The current value (read-only).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot AtomicInt_slots[] = {
    {Py_tp_doc, "_AtomicIntCore(value=0)\n--\n\n"
                "Native core of AtomicInt: a 64-bit atomic word, exact Python ints beyond it."},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_init, AtomicInt_init},
    {Py_tp_dealloc, AtomicInt_dealloc},
    {Py_tp_methods, AtomicInt_methods},
    {Py_tp_getset, AtomicInt_getset},
    {Py_nb_inplace_add, AtomicInt_iadd},
    {Py_nb_inplace_subtract, AtomicInt_isub},
    {Py_nb_inplace_multiply, AtomicInt_imul},
    {Py_nb_inplace_floor_divide, AtomicInt_ifloordiv},
    {Py_nb_inplace_remainder, AtomicInt_imod},
    {Py_nb_inplace_or, AtomicInt_ior},
    {Py_nb_inplace_and, AtomicInt_iand},
    {Py_nb_inplace_xor, AtomicInt_ixor},
    {Py_nb_inplace_lshift, AtomicInt_ilshift},
    {Py_nb_inplace_rshift, AtomicInt_irshift},
    {Py_nb_inplace_power, AtomicInt_ipow},
    {0, NULL},
};

static PyType_Spec AtomicInt_spec = {
    .name = "conctools._native._AtomicIntCore",
    .basicsize = sizeof(AtomicIntObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .slots = AtomicInt_slots,
};

/* ======================================================================
 * _AtomicBoolCore
 * ==================================================================== */

typedef struct {
    PyObject_HEAD
    int word; /* 0 or 1 */
} AtomicBoolObject;

static int
ab_arg(PyObject *v, const char *what, int *out)
{
    if (PyBool_Check(v)) {
        *out = (v == Py_True);
        return 0;
    }
    ct_type_error(what, "a bool", v);
    return -1;
}

static PyObject *
ab_obj(int b)
{
    return Py_NewRef(b ? Py_True : Py_False);
}

static int
AtomicBool_init(PyObject *op, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"value", NULL};
    PyObject *value = Py_False;
    int b;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:__init__", kwlist, &value)) {
        return -1;
    }
    if (ab_arg(value, "value", &b) < 0) {
        return -1;
    }
    (void)CT_ATOMIC_EXCHANGE(&((AtomicBoolObject *)op)->word, b);
    return 0;
}

static void
AtomicBool_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyObject *
AtomicBool_get(PyObject *op, PyObject *Py_UNUSED(ignored))
{
    return ab_obj(CT_ATOMIC_LOAD(&((AtomicBoolObject *)op)->word));
}

static PyObject *
AtomicBool_value_getter(PyObject *op, void *Py_UNUSED(closure))
{
    return ab_obj(CT_ATOMIC_LOAD(&((AtomicBoolObject *)op)->word));
}

static int
ab_one(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
       int *out)
{
    if (nargs == 1 && kwnames == NULL && PyBool_Check(args[0])) {
        *out = (args[0] == Py_True);
        return 0;
    }
    PyObject *a[1] = {NULL};
    if (ct_parse(fname, args, nargs, kwnames, NAMES_VALUE, 1, 1, a) < 0) {
        return -1;
    }
    return ab_arg(a[0], "value", out);
}

static PyObject *
AtomicBool_set(PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    int b;
    if (ab_one("_AtomicBoolCore.set", args, nargs, kwnames, &b) < 0) {
        return NULL;
    }
    (void)CT_ATOMIC_EXCHANGE(&((AtomicBoolObject *)op)->word, b);
    Py_RETURN_NONE;
}

static PyObject *
AtomicBool_get_and_set(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                       PyObject *kwnames)
{
    int b;
    if (ab_one("_AtomicBoolCore.get_and_set", args, nargs, kwnames, &b) < 0) {
        return NULL;
    }
    return ab_obj(CT_ATOMIC_EXCHANGE(&((AtomicBoolObject *)op)->word, b));
}

static PyObject *
AtomicBool_compare_and_set(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kwnames)
{
    int e, n;
    if (nargs == 2 && kwnames == NULL && PyBool_Check(args[0]) && PyBool_Check(args[1])) {
        e = (args[0] == Py_True);
        n = (args[1] == Py_True);
    }
    else {
        PyObject *a[2] = {NULL, NULL};
        if (ct_parse("_AtomicBoolCore.compare_and_set", args, nargs, kwnames, NAMES_EXP_NEW, 2,
                     2, a) < 0
            || ab_arg(a[0], "expected", &e) < 0 || ab_arg(a[1], "new", &n) < 0) {
            return NULL;
        }
    }
    return PyBool_FromLong(CT_ATOMIC_CAS(&((AtomicBoolObject *)op)->word, &e, n));
}

static PyObject *
AtomicBool_toggle(PyObject *op, PyObject *Py_UNUSED(ignored))
{
    AtomicBoolObject *self = (AtomicBoolObject *)op;
    int w = CT_ATOMIC_LOAD(&self->word);
    while (!CT_ATOMIC_CAS(&self->word, &w, !w)) {
    }
    return ab_obj(!w);
}

static PyMethodDef AtomicBool_methods[] = {
    {"get", AtomicBool_get, METH_NOARGS, "get($self, /)\n--\n\nThe current value."},
    {"set", FASTKW(AtomicBool_set), "set($self, /, value)\n--\n\nReplace the value."},
    {"get_and_set", FASTKW(AtomicBool_get_and_set),
     "get_and_set($self, /, value)\n--\n\nReplace the value and return the previous one."},
    {"compare_and_set", FASTKW(AtomicBool_compare_and_set),
     "compare_and_set($self, /, expected, new)\n--\n\nSet the value to ``new`` if it is ``expected``; return whether it did."},
    {"toggle", AtomicBool_toggle, METH_NOARGS, "toggle($self, /)\n--\n\nFlip the value and return the *new* value."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef AtomicBool_getset[] = {
    {"_value", AtomicBool_value_getter, NULL, "The current value (read-only).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot AtomicBool_slots[] = {
    {Py_tp_doc, "_AtomicBoolCore(value=False)\n--\n\nNative core of AtomicBool: one atomic word."},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_init, AtomicBool_init},
    {Py_tp_dealloc, AtomicBool_dealloc},
    {Py_tp_methods, AtomicBool_methods},
    {Py_tp_getset, AtomicBool_getset},
    {0, NULL},
};

static PyType_Spec AtomicBool_spec = {
    .name = "conctools._native._AtomicBoolCore",
    .basicsize = sizeof(AtomicBoolObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .slots = AtomicBool_slots,
};

/* ======================================================================
 * _AtomicFloatCore: the bits of a double in one atomic word
 * ==================================================================== */

typedef struct {
    PyObject_HEAD
    int64_t bits;
} AtomicFloatObject;

static inline double
af_d(int64_t bits)
{
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

static inline int64_t
af_bits(double d)
{
    int64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

/* float, int (not bool) and their subclasses -> a double, as float(v). */
static int
af_arg(PyObject *v, const char *what, double *out)
{
    if (PyFloat_CheckExact(v)) {
        *out = PyFloat_AS_DOUBLE(v);
        return 0;
    }
    if (PyFloat_Check(v) || (PyLong_Check(v) && !PyBool_Check(v))) {
        PyObject *f = PyNumber_Float(v);
        if (f == NULL) {
            return -1;
        }
        *out = PyFloat_AS_DOUBLE(f);
        Py_DECREF(f);
        return 0;
    }
    ct_type_error(what, "a float or an int", v);
    return -1;
}

/* Bit-for-bit equality as the pure code's _same_float: -0.0 differs from
 * 0.0, any NaN matches any NaN. */
static inline int
af_same(double a, double b)
{
    if (a == b) {
        return a != 0.0 || signbit(a) == signbit(b);
    }
    return isnan(a) && isnan(b);
}

static int
AtomicFloat_init(PyObject *op, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"value", NULL};
    PyObject *value = NULL;
    double d = 0.0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:__init__", kwlist, &value)) {
        return -1;
    }
    if (value != NULL && af_arg(value, "value", &d) < 0) {
        return -1;
    }
    (void)CT_ATOMIC_EXCHANGE(&((AtomicFloatObject *)op)->bits, af_bits(d));
    return 0;
}

static PyObject *
AtomicFloat_get(PyObject *op, PyObject *Py_UNUSED(ignored))
{
    return PyFloat_FromDouble(af_d(CT_ATOMIC_LOAD(&((AtomicFloatObject *)op)->bits)));
}

static PyObject *
AtomicFloat_value_getter(PyObject *op, void *Py_UNUSED(closure))
{
    return PyFloat_FromDouble(af_d(CT_ATOMIC_LOAD(&((AtomicFloatObject *)op)->bits)));
}

static int
af_one(const char *fname, const char *const *names, const char *what, PyObject *const *args,
       Py_ssize_t nargs, PyObject *kwnames, double *out)
{
    if (nargs == 1 && kwnames == NULL && PyFloat_CheckExact(args[0])) {
        *out = PyFloat_AS_DOUBLE(args[0]);
        return 0;
    }
    PyObject *a[1] = {NULL};
    if (ct_parse(fname, args, nargs, kwnames, names, 1, 1, a) < 0) {
        return -1;
    }
    return af_arg(a[0], what, out);
}

static PyObject *
AtomicFloat_set(PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    double d;
    if (af_one("_AtomicFloatCore.set", NAMES_VALUE, "value", args, nargs, kwnames, &d) < 0) {
        return NULL;
    }
    (void)CT_ATOMIC_EXCHANGE(&((AtomicFloatObject *)op)->bits, af_bits(d));
    Py_RETURN_NONE;
}

static PyObject *
AtomicFloat_get_and_set(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                        PyObject *kwnames)
{
    double d;
    if (af_one("_AtomicFloatCore.get_and_set", NAMES_VALUE, "value", args, nargs, kwnames, &d)
        < 0) {
        return NULL;
    }
    return PyFloat_FromDouble(
        af_d(CT_ATOMIC_EXCHANGE(&((AtomicFloatObject *)op)->bits, af_bits(d))));
}

static PyObject *
af_add(PyObject *op, const char *fname, PyObject *const *args, Py_ssize_t nargs,
       PyObject *kwnames, int want_new)
{
    AtomicFloatObject *self = (AtomicFloatObject *)op;
    double d;
    if (af_one(fname, NAMES_DELTA, "delta", args, nargs, kwnames, &d) < 0) {
        return NULL;
    }
    int64_t w = CT_ATOMIC_LOAD(&self->bits);
    double r;
    do {
        r = af_d(w) + d;
    } while (!CT_ATOMIC_CAS(&self->bits, &w, af_bits(r)));
    return PyFloat_FromDouble(want_new ? r : af_d(w));
}

static PyObject *
AtomicFloat_add(PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return af_add(op, "_AtomicFloatCore.add", args, nargs, kwnames, 1);
}

static PyObject *
AtomicFloat_get_and_add(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                        PyObject *kwnames)
{
    return af_add(op, "_AtomicFloatCore.get_and_add", args, nargs, kwnames, 0);
}

static PyObject *
AtomicFloat_compare_and_set(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                            PyObject *kwnames)
{
    AtomicFloatObject *self = (AtomicFloatObject *)op;
    double e, n;
    PyObject *a[2] = {NULL, NULL};
    if (ct_parse("_AtomicFloatCore.compare_and_set", args, nargs, kwnames, NAMES_EXP_NEW, 2, 2,
                 a) < 0
        || af_arg(a[0], "expected", &e) < 0 || af_arg(a[1], "new", &n) < 0) {
        return NULL;
    }
    int64_t w = CT_ATOMIC_LOAD(&self->bits);
    for (;;) {
        if (!af_same(af_d(w), e)) {
            Py_RETURN_FALSE;
        }
        if (CT_ATOMIC_CAS(&self->bits, &w, af_bits(n))) {
            Py_RETURN_TRUE;
        }
    }
}

static PyObject *
AtomicFloat_update(PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    AtomicFloatObject *self = (AtomicFloatObject *)op;
    PyObject *a[1] = {NULL};
    if (ct_parse("_AtomicFloatCore.update", args, nargs, kwnames, NAMES_FN, 1, 1, a) < 0) {
        return NULL;
    }
    for (;;) {
        int64_t w = CT_ATOMIC_LOAD(&self->bits);
        PyObject *cur = PyFloat_FromDouble(af_d(w));
        if (cur == NULL) {
            return NULL;
        }
        PyObject *res = PyObject_CallOneArg(a[0], cur); /* no lock held */
        Py_DECREF(cur);
        if (res == NULL) {
            return NULL;
        }
        double n;
        int bad = af_arg(res, "update function result", &n);
        Py_DECREF(res);
        if (bad < 0) {
            return NULL;
        }
        if (CT_ATOMIC_CAS(&self->bits, &w, af_bits(n))) {
            return PyFloat_FromDouble(n);
        }
    }
}

static PyMethodDef AtomicFloat_methods[] = {
    {"get", AtomicFloat_get, METH_NOARGS, "get($self, /)\n--\n\nThe current value."},
    {"set", FASTKW(AtomicFloat_set), "set($self, /, value)\n--\n\nReplace the value."},
    {"add", FASTKW(AtomicFloat_add), "add($self, /, delta)\n--\n\nAdd ``delta`` and return the new value."},
    {"get_and_add", FASTKW(AtomicFloat_get_and_add),
     "get_and_add($self, /, delta)\n--\n\nAdd ``delta`` and return the previous value."},
    {"get_and_set", FASTKW(AtomicFloat_get_and_set),
     "get_and_set($self, /, value)\n--\n\nReplace the value and return the previous one."},
    {"compare_and_set", FASTKW(AtomicFloat_compare_and_set),
     "compare_and_set($self, /, expected, new)\n--\n\nSet the value to ``new`` if it is bit-for-bit ``expected``; return whether it did."},
    {"update", FASTKW(AtomicFloat_update),
     "update($self, /, fn)\n--\n\nAtomically replace the value ``v`` by ``fn(v)``; return the new value.\n\n"
     "``fn`` runs outside the lock and is retried if another thread changed\n"
     "the value meanwhile: it may be called more than once and must have no\n"
     "side effects. If ``fn`` raises, or returns something that is not a\n"
     "float or int (``TypeError``), the value is unchanged."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef AtomicFloat_getset[] = {
    {"_value", AtomicFloat_value_getter, NULL, "The current value (read-only).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot AtomicFloat_slots[] = {
    {Py_tp_doc, "_AtomicFloatCore(value=0.0)\n--\n\n"
                "Native core of AtomicFloat: the bits of a double in one atomic word."},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_init, AtomicFloat_init},
    {Py_tp_dealloc, AtomicBool_dealloc}, /* no references held */
    {Py_tp_methods, AtomicFloat_methods},
    {Py_tp_getset, AtomicFloat_getset},
    {0, NULL},
};

static PyType_Spec AtomicFloat_spec = {
    .name = "conctools._native._AtomicFloatCore",
    .basicsize = sizeof(AtomicFloatObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .slots = AtomicFloat_slots,
};

/* ======================================================================
 * _AtomicRefCore: a strong reference swapped under a tiny mutex
 * ==================================================================== */

typedef struct {
    PyObject_HEAD
    PyObject *value; /* strong; NULL only after tp_clear (reads as None) */
    ct_mutex mutex;  /* held only to read+incref or swap the pointer */
} AtomicRefObject;

static PyObject *
ar_load(AtomicRefObject *self)
{
    ct_lock(&self->mutex);
    PyObject *v = self->value;
    Py_XINCREF(v);
    ct_unlock(&self->mutex);
    return v != NULL ? v : Py_NewRef(Py_None);
}

/* Install v (new reference stolen); return the old value (new ref, maybe NULL). */
static PyObject *
ar_swap(AtomicRefObject *self, PyObject *v)
{
    ct_lock(&self->mutex);
    PyObject *old = self->value;
    self->value = v;
    ct_unlock(&self->mutex);
    return old;
}

/* If the value is `expected`, install `nv` (borrowed).  1 or 0; the replaced
 * reference is dropped after the mutex is released. */
static int
ar_cas(AtomicRefObject *self, PyObject *expected, PyObject *nv)
{
    PyObject *old = NULL;
    ct_lock(&self->mutex);
    PyObject *cur = self->value != NULL ? self->value : Py_None;
    int ok = cur == expected;
    if (ok) {
        old = self->value;
        self->value = Py_NewRef(nv);
    }
    ct_unlock(&self->mutex);
    Py_XDECREF(old); /* may run a finaliser: no lock held */
    return ok;
}

static int
AtomicRef_init(PyObject *op, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"value", NULL};
    PyObject *value = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:__init__", kwlist, &value)) {
        return -1;
    }
    Py_XDECREF(ar_swap((AtomicRefObject *)op, Py_NewRef(value)));
    return 0;
}

static int
AtomicRef_traverse(PyObject *op, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(((AtomicRefObject *)op)->value);
    return 0;
}

static int
AtomicRef_clear(PyObject *op)
{
    /* Called by the collector on unreachable objects (no other thread can
     * reach this one) or from dealloc: no mutex needed.  traverse runs with
     * the other threads stopped, and none holds the mutex across a call
     * into Python, so it reads the field directly too. */
    Py_CLEAR(((AtomicRefObject *)op)->value);
    return 0;
}

static void
AtomicRef_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    (void)AtomicRef_clear(op);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyObject *
AtomicRef_get(PyObject *op, PyObject *Py_UNUSED(ignored))
{
    return ar_load((AtomicRefObject *)op);
}

static PyObject *
AtomicRef_value_getter(PyObject *op, void *Py_UNUSED(closure))
{
    return ar_load((AtomicRefObject *)op);
}

static PyObject *
ar_one(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs == 1 && kwnames == NULL) {
        return args[0];
    }
    PyObject *a[1] = {NULL};
    if (ct_parse(fname, args, nargs, kwnames, NAMES_VALUE, 1, 1, a) < 0) {
        return NULL;
    }
    return a[0];
}

static PyObject *
AtomicRef_set(PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *v = ar_one("_AtomicRefCore.set", args, nargs, kwnames);
    if (v == NULL) {
        return NULL;
    }
    Py_XDECREF(ar_swap((AtomicRefObject *)op, Py_NewRef(v)));
    Py_RETURN_NONE;
}

static PyObject *
AtomicRef_get_and_set(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                      PyObject *kwnames)
{
    PyObject *v = ar_one("_AtomicRefCore.get_and_set", args, nargs, kwnames);
    if (v == NULL) {
        return NULL;
    }
    PyObject *old = ar_swap((AtomicRefObject *)op, Py_NewRef(v));
    return old != NULL ? old : Py_NewRef(Py_None);
}

static PyObject *
AtomicRef_compare_and_set(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames)
{
    PyObject *a[2] = {NULL, NULL};
    if (nargs == 2 && kwnames == NULL) {
        a[0] = args[0];
        a[1] = args[1];
    }
    else if (ct_parse("_AtomicRefCore.compare_and_set", args, nargs, kwnames, NAMES_EXP_NEW, 2,
                      2, a) < 0) {
        return NULL;
    }
    return PyBool_FromLong(ar_cas((AtomicRefObject *)op, a[0], a[1]));
}

static PyObject *
AtomicRef_update(PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    AtomicRefObject *self = (AtomicRefObject *)op;
    PyObject *a[1] = {NULL};
    if (ct_parse("_AtomicRefCore.update", args, nargs, kwnames, NAMES_FN, 1, 1, a) < 0) {
        return NULL;
    }
    for (;;) {
        PyObject *cur = ar_load(self); /* strong: `cur` stays alive, no ABA by reuse */
        PyObject *nv = PyObject_CallOneArg(a[0], cur); /* no lock held */
        if (nv == NULL) {
            Py_DECREF(cur);
            return NULL;
        }
        int ok = ar_cas(self, cur, nv);
        Py_DECREF(cur);
        if (ok) {
            return nv;
        }
        Py_DECREF(nv);
    }
}

static PyMethodDef AtomicRef_methods[] = {
    {"get", AtomicRef_get, METH_NOARGS, "get($self, /)\n--\n\nThe current value."},
    {"set", FASTKW(AtomicRef_set), "set($self, /, value)\n--\n\nReplace the value."},
    {"get_and_set", FASTKW(AtomicRef_get_and_set),
     "get_and_set($self, /, value)\n--\n\nReplace the value and return the previous one."},
    {"compare_and_set", FASTKW(AtomicRef_compare_and_set),
     "compare_and_set($self, /, expected, new)\n--\n\nSet the value to ``new`` if it *is* ``expected``; return whether it did."},
    {"update", FASTKW(AtomicRef_update),
     "update($self, /, fn)\n--\n\nAtomically replace the value ``v`` by ``fn(v)``; return the new value.\n\n"
     "``fn`` runs outside the lock and is retried if another thread replaced\n"
     "the value meanwhile: it may be called more than once and must have no\n"
     "side effects. If ``fn`` raises, the value is unchanged."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef AtomicRef_getset[] = {
    {"_value", AtomicRef_value_getter, NULL, "The current value (read-only).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot AtomicRef_slots[] = {
    {Py_tp_doc, "_AtomicRefCore(value=None)\n--\n\n"
                "Native core of AtomicRef: a strong reference swapped atomically."},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_init, AtomicRef_init},
    {Py_tp_dealloc, AtomicRef_dealloc},
    {Py_tp_traverse, AtomicRef_traverse},
    {Py_tp_clear, AtomicRef_clear},
    {Py_tp_methods, AtomicRef_methods},
    {Py_tp_getset, AtomicRef_getset},
    {0, NULL},
};

static PyType_Spec AtomicRef_spec = {
    .name = "conctools._native._AtomicRefCore",
    .basicsize = sizeof(AtomicRefObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = AtomicRef_slots,
};

/* ---- registration ------------------------------------------------------ */

static int
ct_add(PyObject *module, PyType_Spec *spec, PyTypeObject **slot)
{
    PyObject *tp = PyType_FromModuleAndSpec(module, spec, NULL);
    if (tp == NULL) {
        return -1;
    }
    if (PyModule_AddType(module, (PyTypeObject *)tp) < 0) {
        Py_DECREF(tp);
        return -1;
    }
    if (slot != NULL) {
        *slot = (PyTypeObject *)tp; /* the module keeps it alive */
    }
    Py_DECREF(tp);
    return 0;
}

int
ct_exec_atomic(PyObject *module)
{
    if (ct_add(module, &AtomicInt_spec, &AtomicInt_Type) < 0
        || ct_add(module, &AtomicBool_spec, NULL) < 0
        || ct_add(module, &AtomicFloat_spec, NULL) < 0
        || ct_add(module, &AtomicRef_spec, NULL) < 0) {
        return -1;
    }
    return 0;
}
