"""Counters: StripedCounter and AtomicInt against a Lock-guarded int,
ConcurrentCounter against a dict + Lock counter, and AtomicFloat against a
Lock-guarded float.

Each variant appears twice where it has two APIs: the plain method call on
the shared object (``c.increment()``, correct from any thread) and the
calling thread's handle (``h = c.handle(); h.increment()``), which touches no
shared object at all. Handles are obtained inside each worker thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ...atomic import AtomicFloat, AtomicInt
from ...counters import ConcurrentCounter, StripedCounter
from ..baselines import (
    dict_lock_rmw_tuned,
    dict_lock_rmw_usual,
    itertools_count,
    key_streams,
    locked_counter,
)
from ..harness import Trial, Variant, Workload

NKEYS = 1024


def _check(got: int, want: int, what: str) -> None:
    if got != want:
        raise AssertionError(f"{what} lost updates: {got} != {want}")


# -- one shared counter -------------------------------------------------------


class ThreadLocalCell:
    """The simplest per-thread counter: a ``threading.local`` list cell per
    thread (no input check, cells of exited threads never folded or freed).
    What a user would write by hand; a reference to beat."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._cells: list[list[int]] = []
        self._lock = threading.Lock()

    def increment(self, delta: int = 1) -> None:
        try:
            cell = self._local.cell
        except AttributeError:
            cell = self._local.cell = [0]
            with self._lock:
                self._cells.append(cell)
        cell[0] += delta

    def value(self) -> int:
        with self._lock:
            return sum(c[0] for c in self._cells)


def _shared_trial(
    threads: int, obj: Any, get_inc: Callable[[Any], Callable[[], Any]], read: Callable[[], int]
) -> Trial:
    """Each body fetches its increment callable in its own thread."""

    def body(n: int) -> None:
        f = get_inc(obj)
        for _ in range(n):
            f()

    return Trial([body] * threads, lambda n: _check(read(), n * threads, "counter"))


def _striped(name: str, handle: bool) -> Variant:
    def make(threads: int) -> Trial:
        c = StripedCounter()
        get: Callable[[Any], Callable[[], Any]] = (
            (lambda o: o.handle().increment) if handle else (lambda o: o.increment)
        )
        return _shared_trial(threads, c, get, c.value)

    note = (
        "h = c.handle() per thread; h.increment()"
        if handle
        else "c.increment() on the shared StripedCounter"
    )
    return Variant(name, make, note=note)


def _atomic_int(name: str = "AtomicInt") -> Variant:
    def make(threads: int) -> Trial:
        a = AtomicInt()
        return _shared_trial(threads, a, lambda o: o.increment, a.get)

    return Variant(name, make, note="a.increment() (lock-based, returns the new value)")


def _thread_local_cell(name: str = "thread-local cell") -> Variant:
    def make(threads: int) -> Trial:
        p = ThreadLocalCell()
        return _shared_trial(threads, p, lambda o: o.increment, p.value)

    return Variant(name, make, note="hand-written threading.local list cell, no checks")


# -- a shared float accumulator ----------------------------------------------


class LockedFloat:
    """The usual way: a float guarded by a ``threading.Lock``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0.0

    def add(self, delta: float) -> None:
        with self._lock:
            self._value += delta

    def get(self) -> float:
        with self._lock:
            return self._value


def _float_variant(name: str, cls: Callable[[], Any], note: str) -> Variant:
    def make(threads: int) -> Trial:
        acc = cls()

        def body(n: int) -> None:
            add = acc.add
            for _ in range(n):
                add(0.5)  # exact in binary: the total is checkable

        def verify(n: int) -> None:
            if acc.get() != 0.5 * n * threads:
                raise AssertionError(f"float accumulator lost updates: {acc.get()}")

        return Trial([body] * threads, verify)

    return Variant(name, make, note=note)


# -- keyed counter ------------------------------------------------------------


def _concurrent_counter(name: str, handle: bool) -> Variant:
    def make(threads: int) -> Trial:
        c: ConcurrentCounter[int] = ConcurrentCounter()
        streams = key_streams(threads, NKEYS)

        def body_for(keys: list[int]) -> Callable[[int], None]:
            def body(n: int) -> None:
                f = c.handle().increment if handle else c.increment
                m = len(keys) - 1
                for i in range(n):
                    f(keys[i & m])

            return body

        return Trial(
            [body_for(s) for s in streams],
            lambda n: _check(c.total(), n * threads, "ConcurrentCounter"),
        )

    note = "h = c.handle() per thread; h.increment(k)" if handle else "c.increment(k)"
    return Variant(name, make, note=note)


WORKLOADS = [
    Workload(
        name="counter_increment",
        group="counters",
        description="increment one shared counter",
        baseline="Lock+int",
        variants=(
            locked_counter(),
            itertools_count(),
            _atomic_int(),
            _thread_local_cell(),
            _striped("StripedCounter", handle=False),
            _striped("StripedCounter handle", handle=True),
        ),
    ),
    Workload(
        name="keyed_counter",
        group="counters",
        description=f"count keys (uniform over {NKEYS}) from every thread",
        baseline="dict+Lock (d.get)",
        variants=(
            dict_lock_rmw_usual(NKEYS),
            dict_lock_rmw_tuned(NKEYS),
            _concurrent_counter("ConcurrentCounter", handle=False),
            _concurrent_counter("ConcurrentCounter handle", handle=True),
        ),
    ),
    Workload(
        name="float_accumulate",
        group="counters",
        description="add to one shared float (a running sum of measurements)",
        baseline="Lock+float",
        variants=(
            _float_variant("Lock+float", LockedFloat, "with lock: x += d in a small class"),
            _float_variant("AtomicFloat", AtomicFloat, "x.add(d)"),
        ),
    ),
]
