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
from conctools.testing import Call, Scenario, assert_linearizable, run_concurrently, run_in_threads
from conctools.testing.strategies import scenarios


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
    assert all(v is not mine for v in folded)  # dropped with the object: no fold


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


# -- per-thread state retired on every exit path -------------------------------------


def _teardown_increments(c: Any, threads: int) -> None:
    """Each thread counts once normally and once from a ``__del__`` that runs
    while its ``threading.local`` namespaces are cleared (its teardown)."""
    other = threading.local()

    class CountOnDel:
        def __del__(self) -> None:
            c.increment("late") if isinstance(c, ConcurrentCounter) else c.increment()

    def work() -> None:
        c.increment("early") if isinstance(c, ConcurrentCounter) else c.increment()
        other.obj = CountOnDel()

    for _ in range(threads):
        t = threading.Thread(target=work)
        t.start()
        t.join()


@pytest.mark.timeout(60)
def test_increment_during_thread_teardown_leaves_no_shard() -> None:
    c: ConcurrentCounter[str] = ConcurrentCounter()
    _teardown_increments(c, 300)
    assert c.snapshot() == collections.Counter(early=300, late=300)
    assert len(c._per_thread) == 0  # the old code: 300 live shards
    _, shards = c._state.view
    assert len(shards) <= _MERGE_EVERY


@pytest.mark.timeout(60)
def test_striped_increment_during_thread_teardown_leaves_no_cell() -> None:
    c = StripedCounter()
    _teardown_increments(c, 300)
    assert c.value() == 600
    assert len(c._per_thread) == 0


def test_handle_in_a_thread_that_cannot_own_one_raises() -> None:
    other = threading.local()
    errors: list[BaseException] = []
    c: ConcurrentCounter[str] = ConcurrentCounter()
    s = StripedCounter()

    class HandleOnDel:
        def __del__(self) -> None:
            for counter in (c, s):
                try:
                    counter.handle()
                except RuntimeError as exc:
                    errors.append(exc)

    def work() -> None:
        other.obj = HandleOnDel()

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert len(errors) == 2 and "increment()" in str(errors[0])


@pytest.mark.parametrize("kind", ["ConcurrentCounter", "StripedCounter"])
def test_no_error_at_interpreter_exit(kind: str) -> None:
    """Tokens of the main thread retire during finalization, after module
    globals were cleared: nothing may be printed."""
    import subprocess
    import sys

    inc = "c.increment('k')" if kind == "ConcurrentCounter" else "c.increment()"
    script = (
        "import threading\n"
        f"from conctools.counters import {kind}\n"
        f"c = {kind}()\n"
        f"t = threading.Thread(target=lambda: {inc}); t.start(); t.join()\n"
        f"for _ in range(20):\n"
        f"    t = threading.Thread(target=lambda: {inc}); t.start(); t.join()\n"
        f"{inc}\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "Exception ignored" not in out.stderr, out.stderr
    assert out.stderr == ""


def test_thread_identity_reuse_counts_every_thread() -> None:
    """Consecutive threads usually get the same ident: each owns a new shard."""
    c: ConcurrentCounter[int] = ConcurrentCounter()
    s = StripedCounter()
    idents = set()

    def work() -> None:
        idents.add(threading.get_ident())
        c.increment(1)
        s.increment()

    for _ in range(50):
        t = threading.Thread(target=work)
        t.start()
        t.join()
    assert c[1] == 50 and s.value() == 50
    assert len(c._per_thread) == 0 and len(s._per_thread) == 0
    assert len(idents) < 50  # identities were reused (the point of the test)


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("switch_interval")
def test_striped_exact_under_drain_and_thread_exit() -> None:
    """Short-lived adders, a drainer and exits folding cells: every delta is
    drained exactly once or still in the counter."""
    c = StripedCounter()
    stop = threading.Event()
    drained: list[int] = []
    batches, per_batch, per_thread = 10, 8, 200

    def adders() -> None:
        try:
            for _ in range(batches):
                run_in_threads(lambda i: [c.increment() for _ in range(per_thread)], per_batch)
        finally:
            stop.set()

    def drainer() -> None:
        while not stop.is_set():
            drained.append(c.sum_then_reset())

    run_concurrently(adders, drainer)
    assert sum(drained) + c.value() == batches * per_batch * per_thread
    assert len(c._per_thread) == 0


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("switch_interval")
def test_concurrent_counter_clear_racing_thread_exits() -> None:
    """clear() racing with exiting threads (whose shards are merged under the
    same lock): afterwards nothing is resurrected, later counts are exact."""
    c: ConcurrentCounter[int] = ConcurrentCounter()
    stop = threading.Event()

    def churn() -> None:
        try:
            for _ in range(10):
                run_in_threads(lambda i: [c.increment(j % 3) for j in range(50)], 8)
        finally:
            stop.set()

    def clearer() -> None:
        while not stop.is_set():
            c.clear()

    run_concurrently(churn, clearer)
    c.clear()
    assert c.snapshot() == collections.Counter() and c.total() == 0
    run_in_threads(lambda i: [c.increment(j % 3) for j in range(30)], 8)
    assert c.snapshot() == collections.Counter({0: 80, 1: 80, 2: 80})
    assert len(c._per_thread) == 0


# -- ConcurrentCounter as a collections.Counter ------------------------------------------


def test_constructor_update_subtract_like_counter() -> None:
    c: ConcurrentCounter[str] = ConcurrentCounter("abca")
    assert c == collections.Counter("abca")
    assert ConcurrentCounter({"a": 2}, b=3) == collections.Counter(a=2, b=3)
    assert ConcurrentCounter(self=1, iterable=2) == collections.Counter(self=1, iterable=2)
    assert ConcurrentCounter(collections.Counter(x=4)) == {"x": 4}
    assert ConcurrentCounter(ConcurrentCounter("zz")) == {"z": 2}
    c.update("ab", c=2)
    c.update({"a": 10})
    c.subtract("aa")
    c.subtract({"b": 5}, z=1)
    assert c.snapshot() == collections.Counter(a=11, b=-3, c=3, z=-1)
    with pytest.raises(TypeError):
        ConcurrentCounter(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        c.update({}, {})  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        c.update(k=1.5)
    with pytest.raises(TypeError):
        c.subtract({"k": None})
    assert c.snapshot() == collections.Counter(a=11, b=-3, c=3, z=-1)
    with pytest.raises(NotImplementedError):
        ConcurrentCounter.fromkeys("abc")


def test_item_assignment_deletion_pop_setdefault_popitem() -> None:
    c: ConcurrentCounter[str] = ConcurrentCounter("aab")
    c["a"] += 1
    c["b"] -= 1  # to zero: absent
    c["d"] -= 2
    c["e"] = -5
    c["f"] += 4
    del c["zzz"]  # no KeyError, like Counter
    assert c.snapshot() == collections.Counter(a=3, d=-2, e=-5, f=4)
    assert "b" not in c and c["b"] == 0
    assert c.pop("f") == 4 and "f" not in c
    assert c.pop("f", None) is None
    with pytest.raises(KeyError):
        c.pop("f")
    assert c.setdefault("a", 9) == 3 and c.setdefault("g", 5) == 5 and c["g"] == 5
    assert c.setdefault("h") == 0 and "h" not in c
    seen = set()
    while c:
        k, n = c.popitem()
        assert k not in c and n != 0
        seen.add(k)
    assert seen == {"a", "d", "e", "g"}
    with pytest.raises(KeyError):
        c.popitem()
    with pytest.raises(TypeError):
        c["x"] = 1.0  # type: ignore[assignment]
    with pytest.raises(TypeError):
        c["x"] = True
    with pytest.raises(TypeError):
        c[["unhashable"]] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        c.setdefault("x", "1")  # type: ignore[arg-type]
    assert c.snapshot() == collections.Counter()


def test_reads_like_counter() -> None:
    c: ConcurrentCounter[str] = ConcurrentCounter("abracadabra")
    want = collections.Counter("abracadabra")
    assert list(c.keys()) == list(want.keys())  # one thread: insertion order
    assert list(c.values()) == list(want.values())
    assert list(c.items()) == list(want.items())
    assert c.keys() & {"a", "z"} == {"a"}
    assert sorted(c.elements()) == sorted(want.elements())
    assert c.most_common(2) == want.most_common(2)
    assert c.total() == 11 and len(c) == 5 and list(reversed(c)) == list(reversed(want))
    assert c.get("a") == 5 and c.get("zz") is None and c.get("zz", 0) == 0
    assert repr(c) == repr(want).replace("Counter", "ConcurrentCounter")
    assert repr(ConcurrentCounter()) == "ConcurrentCounter()"
    assert dict(c) == dict(want)
    assert isinstance(c, collections.abc.MutableMapping) and not isinstance(c, dict)


def test_equality_and_multiset_comparisons() -> None:
    c: ConcurrentCounter[str] = ConcurrentCounter("aab")
    assert c == collections.Counter(a=2, b=1) == c
    assert c == collections.Counter(a=2, b=1, z=0)  # zero counts do not matter (Counter)
    assert c == {"a": 2, "b": 1} and c == {"a": 2, "b": 1}
    assert c != {"a": 2, "b": 1, "z": 0}  # a plain mapping compares items exactly
    assert c == ConcurrentCounter("aba") and c != ConcurrentCounter("ab")
    assert (c == [1]) is False and c != "aab"
    assert c <= collections.Counter("aabc") and c < collections.Counter("aabc")
    assert c >= collections.Counter("ab") and c > collections.Counter("ab")
    assert not c < ConcurrentCounter("aab") and c <= ConcurrentCounter("aab")
    with pytest.raises(TypeError):
        c < {"a": 3}  # noqa: B015  (as Counter: only against Counters)
    with pytest.raises(TypeError):
        hash(c)


def test_operators_return_counter_snapshots() -> None:
    c: ConcurrentCounter[str] = ConcurrentCounter(a=3, b=1, n=-2)
    o = collections.Counter(a=1, b=2, z=1)
    snap = collections.Counter(a=3, b=1, n=-2)
    for got, want in [
        (c + o, snap + o),
        (o + c, o + snap),
        (c - o, snap - o),
        (o - c, o - snap),
        (c | o, snap | o),
        (o | c, o | snap),
        (c & o, snap & o),
        (o & c, o & snap),
        (+c, +snap),
        (-c, -snap),
        (c + ConcurrentCounter("a"), snap + collections.Counter("a")),
    ]:
        assert type(got) is collections.Counter and got == want
    assert c.snapshot() == snap  # unchanged
    with pytest.raises(TypeError):
        c + {"a": 1}  # type: ignore[operator]


def test_inplace_operators_update_in_place() -> None:
    for op in ("__iadd__", "__isub__", "__ior__", "__iand__"):
        c: ConcurrentCounter[str] = ConcurrentCounter(a=3, b=1, n=-2)
        want = collections.Counter(a=3, b=1, n=-2)
        other = collections.Counter(a=1, b=2, z=1, n=1)
        assert getattr(c, op)(other) is c
        getattr(want, op)(other)
        assert c.snapshot() == want, op
    c = ConcurrentCounter("ab")
    ref = c
    c += ConcurrentCounter("b")
    assert c is ref and c == {"a": 1, "b": 2}
    with pytest.raises(TypeError):
        c += {"a": 1}  # type: ignore[arg-type]


class TaggedCounter(ConcurrentCounter[str]):
    def __init__(self, *args: Any, **kwds: Any) -> None:
        super().__init__(*args, **kwds)
        self.tag = "t"


def test_counter_copy_pickle_subclass() -> None:
    import copy
    import pickle

    c: ConcurrentCounter[str] = ConcurrentCounter("hello")
    for dup in [c.copy(), copy.copy(c), copy.deepcopy(c)] + [
        pickle.loads(pickle.dumps(c, p)) for p in range(pickle.HIGHEST_PROTOCOL + 1)
    ]:
        assert type(dup) is ConcurrentCounter and dup is not c and dup == c
        dup.increment("h")
        assert c["h"] == 1
    t = TaggedCounter("ab")
    for dup in (t.copy(), copy.copy(t), copy.deepcopy(t), pickle.loads(pickle.dumps(t))):
        assert type(dup) is TaggedCounter and dup == t and dup.tag == "t"
    k = [1]
    d = copy.deepcopy(ConcurrentCounter({(1, tuple(k)): 2}))
    assert d[(1, (1,))] == 2


@pytest.mark.parametrize("obj", ["striped", "concurrent"])
def test_handles_refuse_copy_and_pickle(obj: str) -> None:
    import copy
    import pickle

    h = StripedCounter().handle() if obj == "striped" else ConcurrentCounter().handle()
    for f in (copy.copy, copy.deepcopy, pickle.dumps):
        with pytest.raises(TypeError, match="thread's"):
            f(h)


def test_striped_counter_copy_pickle() -> None:
    import copy
    import pickle

    s = StripedCounter()
    s.add(5)
    run_in_threads(lambda i: s.add(1), 2)
    for dup in (copy.copy(s), copy.deepcopy(s), pickle.loads(pickle.dumps(s))):
        assert type(dup) is StripedCounter and dup.value() == 7
        dup.add(1)
        assert s.value() == 7
    assert StripedCounter(3).value() == 3
    with pytest.raises(TypeError):
        StripedCounter(1.5)  # type: ignore[arg-type]


# Sequential conformance against collections.Counter on random operation sequences.

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

keys_st = st.sampled_from("abcd")
counts_st = st.integers(-3, 3)
ops_st = st.lists(
    st.one_of(
        st.tuples(st.just("update"), st.lists(keys_st, max_size=4)),
        st.tuples(st.just("update_map"), st.dictionaries(keys_st, counts_st, max_size=3)),
        st.tuples(st.just("subtract"), st.dictionaries(keys_st, counts_st, max_size=3)),
        st.tuples(st.just("set"), st.tuples(keys_st, counts_st)),
        st.tuples(st.just("del"), keys_st),
        st.tuples(st.just("pop"), keys_st),
        st.tuples(
            st.just("iop"),
            st.tuples(
                st.sampled_from(["__iadd__", "__isub__", "__ior__", "__iand__"]),
                st.dictionaries(keys_st, counts_st, max_size=3),
            ),
        ),
        st.tuples(st.just("clear"), st.just(None)),
    ),
    max_size=12,
)


def _nonzero(c: collections.Counter[str]) -> dict[str, int]:
    return {k: v for k, v in c.items() if v}


@given(ops_st)
def test_sequential_semantics_match_counter(ops: list[tuple[str, Any]]) -> None:
    c: ConcurrentCounter[str] = ConcurrentCounter()
    want: collections.Counter[str] = collections.Counter()
    for op, arg in ops:
        if op in {"update", "update_map"}:
            c.update(arg)
            want.update(arg)
        elif op == "subtract":
            c.subtract(arg)
            want.subtract(arg)
        elif op == "set":
            c[arg[0]] = arg[1]
            want[arg[0]] = arg[1]
        elif op == "del":
            del c[arg]
            del want[arg]
        elif op == "pop":
            assert c.pop(arg, 0) == want.pop(arg, 0)
        elif op == "iop":
            name, other = arg
            getattr(c, name)(collections.Counter(other))
            getattr(want, name)(collections.Counter(other))
        else:
            c.clear()
            want.clear()
        assert dict(c.snapshot()) == _nonzero(want)
        assert c.total() == want.total()
        for k in "abcd":
            assert c[k] == want[k]


# -- compound writes under concurrency -----------------------------------------------


@pytest.mark.usefixtures("switch_interval")
def test_concurrent_pops_return_each_count_once() -> None:
    """Increments racing with pop(): every increment is popped exactly once or left."""
    c: ConcurrentCounter[str] = ConcurrentCounter()
    n = stress_scale(ci=5_000, full=50_000)
    stop = threading.Event()
    popped: list[int] = []

    def incrementers() -> None:
        try:
            run_in_threads(lambda i: [c.increment("k") for _ in range(n)], 2)
        finally:
            stop.set()

    def popper() -> None:
        while not stop.is_set():
            popped.append(c.pop("k", 0))

    run_concurrently(incrementers, popper, popper)
    assert sum(popped) + c["k"] == 2 * n


@pytest.mark.usefixtures("switch_interval")
def test_concurrent_setitem_never_adds_up() -> None:
    c: ConcurrentCounter[str] = ConcurrentCounter()
    for _ in range(stress_scale(ci=30, full=300)):
        run_in_threads(lambda i: c.__setitem__("k", 5), 4)
        assert c["k"] == 5


class UnlockedSetCounter(ConcurrentCounter[str]):
    """Deliberately broken: c[k] = n without the write lock."""

    def __setitem__(self, key: str, n: int) -> None:
        cur = self._count(key)
        time.sleep(0.0001)  # a real pause widens the race window on every build
        d = self._own_counts()
        d[key] = d.get(key, 0) + (n - cur)


@pytest.mark.usefixtures("switch_interval")
def test_concurrent_setitem_check_can_fail() -> None:
    c = UnlockedSetCounter()
    results = set()
    for _ in range(10):
        c.clear()
        run_in_threads(lambda i: c.__setitem__("k", 5), 4)
        results.add(c["k"])
    assert results != {5}


class CounterSpec:
    """Sequential reference: collections.Counter without zero counts."""

    def __init__(self) -> None:
        self.c: collections.Counter[str] = collections.Counter()

    def increment(self, k: str, d: int = 1) -> None:
        self.c[k] += d

    def __setitem__(self, k: str, n: int) -> None:
        self.c[k] = n

    def __delitem__(self, k: str) -> None:
        del self.c[k]

    def pop(self, k: str, default: int) -> int:
        n = self.c.pop(k, default)
        return n if n else default

    def setdefault(self, k: str, d: int) -> int:
        if self.c[k]:
            return self.c[k]
        self.c[k] = d
        return d

    def __getitem__(self, k: str) -> int:
        return self.c[k]

    def total(self) -> int:
        return self.c.total()


ck = st.sampled_from("ab")
COUNTER_VOCAB = {
    "increment": st.tuples(ck, st.integers(1, 3)),
    "__setitem__": st.tuples(ck, st.integers(0, 3)),
    "__delitem__": st.tuples(ck),
    "pop": st.tuples(ck, st.just(0)),
    "setdefault": st.tuples(ck, st.integers(1, 3)),
}


@pytest.mark.timeout(60)
@given(scenarios(COUNTER_VOCAB, threads=(2, 2)))
def test_compound_writes_linearizable(scenario: Scenario) -> None:
    """Two threads: compound writes and increments, then exact reads.

    (With three or more threads, increments that overlap one compound write
    are each decided independently, see the class docstring; reads are
    weakly consistent, so only the post-phase reads them.)"""
    post = (Call("__getitem__", ("a",)), Call("__getitem__", ("b",)), Call("total"))
    s = Scenario(init=scenario.init, threads=scenario.threads, post=post)
    assert_linearizable(s, ConcurrentCounter, CounterSpec, trials=3)


class IncrementAfterRead(ConcurrentCounter[str]):
    """Another thread increments right after each compound write's read."""

    armed = False

    def _count(self, key: str) -> int:
        n = super()._count(key)
        self._race(key)
        return n

    def snapshot(self) -> collections.Counter[str]:
        snap = super().snapshot()
        self._race("a")
        return snap

    def _race(self, key: str) -> None:
        if self.armed:
            self.armed = False
            t = threading.Thread(target=self.increment, args=(key,))
            t.start()
            t.join()


@pytest.mark.parametrize(
    ("op", "want"),
    [
        (lambda c: c.setdefault("a", 2), 3),
        (lambda c: c.__setitem__("a", 5), 6),
        (lambda c: c.__iadd__(collections.Counter(a=2)), 3),
        (lambda c: c.__ior__(collections.Counter(a=2)), 3),
    ],
    ids=["setdefault", "setitem", "iadd", "ior"],
)
def test_an_increment_after_a_compound_write_read_is_kept(op: Any, want: int) -> None:
    """The write adds a difference to what it read (one read), so an increment
    landing after that read is kept on top, never overwritten."""
    c = IncrementAfterRead()
    c.armed = True
    op(c)
    assert c["a"] == want


def test_compound_writes_linearizable_found_case() -> None:
    """A history hypothesis found when setdefault read the count twice."""
    s = Scenario(
        init=(Call("__delitem__", ("a",)),),
        threads=(
            (Call("pop", ("a", 0)), Call("setdefault", ("a", 2))),
            (Call("increment", ("a", 1)),),
        ),
        post=(Call("__getitem__", ("a",)), Call("total")),
    )
    assert_linearizable(s, ConcurrentCounter, CounterSpec, trials=40)
