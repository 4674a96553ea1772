"""``python -m conctools bench``: the reference benchmarks."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .registry import all_workloads, select
from .report import compare_tables, format_results, plot_results
from .runner import run_suite

__all__ = ["add_arguments", "run"]


def _threads(text: str) -> list[int]:
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("expected a comma-separated list of ints") from None
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError("thread counts must be >= 1")
    return vals


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="short runs (under a minute on 2 cores)")
    p.add_argument(
        "--threads",
        type=_threads,
        default=None,
        help="comma-separated thread counts (default 1,2,4)",
    )
    p.add_argument(
        "--repeat", type=int, default=None, help="repetitions per measurement (default 5, quick 3)"
    )
    p.add_argument(
        "--target", type=float, default=None, help="seconds per timed run (default 0.2, quick 0.03)"
    )
    p.add_argument(
        "--only", metavar="NAMES", help="comma-separated globs of groups or workload names"
    )
    p.add_argument("--list", action="store_true", help="list workloads and exit")
    p.add_argument("--json", metavar="FILE", help="also write results as JSON")
    p.add_argument(
        "--compare",
        nargs=2,
        metavar=("A.json", "B.json"),
        help="print a side-by-side table of two result files and exit",
    )
    p.add_argument(
        "--plot",
        metavar="DIR",
        help="write PNG charts (needs matplotlib); with --compare, of both files",
    )


def _load(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        doc: dict[str, Any] = json.load(fh)
    return doc


def run(ns: argparse.Namespace) -> int:
    if ns.compare:
        a, b = (_load(p) for p in ns.compare)
        sys.stdout.write(compare_tables(a, b))
        if ns.plot:
            return _plot([a, b], ns.plot)
        return 0
    workloads = select(all_workloads(), ns.only)
    if ns.list:
        for w in workloads:
            print(f"{w.group:14} {w.name:28} {w.description}")
        return 0
    if not workloads:
        print(f"no workload matches {ns.only!r}; try --list", file=sys.stderr)
        return 2
    repeat = ns.repeat if ns.repeat is not None else (3 if ns.quick else 5)
    target = ns.target if ns.target is not None else (0.03 if ns.quick else 0.2)
    if repeat < 1 or target <= 0:
        print("--repeat must be >= 1 and --target > 0", file=sys.stderr)
        return 2
    doc = run_suite(
        workloads, threads=ns.threads or [1, 2, 4], repeat=repeat, target=target, quick=ns.quick
    )
    sys.stdout.write(format_results(doc))
    if ns.json:
        Path(ns.json).parent.mkdir(parents=True, exist_ok=True)
        with open(ns.json, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1)
            fh.write("\n")
        print(f"wrote {ns.json}", file=sys.stderr)
    if ns.plot:
        return _plot([doc], ns.plot)
    return 0


def _plot(docs: list[dict[str, Any]], directory: str) -> int:
    try:
        paths = plot_results(docs, directory)
    except RuntimeError as exc:
        print(f"conctools bench: {exc}", file=sys.stderr)
        return 2
    for p in paths:
        print(f"wrote {p}", file=sys.stderr)
    return 0
