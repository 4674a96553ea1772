"""Project checks.  Plain ``nox`` runs the complete check: lint, typecheck,
tests of the C accelerator on the GIL interpreters 3.10, 3.13 and 3.14 (when
found) and on the free-threaded build with the GIL really off, tests of the pure-Python
implementation on the free-threaded build, the docs and the packages.

Outside the default run: ``tests_gil_between`` (3.11 and 3.12), ``tests_pure``
(the pure-Python implementation on the GIL twin), ``native_asan`` and
``native_tsan`` (the C accelerator under sanitizers), ``tests_parallel`` and the benchmarks.

Interpreters: the free-threaded CPython and its GIL twin come from
``tools/provision_python.py`` (found on PATH or in its cache, else built from
source once).  Other GIL versions are used when present (PATH or pyenv) and
skipped when missing, also under ``CI=true``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).parent
nox.options.sessions = [
    "lint",
    "typecheck",
    "tests",
    "tests_freethreaded",
    "tests_pure_freethreaded",
    "docs",
    "package",
]
nox.options.error_on_missing_interpreters = False
nox.options.reuse_venv = "yes"

GIL_MINORS = ("3.10", "3.11", "3.12", "3.13", "3.14")
TEST_REQS = ["pytest>=8", "pytest-timeout>=2.3", "hypothesis>=6.100,<6.156"]
LINT_PATHS = [
    "conctools",
    "tests",
    "benchmarks",
    "tools",
    "examples",
    "noxfile.py",
    "docs/_ext",
    "docs/conf.py",
]


def _probe(exe: str) -> dict[str, object] | None:
    code = (
        "import sys, sysconfig, json; print(json.dumps({'v': '%d.%d.%d' % sys.version_info[:3],"
        "'ft': bool(sysconfig.get_config_var('Py_GIL_DISABLED')), 'exe': sys.executable}))"
    )
    try:
        out = subprocess.run(
            [exe, "-c", code], capture_output=True, text=True, timeout=30, check=True
        ).stdout
        info: dict[str, object] = json.loads(out.strip().splitlines()[-1])
        return info
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


PROVISION_SCRIPT = ROOT / "tools" / "provision_python.py"
_provisioned: dict[str, str] = {}


def _provision(session: nox.Session) -> dict[str, str]:
    """Paths of the free-threaded interpreter and its GIL twin (built once).

    The script's progress (stderr) goes straight to the console: the first
    run builds CPython twice and must not be silent for minutes.  Only its
    stdout (the JSON answer) is captured."""
    if _provisioned:
        return dict(_provisioned)
    session.log("looking for a free-threaded CPython and its GIL twin (built once if missing)")
    r = subprocess.run(
        [sys.executable, str(PROVISION_SCRIPT), "--json"],
        stdout=subprocess.PIPE,
        stderr=None,  # inherited: progress lines reach the console as they happen
        text=True,
        check=False,
    )
    lines = r.stdout.strip().splitlines()
    if r.returncode != 0 or not lines:
        session.error(f"provisioning failed (exit status {r.returncode}); see the lines above")
    paths: dict[str, str] = json.loads(lines[-1])
    _provisioned.update(paths)
    return paths


def _gil_interpreters(session: nox.Session) -> list[str]:
    """One GIL interpreter per minor version in 3.10-3.14 (provisioned twin preferred)."""
    found: dict[str, str] = {}
    twin = _provision(session)["gil"]
    info = _probe(twin)
    if info:
        found[".".join(str(info["v"]).split(".")[:2])] = twin
    candidates: list[str] = []
    for minor in GIL_MINORS:
        exe = shutil.which(f"python{minor}")
        if exe:
            candidates.append(exe)
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    if pyenv_root.is_dir():
        for d in sorted(pyenv_root.iterdir(), reverse=True):
            for minor in GIL_MINORS:
                exe = d / "bin" / f"python{minor}"
                if exe.exists():
                    candidates.append(str(exe))
    for exe in candidates:
        info = _probe(exe)
        if not info or info["ft"]:
            continue
        minor = ".".join(str(info["v"]).split(".")[:2])
        if minor in GIL_MINORS and minor not in found:
            found[minor] = str(info["exe"])
    missing = [m for m in GIL_MINORS if m not in found]
    if missing:
        session.log(f"GIL interpreters not found (skipped): {', '.join(missing)}")
    return [found[m] for m in GIL_MINORS if m in found]


def _venv(
    session: nox.Session,
    exe: str,
    name: str,
    reqs: list[str],
    *,
    source: Path = ROOT,
    env: dict[str, str] | None = None,
) -> str:
    """A fresh virtualenv for ``exe`` under .nox/, with conctools (editable, from
    ``source``) and ``reqs``.  The install builds the C accelerator in place when
    a compiler is present; ``env`` reaches the build (``CONCTOOLS_NO_NATIVE``,
    ``CONCTOOLS_NATIVE_CFLAGS``)."""
    env_dir = ROOT / ".nox" / name
    if env_dir.exists():
        shutil.rmtree(env_dir)
    session.run(exe, "-m", "venv", str(env_dir), external=True, env=env)
    py = str(env_dir / "bin" / "python")
    session.run(
        py,
        "-m",
        "pip",
        "install",
        "-q",
        "--disable-pip-version-check",
        "-e",
        str(source),
        *reqs,
        external=True,
        env=env,
    )
    return py


def _pytest(
    session: nox.Session,
    py: str,
    env: dict[str, str] | None = None,
    *,
    default_args: tuple[str, ...] = (),
) -> None:
    session.run(py, "-m", "conctools", "info", external=True, env=env)
    # --durations: the slowest tests in every log, to keep the whole run inside its time budget.
    args = session.posargs or [*default_args, "--durations=15"]
    _run_pytest(session, py, args, env)


def _collapse_repeats(text: str, limit: int = 4000) -> str:
    """``text`` with runs of a repeated two-line block (a deep recursion in a
    Python backtrace) shown once with their count, cut at ``limit`` lines."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        block = lines[i : i + 2]
        n = 1
        while lines[i + 2 * n : i + 2 * n + 2] == block and len(block) == 2:
            n += 1
        if n > 1:
            out += [*block, f"  [the two lines above repeated {n - 1} more times]"]
            i += 2 * n
        else:
            out.append(lines[i])
            i += 1
    if len(out) > limit:
        out = [*out[:limit], f"[{len(out) - limit} more lines]"]
    return "\n".join(out)


def _run_pytest(session: nox.Session, py: str, args: list[str], env: dict[str, str] | None) -> None:
    """``py -m pytest args``; if the interpreter crashes, the C and Python stacks
    of all its threads go to the log.

    faulthandler prints nothing when a thread other than the main one
    overflows its stack (its signal handler has no stack to run on), so a
    crash may leave only an exit status.  Where the kernel writes core files
    to the working directory and gdb is installed, the core's backtraces are
    printed and the core is deleted; otherwise this is a plain run."""
    gdb = shutil.which("gdb")

    def cores() -> set[Path]:
        return {p for p in ROOT.iterdir() if p.name == "core" or p.name[:5] == "core."}

    before = cores()
    if gdb and sys.platform.startswith("linux"):
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
        if soft != hard:
            resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))
    try:
        session.run(py, "-m", "pytest", *args, external=True, env=env)
    except BaseException:
        for core in sorted(cores() - before):
            if gdb and core.is_file():
                session.log(f"the interpreter crashed: backtraces from {core.name}")
                cmd = [gdb, "-q", "-batch", "-iex", "set auto-load safe-path /"]  # py-bt
                for c in ("info threads", "thread apply all bt 40", "thread apply all py-bt"):
                    cmd += ["-ex", c]
                out = subprocess.run(
                    [*cmd, os.path.realpath(py), str(core)],
                    capture_output=True,
                    text=True,
                    check=False,
                    timeout=300,
                )
                print(_collapse_repeats(out.stdout + out.stderr), flush=True)
                core.unlink()
        raise


# The test sessions assert which implementation runs (tests/conftest.py): the
# default sessions test the C accelerator, the *_pure sessions the pure-Python
# reference, and a missing compiler or a failed build fails them instead of
# silently testing the pure-Python code twice.
NATIVE = {"CONCTOOLS_REQUIRE_NATIVE": "1"}
# CONCTOOLS_NO_NATIVE: no point compiling what the pure sessions never load.
PURE = {"CONCTOOLS_PURE_PYTHON": "1", "CONCTOOLS_NO_NATIVE": "1"}
NOGIL = {"PYTHON_GIL": "0", "CONCTOOLS_REQUIRE_NOGIL": "1"}
NOGIL_CHECK = (
    "import sys; assert sys._is_gil_enabled() is False, 'GIL is enabled'; "
    "print('GIL disabled:', not sys._is_gil_enabled())"
)


def _freethreaded(session: nox.Session) -> tuple[str, dict[str, object]]:
    exe = _provision(session)["freethreaded"]
    info = _probe(exe)
    assert info is not None and info["ft"], f"{exe} is not a free-threaded build"
    return exe, info


def _test_jobs() -> int:
    """How many GIL-build test runs go at once: ``CONCTOOLS_TEST_JOBS`` (default 1).

    A run on a GIL build keeps about one core busy and waits part of the time,
    so two runs side by side on two cores finish in about the time of one
    (``CONCTOOLS_TEST_JOBS=2``).  Not the default yet: on a heavily loaded
    machine three of four side-by-side runs stopped at the same test
    (tests/test_stateful_rwlock.py, after tests/fault_injection/test_queue.py
    left blocked waiter threads), which the one-at-a-time run passed."""
    raw = os.environ.get("CONCTOOLS_TEST_JOBS", "")
    return max(1, int(raw)) if raw.strip() else 1


def _pytest_lanes(
    session: nox.Session, runs: list[tuple[str, str]], env: dict[str, str], jobs: int
) -> None:
    """pytest in each ``(label, python)`` of ``runs``, ``jobs`` at a time.

    Each run's output goes to a log under .nox/ and is printed whole when the
    run ends, so the logs never interleave; the session fails if any run did."""
    import concurrent.futures
    import time

    args = session.posargs or ["--durations=15"]
    full_env = {**os.environ, **env}

    def one(label: str, py: str) -> tuple[str, int, float, Path]:
        log = Path(py).parent.parent / "pytest.log"
        t0 = time.monotonic()
        with open(log, "w") as fh:
            code = subprocess.run(
                [py, "-m", "pytest", *args],
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=full_env,
                cwd=ROOT,
                check=False,
            ).returncode
        return label, code, time.monotonic() - t0, log

    failed = []
    session.log(f"running {len(runs)} test runs, {jobs} at a time")
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        futures = [pool.submit(one, label, py) for label, py in runs]
        for fut in concurrent.futures.as_completed(futures):
            label, code, took, log = fut.result()
            print(f"\n===== pytest on {label} ({log}) =====", flush=True)
            print(log.read_text(errors="replace"), end="", flush=True)
            verdict = "passed" if code == 0 else f"FAILED (exit status {code})"
            session.log(f"pytest on {label}: {verdict} in {took:.0f}s")
            if code != 0:
                failed.append(label)
    if failed:
        session.error(f"tests failed on {', '.join(failed)}")


# The GIL interpreters of the default run: the oldest supported minor, the GIL
# twin of the free-threaded build (3.13) and the newest (3.14, when present).
# The minors in between run in ``tests_gil_between`` (not in the default run:
# with the pure-Python session the default run must stay under 30 minutes on
# two cores, interpreter provisioning included).
GIL_MINORS_DEFAULT = ("3.10", "3.13", "3.14")


@nox.session(python=False)
def tests(session: nox.Session) -> None:
    """The test suite on the GIL interpreters 3.10, 3.13 and 3.14 (those found),
    C accelerator required.  ``CONCTOOLS_TEST_JOBS=2`` runs two at a time (each
    log printed whole when its run ends)."""
    _gil_tests(session, GIL_MINORS_DEFAULT)


@nox.session(python=False)
def tests_gil_between(session: nox.Session) -> None:
    """The test suite on the GIL interpreters 3.11 and 3.12 (those found), C
    accelerator required."""
    _gil_tests(session, tuple(m for m in GIL_MINORS if m not in GIL_MINORS_DEFAULT))


def _gil_tests(session: nox.Session, minors: tuple[str, ...]) -> None:
    runs = []
    for exe in _gil_interpreters(session):
        info = _probe(exe)
        assert info is not None
        if ".".join(str(info["v"]).split(".")[:2]) not in minors:
            continue
        session.log(f"=== tests on {exe} (Python {info['v']}, GIL build, native)")
        # The venvs are made one after the other: their in-place builds share the tree.
        py = _venv(session, exe, f"tests-{info['v']}", TEST_REQS)
        session.run(py, "-m", "conctools", "info", external=True, env=NATIVE)
        runs.append((f"Python {info['v']} ({exe})", py))
    jobs = _test_jobs()
    if jobs == 1:
        for label, py in runs:
            session.log(f"=== pytest on {label}")
            _run_pytest(session, py, session.posargs or ["--durations=15"], NATIVE)
        return
    _pytest_lanes(session, runs, NATIVE, jobs)


@nox.session(python=False)
def tests_freethreaded(session: nox.Session) -> None:
    """The test suite on the free-threaded build with PYTHON_GIL=0, GIL asserted off,
    C accelerator required."""
    exe, info = _freethreaded(session)
    py = _venv(session, exe, f"tests-{info['v']}t", TEST_REQS)
    env = {**NOGIL, **NATIVE}
    session.run(py, "-c", NOGIL_CHECK, external=True, env=env)
    _pytest(session, py, env=env)


def _pure_tests() -> list[str]:
    """The tests of everything that has a native implementation (the primitives
    with a C core: their unit, stateful, conformance, fault-injection and
    native tests), plus the README and docstring checks.  The other modules
    (queue, rwlock, cache, testing, bench) run the same Python code whichever
    implementation is selected: the native sessions test them."""
    tests = [f for f in _native_tests(ROOT) if "cache" not in f and "cached" not in f]
    return [*tests, "tests/test_readme.py", "tests/test_docstrings.py"]


@nox.session(python=False, tags=["pure"])
def tests_pure_freethreaded(session: nox.Session) -> None:
    """The pure-Python implementation (CONCTOOLS_PURE_PYTHON=1, asserted) on the
    free-threaded build, GIL asserted off: the tests of every primitive that has
    a C core (the rest of the suite runs the same code in tests_freethreaded).
    Pass ``tests`` after ``--`` for the whole suite."""
    exe, info = _freethreaded(session)
    py = _venv(session, exe, f"tests-pure-{info['v']}t", TEST_REQS, env=PURE)
    env = {**NOGIL, **PURE}
    session.run(py, "-c", NOGIL_CHECK, external=True, env=env)
    _pytest(session, py, env=env, default_args=tuple(_pure_tests()))


@nox.session(python=False, tags=["pure"])
def tests_pure(session: nox.Session) -> None:
    """The test suite against the pure-Python implementation (CONCTOOLS_PURE_PYTHON=1,
    asserted) on the GIL twin of the free-threaded build."""
    exe = _provision(session)["gil"]
    info = _probe(exe)
    assert info is not None and not info["ft"], f"{exe} is not a GIL build"
    py = _venv(session, exe, f"tests-pure-{info['v']}", TEST_REQS, env=PURE)
    _pytest(session, py, env=PURE)


# ---- sanitizers (not in the default run; see docs/guides/implementation.rst) ----

# The tests that exercise the C accelerator: the accelerated primitives' unit,
# stateful, conformance and fault-injection tests, and every tests/test_native_*.py.
NATIVE_TEST_GLOBS = (
    "tests/test_native_*.py",
    "tests/test_atomic.py",
    "tests/test_stateful_atomic*.py",
    "tests/test_counters.py",
    "tests/test_stateful_counters.py",
    "tests/test_sharded_dict.py",
    "tests/test_stateful_sharded_dict.py",
    "tests/test_sharded_set.py",
    "tests/test_stateful_sharded_set.py",
    "tests/test_cache*.py",
    "tests/test_stateful_cache.py",
    "tests/conformance/test_conformance_cached.py",
    "tests/conformance/test_conformance_counter.py",
    "tests/conformance/test_conformance_sharded_*.py",
    "tests/fault_injection/test_atomics.py",
    "tests/fault_injection/test_counters.py",
    "tests/fault_injection/test_sharded_*.py",
    "tests/fault_injection/test_cache.py",
)
SANITIZER_CFLAGS = "-g -O1 -fno-omit-frame-pointer"
TSAN_SUPPRESSIONS = ROOT / "tools" / "tsan_suppressions.txt"


def _native_tests(root: Path) -> list[str]:
    found = sorted({str(p.relative_to(root)) for g in NATIVE_TEST_GLOBS for p in root.glob(g)})
    return [f for f in found if not f.endswith("_typing.py")]


def _scratch_tree(name: str) -> Path:
    """A copy of the working tree (uncommitted changes included, no built
    extension) for a sanitizer build: an instrumented ``conctools/_native*.so``
    built in place must never replace the normal one of the checkout, which has
    the same file name."""
    dest = ROOT / ".nox" / f"{name}-src"
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(
        ROOT,
        dest,
        ignore=shutil.ignore_patterns(
            ".nox",
            ".git",
            "build",
            "dist",
            "_build",
            "*.so",
            "*.egg-info",
            "__pycache__",
            ".hypothesis",
            ".*_cache",
        ),
    )
    return dest


def _assert_instrumented(session: nox.Session, tree: Path, marker: bytes) -> None:
    sos = sorted((tree / "conctools").glob("_native*.so"))
    if not sos:
        session.error(f"the C accelerator was not built in {tree} (see the pip output above)")
    for so in sos:
        if marker not in so.read_bytes():
            session.error(f"{so.name} is not instrumented ({marker.decode()} missing)")
    session.log(f"instrumented: {', '.join(so.name for so in sos)}")


def _sanitizer_reports(session: nox.Session, logs: Path, kind: str) -> int:
    """Print the sanitizer reports written under ``logs`` and return their number."""
    count = 0
    for f in sorted(logs.glob("*")):
        text = f.read_text(errors="replace")
        n = text.count(f"ERROR: {kind}") + text.count(f"WARNING: {kind}")
        n += text.count("runtime error:")  # UBSan
        if n or text.strip():
            print(f"----- {f.name} -----\n{text}")
        count += n
    return count


def _sanitized_pytest(
    session: nox.Session,
    py: str,
    *,
    tree: Path,
    env: dict[str, str],
    logs: Path,
    kind: str,
    default_args: list[str],
) -> None:
    args = session.posargs or [*default_args, *_native_tests(tree)]
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    failed: Exception | None = None
    try:
        with session.chdir(tree):
            session.run(py, "-m", "conctools", "info", external=True, env=env)
            session.run(py, "-m", "pytest", "-p", "no:cacheprovider", *args, external=True, env=env)
    except Exception as exc:  # nox's CommandFailed: report the sanitizer logs first
        failed = exc
    reports = _sanitizer_reports(session, logs, kind)
    if reports:
        session.error(f"{kind}: {reports} report(s), logs in {logs}")
    if failed is not None:
        raise failed
    session.log(f"{kind}: no reports")


@nox.session(python=False)
def native_asan(session: nox.Session) -> None:
    """The C accelerator built with AddressSanitizer + UndefinedBehaviorSanitizer,
    running the tests that exercise it on the free-threaded build (GIL off) and
    its GIL twin.  Needs gcc (or a cc with libasan); any report fails the session.

    The interpreters are not instrumented: libasan is preloaded (LD_PRELOAD); on
    the GIL build PYTHONMALLOC=malloc sends every object allocation through
    ASan's malloc.
    Leak detection is off (CPython keeps objects alive until exit by design;
    reference leaks are tested by tests/test_native_*.py).  Pass pytest
    arguments after ``--`` to run other tests."""
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not cc:
        session.error("native_asan needs a C compiler (gcc or clang with libasan)")
    libasan = subprocess.run(
        [cc, "-print-file-name=libasan.so"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if not libasan or not Path(libasan).is_file():
        session.error(f"libasan.so not found by {cc} (Debian: apt-get install libasan8)")
    paths = _provision(session)
    tree = _scratch_tree("native_asan")
    build = {"CONCTOOLS_NATIVE_CFLAGS": f"-fsanitize=address,undefined {SANITIZER_CFLAGS}"}
    # PYTHONMALLOC=malloc sends every object allocation through ASan's malloc on
    # the GIL build; the free-threaded build accepts only its own mimalloc.
    builds = (
        ("freethreaded", paths["freethreaded"], NOGIL),
        ("gil", paths["gil"], {"PYTHONMALLOC": "malloc"}),
    )
    for label, exe, extra in builds:
        session.log(f"=== AddressSanitizer + UBSan, {label} build ({exe})")
        py = _venv(session, exe, f"native_asan-{label}", TEST_REQS, source=tree, env=build)
        _assert_instrumented(session, tree, b"__asan_")
        logs = ROOT / ".nox" / f"native_asan-{label}-reports"
        env = {
            **extra,
            **NATIVE,
            "LD_PRELOAD": libasan,
            "CONCTOOLS_TIMEOUT_SCALE": "10",
            "ASAN_OPTIONS": f"detect_leaks=0:log_path={logs}/asan:abort_on_error=0",
            "UBSAN_OPTIONS": f"print_stacktrace=1:halt_on_error=1:log_path={logs}/ubsan",
        }
        _sanitized_pytest(
            session,
            py,
            tree=tree,
            env=env,
            logs=logs,
            kind="AddressSanitizer",
            # everything runs several times slower under ASan: a longer per-test timeout
            default_args=["-q", "--timeout=600"],
        )


def _provision_tsan(session: nox.Session) -> str:
    session.log("looking for a ThreadSanitizer free-threaded CPython (built once if missing)")
    r = subprocess.run(
        [sys.executable, str(PROVISION_SCRIPT), "--which", "tsan"],
        stdout=subprocess.PIPE,
        stderr=None,  # progress reaches the console as it happens
        text=True,
        check=False,
    )
    lines = r.stdout.strip().splitlines()
    if r.returncode != 0 or not lines:
        session.error(f"provisioning failed (exit status {r.returncode}); see the lines above")
    return lines[-1]


@nox.session(python=False)
def native_tsan(session: nox.Session) -> None:
    """The C accelerator built with ThreadSanitizer against a TSan-instrumented
    free-threaded CPython (``tools/provision_python.py --tsan`` builds it once,
    which takes a while), running the tests that exercise it with the GIL off.

    Reports inside CPython itself are suppressed by tools/tsan_suppressions.txt
    (each entry says why); any other report fails the session.  Pass pytest
    arguments after ``--`` to run other tests."""
    exe = _provision_tsan(session)
    tree = _scratch_tree("native_tsan")
    logs = ROOT / ".nox" / "native_tsan-reports"
    # pip runs on the instrumented interpreter too: reports there are not ours.
    quiet = {"TSAN_OPTIONS": "report_bugs=0 exitcode=0"}
    build = {**quiet, "CONCTOOLS_NATIVE_CFLAGS": f"-fsanitize=thread {SANITIZER_CFLAGS}"}
    py = _venv(session, exe, "native_tsan", TEST_REQS, source=tree, env=build)
    _assert_instrumented(session, tree, b"__tsan_")
    env = {
        **NOGIL,
        **NATIVE,
        "TSAN_OPTIONS": (
            f"suppressions={TSAN_SUPPRESSIONS} log_path={logs}/tsan "
            "halt_on_error=0 second_deadlock_stack=1 history_size=4"
        ),
        # fewer hypothesis examples: everything runs 5-15 times slower under TSan
        "CONCTOOLS_HYPOTHESIS_PROFILE": "ci",
        "CONCTOOLS_TIMEOUT_SCALE": "15",
    }
    session.run(py, "-c", NOGIL_CHECK, external=True, env=env)
    _sanitized_pytest(
        session,
        py,
        tree=tree,
        env=env,
        logs=logs,
        kind="ThreadSanitizer",
        default_args=["-q", "--timeout=900"],
    )


@nox.session(python=False)
def tests_parallel(session: nox.Session) -> None:
    """The suite under pytest-run-parallel: every test in several threads at once, GIL off.

    Finds thread-unsafe tests and fixtures (shared globals, monkeypatching).
    Tests that cannot run that way are marked ``thread_unsafe`` with a reason,
    or listed in tests/conftest.py. ``--parallel-threads`` defaults to 4
    (more threads than the CI's 2 cores); pass e.g. ``-- --parallel-threads=8``.
    Not in plain ``nox``: the whole suite takes about 10 minutes this way on 2
    cores, more than the CI's time budget leaves; run it explicitly.
    """
    exe = _provision(session)["freethreaded"]
    info = _probe(exe)
    assert info is not None and info["ft"], f"{exe} is not a free-threaded build"
    py = _venv(
        session, exe, f"tests-parallel-{info['v']}t", [*TEST_REQS, "pytest-run-parallel>=0.4"]
    )
    env = {"PYTHON_GIL": "0", "CONCTOOLS_REQUIRE_NOGIL": "1"}
    args = list(session.posargs) or ["--durations=15"]
    if not any(a.startswith("--parallel-threads") for a in args):
        args.insert(0, "--parallel-threads=4")
    session.run(py, "-m", "pytest", "-p", "no:cacheprovider", *args, external=True, env=env)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff")
    paths = [p for p in LINT_PATHS if (ROOT / p).exists()]
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)


PYRIGHT_VERSION = "1.1.414"
PYRIGHT_PREFIX = ROOT / ".nox" / "pyright-node"


def _pyright(session: nox.Session) -> str:
    """The pyright executable, installed from the npm registry (pyright is a
    Node.js program) into .nox/pyright-node at a pinned version.  The PyPI
    wrapper of the same name downloads Node.js and pyright at first use, which
    fails where only the package registries are reachable."""
    exe = PYRIGHT_PREFIX / "node_modules" / ".bin" / "pyright"
    manifest = PYRIGHT_PREFIX / "node_modules" / "pyright" / "package.json"
    if manifest.exists() and json.loads(manifest.read_text())["version"] == PYRIGHT_VERSION:
        return str(exe)
    npm = shutil.which("npm")
    if not npm or not shutil.which("node"):
        session.error(
            "pyright needs Node.js and npm on PATH (Debian: apt-get install nodejs npm); "
            "see tests/typing/README.md"
        )
    session.run(
        npm,
        "install",
        "--prefix",
        str(PYRIGHT_PREFIX),
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
        f"pyright@{PYRIGHT_VERSION}",
        external=True,
    )
    return str(exe)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package; mypy --strict and pyright strict on tests/typing/.

    tests/typing/ holds user code of the public API (see its README): among
    others ``@cached`` on functions, methods, staticmethods, classmethods and
    coroutine functions.  mypy checks it for the running Python and for 3.10
    (the oldest supported; pyright's config targets 3.10 too)."""
    session.install("mypy", "typing_extensions", "hypothesis>=6.100,<6.156", "-e", ".")
    session.run("mypy", "--strict", "conctools")
    # The package's own errors are reported by the run above.
    session.run("mypy", "--strict", "--follow-imports=silent", "tests/typing")
    session.run(
        "mypy", "--strict", "--follow-imports=silent", "--python-version", "3.10", "tests/typing"
    )
    python = str(Path(session.bin) / "python")
    session.run(_pyright(session), "-p", "tests/typing", "--pythonpath", python, external=True)


@nox.session
def docs(session: nox.Session) -> None:
    """Sphinx HTML build with -W, the doctests, and the check for process words.

    The check (tools/check_process_words.py) fails when user-facing text (docs,
    README, changelog, docstrings, command-line output) uses words from our own
    process."""
    session.install("-e", ".[docs]")
    # The pages render the pure-Python reference (typed signatures; the semantics and
    # docstrings are the same in both implementations); the doctests run natively.
    session.run(
        "sphinx-build",
        "-E",
        "-W",
        "--keep-going",
        "-q",
        "-b",
        "html",
        "docs",
        "docs/_build/html",
        env={"CONCTOOLS_PURE_PYTHON": "1"},
    )
    session.run(
        "sphinx-build",
        "-E",
        "-W",
        "--keep-going",
        "-q",
        "-b",
        "doctest",
        "docs",
        "docs/_build/doctest",
    )
    session.run("python", "tools/check_process_words.py")


SDIST_MUST_HAVE = (
    "conctools/__init__.py",
    "conctools/py.typed",
    "README.md",
    "CHANGELOG.md",
    "LICENSE",
    "setup.py",
    # the C accelerator's sources, every one of them (checked below)
    "native/conctools_native.h",
    "native/module.c",
)
IMPORT_CHECK = """
import importlib.metadata as md, pathlib, sys
import conctools, conctools.testing
from conctools._internal import native
assert md.version("conctools-ft") == conctools.__version__, md.version("conctools-ft")
assert "site-packages" in pathlib.Path(conctools.__file__).parts, conctools.__file__
assert (pathlib.Path(conctools.__file__).parent / "py.typed").exists()
files = [str(f) for f in md.files("conctools-ft") or ()]
assert not any(f.startswith(("tests/", "benchmarks/", "docs/", "native/")) for f in files), files
want = sys.argv[1]
assert native.ACTIVE == want, (native.ACTIVE, native.REASON)
print("ok:", conctools.__version__, conctools.__file__, native.ACTIVE)
"""


def _no_compiler_env(venv: Path) -> dict[str, str]:
    """An environment in which no C compiler is reachable: PATH holds only the
    virtualenv's bin directory and CC/CXX name a command that always fails."""
    return {"PATH": str(venv / "bin"), "CC": "/bin/false", "CXX": "/bin/false"}


def _fresh_venv(session: nox.Session, kind: str) -> tuple[Path, str]:
    env_dir = ROOT / ".nox" / f"package-{kind}"
    shutil.rmtree(env_dir, ignore_errors=True)
    session.run(sys.executable, "-m", "venv", str(env_dir), external=True)
    return env_dir, str(env_dir / "bin" / "python")


@nox.session
def package(session: nox.Session) -> None:
    """Build, check, install and import the sdist and the wheels.

    The sdist carries the C sources and builds the extension, so the wheel built
    from it is platform-specific (``cpXY-cpXY-<platform>``); with
    ``CONCTOOLS_NO_NATIVE=1`` the wheel is pure (``py3-none-any``).  twine check,
    check-wheel-contents and the sdist's file list; each artefact is installed
    into a fresh virtualenv where no C compiler is reachable and imported from
    outside the checkout: the platform wheel runs the C accelerator, the pure
    wheel and the sdist (whose extension cannot build there) run pure Python,
    and ``conctools info`` says so."""
    import tarfile
    import tempfile
    import zipfile

    session.install("build", "twine", "check-wheel-contents")
    dist = ROOT / ".nox" / "package-dist"
    pure_dist = ROOT / ".nox" / "package-dist-pure"
    for d in (dist, pure_dist):
        shutil.rmtree(d, ignore_errors=True)
    # build makes the sdist, then the wheel from the unpacked sdist: the sdist builds.
    session.run("python", "-m", "build", "--outdir", str(dist), str(ROOT), silent=True)
    (sdist,) = dist.glob("conctools_ft-*.tar.gz")
    (wheel,) = dist.glob("conctools_ft-*.whl")
    session.run(
        "python",
        "-m",
        "build",
        "--wheel",
        "--outdir",
        str(pure_dist),
        str(ROOT),
        silent=True,
        env={"CONCTOOLS_NO_NATIVE": "1"},
    )
    (pure_wheel,) = pure_dist.glob("conctools_ft-*.whl")
    if pure_wheel.name.endswith("-py3-none-any.whl") is False:
        session.error(f"CONCTOOLS_NO_NATIVE=1 built {pure_wheel.name}, not a pure wheel")
    if wheel.name.endswith("-py3-none-any.whl"):
        session.error(f"{wheel.name} is pure: the C accelerator was not built from the sdist")
    with zipfile.ZipFile(wheel) as zf:
        sos = [n for n in zf.namelist() if n.startswith("conctools/_native")]
    with zipfile.ZipFile(pure_wheel) as zf:
        pure_sos = [n for n in zf.namelist() if n.startswith("conctools/_native")]
    if len(sos) != 1 or pure_sos:
        session.error(f"extension in the wheels: {sos} (platform), {pure_sos} (pure)")
    session.log(f"wheels: {wheel.name} with {sos[0]}; {pure_wheel.name}")
    session.run("twine", "check", "--strict", str(sdist), str(wheel), str(pure_wheel))
    session.run("check-wheel-contents", str(wheel), str(pure_wheel))
    with tarfile.open(sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    c_sources = {
        str(p.relative_to(ROOT)) for ext in ("*.c", "*.h") for p in (ROOT / "native").glob(ext)
    }
    missing = [n for n in (*SDIST_MUST_HAVE, *sorted(c_sources)) if n not in names]
    extra = sorted(n for n in names if n.split("/")[0] in ("tests", "benchmarks", "docs"))
    extra += sorted(n for n in names if n.endswith((".so", ".pyd", ".o")))
    if missing or extra:
        session.error(f"sdist: missing {missing}, unexpected {extra[:5]}")
    session.log(f"sdist: {len(names)} files with {len(c_sources)} C sources, no tests")
    # (kind, artefact, implementation expected where no compiler is reachable)
    cases = (("wheel", wheel, "native"), ("pure-wheel", pure_wheel, "pure-python"))
    cases += (("sdist", sdist, "pure-python"),)
    for kind, artefact, expected in cases:
        env_dir, py = _fresh_venv(session, kind)
        no_cc = _no_compiler_env(env_dir)
        session.log(f"=== {artefact.name} without a C compiler: {expected} expected")
        session.run(
            py,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-cache-dir",  # never reuse a wheel pip built elsewhere from the sdist
            "--disable-pip-version-check",
            str(artefact),
            external=True,
            env=no_cc,
        )
        with tempfile.TemporaryDirectory() as outside, session.chdir(outside):
            session.run(py, "-c", IMPORT_CHECK, expected, external=True, env=no_cc)
            session.run(py, "-m", "conctools", "--version", external=True, env=no_cc)
            out = session.run(py, "-m", "conctools", "info", external=True, env=no_cc, silent=True)
            assert isinstance(out, str)
            print(out, end="")
            notices = [ln for ln in out.splitlines() if ln.startswith("notice:")]
            if (expected == "native") == bool(notices):
                session.error(f"{kind}: info's notice line is wrong: {notices}")


@nox.session(python=False)
def bench(session: nox.Session) -> None:
    """The bench CLI in --quick mode on both builds (free-threaded with the GIL off),
    each measuring the native and the pure-Python implementation."""
    paths = _provision(session)
    for label, exe, env in (
        ("gil", paths["gil"], {}),
        ("freethreaded", paths["freethreaded"], {"PYTHON_GIL": "0"}),
    ):
        py = _venv(session, exe, f"bench-{label}", ["cachetools>=5"])
        session.run(
            py, "-m", "conctools", "bench", "--quick", *session.posargs, external=True, env=env
        )


# Peers installed on the free-threaded build (cmake first: cereggii builds from
# source with it, found through the venv's bin on PATH).
PEERS = ["cmake", "ft_utils", "threadfactory", "cereggii"]
# Optional cache peers, on both builds; --prefer-binary takes an older release
# with a wheel for the interpreter over a newer sdist that needs Rust and the
# network (moka-py on 3.13t).  The other peers take their newest release, built
# from source if need be (cereggii: cmake).
CACHE_PEERS = ["moka-py", "theine"]


@nox.session(python=False)
def bench_results(session: nox.Session) -> None:
    """Full reference benchmarks on both builds, written to benchmarks/results/,
    with the side-by-side table and the charts the docs show.  Each build
    measures both implementations of conctools (the C accelerator and
    CONCTOOLS_PURE_PYTHON=1), each in its own process.  Peers (ft_utils,
    cereggii, threadfactory) are installed on the free-threaded build, the
    cache peers (moka-py, theine) on both, when the registry has them; a
    failed install only drops them from the tables.  About half an hour on 2
    cores; pass bench options after --, e.g. -- --only cache."""
    paths = _provision(session)
    out = ROOT / "benchmarks" / "results"
    files = []
    for label, exe, env in (
        ("gil", paths["gil"], {}),
        ("freethreaded", paths["freethreaded"], {"PYTHON_GIL": "0"}),
    ):
        py = _venv(session, exe, f"bench-{label}", ["cachetools>=5"])
        bindir = str(Path(py).parent)
        install_env = {**env, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
        peers = [(p, []) for p in (PEERS if label == "freethreaded" else [])]
        peers += [(p, ["--prefer-binary"]) for p in CACHE_PEERS]
        for peer, opts in peers:
            session.run(
                py,
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                *opts,
                peer,
                external=True,
                env=install_env,
                success_codes=[0, 1, 2],
            )
        session.run(py, "-m", "conctools", "info", external=True, env=env)
        info = _probe(exe)
        assert info is not None
        target = out / f"cpython-{info['v']}-{label}.json"
        session.run(
            py,
            "-m",
            "conctools",
            "bench",
            "--json",
            str(target),
            *session.posargs,
            external=True,
            env=env,
        )
        files.append(str(target))
    plot_py = str(ROOT / ".nox" / "bench-gil" / "bin" / "python")
    session.run(plot_py, "-m", "pip", "install", "-q", "matplotlib", external=True)
    compare = session.run(
        plot_py,
        "-m",
        "conctools",
        "bench",
        "--compare",
        *files,
        "--plot",
        str(ROOT / "docs" / "_static" / "bench"),
        external=True,
        silent=True,
    )
    assert isinstance(compare, str)
    # (nox returns stdout and stderr together: drop the plot messages)
    table = [ln for ln in compare.splitlines() if not ln.startswith("wrote ")]
    (out / "compare.txt").write_text("\n".join(table).rstrip("\n") + "\n")
    print(compare)


@nox.session(python=False)
def benchmarks(session: nox.Session) -> None:
    """The pytest-benchmark regression suite (benchmarks/), on the free-threaded build."""
    exe = _provision(session)["freethreaded"]
    py = _venv(session, exe, "pytest-benchmark-ft", [*TEST_REQS, "pytest-benchmark>=4"])
    session.run(
        py,
        "-m",
        "pytest",
        "benchmarks",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        external=True,
        env={"PYTHON_GIL": "0"},
    )
