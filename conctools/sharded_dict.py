"""ShardedDict: a concurrent mapping with atomic compound operations.

The map is split into a fixed (prime) number of *shards*; each shard is a
plain ``dict`` guarded by its own lock.  A key lives in shard
``hash(key) % shards``.

Two implementations of the hot single-key methods (``[]``, ``get``, ``in``,
stores, ``pop``, ``increment``, ``get_or_set``, ``compare_and_set``):
:class:`_PyShardedCore` below, the reference, and the C accelerator's
``conctools._native._ShardedCore`` (used when it is built, unless
``CONCTOOLS_PURE_PYTHON=1``), which handles keys of exact type ``str``,
``int``, ``float``, ``bytes`` and ``bool`` and calls the reference methods for
everything else.  Both lock a shard with the same lock object
(``threading.Lock``, or the accelerator's ``_ShardLock``, which Python code
takes with ``with`` and C code directly), so every compound operation on a
shard excludes every other one whichever implementation runs it.

* Single-key reads (``d[k]``, ``k in d``, ``get``) take no lock: on
  free-threaded CPython each ``dict`` operation is atomic on its own (the
  interpreter's per-object critical sections), and on GIL builds the GIL makes
  it so.
* Every write takes the key's shard lock, so compound operations
  (``increment``, ``compare_and_set``, ``compute``...) are atomic with respect
  to each other and to plain stores.
* Whole-map operations (``snapshot``, ``clear``) take every shard lock in
  index order.
* User code never runs under a shard lock, with one documented exception:
  the ``__eq__`` of keys whose hashes collide inside a shard (dicts compare
  keys while inserting and looking up).  Keys are hashed before any lock is
  taken; keys of types whose hash is not known to be trivial are stored
  wrapped together with their precomputed hash so the dict never calls
  ``__hash__`` again under the lock.

Hot paths avoid touching objects shared between threads where they can:
:meth:`ShardedDict.handle` returns a per-thread handle with the same methods
whose internal tuples are owned by the calling thread (see the docs page for
the measurements behind this).
"""

from __future__ import annotations

import reprlib
import threading
from collections.abc import (
    Callable,
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
from ._internal.sentinel import MISSING, MissingType
from ._internal.striping import PLAIN as _PLAIN
from ._internal.striping import HashedKey as _Key
from ._internal.striping import clear_all, subclass_state, with_all_locks
from ._internal.striping import shard_count as _shard_count
from ._internal.striping import unwrap as _unwrap
from ._internal.striping import wrap as _wrap
from ._internal.timeouts import Deadline, check_timeout

__all__ = ["ShardedDict", "ShardedDictHandle"]

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")
S = TypeVar("S")

_S = TypeVar("_S", bound="_ShardedBase[Any, Any]")


class _Reservation:
    """A pending ``compute_if_absent`` load of one key.

    ``running`` is held by the loading thread (taken with ``with``, so no
    exception can leave it held) for the whole time the reservation may be
    registered: a registered reservation whose ``running`` lock is free, or
    which is ``complete``, is finished and may be dropped by anyone.
    ``failed`` stays ``True`` unless the load stored a value.

    Waiters do not use ``threading.Event``/``Condition`` (an interrupt inside
    their Python-level ``__enter__`` can leave their internal lock held, and
    the loader's ``set()`` would then block for good): each waiter parks on
    a private lock it holds and appends to ``waiters``; completing the
    reservation releases them.  A lock left held by an interrupted waiter is
    private to it and simply dropped.
    """

    __slots__ = (
        "complete",
        "failed",
        "hash",
        "key",
        "owner",
        "registered",
        "running",
        "value",
        "waiters",
    )

    def __init__(self, owner: int, key: Any, h: int) -> None:
        self.owner = owner
        self.key = key
        self.hash = h
        self.running = threading.Lock()
        self.complete = False
        self.failed = True
        self.registered = False
        self.value: Any = None
        self.waiters: list[threading.Lock] = []

    def finished(self) -> bool:
        return self.complete or not self.running.locked()

    def finish(self) -> None:
        """Mark the reservation complete and wake its waiters (loader only)."""
        self.complete = True
        for w in self.waiters:
            w.release()


_NOT_GIVEN: Any = object()
_UNCHANGED: Any = object()  # returned by an _update step that stores nothing

# Which load each thread is waiting for (compute_if_absent), to detect
# waits that can never end: a factory re-entering its own key, or two loads
# waiting for each other (thread A loads k1 and needs k2, B loads k2 and
# needs k1).  Only the slow path of compute_if_absent touches it.  An edge
# whose reservation is finished is dead (its waiter is about to wake).
_waiting: dict[int, _Reservation] = {}
_waiting_lock = threading.Lock()

# How often a waiter checks that the loader it waits for is still running (a
# loader interrupted at the wrong moment may not have woken its waiters).
_POLL = 0.05


def _in_cycle(res: _Reservation, me: int) -> bool:
    """Whether waiting for ``res`` would wait (transitively) for ``me``."""
    r: _Reservation | None = res
    seen = 0
    while r is not None and seen < 10_000:
        if r.finished():
            return False
        if r.owner == me:
            return True
        try:
            r = _waiting[r.owner]
        except KeyError:
            r = None
        seen += 1
    return False


def _drop_dead_edges() -> None:
    """Drop the edges to finished loads (caller holds ``_waiting_lock``).

    A waiter removes its own edge when its wait ends, but an interrupt inside
    that clean-up can leave it registered.  Such an edge is dead (``_in_cycle``
    ignores finished loads); dropping them at each registration bounds the
    table by the threads waiting now and releases the loads' keys and values.
    """
    dead = [t for t, r in _waiting.items() if r.finished()]
    for t in dead:
        del _waiting[t]


def _wait_for_load(res: _Reservation, key: object, me: int, deadline: Deadline) -> None:
    """Wait until ``res`` is finished (or raise ``RuntimeError``/``TimeoutError``)."""
    cycle = False
    try:
        with _waiting_lock:
            cycle = _in_cycle(res, me)
            if not cycle:
                _drop_dead_edges()
                _waiting[me] = res
        if cycle:  # raised outside the lock: the message calls the key's __repr__
            raise RuntimeError(
                f"compute_if_absent({key!r}): the factory re-entered a key whose load "
                "it is part of (recursive or cyclic loads would deadlock)"
            )
        # Park on a private lock that ``finish()`` releases; poll so that a
        # loader that vanished without finishing (interrupted at the wrong
        # moment) is noticed.  An interrupt can at worst leave ``parked``
        # held, and nobody else ever waits for it.
        parked = threading.Lock()
        parked.acquire()
        res.waiters.append(parked)
        while not res.finished():
            remaining = deadline.remaining()
            if remaining is not None and remaining <= 0.0:
                raise TimeoutError(
                    f"compute_if_absent({key!r}): timed out waiting for another load"
                )
            parked.acquire(True, _POLL if remaining is None else min(_POLL, remaining))
    finally:
        if not cycle:
            with _waiting_lock:
                try:
                    if _waiting[me] is res:
                        del _waiting[me]
                except KeyError:
                    pass


def _find_reservation(loading: dict[int, list[_Reservation]], key: Any, h: int) -> Any:
    """The live reservation for ``key`` (caller holds the shard lock), else None.

    Finished reservations still registered (their loader was interrupted
    before it could unregister) are dropped here.  May run the ``__eq__`` of
    keys with the same hash, like a dict lookup.
    """
    try:
        bucket = loading[h]
    except KeyError:
        return None
    for r in list(bucket):
        if r.finished():
            _unregister(loading, r)
            continue
        if r.key is key or r.key == key:
            return r
    return None


def _unregister(loading: dict[int, list[_Reservation]], res: _Reservation) -> None:
    """Remove ``res`` from ``loading`` (caller holds the shard lock); no user code."""
    if not res.registered:
        return
    bucket = loading[res.hash]
    for j, r in enumerate(bucket):
        if r is res:
            del bucket[j]
            break
    if not bucket:
        del loading[res.hash]
    res.registered = False


class _PyShardedCore:
    """The hot single-key operations of :class:`ShardedDict`, in pure Python.

    The reference implementation: ``conctools._native._ShardedCore`` implements
    the same methods with the same semantics, exceptions and messages (for
    keys of exact type ``str``, ``int``, ``float``, ``bytes`` or ``bool``; it
    calls these methods for every other key).  Both take the same shard locks
    (``_ShardLock`` objects when the accelerator is active), so a compound
    operation run by either excludes every other one on that shard.
    """

    __slots__ = ("_loading", "_locks", "_n", "_shards")

    _shards: tuple[dict[Any, Any], ...]
    _locks: tuple[Any, ...]
    _loading: tuple[dict[int, list[_Reservation]], ...]
    _n: int

    if TYPE_CHECKING:

        def _increment_slow(self, i: int, kk: Any, delta: Any) -> Any: ...
        def _update(self, i: int, kk: Any, fn: Callable[[Any], Any]) -> Any: ...

    # ------------------------------------------------------------------ reads
    # Lock-free: one dict operation each.

    def __getitem__(self, key: Any) -> Any:
        try:
            return self._shards[hash(key) % self._n][key]
        except KeyError:
            missing = getattr(type(self), "__missing__", None)
            if missing is None:
                raise
        return missing(self, key)

    def get(self, key: Any, default: Any = None) -> Any:
        """``d[key]`` if present, else ``default`` (lock-free)."""
        try:
            return self._shards[hash(key) % self._n][key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return key in self._shards[hash(key) % self._n]

    def __setitem__(self, key: Any, value: Any) -> None:
        h = hash(key)
        i = h % self._n
        tk = type(key)
        kk = key if (tk is int or tk is str) else _wrap(key, h)
        with self._locks[i]:
            self._shards[i][kk] = value

    def __delitem__(self, key: Any) -> None:
        h = hash(key)
        i = h % self._n
        tk = type(key)
        kk = key if (tk is int or tk is str) else _wrap(key, h)
        try:
            with self._locks[i]:
                # pop() keeps the value alive until the lock is released, so
                # that its ``__del__`` (if the last reference) runs outside it.
                value = self._shards[i].pop(kk)
        except KeyError:
            raise KeyError(key) from None
        del value

    def pop(self, key: Any, default: Any = _NOT_GIVEN, /) -> Any:
        """Remove ``key`` and return its value; ``default`` (or ``KeyError``) if absent."""
        h = hash(key)
        i = h % self._n
        tk = type(key)
        kk = key if (tk is int or tk is str) else _wrap(key, h)
        shard = self._shards[i]
        with self._locks[i]:
            # ``in`` first: a miss raising and catching KeyError costs more
            # than the extra lookup of a hit.
            if kk in shard:
                value = shard[kk]
                del shard[kk]
                return value
        if default is _NOT_GIVEN:
            raise KeyError(key)
        return default

    def get_or_set(self, key: Any, default: Any) -> Any:
        """Return the value of ``key``; if absent, store ``default`` and return it.

        Atomic: among concurrent callers on an absent key exactly one value is
        stored and every caller gets that value.  The key is hashed once; for
        keys of types other than the plain builtins the lookup and the store
        are one dict operation under the shard lock (the key's ``__eq__``
        runs at most once per colliding key, as for ``dict.setdefault``).
        """
        h = hash(key)
        i = h % self._n
        shard = self._shards[i]
        tk = type(key)
        if tk is int or tk is str or tk in _PLAIN:
            # No user code in this key's hash or ==: probe lock-free first.
            try:
                return shard[key]
            except KeyError:
                pass
            with self._locks[i]:
                try:
                    return shard[key]
                except KeyError:
                    shard[key] = default
                    return default
        kk = _wrap(key, h)
        with self._locks[i]:
            return shard.setdefault(kk, default)

    def increment(self, key: Any, delta: Any = 1) -> Any:
        """Add ``delta`` to the value of ``key`` (absent counts as 0); return the new value.

        For ``int``/``float`` values and deltas the addition runs under the
        shard lock (no user code runs there); for other types it runs outside
        the lock and is retried if the value changed meanwhile (as
        :meth:`compute`).
        """
        h = hash(key)
        i = h % self._n
        tk = type(key)
        td = type(delta)
        if (tk is int or tk is str) and (td is int or td is float):
            shard = self._shards[i]
            with self._locks[i]:
                try:
                    cur = shard[key]
                except KeyError:
                    shard[key] = delta
                    return delta
                tc = type(cur)
                if tc is int or tc is float:
                    shard[key] = new = cur + delta
                    return new
        return self._increment_slow(i, _wrap(key, h), delta)

    def compare_and_set(self, key: Any, expected: Any, new: Any) -> bool:
        """If ``key`` maps to a value ``== expected``, store ``new``; return whether it did.

        ``expected=MISSING`` means "``key`` is absent" (insert-if-absent);
        ``new=MISSING`` removes the key.  The ``==`` comparison runs with no
        lock held; the store is validated by identity under the shard lock.
        """
        h = hash(key)

        def step(cur: Any) -> Any:
            if expected is MISSING or cur is MISSING:
                match = cur is expected
            else:
                match = cur is expected or bool(cur == expected)
            return new if match else _UNCHANGED

        return self._update(h % self._n, _wrap(key, h), step) is not _UNCHANGED


if TYPE_CHECKING:
    _Core = _PyShardedCore
    _Lock = threading.Lock
else:
    # The C accelerator when it is active (CONCTOOLS_PURE_PYTHON=1 forces the
    # pure-Python core), see conctools/_internal/native.py.  Both sides lock a
    # shard with the same lock object: a native ``_ShardLock`` (``with`` from
    # Python, a PyMutex from C) when the native core runs.
    _Core = native_attr("_ShardedCore") or _PyShardedCore
    _Lock = native_attr("_ShardLock") if _Core is not _PyShardedCore else threading.Lock
    if _Core is not _PyShardedCore:
        native_attr("_sharded_setup")(MISSING, _PyShardedCore)

#: Whether the native core runs (the per-thread closures of handles only pay
#: for the pure-Python core).
_NATIVE = _Core is not _PyShardedCore


class _ShardedBase(_Core, MutableMapping[K, V], Generic[K, V]):
    """Operations shared by :class:`ShardedDict` and its per-thread handles."""

    __slots__ = ()

    if TYPE_CHECKING:
        # The hot methods live in the core (_PyShardedCore or the native one).
        _shards: tuple[dict[Any, V], ...]

        def __getitem__(self, key: K) -> V: ...

        @overload
        def get(self, key: K, default: None = None, /) -> V | None: ...
        @overload
        def get(self, key: K, default: V, /) -> V: ...
        @overload
        def get(self, key: K, default: T, /) -> V | T: ...
        def get(self, key: K, default: Any = None) -> Any: ...

        def __contains__(self, key: object) -> bool: ...

        def __setitem__(self, key: K, value: V) -> None: ...

        def __delitem__(self, key: K) -> None: ...

        @overload  # type: ignore[override]
        def pop(self, key: K, /) -> V: ...
        @overload
        def pop(self, key: K, default: V, /) -> V: ...
        @overload
        def pop(self, key: K, default: T, /) -> V | T: ...
        def pop(self, key: K, default: Any = _NOT_GIVEN, /) -> Any: ...

        def get_or_set(self, key: K, default: V) -> V: ...

        def increment(self, key: K, delta: Any = 1) -> V: ...

        def compare_and_set(
            self, key: K, expected: V | MissingType, new: V | MissingType
        ) -> bool: ...

    def __len__(self) -> int:
        n = 0
        for s in self._shards:
            n += len(s)
        return n

    def __bool__(self) -> bool:
        return any(self._shards)

    # ----------------------------------------------------------------- writes

    # Every lock is taken by a ``with`` statement: an exception (a
    # KeyboardInterrupt raised by a signal handler) can arrive right after a
    # bare ``lock.acquire()`` call returns, before a ``try:`` is entered, and
    # would leave the lock held for good.  ``with`` enters its protected block
    # in the instruction that acquires the lock.

    def popitem(self) -> tuple[K, V]:
        """Remove and return some ``(key, value)`` pair; ``KeyError`` if empty.

        Which pair is unspecified (the most recently inserted of some shard).
        """
        for shard, lock in zip(self._shards, self._locks, strict=True):
            if shard:
                with lock:
                    if shard:
                        k, v = shard.popitem()
                        return _unwrap(k), v

        # Looked empty shard by shard; confirm atomically (the map may never
        # have been empty as a whole while we scanned).
        def pop_any() -> Any:
            for shard in self._shards:
                if shard:
                    return shard.popitem()
            return None

        kv = with_all_locks(self._locks, pop_any)
        if kv is None:
            raise KeyError("popitem(): dictionary is empty")
        return _unwrap(kv[0]), kv[1]

    def clear(self) -> None:
        """Remove every item, atomically (all shard locks, in index order)."""

        # The contents are let go after the locks are released: a value's
        # ``__del__`` must not run under our locks.  Interrupted, it changes
        # nothing.
        dropped = clear_all(self._locks, self._shards)
        del dropped

    def update(self, other: Any = (), /, **kwargs: V) -> None:
        """Store every pair of ``other`` then of ``kwargs``, like ``dict.update``.

        Each store is atomic; the update as a whole is not (another thread may
        observe some of the new pairs before others).
        """
        if isinstance(other, _ShardedBase):
            items: Iterable[tuple[Any, Any]] = other.snapshot().items()
        elif isinstance(other, Mapping):
            items = ((k, other[k]) for k in other)
        elif hasattr(other, "keys"):
            items = ((k, other[k]) for k in other.keys())  # noqa: SIM118 - dict protocol
        else:
            items = other
        for pair in items:
            k, v = pair
            self[k] = v
        for k, v in kwargs.items():
            self[k] = v  # type: ignore[index]

    # ------------------------------------------------------- compound, atomic

    @overload
    def setdefault(
        self: _ShardedBase[K, T | None], key: K, default: None = None, /
    ) -> T | None: ...
    @overload
    def setdefault(self, key: K, default: V, /) -> V: ...

    def setdefault(self, key: K, default: Any = None, /) -> Any:
        """``dict.setdefault`` semantics, atomic: same as :meth:`get_or_set`."""
        return self.get_or_set(key, default)

    def _increment_slow(self, i: int, kk: Any, delta: Any) -> Any:
        td = type(delta)
        if td is int or td is float:
            shard = self._shards[i]
            with self._locks[i]:
                try:
                    cur = shard[kk]
                except KeyError:
                    shard[kk] = delta
                    return delta
                tc = type(cur)
                if tc is int or tc is float:
                    shard[kk] = new = cur + delta
                    return new
        return self._update(i, kk, lambda cur: (0 if cur is MISSING else cur) + delta)

    def compute(self, key: K, fn: Callable[[V | MissingType], V | MissingType]) -> V | MissingType:
        """Atomically replace the value of ``key`` by ``fn(current)``.

        ``current`` is the value or :data:`~conctools.MISSING` when absent;
        ``fn`` returns the new value, or ``MISSING`` to remove the key.
        Returns the new value (or ``MISSING``).  ``fn`` runs without any lock
        held; if another thread changes ``key`` meanwhile, ``fn`` is called
        again with the newer value, so it should be free of side effects.
        """
        h = hash(key)
        i = h % self._n
        return self._update(i, _wrap(key, h), fn)  # type: ignore[no-any-return]

    def merge(self, key: K, value: V, fn: Callable[[V, V], V | MissingType]) -> V | MissingType:
        """Store ``value`` if ``key`` is absent, else ``fn(old, value)``; return what was stored.

        ``fn`` may return ``MISSING`` to remove the key.  It runs without any
        lock held and is retried if ``key`` changes meanwhile.
        """
        h = hash(key)
        i = h % self._n

        def step(cur: V | MissingType) -> V | MissingType:
            return value if cur is MISSING else fn(cur, value)

        return self._update(i, _wrap(key, h), step)  # type: ignore[no-any-return]

    def _update(self, i: int, kk: Any, fn: Callable[[Any], Any]) -> Any:
        """Optimistic read-compute-validate loop; ``fn`` runs with no lock held.

        The value is validated by identity under the shard lock: if the shard
        still maps the key to the very object ``fn`` saw (or still lacks it),
        the result is stored, else ``fn`` runs again on the newer value.
        ``fn`` may return ``_UNCHANGED`` to store nothing (returned as is).
        """
        shard = self._shards[i]
        lock = self._locks[i]
        while True:
            cur: Any
            try:
                cur = shard[kk]
            except KeyError:
                cur = MISSING
            new = fn(cur)
            if new is _UNCHANGED:
                return new
            with lock:
                now: Any
                try:
                    now = shard[kk]
                except KeyError:
                    now = MISSING
                if now is cur:
                    if new is MISSING:
                        if cur is not MISSING:
                            del shard[kk]
                    else:
                        shard[kk] = new
                    return new

    def compute_if_absent(
        self, key: K, factory: Callable[[K], V], *, timeout: float | None = None
    ) -> V:
        """Return the value of ``key``; if absent, store and return ``factory(key)``.

        Single flight: among concurrent callers for the same absent key, one
        (the *loader*) calls ``factory``; the others wait for it and return
        the same object.  ``factory`` runs with no lock held: a per-key
        reservation marks the load, so other keys of the shard stay available.

        * If ``factory`` raises, or storing its result raises (a colliding
          key's ``__eq__``), or the loader is interrupted (``BaseException``),
          no mapping is stored, the exception propagates to the loader, the
          reservation is released, and each waiter retries (one of them
          becomes the next loader), like ``ConcurrentHashMap.computeIfAbsent``.
        * If another operation stores ``key`` while ``factory`` runs, that
          value wins: it is kept and returned (the factory result is dropped).
        * A ``factory`` that calls ``compute_if_absent`` for the same key on
          the same map, or loads that wait for each other in a cycle, raise
          ``RuntimeError`` instead of deadlocking.
        * ``timeout`` bounds the wait for another thread's load
          (``TimeoutError``); ``None`` or ``math.inf`` wait as long as it
          takes, larger-than-representable values are accepted, negative or
          NaN values raise ``ValueError``, non-numbers ``TypeError``.
        """
        if timeout is not None:
            check_timeout(timeout)
        h = hash(key)
        i = h % self._n
        shard = self._shards[i]
        kk = _wrap(key, h)
        try:
            return shard[kk]
        except KeyError:
            pass
        deadline = Deadline(timeout)
        lock = self._locks[i]
        loading = self._loading[i]
        me = threading.get_ident()
        while True:
            res = _Reservation(me, key, h)
            other: _Reservation | None = None
            # ``running`` is held from before the reservation is registered
            # until after it is unregistered, whatever happens in between; the
            # ``try`` starts before the registration, so every path after it
            # completes and unregisters the reservation.
            with res.running:
                try:
                    with lock:
                        try:
                            return shard[kk]
                        except KeyError:
                            pass
                        other = _find_reservation(loading, key, h)
                        if other is None:
                            try:
                                loading[h].append(res)
                            except KeyError:
                                loading[h] = [res]
                            res.registered = True
                    if other is None:
                        value = factory(key)
                        with lock:
                            _unregister(loading, res)  # first: runs no user code
                            try:
                                value = shard[kk]
                            except KeyError:
                                shard[kk] = value  # may raise (a colliding key's __eq__)
                        res.value = value
                        res.failed = False
                        return value
                finally:
                    try:
                        res.finish()
                    finally:
                        if res.registered:
                            with lock:
                                _unregister(loading, res)
            assert other is not None
            _wait_for_load(other, key, me, deadline)
            if not other.failed:
                return other.value  # type: ignore[no-any-return]
            # The load failed: retry (possibly becoming the next loader).

    # ------------------------------------------------------ whole-map, views

    def snapshot(self) -> dict[K, V]:
        """An atomic point-in-time copy as a plain ``dict``.

        Every shard lock is held (taken in index order) only while the shards
        are copied; the result dict is built after they are released.
        """
        shards = self._shards
        copies = with_all_locks(self._locks, lambda: [s.copy() for s in shards])
        out: dict[Any, V] = {}
        for c in copies:
            for k, v in c.items():
                out[k.key if type(k) is _Key else k] = v
        return out

    def _iter_items(self) -> Iterator[tuple[K, V]]:
        # One shard at a time: copy it (a consistent state of that shard) and
        # walk the copy, so concurrent writers never make iteration fail.
        k: Any
        for shard in self._shards:
            for k, v in shard.copy().items():
                yield (k.key if type(k) is _Key else k), v

    def __iter__(self) -> Iterator[K]:
        for k, _ in self._iter_items():
            yield k

    def keys(self) -> KeysView[K]:
        """A weakly consistent view of the keys (see the class docs)."""
        return KeysView(self)

    def values(self) -> ValuesView[V]:
        """A weakly consistent view of the values."""
        return _ValuesView(self)

    def items(self) -> ItemsView[K, V]:
        """A weakly consistent view of the ``(key, value)`` pairs."""
        return _ItemsView(self)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _ShardedBase):
            return self.snapshot() == other.snapshot()
        if isinstance(other, Mapping):
            return self.snapshot() == dict(other.items())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def copy(self) -> ShardedDict[K, V]:
        """A new :class:`ShardedDict` (same shard count) holding a snapshot."""
        return ShardedDict(self.snapshot(), shards=len(self._shards))

    def __or__(self, other: Mapping[K, V]) -> ShardedDict[K, V]:
        if not isinstance(other, Mapping):
            return NotImplemented
        new = self.copy()
        new.update(other)
        return new

    def __ror__(self, other: Mapping[K, V]) -> ShardedDict[K, V]:
        if not isinstance(other, Mapping):
            return NotImplemented
        new: ShardedDict[K, V] = ShardedDict(other, shards=len(self._shards))
        new.update(self.snapshot())
        return new

    def __ior__(self: _S, other: Any) -> _S:  # type: ignore[misc]
        self.update(other)
        return self

    def __reversed__(self) -> Iterator[K]:
        raise TypeError(
            f"{type(self).__name__} has no order: iteration order is not insertion order "
            "(keys are spread over shards); use sorted(d, reverse=True) or work on d.snapshot()"
        )

    @property
    def shards(self) -> int:
        """Number of shards (a prime, fixed at construction)."""
        return len(self._shards)


class _ValuesView(ValuesView[V]):
    __slots__ = ()
    _mapping: _ShardedBase[Any, V]

    def __iter__(self) -> Iterator[V]:
        for _, v in self._mapping._iter_items():
            yield v

    def __contains__(self, value: object) -> bool:
        return any(v is value or v == value for v in self)


class _ItemsView(ItemsView[K, V]):
    __slots__ = ()
    _mapping: _ShardedBase[K, V]

    def __iter__(self) -> Iterator[tuple[K, V]]:
        return self._mapping._iter_items()

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, tuple) or len(item) != 2:
            return False
        key, value = item
        v = self._mapping.get(key, _NOT_GIVEN)
        return v is not _NOT_GIVEN and (v is value or bool(v == value))


class ShardedDict(_ShardedBase[K, V]):
    """A thread-safe dict split into independently locked shards, with atomic compound operations.

    **Thread safety.** Every method may be called from any thread at any time.
    Single-key operations are linearizable: reads (``d[k]``, ``k in d``,
    :meth:`get`) take no lock, they are single atomic dict operations; every
    write takes the lock of the key's shard only.  Keys are hashed before any
    lock is taken and ``__hash__`` is never called under a lock; the
    ``__eq__`` of keys whose hashes collide in the same shard may run under
    that shard's lock (keys must not use the map in ``__eq__``).  Factories
    and compute functions always run with no lock held.  An exception from a
    key's ``__hash__``/``__eq__`` or from a user function leaves the map
    unchanged.  Every lock is taken by a ``with`` statement, so an exception
    delivered anywhere (a ``KeyboardInterrupt`` from a signal handler) never
    leaves one held.  For hot loops, call :meth:`handle` once per thread and
    use the handle: same methods, fewer shared reference-count updates.

    **Atomic operations.** :meth:`get_or_set`/:meth:`setdefault`,
    :meth:`compute_if_absent` (single flight per key), :meth:`compute`,
    :meth:`merge`, :meth:`compare_and_set` (``==``; ``MISSING`` for
    absent/delete), :meth:`increment`, :meth:`pop`, :meth:`popitem`, and the
    whole-map :meth:`snapshot` and :meth:`clear` (all shard locks, fixed
    order).  :meth:`update`, ``|=``, ``==``, :meth:`copy` and ``repr`` are
    built on snapshots or on atomic single-key stores; ``update`` as a whole
    is not atomic.

    **Iteration.** Iterators and the ``keys()``/``values()``/``items()``
    views are weakly consistent: they never raise "changed size during
    iteration", yield each key at most once, and show each shard as it was at
    some moment at or after the iterator was created (copied lazily, shard by
    shard).  Iteration order is **not** insertion order (keys are spread over
    shards by hash) and ``reversed()`` raises ``TypeError``: use ``sorted(d)``
    or order a :meth:`snapshot`.  ``len()`` sums the shard sizes: exact when
    no thread is writing, otherwise a value the map had around the call.
    :meth:`snapshot` is the atomic alternative.

    **Blocking and timeouts.** Shard locks are held only for a few dict
    operations, never while user code runs.  The only call that waits for
    other threads is :meth:`compute_if_absent`, while another thread loads
    the same key; it takes ``timeout=`` (``None`` or ``math.inf``: wait for
    the load; huge values are clamped; negative or NaN: ``ValueError``) and
    raises ``TimeoutError`` when it expires.  Every load completes, value or
    error, on every path (``BaseException`` included): waiters never hang
    on a failed or interrupted loader.

    **Complexity.** Single-key operations are O(1) on average (one hash, one
    or two dict operations, at most one uncontended lock).
    ``compute``/``merge``/``compare_and_set`` retry their user function when
    the key changes concurrently.  ``len()``, iteration, ``snapshot()``,
    ``clear()`` and ``==`` are O(n + shards).  Memory: one dict and one lock
    per shard.
    """

    __slots__ = ("__weakref__",)

    def __init__(self, data: Any = None, /, *, shards: int | None = None, **kwargs: V) -> None:
        self._init_storage(_shard_count(shards))
        if data is not None:
            self.update(data)
        if kwargs:
            self.update(kwargs)

    def _init_storage(self, n: int) -> None:
        self._shards = tuple({} for _ in range(n))
        self._locks = tuple(_Lock() for _ in range(n))
        self._loading = tuple({} for _ in range(n))
        self._n = n

    @overload
    @classmethod
    def fromkeys(
        cls, iterable: Iterable[T], value: None = None, /, *, shards: int | None = None
    ) -> ShardedDict[T, Any | None]: ...
    @overload
    @classmethod
    def fromkeys(
        cls, iterable: Iterable[T], value: S, /, *, shards: int | None = None
    ) -> ShardedDict[T, S]: ...

    @classmethod
    def fromkeys(
        cls, iterable: Iterable[Any], value: Any = None, /, *, shards: int | None = None
    ) -> ShardedDict[Any, Any]:
        """Like ``dict.fromkeys``: a new map with every key of ``iterable`` set to ``value``.

        Builds ``cls()`` (``cls(shards=shards)`` only when ``shards`` is given)
        and stores the keys one by one, so subclasses get their own type and
        their ``__setitem__`` is used, as with ``dict.fromkeys``.
        """
        d = cls() if shards is None else cls(shards=shards)
        for k in iterable:
            d[k] = value
        return d

    def handle(self) -> ShardedDictHandle[K, V]:
        """A handle for the calling thread: the same methods on the same data.

        The handle keeps its own copies of the map's internal tuples, created
        by (and so owned by) the calling thread; on free-threaded CPython its
        hot paths then avoid contended reference-count updates on the shared
        map object.  Create one per thread, keep it in a local variable.  A
        handle is thread-safe if shared, just not faster.
        """
        return ShardedDictHandle(self)

    @reprlib.recursive_repr("{...}")
    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.snapshot()!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Like dict: the class and shard count, then the subclass's own state,
        # then the items (stored with ``obj[k] = v``).  The constructor is not
        # called, so subclasses with any constructor signature pickle and copy.
        return (
            _rebuild,
            (type(self), len(self._shards)),
            subclass_state(self, ShardedDict),
            None,
            iter(self.snapshot().items()),
        )


class ShardedDictHandle(_ShardedBase[K, V]):
    """A per-thread access point to a :class:`ShardedDict` with the same methods.

    Returned by :meth:`ShardedDict.handle`; every operation acts on the
    underlying map with exactly its semantics and guarantees (see
    :class:`ShardedDict`).  A handle runs ``ShardedDict``'s own operations:
    methods overridden in a subclass of ``ShardedDict`` are not used through
    its handles.

    **Thread safety.** As for :class:`ShardedDict`.  The handle holds copies
    of the map's internal tuples owned by the thread that created it; other
    threads may use it safely, only without the speed benefit.

    **Atomic operations.** Those of :class:`ShardedDict`.

    **Iteration.** Weakly consistent, as for :class:`ShardedDict`.

    **Blocking and timeouts.** As for :class:`ShardedDict`.

    **Complexity.** Creating a handle is O(shards); operations as for
    :class:`ShardedDict`.
    """

    # With the pure-Python core, ``get``, ``increment`` and ``get_or_set`` are
    # per-handle closures (see _bind_hot_paths); the slots shadow the
    # inherited methods.  The native core's methods are faster than closures.
    __slots__ = ("_map",) if _NATIVE else ("_map", "get", "get_or_set", "increment")

    def __init__(self, owner: ShardedDict[K, V]) -> None:
        # New tuples (``(*t,)``), created and so owned by the calling thread:
        # loading them never touches a reference count another thread writes.
        self._shards = (*owner._shards,)
        self._locks = (*owner._locks,)
        self._loading = (*owner._loading,)
        # A fresh int object owned by this thread (ints above 256 are not
        # immortal; ``+ 0`` allocates a new one).
        self._n = owner._n + 0
        self._map = owner
        if not _NATIVE:
            _bind_hot_paths(self)

    @property
    def map(self) -> ShardedDict[K, V]:
        """The :class:`ShardedDict` this handle operates on."""
        return self._map

    def handle(self) -> ShardedDictHandle[K, V]:
        """A new handle on the same map, for the calling thread."""
        return ShardedDictHandle(self._map)

    def fromkeys(
        self, iterable: Iterable[T], value: Any = None, /, *, shards: int | None = None
    ) -> ShardedDict[T, Any]:
        """``type(self.map).fromkeys(...)``: a new map (not a handle), like ``dict.fromkeys``."""
        return type(self._map).fromkeys(iterable, value, shards=shards)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._map!r}>"

    def __reduce__(self) -> Any:
        raise TypeError(
            "a ShardedDictHandle is bound to a thread and cannot be pickled or copied; "
            "pickle or copy its .map instead"
        )


def _bind_hot_paths(h: ShardedDictHandle[Any, Any]) -> None:
    """Install closures for the hottest methods of a handle.

    Same code and semantics as the methods of :class:`_ShardedBase`, but every
    name they use (the shard tuples, ``hash``, ``type``...) is a closure cell
    created by the calling thread.  On 3.13t, whose interpreter does not
    specialise attribute and global loads, this measured 10 ns (``get``) and
    50 ns (``increment``) cheaper per call than the methods; the bound
    ``__getitem__`` of each shard avoids updating the shared dict's reference
    count on every read.  Locks are taken with ``with`` (never a bare
    ``acquire()``), see :class:`_ShardedBase`.
    """
    shards = h._shards
    locks = h._locks
    n = h._n
    # Bound methods created here (owned by this thread): calling one does not
    # touch the reference count of the shared dict it is bound to.
    getters = tuple([s.__getitem__ for s in shards])
    _hash = hash
    _type = type
    _int = int
    _str = str
    _float = float
    _KeyError = KeyError
    base_get_or_set = _PyShardedCore.get_or_set
    base_increment_slow = _ShardedBase._increment_slow

    def get(key: Any, default: Any = None) -> Any:
        try:
            return getters[_hash(key) % n](key)
        except _KeyError:
            return default

    def increment(key: Any, delta: Any = 1) -> Any:
        hk = _hash(key)
        i = hk % n
        tk = _type(key)
        td = _type(delta)
        if (tk is _int or tk is _str) and (td is _int or td is _float):
            shard = shards[i]
            with locks[i]:
                try:
                    cur = shard[key]
                except _KeyError:
                    shard[key] = delta
                    return delta
                tc = _type(cur)
                if tc is _int or tc is _float:
                    shard[key] = new = cur + delta
                    return new
        return base_increment_slow(h, i, _wrap(key, hk), delta)

    def get_or_set(key: Any, default: Any) -> Any:
        tk = _type(key)
        if tk is _int or tk is _str:
            try:
                return getters[_hash(key) % n](key)
            except _KeyError:
                pass
        return base_get_or_set(h, key, default)

    get.__doc__ = _PyShardedCore.get.__doc__
    increment.__doc__ = _PyShardedCore.increment.__doc__
    get_or_set.__doc__ = _PyShardedCore.get_or_set.__doc__
    h.get = get  # type: ignore[method-assign]
    h.increment = increment  # type: ignore[method-assign]
    h.get_or_set = get_or_set  # type: ignore[method-assign]


def _rebuild(cls: type[ShardedDict[Any, Any]], shards: int) -> Any:
    """An empty instance of ``cls`` with ``shards`` shards (for pickling and copying)."""
    obj = cls.__new__(cls)
    ShardedDict._init_storage(obj, shards)
    return obj
