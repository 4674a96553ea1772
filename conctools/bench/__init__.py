"""Reference benchmarks: every primitive against the locked structure a user
would otherwise write. Run with ``python -m conctools bench``."""

from __future__ import annotations

from .harness import MetricWorkload, Trial, Variant, Workload, calibrate, run_trial
from .registry import all_workloads, select
from .runner import run_suite

__all__ = [
    "MetricWorkload",
    "Trial",
    "Variant",
    "Workload",
    "all_workloads",
    "calibrate",
    "run_suite",
    "run_trial",
    "select",
]
