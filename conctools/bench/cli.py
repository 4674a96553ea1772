"""``python -m conctools bench``: the reference benchmarks."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from .registry import all_workloads, select
from .report import MATPLOTLIB_HINT, compare_tables, format_problem, format_results, plot_results
from .runner import run_suite

__all__ = ["UsageError", "add_arguments", "check_writable_file", "load_results", "run"]


class UsageError(Exception):
    """A user mistake: ``python -m conctools`` reports it as one line on stderr
    with exit status 2 (no traceback)."""


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
        "--repeat",
        type=_positive_int,
        default=None,
        help="repetitions per measurement (default 5, quick 3)",
    )
    p.add_argument(
        "--target",
        type=_positive_float,
        default=None,
        help="seconds per timed run (default 0.2, quick 0.03)",
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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def check_writable_file(path: str) -> None:
    """Raise :class:`UsageError` unless ``path`` can be written as a file
    (missing parent directories are created when writing, so the nearest
    existing ancestor must be a writable directory)."""
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"--json {path}: is a directory")
    if p.exists():
        if not os.access(p, os.W_OK):
            raise UsageError(f"--json {path}: file is not writable")
        return
    parent = p.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"--json {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"--json {path}: directory {parent} is not writable")


def check_plot_dir(path: str) -> None:
    """Raise :class:`UsageError` unless matplotlib imports and ``path`` can be
    a directory of charts."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UsageError(f"--plot {path}: exists and is not a directory")
    parent = p
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"--plot {path}: {parent} is not a writable directory")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError(f"--plot needs matplotlib: {MATPLOTLIB_HINT}") from None


def load_results(path: str) -> dict[str, Any]:
    """Read a result file written by ``--json``; :class:`UsageError` when it
    is missing, unreadable, not JSON or not in the result format."""
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except FileNotFoundError:
        raise UsageError(f"--compare {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"--compare {path}: is a directory") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise UsageError(f"--compare {path}: cannot read ({reason})") from None
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"--compare {path}: not JSON (line {exc.lineno}: {exc.msg}); "
            "expected a file written by 'bench --json'"
        ) from None
    problem = format_problem(doc)
    if problem:
        raise UsageError(
            f"--compare {path}: not a bench result file ({problem}); "
            "expected a file written by 'bench --json'"
        )
    checked: dict[str, Any] = doc
    return checked


def run(ns: argparse.Namespace) -> int:
    # Every argument is checked before any work starts.
    if ns.compare:
        ignored = [
            flag
            for flag, value in (
                ("--json", ns.json),
                ("--list", ns.list),
                ("--only", ns.only),
                ("--quick", ns.quick),
                ("--threads", ns.threads),
                ("--repeat", ns.repeat),
                ("--target", ns.target),
            )
            if value
        ]
        if ignored:
            raise UsageError(
                f"--compare reads two result files and runs nothing; drop {', '.join(ignored)}"
            )
    if ns.plot:
        check_plot_dir(ns.plot)
    if ns.compare:
        a, b = (load_results(p) for p in ns.compare)
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
        raise UsageError(f"--only {ns.only}: no workload matches; see --list")
    if ns.json:
        check_writable_file(ns.json)
    repeat = ns.repeat if ns.repeat is not None else (3 if ns.quick else 5)
    target = ns.target if ns.target is not None else (0.03 if ns.quick else 0.2)
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
        print(f"python -m conctools bench: error: {exc}", file=sys.stderr)
        return 2
    for p in paths:
        print(f"wrote {p}", file=sys.stderr)
    return 0
