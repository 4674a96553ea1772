"""CPython's lock tests (``lock_tests.py``) against the read and write sides
of :class:`conctools.RWLock` (``rw.reader`` / ``rw.writer``), and its
Condition tests with those objects as the condition's lock.

Both sides are re-entrant and owned by the acquiring thread, so the
``RLockTests`` class (which includes every ``BaseLockTests`` test) is the one
that applies; ``LockTests`` tests a non-re-entrant lock that any thread may
release and is not run. Every skip is a row of ``DEVIATIONS.md``.
"""

from __future__ import annotations

import threading
import unittest
from typing import Any

from conctools import RWLock

from . import cpython_lock_tests as lock_tests

_SHARED = (
    "the read side is shared: another thread's acquire succeeds while it is held "
    "(covered by tests/test_rwlock.py::test_lock_objects_exclusion)"
)
_CLAMP = (
    "timeouts above threading.TIMEOUT_MAX are clamped (library-wide rule), not "
    "OverflowError (covered by tests/test_rwlock.py::test_lock_objects_protocol)"
)


def _reader() -> Any:
    return RWLock().reader


def _writer() -> Any:
    return RWLock().writer


class ReadSideLockTests(lock_tests.RLockTests):
    locktype = staticmethod(_reader)

    @unittest.skip(_SHARED)
    def test_try_acquire_contended(self) -> None: ...

    @unittest.skip(_SHARED)
    def test_acquire_contended(self) -> None: ...

    @unittest.skip(_SHARED + "; and " + _CLAMP)
    def test_timeout(self) -> None: ...


class WriteSideLockTests(lock_tests.RLockTests):
    locktype = staticmethod(_writer)

    @unittest.skip(_CLAMP)
    def test_timeout(self) -> None: ...


def _condition_over(side: str) -> Any:
    def condtype(lock: Any = None) -> threading.Condition:
        if lock is None:
            lock = getattr(RWLock(), side)
        return threading.Condition(lock)

    return staticmethod(condtype)


class WriteSideConditionTests(lock_tests.ConditionTests):
    condtype = _condition_over("writer")


class ReadSideConditionTests(lock_tests.ConditionTests):
    condtype = _condition_over("reader")

    @unittest.skip(
        "the read side is shared: a notified waiter re-takes the read lock while the "
        "notifying thread still holds it, so it does not wait for the notifier's "
        "release (the test checks that order); wait/notify/wait_for are covered here "
        "and by tests/test_rwlock.py::test_condition_over_reader"
    )
    def test_notify(self) -> None: ...
