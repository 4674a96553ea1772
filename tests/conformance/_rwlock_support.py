"""The few ``test.support`` helpers that ``cpython_lock_tests.py`` uses.

``test.support`` ships with CPython's test suite, which not every build
installs (the GIL twin and 3.10 here have none), so these are small
equivalents with the same behaviour for what the lock tests need.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

_SHORT_TIMEOUT = 30.0
_LONG_TIMEOUT = 5 * 60.0


def _sleeping_retry(timeout: float, err_msg: str | None = None) -> Iterator[None]:
    """Yield until the caller breaks; fail after ``timeout`` seconds (as
    ``test.support.sleeping_retry``: sleeps grow from 10 ms to 1 s)."""
    delay = 0.010
    deadline = time.monotonic() + timeout
    while True:
        yield
        if time.monotonic() >= deadline:
            raise AssertionError(err_msg or f"timeout ({timeout} s)")
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def _reap_children() -> None:
    pass


support = SimpleNamespace(
    SHORT_TIMEOUT=_SHORT_TIMEOUT,
    LONG_TIMEOUT=_LONG_TIMEOUT,
    sleeping_retry=_sleeping_retry,
    has_fork_support=hasattr(os, "fork") and sys.platform != "emscripten",
    reap_children=_reap_children,
)


def _threading_setup() -> tuple[int]:
    return (threading.active_count(),)


def _threading_cleanup(*original: Any) -> None:
    # Give threads started by the test a moment to end (informational only).
    deadline = time.monotonic() + 1.0
    while threading.active_count() > original[0] and time.monotonic() < deadline:
        time.sleep(0.01)


@contextlib.contextmanager
def _wait_threads_exit(timeout: float | None = None) -> Iterator[None]:
    """Wait until threads started inside the block (with ``_thread``) exit."""
    import _thread

    count = getattr(_thread, "_count", None)
    old = count() if count is not None else 0
    try:
        yield
    finally:
        if count is not None:
            deadline = time.monotonic() + (timeout or _SHORT_TIMEOUT)
            while count() > old:
                if time.monotonic() > deadline:
                    raise AssertionError("threads did not exit in time")
                time.sleep(0.010)


threading_helper = SimpleNamespace(
    threading_setup=_threading_setup,
    threading_cleanup=_threading_cleanup,
    wait_threads_exit=_wait_threads_exit,
)
