"""``@cached``: functools.lru_cache's interface, bounded, single-flight, with TTL and W-TinyLFU.

With ``policy="lru"`` and no ``ttl`` hits are served by :func:`functools.lru_cache`
itself and a single-flight layer runs on misses; otherwise the function is memoized
in a :class:`~conctools.cache.ConcurrentCache`.
"""

from __future__ import annotations

import functools
import inspect
import threading
import types
from collections.abc import Callable, Hashable
from typing import Any, Generic, NamedTuple, TypeVar, overload

from .._internal.sentinel import MISSING
from .._runtime import gil_enabled
from ._async import aload
from .core import (
    _MISS,
    ConcurrentCache,
    PolicyName,
    _await,
    _check_duration,
    _find,
    _Load,
    _waiter_error,
)
from .stats import CacheStats

__all__ = ["CacheInfo", "CachedFunction", "cached"]

R = TypeVar("R")


class CacheInfo(NamedTuple):
    """What ``cache_info()`` of a :func:`cached` function returns (as in functools).

    **Thread safety.** An immutable tuple: safe to share.

    **Atomic operations.** None; a snapshot.  Under concurrent calls the four
    fields are read one after the other; they are exact once calls are over.

    **Iteration.** Iterates over ``(hits, misses, maxsize, currsize)``.

    **Blocking and timeouts.** Nothing blocks.

    **Complexity.** O(1).
    """

    hits: int
    misses: int
    maxsize: int
    currsize: int


class _HashedSeq(list):  # type: ignore[type-arg]
    """A key tuple's items with the hash computed once (as in functools)."""

    __slots__ = ("hashvalue",)

    def __init__(self, tup: tuple[Any, ...]) -> None:
        self[:] = tup
        self.hashvalue = _hash(tup)

    def __hash__(self) -> int:  # type: ignore[override]
        return self.hashvalue


_KWD_MARK = (object(),)
_len = len  # not the global name: a program may cache len itself (builtins.len = cached(len))
_hash = hash
_FAST_TYPES = frozenset({int, str})


def make_key(args: tuple[Any, ...], kwds: dict[str, Any], typed: bool) -> Hashable:
    """The cache key of a call, with :func:`functools.lru_cache`'s rules.

    ``f(1)`` and ``f(1.0)`` share an entry unless ``typed``; keyword order
    matters (``f(a=1, b=2)`` and ``f(b=2, a=1)`` are distinct entries); a single
    ``int`` or ``str`` argument is its own key.  Raises ``TypeError`` for an
    unhashable argument.
    """
    key: tuple[Any, ...] = args
    if kwds:
        key += _KWD_MARK
        for item in kwds.items():
            key += item
    if typed:
        key += tuple(type(v) for v in args)
        if kwds:
            key += tuple(type(v) for v in kwds.values())
    elif _len(key) == 1 and type(key[0]) in _FAST_TYPES:
        return key[0]  # type: ignore[no-any-return]
    return _HashedSeq(key)


class CachedFunction(Generic[R]):
    """The static type of a function wrapped by :func:`cached` (for type checkers).

    At run time the wrapper is a :func:`functools.lru_cache` wrapper or a plain
    function; either binds as a method like the function it wraps.

    **Thread safety.** Calls, ``cache_info()`` and ``cache_clear()`` may run in
    any number of threads.

    **Atomic operations.** A call is single-flight per argument tuple: concurrent
    calls with equal arguments run the function once and share its result or
    exception (the calls that waited raise copies of it: same class, ``args``,
    attributes and ``__cause__``).  Each call counts exactly one hit or one miss.

    **Iteration.** Not iterable.

    **Blocking and timeouts.** A call blocks while another call with the same
    arguments computes (without a timeout, as with a lock around
    ``lru_cache``); a call with the same arguments from inside that computation
    raises ``RuntimeError`` instead of deadlocking.  On a coroutine function a
    call awaits instead of blocking, and cancelling it stops only its wait.

    **Complexity.** O(1) per call plus the key's construction and hashing.
    """

    __wrapped__: Callable[..., R]

    def __call__(self, *args: Any, **kwargs: Any) -> R:  # pragma: no cover - typing only
        raise NotImplementedError

    def __get__(self, instance: object, owner: type | None = None) -> CachedFunction[R]:
        # (typed as itself: ``Svc().lookup(x)`` and ``Svc.lookup.cache_info()``
        # both type-check; at run time a bound method, as for lru_cache)
        raise NotImplementedError  # pragma: no cover - typing only

    def cache_info(self) -> CacheInfo:  # pragma: no cover - typing only
        """Hits, misses, maxsize and current size since the last ``cache_clear()``."""
        raise NotImplementedError

    def cache_clear(self) -> None:  # pragma: no cover - typing only
        """Empty the cache and reset the hit/miss counts."""
        raise NotImplementedError

    def cache_parameters(self) -> dict[str, Any]:  # pragma: no cover - typing only
        """``maxsize``, ``typed``, ``ttl`` and ``policy``."""
        raise NotImplementedError


@overload
def cached(maxsize: Callable[..., R]) -> CachedFunction[R]: ...


@overload
def cached(
    maxsize: int | None = 1024,
    *,
    ttl: float | None = None,
    policy: PolicyName = "lru",
    typed: bool = False,
    key: Callable[..., Hashable] | None = None,
    refresh_after: float | None = None,
) -> Callable[[Callable[..., R]], CachedFunction[R]]: ...


def cached(
    maxsize: int | Callable[..., R] | None = 1024,
    *,
    ttl: float | None = None,
    policy: PolicyName = "lru",
    typed: bool = False,
    key: Callable[..., Hashable] | None = None,
    refresh_after: float | None = None,
) -> CachedFunction[R] | Callable[[Callable[..., R]], CachedFunction[R]]:
    """Memoize a function, thread-safely and single-flight: ``functools.lru_cache`` plus.

    A drop-in for :func:`functools.lru_cache` (same key rules, ``typed``,
    ``cache_info()``, ``cache_clear()``, ``cache_parameters()``, ``__wrapped__``,
    usable bare as ``@cached``) that can expire entries (``ttl``), can use
    W-TinyLFU (``policy="tinylfu"``), accepts a key function, and is
    *single-flight*: concurrent calls with the same arguments run the function
    once and share its result or its exception (which is not cached).  Every
    call counts as exactly one hit or one miss in ``cache_info()``; a call that
    waited for another call's computation counts as a hit.  Works on methods
    (``self`` is part of the key and must be hashable).

    ``maxsize`` as in lru_cache: an int (negative values count as ``0``, which
    caches nothing) or ``None`` (unbounded; not with ``policy="tinylfu"``,
    which needs a bound: ``ValueError``); anything else is a ``TypeError``.
    ``ttl`` (seconds after the computation, > 0) expires results.
    ``key(*args, **kwargs)`` computes the cache key instead of the argument
    tuple (as in cachetools and theine); it must return a hashable value.
    With ``policy="lru"``, no ``ttl`` and no ``key``, hits are served by
    :func:`functools.lru_cache` itself (C speed) and the single-flight layer
    only runs on misses; otherwise the function is memoized in a
    :class:`~conctools.cache.ConcurrentCache`.
    ``refresh_after`` (seconds): a call that hits a result older than that
    returns it and recomputes it once in the background (see
    ``ConcurrentCache(refresh_after=)``); it also selects the ConcurrentCache
    engine.

    On a coroutine function (``async def``) the result is a coroutine function
    with the same options and engines: concurrent awaits with the same
    arguments (in tasks of one event loop, or of loops in other threads) await
    one computation, run in a task of its own; cancelling an awaiting caller
    never cancels it (see
    :meth:`~conctools.cache.ConcurrentCache.aget_or_load` for the guarantees).
    ``refresh_after`` is refused there (:class:`ValueError`): a background
    reload would need an event loop of its own.
    """
    if callable(maxsize) and not isinstance(maxsize, int):
        return _wrap(maxsize, 1024, ttl, policy, typed, key=key)
    size = _check_call_args(maxsize, ttl, policy, key)
    _check_duration(refresh_after, "refresh_after")

    def decorating(func: Callable[..., R]) -> CachedFunction[R]:
        return _wrap(func, size, ttl, policy, typed, key=key, refresh_after=refresh_after)

    return decorating


def _check_call_args(maxsize: object, ttl: float | None, policy: object, key: object) -> int | None:
    """Validate cached()'s arguments; the normalised maxsize (as lru_cache's)."""
    if maxsize is not None and not isinstance(maxsize, int):
        raise TypeError("Expected first argument to be an integer, a callable, or None")
    size = None if maxsize is None else max(0, int(maxsize))
    if key is not None and not callable(key):
        raise TypeError("key must be callable or None")
    _check_duration(ttl, "ttl")
    if not isinstance(policy, str):
        raise TypeError(f"policy must be a str, not {type(policy).__name__}")
    if policy not in ("lru", "tinylfu"):
        raise ValueError(f"policy must be 'lru' or 'tinylfu', not {policy!r}")
    if policy == "tinylfu" and size is None:
        raise ValueError("policy='tinylfu' needs a bound: maxsize=None is not supported")
    return size


def _plain_signatures(*fns: Callable[..., Any]) -> None:
    """``inspect.signature`` of cache_info & co. reads ``()``, as lru_cache's."""
    for fn in fns:
        fn.__annotations__ = {}


class _Absent(Exception):
    """Raised by a probing call of the lru engine: the key is not in lru_cache."""


_RECENT = 64  # hashes of recently completed keys (see _wrap_lru)


def _wrap_lru(func: Callable[..., R], maxsize: int | None, typed: bool) -> CachedFunction[R]:
    """The engine for ``policy="lru", ttl=None``: functools.lru_cache (C) serves
    hits; a single-flight layer runs under it on misses.

    On a miss lru_cache calls ``compute``; the first caller for a key registers
    a flight and runs the function, later ones wait for its result.  No flight
    outlives its call and no value is kept outside lru_cache: what is kept is
    exactly lru_cache's ``maxsize`` entries.

    The gap: a caller whose lru_cache lookup missed just before another
    call's result was stored, and whose ``compute`` starts after that call's
    flight ended.  The hashes (only: no key or value is kept alive) of the
    last ``_RECENT`` completed keys let such a caller *probe* lru_cache (a
    nested call that raises ``_Absent`` from ``compute`` if the key is
    missing) before computing again.  With the GIL the owner also stores its
    value through a nested call of the wrapper (which misses and gets the value
    from ``compute``) before its flight ends, so the probe always finds it.
    On the free-threaded build (where re-entering lru_cache is slow) the owner
    does not: a prober that runs within the ~0.1 us between the owner's
    ``compute`` returning and lru_cache storing computes once more
    (sequentially, never concurrently).  lru_cache counts waiters, probes and
    nested calls on its own terms; ``cache_info`` counts one hit or one miss
    per call.
    """
    flights: dict[Hashable, _Load] = {}
    recent: dict[int, None] = {}
    # Reentrant, as lru_cache's own: a key's __eq__ may call the function.
    lock = threading.RLock()
    # [misses that were answered (hits), nested calls' misses, probes' hits,
    #  cache_clear() generation]
    counts = [0, 0, 0, 0]
    get_ident = threading.get_ident
    # Re-entering a lru_cache wrapper costs ~0.3 us with the GIL and ~90 us on
    # 3.13t (its critical section): there the probe alone closes the gap.
    store_nested = gil_enabled()

    def compute(*args: Any, **kwargs: Any) -> R:
        key = make_key(args, kwargs, typed)
        me = get_ident()
        while True:
            mine = _Load(me)
            value: Any = MISSING
            error: BaseException | None = None
            try:
                with lock:
                    gen = counts[3]
                    flight = _find(flights, key)
                    probe = False
                    if flight is None or flight.done:
                        flight = flights[key] = mine
                        probe = _hash(key) in recent
                    elif flight.owner == me:
                        if flight.storing:
                            counts[1] += 1  # the owner's nested storing call (a miss)
                            flight.storing = False  # (it reached compute: see below)
                            return flight.value  # type: ignore[no-any-return]
                        if flight.probing:
                            counts[1] += 1  # the owner's probe (a miss): not in lru_cache
                            raise _Absent
                        raise RuntimeError("recursive call with the same arguments")
                if flight is not mine:
                    _await(lock, flight, None)
                    if flight.error is not None:
                        error = _waiter_error(flight.error)
                        if error is None:  # an exception that cannot be copied: start over
                            continue
                        raise error
                    if flight.value is MISSING:  # its owner was interrupted: start over
                        continue
                    with lock:
                        if counts[3] == gen:
                            counts[0] += 1
                    return flight.value  # type: ignore[no-any-return]
                if probe:
                    mine.probing = True
                    try:
                        value = lru(*args, **kwargs)
                    except _Absent:
                        value = MISSING
                    mine.probing = False
                    if value is not MISSING:  # stored by a flight that just ended
                        with lock:
                            if counts[3] == gen:
                                counts[0] += 1
                                counts[2] += 1
                        return value  # type: ignore[no-any-return]
                try:
                    value = func(*args, **kwargs)
                except BaseException as exc:
                    error = exc
                    raise
                if store_nested:
                    mine.value = value
                    mine.storing = True
                    lru(*args, **kwargs)  # stores value in lru_cache before the flight ends
                    if mine.storing:  # a hit: another call had stored the key again
                        with lock:
                            if counts[3] == gen:
                                counts[2] += 1  # not a hit of a call of the user's
                with lock:
                    recent[_hash(key)] = None
                    if _len(recent) > _RECENT:
                        del recent[next(iter(recent))]
                return value  # type: ignore[no-any-return]
            finally:
                # Complete ``mine`` (idempotent; a no-op if it was never
                # registered), inline: no call here can hit the recursion limit,
                # and an interrupted completion is simply run again.
                pending: BaseException | None = None
                while True:  # (no call before the try: a call can be interrupted)
                    try:
                        with lock:
                            if not mine.done:
                                if error is not None:
                                    if isinstance(error, Exception):
                                        mine.error = error  # the waiters raise copies of it
                                    # (an interrupt such as KeyboardInterrupt is this
                                    # thread's own: the waiters start over instead)
                                else:
                                    mine.value = value  # MISSING: a waiter loads instead
                                mine.done = True
                            loading = flights
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

    lru = functools.lru_cache(maxsize=maxsize, typed=typed)(compute)
    lru_info, lru_clear = lru.cache_info, lru.cache_clear

    def cache_info() -> CacheInfo:
        with lock:
            served, nested, probed = counts[0], counts[1], counts[2]
            info = lru_info()
        return CacheInfo(
            info.hits + served - probed,
            info.misses - served - nested,
            maxsize,  # type: ignore[arg-type]
            info.currsize,
        )

    def cache_clear() -> None:
        with lock:
            lru_clear()
            recent.clear()
            counts[0] = counts[1] = counts[2] = 0
            counts[3] += 1

    def cache_parameters() -> dict[str, Any]:
        return {"maxsize": maxsize, "typed": typed, "ttl": None, "policy": "lru"}

    _plain_signatures(cache_info, cache_clear, cache_parameters)
    w: Any = lru
    functools.update_wrapper(w, func)
    w._flights = flights  # for tests: flights in progress
    w.cache_info = cache_info
    w.cache_clear = cache_clear
    w.cache_parameters = cache_parameters
    return w  # type: ignore[no-any-return]


def _wrap(
    func: Callable[..., R],
    maxsize: int | None,
    ttl: float | None,
    policy: PolicyName,
    typed: bool,
    *,
    engine: str = "auto",
    key: Callable[..., Hashable] | None = None,
    refresh_after: float | None = None,
) -> CachedFunction[R]:
    """``engine``: "auto" (lru_cache when policy="lru", no ttl and no key
    function), "lru_cache" or "conctools" (a ConcurrentCache; the benchmarks
    compare both)."""
    if not callable(func):
        raise TypeError("cached() expects a callable")
    maxsize = _check_call_args(maxsize, ttl, policy, key)
    typed = bool(typed)
    if inspect.iscoroutinefunction(func):
        if refresh_after is not None:
            # A background reload would need an event loop of its own.
            raise ValueError("refresh_after is not available on coroutine functions")
        if (
            maxsize != 0
            and key is None
            and policy == "lru"
            and ttl is None
            and engine != "conctools"
        ):
            return _wrap_async_lru(func, maxsize, typed)  # type: ignore[no-any-return]
        return _wrap_async(func, maxsize, ttl, policy, typed, key=key)  # type: ignore[no-any-return]
    if maxsize == 0 or (
        key is None
        and refresh_after is None
        and (engine == "lru_cache" or (engine == "auto" and policy == "lru" and ttl is None))
    ):
        # (maxsize=0 caches nothing: the lru engine is then only single-flight)
        return _wrap_lru(func, maxsize, typed)
    cache: ConcurrentCache[Hashable, R] = ConcurrentCache(
        _UNBOUNDED if maxsize is None else maxsize,
        ttl=ttl,
        policy=policy,
        refresh_after=refresh_after,
    )
    base = [cache.stats()]
    data = cache._data
    tls = cache._tls
    register = cache._register
    after_record = cache._after_record
    live_value = cache._live_value
    stripe_of = cache._stripe
    begin, join, insert, record = cache._begin, cache._join, cache._insert, cache._record
    timed = cache._timed
    get_ident = threading.get_ident
    keyfn = key

    # Everything runs in this one frame around the call of ``func`` (helpers
    # return before it), so a recursive function reaches the same depth as
    # under the lru_cache engine.
    def wrapper(*args: Any, **kwargs: Any) -> R:
        if keyfn is not None:
            k = keyfn(*args, **kwargs)
        elif kwargs or typed or len(args) != 1 or type(args[0]) not in _FAST_TYPES:
            k = make_key(args, kwargs, typed)
        else:
            k = args[0]
        node = _find(data, k)
        if node is not None:
            if not timed:
                try:
                    buf = tls.value
                except AttributeError:
                    buf = register()
                buf.hits += 1
                buf.append(k)
                if len(buf) > 63:
                    after_record(buf)
                return node.item  # type: ignore[no-any-return]
            value = live_value(node)
            if value is not MISSING:
                record(k)
                if refresh_after is not None:
                    cache._maybe_refresh(k, node, _loader(func, args, kwargs))
                return value  # type: ignore[no-any-return]
        stripe = stripe_of(k)
        me = get_ident()
        while True:
            mine = _Load(me)
            value = MISSING
            error: BaseException | None = None
            try:
                load, value = begin(k, stripe, mine)
                if load is None:
                    return value  # type: ignore[no-any-return]
                if load is not mine:
                    value = join(k, load, stripe, None)
                    if value is MISSING:  # its owner was interrupted: start over
                        continue
                    return value  # type: ignore[no-any-return]
                record(_MISS)
                try:
                    value = func(*args, **kwargs)
                except BaseException as exc:
                    error = exc
                    raise
                insert(k, value, mine)
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
                                if k in loading and loading[k] is mine:
                                    del loading[k]
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

    w: Any = _with_cache_api(
        wrapper, func, cache, base, maxsize=maxsize, typed=typed, ttl=ttl, policy=policy
    )
    return w  # type: ignore[no-any-return]


def _wrap_async_lru(func: Callable[..., Any], maxsize: int | None, typed: bool) -> Any:
    """Async ``@cached`` with ``policy="lru"``, no ttl and no key function:
    :func:`functools.lru_cache` (C) serves hits, as for a plain function.

    The lru_cache wraps ``probe``, which raises ``_Absent`` on a miss unless
    this thread is storing a loaded value (``tls.pending``, set around a
    nested call).  Misses go through ``aload``'s single-flight machinery on a
    private registry: the load's task stores its value into lru_cache (a
    synchronous nested call) before the flight ends, and a call that starts a
    new flight first looks into lru_cache again (``recheck``), so a value
    stored since its first lookup is never computed again.  Counting: a
    first lookup that hits is a hit; the miss path counts on the registry
    (one hit or miss per call, as ``aget_or_load``); lru_cache's own counts
    of the nested store and recheck calls are taken out."""
    tls = threading.local()
    flights: ConcurrentCache[Hashable, Any] = ConcurrentCache(1)
    # [hits of nested store/recheck calls, cache_clear() generation]
    extra = [0, 0]
    lock = threading.Lock()

    def probe(*args: Any, **kwargs: Any) -> Any:
        value = getattr(tls, "pending", MISSING)
        if value is MISSING:
            raise _Absent
        tls.pending = MISSING
        return value

    lru = functools.lru_cache(maxsize=maxsize, typed=typed)(probe)
    lru_info, lru_clear = lru.cache_info, lru.cache_clear
    base = [flights.stats()]

    def nested(args: tuple[Any, ...], kwargs: dict[str, Any], value: Any, gen: int) -> Any:
        """Call lru_cache once more: store ``value``, or only look if MISSING.
        Not after a ``cache_clear()`` since the call began (generation ``gen``)."""
        if extra[1] != gen:
            return MISSING
        tls.pending = value
        try:
            try:
                found = lru(*args, **kwargs)
            except _Absent:  # (a look that missed)
                return MISSING
            # a hit unless probe took the value to store it
            hit = value is MISSING or tls.pending is not MISSING
        finally:
            tls.pending = MISSING
        if hit:
            with lock:
                if extra[1] == gen:
                    extra[0] += 1
        return found

    async def load(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """A miss.  (Not inline in ``wrapper``: its lambdas would make the
        arguments cell variables, a cost paid by every call, hits included.)"""
        gen = extra[1]
        return await aload(
            flights,
            make_key(args, kwargs, typed),
            lambda _k: func(*args, **kwargs),
            None,
            lambda _k, value: nested(args, kwargs, value, gen),
            recheck=lambda: nested(args, kwargs, MISSING, gen),
        )

    wrapper = _fixed_arity_wrapper(func, lru, load)
    if wrapper is None:

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return lru(*args, **kwargs)
            except _Absent:
                pass
            return await load(args, kwargs)

    def cache_info() -> CacheInfo:
        with lock:
            s = flights.stats() - base[0]
            info = lru_info()
            nested_hits = extra[0]
        return CacheInfo(info.hits - nested_hits + s.hits, s.misses, maxsize, info.currsize)  # type: ignore[arg-type]

    def cache_clear() -> None:
        with lock:
            lru_clear()
            base[0] = flights.stats()
            extra[0] = 0
            extra[1] += 1

    def cache_parameters() -> dict[str, Any]:
        return {"maxsize": maxsize, "typed": typed, "ttl": None, "policy": "lru"}

    _plain_signatures(cache_info, cache_clear, cache_parameters)
    w: Any = functools.update_wrapper(wrapper, func)
    w._cache = flights  # for tests: the registry of flights
    w.cache_info = cache_info
    w.cache_clear = cache_clear
    w.cache_parameters = cache_parameters
    return w


def _wrap_async(
    func: Callable[..., Any],
    maxsize: int | None,
    ttl: float | None,
    policy: PolicyName,
    typed: bool,
    *,
    key: Callable[..., Hashable] | None,
) -> Any:
    """``@cached`` on a coroutine function: a coroutine function memoized in a
    :class:`ConcurrentCache` whose misses go through ``aget_or_load``'s
    single-flight machinery (one load per key across tasks, loops and threads).
    ``maxsize=0`` caches nothing: calls are only single-flight."""
    store = maxsize != 0
    cache: ConcurrentCache[Hashable, Any] = ConcurrentCache(
        _UNBOUNDED if maxsize is None else max(maxsize, 1), ttl=ttl, policy=policy
    )
    base = [cache.stats()]
    data = cache._data
    tls = cache._tls
    register = cache._register
    after_record = cache._after_record
    live_value = cache._live_value
    record = cache._record
    timed = cache._timed
    keyfn = key

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        if keyfn is not None:
            k = keyfn(*args, **kwargs)
        elif kwargs or typed or len(args) != 1 or type(args[0]) not in _FAST_TYPES:
            k = make_key(args, kwargs, typed)
        else:
            k = args[0]
        try:
            node = data[k]  # not dict.get: see core._find
        except KeyError:
            pass
        else:
            if not timed:
                try:
                    buf = tls.value
                except AttributeError:
                    buf = register()
                buf.hits += 1
                buf.append(k)
                if len(buf) > 63:
                    after_record(buf)
                return node.item
            value = live_value(node)
            if value is not MISSING:
                record(k)
                return value
        return await aload(cache, k, _loader(func, args, kwargs), None, store)

    w: Any = _with_cache_api(
        wrapper, func, cache, base, maxsize=maxsize, typed=typed, ttl=ttl, policy=policy
    )
    return w


def _with_cache_api(
    wrapper: Callable[..., Any],
    func: Callable[..., Any],
    cache: ConcurrentCache[Hashable, Any],
    base: list[CacheStats],
    *,
    maxsize: int | None,
    typed: bool,
    ttl: float | None,
    policy: PolicyName,
) -> Any:
    """``wrapper`` dressed as ``func`` with lru_cache's ``cache_info``,
    ``cache_clear`` and ``cache_parameters`` over ``cache`` (the
    ConcurrentCache engine, sync or async); ``base[0]``: the statistics at
    the last ``cache_clear``."""

    def cache_info() -> CacheInfo:
        s = cache.stats() - base[0]
        return CacheInfo(s.hits, s.misses, maxsize, len(cache))  # type: ignore[arg-type]

    def cache_clear() -> None:
        base[0] = cache._clear_with_stats()

    def cache_parameters() -> dict[str, Any]:
        return {"maxsize": maxsize, "typed": typed, "ttl": ttl, "policy": policy}

    _plain_signatures(cache_info, cache_clear, cache_parameters)
    w: Any = functools.update_wrapper(wrapper, func)
    w._cache = cache  # for tests
    w.cache_info = cache_info
    w.cache_clear = cache_clear
    w.cache_parameters = cache_parameters
    return w


_UNBOUNDED = 2**62  # maxsize=None: a bound no process reaches


def _fixed_arity_wrapper(
    func: Callable[..., Any],
    lru: Callable[..., Any],
    load: Callable[[tuple[Any, ...], dict[str, Any]], Any],
) -> Callable[..., Any] | None:
    """The hit path of an async ``@cached`` function with the function's own
    parameter list, or None when it has defaults, ``*args``/``**kwargs`` or
    keyword-only parameters.

    ``async def wrapper(*args, **kwargs)`` packs a tuple and a dict on every
    call; for ``async def f(self, key)`` a wrapper ``(self, key)`` that passes
    them on positionally costs about a third less per hit.  A call that names
    an argument (``f(key=1)``) then shares the entry of ``f(1)``: the
    arguments are bound before the lookup, as the function itself binds them.
    """
    code = getattr(func, "__code__", None)
    if (
        type(func) is not types.FunctionType
        or code is None
        or func.__defaults__
        or func.__kwdefaults__
        or code.co_kwonlyargcount
        or code.co_flags & (inspect.CO_VARARGS | inspect.CO_VARKEYWORDS)
    ):
        return None
    names = code.co_varnames[: code.co_argcount]
    if any(n.startswith("_ct_") or not n.isidentifier() for n in names):
        return None
    params = list(names)
    if code.co_posonlyargcount:
        params.insert(code.co_posonlyargcount, "/")
    args = ", ".join(names)
    src = (
        "def _ct_make(_ct_lru, _ct_absent, _ct_load):\n"
        f"    async def wrapper({', '.join(params)}):\n"
        "        try:\n"
        f"            return _ct_lru({args})\n"
        "        except _ct_absent:\n"
        "            pass\n"
        f"        return await _ct_load(({args}{',' if len(names) == 1 else ''}), {{}})\n"
        "    return wrapper\n"
    )
    namespace: dict[str, Any] = {}
    exec(compile(src, f"<conctools @cached {func.__qualname__}>", "exec"), namespace)
    made: Callable[..., Any] = namespace["_ct_make"](lru, _Absent, load)
    return made


def _loader(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Callable[[Any], Any]:
    """A loader that calls ``func(*args, **kwargs)`` (the key is ignored).

    Made here, not by a lambda in a wrapper: a lambda there would turn the
    wrapper's ``args`` and ``kwargs`` into cell variables, which costs every
    call of the wrapper, hits included."""
    return lambda _k: func(*args, **kwargs)
