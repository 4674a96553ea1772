/* Native hit path of ConcurrentCache.get (see conctools_native.h).
 *
 * The pure-Python methods ConcurrentCache.get and ConcurrentCache._get_timed
 * (conctools/cache/core.py) are the specification.  _cache_install() builds
 * two method descriptors, one per class, that do the same steps in C:
 *
 *     buf = self._tls.value            (AttributeError: self._register())
 *     node = self._data[key]           (absent: buf.misses += 1, default)
 *     plain cache:  buf.hits += 1; buf.append(key);
 *                   if len(buf) > 63: self._after_record(buf)
 *                   return node.item
 *     with expiry:  item = node.item
 *                   if self._on_read: return self._get_read_hook(...)
 *                   if self._clock() < item[1]: hit as above, item[0]
 *                   else: buf.misses += 1; default
 *
 * DESIGN
 *
 * 1. No layout of our own.  The cache, its nodes and its per-thread buffers
 *    stay Python classes with __slots__; the C code reads and writes their
 *    slots through the member descriptors of those classes (PyMember_GetOne
 *    / PyMember_SetOne, which take strong references the way the
 *    interpreter's own slot access does on each build).  Before using a slot
 *    of a buffer or a node the code checks the object's type, so a value of
 *    another type (a subclass that stores something else) takes the Python
 *    method instead.  The method descriptors only accept instances of their
 *    class (CPython checks that before the call).
 *
 * 2. No lock is taken here.  The dict lookup is PyDict_GetItemRef (the
 *    lock-free read path on the free-threaded build); list.append takes the
 *    list's own per-object lock, as the Python code does.  Everything that
 *    needs the maintenance lock (draining, the read hooks, registration) is
 *    the Python method, called by name, with no C state held across it.
 *
 * 3. The clock.  When the cache's clock is time.monotonic itself, the C code
 *    reads the same clock directly (on Linux clock_gettime(CLOCK_MONOTONIC),
 *    which is what time.monotonic reads there; elsewhere PyTime_MonotonicRaw
 *    on 3.13+) and converts it to seconds the same way.  Any other clock,
 *    and time.monotonic on other systems before 3.13, is called.  A deadline that is not a float, or a clock
 *    value that is not, is compared with the ``<`` operator, as in Python.
 */
#include "conctools_native.h"

#if PY_VERSION_HEX < 0x030C0000
#  include "structmember.h"
#  define Py_T_OBJECT_EX T_OBJECT_EX
#endif

#if defined(__linux__)
#  include <time.h>
#  define CT_CACHE_LINUX_CLOCK 1
#endif

/* Everything _cache_install() resolves, once (one interpreter: module.c). */
static struct {
    int ready;
    PyTypeObject *node_type;      /* _Node */
    PyTypeObject *buffer_type;    /* _Buffer (a list subclass) */
    PyObject *monotonic;          /* time.monotonic */
    PyObject *py_get;             /* the pure-Python methods (fallback) */
    PyObject *py_get_timed;
    PyMemberDef *m_tls, *m_data, *m_on_read, *m_clock; /* cache slots */
    PyMemberDef *m_item;                              /* node slot */
    PyMemberDef *m_hits, *m_misses;                   /* buffer slots */
    PyObject *s_value, *s_register, *s_after_record, *s_get_read_hook;
    PyObject *s_key, *s_default;
    PyObject *one;
} C;

/* The method definitions must outlive the descriptors: static. */
static PyObject *cache_get(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kwnames);
static PyObject *cache_get_timed(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                 PyObject *kwnames);

#define GET_DOC                                                                          \
    "get($self, key, default=None)\n--\n\n"                                        \
    "The value for ``key``, or ``default`` if absent or expired (counts a hit or a miss)."

static PyMethodDef get_def = {
    "get", (PyCFunction)(void (*)(void))cache_get, METH_FASTCALL | METH_KEYWORDS, GET_DOC};
static PyMethodDef get_timed_def = {
    "get", (PyCFunction)(void (*)(void))cache_get_timed, METH_FASTCALL | METH_KEYWORDS,
    GET_DOC};

/* ---- argument parsing: get(key, default=None), by position or keyword ---- */

static int
parse_get_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, PyObject **key,
               PyObject **dflt)
{
    *key = NULL;
    *dflt = Py_None;
    if (nargs > 2) {
        PyErr_Format(PyExc_TypeError, "get() takes from 2 to 3 positional arguments but %zd were given",
                     nargs + 1);
        return -1;
    }
    if (nargs >= 1) {
        *key = args[0];
    }
    if (nargs == 2) {
        *dflt = args[1];
    }
    if (kwnames != NULL) {
        Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t i = 0; i < nkw; i++) {
            PyObject *name = PyTuple_GET_ITEM(kwnames, i);
            PyObject *value = args[nargs + i];
            int is_key = PyUnicode_Compare(name, C.s_key) == 0;
            int is_default = !is_key && PyUnicode_Compare(name, C.s_default) == 0;
            if (PyErr_Occurred()) {
                return -1;
            }
            if (is_key) {
                if (nargs >= 1) {
                    PyErr_SetString(PyExc_TypeError, "get() got multiple values for argument 'key'");
                    return -1;
                }
                *key = value;
            }
            else if (is_default) {
                if (nargs >= 2) {
                    PyErr_SetString(PyExc_TypeError,
                                    "get() got multiple values for argument 'default'");
                    return -1;
                }
                *dflt = value;
            }
            else {
                PyErr_Format(PyExc_TypeError, "get() got an unexpected keyword argument '%U'", name);
                return -1;
            }
        }
    }
    if (*key == NULL) {
        PyErr_SetString(PyExc_TypeError, "get() missing 1 required positional argument: 'key'");
        return -1;
    }
    return 0;
}

/* The pure-Python method, for what the C path does not handle. */
static PyObject *
fallback(PyObject *func, PyObject *self, PyObject *key, PyObject *dflt)
{
    return PyObject_CallFunctionObjArgs(func, self, key, dflt, NULL);
}

/* ---- the steps --------------------------------------------------------- */

/* self._tls.value, or self._register() on the first access of a thread.
 * New reference, or NULL with an exception set. */
static PyObject *
thread_buffer(PyObject *self)
{
    PyObject *tls = PyMember_GetOne((const char *)self, C.m_tls);
    if (tls == NULL) {
        return NULL;
    }
    PyObject *buf = PyObject_GetAttr(tls, C.s_value);
    Py_DECREF(tls);
    if (buf == NULL && PyErr_ExceptionMatches(PyExc_AttributeError)) {
        PyErr_Clear();
        buf = PyObject_CallMethodNoArgs(self, C.s_register);
    }
    return buf;
}

/* buf.hits += 1 (or misses): only the owning thread writes its buffer. */
static int
bump(PyObject *buf, PyMemberDef *m)
{
    PyObject *v = PyMember_GetOne((const char *)buf, m);
    if (v == NULL) {
        return -1;
    }
    PyObject *nv = PyNumber_Add(v, C.one);
    Py_DECREF(v);
    if (nv == NULL) {
        return -1;
    }
    int r = PyMember_SetOne((char *)buf, m, nv);
    Py_DECREF(nv);
    return r;
}

/* A hit: count it, record the key, drain a long buffer.  0 or -1. */
static int
record_hit(PyObject *self, PyObject *buf, PyObject *key)
{
    if (bump(buf, C.m_hits) < 0 || PyList_Append(buf, key) < 0) {
        return -1;
    }
    if (PyList_GET_SIZE(buf) > 63) { /* _DRAIN_AT - 1 */
        PyObject *r = PyObject_CallMethodOneArg(self, C.s_after_record, buf);
        if (r == NULL) {
            return -1;
        }
        Py_DECREF(r);
    }
    return 0;
}

static PyObject *
miss(PyObject *buf, PyObject *dflt)
{
    if (bump(buf, C.m_misses) < 0) {
        return NULL;
    }
    return Py_NewRef(dflt);
}

/* self._data[key]: 1 found (*node set, of type _Node), 0 absent, -1 error,
 * 2 found but not a _Node (*node set; the caller falls back). */
static int
lookup(PyObject *self, PyObject *key, PyObject **node)
{
    PyObject *data = PyMember_GetOne((const char *)self, C.m_data);
    if (data == NULL) {
        return -1;
    }
    int r;
    if (PyDict_Check(data)) {
        r = ct_dict_get_ref(data, key, node);
    }
    else {
        *node = NULL;
        Py_DECREF(data);
        return 2;
    }
    Py_DECREF(data);
    if (r == 1 && !PyObject_TypeCheck(*node, C.node_type)) {
        return 2;
    }
    return r;
}

static PyObject *
cache_get(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *key, *dflt;
    if (parse_get_args(args, nargs, kwnames, &key, &dflt) < 0) {
        return NULL;
    }
    PyObject *buf = thread_buffer(self);
    if (buf == NULL) {
        return NULL;
    }
    if (!PyObject_TypeCheck(buf, C.buffer_type)) {
        Py_DECREF(buf);
        return fallback(C.py_get, self, key, dflt);
    }
    PyObject *node;
    int r = lookup(self, key, &node);
    PyObject *result = NULL;
    if (r == 0) {
        result = miss(buf, dflt);
    }
    else if (r == 1) {
        if (record_hit(self, buf, key) == 0) {
            result = PyMember_GetOne((const char *)node, C.m_item);
        }
        Py_DECREF(node);
    }
    else if (r == 2) {
        Py_XDECREF(node);
        Py_DECREF(buf);
        return fallback(C.py_get, self, key, dflt);
    }
    Py_DECREF(buf);
    return result;
}

/* The monotonic clock in seconds, as time.monotonic() computes it.  0 or -1. */
#if PY_VERSION_HEX >= 0x030D0000 || defined(CT_CACHE_LINUX_CLOCK)
#  define CT_CACHE_FAST_CLOCK 1
static int
monotonic_seconds(double *out)
{
#  if PY_VERSION_HEX >= 0x030D0000 && !defined(CT_CACHE_LINUX_CLOCK)
    PyTime_t t;
    if (PyTime_MonotonicRaw(&t) < 0) {
        /* (only on a broken clock; the Python call reports it properly) */
        return -1;
    }
    *out = PyTime_AsSecondsDouble(t);
#  else
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        return -1;
    }
    int64_t ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    if (ns % 1000000000 == 0) {
        *out = (double)(ns / 1000000000);
    }
    else {
        *out = (double)ns / 1e9;
    }
#  endif
    return 0;
}
#endif

/* self._clock() < deadline: 1, 0, or -1 on error. */
static int
before_deadline(PyObject *self, PyObject *deadline)
{
    PyObject *clock = PyMember_GetOne((const char *)self, C.m_clock);
    if (clock == NULL) {
        return -1;
    }
#ifdef CT_CACHE_FAST_CLOCK
    if (clock == C.monotonic && PyFloat_CheckExact(deadline)) {
        double now;
        Py_DECREF(clock);
        if (monotonic_seconds(&now) == 0) {
            return now < PyFloat_AS_DOUBLE(deadline);
        }
        clock = Py_NewRef(C.monotonic);
    }
#endif
    PyObject *now = PyObject_CallNoArgs(clock);
    Py_DECREF(clock);
    if (now == NULL) {
        return -1;
    }
    int r = PyObject_RichCompareBool(now, deadline, Py_LT);
    Py_DECREF(now);
    return r;
}

static PyObject *
cache_get_timed(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *key, *dflt;
    if (parse_get_args(args, nargs, kwnames, &key, &dflt) < 0) {
        return NULL;
    }
    PyObject *buf = thread_buffer(self);
    if (buf == NULL) {
        return NULL;
    }
    if (!PyObject_TypeCheck(buf, C.buffer_type)) {
        Py_DECREF(buf);
        return fallback(C.py_get_timed, self, key, dflt);
    }
    PyObject *node;
    int r = lookup(self, key, &node);
    if (r == 2) {
        Py_XDECREF(node);
        Py_DECREF(buf);
        return fallback(C.py_get_timed, self, key, dflt);
    }
    if (r <= 0) {
        PyObject *result = r == 0 ? miss(buf, dflt) : NULL;
        Py_DECREF(buf);
        return result;
    }
    PyObject *result = NULL;
    PyObject *item = PyMember_GetOne((const char *)node, C.m_item);
    if (item == NULL) {
        goto done;
    }
    PyObject *on_read = PyMember_GetOne((const char *)self, C.m_on_read);
    if (on_read == NULL) {
        goto done;
    }
    int hook = on_read == Py_True ? 1 : on_read == Py_False ? 0 : PyObject_IsTrue(on_read);
    Py_DECREF(on_read);
    if (hook < 0) {
        goto done;
    }
    if (hook) { /* expire_after_access or an expiry policy: the Python path */
        PyObject *call_args[] = {NULL, self, buf, key, node, item, dflt};
        result = PyObject_VectorcallMethod(C.s_get_read_hook, call_args + 1,
                                           6 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        goto done;
    }
    if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2) {
        /* (never made by the cache; the Python method says what is wrong) */
        result = fallback(C.py_get_timed, self, key, dflt);
        goto done;
    }
    int live = before_deadline(self, PyTuple_GET_ITEM(item, 1));
    if (live < 0) {
        goto done;
    }
    if (!live) {
        result = miss(buf, dflt);
        goto done;
    }
    if (record_hit(self, buf, key) == 0) {
        result = Py_NewRef(PyTuple_GET_ITEM(item, 0));
    }
done:
    Py_XDECREF(item);
    Py_DECREF(node);
    Py_DECREF(buf);
    return result;
}

/* ---- installation ------------------------------------------------------ */

/* The PyMemberDef of ``cls.__dict__[name]``: a slot holding an object. */
static PyMemberDef *
slot_member(PyObject *cls, const char *name)
{
    PyObject *descr = PyObject_GetAttrString(cls, name);
    if (descr == NULL) {
        return NULL;
    }
    PyMemberDef *m = NULL;
    if (Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
        m = ((PyMemberDescrObject *)descr)->d_member;
        if (m->type != Py_T_OBJECT_EX || ((PyMemberDescrObject *)descr)->d_common.d_type
                                             != (PyTypeObject *)cls) {
            m = NULL;
        }
    }
    if (m == NULL) {
        PyErr_Format(PyExc_TypeError, "%R.%s is not a slot of that class", cls, name);
    }
    Py_DECREF(descr);
    return m;
}

#define INSTALL_DOC                                                                      \
    "_cache_install(cache_cls, timed_cls, node_cls, buffer_cls, monotonic, py_get, "      \
    "py_get_timed)\n--\n\n"                                                                \
    "The native get methods of cache_cls and timed_cls, as (get, get_timed) method "      \
    "descriptors.  Called once, by conctools.cache.core."

static PyObject *
cache_install(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "_cache_install() takes 7 arguments");
        return NULL;
    }
    for (int i = 0; i < 4; i++) {
        if (!PyType_Check(args[i])) {
            PyErr_SetString(PyExc_TypeError, "_cache_install(): the first four arguments are classes");
            return NULL;
        }
    }
    PyObject *cache_cls = args[0], *timed_cls = args[1], *node_cls = args[2],
             *buffer_cls = args[3];
    if (!PyType_IsSubtype((PyTypeObject *)timed_cls, (PyTypeObject *)cache_cls)
        || !PyType_IsSubtype((PyTypeObject *)buffer_cls, &PyList_Type)) {
        PyErr_SetString(PyExc_TypeError, "_cache_install(): unexpected classes");
        return NULL;
    }
    if (C.ready) {
        PyErr_SetString(PyExc_RuntimeError, "_cache_install() was already called");
        return NULL;
    }
    PyMemberDef *m_tls = slot_member(cache_cls, "_tls");
    PyMemberDef *m_data = m_tls ? slot_member(cache_cls, "_data") : NULL;
    PyMemberDef *m_on_read = m_data ? slot_member(cache_cls, "_on_read") : NULL;
    PyMemberDef *m_clock = m_on_read ? slot_member(cache_cls, "_clock") : NULL;
    PyMemberDef *m_item = m_clock ? slot_member(node_cls, "item") : NULL;
    PyMemberDef *m_hits = m_item ? slot_member(buffer_cls, "hits") : NULL;
    PyMemberDef *m_misses = m_hits ? slot_member(buffer_cls, "misses") : NULL;
    if (m_misses == NULL) {
        return NULL;
    }
#define INTERN(field, text)                                                              \
    if ((C.field = PyUnicode_InternFromString(text)) == NULL) {                          \
        return NULL;                                                                     \
    }
    INTERN(s_value, "value");
    INTERN(s_register, "_register");
    INTERN(s_after_record, "_after_record");
    INTERN(s_get_read_hook, "_get_read_hook");
    INTERN(s_key, "key");
    INTERN(s_default, "default");
#undef INTERN
    if (C.one == NULL && (C.one = PyLong_FromLong(1)) == NULL) {
        return NULL;
    }
    PyObject *get = PyDescr_NewMethod((PyTypeObject *)cache_cls, &get_def);
    if (get == NULL) {
        return NULL;
    }
    PyObject *get_timed = PyDescr_NewMethod((PyTypeObject *)timed_cls, &get_timed_def);
    if (get_timed == NULL) {
        Py_DECREF(get);
        return NULL;
    }
    PyObject *pair = PyTuple_Pack(2, get, get_timed);
    Py_DECREF(get);
    Py_DECREF(get_timed);
    if (pair == NULL) {
        return NULL;
    }
    /* Kept for the life of the process (the classes own the member defs). */
    C.node_type = (PyTypeObject *)Py_NewRef(node_cls);
    C.buffer_type = (PyTypeObject *)Py_NewRef(buffer_cls);
    Py_INCREF(cache_cls);
    C.monotonic = Py_NewRef(args[4]);
    C.py_get = Py_NewRef(args[5]);
    C.py_get_timed = Py_NewRef(args[6]);
    C.m_tls = m_tls;
    C.m_data = m_data;
    C.m_on_read = m_on_read;
    C.m_clock = m_clock;
    C.m_item = m_item;
    C.m_hits = m_hits;
    C.m_misses = m_misses;
    C.ready = 1;
    return pair;
}

static PyMethodDef cache_functions[] = {
    {"_cache_install", (PyCFunction)(void (*)(void))cache_install, METH_FASTCALL, INSTALL_DOC},
    {NULL, NULL, 0, NULL},
};

int
ct_exec_cache(PyObject *module)
{
    return PyModule_AddFunctions(module, cache_functions);
}
