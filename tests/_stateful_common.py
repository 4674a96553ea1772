"""Settings shared by the tests/test_stateful_<primitive>.py modules."""

from __future__ import annotations

from typing import Any

from conftest import stress_scale
from hypothesis import HealthCheck, settings

from conctools.testing.stateful import ConcurrentStateMachine


def machine_settings(examples: int = 8, steps: int = 5) -> settings:
    """Few, short test cases: each step runs threads and a checker search."""
    return settings(
        max_examples=stress_scale(ci=examples, full=examples * 20),
        stateful_step_count=steps,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def as_test(machine: type[ConcurrentStateMachine], **kw: Any) -> Any:
    case = machine.TestCase
    case.settings = machine_settings(**kw)
    return case
