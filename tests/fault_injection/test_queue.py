"""Fault injection over every public method of the queues.

An :class:`InjectedFault` lands at a random bytecode of the main thread while
background producer and consumer threads keep working on the same queue.
Every item carries a unique id, so the accounting is exact:

* nothing is duplicated, and nothing appears that was not put;
* every item whose ``put`` returned is received exactly once (after a final
  drain), except items taken by a main-thread get whose *tail* was
  interrupted (after the mutex was released, the item is in the call's return
  value and the caller never sees it): at most one get call's worth per
  delivered fault, and each such item is one fewer ``task_done``;
* the number of items in the queue never exceeds ``maxsize``;
* no waiter is left registered, ``unfinished_tasks`` matches the accounting,
  and another thread can still put, get and join.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import queue
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

import conctools.queue as queue_module
from conctools.queue import (
    ConcurrentLifoQueue,
    ConcurrentPriorityQueue,
    ConcurrentQueue,
    QueueClosed,
)
from conctools.testing.faults import FaultReport, InjectedFault, inject_faults

pytestmark = [
    pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs signal.setitimer"),
    pytest.mark.timeout(120),
]

MAXSIZE = 4


class _TrackedThreadWaiter(queue_module._ThreadWaiter):
    """Records which thread registered the waiter."""

    __slots__ = ("tid",)

    def __init__(self) -> None:
        super().__init__()
        self.tid = threading.get_ident()


class _TrackedAsyncWaiter(queue_module._AsyncWaiter):
    __slots__ = ("tid",)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.tid = threading.get_ident()


@pytest.fixture(autouse=True)
def _track_waiters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queue_module, "_ThreadWaiter", _TrackedThreadWaiter)
    monkeypatch.setattr(queue_module, "_AsyncWaiter", _TrackedAsyncWaiter)


def assert_no_waiter_of_this_thread(q: ConcurrentQueue[Any]) -> None:
    """The main thread's call is over: none of its waiters may still be listed."""
    me = threading.get_ident()
    with q._lock:
        left = [w for lst in (q._getters, q._putters, q._joiners) for w in lst]
    mine = [w for w in left if getattr(w, "tid", None) == me]
    assert not mine, f"{len(mine)} waiter(s) of the interrupted call left registered"


ATTEMPTS = 100
DELIVERED: dict[str, int] = {}


class World:
    """A queue, background producer/consumer threads and exact accounting."""

    def __init__(self, cls: type[ConcurrentQueue[int]]) -> None:
        self.q = cls(MAXSIZE)
        self._ids = itertools.count()
        self._id_lock = threading.Lock()
        self.lock = threading.Lock()
        self.put_ok: set[int] = set()  # put returned normally
        self.put_unsure: set[int] = set()  # main-thread put interrupted: in or not
        self.received: Counter[int] = Counter()
        self.lost_budget = 0  # items an interrupted main-thread get may have taken
        self.done_unsure = 0  # main-thread task_done calls interrupted
        self.max_seen = 0

    def new_ids(self, k: int) -> list[int]:
        with self._id_lock:
            return [next(self._ids) for _ in range(k)]

    # background threads: never interrupted, their records are exact
    def producer(self) -> None:
        x = self.new_ids(2)
        try:
            if x[0] % 2:
                self.q.put(x[0], timeout=0.02)
                ok = x[:1]
            else:
                self.q.put_many(x, timeout=0.02)
                ok = x
        except queue.Full as e:
            ok = x[: getattr(e, "count", 0)]
        with self.lock:
            self.put_ok.update(ok)
            self.max_seen = max(self.max_seen, self.q.qsize())

    def consumer(self) -> None:
        try:
            got = self.q.get_many(2, timeout=0.02)
        except queue.Empty:
            return
        with self.lock:
            self.received.update(got)
            self.max_seen = max(self.max_seen, self.q.qsize())
        for _ in got:
            self.q.task_done()

    # main-thread operations: record before and after
    def main_put(self, k: int, call: Callable[[list[int]], None]) -> None:
        x = self.new_ids(k)
        self.put_unsure.update(x)
        try:
            call(x)
        except queue.Full as e:
            count = getattr(e, "count", 0)
            self.put_unsure.difference_update(x[count:])
            x = x[:count]
        self.put_ok.update(x)
        self.put_unsure.difference_update(x)

    def main_get(self, k: int, call: Callable[[], list[int]]) -> None:
        # Withdrawn below once the items are recorded / marked done.
        self.lost_budget += k
        self.done_unsure += k
        try:
            got = call()
        except queue.Empty:
            got = []
        with self.lock:
            self.received.update(got)
        self.lost_budget -= k
        for _ in got:
            self.q.task_done()
        self.done_unsure -= k

    def check_running(self) -> None:
        q = self.q
        assert_no_waiter_of_this_thread(q)
        assert q.qsize() <= max(MAXSIZE, 0), f"qsize {q.qsize()} > maxsize"
        with self.lock:
            dup = [x for x, c in self.received.items() if c > 1]
        assert not dup, f"duplicated items {dup[:5]}"

    def probe(self) -> None:
        """Another thread can still put and get (the background consumers drain)."""
        (x,) = self.new_ids(1)
        try:
            self.q.put(x, timeout=5)
        except queue.Full:
            raise AssertionError(f"probe put timed out: {self.q!r}") from None
        with self.lock:
            self.put_ok.add(x)
        try:
            got = self.q.get_many(1, timeout=1)
        except queue.Empty:  # a background consumer took it first: progress too
            got = []
        with self.lock:
            self.received.update(got)
        for _ in got:
            self.q.task_done()

    def finish(self, report: FaultReport, name: str) -> None:
        q = self.q
        rest = []
        with contextlib.suppress(queue.Empty, QueueClosed):
            while True:
                rest.extend(q.get_many(100, timeout=0))
        for _ in rest:
            q.task_done()
        self.received.update(rest)
        assert not q._getters and not q._putters and not q._joiners, "waiter left registered"
        dup = [x for x, c in self.received.items() if c > 1]
        assert not dup, f"duplicated {dup[:5]}"
        got = set(self.received)
        assert got <= self.put_ok | self.put_unsure, "received items that were never put"
        missing = self.put_ok - got
        assert len(missing) <= self.lost_budget_total, (
            f"{len(missing)} items lost, at most {self.lost_budget_total} allowed: "
            f"{sorted(missing)[:5]}"
        )
        # every item put is either received (and marked done) or lost in a get's tail
        lost_unsure = len(self.put_unsure & got) * 0  # received unsure items were marked done
        assert 0 <= q.unfinished_tasks - len(missing) - lost_unsure <= self.done_unsure_total, (
            f"unfinished_tasks {q.unfinished_tasks}, missing {len(missing)}"
        )
        assert self.max_seen <= MAXSIZE
        # the queue is fully usable afterwards
        q.put(-1, timeout=1)
        assert q.get(timeout=1) == -1
        q.task_done()
        DELIVERED[name] = DELIVERED.get(name, 0) + report.delivered

    lost_budget_total = 0
    done_unsure_total = 0


def _run(name: str, cls: type[ConcurrentQueue[int]], op: Callable[[World], Any]) -> None:
    w = World(cls)
    lost = [0]
    undone = [0]

    def target() -> None:
        w.lost_budget = 0
        w.done_unsure = 0
        try:
            for _ in range(2):
                op(w)
        finally:
            lost[0] += w.lost_budget
            undone[0] += w.done_unsure

    report = inject_faults(
        target,
        attempts=ATTEMPTS,
        check=w.check_running,
        probe=w.probe,
        probe_every=5,
        background=[w.producer, w.producer, w.consumer, w.consumer],
        expected=(queue.Full, queue.Empty),
        max_delay=120e-6,
        seed=7,
        min_delivered=ATTEMPTS // 10,
    )
    w.lost_budget_total = lost[0]
    w.done_unsure_total = undone[0]
    assert report.delivered >= ATTEMPTS // 10, report
    w.finish(report, name)


def _async(coro_fn: Callable[[], Any]) -> None:
    """Run a coroutine on a fresh loop; on any exit cancel what is left and close."""
    loop = asyncio.new_event_loop()
    task = None
    swallowed: list[BaseException] = []

    def handler(loop: asyncio.AbstractEventLoop, ctx: dict[str, Any]) -> None:
        # asyncio logs and swallows a BaseException (other than
        # KeyboardInterrupt/SystemExit) raised inside a loop callback: hand
        # the fault back to the caller as a KeyboardInterrupt would be.
        exc = ctx.get("exception")
        if isinstance(exc, InjectedFault):
            swallowed.append(exc)
            loop.stop()
        else:
            loop.default_exception_handler(ctx)

    loop.set_exception_handler(handler)
    try:
        # Every awaited call here has a 1 ms timeout: a run that lasts 2 s
        # lost a callback inside asyncio itself (the fault hit the loop's own
        # machinery, e.g. its exception handling), not a queue wake-up.
        watchdog = loop.call_later(2.0, loop.stop)
        task = loop.create_task(coro_fn())
        try:
            loop.run_until_complete(task)
        except RuntimeError:
            if swallowed:
                raise swallowed[0] from None
            if not watchdog.cancelled() and not task.done():
                raise InjectedFault("swallowed by the event loop") from None
            raise
        watchdog.cancel()
        if swallowed:
            raise swallowed[0]
    finally:
        # asyncio's own loop machinery is not interrupt-safe: the fault may
        # land inside run_until_complete; settle the task and the loop anyway.
        asyncio.events._set_running_loop(None)
        loop._thread_id = None  # type: ignore[attr-defined]
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                loop.run_until_complete(task)
        with contextlib.suppress(RuntimeError):
            loop.close()


OPS: dict[str, Callable[[World], Any]] = {
    "put": lambda w: w.main_put(1, lambda x: w.q.put(x[0], timeout=0.001)),
    "put_nowait": lambda w: w.main_put(1, lambda x: w.q.put_nowait(x[0])),
    "put_many": lambda w: w.main_put(3, lambda x: w.q.put_many(x, timeout=0.001)),
    "get": lambda w: w.main_get(1, lambda: [w.q.get(timeout=0.001)]),
    "get_nowait": lambda w: w.main_get(1, lambda: [w.q.get_nowait()]),
    "get_many": lambda w: w.main_get(3, lambda: w.q.get_many(3, timeout=0.001)),
    "sync_q.put/get": lambda w: (
        w.main_put(1, lambda x: w.q.sync_q.put(x[0], timeout=0.001)),
        w.main_get(1, lambda: [w.q.sync_q.get(timeout=0.001)]),
    ),
    "join": lambda w: w.q.join(timeout=0.002),
    "maxsize": lambda w: setattr(w.q, "maxsize", MAXSIZE),
    "aput": lambda w: w.main_put(1, lambda x: _async(lambda: w.q.aput(x[0], timeout=0.001))),
    "aget": lambda w: w.main_get(1, lambda: [_aget(w.q, 0.001)]),
    "async_q.put/get/join": lambda w: (
        w.main_put(1, lambda x: _async(lambda: _wait_for(w.q.async_q.put(x[0])))),
        w.main_get(1, lambda: [_aget(w.q, None)]),
    ),
}


def _wait_for(coro: Any) -> Any:
    async def run() -> Any:
        try:
            return await asyncio.wait_for(coro, 0.001)
        except asyncio.TimeoutError:
            raise queue.Full from None

    return run()


def _aget(q: ConcurrentQueue[int], timeout: float | None) -> int:
    box: list[int] = []

    async def run() -> None:
        if timeout is None:
            try:
                box.append(await asyncio.wait_for(q.async_q.get(), 0.001))
            except asyncio.TimeoutError:
                raise queue.Empty from None
        else:
            box.append(await q.aget(timeout))

    _async(run)
    return box[0]


# A fault that lands inside asyncio's own machinery (creating or closing a
# loop, a coroutine never started) leaves objects whose finalizers complain;
# that is asyncio's state, not the queue's (checked by the invariants above).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.parametrize("name", list(OPS))
def test_fault_injection_fifo(name: str) -> None:
    _run(name, ConcurrentQueue, OPS[name])
    gc.collect()  # finalize half-built loops here, under this test's filters


@pytest.mark.parametrize("name", ["put", "get_many", "put_many", "get"])
@pytest.mark.parametrize("cls", [ConcurrentLifoQueue, ConcurrentPriorityQueue])
def test_fault_injection_lifo_priority(cls: type[ConcurrentQueue[int]], name: str) -> None:
    _run(f"{cls.__name__}.{name}", cls, OPS[name])


def test_fault_injection_task_done() -> None:
    """task_done interrupted: the count drops by one or not at all."""
    w = World(ConcurrentQueue)

    def target() -> None:
        w.done_unsure = 0
        (x,) = w.new_ids(1)
        w.q.put(x, timeout=1)
        w.q.get(timeout=0.01)  # or the probe took it (and marked it done)
        w.done_unsure = 1
        w.q.task_done()
        w.done_unsure = 0

    undone = [0]

    def check() -> None:
        undone[0] += w.done_unsure
        w.check_running()

    q = w.q
    report = inject_faults(
        target,
        attempts=ATTEMPTS,
        check=check,
        probe=w.probe,
        probe_every=5,
        background=[w.consumer],
        expected=(queue.Empty,),
        max_delay=30e-6,
    )
    # items left by interrupted calls: drain them and mark them done
    items = q.get_many(10_000, timeout=0) if q.qsize() else []
    for _ in items:
        q.task_done()
    # an interrupted put left its item in or not (the get then took it or
    # not); an interrupted task_done ran or not: at most one per fault
    assert 0 <= q.unfinished_tasks <= report.delivered
    assert not q._joiners and not q._getters and not q._putters
    DELIVERED["task_done"] = report.delivered


@pytest.mark.parametrize("immediate", [False, True])
@pytest.mark.parametrize("method", ["shutdown", "close"])
def test_fault_injection_shutdown(method: str, immediate: bool) -> None:
    """shutdown/close interrupted with blocked putters and getters: every
    waiter still wakes once the queue is shut down (by the probe if the
    interrupted call did not get that far)."""
    state: dict[str, Any] = {}

    def setup() -> None:
        full: ConcurrentQueue[int] = ConcurrentQueue(2)
        empty: ConcurrentQueue[int] = ConcurrentQueue(2)
        full.put_many([1, 2])
        outcomes: list[str] = []

        def wait_on(fn: Callable[[], Any]) -> None:
            try:
                fn()
                outcomes.append("returned")
            except QueueClosed:
                outcomes.append("closed")

        threads = [
            threading.Thread(target=wait_on, args=(lambda: full.put(3),), daemon=True),
            threading.Thread(target=wait_on, args=(lambda: empty.get(),), daemon=True),
            threading.Thread(target=wait_on, args=(lambda: full.join(),), daemon=True),
        ]
        for t in threads:
            t.start()
        end = time.monotonic() + 5
        while not (full._putters and empty._getters and full._joiners):
            assert time.monotonic() < end
            time.sleep(0.0005)
        state.update(full=full, empty=empty, threads=threads, outcomes=outcomes)

    def target() -> None:
        full, empty = state["full"], state["empty"]
        if method == "close":
            full.close()
            empty.close()
        else:
            full.shutdown(immediate)
            empty.shutdown(immediate)

    def probe() -> None:
        full, empty = state["full"], state["empty"]
        full.shutdown(immediate)  # finish the job if the fault stopped it
        empty.shutdown(immediate)
        drained = []
        with contextlib.suppress(QueueClosed):
            while True:
                drained.append(full.get(timeout=1))
                full.task_done()
        for t in state["threads"]:
            t.join(5)
            assert not t.is_alive(), "a waiter was not woken by shutdown"
        assert not full._putters and not full._getters and not empty._getters
        assert not full._joiners
        assert state["outcomes"].count("closed") == 2  # the putter and the getter
        assert drained in ([], [1, 2]) and full.unfinished_tasks == 0
        with pytest.raises(QueueClosed):
            full.put(9)
        setup()

    setup()
    report = inject_faults(
        target, attempts=100, min_delivered=10, probe=probe, probe_every=1, max_delay=30e-6, seed=3
    )
    assert report.delivered >= 10, report
    DELIVERED[f"{method}(immediate={immediate})"] = report.delivered


def test_report_deliveries(capsys: pytest.CaptureFixture[str]) -> None:
    """Prints how many faults landed per method (for the record; run last)."""
    with capsys.disabled():
        for k, v in sorted(DELIVERED.items()):
            print(f"\nfaults delivered inside {k}: {v}", end="")
