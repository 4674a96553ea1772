"""The hypothesis stateful helper: batches run concurrently, checked against a carried model."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.errors import FlakyFailure
from hypothesis.stateful import invariant, run_state_machine_as_test

from conctools.testing import Call, Scenario
from conctools.testing.stateful import ConcurrentStateMachine, linearizable_state_machine

KEYS = st.sampled_from(["a", "b"])
# no explain phase in the failing runs: it traces every line, very slowly on 3.10
NO_EXPLAIN = [p for p in Phase if p.name != "explain"]


class UnsafeCounts:
    def __init__(self) -> None:
        self.d: dict[str, int] = {}

    def add(self, key: str) -> None:
        if key in self.d:
            self.d[key] += 1
        else:
            self.d[key] = 1

    def get(self, key: str) -> int:
        return self.d.get(key, 0)


class LockedCounts(UnsafeCounts):
    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()

    def add(self, key: str) -> None:
        with self.lock:
            super().add(key)

    def get(self, key: str) -> int:
        with self.lock:
            return super().get(key)


class CountsSpec:
    def __init__(self) -> None:
        self.d: dict[str, int] = {}

    def add(self, key: str) -> None:
        self.d[key] = self.d.get(key, 0) + 1

    def get(self, key: str) -> int:
        return self.d.get(key, 0)


class LockedCountsMachine(ConcurrentStateMachine):
    vocabulary = {"add": st.tuples(KEYS), "get": st.tuples(KEYS)}  # noqa: RUF012
    observations = {"get": st.tuples(KEYS)}  # noqa: RUF012

    def make_object(self) -> Any:
        return LockedCounts()

    def make_spec(self) -> Any:
        return CountsSpec()

    @invariant()
    def model_follows_the_object(self) -> None:
        # quiescent between steps: the model must be exactly the object's state
        assert self.model.d == self.obj.d


TestLockedCounts = LockedCountsMachine.TestCase
TestLockedCounts.settings = settings(
    max_examples=15, stateful_step_count=6, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip


@pytest.mark.thread_unsafe(reason="drives the hypothesis engine, which is not thread-safe")
def test_catches_the_lost_update_and_shrinks_it() -> None:
    machine = linearizable_state_machine(
        UnsafeCounts,
        CountsSpec,
        {"add": st.tuples(st.just("a"))},
        observations={"get": st.tuples(st.just("a"))},
        threads=(2, 3),
        ops_per_thread=(2, 4),
        observations_per_step=(1, 1),
    )
    # A race does not replay on demand: hypothesis may report the violation as
    # FlakyFailure (an exception group holding the AssertionError).
    with pytest.raises((AssertionError, FlakyFailure)) as info:
        run_state_machine_as_test(
            machine,
            settings=settings(
                phases=NO_EXPLAIN,
                max_examples=200, stateful_step_count=10, deadline=None, database=None,
                suppress_health_check=list(HealthCheck),
            ),
        )  # fmt: skip
    errors = info.value.exceptions if isinstance(info.value, FlakyFailure) else [info.value]
    assert any("linearizability violation in concurrent step" in str(e) for e in errors)


def test_model_carries_over_between_steps() -> None:
    machine = linearizable_state_machine(LockedCounts, CountsSpec, {"add": st.tuples(KEYS)})()
    one = Scenario(threads=((Call("add", ("a",)),), (Call("add", ("a",)), Call("add", ("b",)))))
    machine.run_batch(one)
    machine.run_batch(one)
    assert machine.model.d == {"a": 4, "b": 2} == machine.obj.d
    # a read that ignores the earlier steps is caught
    machine.obj.d["a"] = 0
    result = machine.run_batch(Scenario(threads=((Call("get", ("a",)),),)))
    assert result is not None and result.ok is False
    assert machine.run_batch(one) is None  # later steps are not run
    with pytest.raises(AssertionError, match="NOT linearizable"):
        machine.teardown()


def test_needs_a_vocabulary() -> None:
    class Empty(ConcurrentStateMachine):
        def make_object(self) -> Any:
            return LockedCounts()

        def make_spec(self) -> Any:
            return CountsSpec()

    with pytest.raises(TypeError, match="vocabulary"):
        Empty.batches()
    with pytest.raises(NotImplementedError):
        ConcurrentStateMachine()
