"""Run a selection of workloads and produce the JSON-able result document.

One run measures one implementation of conctools (the C accelerator,
``"native"``, or the pure-Python reference, ``"pure"``): the choice is made at
import (``CONCTOOLS_PURE_PYTHON``), so the CLI runs each implementation in its
own process and :func:`merge` joins their documents.  Every result row names
its implementation (``"impl"``); each run measures the workload's baseline
itself, so the ratios to the baseline stay paired within one process.

Result document, schema 2 (schema 1 files, written before the accelerator
existed, are read by :func:`upgrade`: their rows are pure Python)::

    schema, conctools_version, created, machine, elapsed_seconds
    runtime              the interpreter of the first implementation's run
    settings             the first implementation's settings (older readers)
    implementations      [{name, reason, native_types, settings, runtime,
                           elapsed_seconds}, ...] in run order
    workloads            [{name, group, kind, description, ...}]
      throughput:  baseline, unit, variants [{name, note, external}],
                   results [{impl, variant, threads, ops_per_sec, ratio_to_baseline,
                             ops_per_thread, [rates], [native_over_pure]}],
                   elapsed_seconds {impl: seconds}
      metric:      impl, rows (measured by the first implementation only)

``native_over_pure`` (on native rows) is the median ops/s of the native run
divided by that of the pure run at the same thread count: not paired (the
runs are separate processes), so read it with the paired ``x baseline``
ratios of both rows.
"""

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

SCHEMA = 2

#: Implementation names, in the default run order.
IMPLEMENTATIONS = ("native", "pure")

__all__ = [
    "IMPLEMENTATIONS",
    "SCHEMA",
    "active_impl",
    "impl_info",
    "merge",
    "run_suite",
    "upgrade",
]


def active_impl() -> str:
    """``"native"`` or ``"pure"``: the implementation this process runs."""
    from .._internal import native

    return "native" if native.ACTIVE == "native" else "pure"


def impl_info() -> dict[str, Any]:
    """The active implementation, why, and which native types it provides."""
    from .._internal import native

    mod = native.native_module()
    names = sorted(dir(mod)) if mod is not None else []
    return {
        "name": active_impl(),
        "reason": native.REASON,
        "native_types": [n for n in names if isinstance(getattr(mod, n), type)],
    }


def _stats(xs: Sequence[float]) -> dict[str, Any]:
    return {
        "median": median(xs),
        "min": min(xs) if xs else float("nan"),
        "max": max(xs) if xs else float("nan"),
        "samples": list(xs),
    }


def run_throughput(
    w: Workload,
    threads: Sequence[int],
    repeat: int,
    target: float,
    *,
    impl: str | None = None,
    skip_external: bool = False,
) -> dict[str, Any]:
    impl = impl or active_impl()
    counts = [t for t in threads if w.threads is None or t in w.threads] or list(
        w.threads or threads
    )
    variants = [
        v for v in w.variants if not (skip_external and v.external and v.name != w.baseline)
    ]
    n_ops: dict[tuple[str, int], int] = {}
    for v in variants:
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
            for v in variants:
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
    for v in variants:
        for n in counts:
            key = (v.name, n)
            if key not in samples:
                continue
            row: dict[str, Any] = {
                "impl": impl,
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
        "variants": [{"name": v.name, "note": v.note, "external": v.external} for v in w.variants],
        "results": rows,
    }


def run_metric(w: MetricWorkload, quick: bool, impl: str | None = None) -> dict[str, Any]:
    return {
        "name": w.name,
        "group": w.group,
        "kind": "metric",
        "description": w.description,
        "impl": impl or active_impl(),
        "rows": w.compute(quick),
    }


def run_suite(
    workloads: Sequence[AnyWorkload],
    *,
    threads: Sequence[int] = (1, 2, 4),
    repeat: int = 5,
    target: float = 0.2,
    quick: bool = False,
    secondary: bool = False,
) -> dict[str, Any]:
    """Measure ``workloads`` with the implementation this process runs.

    ``secondary``: another implementation's run has measured (or will
    measure) the same workloads: skip the metric workloads (deterministic,
    the same for every implementation) and the external variants other than
    the baselines (they run no conctools code).
    """
    impl = impl_info()
    name = impl["name"]
    started = time.perf_counter()
    out: list[dict[str, Any]] = []
    todo = [w for w in workloads if not (secondary and isinstance(w, MetricWorkload))]
    for i, w in enumerate(todo, 1):
        progress(f"[{i}/{len(todo)}] {name}: {w.group}: {w.name}")
        t0 = time.perf_counter()
        if isinstance(w, MetricWorkload):
            doc = run_metric(w, quick, name)
        else:
            doc = run_throughput(w, threads, repeat, target, impl=name, skip_external=secondary)
        took = round(time.perf_counter() - t0, 2)
        doc["elapsed_seconds"] = {name: took}
        out.append(doc)
        progress(f"        done in {took:.1f}s")
    settings = {
        "threads": list(threads),
        "repeat": repeat,
        "target_seconds": target,
        "quick": quick,
    }
    elapsed = round(time.perf_counter() - started, 2)
    runtime = runtime_info().as_dict()
    return {
        "schema": SCHEMA,
        "conctools_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "runtime": runtime,
        "machine": platform.machine(),
        "settings": settings,
        "implementations": [
            {**impl, "settings": settings, "runtime": runtime, "elapsed_seconds": elapsed}
        ],
        "elapsed_seconds": elapsed,
        "workloads": out,
    }


def merge(docs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Join the documents of several implementations' runs (schema 2, one
    implementation each, same interpreter) into one document."""
    if not docs:
        raise ValueError("nothing to merge")
    docs = [upgrade(d) for d in docs]
    first = docs[0]
    merged: dict[str, Any] = {k: v for k, v in first.items() if k != "workloads"}
    merged["implementations"] = [i for d in docs for i in d["implementations"]]
    names = [i["name"] for i in merged["implementations"]]
    if len(set(names)) != len(names):
        raise ValueError(f"an implementation appears twice: {names}")
    merged["elapsed_seconds"] = round(sum(d["elapsed_seconds"] for d in docs), 2)
    by_name: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    for d in docs:
        for w in d["workloads"]:
            if w["name"] not in by_name:
                copy = dict(w)
                if w["kind"] == "throughput":
                    copy["results"] = list(w["results"])
                copy["elapsed_seconds"] = dict(w.get("elapsed_seconds") or {})
                by_name[w["name"]] = copy
                order.append(w["name"])
                continue
            into = by_name[w["name"]]
            into["elapsed_seconds"].update(w.get("elapsed_seconds") or {})
            if w["kind"] != "throughput" or into["kind"] != "throughput":
                continue
            into["results"] += w["results"]
            known = {v["name"] for v in into["variants"]}
            into["variants"] = into["variants"] + [
                v for v in w["variants"] if v["name"] not in known
            ]
    for w in by_name.values():
        if w["kind"] == "throughput":
            _native_over_pure(w)
    merged["workloads"] = [by_name[n] for n in order]
    return merged


def _native_over_pure(w: dict[str, Any]) -> None:
    pure = {
        (r["variant"], r["threads"]): r["ops_per_sec"]["median"]
        for r in w["results"]
        if r.get("impl") == "pure"
    }
    for r in w["results"]:
        if r.get("impl") != "native":
            continue
        p = pure.get((r["variant"], r["threads"]))
        if p:
            r["native_over_pure"] = r["ops_per_sec"]["median"] / p


def upgrade(doc: dict[str, Any]) -> dict[str, Any]:
    """A schema 2 document from a schema 1 one (written before the C
    accelerator existed: every row is pure Python); schema 2 unchanged."""
    if doc.get("schema") != 1:
        return doc
    new = dict(doc)
    new["schema"] = SCHEMA
    new["implementations"] = [
        {
            "name": "pure",
            "reason": "pure Python (measured before the C accelerator existed)",
            "native_types": [],
            "settings": doc.get("settings"),
            "runtime": doc.get("runtime"),
            "elapsed_seconds": doc.get("elapsed_seconds"),
        }
    ]
    workloads = []
    for old in doc.get("workloads", []):
        w = dict(old)
        if w.get("kind") == "throughput":
            w["results"] = [{"impl": "pure", **r} for r in w.get("results", [])]
        else:
            w["impl"] = "pure"
        workloads.append(w)
    new["workloads"] = workloads
    return new
