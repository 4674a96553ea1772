"""The fault-injection harness finds a lock taken outside the scope that releases it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from conctools.testing.faults import FaultInjectionFailed, InjectedFault, inject_faults


class _Broken:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.n = 0

    def bump(self) -> None:
        lock = self.lock
        lock.acquire()
        len(())  # a call: the interpreter checks for pending signals after it
        try:
            self.n += 1
        finally:
            lock.release()


class _Safe(_Broken):
    def bump(self) -> None:
        with self.lock:
            self.n += 1


def _probe(obj: _Broken) -> None:
    if not obj.lock.acquire(timeout=2):
        raise AssertionError("lock left held")
    obj.lock.release()


def test_finds_lock_left_held() -> None:
    obj = _Broken()
    with pytest.raises(FaultInjectionFailed, match="lock left held"):
        inject_faults(
            lambda: [obj.bump() for _ in range(200)],
            attempts=2000,
            probe=lambda: _probe(obj),
            seed=1,
        )


def test_safe_code_passes_and_faults_land() -> None:
    obj = _Safe()
    report = inject_faults(
        lambda: [obj.bump() for _ in range(200)],
        attempts=300,
        min_delivered=51,
        probe=lambda: _probe(obj),
        background=[obj.bump],
        seed=2,
    )
    assert report.delivered > 50, report
    assert report.background_calls > 0


def test_unexpected_target_error_fails() -> None:
    def boom() -> None:
        raise KeyError("x")

    with pytest.raises(FaultInjectionFailed, match="KeyError"):
        inject_faults(boom, attempts=3, max_delay=1e-3)
    report = inject_faults(boom, attempts=3, max_delay=1e-3, expected=(KeyError,))
    assert report.target_errors + report.delivered == 3


def test_handler_restored() -> None:
    import signal

    before = signal.getsignal(signal.SIGALRM)
    inject_faults(lambda: None, attempts=5)
    assert signal.getsignal(signal.SIGALRM) is before
    assert issubclass(InjectedFault, BaseException)
    assert not issubclass(InjectedFault, Exception)


def test_not_from_other_thread() -> None:
    err: list[BaseException] = []

    def run() -> None:
        try:
            inject_faults(lambda: None, attempts=1)
        except RuntimeError as exc:
            err.append(exc)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert err and "main thread" in str(err[0])


def test_gc_state_restored() -> None:
    import gc

    assert gc.isenabled()
    seen: list[bool] = []
    inject_faults(lambda: seen.append(gc.isenabled()), attempts=3, max_delay=1e-3)
    assert gc.isenabled() and seen and not any(seen)
    seen.clear()
    inject_faults(lambda: seen.append(gc.isenabled()), attempts=3, max_delay=1e-3, pause_gc=False)
    assert all(seen)


def test_min_delivered_goes_on_until_faults_land() -> None:
    calls = [0]

    def quick() -> None:
        calls[0] += 1
        # mostly returns long before the timer fires; now and then waits for it
        if calls[0] % 7 == 0:
            threading.Event().wait(0.01)

    report = inject_faults(quick, attempts=10, min_delivered=5, max_delay=2e-3, seed=3)
    assert report.delivered >= 5, report
    assert report.attempts > 10, report
    # every attempt called the target; a fault may land before its first line runs
    assert calls[0] <= report.attempts <= calls[0] + report.delivered, (calls, report)
    # without it, exactly ``attempts`` calls
    report = inject_faults(quick, attempts=10, max_delay=2e-3, seed=3)
    assert report.attempts == 10
    # the cap holds when faults cannot land at all
    report = inject_faults(
        lambda: None, attempts=5, min_delivered=3, max_attempts=12, max_delay=5.0, seed=4
    )
    assert report.attempts == 12 and report.delivered == 0, report


def test_min_delivered_bad_input() -> None:
    with pytest.raises(ValueError, match="min_delivered"):
        inject_faults(lambda: None, attempts=5, min_delivered=-1)
    with pytest.raises(ValueError, match="max_attempts"):
        inject_faults(lambda: None, attempts=5, max_attempts=4)


def _slow_at_first(slow_calls: int, sleep: float, work: int) -> Callable[[], None]:
    """A target whose first ``slow_calls`` calls (the measuring ones) sleep
    ``sleep`` seconds; every call then runs a loop of ``work`` additions."""
    calls = [0]

    def target() -> None:
        calls[0] += 1
        if calls[0] <= slow_calls:
            time.sleep(sleep)
        total = 0
        for i in range(work):
            total += i

    return target


def test_a_slow_measurement_does_not_keep_faults_from_landing() -> None:
    """The default bound on the delays is measured from the target; when one
    measuring call is slow (a busy machine), min_delivered still lands faults."""
    target = _slow_at_first(1, 0.3, 20_000)
    report = inject_faults(target, attempts=20, min_delivered=5, seed=5)
    assert report.delivered >= 5, report
    assert report.max_delay < 0.05, report


def test_the_measured_bound_halves_while_faults_do_not_land() -> None:
    # every measuring call is slow, the attempts are fast: only halving lands faults
    target = _slow_at_first(3, 0.05, 5_000)
    report = inject_faults(target, attempts=10, min_delivered=3, seed=6)
    assert report.delivered >= 3, report
    assert report.max_delay < 0.075 / 2, report  # halved at least once
    # an explicit max_delay is never changed
    report = inject_faults(target, attempts=10, min_delivered=3, max_attempts=20, max_delay=5.0)
    assert report.max_delay == 5.0 and report.delivered == 0, report
