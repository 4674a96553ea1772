"""``python -m conctools bench``: the reference benchmarks."""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .registry import all_workloads, select
from .report import MATPLOTLIB_HINT, compare_tables, format_problem, format_results, plot_results
from .runner import IMPLEMENTATIONS, active_impl, merge, run_suite, upgrade

#: Defaults of the first implementation's run (the full columns: 1/2/4 threads)
#: and of the others' (1/2 threads, shorter runs): (threads, repeat, target).
PRIMARY_DEFAULTS = ((1, 2, 4), 5, 0.15)
SECONDARY_DEFAULTS = ((1, 2), 5, 0.1)
QUICK_PRIMARY_DEFAULTS = ((1, 2, 4), 3, 0.03)
QUICK_SECONDARY_DEFAULTS = ((1, 2), 3, 0.02)

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


def _impls(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    bad = [n for n in names if n not in IMPLEMENTATIONS]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of {', '.join(IMPLEMENTATIONS)}"
            + (f", got {', '.join(bad)}" if bad else "")
        )
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"an implementation is named twice: {text}")
    return names


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="short runs (about a minute on 2 cores)")
    p.add_argument(
        "--impl",
        type=_impls,
        default=None,
        metavar="LIST",
        help="implementations of conctools to measure, each in its own process: native "
        "(the C accelerator), pure (CONCTOOLS_PURE_PYTHON=1); default native,pure when "
        "the accelerator is built, else pure",
    )
    p.add_argument(
        "--threads",
        type=_threads,
        default=None,
        help="comma-separated thread counts (default 1,2,4 for the first implementation, "
        "1,2 for the others)",
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
        help="seconds per timed run (default 0.15 for the first implementation, 0.1 for "
        "the others; quick 0.03 / 0.02)",
    )
    # Internal: run one implementation's share in a child process.
    p.add_argument("--worker", metavar="FILE", help=argparse.SUPPRESS)
    p.add_argument("--secondary", action="store_true", help=argparse.SUPPRESS)
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
    return upgrade(doc)


def _forced_pure() -> bool:
    return os.environ.get("CONCTOOLS_PURE_PYTHON", "") not in ("", "0")


def native_available() -> tuple[bool, str]:
    """Whether a run of the native implementation can happen, and why not."""
    from .._internal import native

    if native.ACTIVE == "native":
        return True, native.REASON
    if _forced_pure() and importlib.util.find_spec("conctools._native") is not None:
        return True, "built (this process runs pure Python: CONCTOOLS_PURE_PYTHON is set)"
    return False, native.REASON


def default_impls() -> list[str]:
    """native,pure when the accelerator is built; pure alone when it is not
    or when ``CONCTOOLS_PURE_PYTHON`` forces pure Python."""
    if _forced_pure():
        return ["pure"]
    ok, _ = native_available()
    return ["native", "pure"] if ok else ["pure"]


@dataclass(frozen=True)
class ImplRun:
    """One implementation's share of a run."""

    impl: str
    threads: tuple[int, ...]
    repeat: int
    target: float
    secondary: bool


def plan(ns: argparse.Namespace, names: Sequence[str]) -> list[ImplRun]:
    """Settings of each implementation's run: the first gets the full
    defaults, the others fewer thread counts and shorter runs (explicit
    --threads/--repeat/--target apply to every run)."""
    runs = []
    for i, name in enumerate(names):
        if ns.quick:
            threads, repeat, target = QUICK_SECONDARY_DEFAULTS if i else QUICK_PRIMARY_DEFAULTS
        else:
            threads, repeat, target = SECONDARY_DEFAULTS if i else PRIMARY_DEFAULTS
        runs.append(
            ImplRun(
                impl=name,
                threads=tuple(ns.threads or threads),
                repeat=ns.repeat or repeat,
                target=ns.target or target,
                secondary=i > 0,
            )
        )
    return runs


def _child_env(impl: str) -> dict[str, str]:
    env = dict(os.environ)
    if impl == "pure":
        env["CONCTOOLS_PURE_PYTHON"] = "1"
    else:
        env.pop("CONCTOOLS_PURE_PYTHON", None)
    return env


def _run_child(r: ImplRun, ns: argparse.Namespace) -> dict[str, Any]:
    """Run one implementation's share in a fresh interpreter (the choice of
    implementation is made at import) and read back its document."""
    with tempfile.TemporaryDirectory(prefix="conctools-bench-") as tmp:
        out = Path(tmp) / f"{r.impl}.json"
        cmd = [
            sys.executable,
            "-m",
            "conctools",
            "bench",
            "--worker",
            str(out),
            "--impl",
            r.impl,
            "--threads",
            ",".join(map(str, r.threads)),
            "--repeat",
            str(r.repeat),
            "--target",
            repr(r.target),
        ]
        if ns.only:
            cmd += ["--only", ns.only]
        if ns.quick:
            cmd.append("--quick")
        if r.secondary:
            cmd.append("--secondary")
        proc = subprocess.run(cmd, env=_child_env(r.impl), stdout=subprocess.DEVNULL, check=False)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(
                f"the {r.impl} run failed (exit status {proc.returncode}); see its output above"
            )
        with open(out, encoding="utf-8") as fh:
            doc: dict[str, Any] = json.load(fh)
    return doc


def _run_impls(ns: argparse.Namespace, workloads: list[Any], runs: list[ImplRun]) -> dict[str, Any]:
    here = active_impl()
    docs = []
    for r in runs:
        if r.impl == here:
            docs.append(
                run_suite(
                    workloads,
                    threads=list(r.threads),
                    repeat=r.repeat,
                    target=r.target,
                    quick=ns.quick,
                    secondary=r.secondary,
                )
            )
        else:
            docs.append(_run_child(r, ns))
    return merge(docs)


def _worker(ns: argparse.Namespace, workloads: list[Any]) -> int:
    wanted = ns.impl[0] if ns.impl else active_impl()
    if active_impl() != wanted:
        from .._internal import native

        print(
            f"python -m conctools bench: error: the {wanted} run runs {active_impl()} "
            f"({native.REASON})",
            file=sys.stderr,
        )
        return 3
    doc = run_suite(
        workloads,
        threads=ns.threads,
        repeat=ns.repeat,
        target=ns.target,
        quick=ns.quick,
        secondary=ns.secondary,
    )
    with open(ns.worker, "w", encoding="utf-8") as fh:
        json.dump(doc, fh)
    return 0


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
                ("--impl", ns.impl),
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
    if ns.worker:
        return _worker(ns, workloads)
    if ns.json:
        check_writable_file(ns.json)
    names = ns.impl or default_impls()
    if "native" in names:
        ok, reason = native_available()
        if not ok:
            raise UsageError(f"--impl native: the C accelerator is not available ({reason})")
    elif ns.impl is None:
        _, reason = native_available()
        print(f"conctools bench: measuring pure Python only: {reason}", file=sys.stderr)
    try:
        doc = _run_impls(ns, workloads, plan(ns, names))
    except RuntimeError as exc:
        print(f"python -m conctools bench: error: {exc}", file=sys.stderr)
        return 1
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
