"""Paired timings of the atomics: the native cores against the pure-Python ones.

Both implementations are loaded in one process (the pure classes by executing
``conctools/atomic.py`` a second time with the accelerator hidden), and each
round times every operation on both, interleaved; the ratio reported is the
median over the rounds of native/pure ops per second. With ``--threads``, the
AtomicInt increment is also timed at 1 and 2 threads (each thread calling
``a.increment()`` on one shared object), beside ft_utils' ``AtomicInt64.incr``
and cereggii's ``AtomicInt64.increment_and_get`` when they import.

    python tools/bench_atomic_native.py [--rounds 5] [--threads]
"""

# ruff: noqa: E702, PLC3002, PLC0206, E501
from __future__ import annotations

import argparse
import importlib
import importlib.util
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any


def load_pure() -> ModuleType:
    import conctools._internal.native as nat

    real = nat.native_attr
    nat.native_attr = lambda name: None  # type: ignore[assignment]
    try:
        import conctools.atomic as native_mod

        spec = importlib.util.spec_from_file_location("conctools._atomic_pure", native_mod.__file__)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        nat.native_attr = real  # type: ignore[assignment]


def ops(m: ModuleType) -> dict[str, Callable[[int], None]]:
    """name -> loop(n) running the operation n times (10 calls per iteration)."""

    def loop(setup: Callable[[], Callable[[], Any]]) -> Callable[[int], None]:
        def run(n: int) -> None:
            f = setup()
            for _ in range(n // 10):
                f(); f(); f(); f(); f(); f(); f(); f(); f(); f()  # fmt: skip

        return run

    def loop2(make: Callable[[], Any], stmt: Callable[[Any], Any]) -> Callable[[int], None]:
        def run(n: int) -> None:
            o = make()
            for _ in range(n // 10):
                stmt(o); stmt(o); stmt(o); stmt(o); stmt(o); stmt(o); stmt(o); stmt(o); stmt(o); stmt(o)  # fmt: skip

        return run

    ai, ab, af, ar = m.AtomicInt, m.AtomicBool, m.AtomicFloat, m.AtomicRef
    x = object()
    return {
        "AtomicInt.get": loop(lambda: ai(5).get),
        "AtomicInt.increment": loop(lambda: ai().increment),
        "AtomicInt.add_and_get(3)": loop(lambda: (lambda a: lambda: a.add_and_get(3))(ai())),
        "AtomicInt.get_and_add(3)": loop(lambda: (lambda a: lambda: a.get_and_add(3))(ai())),
        "AtomicInt.set(7)": loop(lambda: (lambda a: lambda: a.set(7))(ai())),
        "AtomicInt.get_and_set(7)": loop(lambda: (lambda a: lambda: a.get_and_set(7))(ai())),
        "AtomicInt.compare_and_set(0,0)": loop(
            lambda: (lambda a: lambda: a.compare_and_set(0, 0))(ai())
        ),
        "AtomicInt += 1": loop2(ai, lambda a: a.__iadd__(1)),
        "AtomicInt *= 1": loop2(ai, lambda a: a.__imul__(1)),
        "AtomicInt.update(fn)": loop2(ai, lambda a: a.update(abs)),
        "AtomicInt.increment (big int)": loop(lambda: ai(2**80).increment),
        "AtomicBool.get": loop(lambda: ab().get),
        "AtomicBool.set(True)": loop(lambda: (lambda a: lambda: a.set(True))(ab())),
        "AtomicBool.compare_and_set": loop(
            lambda: (lambda a: lambda: a.compare_and_set(False, False))(ab())
        ),
        "AtomicBool.toggle": loop(lambda: ab().toggle),
        "AtomicFloat.get": loop(lambda: af(1.5).get),
        "AtomicFloat.add(0.5)": loop(lambda: (lambda a: lambda: a.add(0.5))(af())),
        "AtomicFloat.compare_and_set": loop(
            lambda: (lambda a: lambda: a.compare_and_set(0.0, 0.0))(af())
        ),
        "AtomicRef.get": loop(lambda: ar(x).get),
        "AtomicRef.set": loop(lambda: (lambda a: lambda: a.set(x))(ar())),
        "AtomicRef.compare_and_set": loop(
            lambda: (lambda a: lambda: a.compare_and_set(x, x))(ar(x))
        ),
        "AtomicRef.update(fn)": loop2(lambda: ar(x), lambda a: a.update(id)),
    }


def rate(fn: Callable[[int], None], target: float = 0.05) -> float:
    n = 1000
    while True:
        t0 = time.perf_counter()
        fn(n)
        dt = time.perf_counter() - t0
        if dt >= target:
            return n / dt
        n = int(n * max(2.0, 1.2 * target / max(dt, 1e-6)))


def threaded_rate(
    make: Callable[[], Any], get_inc: Callable[[Any], Any], threads: int, n: int = 1_000_000
) -> float:
    obj = make()
    barrier = threading.Barrier(threads + 1)

    def body() -> None:
        f = get_inc(obj)
        barrier.wait()
        for _ in range(n // 10):
            f(); f(); f(); f(); f(); f(); f(); f(); f(); f()  # fmt: skip
        barrier.wait()

    ts = [threading.Thread(target=body) for _ in range(threads)]
    for t in ts:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    barrier.wait()
    dt = time.perf_counter() - t0
    for t in ts:
        t.join()
    return n * threads / dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", action="store_true")
    ap.add_argument("--only-threads", action="store_true", help="skip the per-method table")
    ap.add_argument("--ops", type=int, default=1_000_000, help="increments per thread and run")
    args = ap.parse_args()

    import conctools.atomic as native
    from conctools._internal.native import ACTIVE
    from conctools._runtime import gil_enabled

    if ACTIVE != "native":
        sys.exit("the native accelerator is not active")
    pure = load_pure()
    print(
        f"Python {sys.version.split()[0]} GIL {'on' if gil_enabled() else 'off'}, "
        f"{args.rounds} rounds, median of native/pure per round"
    )
    po, no = ops(pure), ops(native)
    ratios: dict[str, list[float]] = {k: [] for k in po}
    rates: dict[str, list[float]] = {k: [] for k in po}
    for _ in range(0 if args.only_threads else args.rounds):
        for k in po:
            p = rate(po[k])
            nr = rate(no[k])
            ratios[k].append(nr / p)
            rates[k].append(nr)
    for k in po if not args.only_threads else ():
        print(
            f"  {k:34s} native {statistics.median(rates[k]) / 1e6:6.2f} M/s  "
            f"x{statistics.median(ratios[k]):.2f} pure"
        )
    if not (args.threads or args.only_threads):
        return
    peers: list[tuple[str, Callable[[], Any], Callable[[Any], Any]]] = [
        ("conctools AtomicInt (native)", native.AtomicInt, lambda a: a.increment),
        ("conctools AtomicInt (pure)", pure.AtomicInt, lambda a: a.increment),
    ]
    try:
        ftc = importlib.import_module("ft_utils.concurrency")
        peers.append(("ft_utils AtomicInt64.incr", lambda: ftc.AtomicInt64(0), lambda a: a.incr))
    except ImportError:
        pass
    try:
        cg = importlib.import_module("cereggii")
        peers.append(
            (
                "cereggii AtomicInt64.increment_and_get",
                lambda: cg.AtomicInt64(0),
                lambda a: a.increment_and_get,
            )
        )
    except ImportError:
        pass
    print("AtomicInt increment on one shared object, M ops/s (median), ratio to native per round")
    for threads in (1, 2):
        res: dict[str, list[float]] = {name: [] for name, _, _ in peers}
        rel: dict[str, list[float]] = {name: [] for name, _, _ in peers}
        for _ in range(args.rounds):
            order = list(peers)
            random.shuffle(order)  # no variant always runs first (or last) in a round
            got = {
                name: threaded_rate(mk, gi, threads, args.ops if "pure" not in name else 100_000)
                for name, mk, gi in order
            }
            for name in got:
                res[name].append(got[name])
                rel[name].append(got[name] / got[peers[0][0]])
        for name in res:
            print(
                f"  {threads} thread(s) {name:40s} {statistics.median(res[name]) / 1e6:6.2f}  "
                f"x{statistics.median(rel[name]):.2f}"
            )


if __name__ == "__main__":
    main()
