"""tools/provision_python.py: the pure parts (no build here)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "tools" / "provision_python.py"


@pytest.fixture(scope="module")
def prov() -> ModuleType:
    spec = importlib.util.spec_from_file_location("provision_python", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["provision_python"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_parse_uris_both_formats(prov: ModuleType) -> None:
    text = """
# deb http://ignored.invalid/debian sid main
deb [arch=amd64] http://mirror.invalid/debian bookworm main
Types: deb
URIs: http://other.invalid/debian-security
Suites: bookworm-security
"""
    assert prov.parse_uris(text) == [
        "http://mirror.invalid/debian",
        "http://other.invalid/debian-security",
    ]


def test_archive_uri_prefers_main_archive(prov: ModuleType, tmp_path: Path) -> None:
    a = tmp_path / "a.sources"
    a.write_text("Types: deb\nURIs: http://x.invalid/debian-security\n")
    b = tmp_path / "b.list"
    b.write_text("deb http://x.invalid/debian/ bookworm main\n")
    assert prov.archive_uri([a, b]) == "http://x.invalid/debian"
    with pytest.raises(SystemExit):
        prov.archive_uri([tmp_path / "missing.list"])


def test_version_key_orders_debian_versions(prov: ModuleType) -> None:
    versions = ["3.13.15-1", "3.14.9-1", "3.14.10-1", "3.13.18-1"]
    assert sorted(versions, key=prov.version_key, reverse=True) == [
        "3.14.10-1",
        "3.14.9-1",
        "3.13.18-1",
        "3.13.15-1",
    ]


def test_from_cache_needs_complete_pairs(prov: ModuleType, tmp_path: Path) -> None:
    def fake(version: str, suffix: str, complete: bool) -> None:
        minor = ".".join(version.split(".")[:2])
        bindir = tmp_path / f"cpython-{version}-{suffix}" / "bin"
        bindir.mkdir(parents=True)
        (bindir / f"python{minor}{'t' if suffix == 'ft' else ''}").write_text("")
        if complete:
            (bindir.parent / ".complete").write_text(version)

    assert prov.from_cache(tmp_path) is None
    fake("3.13.15", "ft", True)
    assert prov.from_cache(tmp_path) is None  # no GIL twin yet
    fake("3.13.15", "gil", False)
    assert prov.from_cache(tmp_path) is None  # twin's build did not finish
    (tmp_path / "cpython-3.13.15-gil" / ".complete").write_text("3.13.15")
    ft, gil = prov.from_cache(tmp_path)
    assert ft.endswith("cpython-3.13.15-ft/bin/python3.13t")
    assert gil.endswith("cpython-3.13.15-gil/bin/python3.13")
    fake("3.14.1", "ft", True)
    fake("3.14.1", "gil", True)
    assert prov.from_cache(tmp_path)[0].endswith("python3.14t")  # newest pair wins


def test_cache_dir_env_override(
    prov: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CONCTOOLS_PYTHON_CACHE", str(tmp_path))
    assert prov.cache_dir() == tmp_path
    monkeypatch.delenv("CONCTOOLS_PYTHON_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert prov.cache_dir() == tmp_path / "conctools" / "python"


def test_script_finds_existing_interpreters_without_building() -> None:
    import subprocess

    r = subprocess.run(
        [sys.executable, str(SCRIPT), "--no-build", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if r.returncode != 0:
        pytest.skip("no provisioned interpreters on this machine")
    import json

    paths = json.loads(r.stdout)
    assert set(paths) == {"freethreaded", "gil"}
    assert all(Path(p).exists() for p in paths.values())


def test_fmt_elapsed(prov: ModuleType) -> None:
    assert prov.fmt_elapsed(0.4) == "0s"
    assert prov.fmt_elapsed(42) == "42s"
    assert prov.fmt_elapsed(185) == "3m05s"


def test_last_line(prov: ModuleType, tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    assert prov.last_line(log) == ""  # missing file
    log.write_text("gcc -c a.c\n" + "x" * 200 + "\n\n")
    assert prov.last_line(log, limit=20) == "x" * 17 + "..."


def test_stage_logs_start_heartbeats_and_elapsed(
    prov: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import time

    log = tmp_path / "build.log"
    log.write_text("compiling Objects/dictobject.c\n")
    with prov.stage("[1/2] CPython 3.13.15 free-threaded: build", logfile=log, heartbeat=0.02):
        time.sleep(0.15)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "[provision] [1/2] CPython 3.13.15 free-threaded: build ..."
    beats = [ln for ln in err if "running for" in ln]
    assert beats and all("compiling Objects/dictobject.c" in ln for ln in beats)
    assert err[-1].startswith("[provision] [1/2] CPython 3.13.15 free-threaded: build: done in ")
    with pytest.raises(SystemExit), prov.stage("install", heartbeat=10):
        raise SystemExit("make install failed")
    assert "install: failed after" in capsys.readouterr().err


def test_nox_provisioning_passes_progress_through(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """nox captures a session command's output; provisioning progress must still
    reach the console while it happens (stderr is not captured)."""
    pytest.importorskip("nox")
    root = SCRIPT.parent.parent
    monkeypatch.syspath_prepend(str(root))
    import noxfile

    fake = tmp_path / "fake_provision.py"
    fake.write_text(
        "import json, sys\n"
        "print('[provision] configure ...', file=sys.stderr)\n"
        "print(json.dumps({'freethreaded': 'ft', 'gil': 'gil'}))\n"
    )
    monkeypatch.setattr(noxfile, "PROVISION_SCRIPT", fake)
    monkeypatch.setattr(noxfile, "_provisioned", {})

    class Session:
        def log(self, msg: str) -> None:
            pass

        def error(self, msg: str) -> None:
            raise AssertionError(msg)

    assert noxfile._provision(Session()) == {"freethreaded": "ft", "gil": "gil"}  # type: ignore[arg-type]
    assert "[provision] configure ..." in capfd.readouterr().err


def test_build_reports_every_stage(
    prov: ModuleType,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """build() on a stand-in source tree (a configure script and a Makefile):
    each stage is announced and timed, and the install marks the prefix complete."""
    import shutil
    import tarfile

    if not shutil.which("make"):
        pytest.skip("make is not installed")
    src = tmp_path / "src" / "Python-9.9.9"
    src.mkdir(parents=True)
    (src / "configure").write_text(
        "#!/bin/sh\necho checking for a stand-in compiler... yes\n"
        'for a in "$@"; do case $a in --prefix=*) echo "PREFIX=${a#--prefix=}" > config.mk;; '
        "esac; done\n"
    )
    (src / "configure").chmod(0o755)
    (src / "Makefile").write_text(
        "include config.mk\n"
        "all:\n\t@echo compiling Objects/dictobject.c\n\t@sleep 0.3\n"
        "install:\n\t@echo installing\n\t@mkdir -p $(PREFIX)\n"
    )
    tarball = tmp_path / "Python-9.9.9.tar.gz"
    with tarfile.open(tarball, "w:gz") as tf:
        tf.add(src, arcname="Python-9.9.9")
    monkeypatch.setattr(prov, "HEARTBEAT", 0.05)
    prefix = tmp_path / "prefix"
    work = tmp_path / "work"
    work.mkdir()
    prov.build(tarball, "9.9.9", prefix, True, work, step="[1/2] ")
    err = capsys.readouterr().err
    tag = "[provision] [1/2] CPython 9.9.9 free-threaded"
    for stage in ("extract", "configure", "build (make -j", "install"):
        assert f"{tag}: {stage}" in err, stage
    assert err.count(": done in ") == 4
    assert "running for" in err and "compiling Objects/dictobject.c" in err  # heartbeat
    assert (prefix / ".complete").read_text() == "9.9.9\n"


def test_configure_args_of_each_build(prov: ModuleType, tmp_path: Path) -> None:
    gil = prov.configure_args(tmp_path, False)
    ft = prov.configure_args(tmp_path, True)
    tsan = prov.configure_args(tmp_path, True, True)
    assert "--disable-gil" not in gil and "--with-thread-sanitizer" not in gil
    assert "--disable-gil" in ft and "--with-thread-sanitizer" not in ft
    assert {"--disable-gil", "--with-thread-sanitizer"} <= set(tsan)
    assert f"--prefix={tmp_path}" in tsan


def test_tsan_interpreter_cached_beside_the_pair(prov: ModuleType, tmp_path: Path) -> None:
    for suffix in ("ft", "gil", "ft-tsan"):
        name = "python3.13" if suffix == "gil" else "python3.13t"
        bindir = tmp_path / f"cpython-3.13.15-{suffix}" / "bin"
        bindir.mkdir(parents=True)
        (bindir / name).write_text("")
        if suffix != "ft-tsan":
            (bindir.parent / ".complete").write_text("3.13.15")
    assert prov.tsan_from_cache(tmp_path, "3.13.15") is None  # build not finished
    (tmp_path / "cpython-3.13.15-ft-tsan" / ".complete").write_text("3.13.15")
    tsan = prov.tsan_from_cache(tmp_path, "3.13.15")
    assert tsan.endswith("cpython-3.13.15-ft-tsan/bin/python3.13t")
    assert prov.tsan_from_cache(tmp_path, "3.13.16") is None  # same version only
    ft, _ = prov.from_cache(tmp_path)  # the TSan build is never taken for the pair
    assert ft.endswith("cpython-3.13.15-ft/bin/python3.13t")


def test_source_tarball_kept_for_later_builds(prov: ModuleType, tmp_path: Path) -> None:
    root = tmp_path / "cache"
    assert prov.cached_source(root, "3.13.15") is None
    downloaded = tmp_path / "python3.13_3.13.15.orig.tar.xz"
    downloaded.write_bytes(b"tarball")
    kept = prov.keep_source(root, downloaded)
    assert kept.parent == root / "sources" and kept.read_bytes() == b"tarball"
    assert prov.cached_source(root, "3.13.15") == kept
    assert prov.cached_source(root, "3.13.1") is None
    assert prov.keep_source(root, downloaded) == kept  # idempotent


def test_tsan_build_tolerates_reports_inside_cpython_build(
    prov: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The instrumented interpreter runs during its own build; TSan's exit status
    for a report there must not fail the build (TSAN_OPTIONS of the build steps)."""
    import shutil
    import tarfile

    if not shutil.which("make"):
        pytest.skip("make is not installed")
    src = tmp_path / "src" / "Python-9.9.9"
    src.mkdir(parents=True)
    (src / "configure").write_text(
        '#!/bin/sh\nfor a in "$@"; do case $a in --prefix=*) echo "PREFIX=${a#--prefix=}" '
        '> config.mk;; esac; done\necho "$@" > configure.args\n'
    )
    (src / "configure").chmod(0o755)
    (src / "Makefile").write_text(
        "include config.mk\nall:\n\t@true\n"
        "install:\n\t@mkdir -p $(PREFIX)\n\t@cp configure.args $(PREFIX)/\n"
        '\t@echo "$$TSAN_OPTIONS" > $(PREFIX)/tsan_options\n'
    )
    tarball = tmp_path / "Python-9.9.9.tar.gz"
    with tarfile.open(tarball, "w:gz") as tf:
        tf.add(src, arcname="Python-9.9.9")
    monkeypatch.setattr(prov, "HEARTBEAT", 10)
    monkeypatch.delenv("TSAN_OPTIONS", raising=False)
    prefix = tmp_path / "prefix"
    work = tmp_path / "work"
    work.mkdir()
    prov.build(tarball, "9.9.9", prefix, True, work, tsan=True)
    assert "--with-thread-sanitizer" in (prefix / "configure.args").read_text()
    assert "exitcode=0" in (prefix / "tsan_options").read_text()
    assert (prefix / ".complete").exists()
