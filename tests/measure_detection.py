"""Measure how often ``assert_linearizable`` catches known races (not a test module).

    python tests/measure_detection.py --runs 100 [--case guide-unsafe] [--preempt 0.1]

Each run is one ``assert_linearizable(..., trials=T)`` call; a run "catches" the
bug when it raises. Prints one JSON line per case: runs, caught, the median and
maximum trial of the first failure, and the wall time per run. Used for the
detection table of docs/guides/testing.rst.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

import conctools
from conctools.testing import Call, Scenario, assert_linearizable


class UnsafeCounts:
    def __init__(self) -> None:
        self.d: dict[Any, int] = {}

    def add(self, key: Any) -> None:
        if key in self.d:
            self.d[key] += 1
        else:
            self.d[key] = 1

    def get(self, key: Any) -> int:
        return self.d.get(key, 0)


class LockedCounts(UnsafeCounts):
    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()

    def add(self, key: Any) -> None:
        with self.lock:
            super().add(key)

    def get(self, key: Any) -> int:
        with self.lock:
            return super().get(key)


class CountsSpec:
    def __init__(self) -> None:
        self.d: dict[Any, int] = {}

    def add(self, key: Any) -> None:
        self.d[key] = self.d.get(key, 0) + 1

    def get(self, key: Any) -> int:
        return self.d.get(key, 0)


GUIDE = Scenario(
    threads=(
        (Call("add", ("a",)),) * 3,
        (Call("add", ("a",)), Call("get", ("a",))),
    ),
    post=(Call("get", ("a",)),),
)


def cases() -> dict[str, tuple[Any, Any, Scenario, Any, int]]:
    import test_testing as t

    return {
        "guide-unsafe": (UnsafeCounts, CountsSpec, GUIDE, None, 500),
        "guide-locked": (LockedCounts, CountsSpec, GUIDE, None, 500),
        "check-then-act": (t.CheckThenActDict, t.DictSpec, t.GET_OR_SET, t.by_key, 400),
        "lost-update": (t.LostUpdateCounter, t.CounterSpec, t.INCREMENTS, None, 400),
        "double-take": (t.DoubleTakeQueue, t.QueueSpec, t.TAKES, None, 400),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--case", action="append")
    ap.add_argument("--preempt", type=float, default=None)
    ap.add_argument("--trials", type=int, default=None)
    ns = ap.parse_args()
    all_cases = cases()
    names = ns.case or list(all_cases)
    kw: dict[str, Any] = {}
    if ns.preempt is not None:
        kw["preempt"] = ns.preempt
    for name in names:
        impl, spec, sc, part, trials = all_cases[name]
        trials = ns.trials or trials
        caught = 0
        firsts: list[int] = []
        times: list[float] = []
        for _ in range(ns.runs):
            t0 = time.perf_counter()
            try:
                assert_linearizable(sc, impl, spec, partition=part, trials=trials, **kw)
            except AssertionError as exc:
                caught += 1
                msg = str(exc)
                firsts.append(int(msg.split("on trial ", 1)[1].split(" ", 1)[0]))
            times.append(time.perf_counter() - t0)
        print(
            json.dumps(
                {
                    "case": name,
                    "build": "ft-nogil" if not conctools.gil_enabled() else "gil",
                    "preempt": ns.preempt,
                    "trials": trials,
                    "runs": ns.runs,
                    "caught": caught,
                    "median_first": statistics.median(firsts) if firsts else None,
                    "max_first": max(firsts) if firsts else None,
                    "median_s": round(statistics.median(times), 3),
                    "max_s": round(max(times), 3),
                    "total_s": round(sum(times), 1),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
