"""Fault injection over every public method of ShardedSet and its handle.

As for ShardedDict (see ``test_sharded_dict.py`` here): the main thread calls
one method in a loop while :func:`~conctools.testing.faults.inject_faults`
interrupts it at a random bytecode and a background thread writes other
elements; after every attempt a probe thread takes every shard lock
(``snapshot()``), the main thread's elements equal the model or the model
with the interrupted operation applied (bulk updates: each element old or
new), and every element is stored in the shard its hash selects.
"""

from __future__ import annotations

import copy
import pickle
import signal
from collections.abc import Callable
from typing import Any

import pytest

from conctools._internal.striping import PLAIN, HashedKey, unwrap
from conctools.sharded_set import ShardedSet
from conctools.testing.faults import FaultReport, inject_faults

pytestmark = [
    pytest.mark.skipif(
        not hasattr(signal, "setitimer"), reason="fault injection needs signal.setitimer"
    ),
    # A fault can land in a gc callback (hypothesis installs one once any of
    # its tests ran in the session); the interpreter reports it as
    # "Exception ignored" instead of raising it in the target.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

ATTEMPTS = 25
KINDS = ["set", "handle"]


class UE:
    """A user element (stored wrapped); instances collide in pairs."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n

    def __hash__(self) -> int:
        return self.n // 2

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UE) and other.n == self.n

    def __repr__(self) -> str:
        return f"UE({self.n})"


ELEMS: list[Any] = [*range(12), *(f"s{i}" for i in range(6)), *(UE(i) for i in range(6))]
Model = frozenset[Any]


def is_bg(x: Any) -> bool:
    return type(x) is tuple


def structure_ok(s: ShardedSet[Any]) -> None:
    n = s.shards
    for i, shard in enumerate(s._shards):
        for k, x in shard.copy().items():
            assert unwrap(k) is x, f"{k!r} stores {x!r}"
            assert hash(x) % n == i, f"{x!r} stored in shard {i}"
            assert (type(k) is HashedKey) == (type(x) not in PLAIN), f"{k!r} stored wrongly"


class Harness:
    def __init__(self, kind: str, initial: Any = ()) -> None:
        self.base: ShardedSet[Any] = ShardedSet(initial)
        self.s: Any = self.base if kind == "set" else self.base.handle()
        self.model: Model = frozenset(self.base.snapshot())
        self.possible: Callable[[Model], Any] | None = None

    def run(self, real: Callable[[Any], object], after: Callable[[Model], Model]) -> None:
        self.possible = lambda m: [m, after(m)]
        real(self.s)
        self.model = after(self.model)
        self.possible = None

    def mine(self) -> Model:
        return frozenset(x for x in self.base.snapshot() if not is_bg(x))

    def check(self) -> None:
        snap = self.mine()
        if self.possible is None:
            assert snap == self.model, f"{set(snap)} != model {set(self.model)}"
        else:
            assert snap in self.possible(self.model), f"{set(snap)} unexpected"
        structure_ok(self.base)
        self.model = snap
        self.possible = None

    def inject(self, target: Callable[[], object], **kw: Any) -> FaultReport:
        base = self.base

        def writer() -> None:
            h = base.handle()
            for i in range(20):
                h.add_if_absent(("bg", i))
                h.discard(("bg", i))
                h.add(("bg", i, "x"))

        report = inject_faults(
            target,
            attempts=ATTEMPTS,
            min_delivered=1,
            check=self.check,
            probe=base.snapshot,
            background=kw.pop("background", [writer]),
            seed=1,
            **kw,
        )
        print(f"\n{report}")
        assert report.delivered > 0
        return report


class each_old_or_new(list[Model]):
    """Every state where each element of ``xs`` is as before or as after."""

    def __init__(self, old: Model, new: Model, xs: Any) -> None:
        super().__init__()
        self.old, self.new, self.xs = old, new, set(xs)

    def __contains__(self, snap: object) -> bool:
        assert isinstance(snap, frozenset)
        untouched = self.old - self.xs
        return untouched <= snap and all(
            (x in snap) in ((x in self.old), (x in self.new)) for x in self.xs | set(snap)
        )


@pytest.mark.parametrize("kind", KINDS)
def test_add_discard_remove_add_if_absent(kind: str) -> None:
    h = Harness(kind)

    def target() -> None:
        for x in ELEMS:
            if x in h.model:
                if hash(x) % 2:
                    h.run(lambda s: s.discard(x), lambda m: m - {x})
                else:
                    h.run(lambda s: s.remove(x), lambda m: m - {x})
            elif hash(x) % 3:
                h.run(lambda s: s.add(x), lambda m: m | {x})
            else:
                h.run(lambda s: s.add_if_absent(x), lambda m: m | {x})

    h.inject(target)


@pytest.mark.parametrize("kind", KINDS)
def test_pop_and_clear(kind: str) -> None:
    h = Harness(kind, ELEMS)

    def target() -> None:
        if len(h.model) < 4:
            h.possible = lambda m: each_old_or_new(m, frozenset(ELEMS), ELEMS)
            h.s.update(ELEMS)
            h.model, h.possible = frozenset(ELEMS), None
        for _ in range(4):
            h.possible = lambda m: [m, *(m - {x} for x in m)]
            x = h.s.pop()
            h.model = h.model - {x}
            h.possible = None
        h.run(lambda s: s.clear(), lambda m: frozenset())
        h.possible = lambda m: each_old_or_new(m, frozenset(ELEMS), ELEMS)
        h.s.update(ELEMS)
        h.model, h.possible = frozenset(ELEMS), None

    # pop may take a background element: keep background writers away here
    h.inject(target, background=[])


def _writer(h: Harness) -> Callable[[], None]:
    base = h.base

    def writer() -> None:
        hd = base.handle()
        for i in range(20):
            hd.add_if_absent(("bg", i))
            hd.discard(("bg", i))

    return writer


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("op", ["update", "|=", "&=", "-=", "^=", "intersection_update"])
def test_bulk_updates(kind: str, op: str) -> None:
    h = Harness(kind, ELEMS[::2])
    a, b = frozenset(ELEMS[:10]), frozenset(ELEMS[8:])

    def target() -> None:
        for other in (a, b):
            new = {
                "update": h.model | other,
                "|=": h.model | other,
                "&=": h.model & other,
                "-=": h.model - other,
                "^=": h.model ^ other,
                "intersection_update": h.model & other,
            }[op]
            h.possible = lambda m, new=new: each_old_or_new(m, new, m | other)
            if op == "update":
                h.s.update(other)
            elif op == "|=":
                h.s |= other
            elif op == "&=":
                h.s &= other
            elif op == "-=":
                h.s -= other
            elif op == "^=":
                h.s ^= other
            else:
                h.s.intersection_update(other)
            h.model, h.possible = new, None
            if not h.model:
                refill = frozenset(ELEMS[::2])
                h.possible = lambda m, refill=refill: each_old_or_new(m, refill, refill)
                h.s.update(refill)
                h.model, h.possible = refill, None

    def check() -> None:
        snap = h.mine()
        if h.possible is not None:
            assert snap in h.possible(h.model), f"{set(snap)} unexpected"
        else:
            assert snap == h.model
        structure_ok(h.base)
        h.model, h.possible = snap, None

    h.check = check  # type: ignore[method-assign]
    # &= and intersection_update also drop background elements: no writers
    h.inject(target, background=[] if op in ("&=", "intersection_update") else [_writer(h)])


READS: dict[str, Callable[[Any], object]] = {
    "contains": lambda s: [x in s for x in ELEMS],
    "len_bool_iter": lambda s: (len(s), bool(s), list(s)),
    "snapshot": lambda s: s.snapshot(),
    "algebra": lambda s: (s | {1}, s & {1}, s - {1}, s ^ {1}, {1} | s, {1} - s),
    "methods": lambda s: (s.union([1]), s.intersection([1]), s.difference([1])),
    "compare": lambda s: (s == set(ELEMS), s <= set(ELEMS), s.issubset(ELEMS), s.isdisjoint([])),
    "repr_copy": lambda s: (repr(s), s.copy(), copy.copy(s.set if hasattr(s, "set") else s)),
    "pickle_handle": lambda s: (
        pickle.loads(pickle.dumps(s.set if hasattr(s, "set") else s)),
        s.handle(),
    ),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", sorted(READS))
def test_reads(kind: str, name: str) -> None:
    h = Harness(kind, ELEMS)
    op = READS[name]

    def target() -> None:
        for _ in range(3):
            h.run(op, lambda m: m)

    h.inject(target)
