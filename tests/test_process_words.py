"""tools/check_process_words.py: what it flags, what it lets through."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tools" / "check_process_words.py"


@pytest.fixture(scope="module")
def check() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_process_words", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["check_process_words"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize(
    "text",
    [
        "Measured against the goals of issue 6.",
        "Goals of the design issue",
        "Goals of the issue",
        "as agreed in issue #12",
        "beat the pre-issue 64-shard layout",
        "the local-cell prototype",
        "Prototypes were slower.",
        "The seed's hazard is the shared dict",
        "the seed project used a dict",
        "This fixes the seed.",
    ],
)
def test_flags_process_words(check: ModuleType, text: str) -> None:
    assert list(check.find_words(text)), text


@pytest.mark.parametrize(
    "text",
    [
        "rng = random.Random(seed)",
        "``seed``: the random seed of the fault schedule",
        "key streams drawn once per (threads, seed)",
        "the seed of the random generator",
        "inject_faults(..., seed=1)",
        "Known issues are listed in the changelog.",
        "a design that avoids the issue of torn reads",
    ],
)
def test_lets_product_words_through(check: ModuleType, text: str) -> None:
    assert not list(check.find_words(text)), text


def test_docstrings_found_with_line_numbers(check: ModuleType) -> None:
    src = (
        '"""Module doc."""\n\n\ndef f():\n    """Beats the prototype."""\n\n\n'
        'class C:\n    """C."""\n'
    )
    found = list(check.docstrings(src))
    assert [t for _, t in found] == ["Module doc.", "Beats the prototype.", "C."]
    assert check.check_text("m.py", found[1][1], found[1][0]) == [
        "m.py:5: prototype: Beats the prototype."
    ]


def test_check_files_reports_each_kind(check: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "docs" / "primitives").mkdir(parents=True)
    (tmp_path / "docs" / "primitives" / "x.rst").write_text("X\n=\n\nGoals of the issue\n")
    (tmp_path / "docs" / "_build").mkdir()
    (tmp_path / "docs" / "_build" / "old.rst").write_text("issue 1\n")  # build output: skipped
    (tmp_path / "README.md").write_text("# x\n\nclean\n")
    (tmp_path / "conctools").mkdir()
    (tmp_path / "conctools" / "m.py").write_text('def f():\n    """See issue 3."""\n')
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "r.json").write_text(
        '{"variants": [{"name": "cell prototype"}, {"name": "cell prototype"}]}'
    )
    hits = check.check_files(tmp_path)
    assert hits == [
        "docs/primitives/x.rst:4: goals of the issue: Goals of the issue",
        "conctools/m.py:2: issue number: See issue 3.",
        "benchmarks/results/r.json: prototype: cell prototype",
    ]
    assert check.main(["--root", str(tmp_path), "--no-cli"]) == 1
    for p in (tmp_path / "docs" / "primitives" / "x.rst", tmp_path / "conctools" / "m.py"):
        p.unlink()
    (tmp_path / "benchmarks" / "results" / "r.json").write_text("{}")
    assert check.main(["--root", str(tmp_path), "--no-cli"]) == 0


def test_cli_help_and_readme_are_clean(check: ModuleType) -> None:
    for label, text in check.cli_texts():
        if label.startswith("python -m conctools"):
            assert not list(check.find_words(text)), label
    for name in ("README.md", "CHANGELOG.md"):
        assert not list(check.find_words((ROOT / name).read_text())), name
