"""Hypothesis stateful testing under contention (imports hypothesis).

:class:`ConcurrentStateMachine` is a :class:`hypothesis.stateful.RuleBasedStateMachine`
whose steps are *batches*: each step draws a few threads of calls from
:attr:`~ConcurrentStateMachine.vocabulary`, runs them concurrently (behind a
barrier, with forced thread switches) on one long-lived object, then runs a
few sequential :attr:`~ConcurrentStateMachine.observations`, records it all,
and checks it with :func:`~conctools.testing.check_linearizability` against a
sequential model, together with the earlier steps, so that each step starts
from a state the model must explain. Hypothesis explores and shrinks
sequences of steps as with any state machine.

.. code-block:: python

    from hypothesis import strategies as st
    from conctools.testing.stateful import ConcurrentStateMachine

    keys = st.sampled_from("ab")

    class CountsMachine(ConcurrentStateMachine):
        vocabulary = {"add": st.tuples(keys), "get": st.tuples(keys)}

        def make_object(self):
            return LockedCounts()

        def make_spec(self):
            return CountsSpec()

    TestCounts = CountsMachine.TestCase

or, in one call, ``TestCounts = linearizable_state_machine(LockedCounts,
CountsSpec, {"add": ..., "get": ...}).TestCase``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from .linearizability import LinearizabilityResult, _apply, check_linearizability
from .recorder import Operation, Recorder, RecorderHandle
from .runner import run_concurrently
from .scenario import Call, Scenario
from .strategies import calls

__all__ = ["ConcurrentStateMachine", "linearizable_state_machine"]


def _run(rec: RecorderHandle, obj: Any, seq: Sequence[Call]) -> None:
    for c in seq:
        with contextlib.suppress(Exception):  # recorded; the checker judges it
            c.apply(rec, obj)


class _Body:
    __slots__ = ("calls", "obj", "rec")

    def __init__(self, rec: RecorderHandle, obj: Any, calls: Sequence[Call]) -> None:
        self.rec, self.obj, self.calls = rec, obj, calls

    def __call__(self) -> None:
        _run(self.rec, self.obj, self.calls)


class ConcurrentStateMachine(RuleBasedStateMachine):
    """A state machine whose every step runs a batch of calls concurrently and checks it.

    Subclass it and define :meth:`make_object` (the object under test, built
    once per test case and kept across steps), :meth:`make_spec` (the
    sequential model, same method names) and :attr:`vocabulary` (method name
    -> strategy of argument tuples, as for
    :func:`~conctools.testing.strategies.scenarios`). Optional:
    :attr:`observations` (calls made sequentially after the threads, e.g.
    reads that are exact only when writers are quiescent), the size bounds
    :attr:`threads`, :attr:`ops_per_thread`, :attr:`observations_per_step`,
    :attr:`preempt` and :attr:`check_timeout`, and :meth:`partition` (a key
    per operation when parts touch independent state). Add your own
    ``@invariant()`` or ``@rule()`` methods as with any
    :class:`~hypothesis.stateful.RuleBasedStateMachine`; :attr:`obj` and
    :attr:`model` are the object and the model after the last step.

    Each step checks the whole history recorded so far (steps do not
    overlap in time, so this costs little more than checking the last step,
    and it stays right when several orders explain a step but leave different
    states: :attr:`model` is the state after one order that explains
    everything so far). A violation makes the test case fail at its end
    (:meth:`teardown`) with :class:`AssertionError`, the checker's explanation
    and the failing step as a :class:`~conctools.testing.Scenario` ``repr``;
    the steps after it are drawn but not run, so that hypothesis replays and
    shrinks a consistent sequence of steps even when the race shows up at
    another step. A history the checker cannot decide within
    :attr:`check_timeout` stops the checking for that test case.

    **Thread safety.** One machine instance per test case, driven by
    hypothesis from one thread; each step starts its own worker threads.

    **Atomic operations.** None: a test driver.

    **Iteration.** Not iterable.

    **Blocking and timeouts.** A batch whose threads are still running after
    30 s fails with :class:`~conctools.testing.ThreadsStuck`.

    **Complexity.** Per step: the batch's calls plus one checker search over
    at most ``threads * ops_per_thread + observations_per_step`` operations.
    """

    vocabulary: ClassVar[Mapping[str, st.SearchStrategy[tuple[Any, ...]]]] = {}
    observations: ClassVar[Mapping[str, st.SearchStrategy[tuple[Any, ...]]]] = {}
    threads: ClassVar[tuple[int, int]] = (2, 3)
    ops_per_thread: ClassVar[tuple[int, int]] = (1, 3)
    observations_per_step: ClassVar[tuple[int, int]] = (0, 2)
    preempt: ClassVar[float | None] = None
    check_timeout: ClassVar[float] = 5.0

    _strategy_cache: ClassVar[dict[type, st.SearchStrategy[Scenario]]] = {}

    def __init__(self) -> None:
        super().__init__()
        self.obj: Any = self.make_object()
        self.model: Any = self.make_spec()
        self.history: list[Operation] = []
        self.steps = 0
        self._failure: AssertionError | None = None
        self._undecided = False

    def make_object(self) -> Any:
        """Build the object under test (once per test case)."""
        raise NotImplementedError("define make_object() in the subclass")

    def make_spec(self) -> Any:
        """Build the sequential model in its initial state."""
        raise NotImplementedError("define make_spec() in the subclass")

    def partition(self, op: Operation) -> Hashable:
        """Partition key of ``op`` (default: one partition)."""
        return None

    @classmethod
    def batches(cls) -> st.SearchStrategy[Scenario]:
        """The strategy of batches (a :class:`~conctools.testing.Scenario` without init)."""
        cached = cls._strategy_cache.get(cls)
        if cached is not None:
            return cached
        if not cls.vocabulary:
            raise TypeError(f"{cls.__name__}.vocabulary must name at least one method")
        t_lo, t_hi = cls.threads
        o_lo, o_hi = cls.ops_per_thread
        p_lo, p_hi = cls.observations_per_step
        call = calls(cls.vocabulary)
        per_thread = st.lists(call, min_size=o_lo, max_size=o_hi).map(tuple)
        post: st.SearchStrategy[tuple[Call, ...]] = st.just(())
        if cls.observations:
            post = st.lists(calls(cls.observations), min_size=p_lo, max_size=p_hi).map(tuple)
        strategy = st.builds(
            Scenario,
            threads=st.lists(per_thread, min_size=t_lo, max_size=t_hi).map(tuple),
            post=post,
        )
        cls._strategy_cache[cls] = strategy
        return strategy

    def run_batch(self, batch: Scenario) -> LinearizabilityResult | None:
        """Run ``batch`` on :attr:`obj` and check everything recorded so far.

        Returns the checker's result (``None`` once an earlier step failed or
        was undecided: later steps are then drawn but not run). A violation
        is raised by :meth:`teardown`, at the end of the test case, so that
        hypothesis sees the same sequence of steps when it replays a failure
        whose race happens at another step.
        """
        if self._failure is not None or self._undecided:
            return None
        rec = Recorder()
        main = rec.handle()
        handles = [rec.handle() for _ in batch.threads]
        _run(main, self.obj, batch.init)
        if batch.threads:
            bodies = [_Body(h, self.obj, c) for h, c in zip(handles, batch.threads, strict=True)]
            run_concurrently(*bodies, preempt=self.preempt)
        _run(main, self.obj, batch.post)
        self.history.extend(rec.history)
        self.steps += 1
        # The whole history is checked, not just this batch from one model
        # state: when several orders explain a batch (two blind writes), they
        # may leave different states, and only later reads tell which.
        result = check_linearizability(
            self.history, self.make_spec, partition=self.partition, timeout=self.check_timeout
        )
        if result.ok is False:
            self._failure = AssertionError(
                f"linearizability violation in concurrent step {self.steps}.\n\n"
                f"{result.explain()}\n\n"
                f"The step (its threads ran concurrently, after the earlier steps):\n"
                f"  {batch!r}"
            )
        elif result.ok is None:
            self._undecided = True
        else:
            model = self.make_spec()
            for op in result.linearization or []:
                _apply(model, op)
            self.model = model
        return result

    def teardown(self) -> None:
        """Raise the violation found by a step, if any."""
        if self._failure is not None:
            raise self._failure

    @rule(data=st.data())
    def concurrent_step(self, data: st.DataObject) -> None:
        """Draw a batch, run it concurrently and check it."""
        self.run_batch(data.draw(self.batches(), label="batch"))


def linearizable_state_machine(
    factory: Callable[[], Any],
    spec: Callable[[], Any],
    vocabulary: Mapping[str, st.SearchStrategy[tuple[Any, ...]]],
    *,
    observations: Mapping[str, st.SearchStrategy[tuple[Any, ...]]] | None = None,
    threads: tuple[int, int] = (2, 3),
    ops_per_thread: tuple[int, int] = (1, 3),
    observations_per_step: tuple[int, int] = (0, 2),
    preempt: float | None = None,
    partition: Callable[[Operation], Hashable] | None = None,
    name: str | None = None,
) -> type[ConcurrentStateMachine]:
    """A :class:`ConcurrentStateMachine` subclass for ``factory()`` checked against ``spec()``.

    Use its ``TestCase`` attribute as a test class (``TestX =
    linearizable_state_machine(...).TestCase``), or subclass it to add rules
    and invariants.
    """
    attrs: dict[str, Any] = {
        "vocabulary": dict(vocabulary),
        "observations": dict(observations or {}),
        "threads": threads,
        "ops_per_thread": ops_per_thread,
        "observations_per_step": observations_per_step,
        "preempt": preempt,
        "make_object": lambda self: factory(),
        "make_spec": lambda self: spec(),
    }
    if partition is not None:
        attrs["partition"] = lambda self, op: partition(op)
    label = name or f"{getattr(factory, '__name__', 'Object')}Machine"
    return type(label, (ConcurrentStateMachine,), attrs)
