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
"""

from __future__ import annotations

import collections
from collections.abc import Hashable, Iterable, Iterator, Mapping
from typing import Generic, TypeVar, overload

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


def _check_delta(delta: object) -> int:
    """Slow path of the delta check: int subclasses except bool are accepted."""
    if isinstance(delta, int) and not isinstance(delta, bool):
        return int(delta)
    raise TypeError(f"delta must be an int, not {type(delta).__name__}")


# --------------------------------------------------------------------------
# StripedCounter
# --------------------------------------------------------------------------


class StripedCounterHandle:
    """The calling thread's own cell of a :class:`StripedCounter`.

    Returned by :meth:`StripedCounter.handle` (do not instantiate it: a
    handle made directly belongs to no counter). Incrementing through a handle
    touches only this object, which the thread created and alone writes: no
    lock, no shared reference counts. It is *thread-confined*, like Java's
    ``ThreadLocalRandom.current()``: use it only in the thread that called
    ``handle()`` (each thread calls ``handle()`` itself; calling it again in
    the same thread returns the same handle). Increments made through a
    handle from another thread race with its owner and can be lost.

    **Thread safety.** Thread-confined: only the thread that obtained it may
    call ``increment``/``add``; the counter's readers (``value()`` and friends,
    from any thread) read it safely at any time.

    **Atomic operations.** None of its own: an increment is a plain update of
    this thread's cell, made visible to readers without a lock.

    **Iteration.** Not iterable.

    **Blocking and timeouts.** Never blocks.

    **Complexity.** ``increment``/``add`` are O(1) and touch no shared object.
    """

    __slots__ = ("_taken", "_value")

    def __init__(self) -> None:
        self._value = 0  # written only by the owning thread
        self._taken = 0  # written only under the counter's lock (resets)

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

    def __repr__(self) -> str:
        return f"<{type(self).__name__} contribution={self._value - self._taken}>"


class _StripedState:
    """Folded contributions of exited threads (guarded by the registry lock)."""

    __slots__ = ("base",)

    def __init__(self) -> None:
        self.base = 0

    def fold(self, cell: StripedCounterHandle) -> None:
        self.base += cell._value - cell._taken


class StripedCounter:
    """A sum that many threads add to without contention, like Java's ``LongAdder``.

    Each thread adds into a cell it owns; :meth:`value` sums the cells. For
    the hottest loops take the thread's handle once, ``h = c.handle()``, and
    call ``h.increment()``: that path touches no shared object at all.
    Deltas must be ``int`` (``bool``, ``float`` and others raise
    ``TypeError`` and change nothing); ints are unbounded, so there is no
    overflow.

    **Thread safety.** All methods may be called from any thread at any time.
    ``increment``/``add``/``decrement`` are never lost: every delta is counted
    exactly once. A :class:`StripedCounterHandle` is confined to the thread
    that obtained it.

    **Atomic operations.** Each update is atomic with respect to every read
    and reset (no torn or lost update), but reads are not snapshots:
    :meth:`value` adds up the cells one after another, so while other threads
    write it returns a sum that may never have existed at a single instant
    (with only positive deltas, a value between the counts at the start and at
    the end of the call). Once writers are quiescent it is exact.
    :meth:`sum_then_reset` is exact even under concurrent writes: each delta
    is reported by exactly one ``sum_then_reset`` call or remains in the
    counter; :meth:`reset` is ``sum_then_reset`` discarding the sum. Cells of
    threads that exit are folded into a base, so nothing is lost and memory
    does not grow with thread churn.

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

    __slots__ = ("__weakref__", "_local", "_lock", "_per_thread", "_state")

    def __init__(self) -> None:
        state = _StripedState()
        per_thread: PerThread[StripedCounterHandle] = PerThread(StripedCounterHandle, state.fold)
        self._per_thread = per_thread
        self._local = per_thread.local
        self._lock = per_thread.lock
        self._state = state

    def increment(self, delta: int = 1) -> None:
        """Add ``delta`` (default 1)."""
        if _type(delta) is not _int:
            delta = _check_delta(delta)
        try:
            cell = self._local.value
        except AttributeError:
            cell = self._per_thread.register()
        cell._value += delta

    def add(self, delta: int) -> None:
        """Add ``delta``."""
        if _type(delta) is not _int:
            delta = _check_delta(delta)
        try:
            cell = self._local.value
        except AttributeError:
            cell = self._per_thread.register()
        cell._value += delta

    def decrement(self, delta: int = 1) -> None:
        """Subtract ``delta`` (default 1)."""
        if _type(delta) is not _int:
            delta = _check_delta(delta)
        try:
            cell = self._local.value
        except AttributeError:
            cell = self._per_thread.register()
        cell._value -= delta

    def handle(self) -> StripedCounterHandle:
        """The calling thread's cell, to increment without any lookup.

        Thread-confined: use it only in the calling thread.
        """
        try:
            cell: StripedCounterHandle = self._local.value
        except AttributeError:
            return self._per_thread.register()
        return cell

    def value(self) -> int:
        """The sum of all deltas added (since the last reset).

        Exact when no thread is adding; otherwise not a snapshot.
        """
        with self._lock:
            total = self._state.base
            for cell in self._per_thread.values():
                total += cell._value - cell._taken
            return total

    def sum_then_reset(self) -> int:
        """Return :meth:`value` and reset to zero, losing no concurrent delta.

        Each delta is counted by exactly one ``sum_then_reset`` (or stays in
        the counter), even when other threads add meanwhile.
        """
        with self._lock:
            state = self._state
            total = state.base
            state.base = 0
            for cell in self._per_thread.values():
                v = cell._value  # read once: the owner may be adding
                total += v - cell._taken
                cell._taken = v
            return total

    def reset(self) -> None:
        """Reset to zero (deltas added concurrently are either kept or reset)."""
        self.sum_then_reset()

    def __int__(self) -> int:
        return self.value()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(value={self.value()})"


# --------------------------------------------------------------------------
# ConcurrentCounter
# --------------------------------------------------------------------------


class ConcurrentCounterHandle(Generic[K]):
    """The calling thread's own shard of a :class:`ConcurrentCounter`.

    Returned by :meth:`ConcurrentCounter.handle` (do not instantiate it).
    Incrementing through it
    updates a dict this thread created and alone writes: no lock, no shared
    object. Thread-confined (see :class:`StripedCounterHandle`).

    **Thread safety.** Thread-confined: only the thread that obtained it may
    call ``increment``; the counter's readers see its counts from any thread.

    **Atomic operations.** None of its own: an increment updates this
    thread's dict; the counter's read consistency applies.

    **Iteration.** Not iterable; iterate the :class:`ConcurrentCounter`.

    **Blocking and timeouts.** Never blocks.

    **Complexity.** ``increment`` is O(1) on average (one dict update of a
    dict no other thread writes).
    """

    __slots__ = ("_counts", "_retired")

    def __init__(self) -> None:
        # Written by the owner only; replaced (never mutated) by clear().
        self._counts: dict[K, int] = {}
        self._retired = False  # set under the registry lock at thread exit

    def increment(self, key: K, delta: int = 1) -> None:
        """Add ``delta`` (default 1) to the count of ``key``."""
        if _type(delta) is not _int:
            delta = _check_delta(delta)
        d = self._counts
        d[key] = d.get(key, 0) + delta

    def __repr__(self) -> str:
        return f"<{type(self).__name__} keys={len(self._counts)}>"


class _CounterState(Generic[K]):
    """Copy-on-write read view of a ConcurrentCounter, replaced under the lock.

    ``view`` is ``(base, shards)``: ``base`` is a dict never mutated after it
    is published; ``shards`` holds the live shards and the retired ones not
    yet merged into ``base``. A reader takes ``view`` once (one atomic
    attribute read) and needs no lock: a shard is either in ``shards`` or
    merged into that ``base``, never both.
    """

    __slots__ = ("view",)

    def __init__(self) -> None:
        shards: tuple[ConcurrentCounterHandle[K], ...] = ()
        base: dict[K, int] = {}
        self.view: tuple[dict[K, int], tuple[ConcurrentCounterHandle[K], ...]] = (base, shards)

    def add_shard(self, shard: ConcurrentCounterHandle[K]) -> None:
        base, shards = self.view
        self.view = (base, (*shards, shard))

    def retire(self, shard: ConcurrentCounterHandle[K]) -> None:
        shard._retired = True  # its thread is gone: _counts is final
        base, shards = self.view
        retired = [s for s in shards if s._retired]
        if len(retired) < _MERGE_EVERY:
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


class ConcurrentCounter(Generic[K]):
    """A thread-safe ``collections.Counter`` for counting things from many threads.

    ``c.increment(key)`` adds to the calling thread's own dict (its shard):
    no lock, no contention, whatever the keys. Reads merge the shards. For
    hot loops take the thread's handle once, ``h = c.handle()``, and call
    ``h.increment(key)``. Counts are ints (deltas may be negative); a key
    whose count is zero is absent (``key in c`` is False, it is not listed),
    and ``c[key]`` is 0 for absent keys, as with ``Counter``.

    **Thread safety.** All methods may be called from any thread at any time.
    Increments are never lost: each one is counted exactly once (unless a
    concurrent :meth:`clear` discards it, see below). A
    :class:`ConcurrentCounterHandle` is confined to the thread that obtained
    it. Keys' ``__hash__``/``__eq__`` run without any lock held during
    increments and reads; they run under the internal lock only when shards
    of exited threads are merged.

    **Atomic operations.** Each increment is atomic; ``update(iterable)``
    validates everything first, then adds element by element (a concurrent
    reader may see part of it). Reads are lock-free and
    weakly consistent: ``c[key]`` adds up the key's count in each shard one
    after another, so while other threads increment it may return a count
    that never existed at a single instant (with only positive deltas: a count
    between the ones at the start and at the end of the call); ``snapshot``,
    ``items``, ``total``, ``most_common`` and ``len`` copy each shard
    atomically but not all shards at the same instant. When no thread is
    incrementing, every read is exact. ``clear()`` is not atomic with respect
    to concurrent increments: an increment that finished before ``clear()``
    began is discarded, one that starts after it returns is kept, and one that
    overlaps it is either kept or discarded (never resurrected).

    **Iteration.** ``iter(c)``, ``items()`` and ``most_common()`` work on a
    snapshot taken when they are called (a new ``Counter``/list); they never
    raise because of concurrent updates.

    **Blocking and timeouts.** Increments and reads never block. ``clear()``
    and a thread's first increment take an internal lock shared only with
    other ``clear()`` calls and thread registration/exit; there is nothing to
    time out.

    **Complexity.** ``increment``: O(1) dict update, no lock. ``c[key]``,
    ``get``, ``in``: O(threads). ``snapshot``, ``items``, ``total``, ``len``,
    ``most_common``: O(threads x keys). Memory: each live thread that has
    incremented keeps a dict of the keys it counted (until ``clear()``);
    shards of exited threads are merged into a base dict.
    """

    __slots__ = ("__weakref__", "_local", "_lock", "_per_thread", "_state")

    def __init__(self) -> None:
        state: _CounterState[K] = _CounterState()
        per_thread: PerThread[ConcurrentCounterHandle[K]] = PerThread(
            ConcurrentCounterHandle, state.retire, on_register=state.add_shard
        )
        self._per_thread = per_thread
        self._local = per_thread.local
        self._lock = per_thread.lock
        self._state = state

    def increment(self, key: K, delta: int = 1) -> None:
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
        d = shard._counts
        d[key] = d.get(key, 0) + delta

    def update(self, counts: Iterable[K] | Mapping[K, int]) -> None:
        """Count each element of an iterable, or add a mapping's counts.

        Like ``Counter.update``. All counts of a mapping are checked first: a
        non-int count raises ``TypeError`` and nothing is added. Elements are
        added one by one (a concurrent reader may see part of them).
        """
        if isinstance(counts, Mapping):
            pairs = list(counts.items())
            for i, (key, n) in enumerate(pairs):
                if _type(n) is not _int:
                    pairs[i] = (key, _check_delta(n))
                hash(key)
        else:
            pairs = [(key, 1) for key in counts]
            for key, _ in pairs:
                hash(key)
        try:
            shard = self._local.value
        except AttributeError:
            shard = self._per_thread.register()
        d = shard._counts
        for key, n in pairs:
            d[key] = d.get(key, 0) + n

    def handle(self) -> ConcurrentCounterHandle[K]:
        """The calling thread's shard, to increment without any lookup.

        Thread-confined: use it only in the calling thread.
        """
        try:
            shard: ConcurrentCounterHandle[K] = self._local.value
        except AttributeError:
            return self._per_thread.register()
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
    def get(self, key: K) -> int: ...
    @overload
    def get(self, key: K, default: D) -> int | D: ...
    def get(self, key: K, default: object = 0) -> object:
        """The count of ``key``, or ``default`` (0) when it is absent (zero)."""
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

    def items(self) -> list[tuple[K, int]]:
        """A list of ``(key, count)`` pairs with non-zero counts (a snapshot)."""
        return list(self.snapshot().items())

    def __iter__(self) -> Iterator[K]:
        """Iterate over the keys of a snapshot."""
        return iter(list(self.snapshot()))

    def __len__(self) -> int:
        """Number of keys with a non-zero count."""
        return len(self.snapshot())

    # -- writes -----------------------------------------------------------

    def clear(self) -> None:
        """Reset every count to zero and release the shards' memory."""
        with self._lock:
            state = self._state
            _, shards = state.view
            live = tuple(s for s in shards if not s._retired)
            for shard in live:
                shard._counts = {}
            state.view = ({}, live)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict(self.snapshot())!r})"
