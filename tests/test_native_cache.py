"""ConcurrentCache.get's two implementations held to the same semantics.

The pure-Python methods (``ConcurrentCache.get`` and ``_get_timed`` as
written in ``conctools/cache/core.py``, kept as ``_py_get`` and
``_py_get_timed``) are the specification; when the C accelerator is active the
classes' ``get`` are its method descriptors.  Each test calls both on the same
kind of cache and compares results, statistics and exceptions.  The rest of
the cache suite runs whichever implementation is active.
"""

from __future__ import annotations

import math
import random
import time
from typing import Any

import pytest

import conctools.cache.core as cc
from conctools import ConcurrentCache
from conctools._internal import native
from conctools.testing import run_in_threads

INSTALL = native.native_attr("_cache_install")
needs_native = pytest.mark.skipif(INSTALL is None, reason="pure Python runs")

pytestmark = pytest.mark.timeout(120)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _gets(timed: bool) -> list[Any]:
    """The get implementations to compare: the specification, and the native one."""
    spec = cc._py_get_timed if timed else cc._py_get
    active = cc._TimedCache.get if timed else ConcurrentCache.get
    return [spec] if active is spec else [spec, active]


IMPLS = ["spec", "native"]


def _impl(name: str, timed: bool) -> Any:
    gets = _gets(timed)
    if name == "native":
        if len(gets) == 1:
            pytest.skip("pure Python runs")
        return gets[1]
    return gets[0]


def test_the_active_implementation_is_the_accelerator_when_it_is_built() -> None:
    if INSTALL is None:
        assert ConcurrentCache.get is cc._py_get
        assert cc._TimedCache.get is cc._py_get_timed
    else:
        assert type(ConcurrentCache.get).__name__ == "method_descriptor"
        assert type(cc._TimedCache.get).__name__ == "method_descriptor"
        assert ConcurrentCache.get.__doc__ == cc._py_get.__doc__
        assert ConcurrentCache.get.__text_signature__ == "($self, key, default=None)"
        c: ConcurrentCache[int, int] = ConcurrentCache(ttl=5)
        assert type(c).get is cc._TimedCache.get


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("timed", [False, True])
def test_arguments_by_position_and_keyword(impl: str, timed: bool) -> None:
    get = _impl(impl, timed)
    c: ConcurrentCache[int, str] = ConcurrentCache(ttl=5) if timed else ConcurrentCache()
    c.put(1, "a")
    assert get(c, 1) == "a"
    assert get(c, key=1) == "a"
    assert get(c, 2) is None
    assert get(c, 2, "d") == "d"
    assert get(c, 2, default="d") == "d"
    assert get(c, key=2, default="d") == "d"
    bad: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        ((), {}),
        ((1, 2, 3), {}),
        ((1,), {"key": 1}),
        ((1, 2), {"default": 3}),
        ((1,), {"nope": 1}),
        ((), {"default": 1}),
    ]
    before = c.stats()
    for args, kwargs in bad:
        with pytest.raises(TypeError):
            get(c, *args, **kwargs)
    assert c.stats() == before
    s = c.stats()
    assert (s.hits, s.misses) == (2, 4)


class BadKey:
    def __init__(self, boom: bool) -> None:
        self.boom = boom

    def __hash__(self) -> int:
        return 7

    def __eq__(self, other: object) -> bool:
        if self.boom:
            raise ZeroDivisionError("eq")
        return self is other


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("timed", [False, True])
def test_a_key_that_raises_propagates_and_counts_nothing(impl: str, timed: bool) -> None:
    get = _impl(impl, timed)
    c: ConcurrentCache[Any, int] = ConcurrentCache(ttl=5) if timed else ConcurrentCache()
    c.put(BadKey(True), 1)  # the stored key's __eq__ raises on a hash collision
    with pytest.raises(TypeError):
        get(c, [])
    with pytest.raises(ZeroDivisionError):
        get(c, BadKey(False))
    s = c.stats()
    assert (s.hits, s.misses) == (0, 0)
    assert len(c) == 1


def _scenario(seed: int, timed: str) -> list[tuple[str, int, int]]:
    rng = random.Random(seed)
    ops = []
    for _ in range(600):
        r = rng.random()
        k = rng.randrange(12)
        if r < 0.55:
            ops.append(("get", k, 0))
        elif r < 0.85:
            ops.append(("put", k, rng.randrange(100)))
        elif r < 0.9:
            ops.append(("invalidate", k, 0))
        else:
            ops.append(("tick", 0, rng.choice([0, 1, 3])))
    return ops


class ShortReads:
    """An expiry policy: 4 s after a write, 2 s after a read."""

    def expire_after_create(self, key: Any, value: Any, now: float) -> float:
        return 4.0

    def expire_after_update(self, key: Any, value: Any, now: float, current: float | None) -> float:
        return 4.0

    def expire_after_read(self, key: Any, value: Any, now: float, current: float | None) -> float:
        return 2.0


CONFIGS: dict[str, dict[str, Any]] = {
    "plain": {},
    "tinylfu": {"policy": "tinylfu"},
    "weighted": {"maxweight": 40, "weigher": lambda k, v: 1 + v % 5},
    "ttl": {"ttl": 5.0},
    "access": {"expire_after_access": 3.0},
    "both": {"ttl": 6.0, "expire_after_access": 2.0},
    "expiry": {"expiry": ShortReads()},
    "refresh": {"ttl": 8.0, "refresh_after": 2.0},
}


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("seed", range(3))
def test_same_results_and_statistics_as_the_specification(config: str, seed: int) -> None:
    timed = config not in ("plain", "tinylfu", "weighted")
    results = []
    for get in _gets(timed):
        clock = FakeClock()
        c: ConcurrentCache[int, int] = (
            ConcurrentCache(8, clock=clock, **CONFIGS[config])
            if ("maxweight" not in CONFIGS[config])
            else ConcurrentCache(clock=clock, **CONFIGS[config])
        )
        out: list[Any] = []
        for op, k, v in _scenario(seed, config):
            if op == "get":
                out.append(get(c, k, -1))
            elif op == "put":
                c.put(k, v)
            elif op == "invalidate":
                out.append(c.invalidate(k))
            else:
                clock.now += v
        out.append(sorted(c.items()))
        out.append(c.stats())
        results.append(out)
    assert all(r == results[0] for r in results[1:])
    assert results[0][-1].hits > 0 and results[0][-1].misses > 0


@pytest.mark.parametrize("impl", IMPLS)
def test_the_default_clock_is_time_monotonic(impl: str) -> None:
    """The deadline check reads the same clock as time.monotonic (the native
    code reads it directly): a deadline half a second ahead of
    time.monotonic() is live, half a second behind is past."""
    get = _impl(impl, True)
    c: ConcurrentCache[str, int] = ConcurrentCache(ttl=1000)
    c.put("k", 1)
    node = c._data["k"]
    node.item = (1, time.monotonic() + 0.5)
    assert get(c, "k") == 1
    node.item = (1, time.monotonic() - 0.5)
    assert get(c, "k", "gone") == "gone"
    node.item = (1, math.inf)
    assert get(c, "k") == 1
    s = c.stats()
    assert (s.hits, s.misses) == (2, 1)


@pytest.mark.parametrize("impl", IMPLS)
def test_other_clocks_and_deadlines_are_compared_with_less_than(impl: str) -> None:
    get = _impl(impl, True)
    ticks = [10]
    c: ConcurrentCache[str, int] = ConcurrentCache(ttl=5, clock=lambda: ticks[0])
    c.put("k", 1)
    assert c._data["k"].item == (1, 15)  # an int deadline from an int clock
    assert get(c, "k") == 1
    ticks[0] = 15
    assert get(c, "k") is None

    def broken() -> float:
        raise OSError("clock")

    c2: ConcurrentCache[str, int] = ConcurrentCache(ttl=5)
    c2.put("k", 1)
    c2._clock = broken
    with pytest.raises(OSError, match="clock"):
        get(c2, "k")
    buf = c2._tls.value  # (stats() would read the broken clock too)
    assert (buf.hits, buf.misses) == (0, 0)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("timed", [False, True])
def test_unexpected_buffer_or_node_types_behave_like_the_specification(
    impl: str, timed: bool
) -> None:
    """A thread's buffer or a node of another type (only a subclass that
    stores its own objects could make one) takes the Python method: the same
    outcome as the specification."""
    get = _impl(impl, timed)
    c: ConcurrentCache[str, int] = ConcurrentCache(ttl=5) if timed else ConcurrentCache()
    c.put("k", 1)
    c._tls.value = []  # a plain list: no hit/miss counters
    with pytest.raises(AttributeError):
        get(c, "k")
    c._tls.value = cc._Buffer()
    c._data["k"] = object()  # type: ignore[assignment]
    with pytest.raises(AttributeError):
        get(c, "k")


@pytest.mark.parametrize("impl", IMPLS)
def test_a_long_buffer_is_drained_and_every_hit_counted(impl: str) -> None:
    get = _impl(impl, False)
    c: ConcurrentCache[int, int] = ConcurrentCache(16)
    for i in range(16):
        c.put(i, i)
    for n in range(1000):
        assert get(c, n % 16) == n % 16
    assert len(c._tls.value) < cc._DRAIN_AT
    assert c.stats().hits == 1000


def test_subclasses_keep_their_own_get_and_inherit_the_native_one() -> None:
    class Mine(ConcurrentCache[str, int]):
        def get(self, key: str, default: Any = None) -> Any:
            return ("mine", super().get(key, default))

    class Open(ConcurrentCache[str, int]):  # no __slots__: has a __dict__
        pass

    m = Mine(ttl=5)
    m.put("a", 1)
    assert m.get("a") == ("mine", 1)
    o = Open()
    o.extra = 1  # type: ignore[attr-defined]
    o.put("a", 2)
    assert o.get("a") == 2 and o["a"] == 2
    assert o.stats().hits == 2


@needs_native
def test_install_refuses_a_second_call_and_bad_arguments() -> None:
    assert INSTALL is not None
    args = (
        ConcurrentCache,
        cc._TimedCache,
        cc._Node,
        cc._Buffer,
        time.monotonic,
        cc._py_get,
        cc._py_get_timed,
    )
    with pytest.raises(RuntimeError):
        INSTALL(*args)
    with pytest.raises(TypeError):
        INSTALL(*args[:3])
    with pytest.raises(TypeError):
        INSTALL(1, *args[1:])
    with pytest.raises(TypeError):
        INSTALL(cc._TimedCache, ConcurrentCache, *args[2:])  # timed must subclass cache


@pytest.mark.parametrize("timed", [False, True])
def test_hits_are_exact_under_concurrent_gets_and_thread_exit(timed: bool) -> None:
    """Each thread's hits land in its own buffer; threads exit; the total is exact."""
    c: ConcurrentCache[int, int] = ConcurrentCache(64, ttl=100) if timed else ConcurrentCache(64)
    for i in range(64):
        c.put(i, i)
    n = 3000

    def reader(i: int) -> None:
        for j in range(n):
            if c.get(j % 64) != j % 64:
                raise AssertionError("wrong value")
            if j % 97 == 0:
                c.get(-1)

    run_in_threads(reader, 4, timeout=60)
    s = c.stats()
    assert (s.hits, s.misses) == (4 * n, 4 * len(range(0, n, 97)))
