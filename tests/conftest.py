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
  builds so that contention tests interleave, and restores it;
* after every test, no thread may still be registered as waiting for a
  ``ShardedDict.compute_if_absent`` load (the module-wide wait-for table):
  an edge left behind is a leak, or a thread the test left waiting, and
  either one changes what later tests observe.
"""

from __future__ import annotations

import functools
import os
import sys
import types
from collections.abc import Iterator

import pytest
from _pytest.unittest import TestCaseFunction as UnittestFunction
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
_RECURSION = "sets the recursion limit, which is the same for every thread"
_CLASS_FLAG = (
    "sets a class-wide flag that makes comparisons raise, which the other copies' keys obey too"
)
_NO_GC = (
    "turns the cyclic garbage collector off for the process, which the other copies "
    "turn back on when they finish"
)
_EXCEPTHOOK = (
    "replaces threading.excepthook for the whole process to collect the errors of its threads"
)
THREAD_UNSAFE = {
    "fault_injection/": _SIGNALS,
    "test_faults.py": _SIGNALS,
    "test_queue.py::test_interrupted_get_unregisters": _SIGNALS,
    "test_queue_failure_paths.py::test_interrupted_thread_getter_does_not_exceed_the_bound": (
        _SIGNALS
    ),
    "test_queue_failure_paths.py::test_interrupted_put_has_not_put": _SIGNALS,
    "test_queue_failure_paths.py::test_interrupted_put_many_reports_nothing_twice": _SIGNALS,
    "test_rwlock.py::test_interrupted_reader_leaves_no_trace": _SIGNALS,
    "test_rwlock.py::test_interrupted_writer_leaves_no_trace": _SIGNALS,
    "test_readme.py::test_readme_examples_run": (
        "doctest replaces sys.stdout, which every thread shares, to capture the output"
    ),
    "test_cache_failure_paths.py::test_cached_recursion_depth_matches_the_lru_engine": _RECURSION,
    "test_cache_failure_paths.py::test_failed_install_ends_the_flight": _CLASS_FLAG,
    "test_cache_failure_paths.py::test_failed_install_gives_waiters_the_value": _CLASS_FLAG,
    "test_queue_api.py::test_priority_raising_lt_on_get_loses_nothing": _CLASS_FLAG,
    "test_sharded_set.py::test_hash_is_computed_outside_the_lock_and_once": (
        "counts hash calls in a class-wide counter, which the other copies' keys add to"
    ),
    "test_counters.py::test_striped_counter_is_collected_without_gc": _NO_GC,
    "test_counters.py::test_concurrent_counter_is_collected_without_gc": _NO_GC,
    "test_counters.py::test_striped_exact_under_drain_and_thread_exit": (
        "its drainer spins until the adders finish: the copies' spinning drainers starve "
        "each other's 8 adder threads on 2 cores"
    ),
    "conformance/test_conformance_cached.py::test_lru_reentrancy_with_len": (
        "replaces builtins.len for the whole process"
    ),
    "conformance/test_conformance_cached.py::test_lru_recursion": _RECURSION,
    "conformance/test_conformance_cached.py::test_lru_cache_threaded": _EXCEPTHOOK,
    "conformance/test_conformance_cached.py::test_lru_cache_threaded2": _EXCEPTHOOK,
    "conformance/test_conformance_cached.py::test_lru_cache_threaded3": _EXCEPTHOOK,
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


def _fresh_testcase_per_call(item: pytest.Item) -> None:
    """Run a unittest test on a new TestCase instance at each call.

    pytest-run-parallel calls the test method of one instance from every
    thread, so the attributes ``setUp`` gives it (``self.s``, ``self.cum``) are
    shared and the copies of a test that changes them break each other; and
    the method of an asynchronous TestCase would be called without being
    awaited, so it would pass without running.  Each call here makes its own
    instance and runs it with ``TestCase.debug()`` (``setUp``, the test,
    ``tearDown``, errors raised to the caller).  The function is built with
    the test module's globals, so that the plugin's detection of thread-unsafe
    calls still reads the test's own code (through ``__wrapped__``) with the
    names it uses.
    """
    cls, name = item.parent.obj, item.name  # type: ignore[union-attr]

    def run() -> None:
        cls(name).debug()  # setUp, the test (awaited if async), tearDown; errors propagate

    bound = item.obj  # type: ignore[attr-defined]
    fn = types.FunctionType(run.__code__, bound.__globals__, name, None, run.__closure__)
    item.obj = functools.wraps(bound)(fn)  # type: ignore[attr-defined]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _scale_timeouts(items)
    if not config.pluginmanager.hasplugin("run-parallel"):
        return
    if _parallel_copies(config):
        for item in items:
            if isinstance(item, UnittestFunction):
                _fresh_testcase_per_call(item)
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
    _report_leftover_threads()


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    if _parallel_copies(item.config):
        return  # copies of the test in other threads use the same table
    _check_no_wait_edges(item.nodeid)


def _parallel_copies(config: pytest.Config) -> bool:
    """Whether pytest-run-parallel runs copies of each test in several threads."""
    return (
        config.pluginmanager.hasplugin("run-parallel")
        and str(config.getoption("parallel_threads")) != "1"
    )


def _stack_of(ident: int | None, frames: dict[int, types.FrameType]) -> str:
    """The formatted stack of thread ``ident`` (``frames``: ``sys._current_frames()``)."""
    import traceback

    frame = frames.get(ident or -1)
    return "".join(traceback.format_stack(frame)) if frame is not None else "  (no frame)\n"


def _check_no_wait_edges(test: str) -> None:
    """Fail ``test`` if a wait-for edge of ``compute_if_absent`` outlives it.

    A thread the test started may still be leaving its wait: allow it a few
    seconds.  The report shows each waiting thread's stack (or says that the
    thread is gone, which means the edge leaked).  The sanitizer sessions
    scale the grace period with ``CONCTOOLS_TIMEOUT_SCALE``."""
    import threading
    import time

    sdmod = sys.modules.get("conctools.sharded_dict")
    if sdmod is None:
        return
    table = sdmod._waiting
    deadline = time.monotonic() + 5.0 * float(os.environ.get("CONCTOOLS_TIMEOUT_SCALE", "") or 1)
    while table and time.monotonic() < deadline:
        time.sleep(0.01)
    with sdmod._waiting_lock:
        left = dict(table)
        table.clear()  # one report; later tests start clean
    if not left:
        return
    threads = {t.ident: t for t in threading.enumerate()}
    frames = sys._current_frames()
    out = [f"{test}: {len(left)} compute_if_absent wait-for edge(s) left registered:"]
    for ident, res in left.items():
        t = threads.get(ident)
        name = t.name if t is not None else "no live thread: the edge leaked"
        load = f"thread {res.owner}'s load of {res.key!r} (finished: {res.finished()})"
        out.append(f"--- thread {ident} ({name}) waits for {load} ---\n{_stack_of(ident, frames)}")
    pytest.fail("\n".join(out), pytrace=False)


def _report_leftover_threads() -> None:
    """Non-daemon threads still alive when the session ends keep the interpreter
    from exiting (it joins them): show where each one waits, so a test that
    leaked a blocked thread is named instead of the run hanging silently."""
    import threading
    import time

    deadline = time.monotonic() + 5.0
    while True:
        left = [
            t
            for t in threading.enumerate()
            if t is not threading.main_thread() and not t.daemon and t.is_alive()
        ]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if not left:
        return
    frames = sys._current_frames()
    out = [f"\nconctools: {len(left)} non-daemon thread(s) still running at session end:"]
    for t in left:
        stack = _stack_of(t.ident, frames)
        out.append(f"--- {t.name} (target {getattr(t, '_target', None)!r}) ---\n{stack}")
    sys.stderr.write("\n".join(out) + "\n")


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


WAITER_NOTE = "a concurrent call for the same key ran the loader"


class UncopyableError(Exception):
    """``copy.copy`` calls ``cls(*args)``: this class needs two arguments but
    stores one, so the cache cannot copy it for a waiter."""

    def __init__(self, a: str, b: str) -> None:
        super().__init__(a + b)


def _tb_objects(exc: BaseException) -> list[types.TracebackType]:
    out = []
    tb = exc.__traceback__
    while tb is not None:
        out.append(tb)
        tb = tb.tb_next
    return out


def check_loader_error_copies(errors: list[BaseException], loader: str) -> BaseException:
    """``errors``: what the callers of one failed single-flight load raised.

    Exactly one of them (the caller that ran the loader) raised the loader's
    own exception: its traceback reaches the function named ``loader``; every
    other one is a distinct copy (same class and ``args``, the same
    ``__cause__``, a note saying so on 3.11+) whose traceback is its own and
    never reaches the loader.  Returns the loader's exception."""
    assert len({id(e) for e in errors}) == len(errors), "an exception object was shared"
    first = errors[0]
    assert all(type(e) is type(first) and e.args == first.args for e in errors), errors
    assert all(e.__cause__ is first.__cause__ for e in errors)
    package = os.path.dirname(conctools.__file__) + os.sep

    def reaches_loader(e: BaseException) -> bool:
        return any(
            tb.tb_frame.f_code.co_name == loader
            and not tb.tb_frame.f_code.co_filename.startswith(package)  # (a wrapper's name)
            for tb in _tb_objects(e)
        )

    own = [e for e in errors if reaches_loader(e)]
    assert len(own) == 1, f"{len(own)} of {len(errors)} tracebacks reach {loader}()"
    original = own[0]
    seen: set[int] = set()
    for e in errors:
        ids = {id(tb) for tb in _tb_objects(e)}
        assert ids and not ids & seen, "a traceback entry is shared"
        seen |= ids
        notes = getattr(e, "__notes__", [])
        if e is original:
            assert not any(WAITER_NOTE in n for n in notes), notes
        elif sys.version_info >= (3, 11):
            assert WAITER_NOTE in notes[-1], notes
    return original
