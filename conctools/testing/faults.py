"""Fault injection: deliver an exception at a random point inside a call.

A ``KeyboardInterrupt`` (or any exception raised by a signal handler) can
arrive between *any* two bytecodes of the main thread: between
``lock.acquire()`` and the ``try:`` that releases it, between two steps of a
multi-step state change, while a waiter is being registered. Code that is
correct on every normal path can still leave a lock held, a future never
completed or a counter off by one on such a path.

:func:`inject_faults` makes those paths testable. It calls ``target`` over and
over in the main thread; during each call a one-shot interval timer fires a
signal whose handler raises :class:`InjectedFault` at a random moment. After
every attempt it runs ``check`` (your invariants) and ``probe`` (an operation
that must finish promptly in *another* thread: if a lock was left held, it
does not), while optional ``background`` callables keep other threads working
on the same structure.

Example::

    from conctools.testing.faults import inject_faults

    d = ShardedDict()
    report = inject_faults(
        lambda: [d.increment(k) for k in range(50)],
        probe=lambda: d.snapshot(),  # takes every shard lock
    )
    assert report.delivered > 0

Only on platforms with :func:`signal.setitimer` (POSIX), and only from the
main thread (Python runs signal handlers there). :class:`InjectedFault` is a
``BaseException``, like ``KeyboardInterrupt``, so ``except Exception:``
clean-up code does not hide the paths it would skip.
"""

from __future__ import annotations

import gc
import math
import random
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType

__all__ = ["FaultInjectionFailed", "FaultReport", "InjectedFault", "inject_faults"]


class InjectedFault(BaseException):
    """The exception :func:`inject_faults` raises inside the target call."""


class FaultInjectionFailed(AssertionError):
    """A probe did not finish, a check failed, or a background thread raised."""


@dataclass
class FaultReport:
    """What :func:`inject_faults` did.

    ``delivered`` counts attempts in which the fault interrupted the target;
    ``completed`` those in which the target returned first (or raised its own
    exception, counted in ``target_errors`` too).
    """

    attempts: int = 0
    delivered: int = 0
    completed: int = 0
    target_errors: int = 0
    background_calls: int = 0
    max_delay: float = 0.0
    errors: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"{self.attempts} attempts: {self.delivered} faults delivered inside the call, "
            f"{self.completed} calls completed first ({self.target_errors} raised their own "
            f"error); {self.background_calls} background calls; delays up to "
            f"{self.max_delay * 1e6:.0f} us"
        )


_MIN_DELAY = 20e-6  # seconds: the shortest measured max_delay


class _State:
    armed = False


def _swallowing(frame: FrameType | None) -> bool:
    """Whether ``frame`` runs where CPython reports an exception as "ignored"
    instead of raising it: a weakref callback (``weakref``/``_weakrefset``,
    e.g. ``threading``'s set of live threads) or a ``__del__`` method that a
    reference drop started in the middle of the target.  A fault delivered
    there would not reach the code under test; the attempt stays armed for a
    later signal, or counts as a call that completed first."""
    if frame is None:
        return False
    code = frame.f_code
    return code.co_name == "__del__" or code.co_filename.endswith(("_weakrefset.py", "weakref.py"))


def _stacks() -> str:
    frames = sys._current_frames()
    out = []
    for t in threading.enumerate():
        frame: FrameType | None = frames.get(t.ident or -1)
        if frame is None:
            continue
        out.append(f"--- thread {t.name} ---\n" + "".join(traceback.format_stack(frame)))
    return "\n".join(out)


def _run_probe(probe: Callable[[], object], timeout: float) -> str | None:
    """Run ``probe`` in a fresh thread; an error message if it fails or hangs."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            probe()
        except BaseException as exc:  # reported to the caller
            outcome.append(exc)
        else:
            outcome.append(None)

    t = threading.Thread(target=run, name="fault-probe", daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        return f"probe did not finish within {timeout} s (a lock or slot left held?)\n" + _stacks()
    if outcome and outcome[0] is not None:
        exc = outcome[0]
        return "probe raised " + "".join(traceback.format_exception(type(exc), exc, None))
    return None


def inject_faults(
    target: Callable[[], object],
    *,
    attempts: int = 200,
    min_delivered: int = 0,
    max_attempts: int | None = None,
    check: Callable[[], object] | None = None,
    probe: Callable[[], object] | None = None,
    probe_every: int = 1,
    probe_timeout: float = 10.0,
    background: Sequence[Callable[[], object]] = (),
    expected: tuple[type[BaseException], ...] = (),
    max_delay: float | None = None,
    seed: int | None = None,
    pause_gc: bool = True,
) -> FaultReport:
    """Call ``target`` ``attempts`` times, interrupting it at random moments.

    Each attempt arms a one-shot ``SIGALRM`` timer with a random delay between
    0 and ``max_delay`` (by default 1.5x the target's own duration, the
    fastest of three calls made first without faults) and calls
    ``target()``; the signal handler raises :class:`InjectedFault` wherever
    the main thread then is. After each
    attempt ``check()`` runs in the main thread (raise to report a broken
    invariant), and every ``probe_every`` attempts ``probe()`` runs in a new
    thread and must return within ``probe_timeout`` seconds.

    On a loaded machine the target may often return before the timer fires.
    With ``min_delivered``, attempts go on past ``attempts`` until that many
    faults have landed inside the target, up to ``max_attempts`` (by default
    ten times ``attempts``); check ``report.delivered`` afterwards, as the
    run stops at ``max_attempts`` either way. A measured ``max_delay`` is
    halved after each further ``attempts`` attempts that leave fewer than
    ``min_delivered`` faults delivered (down to 20 us); ``report.max_delay``
    is the last bound used.

    ``background`` callables are called in a loop, each in its own thread,
    for the whole run. Exceptions from ``target`` other than the fault and
    those listed in ``expected`` are failures; so is any exception from a
    ``background`` callable, ``check`` or ``probe``. On the first failure,
    :class:`FaultInjectionFailed` is raised with the details (a hung probe
    shows every thread's stack). Returns a :class:`FaultReport`.

    With ``pause_gc`` (the default) automatic cyclic garbage collection is
    off during the run (the collector still runs between attempts): a fault
    landing in a ``gc`` callback or a finalizer is reported by Python as
    "Exception ignored" and never reaches the target, which would only add
    noise. The previous ``SIGALRM`` handler, timer and ``gc`` state are
    restored on exit.
    """
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("inject_faults must be called from the main thread")
    if not hasattr(signal, "setitimer"):
        raise RuntimeError("inject_faults needs signal.setitimer (POSIX)")
    if attempts < 1:
        raise ValueError("attempts must be >= 1")
    if min_delivered < 0:
        raise ValueError("min_delivered must be >= 0")
    if max_attempts is None:
        max_attempts = 10 * attempts
    elif max_attempts < attempts:
        raise ValueError("max_attempts must be >= attempts")
    rng = random.Random(seed)
    report = FaultReport()
    state = _State()

    measured = max_delay is None
    if max_delay is None:
        # The fastest of three calls: one call slowed down by a busy machine
        # would make every delay too long for a fault to land in time.
        fastest = math.inf
        for _ in range(3):
            t0 = time.perf_counter()
            target()
            fastest = min(fastest, time.perf_counter() - t0)
        max_delay = max(_MIN_DELAY, 1.5 * fastest)
    report.max_delay = max_delay

    def handler(signum: int, frame: FrameType | None) -> None:
        if state.armed and not _swallowing(frame):
            state.armed = False
            raise InjectedFault

    stop = threading.Event()
    bg_errors: list[str] = []
    bg_counts = [0] * len(background)

    def loop(i: int, fn: Callable[[], object]) -> None:
        try:
            while not stop.is_set():
                fn()
                bg_counts[i] += 1
        except BaseException as exc:  # reported to the caller
            bg_errors.append(
                "background callable raised "
                + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            )

    gc_was_enabled = gc.isenabled()
    if pause_gc:
        gc.disable()
    old_handler = signal.signal(signal.SIGALRM, handler)
    old_timer = signal.setitimer(signal.ITIMER_REAL, 0)
    workers = [
        threading.Thread(target=loop, args=(i, fn), name=f"fault-bg-{i}", daemon=True)
        for i, fn in enumerate(background)
    ]
    try:
        for w in workers:
            w.start()
        attempt = -1
        while report.attempts < attempts or (
            report.delivered < min_delivered and report.attempts < max_attempts
        ):
            attempt += 1
            report.attempts += 1
            if (
                measured
                and attempt
                and attempt % attempts == 0
                and report.delivered < min_delivered
                and max_delay > _MIN_DELAY
            ):
                # Faults do not land: the measured duration was too long.
                max_delay = report.max_delay = max(_MIN_DELAY, max_delay / 2)
            finished = False
            try:
                try:
                    state.armed = True
                    signal.setitimer(signal.ITIMER_REAL, rng.uniform(1e-6, max_delay))
                    try:
                        target()
                    except InjectedFault:
                        raise
                    except expected:
                        report.target_errors += 1
                    finished = True
                finally:
                    # The timer is one-shot: once it fired nothing more arrives.
                    state.armed = False
                    signal.setitimer(signal.ITIMER_REAL, 0)
            except InjectedFault:
                pass
            except BaseException as exc:
                raise FaultInjectionFailed(
                    f"attempt {attempt}: target raised an unexpected {type(exc).__name__}: {exc!r}"
                ) from exc
            if pause_gc and attempt % 50 == 49:
                gc.collect()
            if finished:
                report.completed += 1
            else:
                report.delivered += 1
            if check is not None:
                try:
                    check()
                except BaseException as exc:
                    raise FaultInjectionFailed(
                        f"attempt {attempt} (fault {'delivered' if not finished else 'late'}): "
                        f"check failed: {type(exc).__name__}: {exc}"
                    ) from exc
            if probe is not None and attempt % probe_every == 0:
                msg = _run_probe(probe, probe_timeout)
                if msg is not None:
                    raise FaultInjectionFailed(f"attempt {attempt}: {msg}")
            if bg_errors:
                raise FaultInjectionFailed(bg_errors[0])
    finally:
        state.armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        stop.set()
        for w in workers:
            w.join(probe_timeout)
        signal.signal(signal.SIGALRM, old_handler)
        if gc_was_enabled:
            gc.enable()
        if old_timer[0] > 0:
            signal.setitimer(signal.ITIMER_REAL, *old_timer)
    if bg_errors:
        raise FaultInjectionFailed(bg_errors[0])
    stuck = [w.name for w in workers if w.is_alive()]
    if stuck:
        raise FaultInjectionFailed(
            f"background threads did not stop within {probe_timeout} s: {stuck}\n" + _stacks()
        )
    report.background_calls = sum(bg_counts)
    return report
