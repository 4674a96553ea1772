"""CPython's set conformance tests run against ShardedSet.

``cpython_test_set.py`` is CPython 3.13.15's ``Lib/test/test_set.py``.  Its
``TestSet`` and ``TestSetSubclass`` suites are parametrised by the type under
test (``thetype``) and the type set operations return (``basetype``): they
run here with ``thetype = ShardedSet`` (and a subclass) and ``basetype =
set``, because ShardedSet's algebra returns plain sets.  The other classes of
the file test the builtin ``set``/``frozenset`` by name and do not apply.
Every expected failure is a row of ``DEVIATIONS.md``.
"""

from __future__ import annotations

import unittest
from typing import Any

from conctools.sharded_set import ShardedSet

from . import cpython_test_set as test_set

# test -> why (DEVIATIONS.md, ShardedSet section)
DEVIATIONS = {
    "test_copy": "copy() returns a new ShardedSet (like ShardedDict.copy), not a plain set; "
    "snapshot() is the plain-set copy",
    "test_do_not_rehash_dict_keys": "building from a dict hashes each key once more: "
    "pure Python cannot reuse the hashes the dict stored",
    "test_iterator_pickling": "iterators are weakly consistent generators and cannot be "
    "pickled (pickle the set, or list(it))",
}
PLAIN_DEVIATIONS = {
    **DEVIATIONS,
    "test_pickling": "ShardedSet instances have no __dict__ (as set instances); the test "
    "assumes types other than set/frozenset do (subclasses have one and pass)",
}


def _mark(cls: type, deviations: dict[str, str]) -> type:
    """Mark each listed test of ``cls`` as an expected failure (strict)."""
    for name, why in deviations.items():
        original = getattr(cls, name)

        def test(self: Any, original: Any = original) -> None:
            original(self)

        test.__name__ = name
        test.__doc__ = why
        setattr(cls, name, unittest.expectedFailure(test))
    return cls


class ShardedSetSubclass(ShardedSet[Any]):
    pass


class TestShardedSet(test_set.TestSet):
    thetype = ShardedSet
    basetype = set


_mark(TestShardedSet, PLAIN_DEVIATIONS)


class TestShardedSetSubclass(test_set.TestSetSubclass):
    thetype = ShardedSetSubclass
    basetype = set


_mark(TestShardedSetSubclass, DEVIATIONS)
