"""The counters' two implementations held to the same semantics.

Each test runs against the pure-Python cores (``_PyStripedCellCore``,
``_PyStripedCounterCore``; ``_PyConcurrentShardCore``,
``_PyConcurrentCounterCore``) and, when the C accelerator is built and
active, against the native cores (``conctools._native._StripedCellCore``,
``_StripedCounterCore``, ``_ConcurrentShardCore``,
``_ConcurrentCounterCore``), like CPython's ``test_heapq`` does for
``heapq``/``_heapq``. The counter classes under test are built from each core
with the public classes' own methods, so only the cores differ.
"""

from __future__ import annotations

import _thread
import contextlib
import enum
import gc
import sys
import threading
import time
import tracemalloc
import weakref
from typing import Any

import pytest
from conftest import stress_scale

from conctools._internal import native
from conctools.counters import (
    ConcurrentCounter,
    ConcurrentCounterHandle,
    StripedCounter,
    StripedCounterHandle,
    _PyConcurrentCounterCore,
    _PyConcurrentShardCore,
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


# ==========================================================================================
# ConcurrentCounter: the keyed increments
# ==========================================================================================

NATIVE_SHARD = native.native_attr("_ConcurrentShardCore")
NATIVE_CCOUNTER = native.native_attr("_ConcurrentCounterCore")

needs_native_cc = pytest.mark.skipif(NATIVE_SHARD is None, reason="pure Python runs")


def _build_cc(name: str, shard_core: type, counter_core: type) -> tuple[type, type]:
    skip = ("__slots__", "__dict__", "__weakref__", "__doc__", "_write_lock")
    handle_ns = {k: v for k, v in vars(ConcurrentCounterHandle).items() if k not in skip}
    handle_ns["__slots__"] = ()
    handle = type(f"{name}Shard", (shard_core,), handle_ns)
    counter_ns = {k: v for k, v in vars(ConcurrentCounter).items() if k not in skip}
    counter_ns["__slots__"] = ("__weakref__", "_write_lock")
    counter_ns["_handle_type"] = handle
    counter = type(f"{name}ConcurrentCounter", (counter_core,), counter_ns)
    return handle, counter


CC_IMPLS = [
    pytest.param(_build_cc("Pure", _PyConcurrentShardCore, _PyConcurrentCounterCore), id="pure")
]
if NATIVE_SHARD is not None:
    CC_IMPLS.append(pytest.param(_build_cc("Native", NATIVE_SHARD, NATIVE_CCOUNTER), id="native"))


@pytest.fixture(params=CC_IMPLS)
def cc_impl(request: pytest.FixtureRequest) -> tuple[type, type]:
    return request.param  # type: ignore[no-any-return]


def _both_cc() -> list[tuple[type, type]]:
    return [p.values[0] for p in CC_IMPLS]  # type: ignore[misc]


@needs_native_cc
def test_cc_native_cores_are_the_public_bases() -> None:
    assert native.ACTIVE == "native"
    assert ConcurrentCounterHandle.__mro__[1] is NATIVE_SHARD
    assert ConcurrentCounter.__mro__[1] is NATIVE_CCOUNTER
    c: ConcurrentCounter[str] = ConcurrentCounter()
    assert isinstance(c.handle(), NATIVE_SHARD)
    assert isinstance(c._state.shared, NATIVE_SHARD)


def test_cc_pure_run_uses_the_pure_cores() -> None:
    if native.ACTIVE != "pure-python":
        pytest.skip("native runs")
    assert ConcurrentCounterHandle.__mro__[1] is _PyConcurrentShardCore
    assert ConcurrentCounter.__mro__[1] is _PyConcurrentCounterCore


# -- deltas: int subclasses, bool, big ints, non-ints --------------------------------------


@pytest.mark.parametrize("how", ["handle", "plain"])
def test_cc_int_subclass_and_big_deltas(cc_impl: tuple[type, type], how: str) -> None:
    _, counter = cc_impl
    c = counter()
    target = c.handle() if how == "handle" else c
    expected = 0
    for d in (1, Color.RED, WeirdInt(100), 2**70, -(2**70), I64_MAX, I64_MAX, I64_MIN, -1):
        target.increment("k", d)
        expected += int(d)
        assert c["k"] == expected
    for v in c.snapshot().values():
        assert type(v) is int
    target.increment("k")  # default 1
    target.increment(key="k", delta=2)
    target.increment("k", delta=3)
    assert c["k"] == expected + 6
    target.increment("j", WeirdInt(1))  # a new key: int() of the delta is stored
    assert c["j"] == 7
    assert type(c.snapshot()["j"]) is int


CC_BAD_DELTAS = [True, False, 1.0, float("nan"), "1", None, 2j, b"1", [1]]


@pytest.mark.parametrize("bad", CC_BAD_DELTAS, ids=repr)
def test_cc_bad_delta_same_error_nothing_changed(bad: Any) -> None:
    results = []
    for _, counter in _both_cc():
        c = counter()
        c.increment("k", 5)
        h = c.handle()
        errs = [
            _error(c.increment, "k", bad),
            _error(h.increment, "k", bad),
            _error(c.increment, "new", delta=bad),
            _error(h.increment, key="new", delta=bad),
            _error(c.increment, [], bad),  # the delta is checked before the key
        ]
        assert c.snapshot() == {"k": 5}
        results.append(errs)
    for errs in results:
        for exc_type, msg in errs:
            assert exc_type is TypeError
            assert msg == f"delta must be an int, not {type(bad).__name__}"
    assert all(r == results[0] for r in results)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((), {}),
        (("k", 1, 2), {}),
        (("k",), {"key": "k"}),
        (("k", 1), {"delta": 1}),
        (("k",), {"other": 1}),
        ((), {"delta": 1}),
    ],
)
def test_cc_bad_arguments_raise_type_error(
    cc_impl: tuple[type, type], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    _, counter = cc_impl
    c = counter()
    h = c.handle()
    for f in (c.increment, h.increment):
        with pytest.raises(TypeError):
            f(*args, **kwargs)
    assert c.snapshot() == {}


def test_cc_shard_takes_no_arguments(cc_impl: tuple[type, type]) -> None:
    handle, _ = cc_impl
    with pytest.raises(TypeError):
        handle(1)
    alone = handle()
    alone.increment("x", 2)
    assert alone._counts == {"x": 2}
    assert alone._retired is False


# -- keys: unhashable, raising and re-entrant __hash__/__eq__, odd builtins ------------------


class RaisingHash:
    def __hash__(self) -> int:
        raise ZeroDivisionError("no hash")


class RaisingEq:
    """Collides with an existing key and raises on comparison."""

    def __init__(self, h: int) -> None:
        self.h = h

    def __hash__(self) -> int:
        return self.h

    def __eq__(self, other: object) -> bool:
        raise LookupError("no eq")


def test_cc_unhashable_and_raising_keys_same_error_nothing_changed() -> None:
    results = []
    for _, counter in _both_cc():
        c = counter()
        h = c.handle()
        c.increment(RaisingEq(7).h)  # the int 7: RaisingEq(7) collides with it
        before = c.snapshot()
        errs = []
        for f in (c.increment, h.increment):
            for key in ([], {}, {1}, RaisingHash(), RaisingEq(7)):
                errs.append(_error(f, key))
                errs.append(_error(f, key, 3))
        assert c.snapshot() == before
        results.append(errs)
    assert results[0][0] == (TypeError, "unhashable type: 'list'")
    assert (ZeroDivisionError, "no hash") in results[0]
    assert (LookupError, "no eq") in results[0]
    assert all(r == results[0] for r in results)


class Reentrant:
    """A key whose __hash__ and __eq__ increment other keys of the same counter."""

    counter: Any = None

    def __init__(self, name: str) -> None:
        self.name = name

    def __hash__(self) -> int:
        if self.counter is not None:
            self.counter.increment(("hash", self.name))
        return hash(self.name)

    def __eq__(self, other: object) -> bool:
        if self.counter is not None:
            self.counter.handle().increment(("eq", self.name), 2)
        return isinstance(other, Reentrant) and other.name == self.name


def test_cc_keys_that_reenter_the_counter() -> None:
    """User __hash__/__eq__ run with no lock held: they may increment the same
    counter (the same shard dict) without deadlock, and both cores count the
    same."""
    snaps = []
    for _, counter in _both_cc():
        c = counter()
        a, b = Reentrant("a"), Reentrant("a")  # equal, distinct objects
        a.counter = b.counter = c
        h = c.handle()
        c.increment(a)
        h.increment(b, 5)  # finds a: __eq__ runs
        c.increment(b)
        snap = c.snapshot()
        a.counter = b.counter = None
        assert snap[a] == 7
        snaps.append(sorted((repr(getattr(k, "name", k)), v) for k, v in snap.items()))
    assert all(s == snaps[0] for s in snaps)


def test_cc_builtin_key_identities_match() -> None:
    """Keys that compare equal across types share one count, exactly as in a dict."""
    nan = float("nan")
    keys = [1, True, 1.0, 0, False, -0.0, 0.0, nan, nan, float("nan"), "s", b"s", (1, "a"),
            (1.0, "a"), 2**100, frozenset({1}), None, Color.RED, 3]  # fmt: skip
    snaps = []
    for _, counter in _both_cc():
        c = counter()
        h = c.handle()
        for i, k in enumerate(keys):
            (c if i % 2 else h).increment(k, i + 1)
        snaps.append(list(c.snapshot().items()))
    assert all(repr(s) == repr(snaps[0]) for s in snaps)


def test_cc_counts_attribute_can_be_replaced_by_any_mapping(cc_impl: tuple[type, type]) -> None:
    """``_counts`` behaves as the pure slot: a plain dict, a dict subclass or
    any mapping with ``get`` (the increment then uses ``get`` and ``[]=``)."""
    _, counter = cc_impl
    c = counter()
    h = c.handle()
    calls: list[str] = []

    class Spy(dict):  # type: ignore[type-arg]
        def get(self, key: Any, default: Any = None) -> Any:
            calls.append("get")
            return super().get(key, default)

    h._counts = Spy(x=1)
    c.increment("x")
    h.increment("y", 3)
    assert calls == ["get", "get"]
    assert type(h._counts) is Spy
    assert h._counts == {"x": 2, "y": 3}
    assert c.snapshot() == {"x": 2, "y": 3}
    h._counts = {}
    c.increment("x")
    assert c.snapshot() == {"x": 1}
    del h._counts
    with pytest.raises(AttributeError):
        h.increment("x")
    with pytest.raises(AttributeError):
        c.increment("x")
    with pytest.raises(AttributeError):
        h._counts  # noqa: B018
    h._counts = {"z": 1}
    c.increment("z")
    assert c.snapshot() == {"z": 2}


# -- reference leaks and memory ------------------------------------------------------------


@pytest.mark.thread_unsafe(
    reason="compares reference counts of objects the copies share (constants, Color.RED)"
)
def test_cc_no_reference_leaks(cc_impl: tuple[type, type]) -> None:
    _, counter = cc_impl
    c = counter()
    h = c.handle()
    key, other = "key-" + str(id(c)), ("t", 2**80)
    big, red, bad = 2**70 + 12345, Color.RED, 1.5
    unhashable, raising = [1], RaisingHash()
    objs = (key, other, big, red, bad, unhashable, raising, c, h)
    for _ in range(10):  # warm up: caches, registration
        c.increment(key, big)
        h.increment(other)
    d = h._counts
    gc.collect()
    before = [sys.getrefcount(o) for o in objs]
    before_d = sys.getrefcount(d)
    for _ in range(2000):
        c.increment(key, big)
        h.increment(key, -big)
        c.increment(other, red)
        h.increment(other)
        c.increment(key)
        for f in (c.increment, h.increment):
            for args in ((key, bad), (unhashable,), (raising,), (raising, big)):
                with contextlib.suppress(TypeError, ZeroDivisionError):
                    f(*args)
        del f, args
    gc.collect()
    assert [sys.getrefcount(o) for o in objs] == before
    assert sys.getrefcount(d) == before_d
    assert c[key] == 10 * big + 2000
    assert c[other] == 10 + 2000 * 4


@pytest.mark.thread_unsafe(reason="tracemalloc traces the whole process")
def test_cc_no_memory_growth(cc_impl: tuple[type, type]) -> None:
    _, counter = cc_impl
    c = counter()
    h = c.handle()
    keys = [f"k{i}" for i in range(50)]
    for k in keys:
        c.increment(k, 2**70)
        h.increment(k)
    gc.collect()
    tracemalloc.start()
    try:
        snap1 = tracemalloc.take_snapshot()
        for i in range(20_000):
            k = keys[i % 50]
            c.increment(k, 2**70)
            h.increment(k, -(2**70))
            c.increment(k)
        gc.collect()
        snap2 = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    growth = sum(s.size_diff for s in snap2.compare_to(snap1, "filename"))
    assert growth < 20_000, growth


@pytest.mark.thread_unsafe(
    reason="turns the cyclic GC off and counts the shards of a class the copies share"
)
def test_cc_counters_die_and_shards_are_bounded(cc_impl: tuple[type, type]) -> None:
    """Counter churn in one thread: each counter is freed by reference counting;
    at most a few shards of dead counters stay cached in that thread."""
    handle, counter = cc_impl
    base = _live_cells(handle)

    def churn() -> None:
        refs = []
        for _ in range(200):
            c = counter()
            c.increment("a")
            c.increment("b", 2**70)
            refs.append(weakref.ref(c))
            del c
        assert all(r() is None for r in refs)

    gc.disable()
    try:
        churn()
    finally:
        gc.enable()
    # each dead counter leaves its shared shard to the collector, not the cache
    assert _live_cells(handle) - base <= 8


@pytest.mark.thread_unsafe(reason="counts the shards of a class the copies share")
def test_cc_thread_exit_releases_every_shard(cc_impl: tuple[type, type]) -> None:
    """Threads that filled the native per-thread cache (plain increments on
    several counters) leave no shard of theirs alive, and their counts are
    merged exactly."""
    handle, counter = cc_impl
    counters = [counter() for _ in range(12)]

    def live_shards() -> set[int]:
        gc.collect()
        return {id(o) for o in gc.get_objects() if type(o) is handle}

    base = live_shards()

    def work(i: int) -> None:
        for c in counters:
            c.increment("a")
            c.increment(i, 2**70)
            c.handle().increment("b", 2)

    for _ in range(5):  # 10 exits per counter: one merge of 8 retired shards each
        run_in_threads(work, 2)
    # the only shards left are the retired ones still in a read view (not yet merged)
    in_views = {id(s) for c in counters for s in c._state.view[1] if s._retired}
    assert len(in_views) == 12 * 2
    assert live_shards() - base == in_views
    for c in counters:
        assert c.snapshot() == {"a": 10, 0: 5 * 2**70, 1: 5 * 2**70, "b": 20}
        assert len(c._per_thread) == 0


@pytest.mark.timeout(60)
def test_cc_teardown_increment_after_plain_use(cc_impl: tuple[type, type]) -> None:
    """A thread counts through the plain call (the native cache holds its
    shard), then again from a ``__del__`` during its teardown, possibly after
    its shard was retired: counted exactly once, no shard stays registered."""
    _, counter = cc_impl
    c = counter()
    other = threading.local()

    class CountOnDel:
        def __del__(self) -> None:
            c.increment("del", 2**70)
            c.increment("del")

    def work() -> None:
        other.first = CountOnDel()  # dropped before or after the shard's token
        c.increment("run")
        c.increment("run", 2**70)
        other.obj = CountOnDel()

    for _ in range(100):
        t = threading.Thread(target=work)
        t.start()
        t.join()
    assert c.snapshot() == {"run": 100 * (1 + 2**70), "del": 200 * (1 + 2**70)}
    assert len(c._per_thread) == 0


def test_cc_foreign_thread_adds_to_the_shared_shard(cc_impl: tuple[type, type]) -> None:
    """A thread unknown to ``threading`` cannot own a shard: it keeps the pure
    behaviour (adds into the shared shard, under the registry lock)."""
    _, counter = cc_impl
    c = counter()
    done = threading.Event()
    out: list[Any] = []

    def foreign() -> None:
        try:
            c.increment("f", 2)
            c.increment("f")
            c.increment(key="f", delta=2**70)
            out.extend(_error(c.increment, *args) for args in (([],), ("f", 1.0)))
            out.append(_error(c.handle))
        finally:
            done.set()

    _thread.start_new_thread(foreign, ())
    assert done.wait(30)
    assert out[0] == (TypeError, "unhashable type: 'list'")
    assert out[1] == (TypeError, "delta must be an int, not float")
    assert out[2][0] is RuntimeError
    assert c._state.shared._counts == {"f": 3 + 2**70}
    assert c.snapshot() == {"f": 3 + 2**70}
    assert len(c._per_thread) == 0


def test_cc_handle_of_an_exited_thread_is_not_counted(cc_impl: tuple[type, type]) -> None:
    """Both cores agree: a shard whose thread exited was retired, then merged
    with the next retired ones; increments made through it afterwards are not
    counted (it belongs to no live thread)."""
    _, counter = cc_impl
    c = counter()
    handles = run_in_threads(lambda i: (c.increment("x", 3), c.handle())[1], 1)
    assert handles[0]._retired is True
    for _ in range(8):  # retire more shards: the merge drops them from the read view
        run_in_threads(lambda i: c.increment("y"), 1)
    assert c.snapshot() == {"x": 3, "y": 8}
    handles[0].increment("x", 100)
    assert c.snapshot() == {"x": 3, "y": 8}


# -- increments racing clear() -------------------------------------------------------------


def _race_clear(c: Any, how: str, n: int) -> tuple[list[tuple[int, int, int]], int]:
    """One thread increments ``"k"`` (and fresh str keys with big counts, so
    the dicts clear() drops free objects) while another clears over and over.
    The incrementing thread reads its key after every increment: the count
    must be the previous one plus one, or 1 or 0 when a clear() overlapped
    (counted at most once, never resurrected). Returns the violations and the
    number of clears."""
    stop = threading.Event()
    bad: list[tuple[int, int, int]] = []
    clears = [0]

    def writer() -> None:
        try:
            inc = c.handle().increment if how == "handle" else c.increment
            prev = 0
            for i in range(n):
                inc("k")
                inc(str(i), 2**70)
                v = c["k"]
                if v not in (prev + 1, 1, 0):
                    bad.append((i, prev, v))
                prev = v
        finally:
            stop.set()

    def clearer() -> None:
        while not stop.is_set():
            c.clear()
            clears[0] += 1

    run_concurrently(writer, clearer, timeout=100)
    return bad, clears[0]


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("switch_interval")
@pytest.mark.parametrize("how", ["plain", "handle"])
def test_cc_increment_racing_clear(cc_impl: tuple[type, type], how: str) -> None:
    """Increments racing clear(): no crash (the native core never uses a
    counts dict that clear() replaced and dropped), each increment counted
    at most once and never resurrected."""
    _, counter = cc_impl
    c = counter()
    bad, clears = _race_clear(c, how, stress_scale(ci=20_000, full=200_000))
    assert not bad, bad[:5]
    assert clears > 0
    c.clear()
    assert c.snapshot() == {}
    c.increment("k")
    assert c.snapshot() == {"k": 1}


class ResurrectingCounter(ConcurrentCounter[str]):
    """Deliberately broken: clear() puts the old counts back into the new dicts."""

    def clear(self) -> None:
        with self._write_lock, self._lock:
            _, shards = self._state.view
            for shard in shards:
                old = shard._counts
                shard._counts = {}
                time.sleep(0.0002)  # a reader sees the cleared count meanwhile
                shard._counts.update(old)


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("switch_interval")
def test_cc_increment_racing_clear_check_can_fail() -> None:
    for _ in range(5):  # the race window must be hit at least once
        bad, _ = _race_clear(ResurrectingCounter(), "plain", 10_000)
        if bad:
            return
    raise AssertionError("resurrection not detected")


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("switch_interval")
def test_cc_exact_under_clear_and_thread_exit(cc_impl: tuple[type, type]) -> None:
    """Short-lived threads increment (plain and through handles) while clear()
    runs; after the last clear, the increments of threads started later are
    all there, and exited threads leave no shard registered."""
    _, counter = cc_impl
    c = counter()
    stop = threading.Event()

    def adder(i: int) -> None:
        h = c.handle()
        for j in range(100):
            c.increment(j % 5)
            h.increment("h", 2**65)

    def adders() -> None:
        try:
            for _ in range(stress_scale(ci=5, full=30)):
                run_in_threads(adder, 4)
        finally:
            stop.set()

    def clearer() -> None:
        while not stop.is_set():
            c.clear()
            time.sleep(0.0005)

    run_concurrently(adders, clearer, timeout=100)
    c.clear()
    assert c.snapshot() == {}
    run_in_threads(adder, 4)
    assert c.snapshot() == {0: 80, 1: 80, 2: 80, 3: 80, 4: 80, "h": 400 * 2**65}
    assert len(c._per_thread) == 0
