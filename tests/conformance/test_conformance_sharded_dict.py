"""CPython's mapping conformance tests run against ShardedDict and its handle.

``cpython_mapping_tests.py`` is CPython 3.13.15's ``Lib/test/mapping_tests.py``
(the suite ``test_dict.py`` runs against ``dict`` and its subclasses, and
``test_userdict.py`` against ``UserDict``).  As ``test_dict.py`` does, the
suite is bound to the type (``GeneralMappingTests``) and to a subclass
(``SubclassMappingTests``); the handle is bound through a factory.  Every
skipped or expected-to-fail test is a row of ``DEVIATIONS.md``.
"""

from __future__ import annotations

import unittest
from typing import Any

from conctools.sharded_dict import ShardedDict

from . import cpython_mapping_tests as mapping_tests

# test -> why (DEVIATIONS.md, ShardedDict section)
DEVIATIONS = {
    "test_repr": "repr is ShardedDict({...}): the type name around the dict's repr",
    "test_mutatingiteration": "iteration is weakly consistent: changing the map while "
    "iterating never raises RuntimeError",
}
HANDLE_DEVIATIONS = {
    **DEVIATIONS,
    "test_fromkeys": "handle.fromkeys returns a new ShardedDict (not a handle), and the "
    "handle type cannot be subclassed into a map",
    "test_copy": "handle.copy() returns a new ShardedDict (not a handle)",
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


class _Handles:
    """``type2test`` for handles: builds a map and returns a handle on it."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return ShardedDict(*args, **kwargs).handle()

    def fromkeys(self, *args: Any, **kwargs: Any) -> Any:
        return ShardedDict.fromkeys(*args, **kwargs)


class ShardedDictSubclass(ShardedDict[Any, Any]):
    pass


class GeneralMappingTests(mapping_tests.TestHashMappingProtocol):
    """The full hash-mapping suite (what ``test_userdict.py`` runs for UserDict)."""

    type2test = ShardedDict


_mark(GeneralMappingTests, DEVIATIONS)


class SubclassMappingTests(mapping_tests.BasicTestMappingProtocol):
    """As ``test_dict.SubclassMappingTests`` (a plain subclass, the basic suite)."""

    type2test = ShardedDictSubclass


class HandleMappingTests(mapping_tests.TestHashMappingProtocol):
    type2test = _Handles()


_mark(HandleMappingTests, HANDLE_DEVIATIONS)
