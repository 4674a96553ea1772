"""The atomics' two implementations: the C cores and the pure-Python reference.

Each test runs against both sets of public classes when the accelerator is
built (the pure set is ``conctools/atomic.py`` executed a second time with the
accelerator hidden, as ``CONCTOOLS_PURE_PYTHON=1`` would load it), so any
difference in values, exceptions or messages between them fails here. What
only C can get wrong (reference leaks, the 64-bit word and its exact-int
fallback, GC of cycles) is checked on both too.
"""

from __future__ import annotations

import enum
import gc
import importlib.util
import math
import sys
import weakref
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import conctools.atomic
from conctools._internal import native as native_sel
from conctools.testing import Scenario, assert_linearizable, run_in_threads
from conctools.testing.strategies import scenarios

MAX = 2**63 - 1
MIN = -(2**63)


def _load_pure() -> ModuleType:
    real = native_sel.native_attr
    native_sel.native_attr = lambda name: None  # type: ignore[assignment]
    try:
        spec = importlib.util.spec_from_file_location(
            "conctools._atomic_pure_for_tests", conctools.atomic.__file__
        )
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        native_sel.native_attr = real  # type: ignore[assignment]


NATIVE = native_sel.ACTIVE == "native"
PURE = _load_pure() if NATIVE else conctools.atomic
IMPLS = [pytest.param(PURE, id="pure")]
if NATIVE:
    IMPLS.append(pytest.param(conctools.atomic, id="native"))

needs_native = pytest.mark.skipif(not NATIVE, reason="the C accelerator is not active")


@pytest.fixture(params=IMPLS)
def m(request: Any) -> ModuleType:
    mod: ModuleType = request.param
    return mod


# -- the native cores are really in use --------------------------------------------


@needs_native
@pytest.mark.parametrize("name", ["AtomicInt", "AtomicBool", "AtomicFloat", "AtomicRef"])
def test_public_classes_derive_from_the_native_cores(name: str) -> None:
    from conctools import _native  # type: ignore[attr-defined]

    cls = getattr(conctools.atomic, name)
    core = getattr(_native, f"_{name}Core")
    assert cls.__mro__[1] is core
    assert getattr(PURE, name).__mro__[1] is getattr(PURE, f"_Py{name}Core")
    # the core methods carry the reference's docstrings
    for meth in ("get", "set", "get_and_set", "compare_and_set"):
        assert getattr(core, meth).__doc__ == getattr(PURE, f"_Py{name}Core").__dict__[meth].__doc__


def test_pure_selection_is_what_pure_python_mode_loads() -> None:
    assert PURE.AtomicInt.__mro__[1].__module__ in ("conctools.atomic", PURE.__name__)


# -- the 64-bit word and its exact-int fallback --------------------------------------

EDGES = [MAX - 1, MAX, MAX + 1, MIN - 1, MIN, MIN + 1, 0, 2**100, -(2**100)]
DELTAS = [1, -1, 2, MAX, MIN, 2**64, -(2**64), 0]


@pytest.mark.parametrize("start", EDGES)
@pytest.mark.parametrize("delta", DELTAS)
def test_arithmetic_across_the_int64_boundaries(m: ModuleType, start: int, delta: int) -> None:
    a = m.AtomicInt(start)
    assert a.get() == start
    assert a.increment(delta) == start + delta
    assert a.decrement(delta) == start
    assert a.get_and_add(delta) == start and a.get() == start + delta
    assert a.add_and_get(-delta) == start
    a += delta
    assert a.get() == start + delta
    a -= delta
    assert a.get() == start and type(a.get()) is int
    assert a.get_and_set(start + delta) == start
    assert a.compare_and_set(start + delta, start) and a.get() == start
    assert not a.compare_and_set(start + 1, delta) and a.get() == start


def test_default_increment_and_decrement_at_the_edges(m: ModuleType) -> None:
    a = m.AtomicInt(MAX)
    assert a.increment() == MAX + 1
    assert a.decrement() == MAX
    assert a.decrement() == MAX - 1
    b = m.AtomicInt(MIN + 1)
    assert b.decrement() == MIN
    assert b.decrement() == MIN - 1
    assert b.increment() == MIN
    assert b.increment() == MIN + 1


def test_compare_and_set_on_equal_but_not_identical_big_ints(m: ModuleType) -> None:
    big = 2**100
    a = m.AtomicInt(big)
    other = int(str(big))  # equal, another object
    assert other is not big
    assert a.compare_and_set(other, 5)
    assert a.get() == 5
    a.set(MIN)
    assert a.compare_and_set(int(str(MIN)), MAX + 1) and a.get() == MAX + 1
    assert not a.compare_and_set(MAX, 0)
    assert a.compare_and_set(MAX + 1, 7) and a.get() == 7


def test_in_place_operators_across_the_boundary(m: ModuleType) -> None:
    a = m.AtomicInt(2**62)
    a *= 4
    assert a.get() == 2**64
    a //= 8
    assert a.get() == 2**61
    a <<= 70
    assert a.get() == 2**131
    a >>= 129
    assert a.get() == 4
    a **= 40
    assert a.get() == 4**40
    a %= 2**63
    assert a.get() == 4**40 % 2**63
    a |= 2**64
    a &= 2**64 + 1
    a ^= 1
    assert a.get() == 2**64 + 1
    a -= m.AtomicInt(2)
    assert a.get() == 2**64 - 1
    a += m.AtomicInt(MAX)
    assert a.get() == 2**64 - 1 + MAX


def test_big_values_repr_format_float_and_pickle(m: ModuleType) -> None:
    import copy

    a = m.AtomicInt(-(2**70))
    assert repr(a) == f"AtomicInt({-(2**70)})"
    assert int(a) == -(2**70) and float(a) == float(-(2**70))
    assert copy.deepcopy(a).get() == -(2**70)  # pickling: tests/test_atomic.py
    assert a == -(2**70) and a < MIN


# -- input checks: same exceptions, same messages --------------------------------


class IntSub(int):
    pass


class Colour(enum.IntEnum):
    RED = 7


def _outcome(fn: Any) -> tuple[str, str, Any]:
    try:
        r = fn()
    except Exception as exc:
        return ("raise", type(exc).__name__, str(exc))
    return ("ok", type(r).__name__, r)


BAD_CALLS = [
    ("AtomicInt", lambda c: c(True), ()),
    ("AtomicInt", lambda c: c(1.0), ()),
    ("AtomicInt", lambda c: c("1"), ()),
    ("AtomicInt", lambda c: c(IntSub(5)).get(), ()),
    ("AtomicInt", lambda c: c(Colour.RED).get(), ()),
    ("AtomicInt", lambda c: c().set(False), ()),
    ("AtomicInt", lambda c: c().set(None), ()),
    ("AtomicInt", lambda c: c().increment(True), ()),
    ("AtomicInt", lambda c: c().increment(1.5), ()),
    ("AtomicInt", lambda c: c().increment(delta=2), ()),
    ("AtomicInt", lambda c: c().increment(IntSub(2)), ()),
    ("AtomicInt", lambda c: c().decrement(delta=False), ()),
    ("AtomicInt", lambda c: c().add_and_get(), ()),
    ("AtomicInt", lambda c: c().add_and_get(1, 2), ()),
    ("AtomicInt", lambda c: c().add_and_get(x=1), ()),
    ("AtomicInt", lambda c: c().get_and_add("x"), ()),
    ("AtomicInt", lambda c: c().get_and_set(2**80), ()),
    ("AtomicInt", lambda c: c().get_and_set(value=b"x"), ()),
    ("AtomicInt", lambda c: c().compare_and_set(True, 1), ()),
    ("AtomicInt", lambda c: c().compare_and_set(0, False), ()),
    ("AtomicInt", lambda c: c().compare_and_set(0), ()),
    ("AtomicInt", lambda c: c().compare_and_set(), ()),
    ("AtomicInt", lambda c: c().compare_and_set(0, new=3), ()),
    ("AtomicInt", lambda c: c().compare_and_set(0, 1, expected=0), ()),
    ("AtomicInt", lambda c: c().compare_and_set(expected=IntSub(0), new=Colour.RED), ()),
    ("AtomicInt", lambda c: c().update(lambda v: 1.0), ()),
    ("AtomicInt", lambda c: c().update(lambda v: True), ()),
    ("AtomicInt", lambda c: c().update(lambda v: IntSub(3)), ()),
    ("AtomicInt", lambda c: c(5).update(fn=lambda v: v * 2**70), ()),
    ("AtomicInt", lambda c: c(5).update(lambda v: 1 // v), ()),
    ("AtomicInt", lambda c: c(0).update(lambda v: 1 // v), ()),
    ("AtomicInt", lambda c: c().__iadd__(True), ()),
    ("AtomicInt", lambda c: c().__iadd__(1.0), ()),
    ("AtomicInt", lambda c: c().__isub__("x"), ()),
    ("AtomicInt", lambda c: c().__imul__(None), ()),
    ("AtomicInt", lambda c: c(3).__ipow__(-1), ()),
    ("AtomicInt", lambda c: c(3).__ipow__(True), ()),
    ("AtomicInt", lambda c: c(3).__ifloordiv__(0), ()),
    ("AtomicInt", lambda c: c(3).__imod__(0), ()),
    ("AtomicInt", lambda c: c(3).__ilshift__(-1), ()),
    ("AtomicInt", lambda c: c(3).__itruediv__(2), ()),
    ("AtomicBool", lambda c: c(1), ()),
    ("AtomicBool", lambda c: c(None), ()),
    ("AtomicBool", lambda c: c().set(0), ()),
    ("AtomicBool", lambda c: c().get_and_set("x"), ()),
    ("AtomicBool", lambda c: c().compare_and_set(0, True), ()),
    ("AtomicBool", lambda c: c().compare_and_set(False, 1), ()),
    ("AtomicBool", lambda c: c().compare_and_set(False), ()),
    ("AtomicBool", lambda c: c().compare_and_set(expected=False, new=True), ()),
    ("AtomicBool", lambda c: c().set(value=True), ()),
    ("AtomicBool", lambda c: c().toggle(), ()),
    ("AtomicFloat", lambda c: c(True), ()),
    ("AtomicFloat", lambda c: c("1.0"), ()),
    ("AtomicFloat", lambda c: c(10**400), ()),
    ("AtomicFloat", lambda c: c(IntSub(3)).get(), ()),
    ("AtomicFloat", lambda c: c().set(None), ()),
    ("AtomicFloat", lambda c: c().add(True), ()),
    ("AtomicFloat", lambda c: c().add(2**1100), ()),
    ("AtomicFloat", lambda c: c().add(delta=3), ()),
    ("AtomicFloat", lambda c: c().get_and_add(1j), ()),
    ("AtomicFloat", lambda c: c().get_and_set(False), ()),
    ("AtomicFloat", lambda c: c().compare_and_set(False, 1.0), ()),
    ("AtomicFloat", lambda c: c().compare_and_set(0.0, "1"), ()),
    ("AtomicFloat", lambda c: c().compare_and_set(0, 2), ()),
    ("AtomicFloat", lambda c: c().update(lambda v: "x"), ()),
    ("AtomicFloat", lambda c: c().update(lambda v: 3), ()),
    ("AtomicFloat", lambda c: c(1.0).update(lambda v: v / 0), ()),
    ("AtomicRef", lambda c: c().compare_and_set(None), ()),
    ("AtomicRef", lambda c: c().set(), ()),
    ("AtomicRef", lambda c: c().set(value=3, other=4), ()),
    ("AtomicRef", lambda c: c().update(lambda v: 1 // 0), ()),
    ("AtomicRef", lambda c: c().update(None), ()),
]


@needs_native
@pytest.mark.parametrize(("cls", "call", "_"), BAD_CALLS)
def test_same_outcome_and_message_on_both_implementations(cls: str, call: Any, _: Any) -> None:
    pure = _outcome(lambda: call(getattr(PURE, cls)))
    native = _outcome(lambda: call(getattr(conctools.atomic, cls)))
    if pure[0] == "ok" and pure[1] == cls:  # the atomic itself: compare its value
        pure = ("ok", cls, pure[2].get())
        native = ("ok", cls, native[2].get())
    assert native == pure


def test_failed_calls_change_nothing(m: ModuleType) -> None:
    a = m.AtomicInt(2**70)
    for bad in (True, 1.0, None, "1"):
        with pytest.raises(TypeError):
            a.set(bad)
        with pytest.raises(TypeError):
            a.increment(bad)
        with pytest.raises(TypeError):
            a.compare_and_set(2**70, bad)
    with pytest.raises(ZeroDivisionError):
        a //= 0
    with pytest.raises(ValueError):
        a **= -1
    assert a.get() == 2**70


def test_int_subclasses_are_stored_as_plain_ints(m: ModuleType) -> None:
    a = m.AtomicInt(IntSub(2**70))
    assert type(a.get()) is int
    a.set(Colour.RED)
    assert type(a.get()) is int and a.get() == 7
    assert a.increment(Colour.RED) == 14 and type(a.get()) is int
    assert a.compare_and_set(IntSub(14), IntSub(1)) and type(a.get()) is int


# -- AtomicFloat: bit-for-bit compare-and-set --------------------------------------


def test_float_compare_and_set_bit_for_bit(m: ModuleType) -> None:
    x = m.AtomicFloat(-0.0)
    assert not x.compare_and_set(0.0, 1.0)
    assert x.compare_and_set(-0.0, math.nan)
    assert math.isnan(x.get())
    assert x.compare_and_set(float("nan"), math.inf) and x.get() == math.inf
    assert x.compare_and_set(math.inf, 0) and type(x.get()) is float
    assert x.add(0.5) == 0.5 and x.get_and_add(-1) == 0.5 and x.get() == -0.5
    assert math.copysign(1.0, m.AtomicFloat(-0.0).get()) == -1.0


# -- AtomicRef: identity, strong references, GC ------------------------------------


class Touchy:
    """An object whose == must never be used."""

    def __eq__(self, other: object) -> bool:
        raise AssertionError("__eq__ called")

    __hash__ = object.__hash__


def test_atomic_ref_compares_by_identity_only(m: ModuleType) -> None:
    x, y = Touchy(), Touchy()
    r = m.AtomicRef(x)
    assert not r.compare_and_set(y, y)
    assert r.compare_and_set(x, y) and r.get() is y
    big = 2**100
    r.set(big)
    assert not r.compare_and_set(int(str(big)), 1)  # equal, not the same object
    assert r.compare_and_set(big, None) and r.get() is None
    assert r.update(lambda v: x) is x and r.get_and_set(y) is x


def test_atomic_ref_holds_strong_references_and_leaks_none(m: ModuleType) -> None:
    obj = Touchy()
    base = sys.getrefcount(obj)
    r = m.AtomicRef()
    for _ in range(1000):
        r.set(obj)
        r.get()
        r.get_and_set(obj)
        r.compare_and_set(obj, obj)
        r.compare_and_set(None, obj)
        r.update(lambda v: v)
    assert sys.getrefcount(obj) == base + 1
    r.set(None)
    assert sys.getrefcount(obj) == base
    w = weakref.ref(r)
    r.set(obj)
    del r
    assert w() is None and sys.getrefcount(obj) == base


def test_atomic_ref_cycles_are_collected(m: ModuleType) -> None:
    gc.collect()
    r = m.AtomicRef()
    r.set(r)  # self cycle
    lst: list[Any] = [r]
    r2 = m.AtomicRef(lst)
    lst.append(r2)  # cycle through a list
    w, w2 = weakref.ref(r), weakref.ref(r2)
    del r, r2, lst
    gc.collect()
    assert w() is None and w2() is None


def test_atomic_int_big_values_leak_nothing(m: ModuleType) -> None:
    big = 2**100
    base = sys.getrefcount(big)
    a = m.AtomicInt(0)
    for _ in range(500):
        a.set(big)
        a.get()
        a.compare_and_set(big, big)
        a.get_and_set(big)
        a.compare_and_set(big, 0)
        a.increment(big)
        a.update(lambda v: big)
    assert a.get() is big or a.get() == big
    a.set(0)
    assert sys.getrefcount(big) == base


def test_no_memory_growth_over_many_big_int_updates(m: ModuleType) -> None:
    import tracemalloc

    a = m.AtomicInt(MAX)
    for _ in range(200):  # warm up caches
        a.increment(2**70)
        a.decrement(2**70)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(20_000):
            a.increment(2**70)
            a.decrement(2**70)
            a.increment()
            a.decrement()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after - before < 10_000
    assert a.get() == MAX


def test_subclasses_may_add_attributes_and_are_collected(m: ModuleType) -> None:
    class Named(m.AtomicRef):  # type: ignore[name-defined,misc]
        pass

    n = Named(5)
    n.label = n  # a cycle through the instance dict
    w = weakref.ref(n)
    del n
    gc.collect()
    assert w() is None


# -- concurrency across the boundary ----------------------------------------------


def test_concurrent_increments_cross_the_int64_boundary_exactly(m: ModuleType) -> None:
    per = 2000
    a = m.AtomicInt(MAX - per)

    def work(i: int) -> None:
        for _ in range(per):
            if i % 2:
                a.increment()
            else:
                a.add_and_get(2**64)
                a.add_and_get(-(2**64))
                a.increment()

    run_in_threads(work, 4)
    assert a.get() == MAX + 3 * per


class BoundarySpec:
    """Sequential AtomicInt starting just below the 64-bit boundary."""

    def __init__(self) -> None:
        self.value = MAX - 1

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


near = st.sampled_from([MAX - 1, MAX, MAX + 1, MIN, MIN + 1, 2**64])
BOUNDARY_VOCAB = {
    "get": st.just(()),
    "set": st.tuples(near),
    "increment": st.one_of(st.just(()), st.tuples(st.sampled_from([1, 2, 2**63]))),
    "decrement": st.just(()),
    "get_and_add": st.tuples(st.sampled_from([-1, 1, MIN])),
    "get_and_set": st.tuples(near),
    "compare_and_set": st.tuples(near, near),
}


@pytest.mark.timeout(60)
@given(scenarios(BOUNDARY_VOCAB))
def test_linearizable_across_the_int64_boundary(scenario: Scenario) -> None:
    for mod in (PURE, conctools.atomic) if NATIVE else (PURE,):
        assert_linearizable(
            scenario, lambda mod=mod: mod.AtomicInt(MAX - 1), BoundarySpec, trials=2
        )
