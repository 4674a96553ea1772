"""Hypothesis strategies for concurrent scenarios (the only module importing hypothesis)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._internal.dist import install_hint

try:
    from hypothesis import strategies as st
except ImportError as exc:  # tested with hypothesis hidden (tests/test_packaging.py)
    raise ImportError(
        "conctools.testing.strategies needs hypothesis, which is not installed; "
        f"install the test extra: {install_hint('test')} (or pip install hypothesis)",
        name=exc.name,
    ) from exc

from .scenario import Call, Scenario

__all__ = ["calls", "scenarios"]


class _CallMaker:
    __slots__ = ("method",)

    def __init__(self, method: str) -> None:
        self.method = method

    def __call__(self, args: tuple[Any, ...]) -> Call:
        return Call(self.method, tuple(args))

    def __repr__(self) -> str:
        return f"<Call({self.method!r}, ...)>"


def _bounds(name: str, value: tuple[int, int]) -> tuple[int, int]:
    lo, hi = value
    if (
        isinstance(lo, bool)
        or isinstance(hi, bool)
        or not isinstance(lo, int)
        or not isinstance(hi, int)
    ):
        raise TypeError(f"{name} must be a (min, max) pair of ints")
    if lo < 0 or hi < lo:
        raise ValueError(f"{name} must satisfy 0 <= min <= max, got {value!r}")
    return lo, hi


def calls(vocabulary: Mapping[str, st.SearchStrategy[tuple[Any, ...]]]) -> st.SearchStrategy[Call]:
    """A strategy of single :class:`Call` objects drawn from ``vocabulary``.

    ``vocabulary`` maps a method name to a strategy of argument tuples, e.g.
    ``{"get": st.tuples(keys), "put": st.tuples(keys, values), "clear": st.just(())}``.
    Methods are tried in the given order when shrinking (earlier = simpler).
    """
    if not vocabulary:
        raise ValueError("vocabulary must name at least one method")
    options: list[st.SearchStrategy[Call]] = []
    for method, args in vocabulary.items():
        if not isinstance(method, str):
            raise TypeError(f"vocabulary keys must be method names, not {method!r}")
        if not isinstance(args, st.SearchStrategy):
            raise TypeError(f"vocabulary[{method!r}] must be a hypothesis strategy")
        options.append(args.map(_CallMaker(method)))
    return st.one_of(options)


def scenarios(
    vocabulary: Mapping[str, st.SearchStrategy[tuple[Any, ...]]],
    *,
    threads: tuple[int, int] = (2, 4),
    ops_per_thread: tuple[int, int] = (1, 4),
    init_ops: tuple[int, int] = (0, 3),
    post_ops: tuple[int, int] = (0, 2),
) -> st.SearchStrategy[Scenario]:
    """A strategy of :class:`Scenario`: an init sequence, concurrent threads, a post sequence.

    Each ``(min, max)`` pair bounds a count (inclusive). Shrinking makes
    scenarios shorter, with fewer threads and simpler calls.
    """
    t_lo, t_hi = _bounds("threads", threads)
    o_lo, o_hi = _bounds("ops_per_thread", ops_per_thread)
    i_lo, i_hi = _bounds("init_ops", init_ops)
    p_lo, p_hi = _bounds("post_ops", post_ops)
    call = calls(vocabulary)
    per_thread = st.lists(call, min_size=o_lo, max_size=o_hi).map(tuple)
    return st.builds(
        Scenario,
        init=st.lists(call, min_size=i_lo, max_size=i_hi).map(tuple),
        threads=st.lists(per_thread, min_size=t_lo, max_size=t_hi).map(tuple),
        post=st.lists(call, min_size=p_lo, max_size=p_hi).map(tuple),
    )
