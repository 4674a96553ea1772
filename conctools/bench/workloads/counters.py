"""Counters: StripedCounter and AtomicInt against a Lock-guarded int, and
ConcurrentCounter against a dict + Lock counter.

Each variant appears twice where it has two APIs: the plain method call on
the shared object (``c.increment()``, correct from any thread) and the
calling thread's handle (``h = c.handle(); h.increment()``), which touches no
shared object at all. Handles are obtained inside each worker thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ...atomic import AtomicInt
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


class LocalCellPrototype:
    """The pre-issue prototype: a ``threading.local`` list cell per thread
    (no input check, no fold at thread exit). A reference to beat."""

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


def _prototype(name: str = "local-cell prototype") -> Variant:
    def make(threads: int) -> Trial:
        p = LocalCellPrototype()
        return _shared_trial(threads, p, lambda o: o.increment, p.value)

    return Variant(name, make, note="threading.local list cell, no checks (pre-issue prototype)")


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
            _prototype(),
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
]
