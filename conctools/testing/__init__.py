"""Tools to test thread-safe code: concurrent runners, history recording, linearizability.

* :func:`run_concurrently` / :func:`run_in_threads` start threads behind a
  barrier and fail with :class:`ThreadsStuck` (showing every stuck stack)
  instead of hanging;
* :class:`Recorder` records who called what, when, and what came back, as
  :class:`Operation` objects;
* :func:`check_linearizability` decides whether a recorded history is
  explained by some sequential order of a reference specification;
* :class:`Scenario` / :class:`Call` describe a concurrent test case,
  :func:`assert_linearizable` runs one many times and checks every history,
  and :func:`conctools.testing.strategies.scenarios` draws them with
  hypothesis;
* :mod:`conctools.testing.stateful` runs hypothesis state machines whose
  steps are concurrent batches checked for linearizability;
* :mod:`conctools.testing.faults` delivers an exception at a random point
  inside a call and checks that nothing was left locked or half-done;
* :mod:`conctools.testing.pytest_plugin` (a pytest plugin, registered on
  install) gives a ``linearizable`` marker and fixture.

Only ``strategies`` and ``stateful`` import hypothesis, and only the plugin
imports pytest; importing :mod:`conctools.testing` imports neither.
"""

from __future__ import annotations

from .linearizability import (
    LinearizabilityResult,
    Violation,
    check_linearizability,
    fingerprint,
)
from .recorder import Operation, Recorder, RecorderHandle
from .runner import ThreadsStuck, fast_thread_switching, run_concurrently, run_in_threads
from .scenario import Call, Scenario, assert_linearizable, run_scenario

__all__ = [
    "Call",
    "LinearizabilityResult",
    "Operation",
    "Recorder",
    "RecorderHandle",
    "Scenario",
    "ThreadsStuck",
    "Violation",
    "assert_linearizable",
    "check_linearizability",
    "fast_thread_switching",
    "fingerprint",
    "run_concurrently",
    "run_in_threads",
    "run_scenario",
]
