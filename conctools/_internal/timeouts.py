"""Timeout validation and deadlines shared by every blocking call.

One rule for the whole library:

* ``None`` and ``math.inf`` wait forever;
* finite values above :data:`threading.TIMEOUT_MAX` are clamped when a lock is
  waited on (they behave as "forever" for every practical purpose);
* a negative value is handled as the standard-library type being replaced
  handles it: ``queue.Queue``-style calls raise ``ValueError``; calls spelled
  like ``threading.Lock.acquire`` (``negative="lock"``) take ``-1`` as
  "forever" and reject other negative values with ``ValueError``;
* ``NaN`` raises ``ValueError``; ``bool`` and non-numbers raise ``TypeError``.
"""

from __future__ import annotations

import math
import numbers
import threading
import time
from typing import Literal

__all__ = ["Deadline", "check_lock_args", "check_timeout", "lock_timeout"]

_float = float
_int = int
_type = type
_inf = math.inf


def _as_float(timeout: object, name: str) -> float:
    if _type(timeout) is _float or _type(timeout) is _int:
        return _float(timeout)
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise TypeError(f"{name} must be a number or None, not {type(timeout).__name__}")
    return _float(timeout)


def check_timeout(
    timeout: float | None,
    name: str = "timeout",
    *,
    negative: Literal["error", "lock"] = "error",
) -> float | None:
    """Validate a user timeout; return ``None`` (wait forever) or seconds ``>= 0``.

    ``math.inf`` is returned as ``None``. ``negative="error"`` rejects every
    negative value (``queue.Queue``); ``negative="lock"`` maps ``-1`` to
    ``None`` and rejects other negative values (``threading.Lock.acquire``).
    """
    if timeout is None:
        return None
    t = _as_float(timeout, name)
    if t >= 0.0:
        return None if t == _inf else t
    if math.isnan(t):
        raise ValueError(f"{name} must not be NaN")
    if negative == "lock" and t == -1.0:
        return None
    if negative == "lock":
        raise ValueError(f"{name} must be a non-negative number or -1 (wait forever)")
    raise ValueError(f"'{name}' must be a non-negative number")


def check_lock_args(blocking: bool, timeout: float | None) -> float | None:
    """Validate ``acquire(blocking=True, timeout=-1)`` as ``threading.Lock`` does.

    Returns ``None`` to wait forever, ``0.0`` for a non-blocking attempt, and
    otherwise the seconds to wait. ``timeout=None`` is accepted as "forever".
    """
    t = check_timeout(timeout, negative="lock")
    if not blocking:
        if t is not None:
            raise ValueError("can't specify a timeout for a non-blocking call")
        return 0.0
    return t


def lock_timeout(remaining: float | None) -> float:
    """Convert a remaining time to the ``timeout`` argument of ``Lock.acquire``
    (``-1`` waits forever; values above ``threading.TIMEOUT_MAX`` are clamped)."""
    if remaining is None:
        return -1.0
    return min(remaining, threading.TIMEOUT_MAX)


class Deadline:
    """A point in monotonic time after which a blocking call gives up.

    ``Deadline(None)`` (or ``inf``) never expires. ``remaining()`` returns
    ``None`` for an infinite deadline and otherwise the seconds left, never
    negative. The timeout is validated with :func:`check_timeout`.
    """

    __slots__ = ("_end",)

    def __init__(
        self, timeout: float | None, *, negative: Literal["error", "lock"] = "error"
    ) -> None:
        t = check_timeout(timeout, negative=negative)
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
