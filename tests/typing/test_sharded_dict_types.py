"""User code typed against ShardedDict and ShardedSet, for mypy --strict and pyright strict.

Running it is harmless too: every ``assert_type`` is a no-op at run time.
"""

from __future__ import annotations

import sys
from typing import Any

if sys.version_info >= (3, 11):
    from typing import assert_type
else:  # pragma: no cover - 3.10
    from typing_extensions import assert_type

from conctools import MISSING, ShardedDict, ShardedDictHandle, ShardedSet, ShardedSetHandle


def dict_types() -> None:
    d: ShardedDict[str, int] = ShardedDict({"a": 1})

    # get: V | None without a default, V with a V default, V | T otherwise
    assert_type(d.get("a"), int | None)
    assert_type(d.get("a", 0), int)
    assert_type(d.get("a", "none"), int | str)
    assert_type(d.get("a", None), int | None)

    # setdefault / get_or_set: the value type
    assert_type(d.setdefault("b", 2), int)
    assert_type(d.get_or_set("c", 3), int)
    opt: ShardedDict[str, int | None] = ShardedDict()
    assert_type(opt.setdefault("k"), int | None)

    # pop: V without default, V with a V default, V | T otherwise
    assert_type(d.pop("a"), int)
    assert_type(d.pop("a", 0), int)
    assert_type(d.pop("a", None), int | None)
    assert_type(d.pop("a", "x"), int | str)

    # fromkeys: keys from the iterable, values from the argument
    assert_type(ShardedDict.fromkeys(["x", "y"], 0), ShardedDict[str, int])
    assert_type(ShardedDict.fromkeys(range(3)), ShardedDict[int, Any | None])
    assert_type(ShardedDict.fromkeys("ab", 1.5, shards=5), ShardedDict[str, float])

    # compound operations
    assert_type(d.increment("a"), int)
    assert_type(d.compute_if_absent("z", len), int)
    assert_type(d.compare_and_set("a", 1, 2), bool)
    r = d.compute("a", lambda v: MISSING if v is MISSING else v + 1)
    if r is not MISSING:
        assert_type(r, int)
    assert_type(d.snapshot(), dict[str, int])
    assert_type(d.copy(), ShardedDict[str, int])
    assert_type(d | {"q": 1}, ShardedDict[str, int])
    assert_type(d["a"], int)
    assert_type(list(d.items()), list[tuple[str, int]])

    h = d.handle()
    assert_type(h, ShardedDictHandle[str, int])
    assert_type(h.get("a"), int | None)
    assert_type(h.get("a", 0), int)
    assert_type(h.setdefault("b", 2), int)
    assert_type(h.pop("a", None), int | None)
    assert_type(h.map, ShardedDict[str, int])


def set_types() -> None:
    s: ShardedSet[str] = ShardedSet(["a"])
    assert_type(s.add_if_absent("b"), bool)
    assert_type("a" in s, bool)
    assert_type(s.pop(), str)
    assert_type(s.snapshot(), set[str])
    assert_type(s | {"c"}, set[str])
    assert_type(s & {"c"}, set[str])
    assert_type(s - {"c"}, set[str])
    assert_type(s.union([1]), set[str | int])
    assert_type(s.copy(), ShardedSet[str])
    h = s.handle()
    assert_type(h, ShardedSetHandle[str])
    assert_type(h.add_if_absent("x"), bool)
    assert_type(h.set, ShardedSet[str])


if __name__ == "__main__":
    dict_types()
    set_types()
