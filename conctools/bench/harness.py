"""Measurement core: run a workload's variants at several thread counts.

A *workload* is an operation mix (say, "90% get / 10% increment over 1024
keys") implemented by several *variants*: the conctools structure, and the
baseline a user would otherwise write (a dict guarded by a lock...).  All
variants of a workload run in the same process, interleaved within each
repetition, so that ratios compare like with like.

Method, for each repetition and each thread count ``n``:

* ``variant.make(n)`` builds fresh shared state and returns a :class:`Trial`
  holding one *body* per thread (a body is ``body(n_ops) -> counts``);
* the threads start, wait on a barrier, and run their body; time is taken
  with ``perf_counter`` from the first thread leaving the barrier until the
  last thread has finished;
* throughput is ``total ops / elapsed``.  The ratio to the baseline is taken
  per repetition (paired), and medians with min/max are reported.

``n_ops`` per thread is calibrated once per variant, single-threaded, so that
one run lasts about ``target_seconds``, and is kept at every thread count
(weak scaling) unless a short pilot run shows that the variant collapses under
contention; it then gets fewer ops per thread so that its runs still last about
``target_seconds`` (:func:`calibrate_threads`).
"""

from __future__ import annotations

import contextlib
import gc
import statistics
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Body",
    "MetricWorkload",
    "Trial",
    "Variant",
    "Workload",
    "calibrate",
    "calibrate_threads",
    "run_trial",
]

Counts = None | int | Mapping[str, int]
Body = Callable[[int], Counts]


@dataclass
class Trial:
    """Fresh shared state for one timed run: one body per thread.

    ``verify(n_ops)``, when given, is called after the run and may raise to
    report that the variant computed a wrong result (a benchmark of a broken
    structure is worthless).
    """

    bodies: Sequence[Body]
    verify: Callable[[int], None] | None = None
    cleanup: Callable[[], None] | None = None


@dataclass(frozen=True)
class Variant:
    """One implementation of a workload's operation mix."""

    name: str
    make: Callable[[int], Trial]
    note: str = ""
    # Variants that are not thread-safe (an unlocked dict as a ceiling) run
    # only where correctness does not depend on locking.
    max_threads: int | None = None
    # True when the variant runs no conctools code (a peer library, a stdlib
    # structure): its speed does not depend on which conctools implementation
    # is active, so it is measured in the first implementation's run only
    # (unless it is the workload's baseline, which every run measures for its
    # paired ratios).
    external: bool = False


@dataclass(frozen=True)
class Workload:
    """An operation mix measured for several variants against a baseline."""

    name: str
    group: str
    description: str
    baseline: str
    variants: tuple[Variant, ...]
    # What one op is, for the table header ("ops", "items", "calls").
    unit: str = "ops"
    # Thread counts this workload makes sense for (None: the CLI's list).
    threads: tuple[int, ...] | None = None
    # Describes how n threads are used when it is not "n workers".
    threads_note: str = ""
    kind: str = field(default="throughput", init=False)

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(name)


@dataclass(frozen=True)
class MetricWorkload:
    """A workload that reports computed metrics (hit rates...) instead of speed.

    ``compute(quick)`` returns rows: each a mapping of column -> value; the
    first column names the row.
    """

    name: str
    group: str
    description: str
    compute: Callable[[bool], list[dict[str, Any]]]
    kind: str = field(default="metric", init=False)


def _normalise(counts: Counts, n_ops: int) -> dict[str, int]:
    if counts is None:
        return {"ops": n_ops}
    if isinstance(counts, int):
        return {"ops": counts}
    return dict(counts)


@dataclass
class RunResult:
    elapsed: float
    ops: int
    counts: dict[str, int]

    @property
    def ops_per_sec(self) -> float:
        return self.ops / self.elapsed if self.elapsed > 0 else float("inf")


def run_trial(trial: Trial, n_ops: int, timeout: float = 600.0) -> RunResult:
    """Run every body of ``trial`` in its own thread, released together."""
    bodies = list(trial.bodies)
    n = len(bodies)
    barrier = threading.Barrier(n + 1)
    results: list[Counts] = [None] * n
    errors: list[BaseException] = []
    starts = [float("inf")] * n
    ends = [0.0] * n

    def runner(i: int, body: Body) -> None:
        try:
            barrier.wait()
            starts[i] = time.perf_counter()
            results[i] = body(n_ops)
        except BaseException as exc:  # reported below
            errors.append(exc)
            barrier.abort()
        finally:
            ends[i] = time.perf_counter()

    threads = [
        threading.Thread(target=runner, args=(i, b), name=f"bench-{i}", daemon=True)
        for i, b in enumerate(bodies)
    ]
    gc.collect()
    for t in threads:
        t.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait(timeout)
    deadline = time.perf_counter() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.perf_counter()))
        if t.is_alive():
            raise RuntimeError(f"benchmark thread {t.name} did not finish within {timeout}s")
    if errors:
        raise errors[0]
    # Each thread stamps its own start: a short body can finish before the
    # releasing thread is scheduled again.
    elapsed = max(ends) - min(starts)
    counts: dict[str, int] = {}
    for r in results:
        for k, v in _normalise(r, n_ops).items():
            counts[k] = counts.get(k, 0) + v
    if trial.verify is not None:
        trial.verify(n_ops)
    if trial.cleanup is not None:
        trial.cleanup()
    return RunResult(elapsed=elapsed, ops=sum(counts.values()), counts=counts)


def calibrate(
    variant: Variant, target_seconds: float, *, start: int = 200, max_ops: int = 50_000_000
) -> int:
    """Per-thread op count so that a single-threaded run lasts ~target_seconds."""
    n = start
    while True:
        r = run_trial(variant.make(1), n)
        if r.elapsed >= target_seconds / 4 or n >= max_ops:
            break
        n *= 4 if r.elapsed < target_seconds / 40 else 2
    scaled = int(n * target_seconds / max(r.elapsed, 1e-9))
    return max(50, min(max_ops, scaled))


def calibrate_threads(variant: Variant, threads: int, target_seconds: float, single: int) -> int:
    """Per-thread op count at ``threads`` threads, from a short pilot run.

    ``single`` is the single-threaded calibration.  A structure that scales
    keeps (about) that count; one that collapses under contention gets fewer
    ops per thread, so that every timed run lasts about ``target_seconds``
    instead of ``threads x collapse`` times longer.  Never more than ``single``.
    """
    if threads == 1:
        return single
    pilot = max(50, single // 16)
    r = run_trial(variant.make(threads), pilot)
    per_thread_rate = pilot / max(r.elapsed, 1e-9)
    return max(50, min(single, int(per_thread_rate * target_seconds)))


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
