"""Peers side by side: ft_utils, cereggii and thread_factory, when importable.

None of them is a dependency. When one is installed in the benchmarking
interpreter, its equivalent structure joins these workloads next to the
conctools structure and the locked baseline, in the same run. Importing a C
extension that does not declare free-threading support turns the GIL back on
in a free-threaded interpreter (unless ``PYTHON_GIL=0``): this module warns
when that happens, and the result file records the GIL state after imports.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from ..._runtime import gil_enabled
from ...counters import StripedCounter
from ..baselines import count_ops, key_streams, locked_counter, op_streams
from ..harness import Body, Trial, Variant, Workload
from .counters import _shared_trial
from .queue import _per_item_trial
from .sharded_dict import GET, NKEYS, UPDATE, _counter_mix

__all__ = ["WORKLOADS"]


def _optional(name: str) -> ModuleType | None:
    before = gil_enabled()
    try:
        mod = importlib.import_module(name)
    except Exception:  # not installed, or broken on this interpreter
        return None
    if gil_enabled() and not before:
        print(
            f"conctools bench: importing {name} re-enabled the GIL; set PYTHON_GIL=0 to keep "
            "it off",
            file=sys.stderr,
        )
    return mod


ft_conc = _optional("ft_utils.concurrency")
cereggii = _optional("cereggii")
thread_factory = _optional("thread_factory")


# ------------------------------------------------------------------ counters


def _counter_variant(
    name: str,
    factory: Callable[[], Any],
    get_inc: Callable[[Any], Callable[[], Any]],
    read: Callable[[Any], int],
    note: str,
    *,
    external: bool = True,
) -> Variant:
    def make(threads: int) -> Trial:
        obj = factory()
        return _shared_trial(threads, obj, get_inc, lambda: read(obj))

    return Variant(name, make, note=note, external=external)


def _counter_variants() -> tuple[Variant, ...]:
    out = [
        locked_counter(),
        _counter_variant(
            "conctools StripedCounter handle",
            StripedCounter,
            lambda c: c.handle().increment,
            lambda c: c.value(),
            "h = c.handle() per thread; h.increment()",
            external=False,
        ),
    ]
    if ft_conc is not None:
        out.append(
            _counter_variant(
                "ft_utils AtomicInt64",
                lambda: ft_conc.AtomicInt64(0),
                lambda a: a.incr,
                lambda a: a.get(),
                "a.incr() (C)",
            )
        )
    if cereggii is not None:
        out.append(
            _counter_variant(
                "cereggii AtomicInt64",
                lambda: cereggii.AtomicInt64(0),
                lambda a: a.increment_and_get,
                lambda a: a.get(),
                "a.increment_and_get() (C, CAS)",
            )
        )
        out.append(
            _counter_variant(
                "cereggii AtomicInt64 handle",
                lambda: cereggii.AtomicInt64(0),
                lambda a: a.get_handle().increment_and_get,
                lambda a: a.get(),
                "h = a.get_handle() per thread (C, CAS)",
            )
        )
    if thread_factory is not None:
        out.append(
            _counter_variant(
                "thread_factory SyncInt",
                lambda: thread_factory.SyncInt(0),
                lambda s: s.increment,
                lambda s: int(s.get()),
                "s.increment() (pure Python, locked)",
            )
        )
    return tuple(out)


# ------------------------------------------------- dict: 90% get / 10% increment


def _dict_peer(
    name: str,
    build: Callable[[], Any],
    body_for: Callable[[Any, list[int], list[int]], Body],
    total: Callable[[Any], int],
    note: str,
) -> Variant:
    def make(threads: int) -> Trial:
        d = build()
        streams = key_streams(threads, NKEYS)
        opss = op_streams(threads, (90, 0, 0, 10))

        def verify(n: int) -> None:
            expected = sum(count_ops(ops, UPDATE, n) for ops in opss)
            got = total(d)
            if got != expected:
                raise AssertionError(f"{name} lost updates: {got} != {expected}")

        bodies = [body_for(d, ks, ops) for ks, ops in zip(streams, opss, strict=True)]
        return Trial(bodies, verify)

    return Variant(name, make, note=note, external=True)


def _ft_utils_dict() -> Variant:
    assert ft_conc is not None

    def build() -> Any:
        d = ft_conc.ConcurrentDict()
        for k in range(NKEYS):
            d[k] = ft_conc.AtomicInt64(0)
        return d

    def body_for(d: Any, ks: list[int], ops: list[int]) -> Body:
        def body(n: int) -> None:
            m = len(ks) - 1
            for i in range(n):
                j = i & m
                if ops[j] == GET:
                    d[ks[j]]
                else:
                    d[ks[j]].incr()

        return body

    return _dict_peer(
        "ft_utils ConcurrentDict",
        build,
        body_for,
        lambda d: sum(d[k].get() for k in range(NKEYS)),
        "ConcurrentDict of AtomicInt64 values; d[k] / d[k].incr() (C)",
    )


def _cereggii_dict() -> Variant:
    assert cereggii is not None

    def build() -> Any:
        d = cereggii.AtomicDict()
        for k in range(NKEYS):
            d[k] = 0
        return d

    def body_for(d: Any, ks: list[int], ops: list[int]) -> Body:
        def body(n: int) -> None:
            m = len(ks) - 1
            cas = d.compare_and_set
            failed = cereggii.ExpectationFailed
            for i in range(n):
                j = i & m
                k = ks[j]
                if ops[j] == GET:
                    d[k]
                else:
                    while True:  # compare_and_set returns None, raises on failure
                        old = d[k]
                        try:
                            cas(k, old, old + 1)
                            break
                        except failed:
                            pass

        return body

    return _dict_peer(
        "cereggii AtomicDict",
        build,
        body_for,
        lambda d: sum(d[k] for k in range(NKEYS)),
        "d[k] / compare_and_set retry loop (C)",
    )


def _dict_variants() -> tuple[Variant, ...]:
    out = [
        Variant(
            "dict+Lock (tuned)",
            _counter_mix("tuned"),
            note="one Lock; d[k] = d[k] + 1",
            external=True,
        ),
        Variant(
            "conctools ShardedDict.handle()",
            _counter_mix("handle"),
            note="h = d.handle() per thread; h.get / h.increment",
        ),
    ]
    if ft_conc is not None:
        out.append(_ft_utils_dict())
    if cereggii is not None:
        out.append(_cereggii_dict())
    return tuple(out)


# ------------------------------------------------------------------- queues


def _queue_variants() -> tuple[Variant, ...]:
    import queue

    from ...queue import ConcurrentQueue

    def v(
        name: str, factory: Callable[[], Any], note: str, external: bool = True, **kw: str
    ) -> Variant:
        return Variant(
            name, lambda t: _per_item_trial(t, factory(), **kw), note=note, external=external
        )

    out = [
        v("queue.Queue", queue.Queue, "stdlib"),
        v("conctools ConcurrentQueue", ConcurrentQueue, "put/get", external=False),
    ]
    if ft_conc is not None:
        out.append(
            v(
                "ft_utils ConcurrentQueue",
                ft_conc.ConcurrentQueue,
                "push/pop",
                put_name="push",
                get_name="pop",
            )
        )
    # thread_factory's ConcurrentQueue has no blocking get (dequeue raises Empty), so it
    # cannot run this producer/consumer workload without a polling wrapper of ours.
    return tuple(out)


WORKLOADS = [
    Workload(
        name="peers_counter",
        group="peers",
        description="increment one shared counter: conctools and peers",
        baseline="Lock+int",
        variants=_counter_variants(),
    ),
    Workload(
        name="peers_dict_counter",
        group="peers",
        description="90% get / 10% increment over 1024 keys: conctools and peers",
        baseline="dict+Lock (tuned)",
        variants=_dict_variants(),
    ),
    Workload(
        name="peers_queue",
        group="peers",
        description="n producers + n consumers, unbounded: conctools and peers",
        baseline="queue.Queue",
        variants=_queue_variants(),
        unit="items",
        threads_note="n producers and n consumers",
    ),
]
