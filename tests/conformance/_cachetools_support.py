"""cachetools' constructors on ConcurrentCache, for the vendored cachetools tests.

``LRUCache(maxsize, getsizeof=None)`` and ``TTLCache(maxsize, ttl, timer=...,
getsizeof=None)`` build a :class:`ConcurrentCache` (``ttl``; ``timer`` is the
injectable ``clock``).  The few cachetools-only attributes the tests read are
provided here, outside the library: ``currsize`` (``len``), ``getsizeof``
(every entry weighs 1, as in cachetools without ``getsizeof``) and ``timer``.
A ``getsizeof`` function is refused with ``TypeError`` (no size weights):
those tests are skipped (see DEVIATIONS.md).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from conctools.cache import ConcurrentCache


def _no_getsizeof(getsizeof: object) -> None:
    if getsizeof is not None:
        raise TypeError("ConcurrentCache has no getsizeof: maxsize counts entries")


class LRUCache(ConcurrentCache[Any, Any]):
    def __new__(cls, maxsize: int, getsizeof: Any = None, **settings: Any) -> Any:
        return super().__new__(cls, maxsize, **settings)

    def __init__(self, maxsize: int, getsizeof: Any = None) -> None:
        _no_getsizeof(getsizeof)
        super().__init__(maxsize)

    @property
    def currsize(self) -> int:
        return len(self)

    @staticmethod
    def getsizeof(value: object) -> int:
        return 1


class TTLCache(ConcurrentCache[Any, Any]):
    def __new__(
        cls,
        maxsize: int,
        ttl: float = math.inf,
        timer: Callable[[], float] = time.monotonic,
        getsizeof: Any = None,
        **settings: Any,
    ) -> Any:
        settings.setdefault("ttl", ttl)
        return super().__new__(cls, maxsize, **settings)

    def __init__(
        self,
        maxsize: int,
        ttl: float,
        timer: Callable[[], float] = time.monotonic,
        getsizeof: Any = None,
    ) -> None:
        _no_getsizeof(getsizeof)
        super().__init__(maxsize, ttl=ttl, clock=timer)
        self.timer = timer

    @property
    def currsize(self) -> int:
        return len(self)

    @staticmethod
    def getsizeof(value: object) -> int:
        return 1
