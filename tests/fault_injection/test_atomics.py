"""Fault injection over every public method of AtomicInt, AtomicBool, AtomicFloat, AtomicRef.

Each target runs a sequence of calls in the main thread while an exception
(:class:`~conctools.testing.faults.InjectedFault`) lands at a random bytecode.
The checks are exact: the value is what the completed calls produced, or what
the interrupted call would have produced (an update is applied entirely or
not at all), and another thread can take the atomic's lock afterwards.
Background threads contend for the same lock with updates that change nothing.
"""

from __future__ import annotations

import math
import signal
from collections.abc import Callable
from typing import Any

import pytest

from conctools.atomic import AtomicBool, AtomicFloat, AtomicInt, AtomicRef
from conctools.testing.faults import inject_faults

pytestmark = pytest.mark.skipif(
    not hasattr(signal, "setitimer"), reason="fault injection needs signal.setitimer"
)

ATTEMPTS = 50
DELIVERED: dict[str, int] = {}


@pytest.fixture(autouse=True)
def _no_cyclic_gc() -> Any:
    """Faults land wherever the main thread is, including in garbage-collector
    callbacks that other libraries install (hypothesis does): those report the
    fault as "Exception ignored" and keep its traceback alive. The collector is
    paused during these tests (reference counting still frees objects)."""
    import gc

    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _typical_duration(target: Callable[[], object]) -> float:
    """1.5x the median of a few fault-free runs (one slow first run on a busy
    machine would otherwise make most faults arrive after the call)."""
    import statistics
    import time

    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        target()
        times.append(time.perf_counter() - t0)
    return max(20e-6, 1.5 * statistics.median(times))


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same type; floats bit for bit (-0.0 is not 0.0, nan is nan)."""
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return type(a) is type(b) and bool(a == b)


def _probe(obj: Any) -> Callable[[], None]:
    """The pure core's lock must be free; the native core has no Python-level lock
    (a C call is never interrupted half-way): another thread's update must finish."""
    lock = getattr(obj, "_lock", None)
    if lock is None:
        return lambda: obj.set(obj.get_and_set(obj.get()))
    return _lock_probe(lock)


def _lock_probe(lock: Any) -> Callable[[], None]:
    def probe() -> None:
        if not lock.acquire(timeout=5):
            raise AssertionError("the atomic's lock was left held")
        lock.release()

    return probe


def _run(
    name: str,
    obj: Any,
    call: Callable[[Any], object],
    model: Callable[[Any], Any],
    *,
    read: Callable[[Any], Any] | None = None,
    background: Callable[[], object] | None = None,
    expected: tuple[type[BaseException], ...] = (),
) -> None:
    """``call(obj)`` performs one operation; ``model(state)`` is the value after it."""
    read = read or (lambda o: o.get())
    track: dict[str, Any] = {"state": read(obj), "pending": None, "armed": False}

    def target() -> None:
        for _ in range(20):
            track["pending"] = model(track["state"])
            track["armed"] = True
            call(obj)
            track["state"] = track["pending"]
            track["armed"] = False

    def check() -> None:
        v = read(obj)
        ok = _same(v, track["state"]) or (track["armed"] and _same(v, track["pending"]))
        assert ok, f"{name}: value {v!r}, expected {track['state']!r} or {track['pending']!r}"
        track["state"], track["armed"] = v, False

    bg = [background] if background is not None else []
    report = inject_faults(
        target,
        attempts=ATTEMPTS,
        min_delivered=5,
        max_delay=_typical_duration(target),
        check=check,
        probe=_probe(obj),
        background=bg,
        expected=expected,
        seed=hash(name) & 0xFFFF,
    )
    DELIVERED[name] = report.delivered
    assert report.delivered >= 5, report  # faults must land inside the calls


def _noop_update(obj: Any) -> Callable[[], object]:
    return lambda: obj.update(lambda v: v)  # takes the lock, changes nothing


# -- AtomicInt ------------------------------------------------------------------------

INT_CASES: list[tuple[str, Callable[[Any], object], Callable[[int], int]]] = [
    ("set", lambda a: a.set(a.get() + 1), lambda s: s + 1),
    ("increment", lambda a: a.increment(), lambda s: s + 1),
    ("increment(3)", lambda a: a.increment(3), lambda s: s + 3),
    ("decrement", lambda a: a.decrement(), lambda s: s - 1),
    ("add_and_get", lambda a: a.add_and_get(2), lambda s: s + 2),
    ("get_and_add", lambda a: a.get_and_add(2), lambda s: s + 2),
    ("get_and_set", lambda a: a.get_and_set(a.get() + 5), lambda s: s + 5),
    ("compare_and_set", lambda a: a.compare_and_set(a.get(), a.get() + 1), lambda s: s + 1),
    ("update", lambda a: a.update(lambda v: v + 1), lambda s: s + 1),
]


def _inplace(op: str, operand: int) -> Callable[[Any], object]:
    def call(a: Any) -> None:
        x = a
        x = getattr(x, op)(operand)
        assert x is a

    return call


INPLACE_CASES: list[tuple[str, int, Callable[[int], int]]] = [
    ("__iadd__", 3, lambda s: s + 3),
    ("__isub__", 1, lambda s: s - 1),
    ("__imul__", -1, lambda s: -s),
    ("__ifloordiv__", 1, lambda s: s),
    ("__imod__", 1_000_003, lambda s: s % 1_000_003),
    ("__ior__", 4, lambda s: s | 4),
    ("__iand__", ~4, lambda s: s & ~4),
    ("__ixor__", 1, lambda s: s ^ 1),
    ("__ilshift__", 1, lambda s: s << 1),
    ("__irshift__", 1, lambda s: s >> 1),
    ("__ipow__", 1, lambda s: s),
]


@pytest.mark.parametrize(("name", "call", "model"), INT_CASES, ids=[c[0] for c in INT_CASES])
def test_atomic_int_methods(name: str, call: Any, model: Any) -> None:
    a = AtomicInt(10)
    _run(f"AtomicInt.{name}", a, call, model, background=_noop_update(a))


@pytest.mark.parametrize(
    ("op", "operand", "model"), INPLACE_CASES, ids=[c[0] for c in INPLACE_CASES]
)
def test_atomic_int_inplace(op: str, operand: int, model: Any) -> None:
    a = AtomicInt(10)
    _run(f"AtomicInt.{op}", a, _inplace(op, operand), model, background=_noop_update(a))


def test_atomic_int_reads_and_conversions() -> None:
    import copy
    import pickle

    a = AtomicInt(7)

    def reads(x: Any) -> None:
        assert x.get() == 7 and int(x) == 7 and x.__index__() == 7 and bool(x)
        assert format(x, "d") == "7" and x == 7 and x < 8 and x + 1 == 8 and -x == -7
        assert copy.copy(x).get() == 7 and pickle.loads(pickle.dumps(x)).get() == 7
        assert repr(x) == "AtomicInt(7)" and float(x) == 7.0

    _run("AtomicInt reads", a, reads, lambda s: s, background=_noop_update(a))


def test_atomic_int_bad_input_under_faults() -> None:
    a = AtomicInt(3)

    def bad(x: Any) -> None:
        for f in (x.set, x.increment, x.get_and_add, x.__iadd__):
            try:
                f(1.5)
            except TypeError:
                pass
            else:
                raise AssertionError("accepted a float")

    _run("AtomicInt bad input", a, bad, lambda s: s, background=_noop_update(a))


# -- AtomicBool, AtomicFloat, AtomicRef ----------------------------------------------------

BOOL_CASES: list[tuple[str, Callable[[Any], object], Callable[[bool], bool]]] = [
    ("set", lambda b: b.set(not b.get()), lambda s: not s),
    ("get_and_set", lambda b: b.get_and_set(not b.get()), lambda s: not s),
    ("compare_and_set", lambda b: b.compare_and_set(b.get(), not b.get()), lambda s: not s),
    ("toggle", lambda b: b.toggle(), lambda s: not s),
    ("reads", lambda b: (b.get(), bool(b), b == True, repr(b)), lambda s: s),  # noqa: E712
]


@pytest.mark.parametrize(("name", "call", "model"), BOOL_CASES, ids=[c[0] for c in BOOL_CASES])
def test_atomic_bool_methods(name: str, call: Any, model: Any) -> None:
    b = AtomicBool(False)
    _run(
        f"AtomicBool.{name}",
        b,
        call,
        model,
        background=lambda: b.compare_and_set(True, True),  # a hit stores the same value
    )


FLOAT_CASES: list[tuple[str, Callable[[Any], object], Callable[[float], float]]] = [
    ("set", lambda x: x.set(x.get() + 0.5), lambda s: s + 0.5),
    ("add", lambda x: x.add(0.5), lambda s: s + 0.5),
    ("get_and_add", lambda x: x.get_and_add(-0.25), lambda s: s - 0.25),
    ("get_and_set", lambda x: x.get_and_set(x.get() * 2), lambda s: s * 2),
    ("compare_and_set", lambda x: x.compare_and_set(x.get(), x.get() + 1.0), lambda s: s + 1.0),
    ("update", lambda x: x.update(lambda v: v + 0.125), lambda s: s + 0.125),
    ("reads", lambda x: (x.get(), float(x), format(x, ".1f"), repr(x)), lambda s: s),
]


@pytest.mark.parametrize(("name", "call", "model"), FLOAT_CASES, ids=[c[0] for c in FLOAT_CASES])
def test_atomic_float_methods(name: str, call: Any, model: Any) -> None:
    x = AtomicFloat(1.0)
    _run(f"AtomicFloat.{name}", x, call, model, background=_noop_update(x))


REF_CASES: list[tuple[str, Callable[[Any], object], Callable[[tuple[int]], tuple[int]]]] = [
    ("set", lambda r: r.set((r.get()[0] + 1,)), lambda s: (s[0] + 1,)),
    ("get_and_set", lambda r: r.get_and_set((r.get()[0] + 1,)), lambda s: (s[0] + 1,)),
    (
        "compare_and_set",
        lambda r: r.compare_and_set(r.get(), (r.get()[0] + 1,)),
        lambda s: (s[0] + 1,),
    ),
    ("update", lambda r: r.update(lambda v: (v[0] + 1,)), lambda s: (s[0] + 1,)),
    ("reads", lambda r: (r.get(), repr(r)), lambda s: s),
]


@pytest.mark.parametrize(("name", "call", "model"), REF_CASES, ids=[c[0] for c in REF_CASES])
def test_atomic_ref_methods(name: str, call: Any, model: Any) -> None:
    r: AtomicRef[tuple[int]] = AtomicRef((0,))
    _run(f"AtomicRef.{name}", r, call, model, background=_noop_update(r))


def test_report_deliveries(capsys: pytest.CaptureFixture[str]) -> None:
    """Prints how many faults landed per method (run with -s to see them)."""
    with capsys.disabled():
        total = sum(DELIVERED.values())
        print(f"\natomics: {total} faults delivered over {len(DELIVERED)} methods")
        for k, v in sorted(DELIVERED.items()):
            print(f"  {k}: {v}")
