"""The stdlib-compatible API of the queues: task_done/join, shutdown, views, LIFO/priority."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import stress_scale
from hypothesis import given
from hypothesis import strategies as st

from conctools.queue import (
    AsyncQueueView,
    ConcurrentLifoQueue,
    ConcurrentPriorityQueue,
    ConcurrentQueue,
    QueueClosed,
    QueueShutDown,
    ShutDown,
    SyncQueueView,
)
from conctools.testing import Scenario, assert_linearizable, run_concurrently
from conctools.testing.strategies import scenarios

KINDS = [ConcurrentQueue, ConcurrentLifoQueue, ConcurrentPriorityQueue]


def _wait_until(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError("condition not reached in time")
        time.sleep(0.001)


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def submit(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    try:
        yield lt
    finally:
        lt.close()


# ---------------------------------------------------------------- orders


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (ConcurrentQueue, [3, 1, 2, 5, 4]),
        (ConcurrentLifoQueue, [4, 5, 2, 1, 3]),
        (ConcurrentPriorityQueue, [1, 2, 3, 4, 5]),
    ],
)
def test_order_single_and_batch(cls: type[ConcurrentQueue[int]], expected: list[int]) -> None:
    for take in (lambda q: [q.get() for _ in range(5)], lambda q: q.get_many(2) + q.get_many(9)):
        q = cls()
        q.put(3)
        q.put_many([1, 2])
        q.put_nowait(5)
        q.put(4)
        assert take(q) == expected
        assert q.empty() and q.unfinished_tasks == 5


@pytest.mark.parametrize("cls", KINDS)
def test_async_order(cls: type[ConcurrentQueue[int]]) -> None:
    async def main() -> list[int]:
        q = cls()
        for x in (2, 3, 1):
            await q.aput(x)
        return [await q.aget(), await q.async_q.get(), q.async_q.get_nowait()]

    got = asyncio.run(main())
    assert (
        got
        == {
            ConcurrentQueue: [2, 3, 1],
            ConcurrentLifoQueue: [1, 3, 2],
            ConcurrentPriorityQueue: [1, 2, 3],
        }[cls]
    )


def test_priority_bad_item_leaves_queue_unchanged() -> None:
    q: ConcurrentPriorityQueue[Any] = ConcurrentPriorityQueue(5)
    q.put_many([3, 1, 2])
    with pytest.raises(TypeError):
        q.put("x")
    with pytest.raises(TypeError):
        q.put_many([4, "y", 5])
    assert q.qsize() == 3 and q.unfinished_tasks == 3
    assert q.get_many(5) == [1, 2, 3]


class Boom:
    """Compares fine until ``armed``; then ``<`` raises."""

    armed = False

    def __init__(self, v: int) -> None:
        self.v = v

    def __lt__(self, other: Boom) -> bool:
        if Boom.armed:
            raise RuntimeError("boom")
        return self.v < other.v


def test_priority_raising_lt_on_get_loses_nothing() -> None:
    q: ConcurrentPriorityQueue[Boom] = ConcurrentPriorityQueue()
    q.put_many([Boom(i) for i in (5, 3, 4, 1, 2)])
    Boom.armed = True
    try:
        with pytest.raises(RuntimeError):
            q.get()
        with pytest.raises(RuntimeError):
            q.get_many(3)
    finally:
        Boom.armed = False
    assert q.qsize() == 5
    assert [b.v for b in q.get_many(5)] == [1, 2, 3, 4, 5]


# --------------------------------------------------------- task_done / join


@pytest.mark.parametrize("cls", KINDS)
def test_task_done_and_join(cls: type[ConcurrentQueue[int]]) -> None:
    q = cls()
    assert q.join() is True and q.join(0) is True
    q.put_many([1, 2, 3])
    assert q.unfinished_tasks == 3
    assert q.join(timeout=0) is False
    t0 = time.monotonic()
    assert q.join(timeout=0.05) is False
    assert time.monotonic() - t0 >= 0.04
    done: list[bool] = []
    t = threading.Thread(target=lambda: done.append(q.join()), daemon=True)
    t.start()
    _wait_until(lambda: len(q._joiners) == 1)
    for _ in range(3):
        q.get()
        assert not done
        q.task_done()
    t.join(5)
    assert done == [True] and q.unfinished_tasks == 0 and not q._joiners
    with pytest.raises(ValueError, match="too many times"):
        q.task_done()
    assert q.unfinished_tasks == 0


def test_join_many_workers(switch_interval: None) -> None:
    n = stress_scale(ci=2000, full=20_000)
    q: ConcurrentQueue[int] = ConcurrentQueue(8)
    seen: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for item in q:
            with lock:
                seen.append(item)
            q.task_done()

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(3)]
    for w in workers:
        w.start()
    joined: list[int] = []

    def joiner() -> None:
        assert q.join(timeout=30)
        with lock:
            joined.append(len(seen))

    def producer(base: int) -> Callable[[], None]:
        return lambda: q.put_many(range(base, base + n), timeout=30)

    run_concurrently(producer(0), producer(n), timeout=60)
    joiners = [threading.Thread(target=joiner, daemon=True) for _ in range(2)]
    for j in joiners:
        j.start()
    for j in joiners:
        j.join(30)
    assert joined == [2 * n, 2 * n]  # join returned only after every item was processed
    q.shutdown()
    for w in workers:
        w.join(10)
    assert sorted(seen) == list(range(2 * n)) and q.unfinished_tasks == 0


def test_async_join(loop_thread: LoopThread) -> None:
    q: ConcurrentQueue[int] = ConcurrentQueue()
    q.put_many([1, 2])

    async def join() -> str:
        await q.async_q.join()
        return "joined"

    remote = loop_thread.submit(join())

    async def main() -> None:
        local = asyncio.ensure_future(q.ajoin())
        timed = await q.ajoin(timeout=0.02)
        assert timed is False
        _wait_until(lambda: len(q._joiners) == 2)
        for _ in range(2):
            await q.async_q.get()
            q.async_q.task_done()
        assert await asyncio.wait_for(local, 5) is True

    asyncio.run(main())
    assert remote.result(5) == "joined"
    assert not q._joiners


# --------------------------------------------------------------- shutdown


def test_shutdown_is_close() -> None:
    q: ConcurrentQueue[int] = ConcurrentQueue(3)
    q.put_many([1, 2])
    q.shutdown()
    assert q.closed and q.is_shutdown and q.sync_q.is_shutdown
    with pytest.raises(QueueClosed):
        q.put(3)
    assert q.get() == 1 and q.get_many(5) == [2]
    with pytest.raises(QueueClosed):
        q.get(block=False)  # shut down and empty: ShutDown rather than Empty, as queue.Queue
    assert issubclass(QueueClosed, ShutDown) and issubclass(QueueClosed, QueueShutDown)
    q.shutdown()  # again: allowed
    q.close()


@pytest.mark.parametrize("cls", KINDS)
def test_shutdown_immediate(cls: type[ConcurrentQueue[int]]) -> None:
    q = cls(4)
    q.put_many([1, 2, 3])
    assert q.get() in (1, 3)  # one item taken, not yet done
    joined: list[bool] = []
    t = threading.Thread(target=lambda: joined.append(q.join(10)), daemon=True)
    t.start()
    _wait_until(lambda: len(q._joiners) == 1)
    q.shutdown(immediate=True)
    assert q.qsize() == 0 and q.unfinished_tasks == 1  # the 2 discarded items count as done
    with pytest.raises(QueueClosed):
        q.get_nowait()
    assert not joined
    q.task_done()
    t.join(5)
    assert joined == [True]


def test_shutdown_immediate_wakes_join_when_nothing_taken() -> None:
    q: ConcurrentQueue[int] = ConcurrentQueue()
    q.put_many([1, 2])
    t = threading.Thread(target=q.join, daemon=True)
    t.start()
    _wait_until(lambda: len(q._joiners) == 1)
    q.shutdown(immediate=True)
    t.join(5)
    assert not t.is_alive() and q.unfinished_tasks == 0


@pytest.mark.parametrize("immediate", [False, True])
def test_shutdown_wakes_every_waiter(immediate: bool, loop_thread: LoopThread) -> None:
    empty: ConcurrentQueue[int] = ConcurrentQueue()
    full: ConcurrentQueue[int] = ConcurrentQueue(1)
    full.put(0)
    outcomes: list[str] = []
    lock = threading.Lock()

    def record(fn: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
                res = "returned"
            except QueueClosed:
                res = "closed"
            with lock:
                outcomes.append(res)

        return run

    threads = [
        threading.Thread(target=record(f), daemon=True)
        for f in (empty.get, lambda: empty.get_many(3), lambda: full.put(1), full.sync_q.get)
    ]
    # full.sync_q.get returns the queued 0 at once (or raises after an immediate shutdown)
    for t in threads[:3]:
        t.start()

    async def expect_closed(coro: Any) -> str:
        try:
            await coro
        except QueueShutDown:
            return "closed"
        return "returned"

    remote = [
        loop_thread.submit(expect_closed(empty.async_q.get())),
        loop_thread.submit(expect_closed(full.async_q.put(2))),
    ]
    _wait_until(lambda: len(empty._getters) == 3 and len(full._putters) == 2)
    empty.shutdown(immediate)
    full.shutdown(immediate)
    for t in threads[:3]:
        t.join(5)
    assert outcomes == ["closed"] * 3
    assert [f.result(5) for f in remote] == ["closed", "closed"]
    if immediate:
        with pytest.raises(QueueClosed):
            full.get_nowait()
    else:
        assert full.get_nowait() == 0


# ----------------------------------------------------------------- views


def test_views_share_items_and_state() -> None:
    q: ConcurrentQueue[int] = ConcurrentQueue(3)
    s, a = q.sync_q, q.async_q
    assert isinstance(s, SyncQueueView) and isinstance(a, AsyncQueueView)
    assert s is q.sync_q and a is q.async_q and s.wrapped is q and a.wrapped is q
    s.put(1)
    a.put_nowait(2)
    q.put(3)
    assert s.full() and a.full() and s.qsize() == a.qsize() == 3 and not s.empty()
    with pytest.raises(queue.Full):
        s.put_nowait(4)
    with pytest.raises(asyncio.QueueFull):
        a.put_nowait(4)
    assert a.get_nowait() == 1 and s.get() == 2 and s.get_nowait() == 3
    with pytest.raises(queue.Empty):
        s.get_nowait()
    with pytest.raises(asyncio.QueueEmpty):
        a.get_nowait()
    assert a.empty() and s.unfinished_tasks == 3
    s.task_done()
    a.task_done()
    q.task_done()
    assert s.join(timeout=0) is True
    assert "SyncQueueView" in repr(s) and "AsyncQueueView" in repr(a)
    with pytest.raises(AttributeError):
        a.maxsize = 5  # type: ignore[misc]  # read-only, as asyncio.Queue.maxsize
    s.shutdown()
    with pytest.raises(QueueShutDown):
        a.put_nowait(1)
    with pytest.raises(ShutDown):
        s.put(1)


def test_async_view_from_two_loops_and_threads(loop_thread: LoopThread) -> None:
    n = stress_scale(ci=500, full=5000)
    q: ConcurrentQueue[tuple[int, int]] = ConcurrentQueue(4)
    a = q.async_q

    async def produce(p: int) -> None:
        for i in range(n):
            await a.put((p, i))

    async def consume() -> list[tuple[int, int]]:
        out = []
        while True:
            try:
                out.append(await a.get())
            except QueueShutDown:
                return out
            a.task_done()

    remote_c = loop_thread.submit(consume())
    remote_p = loop_thread.submit(produce(0))
    thread_out: list[tuple[int, int]] = []

    def thread_consumer() -> None:
        for item in q:
            thread_out.append(item)
            q.sync_q.task_done()

    t = threading.Thread(target=thread_consumer, daemon=True)
    t.start()

    async def main() -> list[tuple[int, int]]:
        c = asyncio.ensure_future(consume())
        await produce(1)
        await asyncio.wrap_future(remote_p)
        await a.join()
        a.shutdown()
        return await c

    local = asyncio.run(main())
    t.join(10)
    got = Counter(local + remote_c.result(10) + thread_out)
    assert got == Counter((p, i) for p in range(2) for i in range(n))
    assert q.unfinished_tasks == 0


def test_async_view_cancellation_takes_nothing() -> None:
    async def main() -> None:
        q: ConcurrentQueue[int] = ConcurrentQueue(1)
        a = q.async_q
        getter = asyncio.ensure_future(a.get())
        await asyncio.sleep(0.01)
        getter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await getter
        await a.put(1)
        putter = asyncio.ensure_future(a.put(2))
        await asyncio.sleep(0.01)
        putter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await putter
        assert q.qsize() == 1 and q.unfinished_tasks == 1
        with pytest.raises(TimeoutError if sys.version_info >= (3, 11) else asyncio.TimeoutError):
            await asyncio.wait_for(a.put(3), 0.02)
        assert a.get_nowait() == 1 and not q._getters and not q._putters

    asyncio.run(main())


# ------------------------------------------------------- linearizability


class Spec:
    """Sequential reference: FIFO/LIFO/priority, bound, tasks and shutdown."""

    def __init__(self, kind: str = "fifo", maxsize: int = 2) -> None:
        self.items: list[int] = []
        self.kind = kind
        self.maxsize = maxsize
        self.closed = False
        self.unfinished = 0

    def _pop(self) -> int:
        if self.kind == "fifo":
            return self.items.pop(0)
        if self.kind == "lifo":
            return self.items.pop()
        self.items.sort()
        return self.items.pop(0)

    def put_nowait(self, item: int) -> None:
        if self.closed:
            raise QueueClosed
        if 0 < self.maxsize <= len(self.items):
            raise queue.Full
        self.items.append(item)
        self.unfinished += 1

    def get_nowait(self) -> int:
        if not self.items:
            raise QueueClosed if self.closed else queue.Empty
        return self._pop()

    def get(self, block: bool, timeout: float) -> int:
        return self.get_nowait()

    def put(self, item: int, block: bool, timeout: float) -> None:
        self.put_nowait(item)

    def get_many(self, k: int, timeout: float) -> list[int]:
        if not self.items:
            raise QueueClosed if self.closed else queue.Empty
        return [self._pop() for _ in range(min(k, len(self.items)))]

    def task_done(self) -> None:
        if self.unfinished <= 0:
            raise ValueError
        self.unfinished -= 1

    def unfinished_tasks_now(self) -> int:
        return self.unfinished

    def join_now(self) -> bool:
        return self.unfinished == 0

    def shutdown(self, immediate: bool) -> None:
        self.closed = True
        if immediate:
            self.unfinished = max(0, self.unfinished - len(self.items))
            self.items.clear()

    def qsize(self) -> int:
        return len(self.items)


def _probe(cls: type[ConcurrentQueue[int]]) -> type[ConcurrentQueue[int]]:
    class Probed(cls):  # type: ignore[valid-type,misc]
        __slots__ = ()

        def unfinished_tasks_now(self) -> int:
            return self.unfinished_tasks  # type: ignore[no-any-return]

        def join_now(self) -> bool:
            return self.join(0)  # type: ignore[no-any-return]

    return Probed


VOCAB = {
    "put_nowait": st.tuples(st.integers(0, 9)),
    "get_nowait": st.just(()),
    "get": st.tuples(st.just(True), st.sampled_from([0, 0.002])),
    "put": st.tuples(st.integers(0, 9), st.just(True), st.sampled_from([0, 0.002])),
    "get_many": st.tuples(st.integers(1, 3), st.just(0)),
    "task_done": st.just(()),
    "unfinished_tasks_now": st.just(()),
    "join_now": st.just(()),
    "shutdown": st.tuples(st.booleans()),
    "qsize": st.just(()),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("cls", "kind"),
    [(ConcurrentQueue, "fifo"), (ConcurrentLifoQueue, "lifo"), (ConcurrentPriorityQueue, "prio")],
)
@given(data=st.data())
def test_linearizable_tasks_and_shutdown(
    cls: type[ConcurrentQueue[int]], kind: str, data: st.DataObject
) -> None:
    scenario: Scenario = data.draw(scenarios(VOCAB, threads=(2, 3), ops_per_thread=(1, 4)))
    probed = _probe(cls)
    assert_linearizable(scenario, lambda: probed(2), lambda: Spec(kind, 2), trials=4)


class NoTaskLock(ConcurrentQueue[int]):
    """task_done as an unlocked read-modify-write (the bug the check must find)."""

    __slots__ = ()

    def task_done(self) -> None:
        u = self._unfinished
        if u <= 0:
            raise ValueError("task_done() called too many times")
        time.sleep(0.0005)
        self._unfinished = u - 1

    def unfinished_tasks_now(self) -> int:
        return self._unfinished


@pytest.mark.timeout(30)
@pytest.mark.parametrize("reader", ["qsize", "empty", "full", "unfinished_tasks"])
def test_readers_never_see_half_a_put(reader: str) -> None:
    """A put changes the items and the task count; no reader sees one without the other."""
    entered = threading.Event()
    release = threading.Event()

    class Paused(ConcurrentPriorityQueue[int]):
        __slots__ = ()

        def _heap_push(self, item: int) -> None:
            entered.set()  # the task count is already raised here
            assert release.wait(10)
            super()._heap_push(item)

    q = Paused(2)
    putter = threading.Thread(target=q.put, args=(1,))
    putter.start()
    seen: list[object] = []

    def read() -> None:
        value = getattr(q, reader)
        seen.append(value if reader == "unfinished_tasks" else value())

    t = threading.Thread(target=read)
    try:
        assert entered.wait(10)
        t.start()
        t.join(0.2)
        assert seen == [], f"{reader} read the queue in the middle of a put: {seen}"
    finally:
        release.set()
        putter.join(10)
    t.join(10)
    expected = {"qsize": 1, "empty": False, "full": False, "unfinished_tasks": 1}[reader]
    assert seen == [expected]


def test_linearizability_check_catches_racy_task_done() -> None:
    from conctools.testing import Call

    scenario = Scenario(
        init=(Call("put_nowait", (1,)), Call("put_nowait", (2,))),
        threads=((Call("task_done"),), (Call("task_done"),)),
        post=(Call("unfinished_tasks_now"),),
    )
    with pytest.raises(AssertionError):
        assert_linearizable(scenario, lambda: NoTaskLock(2), lambda: Spec("fifo", 2), trials=20)


@pytest.mark.parametrize("cls", KINDS)
def test_exact_delivery_all_kinds(cls: type[ConcurrentQueue[int]], switch_interval: None) -> None:
    n = stress_scale(ci=1500, full=15_000)
    q = cls(3)
    outs: list[list[int]] = [[], [], []]

    def producer(p: int) -> Callable[[], None]:
        def run() -> None:
            for i in range(n):
                if i % 3:
                    q.put(p * n + i)
                else:
                    q.put_many([p * n + i])

        return run

    def consumer(c: int) -> Callable[[], None]:
        def run() -> None:
            with contextlib.suppress(QueueClosed):
                while True:
                    outs[c].extend(q.get_many(1 + c))

        return run

    stop = threading.Thread(
        target=lambda: (run_concurrently(*(producer(p) for p in range(3))), q.shutdown())
    )
    stop.start()
    run_concurrently(*(consumer(c) for c in range(3)), timeout=60)
    stop.join(10)
    assert Counter(x for o in outs for x in o) == Counter(range(3 * n))
    assert q.unfinished_tasks == 3 * n and not q._getters and not q._putters
