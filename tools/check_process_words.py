#!/usr/bin/env python3
"""Fail when user-facing text carries words from the project's own process.

Users read the docs, the README, the changelog, docstrings, the command line's
help and the benchmark tables; none of them should mention "issue 6", "the
goals of the design issue", "the seed's hazard" or a "prototype".  Checked:

* ``docs/**/*.rst``, ``README.md``, ``CHANGELOG.md``;
* every docstring in ``conctools/**/*.py`` (module, class, function);
* command-line output: ``python -m conctools --help`` and each command's help,
  ``bench --list``, and every benchmark workload's name, description, notes and
  variant names (what the bench tables print);
* the committed benchmark results ``benchmarks/results/*.json`` (the docs
  render their variant names and notes).

Prints ``path:line: word: text`` for each hit and exits 1 when there is any.
Run from the repository root with conctools importable.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Each pattern names a word from our process, not from the product.
PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(rx, re.IGNORECASE))
    for name, rx in (
        ("issue number", r"\bissues?\s*#?\d+"),
        ("goals of the issue", r"\bgoals?\s+of\s+the\s+(?:design\s+)?issue\b"),
        ("design issue", r"\bdesign\s+issue\b"),
        ("pre-issue", r"\bpre-?issue\b"),
        ("prototype", r"\bprototypes?\b"),
        # "seed" as the starting project; a random seed (seed=, seed:) is fine.
        ("seed", r"\bseed's\b|\bthe\s+seed\b(?!\s*(?:=|value|argument|parameter|of\s+the\s+r))"),
        ("seed", r"\bseed\s+(?:project|code|version|repo(?:sitory)?|implementation)\b"),
    )
)


def find_words(text: str) -> Iterator[tuple[int, str, str]]:
    """``(line number, word, line)`` for every process word in ``text``."""
    for lineno, line in enumerate(text.splitlines(), 1):
        for name, rx in PATTERNS:
            if rx.search(line):
                yield lineno, name, line.strip()


def docstrings(source: str) -> Iterator[tuple[int, str]]:
    """``(first line, text)`` of every docstring in a Python module."""
    tree = ast.parse(source)
    nodes: list[ast.AST] = [tree]
    nodes += [
        n
        for n in ast.walk(tree)
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    ]
    for node in nodes:
        body = getattr(node, "body", [])
        if (
            body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            yield body[0].lineno, body[0].value.value


def check_text(label: str, text: str, first_line: int = 1) -> list[str]:
    return [f"{label}:{first_line + n - 1}: {word}: {line}" for n, word, line in find_words(text)]


def check_files(root: Path) -> list[str]:
    hits: list[str] = []
    prose = sorted((root / "docs").rglob("*.rst"))
    prose += [p for p in (root / "README.md", root / "CHANGELOG.md") if p.exists()]
    for path in prose:
        if "_build" in path.parts:
            continue
        hits += check_text(str(path.relative_to(root)), path.read_text(encoding="utf-8"))
    for path in sorted((root / "conctools").rglob("*.py")):
        rel = str(path.relative_to(root))
        for lineno, text in docstrings(path.read_text(encoding="utf-8")):
            hits += check_text(rel, text, lineno)
    for path in sorted((root / "benchmarks" / "results").glob("*.json")):
        rel = str(path.relative_to(root))
        texts = dict.fromkeys(json_strings(json.loads(path.read_text(encoding="utf-8"))))
        for text in texts:
            hits += [f"{rel}: {word}: {line}" for _, word, line in find_words(text)]
    return hits


def json_strings(doc: object) -> Iterator[str]:
    if isinstance(doc, str):
        yield doc
    elif isinstance(doc, dict):
        for k, v in doc.items():
            yield str(k)
            yield from json_strings(v)
    elif isinstance(doc, list):
        for v in doc:
            yield from json_strings(v)


def cli_texts() -> Iterator[tuple[str, str]]:
    """``(label, text)`` of what the command line prints (help, workload tables)."""
    from conctools.__main__ import build_parser
    from conctools.bench import Workload, all_workloads

    parser = build_parser()
    yield "python -m conctools --help", parser.format_help()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"python -m conctools {name} --help", sub.format_help()
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        from conctools.__main__ import main

        main(["bench", "--list"])
    yield "python -m conctools bench --list", out.getvalue()
    for w in all_workloads():
        texts: list[str] = [w.name, w.group, w.description]
        if isinstance(w, Workload):
            texts += [w.baseline, w.threads_note or ""]
            for v in w.variants:
                texts += [v.name, v.note]
        yield f"bench workload {w.name}", "\n".join(t for t in texts if t)


def check_cli() -> list[str]:
    hits: list[str] = []
    for label, text in cli_texts():
        hits += [f"[{label}]: {word}: {line}" for _, word, line in find_words(text)]
    return hits


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root")
    parser.add_argument("--no-cli", action="store_true", help="skip the command-line output")
    ns = parser.parse_args(list(argv) if argv is not None else None)
    hits = check_files(ns.root)
    if not ns.no_cli:
        hits += check_cli()
    for hit in hits:
        print(hit)
    if hits:
        print(
            f"{len(hits)} place(s) use words from our process; "
            "user-facing text speaks about the product",
            file=sys.stderr,
        )
        return 1
    print("no process words in docs, README, changelog, docstrings or command-line output")
    return 0


if __name__ == "__main__":
    sys.exit(main())
