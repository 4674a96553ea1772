"""ShardedDict: what the native core (conctools._native._ShardedCore) could get wrong.

Most tests run against both implementations: the public ``ShardedDict`` (native
when the accelerator is active) and a copy of the module loaded with the
accelerator disabled (the pure-Python reference).  Results, exceptions and
messages must be identical.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import math
import sys
import threading
import time
import tracemalloc
import weakref
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any
from unittest import mock

import pytest

import conctools.sharded_dict as sdmod
from conctools._internal import native
from conctools._internal.sentinel import MISSING
from conctools.testing import run_concurrently

NATIVE = native.ACTIVE == "native"


def _load_pure() -> ModuleType:
    """conctools.sharded_dict loaded again with the accelerator switched off."""
    spec = importlib.util.spec_from_file_location("conctools._sharded_dict_pure", sdmod.__file__)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    with mock.patch.object(native, "native_attr", lambda name: None):
        spec.loader.exec_module(mod)
    assert not mod._NATIVE
    return mod


PURE = _load_pure()
IMPLS = [pytest.param(PURE, id="pure")]
if sdmod._NATIVE:
    IMPLS.append(pytest.param(sdmod, id="native"))

only_native = pytest.mark.skipif(not sdmod._NATIVE, reason="the C accelerator is not active")


@pytest.fixture(params=IMPLS)
def impl(request: pytest.FixtureRequest) -> ModuleType:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(params=["map", "handle"])
def make(request: pytest.FixtureRequest, impl: ModuleType) -> Callable[..., Any]:
    def build(*args: Any, **kwargs: Any) -> Any:
        d = impl.ShardedDict(*args, **kwargs)
        return d if request.param == "map" else d.handle()

    return build


def outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    """What ``fn()`` did: its result, or its exception's type and message."""
    try:
        return "ok", fn()
    except Exception as exc:
        return type(exc).__name__, str(exc)


# ------------------------------------------------------------------ active


def test_native_core_is_active_when_the_accelerator_is() -> None:
    if not NATIVE:
        assert not sdmod._NATIVE
        pytest.skip("pure Python runs")
    from conctools import _native  # type: ignore[attr-defined]

    d: Any = sdmod.ShardedDict()
    assert isinstance(d, _native._ShardedCore)
    assert all(type(lock) is _native._ShardLock for lock in d._locks)
    h = d.handle()
    assert isinstance(h, _native._ShardedCore) and h._locks == d._locks


# ---------------------------------------------------------- same behaviour

OPS: list[tuple[str, Callable[[Any, Any], Any]]] = [
    ("getitem", lambda d, k: d[k]),
    ("get", lambda d, k: d.get(k)),
    ("get-default", lambda d, k: d.get(k, "dflt")),
    ("contains", lambda d, k: k in d),
    ("setitem", lambda d, k: d.__setitem__(k, 5)),
    ("delitem", lambda d, k: d.__delitem__(k)),
    ("pop", lambda d, k: d.pop(k)),
    ("pop-default", lambda d, k: d.pop(k, None)),
    ("increment", lambda d, k: d.increment(k)),
    ("increment-float", lambda d, k: d.increment(k, 0.5)),
    ("increment-big", lambda d, k: d.increment(k, 10**400)),
    ("increment-bool", lambda d, k: d.increment(k, True)),
    ("get_or_set", lambda d, k: d.get_or_set(k, 7)),
    ("setdefault", lambda d, k: d.setdefault(k, 7)),
    ("cas", lambda d, k: d.compare_and_set(k, 1, 2)),
    ("cas-missing", lambda d, k: d.compare_and_set(k, MISSING, 2)),
    ("cas-delete", lambda d, k: d.compare_and_set(k, 1, MISSING)),
    ("cas-missing-missing", lambda d, k: d.compare_and_set(k, MISSING, MISSING)),
]

KEYS: list[Any] = [
    "k",
    "",
    1,
    -1,
    0,
    True,
    False,
    1.0,
    -0.0,
    0.5,
    2**100,
    -(2**70),
    b"k",
    (1, "a"),
    frozenset({1}),
    None,
    [1],
    {"a": 1},
]

VALUES: list[Any] = [MISSING, 1, 1.5, "s", 2**80, float("inf"), None]


@pytest.mark.parametrize(("name", "op"), OPS, ids=[n for n, _ in OPS])
def test_every_operation_matches_the_reference(name: str, op: Callable[[Any, Any], Any]) -> None:
    for key in KEYS:
        for value in VALUES:
            results = []
            for mod in (PURE, sdmod):
                d = mod.ShardedDict(shards=3)
                d.update({"other": 1, 2: 2})
                stored = outcome(lambda: value is MISSING or d.__setitem__(key, value))
                results.append((stored, outcome(lambda: op(d, key)), outcome(d.snapshot)))
            assert results[0] == results[1], (name, key, value)


def test_unhashable_keys_raise_the_dict_error(make: Callable[..., Any]) -> None:
    d = make({"a": 1})
    for op in (
        lambda: d[[1]],
        lambda: d.get([1]),
        lambda: [1] in d,
        lambda: d.__setitem__([1], 1),
        lambda: d.__delitem__([1]),
        lambda: d.pop([1]),
        lambda: d.pop([1], None),
        lambda: d.increment([1]),
        lambda: d.get_or_set([1], 1),
        lambda: d.compare_and_set([1], MISSING, 1),
    ):
        with pytest.raises(TypeError, match=r"^unhashable type: 'list'$"):
            op()
    assert d.snapshot() == {"a": 1}


def test_bad_argument_lists_raise_the_reference_errors() -> None:
    calls: list[Callable[[Any], Any]] = [
        lambda d: d.get(),
        lambda d: d.get("a", 1, 2),
        lambda d: d.get(key="a"),
        lambda d: d.pop(),
        lambda d: d.pop("a", 1, 2),
        lambda d: d.increment(),
        lambda d: d.increment("a", delta=2),
        lambda d: d.increment("a", 1, 2),
        lambda d: d.get_or_set("a"),
        lambda d: d.get_or_set("a", default=3),
        lambda d: d.compare_and_set("a", 1),
        lambda d: d.compare_and_set("a", 1, 2, 3),
    ]
    for call in calls:
        got = [outcome(lambda mod=mod: call(mod.ShardedDict({"a": 1}))) for mod in (PURE, sdmod)]
        assert got[0] == got[1]


def test_int_float_bool_keys_are_one_key_like_dict(make: Callable[..., Any]) -> None:
    d = make()
    ref: dict[Any, Any] = {}
    for m in (d, ref):
        m[1] = "int"
        m[1.0] = "float"
        m[True] = "bool"
        m[0] = "zero"
        m[-0.0] = "negzero"
        m[2**64] = "big"
        m[float(2**64)] = "bigf"
    assert d.snapshot() == ref and len(d) == len(ref) == 3
    assert [type(k) for k in sorted(d, key=repr)] == [type(k) for k in sorted(ref, key=repr)]
    assert d[1.0] == d[True] == "bool" and d.pop(True) == "bool" and 1 not in d
    assert d.pop(False) == "negzero" and d.increment(0.0) == 1 and d.get(False) == 1
    nan = float("nan")
    d[nan] = 1
    other_nan = float("nan")
    assert nan in d and other_nan not in d and d.get(other_nan) is None


def test_increment_results_like_the_reference_types(make: Callable[..., Any]) -> None:
    d = make()
    assert d.increment("i") == 1 and type(d["i"]) is int
    assert d.increment("i", 2.5) == 3.5 and type(d["i"]) is float
    assert d.increment("b", 2**80) == 2**80 and d.increment("b", 2**80) == 2**81
    assert d.increment("n", -1) == -1
    d["s"] = "x"
    with pytest.raises(TypeError, match="can only concatenate str"):
        d.increment("s")
    assert d["s"] == "x"
    d["f"] = 1.0
    with pytest.raises(OverflowError):
        d.increment("f", 10**400)
    assert d["f"] == 1.0


class _Boom(Exception):
    pass


class HashRaises:
    def __hash__(self) -> int:
        raise _Boom("hash")


class EqRaises:
    """Collides with every other instance; ``==`` raises once armed (per thread:
    copies of a test running at once in other threads arm their own)."""

    _flag = threading.local()

    def __init__(self, n: int) -> None:
        self.n = n

    def __hash__(self) -> int:
        return 7

    def __eq__(self, other: object) -> bool:
        if getattr(EqRaises._flag, "armed", False):
            raise _Boom("eq")
        return isinstance(other, EqRaises) and other.n == self.n


ALL_OPS = [op for _, op in OPS]


def test_key_hash_raising_propagates_and_changes_nothing(make: Callable[..., Any]) -> None:
    d = make({"a": 1})
    for op in ALL_OPS:
        with pytest.raises(_Boom):
            op(d, HashRaises())
    assert d.snapshot() == {"a": 1}


def test_key_eq_raising_propagates_and_changes_nothing(make: Callable[..., Any]) -> None:
    d = make(shards=1)
    d[EqRaises(1)] = 1
    EqRaises._flag.armed = True
    try:
        for name, op in OPS:
            if name == "cas-missing-missing":
                continue  # stores nothing, but still looks the key up
            with pytest.raises(_Boom):
                op(d, EqRaises(2))
    finally:
        EqRaises._flag.armed = False
    assert list(d.values()) == [1] and not any(lock.locked() for lock in d._locks)


class ReentrantHash:
    """A key whose ``__hash__`` uses the map (it runs before any lock is taken)."""

    def __init__(self, d: Any, n: int) -> None:
        self.d = d
        self.n = n

    def __hash__(self) -> int:
        self.d.increment("hashes")
        self.d[f"seen{self.n}"] = self.d.get(f"seen{self.n}", 0)
        return self.n

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ReentrantHash) and other.n == self.n


def test_key_hash_reentering_the_map_does_not_deadlock(make: Callable[..., Any]) -> None:
    d = make(shards=1)  # one shard: every key shares the lock
    k = ReentrantHash(d, 3)

    def body() -> None:
        d[k] = 1
        assert d[k] == 1 and k in d and d.get(k) == 1
        d.increment(k)
        d.get_or_set(k, 0)
        assert d.compare_and_set(k, 2, 5)
        assert d.pop(k) == 5

    run_concurrently(body, timeout=10)
    assert d["hashes"] > 0 and not any(lock.locked() for lock in d._locks)


class ReadingEq:
    """Collides with every other instance; ``==`` reads the map (lock-free)."""

    def __init__(self, d: Any, n: int) -> None:
        self.d = d
        self.n = n

    def __hash__(self) -> int:
        return 11

    def __eq__(self, other: object) -> bool:
        self.d.get("x")
        _ = "x" in self.d
        return isinstance(other, ReadingEq) and other.n == self.n


def test_key_eq_reading_the_map_does_not_deadlock(make: Callable[..., Any]) -> None:
    d = make(shards=1)
    d["x"] = 0
    d[ReadingEq(d, 1)] = 1

    def body() -> None:
        k = ReadingEq(d, 2)
        d[k] = 2
        d.increment(k)
        assert d.compare_and_set(k, 3, 4)
        assert d.pop(k) == 4

    run_concurrently(body, timeout=10)
    assert len(d) == 2


class WritingEq:
    """Collides with an int key in its shard; ``==`` writes to that shard."""

    def __init__(self, d: Any) -> None:
        self.d = d

    def __hash__(self) -> int:
        return 5

    def __eq__(self, other: object) -> bool:
        self.d[5] = "from __eq__"  # same shard: its lock is held by the caller
        return False


@only_native
def test_native_lock_reentered_from_key_eq_raises_instead_of_deadlocking() -> None:
    d: Any = sdmod.ShardedDict(shards=1)
    d[WritingEq(d)] = 1
    with pytest.raises(RuntimeError, match="re-entered the same shard"):
        d[5] = 0  # the int store compares 5 with the wrapped WritingEq key under the lock
    assert not d._locks[0].locked()
    d[6] = 6
    assert d[6] == 6


# ------------------------------------------------------------- references


def _ops_for_leaks(d: Any, key: Any, val: Any) -> None:
    d[key] = val
    d[key]
    d.get(key)
    d.get(key, val)
    d.get("absent", val)
    _ = key in d
    d.get_or_set(key, val)
    d.compare_and_set(key, val, val)
    d.compare_and_set(key, MISSING, val)
    d.pop(key)
    d.pop(key, val)
    d.get_or_set(key, val)
    del d[key]
    d.increment(key)
    d.increment(key, 2.5)
    d.increment(key, 2**70)
    d.compare_and_set(key, MISSING, val)
    d.compare_and_set(key, val, MISSING)
    with contextlib.suppress(KeyError):
        d[key]
    with contextlib.suppress(KeyError):
        d.pop(key)
    with contextlib.suppress(KeyError):
        del d[key]


def test_no_reference_leaks(make: Callable[..., Any]) -> None:
    d = make()
    key = "".join(["leak", "key"])  # not interned, not immortal
    val = object()
    _ops_for_leaks(d, key, val)
    gc.collect()
    before = (sys.getrefcount(key), sys.getrefcount(val))
    tracemalloc.start()
    try:
        for _ in range(200):
            _ops_for_leaks(d, key, val)
        gc.collect()
        start, _peak = tracemalloc.get_traced_memory()
        for _ in range(2000):
            _ops_for_leaks(d, key, val)
        gc.collect()
        end, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (sys.getrefcount(key), sys.getrefcount(val)) == before
    assert end - start < 20_000


def test_replaced_and_removed_values_are_released(make: Callable[..., Any]) -> None:
    class V:
        pass

    d = make()
    ops: list[Callable[[Any], Any]] = [
        lambda v: d.__setitem__("k", 0),
        lambda v: d.__delitem__("k"),
        lambda v: d.pop("k"),
        lambda v: d.compare_and_set("k", v, 0),
        lambda v: d.compare_and_set("k", v, MISSING),
    ]
    for op in ops:
        v = V()
        d["k"] = v
        ref = weakref.ref(v)
        op(v)
        del v
        gc.collect()
        assert ref() is None
        d.pop("k", None)


def test_maps_and_handles_are_collected_in_cycles(impl: ModuleType) -> None:
    d = impl.ShardedDict()
    d["self"] = d
    h = d.handle()
    d["h"] = h
    ref = weakref.ref(d)
    del d, h
    gc.collect()
    assert ref() is None


# ---------------------------------------------- both sides share one lock


def test_native_and_python_compound_operations_exclude_each_other(
    impl: ModuleType, switch_interval: None
) -> None:
    """C fast paths (``increment``) and Python-level compound operations that
    hold the shard lock with ``with`` (read, then write later) on one key: no
    update may be lost.  With two separate locks every increment made while
    the Python step sleeps between its read and its write would be lost."""
    d = impl.ShardedDict(shards=1)
    d["k"] = 0
    shard = d._shards[0]
    lock = d._locks[0]
    n = 60
    done = threading.Event()
    counts = [0, 0]

    def python_side() -> None:
        try:
            for _ in range(n):
                with lock:  # what compute_if_absent / _update / popitem do
                    v = shard["k"]
                    time.sleep(0.0001)  # let the other threads run meanwhile
                    shard["k"] = v + 1
        finally:
            done.set()

    def native_side() -> None:
        c = 0
        while not done.is_set() or c < n:
            d.increment("k")
            c += 1
        counts[0] = c

    def public_python_ops() -> None:
        c = 0
        while not done.is_set() or c < n:
            d.compute("k", lambda v: v + 1)  # the pure-Python optimistic loop
            d.merge("k", 1, lambda a, b: a + b)
            d.compare_and_set(("t", c), MISSING, 0)  # a wrapped key: Python path
            c += 1
        counts[1] = c

    run_concurrently(python_side, native_side, public_python_ops, timeout=60)
    assert d["k"] == n + counts[0] + 2 * counts[1]


# ---------------------------------------------------------- subclasses


def test_subclass_missing_and_overrides_are_used(impl: ModuleType) -> None:
    class Defaulting(impl.ShardedDict):  # type: ignore[misc, name-defined]
        def __missing__(self, key: Any) -> Any:
            return f"missing {key}"

    class Upper(impl.ShardedDict):  # type: ignore[misc, name-defined]
        def __getitem__(self, key: Any) -> Any:
            return str(super().__getitem__(key)).upper()

        def get(self, key: Any, default: Any = None) -> Any:
            return "overridden"

    d = Defaulting({"a": 1})
    assert d["a"] == 1 and d["b"] == "missing b" and d.get("b") is None and "b" not in d
    u = Upper({"a": "x"})
    assert u["a"] == "X" and u.get("a") == "overridden"


def test_storage_replaced_by_other_locks_falls_back_to_python() -> None:
    """A map whose locks are not native (tests instrument them) still works."""
    d: Any = sdmod.ShardedDict(shards=1)
    d._locks = (threading.Lock(),)
    d["a"] = 1
    assert d.increment("a") == 2 and d.pop("a") == 2 and "a" not in d


# ------------------------------------------------------------- the lock


@only_native
def test_shard_lock_api() -> None:
    from conctools import _native  # type: ignore[attr-defined]

    lock = _native._ShardLock()
    assert not lock.locked() and lock.acquire() and lock.locked()
    assert not lock.acquire(False)
    with pytest.raises(RuntimeError, match="already held by this thread"):
        lock.acquire()
    lock.release()
    with pytest.raises(RuntimeError, match="release unlocked lock"):
        lock.release()
    with lock:
        got: list[bool] = []
        t = threading.Thread(target=lambda: got.append(lock.acquire(True, 0.02)))
        t.start()
        t.join()
        assert got == [False]
    assert lock.acquire(timeout=0.01)
    lock.release()
    with pytest.raises(ValueError):
        lock.acquire(False, 1)
    with pytest.raises(ValueError):
        lock.acquire(True, -2)
    with pytest.raises(TypeError):
        _native._ShardLock(1)


@only_native
@pytest.mark.timeout(30)
def test_shard_lock_timeouts_follow_the_library_rule() -> None:
    """0, None, -1, inf and huge values, NaN, bools and other negatives, as
    conctools._internal.timeouts.check_lock_args says."""
    from conctools import _native  # type: ignore[attr-defined]

    lock = _native._ShardLock()
    for forever in (None, -1, math.inf, 1e300, threading.TIMEOUT_MAX * 10):
        assert lock.acquire(timeout=forever) is True
        lock.release()
    assert lock.acquire(True, 0) is True
    assert lock.acquire(blocking=False) is False  # held by this thread: no self-deadlock error
    lock.release()
    for bad, exc in (
        (math.nan, ValueError),
        (-2, ValueError),
        (-0.5, ValueError),
        (True, TypeError),
        ("1", TypeError),
    ):
        with pytest.raises(exc):
            lock.acquire(timeout=bad)
        assert not lock.locked()  # a refused call takes nothing
    with pytest.raises(ValueError):
        lock.acquire(False, 0)

    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with lock:
            held.set()
            release.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    try:
        assert held.wait(10)
        t0 = time.monotonic()
        assert lock.acquire(timeout=0) is False
        assert lock.acquire(timeout=0.05) is False
        assert 0.04 <= time.monotonic() - t0 < 5
        threading.Timer(0.05, release.set).start()
        assert lock.acquire(timeout=math.inf) is True  # waits until the holder lets go
        lock.release()
    finally:
        release.set()
        t.join(10)


@only_native
def test_shard_lock_hands_over_between_threads() -> None:
    from conctools import _native  # type: ignore[attr-defined]

    lock = _native._ShardLock()
    box = [0]

    def body() -> None:
        for _ in range(2000):
            with lock:
                v = box[0]
                box[0] = v + 1

    run_concurrently(body, body, timeout=30)
    assert box[0] == 4000 and not lock.locked()


def _sorted_items(d: Any) -> Iterator[tuple[Any, Any]]:
    return iter(sorted(d.items(), key=repr))


def test_float_nan_and_inf_values(make: Callable[..., Any]) -> None:
    d = make()
    d["n"] = math.nan
    assert not d.compare_and_set("n", float("nan"), 1)  # nan != nan, not the same object
    assert d.compare_and_set("n", d["n"], 1)  # the same object: identity matches
    assert d.increment("i", math.inf) == math.inf
    assert list(_sorted_items(d)) == [("i", math.inf), ("n", 1)]


def test_docstrings_match_the_reference() -> None:
    import inspect

    for name in ("get", "pop", "increment", "get_or_set", "compare_and_set"):
        native_doc = getattr(sdmod.ShardedDict, name).__doc__
        pure_doc = getattr(PURE.ShardedDict, name).__doc__
        assert inspect.cleandoc(native_doc) == inspect.cleandoc(pure_doc), name
        assert getattr(sdmod.ShardedDict(), name).__doc__ == native_doc
