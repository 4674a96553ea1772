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


def test_calibrate_scales_with_target(monkeypatch: pytest.MonkeyPatch) -> None:
    v = _counting_variant("x")
    assert calibrate(v, 0.005) >= 50  # a real run
    # With a clock that does not depend on the machine's load (1 us per op), the
    # op count is exactly proportional to the target.
    from types import SimpleNamespace

    from conctools.bench import harness

    monkeypatch.setattr(harness, "run_trial", lambda trial, n: SimpleNamespace(elapsed=n * 1e-6))
    assert calibrate(v, 0.005) == 5_000
    assert calibrate(v, 0.05) == 50_000
    assert calibrate(v, 1e9) == 50_000_000  # capped at max_ops


def test_run_suite_document_shape() -> None:
    w = Workload("w", "g", "desc", "base", (_counting_variant("base"), _counting_variant("other")))
    m = MetricWorkload("m", "g", "metric", lambda quick: [{"name": "a", "rate": 0.5}])
    doc = run_suite([w, m], threads=[1, 2], repeat=2, target=0.002, quick=True)
    assert doc["schema"] == 2
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


def _user_error(r: subprocess.CompletedProcess[str], *words: str) -> None:
    """A user mistake: exit status 2, one line on stderr naming the problem,
    no traceback, nothing measured (no progress lines)."""
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr and "[1/" not in r.stderr
    assert r.stdout == ""
    for w in words:
        assert w in lines[0], (w, lines[0])


def test_cli_list_and_bad_input() -> None:
    r = _cli("--list")
    assert r.returncode == 0 and "dict_rmw" in r.stdout
    _user_error(_cli("--only", "nothing-matches"), "nothing-matches")
    _user_error(_cli("--threads", "0"), "--threads")
    _user_error(_cli("--threads", "a,b"), "--threads")
    _user_error(_cli("--repeat", "0", "--only", "dict_rmw"), "--repeat")
    _user_error(_cli("--repeat", "x", "--only", "dict_rmw"), "--repeat")
    _user_error(_cli("--target", "nan", "--only", "dict_rmw"), "--target")
    _user_error(_cli("--target", "-1", "--only", "dict_rmw"), "--target")


def _main(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conctools", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_bare_command_prints_help_to_stdout() -> None:
    r = _main()
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout.startswith("usage: python -m conctools")
    assert "info" in r.stdout and "bench" in r.stdout and "conctools-ft" in r.stdout


def test_version() -> None:
    import conctools

    r = _main("--version")
    assert r.returncode == 0
    assert r.stdout.strip() == f"conctools {conctools.__version__} (conctools-ft)"


def test_unknown_command_is_one_line_error() -> None:
    _user_error(_main("frobnicate"), "frobnicate")
    _user_error(_main("info", "--nope"), "--nope")


def test_json_path_checked_before_running(tmp_path: Path) -> None:
    # A directory, and a path below a regular file: refused before any work.
    _user_error(_cli("--only", "shared_counter", "--json", str(tmp_path)), "is a directory")
    plain = tmp_path / "plain"
    plain.write_text("")
    _user_error(
        _cli("--only", "shared_counter", "--json", str(plain / "sub" / "r.json")),
        "not a directory",
    )


def test_check_writable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conctools.bench.cli import UsageError, check_writable_file

    check_writable_file(str(tmp_path / "new" / "deeper" / "r.json"))  # parents made later
    assert not (tmp_path / "new").exists()  # the check creates nothing
    existing = tmp_path / "r.json"
    existing.write_text("{}")
    check_writable_file(str(existing))
    # Permission bits do not stop root, so fake the answer of os.access.
    monkeypatch.setattr("conctools.bench.cli.os.access", lambda p, mode: False)
    with pytest.raises(UsageError, match="not writable"):
        check_writable_file(str(existing))
    with pytest.raises(UsageError, match="not writable"):
        check_writable_file(str(tmp_path / "other.json"))


def test_compare_rejects_missing_unreadable_and_foreign_files(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    doc = run_suite(
        [Workload("w", "g", "d", "base", (_counting_variant("base"),))],
        threads=[1],
        repeat=1,
        target=0.001,
    )
    good.write_text(json.dumps(doc))
    _user_error(_cli("--compare", str(tmp_path / "missing.json"), str(good)), "no such file")
    _user_error(_cli("--compare", str(good), str(tmp_path)), "is a directory")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    _user_error(_cli("--compare", str(good), str(broken)), "not JSON")
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    _user_error(_cli("--compare", str(binary), str(good)), str(binary))
    for foreign in ([1, 2], {"schema": 99}, {**doc, "workloads": [{"name": "x"}]}):
        other = tmp_path / "other.json"
        other.write_text(json.dumps(foreign))
        _user_error(_cli("--compare", str(good), str(other)), "not a bench result file")
    bad_row = json.loads(json.dumps(doc))
    del bad_row["workloads"][0]["results"][0]["ops_per_sec"]
    other.write_text(json.dumps(bad_row))
    _user_error(_cli("--compare", str(good), str(other)), "malformed result row")
    r = _cli("--compare", str(good), str(good))
    assert r.returncode == 0 and "g / w" in r.stdout
    # Options of a run make no sense with --compare: refused, not silently ignored.
    _user_error(
        _cli("--compare", str(good), str(good), "--json", str(tmp_path / "x.json"), "--quick"),
        "--json, --quick",
    )
    assert not (tmp_path / "x.json").exists()


def test_plot_needs_matplotlib_before_running(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from conctools.__main__ import main\n"
        f"sys.exit(main(['bench', '--only', 'shared_counter', '--plot', {str(tmp_path)!r}]))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    _user_error(r, "matplotlib", "pip install 'conctools-ft[bench]'")
    plain = tmp_path / "file"
    plain.write_text("")
    _user_error(_cli("--only", "shared_counter", "--plot", str(plain)), "not a directory")


def _doc(variants: dict[str, float], baseline: str = "base") -> dict[str, object]:
    def row(name: str, ops: float) -> dict[str, object]:
        return {
            "variant": name,
            "threads": 1,
            "ops_per_sec": {"median": ops, "min": ops, "max": ops, "samples": [ops]},
            "ratio_to_baseline": {"median": ops / variants[baseline]},
        }

    return {
        "schema": 1,
        "runtime": {"python_version": "3.13.15", "gil_enabled": True, "free_threaded_build": False},
        "workloads": [
            {
                "name": "w",
                "group": "g",
                "kind": "throughput",
                "baseline": baseline,
                "variants": [{"name": n, "note": ""} for n in variants],
                "results": [row(n, v) for n, v in variants.items()],
            }
        ],
    }


def test_compare_shows_variants_of_only_one_file() -> None:
    a = _doc({"base": 1e6, "only-a": 2e6})
    b = _doc({"base": 2e6, "peer": 4e6})
    lines = {ln.split()[0]: ln.split() for ln in compare_tables(a, b).splitlines() if ln}
    assert lines["base"][2:] == ["1.00M", "2.00M", "2.00", "1.00", "1.00"]
    assert lines["only-a"][2:] == ["2.00M", "-", "-", "2.00", "-"]
    assert lines["peer"][2:] == ["-", "4.00M", "-", "-", "2.00"]
    # A workload only one file has is shown too.
    b["workloads"][0]["name"] = "w2"  # type: ignore[index]
    text = compare_tables(a, b)
    assert "g / w2" in text and "(not in A)" in text and "(not in B)" in text


def test_missing_optional_baseline_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from conctools.bench import baselines

    monkeypatch.setitem(
        baselines.SUBSTITUTE_BASELINES, "stand-in", ("the real one", "no_such_module_xyz")
    )
    w = Workload("w", "g", "d", "stand-in", (_counting_variant("stand-in"),))
    doc = run_suite([w], threads=[1], repeat=1, target=0.001)
    note = doc["workloads"][0]["baseline_note"]
    assert "stand-in replaces the real one" in note and "no_such_module_xyz" in note
    assert "conctools-ft[bench]" in note
    assert note in format_results(doc)
    assert f"(A: {note})" in compare_tables(doc, doc)
    # An installed module: no note.
    monkeypatch.setitem(baselines.SUBSTITUTE_BASELINES, "stand-in", ("the real one", "json"))
    doc = run_suite([w], threads=[1], repeat=1, target=0.001)
    assert doc["workloads"][0]["baseline_note"] is None


def test_cache_stand_in_baseline_is_registered() -> None:
    """The cache workloads fall back to this variant without cachetools."""
    from conctools.bench.baselines import SUBSTITUTE_BASELINES

    variants = {v.name for w in all_workloads() if isinstance(w, Workload) for v in w.variants}
    assert set(SUBSTITUTE_BASELINES) <= variants


def test_bench_extra_installs_the_baselines() -> None:
    tomllib = pytest.importorskip("tomllib")

    from conctools.bench.baselines import SUBSTITUTE_BASELINES

    root = Path(__file__).resolve().parent.parent
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["bench"]
    for _, module in SUBSTITUTE_BASELINES.values():
        assert any(req.startswith(module) for req in extras), module
