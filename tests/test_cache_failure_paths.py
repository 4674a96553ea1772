"""Failure paths of ConcurrentCache and @cached: interrupts, failing installs,
extreme timeouts, exact statistics under thread churn, per-thread state
retirement, and the stdlib contracts of ``@cached``.

Each test failed on the cache as it was before these paths were fixed (the
finding it guards is named in its docstring).
"""

from __future__ import annotations

import copy
import gc
import math
import pickle
import signal
import sys
import threading
import time
from typing import Any

import pytest

from conctools.cache import ConcurrentCache, cached
from conctools.cache.decorator import _wrap
from conctools.testing import run_in_threads
from conctools.testing.faults import inject_faults

# Python 3.10 checks for a pending interrupt *before* the call that runs a
# ``with`` block's ``__exit__`` (after the block was popped): no pure-Python
# lock discipline survives an interrupt there, so these run on 3.12+ only.
needs_itimer = pytest.mark.skipif(
    not hasattr(signal, "setitimer") or sys.version_info < (3, 12),
    reason="fault injection needs signal.setitimer and Python 3.12+ (see comment)",
)


@pytest.fixture(autouse=True)
def _collect_first() -> None:
    # Caches of earlier tests die now, not during a fault run (their thread
    # tokens' __del__ would then meet the injected fault: "Exception ignored").
    gc.collect()


def _flights(c: ConcurrentCache[Any, Any]) -> int:
    return sum(len(s.loading) for s in c._stripes)


def _thread_entries(c: ConcurrentCache[Any, Any]) -> int:
    pt = getattr(c, "_pt", None)
    return len(pt) if pt is not None else len(c._registry)  # type: ignore[attr-defined]


# ------------------------------------------------------------ lock discipline


@needs_itimer
def test_interrupted_drain_never_leaves_the_maintenance_lock_held() -> None:
    """An interrupt between a try-lock's acquire and its ``try`` leaked the lock
    (the hit path drains every 64 reads)."""
    c: ConcurrentCache[int, int] = ConcurrentCache(16)
    c.put(1, 1)
    leaked: list[int] = []

    def check() -> None:
        if c._lock.locked():
            leaked.append(1)
            c._lock.release()

    report = inject_faults(
        lambda: [c.get(1) for _ in range(300)],
        attempts=300,
        min_delivered=21,
        check=check,
        max_delay=2e-4,
    )
    assert report.delivered > 20
    assert leaked == []


# ---------------------------------------------------------- single flight


class Collider:
    """Keys with one hash; ``__eq__`` raises while ``explode`` is set."""

    explode = False

    def __init__(self, name: str) -> None:
        self.name = name

    def __hash__(self) -> int:
        return 42

    def __eq__(self, other: object) -> bool:
        if Collider.explode:
            raise ValueError("eq exploded")
        return isinstance(other, Collider) and other.name == self.name

    def __repr__(self) -> str:
        return f"Collider({self.name})"


@pytest.fixture
def collider() -> Any:
    Collider.explode = False
    yield Collider
    Collider.explode = False


def test_failed_install_ends_the_flight(collider: Any) -> None:
    """Installing a loaded value failed: the finished load stayed registered, so
    others got the stale value forever, the loader never ran again and the
    loading thread later got "recursive load"."""
    c: ConcurrentCache[Any, int] = ConcurrentCache(8)
    a, b = collider("a"), collider("b")
    c.put(a, 0)

    def exploding_loader(k: Any) -> int:
        collider.explode = True  # the install compares b with a: raises
        return 1

    with pytest.raises(ValueError, match="eq exploded"):
        c.get_or_load(b, exploding_loader)
    collider.explode = False
    assert _flights(c) == 0
    calls: list[Any] = []
    assert c.get_or_load(b, lambda k: calls.append(k) or 2) == 2  # loads again, same thread
    assert calls == [b]
    assert c.get(b) == 2
    assert c.get(a) == 0
    s = c.stats()
    assert (s.loads, s.load_failures) == (2, 0)


def test_failed_install_gives_waiters_the_value(collider: Any) -> None:
    c: ConcurrentCache[Any, int] = ConcurrentCache(8)
    a, b = collider("a"), collider("b")
    c.put(a, 0)
    started, release = threading.Event(), threading.Event()
    got: list[Any] = []

    def loader(k: Any) -> int:
        started.set()
        release.wait(5)
        collider.explode = True
        return 7

    def waiter() -> None:
        got.append(c.get_or_load(b, lambda k: -1, timeout=5))

    def owner() -> None:
        with pytest.raises(ValueError):
            c.get_or_load(b, loader)

    t1 = threading.Thread(target=owner)
    t1.start()
    assert started.wait(5)
    t2 = threading.Thread(target=waiter)
    t2.start()
    time.sleep(0.05)
    release.set()
    t1.join(5)
    t2.join(5)
    assert got == [7]
    assert _flights(c) == 0


@needs_itimer
@pytest.mark.parametrize("ttl", [None, 60.0])
def test_interrupted_get_or_load_completes_and_unregisters_its_flight(ttl: Any) -> None:
    """An interrupt anywhere in get_or_load (loader, install, completion) must
    leave no flight registered and must wake every waiter."""
    c: ConcurrentCache[int, int] = ConcurrentCache(64, ttl=ttl)
    c.get(-1)  # this thread's buffer exists before the faults start
    n = [0]

    def target() -> None:
        n[0] += 1
        k = n[0] % 200
        c.get_or_load(k, lambda key: key * 2)
        c.invalidate(k)

    def check() -> None:
        assert _flights(c) == 0
        assert not c._lock.locked()

    def probe() -> None:
        assert c.get_or_load(10_000, lambda k: 5, timeout=5) == 5
        c.invalidate(10_000)
        c.stats()

    report = inject_faults(
        target,
        attempts=300,
        min_delivered=21,
        check=check,
        probe=probe,
        probe_every=10,
        max_delay=4e-5,
    )
    assert report.delivered > 20


# --------------------------------------------------------------- timeouts


@pytest.mark.parametrize("timeout", [math.inf, 1e300, threading.TIMEOUT_MAX * 10])
def test_huge_timeout_waits_instead_of_overflowing(timeout: float) -> None:
    """timeout=math.inf (or above threading.TIMEOUT_MAX) raised OverflowError."""
    c: ConcurrentCache[int, int] = ConcurrentCache(8)
    started, release = threading.Event(), threading.Event()

    def slow(k: int) -> int:
        started.set()
        release.wait(5)
        return 3

    t = threading.Thread(target=lambda: c.get_or_load(1, slow))
    t.start()
    assert started.wait(5)
    threading.Timer(0.05, release.set).start()
    assert c.get_or_load(1, lambda k: 0, timeout=timeout) == 3
    t.join(5)


# ------------------------------------------------------------------ stats


def test_stats_never_report_negative_hits(switch_interval: None) -> None:
    """A put bumped a counter before appending its record: a drain in between
    reported negative hits."""
    c: ConcurrentCache[int, int] = ConcurrentCache(8)
    c.put(1, 1)
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            for _ in range(100):
                c.put(1, 2)

    t = threading.Thread(target=writer)
    t.start()
    try:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            s = c.stats()
            assert s.hits == 0, s
    finally:
        stop.set()
        t.join(5)
    assert c.stats().hits == 0


def test_misses_of_exited_threads_are_never_lost(switch_interval: None) -> None:
    """Misses counted by a thread after the drainer read its buffer were lost
    when the dead thread's entry was pruned."""
    c: ConcurrentCache[int, int] = ConcurrentCache(8)
    stop = threading.Event()

    def drainer() -> None:
        while not stop.is_set():
            c.stats()

    d = threading.Thread(target=drainer)
    d.start()
    per, rounds, width = 200, 30, 8
    try:
        for _ in range(rounds):
            run_in_threads(lambda i: [c.get(-1) for _ in range(per)], width)
    finally:
        stop.set()
        d.join(5)
    assert c.stats().misses == per * rounds * width


def test_stats_exact_under_concurrent_clear(switch_interval: None) -> None:
    c: ConcurrentCache[int, int] = ConcurrentCache(8)
    n = 3000

    def body(i: int) -> None:
        if i == 0:
            for _ in range(200):
                c.clear()
            return
        for j in range(n):
            c.put(j % 4, j)
            c.get(j % 4)

    run_in_threads(body, 3)
    s = c.stats()
    assert s.hits + s.misses == 2 * n


# -------------------------------------------------------- per-thread state


def test_per_thread_state_is_retired_when_threads_exit() -> None:
    """The cache kept one entry per thread that ever touched it until a drain ran
    (10,000 short-lived threads -> 10,000 entries)."""
    c: ConcurrentCache[int, int] = ConcurrentCache(8)
    c.put(1, 1)
    for _ in range(500):  # sequential: thread idents are reused
        t = threading.Thread(target=c.get, args=(1,))
        t.start()
        t.join()
    assert _thread_entries(c) <= 1
    assert c.stats().hits == 500


# ---------------------------------------------------------------- @cached


@pytest.mark.parametrize("kw", [{"ttl": 60.0}, {"policy": "tinylfu"}, {}])
def test_cached_function_error_has_no_spurious_context(kw: dict[str, Any]) -> None:
    """With ttl= or policy="tinylfu" the function's exception carried a KeyError
    as ``__context__``."""

    @cached(maxsize=8, **kw)
    def f(x: int) -> int:
        raise ValueError(x)

    with pytest.raises(ValueError) as info:
        f(1)
    assert info.value.__context__ is None


def _depth_reached(deco: Any, limit: int) -> int:
    best = [limit * 2]

    def rec(n: int) -> int:
        best[0] = min(best[0], n)
        return n if n == 0 else rec_c(n - 1) + 0

    rec_c = deco(rec)
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(limit)
    try:
        rec_c(limit * 2)
    except RecursionError:
        pass
    finally:
        sys.setrecursionlimit(old)
    return limit * 2 - best[0]


@pytest.mark.parametrize("kw", [{"ttl": 600.0}, {"policy": "tinylfu"}], ids=["ttl", "tinylfu"])
def test_cached_recursion_depth_matches_the_lru_engine(kw: dict[str, Any]) -> None:
    """Recursive functions under @cached(ttl=...) hit RecursionError at a third of
    lru_cache's depth; every engine now adds one frame per call."""
    lru_depth = _depth_reached(cached(maxsize=10_000), 600)
    other = _depth_reached(cached(maxsize=10_000, **kw), 600)
    plain = _depth_reached(lambda f: f, 600)
    if sys.version_info >= (3, 12):  # (before, C calls count against the limit too)
        assert lru_depth >= 0.45 * plain
    assert other >= 0.9 * lru_depth


@cached(maxsize=4)
def module_level_lru(x: int) -> int:
    return x + 1


@cached(maxsize=4, ttl=60.0)
def module_level_ttl(x: int) -> int:
    return x + 2


@pytest.mark.parametrize("f", [module_level_lru, module_level_ttl], ids=["lru", "ttl"])
def test_cached_copy_deepcopy_pickle_like_lru_cache(f: Any) -> None:
    assert copy.copy(f) is f
    assert copy.deepcopy(f) is f
    assert pickle.loads(pickle.dumps(f)) is f
    assert f(1) == pickle.loads(pickle.dumps(f))(1)


def test_cached_on_a_subclass_method() -> None:
    class Base:
        @cached(maxsize=8)
        def f(self, x: int) -> int:
            return x * 2

    class Sub(Base):
        def f(self, x: int) -> int:
            return super().f(x) + 1

    s = Sub()
    assert s.f(2) == 5
    assert s.f(2) == 5
    assert Base.f.cache_info().hits == 1  # type: ignore[attr-defined]


@needs_itimer
@pytest.mark.parametrize("engine", ["lru_cache", "conctools"])
def test_cached_interrupted_calls_leave_no_flight(engine: str) -> None:
    calls = [0]

    def f(x: int) -> int:
        calls[0] += 1
        return x

    g = _wrap(f, 16, None, "lru", False, engine=engine)
    g(-1)  # (the conctools engine: this thread's buffer exists before the faults)
    n = [0]

    def target() -> None:
        for _ in range(20):
            n[0] += 1
            g(n[0] % 64)

    def check() -> None:
        flights = _lru_flights(g)
        assert flights == 0

    def probe() -> None:
        g(100_000)
        g.cache_info()

    report = inject_faults(
        target,
        attempts=300,
        min_delivered=21,
        check=check,
        probe=probe,
        probe_every=10,
        max_delay=4e-5,
    )
    assert report.delivered > 20


def _lru_flights(g: Any) -> int:
    """Registered flights of a @cached function of either engine."""
    if hasattr(g, "_cache"):
        return _flights(g._cache)
    return len(g._flights)


# ------------------------------------------- with/try coverage (bytecode)


def _unprotected_back_edges(path: str) -> list[tuple[str, int]]:
    """Backward jumps on lines of a ``with``/``try`` body that the exception
    table does not cover: an interrupt checked there skips ``__exit__`` /
    ``finally`` (CPython 3.12/3.13 compile a loop whose body ends with an
    ``if`` without ``else`` that way)."""
    import ast
    import dis
    import types
    from pathlib import Path

    src = Path(path).read_text(encoding="utf-8")
    tree = ast.parse(src)
    spans = []
    for node in ast.walk(tree):
        bodies: list[list[ast.stmt]] = []
        if isinstance(node, (ast.With, ast.AsyncWith)):
            bodies = [node.body]
        elif isinstance(node, ast.Try) and (
            node.finalbody
            or any(
                h.type is None or (isinstance(h.type, ast.Name) and h.type.id == "BaseException")
                for h in node.handlers
            )
        ):
            # clean-up code: a finally, or a catch-all that must run
            bodies = [node.body, *(h.body for h in node.handlers)]
        for body in bodies:
            spans.append((body[0].lineno, max(s.end_lineno or s.lineno for s in body)))

    def codes(co: types.CodeType) -> Any:
        yield co
        for c in co.co_consts:
            if isinstance(c, types.CodeType):
                yield from codes(c)

    bad = []
    for co in codes(compile(src, path, "exec")):
        table = dis._parse_exception_table(co)  # type: ignore[attr-defined]
        for ins in dis.get_instructions(co):
            line = ins.positions.lineno if ins.positions else None
            if ins.opname != "JUMP_BACKWARD" or line is None:
                continue
            if any(e.start <= ins.offset < e.end for e in table):
                continue
            if any(a <= line <= b for a, b in spans):
                bad.append((co.co_qualname, line))
    return bad


@pytest.mark.skipif(sys.version_info < (3, 12), reason="3.12+ bytecode (3.10 differs)")
@pytest.mark.parametrize("module", ["core", "decorator", "policies", "sketch", "stats"])
def test_no_back_edge_escapes_a_with_or_try(module: str) -> None:
    import conctools.cache

    path = f"{conctools.cache.__path__[0]}/{module}.py"
    assert _unprotected_back_edges(path) == []


@pytest.mark.skipif(sys.version_info < (3, 12), reason="3.12+ bytecode")
def test_back_edge_check_can_fail(tmp_path: Any) -> None:
    p = tmp_path / "broken.py"
    p.write_text(
        "def f(lock, bufs):\n    with lock:\n        for b in bufs:\n            if b:\n"
        "                b.clear()\n"
    )
    assert _unprotected_back_edges(str(p)) == [("f", 4)]


def test_lookups_during_thread_teardown_are_counted() -> None:
    """A get from a ``__del__`` run while the thread's locals are cleared is counted."""
    import threading as _threading

    from conctools.cache import ConcurrentCache as _Cache

    cache: _Cache[int, int] = _Cache(maxsize=8)
    cache.put(1, 1)
    local = _threading.local()

    class _OnTeardown:
        def __del__(self) -> None:
            cache.get(1)
            cache.get(2)

    def work() -> None:
        local.x = _OnTeardown()

    for _ in range(20):
        t = _threading.Thread(target=work)
        t.start()
        t.join()
    s = cache.stats()
    assert (s.hits, s.misses) == (20, 20)
