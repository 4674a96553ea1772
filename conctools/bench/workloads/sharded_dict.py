"""ShardedDict workloads, after conc-map-bench: read-heavy, exchange, rapid-grow, counter mix.

Every workload runs the same pre-drawn key and operation streams (one per
thread, :func:`~conctools.bench.baselines.key_streams`) through:

* ``dict+Lock (d.get)`` - a dict and one ``threading.Lock``, written the usual way;
* ``dict+Lock (tuned)`` - the same with ``d[k]`` / ``in`` instead of ``d.get``
  (``dict.get`` returning a value another thread created is slow on 3.13t);
* ``ShardedDict`` - methods called on the shared map;
* ``ShardedDict.handle()`` - the same calls through a per-thread handle, made
  by each worker thread (the fast path);
* ``dict (unlocked)`` - a ceiling where every operation is one dict call
  (each atomic in CPython, so the result stays correct; no compound ops).

Baseline bodies are written inline (no helper-function call per op), the
way a user would write them, so the comparison does not flatter ShardedDict.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from ...sharded_dict import ShardedDict
from ..baselines import count_ops, key_streams, op_streams
from ..harness import Trial, Variant, Workload

NKEYS = 1024
GET, INSERT, REMOVE, UPDATE = 0, 1, 2, 3


Maker = Callable[[int], Trial]


# ------------------------------------------------------------- counter mix


def _counter_mix(kind: str) -> Maker:
    """90% get / 10% increment over 1024 pre-filled keys."""

    def make(threads: int) -> Trial:
        streams = key_streams(threads, NKEYS)
        opss = op_streams(threads, (90, 0, 0, 10))
        lock = threading.Lock()
        plain: dict[int, int] = dict.fromkeys(range(NKEYS), 0)
        sd: ShardedDict[int, int] = ShardedDict(plain)

        def body_for(ks: list[int], ops: list[int]) -> Callable[[int], None]:
            m = len(ks) - 1
            if kind == "usual":

                def body(n: int) -> None:
                    d = plain
                    for i in range(n):
                        j = i & m
                        k = ks[j]
                        if ops[j] == GET:
                            with lock:
                                d.get(k)
                        else:
                            with lock:
                                d[k] = d.get(k, 0) + 1

            elif kind == "tuned":

                def body(n: int) -> None:
                    d = plain
                    for i in range(n):
                        j = i & m
                        k = ks[j]
                        if ops[j] == GET:
                            with lock:
                                d[k]
                        else:
                            with lock:
                                d[k] = d[k] + 1

            else:

                def body(n: int) -> None:
                    h = sd.handle() if kind == "handle" else sd
                    get = h.get
                    inc = h.increment
                    for i in range(n):
                        j = i & m
                        k = ks[j]
                        if ops[j] == GET:
                            get(k)
                        else:
                            inc(k)

            return body

        def verify(n: int) -> None:
            expected = sum(count_ops(ops, UPDATE, n) for ops in opss)
            got = sum((plain if kind in ("usual", "tuned") else sd).values())
            if got != expected:
                raise AssertionError(f"counter mix lost updates: {got} != {expected}")

        return Trial([body_for(ks, ops) for ks, ops in zip(streams, opss, strict=True)], verify)

    return make


# ------------------------------------------- read-heavy / exchange (general)


def _mix(kind: str, weights: tuple[int, int, int, int], prefill: float) -> Maker:
    """get / insert / remove / update (increment) with the given weights."""

    def make(threads: int) -> Trial:
        streams = key_streams(threads, NKEYS)
        opss = op_streams(threads, weights)
        lock = threading.Lock()
        start = {k: 0 for k in range(NKEYS) if (k * 2654435761) % 1000 < prefill * 1000}
        plain: dict[int, int] = dict(start)
        sd: ShardedDict[int, int] = ShardedDict(start)

        def body_for(ks: list[int], ops: list[int]) -> Callable[[int], None]:
            m = len(ks) - 1
            if kind == "usual":

                def body(n: int) -> None:
                    d = plain
                    for i in range(n):
                        j = i & m
                        k = ks[j]
                        o = ops[j]
                        if o == GET:
                            with lock:
                                d.get(k)
                        elif o == INSERT:
                            with lock:
                                d[k] = 0
                        elif o == REMOVE:
                            with lock:
                                d.pop(k, None)
                        else:
                            with lock:
                                d[k] = d.get(k, 0) + 1

            elif kind == "tuned":

                def body(n: int) -> None:
                    d = plain
                    for i in range(n):
                        j = i & m
                        k = ks[j]
                        o = ops[j]
                        if o == GET:
                            with lock:
                                if k in d:
                                    d[k]
                        elif o == INSERT:
                            with lock:
                                d[k] = 0
                        elif o == REMOVE:
                            with lock:
                                if k in d:
                                    del d[k]
                        else:
                            with lock:
                                d[k] = d[k] + 1 if k in d else 1

            elif kind == "unlocked":

                def body(n: int) -> None:
                    d = plain
                    for i in range(n):
                        j = i & m
                        k = ks[j]
                        o = ops[j]
                        if o == GET:
                            try:  # noqa: SIM105 - suppress() would cost a call per op
                                d[k]
                            except KeyError:
                                pass
                        elif o == INSERT:
                            d[k] = 0
                        else:
                            d.pop(k, None)

            else:

                def body(n: int) -> None:
                    h: Any = sd.handle() if kind == "handle" else sd
                    get = h.get
                    pop = h.pop
                    inc = h.increment
                    for i in range(n):
                        j = i & m
                        k = ks[j]
                        o = ops[j]
                        if o == GET:
                            get(k)
                        elif o == INSERT:
                            h[k] = 0
                        elif o == REMOVE:
                            pop(k, None)
                        else:
                            inc(k)

            return body

        def verify(n: int) -> None:
            if kind in ("usual", "tuned", "unlocked"):
                return
            snap = sd.snapshot()
            if len(snap) != len(sd) or not set(snap) <= set(range(NKEYS)):
                raise AssertionError("ShardedDict state is inconsistent after the run")

        return Trial([body_for(ks, ops) for ks, ops in zip(streams, opss, strict=True)], verify)

    return make


# ------------------------------------------------------------- rapid grow


def _rapid_grow(kind: str) -> Maker:
    """Each thread inserts its own fresh keys into an empty map."""

    def make(threads: int) -> Trial:
        lock = threading.Lock()
        plain: dict[int, int] = {}
        sd: ShardedDict[int, int] = ShardedDict()

        def body_for(t: int) -> Callable[[int], None]:
            if kind == "usual":

                def body(n: int) -> None:
                    d = plain
                    base = t * n
                    for i in range(base, base + n):
                        with lock:
                            d[i] = i

            else:

                def body(n: int) -> None:
                    h: Any = sd.handle() if kind == "handle" else sd
                    base = t * n
                    for i in range(base, base + n):
                        h[i] = i

            return body

        def verify(n: int) -> None:
            got = len(plain) if kind == "usual" else len(sd)
            if got != threads * n:
                raise AssertionError(f"rapid grow lost inserts: {got} != {threads * n}")

        return Trial([body_for(t) for t in range(threads)], verify)

    return make


# ------------------------------------------------------------- variants


def _variants(
    maker: Callable[[str], Maker], kinds: Sequence[str], notes: dict[str, str]
) -> tuple[Variant, ...]:
    names = {
        "usual": "dict+Lock (d.get)",
        "tuned": "dict+Lock (tuned)",
        "plain": "ShardedDict",
        "handle": "ShardedDict.handle()",
        "unlocked": "dict (unlocked)",
    }
    return tuple(Variant(names[k], maker(k), note=notes.get(k, "")) for k in kinds)


_NOTES = {
    "usual": "one Lock around every op; d.get / d.pop",
    "tuned": "one Lock around every op; d[k] and `in`, no d.get",
    "plain": "methods on the shared map (lock-free reads, per-shard locks)",
    "handle": "h = d.handle() in each thread, then the same calls on h",
    "unlocked": "ceiling: one plain dict call per op, no lock (no compound ops)",
}

WORKLOADS = [
    Workload(
        name="counter_mix",
        group="sharded_dict",
        description="90% get / 10% increment over 1024 keys",
        baseline="dict+Lock (tuned)",
        variants=_variants(_counter_mix, ("usual", "tuned", "plain", "handle"), _NOTES),
    ),
    Workload(
        name="read_heavy",
        group="sharded_dict",
        description="98% get / 1% insert / 1% remove over 1024 keys, 75% pre-filled",
        baseline="dict+Lock (tuned)",
        variants=_variants(
            lambda k: _mix(k, (98, 1, 1, 0), 0.75),
            ("usual", "tuned", "plain", "handle", "unlocked"),
            _NOTES,
        ),
    ),
    Workload(
        name="exchange",
        group="sharded_dict",
        description="10% get / 40% insert / 40% remove / 10% increment over 1024 keys",
        baseline="dict+Lock (tuned)",
        variants=_variants(
            lambda k: _mix(k, (10, 40, 40, 10), 0.5), ("usual", "tuned", "plain", "handle"), _NOTES
        ),
    ),
    Workload(
        name="rapid_grow",
        group="sharded_dict",
        description="inserts of fresh keys into an empty map",
        baseline="dict+Lock",
        variants=(
            Variant("dict+Lock", _rapid_grow("usual"), note="with lock: d[k] = v"),
            *_variants(_rapid_grow, ("plain", "handle"), _NOTES),
        ),
    ),
]
