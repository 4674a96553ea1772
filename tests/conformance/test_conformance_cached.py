"""CPython's lru_cache tests (``cpython_test_functools.TestLRU``) run against ``@cached``.

The vendored class calls ``self.module.lru_cache`` and friends; ``module`` here is a
namespace that binds them to conctools (``lru_cache`` -> :func:`conctools.cached`
with lru_cache's default ``maxsize=128``).  Every test that is skipped or expected
to fail is a row of the ``@cached`` table in ``DEVIATIONS.md``.
"""

from __future__ import annotations

import functools
import types
import unittest
from collections.abc import Callable
from typing import Any

from conctools.cache import CacheInfo, cached

from .cpython_test_functools import TestLRU as _TestLRU  # (not collected on its own)


def lru_cache(maxsize: Any = 128, typed: bool = False) -> Any:
    """``functools.lru_cache``'s signature (default maxsize 128) on ``cached``."""
    if callable(maxsize) and not isinstance(maxsize, int):
        return cached(128, typed=typed)(maxsize)
    return cached(maxsize, typed=typed)


conctools_functools = types.SimpleNamespace(
    lru_cache=lru_cache,
    _CacheInfo=CacheInfo,
    WRAPPER_ASSIGNMENTS=functools.WRAPPER_ASSIGNMENTS,
    partial=functools.partial,
)


@lru_cache()
def cached_func(x: int, y: int) -> int:
    return 3 * x + y


_SEE = " (see DEVIATIONS.md)"
_DEVIATIONS: dict[str, Callable[[Any], Any]] = {
    # Each cached miss runs one Python frame (the single-flight layer) besides
    # the function: fib(2/7 of the C recursion limit) needs twice the frames.
    "test_lru_recursion": unittest.skip("a cached miss adds one Python frame" + _SEE),
    # A call with the same arguments from inside their own computation raises
    # RuntimeError (it would wait for itself); lru_cache computes it again.
    "test_lru_bug_35780": unittest.expectedFailure,
    # Single-flight: concurrent calls with equal arguments run the function
    # once; the test needs every call to run it (its barrier would time out).
    "test_lru_cache_threaded2": unittest.skip("single-flight by design" + _SEE),
    # The argument's __hash__ runs more than once per miss (lru_cache's
    # lookup, then the single-flight registry's key).
    "test_lru_hash_only_once": unittest.expectedFailure,
    # cache_parameters() also reports "ttl" and "policy".
    "test_lru_cache_parameters": unittest.expectedFailure,
}


class TestLRUConctools(_TestLRU, unittest.TestCase):
    module = conctools_functools
    cached_func = (cached_func,)

    @lru_cache()
    def cached_meth(self, x: int, y: int) -> int:
        return 3 * x + y

    @staticmethod
    @lru_cache()
    def cached_staticmeth(x: int, y: int) -> int:
        return 3 * x + y


for _name, _mark in _DEVIATIONS.items():
    setattr(TestLRUConctools, _name, _mark(getattr(_TestLRU, _name)))
