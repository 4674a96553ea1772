"""Concurrent scenarios: run them many times, record, check linearizability."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .linearizability import LinearizabilityResult, check_linearizability
from .recorder import Operation, Recorder, RecorderHandle, format_call
from .runner import fast_thread_switching, run_concurrently

__all__ = ["Call", "Scenario", "assert_linearizable", "run_scenario"]


@dataclass(frozen=True)
class Call:
    """One method call in a :class:`Scenario`: ``Call("put", (1, "a"))``.

    ``args`` is converted to a tuple and ``kwargs`` copied to a dict; the
    ``repr`` is valid Python (omitting empty parts).

    **Thread safety.** Immutable once built; safe to share between threads.

    **Atomic operations.** None: a plain value object.

    **Iteration.** Not iterable.

    **Blocking and timeouts.** Nothing blocks.

    **Complexity.** O(1) per field access.
    """

    method: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.method, str):
            raise TypeError(f"method must be a str, not {type(self.method).__name__}")
        object.__setattr__(self, "args", tuple(self.args))
        object.__setattr__(self, "kwargs", dict(self.kwargs))

    def __repr__(self) -> str:
        if self.kwargs:
            return f"Call({self.method!r}, {self.args!r}, {dict(self.kwargs)!r})"
        if self.args:
            return f"Call({self.method!r}, {self.args!r})"
        return f"Call({self.method!r})"

    def __str__(self) -> str:
        return format_call(self.method, self.args, dict(self.kwargs))

    def apply(self, recorder: Recorder | RecorderHandle, obj: Any) -> Any:
        """Make this call on ``obj`` through ``recorder``."""
        return recorder.call(obj, self.method, *self.args, **self.kwargs)


def _calls(value: Iterable[Call], what: str) -> tuple[Call, ...]:
    out = tuple(value)
    for c in out:
        if not isinstance(c, Call):
            raise TypeError(f"{what} must contain Call objects, not {type(c).__name__}")
    return out


@dataclass(frozen=True)
class Scenario:
    """A concurrent test case: ``init`` calls, then ``threads`` in parallel, then ``post`` calls.

    ``init`` and ``post`` are tuples of :class:`Call` run sequentially in the
    calling thread; ``threads`` is a tuple of per-thread tuples of calls run
    concurrently (released together by a barrier). The ``repr`` is valid
    Python that rebuilds the scenario, provided the arguments' reprs are
    (``from conctools.testing import Call, Scenario``)::

        Scenario(init=(Call('put', (1, 'a')),),
                 threads=((Call('get', (1,)),), (Call('pop', (1,)),)),
                 post=())

    **Thread safety.** Immutable once built; safe to share between threads.

    **Atomic operations.** None: a plain value object.

    **Iteration.** Not iterable; the fields are tuples.

    **Blocking and timeouts.** Nothing blocks.

    **Complexity.** O(1) per field access.
    """

    init: tuple[Call, ...] = ()
    threads: tuple[tuple[Call, ...], ...] = ()
    post: tuple[Call, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "init", _calls(self.init, "init"))
        object.__setattr__(self, "post", _calls(self.post, "post"))
        object.__setattr__(self, "threads", tuple(_calls(t, "each thread") for t in self.threads))

    def __repr__(self) -> str:
        return f"Scenario(init={self.init!r}, threads={self.threads!r}, post={self.post!r})"

    def __str__(self) -> str:
        lines = ["init: " + "; ".join(map(str, self.init))]
        lines.extend(f"T{i}: " + "; ".join(map(str, t)) for i, t in enumerate(self.threads))
        lines.append("post: " + "; ".join(map(str, self.post)))
        return "\n".join(lines)


def _run_calls(recorder: Recorder | RecorderHandle, obj: Any, calls: Sequence[Call]) -> None:
    for c in calls:
        # an exception is recorded; the checker decides whether raising was allowed
        with contextlib.suppress(Exception):
            c.apply(recorder, obj)


def run_scenario(
    scenario: Scenario,
    factory: Callable[[], Any],
    *,
    timeout: float | None = 30.0,
    preempt: float | None = None,
) -> tuple[Any, list[Operation]]:
    """Run ``scenario`` once on a fresh ``factory()`` object; return ``(obj, history)``.

    Exceptions raised by the calls are recorded, not propagated. The init
    and post calls are recorded as ``thread`` 0 and scenario thread ``i`` as
    ``thread`` ``i + 1``. A hang raises
    :class:`~conctools.testing.ThreadsStuck` after ``timeout`` seconds.
    ``preempt`` is passed to :func:`~conctools.testing.run_concurrently`; the
    default (``None``) forces thread switches at random lines on every build
    (rate 0.25).
    """
    obj = factory()
    rec = Recorder()
    main = rec.handle()
    handles = [rec.handle() for _ in scenario.threads]
    _run_calls(main, obj, scenario.init)
    if scenario.threads:
        pairs = zip(handles, scenario.threads, strict=True)
        bodies = [_ThreadBody(h, obj, calls) for h, calls in pairs]
        run_concurrently(*bodies, timeout=timeout, preempt=preempt)
    _run_calls(main, obj, scenario.post)
    return obj, rec.history


class _ThreadBody:
    __slots__ = ("calls", "obj", "rec")

    def __init__(self, rec: RecorderHandle, obj: Any, calls: Sequence[Call]) -> None:
        self.rec, self.obj, self.calls = rec, obj, calls

    def __call__(self) -> None:
        _run_calls(self.rec, self.obj, self.calls)


def assert_linearizable(
    scenario: Scenario,
    factory: Callable[[], Any],
    spec_factory: Callable[[], Any],
    *,
    partition: Callable[[Operation], Hashable] | None = None,
    trials: int = 10,
    timeout: float | None = 5.0,
    preempt: float | None = None,
) -> list[LinearizabilityResult]:
    """Run ``scenario`` ``trials`` times on fresh objects and check every history.

    Each trial builds ``factory()``, runs the init calls sequentially, the
    threads concurrently behind a barrier and the post calls sequentially,
    all recorded, then checks the history against ``spec_factory`` with
    :func:`check_linearizability` (``partition`` and ``timeout`` are passed
    on; ``timeout`` is per trial). Races do not replay deterministically, so
    one scenario is run several times. Unless ``preempt`` says otherwise,
    the threads are forced to hand the CPU to each other at random lines
    (rate 0.25, on every build: with or without the GIL, two threads only
    interleave inside a short race window if something makes them; see
    :func:`~conctools.testing.run_concurrently`); on GIL builds the switch
    interval is also shrunk meanwhile.

    Raises :class:`AssertionError` on the first violation, with the
    explanation and the scenario's pasteable ``repr``. A trial whose check is
    undecided within ``timeout`` does not fail. Returns the per-trial results.
    """
    __tracebackhide__ = True  # pytest shows the caller's line, then the report
    if isinstance(trials, bool) or not isinstance(trials, int):
        raise TypeError(f"trials must be an int, not {type(trials).__name__}")
    if trials < 1:
        raise ValueError("trials must be >= 1")
    if not isinstance(scenario, Scenario):
        raise TypeError(f"scenario must be a Scenario, not {type(scenario).__name__}")
    results: list[LinearizabilityResult] = []
    with fast_thread_switching():
        for trial in range(trials):
            try:
                _, history = run_scenario(scenario, factory, preempt=preempt)
            except AssertionError as exc:  # ThreadsStuck
                note = f"while running (trial {trial + 1} of {trials}):\n  {scenario!r}"
                add = getattr(exc, "add_note", None)
                if add is not None:
                    add(note)
                raise
            result = check_linearizability(
                history, spec_factory, partition=partition, timeout=timeout
            )
            results.append(result)
            if result.ok is False:
                raise AssertionError(
                    f"linearizability violation on trial {trial + 1} of {trials}.\n\n"
                    f"{result.explain()}\n\n"
                    f"Scenario (paste into a test to reproduce; races may need many trials):\n"
                    f"  {scenario!r}"
                )
    return results
