"""Tests for conctools.counters: StripedCounter, ConcurrentCounter (and the
per-thread mechanism they share, conctools._internal.perthread)."""

from __future__ import annotations

import collections
import enum
import gc
import threading
import time
import weakref
from typing import Any

import pytest
from conftest import stress_scale

from conctools._internal.perthread import PerThread
from conctools.counters import (
    _MERGE_EVERY,
    ConcurrentCounter,
    ConcurrentCounterHandle,
    StripedCounter,
    StripedCounterHandle,
)
from conctools.testing import run_concurrently, run_in_threads


class Color(enum.IntEnum):
    RED = 3


BAD_DELTAS = [1.5, "1", None, True, 2j]


# -- StripedCounter: sequential semantics -----------------------------------------


def test_striped_basics() -> None:
    c = StripedCounter()
    assert c.value() == 0
    c.increment()
    c.increment(4)
    c.add(10)
    c.decrement()
    c.decrement(2)
    c.add(-3)
    assert c.value() == 9
    assert int(c) == 9
    assert repr(c) == "StripedCounter(value=9)"
    c.increment(Color.RED)
    assert c.value() == 12
    assert type(c.value()) is int
    c.add(2**70)
    assert c.value() == 12 + 2**70


def test_striped_handle_is_per_thread_and_stable() -> None:
    c = StripedCounter()
    h = c.handle()
    assert isinstance(h, StripedCounterHandle)
    assert c.handle() is h
    h.increment()
    h.increment(2)
    h.add(5)
    h.decrement()
    c.increment()  # same cell as the handle
    assert c.value() == 8
    others = run_in_threads(lambda i: c.handle(), 2)
    assert others[0] is not h and others[1] is not h and others[0] is not others[1]
    assert "contribution=8" in repr(h)


def test_striped_reset_and_sum_then_reset() -> None:
    c = StripedCounter()
    c.add(5)
    run_in_threads(lambda i: c.add(10), 3)
    assert c.sum_then_reset() == 35
    assert c.value() == 0
    c.increment()
    assert c.value() == 1
    c.reset()
    assert c.value() == 0
    assert c.sum_then_reset() == 0


@pytest.mark.parametrize("bad", BAD_DELTAS, ids=repr)
def test_striped_bad_delta(bad: Any) -> None:
    c = StripedCounter()
    c.add(7)
    h = c.handle()
    for call in (c.increment, c.add, c.decrement, h.increment, h.add, h.decrement):
        with pytest.raises(TypeError):
            call(bad)
    assert c.value() == 7
    assert type(c.value()) is int


def test_striped_counter_is_collected_without_gc() -> None:
    """No reference cycle through the thread-local cells: refcounting frees it."""

    def used() -> weakref.ref[StripedCounter]:
        c = StripedCounter()
        c.increment()
        run_in_threads(lambda i: c.increment(), 2)
        return weakref.ref(c)

    gc.disable()
    try:
        assert used()() is None
    finally:
        gc.enable()


# -- StripedCounter: concurrency ----------------------------------------------------


class SharedCellCounter(StripedCounter):
    """Deliberately broken: every thread writes the same cell (no per-thread state)."""

    def __init__(self) -> None:
        super().__init__()
        self._shared = StripedCounterHandle()
        with self._lock:
            self._per_thread._registry.live[-1] = self._shared

    def increment(self, delta: int = 1) -> None:
        v = self._shared._value
        time.sleep(0.0001)  # a real pause widens the race window on every build
        self._shared._value = v + delta

    def handle(self) -> StripedCounterHandle:
        return self._shared


def _hammer(c: StripedCounter, threads: int, n: int, *, handle: bool) -> None:
    def work(i: int) -> None:
        inc = c.handle().increment if handle else c.increment
        for _ in range(n):
            inc()

    run_in_threads(work, threads)


@pytest.mark.usefixtures("switch_interval")
@pytest.mark.parametrize("handle", [False, True], ids=["plain", "handle"])
def test_striped_exact_total(handle: bool) -> None:
    n = stress_scale(ci=30_000, full=300_000)
    c = StripedCounter()
    _hammer(c, 4, n, handle=handle)
    assert c.value() == 4 * n


@pytest.mark.usefixtures("switch_interval")
def test_striped_exact_total_check_can_fail() -> None:
    c = SharedCellCounter()
    _hammer(c, 4, 300, handle=False)
    assert c.value() < 4 * 300


class NaiveResetCounter(StripedCounter):
    """Deliberately broken: sum, then zero the cells (loses concurrent deltas)."""

    def sum_then_reset(self) -> int:
        total = self.value()
        time.sleep(0.0001)  # a real pause widens the race window on every build
        with self._lock:
            self._state.base = -sum(cell._value for cell in self._per_thread.values())
        return total


def _sum_then_reset_accounting(c: StripedCounter, n: int) -> tuple[int, int]:
    stop = threading.Event()
    sums: list[int] = []

    def writer() -> None:
        h = c.handle()
        for _ in range(n):
            h.increment()

    def drainer() -> None:
        while not stop.is_set():
            sums.append(c.sum_then_reset())

    def writers() -> None:
        try:
            run_in_threads(lambda i: writer(), 3)
        finally:
            stop.set()

    run_concurrently(writers, drainer)
    return sum(sums) + c.value(), 3 * n


@pytest.mark.usefixtures("switch_interval")
def test_sum_then_reset_loses_nothing_under_concurrent_writes() -> None:
    got, want = _sum_then_reset_accounting(StripedCounter(), stress_scale(20_000, 200_000))
    assert got == want


@pytest.mark.usefixtures("switch_interval")
def test_sum_then_reset_check_can_fail() -> None:
    got, want = _sum_then_reset_accounting(NaiveResetCounter(), 20_000)
    assert got < want


@pytest.mark.usefixtures("switch_interval")
def test_value_is_monotonic_while_writers_only_add() -> None:
    c = StripedCounter()
    n = stress_scale(20_000, 200_000)
    stop = threading.Event()

    def writers() -> None:
        try:
            _hammer(c, 2, n, handle=True)
        finally:
            stop.set()

    def reader() -> int:
        last = 0
        while not stop.is_set():
            v = c.value()
            assert v >= last
            last = v
        return last

    run_concurrently(writers, reader)
    assert c.value() == 2 * n


@pytest.mark.timeout(60)
def test_thread_churn_exact_total_and_bounded_memory() -> None:
    """1,000 short-lived threads: exact total, cells of exited threads folded."""
    c = StripedCounter()
    batches, per_batch = 50, 20
    for b in range(batches):

        def work(i: int, b: int = b) -> None:
            if i % 2:
                c.increment(i + 1)
            else:
                c.handle().add(i + 1)

        run_in_threads(work, per_batch)
        # Every worker has exited: its cell is folded into the base.
        assert len(c._per_thread) == 0
    assert c.value() == batches * sum(range(1, per_batch + 1))


# -- the per-thread mechanism -----------------------------------------------------------


def test_perthread_registry_and_retirement() -> None:
    folded: list[list[int]] = []
    registered: list[list[int]] = []
    pt: PerThread[list[int]] = PerThread(lambda: [0], folded.append, on_register=registered.append)
    mine = pt.get()
    assert pt.get() is mine and pt.register() is mine
    assert pt.values() == [mine]

    def work(i: int, pt: PerThread[list[int]] = pt) -> None:
        pt.get()[0] += i

    run_in_threads(work, 5)
    assert len(registered) == 6
    assert sorted(v[0] for v in folded) == [0, 1, 2, 3, 4]
    assert len(pt) == 1
    ref = weakref.ref(pt)
    del pt, work
    assert ref() is None
    assert folded[-1] is mine  # the main thread's value retires with the object


# -- ConcurrentCounter -------------------------------------------------------------------


def test_concurrent_counter_basics() -> None:
    c: ConcurrentCounter[str] = ConcurrentCounter()
    assert c["x"] == 0
    assert c.get("x") is None  # like Counter.get (dict.get)
    assert c.get("x", 0) == 0
    assert "x" not in c
    assert len(c) == 0
    c.increment("a")
    c.increment("a", 2)
    c.increment("b", 5)
    c.increment("z", 1)
    c.increment("z", -1)  # back to zero: absent
    assert c["a"] == 3 and c["b"] == 5 and c["z"] == 0
    assert "a" in c and "z" not in c
    assert c.get("a", None) == 3 and c.get("z", None) is None
    assert c.total() == 8
    assert len(c) == 2
    assert c.most_common() == [("b", 5), ("a", 3)]
    assert c.most_common(1) == [("b", 5)]
    snap = c.snapshot()
    assert type(snap) is collections.Counter
    assert snap == collections.Counter(a=3, b=5)
    snap["a"] = 100  # a copy, not a live view
    assert c["a"] == 3
    assert sorted(c.items()) == [("a", 3), ("b", 5)]
    assert sorted(c) == ["a", "b"]
    assert repr(c) in ("ConcurrentCounter({'a': 3, 'b': 5})", "ConcurrentCounter({'b': 5, 'a': 3})")
    c.clear()
    assert c.total() == 0 and len(c) == 0 and c["a"] == 0
    c.increment("a")
    assert c.snapshot() == collections.Counter(a=1)


def test_concurrent_counter_update() -> None:
    c: ConcurrentCounter[str] = ConcurrentCounter()
    c.update("abca")
    c.update({"a": 3, "z": Color.RED})
    c.update(collections.Counter(b=-1))
    assert c.snapshot() == collections.Counter(a=5, c=1, z=3)
    with pytest.raises(TypeError):
        c.update({"a": 1, "q": 1.5})
    with pytest.raises(TypeError):
        c.update({"a": 1, "q": True})
    with pytest.raises(TypeError):
        c.update(["a", ["unhashable"]])
    assert c.snapshot() == collections.Counter(a=5, c=1, z=3)
    run_in_threads(lambda i: c.update(["t"] * 100), 4)
    assert c["t"] == 400


def test_concurrent_counter_handle() -> None:
    c: ConcurrentCounter[int] = ConcurrentCounter()
    h = c.handle()
    assert isinstance(h, ConcurrentCounterHandle)
    assert c.handle() is h
    h.increment(1)
    h.increment(1, 4)
    c.increment(1)
    assert c[1] == 6
    others = run_in_threads(lambda i: c.handle(), 2)
    assert others[0] is not h and others[0] is not others[1]
    c.clear()
    h.increment(2)  # the handle keeps working after clear()
    assert c.snapshot() == collections.Counter({2: 1})


@pytest.mark.parametrize("bad", BAD_DELTAS, ids=repr)
def test_concurrent_counter_bad_delta(bad: Any) -> None:
    c: ConcurrentCounter[str] = ConcurrentCounter()
    c.increment("k", 2)
    h = c.handle()
    for call in (c.increment, h.increment):
        with pytest.raises(TypeError):
            call("k", bad)
        with pytest.raises(TypeError):
            call("new", bad)
    assert c.snapshot() == collections.Counter(k=2)


def test_concurrent_counter_unhashable_key() -> None:
    c: ConcurrentCounter[Any] = ConcurrentCounter()
    c.increment("k")
    with pytest.raises(TypeError):
        c.increment([1])
    with pytest.raises(TypeError):
        c.handle().increment({})
    with pytest.raises(TypeError):
        c[[1]]
    with pytest.raises(TypeError):
        [1] in c  # noqa: B015
    assert c.snapshot() == collections.Counter(k=1)


def test_concurrent_counter_int_subclass_delta() -> None:
    c: ConcurrentCounter[str] = ConcurrentCounter()
    c.increment("k", Color.RED)
    assert c["k"] == 3 and type(c["k"]) is int


def test_key_methods_run_without_the_lock() -> None:
    c: ConcurrentCounter[Any] = ConcurrentCounter()
    held: list[bool] = []

    class Key:
        def __hash__(self) -> int:
            held.append(c._lock._is_owned())  # type: ignore[attr-defined]
            return 1

        def __eq__(self, other: object) -> bool:
            held.append(c._lock._is_owned())  # type: ignore[attr-defined]
            return other is self

    k1, k2 = Key(), Key()
    c.increment(k1)
    c.increment(k2)
    assert c[k1] == 1 and k2 in c and c.get(k2) == 1
    assert c.snapshot()[k1] == 1
    assert held and not any(held)


def _count_keys(c: ConcurrentCounter[int], threads: int, n: int, handle: bool) -> None:
    def work(i: int) -> None:
        inc = c.handle().increment if handle else c.increment
        for j in range(n):
            inc(j % 7)
            inc(1000 + i)  # a key only this thread counts

    run_in_threads(work, threads)


@pytest.mark.usefixtures("switch_interval")
@pytest.mark.parametrize("handle", [False, True], ids=["plain", "handle"])
def test_concurrent_counter_exact_totals(handle: bool) -> None:
    n = stress_scale(ci=14_000, full=140_000)
    c: ConcurrentCounter[int] = ConcurrentCounter()
    _count_keys(c, 4, n, handle)
    want: collections.Counter[int] = collections.Counter()
    for i in range(4):
        for j in range(n):
            want[j % 7] += 1
        want[1000 + i] += n
    assert c.snapshot() == want
    assert c.total() == 8 * n
    assert c[3] == want[3]


class SharedDictCounter(ConcurrentCounter[int]):
    """Deliberately broken: one dict for all threads, unguarded read-modify-write."""

    def __init__(self) -> None:
        super().__init__()
        self._d: dict[int, int] = {}
        shard = ConcurrentCounterHandle[int]()
        shard._counts = self._d
        self._state.add_shard(shard)

    def increment(self, key: int, delta: int = 1) -> None:
        v = self._d.get(key, 0)
        time.sleep(0.0001)  # a real pause widens the race window on every build
        self._d[key] = v + delta


@pytest.mark.usefixtures("switch_interval")
def test_concurrent_counter_exact_totals_check_can_fail() -> None:
    c = SharedDictCounter()
    _count_keys(c, 4, 200, handle=False)
    assert c.total() < 8 * 200


@pytest.mark.usefixtures("switch_interval")
def test_reads_during_writes_never_raise_and_are_monotonic() -> None:
    c: ConcurrentCounter[int] = ConcurrentCounter()
    n = stress_scale(ci=20_000, full=200_000)
    stop = threading.Event()

    def writers() -> None:
        try:

            def work(i: int) -> None:
                h = c.handle()
                for j in range(n):
                    h.increment(j)  # new keys all the time: dicts resize
                    h.increment(-1)

            run_in_threads(work, 2)
        finally:
            stop.set()

    def reader() -> int:
        last = 0
        rounds = 0
        while not stop.is_set():
            hot = c[-1]
            assert hot >= last
            last = hot
            c.snapshot()
            c.total()
            len(c)
            rounds += 1
        return rounds

    run_concurrently(writers, reader)
    assert c[-1] == 2 * n
    assert c.total() == 4 * n
    assert len(c) == n + 1


@pytest.mark.usefixtures("switch_interval")
def test_clear_with_concurrent_writers() -> None:
    """Overlapping increments are kept or dropped; later ones are all kept."""
    c: ConcurrentCounter[str] = ConcurrentCounter()
    n = stress_scale(ci=10_000, full=100_000)
    k_done = threading.Barrier(3, timeout=20)
    cleared = threading.Event()

    def writer() -> None:
        h = c.handle()
        for _ in range(n):
            h.increment("k")
        k_done.wait()
        cleared.wait(20)
        for _ in range(n):
            h.increment("after")

    def clearer() -> None:
        for _ in range(20):
            c.clear()  # overlaps the "k" increments
        k_done.wait()
        c.clear()
        cleared.set()

    run_concurrently(writer, writer, clearer)
    # Every increment of "k" finished before the last clear() began.
    assert c["k"] == 0
    assert c["after"] == 2 * n


@pytest.mark.timeout(60)
def test_concurrent_counter_thread_churn() -> None:
    """1,000 short-lived threads: exact counts; exited shards merged, memory bounded."""
    c: ConcurrentCounter[int] = ConcurrentCounter()
    batches, per_batch = 50, 20
    for _ in range(batches):

        def work(i: int) -> None:
            c.increment(i % 5)
            c.handle().increment(99, 2)

        run_in_threads(work, per_batch)
        _, shards = c._state.view
        assert len(shards) <= _MERGE_EVERY  # retired shards merged in batches
    total = batches * per_batch
    want = collections.Counter(dict.fromkeys(range(5), total // 5))
    want[99] = 2 * total
    assert c.snapshot() == want
    base, _ = c._state.view
    assert len(base) <= 6


def test_concurrent_counter_is_collected_without_gc() -> None:

    def used() -> weakref.ref[ConcurrentCounter[int]]:
        c: ConcurrentCounter[int] = ConcurrentCounter()
        c.increment(1)
        run_in_threads(lambda i: c.increment(2), 2)
        return weakref.ref(c)

    gc.disable()
    try:
        assert used()() is None
    finally:
        gc.enable()
