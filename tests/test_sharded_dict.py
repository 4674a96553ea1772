"""Tests for conctools.sharded_dict.ShardedDict (and its per-thread handles)."""

from __future__ import annotations

import copy
import math
import pickle
import random
import threading
import time
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

import pytest
from conftest import stress_scale
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import conctools
import conctools.sharded_dict as sdmod
from conctools._internal.sentinel import MISSING
from conctools._internal.striping import default_stripes
from conctools.sharded_dict import ShardedDict, ShardedDictHandle
from conctools.testing import assert_linearizable, run_concurrently, run_in_threads
from conctools.testing.strategies import scenarios

# ---------------------------------------------------------------- helpers


def as_map(d: ShardedDict[Any, Any], kind: str) -> Any:
    """The object under test: the map itself or a handle on it."""
    return d if kind == "map" else d.handle()


KINDS = ["map", "handle"]


def any_lock_held(d: ShardedDict[Any, Any]) -> bool:
    return any(lock.locked() for lock in d._locks)


class Probe:
    """A key whose __hash__/__eq__ record whether a shard lock of ``owner`` is held."""

    owner: ShardedDict[Any, Any] | None = None
    hash_under_lock = 0
    eq_under_lock = 0

    def __init__(self, name: str, h: int | None = None) -> None:
        self.name = name
        self.h = hash(name) if h is None else h

    def __hash__(self) -> int:
        if Probe.owner is not None and any_lock_held(Probe.owner):
            Probe.hash_under_lock += 1
        return self.h

    def __eq__(self, other: object) -> bool:
        if Probe.owner is not None and any_lock_held(Probe.owner):
            Probe.eq_under_lock += 1
        return isinstance(other, Probe) and other.name == self.name

    def __repr__(self) -> str:
        return f"Probe({self.name!r})"


class BadHash:
    def __hash__(self) -> int:
        raise ZeroDivisionError("hash")


class BadEq:
    """Hashes like ``h``; comparing it with anything raises."""

    def __init__(self, h: int) -> None:
        self.h = h

    def __hash__(self) -> int:
        return self.h

    def __eq__(self, other: object) -> bool:
        raise ArithmeticError("eq")


class Colliding:
    """Equal by name, every instance hashes to 7 (forces comparisons)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __hash__(self) -> int:
        return 7

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Colliding):
            return NotImplemented
        return other.name == self.name

    def __repr__(self) -> str:
        return f"Colliding({self.name!r})"


# ------------------------------------------------------- construction, shards


def test_is_a_mutable_mapping_and_generic() -> None:
    d: ShardedDict[str, int] = ShardedDict()
    assert isinstance(d, MutableMapping)
    assert isinstance(d.handle(), MutableMapping)
    assert ShardedDict[str, int] is not None  # subscriptable at runtime


def test_constructor_like_dict() -> None:
    assert ShardedDict({"a": 1}, b=2).snapshot() == {"a": 1, "b": 2}
    assert ShardedDict([("a", 1), ("b", 2)]).snapshot() == {"a": 1, "b": 2}
    assert ShardedDict(ShardedDict(x=1)).snapshot() == {"x": 1}
    assert ShardedDict().snapshot() == {}
    assert ShardedDict.fromkeys("ab", 0).snapshot() == {"a": 0, "b": 0}
    with pytest.raises(TypeError):
        ShardedDict(5)
    with pytest.raises(ValueError):
        ShardedDict([(1, 2, 3)])


@pytest.mark.parametrize(
    ("bad", "exc"),
    [(0, ValueError), (-4, ValueError), (2.0, TypeError), (True, TypeError), ("8", TypeError)],
)
def test_bad_shard_counts(bad: Any, exc: type[Exception]) -> None:
    with pytest.raises(exc):
        ShardedDict(shards=bad)


def test_shard_count_is_smallest_prime_at_least_requested() -> None:
    assert ShardedDict(shards=1).shards == 1
    assert ShardedDict(shards=2).shards == 2
    assert ShardedDict(shards=8).shards == 11
    assert ShardedDict(shards=64).shards == 67
    assert ShardedDict(shards=67).shards == 67


def test_default_shard_count_follows_runtime() -> None:
    n = ShardedDict().shards
    if conctools.free_threaded_build():
        assert n >= default_stripes(per_cpu=4)  # >= 4 x usable CPUs, power of two rounded up
        assert n >= 64
    else:
        assert n == 17
    assert all(n % f for f in range(2, int(n**0.5) + 1))  # prime


@pytest.mark.parametrize("stride", [1, 2, 64, 128, 1024, 4096, 1 << 20])
def test_int_keys_spread_over_shards(stride: int) -> None:
    d: ShardedDict[int, int] = ShardedDict(shards=64)
    for k in range(0, 64 * 16 * stride, stride):
        d[k] = 1
    sizes = [len(s) for s in d._shards]
    mean = len(d) / d.shards
    assert max(sizes) <= 2 * mean + 1, sizes


def test_str_keys_spread_over_shards() -> None:
    d: ShardedDict[str, int] = ShardedDict(shards=64)
    for k in range(4096):
        d[f"key{k}"] = 1
    sizes = [len(s) for s in d._shards]
    assert max(sizes) <= 2 * (4096 / d.shards)


# ------------------------------------------------------------- mapping basics


@pytest.mark.parametrize("kind", KINDS)
def test_basic_mapping_protocol(kind: str) -> None:
    base: ShardedDict[Any, Any] = ShardedDict(shards=4)
    d = as_map(base, kind)
    d["a"] = 1
    d[2] = "two"
    d[(1, 2)] = [3]
    assert d["a"] == 1 and d[2] == "two" and d[(1, 2)] == [3]
    assert len(d) == 3 and bool(d)
    assert "a" in d and 3 not in d
    assert d.get("zz") is None and d.get("zz", 5) == 5 and d.get("a") == 1
    with pytest.raises(KeyError) as ei:
        d["missing"]
    assert ei.value.args == ("missing",)
    del d["a"]
    with pytest.raises(KeyError):
        del d["a"]
    assert sorted(map(repr, d)) == sorted(map(repr, [2, (1, 2)]))
    assert set(d.keys()) == {2, (1, 2)}
    assert sorted(map(repr, d.values())) == sorted(map(repr, ["two", [3]]))
    assert dict(d.items()) == {2: "two", (1, 2): [3]}
    assert (2, "two") in d.items() and (2, "x") not in d.items() and 5 not in d.items()
    assert "two" in d.values() and 2 in d.keys()  # noqa: SIM118 - the view's __contains__
    d.clear()
    assert len(d) == 0 and not d and base.snapshot() == {}


@pytest.mark.parametrize("kind", KINDS)
def test_pop_popitem_setdefault_update(kind: str) -> None:
    base: ShardedDict[Any, Any] = ShardedDict({"a": 1, "b": 2}, shards=8)
    d = as_map(base, kind)
    assert d.pop("a") == 1
    assert d.pop("a", None) is None
    with pytest.raises(KeyError):
        d.pop("a")
    assert d.setdefault("c", 3) == 3 and d.setdefault("c", 4) == 3
    assert d.setdefault("n") is None and "n" in d
    assert d.get_or_set("c", 9) == 3 and d.get_or_set("e", 5) == 5
    d.update({"x": 1}, y=2)
    d.update([("z", 3)])
    d.update(ShardedDict(w=0))

    class KeysOnly:
        def keys(self) -> list[str]:
            return ["k"]

        def __getitem__(self, k: str) -> int:
            return 42

    d.update(KeysOnly())
    assert base.snapshot() == {
        "b": 2,
        "c": 3,
        "n": None,
        "e": 5,
        "x": 1,
        "y": 2,
        "z": 3,
        "w": 0,
        "k": 42,
    }
    seen = {}
    while d:
        k, v = d.popitem()
        seen[k] = v
    assert seen == {"b": 2, "c": 3, "n": None, "e": 5, "x": 1, "y": 2, "z": 3, "w": 0, "k": 42}
    with pytest.raises(KeyError):
        d.popitem()


@pytest.mark.parametrize("kind", KINDS)
def test_eq_repr_copy_or(kind: str) -> None:
    base: ShardedDict[str, int] = ShardedDict({"a": 1, "b": 2})
    d = as_map(base, kind)
    assert d == {"a": 1, "b": 2} and {"a": 1, "b": 2} == d  # noqa: SIM300 - reflected ==
    assert d != {"a": 1}
    assert d != [("a", 1), ("b", 2)]
    assert d == ShardedDict({"b": 2, "a": 1}, shards=3)
    assert d.__eq__(5) is NotImplemented
    assert repr(base) in ("ShardedDict({'a': 1, 'b': 2})", "ShardedDict({'b': 2, 'a': 1})")
    c = d.copy()
    assert type(c) is ShardedDict and c == base and c.shards == base.shards
    c["z"] = 0
    assert "z" not in base
    u = d | {"c": 3, "a": 0}
    assert type(u) is ShardedDict and u == {"a": 0, "b": 2, "c": 3}
    r = {"c": 3, "a": 0} | d
    assert type(r) is ShardedDict and r == {"a": 1, "b": 2, "c": 3}
    assert d.__or__(5) is NotImplemented and d.__ror__(5) is NotImplemented
    with pytest.raises(TypeError):
        d | 5  # type: ignore[operator]
    same = d
    d |= {"q": 9}
    d |= [("p", 8)]
    assert d is same and base == {"a": 1, "b": 2, "q": 9, "p": 8}
    with pytest.raises(TypeError):
        hash(d)
    assert copy.copy(base) == base and copy.copy(base) is not base
    deep = copy.deepcopy(ShardedDict({"l": [1]}))
    assert deep == {"l": [1]}


def test_pickle_round_trip_keeps_shards_and_user_keys() -> None:
    d: ShardedDict[Any, Any] = ShardedDict({"a": 1, Colliding("x"): 2, (1, "t"): 3}, shards=5)
    e = pickle.loads(pickle.dumps(d))
    assert type(e) is ShardedDict and e.shards == d.shards == 5
    assert e == d
    assert e[Colliding("x")] == 2


def test_handle_is_bound_to_its_map() -> None:
    d: ShardedDict[str, int] = ShardedDict()
    h = d.handle()
    assert isinstance(h, ShardedDictHandle) and h.map is d and h.shards == d.shards
    h["a"] = 1
    assert d["a"] == 1
    d["b"] = 2
    assert h["b"] == 2 and h.handle().map is d
    assert repr(h).startswith("<ShardedDictHandle of ShardedDict(")
    with pytest.raises(TypeError):
        pickle.dumps(h)
    # handles created in other threads see the same data
    run_in_threads(lambda i: d.handle().increment("n", i + 1), 4)
    assert d["n"] == 10


def test_handle_hot_paths_are_owned_by_the_creating_thread() -> None:
    d: ShardedDict[int, int] = ShardedDict()
    h = d.handle()
    assert h._shards == d._shards and h._shards is not d._shards
    assert h._locks is not d._locks and h._n == d._n
    assert h.get.__doc__ == ShardedDict.get.__doc__


# --------------------------------------------------------- compound operations


@pytest.mark.parametrize("kind", KINDS)
def test_increment(kind: str) -> None:
    base: ShardedDict[Any, Any] = ShardedDict()
    d = as_map(base, kind)
    assert d.increment("a") == 1 and d.increment("a", 5) == 6 and d.increment("a", -6) == 0
    assert d.increment("f", 0.5) == 0.5 and d.increment("f") == 1.5
    assert d.increment(Colliding("c")) == 1 and d.increment(Colliding("c"), 2) == 3
    assert d.increment((1, 2), 2) == 2
    from decimal import Decimal
    from fractions import Fraction

    assert d.increment("d", Decimal("1.5")) == Decimal("1.5")
    assert d.increment("d", 1) == Decimal("2.5")
    assert d.increment("fr", Fraction(1, 3)) == Fraction(1, 3)
    d["s"] = "x"
    with pytest.raises(TypeError):
        d.increment("s")
    assert d["s"] == "x"
    with pytest.raises(TypeError):
        d.increment([1])


@pytest.mark.parametrize("kind", KINDS)
def test_compute_and_merge(kind: str) -> None:
    base: ShardedDict[str, Any] = ShardedDict()
    d = as_map(base, kind)
    assert d.compute("a", lambda v: 1 if v is MISSING else v + 1) == 1
    assert d.compute("a", lambda v: 1 if v is MISSING else v + 1) == 2
    assert d.compute("a", lambda v: MISSING) is MISSING and "a" not in d
    assert d.compute("a", lambda v: MISSING) is MISSING and "a" not in d
    assert d.merge("m", [1], lambda old, new: old + new) == [1]
    assert d.merge("m", [2], lambda old, new: old + new) == [1, 2]
    assert d.merge("m", [3], lambda old, new: MISSING) is MISSING and "m" not in d

    def boom(*args: Any) -> Any:
        raise LookupError("fn failed")

    d["k"] = 1
    with pytest.raises(LookupError):
        d.compute("k", boom)
    with pytest.raises(LookupError):
        d.merge("k", 2, boom)
    assert base.snapshot() == {"k": 1}


@pytest.mark.parametrize("kind", KINDS)
def test_compare_and_set(kind: str) -> None:
    base: ShardedDict[str, Any] = ShardedDict()
    d = as_map(base, kind)
    assert d.compare_and_set("a", MISSING, 1) is True  # insert if absent
    assert d.compare_and_set("a", MISSING, 2) is False
    assert d.compare_and_set("a", 2, 3) is False and d["a"] == 1
    assert d.compare_and_set("a", 1.0, 3) is True and d["a"] == 3  # == comparison
    assert d.compare_and_set("a", 3, MISSING) is True and "a" not in d  # delete
    assert d.compare_and_set("a", 3, MISSING) is False
    assert d.compare_and_set("a", MISSING, MISSING) is True and "a" not in d
    d["l"] = [1, 2]
    assert d.compare_and_set("l", [1, 2], "new") is True and d["l"] == "new"


@pytest.mark.parametrize("kind", KINDS)
def test_compute_if_absent_basics(kind: str) -> None:
    base: ShardedDict[str, Any] = ShardedDict()
    d = as_map(base, kind)
    calls: list[str] = []

    def factory(k: str) -> str:
        calls.append(k)
        return k * 2

    assert d.compute_if_absent("a", factory) == "aa"
    assert d.compute_if_absent("a", factory) == "aa"
    assert calls == ["a"]

    def fails(k: str) -> str:
        raise KeyError("inner")

    with pytest.raises(KeyError):
        d.compute_if_absent("b", fails)
    assert "b" not in d and not base._loading[hash("b") % base.shards]
    with pytest.raises(ValueError):
        d.compute_if_absent("c", factory, timeout=-1)
    with pytest.raises(TypeError):
        d.compute_if_absent("c", factory, timeout="1")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        d.compute_if_absent([], factory)  # type: ignore[arg-type]
    assert base.snapshot() == {"a": "aa"}


@pytest.mark.parametrize("kind", KINDS)
def test_compute_if_absent_reentrant_factory_raises(kind: str) -> None:
    base: ShardedDict[str, Any] = ShardedDict()
    d = as_map(base, kind)

    def factory(k: str) -> Any:
        return d.compute_if_absent(k, factory)

    with pytest.raises(RuntimeError, match="re-entered"):
        d.compute_if_absent("a", factory)
    assert "a" not in d and not any(base._loading)
    # nested loads of *other* keys are fine
    assert d.compute_if_absent("x", lambda k: d.compute_if_absent("y", lambda k2: 1) + 1) == 2


@pytest.mark.timeout(30)
def test_compute_if_absent_cyclic_loads_raise_instead_of_deadlocking() -> None:
    d: ShardedDict[str, Any] = ShardedDict()
    both = threading.Barrier(2, timeout=10)
    other = {"k1": "k2", "k2": "k1"}
    first = {"k1": True, "k2": True}

    def factory(k: str) -> Any:
        if first[k]:
            first[k] = False
            both.wait()  # both loads are in progress
        return d.compute_if_absent(other[k], factory)

    def load(k: str) -> Any:
        try:
            return d.compute_if_absent(k, factory)
        except RuntimeError as exc:
            return exc

    r1, r2 = run_concurrently(lambda: load("k1"), lambda: load("k2"), timeout=20)
    assert isinstance(r1, RuntimeError) or isinstance(r2, RuntimeError)
    assert not any(d._loading) and not sdmod._waiting


# -------------------------------------------------------------- bad input


def snapshot_all(d: ShardedDict[Any, Any]) -> tuple[dict[Any, Any], int, list[int]]:
    return d.snapshot(), len(d), [len(s) for s in d._shards]


@pytest.mark.parametrize("kind", KINDS)
def test_unhashable_keys_raise_type_error_and_change_nothing(kind: str) -> None:
    base: ShardedDict[Any, Any] = ShardedDict({"a": 1})
    d = as_map(base, kind)
    before = snapshot_all(base)
    ops: list[Callable[[], Any]] = [
        lambda: d[[1]],
        lambda: d.__setitem__([1], 1),
        lambda: d.__delitem__({}),
        lambda: d.get([1]),
        lambda: [1] in d,
        lambda: d.pop([1]),
        lambda: d.pop([1], None),
        lambda: d.setdefault([1], 1),
        lambda: d.get_or_set([1], 1),
        lambda: d.increment([1]),
        lambda: d.compute([1], lambda v: 1),
        lambda: d.merge([1], 1, lambda a, b: a),
        lambda: d.compare_and_set([1], MISSING, 1),
        lambda: d.compute_if_absent([1], lambda k: 1),
        lambda: d.update([([1], 2)]),
    ]
    for op in ops:
        with pytest.raises(TypeError):
            op()
        assert snapshot_all(base) == before
        assert not any_lock_held(base)


@pytest.mark.parametrize("kind", KINDS)
def test_raising_hash_leaves_map_unchanged(kind: str) -> None:
    base: ShardedDict[Any, Any] = ShardedDict({"a": 1})
    d = as_map(base, kind)
    before = snapshot_all(base)
    k = BadHash()
    for op in (
        lambda: d.__setitem__(k, 1),
        lambda: d[k],
        lambda: d.increment(k),
        lambda: d.compute(k, lambda v: 1),
        lambda: d.compute_if_absent(k, lambda key: 1),
        lambda: d.compare_and_set(k, MISSING, 1),
        lambda: d.pop(k, None),
    ):
        with pytest.raises(ZeroDivisionError):
            op()
        assert snapshot_all(base) == before and not any_lock_held(base)


@pytest.mark.parametrize("kind", KINDS)
def test_raising_eq_leaves_map_consistent(kind: str) -> None:
    base: ShardedDict[Any, Any] = ShardedDict(shards=1)
    d = as_map(base, kind)
    d[Colliding("x")] = 1  # hash 7
    d["other"] = 2
    before = snapshot_all(base)
    bad = BadEq(7)  # same hash: the dict must compare it with Colliding("x")
    for op in (
        lambda: d.__setitem__(bad, 1),
        lambda: d[bad],
        lambda: d.get(bad),
        lambda: d.increment(bad),
        lambda: d.pop(bad, None),
        lambda: d.get_or_set(bad, 3),
        lambda: d.compute(bad, lambda v: 1),
        lambda: d.compare_and_set(bad, MISSING, 1),
        lambda: d.compute_if_absent(bad, lambda key: 1),
        lambda: d.__delitem__(bad),
    ):
        with pytest.raises(ArithmeticError):
            op()
        assert snapshot_all(base) == before
        assert not any_lock_held(base)  # the shard lock was released
        assert not any(base._loading)
    d["more"] = 3  # the shard still works
    assert d[Colliding("x")] == 1 and len(d) == 3


def _hash_runs_under_lock(module: Any) -> int:
    """Run every write path with Probe keys; count __hash__ calls under a shard lock."""
    d = module.ShardedDict(shards=1)
    Probe.owner, Probe.hash_under_lock = d, 0
    try:
        k = Probe("k")
        d[k] = 1
        d[Probe("k")] = 2
        d.increment(Probe("k"))
        d.get_or_set(Probe("n"), 0)
        d.compute(Probe("k"), lambda v: v + 1)
        d.merge(Probe("k"), 1, lambda a, b: a + b)
        d.compare_and_set(Probe("k"), 5, 6)
        d.compute_if_absent(Probe("c"), lambda key: 1)
        d.pop(Probe("n"))
        del d[Probe("c")]
        d.snapshot()
        list(d.items())
        return Probe.hash_under_lock
    finally:
        Probe.owner = None


def test_key_hash_never_runs_under_a_shard_lock() -> None:
    assert _hash_runs_under_lock(sdmod) == 0


def test_key_hash_check_can_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    # Broken variant: store user keys unwrapped, so the dict re-hashes them
    # under the shard lock.
    monkeypatch.setattr(sdmod, "_wrap", lambda key, h: key)
    assert _hash_runs_under_lock(sdmod) > 0


def test_user_functions_run_without_any_lock() -> None:
    d: ShardedDict[str, int] = ShardedDict({"a": 1})
    seen: list[bool] = []

    def spy(*args: Any) -> int:
        seen.append(any_lock_held(d))
        return 1

    d.compute("a", spy)
    d.merge("a", 1, spy)
    d.compute_if_absent("b", spy)

    class Val:
        def __eq__(self, other: object) -> bool:
            seen.append(any_lock_held(d))
            return True

        __hash__ = None  # type: ignore[assignment]

    d["v"] = Val()  # type: ignore[assignment]
    d.compare_and_set("v", 0, 1)

    class Num:
        def __add__(self, other: object) -> Num:
            seen.append(any_lock_held(d))
            return self

    d["n"] = Num()  # type: ignore[assignment]
    d.increment("n")
    assert seen == [False] * 5


# -------------------------------------------------- stateful test (model)

KEYS = st.one_of(
    st.integers(-3, 6),
    st.sampled_from(["a", "b", (1, 2)]),
    st.builds(Colliding, st.sampled_from("xy")),
)
VALUES = st.integers(-5, 5)


def _inc(v: Any) -> Any:
    return 1 if v is MISSING else v + 1


def _drop(v: Any) -> Any:
    return MISSING


def _const(v: Any) -> Any:
    return 100


def _add(a: Any, b: Any) -> Any:
    return a + b


def _merge_drop(a: Any, b: Any) -> Any:
    return MISSING


class ShardedDictMachine(RuleBasedStateMachine):
    """Every method against a plain dict model, single-threaded."""

    use_handle = False

    def __init__(self) -> None:
        super().__init__()
        self.base: ShardedDict[Any, int] = ShardedDict(shards=3)
        self.d: Any = self.base.handle() if self.use_handle else self.base
        self.model: dict[Any, int] = {}

    @rule(k=KEYS, v=VALUES)
    def setitem(self, k: Any, v: int) -> None:
        self.d[k] = v
        self.model[k] = v

    @rule(k=KEYS)
    def getitem(self, k: Any) -> None:
        if k in self.model:
            assert self.d[k] == self.model[k]
        else:
            with pytest.raises(KeyError):
                self.d[k]

    @rule(k=KEYS)
    def delitem(self, k: Any) -> None:
        if k in self.model:
            del self.d[k]
            del self.model[k]
        else:
            with pytest.raises(KeyError):
                del self.d[k]

    @rule(k=KEYS, default=st.none() | VALUES)
    def get(self, k: Any, default: Any) -> None:
        assert self.d.get(k, default) == self.model.get(k, default)
        assert self.d.get(k) == self.model.get(k)
        assert (k in self.d) == (k in self.model)

    @rule(k=KEYS, default=st.none() | VALUES, use_default=st.booleans())
    def pop(self, k: Any, default: Any, use_default: bool) -> None:
        if use_default:
            assert self.d.pop(k, default) == self.model.pop(k, default)
        elif k in self.model:
            assert self.d.pop(k) == self.model.pop(k)
        else:
            with pytest.raises(KeyError):
                self.d.pop(k)

    @rule()
    def popitem(self) -> None:
        if self.model:
            k, v = self.d.popitem()
            assert self.model.pop(k) == v
        else:
            with pytest.raises(KeyError):
                self.d.popitem()

    @rule(k=KEYS, v=VALUES, which=st.booleans())
    def setdefault(self, k: Any, v: int, which: bool) -> None:
        if which:
            assert self.d.setdefault(k, v) == self.model.setdefault(k, v)
        else:
            assert self.d.get_or_set(k, v) == self.model.setdefault(k, v)

    @rule(pairs=st.lists(st.tuples(KEYS, VALUES), max_size=4), as_dict=st.booleans())
    def update(self, pairs: list[tuple[Any, int]], as_dict: bool) -> None:
        self.d.update(dict(pairs) if as_dict else pairs)
        self.model.update(pairs)

    @rule(pairs=st.lists(st.tuples(KEYS, VALUES), max_size=3))
    def ior(self, pairs: list[tuple[Any, int]]) -> None:
        self.d |= dict(pairs)
        self.model |= dict(pairs)

    @precondition(lambda self: len(self.model) < 3)
    @rule()
    def clear(self) -> None:
        self.d.clear()
        self.model.clear()

    @rule(k=KEYS, delta=st.integers(-3, 3))
    def increment(self, k: Any, delta: int) -> None:
        self.model[k] = self.model.get(k, 0) + delta
        assert self.d.increment(k, delta) == self.model[k]

    @rule(k=KEYS, fn=st.sampled_from([_inc, _drop, _const]))
    def compute(self, k: Any, fn: Callable[[Any], Any]) -> None:
        new = fn(self.model.get(k, MISSING))
        if new is MISSING:
            self.model.pop(k, None)
        else:
            self.model[k] = new
        assert self.d.compute(k, fn) == new

    @rule(k=KEYS, v=VALUES, fn=st.sampled_from([_add, _merge_drop]))
    def merge(self, k: Any, v: int, fn: Callable[[Any, Any], Any]) -> None:
        new = v if k not in self.model else fn(self.model[k], v)
        if new is MISSING:
            del self.model[k]
        else:
            self.model[k] = new
        assert self.d.merge(k, v, fn) == new

    @rule(k=KEYS, expected=st.just(MISSING) | VALUES, new=st.just(MISSING) | VALUES)
    def compare_and_set(self, k: Any, expected: Any, new: Any) -> None:
        cur = self.model.get(k, MISSING)
        ok = (cur is MISSING) if expected is MISSING else (cur is not MISSING and cur == expected)
        if ok:
            if new is MISSING:
                self.model.pop(k, None)
            else:
                self.model[k] = new
        assert self.d.compare_and_set(k, expected, new) is ok

    @rule(k=KEYS, v=VALUES, fail=st.booleans())
    def compute_if_absent(self, k: Any, v: int, fail: bool) -> None:
        def factory(key: Any) -> int:
            if fail:
                raise ValueError("factory")
            return v

        if k in self.model or not fail:
            assert self.d.compute_if_absent(k, factory) == self.model.setdefault(k, v)
        else:
            with pytest.raises(ValueError):
                self.d.compute_if_absent(k, factory)

    @rule(k=st.lists(st.integers()))
    def unhashable(self, k: Any) -> None:
        with pytest.raises(TypeError):
            self.d[k] = 1

    @rule()
    def copies(self) -> None:
        c = self.d.copy()
        assert c == self.model and self.d | {} == self.model
        assert pickle.loads(pickle.dumps(self.base)) == self.model

    @invariant()
    def matches_model(self) -> None:
        assert self.base.snapshot() == self.model
        assert self.d == self.model and len(self.d) == len(self.model)
        assert bool(self.d) == bool(self.model)
        keys = list(self.d)
        assert len(keys) == len(set(keys)) == len(self.model)
        assert dict(self.d.items()) == self.model
        assert sorted(self.d.values()) == sorted(self.model.values())
        assert not any(self.base._loading) and not any_lock_held(self.base)


class HandleMachine(ShardedDictMachine):
    use_handle = True


TestShardedDictModel = ShardedDictMachine.TestCase
TestShardedDictModel.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
TestHandleModel = HandleMachine.TestCase
TestHandleModel.settings = settings(max_examples=20, stateful_step_count=30, deadline=None)


# ------------------------------------------------------------ linearizability


class DictSpec:
    """Sequential reference for the linearizability check."""

    def __init__(self) -> None:
        self.d: dict[Any, Any] = {}

    def get(self, k: Any) -> Any:
        return self.d.get(k)

    def __setitem__(self, k: Any, v: Any) -> None:
        self.d[k] = v

    def pop(self, k: Any, *default: Any) -> Any:
        return self.d.pop(k, *default)

    def increment(self, k: Any, delta: int = 1) -> Any:
        self.d[k] = self.d.get(k, 0) + delta
        return self.d[k]

    def compare_and_set(self, k: Any, expected: Any, new: Any) -> bool:
        cur = self.d.get(k, MISSING)
        if cur is not expected and (cur is MISSING or expected is MISSING or cur != expected):
            return False
        if new is MISSING:
            self.d.pop(k, None)
        else:
            self.d[k] = new
        return True

    def get_or_set(self, k: Any, v: Any) -> Any:
        return self.d.setdefault(k, v)

    def compute(self, k: Any, fn: Callable[[Any], Any]) -> Any:
        new = fn(self.d.get(k, MISSING))
        if new is MISSING:
            self.d.pop(k, None)
        else:
            self.d[k] = new
        return new


LKEYS = st.integers(0, 2)
LVALS = st.integers(0, 3)
VOCAB = {
    "get": st.tuples(LKEYS),
    "__setitem__": st.tuples(LKEYS, LVALS),
    "pop": st.tuples(LKEYS),
    "increment": st.tuples(LKEYS),
    "compare_and_set": st.tuples(LKEYS, st.just(MISSING) | LVALS, st.just(MISSING) | LVALS),
    "get_or_set": st.tuples(LKEYS, LVALS),
    "compute": st.tuples(LKEYS, st.sampled_from([_inc, _drop])),
}


@pytest.mark.timeout(60)
@settings(max_examples=25, deadline=None)
@given(scenarios(VOCAB, threads=(2, 3), ops_per_thread=(1, 4)))
def test_linearizable_per_key(scenario: Any) -> None:
    assert_linearizable(
        scenario,
        lambda: ShardedDict(shards=2),
        DictSpec,
        partition=lambda op: op.args[0],
        trials=4,
    )


class _UnlockedIncrement(ShardedDict[Any, Any]):
    """Broken on purpose: read-modify-write without the shard lock."""

    __slots__ = ()

    def increment(self, key: Any, delta: Any = 1) -> Any:
        v = self.get(key, 0)
        time.sleep(0.0005)  # widen the race window
        new = v + delta
        shard = self._shards[hash(key) % self._n]
        shard[key] = new
        return new


def test_linearizability_check_can_fail() -> None:
    from conctools.testing import Call, Scenario

    sc = Scenario(
        init=(),
        threads=((Call("increment", (0,)),), (Call("increment", (0,)),)),
        post=(Call("get", (0,)),),
    )
    with pytest.raises(AssertionError, match="linearizability"):
        for _ in range(20):
            assert_linearizable(sc, _UnlockedIncrement, DictSpec, trials=10, preempt=0.5)


# ----------------------------------------------------------- concurrency


def _hammer_increments(cls: Callable[[], Any], threads: int, per: int, keys: int) -> Any:
    d = cls()

    def work(i: int) -> None:
        # Handles run ShardedDict's own operations; a subclass is used as is.
        h = d.handle() if i % 2 and type(d) is ShardedDict else d
        for j in range(per):
            h.increment(j % keys)

    run_in_threads(work, threads)
    return d


@pytest.mark.timeout(60)
def test_concurrent_increments_are_exact(switch_interval: None) -> None:
    per = stress_scale(ci=3000, full=100_000)
    d = _hammer_increments(lambda: ShardedDict(shards=2), 4, per, 8)
    assert sum(d.values()) == 4 * per and len(d) == 8
    assert d.snapshot() == dict.fromkeys(range(8), 4 * per // 8)


def test_concurrent_increment_check_can_fail(switch_interval: None) -> None:
    d = _hammer_increments(lambda: _UnlockedIncrement(shards=2), 4, 50, 2)
    assert sum(d.values()) < 4 * 50


@pytest.mark.timeout(60)
def test_concurrent_cas_compute_merge_are_exact(switch_interval: None) -> None:
    per = stress_scale(ci=500, full=20_000)
    d: ShardedDict[str, int] = ShardedDict({"cas": 0})

    def work(i: int) -> None:
        h = d.handle()
        for _ in range(per):
            while True:
                cur = h["cas"]
                if h.compare_and_set("cas", cur, cur + 1):
                    break
            h.compute("c", _inc)
            h.merge("m", 1, _add)

    run_in_threads(work, 4)
    assert d.snapshot() == {"cas": 4 * per, "c": 4 * per, "m": 4 * per}


@pytest.mark.timeout(60)
def test_compute_if_absent_single_flight_8_threads_50_keys(switch_interval: None) -> None:
    d: ShardedDict[int, object] = ShardedDict(shards=4)
    calls: list[int] = []
    calls_lock = threading.Lock()

    def factory(k: int) -> object:
        with calls_lock:
            calls.append(k)
        time.sleep(0.002)
        return object()

    def work(i: int) -> list[object]:
        order = list(range(50))
        random.Random(i).shuffle(order)
        h = d.handle() if i % 2 else d
        got = {k: h.compute_if_absent(k, factory) for k in order}
        return [got[k] for k in range(50)]

    results = run_in_threads(work, 8)
    assert sorted(calls) == list(range(50))
    for r in results:
        assert all(a is b for a, b in zip(r, results[0], strict=True))
    assert all(d[k] is results[0][k] for k in range(50))
    assert not any(d._loading)


@pytest.mark.timeout(30)
def test_compute_if_absent_failure_then_waiters_retry() -> None:
    d: ShardedDict[str, object] = ShardedDict()
    calls: list[int] = []
    value = object()

    def factory(k: str) -> object:
        calls.append(1)
        if len(calls) == 1:
            time.sleep(0.1)  # the others arrive and wait
            raise ValueError("first load fails")
        return value

    def work(i: int) -> object:
        try:
            return d.compute_if_absent("k", factory)
        except ValueError as exc:
            return exc

    results = run_in_threads(work, 4)
    errors = [r for r in results if isinstance(r, ValueError)]
    assert len(errors) == 1
    assert all(r is value for r in results if r is not errors[0])
    assert len(calls) == 2 and d["k"] is value


@pytest.mark.timeout(30)
def test_slow_factory_blocks_neither_its_shard_nor_readers() -> None:
    d: ShardedDict[str, int] = ShardedDict({"x": 1}, shards=1)  # every key in one shard
    started, release = threading.Event(), threading.Event()

    def slow(k: str) -> int:
        started.set()
        assert release.wait(10)
        return 42

    def loader() -> int:
        return d.compute_if_absent("slow", slow)

    def others() -> None:
        assert started.wait(10)
        d["y"] = 2
        d.increment("x")
        d.compute("z", _inc)
        assert d.get("slow") is None and "slow" not in d  # absent while loading
        assert d.snapshot() == {"x": 2, "y": 2, "z": 1}
        with pytest.raises(TimeoutError):
            d.compute_if_absent("slow", slow, timeout=0.05)
        release.set()

    got, _ = run_concurrently(loader, others, timeout=20)
    assert got == 42 and d["slow"] == 42


@pytest.mark.timeout(30)
def test_store_during_load_wins() -> None:
    d: ShardedDict[str, int] = ShardedDict()
    started, release = threading.Event(), threading.Event()

    def slow(k: str) -> int:
        started.set()
        assert release.wait(10)
        return 1

    def writer() -> None:
        assert started.wait(10)
        d["k"] = 7
        release.set()

    got, _ = run_concurrently(lambda: d.compute_if_absent("k", slow), writer, timeout=20)
    assert got == 7 and d["k"] == 7


@pytest.mark.timeout(60)
def test_iteration_while_mutating_never_raises(switch_interval: None) -> None:
    d: ShardedDict[int, int] = ShardedDict({k: k for k in range(0, 200, 2)}, shards=8)
    stop = threading.Event()
    rounds = stress_scale(ci=150, full=3000)

    def writer() -> None:
        rng = random.Random(1)
        while not stop.is_set():
            k = rng.randrange(400)
            if rng.random() < 0.5:
                d[k] = k
            else:
                d.pop(k, None)

    def reader() -> None:
        try:
            for _ in range(rounds):
                keys = list(d)
                assert len(keys) == len(set(keys))
                items = list(d.items())
                assert len({k for k, _ in items}) == len(items)
                assert all(k == v for k, v in items)
                list(d.values())
                len(d)
        finally:
            stop.set()

    run_concurrently(writer, reader, timeout=50)


def test_plain_dict_iteration_check_can_fail(switch_interval: None) -> None:
    # The same reader on a plain dict does hit "changed size during iteration":
    # the test above would catch an iterator that walks live shards.
    d = {k: k for k in range(0, 2000, 2)}
    stop = threading.Event()
    failures: list[BaseException] = []

    def writer() -> None:
        i = 0
        while not stop.is_set() and i < 1_000_000:
            d[10_000 + i] = 0  # the size always changes
            i += 1

    def reader() -> None:
        try:
            for _ in range(2000):
                try:
                    for k in d:
                        if k % 7 == 0:
                            time.sleep(0)
                except RuntimeError as exc:
                    failures.append(exc)
                    return
        finally:
            stop.set()

    run_concurrently(writer, reader, timeout=50)
    assert failures


def _wave_writer(d: Any, keys: int, stop: threading.Event) -> Callable[[], None]:
    def writer() -> None:
        while not stop.is_set():
            for k in range(keys):
                d.increment(k)

    return writer


def _consistent_wave(snap: Mapping[int, int], keys: int) -> bool:
    """States the writer passes through: keys < j at c+1, the rest at c."""
    vals = [snap[k] for k in range(keys)]
    lo = vals[-1]
    j = sum(1 for v in vals if v == lo + 1)
    return all(v == lo + 1 for v in vals[:j]) and all(v == lo for v in vals[j:])


def _check_snapshots(cls: Callable[[], Any], take: Callable[[Any], dict[int, int]]) -> int:
    keys = 24
    d = cls()
    for k in range(keys):
        d[k] = 0
    stop = threading.Event()
    bad = 0
    count = stress_scale(ci=300, full=5000)

    def reader() -> None:
        nonlocal bad
        try:
            for _ in range(count):
                if not _consistent_wave(take(d), keys):
                    bad += 1
        finally:
            stop.set()

    run_concurrently(_wave_writer(d, keys, stop), reader, timeout=50)
    return bad


@pytest.mark.timeout(60)
def test_snapshot_is_a_sequentially_consistent_state(switch_interval: None) -> None:
    assert _check_snapshots(lambda: ShardedDict(shards=31), lambda d: d.snapshot()) == 0


@pytest.mark.timeout(60)
def test_snapshot_check_can_fail(switch_interval: None) -> None:
    def unlocked_snapshot(d: Any) -> dict[int, int]:
        out: dict[int, int] = {}
        for s in d._shards:
            out.update(s.copy())
            time.sleep(0.0001)  # a real pause, so writes land between shard copies
        return out

    assert _check_snapshots(lambda: ShardedDict(shards=31), unlocked_snapshot) > 0


@pytest.mark.timeout(60)
def test_len_exact_when_quiescent(switch_interval: None) -> None:
    d: ShardedDict[int, int] = ShardedDict(shards=8)

    def work(i: int) -> None:
        h = d.handle()
        for k in range(i * 1000, i * 1000 + 500):
            h[k] = k
        for k in range(i * 1000, i * 1000 + 500, 2):
            del h[k]

    run_in_threads(work, 4)
    assert len(d) == 4 * 250 == len(d.snapshot())


@pytest.mark.timeout(30)
def test_clear_and_popitem_are_atomic(switch_interval: None) -> None:
    d: ShardedDict[int, int] = ShardedDict(shards=8)
    n = stress_scale(ci=2000, full=50_000)
    popped: list[int] = []

    def producer() -> None:
        for k in range(n):
            d[k] = k

    def consumer() -> None:
        got = 0
        deadline = time.monotonic() + 20
        while got < n and time.monotonic() < deadline:
            try:
                k, v = d.popitem()
            except KeyError:
                time.sleep(0)
                continue
            assert k == v
            popped.append(k)
            got += 1

    run_concurrently(producer, consumer, timeout=25)
    assert sorted(popped) == list(range(n)) and len(d) == 0


class _NaiveComputeIfAbsent(ShardedDict[Any, Any]):
    """Broken on purpose: check-then-act without a per-key reservation."""

    __slots__ = ()

    def compute_if_absent(self, key: Any, factory: Any, *, timeout: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return self.get_or_set(key, factory(key))


@pytest.mark.timeout(60)
def test_single_flight_check_can_fail() -> None:
    d = _NaiveComputeIfAbsent()
    calls: list[int] = []

    def factory(k: int) -> object:
        calls.append(k)
        time.sleep(0.002)
        return object()

    run_in_threads(lambda i: [d.compute_if_absent(k, factory) for k in range(20)], 4)
    assert len(calls) > 20


@pytest.mark.parametrize("how", ["del", "pop", "popitem", "clear"])
def test_removed_values_are_released_after_the_lock(how: str) -> None:
    d: ShardedDict[str, Any] = ShardedDict(shards=1)
    held: list[bool] = []

    class Value:
        def __del__(self) -> None:
            held.append(any_lock_held(d))

    d["a"] = Value()
    if how == "del":
        del d["a"]
    elif how == "pop":
        d.pop("a")
    elif how == "popitem":
        d.popitem()
    else:
        d.clear()
    import gc

    gc.collect()
    assert held == [False]


# ------------------------------------------------------ failure paths (locks)


def _bare_acquires(path: str) -> list[int]:
    """Lines of ``path`` where a lock is acquired by a bare ``x.acquire()`` statement."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(__import__(path, fromlist=["_"])))
    bare = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)):
            continue
        func = node.value.func
        if isinstance(func, ast.Attribute) and func.attr == "acquire":
            # ``parked``: a waiter's private wake-up lock that nobody else
            # ever waits for (left held by an interrupt, it is just dropped).
            if not (isinstance(func.value, ast.Name) and func.value.id == "parked"):
                bare.append(node.lineno)
        elif isinstance(func, ast.Subscript):
            bare.append(node.lineno)
    return bare


@pytest.mark.parametrize(
    "module", ["conctools.sharded_dict", "conctools.sharded_set", "conctools._internal.striping"]
)
def test_no_lock_is_taken_outside_the_scope_that_releases_it(module: str) -> None:
    # A bare ``lock.acquire()`` (or ``acquires[i]()``) statement can be
    # followed by an exception before its ``try:`` is entered; every lock is
    # taken by ``with`` instead.
    assert _bare_acquires(module) == []


class _InterruptingLock:
    """A stand-in shard lock whose next ``with`` raises ``fault`` when armed."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.armed: BaseException | None = None

    def __enter__(self) -> bool:
        fault, self.armed = self.armed, None
        if fault is not None:
            raise fault  # interrupted while waiting for the lock
        return self.lock.__enter__()

    def __exit__(self, *exc: object) -> None:
        self.lock.__exit__(*exc)

    def locked(self) -> bool:
        return self.lock.locked()


class _Fault(BaseException):
    pass


def test_all_locks_are_released_when_taking_them_is_interrupted() -> None:
    from conctools._internal.striping import with_all_locks

    locks = [threading.Lock() for _ in range(131)]
    for bad in (0, 15, 16, 40, 130):
        hold = locks[bad]
        hold.acquire()  # held by "another thread": with_all_locks must time out below
        flaky = list(locks)
        il = _InterruptingLock()
        il.lock = hold
        il.armed = _Fault()
        flaky[bad] = il  # type: ignore[call-overload]
        with pytest.raises(_Fault):
            with_all_locks(flaky, lambda: None)
        hold.release()
        assert not any(lock.locked() for lock in locks)
    assert with_all_locks(locks, lambda: sum(lock.locked() for lock in locks)) == 131


def test_many_shards_take_all_locks_without_deep_recursion() -> None:
    from conctools._internal import striping

    n = striping._NESTED_MAX + 300
    locks = [threading.Lock() for _ in range(n)]
    assert striping.with_all_locks(locks, lambda: sum(lock.locked() for lock in locks)) == n
    assert not any(lock.locked() for lock in locks)
    for bad in (striping._NESTED_MAX + 5, n - 1):
        hold = locks[bad]
        hold.acquire()
        flaky = list(locks)
        il = _InterruptingLock()
        il.lock = hold
        il.armed = _Fault()
        flaky[bad] = il  # type: ignore[call-overload]
        with pytest.raises(_Fault):
            striping.with_all_locks(flaky, lambda: None)
        hold.release()
        assert not any(lock.locked() for lock in locks)
    d: ShardedDict[int, int] = ShardedDict({1: 1, 2: 2}, shards=20000)
    assert d.snapshot() == {1: 1, 2: 2} and len(d.popitem()) == 2
    d.clear()
    assert not d and not any(lock.locked() for lock in d._locks)


# -------------------------------------- compute_if_absent completion paths


def _waits_for_loads_of(owner: int) -> bool:
    """Whether a thread waits for a load of thread ``owner``, or ``owner`` waits.

    Only this test's threads are looked at: copies of the test running in
    other threads at the same time use the module-wide table too.
    """
    with sdmod._waiting_lock:
        return owner in sdmod._waiting or any(r.owner == owner for r in sdmod._waiting.values())


def _waiter_joined_load_of(owner: int) -> bool:
    """Whether a thread waits for a load of ``owner`` that is still running."""
    with sdmod._waiting_lock:
        return any(r.owner == owner and not r.finished() for r in sdmod._waiting.values())


def _loader_and_waiter(
    d: ShardedDict[Any, Any], key: Any, during_load: Callable[[], None]
) -> tuple[BaseException | None, list[Any]]:
    """Main thread loads ``key``; a waiter joins the load; ``during_load`` runs in the factory.

    Returns the loader's exception and what the waiter got (value or
    exception); fails if the waiter does not finish.
    """
    started = threading.Event()
    got: list[Any] = []

    def waiter() -> None:
        started.wait(5)
        try:
            got.append(d.compute_if_absent(key, lambda k: "waiter-value", timeout=5))
        except BaseException as exc:  # reported
            got.append(exc)

    t = threading.Thread(target=waiter, daemon=True)
    t.start()

    me = threading.get_ident()

    def factory(k: Any) -> Any:
        started.set()
        deadline = time.monotonic() + 5
        while not _waiter_joined_load_of(me) and time.monotonic() < deadline:
            time.sleep(0.001)  # the waiter is waiting for this load
        during_load()
        return "loader-value"

    err: BaseException | None = None
    try:
        d.compute_if_absent(key, factory)
    except BaseException as exc:
        err = exc
    t.join(10)
    assert not t.is_alive(), "the waiter hangs: the reservation was never completed"
    return err, got


def test_compute_if_absent_store_raising_completes_waiters_and_frees_the_key() -> None:
    d: ShardedDict[Any, Any] = ShardedDict(shards=1)
    raising = [True]

    class Eq:
        def __init__(self, name: str) -> None:
            self.name = name

        def __hash__(self) -> int:
            return 7

        def __eq__(self, other: object) -> bool:
            if raising[0]:
                raise ArithmeticError("eq")
            return isinstance(other, Eq) and other.name == self.name

    key = Eq("new")

    def insert_colliding() -> None:
        raising[0] = False
        d[Eq("old")] = 1  # lands in the same shard, same hash
        raising[0] = True

    err, got = _loader_and_waiter(d, key, insert_colliding)
    assert isinstance(err, ArithmeticError)  # the store raised: map unchanged
    assert len(got) == 1 and isinstance(got[0], ArithmeticError)  # completed, not hung
    assert not any(d._loading) and not _waits_for_loads_of(threading.get_ident())
    raising[0] = False
    assert len(d) == 1 and d.compute_if_absent(key, lambda k: "later") == "later"


def test_compute_if_absent_interrupted_waiting_for_the_shard_lock() -> None:
    d: ShardedDict[Any, Any] = ShardedDict(shards=1)
    il = _InterruptingLock()
    d._locks = (il,)  # type: ignore[assignment]

    def arm() -> None:
        il.armed = _Fault()  # the loader's final ``with lock:`` is interrupted

    err, got = _loader_and_waiter(d, "k", arm)
    assert isinstance(err, _Fault)
    # the waiter retried and loaded the key itself: nothing wedged
    assert got == ["waiter-value"] and d["k"] == "waiter-value"
    assert (
        not any(d._loading) and not il.locked() and not _waits_for_loads_of(threading.get_ident())
    )


@pytest.mark.parametrize("exc", [ValueError("factory"), KeyboardInterrupt(), _Fault()])
def test_compute_if_absent_factory_base_exception_completes(exc: BaseException) -> None:
    d: ShardedDict[Any, Any] = ShardedDict()

    def boom() -> None:
        raise exc

    err, got = _loader_and_waiter(d, "k", boom)
    assert err is exc and got == ["waiter-value"]
    assert not any(d._loading) and not _waits_for_loads_of(threading.get_ident())


def test_stale_reservation_of_a_vanished_loader_is_dropped() -> None:
    # A loader interrupted between registering and starting its load leaves a
    # registered reservation whose ``running`` lock is free: the next caller
    # must drop it, not wait for it forever.
    d: ShardedDict[str, Any] = ShardedDict(shards=1)
    h = hash("k")
    stale = sdmod._Reservation(12345, "k", h)
    stale.registered = True
    d._loading[0][h] = [stale]
    assert d.compute_if_absent("k", lambda k: 5, timeout=5) == 5
    assert not any(d._loading)


@pytest.mark.thread_unsafe(reason="plants an entry in the module-wide wait-for table")
def test_dead_wait_for_edge_is_dropped_by_the_next_wait() -> None:
    # An interrupt inside a waiter's clean-up can leave its edge registered
    # (here: a thread that is gone, waiting for a finished load).  The next
    # wait drops it, releasing the load's key and value.
    d: ShardedDict[str, Any] = ShardedDict()
    gone = sdmod._Reservation(12345, "old-key", hash("old-key"))
    assert gone.finished()
    with sdmod._waiting_lock:
        sdmod._waiting[54321] = gone
    try:
        err, got = _loader_and_waiter(d, "k", lambda: None)
        assert err is None and got == ["loader-value"]
        with sdmod._waiting_lock:
            assert 54321 not in sdmod._waiting
    finally:
        with sdmod._waiting_lock:
            sdmod._waiting.pop(54321, None)


@pytest.mark.timeout(60)
def test_former_loader_asking_for_its_waiters_key_is_not_a_deadlock(
    switch_interval: None,
) -> None:
    # A loads k1; B's factory for k2 waits for k1.  As soon as A's load is
    # done, A asks for k2 as an ordinary caller: it must wait for B's load
    # (B's edge to A's finished load is dead), not raise "re-entered".
    false_reports = 0
    for trial in range(40):
        d: ShardedDict[str, Any] = ShardedDict()

        def factory_k1(k: str) -> Any:
            me = threading.get_ident()
            deadline = time.monotonic() + 5
            while not _waiter_joined_load_of(me) and time.monotonic() < deadline:
                time.sleep(0.0005)  # B waits for this load of k1
            return 1

        def factory_k2(k: str, d: ShardedDict[str, Any] = d) -> Any:
            return d.compute_if_absent("k1", lambda k: 99) + 1

        def a() -> Any:
            d.compute_if_absent("k1", factory_k1)
            try:
                return d.compute_if_absent("k2", lambda k: -1, timeout=10)
            except RuntimeError as exc:
                return exc

        def b(d: ShardedDict[str, Any] = d) -> Any:
            return d.compute_if_absent("k2", factory_k2)

        ta = threading.Thread(target=lambda: out.append(a()))
        out: list[Any] = []
        tb = threading.Thread(target=b)
        ta.start()
        deadline = time.monotonic() + 5
        while not any(d._loading) and time.monotonic() < deadline:
            time.sleep(0.0005)  # A's load of k1 is registered
        tb.start()
        ta.join(20)
        tb.join(20)
        assert out, f"trial {trial}: thread A did not finish"
        if isinstance(out[0], RuntimeError):
            false_reports += 1
        else:
            assert out[0] in (2, -1)
    assert false_reports == 0


@pytest.mark.parametrize("timeout", [math.inf, 1e300, threading.TIMEOUT_MAX * 2])
def test_compute_if_absent_huge_timeouts_wait(timeout: Any) -> None:
    d: ShardedDict[str, Any] = ShardedDict()
    err, got = _loader_and_waiter_with_timeout(d, timeout)
    assert err is None and got == ["loader-value"]


def _loader_and_waiter_with_timeout(
    d: ShardedDict[str, Any], timeout: Any
) -> tuple[BaseException | None, list[Any]]:
    started = threading.Event()
    release = threading.Event()
    got: list[Any] = []

    def loader() -> None:
        def factory(k: str) -> str:
            started.set()
            release.wait(5)
            return "loader-value"

        d.compute_if_absent("k", factory)

    t = threading.Thread(target=loader, daemon=True)
    t.start()
    started.wait(5)
    threading.Timer(0.05, release.set).start()
    err: BaseException | None = None
    try:
        got.append(d.compute_if_absent("k", lambda k: "mine", timeout=timeout))
    except BaseException as exc:
        err = exc
    t.join(5)
    return err, got


@pytest.mark.parametrize(
    ("timeout", "exc"),
    [
        (True, TypeError),
        ("1", TypeError),
        ([], TypeError),
        (-1, ValueError),
        (math.nan, ValueError),
    ],
)
def test_compute_if_absent_bad_timeouts(timeout: Any, exc: type[Exception]) -> None:
    d: ShardedDict[str, int] = ShardedDict({"present": 1})
    with pytest.raises(exc):
        d.compute_if_absent("k", lambda k: 1, timeout=timeout)
    with pytest.raises(exc):  # validated on the hit path too
        d.compute_if_absent("present", lambda k: 1, timeout=timeout)
    assert d == {"present": 1} and not any(d._loading)


# ------------------------------------------------- stdlib contracts (dict)


@pytest.mark.parametrize("kind", KINDS)
def test_repr_of_a_map_containing_itself(kind: str) -> None:
    base: ShardedDict[str, Any] = ShardedDict()
    d = as_map(base, kind)
    d["me"] = base
    assert repr(base) == "ShardedDict({'me': {...}})"
    assert repr(d).endswith("ShardedDict({'me': {...}})" + (">" if kind == "handle" else ""))
    plain = {"me": None}
    plain["me"] = plain  # type: ignore[assignment]
    assert repr(plain) == "{'me': {...}}"  # what dict prints


class _NoKwargs(ShardedDict[Any, Any]):
    """A subclass whose constructor takes no keywords (nor arguments)."""

    __slots__ = ("tag",)

    def __init__(self) -> None:
        super().__init__()
        self.tag = "made by __init__"


def test_fromkeys_calls_the_subclass_constructor_without_keywords() -> None:
    d = _NoKwargs.fromkeys("ab", 0)
    assert type(d) is _NoKwargs and d == {"a": 0, "b": 0} and d.tag == "made by __init__"
    e = ShardedDict.fromkeys(range(3))
    assert type(e) is ShardedDict and e == dict.fromkeys(range(3))
    f = ShardedDict.fromkeys("xy", 1, shards=5)
    assert f.shards == 5 and f == {"x": 1, "y": 1}


def test_handle_has_fromkeys() -> None:
    d = _NoKwargs()
    h = d.handle()
    e = h.fromkeys("ab", 7)
    assert type(e) is _NoKwargs and e == {"a": 7, "b": 7}
    assert ShardedDict().handle().fromkeys([1]) == {1: None}
    assert set(dir(ShardedDict)) - set(dir(ShardedDictHandle)) <= {"__weakref__", "_init_storage"}


class _Counted:
    """Every instance hashes to 5; counts __hash__ and __eq__ calls (per thread)."""

    counts = threading.local()

    def __init__(self, name: str) -> None:
        self.name = name

    def __hash__(self) -> int:
        c = _Counted.counts
        c.hashes = getattr(c, "hashes", 0) + 1
        return 5

    def __eq__(self, other: object) -> bool:
        c = _Counted.counts
        c.eqs = getattr(c, "eqs", 0) + 1
        return isinstance(other, _Counted) and other.name == self.name


def _count_setdefault(m: Any, key: _Counted, method: str = "setdefault") -> tuple[int, int]:
    c = _Counted.counts
    c.hashes = c.eqs = 0
    getattr(m, method)(key, 1)
    return c.hashes, c.eqs


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", ["setdefault", "get_or_set"])
def test_setdefault_hashes_and_compares_a_colliding_key_once(kind: str, method: str) -> None:
    plain: dict[Any, Any] = {_Counted("old"): 0}
    base: ShardedDict[Any, Any] = ShardedDict({_Counted("old"): 0}, shards=1)
    d = as_map(base, kind)
    new_dict = _count_setdefault(plain, _Counted("new"))
    new_ours = _count_setdefault(d, _Counted("new"), method)
    assert new_dict == (1, 1)
    assert new_ours == new_dict  # one hash, one comparison with the colliding key
    hit_dict = _count_setdefault(plain, _Counted("new"))
    hit_ours = _count_setdefault(d, _Counted("new"), method)
    assert hit_ours[0] == 1 and hit_ours[1] <= hit_dict[1] + 1
    assert base[_Counted("new")] == 1 and len(base) == 2


def test_reversed_raises_a_clear_type_error() -> None:
    d: ShardedDict[int, int] = ShardedDict({1: 1, 2: 2})
    for m in (d, d.handle()):
        with pytest.raises(TypeError, match=r"not insertion order.*sorted"):
            reversed(m)  # type: ignore[call-overload]
    assert sorted(d, reverse=True) == [2, 1]


def test_missing_hook_of_subclasses_like_dict() -> None:
    class Defaulting(ShardedDict[str, int]):
        def __missing__(self, key: str) -> int:
            return -1

    d = Defaulting({"a": 1})
    assert d["a"] == 1 and d["zz"] == -1 and "zz" not in d and d.get("zz") is None
    with pytest.raises(KeyError, match="zz"):
        ShardedDict()["zz"]


class _WithState(ShardedDict[Any, Any]):
    """A subclass with its own attributes (no __slots__: it has a __dict__)."""

    def __init__(self, tag: str) -> None:
        super().__init__(shards=7)
        self.tag = tag


@pytest.mark.parametrize(
    "how",
    ["copy.copy", "copy.deepcopy"] + [f"pickle{p}" for p in range(pickle.HIGHEST_PROTOCOL + 1)],
)
def test_copy_deepcopy_pickle_like_dict(how: str) -> None:
    def clone(x: Any) -> Any:
        if how == "copy.copy":
            return copy.copy(x)
        if how == "copy.deepcopy":
            return copy.deepcopy(x)
        return pickle.loads(pickle.dumps(x, int(how[6:])))

    for d in (ShardedDict({"l": [1], Colliding("c"): 2}, shards=5), _WithState("t"), _NoKwargs()):
        d["l"] = [1]
        c = clone(d)
        assert type(c) is type(d) and c == d and c is not d and c.shards == d.shards
        assert getattr(c, "tag", None) == getattr(d, "tag", None)
        assert (c["l"] is d["l"]) == (how == "copy.copy")  # shallow vs deep, as dict
        c["new"] = 1
        assert "new" not in d
    # a map containing itself copies like a dict containing itself
    s: ShardedDict[str, Any] = ShardedDict()
    s["self"] = s
    c = clone(s)
    assert c["self"] is (s if how == "copy.copy" else c)


def test_handle_cannot_be_copied_or_pickled_with_a_clear_type_error() -> None:
    h = ShardedDict({"a": 1}).handle()
    for fn in (copy.copy, copy.deepcopy, pickle.dumps):
        with pytest.raises(TypeError, match=r"bound to a thread.*\.map"):
            fn(h)
    assert copy.deepcopy({"m": h.map})["m"] == {"a": 1}
