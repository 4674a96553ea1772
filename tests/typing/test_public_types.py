"""User code: the types a checker infers for the public API (checked, never run).

Covers the runtime helpers, atomics, counters, the queue, the cache and
``@cached``, the reader-writer lock and the testing helpers.  ``ShardedDict``
has its own file.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

from typing_extensions import assert_type

import conctools
from conctools import (
    AtomicInt,
    AtomicRef,
    CacheInfo,
    CacheStats,
    ConcurrentCache,
    ConcurrentCounter,
    ConcurrentCounterHandle,
    ConcurrentQueue,
    RuntimeInfo,
    RWLock,
    StripedCounter,
    StripedCounterHandle,
    cached,
)
from conctools.testing import run_concurrently, run_in_threads


def runtime() -> None:
    assert_type(conctools.gil_enabled(), bool)
    assert_type(conctools.free_threaded_build(), bool)
    info = conctools.runtime_info()
    assert_type(info, RuntimeInfo)
    assert_type(conctools.__version__, str)


def atomics() -> None:
    n = AtomicInt(0)
    assert_type(n.increment(), int)
    assert_type(n.get_and_add(5), int)
    assert_type(n.compare_and_set(5, 6), bool)
    assert_type(n.update(lambda v: v * 2), int)
    ref: AtomicRef[tuple[int, str]] = AtomicRef((0, "a"))
    assert_type(ref.get(), tuple[int, str])
    assert_type(ref.get_and_set((1, "b")), tuple[int, str])
    assert_type(ref.update(lambda t: (t[0] + 1, t[1])), tuple[int, str])
    ref.set("not a tuple")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def counters() -> None:
    total = StripedCounter()
    h = total.handle()
    assert_type(h, StripedCounterHandle)
    h.increment()
    assert_type(total.value(), int)
    assert_type(total.sum_then_reset(), int)

    words: ConcurrentCounter[str] = ConcurrentCounter()
    words.increment("the")
    words.update(["a", "b"])
    assert_type(words.handle(), ConcurrentCounterHandle[str])
    assert_type(words["the"], int)
    assert_type(words.get("the"), int | None)  # like Counter.get: None when absent
    assert_type(words.get("the", 0), int)
    assert_type(words.most_common(3), list[tuple[str, int]])
    assert_type(words.snapshot(), Counter[str])
    assert_type(words.total(), int)
    assert_type(iter(words), Iterator[str])
    words.increment(42)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def queues() -> None:
    q: ConcurrentQueue[int] = ConcurrentQueue(maxsize=10)
    q.put(1, timeout=1.0)
    q.put_many([2, 3])
    assert_type(q.get(timeout=1.0), int)
    assert_type(q.get_nowait(), int)
    assert_type(q.get_many(8, timeout=0.5), list[int])
    assert_type(iter(q), Iterator[int])
    assert_type(q.maxsize, int)
    assert_type(q.closed, bool)
    q.put("x")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


async def async_queues(q: ConcurrentQueue[str]) -> None:
    assert_type(await q.aget(timeout=1.0), str)
    await q.aput("x")
    assert_type(aiter(q), AsyncIterator[str])
    async for item in q:
        assert_type(item, str)
    await asyncio.sleep(0)


def caches() -> None:
    cache: ConcurrentCache[str, bytes] = ConcurrentCache(256, ttl=30.0)
    cache.put("k", b"v")
    assert_type(cache.get("k"), bytes | None)
    assert_type(cache.get("k", b""), bytes)
    assert_type(cache.get("k", 0), bytes | int)
    assert_type(cache.get_or_load("k", lambda key: key.encode()), bytes)
    assert_type(cache.invalidate("k"), bool)
    assert_type(cache.keys(), list[str])
    assert_type(cache.items(), list[tuple[str, bytes]])
    assert_type(cache.stats(), CacheStats)
    cache.put("k", "not bytes")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


@cached
def square(n: int) -> int:
    return n * n


@cached(maxsize=128, ttl=60.0)
def greet(name: str) -> str:
    return f"hello {name}"


def decorated() -> None:
    assert_type(square(3), int)
    assert_type(greet("ada"), str)
    assert_type(square.cache_info(), CacheInfo)
    assert_type(square.cache_info().hits, int)
    square.cache_clear()


def rwlock() -> None:
    lock = RWLock()
    with lock.read(timeout=1.0):
        pass
    with lock.write():
        pass
    assert_type(lock.acquire_read(timeout=0.1), bool)
    lock.release_read()
    stamp = lock.optimistic()
    assert_type(stamp, int)
    assert_type(lock.validate(stamp), bool)


def testing_helpers() -> None:
    assert_type(run_in_threads(lambda i: i * 2, 4), list[int])
    assert_type(run_concurrently(lambda: 1, lambda: "a"), list[Any])
