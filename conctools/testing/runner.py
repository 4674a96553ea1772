"""Run callables in threads released together by a barrier, with a hang detector."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any, TypeVar

from .._internal.timeouts import check_timeout
from .._runtime import gil_enabled

__all__ = ["ThreadsStuck", "fast_thread_switching", "run_concurrently", "run_in_threads"]

T = TypeVar("T")

_log = logging.getLogger("conctools.testing")

#: Switch interval used on GIL builds while concurrent code runs (seconds).
FAST_SWITCH_INTERVAL = 1e-6

#: Longest time a released thread busy-waits for the others (seconds).
_SPIN_LIMIT = 0.05

_yield: Callable[[], None] = getattr(os, "sched_yield", lambda: None)

_switch_lock = threading.Lock()
_switch_depth = 0
_switch_saved = 0.0


class ThreadsStuck(AssertionError):
    """Threads were still running when the runner's timeout expired.

    The message lists every stuck thread with its current stack. The threads
    themselves cannot be killed: they are daemon threads and keep running in
    the background, so the test process can still exit.
    """


@contextmanager
def fast_thread_switching(interval: float = FAST_SWITCH_INTERVAL) -> Iterator[None]:
    """Shrink :func:`sys.setswitchinterval` on GIL builds for the duration of the block.

    With the GIL, CPython switches threads only every 5 ms by default, so a
    short race window almost never opens. On free-threaded builds with the GIL
    off this does nothing. Nested and concurrent uses are counted: the
    original interval is restored when the outermost block exits.
    """
    global _switch_depth, _switch_saved
    if not gil_enabled():
        yield
        return
    with _switch_lock:
        if _switch_depth == 0:
            _switch_saved = sys.getswitchinterval()
            sys.setswitchinterval(min(interval, _switch_saved))
        _switch_depth += 1
    try:
        yield
    finally:
        with _switch_lock:
            _switch_depth -= 1
            if _switch_depth == 0:
                sys.setswitchinterval(_switch_saved)


#: ``preempt`` rate used by ``preempt=None``, on every build. Measured on 2 cores,
#: CPython 3.13.15t with the GIL off and one CPU-bound process beside the test:
#: without forced switches the testing guide's lost-update example was caught in
#: 13 of 30 runs of 500 trials, with 0.25 in 30 of 30 (median: trial 8).
AUTO_PREEMPT = 0.25

_OWN_DIR = os.path.dirname(os.path.abspath(__file__))


def _preempt_rate(preempt: float | None) -> float:
    if preempt is None:
        return AUTO_PREEMPT
    if not isinstance(preempt, (int, float)):
        raise TypeError(f"preempt must be a probability or None, not {type(preempt).__name__}")
    rate = float(preempt)
    if not 0.0 <= rate <= 1.0:
        raise ValueError("preempt must be between 0 and 1")
    return rate


# ``time.sleep(0)`` hands the GIL over on 3.11+, but on 3.10 the sleeping thread
# usually takes it straight back; a 1 us sleep really parks it (about 50 us).
_PAUSE: float = 0.0 if sys.version_info >= (3, 11) else 1e-6


class _PreemptHook:
    """Trace function forcing a thread switch at random lines/calls."""

    __slots__ = ("_rate", "_rnd")

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._rnd = random.Random().random

    def __call__(self, frame: FrameType, event: str, arg: Any) -> _PreemptHook | None:
        if event == "call" and frame.f_code.co_filename.startswith(_OWN_DIR):
            return None  # do not perturb the recorder's own timing
        if event in ("line", "call") and self._rnd() < self._rate:
            time.sleep(_PAUSE)  # releases the GIL; a waiting thread takes it
        return self


def _describe_fn(fn: Callable[..., Any]) -> str:
    if isinstance(fn, _Bound):
        return f"{_describe_fn(fn.fn)}({fn.i})"
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return str(name) if name else repr(fn)


def _add_note(exc: BaseException, note: str) -> None:
    add_note = getattr(exc, "add_note", None)
    if add_note is not None:  # Python >= 3.11
        add_note(note)
        return
    notes = getattr(exc, "__notes__", None)  # pragma: no cover - Python 3.10
    if not isinstance(notes, list):  # pragma: no cover
        notes = []
        with contextlib.suppress(AttributeError):
            exc.__notes__ = notes  # type: ignore[attr-defined]
    notes.append(note)  # pragma: no cover
    _log.error("%s", note)  # pragma: no cover


def _format_stack(thread: threading.Thread) -> str:
    frame = sys._current_frames().get(thread.ident) if thread.ident is not None else None
    if frame is None:
        return "    (no Python frame: the thread is finishing)\n"
    return "".join("  " + line for line in traceback.format_stack(frame))


def run_concurrently(
    *fns: Callable[[], Any], timeout: float | None = 30.0, preempt: float | None = 0.0
) -> list[Any]:
    """Run each zero-argument callable in its own thread, all released together.

    Every thread waits on a :class:`threading.Barrier` before calling its
    function, so the calls really overlap. Returns the results in argument
    order. If any call raised, the first exception to be raised (in time) is
    re-raised in the caller; the others are attached to it as notes
    (``__notes__``, also logged to the ``conctools.testing`` logger on
    Python 3.10). If a thread is still running ``timeout`` seconds after the
    start (``None``: wait forever), :class:`ThreadsStuck` is raised with the
    stack of every stuck thread. On GIL builds the switch interval is shrunk
    while the threads run (see :func:`fast_thread_switching`).

    ``preempt`` (a probability, default 0) makes every thread hand the CPU to
    another at that rate at each Python line and call it executes (a
    :func:`sys.settrace` hook calling ``time.sleep(0)``, 1 us on 3.10; frames of
    ``conctools.testing`` itself are skipped). With the GIL, threads switch
    only every ~50-100 us in practice even with a tiny switch interval, so a
    race window of a few bytecodes almost never opens; forced switch points
    open it in a few trials. Without the GIL the same holds whenever the
    threads do not really run at once, which is the common case on a busy
    machine (another process on the other core). ``None`` means 0.25, on
    every build. It slows the traced code down a lot: use it for short scenarios,
    not for stress loops, and note that it replaces a coverage tracer in the
    worker threads.

    >>> from conctools.testing import run_concurrently
    >>> run_concurrently(lambda: 1, lambda: 2)
    [1, 2]
    """
    limit = check_timeout(timeout)
    rate = _preempt_rate(preempt)
    for fn in fns:
        if not callable(fn):
            raise TypeError(f"run_concurrently() arguments must be callable, not {fn!r}")
    n = len(fns)
    if n == 0:
        return []
    results: list[Any] = [None] * n
    errors: list[tuple[int, BaseException]] = []
    errors_lock = threading.Lock()
    barrier = threading.Barrier(n)

    running: list[int] = []

    def body(i: int) -> None:
        try:
            barrier.wait(limit)
            # The barrier wakes threads one by one (each wake-up is a system
            # call), so a short function could finish before the last thread
            # runs. Spin until every thread is actually running: then the
            # calls really overlap, and with the GIL the shrunk switch
            # interval hands the GIL around among running threads.
            running.append(i)
            spin_end = time.monotonic() + _SPIN_LIMIT
            while len(running) < n and time.monotonic() < spin_end:
                _yield()
            if rate > 0.0:
                previous = sys.gettrace()
                sys.settrace(_PreemptHook(rate))
                try:
                    results[i] = fns[i]()
                finally:
                    sys.settrace(previous)
            else:
                results[i] = fns[i]()
        except BaseException as exc:
            with errors_lock:
                errors.append((i, exc))

    threads = [
        threading.Thread(target=body, args=(i,), name=f"conctools-run-{i}", daemon=True)
        for i in range(n)
    ]
    with fast_thread_switching():
        start = time.monotonic()
        for th in threads:
            th.start()
        for th in threads:
            if limit is None:
                th.join()
            else:
                th.join(max(0.0, start + limit - time.monotonic()))
    stuck = [(i, th) for i, th in enumerate(threads) if th.is_alive()]
    with errors_lock:
        errs = list(errors)
    if stuck:
        parts = [
            f"{len(stuck)} of {n} threads still running after {limit:g} s "
            "(deadlock, livelock or a missed wake-up?):"
        ]
        for i, th in stuck:
            parts.append(f"\n--- thread {i} ({_describe_fn(fns[i])}), stack:\n{_format_stack(th)}")
        stuck_exc = ThreadsStuck("".join(parts))
        for i, exc in errs:
            _add_note(stuck_exc, _format_other(i, fns[i], exc))
        raise stuck_exc
    if errs:
        i0, first = errs[0]
        _add_note(first, f"[conctools.testing] raised in thread {i0} ({_describe_fn(fns[i0])})")
        for i, exc in errs[1:]:
            _add_note(first, _format_other(i, fns[i], exc))
        raise first
    return results


def _format_other(i: int, fn: Callable[..., Any], exc: BaseException) -> str:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
    return f"[conctools.testing] thread {i} ({_describe_fn(fn)}) also raised:\n{text}"


def run_in_threads(
    fn: Callable[[int], T],
    n: int,
    *,
    timeout: float | None = 30.0,
    preempt: float | None = 0.0,
) -> list[T]:
    """Run ``fn(i)`` for each ``i`` in ``range(n)``, each in its own thread.

    Same semantics as :func:`run_concurrently`.

    >>> from conctools.testing import run_in_threads
    >>> run_in_threads(lambda i: i * i, 3)
    [0, 1, 4]
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, not {type(n).__name__}")
    if n < 0:
        raise ValueError("n must be >= 0")
    if not callable(fn):
        raise TypeError(f"fn must be callable, not {fn!r}")
    bound: Sequence[Callable[[], T]] = [_Bound(fn, i) for i in range(n)]
    return run_concurrently(*bound, timeout=timeout, preempt=preempt)


class _Bound:
    __slots__ = ("fn", "i")

    def __init__(self, fn: Callable[[int], Any], i: int) -> None:
        self.fn = fn
        self.i = i

    def __call__(self) -> Any:
        return self.fn(self.i)
