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

from conctools.atomic import AtomicBool, AtomicFloat, AtomicInt, AtomicRef
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


# -- failure paths: no lock is taken outside the scope that releases it -----------


def _bare_acquires(path: str) -> list[int]:
    """Lines where ``<x>.acquire()`` is a statement of its own (the lock is then
    held before the ``try:`` that would release it)."""
    import ast

    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Attribute)
        and node.value.func.attr == "acquire"
    ]


@pytest.mark.parametrize("module", ["atomic", "counters", "_internal/perthread"])
def test_no_lock_taken_outside_the_scope_that_releases_it(module: str) -> None:
    import conctools

    root = conctools.__file__.rsplit("/", 1)[0]
    assert _bare_acquires(f"{root}/{module}.py") == []


def test_bare_acquire_check_can_fail(tmp_path: Any) -> None:
    p = tmp_path / "old.py"
    p.write_text(
        "def f(lock):\n    lock.acquire()\n    try:\n        pass\n"
        "    finally:\n        lock.release()\n"
    )
    assert _bare_acquires(str(p)) == [2]


# -- AtomicInt behaves like an int where it safely can ---------------------------


def test_atomic_int_conversions() -> None:
    import operator

    a = AtomicInt(5)
    assert int(a) == 5 and type(int(a)) is int
    assert operator.index(a) == 5
    assert list(range(a)) == [0, 1, 2, 3, 4]
    assert "abcdef"[a] == "f"
    assert bool(a) is True and bool(AtomicInt(0)) is False and bool(AtomicInt(-1)) is True
    assert float(a) == 5.0
    assert (
        format(a, "05d") == "00005"
        and f"{a:x}" == "5"
        and f"{a}" == "5"
        and str(a) == "AtomicInt(5)"
    )
    assert hex(a) == "0x5"


def test_atomic_int_comparisons() -> None:
    a = AtomicInt(5)
    assert a == 5 and a.__eq__(5) is True and int.__eq__(5, 5) and a != 6
    assert (5).__eq__(a) is NotImplemented and 5 == a  # noqa: SIM300 (reflected)
    assert a == AtomicInt(5) and a != AtomicInt(4)
    assert a == 5.0 and a < 5.5
    assert a < 6 and a <= 5 and a > 4 and a >= 5 and a > 4 and AtomicInt(1) < a
    assert sorted([AtomicInt(3), AtomicInt(1), AtomicInt(2)]) == [1, 2, 3]
    assert max(AtomicInt(3), 7) == 7
    assert (a == "5") is False and a != "5"
    with pytest.raises(TypeError):
        a < "5"  # noqa: B015
    with pytest.raises(TypeError):
        hash(a)
    assert AtomicInt.__hash__ is None


def test_atomic_int_arithmetic_returns_plain_values() -> None:
    a = AtomicInt(7)
    assert a + 1 == 8 and type(a + 1) is int and 1 + a == 8
    assert a - 2 == 5 and 10 - a == 3 and a * 2 == 14 and 2 * a == 14
    assert a // 2 == 3 and 15 // a == 2 and a % 4 == 3 and 15 % a == 1
    assert a / 2 == 3.5 and a**2 == 49 and 2**a == 128
    assert a & 3 == 3 and 3 & a == 3 and a | 8 == 15 and a ^ 1 == 6 and 1 ^ a == 6
    assert a << 1 == 14 and a >> 1 == 3 and 1 << AtomicInt(3) == 8
    assert -a == -7 and +a == 7 and abs(AtomicInt(-3)) == 3 and ~a == -8
    assert a + AtomicInt(1) == 8 and a + 0.5 == 7.5
    assert a.get() == 7  # nothing changed
    with pytest.raises(TypeError):
        a + "1"
    with pytest.raises(TypeError):
        a & 1.5


def test_atomic_int_inplace_operators_update_the_atomic() -> None:
    a = AtomicInt(6)
    ref = a
    a += 4
    assert a is ref and a.get() == 10
    a -= 1
    a *= 3
    assert a.get() == 27
    a //= 4
    assert a.get() == 6
    a %= 4
    assert a.get() == 2
    a |= 5
    assert a.get() == 7
    a &= 6
    assert a.get() == 6
    a ^= 3
    assert a.get() == 5
    a <<= 2
    assert a.get() == 20
    a >>= 1
    assert a.get() == 10
    a += AtomicInt(5)
    assert a is ref and a.get() == 15 and type(a.get()) is int
    a += Color.RED
    assert a.get() == 18 and type(a.get()) is int
    a **= 2
    assert a is ref and a.get() == 324
    with pytest.raises(TypeError):
        a /= 2
    with pytest.raises(ValueError):
        a **= -1
    assert a is ref and a.get() == 324


@pytest.mark.parametrize("bad", [1.5, "1", None, True, Fraction(1)], ids=repr)
def test_atomic_int_inplace_bad_operand_changes_nothing(bad: Any) -> None:
    a = AtomicInt(8)
    for op in (
        "__iadd__",
        "__isub__",
        "__imul__",
        "__ifloordiv__",
        "__ior__",
        "__iand__",
        "__ixor__",
    ):
        with pytest.raises(TypeError):
            getattr(a, op)(bad)
        assert a.get() == 8
    with pytest.raises(ZeroDivisionError):
        a //= 0
    with pytest.raises(ZeroDivisionError):
        a %= 0
    with pytest.raises(ValueError):
        a <<= -1
    assert a.get() == 8


@pytest.mark.usefixtures("switch_interval")
def test_inplace_add_is_atomic_under_contention() -> None:
    a = AtomicInt()
    n = stress_scale(ci=5_000, full=50_000)

    def work(i: int) -> None:
        nonlocal a
        for _ in range(n):
            a += 1  # rebinds the name to the same atomic

    holder = a
    run_in_threads(work, 4)
    assert holder.get() == 4 * n and a is holder


# -- copy, pickle, subclass -----------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [lambda: AtomicInt(5), lambda: AtomicBool(True), lambda: AtomicFloat(2.5)],
    ids=["AtomicInt", "AtomicBool", "AtomicFloat"],
)
def test_copies_and_pickles_are_new_independent_atomics(make: Any) -> None:
    import copy
    import pickle

    a = make()
    for dup in [copy.copy(a), copy.deepcopy(a)] + [
        pickle.loads(pickle.dumps(a, proto)) for proto in range(pickle.HIGHEST_PROTOCOL + 1)
    ]:
        assert type(dup) is type(a) and dup is not a
        assert dup.get() == a.get()
        assert getattr(dup, "_lock", None) is not getattr(a, "_lock", 1)
        dup.set(type(a.get())(0))
        assert a.get() == make().get()


def test_atomic_ref_copy_deepcopy_pickle() -> None:
    import copy
    import pickle

    payload = [1, [2]]
    r = AtomicRef(payload)
    c = copy.copy(r)
    assert c is not r and c.get() is payload
    d = copy.deepcopy(r)
    assert d.get() == payload and d.get() is not payload and d.get()[1] is not payload[1]
    p = pickle.loads(pickle.dumps(r))
    assert p.get() == payload
    c.set(None)
    assert r.get() is payload


class Tagged(AtomicInt):
    def __init__(self, value: int = 0) -> None:
        super().__init__(value)
        self.tag = "t"


def test_subclasses_work_and_keep_their_attributes() -> None:
    import copy
    import pickle

    t = Tagged(3)
    t += 1
    assert t.get() == 4 and repr(t) == "Tagged(4)"
    for dup in (copy.copy(t), copy.deepcopy(t), pickle.loads(pickle.dumps(t))):
        assert type(dup) is Tagged and dup.get() == 4 and dup.tag == "t"

    class Named(AtomicRef[str]):
        pass

    n = Named("x")
    assert copy.copy(n).get() == "x" and type(copy.copy(n)) is Named


# -- AtomicBool ----------------------------------------------------------------------


def test_atomic_bool_basics() -> None:
    b = AtomicBool()
    assert b.get() is False and bool(b) is False and AtomicBool(True).get() is True
    b.set(True)
    assert b.get() is True
    assert b.get_and_set(False) is True and b.get() is False
    assert b.compare_and_set(True, False) is False
    assert b.compare_and_set(False, True) is True and b.get() is True
    assert b.toggle() is False and b.get() is False
    assert b.toggle() is True
    assert b == True and b == AtomicBool(True) and b != False  # noqa: E712
    assert (b == 1) is False  # an int is not a bool here
    assert repr(b) == "AtomicBool(True)"
    with pytest.raises(TypeError):
        hash(b)


@pytest.mark.parametrize("bad", [0, 1, None, "", 1.0], ids=repr)
def test_atomic_bool_bad_input(bad: Any) -> None:
    with pytest.raises(TypeError):
        AtomicBool(bad)
    b = AtomicBool(True)
    for call in (
        lambda: b.set(bad),
        lambda: b.get_and_set(bad),
        lambda: b.compare_and_set(bad, False),
        lambda: b.compare_and_set(True, bad),
    ):
        with pytest.raises(TypeError):
            call()
        assert b.get() is True


@pytest.mark.usefixtures("switch_interval")
def test_atomic_bool_one_winner() -> None:
    for _ in range(stress_scale(ci=30, full=300)):
        flag = AtomicBool()
        wins = run_in_threads(lambda i: flag.compare_and_set(False, True), 4)
        assert wins.count(True) == 1


@pytest.mark.usefixtures("switch_interval")
def test_atomic_bool_toggles_are_not_lost() -> None:
    b = AtomicBool()
    n = stress_scale(ci=5_001, full=50_001)

    def work(i: int) -> None:
        for _ in range(n):
            b.toggle()

    run_in_threads(work, 3)
    assert b.get() is bool((3 * n) % 2)


# -- AtomicFloat ----------------------------------------------------------------------


def test_atomic_float_basics() -> None:
    x = AtomicFloat()
    assert x.get() == 0.0 and type(x.get()) is float
    assert x.add(1.5) == 1.5 and x.add(2) == 3.5 and type(x.get()) is float
    assert x.get_and_add(0.5) == 3.5 and x.get() == 4.0
    assert x.get_and_set(1) == 4.0 and x.get() == 1.0
    x.set(2)
    assert float(x) == 2.0 and format(x, ".1f") == "2.0" and repr(x) == "AtomicFloat(2.0)"
    assert x.update(lambda v: v * 3) == 6.0
    assert AtomicFloat(Color.RED).get() == 3.0


def test_atomic_float_cas_is_bit_for_bit() -> None:
    nan = float("nan")
    x = AtomicFloat(0.0)
    assert x.compare_and_set(-0.0, 1.0) is False  # -0.0 is not 0.0
    assert x.compare_and_set(0.0, -0.0) is True
    assert x.compare_and_set(0.0, 1.0) is False
    assert x.compare_and_set(-0.0, nan) is True
    assert x.compare_and_set(nan, 2.0) is True  # nan matches nan
    assert x.get() == 2.0
    # update terminates on nan (an equality-based retry would loop forever)
    x.set(nan)
    assert x.update(lambda v: 5.0) == 5.0


@pytest.mark.parametrize("bad", ["1", None, True, Fraction(1, 3), 1j], ids=repr)
def test_atomic_float_bad_input(bad: Any) -> None:
    with pytest.raises(TypeError):
        AtomicFloat(bad)
    x = AtomicFloat(1.0)
    for call in (
        lambda: x.set(bad),
        lambda: x.add(bad),
        lambda: x.get_and_add(bad),
        lambda: x.get_and_set(bad),
        lambda: x.compare_and_set(bad, 1.0),
        lambda: x.compare_and_set(1.0, bad),
        lambda: x.update(lambda v: bad),
    ):
        with pytest.raises(TypeError):
            call()
        assert x.get() == 1.0


@pytest.mark.usefixtures("switch_interval")
def test_atomic_float_add_loses_nothing() -> None:
    x = AtomicFloat()
    n = stress_scale(ci=10_000, full=100_000)

    def work(i: int) -> None:
        add = x.add
        for _ in range(n):
            add(0.5)  # exact in binary: any order gives the same total

    run_in_threads(work, 4)
    assert x.get() == 0.5 * 4 * n


# -- linearizability of the new operations ---------------------------------------------


class InplaceInt(AtomicInt):
    """Named wrappers so that scenarios can call the in-place operators."""

    def iadd(self, d: int) -> int:
        x = self
        x += d
        assert x is self
        return 0

    def imul(self, d: int) -> int:
        x = self
        x *= d
        return 0

    def ixor(self, d: int) -> int:
        x = self
        x ^= d
        return 0

    def ifloordiv(self, d: int) -> int:
        x = self
        x //= d
        return 0

    def read_int(self) -> int:
        return int(self)


class InplaceSpec(AtomicIntSpec):
    def iadd(self, d: int) -> int:
        self.value += d
        return 0

    def imul(self, d: int) -> int:
        self.value *= d
        return 0

    def ixor(self, d: int) -> int:
        self.value ^= d
        return 0

    def ifloordiv(self, d: int) -> int:
        self.value //= d
        return 0

    def read_int(self) -> int:
        return self.value


INPLACE_VOCAB = {
    "get": st.just(()),
    "read_int": st.just(()),
    "iadd": st.tuples(small),
    "imul": st.tuples(st.integers(-2, 3)),
    "ixor": st.tuples(st.integers(0, 3)),
    "ifloordiv": st.tuples(st.sampled_from([1, 2, -3])),
    "compare_and_set": st.tuples(small, small),
}


@pytest.mark.timeout(60)
@given(scenarios(INPLACE_VOCAB))
def test_atomic_int_inplace_linearizable(scenario: Scenario) -> None:
    assert_linearizable(scenario, InplaceInt, InplaceSpec, trials=3)


class BoolSpec:
    def __init__(self) -> None:
        self.value = False

    def get(self) -> bool:
        return self.value

    def set(self, v: bool) -> None:
        self.value = v

    def get_and_set(self, v: bool) -> bool:
        old, self.value = self.value, v
        return old

    def compare_and_set(self, e: bool, n: bool) -> bool:
        if self.value is not e:
            return False
        self.value = n
        return True

    def toggle(self) -> bool:
        self.value = not self.value
        return self.value


bools = st.booleans()
BOOL_VOCAB = {
    "get": st.just(()),
    "set": st.tuples(bools),
    "get_and_set": st.tuples(bools),
    "compare_and_set": st.tuples(bools, bools),
    "toggle": st.just(()),
}


@pytest.mark.timeout(60)
@given(scenarios(BOOL_VOCAB))
def test_atomic_bool_linearizable(scenario: Scenario) -> None:
    assert_linearizable(scenario, AtomicBool, BoolSpec, trials=3)


class FloatSpec:
    def __init__(self) -> None:
        self.value = 0.0

    def get(self) -> float:
        return self.value

    def set(self, v: float) -> None:
        self.value = float(v)

    def add(self, d: float) -> float:
        self.value += d
        return self.value

    def get_and_add(self, d: float) -> float:
        old = self.value
        self.value += d
        return old

    def get_and_set(self, v: float) -> float:
        old, self.value = self.value, float(v)
        return old

    def compare_and_set(self, e: float, n: float) -> bool:
        if self.value != e:  # the vocabulary has no -0.0 or nan
            return False
        self.value = float(n)
        return True

    def update(self, fn: Any) -> float:
        self.value = float(fn(self.value))
        return self.value


def halve(v: float) -> float:
    return v / 2


halves = st.sampled_from([0.5, 1.0, -1.5, 2.0])
FLOAT_VOCAB = {
    "get": st.just(()),
    "set": st.tuples(halves),
    "add": st.tuples(halves),
    "get_and_add": st.tuples(halves),
    "get_and_set": st.tuples(halves),
    "compare_and_set": st.tuples(halves, halves),
    "update": st.tuples(st.sampled_from([halve])),
}


@pytest.mark.timeout(60)
@given(scenarios(FLOAT_VOCAB))
def test_atomic_float_linearizable(scenario: Scenario) -> None:
    assert_linearizable(scenario, AtomicFloat, FloatSpec, trials=3)
