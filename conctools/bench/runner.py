"""Run a selection of workloads and produce the JSON-able result document."""

from __future__ import annotations

import datetime as _dt
import platform
import time
from collections.abc import Sequence
from typing import Any

from .. import __version__
from .._runtime import runtime_info
from .baselines import baseline_note
from .harness import (
    MetricWorkload,
    Workload,
    calibrate,
    calibrate_threads,
    median,
    progress,
    run_trial,
)
from .registry import AnyWorkload

SCHEMA = 1

__all__ = ["SCHEMA", "run_suite"]


def _stats(xs: Sequence[float]) -> dict[str, Any]:
    return {
        "median": median(xs),
        "min": min(xs) if xs else float("nan"),
        "max": max(xs) if xs else float("nan"),
        "samples": list(xs),
    }


def run_throughput(
    w: Workload, threads: Sequence[int], repeat: int, target: float
) -> dict[str, Any]:
    counts = [t for t in threads if w.threads is None or t in w.threads] or list(
        w.threads or threads
    )
    n_ops: dict[tuple[str, int], int] = {}
    for v in w.variants:
        single = calibrate(v, target)
        for n in counts:
            if v.max_threads is None or n <= v.max_threads:
                n_ops[(v.name, n)] = calibrate_threads(v, n, target, single)
    # samples[(variant, threads)] -> list of ops/s; counts per named counter
    samples: dict[tuple[str, int], list[float]] = {}
    named: dict[tuple[str, int], dict[str, list[float]]] = {}
    ratios: dict[tuple[str, int], list[float]] = {}
    for _rep in range(repeat):
        for n in counts:
            rep_speed: dict[str, float] = {}
            for v in w.variants:
                if v.max_threads is not None and n > v.max_threads:
                    continue
                r = run_trial(v.make(n), n_ops[(v.name, n)])
                rep_speed[v.name] = r.ops_per_sec
                samples.setdefault((v.name, n), []).append(r.ops_per_sec)
                if len(r.counts) > 1 or "ops" not in r.counts:
                    d = named.setdefault((v.name, n), {})
                    for k, c in r.counts.items():
                        d.setdefault(k, []).append(c / r.elapsed)
            base = rep_speed.get(w.baseline)
            for name, s in rep_speed.items():
                if base:
                    ratios.setdefault((name, n), []).append(s / base)
    rows = []
    for v in w.variants:
        for n in counts:
            key = (v.name, n)
            if key not in samples:
                continue
            row: dict[str, Any] = {
                "variant": v.name,
                "threads": n,
                "ops_per_sec": _stats(samples[key]),
                "ratio_to_baseline": _stats(ratios.get(key, [])),
                "ops_per_thread": n_ops[key],
            }
            if key in named:
                row["rates"] = {k: _stats(vs) for k, vs in named[key].items()}
            rows.append(row)
    return {
        "name": w.name,
        "group": w.group,
        "kind": "throughput",
        "description": w.description,
        "baseline": w.baseline,
        "unit": w.unit,
        "threads_note": w.threads_note,
        "baseline_note": baseline_note(w.baseline),
        "variants": [{"name": v.name, "note": v.note} for v in w.variants],
        "results": rows,
    }


def run_metric(w: MetricWorkload, quick: bool) -> dict[str, Any]:
    return {
        "name": w.name,
        "group": w.group,
        "kind": "metric",
        "description": w.description,
        "rows": w.compute(quick),
    }


def run_suite(
    workloads: Sequence[AnyWorkload],
    *,
    threads: Sequence[int] = (1, 2, 4),
    repeat: int = 5,
    target: float = 0.2,
    quick: bool = False,
) -> dict[str, Any]:
    info = runtime_info()
    started = time.perf_counter()
    out: list[dict[str, Any]] = []
    for i, w in enumerate(workloads, 1):
        progress(f"[{i}/{len(workloads)}] {w.group}: {w.name}")
        t0 = time.perf_counter()
        if isinstance(w, MetricWorkload):
            out.append(run_metric(w, quick))
        else:
            out.append(run_throughput(w, threads, repeat, target))
        progress(f"        done in {time.perf_counter() - t0:.1f}s")
    return {
        "schema": SCHEMA,
        "conctools_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "runtime": info.as_dict(),
        "machine": platform.machine(),
        "settings": {
            "threads": list(threads),
            "repeat": repeat,
            "target_seconds": target,
            "quick": quick,
        },
        "elapsed_seconds": round(time.perf_counter() - started, 2),
        "workloads": out,
    }
