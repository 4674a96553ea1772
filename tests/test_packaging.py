"""The distribution name, install hints and optional-dependency errors."""

from __future__ import annotations

import importlib
import sys

import pytest

from conctools._internal.dist import DISTRIBUTION, install_hint


def test_distribution_name_and_hint() -> None:
    assert DISTRIBUTION == "conctools-ft"
    assert install_hint("test") == "pip install 'conctools-ft[test]'"


def test_pyproject_uses_the_distribution_name() -> None:
    tomllib = pytest.importorskip("tomllib")
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    meta = tomllib.loads((root / "pyproject.toml").read_text())
    project = meta["project"]
    assert project["name"] == DISTRIBUTION
    # A PEP 639 license string needs setuptools >= 77 to build.
    assert isinstance(project["license"], str)
    assert "setuptools>=77" in meta["build-system"]["requires"]
    assert {"test", "docs", "bench"} <= set(project["optional-dependencies"])


def test_strategies_without_hypothesis_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "hypothesis", None)  # import hypothesis fails
    monkeypatch.delitem(sys.modules, "conctools.testing.strategies", raising=False)
    with pytest.raises(ImportError) as info:
        importlib.import_module("conctools.testing.strategies")
    message = str(info.value)
    assert "pip install 'conctools-ft[test]'" in message
    assert "hypothesis" in message
    assert info.value.name == "hypothesis"
