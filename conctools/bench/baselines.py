"""Baselines: the locked structures users write when they have no library.

Workload modules build their comparisons from these, so every primitive is
measured against the same code.  Each factory returns a
:class:`~conctools.bench.harness.Variant`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import itertools
import random
import sys
import threading
from collections.abc import Callable, Hashable, Sequence
from types import ModuleType
from typing import Any

from .._internal.dist import install_hint
from .harness import Trial, Variant

__all__ = [
    "SUBSTITUTE_BASELINES",
    "LockedCounter",
    "baseline_note",
    "count_ops",
    "dist_version",
    "dict_lock_rmw_tuned",
    "dict_lock_rmw_usual",
    "itertools_count",
    "key_streams",
    "locked_counter",
    "op_streams",
    "optional_module",
    "zipf_keys",
]

#: Baselines that stand in for an optional one when its module is missing:
#: stand-in variant name -> (the baseline the docs use, the module it needs).
SUBSTITUTE_BASELINES: dict[str, tuple[str, str]] = {
    "OrderedDict LRU+Lock": ("cachetools LRU+Lock", "cachetools"),
}


def baseline_note(baseline: str) -> str | None:
    """Say which baseline replaced a missing optional one, or None."""
    if baseline not in SUBSTITUTE_BASELINES:
        return None
    preferred, module = SUBSTITUTE_BASELINES[baseline]
    if importlib.util.find_spec(module) is not None:
        return None
    return (
        f"baseline {baseline} replaces {preferred}: {module} is not installed, "
        f"so ratios differ from the docs; {install_hint('bench')} installs it"
    )


def optional_module(name: str) -> ModuleType | None:
    """Import an optional comparison library, or None when it is missing or
    broken on this interpreter.  Importing a C extension that does not declare
    free-threading support turns the GIL back on (unless ``PYTHON_GIL=0``):
    say so on stderr; the result file records the GIL state after imports."""
    from .._runtime import gil_enabled

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


def dist_version(name: str) -> str:
    """The installed version of a distribution, or "" when unknown."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return ""


STREAM = 4096  # keys per thread stream (a power of two: index with & mask)


def key_streams(
    threads: int, nkeys: int, *, seed: int = 1234, length: int = STREAM, skew: float | None = None
) -> list[list[int]]:
    """One pre-drawn key list per thread, so a body does no RNG work.

    Keys are ints in ``range(nkeys)``; uniform, or Zipf-distributed with
    exponent ``skew``.
    """
    out = []
    for t in range(threads):
        rng = random.Random(seed * 1_000_003 + t)
        if skew is None:
            out.append([rng.randrange(nkeys) for _ in range(length)])
        else:
            out.append(zipf_keys(rng, nkeys, skew, length))
    return out


def zipf_keys(rng: random.Random, nkeys: int, skew: float, length: int) -> list[int]:
    """``length`` keys drawn from a Zipf(skew) law over ``range(nkeys)``;
    rank r gets weight 1/r**skew, ranks are shuffled onto keys."""
    weights = [1.0 / (r**skew) for r in range(1, nkeys + 1)]
    ranks = list(range(nkeys))
    rng.shuffle(ranks)
    return rng.choices(ranks, weights=weights, k=length)


def op_streams(
    threads: int, weights: Sequence[int], *, seed: int = 99, length: int = STREAM
) -> list[list[int]]:
    """One pre-drawn op-code list per thread: code ``i`` drawn with ``weights[i]``."""
    out = []
    for t in range(threads):
        rng = random.Random(seed * 7919 + t)
        out.append(rng.choices(range(len(weights)), weights=weights, k=length))
    return out


def count_ops(ops: list[int], code: int, n: int) -> int:
    """How many of the first ``n`` iterations (indexing ``ops`` cyclically) have ``code``."""
    full, rest = divmod(n, len(ops))
    return full * ops.count(code) + ops[:rest].count(code)


class LockedCounter:
    """A counter the way most code writes it: an int and a Lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0

    def increment(self, delta: int = 1) -> None:
        with self._lock:
            self._value += delta

    def value(self) -> int:
        with self._lock:
            return self._value


def _counter_trial(
    threads: int,
    make_inc: Callable[[], tuple[Callable[[], Any], Callable[[], int]]],
    exact: bool = True,
) -> Trial:
    inc, read = make_inc()

    def body(n: int) -> None:
        f = inc
        for _ in range(n):
            f()

    def verify(n: int) -> None:
        if exact and read() != n * threads:
            raise AssertionError(f"counter lost updates: {read()} != {n * threads}")

    return Trial([body] * threads, verify)


def locked_counter(name: str = "Lock+int") -> Variant:
    def make(threads: int) -> Trial:
        def mk() -> tuple[Callable[[], Any], Callable[[], int]]:
            c = LockedCounter()
            return c.increment, c.value

        return _counter_trial(threads, mk)

    return Variant(name, make, note="int guarded by threading.Lock in a small class", external=True)


def itertools_count(name: str = "itertools.count") -> Variant:
    def make(threads: int) -> Trial:
        def mk() -> tuple[Callable[[], Any], Callable[[], int]]:
            c = itertools.count()
            return c.__next__, lambda: 0

        # itertools.count is not documented as thread-safe on free-threaded
        # builds: no exactness check, it is a speed reference only.
        return _counter_trial(threads, mk, exact=False)

    return Variant(
        name,
        make,
        note="next() on a shared itertools.count (no exactness promise)",
        external=True,
    )


def _dict_trial(
    threads: int,
    nkeys: int,
    body_for: Callable[[dict[Hashable, int], threading.Lock, list[int]], Callable[[int], None]],
    prefill: bool,
) -> Trial:
    d: dict[Hashable, int] = dict.fromkeys(range(nkeys), 0) if prefill else {}
    lock = threading.Lock()
    streams = key_streams(threads, nkeys)

    def verify(n: int) -> None:
        total = sum(d.values())
        if total != n * threads:
            raise AssertionError(f"dict counter lost updates: {total} != {n * threads}")

    return Trial([body_for(d, lock, s) for s in streams], verify)


def dict_lock_rmw_usual(nkeys: int = 1024, name: str = "dict+Lock (d.get)") -> Variant:
    """``with lock: d[k] = d.get(k, 0) + 1`` - what people write."""

    def body_for(
        d: dict[Hashable, int], lock: threading.Lock, keys: list[int]
    ) -> Callable[[int], None]:
        def body(n: int) -> None:
            m = len(keys) - 1
            for i in range(n):
                k = keys[i & m]
                with lock:
                    d[k] = d.get(k, 0) + 1

        return body

    return Variant(
        name,
        lambda t: _dict_trial(t, nkeys, body_for, prefill=False),
        note="with lock: d[k] = d.get(k, 0) + 1",
        external=True,
    )


def dict_lock_rmw_tuned(nkeys: int = 1024, name: str = "dict+Lock (tuned)") -> Variant:
    """Pre-filled keys, ``d[k] = d[k] + 1`` under the lock: no ``dict.get``."""

    def body_for(
        d: dict[Hashable, int], lock: threading.Lock, keys: list[int]
    ) -> Callable[[int], None]:
        def body(n: int) -> None:
            m = len(keys) - 1
            for i in range(n):
                k = keys[i & m]
                with lock:
                    d[k] = d[k] + 1

        return body

    return Variant(
        name,
        lambda t: _dict_trial(t, nkeys, body_for, prefill=True),
        note="keys pre-filled; with lock: d[k] = d[k] + 1",
        # Not external: the decision guide compares with it, in every run.
    )
