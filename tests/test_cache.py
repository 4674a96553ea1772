"""Tests of conctools.cache: ConcurrentCache, CacheStats, @cached.

Concurrency tests each come with a check that they can fail: the same check
run against a deliberately broken variant defined here must fail.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from collections import OrderedDict
from typing import Any

import pytest
from conftest import UncopyableError, check_loader_error_copies, stress_scale
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from conctools.cache import CacheInfo, CacheStats, ConcurrentCache, cached
from conctools.cache.decorator import _wrap
from conctools.cache.policies import WTinyLfuPolicy
from conctools.cache.sketch import FrequencySketch
from conctools.testing import Call, Scenario, assert_linearizable, run_concurrently, run_in_threads
from conctools.testing.strategies import scenarios

POLICIES = ["lru", "tinylfu"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, dt: float) -> None:
        self.now += dt


# ------------------------------------------------------------------ basics


@pytest.mark.parametrize("policy", POLICIES)
def test_basic_mapping_api(policy: str) -> None:
    c: ConcurrentCache[str, int] = ConcurrentCache(10, policy=policy)
    assert c.get("a") is None
    assert c.get("a", 5) == 5
    c.put("a", 1)
    c["b"] = 2
    assert c["a"] == 1
    assert c.get("b") == 2
    assert "a" in c
    assert "z" not in c
    assert len(c) == 2
    assert sorted(c) == ["a", "b"]
    assert sorted(c.keys()) == ["a", "b"]
    assert sorted(c.items()) == [("a", 1), ("b", 2)]
    with pytest.raises(KeyError):
        c["z"]
    assert c.invalidate("a") is True
    assert c.invalidate("a") is False
    del c["b"]
    with pytest.raises(KeyError):
        del c["b"]
    assert len(c) == 0
    c.put("x", None)  # None is a value like any other
    assert "x" in c
    assert c["x"] is None
    c.clear()
    assert len(c) == 0
    assert c.maxsize == 10
    assert c.policy == policy
    assert "ConcurrentCache" in repr(c)


def test_lru_eviction_order() -> None:
    c: ConcurrentCache[str, int] = ConcurrentCache(3)
    for k in "abc":
        c.put(k, 0)
    c.get("a")  # a is now the most recent: b is next to go
    c.put("d", 0)
    assert sorted(c.keys()) == ["a", "c", "d"]
    c.put("c", 1)  # a write is an access too: a is next
    c.put("e", 0)
    assert sorted(c.keys()) == ["c", "d", "e"]
    assert c.stats().evictions == 2


@pytest.mark.parametrize(
    ("kwargs", "exc"),
    [
        ({"maxsize": 0}, ValueError),
        ({"maxsize": -3}, ValueError),
        ({"maxsize": 1.5}, TypeError),
        ({"maxsize": True}, TypeError),
        ({"maxsize": None}, TypeError),
        ({"ttl": -1}, ValueError),
        ({"ttl": 0}, ValueError),
        ({"expire_after_access": 0}, ValueError),
        ({"ttl": float("nan")}, ValueError),
        ({"ttl": "1"}, TypeError),
        ({"expire_after_access": -0.5}, ValueError),
        ({"policy": "fifo"}, ValueError),
        ({"policy": 3}, TypeError),
        ({"stripes": 0}, ValueError),
        ({"clock": 3}, TypeError),
    ],
)
def test_bad_constructor_arguments(kwargs: dict[str, Any], exc: type[Exception]) -> None:
    with pytest.raises(exc):
        ConcurrentCache(**kwargs)


@pytest.mark.parametrize("policy", POLICIES)
def test_unhashable_keys_raise_typeerror_and_change_nothing(policy: str) -> None:
    c: ConcurrentCache[Any, int] = ConcurrentCache(4, policy=policy)
    c.put(1, 1)
    before = c.stats()
    for call in (
        lambda: c.get([1]),
        lambda: c[[1]],
        lambda: c.put([1], 2),
        lambda: c.__setitem__({}, 2),
        lambda: c.get_or_load([1], lambda k: 1),
        lambda: c.invalidate([1]),
        lambda: [1] in c,
    ):
        with pytest.raises(TypeError):
            call()
    assert c.items() == [(1, 1)]
    assert c.stats() == before


def test_get_or_load_rejects_bad_timeout() -> None:
    c: ConcurrentCache[int, int] = ConcurrentCache(4)
    with pytest.raises(ValueError):
        c.get_or_load(1, lambda k: k, timeout=-1)
    with pytest.raises(TypeError):
        c.get_or_load(1, lambda k: k, timeout="soon")  # type: ignore[arg-type]
    assert len(c) == 0


# ------------------------------------------------------------------- stats


def test_stats_exact_single_threaded() -> None:
    c: ConcurrentCache[int, int] = ConcurrentCache(2)
    assert c.stats() == CacheStats()
    assert c.stats().hit_rate == 1.0
    c.put(1, 1)
    c.get(1)  # hit
    c.get(2)  # miss
    _ = 1 in c  # not counted
    c.get_or_load(2, lambda k: k * 10)  # miss + load
    c.get_or_load(2, lambda k: 0)  # hit
    with pytest.raises(ZeroDivisionError):
        c.get_or_load(3, lambda k: 1 // 0)  # miss + load + failure
    c.put(4, 4)  # evicts 1 (2 and 4 remain)
    c.invalidate(2)  # explicit removals are not evictions
    c[4]  # hit
    with pytest.raises(KeyError):
        c[1]  # miss
    s = c.stats()
    assert s == CacheStats(hits=3, misses=4, loads=2, load_failures=1, evictions=1)
    assert s.requests == 7
    assert s.hit_rate == pytest.approx(3 / 7)
    assert s.miss_rate == pytest.approx(4 / 7)
    assert s - CacheStats(hits=1) == CacheStats(3 - 1, 4, 2, 1, 1, 0)
    assert (s + s).hits == 6
    with pytest.raises(AttributeError):
        s.hits = 0  # type: ignore[misc]


def test_stats_count_many_reads_exactly() -> None:
    # More reads than one buffer holds: drains happen along the way.
    c: ConcurrentCache[int, int] = ConcurrentCache(100)
    for k in range(50):
        c.put(k, k)
    for i in range(10_000):
        c.get(i % 100)
    s = c.stats()
    assert (s.hits, s.misses) == (5000, 5000)


def test_tinylfu_rejected_candidate_counts_as_eviction() -> None:
    c: ConcurrentCache[int, int] = ConcurrentCache(100, policy="tinylfu")
    for k in range(100):
        c.put(k, k)
    for _ in range(5):
        for k in range(100):
            c.get(k)
    # One-off keys lose against the frequent main-region victims.
    for k in range(1000, 1050):
        c.put(k, k)
    s = c.stats()
    assert s.evictions == 50
    assert len(c) == 100
    assert sum(1 for k in range(100) if k in c) >= 98


# ------------------------------------------------------------------- expiry


def test_ttl_expire_after_write_with_fake_clock() -> None:
    clock = FakeClock()
    c: ConcurrentCache[str, int] = ConcurrentCache(10, ttl=5, clock=clock)
    c.put("a", 1)
    clock.advance(4.9)
    assert c.get("a") == 1  # reads do not extend a ttl
    assert "a" in c
    clock.advance(0.1)
    assert c.get("a") is None
    assert "a" not in c
    assert len(c) == 0
    assert c.stats().expirations == 1
    c.put("b", 1)
    clock.advance(3)
    c.put("b", 2)  # a write restarts the clock
    clock.advance(3)
    assert c["b"] == 2
    clock.advance(2)
    with pytest.raises(KeyError):
        c["b"]
    assert c.invalidate("b") is False  # expired: nothing live to remove
    s = c.stats()
    assert (s.hits, s.misses, s.expirations) == (2, 2, 2)


def test_expire_after_access_with_fake_clock() -> None:
    clock = FakeClock()
    c: ConcurrentCache[str, int] = ConcurrentCache(10, expire_after_access=2, clock=clock)
    c.put("a", 1)
    for _ in range(5):
        clock.advance(1.5)
        assert c.get("a") == 1  # each read restarts the idle timer
    clock.advance(2)
    assert c.get("a") is None
    assert c.expire_after_access == 2
    # both: the earlier deadline wins
    c2: ConcurrentCache[str, int] = ConcurrentCache(10, ttl=3, expire_after_access=2, clock=clock)
    c2.put("a", 1)
    clock.advance(1.5)
    assert c2.get("a") == 1
    clock.advance(1.5)
    assert c2.get("a") is None  # ttl passed although accessed recently


def test_subclass_with_expiry_keeps_its_methods_and_expires() -> None:
    clock = FakeClock()

    class Mine(ConcurrentCache[str, int]):
        def get(self, key: str, default: Any = None) -> Any:
            return ("mine", super().get(key, default))

    m = Mine(4, ttl=1, clock=clock)
    assert isinstance(m, Mine)
    m.put("a", 1)
    assert m.get("a") == ("mine", 1)
    clock.advance(1)
    assert m.get("a") == ("mine", None)
    assert type(Mine(4)) is Mine


def test_expired_entries_free_room_before_eviction() -> None:
    clock = FakeClock()
    c: ConcurrentCache[int, int] = ConcurrentCache(3, ttl=1, clock=clock)
    c.put(1, 1)
    clock.advance(0.5)
    c.put(2, 2)
    c.put(3, 3)
    clock.advance(0.6)  # 1 expired
    c.put(4, 4)
    s = c.stats()
    assert (s.evictions, s.expirations) == (0, 1)
    assert sorted(c.keys()) == [2, 3, 4]


def test_get_or_load_reloads_expired_entry() -> None:
    clock = FakeClock()
    c: ConcurrentCache[str, int] = ConcurrentCache(10, ttl=1, clock=clock)
    n = [0]

    def loader(k: str) -> int:
        n[0] += 1
        return n[0]

    assert c.get_or_load("a", loader) == 1
    assert c.get_or_load("a", loader) == 1
    clock.advance(1)
    assert c.get_or_load("a", loader) == 2
    assert c.stats().loads == 2


def test_ttl_with_real_time() -> None:
    c: ConcurrentCache[str, int] = ConcurrentCache(10, ttl=0.05)
    c.put("a", 1)
    assert c.get("a") == 1
    time.sleep(0.12)
    assert c.get("a") is None
    assert len(c) == 0
    assert c.stats().expirations == 1


def test_expiry_heap_stays_bounded() -> None:
    clock = FakeClock()
    c: ConcurrentCache[int, int] = ConcurrentCache(10, ttl=1000, clock=clock)
    for k in range(5000):
        c.put(k, k)  # most are evicted long before they would expire
    assert len(c._heap) <= 2 * 10 + 64 + 1


# ----------------------------------------------------------- single-flight


def _count_loader_calls(cache: Any, n_threads: int = 8) -> tuple[int, list[Any]]:
    calls = []
    lock = threading.Lock()

    def loader(key: str) -> str:
        with lock:
            calls.append(key)
        time.sleep(0.05)
        return key.upper()

    results = run_in_threads(lambda i: cache.get_or_load("k", loader), n_threads)
    return len(calls), results


class NaiveLoadingCache:
    """Broken on purpose: check-then-load, no single-flight."""

    def __init__(self) -> None:
        self._d: dict[str, Any] = {}

    def get_or_load(self, key: str, loader: Any) -> Any:
        if key not in self._d:
            self._d[key] = loader(key)
        return self._d[key]


@pytest.mark.parametrize("policy", POLICIES)
def test_single_flight_under_8_threads(policy: str, switch_interval: None) -> None:
    c: ConcurrentCache[str, str] = ConcurrentCache(10, policy=policy)
    calls, results = _count_loader_calls(c)
    assert calls == 1
    assert results == ["K"] * 8
    s = c.stats()
    assert (s.loads, s.misses, s.hits) == (1, 1, 7)


def test_single_flight_test_can_fail(switch_interval: None) -> None:
    calls, _ = _count_loader_calls(NaiveLoadingCache())
    assert calls > 1


def test_loader_error_reaches_every_waiter_and_is_not_cached(switch_interval: None) -> None:
    c: ConcurrentCache[str, int] = ConcurrentCache(10)
    started = threading.Event()
    release = threading.Event()
    calls = []

    class Boom(Exception):
        pass

    def loader(key: str) -> int:
        calls.append(key)
        started.set()
        release.wait(5)
        raise Boom(key)

    errors: list[BaseException] = []
    elock = threading.Lock()

    def caller(i: int) -> None:
        if i:
            started.wait(5)
        else:
            pass
        try:
            c.get_or_load("k", loader)
        except Boom as e:
            with elock:
                errors.append(e)

    def releaser() -> None:
        started.wait(5)
        deadline = time.monotonic() + 5
        # wait until the 7 others are waiting on the load
        while time.monotonic() < deadline:
            stripe = c._stripe("k")
            if "k" in stripe.loading:
                time.sleep(0.05)
                break
            time.sleep(0.001)
        release.set()

    run_concurrently(*[functools.partial(caller, i) for i in range(8)], releaser)
    assert len(calls) == 1
    assert len(errors) == 8
    original = check_loader_error_copies(errors, "loader")  # waiters raise copies
    assert original.args == ("k",)
    assert "k" not in c
    s = c.stats()
    assert (s.loads, s.load_failures, s.misses, s.hits) == (1, 1, 8, 0)
    # not cached: the next call loads again
    assert c.get_or_load("k", lambda k: 7) == 7


def _catching(call: Any) -> Any:
    """``call()``'s exception (or result), for run_in_threads."""
    try:
        return call()
    except Exception as exc:
        return exc


class _Coded(Exception):
    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message, code)
        self.code = code
        self.extra = "set after __init__"


def test_waiters_raise_copies_keeping_class_args_attributes_cause_and_notes(
    switch_interval: None,
) -> None:
    c: ConcurrentCache[str, int] = ConcurrentCache(10)
    cause = OSError(5, "disk")
    calls = []

    def loader(key: str) -> int:
        calls.append(key)
        time.sleep(0.05)  # the other callers join the load meanwhile
        err = _Coded("no value", code=7)
        err.extra = "changed"
        if sys.version_info >= (3, 11):
            err.add_note("the loader's note")
        raise err from cause

    errors = run_in_threads(lambda i: _catching(lambda: c.get_or_load("k", loader)), 4)
    assert len(calls) == 1
    original = check_loader_error_copies(errors, "loader")
    for e in errors:
        assert isinstance(e, _Coded) and (e.args, e.code, e.extra) == (
            ("no value", 7),
            7,
            "changed",
        )
        assert e.__cause__ is cause and e.__suppress_context__
    if sys.version_info >= (3, 11):
        assert original.__notes__ == ["the loader's note"]
        for e in errors:
            if e is not original:
                assert e.__notes__[0] == "the loader's note" and len(e.__notes__) == 2
                assert e.__notes__ is not original.__notes__
                e.add_note("a waiter's own note")
        assert original.__notes__ == ["the loader's note"]  # untouched by the waiters
    s = c.stats()
    assert (s.loads, s.load_failures, s.misses, s.hits) == (1, 1, 4, 0)


def test_an_uncopyable_loader_error_sends_each_waiter_to_load_again(
    switch_interval: None,
) -> None:
    c: ConcurrentCache[str, int] = ConcurrentCache(10)
    calls = []

    def loader(key: str) -> int:
        calls.append(key)
        time.sleep(0.02)
        raise UncopyableError("no", "pe")

    errors = run_in_threads(lambda i: _catching(lambda: c.get_or_load("k", loader)), 3)
    # no caller raises another's exception object: each one ran the loader
    assert len(calls) == 3
    assert len({id(e) for e in errors}) == 3
    assert all(isinstance(e, UncopyableError) and e.args == ("nope",) for e in errors)
    assert c.stats().load_failures == 3 and not c._stripe("k").loading


def test_one_loader_error_raised_in_many_threads_at_once() -> None:
    """Several waiters wake together and raise the failed load's exception
    at the same moment (run under ThreadSanitizer too: one exception object
    raised in several threads races on its traceback)."""
    for _ in range(stress_scale(20, 200)):
        c: ConcurrentCache[str, int] = ConcurrentCache(16)

        def loader(key: str) -> int:
            time.sleep(0.01)
            raise ValueError("boom")

        errors = run_in_threads(lambda i: _catching(lambda: c.get_or_load("k", loader)), 4)
        assert all(isinstance(e, ValueError) for e in errors), errors
        assert len({id(e) for e in errors}) == 4


def test_loader_runs_under_no_lock() -> None:
    c: ConcurrentCache[int, int] = ConcurrentCache(10)
    seen = []

    def loader(k: int) -> int:
        seen.append(c._lock.locked() or any(s.lock.locked() for s in c._stripes))
        # the loader may use the cache, including other keys of any stripe
        for other in range(k + 1, k + 40):
            c.put(other, other)
        return k

    assert c.get_or_load(0, loader) == 0
    assert seen == [False]


def test_recursive_load_raises_instead_of_deadlocking() -> None:
    c: ConcurrentCache[int, int] = ConcurrentCache(10)

    def loader(k: int) -> int:
        return c.get_or_load(k, loader) + 1

    with pytest.raises(RuntimeError, match="recursive"):
        c.get_or_load(1, loader)
    assert 1 not in c


def test_waiter_timeout() -> None:
    c: ConcurrentCache[int, int] = ConcurrentCache(10)
    started = threading.Event()
    release = threading.Event()

    def slow(k: int) -> int:
        started.set()
        release.wait(5)
        return 42

    def owner() -> int:
        return c.get_or_load(1, slow)

    def waiter() -> str:
        started.wait(5)
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            c.get_or_load(1, slow, timeout=0.05)
        elapsed = time.monotonic() - t0
        release.set()
        return f"{elapsed:.2f}"

    r = run_concurrently(owner, waiter)
    assert r[0] == 42
    assert 0.04 <= float(r[1]) < 2
    assert c[1] == 42


@pytest.mark.parametrize("action", ["invalidate", "put", "clear"])
def test_write_during_load_wins(action: str) -> None:
    c: ConcurrentCache[str, int] = ConcurrentCache(10)
    started = threading.Event()
    release = threading.Event()

    def loader(k: str) -> int:
        started.set()
        release.wait(5)
        return 1

    def writer() -> None:
        started.wait(5)
        if action == "invalidate":
            c.invalidate("k")
        elif action == "put":
            c.put("k", 2)
        else:
            c.clear()
        release.set()

    r = run_concurrently(lambda: c.get_or_load("k", loader), writer)
    assert r[0] == 1  # the loader's caller still gets its value
    assert c.get("k") == (2 if action == "put" else None)


# ------------------------------------------------------------ concurrency


class InsertThenTrim:
    """Broken on purpose: inserts, then trims to maxsize (the bound is exceeded briefly)."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._od: OrderedDict[int, int] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, key: int, value: int) -> None:
        # Each step is locked (an OrderedDict written from two threads at once
        # is not memory-safe on free-threaded 3.13); the bug is that insert and
        # trim are two steps.
        with self._lock:
            self._od[key] = value
        time.sleep(0.0001)  # a real pause widens the race window on every build
        with self._lock:
            while len(self._od) > self.maxsize:
                self._od.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._od)


def _max_observed_size(cache: Any, maxsize: int) -> int:
    """Largest ``len(cache)`` seen by a monitor thread during concurrent puts
    of distinct keys (stops early once the bound is exceeded)."""
    n = stress_scale(ci=3000, full=30000)
    stop = threading.Event()
    seen = [0]

    def writer(t: int) -> None:
        for i in range(n):
            if stop.is_set():
                return
            cache.put(t * 1_000_000 + i, i)

    def monitor() -> None:
        while not stop.is_set():
            size = len(cache)
            if size > seen[0]:
                seen[0] = size
                if size > maxsize:
                    stop.set()

    def writers() -> None:
        try:
            run_in_threads(writer, 3)
        finally:
            stop.set()

    run_concurrently(writers, monitor)
    return max(seen[0], len(cache))


@pytest.mark.parametrize("policy", POLICIES)
def test_bound_never_exceeded_under_concurrent_puts(policy: str, switch_interval: None) -> None:
    c: ConcurrentCache[int, int] = ConcurrentCache(16, policy=policy)
    assert _max_observed_size(c, 16) <= 16
    assert len(c._policy) == len(c) == 16
    assert c.stats().evictions == 3 * stress_scale(ci=3000, full=30000) - 16


def test_bound_test_can_fail(switch_interval: None) -> None:
    assert _max_observed_size(InsertThenTrim(16), 16) > 16


def test_reads_and_updates_take_no_lock() -> None:
    c: ConcurrentCache[int, int] = ConcurrentCache(10)
    c.put(1, 1)
    with c._lock:  # the maintenance lock held by "someone else"
        r = run_concurrently(lambda: (c.get(1), c[1], 1 in c, c.put(1, 2), c.get(1)), timeout=5)
    assert r[0] == (1, 1, True, None, 2)


@pytest.mark.parametrize("policy", POLICIES)
def test_concurrent_mixed_ops_keep_consistency(policy: str, switch_interval: None) -> None:
    c: ConcurrentCache[int, tuple[int, int]] = ConcurrentCache(32, policy=policy)
    n = stress_scale(ci=2000, full=20000)

    def worker(t: int) -> int:
        gets = 0
        for i in range(n):
            k = (i * 7 + t) % 64
            if i % 5 == 0:
                c.put(k, (k, i))
            elif i % 17 == 0:
                c.invalidate(k)
            elif i % 11 == 0:
                assert c.get_or_load(k, lambda key: (key, -1))[0] == k
                gets += 1
            else:
                v = c.get(k)
                assert v is None or v[0] == k
                gets += 1
        return gets

    gets = sum(run_in_threads(worker, 4))
    s = c.stats()
    assert s.hits + s.misses == gets
    assert len(c) <= 32
    assert len(c._policy) == len(c)
    assert sorted(c._policy.keys()) == sorted(c.keys())


def test_iteration_is_a_snapshot_and_counts_nothing() -> None:
    c: ConcurrentCache[int, int] = ConcurrentCache(100)
    for k in range(10):
        c.put(k, k)
    it = iter(c)
    c.put(10, 10)  # mutating during iteration is fine: the keys were copied
    c.invalidate(0)
    assert sorted(it) == list(range(10))
    assert sorted(c.items()) == [(k, k) for k in range(1, 11)]
    assert c.stats() == CacheStats()


def test_reader_waits_only_when_its_buffer_is_full() -> None:
    c: ConcurrentCache[int, int] = ConcurrentCache(10)
    c.put(1, 1)
    done = threading.Event()

    def reader() -> None:
        for _ in range(5000):  # more than the 4096 records a buffer may hold
            c.get(1)
        done.set()

    with c._lock:  # the maintenance lock held "for ever" by someone else
        t = threading.Thread(target=reader, daemon=True)
        t.start()
        assert not done.wait(0.3)  # back-pressure: the reader waits ...
    t.join(5)
    assert done.is_set()  # ... and goes on once the lock is free
    assert c.stats().hits == 5000  # no record was dropped


def test_buffers_of_finished_threads_are_drained_and_pruned() -> None:
    c: ConcurrentCache[int, int] = ConcurrentCache(10)
    c.put(1, 1)
    run_in_threads(lambda i: [c.get(1) for _ in range(5)], 4)
    assert len(c._pt) <= 1  # retired at thread exit, without a drain
    assert c.stats().hits == 20


# ------------------------------------------------------- linearizability


class CacheSpec:
    """Sequential reference for get/put/invalidate on a cache that never evicts."""

    def __init__(self) -> None:
        self.d: dict[int, int] = {}

    def get(self, key: int, default: Any = None) -> Any:
        return self.d.get(key, default)

    def put(self, key: int, value: int) -> None:
        self.d[key] = value

    def invalidate(self, key: int) -> bool:
        return self.d.pop(key, None) is not None


keys = st.integers(0, 2)
values = st.integers(0, 3)
VOCAB = {
    "get": st.tuples(keys),
    "put": st.tuples(keys, values),
    "invalidate": st.tuples(keys),
}


@pytest.mark.parametrize("policy", POLICIES)
@settings(max_examples=20)
@given(scenario=scenarios(VOCAB))
def test_linearizable_per_key(policy: str, scenario: Scenario) -> None:
    assert_linearizable(
        scenario,
        lambda: ConcurrentCache(16, policy=policy),
        CacheSpec,
        partition=lambda op: op.args[0],
        trials=5,
    )


class TornPutCache:
    """Broken on purpose: put removes, then re-inserts (readers see a gap)."""

    def __init__(self) -> None:
        self.c: ConcurrentCache[int, int] = ConcurrentCache(16)

    def get(self, key: int, default: Any = None) -> Any:
        return self.c.get(key, default)

    def put(self, key: int, value: int) -> None:
        self.c.invalidate(key)
        time.sleep(0.0005)
        self.c.put(key, value)

    def invalidate(self, key: int) -> bool:
        return self.c.invalidate(key)


def test_linearizability_check_can_fail() -> None:
    scenario = Scenario(
        init=(Call("put", (0, 1)),),
        threads=(
            tuple(Call("put", (0, 2)) for _ in range(3)),
            tuple(Call("get", (0,)) for _ in range(6)),
        ),
        post=(),
    )
    with pytest.raises(AssertionError):
        assert_linearizable(
            scenario, TornPutCache, CacheSpec, partition=lambda op: op.args[0], trials=30
        )


# ------------------------------------------------------------- stateful


class LruModel(RuleBasedStateMachine):
    """policy='lru' must behave exactly like a plain LRU (single-threaded)."""

    SIZE = 4

    def __init__(self) -> None:
        super().__init__()
        self.c: ConcurrentCache[int, int] = ConcurrentCache(self.SIZE)
        self.m: OrderedDict[int, int] = OrderedDict()
        self.hits = self.misses = self.evictions = self.loads = 0

    def _touch(self, k: int) -> None:
        self.m.move_to_end(k)

    def _insert(self, k: int, v: int) -> None:
        self.m[k] = v
        self.m.move_to_end(k)
        if len(self.m) > self.SIZE:
            self.m.popitem(last=False)
            self.evictions += 1

    @rule(k=st.integers(0, 7))
    def get(self, k: int) -> None:
        got = self.c.get(k)
        if k in self.m:
            assert got == self.m[k]
            self._touch(k)
            self.hits += 1
        else:
            assert got is None
            self.misses += 1

    @rule(k=st.integers(0, 7), v=st.integers())
    def put(self, k: int, v: int) -> None:
        self.c.put(k, v)
        self._insert(k, v)

    @rule(k=st.integers(0, 7), v=st.integers())
    def get_or_load(self, k: int, v: int) -> None:
        got = self.c.get_or_load(k, lambda _k: v)
        if k in self.m:
            assert got == self.m[k]
            self._touch(k)
            self.hits += 1
        else:
            assert got == v
            self._insert(k, v)
            self.misses += 1
            self.loads += 1

    @rule(k=st.integers(0, 7))
    def invalidate(self, k: int) -> None:
        assert self.c.invalidate(k) == (k in self.m)
        self.m.pop(k, None)

    @precondition(lambda self: len(self.m) > 0)
    @rule()
    def clear(self) -> None:
        self.c.clear()
        self.m.clear()

    @invariant()
    def same_contents_and_stats(self) -> None:
        s = self.c.stats()  # applies the buffered accesses
        assert len(self.c) == len(self.m)
        assert self.c._policy.keys() == list(self.m)  # same recency order
        assert sorted(self.c.items()) == sorted(self.m.items())
        assert (s.hits, s.misses, s.evictions, s.loads) == (
            self.hits,
            self.misses,
            self.evictions,
            self.loads,
        )


TestLruModel = LruModel.TestCase
TestLruModel.settings = settings(max_examples=30, stateful_step_count=40, deadline=None)


class TtlLruModel(RuleBasedStateMachine):
    """policy='lru' with expiry and a fake clock, against a model that drops
    expired entries before every operation (the cache drops them lazily, but
    never evicts a live entry while an expired one is held, and counts each
    expiration once)."""

    SIZE = 3
    TTL: float | None = 4
    TTA: float | None = None

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.c: ConcurrentCache[int, int] = ConcurrentCache(
            self.SIZE, ttl=self.TTL, expire_after_access=self.TTA, clock=self.clock
        )
        # key -> [value, write deadline, idle deadline]
        self.m: OrderedDict[int, list[float]] = OrderedDict()
        self.hits = self.misses = self.evictions = self.expirations = 0

    def _deadlines(self) -> tuple[float, float]:
        now = self.clock.now
        inf = float("inf")
        return (now + self.TTL if self.TTL is not None else inf), (
            now + self.TTA if self.TTA is not None else inf
        )

    def _purge(self) -> None:
        now = self.clock.now
        for k in [k for k, (_, wd, ad) in self.m.items() if now >= wd or now >= ad]:
            del self.m[k]
            self.expirations += 1

    def _write(self, k: int, v: int) -> None:
        wd, ad = self._deadlines()
        self.m[k] = [v, wd, ad]
        self.m.move_to_end(k)
        if len(self.m) > self.SIZE:
            self.m.popitem(last=False)
            self.evictions += 1

    def _read(self, k: int) -> int | None:
        if k not in self.m:
            self.misses += 1
            return None
        self.hits += 1
        self.m.move_to_end(k)
        if self.TTA is not None:
            self.m[k][2] = self.clock.now + self.TTA
        return int(self.m[k][0])

    @rule(dt=st.sampled_from([0, 1, 2, 3]))
    def advance(self, dt: int) -> None:
        self.clock.advance(dt)

    @rule(k=st.integers(0, 5))
    def get(self, k: int) -> None:
        self._purge()
        assert self.c.get(k) == self._read(k)

    @rule(k=st.integers(0, 5), v=st.integers(0, 9))
    def put(self, k: int, v: int) -> None:
        self._purge()
        self.c.put(k, v)
        self._write(k, v)

    @rule(k=st.integers(0, 5), v=st.integers(0, 9))
    def get_or_load(self, k: int, v: int) -> None:
        self._purge()
        got = self.c.get_or_load(k, lambda _k: v)
        expected = self._read(k)
        if expected is None:
            self._write(k, v)
            expected = v
        assert got == expected

    @rule(k=st.integers(0, 5))
    def invalidate(self, k: int) -> None:
        self._purge()
        assert self.c.invalidate(k) == (self.m.pop(k, None) is not None)

    @invariant()
    def same_state(self) -> None:
        self._purge()
        s = self.c.stats()
        assert (s.hits, s.misses, s.evictions, s.expirations) == (
            self.hits,
            self.misses,
            self.evictions,
            self.expirations,
        )
        assert len(self.c) == len(self.m)
        assert self.c._policy.keys() == list(self.m)
        assert sorted(self.c.items()) == sorted((k, int(e[0])) for k, e in self.m.items())


class IdleLruModel(TtlLruModel):
    TTL = None
    TTA = 3


class BothLruModel(TtlLruModel):
    TTL = 5
    TTA = 3


TestTtlLruModel = TtlLruModel.TestCase
TestIdleLruModel = IdleLruModel.TestCase
TestBothLruModel = BothLruModel.TestCase
for _case in (TestTtlLruModel, TestIdleLruModel, TestBothLruModel):
    _case.settings = settings(max_examples=25, stateful_step_count=40, deadline=None)


class TinyLfuInvariants(RuleBasedStateMachine):
    """policy='tinylfu': bound, consistency with the last write, exact accounting."""

    SIZE = 5

    def __init__(self) -> None:
        super().__init__()
        self.c: ConcurrentCache[int, int] = ConcurrentCache(self.SIZE, policy="tinylfu")
        self.last: dict[int, int] = {}  # last value written per key (maybe evicted since)
        self.gets = 0
        self.inserts = 0
        self.removed = 0

    @rule(k=st.integers(0, 12))
    def get(self, k: int) -> None:
        got = self.c.get(k)
        self.gets += 1
        if got is not None:
            assert got == self.last[k]

    @rule(k=st.integers(0, 12), v=st.integers(0, 100))
    def put(self, k: int, v: int) -> None:
        if k not in self.c:
            self.inserts += 1
        self.c.put(k, v)
        self.last[k] = v
        assert self.c.get(k) == v  # a write is visible at once
        self.gets += 1

    @rule(k=st.integers(0, 12))
    def invalidate(self, k: int) -> None:
        present = k in self.c
        assert self.c.invalidate(k) == present
        self.removed += present
        assert k not in self.c

    @invariant()
    def bounded_and_consistent(self) -> None:
        pol = self.c._policy
        assert isinstance(pol, WTinyLfuPolicy)
        assert len(self.c) <= self.SIZE
        assert sorted(pol.keys()) == sorted(self.c.keys())
        window, probation, protected = pol.regions()
        assert len(window) <= pol.window_max
        assert len(protected) <= pol.protected_max
        assert len(set(window) | set(probation) | set(protected)) == len(self.c)
        s = self.c.stats()
        assert s.hits + s.misses == self.gets
        assert self.inserts == len(self.c) + s.evictions + self.removed


TestTinyLfuInvariants = TinyLfuInvariants.TestCase
TestTinyLfuInvariants.settings = settings(max_examples=30, stateful_step_count=50, deadline=None)


# ------------------------------------------------------------- W-TinyLFU


def test_tinylfu_resists_scans() -> None:
    c: ConcurrentCache[int, int] = ConcurrentCache(50, policy="tinylfu")
    hot = list(range(40))
    for _ in range(10):
        for k in hot:
            if c.get(k) is None:
                c.put(k, k)
    for k in range(1000, 1500):  # a one-off scan
        if c.get(k) is None:
            c.put(k, k)
    assert sum(1 for k in hot if k in c) >= 30  # LRU keeps none of them (below)
    lru: ConcurrentCache[int, int] = ConcurrentCache(50)
    for _ in range(10):
        for k in hot:
            lru.put(k, k)
    for k in range(1000, 1500):
        lru.put(k, k)
    assert sum(1 for k in hot if k in lru) == 0


def test_sketch_counts_and_ages() -> None:
    s = FrequencySketch(64)
    for _ in range(5):
        s.increment("a")
    s.increment("b")
    assert s.frequency("a") >= 5
    assert s.frequency("b") >= 1
    assert s.frequency("never") <= 1
    for _ in range(30):
        s.increment("a")
    assert s.frequency("a") == 15  # 4-bit counters saturate
    s.age()
    assert s.frequency("a") == 7
    for _ in range(8):
        s.increment("a")
    assert s.frequency("a") == 15
    # Aging happens by itself after sample_size counted increments.
    i = 0
    while True:
        before = s._size
        s.increment(i)
        i += 1
        if s._size < before:
            break
        assert i <= s.sample_size
    assert s.frequency("a") <= 7
    s.clear()
    assert s.frequency("a") == 0


def test_sketch_doorkeeper() -> None:
    s = FrequencySketch(64, doorkeeper=True)
    s.increment("x")
    assert s.frequency("x") == 1  # in the doorkeeper only
    s.increment("x")
    assert s.frequency("x") == 2


# ------------------------------------------------------------- @cached


def _conctools_engine(maxsize: int = 1024, *, typed: bool = False) -> Any:
    """cached() forced onto a ConcurrentCache (the engine used for ttl / tinylfu)."""
    return lambda f: _wrap(f, maxsize, None, "lru", typed, engine="conctools")


ENGINES = pytest.mark.parametrize("deco", [cached, _conctools_engine], ids=["auto", "conctools"])


@ENGINES
def test_cached_matches_lru_cache_key_rules(deco: Any) -> None:
    for typed in (False, True):
        log_a: list[Any] = []
        log_b: list[Any] = []

        @deco(maxsize=100, typed=typed)
        def a(x: Any, y: Any = 0, **kw: Any) -> Any:
            log_a.append((x, y, kw))
            return (x, y, kw)

        @functools.lru_cache(maxsize=100, typed=typed)
        def b(x: Any, y: Any = 0, **kw: Any) -> Any:
            log_b.append((x, y, kw))
            return (x, y, kw)

        calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
            ((1,), {}),
            ((1.0,), {}),
            ((1,), {"y": 2}),
            ((1, 2), {}),
            ((1,), {"y": 2, "z": 3}),
            ((1,), {"z": 3, "y": 2}),
            (("s",), {}),
            ((True,), {}),
            (((1, 2),), {}),
        ]
        for args, kw in calls * 2:
            assert a(*args, **kw) == b(*args, **kw)
        assert log_a == log_b
        ia, ib = a.cache_info(), b.cache_info()
        assert (ia.hits, ia.misses, ia.currsize) == (ib.hits, ib.misses, ib.currsize)


def test_cached_info_clear_wrapped_and_bare() -> None:
    @cached
    def f(x: int) -> int:
        """Doc."""
        return x * 2

    assert f(2) == 4
    assert f(2) == 4
    assert f.cache_info() == CacheInfo(hits=1, misses=1, maxsize=1024, currsize=1)
    f.cache_clear()
    assert f.cache_info() == CacheInfo(0, 0, 1024, 0)
    assert f(3) == 6
    assert f.cache_info() == CacheInfo(0, 1, 1024, 1)
    assert f.__wrapped__(5) == 10
    assert f.__name__ == "f"
    assert f.__doc__ == "Doc."
    assert f.cache_parameters() == {"maxsize": 1024, "typed": False, "ttl": None, "policy": "lru"}
    with pytest.raises(TypeError):
        f([1])  # unhashable argument, like lru_cache
    g = _conctools_engine(8)(lambda x: x)
    with pytest.raises(TypeError):
        g([1])
    with pytest.raises(ValueError):
        cached(ttl=-1)
    with pytest.raises(ValueError):
        cached(ttl=0)  # would cache nothing: a clear error instead
    with pytest.raises(TypeError):
        cached(maxsize="8")  # type: ignore[call-overload]
    with pytest.raises(ValueError):
        cached(maxsize=None, policy="tinylfu")  # needs a bound


@ENGINES
def test_cached_evicted_key_is_recomputed(deco: Any) -> None:
    # maxsize bounds what is kept: an evicted key is computed again (as in
    # lru_cache), and nothing answers from outside the bound.
    calls = []

    @deco(maxsize=2)
    def f(x: int) -> int:
        calls.append(x)
        return x

    assert [f(7), f(9), f(8), f(7)] == [7, 9, 8, 7]
    assert calls == [7, 9, 8, 7]
    info = f.cache_info()
    assert (info.hits, info.misses, info.currsize) == (0, 4, 2)
    f(7)
    assert calls == [7, 9, 8, 7]  # still cached
    f.cache_clear()
    f(7)
    assert calls == [7, 9, 8, 7, 7]  # cleared: computed again


@ENGINES
def test_cached_keeps_no_more_than_maxsize_results(deco: Any) -> None:
    import gc
    import weakref

    class Result:
        pass

    alive: list[weakref.ref[Result]] = []

    @deco(maxsize=1)
    def f(x: int) -> Result:
        r = Result()
        alive.append(weakref.ref(r))
        return r

    for i in range(100):
        f(i)
    gc.collect()
    assert sum(1 for r in alive if r() is not None) == 1


@ENGINES
def test_cached_recursive_same_arguments_raise(deco: Any) -> None:
    @deco(maxsize=8)
    def f(x: int) -> int:
        return f(x) if x > 0 else 0

    with pytest.raises(RuntimeError, match="recursive"):
        f(1)
    assert f(0) == 0


def test_cached_bounded_with_ttl_and_tinylfu() -> None:
    calls = []

    @cached(maxsize=2, policy="tinylfu", ttl=60)
    def f(x: int) -> int:
        calls.append(x)
        return x

    for x in (1, 2, 3, 1, 2, 3):
        f(x)
    assert f.cache_info().currsize <= 2
    assert f.cache_info().hits + f.cache_info().misses == 6


@ENGINES
def test_cached_on_methods(deco: Any) -> None:
    class A:
        def __init__(self, base: int) -> None:
            self.base = base
            self.calls = 0

        @deco(maxsize=10)
        def add(self, x: int) -> int:
            self.calls += 1
            return self.base + x

    a, b = A(10), A(20)
    assert a.add(1) == 11
    assert a.add(1) == 11
    assert b.add(1) == 21
    assert (a.calls, b.calls) == (1, 1)
    assert A.add.cache_info().hits == 1


@ENGINES
def test_cached_exception_not_cached(deco: Any) -> None:
    n = [0]

    @deco(maxsize=4)
    def f(x: int) -> int:
        n[0] += 1
        if n[0] == 1:
            raise ValueError("first call fails")
        return x

    with pytest.raises(ValueError):
        f(1)
    assert f(1) == 1
    assert n[0] == 2
    assert f.cache_info().misses == 2


@ENGINES
def test_cached_waiters_raise_copies(deco: Any, switch_interval: None) -> None:
    calls = []

    @deco(maxsize=8)
    def compute(x: int) -> int:
        calls.append(x)
        time.sleep(0.05)
        raise _Coded("failed", code=x)

    errors = run_in_threads(lambda i: _catching(lambda: compute(3)), 4)
    assert calls == [3]
    check_loader_error_copies(errors, "compute")
    assert all(e.code == 3 for e in errors)
    assert compute.cache_info().currsize == 0


@ENGINES
def test_cached_single_flight_and_exact_info(deco: Any, switch_interval: None) -> None:
    calls = []

    @deco(maxsize=8)
    def slow(x: int) -> int:
        calls.append(x)
        time.sleep(0.05)
        return x * 3

    results = run_in_threads(lambda i: slow(7), 8)
    assert results == [21] * 8
    assert calls == [7]
    info = slow.cache_info()
    assert (info.hits, info.misses) == (7, 1)  # waiters count as hits


@ENGINES
def test_cached_info_exact_under_concurrency(deco: Any, switch_interval: None) -> None:
    @deco(maxsize=16)
    def f(x: int) -> int:
        return x

    n = stress_scale(ci=2000, full=20000)
    run_in_threads(lambda t: [f((i * 13 + t) % 40) for i in range(n)], 4)
    info = f.cache_info()
    assert info.hits + info.misses == 4 * n
    assert info.currsize <= 16
