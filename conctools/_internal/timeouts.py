"""Timeout validation and deadlines shared by every blocking call."""

from __future__ import annotations

import math
import threading
import time

__all__ = ["Deadline", "check_timeout", "lock_timeout"]


def check_timeout(timeout: float | None, name: str = "timeout") -> float | None:
    """Validate a user timeout: ``None`` (wait forever) or a number >= 0.

    Raises ``TypeError`` for non-numbers and ``ValueError`` for negative or NaN
    values, like :class:`queue.Queue`.
    """
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"{name} must be a number or None, not {type(timeout).__name__}")
    t = float(timeout)
    if math.isnan(t) or t < 0:
        raise ValueError(f"{name} must be a non-negative number")
    return t


def lock_timeout(remaining: float | None) -> float:
    """Convert a remaining time to the ``timeout`` argument of ``Lock.acquire``
    (``-1`` waits forever; values above ``threading.TIMEOUT_MAX`` are clamped)."""
    if remaining is None:
        return -1.0
    return min(remaining, threading.TIMEOUT_MAX)


class Deadline:
    """A point in monotonic time after which a blocking call gives up.

    ``Deadline(None)`` never expires. ``remaining()`` returns ``None`` for an
    infinite deadline and otherwise the seconds left, never negative.
    """

    __slots__ = ("_end",)

    def __init__(self, timeout: float | None) -> None:
        t = check_timeout(timeout)
        self._end = None if t is None else time.monotonic() + t

    @property
    def infinite(self) -> bool:
        return self._end is None

    def remaining(self) -> float | None:
        if self._end is None:
            return None
        return max(0.0, self._end - time.monotonic())

    def expired(self) -> bool:
        return self._end is not None and time.monotonic() >= self._end
