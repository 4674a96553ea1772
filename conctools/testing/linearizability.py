"""Linearizability checking of recorded histories against a sequential specification.

Algorithm: the Wing & Gong search as improved by Lowe ("just-in-time
linearization") with the memoisation of Porcupine. Call and return events are
kept in one time-ordered doubly linked list. The search walks the list: at a
call it tries to make that operation take effect next on the sequential
specification (the spec must produce the recorded outcome); at a return whose
operation has not taken effect yet it backtracks. A configuration -- the set
of operations already linearized plus the specification's state -- that was
explored once is never explored again.

**Spec state by value.** Branching copies the specification with
:func:`copy.deepcopy` before applying an operation (so every configuration on
the search stack keeps its own state). Configurations are compared through a
hashable *fingerprint* of the spec: its type and its attributes (``__dict__``
and ``__slots__``), converted recursively. The fingerprint keeps apart every
pair of states a spec could tell apart, even when ``==`` does not: every value
is tagged with its exact type (``1``, ``True`` and ``1.0`` differ; so do a
``dict`` and an ``OrderedDict`` with the same items), floats are compared by
bit pattern (``0.0`` and ``-0.0`` differ, a NaN equals itself), lists, tuples
and deques by their items in order (plus a deque's ``maxlen``), dicts by their
items *in insertion order* (order can matter to a spec, e.g. an LRU) plus a
``defaultdict``'s factory, sets by their members, subclasses of built-in
containers and scalars also by their instance attributes, other values with
their own ``__hash__`` (enums, decimals, frozen dataclasses) by type, value
and ``repr``, other instances of user classes by their attributes, and
functions, classes and other built-in objects by identity (``deepcopy`` does
not copy them). A fingerprint that distinguishes too much only costs search
time; one that merges two states a spec can distinguish would make the
checker prune the one order that explains a history.
A spec class may define ``__eq__`` and ``__hash__`` itself; then the spec
object is its own fingerprint (and its equality must be that strict). If a
state cannot be fingerprinted (an unhashable foreign object inside), that
configuration is simply not memoised: the answer is still right, only slower.
"""

from __future__ import annotations

import copy
import struct
import time
import types
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .recorder import Operation

__all__ = ["LinearizabilityResult", "Violation", "check_linearizability", "fingerprint"]


# --------------------------------------------------------------------------- state


def _overrides(tp: type, name: str) -> bool:
    """True when ``tp`` defines ``name`` differently from :class:`object`."""
    mine: Any = getattr(tp, name, None)
    base: Any = getattr(object, name)
    return mine is not None and mine is not base


def _float_key(x: float) -> Hashable:
    # by bit pattern: keeps -0.0 apart from 0.0 and makes a NaN equal to itself
    return struct.pack("<d", x)


def _freeze(value: Any, depth: int = 0) -> Hashable:
    if depth > 50:
        raise TypeError("spec state nested too deeply to fingerprint")
    tp = type(value)
    if value is None:
        return None
    if tp is bool:
        return bool(value)  # a singleton: equal only to itself among fingerprints
    if tp is int or tp is str or tp is bytes:
        return (tp, value)  # the type keeps 1 apart from True and 1.0
    if tp is float:
        return (float, _float_key(value))
    if tp is complex:
        return (complex, _float_key(value.real), _float_key(value.imag))
    if tp is list or tp is tuple:
        return (tp, tuple(_freeze(v, depth + 1) for v in value))
    if isinstance(value, deque):
        return (tp, value.maxlen, tuple(_freeze(v, depth + 1) for v in value), _extra(value, depth))
    if isinstance(value, dict):
        factory = getattr(value, "default_factory", None)
        return (
            tp,
            None if factory is None else _freeze(factory, depth + 1),
            tuple((_freeze(k, depth + 1), _freeze(v, depth + 1)) for k, v in value.items()),
            _extra(value, depth),
        )
    if isinstance(value, (set, frozenset)):
        return (tp, frozenset(_freeze(v, depth + 1) for v in value), _extra(value, depth))
    if isinstance(value, (list, tuple)):  # subclasses, e.g. namedtuples
        return (tp, tuple(_freeze(v, depth + 1) for v in value), _extra(value, depth))
    if isinstance(value, bytearray):
        return (tp, bytes(value), _extra(value, depth))
    if isinstance(value, (int, float, complex, str, bytes)):
        # subclasses (IntEnum, str enums, ...): the plain value, its type and attributes
        base: Any = next(b for b in (int, float, complex, str, bytes) if isinstance(value, b))
        return (tp, _freeze(base(value), depth + 1), _extra(value, depth))
    if tp.__module__ == "builtins" or isinstance(
        value, (types.FunctionType, types.MethodType, types.ModuleType, type)
    ):
        # functions, classes, object() markers...: deepcopy keeps them identical,
        # so identity is their value
        return ("<identity>", value)
    if _overrides(tp, "__hash__"):
        # a value type with its own equality (Enum, Decimal, frozen dataclass...):
        # equal values with different reprs (Decimal('1.0') and Decimal('1'), a
        # dataclass holding 0.0 or -0.0) can still be told apart by a spec
        return (tp, value, repr(value))
    return _freeze_attrs(value, depth + 1)


_PLAIN_CONTAINERS = frozenset({dict, set, frozenset, deque, bytearray})


def _extra(value: Any, depth: int) -> Hashable:
    """Instance attributes of a container subclass (``None`` when there are none)."""
    if type(value) in _PLAIN_CONTAINERS:
        return None
    if not getattr(value, "__dict__", None) and not any(
        k.__dict__.get("__slots__") for k in type(value).__mro__
    ):
        return None
    return _freeze_attrs(value, depth + 1, allow_empty=True)


def _freeze_attrs(obj: Any, depth: int, allow_empty: bool = False) -> Hashable:
    items: list[tuple[str, Hashable]] = []
    d = getattr(obj, "__dict__", None)
    if d is not None:
        items.extend((k, _freeze(v, depth)) for k, v in d.items())
    for klass in type(obj).__mro__:
        slots = klass.__dict__.get("__slots__", ())
        if isinstance(slots, str):
            slots = (slots,)
        for name in slots:
            if name in ("__dict__", "__weakref__"):
                continue
            try:
                items.append((name, _freeze(getattr(obj, name), depth)))
            except AttributeError:
                items.append((name, "<unset>"))
    if d is None and not items and not allow_empty:
        raise TypeError(f"cannot fingerprint {type(obj).__name__!r} by value")
    return (type(obj), tuple(items))


def fingerprint(spec: Any) -> Hashable:
    """A hashable value that is equal for two spec objects in the same state.

    See the module documentation for the rules. Raises :class:`TypeError`
    when the state holds something that cannot be compared by value.
    """
    tp = type(spec)
    if _overrides(tp, "__hash__") and _overrides(tp, "__eq__"):
        return spec  # type: ignore[no-any-return]
    return _freeze_attrs(spec, 0)


def _fingerprint_or_unique(spec: Any) -> Hashable:
    try:
        fp = fingerprint(spec)
        hash(fp)
    except TypeError:
        return object()  # never equal to anything: no memoisation for this state
    return fp


def _state_repr(spec: Any) -> str:
    if _overrides(type(spec), "__repr__"):
        return repr(spec)
    attrs: dict[str, Any] = dict(getattr(spec, "__dict__", {}))
    for klass in type(spec).__mro__:
        slots = klass.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name not in ("__dict__", "__weakref__") and hasattr(spec, name):
                attrs[name] = getattr(spec, name)
    inner = ", ".join(f"{k}={v!r}" for k, v in attrs.items())
    return f"{type(spec).__qualname__}({inner})"


# --------------------------------------------------------------------------- applying


@dataclass(frozen=True)
class _Outcome:
    result: Any
    exception: BaseException | None

    def describe(self) -> str:
        if self.exception is not None:
            return f"raises {type(self.exception).__name__}"
        return f"-> {self.result!r}"


def _apply(spec: Any, op: Operation) -> _Outcome:
    try:
        result = getattr(spec, op.method)(*op.args, **op.kwargs)
    except Exception as exc:
        return _Outcome(None, exc)
    return _Outcome(result, None)


def _matches(op: Operation, out: _Outcome) -> bool:
    if op.exception is not None or out.exception is not None:
        return (
            op.exception is not None
            and out.exception is not None
            and type(op.exception) is type(out.exception)
        )
    try:
        return bool(out.result == op.result)
    except Exception:
        return False


# --------------------------------------------------------------------------- search


class _Entry:
    __slots__ = ("is_call", "match", "next", "op", "prev")

    def __init__(self, op: int, is_call: bool) -> None:
        self.op = op
        self.is_call = is_call
        self.match: _Entry | None = None
        self.prev: _Entry | None = None
        self.next: _Entry | None = None


class _Timeout(Exception):
    pass


@dataclass
class _Stuck:
    """The deepest configuration the search reached before backtracking."""

    order: list[int]  # linearized operations, in the order they took effect
    state: Any  # spec state after ``order``
    blocking: int  # the operation whose return could not be passed
    candidates: list[int]  # operations that could have taken effect next (all failed)


@dataclass
class _PartResult:
    key: Hashable
    ops: list[Operation]
    ok: bool | None
    order: list[int] = field(default_factory=list)  # witness when ok
    stuck: _Stuck | None = None
    initial: Any = None
    states: int = 0


def _build_list(ops: Sequence[Operation]) -> _Entry:
    events: list[tuple[int, int, int]] = []
    for i, op in enumerate(ops):
        events.append((op.call, 0, i))
        events.append((op.ret, 1, i))
    # equal instants: calls first, i.e. touching intervals count as overlapping
    events.sort()
    head = _Entry(-1, False)
    calls: dict[int, _Entry] = {}
    prev = head
    for _t, kind, i in events:
        e = _Entry(i, kind == 0)
        if kind == 0:
            calls[i] = e
        else:
            calls[i].match = e
        e.prev = prev
        prev.next = e
        prev = e
    return head


def _lift(e: _Entry) -> None:
    assert e.prev is not None and e.match is not None
    e.prev.next = e.next
    if e.next is not None:
        e.next.prev = e.prev
    m = e.match
    assert m.prev is not None
    m.prev.next = m.next
    if m.next is not None:
        m.next.prev = m.prev


def _unlift(e: _Entry) -> None:
    m = e.match
    assert m is not None and m.prev is not None and e.prev is not None
    m.prev.next = m
    if m.next is not None:
        m.next.prev = m
    e.prev.next = e
    if e.next is not None:
        e.next.prev = e


def _search(
    ops: Sequence[Operation], initial: Any, deadline: float | None, track: bool = True
) -> tuple[bool, list[int], _Stuck | None, int]:
    """Return (linearizable, witness order, deepest stuck point, states explored).

    Raises :class:`_Timeout` when ``deadline`` (a perf_counter value) passes.
    """
    if not ops:
        return True, [], None, 0
    head = _build_list(ops)
    state = initial
    linearized = 0
    stack: list[tuple[_Entry, Any]] = []
    seen: set[tuple[int, Hashable]] = set()
    best: _Stuck | None = None
    steps = 0
    entry: _Entry | None = head.next
    while head.next is not None:
        steps += 1
        if deadline is not None and not steps & 255 and time.perf_counter() > deadline:
            raise _Timeout
        assert entry is not None
        if entry.is_call:
            op = ops[entry.op]
            new_state = copy.deepcopy(state)
            if _matches(op, _apply(new_state, op)):
                new_lin = linearized | (1 << entry.op)
                key = (new_lin, _fingerprint_or_unique(new_state))
                if key not in seen:
                    seen.add(key)
                    stack.append((entry, state))
                    state = new_state
                    linearized = new_lin
                    _lift(entry)
                    entry = head.next
                    continue
            entry = entry.next
        else:
            # this operation must have taken effect before its return: backtrack
            if track and (best is None or len(stack) > len(best.order)):
                cands: list[int] = []
                e: _Entry | None = head.next
                while e is not None and e is not entry:
                    if e.is_call:
                        cands.append(e.op)
                    e = e.next
                best = _Stuck([s[0].op for s in stack], state, entry.op, cands)
            if not stack:
                return False, [], best, len(seen)
            top, state = stack.pop()
            linearized &= ~(1 << top.op)
            _unlift(top)
            entry = top.next
            assert entry is not None
    return True, [s[0].op for s in stack], None, len(seen)


# --------------------------------------------------------------------------- results


def _fmt_us(ns: int) -> str:
    us = ns / 1000.0
    if abs(us) >= 10_000:
        return f"{us / 1000.0:.2f} ms"
    return f"{us:.1f} µs"


def _table(ops: Iterable[Operation], t0: int) -> list[str]:
    rows = list(ops)
    if not rows:
        return []
    lo = min(op.call for op in rows)
    hi = max(op.ret for op in rows)
    span = max(hi - lo, 1)
    width = 24
    lines = []
    for op in rows:
        a = min(width - 1, int((op.call - lo) * width / span))
        b = max(a + 1, min(width, round((op.ret - lo) * width / span)))
        bar = " " * a + "=" * (b - a) + " " * (width - b)
        start = _fmt_us(op.call - t0)
        end = _fmt_us(op.ret - t0)
        lines.append(f"    T{op.thread:<2} |{bar}| {start:>11} .. {end:>11}  {op.describe()}")
    return lines


@dataclass
class Violation:
    """Why a history is not linearizable, located as precisely as the search allows.

    ``operations`` is a small set of mutually overlapping operations (sorted
    by call instant) such that, starting from ``state_before`` -- the spec
    state left by ``prefix``, the earlier operations taken in an order that
    explains them -- no sequential order of ``operations`` gives the recorded
    results (``verified``; when ``False`` the failure also depends on choices
    further back and ``operations`` is only where the search got stuck).
    ``attempt`` is the longest explainable order the search found inside the
    window and ``state_after`` the spec state after it; ``expected`` maps each
    operation that could not take effect next to what the spec would have
    returned (``"-> value"`` or ``"raises Type"``).

    **Thread safety.** Immutable once built; safe to share between threads.

    **Atomic operations.** None: a plain value object.

    **Iteration.** Not iterable; the fields are plain lists.

    **Blocking and timeouts.** Nothing blocks.

    **Complexity.** O(1) per field access.
    """

    operations: list[Operation]
    prefix: list[Operation]
    state_before: Any
    attempt: list[Operation]
    state_after: Any
    expected: list[tuple[Operation, str]]
    verified: bool


def _locate(part: _PartResult) -> Violation | None:
    stuck = part.stuck
    if stuck is None:
        return None
    ops = part.ops
    window, j, verified = _minimal_window(part, stuck)
    expected = [
        (ops[i], _apply(copy.deepcopy(stuck.state), ops[i]).describe()) for i in stuck.candidates
    ]
    return Violation(
        operations=sorted((ops[i] for i in window), key=lambda o: (o.call, o.thread)),
        prefix=[ops[i] for i in stuck.order[:j]],
        state_before=_replay_state(part, stuck.order[:j]),
        attempt=[ops[i] for i in stuck.order[j:] if i in window],
        state_after=stuck.state,
        expected=expected,
        verified=verified,
    )


def _explain_failure(part: _PartResult, head: str, v: Violation | None) -> str:
    ops = part.ops
    t0 = min(op.call for op in ops)
    lines = [f"NOT linearizable ({head})."]
    if part.key is not None:
        lines.append(f"The violation is in partition {part.key!r} ({len(ops)} operations).")
    if v is None:  # pragma: no cover - defensive
        lines.extend(_table(ops, t0))
        return "\n".join(lines)
    n = len(v.operations)
    lines.append("")
    if v.verified and n == 1:
        lines.append("No sequential order gives this operation its recorded result")
    elif v.verified:
        lines.append(f"No sequential order of these {n} overlapping operations gives their results")
    else:
        lines.append(f"The search for a sequential order got stuck at these {n} operations")
    if v.prefix:
        lines.append(f"(starting from the state left by the {len(v.prefix)} earlier operations,")
        lines.append(" taken in the order listed at the end):")
    else:
        lines.append("(starting from the initial state):")
    lines.extend(_table(v.operations, t0))
    lines.append("    times: call .. return, relative to the partition's first call; T<n>: thread")
    lines.append("")
    lines.append(f"State before them: {_state_repr(v.state_before)}")
    if v.attempt:
        lines.append(
            "Closest attempt: " + ", then ".join(f"T{o.thread} {o.describe()}" for o in v.attempt)
        )
        lines.append(f"  leaves {_state_repr(v.state_after)}; then nothing fits:")
    else:
        lines.append("Nothing fits as the next operation:")
    for op, exp in v.expected:
        lines.append(f"    T{op.thread} {op.describe()}, but the spec {exp}")
    if v.prefix:
        lines.append("")
        lines.append(f"Earlier operations ({len(v.prefix)}), in an order that explains them:")
        shown = v.prefix[-20:]
        if len(v.prefix) > 20:
            lines.append(f"    ... ({len(v.prefix) - 20} more before)")
        lines.extend(f"    {op}" for op in shown)
    return "\n".join(lines)


def _replay_state(part: _PartResult, order: Sequence[int]) -> Any:
    state = copy.deepcopy(part.initial)
    for i in order:
        _apply(state, part.ops[i])
    return state


def _drop_neutral(
    part: _PartResult, order: Sequence[int], j: int, window: list[int], deadline: float
) -> list[int]:
    """Drop linearized window operations that did not change the state, if the rest still fails.

    Removing an operation only removes constraints, so the smaller window
    still has no valid order; and since the dropped operation changed nothing
    where the search placed it, the failure does not hinge on its effect.
    """
    ops = part.ops
    state = _replay_state(part, order[:j])
    neutral: list[int] = []
    for i in order[j:]:
        before = _fingerprint_or_unique(state)
        _apply(state, ops[i])
        if _fingerprint_or_unique(state) == before:
            neutral.append(i)
    start = _replay_state(part, order[:j])
    for i in neutral:
        trial = [k for k in window if k != i]
        try:
            ok, _, _, _ = _search([ops[k] for k in trial], copy.deepcopy(start), deadline, False)
        except _Timeout:
            break
        if not ok:
            window = trial
    return window


def _minimal_window(part: _PartResult, stuck: _Stuck) -> tuple[list[int], int, bool]:
    """Pick the window of overlapping operations around the point the search got stuck.

    At the deepest configuration the search reached, every operation that
    could take effect next (the *candidates*; they all overlap the return
    instant that blocked the search, so there is at most one per thread)
    gives a wrong result. The window is the candidates plus the operations
    the search had already linearized that overlap them in time (from the
    first such one on, in linearization order); the operations before form a
    fixed prefix whose state is replayed. The window is verified to have no
    valid order from that state; if it has one (the failure depends on
    choices further back) the window is widened, one operation at a time.
    Finally linearized operations that did not change the state (reads) are
    dropped when the rest still has no valid order.
    Returns (operation indices, prefix length, verified).
    """
    ops = part.ops
    cands = set(stuck.candidates)

    def overlaps(i: int) -> bool:
        a = ops[i]
        return any(a.call <= ops[c].ret and ops[c].call <= a.ret for c in cands)

    order = stuck.order
    j = len(order)
    for k, i in enumerate(order):
        if overlaps(i):
            j = k
            break
    deadline = time.perf_counter() + 2.0
    while j >= 0:
        window = [*order[j:], *stuck.candidates]
        sub = [ops[i] for i in window]
        try:
            ok, _, _, _ = _search(sub, _replay_state(part, order[:j]), deadline, track=False)
        except _Timeout:
            break
        if not ok:
            return _drop_neutral(part, order, j, window, deadline), j, True
        j -= 1
    j = max(j, 0)
    return [*order[j:], *stuck.candidates], j, False


@dataclass
class LinearizabilityResult:
    """Outcome of :func:`check_linearizability`.

    ``ok`` is ``True`` (linearizable), ``False`` (a violation was found) or
    ``None`` (undecided: the search did not finish within the timeout).
    :meth:`explain` renders a readable report.

    **Thread safety.** Treat as immutable; :attr:`violation` is computed on
    first use (concurrent first uses may both compute it, harmlessly).

    **Atomic operations.** None: a report.

    **Iteration.** Not iterable; :attr:`linearization` and :attr:`history`
    are plain lists.

    **Blocking and timeouts.** Nothing blocks; computing :attr:`violation`
    re-runs small searches bounded by 2 s.

    **Complexity.** :meth:`explain` is linear in the history after the first
    :attr:`violation` computation.
    """

    ok: bool | None
    history: list[Operation]
    spec_name: str
    elapsed: float
    _parts: list[_PartResult] = field(default_factory=list, repr=False)
    _violation: Violation | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return (
            f"LinearizabilityResult(ok={self.ok!r}, operations={len(self.history)}, "
            f"partitions={len(self._parts)}, spec={self.spec_name}, "
            f"elapsed={self.elapsed * 1000:.1f} ms)"
        )

    @property
    def failing_partition(self) -> Hashable | None:
        """The partition key of the first violation (``None`` if there is none)."""
        for p in self._parts:
            if p.ok is False:
                return p.key
        return None

    @property
    def linearization(self) -> list[Operation] | None:
        """A witness when ``ok`` is True: the operations of each partition in an order
        the specification accepts (partitions concatenated); otherwise ``None``."""
        if self.ok is not True:
            return None
        return [p.ops[i] for p in self._parts for i in p.order]

    def explain(self) -> str:
        """A person-readable account of the verdict."""
        n = len(self.history)
        nparts = len(self._parts)
        head = (
            f"{n} operations, {nparts} partition{'s' if nparts != 1 else ''}, spec {self.spec_name}"
        )
        if self.ok is True:
            lines = [f"Linearizable ({head}; checked in {self.elapsed * 1000:.1f} ms)."]
            order = self.linearization or []
            if order:
                lines.append("One sequential order that explains it:")
                lines.extend(f"    {op}" for op in order[:40])
                if len(order) > 40:
                    lines.append(f"    ... ({len(order) - 40} more)")
            return "\n".join(lines)
        if self.ok is None:
            undecided = [p for p in self._parts if p.ok is None]
            keys = ", ".join(repr(p.key) for p in undecided[:5])
            biggest = max((len(p.ops) for p in undecided), default=0)
            return (
                f"Undecided ({head}): the search did not finish within the timeout "
                f"({self.elapsed:.2f} s). Undecided partition(s): {keys} "
                f"(largest has {biggest} operations). Check shorter histories, split them "
                "with partition=..., or raise the timeout."
            )
        part = next(p for p in self._parts if p.ok is False)
        return _explain_failure(part, head, self.violation)

    @property
    def violation(self) -> Violation | None:
        """Where the history fails (``None`` unless ``ok`` is False); computed once."""
        if self.ok is not False:
            return None
        if self._violation is None:
            part = next(p for p in self._parts if p.ok is False)
            self._violation = _locate(part)
        return self._violation


# --------------------------------------------------------------------------- entry point


def check_linearizability(
    history: Iterable[Operation],
    spec_factory: Callable[[], Any],
    *,
    partition: Callable[[Operation], Hashable] | None = None,
    timeout: float | None = None,
) -> LinearizabilityResult:
    """Decide whether ``history`` is linearizable with respect to a sequential spec.

    ``spec_factory()`` builds a fresh sequential reference object; each
    operation is replayed on it as ``getattr(spec, op.method)(*op.args,
    **op.kwargs)``, and must return a value equal (``==``) to the recorded
    result, or raise an exception of exactly the recorded exception's type.
    ``partition(op)`` (optional) maps each operation to a key; parts are
    checked independently (linearizability is local: a history is
    linearizable iff each part is, provided the parts touch disjoint state).
    ``timeout`` (seconds, for the whole check) makes the result ``ok=None``
    when the search has not finished in time.

    >>> from conctools.testing import Operation, check_linearizability
    >>> class Reg:
    ...     def __init__(self): self.v = 0
    ...     def write(self, v): self.v = v
    ...     def read(self): return self.v
    >>> h = [Operation(0, "write", (1,), call=0, ret=10),
    ...      Operation(1, "read", (), result=1, call=5, ret=6)]
    >>> check_linearizability(h, Reg).ok
    True
    >>> h2 = [Operation(0, "write", (1,), call=0, ret=1),
    ...       Operation(1, "read", (), result=0, call=5, ret=6)]
    >>> check_linearizability(h2, Reg).ok
    False
    """
    if timeout is not None and (isinstance(timeout, bool) or timeout < 0):
        raise ValueError("timeout must be a non-negative number or None")
    start = time.perf_counter()
    deadline = None if timeout is None else start + timeout
    ops = list(history)
    for op in ops:
        if not isinstance(op, Operation):
            raise TypeError(f"history items must be Operation, not {type(op).__name__}")
        if op.ret < op.call:
            raise ValueError(f"operation returns before it is called: {op}")
    groups: dict[Hashable, list[Operation]] = {}
    if partition is None:
        groups[None] = ops
    else:
        for op in ops:
            groups.setdefault(partition(op), []).append(op)
    parts: list[_PartResult] = []
    verdict: bool | None = True
    probe = spec_factory()
    spec_name = type(probe).__qualname__
    for method in {op.method for op in ops}:
        if not callable(getattr(probe, method, None)):
            raise AttributeError(f"the spec {spec_name} has no method {method!r}")
    # small partitions first: a violation is found sooner
    for key, group in sorted(groups.items(), key=lambda kv: len(kv[1])):
        initial = spec_factory()
        pr = _PartResult(key, group, None, initial=copy.deepcopy(initial))
        parts.append(pr)
        try:
            ok, order, stuck, states = _search(group, initial, deadline)
        except _Timeout:
            verdict = None
            continue
        pr.ok, pr.order, pr.stuck, pr.states = ok, order, stuck, states
        if not ok:
            verdict = False
            break
    if verdict is not False and any(p.ok is None for p in parts):
        verdict = None
    return LinearizabilityResult(verdict, ops, spec_name, time.perf_counter() - start, parts)
