"""Tests for conctools.atomic: AtomicInt, AtomicRef."""

from __future__ import annotations

import enum
import threading
import time
from fractions import Fraction
from typing import Any

import pytest
from conftest import stress_scale
from hypothesis import given
from hypothesis import strategies as st

from conctools.atomic import AtomicInt, AtomicRef
from conctools.testing import Call, Scenario, assert_linearizable, run_in_threads
from conctools.testing.strategies import scenarios

# -- AtomicInt: sequential semantics -------------------------------------------


def test_atomic_int_basics() -> None:
    a = AtomicInt()
    assert a.get() == 0
    assert a.increment() == 1
    assert a.increment(4) == 5
    assert a.decrement() == 4
    assert a.decrement(2) == 2
    assert a.add_and_get(10) == 12
    assert a.get_and_add(3) == 12
    assert a.get() == 15
    assert a.get_and_set(7) == 15
    a.set(-3)
    assert a.get() == -3
    assert a.compare_and_set(-3, 9) is True
    assert a.compare_and_set(-3, 10) is False
    assert a.get() == 9
    assert a.update(lambda v: v * 2) == 18
    assert int(a) == 18
    assert repr(a) == "AtomicInt(18)"
    assert AtomicInt(5).get() == 5


def test_atomic_int_unbounded() -> None:
    a = AtomicInt(2**63 - 1)
    assert a.increment() == 2**63
    assert a.add_and_get(-(2**64)) == 2**63 - 2**64


class Color(enum.IntEnum):
    RED = 3


def test_atomic_int_accepts_int_subclasses_as_plain_int() -> None:
    a = AtomicInt(Color.RED)
    assert type(a.get()) is int
    assert a.increment(Color.RED) == 6
    assert type(a.get()) is int


BAD_INTS = [1.0, "1", None, True, False, Fraction(1), 1j]


@pytest.mark.parametrize("bad", BAD_INTS, ids=repr)
def test_atomic_int_bad_input(bad: Any) -> None:
    with pytest.raises(TypeError):
        AtomicInt(bad)
    a = AtomicInt(5)
    calls = [
        lambda: a.set(bad),
        lambda: a.increment(bad),
        lambda: a.decrement(bad),
        lambda: a.add_and_get(bad),
        lambda: a.get_and_add(bad),
        lambda: a.get_and_set(bad),
        lambda: a.compare_and_set(bad, 1),
        lambda: a.compare_and_set(5, bad),
        lambda: a.update(lambda v: bad),
    ]
    for call in calls:
        with pytest.raises(TypeError):
            call()
        assert a.get() == 5
        assert type(a.get()) is int


def test_update_fn_raising_changes_nothing() -> None:
    a = AtomicInt(5)

    def boom(v: int) -> int:
        raise ValueError("no")

    with pytest.raises(ValueError):
        a.update(boom)
    assert a.get() == 5


def test_update_retries_and_runs_fn_outside_the_lock() -> None:
    """fn may run more than once; it runs without the lock (it may use the atomic)."""
    a = AtomicInt(1)
    seen: list[int] = []

    def fn(v: int) -> int:
        seen.append(v)
        if len(seen) == 1:
            a.set(100)  # would deadlock if fn ran under the lock
        return v + 1

    assert a.update(fn) == 101
    assert seen == [1, 100]
    assert a.get() == 101


def test_atomic_ref_update_retries_and_runs_fn_outside_the_lock() -> None:
    r: AtomicRef[str] = AtomicRef("a")
    calls: list[str] = []

    def fn(v: str) -> str:
        calls.append(v)
        if len(calls) == 1:
            r.set("b")
        return v + "!"

    assert r.update(fn) == "b!"
    assert calls == ["a", "b"]


# -- AtomicRef: sequential semantics -------------------------------------------


def test_atomic_ref_basics() -> None:
    r: AtomicRef[object] = AtomicRef()
    assert r.get() is None
    x, y = object(), object()
    r.set(x)
    assert r.get() is x
    assert r.get_and_set(y) is x
    assert r.compare_and_set(x, x) is False
    assert r.compare_and_set(y, x) is True
    assert r.get() is x
    assert r.update(lambda v: (v,)) == (x,)
    assert repr(AtomicRef(3)) == "AtomicRef(3)"


def test_atomic_ref_cas_is_by_identity_and_never_calls_eq() -> None:
    class NoEq:
        def __eq__(self, other: object) -> bool:
            raise AssertionError("__eq__ must not be called")

        __hash__ = object.__hash__

    a, b = NoEq(), NoEq()
    r = AtomicRef(a)
    assert r.compare_and_set(b, b) is False
    assert r.compare_and_set(a, b) is True
    # Equal but distinct objects do not match.
    s1 = "".join(["ab", "c" * 50])
    s2 = "".join(["abc", "c" * 49])
    assert s1 == s2 and s1 is not s2
    r2 = AtomicRef(s1)
    assert r2.compare_and_set(s2, "x") is False
    assert r2.compare_and_set(s1, "x") is True


# -- exact totals under contention ---------------------------------------------


class LostUpdateInt:
    """Deliberately broken: read-modify-write without the lock."""

    def __init__(self) -> None:
        self._value = 0

    def increment(self, delta: int = 1) -> int:
        v = self._value
        time.sleep(0.0001)  # a real pause widens the race window on every build
        self._value = v + delta
        return v + delta

    def get(self) -> int:
        return self._value


def _hammer_increment(obj: Any, threads: int, per_thread: int) -> int:
    def work(i: int) -> None:
        inc = obj.increment
        for _ in range(per_thread):
            inc()

    run_in_threads(work, threads)
    return int(obj.get())


@pytest.mark.usefixtures("switch_interval")
def test_atomic_int_exact_total() -> None:
    n = stress_scale(ci=20_000, full=200_000)
    assert _hammer_increment(AtomicInt(), 4, n) == 4 * n


@pytest.mark.usefixtures("switch_interval")
def test_exact_total_check_can_fail() -> None:
    assert _hammer_increment(LostUpdateInt(), 4, 300) < 4 * 300


@pytest.mark.usefixtures("switch_interval")
def test_caller_cas_loop_exact_total() -> None:
    a = AtomicInt()
    n = stress_scale(ci=3_000, full=30_000)
    retries = [0]

    def work(i: int) -> None:
        for _ in range(n):
            while True:
                v = a.get()
                if a.compare_and_set(v, v + 1):
                    break
                retries[0] += 1

    run_in_threads(work, 4)
    assert a.get() == 4 * n


@pytest.mark.usefixtures("switch_interval")
def test_update_and_mixed_ops_exact_total() -> None:
    a = AtomicInt()
    r: AtomicRef[tuple[int, ...]] = AtomicRef(())
    n = stress_scale(ci=2_000, full=20_000)

    def work(i: int) -> None:
        for j in range(n):
            k = j % 4
            if k == 0:
                a.update(lambda v: v + 1)
            elif k == 1:
                a.get_and_add(1)
            elif k == 2:
                a.add_and_get(2)
                a.decrement()
            else:
                a.increment()
        for j in range(50):
            r.update(lambda t, i=i, j=j: (*t, (i, j)))

    run_in_threads(work, 4)
    assert a.get() == 4 * n
    assert sorted(r.get()) == sorted((i, j) for i in range(4) for j in range(50))


# -- linearizability -------------------------------------------------------------


def add3(v: int) -> int:
    return v + 3


def double(v: int) -> int:
    return v * 2


class AtomicIntSpec:
    """Sequential reference for AtomicInt."""

    def __init__(self) -> None:
        self.value = 0

    def get(self) -> int:
        return self.value

    def set(self, v: int) -> None:
        self.value = v

    def increment(self, d: int = 1) -> int:
        self.value += d
        return self.value

    def decrement(self, d: int = 1) -> int:
        self.value -= d
        return self.value

    def add_and_get(self, d: int) -> int:
        self.value += d
        return self.value

    def get_and_add(self, d: int) -> int:
        old = self.value
        self.value += d
        return old

    def get_and_set(self, v: int) -> int:
        old = self.value
        self.value = v
        return old

    def compare_and_set(self, e: int, n: int) -> bool:
        if self.value != e:
            return False
        self.value = n
        return True

    def update(self, fn: Any) -> int:
        self.value = fn(self.value)
        return self.value


small = st.integers(-2, 3)
INT_VOCAB = {
    "get": st.just(()),
    "set": st.tuples(small),
    "increment": st.one_of(st.just(()), st.tuples(small)),
    "decrement": st.just(()),
    "add_and_get": st.tuples(small),
    "get_and_add": st.tuples(small),
    "get_and_set": st.tuples(small),
    "compare_and_set": st.tuples(small, small),
    "update": st.tuples(st.sampled_from([add3, double])),
}


@pytest.mark.timeout(60)
@given(scenarios(INT_VOCAB))
def test_atomic_int_linearizable(scenario: Scenario) -> None:
    assert_linearizable(scenario, AtomicInt, AtomicIntSpec, trials=3)


class AtomicRefSpec:
    def __init__(self) -> None:
        self.value: Any = None

    def get(self) -> Any:
        return self.value

    def set(self, v: Any) -> None:
        self.value = v

    def get_and_set(self, v: Any) -> Any:
        old = self.value
        self.value = v
        return old

    def compare_and_set(self, e: Any, n: Any) -> bool:
        if self.value is not e:
            return False
        self.value = n
        return True

    def update(self, fn: Any) -> Any:
        self.value = fn(self.value)
        return self.value


def wrap(v: Any) -> tuple[Any]:
    return (v,)


def first_or_none(v: Any) -> Any:
    return v[0] if isinstance(v, tuple) else None


refs = st.sampled_from([None, 0, 1, "a"])
REF_VOCAB = {
    "get": st.just(()),
    "set": st.tuples(refs),
    "get_and_set": st.tuples(refs),
    "compare_and_set": st.tuples(refs, refs),
    "update": st.tuples(st.sampled_from([wrap, first_or_none])),
}


@pytest.mark.timeout(60)
@given(scenarios(REF_VOCAB))
def test_atomic_ref_linearizable(scenario: Scenario) -> None:
    assert_linearizable(scenario, AtomicRef, AtomicRefSpec, trials=3)


class RacyGetAndAdd(AtomicInt):
    """Deliberately broken: get_and_add reads, yields, then writes."""

    def get_and_add(self, delta: int) -> int:
        old = self.get()
        time.sleep(0.0001)  # a real pause widens the race window on every build
        self.set(old + delta)
        return old


def test_linearizability_check_can_fail() -> None:
    scenario = Scenario(
        init=(),
        threads=tuple((Call("get_and_add", (1,)),) * 3 for _ in range(3)),
        post=(Call("get"),),
    )
    with pytest.raises(AssertionError):
        assert_linearizable(scenario, RacyGetAndAdd, AtomicIntSpec, trials=30)


def test_atomic_int_is_weakrefable_and_threads_see_set() -> None:
    import weakref

    a = AtomicInt()
    assert weakref.ref(a)() is a
    done = threading.Event()

    def reader(i: int) -> int:
        while a.get() != 42:
            if done.wait(0.0001):
                break
        return a.get()

    def writer() -> None:
        a.set(42)

    t = threading.Thread(target=writer)
    t.start()
    t.join()
    assert run_in_threads(reader, 2) == [42, 42]
