"""Tests for conctools.queue.ConcurrentQueue."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import queue
import signal
import sys
import threading
import time
import warnings
import weakref
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import stress_scale
from hypothesis import given
from hypothesis import strategies as st

from conctools.queue import ConcurrentQueue, PartialPut, QueueClosed
from conctools.testing import Call, Scenario, assert_linearizable, run_concurrently
from conctools.testing.strategies import scenarios

# --------------------------------------------------------------------- helpers


def _wait_until(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError("condition not reached in time")
        time.sleep(0.001)


def _waiters(q: ConcurrentQueue[Any]) -> tuple[int, int]:
    """(getters, putters) currently blocked; white-box, for synchronising tests."""
    return len(q._getters), len(q._putters)


class LoopThread:
    """An event loop running in its own thread; ``run(coro)`` submits to it."""

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


def check_delivery(outs: list[list[tuple[int, int]]], producers: int, per_producer: int) -> None:
    """Exact multiset delivered, and each consumer saw each producer's items in order."""
    got = Counter(x for out in outs for x in out)
    expected = Counter((p, i) for p in range(producers) for i in range(per_producer))
    lost = expected - got
    extra = got - expected
    assert not lost and not extra, f"lost {sorted(lost)[:5]}..., duplicated/extra {extra}"
    for c, out in enumerate(outs):
        last: dict[int, int] = {}
        for p, i in out:
            assert last.get(p, -1) < i, f"consumer {c} saw producer {p}'s {i} after {last[p]}"
            last[p] = i


def transfer(
    q: Any,
    producers: int,
    consumers: int,
    per_producer: int,
    *,
    put_mode: str = "put",
    get_mode: str = "get",
) -> list[list[tuple[int, int]]]:
    """P producers and C consumers through ``q``; the last producer closes it."""
    remaining = [producers]
    count_lock = threading.Lock()
    outs: list[list[tuple[int, int]]] = [[] for _ in range(consumers)]

    def producer(p: int) -> Callable[[], None]:
        def run() -> None:
            items = [(p, i) for i in range(per_producer)]
            if put_mode == "put":
                for it in items:
                    q.put(it)
            else:  # put_many in uneven chunks
                k = 0
                size = 1 + p
                while k < len(items):
                    q.put_many(items[k : k + size])
                    k += size
                    size = size % 7 + 1
            with count_lock:
                remaining[0] -= 1
                last = remaining[0] == 0
            if last:
                q.close()

        return run

    def consumer(c: int) -> Callable[[], None]:
        def run() -> None:
            out = outs[c]
            if get_mode == "get":
                while True:
                    try:
                        out.append(q.get())
                    except QueueClosed:
                        return
            elif get_mode == "iter":
                out.extend(q)
            else:
                while True:
                    try:
                        out.extend(q.get_many(1 + c * 3))
                    except QueueClosed:
                        return

        return run

    run_concurrently(
        *[producer(p) for p in range(producers)],
        *[consumer(c) for c in range(consumers)],
        timeout=60,
    )
    return outs


class RacyQueue:
    """A deliberately broken queue (no lock, check-then-act) used to show the
    checks below can fail."""

    def __init__(self, maxsize: int = 0) -> None:
        self.items: list[Any] = []
        self.maxsize = maxsize
        self._closed = False

    def put(self, item: Any) -> None:
        while self.maxsize and len(self.items) >= self.maxsize:
            time.sleep(0)
        time.sleep(0)  # widen the check-then-act window
        self.items.append(item)

    def get(self) -> Any:
        while True:
            if self.items:
                try:
                    item = self.items[0]
                except IndexError:  # emptied since the check: racy by design
                    continue
                time.sleep(0)  # another consumer may take the same head
                with contextlib.suppress(IndexError):
                    del self.items[0]
                return item
            if self._closed:
                raise QueueClosed
            time.sleep(0)

    def close(self) -> None:
        self._closed = True

    def qsize(self) -> int:
        return len(self.items)


# ------------------------------------------------------------ basics / bad input


def test_fifo_and_snapshot_methods() -> None:
    q: ConcurrentQueue[int] = ConcurrentQueue(3)
    assert q.maxsize == 3 and q.empty() and not q.full() and q.qsize() == 0
    for i in range(3):
        q.put(i)
    assert q.full() and q.qsize() == 3 and not q.empty()
    with pytest.raises(queue.Full):
        q.put_nowait(9)
    with pytest.raises(queue.Full):
        q.put(9, block=False)
    with pytest.raises(queue.Full):
        q.put(9, timeout=0)
    assert [q.get(), q.get_nowait(), q.get(block=False)] == [0, 1, 2]
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(timeout=0)
    assert "open" in repr(q) and "maxsize=3" in repr(q)
    assert weakref.ref(q)() is q


def test_unbounded() -> None:
    q: ConcurrentQueue[int] = ConcurrentQueue()
    assert q.maxsize == 0
    q.put_many(range(10_000))
    assert not q.full() and q.qsize() == 10_000
    assert q.get_many(10_000) == list(range(10_000))


def test_exceptions_are_the_stdlib_ones() -> None:
    assert issubclass(PartialPut, queue.Full)
    if sys.version_info >= (3, 13):
        assert issubclass(QueueClosed, queue.ShutDown)
        q: ConcurrentQueue[int] = ConcurrentQueue()
        q.close()
        with pytest.raises(queue.ShutDown):
            q.get()


@pytest.mark.parametrize("size", [0, -1, -100])
def test_maxsize_zero_or_negative_is_unbounded(size: int) -> None:
    q: ConcurrentQueue[int] = ConcurrentQueue(size)
    assert q.maxsize == size  # kept as given, as queue.Queue does
    q.put_many(range(1000), timeout=0)
    q.put(1000, block=False)
    assert not q.full() and q.qsize() == 1001


@pytest.mark.parametrize("bad", [1.5, "3", None, True])
def test_maxsize_type(bad: Any) -> None:
    with pytest.raises(TypeError):
        ConcurrentQueue(bad)


def test_bad_input_leaves_queue_unchanged() -> None:
    q: ConcurrentQueue[int] = ConcurrentQueue(4)
    q.put_many([1, 2])
    with pytest.raises(ValueError):
        q.get_many(0)
    with pytest.raises(ValueError):
        q.get_many(-3)
    with pytest.raises(TypeError):
        q.get_many(2.0)  # type: ignore[arg-type]
    for call in (
        lambda: q.get(timeout=-1),
        lambda: q.put(3, timeout=-0.5),
        lambda: q.put_many([3], timeout=-1),
        lambda: q.get_many(1, timeout=-1),
        lambda: q.get(timeout=math.nan),
    ):
        with pytest.raises(ValueError):
            call()
    with pytest.raises(TypeError):
        q.get(timeout="1")  # type: ignore[arg-type]
    for coro in (q.aget(timeout=-1), q.aput(3, timeout=-1)):
        with pytest.raises(ValueError):
            asyncio.run(coro)
    assert q.qsize() == 2 and q.get_many(5) == [1, 2]
    # block=False ignores the timeout, exactly like queue.Queue
    q.put(5, False, -1)
    assert q.get(False, -1) == 5


# ------------------------------------------------------------------ batches


def test_put_many_get_many_order() -> None:
    q: ConcurrentQueue[int] = ConcurrentQueue()
    q.put_many(iter(range(5)))
    q.put(5)
    assert q.get_many(2) == [0, 1]
    assert q.get_many(100) == [2, 3, 4, 5]
    with pytest.raises(queue.Empty):
        q.get_many(3, timeout=0)
    q.put_many([])
    assert q.empty()


def test_get_many_waits_for_one_then_takes_what_is_there() -> None:
    q: ConcurrentQueue[int] = ConcurrentQueue()

    def feeder() -> None:
        _wait_until(lambda: _waiters(q)[0] == 1)
        q.put_many([1, 2, 3])

    t = threading.Thread(target=feeder, daemon=True)
    t.start()
    got = q.get_many(10, timeout=10)
    t.join()
    # first item handed over directly, the rest taken without waiting
    assert got == [1, 2, 3]
    t0 = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get_many(4, timeout=0.05)
    assert time.monotonic() - t0 >= 0.04


def test_put_many_partial_on_timeout() -> None:
    q: ConcurrentQueue[str] = ConcurrentQueue(3)
    q.put("a")
    with pytest.raises(PartialPut) as ei:
        q.put_many(["b", "c", "d", "e"], timeout=0)
    assert ei.value.count == 2 and ei.value.remaining == ["d", "e"]
    assert isinstance(ei.value, queue.Full) and "2 of 4" in str(ei.value)
    t0 = time.monotonic()
    with pytest.raises(PartialPut) as ei:
        q.put_many(["x"], timeout=0.05)
    assert ei.value.count == 0 and time.monotonic() - t0 >= 0.04
    assert q.get_many(10) == ["a", "b", "c"]


def test_put_many_blocks_until_all_went_in() -> None:
    q: ConcurrentQueue[int] = ConcurrentQueue(2)
    got: list[int] = []

    def consumer() -> None:
        _wait_until(lambda: _waiters(q)[1] == 1)
        while len(got) < 10:
            got.extend(q.get_many(3, timeout=10))

    t = threading.Thread(target=consumer, daemon=True)
    t.start()
    q.put_many(range(10), timeout=10)
    t.join()
    assert got == list(range(10))


def test_put_many_partial_count_while_consumer_drains() -> None:
    q: ConcurrentQueue[int] = ConcurrentQueue(2)

    def consumer() -> list[int]:
        _wait_until(lambda: _waiters(q)[1] == 1)
        return [q.get(timeout=5) for _ in range(3)]

    t_out: list[list[int]] = []
    t = threading.Thread(target=lambda: t_out.append(consumer()), daemon=True)
    t.start()
    with pytest.raises(PartialPut) as ei:
        q.put_many(range(8), timeout=0.5)
    t.join()
    # 2 fitted at once, 3 more went in as the consumer took 3: 5 in total
    assert ei.value.count == 5 and ei.value.remaining == [5, 6, 7]
    assert t_out == [[0, 1, 2]] and q.get_many(10) == [3, 4]


def test_put_many_hands_items_to_waiting_getters() -> None:
    q: ConcurrentQueue[int] = ConcurrentQueue(1)
    results = [None, None, None]

    def getter(i: int) -> None:
        results[i] = q.get(timeout=10)  # type: ignore[call-overload]

    ts = [threading.Thread(target=getter, args=(i,), daemon=True) for i in range(3)]
    for t in ts:
        t.start()
    _wait_until(lambda: _waiters(q)[0] == 3)
    # the atomic step takes only the room there is (1) ...
    with pytest.raises(PartialPut) as ei:
        q.put_many([10, 11], timeout=0)
    assert ei.value.count == 1
    _wait_until(lambda: _waiters(q)[0] == 2)
    # ... a blocking call goes on handing items to the waiting getters at once
    q.put_many([11, 12, 13], timeout=10)
    for t in ts:
        t.join()
    assert sorted(results) == [10, 11, 12]  # type: ignore[type-var]
    assert q.get_nowait() == 13


def test_waiters_served_in_arrival_order() -> None:
    q: ConcurrentQueue[int] = ConcurrentQueue(1)
    got: dict[int, int] = {}

    def getter(i: int) -> None:
        got[i] = q.get(timeout=10)

    ts = []
    for i in range(3):  # register one at a time: arrival order is 0, 1, 2
        t = threading.Thread(target=getter, args=(i,), daemon=True)
        t.start()
        ts.append(t)
        _wait_until(lambda i=i: _waiters(q)[0] == i + 1)
    q.put_many([10, 11, 12])
    for t in ts:
        t.join(10)
    assert got == {0: 10, 1: 11, 2: 12}

    # putters too: a full queue admits blocked putters in arrival order
    q.put(0)
    ps = []
    for i in range(3):
        t = threading.Thread(target=q.put, args=(i + 1, True, 10), daemon=True)
        t.start()
        ps.append(t)
        _wait_until(lambda i=i: _waiters(q)[1] == i + 1)
    assert [q.get(timeout=10) for _ in range(4)] == [0, 1, 2, 3]
    for t in ps:
        t.join(10)


def test_no_thread_per_waiting_coroutine() -> None:
    q: ConcurrentQueue[int] = ConcurrentQueue()

    async def main() -> list[int]:
        before = threading.active_count()
        tasks = [asyncio.ensure_future(q.aget()) for _ in range(50)]
        while _waiters(q)[0] < 50:
            await asyncio.sleep(0.001)
        assert threading.active_count() == before
        q.put_many(range(50))
        return list(await asyncio.gather(*tasks))

    assert asyncio.run(main()) == list(range(50))  # and in arrival order


# -------------------------------------------------------------------- close


def test_drain_after_close() -> None:
    q: ConcurrentQueue[int] = ConcurrentQueue(5)
    q.put_many([1, 2, 3, 4])
    assert not q.closed
    q.close()
    q.close()  # idempotent
    assert q.closed and "closed" in repr(q)
    for call in (lambda: q.put(9), lambda: q.put_nowait(9), lambda: q.put(9, False)):
        with pytest.raises(QueueClosed):
            call()
    with pytest.raises(QueueClosed) as ei:
        q.put_many([9])
    assert ei.value.count == 0
    assert q.get() == 1
    assert q.get_nowait() == 2
    assert q.get_many(1) == [3]
    assert list(q) == [4]
    for call in (q.get, q.get_nowait, lambda: q.get_many(2), lambda: q.get(timeout=0)):
        with pytest.raises(QueueClosed):
            call()
    assert list(q) == []


def test_close_wakes_all_blocked_threads(switch_interval: None) -> None:
    empty: ConcurrentQueue[int] = ConcurrentQueue()
    full: ConcurrentQueue[int] = ConcurrentQueue(1)
    full.put(0)
    n = 4
    outcomes: list[str] = []
    lock = threading.Lock()

    def record(fn: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
                res = "returned"
            except QueueClosed as e:
                res = f"closed{'' if e.count is None else e.count}"
            with lock:
                outcomes.append(res)

        return run

    fns = (
        [record(empty.get)] * n
        + [record(lambda: empty.get_many(5))] * n
        + [record(lambda: full.put(1))] * n
        + [record(lambda: full.put_many([1, 2]))] * n
    )
    ts = [threading.Thread(target=f, daemon=True) for f in fns]
    for t in ts:
        t.start()
    _wait_until(lambda: _waiters(empty)[0] == 2 * n and _waiters(full)[1] == 2 * n)
    t0 = time.monotonic()
    empty.close()
    full.close()
    for t in ts:
        t.join(5)
    assert time.monotonic() - t0 < 2.0
    assert sorted(outcomes) == ["closed"] * (3 * n) + ["closed0"] * n
    assert full.get() == 0  # what was queued before close still drains
    with pytest.raises(QueueClosed):
        full.get()


def test_close_during_put_many_reports_count() -> None:
    q: ConcurrentQueue[int] = ConcurrentQueue(3)
    err: list[QueueClosed] = []

    def putter() -> None:
        try:
            q.put_many(range(6))
        except QueueClosed as e:
            err.append(e)

    t = threading.Thread(target=putter, daemon=True)
    t.start()
    _wait_until(lambda: _waiters(q)[1] == 1)
    assert q.get() == 0  # makes room for item 3 ...
    _wait_until(lambda: q.qsize() == 3)  # ... which the woken putter puts itself
    q.close()
    t.join(5)
    assert err and err[0].count == 4
    assert list(q) == [1, 2, 3]


def test_close_wakes_blocked_coroutines(loop_thread: LoopThread) -> None:
    empty: ConcurrentQueue[int] = ConcurrentQueue()
    full: ConcurrentQueue[int] = ConcurrentQueue(1)
    full.put(0)

    async def expect_closed(coro: Any) -> str:
        try:
            await coro
        except QueueClosed:
            return "closed"
        return "returned"

    # one loop in this thread, another loop in a helper thread
    remote = [loop_thread.submit(expect_closed(empty.aget())) for _ in range(3)]
    remote += [loop_thread.submit(expect_closed(full.aput(i))) for i in range(3)]

    async def main() -> list[str]:
        local = [asyncio.ensure_future(expect_closed(empty.aget())) for _ in range(3)]
        local += [asyncio.ensure_future(expect_closed(full.aput(9))) for _ in range(3)]
        while _waiters(empty)[0] < 6 or _waiters(full)[1] < 6:
            await asyncio.sleep(0.001)
        t0 = time.monotonic()
        await asyncio.get_running_loop().run_in_executor(None, empty.close)
        full.close()
        res = await asyncio.gather(*local)
        assert time.monotonic() - t0 < 2.0
        return list(res)

    assert asyncio.run(main()) == ["closed"] * 6
    assert [f.result(5) for f in remote] == ["closed"] * 6
    assert full.get_nowait() == 0


def test_iteration_ends_when_closed_and_drained() -> None:
    q: ConcurrentQueue[int] = ConcurrentQueue(2)

    def producer() -> None:
        for i in range(50):
            q.put(i)
        q.close()

    t = threading.Thread(target=producer, daemon=True)
    t.start()
    assert list(q) == list(range(50))
    t.join()

    async def consume() -> list[int]:
        q2: ConcurrentQueue[int] = ConcurrentQueue()
        q2.put_many([1, 2, 3])
        q2.close()
        return [x async for x in q2]

    assert asyncio.run(consume()) == [1, 2, 3]


# ----------------------------------------------------------------- timeouts


def test_timeouts_are_respected() -> None:
    q: ConcurrentQueue[int] = ConcurrentQueue(1)
    for call, exc in (
        (lambda: q.get(timeout=0.1), queue.Empty),
        (lambda: q.get_many(3, timeout=0.1), queue.Empty),
    ):
        t0 = time.monotonic()
        with pytest.raises(exc):
            call()
        assert 0.09 <= time.monotonic() - t0 < 2.0
    q.put(1)
    for call, exc in (
        (lambda: q.put(2, timeout=0.1), queue.Full),
        (lambda: q.put_many([2], timeout=0.1), queue.Full),
    ):
        t0 = time.monotonic()
        with pytest.raises(exc):
            call()
        assert 0.09 <= time.monotonic() - t0 < 2.0
    assert _waiters(q) == (0, 0)  # timed-out waiters unregistered
    assert q.get_nowait() == 1


def test_async_timeouts() -> None:
    async def main() -> None:
        q: ConcurrentQueue[int] = ConcurrentQueue(1)
        t0 = time.monotonic()
        with pytest.raises(queue.Empty):
            await q.aget(timeout=0.1)
        assert 0.09 <= time.monotonic() - t0 < 2.0
        with pytest.raises(queue.Empty):
            await q.aget(timeout=0)
        await q.aput(1, timeout=0)
        t0 = time.monotonic()
        with pytest.raises(queue.Full):
            await q.aput(2, timeout=0.1)
        assert 0.09 <= time.monotonic() - t0 < 2.0
        with pytest.raises(queue.Full):
            await q.aput(2, timeout=0)
        assert _waiters(q) == (0, 0)
        assert await q.aget(timeout=1) == 1
        # asyncio's own timeouts are cancellations: nothing lost either
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(q.aget(), 0.05)
        assert _waiters(q) == (0, 0)

    asyncio.run(main())


def test_blocked_put_wakes_when_room_appears() -> None:
    q: ConcurrentQueue[int] = ConcurrentQueue(1)
    q.put(1)

    def taker() -> None:
        _wait_until(lambda: _waiters(q)[1] == 1)
        assert q.get() == 1

    t = threading.Thread(target=taker, daemon=True)
    t.start()
    q.put(2, timeout=10)
    t.join()
    assert q.get_nowait() == 2


def test_infinite_timeout_waits() -> None:
    q: ConcurrentQueue[int] = ConcurrentQueue(1)
    threading.Timer(0.05, q.put, args=(1,)).start()
    assert q.get(timeout=math.inf) == 1
    q.put(2)
    threading.Timer(0.05, q.get).start()
    q.put(3, timeout=math.inf)

    async def main() -> int:
        threading.Timer(0.05, q.get).start()
        await q.aput(4, timeout=math.inf)
        return await q.aget(timeout=math.inf)

    assert asyncio.run(main()) == 4


@pytest.mark.skipif(sys.platform == "win32", reason="needs setitimer")
def test_interrupted_get_unregisters() -> None:
    q: ConcurrentQueue[int] = ConcurrentQueue()

    class Interrupt(Exception):
        pass

    def handler(signum: int, frame: Any) -> None:
        raise Interrupt

    old = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        with pytest.raises(Interrupt):
            q.get(timeout=5)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert _waiters(q) == (0, 0)
    q.put(7)
    assert q.get_nowait() == 7


# ------------------------------------------------------- producers/consumers


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "case",
    [
        (3, 3, 0, "put", "get"),
        (3, 3, 1, "put", "get"),
        (3, 3, 4, "put", "iter"),
        (3, 3, 64, "put", "get_many"),
        (3, 3, 3, "put_many", "get"),
        (3, 3, 0, "put_many", "get_many"),
        (3, 3, 5, "put_many", "get_many"),
        (1, 4, 2, "put", "get"),
        (4, 1, 2, "put_many", "get"),
    ],
)
def test_producers_consumers_exact_delivery(
    switch_interval: None, case: tuple[int, int, int, str, str]
) -> None:
    producers, consumers, maxsize, put_mode, get_mode = case
    n = stress_scale(ci=1500, full=20_000)
    q: ConcurrentQueue[tuple[int, int]] = ConcurrentQueue(maxsize)
    outs = transfer(q, producers, consumers, n, put_mode=put_mode, get_mode=get_mode)
    check_delivery(outs, producers, n)
    assert q.closed and q.qsize() == 0 and _waiters(q) == (0, 0)


def test_delivery_check_can_fail(switch_interval: None) -> None:
    """The multiset/order check above catches a queue without a lock."""
    for _ in range(20):
        outs = transfer(RacyQueue(), 3, 3, 300)
        try:
            check_delivery(outs, 3, 300)
        except AssertionError:
            return
    pytest.fail("a racy queue passed the delivery check 20 times")


def _max_size_observed(q: Any, maxsize: int, n: int) -> int:
    """Run 3x3 threads through ``q`` while a monitor samples ``qsize()``."""
    seen = [0]
    done = threading.Event()

    def monitor() -> None:
        while not done.is_set():
            seen[0] = max(seen[0], q.qsize())
            time.sleep(0)  # do not starve the 6 worker threads on 2 cores

    mon = threading.Thread(target=monitor, daemon=True)
    mon.start()
    try:
        transfer(q, 3, 3, n)
    finally:
        done.set()
        mon.join()
    return seen[0]


@pytest.mark.timeout(60)
def test_maxsize_never_exceeded(switch_interval: None) -> None:
    n = stress_scale(ci=3000, full=30_000)
    assert _max_size_observed(ConcurrentQueue(2), 2, n) <= 2


def test_maxsize_check_can_fail(switch_interval: None) -> None:
    for _ in range(20):
        if _max_size_observed(RacyQueue(2), 2, 300) > 2:
            return
    pytest.fail("the monitor never saw a racy bounded queue overflow")


# ----------------------------------------------------------------- asyncio


@pytest.mark.timeout(60)
@pytest.mark.parametrize("maxsize", [0, 3])
def test_asyncio_consumer_fed_by_threads(maxsize: int) -> None:
    n = stress_scale(ci=1000, full=10_000)
    q: ConcurrentQueue[tuple[int, int]] = ConcurrentQueue(maxsize)

    def producer(p: int) -> None:
        for i in range(n):
            q.put((p, i))

    async def main() -> list[list[tuple[int, int]]]:
        ts = [threading.Thread(target=producer, args=(p,), daemon=True) for p in range(3)]
        for t in ts:
            t.start()

        async def closer() -> None:
            for t in ts:
                while t.is_alive():
                    await asyncio.sleep(0.005)
            q.close()

        async def consumer() -> list[tuple[int, int]]:
            return [x async for x in q]

        outs = await asyncio.gather(consumer(), consumer(), consumer(), closer())
        return outs[:3]  # type: ignore[return-value]

    check_delivery(asyncio.run(main()), 3, n)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("maxsize", [0, 3])
def test_threads_fed_by_asyncio_producers(maxsize: int, loop_thread: LoopThread) -> None:
    n = stress_scale(ci=1000, full=10_000)
    q: ConcurrentQueue[tuple[int, int]] = ConcurrentQueue(maxsize)
    outs: list[list[tuple[int, int]]] = [[] for _ in range(3)]
    consumers = [threading.Thread(target=lambda o=o: o.extend(q), daemon=True) for o in outs]
    for t in consumers:
        t.start()

    async def producer(p: int) -> None:
        for i in range(n):
            await q.aput((p, i))

    async def produce_all() -> None:
        await asyncio.gather(*(producer(p) for p in range(2)))

    # producers in two different loops: this thread's and a helper thread's
    remote = loop_thread.submit(producer(2))
    asyncio.run(produce_all())
    remote.result(30)
    q.close()
    for t in consumers:
        t.join(30)
    check_delivery(outs, 3, n)


def test_loop_not_blocked_while_waiting() -> None:
    q: ConcurrentQueue[int] = ConcurrentQueue()

    async def main() -> None:
        # If aget() blocked the loop thread, the timer's put would complete it
        # before the ticks below could run, and ``getter`` would be done.
        timer = threading.Timer(0.5, q.put, args=(42,))
        timer.start()
        getter = asyncio.ensure_future(q.aget())
        await asyncio.sleep(0)  # the getter starts waiting
        for _ in range(5):
            await asyncio.sleep(0.001)
        assert not getter.done()
        assert await asyncio.wait_for(getter, 10) == 42
        timer.join()

    asyncio.run(main())


# ------------------------------------------------------------ cancellation


def test_cancel_waiting_aget_unregisters() -> None:
    async def main() -> None:
        q: ConcurrentQueue[int] = ConcurrentQueue()
        task = asyncio.ensure_future(q.aget())
        await asyncio.sleep(0.01)
        assert _waiters(q) == (1, 0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert _waiters(q) == (0, 0)
        q.put(1)
        assert q.get_nowait() == 1

    asyncio.run(main())


@pytest.mark.parametrize("maxsize", [0, 1, 2])
def test_item_handed_to_cancelled_aget_goes_back(maxsize: int) -> None:
    async def main() -> None:
        q: ConcurrentQueue[int] = ConcurrentQueue(maxsize)
        first = asyncio.ensure_future(q.aget())
        second = asyncio.ensure_future(q.aget())
        await asyncio.sleep(0.01)
        q.put_nowait(1)  # handed to ``first`` ...
        first.cancel()  # ... which is cancelled before it resumes
        with pytest.raises(asyncio.CancelledError):
            await first
        assert await asyncio.wait_for(second, 5) == 1  # the item went to the next waiter
        third = asyncio.ensure_future(q.aget())
        await asyncio.sleep(0.01)
        q.put_nowait(2)
        third.cancel()
        with pytest.raises(asyncio.CancelledError):
            await third
        assert q.get_nowait() == 2  # no waiter left: back at the head
        # the slot accounting is intact: the bound is usable again
        if maxsize:
            q.put_many(range(maxsize), timeout=0)
            assert q.full()
            with pytest.raises(queue.Full):
                q.put_nowait(99)
        assert q.get_many(10, timeout=0) == list(range(maxsize)) if maxsize else True

    asyncio.run(main())


def test_cancelled_aput_has_not_put() -> None:
    async def main() -> None:
        q: ConcurrentQueue[int] = ConcurrentQueue(1)
        q.put(0)
        waiting = asyncio.ensure_future(q.aput(1))
        await asyncio.sleep(0.01)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert _waiters(q) == (0, 0)
        # now the race: room is granted, then the task is cancelled
        granted = asyncio.ensure_future(q.aput(2))
        behind = asyncio.ensure_future(q.aput(3))
        await asyncio.sleep(0.01)
        assert q.get_nowait() == 0  # grants the slot to ``granted``
        granted.cancel()
        with pytest.raises(asyncio.CancelledError):
            await granted
        await asyncio.wait_for(behind, 5)  # the slot passed on to the next putter
        assert q.get_nowait() == 3
        assert q.empty() and not q.full()

    asyncio.run(main())


@pytest.mark.timeout(60)
def test_cancellation_stress_loses_nothing(loop_thread: LoopThread) -> None:
    n = stress_scale(ci=600, full=6000)
    q: ConcurrentQueue[tuple[int, int]] = ConcurrentQueue(4)
    received: list[tuple[int, int]] = []

    async def consume() -> None:
        import random

        rng = random.Random(5)
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

    consumers = [loop_thread.submit(consume()) for _ in range(3)]

    def producer(p: int) -> None:
        for i in range(n):
            q.put((p, i), timeout=30)

    run_concurrently(*(lambda p=p: producer(p) for p in range(3)), timeout=60)
    q.close()
    for f in consumers:
        f.result(30)
    got = Counter(received)
    assert got == Counter((p, i) for p in range(3) for i in range(n))


def test_waiter_on_closed_loop_gives_item_back() -> None:
    q: ConcurrentQueue[int] = ConcurrentQueue(1)
    loop = asyncio.new_event_loop()
    task = loop.create_task(q.aget())
    loop.run_until_complete(asyncio.sleep(0.01))
    assert _waiters(q) == (1, 0)
    loop.close()  # the task will never resume
    q.put(5)  # handed over, the wake-up fails, the item comes back
    assert q.get_nowait() == 5
    q.put(6)
    assert q.full()
    # a coroutine putter on a loop that is closed: its granted slot is released
    loop2 = asyncio.new_event_loop()
    task2 = loop2.create_task(q.aput(7))
    loop2.run_until_complete(asyncio.sleep(0.01))
    assert _waiters(q) == (0, 1)
    loop2.close()
    assert q.get_nowait() == 6  # grants the slot; the wake-up fails; the slot is freed
    assert _waiters(q) == (0, 0) and not q.full()
    q.put_nowait(8)
    assert q.get_nowait() == 8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        del task, task2
        gc.collect()


def test_two_loops_in_two_threads_exchange() -> None:
    n = 500
    q: ConcurrentQueue[int] = ConcurrentQueue(2)
    a, b = LoopThread(), LoopThread()
    try:

        async def produce() -> None:
            for i in range(n):
                await q.aput(i)
            q.close()

        async def consume() -> list[int]:
            return [x async for x in q]

        fc = b.submit(consume())
        fp = a.submit(produce())
        fp.result(30)
        assert fc.result(30) == list(range(n))
    finally:
        a.close()
        b.close()


# -------------------------------------------------------- linearizability


class QueueSpec:
    """Sequential reference for the non-blocking operations."""

    def __init__(self, maxsize: int = 2) -> None:
        self.items: list[int] = []
        self.maxsize = maxsize
        self.closed = False

    def _room(self) -> int:
        return self.maxsize - len(self.items) if self.maxsize > 0 else 1 << 30

    def put_nowait(self, item: int) -> None:
        if self.closed:
            raise QueueClosed
        if self._room() <= 0:
            raise queue.Full
        self.items.append(item)

    def get_nowait(self) -> int:
        if not self.items:
            raise QueueClosed if self.closed else queue.Empty
        return self.items.pop(0)

    def put_many(self, items: list[int], timeout: float) -> None:
        if self.closed:
            raise QueueClosed
        k = min(len(items), self._room())
        self.items.extend(items[:k])
        if k < len(items):
            raise PartialPut(k, items[k:])

    def get_many(self, max_items: int, timeout: float) -> list[int]:
        if not self.items:
            raise QueueClosed if self.closed else queue.Empty
        out, self.items = self.items[:max_items], self.items[max_items:]
        return out

    def qsize(self) -> int:
        return len(self.items)

    def close(self) -> None:
        self.closed = True

    # A blocking call that gives up linearizes at its expiry, where it saw what
    # the non-blocking call would; one that succeeds after waiting linearizes
    # when it was served. Sequentially both reduce to the *_nowait behaviour.
    def get(self, block: bool, timeout: float) -> int:
        return self.get_nowait()

    def put(self, item: int, block: bool, timeout: float) -> None:
        self.put_nowait(item)


VOCABULARY = {
    "put_nowait": st.tuples(st.integers(0, 9)),
    "get_nowait": st.just(()),
    "put_many": st.tuples(st.lists(st.integers(0, 9), max_size=3), st.just(0)),
    "get_many": st.tuples(st.integers(1, 3), st.just(0)),
    "qsize": st.just(()),
    "close": st.just(()),
    "get": st.tuples(st.just(True), st.sampled_from([0, 0.002])),
    "put": st.tuples(st.integers(0, 9), st.just(True), st.sampled_from([0, 0.002])),
}


@pytest.mark.timeout(90)
@given(scenarios(VOCABULARY, threads=(2, 3), ops_per_thread=(1, 4)))
def test_linearizable(scenario: Scenario) -> None:
    assert_linearizable(scenario, lambda: ConcurrentQueue(2), QueueSpec, trials=5)


class UnlockedQueue(ConcurrentQueue[int]):
    """get_nowait as check-then-act without the mutex (the bug the check must find)."""

    __slots__ = ()

    def get_nowait(self) -> int:
        items = self._items
        if not items:
            raise queue.Empty
        item = items[0]
        time.sleep(0.0005)
        with contextlib.suppress(IndexError):
            items.popleft()
        return item


def test_linearizability_check_can_fail() -> None:
    scenario = Scenario(
        init=(Call("put_nowait", (1,)), Call("put_nowait", (2,))),
        threads=((Call("get_nowait"),), (Call("get_nowait"),)),
        post=(),
    )
    with pytest.raises(AssertionError):
        assert_linearizable(scenario, lambda: UnlockedQueue(2), QueueSpec, trials=20)


def test_linearizable_fixed_scenario() -> None:
    scenario = Scenario(
        init=(Call("put_nowait", (1,)),),
        threads=(
            (Call("put_nowait", (2,)), Call("get_nowait")),
            (Call("get_many", (2, 0)), Call("close")),
            (Call("put_many", ([3, 4], 0)), Call("qsize")),
        ),
        post=(Call("get_nowait"),),
    )
    assert_linearizable(scenario, lambda: ConcurrentQueue(2), QueueSpec, trials=20)
