"""``@cached``: functools.lru_cache's interface, bounded, single-flight, with TTL and W-TinyLFU.

With ``policy="lru"`` and no ``ttl`` hits are served by :func:`functools.lru_cache`
itself and a single-flight layer runs on misses; otherwise the function is memoized
in a :class:`~conctools.cache.ConcurrentCache`.
"""

from __future__ import annotations

import functools
import threading
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any, Generic, NamedTuple, TypeVar, overload

from .core import ConcurrentCache, _Done, _find

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
        self.hashvalue = hash(tup)

    def __hash__(self) -> int:  # type: ignore[override]
        return self.hashvalue


_KWD_MARK = (object(),)
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
    elif len(key) == 1 and type(key[0]) in _FAST_TYPES:
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
    exception.  Each call counts exactly one hit or one miss.

    **Iteration.** Not iterable.

    **Blocking and timeouts.** A call blocks while another call with the same
    arguments computes (without a timeout, as with a lock around
    ``lru_cache``); a call with the same arguments from inside that computation
    raises ``RuntimeError`` instead of deadlocking.

    **Complexity.** O(1) per call plus the key's construction and hashing.
    """

    __wrapped__: Callable[..., R]

    def __call__(self, *args: Any, **kwargs: Any) -> R:  # pragma: no cover - typing only
        raise NotImplementedError

    def __get__(self, instance: object, owner: type | None = None) -> Callable[..., R]:
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
    maxsize: int = 1024,
    *,
    ttl: float | None = None,
    policy: str = "lru",
    typed: bool = False,
) -> Callable[[Callable[..., R]], CachedFunction[R]]: ...


def cached(
    maxsize: int | Callable[..., R] = 1024,
    *,
    ttl: float | None = None,
    policy: str = "lru",
    typed: bool = False,
) -> CachedFunction[R] | Callable[[Callable[..., R]], CachedFunction[R]]:
    """Memoize a function, thread-safely and single-flight: ``functools.lru_cache`` plus.

    A drop-in for :func:`functools.lru_cache` (same key rules, ``typed``,
    ``cache_info()``, ``cache_clear()``, ``__wrapped__``, usable bare as
    ``@cached``) that is bounded, can expire entries (``ttl``), can use W-TinyLFU
    (``policy="tinylfu"``), and is *single-flight*: concurrent calls with the same
    arguments run the function once and share its result or its exception (which
    is not cached).  Every call counts as exactly one hit or one miss in
    ``cache_info()``; a call that waited for another call's computation counts as
    a hit.  Works on methods (``self`` is part of the key and must be hashable).

    ``maxsize`` must be an int >= 1 (``None``, unbounded, is not supported):
    ``TypeError``/``ValueError`` otherwise, as for ``ttl`` and ``policy``.
    With ``policy="lru"`` and no ``ttl`` hits are served by
    :func:`functools.lru_cache` itself (C speed) and the single-flight layer
    only runs on misses; otherwise the function is memoized in a
    :class:`~conctools.cache.ConcurrentCache`.
    """
    if callable(maxsize) and not isinstance(maxsize, int):
        return _wrap(maxsize, 1024, ttl, policy, typed)
    size: int = maxsize
    ConcurrentCache(size, ttl=ttl, policy=policy)  # validate the arguments now

    def decorating(func: Callable[..., R]) -> CachedFunction[R]:
        return _wrap(func, size, ttl, policy, typed)

    return decorating


class _Flight:
    """One in-flight computation of the lru_cache engine."""

    __slots__ = ("completed", "done", "error", "owner", "value")

    def __init__(self, owner: int) -> None:
        self.done = _Done()
        self.completed = False
        self.owner = owner
        self.value: Any = None
        self.error: BaseException | None = None


_RECENT = 64  # completed flights kept (see _wrap_lru)


def _wrap_lru(func: Callable[..., R], maxsize: int, typed: bool) -> CachedFunction[R]:
    """The engine for ``policy="lru", ttl=None``: functools.lru_cache (C) serves
    hits; a single-flight layer runs under it on misses.

    On a miss lru_cache calls ``compute``; the first caller for a key runs the
    function, later ones wait for its result.  lru_cache stores the result
    only after ``compute`` returns, so a completed flight stays registered
    (the last ``_RECENT`` of them) and a caller that misses in between gets its
    value instead of computing again.  (Storing through a nested call into the
    lru_cache would close that gap too, but on 3.13t re-entering lru_cache
    costs ~40 us.)  lru_cache counts such callers and waiters as misses;
    ``cache_info`` counts them as hits.
    """
    flights: dict[Hashable, _Flight] = {}
    recent: deque[tuple[Hashable, _Flight]] = deque()
    lock = threading.Lock()
    served = [0]  # calls lru_cache counted as misses that a flight answered
    get_ident = threading.get_ident

    def compute(*args: Any, **kwargs: Any) -> R:
        key = make_key(args, kwargs, typed)
        me = get_ident()
        with lock:
            flight = _find(flights, key)
            if flight is None:
                flight = flights[key] = _Flight(me)
                owner = True
            elif flight.completed:
                served[0] += 1
                return flight.value  # type: ignore[no-any-return]
            else:
                owner = False
        if not owner:
            if flight.owner == me:
                raise RuntimeError("recursive call with the same arguments")
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            with lock:
                served[0] += 1
            return flight.value  # type: ignore[no-any-return]
        try:
            value = func(*args, **kwargs)
        except BaseException as exc:
            flight.error = exc
            with lock:
                if _find(flights, key) is flight:
                    del flights[key]
            flight.done.set()
            raise
        flight.value = value
        with lock:
            flight.completed = True
            recent.append((key, flight))
            if len(recent) > _RECENT:
                old_key, old = recent.popleft()
                if _find(flights, old_key) is old:
                    del flights[old_key]
        flight.done.set()
        return value

    lru = functools.lru_cache(maxsize=maxsize, typed=typed)(compute)
    lru_info, lru_clear = lru.cache_info, lru.cache_clear

    def cache_info() -> CacheInfo:
        with lock:
            extra = served[0]
        info = lru_info()
        return CacheInfo(info.hits + extra, info.misses - extra, maxsize, info.currsize)

    def cache_clear() -> None:
        with lock:
            lru_clear()
            served[0] = 0
            for key, flight in recent:
                if _find(flights, key) is flight:
                    del flights[key]
            recent.clear()

    def cache_parameters() -> dict[str, Any]:
        return {"maxsize": maxsize, "typed": typed, "ttl": None, "policy": "lru"}

    w: Any = lru
    functools.update_wrapper(w, func)
    w.cache_info = cache_info
    w.cache_clear = cache_clear
    w.cache_parameters = cache_parameters
    return w  # type: ignore[no-any-return]


def _wrap(
    func: Callable[..., R],
    maxsize: int,
    ttl: float | None,
    policy: str,
    typed: bool,
    *,
    engine: str = "auto",
) -> CachedFunction[R]:
    """``engine``: "auto" (lru_cache when policy="lru" and no ttl), "lru_cache"
    or "conctools" (a ConcurrentCache; the benchmarks compare both)."""
    if not callable(func):
        raise TypeError("cached() expects a callable")
    if engine == "lru_cache" or (engine == "auto" and policy == "lru" and ttl is None):
        return _wrap_lru(func, maxsize, bool(typed))
    cache: ConcurrentCache[Hashable, R] = ConcurrentCache(maxsize, ttl=ttl, policy=policy)
    base = [cache.stats()]
    call = cache._call
    typed = bool(typed)

    if typed:

        def wrapper(*args: Any, **kwargs: Any) -> R:
            return call(make_key(args, kwargs, True), func, args, kwargs)

    else:

        def wrapper(*args: Any, **kwargs: Any) -> R:
            if kwargs or len(args) != 1 or type(args[0]) not in _FAST_TYPES:
                return call(make_key(args, kwargs, False), func, args, kwargs)
            return call(args[0], func, args, kwargs)

    def cache_info() -> CacheInfo:
        s = cache.stats() - base[0]
        return CacheInfo(s.hits, s.misses, maxsize, len(cache))

    def cache_clear() -> None:
        base[0] = cache._clear_with_stats()

    def cache_parameters() -> dict[str, Any]:
        return {"maxsize": maxsize, "typed": typed, "ttl": ttl, "policy": policy}

    w: Any = functools.update_wrapper(wrapper, func)
    w.cache_info = cache_info
    w.cache_clear = cache_clear
    w.cache_parameters = cache_parameters
    return w  # type: ignore[no-any-return]
