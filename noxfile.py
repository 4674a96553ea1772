"""Project checks.  Plain ``nox`` runs the complete check: lint, typecheck,
tests on every GIL interpreter found (3.10-3.14), tests on the free-threaded
build with the GIL really off, and the docs.

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
nox.options.sessions = ["lint", "typecheck", "tests", "tests_freethreaded", "docs", "package"]
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


def _venv(session: nox.Session, exe: str, name: str, reqs: list[str]) -> str:
    """A fresh virtualenv for ``exe`` under .nox/, with conctools and ``reqs``."""
    env_dir = ROOT / ".nox" / name
    if env_dir.exists():
        shutil.rmtree(env_dir)
    session.run(exe, "-m", "venv", str(env_dir), external=True)
    py = str(env_dir / "bin" / "python")
    session.run(
        py,
        "-m",
        "pip",
        "install",
        "-q",
        "--disable-pip-version-check",
        "-e",
        str(ROOT),
        *reqs,
        external=True,
    )
    return py


def _pytest(session: nox.Session, py: str, env: dict[str, str] | None = None) -> None:
    session.run(py, "-m", "conctools", "info", external=True, env=env)
    # --durations: the slowest tests in every log, to keep the whole run inside its time budget.
    args = session.posargs or ["--durations=15"]
    session.run(py, "-m", "pytest", *args, external=True, env=env)


@nox.session(python=False)
def tests(session: nox.Session) -> None:
    """The test suite on each GIL interpreter found among 3.10-3.14."""
    for exe in _gil_interpreters(session):
        info = _probe(exe)
        assert info is not None
        session.log(f"=== tests on {exe} (Python {info['v']}, GIL build)")
        py = _venv(session, exe, f"tests-{info['v']}", TEST_REQS)
        _pytest(session, py)


@nox.session(python=False)
def tests_freethreaded(session: nox.Session) -> None:
    """The test suite on the free-threaded build with PYTHON_GIL=0, GIL asserted off."""
    exe = _provision(session)["freethreaded"]
    info = _probe(exe)
    assert info is not None and info["ft"], f"{exe} is not a free-threaded build"
    py = _venv(session, exe, f"tests-{info['v']}t", TEST_REQS)
    env = {"PYTHON_GIL": "0", "CONCTOOLS_REQUIRE_NOGIL": "1"}
    check = (
        "import sys; assert sys._is_gil_enabled() is False, 'GIL is enabled'; "
        "print('GIL disabled:', not sys._is_gil_enabled())"
    )
    session.run(py, "-c", check, external=True, env=env)
    _pytest(session, py, env=env)


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

    tests/typing/ holds user code of the public API (see its README)."""
    session.install("mypy", "typing_extensions", "hypothesis>=6.100,<6.156", "-e", ".")
    session.run("mypy", "--strict", "conctools")
    # The package's own errors are reported by the run above.
    session.run("mypy", "--strict", "--follow-imports=silent", "tests/typing")
    python = str(Path(session.bin) / "python")
    session.run(_pyright(session), "-p", "tests/typing", "--pythonpath", python, external=True)


@nox.session
def docs(session: nox.Session) -> None:
    """Sphinx HTML build with -W, the doctests, and the check for process words.

    The check (tools/check_process_words.py) fails when user-facing text (docs,
    README, changelog, docstrings, command-line output) uses words from our own
    process."""
    session.install("-e", ".[docs]")
    session.run(
        "sphinx-build", "-E", "-W", "--keep-going", "-q", "-b", "html", "docs", "docs/_build/html"
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
)
IMPORT_CHECK = """
import importlib.metadata as md, pathlib, sys
import conctools, conctools.testing
assert md.version("conctools-ft") == conctools.__version__, md.version("conctools-ft")
assert "site-packages" in pathlib.Path(conctools.__file__).parts, conctools.__file__
assert (pathlib.Path(conctools.__file__).parent / "py.typed").exists()
files = [str(f) for f in md.files("conctools-ft") or ()]
assert not any(f.startswith(("tests/", "benchmarks/", "docs/")) for f in files), files
print("ok:", conctools.__version__, conctools.__file__)
"""


@nox.session
def package(session: nox.Session) -> None:
    """Build, check, install and import the sdist and the wheel.

    twine check, check-wheel-contents and the sdist's file list; each artefact
    is installed into a fresh virtualenv and imported from outside the checkout."""
    import tarfile
    import tempfile

    session.install("build", "twine", "check-wheel-contents")
    dist = ROOT / ".nox" / "package-dist"
    shutil.rmtree(dist, ignore_errors=True)
    # build makes the sdist, then the wheel from the unpacked sdist: the sdist builds.
    session.run("python", "-m", "build", "--outdir", str(dist), str(ROOT), silent=True)
    (sdist,) = dist.glob("conctools_ft-*.tar.gz")
    (wheel,) = dist.glob("conctools_ft-*-py3-none-any.whl")
    session.run("twine", "check", "--strict", str(sdist), str(wheel))
    session.run("check-wheel-contents", str(wheel))
    with tarfile.open(sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    missing = [n for n in SDIST_MUST_HAVE if n not in names]
    extra = sorted(n for n in names if n.split("/")[0] in ("tests", "benchmarks", "docs"))
    if missing or extra:
        session.error(f"sdist: missing {missing}, unexpected {extra[:5]}")
    session.log(f"sdist: {len(names)} files, no tests (they run from a checkout)")
    for kind, artefact in (("wheel", wheel), ("sdist", sdist)):
        env_dir = ROOT / ".nox" / f"package-{kind}"
        shutil.rmtree(env_dir, ignore_errors=True)
        session.run(sys.executable, "-m", "venv", str(env_dir), external=True)
        py = str(env_dir / "bin" / "python")
        session.run(
            py,
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            str(artefact),
            external=True,
        )
        with tempfile.TemporaryDirectory() as outside, session.chdir(outside):
            session.run(py, "-c", IMPORT_CHECK, external=True)
            session.run(py, "-m", "conctools", "--version", external=True)


@nox.session(python=False)
def bench(session: nox.Session) -> None:
    """The bench CLI in --quick mode on both builds (free-threaded with the GIL off)."""
    paths = _provision(session)
    for label, exe, env in (
        ("gil", paths["gil"], {}),
        ("freethreaded", paths["freethreaded"], {"PYTHON_GIL": "0"}),
    ):
        py = _venv(session, exe, f"bench-{label}", ["cachetools>=5"])
        session.run(
            py, "-m", "conctools", "bench", "--quick", *session.posargs, external=True, env=env
        )


PEERS = ["ft_utils", "threadfactory", "cmake", "cereggii"]


@nox.session(python=False)
def bench_results(session: nox.Session) -> None:
    """Full reference benchmarks on both builds, written to benchmarks/results/,
    with the side-by-side table and the charts the docs show.  Peers (ft_utils,
    cereggii, threadfactory) are installed on the free-threaded build when the
    registry has them; a failed install only drops them from the tables."""
    paths = _provision(session)
    out = ROOT / "benchmarks" / "results"
    files = []
    for label, exe, env in (
        ("gil", paths["gil"], {}),
        ("freethreaded", paths["freethreaded"], {"PYTHON_GIL": "0"}),
    ):
        py = _venv(session, exe, f"bench-{label}", ["cachetools>=5"])
        if label == "freethreaded":
            for peer in PEERS:
                session.run(
                    py,
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    peer,
                    external=True,
                    env=env,
                    success_codes=[0, 1, 2],
                )
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
    (out / "compare.txt").write_text(compare)
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
