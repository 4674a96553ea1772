"""RWLock under contention: a two-field record guarded by the lock must never tear.

Writers store the two fields one after the other (a forced thread switch can
land between them); readers read both. Under the lock every read sees a pair
some write stored, so the record is linearizable as a register of pairs; a
lock that let a reader in beside a writer (or two writers together) shows up
as a pair that was never written.
"""

from __future__ import annotations

from typing import Any

import pytest
from _stateful_common import as_test
from hypothesis import strategies as st

from conctools import RWLock
from conctools.testing.stateful import ConcurrentStateMachine

VALUES = st.integers(1, 4)


class GuardedPair:
    def __init__(self, policy: Any) -> None:
        self.lock = RWLock(policy)
        self.a = 0
        self.b = 0

    def write(self, v: int) -> None:
        with self.lock.write():
            self.a = v
            self.b = v

    def add(self, v: int) -> tuple[int, int]:
        with self.lock.write():
            a = self.a
            self.a = a + v
            b = self.b
            self.b = b + v
            return (self.a, self.b)

    def read(self) -> tuple[int, int]:
        with self.lock.read():
            a = self.a
            b = self.b
            return (a, b)


class PairSpec:
    def __init__(self) -> None:
        self.v = 0

    def write(self, v: int) -> None:
        self.v = v

    def add(self, v: int) -> tuple[int, int]:
        self.v += v
        return (self.v, self.v)

    def read(self) -> tuple[int, int]:
        return (self.v, self.v)


class UnguardedPair(GuardedPair):
    """The same record without the lock: must be caught (the test can fail)."""

    def write(self, v: int) -> None:
        self.a = v
        self.b = v

    def read(self) -> tuple[int, int]:
        a = self.a
        b = self.b
        return (a, b)


def pair_machine(policy: str, factory: Any = GuardedPair) -> type[ConcurrentStateMachine]:
    class Machine(ConcurrentStateMachine):
        vocabulary = {  # noqa: RUF012
            "write": st.tuples(VALUES),
            "add": st.tuples(VALUES),
            "read": st.just(()),
        }
        observations = {"read": st.just(())}  # noqa: RUF012

        def make_object(self) -> Any:
            return factory(policy)

        def make_spec(self) -> PairSpec:
            return PairSpec()

    Machine.__name__ = f"RWLock{policy.title()}Machine"
    return Machine


TestRWLockWriterPreferringStateful = as_test(pair_machine("writer"))
TestRWLockReaderPreferringStateful = as_test(pair_machine("reader"))
TestRWLockFairStateful = as_test(pair_machine("fair"))


@pytest.mark.thread_unsafe(reason="drives the hypothesis engine, which is not thread-safe")
def test_the_machine_catches_an_unguarded_record() -> None:
    from hypothesis import HealthCheck, Phase, settings
    from hypothesis.errors import FlakyFailure
    from hypothesis.stateful import run_state_machine_as_test

    # no explain phase: it traces every line, very slowly on 3.10
    NO_EXPLAIN = [p for p in Phase if p.name != "explain"]
    machine = pair_machine("writer", UnguardedPair)
    machine.ops_per_thread = (2, 3)
    with pytest.raises((AssertionError, FlakyFailure)):
        run_state_machine_as_test(
            machine,
            settings=settings(
                phases=NO_EXPLAIN,
                max_examples=200, stateful_step_count=8, deadline=None, database=None,
                suppress_health_check=list(HealthCheck),
            ),
        )  # fmt: skip
