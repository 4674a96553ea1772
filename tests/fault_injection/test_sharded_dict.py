"""Fault injection over every public method of ShardedDict and its handle.

Each test calls one method in a loop in the main thread while
:func:`~conctools.testing.faults.inject_faults` interrupts it at a random
bytecode; background threads keep writing other keys of the same map.  After
every attempt:

* the probe (another thread) takes every shard lock (``snapshot()``): a lock
  left held makes it hang;
* the map's contents restricted to the main thread's keys equal the model, or
  the model with the interrupted operation applied (operations are atomic:
  all or nothing; ``update`` may be any prefix of its pairs);
* every stored key is in the shard its hash selects, wrapped exactly when its
  type is not a plain builtin, no reservation or wait-for edge is left
  registered.

The number of faults delivered is printed (``pytest -s``).
"""

from __future__ import annotations

import copy
import itertools
import pickle
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import conctools.sharded_dict as sdmod
from conctools._internal.striping import PLAIN, HashedKey, unwrap
from conctools.sharded_dict import ShardedDict
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
KINDS = ["map", "handle"]


class UK:
    """A user key (stored wrapped); instances collide in pairs (forces ``__eq__``)."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n

    def __hash__(self) -> int:
        return self.n // 2

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UK) and other.n == self.n

    def __repr__(self) -> str:
        return f"UK({self.n})"


KEYS: list[Any] = [*range(12), *(f"s{i}" for i in range(6)), *(UK(i) for i in range(6))]
Model = dict[Any, Any]


def is_bg(k: Any) -> bool:
    return type(k) is tuple


def structure_ok(d: ShardedDict[Any, Any], *, loads_allowed: bool = False) -> None:
    n = d.shards
    for i, shard in enumerate(d._shards):
        for k in shard.copy():
            user = unwrap(k)
            assert hash(user) % n == i, f"{user!r} stored in shard {i}"
            assert (type(k) is HashedKey) == (type(user) not in PLAIN), f"{k!r} stored wrongly"
    if not loads_allowed:
        # No load is in flight: nothing registered may still be live.  (An
        # interrupt inside the loader's clean-up can leave a *finished* entry
        # registered: it is never waited on and the next caller drops it.)
        live = [r for b in d._loading for rs in b.values() for r in rs if not r.finished()]
        assert not live, f"live reservations left registered: {live}"
        for i, b in enumerate(d._loading):
            if b:
                r = next(iter(b.values()))[0]
                with d._locks[i]:  # what the next compute_if_absent does first
                    assert sdmod._find_reservation(b, r.key, r.hash) is None
                assert not b, "a finished reservation was not dropped"
    main = threading.main_thread().ident
    assert main not in sdmod._waiting, "the main thread's wait-for edge was left registered"


class Harness:
    """The map, its model, and the operation in flight."""

    def __init__(self, kind: str, initial: Model | None = None) -> None:
        self.base: ShardedDict[Any, Any] = ShardedDict(initial if initial is not None else {})
        self.d: Any = self.base if kind == "map" else self.base.handle()
        self.model: Model = dict(self.base.snapshot())
        self.possible: Callable[[Model], list[Model]] | None = None
        self.values = itertools.count(1000)

    def run(self, real: Callable[[Any], object], after: Callable[[Model], Model]) -> None:
        """Apply a deterministic operation: the map must end as ``model`` or ``after(model)``."""
        self.possible = lambda m: [m, after(m)]
        real(self.d)
        self.model = after(self.model)
        self.possible = None

    def run_any(
        self, real: Callable[[Any], Any], after: Callable[[Model, Any], Model], possible: Any
    ) -> None:
        """An operation whose effect depends on its result (``popitem``)."""
        self.possible = possible
        result = real(self.d)
        self.model = after(self.model, result)
        self.possible = None

    def run_update(self, pairs: list[tuple[Any, Any]]) -> None:
        """``update`` is atomic per pair only: any prefix of ``pairs`` may be applied."""
        self.possible = lambda m: prefixes(m, pairs)  # pairs are applied in order
        self.d.update(pairs)
        self.model = prefixes(self.model, pairs)[-1]
        self.possible = None

    def mine(self) -> Model:
        return {k: v for k, v in self.base.snapshot().items() if not is_bg(k)}

    def check(self) -> None:
        snap = self.mine()
        if self.possible is None:
            assert snap == self.model, f"{short(snap)} != model {short(self.model)}"
        else:
            options = self.possible(self.model)
            assert snap in options, f"{short(snap)} is none of {short(options)}"
        structure_ok(self.base)
        self.model = snap
        self.possible = None

    def background(self) -> list[Callable[[], object]]:
        base = self.base

        def writer() -> None:
            h = base.handle()
            for i in range(20):
                h.increment(("bg", i))
                h[("bg", i, "x")] = i
                h.pop(("bg", i, "x"), None)

        return [writer]

    def inject(self, target: Callable[[], object], **kw: Any) -> FaultReport:
        base = self.base
        report = inject_faults(
            target,
            attempts=ATTEMPTS,
            min_delivered=1,
            check=self.check,
            probe=base.snapshot,
            background=kw.pop("background", self.background()),
            seed=kw.pop("seed", 1),
            **kw,
        )
        print(f"\n{report}")
        assert report.delivered > 0
        return report


def short(x: object) -> str:
    r = repr(x)
    return r if len(r) < 600 else r[:600] + "..."


def with_key(m: Model, k: Any, v: Any) -> Model:
    out = dict(m)
    out[k] = v
    return out


def without(m: Model, k: Any) -> Model:
    out = dict(m)
    out.pop(k, None)
    return out


class per_key(list[Model]):
    """Every state where each key of ``pairs`` has its old or its new value."""

    def __init__(self, m: Model, pairs: list[tuple[Any, Any]]) -> None:
        super().__init__()
        self.old, self.new = m, dict(pairs)

    def __contains__(self, snap: object) -> bool:
        assert isinstance(snap, dict)
        keys = set(self.old) | set(self.new)
        return set(snap) <= keys and all(
            (k in snap and snap[k] == self.new[k])
            or (k in snap and k in self.old and snap[k] == self.old[k])
            or (k not in snap and k not in self.old and k not in self.new)
            for k in keys
        )

    def __repr__(self) -> str:
        return f"per_key(old={self.old}, new={self.new})"


def prefixes(m: Model, pairs: list[tuple[Any, Any]]) -> list[Model]:
    out = [dict(m)]
    cur = dict(m)
    for k, v in pairs:
        cur = with_key(cur, k, v)
        out.append(dict(cur))
    return out


# ---------------------------------------------------------------- writes


@pytest.mark.parametrize("kind", KINDS)
def test_setitem(kind: str) -> None:
    h = Harness(kind)

    def target() -> None:
        for k in KEYS:
            v = next(h.values)
            h.run(lambda d: d.__setitem__(k, v), lambda m: with_key(m, k, v))

    h.inject(target)


@pytest.mark.parametrize("kind", KINDS)
def test_delitem_pop_and_pop_default(kind: str) -> None:
    h = Harness(kind, dict.fromkeys(KEYS, 0))
    ops = itertools.cycle(["del", "pop", "popd"])

    def target() -> None:
        for k in KEYS:
            if k in h.model:
                op = next(ops)
                if op == "del":
                    h.run(lambda d: d.__delitem__(k), lambda m: without(m, k))
                elif op == "pop":
                    h.run(lambda d: d.pop(k), lambda m: without(m, k))
                else:
                    h.run(lambda d: d.pop(k, None), lambda m: without(m, k))
            else:
                h.run(lambda d: d.__setitem__(k, 1), lambda m: with_key(m, k, 1))

    h.inject(target)


@pytest.mark.parametrize("kind", KINDS)
def test_popitem(kind: str) -> None:
    h = Harness(kind, dict.fromkeys(KEYS, 0))

    def some_item_gone(m: Model) -> list[Model]:
        return [m] + [without(m, k) for k in m]

    def target() -> None:
        for _ in range(6):
            if len(h.model) == 0:
                h.run_update([(k, 0) for k in KEYS])
            h.run_any(lambda d: d.popitem(), lambda m, kv: without(m, kv[0]), some_item_gone)

    # popitem may take a background key: keep background writers away here
    h.inject(target, background=[])


@pytest.mark.parametrize("kind", KINDS)
def test_clear(kind: str) -> None:
    h = Harness(kind, dict.fromkeys(KEYS, 0))

    def target() -> None:
        h.run(lambda d: d.clear(), lambda m: {})
        h.run_update([(k, 1) for k in KEYS])

    def check() -> None:
        # clear also removes the background keys: compare only ours (any
        # prefix of the refill is a legal state while it is interrupted).
        snap = h.mine()
        legal = ({}, *prefixes({}, [(k, 1) for k in KEYS]), dict.fromkeys(KEYS, 0))
        assert snap in legal, short(snap)
        structure_ok(h.base)
        h.model, h.possible = snap, None

    h.check = check  # type: ignore[method-assign]
    h.inject(target)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("how", ["mapping", "pairs", "kwargs", "ior", "sharded"])
def test_update(kind: str, how: str) -> None:
    h = Harness(kind)

    def target() -> None:
        v = next(h.values)
        if how == "kwargs":
            pairs: list[tuple[Any, Any]] = [(f"s{i}", v + i) for i in range(6)]
        else:
            pairs = [(k, v + i) for i, k in enumerate(KEYS)]
        # From a ShardedDict the pairs are applied in shard order: any subset.
        h.possible = (
            (lambda m: per_key(m, pairs)) if how == "sharded" else (lambda m: prefixes(m, pairs))
        )
        if how == "mapping":
            h.d.update(dict(pairs))
        elif how == "pairs":
            h.d.update(pairs)
        elif how == "kwargs":
            h.d.update(**dict(pairs))
        elif how == "ior":
            h.d |= dict(pairs)
        else:
            h.d.update(ShardedDict(pairs))
        h.model = prefixes(h.model, pairs)[-1]
        h.possible = None

    h.inject(target)


# ------------------------------------------------------- compound, atomic


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", ["setdefault", "get_or_set"])
def test_setdefault_get_or_set(kind: str, method: str) -> None:
    h = Harness(kind)

    def target() -> None:
        for k in KEYS:
            if k in h.model:
                h.run(lambda d: d.pop(k), lambda m: without(m, k))
            v = next(h.values)
            h.run(lambda d: getattr(d, method)(k, v), lambda m: m if k in m else with_key(m, k, v))

    h.inject(target)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("delta", [1, 2.5, "str"])
def test_increment(kind: str, delta: Any) -> None:
    # int/float deltas on int/str keys: the locked fast path; user keys and
    # non-numeric values: the optimistic compute path.
    zero: Any = "" if delta == "str" else 0
    h = Harness(kind, dict.fromkeys(KEYS, zero))

    def target() -> None:
        for k in KEYS:
            h.run(lambda d: d.increment(k, delta), lambda m: with_key(m, k, m.get(k, 0) + delta))

    h.inject(target)


@pytest.mark.parametrize("kind", KINDS)
def test_compute_merge_compare_and_set(kind: str) -> None:
    h = Harness(kind, dict.fromkeys(KEYS, 0))
    MISSING = sdmod.MISSING

    def target() -> None:
        for k in KEYS:
            cur = h.model.get(k, MISSING)
            h.run(
                lambda d: d.compute(k, lambda v: 1 if v is MISSING else v + 1),
                lambda m: with_key(m, k, 1 if k not in m else m[k] + 1),
            )
            h.run(
                lambda d: d.merge(k, 10, lambda a, b: a + b),
                lambda m: with_key(m, k, m[k] + 10 if k in m else 10),
            )
            h.run(lambda d: d.compare_and_set(k, cur, 5), lambda m: m)  # stale expected
            now = h.model[k]
            h.run(lambda d: d.compare_and_set(k, now, 7), lambda m: with_key(m, k, 7))
            h.run(lambda d: d.compute(k, lambda v: MISSING), lambda m: without(m, k))
            h.run(lambda d: d.compare_and_set(k, MISSING, 3), lambda m: with_key(m, k, 3))

    h.inject(target)


def _value(k: Any) -> str:
    return f"v{k!r}"


@pytest.mark.parametrize("kind", KINDS)
def test_compute_if_absent_with_waiters(kind: str) -> None:
    # The main thread drops and reloads keys while background threads ask
    # for the same keys (so they wait for the main thread's loads, and the
    # main thread waits for theirs).  A reservation left incomplete would hang
    # a background thread (the run fails when it cannot stop them).
    h = Harness(kind)
    keys = KEYS[:10]

    def factory(k: Any) -> str:
        for _ in range(3):
            time.sleep(0)  # a few calls: the fault often lands here
        return _value(k)

    def target() -> None:
        for k in keys:
            h.d.pop(k, None)
            assert h.d.compute_if_absent(k, factory, timeout=10) == _value(k)

    def asker() -> None:
        hd = h.base.handle()
        for k in keys:
            assert hd.compute_if_absent(k, factory, timeout=10) == _value(k)

    def check() -> None:
        snap = h.mine()
        assert all(v == _value(k) for k, v in snap.items()) and set(snap) <= set(keys), snap
        structure_ok(h.base, loads_allowed=True)  # background loads may be in flight
        for bucket in list(h.base._loading):
            for rs in list(bucket.values()):
                for r in rs:
                    assert r.owner != threading.get_ident(), "main thread's reservation left"

    h.check = check  # type: ignore[method-assign]
    h.inject(target, background=[asker, asker])
    # nothing wedged: every key loads again
    for k in keys:
        h.base.pop(k, None)
        assert h.base.compute_if_absent(k, factory, timeout=5) == _value(k)
    assert not any(h.base._loading)


@pytest.mark.parametrize("kind", KINDS)
def test_compute_if_absent_failing_factory(kind: str) -> None:
    h = Harness(kind)

    def factory(k: Any) -> str:
        raise LookupError(k)

    def target() -> None:
        for k in KEYS:
            try:
                h.run(lambda d: d.compute_if_absent(k, factory), lambda m: m)
            except LookupError:
                h.possible = None

    h.inject(target)


# ------------------------------------------------------ reads and copies


READS: dict[str, Callable[[Any], object]] = {
    "getitem": lambda d: [d[k] for k in KEYS],
    "get": lambda d: [d.get(k) for k in KEYS] + [d.get(k, 0) for k in KEYS],
    "contains": lambda d: [k in d for k in KEYS],
    "len_bool": lambda d: (len(d), bool(d)),
    "iter_views": lambda d: (list(d), list(d.keys()), list(d.values()), list(d.items())),
    "view_contains": lambda d: [(k, 0) in d.items() for k in KEYS] + [0 in d.values()],
    "snapshot": lambda d: d.snapshot(),
    "eq": lambda d: (d == dict.fromkeys(KEYS, 0), d == d.map if hasattr(d, "map") else d, d != {}),
    "repr": lambda d: repr(d),
    "copy": lambda d: (d.copy(), copy.copy(d.map if hasattr(d, "map") else d)),
    "deepcopy_pickle": lambda d: pickle.loads(pickle.dumps(d.map if hasattr(d, "map") else d)),
    "or_ror": lambda d: (d | {"x": 1}, {"x": 1} | d),
    "fromkeys_handle": lambda d: (d.fromkeys(KEYS, 1), d.handle(), ShardedDict.fromkeys(KEYS)),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", sorted(READS))
def test_reads_and_copies(kind: str, name: str) -> None:
    h = Harness(kind, dict.fromkeys(KEYS, 0))
    op = READS[name]

    def target() -> None:
        for _ in range(3):
            h.run(op, lambda m: m)

    h.inject(target)
