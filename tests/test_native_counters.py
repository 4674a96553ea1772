"""StripedCounter's two implementations held to the same semantics.

Each test runs against the pure-Python cores (``_PyStripedCellCore``,
``_PyStripedCounterCore``) and, when the C accelerator is built and active,
against the native cores (``conctools._native._StripedCellCore``,
``_StripedCounterCore``), like CPython's ``test_heapq`` does for
``heapq``/``_heapq``. The counter classes under test are built from each core
with the public classes' own methods, so only the cores differ.
"""

from __future__ import annotations

import contextlib
import enum
import gc
import sys
import threading
import tracemalloc
import weakref
from typing import Any

import pytest
from conftest import stress_scale

from conctools._internal import native
from conctools.counters import (
    StripedCounter,
    StripedCounterHandle,
    _PyStripedCellCore,
    _PyStripedCounterCore,
)
from conctools.testing import run_concurrently, run_in_threads

NATIVE_CELL = native.native_attr("_StripedCellCore")
NATIVE_COUNTER = native.native_attr("_StripedCounterCore")

needs_native = pytest.mark.skipif(NATIVE_CELL is None, reason="pure Python runs")


def _build(name: str, cell_core: type, counter_core: type) -> tuple[type, type]:
    handle_ns = {
        k: v
        for k, v in vars(StripedCounterHandle).items()
        if k not in ("__slots__", "__dict__", "__weakref__", "__doc__")
    }
    handle_ns["__slots__"] = ()
    handle = type(f"{name}Handle", (cell_core,), handle_ns)
    counter_ns = {
        k: v
        for k, v in vars(StripedCounter).items()
        if k not in ("__slots__", "__dict__", "__weakref__", "__doc__")
    }
    counter_ns["__slots__"] = ("__weakref__",)
    counter_ns["_cell_type"] = handle
    counter = type(f"{name}Counter", (counter_core,), counter_ns)
    return handle, counter


IMPLS = [pytest.param(_build("Pure", _PyStripedCellCore, _PyStripedCounterCore), id="pure")]
if NATIVE_CELL is not None:
    IMPLS.append(pytest.param(_build("Native", NATIVE_CELL, NATIVE_COUNTER), id="native"))


@pytest.fixture(params=IMPLS)
def impl(request: pytest.FixtureRequest) -> tuple[type, type]:
    return request.param  # type: ignore[no-any-return]


class Color(enum.IntEnum):
    RED = 3


class WeirdInt(int):
    """An int subclass whose int() is not its value: the pure code uses int()."""

    def __int__(self) -> int:
        return 7


I64_MAX = 2**63 - 1
I64_MIN = -(2**63)


# -- which implementation runs ---------------------------------------------------------


@needs_native
def test_native_cores_are_the_public_bases() -> None:
    """When the accelerator is active, the public classes (which every other
    test module, the fault-injection and linearizability tests use) sit on the
    native cores."""
    assert native.ACTIVE == "native"
    assert StripedCounterHandle.__bases__ == (NATIVE_CELL,)
    assert StripedCounter.__bases__ == (NATIVE_COUNTER,)
    c = StripedCounter()
    assert type(c.handle()).__mro__[1] is NATIVE_CELL


def test_pure_run_uses_the_pure_cores() -> None:
    if native.ACTIVE != "pure-python":
        pytest.skip("native runs")
    assert StripedCounterHandle.__bases__ == (_PyStripedCellCore,)
    assert StripedCounter.__bases__ == (_PyStripedCounterCore,)


# -- arithmetic: big deltas, overflow of the int64 cell ---------------------------------

DELTAS = [
    1,
    -1,
    I64_MAX,
    1,
    I64_MIN,
    I64_MIN,
    -1,
    2**70,
    -(2**70),
    I64_MAX,
    I64_MAX,
    3,
    Color.RED,
    -(2**64),
    2**200,
    -(2**200),
    0,
]


@pytest.mark.parametrize("how", ["handle", "plain"])
def test_big_deltas_and_int64_overflow_are_exact(impl: tuple[type, type], how: str) -> None:
    _, counter = impl
    c = counter()
    target = c.handle() if how == "handle" else c
    expected = 0
    for i, d in enumerate(DELTAS):
        op = ("increment", "add", "decrement")[i % 3]
        getattr(target, op)(d)
        expected += -int(d) if op == "decrement" else int(d)
        assert c.value() == expected, (i, op, d)
        assert type(c.value()) is int
    # the exact INT64_MIN negation corner, both ways
    for op, d in (("decrement", I64_MIN), ("increment", I64_MIN), ("decrement", -I64_MIN)):
        getattr(target, op)(d)
        expected += -d if op == "decrement" else d
        assert c.value() == expected
    assert c.sum_then_reset() == expected
    assert c.value() == 0
    c.increment()
    assert c.value() == 1


def test_int_subclass_deltas_are_converted_with_int(impl: tuple[type, type]) -> None:
    _, counter = impl
    c = counter()
    h = c.handle()
    c.increment(WeirdInt(100))  # int() of it is 7, as in the pure code
    h.add(WeirdInt(100))
    h.decrement(Color.RED)
    assert c.value() == 7 + 7 - 3


def test_keyword_delta(impl: tuple[type, type]) -> None:
    _, counter = impl
    c = counter()
    h = c.handle()
    c.increment(delta=2)
    c.add(delta=3)
    c.decrement(delta=1)
    h.increment(delta=20)
    h.add(delta=30)
    h.decrement(delta=10)
    assert c.value() == 44


def test_initial_value_and_reinit(impl: tuple[type, type]) -> None:
    _, counter = impl
    c = counter(2**80)
    c.increment()
    assert c.value() == 2**80 + 1
    c.__init__(5)
    assert c.value() == 5
    c.increment()
    assert c.value() == 6
    with pytest.raises(TypeError, match="value must be an int, not float"):
        counter(1.0)


def test_cell_value_attribute(impl: tuple[type, type]) -> None:
    handle, counter = impl
    c = counter()
    h = c.handle()
    h._value = 2**65
    h.increment()
    assert h._value == 2**65 + 1 == c.value()
    h._value = -4
    assert c.value() == -4
    assert repr(h) == f"<{handle.__name__} contribution=-4>"
    alone = handle()
    alone.increment(2)
    assert alone._value == 2


# -- bad input: same exceptions and messages ----------------------------------------------

BAD = [1.5, "1", None, True, False, 2j, b"1", [1]]


def _error(call: Any, *args: Any, **kwargs: Any) -> tuple[type[BaseException], str]:
    try:
        call(*args, **kwargs)
    except BaseException as exc:
        return type(exc), str(exc)
    raise AssertionError("no exception")


@pytest.mark.parametrize("bad", BAD, ids=repr)
def test_bad_delta_same_exception_and_message(bad: Any) -> None:
    results = []
    for param in IMPLS:
        _, counter = param.values[0]
        c = counter()
        c.add(7)
        h = c.handle()
        errs = [
            _error(getattr(obj, op), bad)
            for obj in (c, h)
            for op in ("increment", "add", "decrement")
        ]
        errs.append(_error(c.increment, delta=bad))
        assert c.value() == 7  # nothing changed
        results.append(errs)
    for errs in results:
        for exc_type, msg in errs:
            assert exc_type is TypeError
            assert msg == f"delta must be an int, not {type(bad).__name__}"
    assert all(r == results[0] for r in results)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((1, 2), {}), ((), {"other": 1}), ((1,), {"delta": 1}), ((), {"delta": 1, "x": 2})],
)
def test_bad_arguments_raise_type_error(
    impl: tuple[type, type], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    _, counter = impl
    c = counter()
    h = c.handle()
    for obj in (c, h):
        for op in ("increment", "add", "decrement"):
            with pytest.raises(TypeError):
                getattr(obj, op)(*args, **kwargs)
        with pytest.raises(TypeError):
            obj.add()  # delta is required
    assert c.value() == 0


def test_handle_cannot_be_instantiated_with_arguments(impl: tuple[type, type]) -> None:
    handle, _ = impl
    with pytest.raises(TypeError):
        handle(1)


# -- reference leaks ----------------------------------------------------------------------


def test_no_reference_leaks(impl: tuple[type, type]) -> None:
    _, counter = impl
    c = counter()
    h = c.handle()
    big = 2**70 + 12345
    neg = -(2**70) - 12345
    red = Color.RED
    bad = 1.5
    objs = (big, neg, red, bad, c, h)
    for _ in range(10):  # warm up: caches, registration
        c.add(big)
        h.add(neg)
    gc.collect()
    before = [sys.getrefcount(o) for o in objs]
    for _ in range(2000):
        c.add(big)
        c.decrement(big)
        h.add(neg)
        h.decrement(neg)
        c.increment(red)
        h.increment(red)
        c.increment()
        h.increment()
        for call in (c.add, h.add):
            with contextlib.suppress(TypeError):
                call(bad)
        del call
        c.value()
        h._value  # noqa: B018
    gc.collect()
    after = [sys.getrefcount(o) for o in objs]
    assert after == before
    assert c.value() == 10 * (big + neg) + 2000 * (3 + 3 + 1 + 1)


def test_no_memory_growth(impl: tuple[type, type]) -> None:
    _, counter = impl
    c = counter()
    h = c.handle()
    big = 2**70
    for _ in range(1000):
        c.add(big)
        h.add(big)
    gc.collect()
    tracemalloc.start()
    try:
        snap1 = tracemalloc.take_snapshot()
        for _ in range(20_000):
            c.add(big)
            h.add(-big)
            c.increment()
        gc.collect()
        snap2 = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    growth = sum(s.size_diff for s in snap2.compare_to(snap1, "filename"))
    assert growth < 20_000, growth


def _live_cells(handle: type) -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is handle)


def test_counters_die_and_cells_are_bounded(impl: tuple[type, type]) -> None:
    """Counter churn in one long-lived thread: each counter is freed by
    reference counting and at most a few cells of dead counters stay cached
    in that thread (none in pure Python)."""
    handle, counter = impl
    base = _live_cells(handle)

    def churn() -> None:
        refs = []
        for _ in range(200):
            c = counter()
            c.increment()
            c.increment(2**70)
            refs.append(weakref.ref(c))
            del c
        assert all(r() is None for r in refs)

    gc.disable()
    try:
        churn()
    finally:
        gc.enable()
    assert _live_cells(handle) - base <= 8


def test_thread_exit_releases_every_cell(impl: tuple[type, type]) -> None:
    """A thread that used several counters through the plain increment (and so
    filled the native per-thread cache) leaves no cell alive when it exits."""
    handle, counter = impl
    counters = [counter() for _ in range(12)]
    base = _live_cells(handle)

    def work(i: int) -> None:
        for c in counters:
            c.increment()
            c.increment(2**70)

    for _ in range(5):
        run_in_threads(work, 2)
    assert _live_cells(handle) == base
    for c in counters:
        assert c.value() == 10 * (1 + 2**70)
        assert len(c._per_thread) == 0


# -- exactness under clear, thread exit and draining ----------------------------------------


@pytest.mark.timeout(150)
@pytest.mark.usefixtures("switch_interval")
def test_exact_under_churn_drain_and_reset(impl: tuple[type, type]) -> None:
    """Many short-lived threads add through the plain call and their handles
    (small and big deltas) while another thread drains and resets: every
    delta is reported once by a drain, or discarded by a reset that drained
    it, or still in the counter; exited threads leave no cell registered."""
    _, counter = impl
    c = counter()
    stop = threading.Event()
    drained: list[int] = []
    reset_lost: list[int] = []
    batches = stress_scale(ci=6, full=40)
    per_batch, per_thread = 6, 150

    def adder(i: int) -> None:
        h = c.handle()
        for j in range(per_thread):
            if j % 3 == 0:
                c.increment()
            elif j % 3 == 1:
                h.increment()
            else:
                c.add(2**64)
                h.add(-(2**64))

    def adders() -> None:
        try:
            for _ in range(batches):
                run_in_threads(adder, per_batch)
        finally:
            stop.set()

    def drainer() -> None:
        k = 0
        while not stop.is_set():
            k += 1
            if k % 5 == 0:
                reset_lost.append(c.sum_then_reset())  # what reset() would discard
            else:
                drained.append(c.sum_then_reset())

    # a generous deadline: under sanitizers on a loaded machine the pure core's
    # drains (which share the registry lock with thread exits) get slow
    run_concurrently(adders, drainer, timeout=120)
    total = sum(drained) + sum(reset_lost) + c.value()
    assert total == batches * per_batch * (per_thread * 2 // 3)
    assert len(c._per_thread) == 0


@pytest.mark.timeout(60)
def test_teardown_increment_after_plain_use(impl: tuple[type, type]) -> None:
    """A thread counts through the plain call (the native cache holds its cell),
    then again from a ``__del__`` during its teardown, after its cell may
    have been folded: nothing is lost and no cell stays registered."""
    _, counter = impl
    c = counter()
    other = threading.local()

    class CountOnDel:
        def __del__(self) -> None:
            c.increment(2**70)
            c.increment()

    def work() -> None:
        other.first = CountOnDel()  # dropped before or after the cell's token
        c.increment()
        c.increment(2**70)
        other.obj = CountOnDel()

    for _ in range(100):
        t = threading.Thread(target=work)
        t.start()
        t.join()
    assert c.value() == 100 * (1 + 2**70) * 3
    assert len(c._per_thread) == 0


# -- a handle used from a foreign thread -------------------------------------------------


def test_handle_used_from_another_thread_sequentially_counts(impl: tuple[type, type]) -> None:
    """Documented: a handle is thread-confined; used from another thread while
    its owner is idle, its increments still land in the owner's cell."""
    _, counter = impl
    c = counter()
    h = c.handle()
    run_in_threads(lambda i: (h.increment(5), h.add(2**70), h.decrement(2)), 1)
    assert c.value() == 3 + 2**70


@pytest.mark.timeout(60)
def test_handle_shared_by_threads_races_but_stays_sound(impl: tuple[type, type]) -> None:
    """Documented: increments through one handle from two threads race and can
    be lost, but the counter stays a sound int (no crash, no corruption)."""
    _, counter = impl
    c = counter()
    h = c.handle()
    n = stress_scale(ci=20_000, full=200_000)

    def work(i: int) -> None:
        for j in range(n):
            h.add(2**62 if j % 2 else 1)

    run_in_threads(work, 2)
    v = c.value()
    assert type(v) is int
    assert 0 < v <= 2 * (n // 2) * (2**62 + 1)


def test_handle_kept_after_its_thread_exited(impl: tuple[type, type]) -> None:
    """The cell of an exited thread was folded: both cores agree that adds made
    through it afterwards are not counted (it belongs to no live thread)."""
    _, counter = impl
    c = counter()
    handles = run_in_threads(lambda i: (c.increment(3), c.handle())[1], 1)
    assert c.value() == 3
    handles[0].increment(100)
    assert c.value() == 3
    c.increment()
    assert c.value() == 4
