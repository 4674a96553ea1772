"""AtomicRef, AtomicBool and AtomicFloat under contention: state machines whose steps
run concurrent batches, checked for linearizability against sequential models."""

from __future__ import annotations

from typing import Any

from _stateful_common import as_test
from hypothesis import strategies as st

from conctools import AtomicBool, AtomicFloat, AtomicRef
from conctools.testing.stateful import ConcurrentStateMachine

# Interned small objects: AtomicRef compares by identity.
REFS = st.sampled_from([None, "a", "b", 1])
BOOLS = st.booleans()
# Exactly representable, no -0.0 or NaN: sums are exact and == is bit equality.
FLOATS = st.sampled_from([0.0, 0.5, 1.0, 2.25])


class RefSpec:
    def __init__(self) -> None:
        self.value: Any = None

    def get(self) -> Any:
        return self.value

    def set(self, value: Any) -> None:
        self.value = value

    def get_and_set(self, value: Any) -> Any:
        old, self.value = self.value, value
        return old

    def compare_and_set(self, expected: Any, new: Any) -> bool:
        if self.value is expected:
            self.value = new
            return True
        return False


class AtomicRefMachine(ConcurrentStateMachine):
    vocabulary = {  # noqa: RUF012
        "get": st.just(()),
        "set": st.tuples(REFS),
        "get_and_set": st.tuples(REFS),
        "compare_and_set": st.tuples(REFS, REFS),
    }
    observations = {"get": st.just(())}  # noqa: RUF012

    def make_object(self) -> AtomicRef[Any]:
        return AtomicRef()

    def make_spec(self) -> RefSpec:
        return RefSpec()


class BoolSpec:
    def __init__(self) -> None:
        self.value = False

    def get(self) -> bool:
        return self.value

    def set(self, value: bool) -> None:
        self.value = value

    def get_and_set(self, value: bool) -> bool:
        old, self.value = self.value, value
        return old

    def compare_and_set(self, expected: bool, new: bool) -> bool:
        if self.value == expected:
            self.value = new
            return True
        return False

    def toggle(self) -> bool:
        self.value = not self.value
        return self.value


class AtomicBoolMachine(ConcurrentStateMachine):
    vocabulary = {  # noqa: RUF012
        "get": st.just(()),
        "set": st.tuples(BOOLS),
        "get_and_set": st.tuples(BOOLS),
        "compare_and_set": st.tuples(BOOLS, BOOLS),
        "toggle": st.just(()),
    }
    observations = {"get": st.just(())}  # noqa: RUF012

    def make_object(self) -> AtomicBool:
        return AtomicBool()

    def make_spec(self) -> BoolSpec:
        return BoolSpec()


class FloatSpec:
    def __init__(self) -> None:
        self.value = 0.0

    def get(self) -> float:
        return self.value

    def set(self, value: float) -> None:
        self.value = value

    def add(self, delta: float) -> float:
        self.value += delta
        return self.value

    def get_and_add(self, delta: float) -> float:
        old = self.value
        self.value += delta
        return old

    def get_and_set(self, value: float) -> float:
        old, self.value = self.value, value
        return old

    def compare_and_set(self, expected: float, new: float) -> bool:
        if self.value == expected:
            self.value = new
            return True
        return False


class AtomicFloatMachine(ConcurrentStateMachine):
    vocabulary = {  # noqa: RUF012
        "get": st.just(()),
        "set": st.tuples(FLOATS),
        "add": st.tuples(FLOATS),
        "get_and_add": st.tuples(FLOATS),
        "get_and_set": st.tuples(FLOATS),
        "compare_and_set": st.tuples(FLOATS, FLOATS),
    }
    observations = {"get": st.just(())}  # noqa: RUF012

    def make_object(self) -> AtomicFloat:
        return AtomicFloat()

    def make_spec(self) -> FloatSpec:
        return FloatSpec()


TestAtomicRefStateful = as_test(AtomicRefMachine)
TestAtomicBoolStateful = as_test(AtomicBoolMachine)
TestAtomicFloatStateful = as_test(AtomicFloatMachine)
