"""ConcurrentCache as a MutableMapping, copy/deepcopy/pickle, and @cached's
maxsize=None / key= / ttl=0 rules."""

from __future__ import annotations

import copy
import pickle
import time
from collections.abc import MutableMapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conctools.cache import CacheStats, ConcurrentCache, cached
from conctools.testing import Scenario, assert_linearizable
from conctools.testing.strategies import scenarios

POLICIES = ["lru", "tinylfu"]


@pytest.mark.parametrize("policy", POLICIES)
def test_mutable_mapping_methods(policy: Any) -> None:
    c: ConcurrentCache[str, int] = ConcurrentCache(8, policy=policy)
    assert isinstance(c, MutableMapping)
    c.update({"a": 1}, b=2)
    c.update([("c", 3)])
    assert sorted(c.values()) == [1, 2, 3]
    assert c.pop("a") == 1
    assert c.pop("a", None) is None
    with pytest.raises(KeyError):
        c.pop("a")
    assert c.setdefault("b", 9) == 2
    assert c.setdefault("z", 9) == 9
    assert c["z"] == 9
    assert sorted(c) == ["b", "c", "z"]
    with pytest.raises(TypeError):
        hash(c)
    with pytest.raises(TypeError):
        c.pop([1])  # type: ignore[arg-type]  # unhashable: nothing changes
    assert len(c) == 3
    # pop/setdefault/popitem count no hit or miss
    assert c.stats().hits + c.stats().misses == 1  # the c["z"] above


def test_popitem_follows_the_eviction_order() -> None:
    c: ConcurrentCache[int, int] = ConcurrentCache(4)
    for k in range(4):
        c.put(k, k * 10)
    c.get(0)  # 1 is now the least recently used
    assert c.popitem() == (1, 10)
    assert c.popitem() == (2, 20)
    c.put(9, 90)
    assert c.popitem() == (3, 30)
    assert c.popitem() == (0, 0)
    assert c.popitem() == (9, 90)
    with pytest.raises(KeyError):
        c.popitem()


def test_popitem_tinylfu_takes_the_main_region_victim() -> None:
    c: ConcurrentCache[int, int] = ConcurrentCache(100, policy="tinylfu")
    for k in range(100):
        c.put(k, k)
    victim = c._policy.victim()
    assert c.popitem() == (victim, victim)
    assert victim not in c


def test_pop_and_setdefault_expiry() -> None:
    now = [0.0]
    c: ConcurrentCache[str, int] = ConcurrentCache(8, ttl=10, clock=lambda: now[0])
    c.put("a", 1)
    now[0] = 11.0
    assert c.pop("a", "gone") == "gone"  # expired: not live
    assert c.stats().expirations == 1
    assert c.setdefault("a", 2) == 2
    now[0] = 15.0
    assert c.setdefault("a", 3) == 2


def test_setdefault_during_a_load_wins() -> None:
    import threading

    c: ConcurrentCache[str, int] = ConcurrentCache(8)
    started, release = threading.Event(), threading.Event()

    def slow(k: str) -> int:
        started.set()
        release.wait(5)
        return 1

    t = threading.Thread(target=lambda: c.get_or_load("k", slow))
    t.start()
    assert started.wait(5)
    assert c.setdefault("k", 2) == 2
    release.set()
    t.join(5)
    assert c["k"] == 2  # the load's value was not cached over it


class MapSpec:
    def __init__(self) -> None:
        self.d: dict[int, int] = {}

    def get(self, key: int, default: Any = None) -> Any:
        return self.d.get(key, default)

    def put(self, key: int, value: int) -> None:
        self.d[key] = value

    def pop(self, key: int) -> Any:
        return self.d.pop(key)  # KeyError if absent, as the cache

    def setdefault(self, key: int, default: int) -> int:
        return self.d.setdefault(key, default)


VOCAB = {
    "get": st.tuples(st.integers(0, 2)),
    "put": st.tuples(st.integers(0, 2), st.integers(0, 3)),
    "pop": st.tuples(st.integers(0, 2)),
    "setdefault": st.tuples(st.integers(0, 2), st.integers(0, 3)),
}


@pytest.mark.parametrize("kind", ["lru", "tinylfu-ttl"])
@settings(max_examples=15)
@given(scenario=scenarios(VOCAB))
def test_pop_setdefault_linearizable(kind: str, scenario: Scenario) -> None:
    def make() -> ConcurrentCache[int, int]:
        if kind == "lru":
            return ConcurrentCache(16)
        return ConcurrentCache(16, policy="tinylfu", ttl=3600)

    assert_linearizable(scenario, make, MapSpec, partition=lambda op: op.args[0], trials=4)


# ----------------------------------------------------- copy, deepcopy, pickle


class Sub(ConcurrentCache[Any, Any]):
    def __init__(self, tag: str) -> None:  # a constructor with another signature
        super().__init__(4, ttl=60)
        self.tag = tag


@pytest.mark.parametrize("how", ["copy", "deepcopy", "pickle"])
@pytest.mark.parametrize(
    "kw", [{}, {"policy": "tinylfu"}, {"ttl": 60.0}, {"expire_after_access": 5.0}]
)
def test_copy_gives_an_independent_cache_with_same_settings(how: str, kw: Any) -> None:
    c: ConcurrentCache[Any, Any] = ConcurrentCache(4, stripes=2, **kw)
    for k in range(5):
        c.put(k, [k])
    c.get(1)
    dup: ConcurrentCache[Any, Any] = {
        "copy": copy.copy,
        "deepcopy": copy.deepcopy,
        "pickle": lambda x: pickle.loads(pickle.dumps(x)),
    }[how](c)
    assert type(dup) is type(c)
    assert (dup.maxsize, dup.ttl, dup.policy, dup.expire_after_access) == (
        c.maxsize,
        c.ttl,
        c.policy,
        c.expire_after_access,
    )
    assert len(dup._stripes) == 2
    assert sorted(dup.items()) == sorted(c.items())
    assert dup.stats() == CacheStats()
    if how == "copy":
        assert dup[1] is c[1]
    else:
        assert dup[1] == c[1] and dup[1] is not c[1]
    if kw == {}:  # the LRU order carried over: 2 is the next victim in both
        assert c.popitem()[0] == dup.popitem()[0] == 2
    dup.put(100, 1)
    assert 100 not in c


def test_copy_of_a_subclass_keeps_its_class_and_attributes() -> None:
    s = Sub("x")
    s.put(1, 1)
    for dup in (copy.copy(s), copy.deepcopy(s)):
        assert isinstance(dup, Sub)
        assert type(dup) is type(s)  # (with a ttl: Sub's class with expiry)
        assert dup.tag == "x"
        assert dup[1] == 1
        assert dup.ttl == 60


def test_pickling_an_unpicklable_clock_raises() -> None:
    c: ConcurrentCache[int, int] = ConcurrentCache(4, clock=lambda: time.monotonic())
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        pickle.dumps(c)


# --------------------------------------------------------------- @cached rules


@pytest.mark.parametrize("kw", [{}, {"ttl": 60.0}])
def test_cached_maxsize_none_is_unbounded(kw: Any) -> None:
    @cached(maxsize=None, **kw)
    def f(x: int) -> int:
        return x

    for i in range(3000):
        f(i)
    info = f.cache_info()
    assert (info.maxsize, info.currsize, info.misses) == (None, 3000, 3000)
    f(5)
    assert f.cache_info().hits == 1


def test_cached_maxsize_zero_or_negative_caches_nothing() -> None:
    calls = []

    @cached(maxsize=-3)
    def f(x: int) -> int:
        calls.append(x)
        return x

    f(1)
    f(1)
    assert calls == [1, 1]
    assert f.cache_info() == (0, 2, 0, 0)


def test_cached_key_function() -> None:
    calls = []

    @cached(maxsize=8, key=lambda a, b=0: a)
    def f(a: int, b: int = 0) -> int:
        calls.append((a, b))
        return a + b

    assert f(1, 5) == 6
    assert f(1, 7) == 6  # same key: the cached result
    assert f(2) == 2
    assert calls == [(1, 5), (2, 0)]
    assert f.cache_info().hits == 1
    with pytest.raises(TypeError):
        cached(key=3)  # type: ignore[call-overload]


def test_cached_key_function_unhashable_result_raises_typeerror() -> None:
    @cached(maxsize=8, key=lambda a: [a])
    def f(a: int) -> int:
        return a

    with pytest.raises(TypeError):
        f(1)


@pytest.mark.parametrize("bad", [0, 0.0, -1])
def test_ttl_zero_or_negative_is_a_valueerror(bad: float) -> None:
    with pytest.raises(ValueError):
        ConcurrentCache(4, ttl=bad)
    with pytest.raises(ValueError):
        cached(ttl=bad)
