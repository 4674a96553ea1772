"""The README's Python examples run as written (doctest), and its commands are the real ones."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```$", re.S | re.M)
TEST_COMMAND = "python3 -m pip install nox && python3 -m nox"


def blocks(lang: str) -> list[str]:
    return [m["body"] for m in FENCE.finditer(README.read_text()) if m["lang"] == lang]


def test_quickstart_blocks_are_short() -> None:
    examples = blocks("pycon")
    assert len(examples) >= 4
    for body in examples:
        assert len(body.splitlines()) < 10, body


def test_readme_examples_run() -> None:
    """All ``pycon`` blocks, in order, as one doctest (names carry over as in a session)."""
    text = "\n".join(blocks("pycon"))
    test = doctest.DocTestParser().get_doctest(text, {}, "README.md", str(README), 0)
    assert len(test.examples) >= 15
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    failures: list[str] = []
    runner.run(test, out=failures.append)
    assert runner.failures == 0, "".join(failures)
    assert runner.tries == len(test.examples)


def test_readme_examples_can_fail() -> None:
    """The runner above does report a wrong expected output."""
    test = doctest.DocTestParser().get_doctest(">>> 1 + 1\n3\n", {}, "x", "x", 0)
    runner = doctest.DocTestRunner()
    runner.run(test, out=lambda s: None)
    assert runner.failures == 1


def test_the_two_commands() -> None:
    consoles = "\n".join(blocks("console"))
    assert "python3 -m conctools bench" in consoles
    assert TEST_COMMAND in consoles.splitlines()
    # The test command is exactly what CI runs.
    assert TEST_COMMAND in (ROOT / ".ci" / "run").read_text().splitlines()


def test_install_name() -> None:
    text = README.read_text()
    assert "pip install conctools-ft" in text
    assert not re.search(r"pip install ['\"]?conctools(?![-\w])", text)
