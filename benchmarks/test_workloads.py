"""pytest-benchmark regression suite over the same workloads as the bench CLI.

Run with ``nox -s benchmarks`` (or ``pytest benchmarks --benchmark-autosave``) and
compare saved runs with ``pytest-benchmark compare``.  Kept apart from the
correctness tests: nothing here asserts speed.
"""

from __future__ import annotations

from typing import Any

import pytest

from conctools.bench import Workload, all_workloads, calibrate, run_trial

THREADS = (1, 2)
TARGET_SECONDS = 0.02

CASES = [
    pytest.param(w, v.name, n, id=f"{w.group}-{w.name}-{v.name}-{n}t")
    for w in all_workloads()
    if isinstance(w, Workload)
    for v in w.variants
    for n in THREADS
    if (w.threads is None or n in w.threads) and (v.max_threads is None or n <= v.max_threads)
]


@pytest.mark.parametrize(("workload", "variant_name", "threads"), CASES)
def test_workload(benchmark: Any, workload: Workload, variant_name: str, threads: int) -> None:
    variant = workload.variant(variant_name)
    n_ops = calibrate(variant, TARGET_SECONDS)

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (variant.make(threads), n_ops), {}

    result = benchmark.pedantic(run_trial, setup=setup, rounds=5, iterations=1)
    benchmark.extra_info["ops_per_sec"] = result.ops_per_sec
    benchmark.extra_info["threads"] = threads
