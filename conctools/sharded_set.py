"""ShardedSet: a concurrent set with lock-free membership and an atomic add-if-absent.

The set is split into a fixed (prime) number of *shards*, exactly like
:class:`~conctools.sharded_dict.ShardedDict` (same shard count, hashing and
key-wrapping machinery, :mod:`conctools._internal.striping`).  Each shard is a
plain ``dict`` mapping the stored form of an element to the element, guarded
by its own ``threading.Lock``:

* membership (``x in s``) takes no lock: one dict operation;
* every write takes the element's shard lock (with a ``with`` statement, so no
  interrupt can leave it held);
* whole-set operations (``snapshot``, ``clear``, the last step of ``pop``)
  take every shard lock in index order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, MutableSet
from collections.abc import Set as AbstractSet
from typing import Any, Generic, TypeVar

from ._internal.striping import PLAIN as _PLAIN
from ._internal.striping import clear_all, subclass_state, with_all_locks
from ._internal.striping import shard_count as _shard_count
from ._internal.striping import wrap as _wrap

__all__ = ["ShardedSet", "ShardedSetHandle"]

T = TypeVar("T")
U = TypeVar("U")


def _hashed(x: Any) -> tuple[Any, int]:
    """``(x, hash(x))``; a set argument is looked up as a ``frozenset``, as ``set`` does."""
    try:
        return x, hash(x)
    except TypeError:
        if isinstance(x, set):
            f = frozenset(x)
        elif isinstance(x, _ShardedSetBase):
            f = frozenset(x.snapshot())
        else:
            raise
        return f, hash(f)


def _as_set(other: Iterable[Any]) -> AbstractSet[Any]:
    """A set-like view of ``other`` that can be iterated and probed (snapshot for ours)."""
    if isinstance(other, _ShardedSetBase):
        return other.snapshot()
    if isinstance(other, (set, frozenset)):
        return other
    return set(other)


class _ShardedSetBase(MutableSet[T], Generic[T]):
    """Operations shared by :class:`ShardedSet` and its per-thread handles."""

    __slots__ = ("_locks", "_n", "_shards")

    _shards: tuple[dict[Any, T], ...]
    _locks: tuple[threading.Lock, ...]
    _n: int

    # ------------------------------------------------------------ membership

    def __contains__(self, x: object) -> bool:
        try:
            return x in self._shards[hash(x) % self._n]
        except TypeError:
            f, h = _hashed(x)  # a set argument: look up the equal frozenset
            return f in self._shards[h % self._n]

    def __len__(self) -> int:
        n = 0
        for s in self._shards:
            n += len(s)
        return n

    def __bool__(self) -> bool:
        return any(self._shards)

    def __iter__(self) -> Iterator[T]:
        # One shard at a time: copy it (a consistent state of that shard) and
        # walk the copy, so concurrent writers never make iteration fail.
        for shard in self._shards:
            yield from shard.copy().values()

    # ---------------------------------------------------------------- writes

    def add(self, x: T) -> None:
        """Add ``x`` (an equal element already present is kept, as in ``set``)."""
        h = hash(x)
        i = h % self._n
        tx = type(x)
        kk = x if (tx is int or tx is str) else _wrap(x, h)
        shard = self._shards[i]
        with self._locks[i]:
            if kk not in shard:
                shard[kk] = x

    def add_if_absent(self, x: T) -> bool:
        """Add ``x`` if no equal element is present; return whether it was added.

        Atomic: among threads racing to add equal elements, exactly one gets
        ``True``.  The dedup idiom ``if x not in seen: seen.add(x); work(x)``
        in one call: ``if seen.add_if_absent(x): work(x)``.  A present element
        is detected without taking the lock.
        """
        h = hash(x)
        i = h % self._n
        shard = self._shards[i]
        tx = type(x)
        if tx is int or tx is str or tx in _PLAIN:
            if x in shard:
                return False
            kk: Any = x
        else:
            kk = _wrap(x, h)
            if kk in shard:
                return False
        with self._locks[i]:
            if kk in shard:
                return False
            shard[kk] = x
            return True

    def discard(self, x: object) -> None:
        """Remove ``x`` if present."""
        x, h = _hashed(x)
        i = h % self._n
        kk = _wrap(x, h)
        shard = self._shards[i]
        with self._locks[i]:
            # pop() keeps the element alive until the lock is released, so
            # that its ``__del__`` (if the last reference) runs outside it.
            old = shard.pop(kk) if kk in shard else None
        del old

    def remove(self, x: object) -> None:
        """Remove ``x``; ``KeyError`` if absent."""
        y, h = _hashed(x)
        i = h % self._n
        kk = _wrap(y, h)
        shard = self._shards[i]
        try:
            with self._locks[i]:
                old = shard.pop(kk)
        except KeyError:
            raise KeyError(x) from None  # the argument itself, as set does
        del old

    def pop(self) -> T:
        """Remove and return an arbitrary element; ``KeyError`` if the set is empty."""
        for shard, lock in zip(self._shards, self._locks, strict=True):
            if shard:
                with lock:
                    if shard:
                        return shard.popitem()[1]

        # Looked empty shard by shard; confirm atomically.
        def pop_any() -> Any:
            for shard in self._shards:
                if shard:
                    return shard.popitem()
            return None

        kv = with_all_locks(self._locks, pop_any)
        if kv is None:
            raise KeyError("pop from an empty set")
        return kv[1]  # type: ignore[no-any-return]

    def clear(self) -> None:
        """Remove every element, atomically (all shard locks, in index order)."""

        dropped = clear_all(self._locks, self._shards)  # interrupted: changes nothing
        del dropped

    def _toggle(self, x: Any) -> None:
        """Remove ``x`` if present, else add it (one atomic step)."""
        h = hash(x)
        i = h % self._n
        kk = _wrap(x, h)
        shard = self._shards[i]
        with self._locks[i]:
            old = shard.pop(kk) if kk in shard else _ADD
            if old is _ADD:
                shard[kk] = x
        del old

    # ------------------------------------------------------------ whole set

    def snapshot(self) -> set[T]:
        """An atomic point-in-time copy as a plain ``set``.

        Every shard lock is held (taken in index order) only while the shards
        are copied; the result set is built after they are released.
        """
        shards = self._shards
        copies = with_all_locks(self._locks, lambda: [s.copy() for s in shards])
        out: set[T] = set()
        for c in copies:
            out.update(c.values())
        return out

    def copy(self) -> ShardedSet[T]:
        """A new :class:`ShardedSet` (same shard count) holding a snapshot."""
        return ShardedSet(self.snapshot(), shards=self._n)

    # ----------------------------------------------- bulk updates (per element)

    def update(self, *others: Iterable[T]) -> None:
        """Add every element of every iterable (each add atomic, the whole not)."""
        for other in others:
            for x in other.snapshot() if isinstance(other, _ShardedSetBase) else other:
                self.add(x)

    def difference_update(self, *others: Iterable[Any]) -> None:
        """Remove every element of the iterables (each removal atomic)."""
        for other in others:
            if other is self:
                self.clear()
                continue
            for x in _as_set(other):
                self.discard(x)

    def intersection_update(self, *others: Iterable[Any]) -> None:
        """Keep only elements found in every iterable (each removal atomic)."""
        sets = [_as_set(o) for o in others]
        for x in self:
            if not all(x in s for s in sets):
                self.discard(x)

    def symmetric_difference_update(self, other: Iterable[T]) -> None:
        """Toggle every element of ``other`` (each toggle atomic)."""
        if other is self:
            self.clear()
            return
        for x in _as_set(other):
            self._toggle(x)

    def __ior__(self, other: AbstractSet[T]) -> _ShardedSetBase[T]:  # type: ignore[override,misc]
        if not isinstance(other, AbstractSet):
            return NotImplemented
        self.update(other)
        return self

    def __iand__(self, other: AbstractSet[Any]) -> _ShardedSetBase[T]:
        if not isinstance(other, AbstractSet):
            return NotImplemented
        self.intersection_update(other)
        return self

    def __isub__(self, other: AbstractSet[Any]) -> _ShardedSetBase[T]:
        if not isinstance(other, AbstractSet):
            return NotImplemented
        self.difference_update(other)
        return self

    def __ixor__(self, other: AbstractSet[T]) -> _ShardedSetBase[T]:  # type: ignore[override,misc]
        if not isinstance(other, AbstractSet):
            return NotImplemented
        self.symmetric_difference_update(other)
        return self

    # ------------------------------------- set algebra: plain-set results

    @classmethod
    def _from_iterable(cls, it: Iterable[U]) -> set[U]:
        return set(it)

    def union(self, *others: Iterable[U]) -> set[T | U]:
        """A plain ``set``: a snapshot of this set with every element of ``others``."""
        return self.snapshot().union(*[_as_set(o) for o in others])

    def intersection(self, *others: Iterable[Any]) -> set[T]:
        """A plain ``set``: the elements of a snapshot found in every iterable."""
        return self.snapshot().intersection(*[_as_set(o) for o in others])

    def difference(self, *others: Iterable[Any]) -> set[T]:
        """A plain ``set``: the elements of a snapshot found in none of the iterables."""
        return self.snapshot().difference(*[_as_set(o) for o in others])

    def symmetric_difference(self, other: Iterable[U]) -> set[T | U]:
        """A plain ``set``: elements in exactly one of a snapshot and ``other``."""
        return self.snapshot().symmetric_difference(_as_set(other))

    def issubset(self, other: Iterable[Any]) -> bool:
        """Whether every element of a snapshot is in ``other``."""
        return self.snapshot().issubset(_as_set(other))

    def issuperset(self, other: Iterable[Any]) -> bool:
        """Whether a snapshot contains every element of ``other``."""
        return self.snapshot().issuperset(_as_set(other))

    def isdisjoint(self, other: Iterable[Any]) -> bool:
        """Whether a snapshot and ``other`` have no element in common."""
        return self.snapshot().isdisjoint(_as_set(other))

    def __and__(self, other: AbstractSet[Any]) -> set[T]:
        if not isinstance(other, AbstractSet):
            return NotImplemented
        return self.snapshot() & _as_set(other)

    def __rand__(self, other: AbstractSet[Any]) -> set[Any]:
        if not isinstance(other, AbstractSet):
            return NotImplemented
        return set(_as_set(other)) & self.snapshot()

    def __or__(self, other: AbstractSet[U]) -> set[T | U]:
        if not isinstance(other, AbstractSet):
            return NotImplemented
        return self.snapshot() | _as_set(other)

    def __ror__(self, other: AbstractSet[U]) -> set[T | U]:  # type: ignore[misc]
        if not isinstance(other, AbstractSet):
            return NotImplemented
        return set(_as_set(other)) | self.snapshot()

    def __sub__(self, other: AbstractSet[Any]) -> set[T]:
        if not isinstance(other, AbstractSet):
            return NotImplemented
        return self.snapshot() - _as_set(other)

    def __rsub__(self, other: AbstractSet[U]) -> set[U]:  # type: ignore[misc]
        if not isinstance(other, AbstractSet):
            return NotImplemented
        return set(_as_set(other)) - self.snapshot()

    def __xor__(self, other: AbstractSet[U]) -> set[T | U]:
        if not isinstance(other, AbstractSet):
            return NotImplemented
        return self.snapshot() ^ _as_set(other)

    def __rxor__(self, other: AbstractSet[U]) -> set[T | U]:  # type: ignore[misc]
        if not isinstance(other, AbstractSet):
            return NotImplemented
        return set(_as_set(other)) ^ self.snapshot()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AbstractSet):
            return NotImplemented
        return self.snapshot() == _as_set(other)

    def __ne__(self, other: object) -> bool:
        if not isinstance(other, AbstractSet):
            return NotImplemented
        return self.snapshot() != _as_set(other)

    def __le__(self, other: AbstractSet[Any]) -> bool:
        if not isinstance(other, AbstractSet):
            return NotImplemented
        return self.snapshot() <= _as_set(other)

    def __lt__(self, other: AbstractSet[Any]) -> bool:
        if not isinstance(other, AbstractSet):
            return NotImplemented
        return self.snapshot() < _as_set(other)

    def __ge__(self, other: AbstractSet[Any]) -> bool:
        if not isinstance(other, AbstractSet):
            return NotImplemented
        return self.snapshot() >= _as_set(other)

    def __gt__(self, other: AbstractSet[Any]) -> bool:
        if not isinstance(other, AbstractSet):
            return NotImplemented
        return self.snapshot() > _as_set(other)

    __hash__ = None  # type: ignore[assignment]

    @property
    def shards(self) -> int:
        """Number of shards (a prime, fixed at construction)."""
        return self._n


_ADD: Any = object()
_repr_running: set[tuple[int, int]] = set()


class ShardedSet(_ShardedSetBase[T]):
    """A thread-safe set split into independently locked shards, with lock-free membership.

    **Thread safety.** Every method may be called from any thread at any time.
    Single-element operations are linearizable: ``x in s`` takes no lock (one
    atomic dict operation); :meth:`add`, :meth:`add_if_absent`,
    :meth:`discard` and :meth:`remove` take the lock of the element's shard
    only.  Elements are hashed before any lock is taken and ``__hash__`` is
    never called under a lock; the ``__eq__`` of elements whose hashes
    collide in the same shard may run under that shard's lock (elements
    must not use the set in ``__eq__``).  An exception from an element's
    ``__hash__``/``__eq__`` leaves the set unchanged.  For hot loops, call
    :meth:`handle` once per thread and use the handle.

    **Atomic operations.** :meth:`add_if_absent` (``True`` for exactly one of
    racing callers adding equal elements), :meth:`add`, :meth:`discard`,
    :meth:`remove`, :meth:`pop`, and the whole-set :meth:`snapshot` and
    :meth:`clear` (all shard locks, fixed order).  The set algebra
    (``| & - ^``, :meth:`union`, :meth:`intersection`, :meth:`difference`,
    :meth:`symmetric_difference`), the comparisons and :meth:`issubset` /
    :meth:`issuperset` / :meth:`isdisjoint` work on one atomic snapshot and
    return plain ``set`` objects or bools.  The bulk updates
    (:meth:`update`, ``|=``, ``&=``, ``-=``, ``^=`` and the ``*_update``
    methods) are atomic per element, not as a whole.

    **Iteration.** Iterators are weakly consistent: they never raise "changed
    size during iteration", yield each element at most once, and show each
    shard as it was at some moment at or after the iterator was created.
    Iteration order is arbitrary (as for ``set``).  ``len()`` sums the shard
    sizes: exact when no thread is writing.  :meth:`snapshot` is the atomic
    alternative.

    **Blocking and timeouts.** No method waits for another thread beyond the
    few dict operations a shard lock protects, so none takes a timeout; no
    user code runs under a lock except the colliding elements' ``__eq__``.

    **Complexity.** Single-element operations are O(1) on average (one hash,
    one or two dict operations, at most one uncontended lock).  ``len()``,
    iteration, :meth:`snapshot`, :meth:`clear`, comparisons and set algebra
    are O(n + shards).  Memory: one dict entry per element and one dict and
    one lock per shard.
    """

    __slots__ = ("__weakref__",)

    def __init__(self, iterable: Iterable[T] = (), /, *, shards: int | None = None) -> None:
        self._init_storage(_shard_count(shards))
        self.update(iterable)

    def _init_storage(self, n: int) -> None:
        self._shards = tuple({} for _ in range(n))
        self._locks = tuple(threading.Lock() for _ in range(n))
        self._n = n

    def handle(self) -> ShardedSetHandle[T]:
        """A handle for the calling thread: the same methods on the same data.

        The handle keeps its own copies of the set's internal tuples (and bound
        methods of each shard), created by the calling thread; on
        free-threaded CPython its hot paths (``x in h``, :meth:`add_if_absent`)
        then avoid contended reference-count updates on shared objects.
        Create one per thread; a shared handle is thread-safe, just not faster.
        """
        return ShardedSetHandle(self)

    def __repr__(self) -> str:
        name = type(self).__name__
        key = (id(self), threading.get_ident())
        if key in _repr_running:  # a set reachable from its own elements, as set prints it
            return f"{name}(...)"
        _repr_running.add(key)
        try:
            snap = self.snapshot()
            return f"{name}({snap!r})" if snap else f"{name}()"
        finally:
            _repr_running.discard(key)

    def __reduce__(self) -> tuple[Any, ...]:
        # The class, shard count and elements, then the subclass's own state;
        # the constructor is not called (any subclass signature works).
        return (
            _rebuild,
            (type(self), self._n, list(self.snapshot())),
            subclass_state(self, ShardedSet),
        )


class ShardedSetHandle(_ShardedSetBase[T]):
    """A per-thread access point to a :class:`ShardedSet` with the same methods.

    Returned by :meth:`ShardedSet.handle`; every operation acts on the
    underlying set with exactly its semantics and guarantees.  A handle runs
    ``ShardedSet``'s own operations: methods overridden in a subclass of
    ``ShardedSet`` are not used through its handles.

    **Thread safety.** As for :class:`ShardedSet`.  The handle holds copies
    of the set's internal tuples owned by the thread that created it; other
    threads may use it safely, only without the speed benefit.

    **Atomic operations.** Those of :class:`ShardedSet`.

    **Iteration.** Weakly consistent, as for :class:`ShardedSet`.

    **Blocking and timeouts.** As for :class:`ShardedSet`: nothing blocks.

    **Complexity.** Creating a handle is O(shards); operations as for
    :class:`ShardedSet`.
    """

    __slots__ = ("_contains", "_set", "add_if_absent")

    def __init__(self, owner: ShardedSet[T]) -> None:
        self._shards = (*owner._shards,)
        self._locks = (*owner._locks,)
        self._n = owner._n + 0  # a fresh int owned by this thread
        self._set = owner
        self._contains = tuple([s.__contains__ for s in self._shards])
        self.add_if_absent = _bind_add_if_absent(self)  # type: ignore[method-assign,assignment]

    def __contains__(self, x: object) -> bool:
        try:
            return self._contains[hash(x) % self._n](x)
        except TypeError:
            return _ShardedSetBase.__contains__(self, x)

    @property
    def set(self) -> ShardedSet[T]:
        """The :class:`ShardedSet` this handle operates on."""
        return self._set

    def handle(self) -> ShardedSetHandle[T]:
        """A new handle on the same set, for the calling thread."""
        return ShardedSetHandle(self._set)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._set!r}>"

    def __reduce__(self) -> Any:
        raise TypeError(
            "a ShardedSetHandle is bound to a thread and cannot be pickled or copied; "
            "pickle or copy its .set instead"
        )


def _bind_add_if_absent(h: ShardedSetHandle[Any]) -> Callable[[Any], bool]:
    """``add_if_absent`` as a closure over thread-owned cells (see ShardedDict's handles)."""
    shards = h._shards
    locks = h._locks
    contains = h._contains
    n = h._n
    _hash = hash
    _type = type
    _int = int
    _str = str
    base = _ShardedSetBase.add_if_absent

    def add_if_absent(x: Any) -> bool:
        tx = _type(x)
        if tx is _int or tx is _str:
            i = _hash(x) % n
            if contains[i](x):
                return False
            shard = shards[i]
            with locks[i]:
                if x in shard:
                    return False
                shard[x] = x
                return True
        return base(h, x)

    add_if_absent.__doc__ = _ShardedSetBase.add_if_absent.__doc__
    return add_if_absent


def _rebuild(cls: type[ShardedSet[Any]], shards: int, items: list[Any]) -> Any:
    """A ``cls`` instance with ``shards`` shards holding ``items`` (pickling, copying)."""
    obj = cls.__new__(cls)
    ShardedSet._init_storage(obj, shards)
    for x in items:
        h = hash(x)
        obj._shards[h % shards].setdefault(_wrap(x, h), x)
    return obj
