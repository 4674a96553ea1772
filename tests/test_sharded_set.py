"""ShardedSet: set semantics, atomic add_if_absent, handles, snapshots, pickling."""

from __future__ import annotations

import copy
import pickle
import threading
import time
from collections.abc import MutableSet
from collections.abc import Set as AbstractSet
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import conctools
from conctools._internal.striping import HashedKey
from conctools.sharded_set import ShardedSet, ShardedSetHandle
from conctools.testing import assert_linearizable, run_concurrently, run_in_threads
from conctools.testing.strategies import scenarios

KINDS = ["set", "handle"]


def as_set(s: ShardedSet[Any], kind: str) -> Any:
    return s if kind == "set" else s.handle()


def any_lock_held(s: ShardedSet[Any]) -> bool:
    return any(lock.locked() for lock in s._locks)


class Colliding:
    """Equal by name, every instance hashes to 7; counts calls."""

    hashes = 0
    eqs = 0

    def __init__(self, name: str) -> None:
        self.name = name

    def __hash__(self) -> int:
        Colliding.hashes += 1
        return 7

    def __eq__(self, other: object) -> bool:
        Colliding.eqs += 1
        return isinstance(other, Colliding) and other.name == self.name

    def __repr__(self) -> str:
        return f"Colliding({self.name!r})"


# ------------------------------------------------------------ basics


def test_exported_and_a_mutable_set() -> None:
    assert conctools.ShardedSet is ShardedSet and conctools.ShardedSetHandle is ShardedSetHandle
    s: ShardedSet[int] = ShardedSet()
    assert isinstance(s, MutableSet) and isinstance(s.handle(), MutableSet)
    assert ShardedSet[int] is not None  # generic at runtime too
    assert ShardedSet(shards=5).shards == 5 and ShardedSet(shards=4).shards == 5
    with pytest.raises(TypeError):
        ShardedSet(shards="4")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ShardedSet(shards=0)
    with pytest.raises(TypeError):
        ShardedSet(5)  # type: ignore[call-overload]


@pytest.mark.parametrize("kind", KINDS)
def test_basic_set_protocol(kind: str) -> None:
    base: ShardedSet[Any] = ShardedSet([1, 2, "a", (1, 2), Colliding("x")])
    s = as_set(base, kind)
    assert len(s) == 5 and bool(s) and 1 in s and (1, 2) in s and Colliding("x") in s
    assert 3 not in s and Colliding("y") not in s
    s.add(3)
    s.add(3)
    assert len(base) == 6
    s.discard(3)
    s.discard(3)
    assert 3 not in base
    s.remove(1)
    with pytest.raises(KeyError) as ei:
        s.remove(1)
    assert ei.value.args == (1,)
    assert sorted(map(repr, s)) == sorted(map(repr, [2, "a", (1, 2), Colliding("x")]))
    popped = {s.pop() for _ in range(4)}
    assert len(popped) == 4 and not base and not s
    with pytest.raises(KeyError, match="pop from an empty set"):
        s.pop()
    s.update([1, 2], {3})
    s.clear()
    assert len(base) == 0


@pytest.mark.parametrize("kind", KINDS)
def test_unhashable_elements_raise_like_set(kind: str) -> None:
    base: ShardedSet[Any] = ShardedSet([frozenset({1})])
    s = as_set(base, kind)
    for op in (s.add, s.add_if_absent, s.discard, s.remove, s.__contains__):
        with pytest.raises(TypeError):
            op([1])
    # a set argument is looked up as the equal frozenset, as set does
    assert {1} in s and {2} not in s
    s.discard({2})
    s.remove({1})
    assert not base
    with pytest.raises(KeyError):
        s.remove({1})
    with pytest.raises(TypeError):
        s.add({1})  # adding needs a hashable element


@pytest.mark.parametrize("kind", KINDS)
def test_add_if_absent(kind: str) -> None:
    base: ShardedSet[Any] = ShardedSet()
    s = as_set(base, kind)
    for x in (1, "a", 2.5, (1, 2), Colliding("c"), None):
        assert s.add_if_absent(x) is True
        assert s.add_if_absent(x) is False
    assert len(base) == 6
    first = Colliding("k")
    s.add(first)
    s.add(Colliding("k"))  # an equal element does not replace the stored one
    assert next(x for x in base if x == first) is first


def test_hash_is_computed_outside_the_lock_and_once() -> None:
    s: ShardedSet[Any] = ShardedSet([Colliding("old")], shards=1)
    seen: list[bool] = []

    class Spy(Colliding):
        def __hash__(self) -> int:
            seen.append(any_lock_held(s))
            return 7

    for op in (s.add, s.add_if_absent, s.__contains__, s.discard, s.add, s.remove):
        op(Spy("n"))
    assert seen and not any(seen)
    Colliding.hashes = 0
    s.add_if_absent(Colliding("fresh"))
    assert Colliding.hashes == 1


@pytest.mark.parametrize("kind", KINDS)
def test_set_algebra_returns_plain_sets(kind: str) -> None:
    base: ShardedSet[int] = ShardedSet([1, 2, 3])
    s = as_set(base, kind)
    other = ShardedSet([3, 4])
    cases = {
        "or": (s | {4}, {1, 2, 3, 4}),
        "ror": ({4} | s, {1, 2, 3, 4}),
        "and": (s & {2, 9}, {2}),
        "rand": (frozenset({2, 9}) & s, {2}),
        "sub": (s - {1}, {2, 3}),
        "rsub": ({1, 7} - s, {7}),
        "xor": (s ^ {3, 4}, {1, 2, 4}),
        "rxor": ({3, 4} ^ s, {1, 2, 4}),
        "with_sharded": (s | other, {1, 2, 3, 4}),
        "union": (s.union([4], (5,)), {1, 2, 3, 4, 5}),
        "intersection": (s.intersection([1, 2], {2, 3}), {2}),
        "difference": (s.difference([1], other), {2}),
        "symmetric_difference": (s.symmetric_difference([3, 5]), {1, 2, 5}),
    }
    for name, (got, want) in cases.items():
        assert type(got) is set and got == want, name
    assert s == {1, 2, 3} and {1, 2, 3} == s and s != {1} and s == ShardedSet([3, 2, 1])
    assert s <= {1, 2, 3} and s < {1, 2, 3, 4} and s >= {1} and s > {1} and not s < {1, 2, 3}
    assert s.issubset([1, 2, 3, 4]) and s.issuperset([1]) and s.isdisjoint([9])
    assert s.__eq__([1, 2, 3]) is NotImplemented and s != [1, 2, 3]
    for bad in ([1], "abc", 5):
        with pytest.raises(TypeError):
            s | bad  # type: ignore[operator]
        with pytest.raises(TypeError):
            assert s <= bad  # type: ignore[operator]
    with pytest.raises(TypeError):
        hash(s)
    assert base == {1, 2, 3}  # unchanged by all of the above


@pytest.mark.parametrize("kind", KINDS)
def test_in_place_updates(kind: str) -> None:
    base: ShardedSet[int] = ShardedSet([1, 2, 3])
    s = as_set(base, kind)
    same = s
    s |= {4}
    s &= {1, 2, 4, 9}
    s -= {1}
    s ^= {4, 5}
    assert s is same and base == {2, 5}
    with pytest.raises(TypeError):
        s |= [1]  # type: ignore[misc]
    base.update([7], [8])
    base.intersection_update([2, 7, 8], {7, 8, 2, 5})
    base.difference_update([8])
    base.symmetric_difference_update([2, 9])
    assert base == {7, 9}
    base.symmetric_difference_update(base)
    assert base == set()
    base.update([1])
    base.difference_update(base)
    assert not base


class Tagged(ShardedSet[int]):
    """A subclass with its own state and a constructor without arguments."""

    def __init__(self) -> None:
        super().__init__(shards=3)
        self.tag = "t"


def test_repr_copy_pickle_and_subclasses() -> None:
    assert repr(ShardedSet()) == "ShardedSet()" and repr(ShardedSet([1])) == "ShardedSet({1})"
    t = Tagged()
    t.add(1)
    plain = ShardedSet([1, "a", (2, 3), Colliding("p")], shards=7)
    for s in (plain, t):
        clones = [copy.copy(s), copy.deepcopy(s), s.copy()]
        clones += [pickle.loads(pickle.dumps(s, p)) for p in range(pickle.HIGHEST_PROTOCOL + 1)]
        for c in clones:
            assert c == s and c is not s and c.shards == s.shards
            c.add(99)
            assert 99 not in s
        for c in clones[:2] + clones[3:]:
            assert type(c) is type(s) and getattr(c, "tag", None) == getattr(s, "tag", None)
        assert type(s.copy()) is ShardedSet
    assert repr(t) == "Tagged({1})"
    h = plain.handle()
    for fn in (copy.copy, copy.deepcopy, pickle.dumps):
        with pytest.raises(TypeError, match=r"bound to a thread.*\.set"):
            fn(h)


def test_reversed_is_not_supported() -> None:
    with pytest.raises(TypeError):
        reversed(ShardedSet([1]))  # type: ignore[call-overload]


def test_handle_is_bound_to_its_set() -> None:
    s: ShardedSet[str] = ShardedSet()
    h = s.handle()
    assert isinstance(h, ShardedSetHandle) and h.set is s and h.handle().set is s
    assert h.add_if_absent("a") and "a" in s and "a" in h
    assert repr(h) == "<ShardedSetHandle of ShardedSet({'a'})>"
    assert set(dir(ShardedSet)) - set(dir(ShardedSetHandle)) <= {"__weakref__", "_init_storage"}


def test_stored_forms() -> None:
    s: ShardedSet[Any] = ShardedSet([1, "a", (1,), Colliding("c")], shards=1)
    kinds = sorted(type(k).__name__ for k in s._shards[0])
    assert kinds == ["HashedKey", "HashedKey", "int", "str"]
    assert all(isinstance(k, HashedKey) or k is v for k, v in s._shards[0].items())


# --------------------------------------------------- model-based testing

ELEMS = st.sampled_from([0, 1, 2, "a", (1,), 2.5])


class ShardedSetMachine(RuleBasedStateMachine):
    kind = "set"

    def __init__(self) -> None:
        super().__init__()
        self.base: ShardedSet[Any] = ShardedSet(shards=3)
        self.s = as_set(self.base, self.kind)
        self.model: set[Any] = set()

    @rule(x=ELEMS)
    def add(self, x: Any) -> None:
        self.s.add(x)
        self.model.add(x)

    @rule(x=ELEMS)
    def add_if_absent(self, x: Any) -> None:
        assert self.s.add_if_absent(x) == (x not in self.model)
        self.model.add(x)

    @rule(x=ELEMS)
    def discard(self, x: Any) -> None:
        self.s.discard(x)
        self.model.discard(x)

    @rule(x=ELEMS)
    def remove(self, x: Any) -> None:
        if x in self.model:
            self.s.remove(x)
            self.model.remove(x)
        else:
            with pytest.raises(KeyError):
                self.s.remove(x)

    @rule()
    def pop(self) -> None:
        if self.model:
            self.model.remove(self.s.pop())
        else:
            with pytest.raises(KeyError):
                self.s.pop()

    @rule(xs=st.lists(ELEMS, max_size=4), op=st.sampled_from(["|=", "&=", "-=", "^="]))
    def inplace(self, xs: list[Any], op: str) -> None:
        other = set(xs)
        if op == "|=":
            self.s |= other
            self.model |= other
        elif op == "&=":
            self.s &= other
            self.model &= other
        elif op == "-=":
            self.s -= other
            self.model -= other
        else:
            self.s ^= other
            self.model ^= other

    @rule()
    def clear(self) -> None:
        self.s.clear()
        self.model.clear()

    @rule(xs=st.lists(ELEMS, max_size=4))
    def algebra(self, xs: list[Any]) -> None:
        o = set(xs)
        assert self.s | o == self.model | o and self.s & o == self.model & o
        assert self.s - o == self.model - o and self.s ^ o == self.model ^ o
        assert (self.s <= o) == (self.model <= o) and (self.s < o) == (self.model < o)

    @invariant()
    def matches(self) -> None:
        assert self.base.snapshot() == self.model and len(self.s) == len(self.model)
        assert set(self.s) == self.model and all(x in self.s for x in self.model)
        assert not any_lock_held(self.base)


class HandleMachine(ShardedSetMachine):
    kind = "handle"


TestShardedSetModel = ShardedSetMachine.TestCase
TestHandleModel = HandleMachine.TestCase
TestShardedSetModel.settings = settings(max_examples=30, stateful_step_count=30, deadline=None)
TestHandleModel.settings = settings(max_examples=15, stateful_step_count=30, deadline=None)


# ---------------------------------------------------- linearizability


class SetSpec:
    """Sequential reference for the linearizability check."""

    def __init__(self) -> None:
        self.s: set[Any] = set()

    def add(self, x: Any) -> None:
        self.s.add(x)

    def add_if_absent(self, x: Any) -> bool:
        if x in self.s:
            return False
        self.s.add(x)
        return True

    def discard(self, x: Any) -> None:
        self.s.discard(x)

    def contains(self, x: Any) -> bool:
        return x in self.s

    def remove_ok(self, x: Any) -> bool:
        try:
            self.s.remove(x)
        except KeyError:
            return False
        return True


class SetUnderTest(ShardedSet[Any]):
    """Exposes ``in`` and ``remove`` as plain calls for the recorder."""

    def contains(self, x: Any) -> bool:
        return x in self

    def remove_ok(self, x: Any) -> bool:
        try:
            self.remove(x)
        except KeyError:
            return False
        return True


LX = st.integers(0, 2)
VOCAB = {
    "add": st.tuples(LX),
    "add_if_absent": st.tuples(LX),
    "discard": st.tuples(LX),
    "contains": st.tuples(LX),
    "remove_ok": st.tuples(LX),
}


@pytest.mark.timeout(60)
@settings(max_examples=25, deadline=None)
@given(scenarios(VOCAB, threads=(2, 3), ops_per_thread=(1, 4)))
def test_linearizable_per_element(scenario: Any) -> None:
    assert_linearizable(
        scenario,
        lambda: SetUnderTest(shards=2),
        SetSpec,
        partition=lambda op: op.args[0],
        trials=4,
    )


class _CheckThenAct(SetUnderTest):
    """Broken on purpose: add_if_absent as the racy check-then-act idiom."""

    def add_if_absent(self, x: Any) -> bool:
        if x in self:
            return False
        time.sleep(0.0005)  # widen the race window
        self.add(x)
        return True


def test_linearizability_check_can_fail() -> None:
    from conctools.testing import Call, Scenario

    sc = Scenario(
        init=(),
        threads=((Call("add_if_absent", (0,)),), (Call("add_if_absent", (0,)),)),
        post=(Call("contains", (0,)),),
    )
    with pytest.raises(AssertionError, match="linearizability"):
        for _ in range(20):
            assert_linearizable(sc, _CheckThenAct, SetSpec, trials=10, preempt=0.5)


# --------------------------------------------------------- concurrency


def _dedup_winners(make: Any, threads: int, items: int, handles: bool = True) -> list[int]:
    s = make()
    wins = [0] * items

    def work(i: int) -> None:
        h = s.handle() if handles and i % 2 else s
        for x in range(items):
            if h.add_if_absent(x):
                wins[x] += 1

    run_in_threads(work, threads, timeout=30)
    return wins


def test_add_if_absent_true_for_exactly_one_racer(switch_interval: None) -> None:
    wins = _dedup_winners(ShardedSet, 4, 3000)
    assert wins == [1] * 3000


def test_add_if_absent_race_check_can_fail(switch_interval: None) -> None:
    wins = _dedup_winners(lambda: _CheckThenAct(), 4, 200, handles=False)
    assert any(w > 1 for w in wins)


def test_iteration_while_mutating_never_raises(switch_interval: None) -> None:
    s: ShardedSet[int] = ShardedSet(range(200))
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            s.add(1000 + i % 300)
            s.discard(1000 + (i * 7) % 300)
            i += 1

    def reader() -> None:
        try:
            for _ in range(200):
                seen = list(s)
                assert len(seen) == len(set(seen))  # each element at most once
                assert set(range(200)) <= set(seen)  # untouched elements always seen
        finally:
            stop.set()

    run_concurrently(writer, reader, timeout=30)


def test_snapshot_is_atomic(switch_interval: None) -> None:
    # A writer moves a token between two shards: {0} -> {1} -> {0}...; a
    # snapshot must always see exactly one token.
    s: ShardedSet[int] = ShardedSet([0], shards=2)
    stop = threading.Event()

    def mover() -> None:
        while not stop.is_set():
            for a, b in ((0, 1), (1, 0)):
                with s._locks[0], s._locks[1]:  # a two-shard move, atomic for snapshot
                    s._shards[a % 2].pop(a, None)
                    s._shards[b % 2][b] = b

    def reader() -> None:
        try:
            for _ in range(500):
                assert len(s.snapshot() & {0, 1}) == 1
        finally:
            stop.set()

    run_concurrently(mover, reader, timeout=30)


def test_clear_and_pop_are_atomic(switch_interval: None) -> None:
    s: ShardedSet[int] = ShardedSet()
    n = 4000
    popped: list[int] = []

    def producer() -> None:
        for i in range(n):
            s.add(i)

    def consumer() -> None:
        while len(popped) < n:
            try:
                popped.append(s.pop())
            except KeyError:
                time.sleep(0)

    run_concurrently(producer, consumer, timeout=30)
    assert sorted(popped) == list(range(n)) and not s


def test_algebra_with_a_concurrently_mutated_set_is_a_snapshot(switch_interval: None) -> None:
    s: ShardedSet[int] = ShardedSet([0])
    stop = threading.Event()

    def flipper() -> None:
        while not stop.is_set():
            with s._locks[0], s._locks[1 % s.shards]:
                s._shards[0].clear()
                s._shards[1 % s.shards][1] = 1
            with s._locks[0], s._locks[1 % s.shards]:
                s._shards[1 % s.shards].clear()
                s._shards[0][0] = 0

    def reader() -> None:
        try:
            for _ in range(300):
                u = s | set()
                assert u in ({0}, {1}), u
        finally:
            stop.set()

    run_concurrently(flipper, reader, timeout=30)


def test_sets_compare_with_abc_sets() -> None:
    class Fixed(AbstractSet[int]):
        def __init__(self, xs: set[int]) -> None:
            self.xs = xs

        def __contains__(self, x: object) -> bool:
            return x in self.xs

        def __iter__(self) -> Any:
            return iter(self.xs)

        def __len__(self) -> int:
            return len(self.xs)

    s = ShardedSet([1, 2])
    assert s == Fixed({1, 2}) and s & Fixed({2}) == {2} and s <= Fixed({1, 2, 3})
