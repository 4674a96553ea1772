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


# --------------------------------------------------- two implementations, one report


def _external_variant(name: str) -> Variant:
    v = _counting_variant(name)
    return Variant(v.name, v.make, note="a peer", external=True)


def _impl_doc(monkeypatch: pytest.MonkeyPatch, impl: str, secondary: bool) -> dict[str, object]:
    """A one-implementation document, as the run of ``impl`` writes it."""
    from conctools.bench import runner

    monkeypatch.setattr(
        runner, "impl_info", lambda: {"name": impl, "reason": f"{impl} here", "native_types": []}
    )
    monkeypatch.setattr(runner, "active_impl", lambda: impl)
    base = Variant("base", _counting_variant("base").make, external=True)
    w = Workload(
        "w", "g", "desc", "base", (base, _counting_variant("ours"), _external_variant("peer"))
    )
    m = MetricWorkload("m", "g", "metric", lambda quick: [{"name": impl, "rate": 0.5}])
    return run_suite(
        [w, m],
        threads=[1] if secondary else [1, 2],
        repeat=2,
        target=0.002,
        secondary=secondary,
    )


def test_merge_of_two_implementations(monkeypatch: pytest.MonkeyPatch) -> None:
    from conctools.bench.runner import merge

    native = _impl_doc(monkeypatch, "native", secondary=False)
    pure = _impl_doc(monkeypatch, "pure", secondary=True)
    # The secondary run skips the metric workload and the peers, never the baseline.
    assert [w["name"] for w in pure["workloads"]] == ["w"]  # type: ignore[index]
    got = {(r["variant"], r["threads"]) for r in pure["workloads"][0]["results"]}  # type: ignore[index]
    assert got == {("base", 1), ("ours", 1)}

    doc = merge([native, pure])
    assert doc["schema"] == 2
    assert [i["name"] for i in doc["implementations"]] == ["native", "pure"]
    assert doc["implementations"][1]["settings"]["threads"] == [1]
    assert doc["elapsed_seconds"] == pytest.approx(
        native["elapsed_seconds"] + pure["elapsed_seconds"],
        abs=0.02,  # type: ignore[operator]
    )
    tw, mw = doc["workloads"]
    assert mw["impl"] == "native" and mw["rows"] == [{"name": "native", "rate": 0.5}]
    rows = {(r["impl"], r["variant"], r["threads"]): r for r in tw["results"]}
    assert set(rows) == {
        ("native", "base", 1),
        ("native", "base", 2),
        ("native", "ours", 1),
        ("native", "ours", 2),
        ("native", "peer", 1),
        ("native", "peer", 2),
        ("pure", "base", 1),
        ("pure", "ours", 1),
    }
    assert set(tw["elapsed_seconds"]) == {"native", "pure"}
    # native/pure: the ratio of the two runs' medians, where both measured the row.
    nat, pur = rows[("native", "ours", 1)], rows[("pure", "ours", 1)]
    assert nat["native_over_pure"] == pytest.approx(
        nat["ops_per_sec"]["median"] / pur["ops_per_sec"]["median"]
    )
    assert "native_over_pure" not in rows[("native", "ours", 2)]
    assert "native_over_pure" not in rows[("native", "peer", 1)]
    assert "native_over_pure" not in pur
    assert [v["external"] for v in tw["variants"]] == [True, False, True]
    json.dumps(doc)

    text = format_results(doc)
    header = next(ln for ln in text.splitlines() if ln.startswith("variant"))
    assert "native ops/s" in header and "pure Python ops/s" in header and "native/pure" in header
    peer_line = next(ln for ln in text.splitlines() if ln.startswith("peer ") and " 1 " in ln)
    assert " - " in peer_line  # not measured by the pure run
    assert "pure Python: threads=1 repeat=2" in text
    cmp = compare_tables(doc, doc)
    cmp_header = next(ln.split() for ln in cmp.splitlines() if ln.startswith("variant"))
    assert cmp_header[:3] == ["variant", "impl", "threads"]
    assert any(ln.split()[:3] == ["ours", "pure", "Python"] for ln in cmp.splitlines() if ln)

    with pytest.raises(ValueError, match="twice"):
        merge([native, native])
    with pytest.raises(ValueError):
        merge([])


def test_old_result_files_still_read() -> None:
    """Schema 1 files (written before the accelerator) upgrade to pure Python rows,
    and the committed results render and compare."""
    from conctools.bench.cli import load_results
    from conctools.bench.runner import upgrade

    old = _doc({"base": 1e6, "ours": 2e6})
    new = upgrade(old)
    assert new["schema"] == 2 and [i["name"] for i in new["implementations"]] == ["pure"]
    assert {r["impl"] for r in new["workloads"][0]["results"]} == {"pure"}
    assert old["schema"] == 1  # the input is not modified
    assert upgrade(new) is new
    text = compare_tables(old, new)
    cmp_header = next(ln.split() for ln in text.splitlines() if ln.startswith("variant"))
    assert cmp_header[:2] == ["variant", "threads"]  # pure only: no implementation column
    root = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
    files = sorted(root.glob("*.json"))
    assert files
    for p in files:
        doc = load_results(str(p))
        assert doc["schema"] == 2
        assert "== " in format_results(doc)
    assert "B/A" in compare_tables(load_results(str(files[0])), load_results(str(files[-1])))


def test_format_problem_needs_impl_in_schema_2() -> None:
    from conctools.bench.report import format_problem

    doc = _doc({"base": 1e6})
    assert format_problem(doc) is None
    doc["schema"] = 2
    assert "without implementation" in str(format_problem(doc))
    assert "expected 1 or 2" in str(format_problem({"schema": 3}))


def test_plan_gives_the_secondary_runs_fewer_threads() -> None:
    import argparse

    from conctools.bench.cli import PRIMARY_DEFAULTS, SECONDARY_DEFAULTS, add_arguments, plan

    p = argparse.ArgumentParser()
    add_arguments(p)
    a, b = plan(p.parse_args([]), ["native", "pure"])
    assert (a.impl, a.threads, a.repeat, a.target, a.secondary) == (
        "native",
        *PRIMARY_DEFAULTS,
        False,
    )
    assert (b.impl, b.threads, b.repeat, b.target, b.secondary) == (
        "pure",
        *SECONDARY_DEFAULTS,
        True,
    )
    (only,) = plan(p.parse_args(["--impl", "pure"]), ["pure"])
    assert only.threads == PRIMARY_DEFAULTS[0] and not only.secondary
    a, b = plan(
        p.parse_args(["--threads", "3", "--repeat", "2", "--target", "0.5"]), ["native", "pure"]
    )
    assert a.threads == b.threads == (3,) and a.repeat == b.repeat == 2 and b.target == 0.5
    quick = plan(p.parse_args(["--quick"]), ["native", "pure"])
    assert quick[0].repeat == 3 and quick[1].threads == (1, 2)


def test_missing_native_measures_pure_only(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import argparse

    from conctools.bench import cli

    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    monkeypatch.delenv("CONCTOOLS_PURE_PYTHON", raising=False)
    monkeypatch.setattr(cli, "native_available", lambda: (False, "pure Python: not built (test)"))
    assert cli.default_impls() == ["pure"]
    with pytest.raises(cli.UsageError, match=r"--impl native: .*not built \(test\)"):
        cli.run(p.parse_args(["--impl", "native,pure", "--only", "shared_counter"]))
    # The default run measures pure Python alone and says why.
    from conctools.bench import runner

    monkeypatch.setattr(cli, "active_impl", lambda: "pure")
    monkeypatch.setattr(runner, "active_impl", lambda: "pure")
    monkeypatch.setattr(
        runner, "impl_info", lambda: {"name": "pure", "reason": "r", "native_types": []}
    )
    w = Workload("w", "g", "d", "base", (_counting_variant("base"),))
    monkeypatch.setattr(cli, "all_workloads", lambda: [w])
    out = tmp_path / "r.json"
    args = ["--threads", "1", "--repeat", "1", "--target", "0.001", "--json", str(out)]
    assert cli.run(p.parse_args(args)) == 0
    captured = capsys.readouterr()
    assert "measuring pure Python only: pure Python: not built (test)" in captured.err
    assert "native/pure" not in captured.out
    doc = json.loads(out.read_text())
    assert [i["name"] for i in doc["implementations"]] == ["pure"]
    # Forced pure Python: pure alone by default, even with the accelerator built.
    monkeypatch.setenv("CONCTOOLS_PURE_PYTHON", "1")
    monkeypatch.setattr(cli, "native_available", lambda: (True, "built"))
    assert cli.default_impls() == ["pure"]
    monkeypatch.setenv("CONCTOOLS_PURE_PYTHON", "0")
    assert cli.default_impls() == ["native", "pure"]


def _native_built() -> bool:
    import importlib.util

    return importlib.util.find_spec("conctools._native") is not None


def test_cli_bad_impl() -> None:
    _user_error(_cli("--impl", "fast", "--only", "shared_counter"), "--impl", "native, pure")
    _user_error(_cli("--impl", "pure,pure", "--only", "shared_counter"), "--impl", "twice")
    _user_error(_cli("--impl", "", "--only", "shared_counter"), "--impl")


@pytest.mark.skipif(not _native_built(), reason="the C accelerator is not built")
def test_cli_merges_native_and_pure_runs(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    common = ["--only", "shared_counter", "--threads", "1", "--repeat", "1", "--target", "0.002"]
    r = _cli("--impl", "native,pure", *common, "--json", str(out))
    assert r.returncode == 0, r.stderr
    assert "native: baseline: shared_counter" in r.stderr
    assert "pure: baseline: shared_counter" in r.stderr  # the child's progress
    assert "native/pure" in r.stdout
    doc = json.loads(out.read_text())
    impls = doc["implementations"]
    assert [i["name"] for i in impls] == ["native", "pure"]
    assert "CONCTOOLS_PURE_PYTHON" in impls[1]["reason"]
    (w,) = doc["workloads"]
    got = {(r["impl"], r["variant"]) for r in w["results"]}
    # Lock+int is the baseline (both runs); itertools.count runs no conctools code.
    assert got == {("native", "Lock+int"), ("native", "itertools.count"), ("pure", "Lock+int")}
    assert "native_over_pure" in next(r for r in w["results"] if r["impl"] == "native")
    # A process forced to pure Python still runs the native implementation in a child.
    env = {**__import__("os").environ, "CONCTOOLS_PURE_PYTHON": "1"}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "conctools",
            "bench",
            "--impl",
            "native",
            *common,
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert [i["name"] for i in json.loads(out.read_text())["implementations"]] == ["native"]


def test_worker_refuses_the_wrong_implementation(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "CONCTOOLS_PURE_PYTHON": "1"}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "conctools",
            "bench",
            "--worker",
            str(tmp_path / "w.json"),
            "--impl",
            "native",
            "--only",
            "shared_counter",
            "--threads",
            "1",
            "--repeat",
            "1",
            "--target",
            "0.001",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert r.returncode == 3 and "the native run runs pure" in r.stderr
    assert not (tmp_path / "w.json").exists()


def test_failed_child_run_is_reported(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from conctools.bench import cli

    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    monkeypatch.setattr(cli, "native_available", lambda: (True, "built"))
    monkeypatch.setattr(
        cli.subprocess,
        "run",
        lambda *a, **k: subprocess.CompletedProcess(a, 7),
    )
    # Whichever implementation this process runs, the other one is a (failing) child.
    other = "pure" if cli.active_impl() == "native" else "native"
    assert cli.run(p.parse_args(["--impl", other, "--only", "shared_counter"])) == 1
    assert f"the {other} run failed (exit status 7)" in capsys.readouterr().err


def test_peers_missing_leaves_conctools_and_baselines(monkeypatch: pytest.MonkeyPatch) -> None:
    from conctools.bench.workloads import peers

    monkeypatch.setattr(peers, "ft_conc", None)
    monkeypatch.setattr(peers, "cereggii", None)
    monkeypatch.setattr(peers, "thread_factory", None)
    counter = [v.name for v in peers._counter_variants()]
    assert counter == ["Lock+int", "conctools StripedCounter handle"]
    assert [v.name for v in peers._dict_variants()] == [
        "dict+Lock (tuned)",
        "conctools ShardedDict.handle()",
    ]
    assert [v.name for v in peers._queue_variants()] == ["queue.Queue", "conctools ConcurrentQueue"]
    # conctools variants are measured by every implementation, the others once.
    assert [v.external for v in peers._counter_variants()] == [True, False]


def test_peer_present_in_one_build_only_renders() -> None:
    """A peer installed on one build only: its cells in the other are '-'."""
    a = _doc({"base": 1e6, "ours": 2e6})
    b = _doc({"base": 1e6, "ours": 2e6, "ft_utils X": 3e6})
    lines = [ln.split() for ln in compare_tables(a, b).splitlines() if ln.startswith("ft_utils")]
    assert lines and lines[0][3] == "-"


def test_cache_peers_when_installed() -> None:
    from conctools.bench.workloads import cache

    names = {
        v.name: v for w in all_workloads() if w.name == "cache_getput_read" for v in w.variants
    }  # type: ignore[union-attr]
    for mod, name in ((cache.moka_py, "moka-py"), (cache.theine, "theine")):
        if mod is None:
            assert name not in names
            continue
        v = names[name]
        assert v.external
        r = run_trial(v.make(2), 200)  # verify checks every key is still cached
        assert r.ops == 400


def test_plot_of_two_implementations(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib.axes

    from conctools.bench.report import plot_results
    from conctools.bench.runner import merge

    doc = merge(
        [
            _impl_doc(monkeypatch, "native", secondary=False),
            _impl_doc(monkeypatch, "pure", secondary=True),
        ]
    )
    labels: list[str] = []
    real_plot = matplotlib.axes.Axes.plot

    def plot(self: object, *args: object, **kw: object) -> object:
        labels.append(str(kw.get("label")))
        return real_plot(self, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", plot)
    (path,) = plot_results([doc], tmp_path)
    assert path.name == "w.png" and path.stat().st_size > 0
    # The external baseline and peer once; ours for each implementation.
    assert labels == ["base (native)", "ours (native)", "ours (pure Python)", "peer (native)"]
