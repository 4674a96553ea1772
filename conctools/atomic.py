"""Atomic variables: :class:`AtomicInt` and :class:`AtomicRef`.

Pure Python has no compare-and-swap instruction, so each atomic holds a small
``threading.Lock`` held only for the few bytecodes of a read-modify-write. User
functions passed to ``update`` run *outside* that lock (optimistic retry), so a
slow or re-entrant function never blocks other threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["AtomicInt", "AtomicRef"]

T = TypeVar("T")

# Module-level aliases: on the free-threaded 3.13 build (no specialising
# interpreter) a module global is found one dict lookup sooner than a builtin.
# Likewise ``lock.acquire()``/``try``/``finally`` is ~25% cheaper there than
# ``with lock:``. These are the hot paths.
_type = type
_int = int


def _check_int(value: object, what: str = "value") -> int:
    """Slow path of the int check: accept int subclasses except bool."""
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    raise TypeError(f"{what} must be an int, not {type(value).__name__}")


class AtomicInt:
    """An int that threads update atomically, like Java's ``AtomicLong``.

    Values are Python ints (unbounded: no overflow). Every value and delta must
    be an ``int``; ``bool`` is rejected with ``TypeError`` (``AtomicInt(True)``
    is almost always a bug), as are floats, ``Decimal`` and strings. Instances
    of ``int`` subclasses (``IntEnum`` members...) are accepted and stored as
    plain ``int``. A rejected call changes nothing.

    **Thread safety.** All methods may be called from any number of threads
    at once. Every operation is linearizable: it takes effect at a single
    instant between its call and its return.

    **Atomic operations.** ``get``, ``set``, ``increment``, ``decrement``,
    ``add_and_get``, ``get_and_add``, ``get_and_set`` and ``compare_and_set``
    are each atomic. ``compare_and_set(expected, new)`` compares by value
    (``==``). ``update(fn)`` is atomic too, but optimistic: it reads the value
    ``v``, calls ``fn(v)`` *without holding any lock*, and installs the result
    only if the value is still ``v``; otherwise it retries, so **fn may be
    called more than once** under contention and must be free of side effects
    (as in Java's ``updateAndGet``). ``fn`` is never called while a lock is
    held.

    **Iteration.** Not iterable. ``int(a)`` is ``a.get()``.

    **Blocking and timeouts.** No call blocks for longer than another
    thread's few-bytecode critical section; there is nothing to time out.
    ``update`` may loop while other threads keep changing the value.

    **Complexity.** Every operation is O(1) (plus the cost of ``fn`` per
    attempt for ``update``). Each call acquires an uncontended lock once; under
    contention threads serialise on it, like an int guarded by a ``Lock``.
    """

    __slots__ = ("__weakref__", "_lock", "_value")

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
        lock = self._lock
        lock.acquire()
        try:
            self._value = value
        finally:
            lock.release()

    def increment(self, delta: int = 1) -> int:
        """Add ``delta`` (default 1) and return the new value."""
        if _type(delta) is not _int:
            delta = _check_int(delta, "delta")
        lock = self._lock
        lock.acquire()
        try:
            self._value = v = self._value + delta
        finally:
            lock.release()
        return v

    def decrement(self, delta: int = 1) -> int:
        """Subtract ``delta`` (default 1) and return the new value."""
        if _type(delta) is not _int:
            delta = _check_int(delta, "delta")
        lock = self._lock
        lock.acquire()
        try:
            self._value = v = self._value - delta
        finally:
            lock.release()
        return v

    def add_and_get(self, delta: int) -> int:
        """Add ``delta`` and return the new value."""
        if _type(delta) is not _int:
            delta = _check_int(delta, "delta")
        lock = self._lock
        lock.acquire()
        try:
            self._value = v = self._value + delta
        finally:
            lock.release()
        return v

    def get_and_add(self, delta: int) -> int:
        """Add ``delta`` and return the previous value."""
        if _type(delta) is not _int:
            delta = _check_int(delta, "delta")
        lock = self._lock
        lock.acquire()
        try:
            old = self._value
            self._value = old + delta
        finally:
            lock.release()
        return old

    def get_and_set(self, value: int) -> int:
        """Replace the value and return the previous one."""
        if _type(value) is not _int:
            value = _check_int(value)
        lock = self._lock
        lock.acquire()
        try:
            old = self._value
            self._value = value
        finally:
            lock.release()
        return old

    def compare_and_set(self, expected: int, new: int) -> bool:
        """Set the value to ``new`` if it equals ``expected``; return whether it did."""
        if _type(expected) is not _int:
            expected = _check_int(expected, "expected")
        if _type(new) is not _int:
            new = _check_int(new, "new")
        lock = self._lock
        lock.acquire()
        try:
            if self._value != expected:
                return False
            self._value = new
        finally:
            lock.release()
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
            lock = self._lock
            lock.acquire()
            try:
                if self._value == cur:
                    self._value = new
                    return new
            finally:
                lock.release()

    def __int__(self) -> int:
        return self._value

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._value!r})"


class AtomicRef(Generic[T]):
    """A reference that threads replace atomically, like Java's ``AtomicReference``.

    ``compare_and_set`` compares by identity (``is``), as in Java and
    cereggii: it never calls a user ``__eq__``. Use it with objects you keep a
    reference to (the value ``get()`` returned), not with a new equal object.
    Small ints and interned strings are shared by CPython, so comparing them
    by identity is unreliable: use :class:`AtomicInt` for numbers.

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

    __slots__ = ("__weakref__", "_lock", "_value")

    def __init__(self, value: T = None) -> None:  # type: ignore[assignment]
        self._value: T = value
        self._lock = threading.Lock()

    def get(self) -> T:
        """The current value."""
        return self._value

    def set(self, value: T) -> None:
        """Replace the value."""
        lock = self._lock
        lock.acquire()
        try:
            self._value = value
        finally:
            lock.release()

    def get_and_set(self, value: T) -> T:
        """Replace the value and return the previous one."""
        lock = self._lock
        lock.acquire()
        try:
            old = self._value
            self._value = value
        finally:
            lock.release()
        return old

    def compare_and_set(self, expected: T, new: T) -> bool:
        """Set the value to ``new`` if it *is* ``expected``; return whether it did."""
        lock = self._lock
        lock.acquire()
        try:
            if self._value is not expected:
                return False
            self._value = new
        finally:
            lock.release()
        return True

    def update(self, fn: Callable[[T], T]) -> T:
        """Atomically replace the value ``v`` by ``fn(v)``; return the new value.

        ``fn`` runs outside the lock and is retried if another thread replaced
        the value meanwhile: it may be called more than once and must have no
        side effects. If ``fn`` raises, the value is unchanged.
        """
        while True:
            cur = self._value
            new = fn(cur)
            lock = self._lock
            lock.acquire()
            try:
                if self._value is cur:
                    self._value = new
                    return new
            finally:
                lock.release()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._value!r})"
