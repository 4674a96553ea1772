"""Atomic variables: ``AtomicInt``, ``AtomicBool``, ``AtomicFloat`` and ``AtomicRef``.

Each public class derives from a *core* holding its hot methods: the C
accelerator's (``conctools._native``: a compare-and-swap on a machine word,
or a strong reference swapped under a tiny mutex for ``AtomicRef``) when it
is built and not disabled with ``CONCTOOLS_PURE_PYTHON=1``, otherwise the
pure-Python core below. The pure-Python cores are the reference: pure Python
has no compare-and-swap instruction, so each atomic holds a small
``threading.Lock`` held only for the few bytecodes of a read-modify-write,
always as ``with lock:`` (an exception delivered by a signal handler cannot
leave it held). In both, user functions passed to ``update`` run *outside*
any lock (optimistic retry), so a slow or re-entrant function never blocks
other threads. The C cores keep every documented behaviour, including the
bad-input errors and their messages (``tests/test_native_atomic.py`` holds
the two to the same results).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._internal.native import native_attr

__all__ = ["AtomicBool", "AtomicFloat", "AtomicInt", "AtomicRef"]

T = TypeVar("T")
_S = TypeVar("_S", bound="_AtomicIntCore")

# Module-level aliases: on the free-threaded 3.13 build (no specialising
# interpreter) a module global is found one dict lookup sooner than a builtin.
_type = type
_int = int
_float = float


def _check_int(value: object, what: str = "value") -> int:
    """Slow path of the int check: accept int subclasses except bool."""
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    raise TypeError(f"{what} must be an int, not {type(value).__name__}")


def _operand(value: object) -> int:
    """Right operand of an in-place operator: an int (not bool) or an AtomicInt."""
    if isinstance(value, AtomicInt):
        return value._value
    return _check_int(value, "operand")


class _AtomicIntCore:
    """The pure-Python core of :class:`AtomicInt`: its hot methods, the reference semantics.

    The C accelerator's ``_AtomicIntCore`` implements the same methods with the
    same behaviour and messages; :class:`AtomicInt` derives from whichever is active.
    """

    __slots__ = ("_lock", "_value")

    def __init__(self, value: int = 0) -> None:
        if _type(value) is not _int:
            value = _check_int(value)
        self._value = value
        self._lock = threading.Lock()

    def get(self) -> int:
        """The current value."""
        return self._value

    def set(self, value: int) -> None:
        """Replace the value."""
        if _type(value) is not _int:
            value = _check_int(value)
        with self._lock:
            self._value = value

    def increment(self, delta: int = 1) -> int:
        """Add ``delta`` (default 1) and return the new value."""
        if _type(delta) is not _int:
            delta = _check_int(delta, "delta")
        with self._lock:
            self._value = v = self._value + delta
        return v

    def decrement(self, delta: int = 1) -> int:
        """Subtract ``delta`` (default 1) and return the new value."""
        if _type(delta) is not _int:
            delta = _check_int(delta, "delta")
        with self._lock:
            self._value = v = self._value - delta
        return v

    def add_and_get(self, delta: int) -> int:
        """Add ``delta`` and return the new value."""
        if _type(delta) is not _int:
            delta = _check_int(delta, "delta")
        with self._lock:
            self._value = v = self._value + delta
        return v

    def get_and_add(self, delta: int) -> int:
        """Add ``delta`` and return the previous value."""
        if _type(delta) is not _int:
            delta = _check_int(delta, "delta")
        with self._lock:
            old = self._value
            self._value = old + delta
        return old

    def get_and_set(self, value: int) -> int:
        """Replace the value and return the previous one."""
        if _type(value) is not _int:
            value = _check_int(value)
        with self._lock:
            old = self._value
            self._value = value
        return old

    def compare_and_set(self, expected: int, new: int) -> bool:
        """Set the value to ``new`` if it equals ``expected``; return whether it did."""
        if _type(expected) is not _int:
            expected = _check_int(expected, "expected")
        if _type(new) is not _int:
            new = _check_int(new, "new")
        with self._lock:
            if self._value != expected:
                return False
            self._value = new
        return True

    def update(self, fn: Callable[[int], int]) -> int:
        """Atomically replace the value ``v`` by ``fn(v)``; return the new value.

        ``fn`` runs outside the lock and is retried if another thread changed
        the value meanwhile: it may be called more than once and must have no
        side effects. If ``fn`` raises, or returns a non-int (``TypeError``),
        the value is unchanged.
        """
        while True:
            cur = self._value
            new = fn(cur)
            if _type(new) is not _int:
                new = _check_int(new, "update function result")
            with self._lock:
                if self._value == cur:
                    self._value = new
                    return new

    # -- in-place operators: atomic updates of this object ----------------------

    def __iadd__(self: _S, other: object) -> _S:
        n = _operand(other)
        with self._lock:
            self._value = self._value + n
        return self

    def __isub__(self: _S, other: object) -> _S:
        n = _operand(other)
        with self._lock:
            self._value = self._value - n
        return self

    def __imul__(self: _S, other: object) -> _S:
        n = _operand(other)
        with self._lock:
            self._value = self._value * n
        return self

    def __ifloordiv__(self: _S, other: object) -> _S:
        n = _operand(other)
        with self._lock:
            self._value = self._value // n
        return self

    def __imod__(self: _S, other: object) -> _S:
        n = _operand(other)
        with self._lock:
            self._value = self._value % n
        return self

    def __ior__(self: _S, other: object) -> _S:
        n = _operand(other)
        with self._lock:
            self._value = self._value | n
        return self

    def __iand__(self: _S, other: object) -> _S:
        n = _operand(other)
        with self._lock:
            self._value = self._value & n
        return self

    def __ixor__(self: _S, other: object) -> _S:
        n = _operand(other)
        with self._lock:
            self._value = self._value ^ n
        return self

    def __ilshift__(self: _S, other: object) -> _S:
        n = _operand(other)
        with self._lock:
            self._value = self._value << n
        return self

    def __irshift__(self: _S, other: object) -> _S:
        n = _operand(other)
        with self._lock:
            self._value = self._value >> n
        return self

    def __ipow__(self: _S, other: object) -> _S:
        n = _operand(other)
        if n < 0:
            raise ValueError("AtomicInt **= needs a non-negative exponent (the result is an int)")
        with self._lock:
            self._value = self._value**n
        return self


_PyAtomicIntCore = _AtomicIntCore
if TYPE_CHECKING:
    _IntBase = _PyAtomicIntCore
else:
    _IntBase = native_attr("_AtomicIntCore") or _PyAtomicIntCore


class AtomicInt(_IntBase):
    """An int that threads update atomically, like Java's ``AtomicLong``.

    Values are Python ints (unbounded: no overflow). Every value and delta must
    be an ``int``; ``bool`` is rejected with ``TypeError`` (``AtomicInt(True)``
    is almost always a bug), as are floats, ``Decimal`` and strings. Instances
    of ``int`` subclasses (``IntEnum`` members...) are accepted and stored as
    plain ``int``. A rejected call changes nothing.

    It behaves like an ``int`` where that is safe: ``int(a)``, ``operator.index(a)``
    (so ``range(a)``, ``lst[a]``), ``bool(a)``, ``format(a, "05d")``, ``==``
    and ordering against ints and other ``AtomicInt`` (compared by value),
    binary arithmetic (``a + 1`` returns a plain ``int`` computed from one read
    of the value). It is mutable, so it is unhashable (``__hash__`` is
    ``None``). In-place operators ``+= -= *= //= %= **= |= &= ^= <<= >>=``
    are atomic updates of this object (they return it, so the name stays bound
    to the atomic); their right operand must be an int or an ``AtomicInt``
    (``**=`` a non-negative one); ``/=`` raises ``TypeError`` (the result
    would not be an int).
    ``copy.copy``, ``copy.deepcopy`` and pickling give a new, independent
    ``AtomicInt`` with the current value. Subclasses may add attributes.

    **Thread safety.** All methods may be called from any number of threads
    at once. Every operation is linearizable: it takes effect at a single
    instant between its call and its return.

    **Atomic operations.** ``get``, ``set``, ``increment``, ``decrement``,
    ``add_and_get``, ``get_and_add``, ``get_and_set``, ``compare_and_set`` and
    the in-place operators are each atomic. ``compare_and_set(expected,
    new)`` compares by value (``==``). ``update(fn)`` is atomic too, but
    optimistic: it reads the value ``v``, calls ``fn(v)`` *without holding any
    lock*, and installs the result only if the value is still ``v``;
    otherwise it retries, so **fn may be called more than once** under
    contention and must be free of side effects (as in Java's
    ``updateAndGet``). ``fn`` is never called while a lock is held.
    Comparisons, arithmetic and conversions read the value once. An
    exception raised by a signal handler inside any call (``KeyboardInterrupt``)
    leaves the update either fully applied or not applied, and the lock free.

    **Iteration.** Not iterable. ``int(a)`` is ``a.get()``.

    **Blocking and timeouts.** No call blocks for longer than another
    thread's few-bytecode critical section; there is nothing to time out.
    ``update`` may loop while other threads keep changing the value.

    **Complexity.** Every operation is O(1) (plus the cost of ``fn`` per
    attempt for ``update``). With the C accelerator, an update of a value
    that fits in 64 bits is one compare-and-swap of a machine word; values
    beyond that range are kept as exact Python ints, with the same results.
    The pure-Python implementation acquires an uncontended lock once per call;
    under contention threads serialise on it, like an int guarded by a ``Lock``.
    """

    __slots__ = ("__weakref__",)

    # -- in-place operators (``+= -= ...``) are atomic updates of the core

    def __itruediv__(self, other: object) -> AtomicInt:
        # Without this, ``a /= 2`` would rebind ``a`` to a plain float.
        raise TypeError("an AtomicInt holds an int: use //= (or AtomicFloat)")

    # -- int-like reads (one read of the value) ---------------------------------

    def __int__(self) -> int:
        return self._value

    def __index__(self) -> int:
        return self._value

    def __bool__(self) -> bool:
        return self._value != 0

    def __float__(self) -> float:
        return float(self._value)

    def __format__(self, spec: str) -> str:
        return format(self._value, spec)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._value!r})"

    __hash__ = None  # type: ignore[assignment]  # mutable, like list

    @staticmethod
    def _other(other: object) -> Any:
        """The value to compare/compute with, or NotImplemented."""
        if isinstance(other, AtomicInt):
            return other._value
        if isinstance(other, (int, float, complex)) or _is_number(other):
            return other
        return NotImplemented

    def __eq__(self, other: object) -> bool:
        o = self._other(other)
        return NotImplemented if o is NotImplemented else bool(self._value == o)

    def __ne__(self, other: object) -> bool:
        o = self._other(other)
        return NotImplemented if o is NotImplemented else bool(self._value != o)

    def __lt__(self, other: object) -> bool:
        o = self._other(other)
        return NotImplemented if o is NotImplemented else bool(self._value < o)

    def __le__(self, other: object) -> bool:
        o = self._other(other)
        return NotImplemented if o is NotImplemented else bool(self._value <= o)

    def __gt__(self, other: object) -> bool:
        o = self._other(other)
        return NotImplemented if o is NotImplemented else bool(self._value > o)

    def __ge__(self, other: object) -> bool:
        o = self._other(other)
        return NotImplemented if o is NotImplemented else bool(self._value >= o)

    # -- binary arithmetic: a plain result computed from one read ---------------

    def __add__(self, other: object) -> Any:
        o = self._other(other)
        return NotImplemented if o is NotImplemented else self._value + o

    def __radd__(self, other: object) -> Any:
        o = self._other(other)
        return NotImplemented if o is NotImplemented else o + self._value

    def __sub__(self, other: object) -> Any:
        o = self._other(other)
        return NotImplemented if o is NotImplemented else self._value - o

    def __rsub__(self, other: object) -> Any:
        o = self._other(other)
        return NotImplemented if o is NotImplemented else o - self._value

    def __mul__(self, other: object) -> Any:
        o = self._other(other)
        return NotImplemented if o is NotImplemented else self._value * o

    def __rmul__(self, other: object) -> Any:
        o = self._other(other)
        return NotImplemented if o is NotImplemented else o * self._value

    def __floordiv__(self, other: object) -> Any:
        o = self._other(other)
        return NotImplemented if o is NotImplemented else self._value // o

    def __rfloordiv__(self, other: object) -> Any:
        o = self._other(other)
        return NotImplemented if o is NotImplemented else o // self._value

    def __truediv__(self, other: object) -> Any:
        o = self._other(other)
        return NotImplemented if o is NotImplemented else self._value / o

    def __rtruediv__(self, other: object) -> Any:
        o = self._other(other)
        return NotImplemented if o is NotImplemented else o / self._value

    def __mod__(self, other: object) -> Any:
        o = self._other(other)
        return NotImplemented if o is NotImplemented else self._value % o

    def __rmod__(self, other: object) -> Any:
        o = self._other(other)
        return NotImplemented if o is NotImplemented else o % self._value

    def __pow__(self, other: object) -> Any:
        o = self._other(other)
        return NotImplemented if o is NotImplemented else self._value**o

    def __rpow__(self, other: object) -> Any:
        o = self._other(other)
        return NotImplemented if o is NotImplemented else o**self._value

    def __and__(self, other: object) -> Any:
        o = _int_other(other)
        return NotImplemented if o is NotImplemented else self._value & o

    __rand__ = __and__

    def __or__(self, other: object) -> Any:
        o = _int_other(other)
        return NotImplemented if o is NotImplemented else self._value | o

    __ror__ = __or__

    def __xor__(self, other: object) -> Any:
        o = _int_other(other)
        return NotImplemented if o is NotImplemented else self._value ^ o

    __rxor__ = __xor__

    def __lshift__(self, other: object) -> Any:
        o = _int_other(other)
        return NotImplemented if o is NotImplemented else self._value << o

    def __rlshift__(self, other: object) -> Any:
        o = _int_other(other)
        return NotImplemented if o is NotImplemented else o << self._value

    def __rshift__(self, other: object) -> Any:
        o = _int_other(other)
        return NotImplemented if o is NotImplemented else self._value >> o

    def __rrshift__(self, other: object) -> Any:
        o = _int_other(other)
        return NotImplemented if o is NotImplemented else o >> self._value

    def __neg__(self) -> int:
        return -self._value

    def __pos__(self) -> int:
        return +self._value

    def __abs__(self) -> int:
        return abs(self._value)

    def __invert__(self) -> int:
        return ~self._value

    # -- copy and pickle: a new, independent atomic ------------------------------

    def __reduce__(self) -> tuple[Any, ...]:
        return _reduce(self, self._value)


def _is_number(obj: object) -> bool:
    import numbers

    return isinstance(obj, numbers.Number)


def _int_other(other: object) -> Any:
    if isinstance(other, AtomicInt):
        return other._value
    if isinstance(other, int):
        return other
    return NotImplemented


def _reduce(obj: Any, value: object) -> tuple[Any, ...]:
    """``__reduce__`` of an atomic: the class, its current value, extra state."""
    state = getattr(obj, "__dict__", None)
    if state:
        return (type(obj), (value,), state)
    return (type(obj), (value,))


class _AtomicBoolCore:
    """The pure-Python core of :class:`AtomicBool`: its hot methods, the reference semantics."""

    __slots__ = ("_lock", "_value")

    def __init__(self, value: bool = False) -> None:
        self._value = _check_bool(value)
        self._lock = threading.Lock()

    def get(self) -> bool:
        """The current value."""
        return self._value

    def set(self, value: bool) -> None:
        """Replace the value."""
        value = _check_bool(value)
        with self._lock:
            self._value = value

    def get_and_set(self, value: bool) -> bool:
        """Replace the value and return the previous one."""
        value = _check_bool(value)
        with self._lock:
            old = self._value
            self._value = value
        return old

    def compare_and_set(self, expected: bool, new: bool) -> bool:
        """Set the value to ``new`` if it is ``expected``; return whether it did."""
        expected = _check_bool(expected, "expected")
        new = _check_bool(new, "new")
        with self._lock:
            if self._value is not expected:
                return False
            self._value = new
        return True

    def toggle(self) -> bool:
        """Flip the value and return the *new* value."""
        with self._lock:
            self._value = v = not self._value
        return v


_PyAtomicBoolCore = _AtomicBoolCore
if TYPE_CHECKING:
    _BoolBase = _PyAtomicBoolCore
else:
    _BoolBase = native_attr("_AtomicBoolCore") or _PyAtomicBoolCore


class AtomicBool(_BoolBase):
    """A bool that threads update atomically, like Java's ``AtomicBoolean``.

    Values must be ``bool`` (``True``/``False``): ints, ``None`` and other
    objects raise ``TypeError`` and change nothing (``AtomicBool(1)`` is
    almost always a confusion with :class:`AtomicInt`). ``bool(b)`` is
    ``b.get()``; ``==`` compares by value with bools and other
    ``AtomicBool``; it is mutable, so unhashable. ``copy``, ``deepcopy`` and
    pickling give a new, independent ``AtomicBool``.

    **Thread safety.** All methods may be called from any number of threads
    at once. Every operation is linearizable.

    **Atomic operations.** ``get``, ``set``, ``get_and_set``,
    ``compare_and_set`` and ``toggle`` are each atomic. The classic use is a
    one-shot flag: ``if flag.compare_and_set(False, True):`` is true in
    exactly one of the threads racing on it (so is ``not flag.get_and_set(True)``).

    **Iteration.** Not iterable.

    **Blocking and timeouts.** No call blocks for longer than another
    thread's few-bytecode critical section; there is nothing to time out.

    **Complexity.** Every operation is O(1); each update is one
    compare-and-swap (C accelerator) or acquires an uncontended lock once
    (pure Python).
    """

    __slots__ = ("__weakref__",)

    def __bool__(self) -> bool:
        return self._value

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AtomicBool):
            return self._value is other._value
        if isinstance(other, bool):
            return self._value is other
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return NotImplemented if eq is NotImplemented else not eq

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._value!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return _reduce(self, self._value)


def _check_bool(value: object, what: str = "value") -> bool:
    if isinstance(value, bool):  # bool cannot be subclassed: True or False
        return value
    raise TypeError(f"{what} must be a bool, not {type(value).__name__}")


def _check_float(value: object, what: str = "value") -> float:
    """Accept float, int (not bool) and their subclasses; store a plain float."""
    if isinstance(value, float):
        return value if _type(value) is _float else float(value)
    if isinstance(value, (float, int)) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"{what} must be a float or an int, not {type(value).__name__}")


def _same_float(a: float, b: float) -> bool:
    """Bit-for-bit equality, as Java's ``AtomicDouble``: -0.0 differs from 0.0,
    NaN matches NaN (so compare-and-set loops terminate on NaN)."""
    if a == b:
        return a != 0.0 or math.copysign(1.0, a) == math.copysign(1.0, b)
    return math.isnan(a) and math.isnan(b)


class _AtomicFloatCore:
    """The pure-Python core of :class:`AtomicFloat`: its hot methods, the reference semantics."""

    __slots__ = ("_lock", "_value")

    def __init__(self, value: float = 0.0) -> None:
        self._value: float = _check_float(value)
        self._lock = threading.Lock()

    def get(self) -> float:
        """The current value."""
        return self._value

    def set(self, value: float) -> None:
        """Replace the value."""
        value = _check_float(value)
        with self._lock:
            self._value = value

    def add(self, delta: float) -> float:
        """Add ``delta`` and return the new value."""
        if _type(delta) is not _float:
            delta = _check_float(delta, "delta")
        with self._lock:
            self._value = v = self._value + delta
        return v

    def get_and_add(self, delta: float) -> float:
        """Add ``delta`` and return the previous value."""
        if _type(delta) is not _float:
            delta = _check_float(delta, "delta")
        with self._lock:
            old = self._value
            self._value = old + delta
        return old

    def get_and_set(self, value: float) -> float:
        """Replace the value and return the previous one."""
        value = _check_float(value)
        with self._lock:
            old = self._value
            self._value = value
        return old

    def compare_and_set(self, expected: float, new: float) -> bool:
        """Set the value to ``new`` if it is bit-for-bit ``expected``; return whether it did."""
        expected = _check_float(expected, "expected")
        new = _check_float(new, "new")
        with self._lock:
            if not _same_float(self._value, expected):
                return False
            self._value = new
        return True

    def update(self, fn: Callable[[float], float]) -> float:
        """Atomically replace the value ``v`` by ``fn(v)``; return the new value.

        ``fn`` runs outside the lock and is retried if another thread changed
        the value meanwhile: it may be called more than once and must have no
        side effects. If ``fn`` raises, or returns something that is not a
        float or int (``TypeError``), the value is unchanged.
        """
        while True:
            cur = self._value
            new = _check_float(fn(cur), "update function result")
            with self._lock:
                if self._value is cur:  # the same object: no ABA on NaN or -0.0
                    self._value = new
                    return new


_PyAtomicFloatCore = _AtomicFloatCore
if TYPE_CHECKING:
    _FloatBase = _PyAtomicFloatCore
else:
    _FloatBase = native_attr("_AtomicFloatCore") or _PyAtomicFloatCore


class AtomicFloat(_FloatBase):
    """A float that threads update atomically (``add`` never loses an update).

    Values are Python floats; ``int`` values and deltas (not ``bool``) are
    converted with ``float()``, anything else raises ``TypeError`` and changes
    nothing. ``float(x)`` is ``x.get()``. ``copy``, ``deepcopy`` and pickling
    give a new, independent ``AtomicFloat``. ``==`` is identity (it is a
    mutable container, like :class:`AtomicRef`); compare ``x.get()``.

    **Thread safety.** All methods may be called from any number of threads
    at once. Every operation is linearizable.

    **Atomic operations.** ``get``, ``set``, ``add``, ``get_and_add``,
    ``get_and_set`` and ``compare_and_set`` are each atomic. ``add`` is the
    reason to use this class: ``x += d`` on a shared float loses updates when
    two threads interleave; ``x.add(d)`` never does (floating-point addition
    is not associative, so the total can differ in the last bits depending
    on the order in which threads added). ``compare_and_set(expected, new)``
    compares bit for bit, as Java's ``AtomicDouble`` does: ``-0.0`` does not
    match ``0.0`` and ``nan`` matches ``nan``. ``update(fn)`` is optimistic
    like :meth:`AtomicInt.update`: ``fn`` runs without the lock and may be
    called more than once.

    **Iteration.** Not iterable.

    **Blocking and timeouts.** No call blocks for longer than another
    thread's few-bytecode critical section; there is nothing to time out.

    **Complexity.** Every operation is O(1) (plus ``fn`` per attempt for
    ``update``); each update is one compare-and-swap of the value's 64 bits
    (C accelerator) or acquires an uncontended lock once (pure Python).
    """

    __slots__ = ("__weakref__",)

    def __float__(self) -> float:
        return self._value

    def __format__(self, spec: str) -> str:
        return format(self._value, spec)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._value!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return _reduce(self, self._value)


class _AtomicRefCore:
    """The pure-Python core of :class:`AtomicRef`: its hot methods, the reference semantics."""

    __slots__ = ("_lock", "_value")

    def __init__(self, value: Any = None) -> None:
        self._value: Any = value
        self._lock = threading.Lock()

    def get(self) -> Any:
        """The current value."""
        return self._value

    def set(self, value: Any) -> None:
        """Replace the value."""
        with self._lock:
            self._value = value

    def get_and_set(self, value: Any) -> Any:
        """Replace the value and return the previous one."""
        with self._lock:
            old = self._value
            self._value = value
        return old

    def compare_and_set(self, expected: Any, new: Any) -> bool:
        """Set the value to ``new`` if it *is* ``expected``; return whether it did."""
        with self._lock:
            if self._value is not expected:
                return False
            self._value = new
        return True

    def update(self, fn: Callable[[Any], Any]) -> Any:
        """Atomically replace the value ``v`` by ``fn(v)``; return the new value.

        ``fn`` runs outside the lock and is retried if another thread replaced
        the value meanwhile: it may be called more than once and must have no
        side effects. If ``fn`` raises, the value is unchanged.
        """
        while True:
            cur = self._value
            new = fn(cur)
            with self._lock:
                if self._value is cur:
                    self._value = new
                    return new


_PyAtomicRefCore = _AtomicRefCore
if TYPE_CHECKING:
    _RefBase = _PyAtomicRefCore
else:
    _RefBase = native_attr("_AtomicRefCore") or _PyAtomicRefCore


class AtomicRef(_RefBase, Generic[T]):
    """A reference that threads replace atomically, like Java's ``AtomicReference``.

    ``compare_and_set`` compares by identity (``is``), as in Java and
    cereggii: it never calls a user ``__eq__``. Use it with objects you keep a
    reference to (the value ``get()`` returned), not with a new equal object.
    Small ints and interned strings are shared by CPython, so comparing them
    by identity is unreliable: use :class:`AtomicInt` for numbers.
    ``copy.copy`` gives a new ``AtomicRef`` to the same object,
    ``copy.deepcopy`` one to a deep copy of it; pickling pickles the object.

    **Thread safety.** All methods may be called from any number of threads
    at once. Every operation is linearizable. The referenced object itself is
    not protected: mutating it is the caller's business (prefer immutable
    values, e.g. tuples or frozen dataclasses, and replace them with
    ``update``).

    **Atomic operations.** ``get``, ``set``, ``get_and_set`` and
    ``compare_and_set`` are each atomic. ``update(fn)`` reads the value ``v``,
    calls ``fn(v)`` *without holding any lock*, and installs the result only
    if the value is still ``v`` (same object); otherwise it retries, so **fn
    may be called more than once** and must be free of side effects.

    **Iteration.** Not iterable.

    **Blocking and timeouts.** No call blocks for longer than another
    thread's few-bytecode critical section; there is nothing to time out.

    **Complexity.** Every operation is O(1) (plus ``fn`` per attempt for
    ``update``).
    """

    __slots__ = ("__weakref__",)

    if TYPE_CHECKING:  # the cores are untyped (Any); these are the public signatures

        def __init__(self, value: T = None) -> None:  # type: ignore[assignment]
            ...

        def get(self) -> T: ...
        def set(self, value: T) -> None: ...
        def get_and_set(self, value: T) -> T: ...
        def compare_and_set(self, expected: T, new: T) -> bool: ...
        def update(self, fn: Callable[[T], T]) -> T: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._value!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return _reduce(self, self._value)
