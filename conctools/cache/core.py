"""ConcurrentCache: a bounded, thread-safe cache with LRU or W-TinyLFU eviction."""

from __future__ import annotations

import copy
import enum
import functools
import heapq
import itertools
import logging
import math
import sys
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterator, MutableMapping
from typing import Any, Generic, Literal, Protocol, TypeVar, cast, overload

from .._internal.native import native_attr
from .._internal.perthread import PerThread
from .._internal.sentinel import MISSING
from .._internal.striping import check_stripes, default_stripes
from .._internal.timeouts import check_timeout, lock_timeout
from .policies import Policy, make_policy
from .stats import CacheStats

__all__ = ["ConcurrentCache", "Expiry", "RemovalCause"]  # _Load, _await, _find: decorator.py

PolicyName = Literal["lru", "tinylfu"]

_log = logging.getLogger("conctools.cache")


class RemovalCause(str, enum.Enum):
    """Why ``on_evict(key, value, cause)`` was called (a ``str``: compares equal to
    ``"size"``, ``"expired"``, ``"explicit"``, ``"replaced"``).

    * ``SIZE``: evicted to respect ``maxsize``/``maxweight`` (including a
      candidate refused by W-TinyLFU, and a value heavier than the whole cache,
      which is never admitted);
    * ``EXPIRED``: its ``ttl``, idle time or expiry-policy lifetime ran out;
    * ``EXPLICIT``: ``invalidate``, ``del``, ``pop``, ``popitem``, ``clear``;
    * ``REPLACED``: a write (``put``, a refresh) replaced the value.

    **Thread safety.** Immutable enum members: safe to share.

    **Atomic operations.** None needed.

    **Iteration.** ``list(RemovalCause)`` gives the four causes in the order above.

    **Blocking and timeouts.** Nothing blocks.

    **Complexity.** O(1).
    """

    SIZE = "size"
    EXPIRED = "expired"
    EXPLICIT = "explicit"
    REPLACED = "replaced"

    def __str__(self) -> str:
        return self.value


class Expiry(Protocol):
    """An expiry policy (Caffeine's ``Expiry``): computes each entry's lifetime.

    Each method returns the number of seconds from ``now`` until the entry
    expires (``0`` expires it at once), or ``None`` for "never expires".
    ``current_ttl`` is the entry's remaining lifetime in seconds (``None``: it
    had no expiry).  ``expire_after_update`` and ``expire_after_read`` may
    return ``current_ttl`` to leave the lifetime unchanged.  ``now`` is the
    cache's ``clock()``.

    **Thread safety.** The cache calls the methods from any thread that
    writes or reads, concurrently: an implementation must be thread-safe
    (a stateless one is).

    **Atomic operations.** Each method is called in the calling thread under
    no lock, before the cache changes anything: an exception or a bad result
    (negative or NaN: ``ValueError``; not a number: ``TypeError``) reaches
    that caller and the cache is unchanged.  If a ``put`` finds the key absent
    and another thread inserts it first, the creation lifetime is used.

    **Iteration.** Not applicable.

    **Blocking and timeouts.** Whatever the implementation does delays only
    its caller; no lock of the cache is held meanwhile.

    **Complexity.** One call per write (create or update) and per hit (read).
    """

    def expire_after_create(self, key: Any, value: Any, now: float) -> float | None:
        """Lifetime of a new entry (``put`` of an absent key, a load)."""
        ...

    def expire_after_update(
        self, key: Any, value: Any, now: float, current_ttl: float | None
    ) -> float | None:
        """Lifetime after ``put`` replaced a live entry's value (or a refresh did)."""
        ...

    def expire_after_read(
        self, key: Any, value: Any, now: float, current_ttl: float | None
    ) -> float | None:
        """Lifetime after a hit (``get``, ``c[key]``, ``get_or_load``)."""
        ...


_CAUSES = (None, RemovalCause.EXPLICIT, RemovalCause.EXPIRED)  # by _Node.dead

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
D = TypeVar("D")

# A read buffer reaching this length triggers a try-lock drain; at the hard
# limit a thread waits for the maintenance lock (back-pressure: records are
# never dropped, so statistics stay exact).
_DRAIN_AT = 64
_HARD_LIMIT = 4096


class _Buffer(list):  # type: ignore[type-arg]
    """A thread's access records (keys read or written, in order) and its counters.

    Only the owning thread appends and bumps ``hits``/``misses``; the drainer
    (any thread holding the maintenance lock) removes records from the front.
    The records only feed the eviction order; the statistics are the counters,
    which only grow: ``stats()`` sums them, so nothing depends on when (or
    whether) the records are drained.
    """

    __slots__ = ("hits", "misses")

    def __init__(self) -> None:
        super().__init__()
        self.hits = 0
        self.misses = 0


class _Retired:
    """What the buffers of exited threads left: their counts and unapplied records.

    Filled by ``on_exit`` (in the exiting thread, under the registry lock) and
    emptied by the drainer under the same lock.  Holds no reference to the
    cache (the thread-exit hook must not keep it alive)."""

    __slots__ = ("detached", "hits", "misses", "records")

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.records: list[Any] = []
        # Buffers of calls made by a thread during its own teardown (a
        # ``__del__`` run while its thread-locals are cleared): such a thread
        # cannot own a retired-at-exit buffer, so its counts stay here.
        self.detached: list[_Buffer] = []

    def fold(self, buf: _Buffer) -> None:
        """``on_exit``: the thread is gone; keep its counts and records."""
        self.hits += buf.hits
        self.misses += buf.misses
        if buf:
            records = self.records
            records.extend(buf)
            if len(records) > _HARD_LIMIT:  # recency hints only: keep the newest
                del records[: len(records) - _HARD_LIMIT]


_MISS: Any = object()  # "record a miss" for _record

# Why a node left the map (``_Node.dead``); 0 while it is live.
_LIVE, _GONE, _EXPIRED = 0, 1, 2
_INF = math.inf


class _DefaultSize(int):
    """``maxsize``'s default (1024), told apart from an explicit ``maxsize=1024``."""

    def __repr__(self) -> str:
        return "1024"


_DEFAULT_MAXSIZE: int = _DefaultSize(1024)


def _find(d: dict[Any, Any], key: object) -> Any:
    """``d.get(key)`` without calling ``dict.get``.

    On CPython 3.13t, ``dict.get`` (like other methods that lock the dict)
    costs ~15 us when the dict is owned by a thread that is blocked (in
    ``join``, ``Event.wait``, ``queue.get``: e.g. the thread that created the
    cache); ``d[key]`` and ``key in d`` take the lock-free read path.
    """
    try:
        return d[key]
    except KeyError:
        return None


class _Node:
    """One entry.  ``item`` is the value, or ``(value, write_deadline)`` in a
    cache with expiry, so that a reader sees a value and its deadline from the
    same write.  ``adl`` is the idle (expire-after-access) deadline.  ``rdl``
    is ``(item, deadline)`` set by a read under an expiry policy: the deadline
    holds for that item only (a later write makes it void, lock-free).
    ``born``: when the item was written (refresh).  ``weight``: set under the
    maintenance lock."""

    __slots__ = ("adl", "born", "dead", "item", "key", "popped", "rdl", "weight")

    def __init__(self, key: Any, item: Any, adl: float) -> None:
        self.key = key
        self.item = item
        self.adl = adl
        self.dead = _LIVE
        self.popped: Any = None  # the item it held when removed (set after dead)
        self.rdl: tuple[Any, float] | None = None
        self.born = 0.0
        self.weight = 1


class _Load:
    """An in-flight single-flight load (a *flight*): its owner runs the loader,
    waiters park on private locks.

    A flight is registered in a dict (a stripe's ``loading``, or the
    decorator's ``flights``) and guarded by that dict's lock.  Its owner
    completes it in a ``finally`` block, idempotently and inline (no call that
    could hit the recursion limit; rerun if interrupted): outcome, ``done``,
    unregistered, every waiter's private lock released.  A ``done`` flight is
    never joined: if unregistering it failed it is simply replaced.  A done
    flight with neither value nor error (its owner was interrupted before the
    loader returned) sends its waiters back to start a new one.
    """

    __slots__ = ("done", "error", "owner", "probing", "storing", "superseded", "value", "waiters")

    def __init__(self, owner: int) -> None:
        self.done = False
        self.value: Any = MISSING
        self.error: BaseException | None = None
        self.owner = owner
        self.superseded = False
        self.storing = False  # the decorator's lru engine: result being stored
        self.probing = False  # the decorator's lru engine: looking into lru_cache
        self.waiters: list[threading.Lock] = []


def _await(lock: Any, load: _Load, timeout: float | None) -> bool:
    """Wait for a flight to be done; False on timeout.

    The waiter parks on a private lock that it holds and that the flight's
    completion releases, so an interrupt here can leave only that private
    lock held.  ``timeout`` is seconds or None (validated)."""
    with lock:
        if load.done:
            return True
        w = threading.Lock()
        w.acquire()
        load.waiters.append(w)
    if w.acquire(True, lock_timeout(timeout)):
        return True
    with lock:
        if w in load.waiters:
            load.waiters.remove(w)
        return load.done


_WAITER_NOTE = (
    "conctools: a concurrent call for the same key ran the loader and got this "
    "exception; this waiting call raises a copy of it"
)


def _waiter_error(error: BaseException) -> BaseException | None:
    """A new exception object, equal to the loader's ``error``, for a caller
    that waited for the failed load; None if it cannot be made.

    Raising one exception object in several threads at once is unsafe on the
    free-threaded build (each ``raise`` rewrites its ``__traceback__``: the
    frames of the threads mix, and CPython 3.13 does it without a lock), and
    even on one thread each re-raise lengthens the shared traceback.  So the
    caller that ran the loader raises ``error`` itself and every waiter a copy
    of its own: same class, ``args`` and attributes (``copy.copy``, which
    honours ``__reduce__``/``__copy__``), the same ``__cause__``, its own list
    of notes, a traceback of its own.  Only fields the loader's thread no
    longer writes are read; its traceback and ``__context__`` (which may hold
    frames still running in that thread) are not carried over."""
    try:
        new = copy.copy(error)
        if new is error or type(new) is not type(error):
            return None
        new.__cause__ = error.__cause__
        new.__suppress_context__ = error.__suppress_context__
        new.__context__ = None
        new.__traceback__ = None
        if sys.version_info >= (3, 11):
            notes = getattr(error, "__notes__", None)
            if notes is None or isinstance(notes, list):
                new.__notes__ = [*(notes or ()), _WAITER_NOTE]
    except Exception:  # copy.copy ran the class's own code, and it failed
        return None
    return new


class _Stripe:
    __slots__ = ("failures", "loading", "loads", "lock", "refreshing")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loading: dict[Any, _Load] = {}
        self.refreshing: dict[Any, object] = {}  # key -> token of its background reload
        self.loads = 0
        self.failures = 0


class ConcurrentCache(Generic[K, V]):
    """A size-bounded thread-safe cache: LRU or W-TinyLFU, TTL, single-flight loading, stats.

    ``ConcurrentCache(maxsize=1024, *, ttl=None, policy="lru", stripes=None,
    expire_after_access=None, clock=time.monotonic, maxweight=None,
    weigher=None, expiry=None, on_evict=None, refresh_after=None,
    refresh_executor=None)``.  ``policy="lru"`` keeps the
    ``maxsize`` most recently used entries (an exact LRU in a single thread);
    ``policy="tinylfu"`` is W-TinyLFU, which admits a new entry into the main
    region only if it is used more often than the entry it would replace, so one-off
    scans do not flush the popular entries.  ``ttl`` expires an entry that many
    seconds after it was last written; ``expire_after_access`` expires one idle
    for that long; ``put``/``get_or_load`` take a per-entry ``ttl=``, and
    ``expiry`` (an :class:`Expiry`) computes lifetimes per entry.  ``clock``
    (seconds, monotonic) is injectable for tests.  ``maxweight`` with
    ``weigher(key, value) -> int`` bounds the total weight instead of the
    count (a value heavier than ``maxweight`` is not admitted: counted in
    ``rejections``).  ``on_evict(key, value, cause)`` is told of every
    removal (a :class:`RemovalCause`).  ``refresh_after`` makes a stale hit of
    ``get_or_load`` return the value and reload it once in the background
    (a thread, or ``refresh_executor.submit``).
    ``stripes`` (rounded up to a power of two; default from the CPU count) is
    the number of locks that coordinate in-flight loads.  A ``MutableMapping``
    (``values``, ``pop``, ``popitem`` in eviction order, ``setdefault``,
    ``update``); ``copy``, ``deepcopy`` and pickling give an independent cache
    with the same settings and live entries (fresh statistics and lifetimes).

    **Thread safety.** Every method may be called from any number of threads.
    Lookups (``get``, ``c[key]``, ``in``, the hit path of ``get_or_load``) and
    updates of a key already present take no lock: they read one shared dict and
    append an access record to a buffer owned by the calling thread.  Inserting a
    new key, removing one and applying the buffered accesses to the eviction
    order happen under one maintenance lock, taken by a reader only with a
    non-blocking try (as in Caffeine), so eviction always follows the global
    recency/frequency order.  With a weigher or a listener, ``put`` of a present
    key also takes the maintenance lock.  Loaders, weighers, expiry policies
    and the listener run under no lock (the listener after the section that
    removed the entry, in that thread or the next one that ends a section;
    its exceptions are logged to ``conctools.cache``, never raised to the
    caller).  The map never holds more than ``maxsize`` entries (total
    weight: ``maxweight``), even transiently.  Keys' ``__hash__``/``__eq__``
    run under the maintenance lock (as they do inside a dict); they must not
    call back into the same cache.

    **Atomic operations.** ``get``, ``put``, ``invalidate`` and ``c[key]`` are
    linearizable per key.  ``get_or_load(key, loader)`` is single-flight: among
    concurrent callers for a missing key one runs ``loader(key)`` and the others
    wait for its result; if it raises, the caller that ran it gets the
    exception, every waiter a copy of its own (same class, ``args``, attributes
    and ``__cause__``), and nothing is cached (an interrupt of the loader's
    thread is that thread's own: the waiters start over); every load ends and is
    unregistered on every path.  A ``put``, ``invalidate`` or ``clear``
    that happens while a load is in flight wins: the load's value is still
    returned to its callers but is not cached (so an invalidation is never
    undone by a load that started before it), and a load finding a live entry
    already installed does not replace it.  ``stats()`` is exact: every
    lookup that returned before the call is counted once, none that starts
    after it returns is (counters are per thread, only grow, and survive
    ``clear``, draining and thread exit).  ``pop`` and ``setdefault`` are
    atomic; ``update`` is one ``put`` after another.  ``len`` is the number
    of entries, after removing expired ones.  A ``put`` that renews an entry
    while expiry removes it ends with the new value present.  Each removal is
    reported to ``on_evict`` exactly once.  A refresh is single-flight per key
    and replaces the value only if the entry was not written, removed or
    expired meanwhile; a failed refresh keeps the old value (logged).

    **Iteration.** ``iter(c)``, ``keys()`` and ``items()`` return snapshots of
    the live entries taken under the maintenance lock; they do not count as
    accesses or hits.  The cache never hands out a lock or a live view.

    **Blocking and timeouts.** ``get_or_load(key, loader, timeout=None)``
    blocks while another thread loads the same key; after ``timeout`` seconds it
    raises ``TimeoutError`` (the load goes on; ``None`` and ``math.inf`` wait
    forever, huge values are clamped).  Calling ``get_or_load`` for a key
    from inside that key's own loader raises ``RuntimeError`` instead of
    deadlocking.  Other methods wait only for the maintenance lock, which is held
    for bounded, short sections and never while user code runs (apart from key
    hashing).  A reader waits for it only if its own access buffer has grown
    to 4096 records while other threads kept the lock busy (back-pressure), or
    if the lock was taken in the instant between its test and its acquire.
    An interrupt (``KeyboardInterrupt``) at any point leaves no lock held and
    no load registered.

    **Complexity.** ``get``/``put`` of a present key: O(1), lock-free.  Insertion,
    ``invalidate``: O(1) amortised under the maintenance lock (plus the
    buffered accesses it applies: O(1) each; W-TinyLFU updates its sketch, four
    counters).  Expiry uses a lazy heap: O(log n) per expired or refreshed entry.
    With a weigher or a listener, ``put`` of a present key is O(1) under the
    maintenance lock; an expiry policy adds one call per hit and per write.
    ``len``: O(1) (with expiry: plus the entries that expired).  ``stats``,
    ``keys``, ``items``: O(threads + buffered records), plus O(n) for the
    snapshots.  Memory: the map, the
    policy's order (and the sketch: 4 x next_pow2(maxsize) small ints for
    W-TinyLFU), per-thread buffers of at most a few thousand records.
    """

    __slots__ = (
        "__weakref__",
        "_clock",
        "_data",
        "_dirty",
        "_events",
        "_evictions",
        "_executor",
        "_expirations",
        "_expiry",
        "_heap",
        "_listener",
        "_lock",
        "_locked_put",
        "_maxsize",
        "_maxweight",
        "_on_read",
        "_policy",
        "_pt",
        "_refresh",
        "_rejections",
        "_resched",
        "_retired",
        "_seq",
        "_smask",
        "_stripes",
        "_timed",
        "_tls",
        "_tta",
        "_ttl",
        "_weigher",
    )

    def __new__(
        cls,
        maxsize: int = _DEFAULT_MAXSIZE,
        *,
        ttl: float | None = None,
        policy: PolicyName = "lru",
        stripes: int | None = None,
        expire_after_access: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        maxweight: int | None = None,
        weigher: Callable[[K, V], int] | None = None,
        expiry: Expiry | None = None,
        on_evict: Callable[[K, V, RemovalCause], object] | None = None,
        refresh_after: float | None = None,
        refresh_executor: Any = None,
    ) -> ConcurrentCache[K, V]:
        # A cache with expiry gets the subclass whose get() checks deadlines,
        # so that the plain get() has no branch for it.
        timed = (
            ttl is not None
            or expire_after_access is not None
            or expiry is not None
            or refresh_after is not None
        )
        return super().__new__(_timed_class(cls) if timed else cls)

    def __init__(
        self,
        maxsize: int = _DEFAULT_MAXSIZE,
        *,
        ttl: float | None = None,
        policy: PolicyName = "lru",
        stripes: int | None = None,
        expire_after_access: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        maxweight: int | None = None,
        weigher: Callable[[K, V], int] | None = None,
        expiry: Expiry | None = None,
        on_evict: Callable[[K, V, RemovalCause], object] | None = None,
        refresh_after: float | None = None,
        refresh_executor: Any = None,
    ) -> None:
        if maxweight is not None:
            if maxsize is not _DEFAULT_MAXSIZE:
                raise ValueError("maxsize and maxweight are exclusive: give one bound")
            if isinstance(maxweight, bool) or not isinstance(maxweight, int):
                raise TypeError(f"maxweight must be an int, not {type(maxweight).__name__}")
            if maxweight < 1:
                raise ValueError("maxweight must be >= 1")
            if weigher is None:
                raise ValueError("maxweight needs a weigher(key, value) -> int")
            if not callable(weigher):
                raise TypeError("weigher must be callable")
        elif weigher is not None:
            raise ValueError("weigher needs maxweight= (the bound on the total weight)")
        if isinstance(maxsize, bool) or not isinstance(maxsize, int):
            raise TypeError(f"maxsize must be an int, not {type(maxsize).__name__}")
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        ttl = _check_duration(ttl, "ttl")
        expire_after_access = _check_duration(expire_after_access, "expire_after_access")
        refresh_after = _check_duration(refresh_after, "refresh_after")
        if expiry is not None:
            if ttl is not None or expire_after_access is not None:
                raise ValueError("expiry is exclusive with ttl and expire_after_access")
            for name in ("expire_after_create", "expire_after_update", "expire_after_read"):
                if not callable(getattr(expiry, name, None)):
                    raise TypeError(f"expiry must have a callable {name}()")
        if on_evict is not None and not callable(on_evict):
            raise TypeError("on_evict must be callable or None")
        if refresh_executor is not None:
            if refresh_after is None:
                raise ValueError("refresh_executor needs refresh_after=")
            if not callable(getattr(refresh_executor, "submit", None)):
                raise TypeError("refresh_executor must have a submit(fn) method (an Executor)")
        if not isinstance(policy, str):
            raise TypeError(f"policy must be a str, not {type(policy).__name__}")
        if not callable(clock):
            raise TypeError("clock must be callable")
        n = default_stripes(gil_build=4) if stripes is None else check_stripes(stripes, "stripes")
        bound = maxsize if maxweight is None else maxweight
        self._policy: Policy[K] = make_policy(policy, bound, weighted=maxweight is not None)
        self._maxsize = int(maxsize)
        self._maxweight = maxweight
        self._weigher = weigher
        self._expiry = expiry
        self._listener = on_evict
        self._events: deque[tuple[Any, Any, RemovalCause]] = deque()
        self._refresh = refresh_after
        self._executor = refresh_executor
        # put() of a present key is lock-free unless a weight or an exact
        # replaced-value report needs the maintenance lock.
        self._locked_put = maxweight is not None or on_evict is not None
        self._ttl = ttl
        self._tta = expire_after_access
        self._on_read = expire_after_access is not None or expiry is not None
        self._timed = (
            ttl is not None
            or expire_after_access is not None
            or expiry is not None
            or refresh_after is not None
        )
        self._clock = clock
        self._data: dict[Any, _Node] = {}
        self._stripes = [_Stripe() for _ in range(n)]
        self._smask = n - 1
        self._lock = threading.Lock()  # the maintenance lock
        # One buffer per thread, retired (folded into _retired) when the thread
        # exits; keyed by a counter, not by the reusable thread ident.
        self._retired = _Retired()
        self._pt: PerThread[_Buffer] = PerThread(_Buffer, self._retired.fold)
        self._tls = self._pt.local
        self._dirty = False  # a maintenance section was interrupted: repair first
        # __new__ chose the class from its own arguments; a subclass may pass
        # others to __init__ (super().__init__(n, ttl=...)): match them.
        if self._timed and not isinstance(self, _TimedCache):
            self.__class__ = _timed_class(type(self))
        elif not self._timed and isinstance(self, _TimedCache):
            self.__class__ = _public_class(type(self))
        self._evictions = 0
        self._expirations = 0
        self._rejections = 0
        self._heap: list[tuple[float, int, _Node]] = []
        self._seq = itertools.count()
        # Nodes whose deadline a lock-free write or read moved earlier than
        # their heap entry: the next maintenance section schedules them.
        self._resched: deque[_Node] = deque()

    # ------------------------------------------------------------------ info

    @property
    def maxsize(self) -> int | None:
        """The bound on the number of entries (``None`` if bounded by ``maxweight``)."""
        return None if self._maxweight is not None else self._maxsize

    @property
    def maxweight(self) -> int | None:
        """The bound on the total weight of the entries, or ``None``."""
        return self._maxweight

    @property
    def weight(self) -> int:
        """The total weight of the entries (their number if there is no weigher)."""
        if self._maxweight is None:
            return len(self)
        with self._lock:
            self._maintain()
            self._dirty = False
            total: int = self._policy.total  # type: ignore[attr-defined]
        self._flush()
        return total

    @property
    def refresh_after(self) -> float | None:
        """Age (seconds since the write) after which a hit of ``get_or_load`` reloads."""
        return self._refresh

    @property
    def policy(self) -> PolicyName:
        """``"lru"`` or ``"tinylfu"``."""
        return cast(PolicyName, self._policy.name)

    @property
    def ttl(self) -> float | None:
        """Seconds from a write to expiry, or ``None``."""
        return self._ttl

    @property
    def expire_after_access(self) -> float | None:
        """Seconds of idleness before expiry, or ``None``."""
        return self._tta

    def __repr__(self) -> str:
        return (
            f"<ConcurrentCache policy={self.policy!r} maxsize={self._maxsize} "
            f"size={len(self._data)} ttl={self._ttl!r}>"
        )

    # --------------------------------------------------------- thread buffers

    def _register(self) -> _Buffer:
        """First access from this thread: create its buffer (owned by it)."""
        buf = self._pt.register()
        if buf is None:  # a thread unknown to ``threading``: make it known
            threading.current_thread()
            buf = self._pt.register()
        if buf is None:  # a thread in its teardown: a buffer that is never retired
            buf = _Buffer()
            with self._pt.lock:
                self._retired.detached.append(buf)
            return buf
        if len(self._retired.records) >= _DRAIN_AT:  # exited threads' records
            self._after_record(buf)
        return buf

    def _rbuf(self) -> _Buffer:
        try:
            buf: _Buffer = self._tls.value
        except AttributeError:
            buf = self._register()
        return buf

    def _after_record(self, buf: list[Any]) -> None:
        """A buffer is long: apply the records if nobody else is doing it.

        Not ``if lock.acquire(False): try: ...``: an interrupt can land between
        a successful acquire and the ``try`` (and on 3.13 it lands there often,
        at the end of the call), leaving the lock held for good.  ``with``
        cannot leak it; the ``locked()`` test makes it a try-lock except in the
        instant between the test and the acquire, when the reader waits for a
        maintenance section that has just started.

        ``with`` protects only what the exception table covers: on CPython
        3.12/3.13 a loop whose body ends with an ``if`` that has no ``else``
        compiles its back edge outside the table, and an interrupt checked
        there skips ``__exit__`` (the mechanism of CPython's gh-108214).  Loops
        inside ``with``/``try`` here end otherwise (``if not x: continue``);
        ``tests/test_cache_failure_paths.py`` checks the bytecode."""
        lock = self._lock
        if len(buf) >= _HARD_LIMIT or not lock.locked():
            with lock:
                self._maintain()
                self._dirty = False
            if self._events:
                self._emit()

    # --------------------------------------------------------------- listener

    def _note(self, node: _Node, cause: RemovalCause) -> None:
        """Queue ``on_evict(key, value, cause)`` for a node just removed (lock held)."""
        if self._listener is not None:
            item = node.popped
            self._events.append((node.key, item[0] if self._timed else item, cause))

    def _emit(self) -> None:
        """Deliver the queued removal reports, under no lock.

        Called after every maintenance section; each report is taken from the
        shared queue by exactly one thread (``deque.popleft`` is atomic), so it
        is delivered once.  A listener's ``Exception`` is logged (logger
        ``conctools.cache``) and not raised into the caller."""
        listener = self._listener
        events = self._events
        while events:
            try:
                key, value, cause = events.popleft()
            except IndexError:
                return
            if listener is None:
                continue
            try:
                listener(key, value, cause)
            except Exception:
                _log.exception("on_evict listener raised (key %r, cause %s)", key, cause.value)

    def _flush(self) -> None:
        if self._events:
            self._emit()

    def _drain(self) -> None:
        """Apply every thread's buffered records to the policy (lock held)."""
        access = self._policy.access
        with self._pt.lock:  # exiting threads fold their buffers under it
            retired = self._retired.records
            if retired:
                items = retired[:]
                retired.clear()
                access(items)
            for buf in [*self._pt._registry.live.values(), *self._retired.detached]:
                n = len(buf)
                if not n:  # (not "if n:" ending the loop: see _after_record)
                    continue
                items = buf[:n]
                del buf[:n]  # appends only go to the end: nothing is lost
                access(items)

    def _maintain(self) -> None:
        """Drain the buffers and drop expired entries (lock held).

        Every section under the maintenance lock starts here.  Multi-step
        changes (map, policy, heap) are bracketed by ``_dirty``: if one was cut
        short by an exception (an interrupt, a key's ``__eq__``), the next
        holder of the lock restores the invariants from the map."""
        if self._dirty:
            self._repair()
        self._dirty = True
        self._drain()
        if self._timed:
            if self._resched:
                self._schedule()
            self._expire(self._clock())

    def _schedule(self) -> None:
        """Heap entries for nodes whose deadline moved earlier lock-free (lock held)."""
        rs = self._resched
        heap = self._heap
        while rs:
            try:
                node = rs.popleft()
            except IndexError:
                break
            if node.dead:  # (no loop-ending "if": see _after_record)
                continue
            heapq.heappush(heap, (self._deadline(node), next(self._seq), node))

    def _repair(self) -> None:
        """Rebuild the policy and the expiry heap from the map (lock held).

        Invariants restored: the policy tracks exactly the keys of the map, at
        most ``maxsize`` of them; every node of the map has a heap entry."""
        self._dirty = True
        policy = self._policy
        data = self._data
        policy.clear()
        for key in list(data):
            node = _find(data, key)
            if node is None:
                continue
            for victim in policy.insert(key, node.weight):
                vnode = data.pop(victim, None)
                if vnode is None:
                    continue
                vnode.dead = _GONE
                vnode.popped = vnode.item
                self._evictions += 1
                self._note(vnode, RemovalCause.SIZE)
        if self._timed:
            self._heap = [(self._deadline(n), next(self._seq), n) for n in data.values()]
            heapq.heapify(self._heap)
        self._dirty = False

    # ----------------------------------------------------------------- expiry

    def _deadline(self, node: _Node, item: Any = None) -> float:
        """The node's deadline as of ``item`` (default: its current item)."""
        if item is None:
            item = node.item
        wd: float = item[1]
        r = node.rdl
        if r is not None and r[0] is item:  # set by a read of this very item
            wd = r[1]
        adl = node.adl
        return wd if wd < adl else adl

    def _expire(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, seq, node = heapq.heappop(heap)
            if node.dead:
                continue
            item = node.item
            dl = self._deadline(node, item)
            if dl > now:  # refreshed by a write or a read since it was pushed
                heapq.heappush(heap, (dl, seq, node))
                continue
            if not self._unlink(node, _EXPIRED, item):  # renewed meanwhile: kept
                heapq.heappush(heap, (self._deadline(node), seq, node))
                continue
            self._expirations += 1
            self._note(node, RemovalCause.EXPIRED)
        if len(heap) > 2 * len(self._data) + 64:
            self._heap = [e for e in heap if not e[2].dead]
            heapq.heapify(self._heap)

    def _unlink(self, node: _Node, why: int, judged: Any = None) -> bool:
        """Remove a node from the map and the policy (maintenance lock held).

        ``judged``: for an expiry, the item whose deadline was found past.  If
        a lock-free put replaced it before the node was marked dead, the put
        renewed the entry: it stays (``dead`` is reset; a put that saw the
        transient mark finds its item in place) and False is returned."""
        # dead first, then the item it held: a lock-free put that wrote the
        # item and then saw the node alive is in ``popped`` (see put).
        node.dead = why
        node.popped = node.item
        if judged is not None and node.popped is not judged:
            node.dead = _LIVE
            node.popped = None
            return False
        key = node.key
        if _find(self._data, key) is node:
            del self._data[key]
            self._policy.remove(key)
        return True

    def _renewed(self, node: _Node) -> bool:
        """A node removed as expired held a live item when it was marked dead (a
        lock-free put renewed it after the check): it was live, removed
        explicitly (lock held)."""
        if self._clock() < self._deadline(node, node.popped):
            node.dead = _GONE  # (a put that saw the mark must not put it back)
            return True
        return False

    def _is_live(self, node: _Node, now: float) -> bool:
        return now < self._deadline(node)

    def _read_expiry(self, node: _Node, item: Any, dl: float, now: float) -> None:
        """A hit under an expiry policy: ``expire_after_read`` sets the deadline
        of this item (lock-free; void once the item is replaced)."""
        cur = None if dl == _INF else dl - now
        d = _check_lifetime(
            self._expiry.expire_after_read(node.key, item[0], now, cur),  # type: ignore[union-attr]
            "expire_after_read",
        )
        new = now + d
        node.rdl = (item, new)
        if new < dl:  # earlier than its heap entry: schedule it
            self._resched.append(node)

    # ----------------------------------------------------------------- lookup

    @overload
    def get(self, key: K) -> V | None: ...

    @overload
    def get(self, key: K, default: D) -> V | D: ...

    def get(self, key: K, default: Any = None) -> Any:
        """The value for ``key``, or ``default`` if absent or expired (counts a hit or a miss)."""
        # (A cache with expiry is a _TimedCache, whose get is _get_timed.)
        try:
            buf: _Buffer = self._tls.value
        except AttributeError:
            buf = self._register()
        try:
            node = self._data[key]  # not dict.get: see _find
        except KeyError:
            buf.misses += 1
            return default
        buf.hits += 1
        buf.append(key)
        if len(buf) > 63:  # _DRAIN_AT - 1, inlined: this is the hottest path
            self._after_record(buf)
        return node.item

    def _get_timed(self, key: K, default: Any = None) -> Any:
        # (get of a cache with expiry: the same inlined steps as get, plus the
        # deadline check; no helper call on the hit path)
        try:
            buf: _Buffer = self._tls.value
        except AttributeError:
            buf = self._register()
        try:
            node = self._data[key]
        except KeyError:
            buf.misses += 1
            return default
        item = node.item
        if self._on_read:  # expire_after_access or an expiry policy
            return self._get_read_hook(buf, key, node, item, default)
        # only write deadlines: the item carries its own (no rdl, adl is inf)
        if self._clock() < item[1]:
            buf.hits += 1
            buf.append(key)
            if len(buf) > 63:  # _DRAIN_AT - 1
                self._after_record(buf)
            return item[0]
        buf.misses += 1
        return default

    def _get_read_hook(self, buf: _Buffer, key: K, node: _Node, item: Any, default: Any) -> Any:
        """The rest of ``_get_timed`` when a hit moves a deadline."""
        wd = item[1]
        r = node.rdl
        if r is not None and r[0] is item:  # a read under an expiry policy set it
            wd = r[1]
        now = self._clock()
        if now < wd and now < node.adl:
            self._read_hook(node, item, wd, now)
            buf.hits += 1
            buf.append(key)
            if len(buf) > 63:  # _DRAIN_AT - 1
                self._after_record(buf)
            return item[0]
        buf.misses += 1
        return default

    def _read_hook(self, node: _Node, item: Any, dl: float, now: float) -> None:
        """A hit with ``expire_after_access`` or an expiry policy."""
        if self._tta is not None:
            node.adl = now + self._tta
        else:
            self._read_expiry(node, item, dl, now)

    def __getitem__(self, key: K) -> V:
        value: Any = self.get(key, MISSING)
        if value is MISSING:
            raise KeyError(key)
        return cast(V, value)

    def __contains__(self, key: object) -> bool:
        """True if ``key`` has a live entry (no hit/miss is counted, recency unchanged)."""
        node = _find(self._data, key)
        if node is None:
            return False
        if self._timed:
            return self._is_live(node, self._clock())
        return True

    # ------------------------------------------------------------------ write

    def _entry_ttl(self, ttl: float | None) -> float | None:
        """Validate a per-entry ``ttl=``."""
        if ttl is None:
            return None
        d = _check_duration(ttl, "ttl")
        if not self._timed:
            raise ValueError(
                "a per-entry ttl needs a cache created with expiry (ttl=, "
                "expire_after_access=, expiry= or refresh_after=; ttl=math.inf "
                "keeps entries without their own ttl forever)"
            )
        return d

    def _write_lifetime(self, key: K, value: Any, create: bool) -> float:
        """The expiry policy's lifetime for a write, asked under no lock."""
        exp = self._expiry
        now = self._clock()
        node = None if create else _find(self._data, key)
        if node is not None:
            dl = self._deadline(node)
            if now < dl:
                cur = None if dl == _INF else dl - now
                return _check_lifetime(
                    exp.expire_after_update(key, value, now, cur),  # type: ignore[union-attr]
                    "expire_after_update",
                )
        return _check_lifetime(
            exp.expire_after_create(key, value, now),  # type: ignore[union-attr]
            "expire_after_create",
        )

    def _weigh(self, key: K, value: Any) -> int:
        if self._weigher is None:
            return 1
        return _check_weight(self._weigher(key, value), key)

    def put(self, key: K, value: V, *, ttl: float | None = None) -> None:
        """Set ``key`` to ``value`` (a write: refreshes the TTL; an access for the policy).

        ``ttl`` (seconds, > 0; ``math.inf``: never) overrides the cache's
        ``ttl``/``expiry`` for this write; it needs a cache created with expiry.
        """
        dur = self._entry_ttl(ttl)
        if self._locked_put or self._expiry is not None:
            # user code first, under no lock: the weigher, the expiry policy
            if dur is None and self._expiry is not None:
                dur = self._write_lifetime(key, value, False)
            self._insert(key, value, None, dur, self._weigh(key, value))
            return
        try:
            node = self._data[key]
        except KeyError:
            node = None
        if node is not None:
            if not self._timed:
                node.item = value  # lock-free update of a present key
                if node.dead:  # removed meanwhile: did the removal see the write?
                    self._insert_raced(key, value, value, node, None)
                    return
                buf = self._rbuf()
                buf.append(key)
                if len(buf) >= _DRAIN_AT:
                    self._after_record(buf)
                return
            now = self._clock()
            old = self._deadline(node)
            if now < old:
                d = self._ttl if dur is None else dur
                item = (value, now + d if d is not None else _INF)
                if self._refresh is not None:
                    node.born = now
                node.item = item
                if self._tta is not None:
                    node.adl = now + self._tta
                if node.dead:
                    self._insert_raced(key, value, item, node, dur)
                    return
                if item[1] < old:  # earlier than its heap entry: schedule it
                    self._resched.append(node)
                buf = self._rbuf()
                buf.append(key)
                if len(buf) >= _DRAIN_AT:
                    self._after_record(buf)
                return
        self._insert(key, value, None, dur)

    def _insert_raced(self, key: K, value: Any, item: Any, node: _Node, dur: float | None) -> None:
        """A lock-free put wrote ``item`` into ``node`` and then found it removed
        (invalidate, pop, eviction, expiry, clear).  If the removal saw the
        write (the node's ``popped`` is ``item``), the put took effect before
        the removal and is done; otherwise it comes after it: insert anew.
        An expiry that saw the write had judged the old deadline (it read the
        deadline, then the put renewed it): the renewed value is put back."""
        stripe = self._stripe(key)
        with self._lock:
            self._maintain()
            lost = node.popped is not item
            if not lost and node.dead == _EXPIRED and self._clock() < item[1]:
                lost = True
            if lost:
                self._insert_locked(key, value, None, stripe, dur=dur)
            self._dirty = False
        self._flush()

    def __setitem__(self, key: K, value: V) -> None:
        self.put(key, value)

    def _stripe(self, key: object) -> _Stripe:
        h = hash(key)
        return self._stripes[(h ^ (h >> 16)) & self._smask]

    def _new_node(self, key: K, value: Any, dur: float | None, weight: int) -> _Node:
        """A node for a key being inserted (maintenance lock held).  ``dur``:
        this entry's lifetime (None: the cache's ``ttl``)."""
        if not self._timed:
            node = _Node(key, value, _INF)
        else:
            now = self._clock()
            d = self._ttl if dur is None else dur
            wd = now + d if d is not None else _INF
            adl = now + self._tta if self._tta is not None else _INF
            node = _Node(key, (value, wd), adl)
            node.born = now
            heapq.heappush(self._heap, (min(wd, adl), next(self._seq), node))
        node.weight = weight
        return node

    def _rewrite(self, node: _Node, value: Any, dur: float | None) -> None:
        """Give a present node a new value and fresh deadlines (lock held)."""
        if not self._timed:
            node.item = value
            return
        now = self._clock()
        old = self._deadline(node)
        d = self._ttl if dur is None else dur
        if self._refresh is not None:
            node.born = now
        node.item = item = (value, now + d if d is not None else _INF)
        if self._tta is not None:
            node.adl = now + self._tta
        if item[1] < old:
            heapq.heappush(self._heap, (self._deadline(node), next(self._seq), node))

    def _insert(
        self, key: K, value: Any, load: _Load | None, dur: float | None = None, weight: int = 1
    ) -> bool:
        """Slow path of put and of a load's completion; returns True if cached.

        A load's caller completes (and unregisters) its flight afterwards,
        whatever happens here."""
        stripe = self._stripe(key)
        with self._lock:
            # Under the maintenance lock nothing else adds or removes keys.
            self._maintain()
            cached = self._insert_locked(key, value, load, stripe, dur=dur, weight=weight)
            self._dirty = False
        if self._events:
            self._emit()
        return cached

    def _insert_locked(
        self,
        key: K,
        value: Any,
        load: _Load | None,
        stripe: _Stripe,
        *,
        dur: float | None = None,
        weight: int = 1,
    ) -> bool:
        node = _find(self._data, key)
        if node is not None and self._timed:
            item = node.item
            if self._clock() >= self._deadline(node, item) and self._unlink(node, _EXPIRED, item):
                self._expirations += 1
                self._note(node, RemovalCause.EXPIRED)
                node = None
        if self._maxweight is not None and weight > self._maxweight:
            return self._reject(key, value, load, stripe, node)
        if node is not None:
            if load is not None:  # a put won the race: keep its value
                return False
            # appeared since put looked (or a locked put): update in place
            old = node.item
            self._rewrite(node, value, dur)
            if self._listener is not None:
                oldv = old[0] if self._timed else old
                if oldv is not value:
                    self._events.append((key, oldv, RemovalCause.REPLACED))
            if self._maxweight is not None:
                node.weight = weight
                self._evict(self._policy.reweigh(key, weight))
            else:
                self._policy.access((key,))
            return True
        if load is not None and load.superseded:
            return False
        # A put supersedes the key's flight (a load registered earlier cannot
        # overwrite this live entry: see _load) in the same stripe-locked step
        # that publishes the entry, so that a caller looking for the key sees
        # either the flight or the entry, never neither.
        supersede = load is None and bool(stripe.loading)
        # Order matters if an exception cuts this short: the policy learns of
        # the key first and the map loses victims before it gains the key, so
        # the map never exceeds maxsize and _repair can restore the rest.
        victims = self._policy.insert(key, weight)
        if self._maxweight is not None and key in victims:
            # W-TinyLFU refused the new entry itself (heavier than its window,
            # it lost to the main region's victim): evicted on arrival.
            victims.remove(key)
            if supersede:
                self._supersede(key, stripe)
            self._evict(victims)
            self._evictions += 1
            if self._listener is not None:
                self._events.append((key, value, RemovalCause.SIZE))
            return False
        self._evict(victims)
        new = self._new_node(key, value, dur, weight)
        if supersede:
            with stripe.lock:
                found = _find(stripe.loading, key)
                if found is not None:
                    del stripe.loading[key]
                    found.superseded = True
                self._data[key] = new
        elif load is None:
            self._data[key] = new
        else:
            # Under the stripe lock: a caller looking for the key sees either
            # the flight or the entry (the flight is unregistered afterwards).
            with stripe.lock:
                self._data[key] = new
        return True

    def _evict(self, victims: list[Any]) -> None:
        """Drop the policy's victims from the map (lock held)."""
        data = self._data
        for victim in victims:
            vnode = data.pop(victim)
            vnode.dead = _GONE
            vnode.popped = vnode.item
            self._evictions += 1
            self._note(vnode, RemovalCause.SIZE)

    def _reject(
        self, key: K, value: Any, load: _Load | None, stripe: _Stripe, node: _Node | None
    ) -> bool:
        """A value heavier than the whole cache: never admitted (lock held).

        A put still supersedes what it overwrites (the old entry is removed:
        reported as replaced) and in-flight loads; a load's value is not cached."""
        if load is not None:
            if node is not None or load.superseded:
                return False
        else:
            if stripe.loading:
                self._supersede(key, stripe)
            if node is not None:
                self._unlink(node, _GONE)
                self._note(node, RemovalCause.REPLACED)
        self._rejections += 1
        if self._listener is not None:
            self._events.append((key, value, RemovalCause.SIZE))
        return False

    def _supersede(self, key: object, stripe: _Stripe) -> None:
        with stripe.lock:
            load = _find(stripe.loading, key)
            if load is not None:
                del stripe.loading[key]
                load.superseded = True

    # ----------------------------------------------------------------- remove

    def invalidate(self, key: K) -> bool:
        """Remove ``key``; True if a live entry was removed.  An in-flight load of
        ``key`` will not be cached."""
        stripe = self._stripe(key)
        with self._lock:
            self._maintain()
            self._supersede(key, stripe)
            node = _find(self._data, key)
            live = False
            if node is not None:
                live = not self._timed or self._is_live(node, self._clock())
                self._unlink(node, _GONE if live else _EXPIRED)
                if not live and self._renewed(node):
                    live = True
                if not live:
                    self._expirations += 1
                self._note(node, RemovalCause.EXPLICIT if live else RemovalCause.EXPIRED)
            self._dirty = False
        self._flush()
        return live

    def __delitem__(self, key: K) -> None:
        if not self.invalidate(key):
            raise KeyError(key)

    def clear(self) -> None:
        """Remove every entry; in-flight loads will not be cached."""
        self._clear_with_stats()

    def _clear_with_stats(self) -> CacheStats:
        """``clear()``, returning the stats of the instant of clearing."""
        with self._lock:
            snapshot = self._stats_locked()
            self._dirty = True
            for stripe in self._stripes:
                with stripe.lock:
                    for load in stripe.loading.values():
                        load.superseded = True
                    stripe.loading.clear()
            for node in self._data.values():
                node.dead = _GONE
                node.popped = node.item
                self._note(node, RemovalCause.EXPLICIT)
            self._data.clear()
            self._policy.clear()
            self._heap.clear()
            self._dirty = False
        self._flush()
        return snapshot

    # ---------------------------------------------------------------- loading

    def _record(self, rec: Any) -> None:
        """Count one lookup: a hit on key ``rec`` (buffered) or a miss (``_MISS``)."""
        buf = self._rbuf()
        if rec is _MISS:
            buf.misses += 1
            return
        buf.hits += 1
        buf.append(rec)
        if len(buf) >= _DRAIN_AT:
            self._after_record(buf)

    def _live_value(self, node: _Node) -> Any:
        """The value of a node found in the map, or MISSING if it expired."""
        if not self._timed:
            return node.item
        item = node.item
        value, wd = item
        r = node.rdl
        if r is not None and r[0] is item:
            wd = r[1]
        now = self._clock()
        if now < wd and now < node.adl:
            if self._tta is not None:
                node.adl = now + self._tta
            elif self._expiry is not None:
                self._read_expiry(node, item, wd, now)
            return value
        return MISSING

    # ---------------------------------------------------------------- refresh

    def _maybe_refresh(self, key: K, node: _Node, loader: Callable[[K], Any]) -> None:
        """A hit of a loading call: start one background reload if the entry is
        older than ``refresh_after`` and none is running for the key.

        The reload is registered under the key's stripe lock in the same step
        that checks for one, and unregistered on every path: by the reload
        when it ends, or here if it could not be started."""
        if self._clock() - node.born < self._refresh:  # type: ignore[operator]
            return
        stripe = self._stripe(key)
        if key in stripe.refreshing:  # one is running (checked again under the lock)
            return
        item = node.item
        token = object()
        started = False
        try:
            with stripe.lock:
                if key in stripe.refreshing:
                    return
                stripe.refreshing[key] = token
            job = functools.partial(
                self._run_refresh, key, node, item, loader, stripe=stripe, token=token
            )
            if self._executor is not None:
                self._executor.submit(job)
            else:
                threading.Thread(target=job, name="conctools-cache-refresh", daemon=True).start()
            started = True
        except Exception:
            _log.exception("could not start the refresh of key %r", key)
        finally:
            if not started:
                self._end_refresh(key, stripe, token, None)

    def _end_refresh(self, key: Any, stripe: _Stripe, token: object, failed: bool | None) -> None:
        """Unregister a reload (idempotent; rerun if interrupted) and count it."""
        pending: BaseException | None = None
        counted = failed is None
        while True:  # (no call before the try: a call can be interrupted)
            try:
                with stripe.lock:
                    if not counted:
                        stripe.loads += 1
                        if failed:
                            stripe.failures += 1
                        counted = True
                    refreshing = stripe.refreshing
                    try:
                        if key in refreshing and refreshing[key] is token:
                            del refreshing[key]
                    except Exception:  # a colliding key's __eq__: a stale token is inert
                        pass
                break
            except BaseException as exc:
                pending = exc
        if pending is not None:
            raise pending

    def _run_refresh(
        self,
        key: K,
        node: _Node,
        item: Any,
        loader: Callable[[K], Any],
        *,
        stripe: _Stripe,
        token: object,
    ) -> None:
        """The background reload: install the new value only if the entry still
        holds the item the reload was started for (a put, invalidation, expiry
        or clear in the meantime wins); on failure keep the old value, log."""
        failed = True
        try:
            value = loader(key)
            dur = self._write_lifetime(key, value, False) if self._expiry is not None else None
            weight = self._weigh(key, value)
            with self._lock:
                self._maintain()
                if (
                    node.item is item
                    and not node.dead
                    and _find(self._data, key) is node
                    and self._is_live(node, self._clock())
                ):
                    self._insert_locked(key, value, None, stripe, dur=dur, weight=weight)
                self._dirty = False
            failed = False
            self._flush()
        except Exception:
            _log.exception("refresh of key %r failed; the cached value is kept", key)
        finally:
            self._end_refresh(key, stripe, token, failed)

    def get_or_load(
        self,
        key: K,
        loader: Callable[[K], V],
        timeout: float | None = None,
        *,
        ttl: float | None = None,
    ) -> V:
        """The value for ``key``; if absent, ``loader(key)`` computes it (single-flight).

        Concurrent callers for the same missing key share one loader call.  The
        loader runs in the first caller's thread under no lock; a waiter gives up
        after ``timeout`` seconds with ``TimeoutError`` (the load goes on;
        ``None`` or ``math.inf`` wait forever).  A loader exception is raised in
        every caller (the waiters raise copies of it, see the class notes) and
        nothing is cached.  If the loader returned but caching
        its value failed (an interrupt, a colliding key's ``__eq__`` raising),
        the caller that ran it gets that exception and the waiters get the
        value; the load is over either way and a later call loads again.  The
        caller that runs the loader counts a miss; a waiter counts a hit if the
        load succeeded and a miss otherwise.

        ``ttl`` (seconds) overrides the cache's ``ttl``/``expiry`` for the
        loaded value (as ``put(..., ttl=)``).  With ``refresh_after``, a hit
        on an entry older than that returns the cached value and starts one
        background reload of the key (see the class docs).
        """
        t = None if timeout is None else check_timeout(timeout)
        dur = self._entry_ttl(ttl)
        node = _find(self._data, key)
        if node is not None:
            value = self._live_value(node)
            if value is not MISSING:
                self._record(key)
                if self._refresh is not None:
                    self._maybe_refresh(key, node, loader)
                return value  # type: ignore[no-any-return]
        stripe = self._stripe(key)
        end = None if t is None else time.monotonic() + t
        while True:
            # The flight this call would own exists before it can be
            # registered, and is completed in the finally block on every
            # path: no interrupt can leave a registered flight behind.
            mine = _Load(threading.get_ident())
            value = MISSING
            error: BaseException | None = None
            try:
                load, value = self._begin(key, stripe, mine)
                if load is None:
                    return value  # type: ignore[no-any-return]
                if load is not mine:
                    value = self._join(key, load, stripe, end)
                    if value is MISSING:  # its owner was interrupted: start over
                        continue
                    return value  # type: ignore[no-any-return]
                self._record(_MISS)
                try:
                    value = loader(key)
                except BaseException as exc:
                    error = exc
                    raise
                d = dur
                if d is None and self._expiry is not None:
                    d = self._write_lifetime(key, value, True)
                self._insert(key, value, mine, d, self._weigh(key, value))
                return value
            finally:
                # Complete ``mine`` (idempotent; a no-op if it was never
                # registered), inline: no call here can hit the recursion limit,
                # and an interrupted completion is simply run again.
                pending: BaseException | None = None
                while True:  # (no call before the try: a call can be interrupted)
                    try:
                        with stripe.lock:
                            if not mine.done:
                                if error is not None:
                                    if isinstance(error, Exception):
                                        mine.error = error  # the waiters raise copies of it
                                    # (an interrupt such as KeyboardInterrupt is this
                                    # thread's own: the waiters start over instead)
                                    stripe.failures += 1
                                else:
                                    mine.value = value  # MISSING: a waiter loads instead
                                mine.done = True
                            loading = stripe.loading
                            try:
                                if key in loading and loading[key] is mine:
                                    del loading[key]
                            except Exception:  # a colliding key's __eq__: a done flight is inert
                                pass
                            waiters = mine.waiters[:]
                        for w in waiters:  # each waiter holds its private lock until now
                            if not w.locked():  # (no loop-ending "if": see core._after_record)
                                continue
                            w.release()
                        break
                    except BaseException as exc:  # interrupted while completing: again
                        pending = exc
                if pending is not None:
                    raise pending

    async def aget_or_load(
        self, key: K, loader: Callable[[K], Awaitable[V]], timeout: float | None = None
    ) -> V:
        """``get_or_load`` for coroutines: the value for ``key``; if absent, awaits
        ``loader(key)`` once for all concurrent callers (single-flight).

        Concurrent callers for the same missing key, in tasks of one event loop
        or of loops in other threads (and synchronous ``get_or_load`` callers),
        share one load.  The loader runs in a task of its own on the loop of
        the call that started the load, under no lock; each caller awaits its
        outcome, and a caller on another loop is woken thread-safely.  A loader
        exception is raised in every caller (the one that started the load
        gets it, the others copies of it) and nothing is cached.  Cancelling a
        caller (the one that started the load included) only stops that
        caller's wait: the load goes on and its value is cached.  ``timeout``
        bounds the wait as in ``get_or_load`` (``TimeoutError``; the load goes
        on).  A load that is itself cancelled (its loop shuts down) or
        interrupted caches nothing, and its waiters start over.  Awaiting the
        key from inside its own loader raises ``RuntimeError``.  Counted like
        ``get_or_load``: a miss for the caller that starts the load; a hit or
        a miss for a waiter; a waiter cancelled before the outcome counts
        nothing.
        """
        t = None if timeout is None else check_timeout(timeout)
        node = _find(self._data, key)
        if node is not None:
            value = self._live_value(node)
            if value is not MISSING:
                self._record(key)
                return value  # type: ignore[no-any-return]
        from ._async import aload  # (a cycle: _async builds on this module)

        return await aload(self, key, loader, t, True)  # type: ignore[no-any-return]

    def _begin(self, key: K, stripe: _Stripe, mine: _Load) -> tuple[_Load | None, Any]:
        """Join or start the flight for a key that looked absent.

        Returns ``(None, value)`` if a live entry is there now (a hit, counted),
        ``(load, MISSING)`` to wait for another caller's flight, or ``(mine,
        MISSING)`` once ``mine`` is registered: the caller runs the loader (and
        counts the miss)."""
        with stripe.lock:
            node = _find(self._data, key)
            value = MISSING if node is None else self._live_value(node)
            if value is MISSING:
                load = _find(stripe.loading, key)
                if load is None or load.done:
                    load = stripe.loading[key] = mine
                    stripe.loads += 1
                return load, MISSING
        self._record(key)  # installed by another thread since our first lookup
        return None, value

    def _join(self, key: K, load: _Load, stripe: _Stripe, end: float | None) -> Any:
        """Wait for another caller's flight and return its value or raise its
        error; MISSING (nothing counted) if its owner was interrupted before
        its loader returned.  ``end``: a ``time.monotonic()`` deadline or None."""
        if load.owner == threading.get_ident() and not load.done:
            self._record(_MISS)
            raise RuntimeError(f"recursive load of key {key!r} from its own loader")
        left = None if end is None else max(0.0, end - time.monotonic())
        if not _await(stripe.lock, load, left):
            self._record(_MISS)
            raise TimeoutError(f"timed out waiting for another thread's load of {key!r}")
        if load.error is not None:
            error = _waiter_error(load.error)
            if error is None:  # an exception that cannot be copied: start over
                return MISSING
            self._record(_MISS)
            raise error
        if load.value is MISSING:
            return MISSING
        self._record(key)
        return load.value

    # ----------------------------------------------------------- inspection

    def __len__(self) -> int:
        if not self._timed:
            return len(self._data)
        with self._lock:
            if self._dirty:
                self._repair()
            self._dirty = True
            if self._resched:
                self._schedule()
            self._expire(self._clock())
            self._dirty = False
            n = len(self._data)
        self._flush()
        return n

    def _live_nodes(self) -> list[_Node]:
        with self._lock:
            self._maintain()
            self._dirty = False
            nodes = list(self._data.values())
        self._flush()
        return nodes

    def keys(self) -> list[K]:
        """A snapshot list of the live keys (in no particular order)."""
        return [n.key for n in self._live_nodes()]

    def items(self) -> list[tuple[K, V]]:
        """A snapshot list of the live ``(key, value)`` pairs."""
        timed = self._timed
        return [(n.key, n.item[0] if timed else n.item) for n in self._live_nodes()]

    def __iter__(self) -> Iterator[K]:
        return iter(self.keys())

    def values(self) -> list[V]:
        """A snapshot list of the live values."""
        timed = self._timed
        return [n.item[0] if timed else n.item for n in self._live_nodes()]

    # ---------------------------------------------------- MutableMapping API

    @overload
    def pop(self, key: K) -> V: ...

    @overload
    def pop(self, key: K, default: D) -> V | D: ...

    def pop(self, key: K, default: Any = MISSING) -> Any:
        """Remove ``key`` and return its value (atomically); ``default`` or
        ``KeyError`` if it has no live entry.  Like ``invalidate``: an
        in-flight load of ``key`` will not be cached; no hit or miss is counted."""
        stripe = self._stripe(key)
        with self._lock:
            self._maintain()
            self._supersede(key, stripe)
            node = _find(self._data, key)
            value: Any = MISSING
            if node is not None:
                live = not self._timed or self._is_live(node, self._clock())
                self._unlink(node, _GONE if live else _EXPIRED)
                if not live and self._renewed(node):
                    live = True
                if live:  # what the node held when it was marked dead
                    value = node.popped[0] if self._timed else node.popped
                else:
                    self._expirations += 1
                self._note(node, RemovalCause.EXPLICIT if live else RemovalCause.EXPIRED)
            self._dirty = False
        self._flush()
        if value is not MISSING:
            return value
        if default is MISSING:
            raise KeyError(key)
        return default

    def popitem(self) -> tuple[K, V]:
        """Remove and return the entry that would be evicted next (LRU: the least
        recently used; W-TinyLFU: the main region's victim, else the window's
        oldest).  ``KeyError`` if the cache is empty."""
        with self._lock:
            self._maintain()
            self._dirty = False
            try:
                key = self._policy.victim()
            except KeyError:
                raise KeyError("popitem(): cache is empty") from None
            node = self._data[key]
            self._dirty = True
            self._unlink(node, _GONE)
            self._note(node, RemovalCause.EXPLICIT)
            self._dirty = False
        self._flush()
        return (key, node.popped[0] if self._timed else node.popped)

    def setdefault(self, key: K, default: V) -> V:
        """``key``'s live value; if it has none, store ``default`` and return it
        (one atomic step; a store, like ``put``: an in-flight load of ``key``
        will not be cached).  No hit or miss is counted.  The weigher and the
        expiry policy are asked about ``default`` first, under no lock."""
        stripe = self._stripe(key)
        dur = self._write_lifetime(key, default, True) if self._expiry is not None else None
        weight = self._weigh(key, default)
        with self._lock:
            self._maintain()
            node = _find(self._data, key)
            if node is not None and (not self._timed or self._is_live(node, self._clock())):
                self._dirty = False
                return node.item[0] if self._timed else node.item  # type: ignore[no-any-return]
            self._insert_locked(key, default, None, stripe, dur=dur, weight=weight)
            self._dirty = False
        self._flush()
        return default

    def update(self, other: Any = (), /, **kwargs: V) -> None:
        """``put`` every pair of ``other`` (a mapping or pairs) and of ``kwargs``,
        one after the other (not atomically as a whole)."""
        if hasattr(other, "keys"):
            for k in list(other.keys()):
                self.put(k, other[k])
        else:
            for k, v in other:
                self.put(k, v)
        for k, v in kwargs.items():
            self.put(k, v)  # type: ignore[arg-type]

    __hash__ = None  # type: ignore[assignment]  # mutable: unhashable, as dict

    # ------------------------------------------------ copy, deepcopy, pickle

    def _settings(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ttl": self._ttl,
            "policy": self._policy.name,
            "stripes": len(self._stripes),
            "expire_after_access": self._tta,
            "clock": self._clock,
        }
        if self._maxweight is None:
            out["maxsize"] = self._maxsize
        else:
            out["maxweight"] = self._maxweight
            out["weigher"] = self._weigher
        for name, v in (
            ("expiry", self._expiry),
            ("on_evict", self._listener),
            ("refresh_after", self._refresh),
            ("refresh_executor", self._executor),
        ):
            if v is not None:
                out[name] = v
        return out

    def _ordered_items(self) -> list[tuple[Any, Any]]:
        """Live entries from the next victim to the safest (a snapshot)."""
        with self._lock:
            self._maintain()
            self._dirty = False
            data = self._data
            timed = self._timed
            out = []
            for k in self._policy.keys():  # noqa: SIM118 - a Policy, not a dict
                node = _find(data, k)
                if node is None:
                    continue
                out.append((k, node.item[0] if timed else node.item))
        self._flush()
        return out

    def __reduce__(self) -> tuple[Any, ...]:
        state = getattr(self, "__dict__", None)
        return (
            _rebuild,
            (_public_class(type(self)), self._settings(), self._ordered_items()),
            state,
        )

    def __copy__(self) -> ConcurrentCache[K, V]:
        return _rebuild(  # type: ignore[no-any-return]
            _public_class(type(self)),
            self._settings(),
            self._ordered_items(),
            getattr(self, "__dict__", None),
        )

    def __deepcopy__(self, memo: dict[int, Any]) -> ConcurrentCache[K, V]:
        import copy

        items = copy.deepcopy(self._ordered_items(), memo)
        state = copy.deepcopy(getattr(self, "__dict__", None), memo)
        new = _rebuild(_public_class(type(self)), self._settings(), items, state)
        memo[id(self)] = new
        return new  # type: ignore[no-any-return]

    def stats(self) -> CacheStats:
        """An exact, immutable snapshot of the counters (see :class:`CacheStats`)."""
        with self._lock:
            snapshot = self._stats_locked()
        self._flush()
        return snapshot

    def _stats_locked(self) -> CacheStats:
        self._maintain()
        self._dirty = False
        loads = failures = 0
        for s in self._stripes:
            with s.lock:
                loads += s.loads
                failures += s.failures
        with self._pt.lock:  # exiting threads fold their counts under it
            hits = self._retired.hits
            misses = self._retired.misses
            for buf in [*self._pt._registry.live.values(), *self._retired.detached]:
                hits += buf.hits
                misses += buf.misses
        return CacheStats(
            hits=hits,
            misses=misses,
            loads=loads,
            load_failures=failures,
            evictions=self._evictions,
            expirations=self._expirations,
            rejections=self._rejections,
        )


MutableMapping.register(ConcurrentCache)


class _TimedCache(ConcurrentCache[K, V]):
    """A ConcurrentCache with ``ttl`` and/or ``expire_after_access`` (made by
    ``ConcurrentCache(...)``; not public)."""

    __slots__ = ()

    get = ConcurrentCache._get_timed


# The C accelerator's get methods (same steps, same results as the Python
# methods above, which stay the specification and its fallback).
_py_get = ConcurrentCache.get
_py_get_timed = ConcurrentCache._get_timed
_cache_install = native_attr("_cache_install")
if _cache_install is not None:
    _native_get, _native_get_timed = _cache_install(
        ConcurrentCache, _TimedCache, _Node, _Buffer, time.monotonic, _py_get, _py_get_timed
    )
    setattr(ConcurrentCache, "get", _native_get)  # noqa: B010 (mypy: a method)
    setattr(_TimedCache, "get", _native_get_timed)  # noqa: B010

_TIMED_CLASSES: dict[type[Any], type[Any]] = {}


def _timed_class(cls: type[Any]) -> type[Any]:
    """The class to instantiate for a cache with expiry: ``_TimedCache``, or for
    a user subclass ``S`` a class ``(S, _TimedCache)`` (S's own methods win)."""
    if cls is ConcurrentCache:
        return _TimedCache
    if issubclass(cls, _TimedCache):
        return cls
    timed = _TIMED_CLASSES.get(cls)  # a benign race: at worst two equal classes
    if timed is None:
        ns = {"__slots__": (), "__module__": cls.__module__, "__qualname__": cls.__qualname__}
        timed = _TIMED_CLASSES.setdefault(cls, type(cls.__name__, (cls, _TimedCache), ns))
    return timed


def _public_class(cls: type[Any]) -> type[Any]:
    """The class a user named: ``ConcurrentCache``/their subclass, not the
    internal class with expiry that ``__new__`` substitutes."""
    if cls is _TimedCache:
        return ConcurrentCache
    if issubclass(cls, _TimedCache) and cls.__bases__[-1] is _TimedCache:
        return cls.__bases__[0]
    return cls


def _rebuild(
    cls: type[Any], settings: dict[str, Any], items: list[tuple[Any, Any]], state: Any = None
) -> Any:
    """A new cache of class ``cls`` with ``settings`` and ``items`` (inserted
    from the next victim to the safest, so the eviction order carries over).
    The constructor of a subclass is not called (as for ``copy`` of any object
    with ``__reduce_ex__``); fresh statistics, fresh lifetimes."""
    obj: Any = cls.__new__(cls, **settings)  # type: ignore[call-overload]
    ConcurrentCache.__init__(obj, **settings)
    if state:
        obj.__dict__.update(state)
    for k, v in items:
        obj.put(k, v)
    return obj


def _check_weight(w: object, key: object) -> int:
    if isinstance(w, bool) or not isinstance(w, int):
        raise TypeError(f"weigher must return an int, not {type(w).__name__} (key {key!r})")
    if w < 0:
        raise ValueError(f"weigher returned a negative weight {w} (key {key!r})")
    return int(w)


def _check_lifetime(d: object, method: str) -> float:
    """An expiry policy's result: seconds >= 0, or None (never: inf)."""
    if d is None:
        return _INF
    if isinstance(d, bool) or not isinstance(d, (int, float)):
        raise TypeError(f"{method} must return seconds or None, not {type(d).__name__}")
    v = float(d)
    if math.isnan(v) or v < 0:
        raise ValueError(f"{method} must return seconds >= 0 or None, not {d!r}")
    return v


def _check_duration(value: float | None, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds or None, not {type(value).__name__}")
    v = float(value)
    if math.isnan(v) or v <= 0:
        raise ValueError(f"{name} must be a positive number of seconds (or None: no expiry)")
    return v
