from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig

import pytest

import conctools
from conctools import _runtime


def test_free_threaded_build_matches_sysconfig() -> None:
    assert conctools.free_threaded_build() is bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def test_gil_enabled_matches_sys() -> None:
    probe = getattr(sys, "_is_gil_enabled", None)
    expected = True if probe is None else probe()
    assert conctools.gil_enabled() is expected


def test_gil_enabled_true_without_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(sys, "_is_gil_enabled", raising=False)
    assert conctools.gil_enabled() is True


@pytest.mark.parametrize(
    ("ft", "gil", "summary"),
    [
        (False, True, "Build does not support free-threading."),
        (True, True, "Running with the GIL enabled."),
        (True, False, "Running in free-threaded mode."),
    ],
)
def test_summary_cases(monkeypatch: pytest.MonkeyPatch, ft: bool, gil: bool, summary: str) -> None:
    monkeypatch.setattr(_runtime, "free_threaded_build", lambda: ft)
    monkeypatch.setattr(_runtime, "gil_enabled", lambda: gil)
    info = _runtime.runtime_info()
    assert info.summary == summary
    assert info.free_threaded_build is ft
    assert info.gil_enabled is gil


def test_runtime_info_fields() -> None:
    info = conctools.runtime_info()
    assert info.python_version == ".".join(map(str, sys.version_info[:3]))
    assert info.implementation == "CPython"
    assert info.cpu_count >= 1
    if hasattr(os, "sched_getaffinity"):
        assert info.cpu_count <= len(os.sched_getaffinity(0))
    with pytest.raises(AttributeError):
        info.cpu_count = 3  # type: ignore[misc]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conctools", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_cli_info_text_and_json() -> None:
    r = _run("info")
    assert r.returncode == 0, r.stderr
    assert conctools.runtime_info().summary in r.stdout
    r = _run("info", "--json")
    assert r.returncode == 0
    data = json.loads(r.stdout)
    assert data["summary"] == conctools.runtime_info().summary
    assert set(data) >= {
        "python_version",
        "implementation",
        "free_threaded_build",
        "gil_enabled",
        "cpu_count",
        "summary",
    }


@pytest.mark.skipif(not conctools.free_threaded_build(), reason="needs a free-threaded build")
def test_cli_info_gil_forced_on() -> None:
    env = dict(os.environ, PYTHON_GIL="1")
    data = json.loads(_run("info", "--json", env=env).stdout)
    assert data["summary"] == "Running with the GIL enabled."
    env["PYTHON_GIL"] = "0"
    data = json.loads(_run("info", "--json", env=env).stdout)
    assert data["summary"] == "Running in free-threaded mode."
