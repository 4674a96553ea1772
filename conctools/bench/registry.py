"""Discovery of workloads: every module in ``conctools.bench.workloads``
exposing ``WORKLOADS`` contributes its workloads."""

from __future__ import annotations

import fnmatch
import importlib
import pkgutil
from collections.abc import Iterable

from .harness import MetricWorkload, Workload

AnyWorkload = Workload | MetricWorkload

__all__ = ["AnyWorkload", "all_workloads", "select"]


def all_workloads() -> list[AnyWorkload]:
    from . import workloads as pkg

    found: list[AnyWorkload] = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{pkg.__name__}.{info.name}")
        found.extend(getattr(mod, "WORKLOADS", ()))
    return found


def select(workloads: Iterable[AnyWorkload], patterns: str | None) -> list[AnyWorkload]:
    """Keep workloads whose group or name matches one of the comma-separated
    glob ``patterns`` (all when ``patterns`` is None)."""
    items = list(workloads)
    if not patterns:
        return items
    pats = [p.strip() for p in patterns.split(",") if p.strip()]
    return [
        w
        for w in items
        if any(fnmatch.fnmatch(w.group, p) or fnmatch.fnmatch(w.name, p) for p in pats)
    ]
