"""StripedCounter and ConcurrentCounter under contention (hypothesis state machines).

Updates run concurrently; reads run as the sequential observations of a step:
both counters document that reads are exact once writers are quiescent, not
snapshots while they write.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from _stateful_common import as_test
from hypothesis import strategies as st

from conctools import ConcurrentCounter, StripedCounter
from conctools.testing.stateful import ConcurrentStateMachine

DELTA = st.integers(-5, 5)
KEYS = st.sampled_from(["a", "b", "c"])


class IntCounterSpec:
    def __init__(self) -> None:
        self.n = 0

    def increment(self, delta: int = 1) -> None:
        self.n += delta

    def add(self, delta: int) -> None:
        self.n += delta

    def decrement(self, delta: int = 1) -> None:
        self.n -= delta

    def value(self) -> int:
        return self.n

    def sum_then_reset(self) -> int:
        n, self.n = self.n, 0
        return n

    def reset(self) -> None:
        self.n = 0


class StripedCounterMachine(ConcurrentStateMachine):
    vocabulary = {  # noqa: RUF012
        "increment": st.one_of(st.just(()), st.tuples(DELTA)),
        "add": st.tuples(DELTA),
        "decrement": st.one_of(st.just(()), st.tuples(DELTA)),
    }
    observations = {  # noqa: RUF012
        "value": st.just(()),
        "sum_then_reset": st.just(()),
        "reset": st.just(()),
    }
    observations_per_step = (1, 2)

    def make_object(self) -> StripedCounter:
        return StripedCounter()

    def make_spec(self) -> IntCounterSpec:
        return IntCounterSpec()


class KeyCounterSpec:
    def __init__(self) -> None:
        self.c: Counter[Any] = Counter()

    def increment(self, key: Any, delta: int = 1) -> None:
        self.c[key] += delta

    def update(self, counts: Any) -> None:
        self.c.update(counts)

    def get(self, key: Any) -> int | None:
        return self.c.get(key)  # like Counter.get: None when absent

    def __getitem__(self, key: Any) -> int:
        return self.c[key]

    def total(self) -> int:
        return sum(self.c.values())

    def snapshot(self) -> dict[Any, int]:
        return {k: v for k, v in self.c.items() if v}

    def clear(self) -> None:
        self.c.clear()


class ConcurrentCounterMachine(ConcurrentStateMachine):
    vocabulary = {  # noqa: RUF012
        "increment": st.one_of(st.tuples(KEYS), st.tuples(KEYS, st.integers(1, 3))),
        "update": st.tuples(
            st.one_of(
                st.lists(KEYS, max_size=3), st.dictionaries(KEYS, st.integers(1, 3), max_size=2)
            )
        ),
    }
    observations = {  # noqa: RUF012
        "get": st.tuples(KEYS),
        "__getitem__": st.tuples(KEYS),
        "total": st.just(()),
        "snapshot": st.just(()),
        "clear": st.just(()),
    }
    observations_per_step = (1, 2)

    def make_object(self) -> ConcurrentCounter[Any]:
        return ConcurrentCounter()

    def make_spec(self) -> KeyCounterSpec:
        return KeyCounterSpec()


TestStripedCounterStateful = as_test(StripedCounterMachine)
TestConcurrentCounterStateful = as_test(ConcurrentCounterMachine)
