"""The bench harness, runner, report and CLI (not the speed of anything)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conctools.bench import Trial, Variant, Workload, all_workloads, run_suite, run_trial, select
from conctools.bench.harness import MetricWorkload, calibrate
from conctools.bench.report import compare_tables, format_results, human


def _counting_variant(name: str, started: list[int] | None = None) -> Variant:
    def make(threads: int) -> Trial:
        box = [0]
        lock = threading.Lock()

        def body(n: int) -> None:
            if started is not None:
                started.append(1)
            for _ in range(n):
                with lock:
                    box[0] += 1

        def verify(n: int) -> None:
            assert box[0] == n * threads

        return Trial([body] * threads, verify)

    return Variant(name, make)


def test_run_trial_counts_and_verifies() -> None:
    started: list[int] = []
    r = run_trial(_counting_variant("x", started).make(3), 100)
    assert r.ops == 300 and r.counts == {"ops": 300}
    assert len(started) == 3
    assert r.elapsed > 0


def test_run_trial_named_counts() -> None:
    def body(n: int) -> dict[str, int]:
        return {"read": n, "write": 1}

    r = run_trial(Trial([body, body]), 10)
    assert r.counts == {"read": 20, "write": 2}
    assert r.ops == 22


def test_run_trial_propagates_body_error_and_verify_error() -> None:
    def bad(n: int) -> None:
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        run_trial(Trial([bad, lambda n: None]), 1)

    def verify(n: int) -> None:
        raise AssertionError("wrong result")

    with pytest.raises(AssertionError, match="wrong result"):
        run_trial(Trial([lambda n: None], verify), 1)


def test_calibrate_scales_with_target() -> None:
    v = _counting_variant("x")
    small = calibrate(v, 0.005)
    large = calibrate(v, 0.05)
    assert 50 <= small < large


def test_run_suite_document_shape() -> None:
    w = Workload("w", "g", "desc", "base", (_counting_variant("base"), _counting_variant("other")))
    m = MetricWorkload("m", "g", "metric", lambda quick: [{"name": "a", "rate": 0.5}])
    doc = run_suite([w, m], threads=[1, 2], repeat=2, target=0.002, quick=True)
    assert doc["schema"] == 1
    assert {"python_version", "gil_enabled", "free_threaded_build", "cpu_count"} <= set(
        doc["runtime"]
    )
    tw, mw = doc["workloads"]
    assert tw["baseline"] == "base" and tw["kind"] == "throughput"
    rows = {(r["variant"], r["threads"]): r for r in tw["results"]}
    assert set(rows) == {("base", 1), ("base", 2), ("other", 1), ("other", 2)}
    for r in rows.values():
        assert len(r["ops_per_sec"]["samples"]) == 2
        assert r["ops_per_sec"]["min"] <= r["ops_per_sec"]["median"] <= r["ops_per_sec"]["max"]
    assert rows[("base", 2)]["ratio_to_baseline"]["median"] == 1.0
    assert mw["rows"] == [{"name": "a", "rate": 0.5}]
    text = format_results(doc)
    assert "g / w" in text and "g / m" in text
    assert "1.00" in compare_tables(doc, doc)
    json.dumps(doc)  # serialisable


def test_max_threads_skips_variant() -> None:
    v = _counting_variant("ceiling")
    limited = Variant(v.name, v.make, max_threads=1)
    w = Workload("w", "g", "d", "base", (_counting_variant("base"), limited))
    doc = run_suite([w], threads=[1, 2], repeat=1, target=0.002)
    got = {(r["variant"], r["threads"]) for r in doc["workloads"][0]["results"]}
    assert ("ceiling", 2) not in got and ("ceiling", 1) in got


def test_registry_and_select() -> None:
    ws = all_workloads()
    names = {w.name for w in ws}
    assert {"shared_counter", "dict_rmw", "cpu_bound"} <= names
    assert len(names) == len(ws), "workload names must be unique"
    only = select(ws, "baseline")
    assert only and all(w.group == "baseline" for w in only)
    globbed = [w.name for w in select(ws, "dict_*")]
    assert "dict_rmw" in globbed and all(n.startswith("dict_") for n in globbed)
    assert [w.name for w in select(ws, "nothing, dict_rmw")] == ["dict_rmw"]
    assert select(ws, "no-such-thing") == []


def test_every_workload_has_its_baseline() -> None:
    for w in all_workloads():
        if isinstance(w, Workload):
            assert w.baseline in [v.name for v in w.variants], w.name


def test_human() -> None:
    assert human(1_500_000) == "1.50M"
    assert human(2_000) == "2.00k"
    assert human(12) == "12"
    assert human(float("nan")) == "-"


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conctools", "bench", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        check=False,
    )


def test_cli_runs_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    r = _cli(
        "--only",
        "shared_counter",
        "--threads",
        "1,2",
        "--repeat",
        "1",
        "--target",
        "0.002",
        "--json",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    assert "shared_counter" in r.stdout and "Lock+int" in r.stdout
    assert "[1/1]" in r.stderr  # progress goes to stderr
    doc = json.loads(out.read_text())
    assert doc["workloads"][0]["name"] == "shared_counter"
    r = _cli("--compare", str(out), str(out))
    assert r.returncode == 0 and "B/A" in r.stdout


def test_cli_list_and_bad_input() -> None:
    r = _cli("--list")
    assert r.returncode == 0 and "dict_rmw" in r.stdout
    assert _cli("--only", "nothing-matches").returncode == 2
    assert _cli("--threads", "0").returncode == 2
    assert _cli("--threads", "a,b").returncode == 2
    assert _cli("--repeat", "0", "--only", "dict_rmw").returncode == 2
