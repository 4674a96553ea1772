"""Command line: ``python -m conctools info`` and ``python -m conctools bench``."""

from __future__ import annotations

import argparse
import json
import sys

from ._runtime import runtime_info


def _info(ns: argparse.Namespace) -> int:
    info = runtime_info()
    if ns.json:
        print(json.dumps(info.as_dict(), indent=2))
        return 0
    width = max(len(k) for k in info.as_dict())
    for key, value in info.as_dict().items():
        print(f"{key.replace('_', ' '):<{width}}  {value}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from .bench import cli as bench_cli

    parser = argparse.ArgumentParser(
        prog="python -m conctools", description="conctools command line"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_info = sub.add_parser("info", help="describe the interpreter's build and GIL state")
    p_info.add_argument("--json", action="store_true", help="print JSON")
    p_info.set_defaults(func=_info)
    p_bench = sub.add_parser("bench", help="run the reference benchmarks")
    bench_cli.add_arguments(p_bench)
    p_bench.set_defaults(func=bench_cli.run)
    ns = parser.parse_args(argv)
    code: int = ns.func(ns)
    return code


if __name__ == "__main__":
    sys.exit(main())
