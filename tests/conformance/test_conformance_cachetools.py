"""cachetools' own mapping tests (``CacheTestMixin``, ``LRUCacheTest``,
``TTLCacheTest``, vendored from cachetools 7.0.6) run against ConcurrentCache.

``_cachetools_support.py`` gives ConcurrentCache cachetools' constructors
(``LRUCache(maxsize)``, ``TTLCache(maxsize, ttl, timer=...)``).  Every test that
is skipped or expected to fail is a row of the cachetools table in
``DEVIATIONS.md`` and a documented difference on the migration page.  Not run:
``LFUCache``, ``RRCache``, ``FIFOCache``, ``TLRUCache`` (other policies) and the
``cached``/``cachedmethod`` decorator tests (``@cached`` has lru_cache's
interface; CPython's lru_cache tests cover it).
"""

from __future__ import annotations

import unittest

from . import cachetools_test_lru, cachetools_test_ttl

_WEIGHTS = "no getsizeof: maxsize counts entries (DEVIATIONS.md)"
_MISSING = "__getitem__ does not call __missing__; use get_or_load (DEVIATIONS.md)"
_EQ = "== is identity, as for the other concurrent types (DEVIATIONS.md)"
_REPR = "repr is <ConcurrentCache ...> (DEVIATIONS.md)"
_MAXSIZE0 = "maxsize must be >= 1 (DEVIATIONS.md)"
_EXPIRE = "no expire() and no timer context manager: expiry is automatic (DEVIATIONS.md)"
_DATETIME = "ttl is seconds (a number), the clock returns seconds (DEVIATIONS.md)"

_COMMON = {
    "test_defaults": unittest.expectedFailure,  # repr
    "test_missing": unittest.expectedFailure,
    "test_missing_getsizeof": unittest.skip(_WEIGHTS),
    "test_getsizeof_param": unittest.skip(_WEIGHTS),
    "test_getsizeof_subclass": unittest.skip(_WEIGHTS),
    "test_clear_getsizeof": unittest.skip(_WEIGHTS),
    "test_pickle": unittest.expectedFailure,  # ==
    "test_pickle_maxsize": unittest.expectedFailure,  # maxsize=0, ==
}


def _deviate(cls: type, marks: dict[str, object]) -> None:
    for name, mark in marks.items():
        setattr(cls, name, mark(getattr(cls, name)))  # type: ignore[operator]


class LRUCacheConformance(cachetools_test_lru.LRUCacheTest):
    pass


_deviate(LRUCacheConformance, {**_COMMON, "test_lru_getsizeof": unittest.skip(_WEIGHTS)})


class TTLCacheConformance(cachetools_test_ttl.TTLCacheTest):
    pass


_deviate(
    TTLCacheConformance,
    {
        **_COMMON,
        "test_ttl_expire": unittest.skip(_EXPIRE),
        "test_ttl_datetime": unittest.skip(_DATETIME),
        "test_ttl_atomic": unittest.expectedFailure,  # the clock is read more than once
    },
)

del cachetools_test_lru, cachetools_test_ttl  # (their classes are not collected twice)
