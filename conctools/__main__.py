"""Command line: ``python -m conctools info`` and ``python -m conctools bench``.

Bare ``python -m conctools`` prints the help (to stdout, exit status 0).  A
user mistake (a bad argument, an unreadable file) is reported as one line on
stderr with exit status 2, before any work starts, never as a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import NoReturn

from . import __version__
from ._internal.dist import DISTRIBUTION
from ._runtime import runtime_info

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``prog: error: message``), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _info(ns: argparse.Namespace) -> int:
    info = runtime_info()
    if ns.json:
        print(json.dumps(info.as_dict(), indent=2))
        return 0
    width = max(len(k) for k in info.as_dict())
    for key, value in info.as_dict().items():
        print(f"{key.replace('_', ' '):<{width}}  {value}")
    if info.accelerator != "native":
        # accelerator_reason reads "pure Python: <why>"
        print(f"notice: conctools runs {info.accelerator_reason}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .bench import cli as bench_cli

    parser = _Parser(
        prog="python -m conctools",
        description=(
            "conctools: thread-safe primitives for free-threaded CPython. "
            "'info' describes this interpreter, 'bench' runs the reference benchmarks."
        ),
        epilog=f"Installed as the '{DISTRIBUTION}' distribution; imported as 'conctools'.",
    )
    parser.add_argument(
        "--version", action="version", version=f"conctools {__version__} ({DISTRIBUTION})"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    p_info = sub.add_parser(
        "info",
        help="describe the interpreter's build, GIL state and conctools' implementation",
        description=(
            "Which build of CPython this is, whether the GIL is on right now, and which "
            "implementation of conctools runs (the C accelerator or pure Python) and why."
        ),
    )
    p_info.add_argument("--json", action="store_true", help="print JSON")
    p_info.set_defaults(func=_info)
    p_bench = sub.add_parser(
        "bench",
        help="run the reference benchmarks",
        description=(
            "Every primitive against the locked code you would otherwise write, "
            "at 1, 2 and 4 threads."
        ),
        epilog=(
            "The baselines the documentation uses (cachetools) and --plot (matplotlib) "
            f"come with the bench extra: pip install '{DISTRIBUTION}[bench]'."
        ),
    )
    bench_cli.add_arguments(p_bench)
    p_bench.set_defaults(func=bench_cli.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .bench.cli import UsageError

    parser = build_parser()
    ns = parser.parse_args(argv)
    if ns.command is None:
        parser.print_help(sys.stdout)
        return 0
    try:
        code: int = ns.func(ns)
    except UsageError as exc:
        print(f"{parser.prog} {ns.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog} {ns.command}: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
