"""AtomicInt under contention: hypothesis state machine, each step a concurrent batch."""

from __future__ import annotations

from _stateful_common import as_test
from hypothesis import strategies as st

from conctools import AtomicInt
from conctools.testing.stateful import ConcurrentStateMachine

SMALL = st.integers(-3, 3)


class AtomicIntSpec:
    def __init__(self) -> None:
        self.value = 0

    def get(self) -> int:
        return self.value

    def set(self, value: int) -> None:
        self.value = value

    def increment(self, delta: int = 1) -> int:
        self.value += delta
        return self.value

    def decrement(self, delta: int = 1) -> int:
        self.value -= delta
        return self.value

    def add_and_get(self, delta: int) -> int:
        self.value += delta
        return self.value

    def get_and_add(self, delta: int) -> int:
        old = self.value
        self.value += delta
        return old

    def get_and_set(self, value: int) -> int:
        old, self.value = self.value, value
        return old

    def compare_and_set(self, expected: int, new: int) -> bool:
        if self.value == expected:
            self.value = new
            return True
        return False


class AtomicIntMachine(ConcurrentStateMachine):
    vocabulary = {  # noqa: RUF012
        "get": st.just(()),
        "set": st.tuples(SMALL),
        "increment": st.one_of(st.just(()), st.tuples(SMALL)),
        "decrement": st.one_of(st.just(()), st.tuples(SMALL)),
        "add_and_get": st.tuples(SMALL),
        "get_and_add": st.tuples(SMALL),
        "get_and_set": st.tuples(SMALL),
        "compare_and_set": st.tuples(SMALL, SMALL),
    }
    observations = {"get": st.just(())}  # noqa: RUF012

    def make_object(self) -> AtomicInt:
        return AtomicInt()

    def make_spec(self) -> AtomicIntSpec:
        return AtomicIntSpec()


TestAtomicIntStateful = as_test(AtomicIntMachine)
