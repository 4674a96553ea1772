"""Asynchronous loading: ``ConcurrentCache.aget_or_load`` and ``@cached`` on coroutine functions.

Single-flight across the tasks of one loop and across loops in other threads,
shared results and errors, cancellation of waiters (never of the load),
cancellation or loss of the load itself (its waiters start over), recursion,
timeouts, interplay with the synchronous ``get_or_load``, and that every flight
is unregistered on every path."""

from __future__ import annotations

import asyncio
import gc
import inspect
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest
from conftest import UncopyableError, check_loader_error_copies

from conctools.cache import ConcurrentCache, cached
from conctools.cache import _async as async_mod
from conctools.testing import run_concurrently, run_in_threads


def _no_flights(c: ConcurrentCache[Any, Any]) -> None:
    for s in c._stripes:
        with s.lock:
            assert s.loading == {}, s.loading
        assert not s.lock.locked()
    assert not c._lock.locked()


def _cache_of(f: Any) -> ConcurrentCache[Any, Any]:
    cache: ConcurrentCache[Any, Any] = f._cache
    return cache


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


# ----------------------------------------------------------------- @cached


def test_cached_coroutine_function_is_a_coroutine_function() -> None:
    async def base(x: int) -> int:
        return x * 2

    f = cached(maxsize=8)(base)
    assert inspect.iscoroutinefunction(f)
    assert f.__wrapped__ is base
    assert f.__name__ == "base"

    async def main() -> None:
        assert await f(2) == 4
        assert await f(2) == 4  # the second await of the same call no longer fails
        assert await f(3) == 6

    run(main())
    assert tuple(f.cache_info()) == (1, 2, 8, 2)
    assert f.cache_parameters() == {"maxsize": 8, "typed": False, "ttl": None, "policy": "lru"}
    f.cache_clear()
    assert tuple(f.cache_info()) == (0, 0, 8, 0)


def test_bare_cached_on_coroutine_function() -> None:
    @cached
    async def f(x: int) -> int:
        return x + 1

    assert inspect.iscoroutinefunction(f)
    assert run(f(1)) == 2
    assert f.cache_info().maxsize == 1024


def test_thousand_concurrent_awaiters_run_the_function_once() -> None:
    calls = []
    sentinel = object()

    @cached(maxsize=16)
    async def f(x: int) -> object:
        calls.append(x)
        await asyncio.sleep(0.01)
        return sentinel

    async def main() -> list[object]:
        return await asyncio.gather(*(f(7) for _ in range(1000)))

    results = run(main())
    assert calls == [7]
    assert all(r is sentinel for r in results)
    info = f.cache_info()
    assert (info.hits, info.misses, info.currsize) == (999, 1, 1)
    _no_flights(_cache_of(f))


def test_thousand_concurrent_awaiters_of_aget_or_load_run_the_loader_once() -> None:
    c: ConcurrentCache[str, object] = ConcurrentCache(16)
    calls = []

    async def loader(key: str) -> object:
        calls.append(key)
        await asyncio.sleep(0.01)
        return [key]

    async def main() -> list[object]:
        return await asyncio.gather(*(c.aget_or_load("k", loader) for _ in range(1000)))

    results = run(main())
    assert calls == ["k"]
    assert all(r is results[0] for r in results)
    s = c.stats()
    assert (s.hits, s.misses, s.loads, s.load_failures) == (999, 1, 1, 0)
    assert c.get("k") is results[0]
    _no_flights(c)


def test_cached_async_keys_typed_key_function_and_options() -> None:
    calls: list[tuple[Any, ...]] = []

    @cached(maxsize=8, typed=True)
    async def typed(x: Any) -> Any:
        calls.append((x, type(x)))
        return x

    @cached(maxsize=8, key=lambda user, request: user)
    async def by_user(user: str, request: int) -> int:
        calls.append((user, request))
        return request

    @cached(maxsize=None)
    async def unbounded(x: int) -> int:
        return x

    @cached(maxsize=4, ttl=60.0, policy="tinylfu")
    async def tiny(x: int, *, y: int = 0) -> int:
        return x + y

    async def main() -> None:
        assert await typed(1) == 1
        assert await typed(1.0) == 1.0
        assert await by_user("a", 1) == 1
        assert await by_user("a", 2) == 1  # same key: cached
        assert await unbounded(5) == 5
        assert await tiny(1, y=2) == 3
        assert await tiny(1, y=2) == 3

    run(main())
    assert calls == [(1, int), (1.0, float), ("a", 1)]
    assert unbounded.cache_info().maxsize is None
    assert tuple(tiny.cache_info()) == (1, 1, 4, 1)
    with pytest.raises(TypeError):
        run(typed([]))  # an unhashable argument


def test_cached_async_argument_binding() -> None:
    """Functions with a fixed parameter list bind arguments before the lookup
    (``f(1)`` and ``f(x=1)`` share an entry); the others key the arguments as
    passed, like ``functools.lru_cache``.  Each shape still caches and counts."""
    calls: list[Any] = []

    @cached(maxsize=8)
    async def fixed(x: int) -> int:
        calls.append(("fixed", x))
        return x

    @cached(maxsize=8)
    async def posonly(x: int, /, y: int) -> int:
        calls.append(("posonly", x, y))
        return x + y

    @cached(maxsize=8)
    async def nothing() -> str:
        calls.append(("nothing",))
        return "n"

    @cached(maxsize=8)
    async def defaults(x: int, y: int = 1) -> int:
        calls.append(("defaults", x, y))
        return x + y

    @cached(maxsize=8)
    async def star(*args: int) -> int:
        calls.append(("star", *args))
        return sum(args)

    @cached(maxsize=8)
    async def odd_name(_ct_lru: int) -> int:  # a name the fast path avoids
        calls.append(("odd", _ct_lru))
        return _ct_lru

    class Svc:
        @cached(maxsize=8)
        async def get(self, key: int) -> int:
            calls.append(("method", key))
            return key * 2

    svc = Svc()

    async def main() -> None:
        assert [await fixed(1), await fixed(x=1), await fixed(1)] == [1, 1, 1]
        assert [await posonly(1, 2), await posonly(1, y=2)] == [3, 3]
        assert [await nothing(), await nothing()] == ["n", "n"]
        assert [await defaults(1), await defaults(1), await defaults(1, 2)] == [2, 2, 3]
        assert [await star(1, 2), await star(1, 2)] == [3, 3]
        assert [await odd_name(4), await odd_name(4)] == [4, 4]
        assert [await svc.get(3), await svc.get(3)] == [6, 6]
        with pytest.raises(TypeError):
            await posonly(x=1, y=2)  # as the function itself refuses it
        with pytest.raises(TypeError):
            fixed(1, 2)  # wrong arity: refused at the call, as by the function

    run(main())
    assert calls == [
        ("fixed", 1),
        ("posonly", 1, 2),
        ("nothing",),
        ("defaults", 1, 1),
        ("defaults", 1, 2),
        ("star", 1, 2),
        ("odd", 4),
        ("method", 3),
    ]
    assert tuple(fixed.cache_info())[:2] == (2, 1)
    assert tuple(posonly.cache_info())[:2] == (1, 1)
    assert tuple(nothing.cache_info())[:2] == (1, 1)
    assert fixed.__name__ == "fixed" and fixed.__wrapped__.__name__ == "fixed"
    assert inspect.iscoroutinefunction(fixed) and inspect.iscoroutinefunction(star)


def test_cached_async_maxsize_zero_is_single_flight_only() -> None:
    calls = []

    @cached(maxsize=0)
    async def f(x: int) -> int:
        calls.append(x)
        await asyncio.sleep(0.01)
        return x

    async def main() -> None:
        assert await asyncio.gather(f(1), f(1), f(1)) == [1, 1, 1]
        assert await f(1) == 1

    run(main())
    assert calls == [1, 1]  # the three concurrent calls shared one; nothing was kept
    assert tuple(f.cache_info()) == (2, 2, 0, 0)


def test_cached_async_methods_static_and_class_methods() -> None:
    class Svc:
        def __init__(self) -> None:
            self.n = 0

        def __hash__(self) -> int:
            return 1

        @cached(maxsize=8)
        async def lookup(self, key: str) -> int:
            self.n += 1
            return len(key)

        @staticmethod
        @cached(maxsize=8)
        async def static(key: str) -> int:
            return len(key) + 1

        @classmethod
        @cached(maxsize=8, key=lambda cls, key: key)
        async def klass(cls, key: str) -> int:
            return len(key) + 2

    s = Svc()

    async def main() -> None:
        assert await s.lookup("ab") == 2
        assert await s.lookup("ab") == 2
        assert await Svc.static("ab") == 3
        assert await Svc.klass("ab") == 4

    run(main())
    assert s.n == 1
    assert Svc.lookup.cache_info().hits == 1
    assert inspect.iscoroutinefunction(Svc.static)


# ------------------------------------------------------------ errors, counting


def test_error_reaches_every_caller_as_a_copy_and_is_not_cached() -> None:
    c: ConcurrentCache[int, int] = ConcurrentCache(8)
    calls = []

    async def loader(key: int) -> int:
        calls.append(key)
        await asyncio.sleep(0.01)
        if len(calls) == 1:
            raise ValueError("boom")
        return key

    async def main() -> None:
        results = await asyncio.gather(
            *(c.aget_or_load(1, loader) for _ in range(20)), return_exceptions=True
        )
        assert all(isinstance(r, ValueError) for r in results)
        check_loader_error_copies(results, "loader")  # the waiters raise copies
        assert await c.aget_or_load(1, loader) == 1  # not cached: loads again

    run(main())
    assert calls == [1, 1]
    s = c.stats()
    assert (s.hits, s.misses, s.loads, s.load_failures) == (0, 21, 2, 1)
    _no_flights(c)


def test_cached_async_error_reaches_every_caller_as_a_copy_and_is_not_cached() -> None:
    n = [0]

    @cached(maxsize=8)
    async def f(x: int) -> int:
        n[0] += 1
        await asyncio.sleep(0.01)
        if n[0] == 1:
            raise KeyError(x)
        return x

    async def main() -> None:
        results = await asyncio.gather(f(1), f(1), return_exceptions=True)
        assert isinstance(results[0], KeyError)
        check_loader_error_copies(results, "f")
        assert await f(1) == 1

    run(main())
    assert n[0] == 2
    assert tuple(f.cache_info())[:2] == (0, 3)


def test_error_reaches_waiters_on_other_threads_and_loops_as_copies(
    switch_interval: None,
) -> None:
    c: ConcurrentCache[int, int] = ConcurrentCache(8)
    calls = []

    async def loader(key: int) -> int:
        calls.append(key)
        await asyncio.sleep(0.05)
        raise ValueError("boom", key)

    async def one() -> BaseException | int:
        try:
            return await c.aget_or_load(1, loader)
        except ValueError as exc:
            return exc

    def in_thread(i: int) -> list[BaseException | int]:
        async def main() -> list[BaseException | int]:
            return list(await asyncio.gather(one(), one()))

        return run(main())

    errors = [e for pair in run_in_threads(in_thread, 3) for e in pair]
    assert len(calls) == 1
    check_loader_error_copies(errors, "loader")  # type: ignore[arg-type]
    _no_flights(c)


def test_an_uncopyable_error_sends_each_waiter_to_load_again() -> None:
    c: ConcurrentCache[int, int] = ConcurrentCache(8)
    calls = []

    async def loader(key: int) -> int:
        calls.append(key)
        await asyncio.sleep(0.01)
        raise UncopyableError("no", "pe")

    async def main() -> list[BaseException]:
        return list(
            await asyncio.gather(
                *(c.aget_or_load(1, loader) for _ in range(3)), return_exceptions=True
            )
        )

    errors = run(main())
    assert calls == [1, 1, 1]  # each caller ran the loader: none raised another's exception
    assert len({id(e) for e in errors}) == 3 and all(isinstance(e, UncopyableError) for e in errors)
    _no_flights(c)


def test_a_non_awaitable_loader_result_is_a_shared_type_error() -> None:
    c: ConcurrentCache[int, int] = ConcurrentCache(8)
    with pytest.raises(TypeError):
        run(c.aget_or_load(1, lambda k: k))  # type: ignore[arg-type, return-value]
    assert 1 not in c
    _no_flights(c)


def test_hit_path_counts_a_hit_and_loads_nothing() -> None:
    c: ConcurrentCache[int, int] = ConcurrentCache(8)
    c.put(1, 10)

    async def loader(key: int) -> int:
        raise AssertionError("must not load")

    assert run(c.aget_or_load(1, loader)) == 10
    assert (c.stats().hits, c.stats().misses) == (1, 0)


def test_expired_entry_is_loaded_again() -> None:
    now = [0.0]
    c: ConcurrentCache[int, int] = ConcurrentCache(8, ttl=10, clock=lambda: now[0])
    c.put(1, 10)
    now[0] = 11.0

    async def loader(key: int) -> int:
        return 20

    assert run(c.aget_or_load(1, loader)) == 20
    assert c.get(1) == 20


# ------------------------------------------------------------ cancellation


def test_cancelling_one_waiter_does_not_cancel_the_load() -> None:
    c: ConcurrentCache[int, str] = ConcurrentCache(8)
    started = []
    release = asyncio.Event

    async def main() -> None:
        gate = release()

        async def loader(key: int) -> str:
            started.append(key)
            await gate.wait()
            return "v"

        first = asyncio.ensure_future(c.aget_or_load(1, loader))  # starts the load
        others = [asyncio.ensure_future(c.aget_or_load(1, loader)) for _ in range(5)]
        await asyncio.sleep(0.01)
        first.cancel()
        others[0].cancel()
        await asyncio.sleep(0.01)
        gate.set()
        results = await asyncio.gather(*others[1:])
        assert results == ["v"] * 4
        assert first.cancelled() and others[0].cancelled()
        for s in c._stripes:  # the cancelled waiters left their flight
            assert s.loading == {}

    run(main())
    assert started == [1]
    assert c.get(1) == "v"
    s = c.stats()
    # the starter counted its miss, the four waiters their hits, the cancelled waiter nothing
    # (and the final get one more hit)
    assert (s.hits, s.misses, s.loads) == (5, 1, 1)
    _no_flights(c)


def test_load_whose_every_waiter_was_cancelled_completes_and_is_cached() -> None:
    c: ConcurrentCache[int, str] = ConcurrentCache(8)
    done = []

    async def main() -> None:
        async def loader(key: int) -> str:
            await asyncio.sleep(0.02)
            done.append(key)
            return "v"

        waiters = [asyncio.ensure_future(c.aget_or_load(1, loader)) for _ in range(3)]
        await asyncio.sleep(0.005)
        for w in waiters:
            w.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
        await asyncio.sleep(0.05)

    run(main())
    assert done == [1]
    assert c.get(1) == "v"
    _no_flights(c)


def test_wait_for_timeout_of_a_caller_keeps_the_load() -> None:
    @cached(maxsize=8)
    async def slow(x: int) -> int:
        await asyncio.sleep(0.03)
        return x

    async def main() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(slow(1), 0.005)
        await asyncio.sleep(0.06)
        assert await slow(1) == 1

    run(main())
    assert slow.cache_info().currsize == 1
    assert slow.cache_info().hits == 1


def test_cancelled_load_sends_waiters_to_start_over() -> None:
    """The load's own task is cancelled (here: by hand; in practice when its
    loop shuts down): nothing is cached, the waiters start over and one loads."""
    c: ConcurrentCache[int, str] = ConcurrentCache(8)
    calls = []

    async def main() -> None:
        async def loader(key: int) -> str:
            calls.append(key)
            await asyncio.sleep(0.02 if len(calls) == 1 else 0)
            return f"v{len(calls)}"

        waiters = [asyncio.ensure_future(c.aget_or_load(1, loader)) for _ in range(3)]
        await asyncio.sleep(0.005)
        (load,) = [
            t
            for t in asyncio.all_tasks()
            if t.get_coro().__name__ == "_run"  # type: ignore[union-attr]
        ]
        load.cancel()
        assert await asyncio.gather(*waiters) == ["v2"] * 3

    run(main())
    assert calls == [1, 1]
    assert c.stats().load_failures == 1
    _no_flights(c)


def test_loop_shutdown_cancels_its_load_and_a_waiter_on_another_loop_loads() -> None:
    c: ConcurrentCache[int, str] = ConcurrentCache(8)
    started = threading.Event()
    calls: list[str] = []

    def owner() -> None:
        async def loader(key: int) -> str:
            calls.append("owner")
            started.set()
            await asyncio.sleep(30)
            return "never"

        async def main() -> None:
            starter = [asyncio.ensure_future(c.aget_or_load(1, loader))]
            await asyncio.sleep(0.05)  # asyncio.run then cancels the pending load
            assert not starter[0].done()

        asyncio.run(main())

    async def waiter_main() -> str:
        async def loader(key: int) -> str:
            calls.append("waiter")
            return "mine"

        return await c.aget_or_load(1, loader)

    t = threading.Thread(target=owner)
    t.start()
    assert started.wait(5)
    result = run(waiter_main())
    t.join(5)
    assert result == "mine"
    assert calls == ["owner", "waiter"]
    _no_flights(c)


def test_closed_loop_without_cancelling_its_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """A loop closed with its load still pending (no ``asyncio.run``): a waiter
    on another loop notices and starts over; the orphaned task's finalization
    later finds the flight already complete."""
    monkeypatch.setattr(async_mod, "_POLL", 0.01)
    c: ConcurrentCache[int, str] = ConcurrentCache(8)
    started = threading.Event()
    stop = threading.Event()

    def owner() -> None:
        loop = asyncio.new_event_loop()

        async def loader(key: int) -> str:
            started.set()
            await asyncio.sleep(30)
            return "never"

        async def main() -> None:
            starter = [asyncio.ensure_future(c.aget_or_load(1, loader))]
            while not stop.is_set():
                await asyncio.sleep(0.005)
            assert not starter[0].done()

        loop.run_until_complete(main())
        loop.close()  # the load's task is still pending

    async def waiter_main() -> str:
        async def loader(key: int) -> str:
            return "mine"

        waiting = asyncio.ensure_future(c.aget_or_load(1, loader))
        await asyncio.sleep(0.02)
        stop.set()
        return await waiting

    t = threading.Thread(target=owner)
    t.start()
    assert started.wait(5)
    result = run(waiter_main())
    t.join(5)
    assert result == "mine"
    gc.collect()
    _no_flights(c)


def test_base_exception_in_loader_sends_waiters_on_other_loops_to_start_over() -> None:
    class Interrupt(BaseException):
        pass

    c: ConcurrentCache[int, str] = ConcurrentCache(8)
    started = threading.Event()
    go = threading.Event()
    box: list[BaseException] = []

    def owner() -> None:
        async def loader(key: int) -> str:
            started.set()
            while not go.is_set():
                await asyncio.sleep(0.002)
            raise Interrupt

        try:
            asyncio.run(c.aget_or_load(1, loader))
        except BaseException as exc:
            box.append(exc)

    async def waiter_main() -> str:
        async def loader(key: int) -> str:
            return "mine"

        waiting = asyncio.ensure_future(c.aget_or_load(1, loader))
        await asyncio.sleep(0.02)
        go.set()
        return await waiting

    t = threading.Thread(target=owner)
    t.start()
    assert started.wait(5)
    assert run(waiter_main()) == "mine"
    t.join(5)
    assert len(box) == 1 and isinstance(box[0], Interrupt)  # the starter's own
    assert c.get(1) == "mine"
    _no_flights(c)


# ------------------------------------------------------- threads and loops


def test_single_flight_across_loops_in_threads(switch_interval: None) -> None:
    c: ConcurrentCache[int, object] = ConcurrentCache(8)
    calls = []
    value = object()

    async def loader(key: int) -> object:
        calls.append(threading.get_ident())
        await asyncio.sleep(0.05)
        return value

    def in_thread() -> list[object]:
        async def main() -> list[object]:
            return await asyncio.gather(*(c.aget_or_load(1, loader) for _ in range(50)))

        return asyncio.run(main())

    results = run_concurrently(*([in_thread] * 4))
    assert len(calls) == 1
    assert all(r is value for rs in results for r in rs)
    s = c.stats()
    assert (s.hits, s.misses, s.loads) == (199, 1, 1)
    _no_flights(c)


def test_cached_async_single_flight_across_threads_many_keys(switch_interval: None) -> None:
    calls: dict[int, int] = {}
    lock = threading.Lock()

    @cached(maxsize=64)
    async def f(x: int) -> int:
        with lock:
            calls[x] = calls.get(x, 0) + 1
        await asyncio.sleep(0.001)
        return x * x

    def in_thread() -> list[int]:
        async def main() -> list[int]:
            return await asyncio.gather(*(f(i % 20) for i in range(200)))

        return asyncio.run(main())

    results = run_concurrently(*([in_thread] * 4))
    assert all(rs == [(i % 20) ** 2 for i in range(200)] for rs in results)
    assert calls == dict.fromkeys(range(20), 1)
    info = f.cache_info()
    assert (info.hits + info.misses, info.misses) == (800, 20)
    _no_flights(_cache_of(f))


def test_sync_waiter_joins_an_async_load_and_async_waiter_joins_a_sync_load() -> None:
    c: ConcurrentCache[int, str] = ConcurrentCache(8)
    calls = []
    started = threading.Event()
    go = threading.Event()

    async def aloader(key: int) -> str:
        calls.append("async")
        started.set()
        while not go.is_set():
            await asyncio.sleep(0.002)
        return "a"

    def sync_waiter() -> str:
        assert started.wait(5)
        threading.Timer(0.02, go.set).start()
        return c.get_or_load(1, lambda k: "sync-loaded", timeout=5)

    def async_owner() -> str:
        return asyncio.run(c.aget_or_load(1, aloader))

    assert run_concurrently(async_owner, sync_waiter) == ["a", "a"]
    assert calls == ["async"]

    # the other way round: a thread's synchronous load, a coroutine waiting for it
    started.clear()
    go.clear()

    def sync_loader(key: int) -> str:
        calls.append("sync")
        started.set()
        assert go.wait(5)
        return "s"

    def sync_owner() -> str:
        return c.get_or_load(2, sync_loader)

    def async_waiter() -> str:
        async def loader(key: int) -> str:
            return "async-loaded"

        async def main() -> str:
            assert started.is_set() or await asyncio.to_thread(started.wait, 5)
            waiting = asyncio.ensure_future(c.aget_or_load(2, loader))
            await asyncio.sleep(0.02)
            go.set()
            return await waiting

        return asyncio.run(main())

    assert run_concurrently(sync_owner, async_waiter) == ["s", "s"]
    assert calls == ["async", "sync"]
    _no_flights(c)


# ----------------------------------------------- recursion, timeouts, locks


def test_recursive_aget_or_load_raises_runtime_error() -> None:
    c: ConcurrentCache[int, int] = ConcurrentCache(8)

    async def loader(key: int) -> int:
        return await c.aget_or_load(key, loader)

    with pytest.raises(RuntimeError, match="recursive"):
        run(c.aget_or_load(1, loader))
    _no_flights(c)


def test_blocking_get_or_load_from_the_loop_of_an_async_load_raises() -> None:
    c: ConcurrentCache[int, int] = ConcurrentCache(8)

    async def loader(key: int) -> int:
        return c.get_or_load(key, lambda k: 2)  # would block the loop that runs the load

    with pytest.raises(RuntimeError, match="recursive"):
        run(c.aget_or_load(1, loader))
    _no_flights(c)


def test_recursive_cached_async_call_raises_runtime_error() -> None:
    @cached(maxsize=8)
    async def f(x: int) -> int:
        return await f(x)

    with pytest.raises(RuntimeError, match="recursive"):
        run(f(1))
    _no_flights(_cache_of(f))


def test_timeout_raises_and_the_load_goes_on() -> None:
    c: ConcurrentCache[int, int] = ConcurrentCache(8)

    async def loader(key: int) -> int:
        await asyncio.sleep(0.03)
        return 5

    async def main() -> None:
        starter = asyncio.ensure_future(c.aget_or_load(1, loader))
        await asyncio.sleep(0)
        with pytest.raises(TimeoutError, match="timed out"):
            await c.aget_or_load(1, loader, timeout=0.005)
        assert await starter == 5

    run(main())
    assert c.get(1) == 5
    s = c.stats()
    assert (s.misses, s.loads) == (2, 1)  # the starter and the waiter that timed out
    _no_flights(c)


@pytest.mark.parametrize(
    ("timeout", "exc"),
    [(-1, ValueError), (float("nan"), ValueError), (True, TypeError), ("1", TypeError)],
)
def test_bad_timeout(timeout: Any, exc: type[Exception]) -> None:
    c: ConcurrentCache[int, int] = ConcurrentCache(8)

    async def loader(key: int) -> int:
        return 1

    with pytest.raises(exc):
        run(c.aget_or_load(1, loader, timeout=timeout))
    assert len(c) == 0 and c.stats().misses == 0


def test_unhashable_key_raises_type_error() -> None:
    c: ConcurrentCache[Any, int] = ConcurrentCache(8)

    async def loader(key: Any) -> int:
        return 1

    with pytest.raises(TypeError):
        run(c.aget_or_load([], loader))
    _no_flights(c)


def test_no_lock_is_held_while_the_loader_runs_and_other_keys_proceed() -> None:
    c: ConcurrentCache[int, int] = ConcurrentCache(8, stripes=1)

    async def main() -> None:
        gate = asyncio.Event()
        seen: list[bool] = []

        async def slow(key: int) -> int:
            seen.append(c._lock.locked() or any(s.lock.locked() for s in c._stripes))
            await gate.wait()
            return key

        async def fast(key: int) -> int:
            seen.append(c._lock.locked() or any(s.lock.locked() for s in c._stripes))
            return key

        pending = asyncio.ensure_future(c.aget_or_load(1, slow))
        await asyncio.sleep(0)
        # same stripe (one stripe), another key: not blocked by the pending load
        assert await c.aget_or_load(2, fast) == 2
        c.put(3, 3)
        assert c.get_or_load(4, lambda k: k) == 4  # a thread-style load meanwhile
        gate.set()
        assert await pending == 1
        assert seen == [False, False]

    run(main())
    _no_flights(c)


def test_invalidate_during_an_async_load_wins() -> None:
    c: ConcurrentCache[int, str] = ConcurrentCache(8)

    async def main() -> None:
        gate = asyncio.Event()

        async def loader(key: int) -> str:
            await gate.wait()
            return "stale"

        pending = asyncio.ensure_future(c.aget_or_load(1, loader))
        await asyncio.sleep(0)
        c.invalidate(1)
        gate.set()
        assert await pending == "stale"  # the callers get the value ...
        assert 1 not in c  # ... but it is not cached

    run(main())
    _no_flights(c)


def test_cache_clear_during_an_async_load() -> None:
    @cached(maxsize=8)
    async def f(x: int) -> int:
        await asyncio.sleep(0.01)
        return x

    async def main() -> None:
        pending = asyncio.ensure_future(f(1))
        await asyncio.sleep(0)
        f.cache_clear()
        assert await pending == 1

    run(main())
    assert f.cache_info().currsize == 0
    _no_flights(_cache_of(f))


def test_waiter_on_closed_loop_is_skipped_by_the_completion() -> None:
    """A waiter whose loop was closed while it waited does not break the
    completion for the other waiters (release() ignores the closed loop)."""
    loop = asyncio.new_event_loop()
    fut = loop.create_future()
    w = async_mod._AWaiter(loop, fut)
    loop.close()
    w.release()  # no exception
    assert w.fired and not w.locked()


def _loaders() -> tuple[Callable[[int], Awaitable[int]], list[int]]:
    calls: list[int] = []

    async def loader(key: int) -> int:
        calls.append(key)
        return key

    return loader, calls


def test_many_keys_many_tasks_stats_are_exact() -> None:
    c: ConcurrentCache[int, int] = ConcurrentCache(1000)
    loader, calls = _loaders()

    async def main() -> None:
        for _ in range(3):
            await asyncio.gather(*(c.aget_or_load(i % 50, loader) for i in range(500)))

    t0 = time.monotonic()
    run(main())
    assert time.monotonic() - t0 < 10
    assert sorted(calls) == list(range(50))
    s = c.stats()
    assert (s.hits + s.misses, s.misses, s.loads) == (1500, 50, 50)
    _no_flights(c)


def test_load_task_cancelled_before_its_first_step_completes_its_flight() -> None:
    """A task cancelled before it starts never runs its coroutine's ``finally``;
    its done callback completes the flight and the callers start over."""
    c: ConcurrentCache[int, str] = ConcurrentCache(8)
    calls = []

    async def loader(key: int) -> str:
        calls.append(key)
        return f"v{len(calls)}"

    async def main() -> None:
        starter = asyncio.ensure_future(c.aget_or_load(1, loader))
        await asyncio.sleep(0)  # the starter registered the load and created its task
        (load,) = [
            t
            for t in asyncio.all_tasks()
            if t.get_coro().__name__ == "_run"  # type: ignore[union-attr]
        ]
        load.cancel()  # before its first step
        assert await asyncio.wait_for(starter, 5) == "v1"

    run(main())
    assert calls == [1]  # the cancelled load never called it; the restarted one did
    _no_flights(c)


def test_joining_a_load_of_a_closed_loop_starts_over(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(async_mod, "_POLL", 60.0)  # noticed when joining, not by polling
    c: ConcurrentCache[int, str] = ConcurrentCache(8)
    dead = asyncio.new_event_loop()
    flight = async_mod._ALoad(0, dead)
    stripe = c._stripe(1)
    stripe.loading[1] = flight
    dead.close()

    async def loader(key: int) -> str:
        return "fresh"

    assert run(asyncio.wait_for(c.aget_or_load(1, loader), 5)) == "fresh"
    assert flight.done
    _no_flights(c)


def test_recheck_finds_a_value_stored_since_the_first_lookup() -> None:
    """The lru_cache engine's gap: a value stored after a call's first lookup
    and before it starts a flight is found by ``recheck``: no second load."""
    c: ConcurrentCache[int, str] = ConcurrentCache(4)
    called: list[int] = []

    async def loader(key: int) -> str:
        called.append(key)
        return "loaded"

    async def main() -> None:
        v = await async_mod.aload(c, 1, loader, None, True, recheck=lambda: "stored")
        assert v == "stored"

    run(main())
    assert called == []
    assert (c.stats().hits, c.stats().misses, c.stats().loads) == (1, 0, 1)
    _no_flights(c)


@pytest.mark.parametrize("engine", ["lru_cache", "conctools"])
def test_engines_single_flight_errors_and_counts(engine: str) -> None:
    from conctools.cache.decorator import _wrap

    calls: list[int] = []

    async def base(x: int) -> int:
        calls.append(x)
        await asyncio.sleep(0.01)
        if x < 0:
            raise ValueError(x)
        return x * 10

    f: Any = _wrap(base, 16, None, "lru", False, engine=engine)
    assert inspect.iscoroutinefunction(f)

    async def main() -> None:
        assert await asyncio.gather(*(f(1) for _ in range(100))) == [10] * 100
        errors = await asyncio.gather(*(f(-1) for _ in range(10)), return_exceptions=True)
        assert isinstance(errors[0], ValueError)
        check_loader_error_copies(errors, "base")
        assert await f(1) == 10

    run(main())
    assert calls == [1, -1]
    assert tuple(f.cache_info()) == (100, 11, 16, 1)
    f.cache_clear()
    assert tuple(f.cache_info()) == (0, 0, 16, 0)
    _no_flights(f._cache)


# ------------------------------------------------------- linearizability


class AsyncLoadSpec:
    """Sequential reference: ``aload(key, v)`` returns the present value, or
    stores and returns ``v`` (the loader's value)."""

    def __init__(self) -> None:
        self.d: dict[int, int] = {}

    def get(self, key: int) -> Any:
        return self.d.get(key)

    def put(self, key: int, value: int) -> None:
        self.d[key] = value

    def invalidate(self, key: int) -> bool:
        return self.d.pop(key, None) is not None

    def aload(self, key: int, value: int) -> int:
        return self.d.setdefault(key, value)


class AsyncLoadCache:
    """``aload`` awaits ``aget_or_load`` on an event loop of the calling thread."""

    def __init__(self) -> None:
        self.c: ConcurrentCache[int, int] = ConcurrentCache(16)

    def get(self, key: int) -> Any:
        return self.c.get(key)

    def put(self, key: int, value: int) -> None:
        self.c.put(key, value)

    def invalidate(self, key: int) -> bool:
        return self.c.invalidate(key)

    def aload(self, key: int, value: int) -> int:
        async def loader(k: int) -> int:
            await asyncio.sleep(0)
            return value

        return asyncio.run(self.c.aget_or_load(key, loader))


def test_aget_or_load_linearizable_with_get_put_invalidate() -> None:
    from conctools.testing import Call, Scenario, assert_linearizable

    scenario = Scenario(
        init=(),
        threads=(
            (Call("aload", (0, 1)), Call("get", (0,)), Call("aload", (1, 1))),
            (Call("aload", (0, 2)), Call("invalidate", (0,)), Call("aload", (0, 3))),
            (Call("put", (1, 4)), Call("aload", (1, 5)), Call("get", (0,))),
        ),
        post=(Call("get", (0,)), Call("get", (1,))),
    )
    assert_linearizable(
        scenario, AsyncLoadCache, AsyncLoadSpec, partition=lambda op: op.args[0], trials=15
    )


class LoadTwiceCache(AsyncLoadCache):
    """Broken on purpose: every caller loads and stores its own value."""

    def aload(self, key: int, value: int) -> int:
        async def load() -> int:
            await asyncio.sleep(0.001)
            self.c.put(key, value)
            return value

        return asyncio.run(load())


def test_async_linearizability_check_can_fail() -> None:
    from conctools.testing import Call, Scenario, assert_linearizable

    scenario = Scenario(
        init=(),
        threads=((Call("aload", (0, 1)),), (Call("aload", (0, 2)),)),
        post=(Call("get", (0,)),),
    )
    with pytest.raises(AssertionError):
        assert_linearizable(
            scenario, LoadTwiceCache, AsyncLoadSpec, partition=lambda op: op.args[0], trials=30
        )


def test_refresh_after_is_refused_on_coroutine_functions() -> None:
    async def f(x: int) -> int:
        return x

    with pytest.raises(ValueError, match="refresh_after"):
        cached(maxsize=8, refresh_after=1.0)(f)
