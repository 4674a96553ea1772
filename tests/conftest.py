"""Shared test infrastructure.

* every test has a timeout (pyproject: ``timeout``) and faulthandler dumps all
  threads' tracebacks before it fires, so a deadlock fails fast and readably;
* hypothesis profiles ``dev`` (default), ``ci`` and ``thorough`` are chosen by
  ``CONCTOOLS_HYPOTHESIS_PROFILE`` (``ci`` when ``CI`` is set);
* ``CONCTOOLS_REQUIRE_NOGIL=1`` makes the session fail unless the GIL is
  really off, at the start and at the end (an extension import could turn it
  back on silently);
* ``CONCTOOLS_REQUIRE_NATIVE=1`` makes the session fail unless the C
  accelerator is active (a failed build would otherwise silently test the
  pure-Python code twice); with ``CONCTOOLS_PURE_PYTHON=1`` the session fails
  unless the pure-Python implementation is active.  The header names the
  implementation under test;
* the ``switch_interval`` fixture shrinks ``sys.setswitchinterval`` on GIL
  builds so that contention tests interleave, and restores it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

import conctools
from conctools._internal import native

_common = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
settings.register_profile("dev", max_examples=40, **_common)
settings.register_profile("ci", max_examples=25, derandomize=False, print_blob=True, **_common)
settings.register_profile("thorough", max_examples=500, **_common)
settings.load_profile(
    os.environ.get("CONCTOOLS_HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev")
)

STRESS = os.environ.get("CONCTOOLS_STRESS") == "1"


def _require_nogil(when: str) -> None:
    if os.environ.get("CONCTOOLS_REQUIRE_NOGIL") != "1":
        return
    if not conctools.free_threaded_build():
        pytest.exit(
            f"CONCTOOLS_REQUIRE_NOGIL=1 but this is not a free-threaded build ({when})",
            returncode=3,
        )
    if conctools.gil_enabled():
        pytest.exit(f"CONCTOOLS_REQUIRE_NOGIL=1 but the GIL is enabled ({when})", returncode=3)


def _require_implementation(when: str) -> None:
    want_native = os.environ.get("CONCTOOLS_REQUIRE_NATIVE", "") not in ("", "0")
    want_pure = os.environ.get("CONCTOOLS_PURE_PYTHON", "") not in ("", "0")
    if want_native and want_pure:
        pytest.exit(
            "CONCTOOLS_REQUIRE_NATIVE=1 and CONCTOOLS_PURE_PYTHON=1 contradict each other",
            returncode=3,
        )
    if want_native and native.ACTIVE != "native":
        pytest.exit(
            f"CONCTOOLS_REQUIRE_NATIVE=1 but {native.REASON} ({when})",
            returncode=3,
        )
    if want_pure and (native.ACTIVE != "pure-python" or "conctools._native" in sys.modules):
        pytest.exit(
            f"CONCTOOLS_PURE_PYTHON is set but the C accelerator was loaded ({when})",
            returncode=3,
        )


def pytest_configure(config: pytest.Config) -> None:
    # pytest-run-parallel's markers, registered here too so that --strict-markers
    # accepts them when the plugin is not installed
    if not config.pluginmanager.hasplugin("run-parallel"):
        config.addinivalue_line(
            "markers", "thread_unsafe: do not run this test in several threads at once"
        )
        config.addinivalue_line("markers", "parallel_threads(n): threads for this test")


# Tests that cannot run in several threads at once under pytest-run-parallel
# (``--parallel-threads=N``), by path prefix or ``file::test`` (relative to
# tests/), with the reason. A test may also say so itself with
# @pytest.mark.thread_unsafe(reason=...).
_SIGNALS = "signals are delivered to the main thread only"
THREAD_UNSAFE = {
    "fault_injection/": _SIGNALS,
    "test_faults.py": _SIGNALS,
    "test_queue.py::test_interrupted_get_unregisters": _SIGNALS,
    "test_queue.py::test_no_thread_per_waiting_coroutine": (
        "counts the process's threads, which the other copies of the test start too"
    ),
    "test_sharded_dict.py::test_compute_if_absent_cyclic_loads_raise_instead_of_deadlocking": (
        "asserts that the module-wide table of waiting loaders is empty, which the "
        "other copies of the test fill"
    ),
    "test_sharded_dict.py::test_key_hash_never_runs_under_a_shard_lock": (
        "instruments the module's locks for every thread, so the other copies' hashing "
        "is counted too"
    ),
}


def _scale_timeouts(items: list[pytest.Item]) -> None:
    """``CONCTOOLS_TIMEOUT_SCALE=N`` multiplies the tests' own timeout markers by N
    (the sanitizer sessions, where everything runs several times slower; the
    default timeout is set on the command line there)."""
    scale = float(os.environ.get("CONCTOOLS_TIMEOUT_SCALE", "") or 1)
    if scale == 1:
        return
    for item in items:
        marker = item.get_closest_marker("timeout")
        if marker is not None and marker.args:
            scaled = pytest.mark.timeout(marker.args[0] * scale, *marker.args[1:], **marker.kwargs)
            item.add_marker(scaled, append=False)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _scale_timeouts(items)
    if not config.pluginmanager.hasplugin("run-parallel"):
        return
    root = os.path.dirname(os.path.abspath(__file__))
    for item in items:
        rel = os.path.relpath(str(item.path), root).replace(os.sep, "/")
        test = f"{rel}::{item.name.split('[', 1)[0]}"
        for where, reason in THREAD_UNSAFE.items():
            if test == where or ("::" not in where and rel.startswith(where)):
                item.add_marker(pytest.mark.thread_unsafe(reason=reason))
                break


def pytest_report_header(config: pytest.Config) -> str:
    info = conctools.runtime_info()
    return (
        f"conctools runtime: Python {info.python_version}, {info.summary} cpus={info.cpu_count}\n"
        f"conctools implementation: {info.accelerator} ({info.accelerator_reason})"
    )


def pytest_sessionstart(session: pytest.Session) -> None:
    _require_nogil("session start")
    _require_implementation("session start")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _require_nogil("session end")
    _require_implementation("session end")
    if os.environ.get("CONCTOOLS_REQUIRE_NOGIL") == "1":
        sys.stderr.write("\nconctools: GIL confirmed disabled at session start and end\n")
    if os.environ.get("CONCTOOLS_REQUIRE_NATIVE", "") not in ("", "0"):
        sys.stderr.write("conctools: the C accelerator was active at session start and end\n")


@pytest.fixture
def switch_interval() -> Iterator[None]:
    """Shrink the GIL switch interval (GIL builds) so threads interleave often."""
    old = sys.getswitchinterval()
    if conctools.gil_enabled():
        sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def stress_scale(ci: int, full: int) -> int:
    """Iteration count for a stress test: bounded unless CONCTOOLS_STRESS=1."""
    return full if STRESS else ci
