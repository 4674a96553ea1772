"""Counters that scale with threads: :class:`StripedCounter` and :class:`ConcurrentCounter`.

Both keep one shard per thread: the thread that increments creates its shard
and is the only one that writes it, so increments take no lock and touch no
object another thread writes (on the free-threaded build even reference-count
updates on a shared object serialise cores). Reads merge the shards. When a
thread exits, its shard is folded into a shared base, so nothing is lost and
memory does not grow with thread churn (see
:mod:`conctools._internal.perthread`).

``counter.increment()`` works from any thread: it finds the calling thread's
shard through a ``threading.local``. A *handle* (``counter.handle()``) is the
calling thread's shard itself; incrementing through it skips that lookup and
the shared counter object altogether - the fastest path, for hot loops.

A thread that cannot own a shard (one that is exiting: an increment from a
``__del__`` run during its teardown; or a thread that ``threading`` does not
know) adds under the counter's lock into shared state instead, so its
increments are counted and no shard outlives it.

This module is the reference implementation: an accelerated version must keep
every documented behaviour.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import (
    Hashable,
    ItemsView,
    Iterable,
    Iterator,
    KeysView,
    Mapping,
    MutableMapping,
    ValuesView,
)
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from ._internal.native import native_attr
from ._internal.perthread import PerThread

__all__ = [
    "ConcurrentCounter",
    "ConcurrentCounterHandle",
    "StripedCounter",
    "StripedCounterHandle",
]

K = TypeVar("K", bound=Hashable)
D = TypeVar("D")

# Retired shards of a ConcurrentCounter stay in the read view (readers add
# them up like live ones) until this many have accumulated; then they are
# merged into a new copy of the base in one go. An exiting thread thus costs
# O(its keys + base keys / _MERGE_EVERY) amortised, and reads visit at most
# _MERGE_EVERY - 1 retired shards besides the live ones.
_MERGE_EVERY = 8

# Module-level aliases: on the free-threaded 3.13 build (no specialising
# interpreter) a module global is found one dict lookup sooner than a builtin.
_type = type
_int = int


def _check_delta(delta: object, what: str = "delta") -> int:
    """Slow path of the delta check: int subclasses except bool are accepted."""
    if isinstance(delta, int) and not isinstance(delta, bool):
        return int(delta)
    raise TypeError(f"{what} must be an int, not {type(delta).__name__}")


# --------------------------------------------------------------------------
# StripedCounter
# --------------------------------------------------------------------------


class _PyStripedCellCore:
    """The hot methods of :class:`StripedCounterHandle` (pure-Python core).

    The specification of the native ``_StripedCellCore``: same methods, same
    exceptions and messages. ``_value`` is written only by the owning thread
    (and replaced wholesale by tests); ``_retire`` marks the cell folded into
    its counter (its thread has exited), which only the native core's cache
    of the plain increment needs to know.
    """

    __slots__ = ("_value",)

    def __init__(self) -> None:
        self._value = 0  # written only by the owning thread; only ever read by others

    def increment(self, delta: int = 1) -> None:
        """Add ``delta`` (default 1) to the counter."""
        if _type(delta) is not _int:
            delta = _check_delta(delta)
        self._value += delta

    def add(self, delta: int) -> None:
        """Add ``delta`` to the counter."""
        if _type(delta) is not _int:
            delta = _check_delta(delta)
        self._value += delta

    def decrement(self, delta: int = 1) -> None:
        """Subtract ``delta`` (default 1) from the counter."""
        if _type(delta) is not _int:
            delta = _check_delta(delta)
        self._value -= delta

    def _retire(self) -> None:
        """Mark the cell folded into its counter (nothing to do in pure Python)."""


if TYPE_CHECKING:
    _CellCore = _PyStripedCellCore
else:
    _CellCore = native_attr("_StripedCellCore") or _PyStripedCellCore


class StripedCounterHandle(_CellCore):
    """The calling thread's own cell of a :class:`StripedCounter`.

    Returned by :meth:`StripedCounter.handle` (do not instantiate it: a
    handle made directly belongs to no counter). Incrementing through a handle
    touches only this object, which the thread created and alone writes: no
    lock, no shared reference counts. It is *thread-confined*, like Java's
    ``ThreadLocalRandom.current()``: use it only in the thread that called
    ``handle()`` (each thread calls ``handle()`` itself; calling it again in
    the same thread returns the same handle). Increments made through a
    handle from another thread race with its owner and can be lost. A handle
    cannot be copied or pickled (``TypeError``): it is a thread's cell, not
    a value.

    **Thread safety.** Thread-confined: only the thread that obtained it may
    call ``increment``/``add``; the counter's readers (``value()`` and friends,
    from any thread) read it safely at any time.

    **Atomic operations.** None of its own: an increment is a plain update of
    this thread's cell, made visible to readers without a lock.

    **Iteration.** Not iterable.

    **Blocking and timeouts.** Never blocks.

    **Complexity.** ``increment``/``add`` are O(1) and touch no shared object.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} contribution={self._value}>"

    def __reduce__(self) -> Any:
        raise TypeError(f"cannot pickle or copy a {type(self).__name__}: it is a thread's cell")


class _StripedState:
    """``base`` = folded cells of exited threads, adds of threads that cannot own
    a cell, minus what resets drained. Guarded by the registry lock.

    The counter's value is ``base`` + the live cells' ``_value``. Every change
    of ``base`` is one store, so an exception cannot leave it half-done.
    ``fold`` runs in ``_Token.__del__``, possibly at interpreter shutdown: it
    uses no module globals.
    """

    __slots__ = ("base",)

    def __init__(self) -> None:
        self.base = 0

    def fold(self, cell: StripedCounterHandle) -> None:
        self.base += cell._value
        cell._retire()


class _PyStripedCounterCore:
    """The hot methods of :class:`StripedCounter` (pure-Python core).

    The specification of the native ``_StripedCounterCore``, which finds the
    calling thread's cell in a per-thread cache and otherwise calls
    ``StripedCounter._slow_add``.
    """

    __slots__ = ("_local", "_lock", "_per_thread", "_state")

    def _init_core(self, per_thread: PerThread[StripedCounterHandle], state: _StripedState) -> None:
        self._per_thread = per_thread
        self._local = per_thread.local
        self._lock = per_thread.lock
        self._state = state

    if TYPE_CHECKING:

        def _add_shared(self, delta: int) -> None: ...  # StripedCounter's

    def increment(self, delta: int = 1) -> None:
        """Add ``delta`` (default 1)."""
        if _type(delta) is not _int:
            delta = _check_delta(delta)
        try:
            cell = self._local.value
        except AttributeError:
            cell = self._per_thread.register()
            if cell is None:
                return self._add_shared(delta)
        cell._value += delta
        return None

    def add(self, delta: int) -> None:
        """Add ``delta``."""
        if _type(delta) is not _int:
            delta = _check_delta(delta)
        try:
            cell = self._local.value
        except AttributeError:
            cell = self._per_thread.register()
            if cell is None:
                return self._add_shared(delta)
        cell._value += delta
        return None

    def decrement(self, delta: int = 1) -> None:
        """Subtract ``delta`` (default 1)."""
        if _type(delta) is not _int:
            delta = _check_delta(delta)
        try:
            cell = self._local.value
        except AttributeError:
            cell = self._per_thread.register()
            if cell is None:
                return self._add_shared(-delta)
        cell._value -= delta
        return None

    def value(self) -> int:
        """The sum of all deltas added (since the last reset).

        Exact when no thread is adding; otherwise not a snapshot.
        """
        with self._lock:
            total = self._state.base
            for cell in self._per_thread.values():
                total += cell._value
            return total

    def sum_then_reset(self) -> int:
        """Return :meth:`value` and reset to zero, losing no concurrent delta.

        Each delta is counted by exactly one ``sum_then_reset`` (or stays in
        the counter), even when other threads add meanwhile.
        """
        with self._lock:
            state = self._state
            cells = 0
            for cell in self._per_thread.values():
                cells += cell._value  # read once: the owner may be adding
            total = state.base + cells
            state.base = -cells  # one store: the reset
            return total


if TYPE_CHECKING:
    _CounterCore = _PyStripedCounterCore
else:
    _CounterCore = native_attr("_StripedCounterCore") or _PyStripedCounterCore


class StripedCounter(_CounterCore):
    """A sum that many threads add to without contention, like Java's ``LongAdder``.

    Each thread adds into a cell it owns; :meth:`value` sums the cells. For
    the hottest loops take the thread's handle once, ``h = c.handle()``, and
    call ``h.increment()``: that path touches no shared object at all.
    Deltas must be ``int`` (``bool``, ``float`` and others raise
    ``TypeError`` and change nothing); ints are unbounded, so there is no
    overflow. ``copy.copy``, ``copy.deepcopy`` and pickling give a new,
    independent counter holding the current :meth:`value`.

    **Thread safety.** All methods may be called from any thread at any time.
    ``increment``/``add``/``decrement`` are never lost: every delta is counted
    exactly once, including deltas added by a thread while it exits and the
    cells of threads that have exited. A :class:`StripedCounterHandle` is
    confined to the thread that obtained it.

    **Atomic operations.** Each update is atomic with respect to every read
    and reset (no torn or lost update), but reads are not snapshots:
    :meth:`value` adds up the cells one after another, so while other threads
    write it returns a sum that may never have existed at a single instant
    (with only positive deltas, a value between the counts at the start and at
    the end of the call). Once writers are quiescent it is exact.
    :meth:`sum_then_reset` is exact even under concurrent writes: each delta
    is reported by exactly one ``sum_then_reset`` call or remains in the
    counter; :meth:`reset` is ``sum_then_reset`` discarding the sum. Resets
    and thread exits change the shared state in one step: an exception
    delivered inside ``sum_then_reset`` (``KeyboardInterrupt``) either leaves
    the counter untouched or drains it (the drained sum is then lost with
    the interrupted call).

    **Iteration.** Not iterable. ``int(c)`` is ``c.value()``.

    **Blocking and timeouts.** Updates never block. Reads and resets take an
    internal lock shared only with other reads, resets and thread
    registration/exit, held for O(threads) integer additions; there is
    nothing to time out.

    **Complexity.** ``increment``: O(1), no lock (one ``threading.local``
    lookup; none through a handle). ``value``, ``reset``,
    ``sum_then_reset``: O(number of live threads that have added). Memory:
    one small cell per live thread that has added.
    """

    __slots__ = ("__weakref__",)

    #: The class of the per-thread cells (the tests build both cores' pairs).
    _cell_type: type[StripedCounterHandle] = StripedCounterHandle

    def __init__(self, value: int = 0) -> None:
        if _type(value) is not _int:
            value = _check_delta(value, "value")
        try:
            self._per_thread  # noqa: B018  # ``__init__`` called again: start over at value
        except AttributeError:
            pass
        else:
            self.sum_then_reset()
            self.add(value)
            return
        state = _StripedState()
        state.base = value
        per_thread: PerThread[StripedCounterHandle] = PerThread(self._cell_type, state.fold)
        self._init_core(per_thread, state)

    def _add_shared(self, delta: int) -> None:
        """The add of a thread that cannot own a cell (exiting or foreign)."""
        with self._lock:
            self._state.base += delta

    def _slow_add(self, delta: int) -> None:
        """Add a checked ``delta`` when the thread's cell is not at hand:
        register the thread (or add into the shared base if it cannot own a cell)."""
        try:
            cell = self._local.value
        except AttributeError:
            cell = self._per_thread.register()
            if cell is None:
                return self._add_shared(delta)
        cell.add(delta)
        return None

    def handle(self) -> StripedCounterHandle:
        """The calling thread's cell, to increment without any lookup.

        Thread-confined: use it only in the calling thread. ``RuntimeError``
        in a thread that cannot own a cell (during its teardown, or unknown
        to ``threading``): use :meth:`increment` there.
        """
        try:
            cell: StripedCounterHandle = self._local.value
        except AttributeError:
            new = self._per_thread.register()
            if new is None:
                raise RuntimeError(
                    "this thread cannot own a counter cell (it is exiting, or threading "
                    "does not know it); call increment() instead"
                ) from None
            return new
        return cell

    def reset(self) -> None:
        """Reset to zero (deltas added concurrently are either kept or reset)."""
        self.sum_then_reset()

    def __int__(self) -> int:
        return self.value()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(value={self.value()})"

    def __reduce__(self) -> Any:
        state = getattr(self, "__dict__", None)
        return (type(self), (self.value(),), state or None)


# --------------------------------------------------------------------------
# ConcurrentCounter
# --------------------------------------------------------------------------


class _PyConcurrentShardCore:
    """The hot method of :class:`ConcurrentCounterHandle` (pure-Python core).

    The specification of the native ``_ConcurrentShardCore``: same method,
    same exceptions and messages. ``_counts`` is written by the owner only
    (and by the counter's compound writes, made by the owner under the write
    lock); ``clear()`` replaces it with a new dict, from any thread, and never
    mutates the old one. ``_retired`` is set under the registry lock when the
    shard's thread has exited (its counts are then final).
    """

    __slots__ = ("_counts", "_retired")

    def __init__(self) -> None:
        self._counts: dict[Any, int] = {}
        self._retired = False

    def increment(self, key: Any, delta: int = 1) -> None:
        """Add ``delta`` (default 1) to the count of ``key``."""
        if _type(delta) is not _int:
            delta = _check_delta(delta)
        d = self._counts
        d[key] = d.get(key, 0) + delta


class _PyConcurrentCounterCore:
    """The hot method of :class:`ConcurrentCounter` (pure-Python core).

    The specification of the native ``_ConcurrentCounterCore``, which finds
    the calling thread's shard in a per-thread cache and otherwise calls
    ``ConcurrentCounter._slow_increment``.
    """

    __slots__ = ("_local", "_lock", "_per_thread", "_state")

    def _init_core(
        self, per_thread: PerThread[ConcurrentCounterHandle[Any]], state: _CounterState[Any]
    ) -> None:
        self._per_thread = per_thread
        self._local = per_thread.local
        self._lock = per_thread.lock
        self._state = state

    if TYPE_CHECKING:

        def _add_shared(self, pairs: Iterable[tuple[Any, int]]) -> None: ...  # ConcurrentCounter's

    def increment(self, key: Any, delta: int = 1) -> None:
        """Add ``delta`` (default 1) to the count of ``key``.

        ``TypeError`` (and no change) if ``delta`` is not an int or ``key`` is
        unhashable.
        """
        if _type(delta) is not _int:
            delta = _check_delta(delta)
        try:
            shard = self._local.value
        except AttributeError:
            shard = self._per_thread.register()
            if shard is None:
                hash(key)
                return self._add_shared(((key, delta),))
        d = shard._counts
        d[key] = d.get(key, 0) + delta
        return None


if TYPE_CHECKING:
    _ShardCore = _PyConcurrentShardCore
    _CCounterCore = _PyConcurrentCounterCore
else:
    _ShardCore = native_attr("_ConcurrentShardCore")
    _CCounterCore = native_attr("_ConcurrentCounterCore")
    if _ShardCore is None or _CCounterCore is None:  # both native or both pure
        _ShardCore = _PyConcurrentShardCore
        _CCounterCore = _PyConcurrentCounterCore


class ConcurrentCounterHandle(_ShardCore, Generic[K]):
    """The calling thread's own shard of a :class:`ConcurrentCounter`.

    Returned by :meth:`ConcurrentCounter.handle` (do not instantiate it).
    Incrementing through it
    updates a dict this thread created and alone writes: no lock, no shared
    object. Thread-confined (see :class:`StripedCounterHandle`). It cannot be
    copied or pickled (``TypeError``).

    **Thread safety.** Thread-confined: only the thread that obtained it may
    call ``increment``; the counter's readers see its counts from any thread.

    **Atomic operations.** None of its own: an increment updates this
    thread's dict; the counter's read consistency applies.

    **Iteration.** Not iterable; iterate the :class:`ConcurrentCounter`.

    **Blocking and timeouts.** Never blocks.

    **Complexity.** ``increment`` is O(1) on average (one dict update of a
    dict no other thread writes).
    """

    __slots__ = ()

    if TYPE_CHECKING:
        _counts: dict[K, int]

        def increment(self, key: K, delta: int = 1) -> None: ...

    def __repr__(self) -> str:
        return f"<{type(self).__name__} keys={len(self._counts)}>"

    def __reduce__(self) -> Any:
        raise TypeError(f"cannot pickle or copy a {type(self).__name__}: it is a thread's shard")


class _CounterState(Generic[K]):
    """Copy-on-write read view of a ConcurrentCounter, replaced under the lock.

    ``view`` is ``(base, shards)``: ``base`` is a dict never mutated after it
    is published; ``shards`` holds the live shards, the retired ones not
    yet merged into ``base``, and ``shared``: the shard of the threads that
    cannot own one (exiting or foreign), written only under the registry
    lock and never retired. A reader takes ``view`` once (one atomic
    attribute read) and needs no lock: a shard is either in ``shards`` or
    merged into that ``base``, never both.

    ``add_shard`` and ``retire`` run under the registry lock; ``retire`` runs
    in ``_Token.__del__``, possibly during interpreter shutdown after module
    globals were cleared: it uses only attributes.
    """

    __slots__ = ("merge_every", "shared", "view")

    def __init__(self, handle_type: type[ConcurrentCounterHandle[Any]]) -> None:
        self.merge_every = _MERGE_EVERY
        self.shared: ConcurrentCounterHandle[K] = handle_type()
        base: dict[K, int] = {}
        self.view: tuple[dict[K, int], tuple[ConcurrentCounterHandle[K], ...]] = (
            base,
            (self.shared,),
        )

    def add_shard(self, shard: ConcurrentCounterHandle[K]) -> None:
        base, shards = self.view
        if any(s is shard for s in shards):  # idempotent: a registration may be repeated
            return
        self.view = (base, (*shards, shard))

    def retire(self, shard: ConcurrentCounterHandle[K]) -> None:
        shard._retired = True  # its thread is gone: _counts is final
        base, shards = self.view
        retired = [s for s in shards if s._retired]
        if len(retired) < self.merge_every:
            return
        merged = dict(base)
        for s in retired:
            for key, n in s._counts.items():
                total = merged[key] + n if key in merged else n
                if total:
                    merged[key] = total
                elif key in merged:
                    del merged[key]
        self.view = (merged, tuple(s for s in shards if not s._retired))


def _counted(
    iterable: Iterable[K] | Mapping[K, int] | None, kwds: dict[str, int], sign: int
) -> list[tuple[K, int]]:
    """Validate the arguments of ``update``/``subtract``/the constructor first
    (nothing is added if any count is not an int or any key is unhashable)."""
    pairs: list[tuple[Any, int]] = []
    if iterable is not None:
        if isinstance(iterable, ConcurrentCounter):
            iterable = iterable.snapshot()
        if isinstance(iterable, Mapping):
            for key, count in iterable.items():
                n = count if _type(count) is _int else _check_delta(count, "count")
                hash(key)
                pairs.append((key, n * sign))
        else:
            for key in iterable:
                hash(key)
                pairs.append((key, sign))
    for key, count in kwds.items():
        n = count if _type(count) is _int else _check_delta(count, "count")
        pairs.append((key, n * sign))
    return pairs


def _as_counter(other: object) -> collections.Counter[Any] | None:
    if isinstance(other, ConcurrentCounter):
        return other.snapshot()
    if isinstance(other, collections.Counter):
        return other
    return None


class ConcurrentCounter(_CCounterCore, Generic[K]):
    """A thread-safe ``collections.Counter`` for counting things from many threads.

    ``c.increment(key)`` adds to the calling thread's own dict (its shard):
    no lock, no contention, whatever the keys. Reads merge the shards. For
    hot loops take the thread's handle once, ``h = c.handle()``, and call
    ``h.increment(key)``. It offers ``collections.Counter``'s interface:
    ``ConcurrentCounter("abca")``, ``update``/``subtract`` from an iterable,
    a mapping or keywords, ``c[k]`` (0 when missing), ``c[k] = n``,
    ``del c[k]``, ``pop``, ``popitem``, ``setdefault``, ``elements``,
    ``most_common``, ``total``, ``keys``/``values``/``items``, ``==`` and
    the multiset comparisons with Counters and mappings, ``+ - | &`` and
    unary ``+``/``-`` returning ``collections.Counter`` snapshots, in-place
    ``+= -= |= &=``, ``copy()``, ``copy.copy``/``deepcopy`` and pickling
    (a new, independent counter). It is registered as a
    ``collections.abc.MutableMapping`` but is not a ``dict``.

    Differences from ``collections.Counter``: counts are ``int`` (a non-int
    count raises ``TypeError`` and changes nothing); a key whose count is
    zero is absent (``c[k] = 0`` and ``subtract`` down to zero remove it:
    ``k in c`` is False, it is not listed), where a ``Counter`` keeps zero
    counts; iteration order is insertion order only for what one thread
    counted; it is unhashable like ``Counter``; the constructor, ``update``
    and ``c[k] = n`` never call an overridden ``__setitem__`` or ``get``.

    **Thread safety.** All methods may be called from any thread at any time.
    Increments are never lost: each one is counted exactly once, including
    those made by a thread while it exits (unless a concurrent :meth:`clear`
    or assignment discards it, see below). A :class:`ConcurrentCounterHandle`
    is confined to the thread that obtained it. Keys' ``__hash__``/``__eq__``
    run without any lock held during increments and reads; compound writes
    (below) run them under the write lock, which only other compound writes
    take; the merge of exited threads' shards, and the adds of a thread that
    cannot own a shard (see the module doc), run them under the internal
    registry lock.

    **Atomic operations.** Each increment is atomic; ``update`` and
    ``subtract`` validate everything first, then add key by key (a
    concurrent reader may see part of it). *Compound writes* - ``c[k] = n``,
    ``del c[k]``, ``pop``, ``popitem``, ``setdefault``, the in-place
    operators and ``clear()`` - are serialised with each other by one write
    lock, so each is atomic with respect to the others (two ``c[k] = n``
    never add up; ``pop`` returns a count no other ``pop`` also returns); a
    plain increment that overlaps one is either applied before it
    (overwritten by ``c[k] = n``) or after it (added on top), never lost
    twice or counted twice. Single-key compound writes are atomic against an
    exception raised inside them (``KeyboardInterrupt``); multi-key ones
    (in-place operators, ``clear()``) apply key by key or thread by thread
    and may be left partly done by one. Reads are lock-free and weakly
    consistent: ``c[key]`` adds up the key's count in each shard one after
    another, so while other threads increment it may return a count that
    never existed at a single instant (with only positive deltas: a count
    between the ones at the start and at the end of the call); ``snapshot``
    and every read built on it (``items``, ``total``, ``most_common``,
    ``len``, ``==``, the operators) copy each shard atomically but not all
    shards at the same instant. When no thread is incrementing, every read is
    exact. ``clear()`` is not atomic with respect to concurrent increments: an
    increment that finished before ``clear()`` began is discarded, one that
    starts after it returns is kept, and one that overlaps it is either kept
    or discarded (never resurrected).

    **Iteration.** ``iter(c)``, ``keys()``, ``values()``, ``items()``,
    ``elements()`` and ``most_common()`` work on a snapshot taken when they
    are called (views and lists of a new ``Counter``, not live views); they
    never raise because of concurrent updates.

    **Blocking and timeouts.** Increments and reads never block. Compound
    writes wait only for other compound writes; ``clear()`` and a thread's
    first increment also take an internal lock shared with thread
    registration/exit. Critical sections are short; there is nothing to
    time out.

    **Complexity.** ``increment``: O(1) dict update, no lock. ``c[key]``,
    ``get``, ``in``, ``c[k] = n``, ``del``, ``pop``: O(threads).
    ``snapshot`` and the reads built on it: O(threads x keys). Memory: each
    live thread that has incremented keeps a dict of the keys it counted
    (until ``clear()``); shards of exited threads are merged into a base
    dict.
    """

    __slots__ = ("__weakref__", "_write_lock")

    if TYPE_CHECKING:
        _local: Any
        _lock: Any
        _per_thread: PerThread[ConcurrentCounterHandle[K]]
        _state: _CounterState[K]

    #: The class of the per-thread shards (the tests build both cores' pairs).
    _handle_type: type[ConcurrentCounterHandle[Any]] = ConcurrentCounterHandle

    def __init__(
        self, iterable: Iterable[K] | Mapping[K, int] | None = None, /, **kwds: int
    ) -> None:
        if getattr(self, "_state", None) is None:  # else ``__init__`` called again: add
            state: _CounterState[K] = _CounterState(self._handle_type)
            per_thread: PerThread[ConcurrentCounterHandle[K]] = PerThread(
                self._handle_type, state.retire, on_register=state.add_shard
            )
            self._write_lock = threading.Lock()
            self._init_core(per_thread, state)
        if iterable is not None or kwds:
            self.update(iterable, **kwds)

    @classmethod
    def fromkeys(cls, iterable: object, v: object = None) -> Any:
        """Not supported, as for ``collections.Counter`` (``NotImplementedError``)."""
        raise NotImplementedError(
            "ConcurrentCounter.fromkeys() is undefined.  Use ConcurrentCounter(iterable) instead."
        )

    # -- increments ---------------------------------------------------------

    def _add_shared(self, pairs: Iterable[tuple[K, int]]) -> None:
        """Adds of a thread that cannot own a shard: into the shared shard, locked."""
        with self._lock:
            d = self._state.shared._counts
            for key, n in pairs:
                d[key] = d.get(key, 0) + n

    if TYPE_CHECKING:

        def increment(self, key: K, delta: int = 1) -> None:
            """Add ``delta`` (default 1) to the count of ``key``."""

    # Called by the native core's increment when the thread's shard is not at
    # hand (registers the thread, or adds into the shared shard if it cannot
    # own one): the pure-Python increment, which is exactly that path.
    _slow_increment = _PyConcurrentCounterCore.increment

    def _add_pairs(self, pairs: list[tuple[K, int]]) -> None:
        try:
            shard = self._local.value
        except AttributeError:
            shard = self._per_thread.register()
            if shard is None:
                return self._add_shared(pairs)
        d = shard._counts
        for key, n in pairs:
            d[key] = d.get(key, 0) + n
        return None

    def update(self, iterable: Iterable[K] | Mapping[K, int] | None = None, /, **kwds: int) -> None:
        """Count each element of an iterable, or add a mapping's counts (and keywords').

        Like ``Counter.update``. Everything is checked first: a non-int count
        or an unhashable key raises ``TypeError`` and nothing is added.
        Elements are then added one by one (a concurrent reader may see part
        of them).
        """
        self._add_pairs(_counted(iterable, kwds, 1))

    def subtract(
        self, iterable: Iterable[K] | Mapping[K, int] | None = None, /, **kwds: int
    ) -> None:
        """Like :meth:`update` but subtract (``Counter.subtract``); counts may go negative."""
        self._add_pairs(_counted(iterable, kwds, -1))

    def handle(self) -> ConcurrentCounterHandle[K]:
        """The calling thread's shard, to increment without any lookup.

        Thread-confined: use it only in the calling thread. ``RuntimeError``
        in a thread that cannot own a shard (during its teardown, or unknown
        to ``threading``): use :meth:`increment` there.
        """
        try:
            shard: ConcurrentCounterHandle[K] = self._local.value
        except AttributeError:
            new = self._per_thread.register()
            if new is None:
                raise RuntimeError(
                    "this thread cannot own a counter shard (it is exiting, or threading "
                    "does not know it); call increment() instead"
                ) from None
            return new
        return shard

    # -- reads ------------------------------------------------------------

    def _count(self, key: K) -> int:
        hash(key)  # TypeError for unhashable keys, before anything else
        base, shards = self._state.view
        # ``in`` then ``[]``: lock-free on dicts of other threads (dict.get
        # is not, on 3.13t). Shards never lose keys, so [] cannot fail.
        total = base[key] if key in base else 0  # noqa: SIM401
        for shard in shards:
            d = shard._counts
            if key in d:
                total += d[key]
        return total

    def __getitem__(self, key: K) -> int:
        """The count of ``key``; 0 when absent."""
        return self._count(key)

    @overload
    def get(self, key: K) -> int | None: ...
    @overload
    def get(self, key: K, default: D) -> int | D: ...
    def get(self, key: K, default: object = None) -> object:
        """The count of ``key``, or ``default`` (``None``) when it is absent (zero)."""
        n = self._count(key)
        return n if n else default

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` has a non-zero count."""
        return bool(self._count(key))  # type: ignore[arg-type]

    def snapshot(self) -> collections.Counter[K]:
        """A new ``collections.Counter`` of the non-zero counts."""
        base, shards = self._state.view
        out: collections.Counter[K] = collections.Counter(base)
        for shard in shards:
            out.update(shard._counts.copy())  # copy: atomic against its owner
        for key in [k for k, n in out.items() if not n]:
            del out[key]
        return out

    def total(self) -> int:
        """The sum of all counts."""
        base, shards = self._state.view
        total: int = sum(base.values())
        for shard in shards:
            total += sum(shard._counts.copy().values())
        return total

    def most_common(self, n: int | None = None) -> list[tuple[K, int]]:
        """The ``n`` highest counts (all when ``None``), highest first."""
        return self.snapshot().most_common(n)

    def elements(self) -> Iterator[K]:
        """Each key repeated as many times as its count (of a snapshot; positive counts only)."""
        return self.snapshot().elements()

    def keys(self) -> KeysView[K]:
        """The keys with a non-zero count (a view of a snapshot)."""
        return self.snapshot().keys()

    def values(self) -> ValuesView[int]:
        """The non-zero counts (a view of a snapshot)."""
        return self.snapshot().values()

    def items(self) -> ItemsView[K, int]:
        """``(key, count)`` pairs with non-zero counts (a view of a snapshot)."""
        return self.snapshot().items()

    def __iter__(self) -> Iterator[K]:
        """Iterate over the keys of a snapshot."""
        return iter(list(self.snapshot()))

    def __reversed__(self) -> Iterator[K]:
        """Iterate over the keys of a snapshot in reverse order."""
        return reversed(list(self.snapshot()))

    def __len__(self) -> int:
        """Number of keys with a non-zero count."""
        return len(self.snapshot())

    # -- compound writes (serialised by the write lock) ---------------------

    def _own_counts(self) -> dict[K, int]:
        """The dict this thread writes compound deltas into (call with the write lock).

        The calling thread's shard (it is its owner, so the write races with
        nobody), or the shared shard for a thread that cannot own one.
        """
        try:
            shard = self._local.value
        except AttributeError:
            shard = self._per_thread.register()
            if shard is None:
                shared: dict[K, int] = self._state.shared._counts
                return shared
        counts: dict[K, int] = shard._counts
        return counts

    def _apply(self, key: K, delta: int) -> None:
        """Add ``delta`` to this thread's count of ``key`` (write lock held).

        One store, so an exception leaves the count old or new. Compound
        writes always add a *difference to what they read* (never store an
        absolute count): an increment that lands after the read is kept on
        top, one that landed before it is part of what was read.
        """
        if delta:
            d = self._own_counts()
            if d is self._state.shared._counts:  # written only under the registry lock
                with self._lock:
                    d[key] = d.get(key, 0) + delta
            else:
                d[key] = d.get(key, 0) + delta

    def _set(self, key: K, n: int) -> int:
        """Make the count of ``key`` ``n``; return the previous count (one read).
        Write lock held."""
        cur = self._count(key)
        self._apply(key, n - cur)
        return cur

    def __setitem__(self, key: K, n: int) -> None:
        """Set the count of ``key`` to ``n`` (an int; 0 removes the key). Atomic."""
        if _type(n) is not _int:
            n = _check_delta(n, "count")
        hash(key)
        with self._write_lock:
            self._set(key, n)

    def __delitem__(self, key: K) -> None:
        """Remove ``key`` (no ``KeyError`` when absent, like ``Counter``). Atomic."""
        hash(key)
        with self._write_lock:
            self._set(key, 0)

    _pop_missing: Any = object()

    def pop(self, key: K, default: Any = _pop_missing) -> Any:
        """Remove ``key`` and return its count; ``default`` or ``KeyError`` when absent. Atomic."""
        hash(key)
        with self._write_lock:
            cur = self._set(key, 0)
        if cur:
            return cur
        if default is ConcurrentCounter._pop_missing:
            raise KeyError(key)
        return default

    def popitem(self) -> tuple[K, int]:
        """Remove and return some ``(key, count)`` pair; ``KeyError`` when empty. Atomic."""
        with self._write_lock:
            for key in reversed(list(self.snapshot())):
                cur = self._set(key, 0)
                if cur:
                    return key, cur
        raise KeyError("popitem(): ConcurrentCounter is empty")

    def setdefault(self, key: K, default: int = 0) -> int:
        """The count of ``key``; if it is absent, set it to ``default`` first. Atomic."""
        if _type(default) is not _int:
            default = _check_delta(default, "default")
        hash(key)
        with self._write_lock:
            cur = self._count(key)  # one read decides and sizes the write
            if cur:
                return cur
            self._apply(key, default)
            return default

    def clear(self) -> None:
        """Reset every count to zero and release the shards' memory."""
        with self._write_lock, self._lock:
            state = self._state
            _, shards = state.view
            live = tuple(s for s in shards if not s._retired)
            for shard in live:
                shard._counts = {}
            state.view = ({}, live)

    def _rewrite(self, target: collections.Counter[K], before: collections.Counter[K]) -> None:
        """Apply ``target - before`` key by key (write lock held), in the
        target's order (new keys are then listed in ``Counter``'s order).
        Increments that land after ``before`` was read are kept on top."""
        for key in [*target, *(k for k in before if k not in target)]:
            self._apply(key, target[key] - before[key])

    def _inplace(self, other: object, op: str) -> ConcurrentCounter[K]:
        o = _as_counter(other)
        if o is None:
            return NotImplemented  # type: ignore[no-any-return]
        with self._write_lock:
            before = self.snapshot()
            target = getattr(collections.Counter, op)(before.copy(), o)
            self._rewrite(target, before)
        return self

    def __iadd__(self, other: object) -> ConcurrentCounter[K]:
        """``c += other``: add ``other``'s counts, drop non-positive counts (as ``Counter``)."""
        return self._inplace(other, "__iadd__")

    def __isub__(self, other: object) -> ConcurrentCounter[K]:
        """``c -= other``: subtract, then drop non-positive counts (as ``Counter``)."""
        return self._inplace(other, "__isub__")

    def __ior__(self, other: object) -> ConcurrentCounter[K]:
        """``c |= other``: per-key maximum, non-positive counts dropped (as ``Counter``)."""
        return self._inplace(other, "__ior__")

    def __iand__(self, other: object) -> ConcurrentCounter[K]:
        """``c &= other``: per-key minimum, non-positive counts dropped (as ``Counter``)."""
        return self._inplace(other, "__iand__")

    # -- comparisons and operators on snapshots -----------------------------

    __hash__ = None  # type: ignore[assignment]  # mutable, like Counter

    def __eq__(self, other: object) -> bool:
        """Equal to a Counter/ConcurrentCounter with the same non-zero counts, or a
        mapping with exactly the same items."""
        if isinstance(other, ConcurrentCounter):
            other = other.snapshot()
        if isinstance(other, Mapping):
            return bool(self.snapshot() == other)
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return NotImplemented if eq is NotImplemented else not eq

    def _compare(self, other: object, op: str) -> Any:
        o = _as_counter(other)
        if o is None:
            return NotImplemented
        return getattr(self.snapshot(), op)(o)

    def __le__(self, other: object) -> bool:
        return self._compare(other, "__le__")  # type: ignore[no-any-return]

    def __lt__(self, other: object) -> bool:
        return self._compare(other, "__lt__")  # type: ignore[no-any-return]

    def __ge__(self, other: object) -> bool:
        return self._compare(other, "__ge__")  # type: ignore[no-any-return]

    def __gt__(self, other: object) -> bool:
        return self._compare(other, "__gt__")  # type: ignore[no-any-return]

    def _binary(self, other: object, op: str, reflected: bool = False) -> Any:
        o = _as_counter(other)
        if o is None:
            return NotImplemented
        snap = self.snapshot()
        return (
            getattr(collections.Counter, op)(o, snap)
            if reflected
            else getattr(collections.Counter, op)(snap, o)
        )

    def __add__(self, other: object) -> collections.Counter[K]:
        return self._binary(other, "__add__")  # type: ignore[no-any-return]

    def __radd__(self, other: object) -> collections.Counter[K]:
        return self._binary(other, "__add__", True)  # type: ignore[no-any-return]

    def __sub__(self, other: object) -> collections.Counter[K]:
        return self._binary(other, "__sub__")  # type: ignore[no-any-return]

    def __rsub__(self, other: object) -> collections.Counter[K]:
        return self._binary(other, "__sub__", True)  # type: ignore[no-any-return]

    def __or__(self, other: object) -> collections.Counter[K]:
        return self._binary(other, "__or__")  # type: ignore[no-any-return]

    def __ror__(self, other: object) -> collections.Counter[K]:
        return self._binary(other, "__or__", True)  # type: ignore[no-any-return]

    def __and__(self, other: object) -> collections.Counter[K]:
        return self._binary(other, "__and__")  # type: ignore[no-any-return]

    def __rand__(self, other: object) -> collections.Counter[K]:
        return self._binary(other, "__and__", True)  # type: ignore[no-any-return]

    def __pos__(self) -> collections.Counter[K]:
        """The positive counts (a ``Counter``)."""
        return +self.snapshot()

    def __neg__(self) -> collections.Counter[K]:
        """The negated negative counts (a ``Counter``)."""
        return -self.snapshot()

    # -- copies -------------------------------------------------------------

    def copy(self) -> ConcurrentCounter[K]:
        """A new, independent counter of the same class with the current counts."""
        return type(self)(self.snapshot())

    def __reduce__(self) -> Any:
        state = getattr(self, "__dict__", None)
        return (type(self), (dict(self.snapshot()),), state or None)

    def __repr__(self) -> str:
        snap = self.snapshot()
        if not snap:
            return f"{type(self).__name__}()"
        try:
            d = dict(snap.most_common())
        except TypeError:  # keys whose counts cannot be ordered
            d = dict(snap)
        return f"{type(self).__name__}({d!r})"


MutableMapping.register(ConcurrentCounter)
