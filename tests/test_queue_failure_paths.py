"""ConcurrentQueue on its failure paths: bound, interrupts, cancellation, stdlib contracts.

Each test here failed on the previous implementation (the one that handed items
and slots directly to waiters): a hand-off could exceed ``maxsize``, an
interrupted getter gave its item back past the bound, an interrupted ``put``
could raise after its item went in, ``maxsize`` was read-only and copies
shared the mutex.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import math
import pickle
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from conctools.queue import (
    ConcurrentLifoQueue,
    ConcurrentPriorityQueue,
    ConcurrentQueue,
    QueueClosed,
)

needs_signals = pytest.mark.skipif(
    not hasattr(signal, "pthread_kill"), reason="needs signal.pthread_kill (POSIX)"
)


class Interrupt(Exception):
    pass


def _wait_until(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError("condition not reached in time")
        time.sleep(0.001)


def _drain(q: ConcurrentQueue[Any]) -> list[Any]:
    out: list[Any] = []
    while True:
        try:
            out.append(q.get_nowait())
        except (queue.Empty, QueueClosed):
            return out


@contextlib.contextmanager
def interrupt_main_while(waiting: Callable[[], bool], action: Callable[[], None]) -> Iterator[None]:
    """Interrupt the main thread's blocking call: once ``waiting()`` holds, a
    helper signals the main thread; the handler lets the helper run ``action``
    (while the main thread is still inside its wait) and then raises
    :class:`Interrupt` from the wait."""
    go = threading.Event()
    done = threading.Event()
    errors: list[BaseException] = []

    def handler(signum: int, frame: Any) -> None:
        go.set()
        done.wait(5)
        raise Interrupt

    def helper() -> None:
        try:
            _wait_until(waiting)
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGUSR1)
            go.wait(5)
            action()
        except BaseException as e:  # reported below
            errors.append(e)
        finally:
            done.set()

    old = signal.signal(signal.SIGUSR1, handler)
    t = threading.Thread(target=helper, daemon=True)
    t.start()
    try:
        yield
    finally:
        t.join(10)
        signal.signal(signal.SIGUSR1, old)
    if errors:
        raise errors[0]


# ------------------------------------------------------------- the bound


def test_handoff_to_waiting_coroutines_respects_the_bound() -> None:
    """Two coroutine getters wait on a maxsize=1 queue; two puts arrive, both
    getters are cancelled: at most one item may be in the queue, none lost."""

    async def main() -> None:
        q: ConcurrentQueue[int] = ConcurrentQueue(1)
        a = asyncio.ensure_future(q.aget())
        b = asyncio.ensure_future(q.aget())
        await asyncio.sleep(0.01)
        accepted = []
        for i in (1, 2):
            with contextlib.suppress(queue.Full):
                q.put_nowait(i)
                accepted.append(i)
            assert q.qsize() <= 1
        a.cancel()
        b.cancel()
        res = await asyncio.gather(a, b, return_exceptions=True)
        got = [r for r in res if not isinstance(r, BaseException)]
        assert q.qsize() <= 1
        assert sorted(got + _drain(q)) == accepted

    asyncio.run(main())


@needs_signals
def test_interrupted_thread_getter_does_not_exceed_the_bound() -> None:
    q: ConcurrentQueue[int] = ConcurrentQueue(1)
    accepted: list[int] = []

    def producer() -> None:
        q.put(1)
        accepted.append(1)
        with contextlib.suppress(queue.Full):
            q.put(2, timeout=0)
            accepted.append(2)

    with (
        interrupt_main_while(lambda: len(q._getters) == 1, producer),
        pytest.raises(Interrupt),
    ):
        q.get(timeout=10)
    assert q.qsize() <= 1
    assert _drain(q) == accepted  # the interrupted get took nothing
    assert not q._getters and not q._putters


@needs_signals
def test_interrupted_put_has_not_put() -> None:
    """A put interrupted while it waits raises and has not put: a retry cannot duplicate."""
    q: ConcurrentQueue[str] = ConcurrentQueue(1)
    q.put("first")
    got: list[str] = []
    with (
        interrupt_main_while(lambda: len(q._putters) == 1, lambda: got.append(q.get())),
        pytest.raises(Interrupt),
    ):
        q.put("second", timeout=10)
    assert got == ["first"]
    assert _drain(q) == []  # "second" did not go in
    assert q.unfinished_tasks == 1  # only "first" was ever put
    q.put("second", timeout=0)  # the retry puts it exactly once
    assert _drain(q) == ["second"]


@needs_signals
def test_interrupted_put_many_reports_nothing_twice() -> None:
    q: ConcurrentQueue[int] = ConcurrentQueue(2)
    with (
        interrupt_main_while(lambda: len(q._putters) == 1, lambda: None),
        pytest.raises(Interrupt),
    ):
        q.put_many([1, 2, 3, 4], timeout=10)
    # the prefix that fitted before the wait went in, the rest did not
    assert _drain(q) == [1, 2] and q.unfinished_tasks == 2 and not q._putters


def test_cancelled_woken_coroutine_passes_its_wakeup_on() -> None:
    async def main() -> None:
        q: ConcurrentQueue[int] = ConcurrentQueue()
        first = asyncio.ensure_future(q.aget())
        second = asyncio.ensure_future(q.aget())
        await asyncio.sleep(0.01)
        q.put_nowait(1)  # wakes ``first`` ...
        first.cancel()  # ... which is cancelled before it runs
        with pytest.raises(asyncio.CancelledError):
            await first
        assert await asyncio.wait_for(second, 5) == 1

    asyncio.run(main())


def test_maxsize_one_many_waiters_never_exceeded(switch_interval: None) -> None:
    """Threads and coroutines, getters cancelled at random: qsize never above 1."""
    q: ConcurrentQueue[int] = ConcurrentQueue(1)
    n = 400
    seen = [0]
    stop = threading.Event()

    def monitor() -> None:
        while not stop.is_set():
            seen[0] = max(seen[0], q.qsize())
            time.sleep(0)

    def producer(base: int) -> None:
        for i in range(n):
            q.put(base + i, timeout=20)

    received: list[int] = []

    async def consumer() -> None:
        import random

        rng = random.Random(1)
        while True:
            task = asyncio.ensure_future(q.aget())
            await asyncio.sleep(0)
            if rng.random() < 0.5:
                task.cancel()
            try:
                received.append(await task)
            except asyncio.CancelledError:
                continue
            except QueueClosed:
                return

    def run_loop() -> None:
        async def main() -> None:
            await asyncio.gather(consumer(), consumer())

        asyncio.run(main())

    threads = [threading.Thread(target=monitor)] + [
        threading.Thread(target=producer, args=(b,)) for b in (0, 10_000)
    ]
    loop_thread = threading.Thread(target=run_loop)
    for t in threads:
        t.start()
    loop_thread.start()
    for t in threads[1:]:
        t.join(30)
    q.close()
    loop_thread.join(30)
    stop.set()
    threads[0].join()
    assert seen[0] <= 1
    assert sorted(received) == sorted(list(range(n)) + list(range(10_000, 10_000 + n)))


# ---------------------------------------------------------------- timeouts


@pytest.mark.parametrize("timeout", [math.inf, 1e300, threading.TIMEOUT_MAX * 10])
def test_huge_timeouts_wait(timeout: float) -> None:
    q: ConcurrentQueue[int] = ConcurrentQueue(1)
    threading.Timer(0.05, q.put, args=(1,)).start()
    assert q.get(timeout=timeout) == 1
    q.put(2)
    threading.Timer(0.05, q.get).start()
    q.put(3, timeout=timeout)
    assert q.get_many(5, timeout=timeout) == [3]
    assert q.join(timeout=0) is False
    q.task_done()
    q.task_done()
    q.task_done()
    assert q.join(timeout=timeout) is True

    async def main() -> int:
        threading.Timer(0.05, q.put, args=(4,)).start()
        return await q.aget(timeout=timeout)

    assert asyncio.run(main()) == 4


@pytest.mark.parametrize("bad", [True, False, "1", None.__class__, [1]])
def test_timeout_type_errors(bad: Any) -> None:
    q: ConcurrentQueue[int] = ConcurrentQueue(1)
    q.put(0)
    for call in (
        lambda: q.get(timeout=bad),
        lambda: q.put(1, timeout=bad),
        lambda: q.get_many(1, timeout=bad),
        lambda: q.put_many([1], timeout=bad),
        lambda: q.join(timeout=bad),
    ):
        with pytest.raises(TypeError):
            call()
    assert q.qsize() == 1 and q.unfinished_tasks == 1


@pytest.mark.parametrize("bad", [-1, -0.001, -math.inf, math.nan])
def test_timeout_value_errors(bad: float) -> None:
    q: ConcurrentQueue[int] = ConcurrentQueue(1)
    for call in (
        lambda: q.get(timeout=bad),
        lambda: q.put(1, timeout=bad),
        lambda: q.join(timeout=bad),
        lambda: asyncio.run(q.aget(timeout=bad)),
        lambda: asyncio.run(q.ajoin(timeout=bad)),
    ):
        with pytest.raises(ValueError):
            call()
    assert q.qsize() == 0


# ------------------------------------------------------ stdlib contracts


def test_maxsize_is_assignable_like_queue_queue() -> None:
    q: ConcurrentQueue[int] = ConcurrentQueue(1)
    q.put(1)
    done = threading.Event()

    def putter() -> None:
        q.put(2, timeout=10)
        done.set()

    t = threading.Thread(target=putter, daemon=True)
    t.start()
    _wait_until(lambda: len(q._putters) == 1)
    q.maxsize = 2  # raising the bound lets the blocked putter in at once
    assert done.wait(5)
    t.join()
    assert q.maxsize == 2 and q.full()
    q.maxsize = 1  # lowering it removes nothing
    assert q.qsize() == 2 and q.full()
    with pytest.raises(queue.Full):
        q.put_nowait(3)
    q.maxsize = 0
    q.put_nowait(3)
    assert not q.full() and _drain(q) == [1, 2, 3]
    with pytest.raises(TypeError):
        q.maxsize = 1.5  # type: ignore[assignment]
    assert q.maxsize == 0
    q.sync_q.maxsize = 4
    assert q.maxsize == 4 and q.async_q.maxsize == 4


@pytest.mark.parametrize("cls", [ConcurrentQueue, ConcurrentLifoQueue, ConcurrentPriorityQueue])
def test_copy_deepcopy_pickle_raise_type_error(cls: type[ConcurrentQueue[int]]) -> None:
    q = cls(3)
    q.put(1)
    for fn in (copy.copy, copy.deepcopy, pickle.dumps, lambda x: pickle.dumps(x, 0)):
        for obj in (q, q.sync_q, q.async_q):
            with pytest.raises(TypeError):
                fn(obj)
    assert q.get_nowait() == 1


def test_subclassing() -> None:
    class Tagged(ConcurrentQueue[int]):
        def __init__(self, tag: str) -> None:
            super().__init__(2)
            self.tag = tag

        def put(self, item: int, block: bool = True, timeout: float | None = None) -> None:
            super().put(item * 10, block, timeout)

    q = Tagged("t")
    q.put_nowait(1)  # put_nowait goes through the overridden put, as in queue.Queue
    assert q.tag == "t" and q.get() == 10
    assert Tagged.__mro__[1] is ConcurrentQueue
    assert isinstance(ConcurrentLifoQueue(), ConcurrentQueue)

    for hook in ("_init", "_qsize", "_put", "_get"):
        with pytest.raises(TypeError, match=hook):
            type("Bad", (ConcurrentQueue,), {hook: lambda self, *a: None})


def test_generic_alias() -> None:
    assert ConcurrentQueue[int](3).maxsize == 3
    assert ConcurrentPriorityQueue[tuple[int, str]]().maxsize == 0


@pytest.mark.skipif(sys.version_info < (3, 13), reason="queue.ShutDown is new in 3.13")
def test_shutdown_exceptions_are_the_stdlib_ones() -> None:
    q: ConcurrentQueue[int] = ConcurrentQueue()
    q.shutdown()
    with pytest.raises(queue.ShutDown):
        q.get()
    with pytest.raises(asyncio.QueueShutDown):
        q.async_q.put_nowait(1)
