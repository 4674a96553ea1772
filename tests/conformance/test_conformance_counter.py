"""CPython's ``TestCounter`` run against :class:`conctools.ConcurrentCounter`.

The vendored tests refer to the name ``Counter``; here it is bound to
``ConcurrentCounter`` (the tests build their expected values with it too,
and ``eval(repr(c))`` finds ``ConcurrentCounter`` in the same namespace).
Every test that is skipped or changed is a row of ``DEVIATIONS.md``
(section ConcurrentCounter) and a documented difference on the counters
page.
"""

# ruff: noqa: C408, B007, RUF059  (kept as in CPython's text)

from __future__ import annotations

import unittest

from conctools import ConcurrentCounter

from . import cpython_test_collections as vendored

vendored.Counter = ConcurrentCounter  # type: ignore[misc, assignment]
vendored.ConcurrentCounter = ConcurrentCounter  # type: ignore[attr-defined]

Counter = ConcurrentCounter


class TestConcurrentCounter(vendored.TestCounter):  # type: ignore[misc, name-defined]
    # -- changed: the deviating assertions replaced, the rest kept verbatim --

    def test_basics(self) -> None:
        """Changed: not a dict subclass; zero counts are absent; repr names the class."""
        from collections.abc import Mapping

        c = Counter("abcaba")
        self.assertEqual(c, Counter({"a": 3, "b": 2, "c": 1}))
        self.assertEqual(c, Counter(a=3, b=2, c=1))
        # CHANGED: self.assertIsInstance(c, dict) / issubclass(Counter, dict)
        self.assertNotIsInstance(c, dict)
        self.assertIsInstance(c, Mapping)
        self.assertTrue(issubclass(Counter, Mapping))
        self.assertEqual(len(c), 3)
        self.assertEqual(sum(c.values()), 6)
        self.assertEqual(list(c.values()), [3, 2, 1])
        self.assertEqual(list(c.keys()), ["a", "b", "c"])
        self.assertEqual(list(c), ["a", "b", "c"])
        self.assertEqual(list(c.items()), [("a", 3), ("b", 2), ("c", 1)])
        self.assertEqual(c["b"], 2)
        self.assertEqual(c["z"], 0)
        self.assertEqual(c.__contains__("c"), True)
        self.assertEqual(c.__contains__("z"), False)
        self.assertEqual(c.get("b", 10), 2)
        self.assertEqual(c.get("z", 10), 10)
        self.assertEqual(c, dict(a=3, b=2, c=1))
        # CHANGED: repr is "ConcurrentCounter({...})"
        self.assertEqual(repr(c), "ConcurrentCounter({'a': 3, 'b': 2, 'c': 1})")
        self.assertEqual(c.most_common(), [("a", 3), ("b", 2), ("c", 1)])
        for i in range(5):
            self.assertEqual(c.most_common(i), [("a", 3), ("b", 2), ("c", 1)][:i])
        self.assertEqual("".join(c.elements()), "aaabbc")
        c["a"] += 1  # increment an existing value
        c["b"] -= 2  # sub existing value to zero
        del c["c"]  # remove an entry
        del c["c"]  # make sure that del doesn't raise KeyError
        c["d"] -= 2  # sub from a missing value
        c["e"] = -5  # directly assign a missing value
        c["f"] += 4  # add to a missing value
        # CHANGED: dict(a=4, b=0, ...): a zero count is absent, not stored
        self.assertEqual(c, dict(a=4, d=-2, e=-5, f=4))
        self.assertEqual("".join(c.elements()), "aaaaffff")
        self.assertEqual(c.pop("f"), 4)
        self.assertNotIn("f", c)
        for i in range(3):
            elem, cnt = c.popitem()
            self.assertNotIn(elem, c)
        c.clear()
        self.assertEqual(c, {})
        # CHANGED: 'Counter()'
        self.assertEqual(repr(c), "ConcurrentCounter()")
        self.assertRaises(NotImplementedError, Counter.fromkeys, "abc")
        self.assertRaises(TypeError, hash, c)
        c.update(dict(a=5, b=3))
        c.update(c=1)
        c.update(Counter("a" * 50 + "b" * 30))
        c.update()  # test case with no args
        c.__init__("a" * 500 + "b" * 300)
        c.__init__("cdc")
        c.__init__()
        self.assertEqual(c, dict(a=555, b=333, c=3, d=1))
        self.assertEqual(c.setdefault("d", 5), 1)
        self.assertEqual(c["d"], 1)
        self.assertEqual(c.setdefault("e", 5), 5)
        self.assertEqual(c["e"], 5)

    def test_init(self) -> None:
        """Changed: a count must be an int (``iterable=None`` raises TypeError)."""
        self.assertEqual(list(Counter(self=42).items()), [("self", 42)])
        self.assertEqual(list(Counter(iterable=42).items()), [("iterable", 42)])
        # CHANGED: list(Counter(iterable=None).items()) == [('iterable', None)]
        self.assertRaises(TypeError, Counter, iterable=None)
        self.assertRaises(TypeError, Counter, 42)
        self.assertRaises(TypeError, Counter, (), ())
        self.assertRaises(TypeError, Counter.__init__)

    def test_update(self) -> None:
        """Changed: a count must be an int (``iterable=None`` raises TypeError)."""
        c = Counter()
        c.update(self=42)
        self.assertEqual(list(c.items()), [("self", 42)])
        c = Counter()
        c.update(iterable=42)
        self.assertEqual(list(c.items()), [("iterable", 42)])
        c = Counter()
        # CHANGED: c.update(iterable=None) stores None
        self.assertRaises(TypeError, c.update, iterable=None)
        self.assertRaises(TypeError, Counter().update, 42)
        self.assertRaises(TypeError, Counter().update, {}, {})
        self.assertRaises(TypeError, Counter.update)

    def test_repr_nonsortable(self) -> None:
        """Changed: a non-int count (None) is rejected; repr of unorderable keys is
        checked with keys of mixed types instead."""
        self.assertRaises(TypeError, Counter, a=2, b=None)
        c = Counter({"a": 2, 1: 2})
        r = repr(c)
        self.assertIn("'a': 2", r)
        self.assertIn("1: 2", r)

    @unittest.skip(
        "collections._count_elements and subclasses overriding __setitem__/get: "
        "ConcurrentCounter's constructor and update never call them (see DEVIATIONS.md)"
    )
    def test_helper_function(self) -> None:
        pass
