"""The few ``test.support`` helpers the vendored mapping/set tests use.

The provisioned CPython builds (and many distributions) ship without the
``test`` package, so the vendored files import these instead.  Each follows
CPython 3.13's ``Lib/test/support`` (PSF licence).
"""

from __future__ import annotations

import contextlib
import gc
import sys
import types
import warnings
from collections.abc import Iterator
from typing import Any


def get_c_recursion_limit() -> int:
    """``test.support.get_c_recursion_limit`` (3.13: a fixed C stack budget)."""
    return 10000 if sys.version_info >= (3, 12) else sys.getrecursionlimit()


def _gc_collect() -> None:
    for _ in range(3):
        gc.collect()


def _check_free_after_iterating(
    test: Any, iter_fn: Any, cls: Any, args: tuple[Any, ...] = ()
) -> None:
    done = False

    def wrapper() -> Any:
        class A(cls):  # type: ignore[misc, valid-type]
            def __del__(self) -> None:
                nonlocal done
                try:
                    next(it)
                except StopIteration:
                    done = True

        return A(*args)

    it = iter_fn(wrapper())
    test.assertRaises(StopIteration, next, it)
    _gc_collect()
    test.assertTrue(done)


@contextlib.contextmanager
def _check_warnings(*filters: Any, quiet: bool = True) -> Iterator[Any]:
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        yield w


support = types.SimpleNamespace(
    gc_collect=_gc_collect, check_free_after_iterating=_check_free_after_iterating
)
warnings_helper = types.SimpleNamespace(check_warnings=_check_warnings)
