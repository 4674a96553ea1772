"""RWLock workloads: a read-mostly registry and the uncontended acquire/release cost.

The registry is two dicts that must agree (``a[k] == b[k]``): a writer
updates both under the write lock, a reader reads both under the read lock
and counts disagreements, so ``verify`` catches a lock that lets a reader see
half a write. Reader and writer throughput are reported separately (a fast
average can hide a starving writer).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from time import sleep
from typing import Any

from ...rwlock import RWLock, RWLockPolicy
from ..baselines import key_streams
from ..harness import Trial, Variant, Workload

NKEYS = 1024

# (read context, write context) factories for one shared lock.
Guards = tuple[Callable[[], AbstractContextManager[Any]], Callable[[], AbstractContextManager[Any]]]


def _registry_trial(
    threads: int,
    write_every: int,
    guards: Guards,
    optimistic: RWLock | None = None,
    read_delay: float = 0.0,
) -> Trial:
    a: dict[int, int] = dict.fromkeys(range(NKEYS), 0)
    b: dict[int, int] = dict.fromkeys(range(NKEYS), 0)
    streams = key_streams(threads, NKEYS)
    bad = [0] * threads
    wrote = [0] * threads
    read_cm, write_cm = guards

    def body_for(t: int) -> Callable[[int], dict[str, int]]:
        keys = streams[t]

        def body(n: int) -> dict[str, int]:
            m = len(keys) - 1
            reads = writes = mismatches = 0
            phase = (t * 7) % write_every  # threads do not write in lockstep
            rd, wr = read_cm, write_cm
            for i in range(n):
                k = keys[i & m]
                if (i + phase) % write_every == 0:
                    with wr():
                        v = a[k] + 1
                        a[k] = v
                        b[k] = v
                    writes += 1
                else:
                    with rd():
                        x = a[k]
                        if read_delay:
                            sleep(read_delay)  # a read that blocks (I/O, a remote call)
                        y = b[k]
                    if x != y:
                        mismatches += 1
                    reads += 1
            bad[t] = mismatches
            wrote[t] = writes
            return {"read": reads, "write": writes}

        return body

    def body_opt_for(t: int) -> Callable[[int], dict[str, int]]:
        assert optimistic is not None
        keys = streams[t]
        rw = optimistic

        def body(n: int) -> dict[str, int]:
            m = len(keys) - 1
            reads = writes = mismatches = 0
            phase = (t * 7) % write_every
            wr = rw.write
            opt, val = rw.optimistic, rw.validate
            for i in range(n):
                k = keys[i & m]
                if (i + phase) % write_every == 0:
                    with wr():
                        v = a[k] + 1
                        a[k] = v
                        b[k] = v
                    writes += 1
                else:
                    s = opt()
                    x = a[k]
                    y = b[k]
                    if not val(s):
                        with rw.read():
                            x = a[k]
                            y = b[k]
                    if x != y:
                        mismatches += 1
                    reads += 1
            bad[t] = mismatches
            wrote[t] = writes
            return {"read": reads, "write": writes}

        return body

    def verify(n: int) -> None:
        if sum(bad):
            raise AssertionError(f"readers saw {sum(bad)} torn registry entries")
        if a != b:
            raise AssertionError("registry halves disagree after the run")
        total = sum(a.values())
        if total != sum(wrote):
            raise AssertionError(f"lost writes: {total} != {sum(wrote)}")

    make = body_for if optimistic is None else body_opt_for
    return Trial([make(t) for t in range(threads)], verify)


def _variants(write_every: int, read_delay: float = 0.0) -> tuple[Variant, ...]:
    def lock_v(name: str, factory: Callable[[], Any], note: str) -> Variant:
        def make(threads: int) -> Trial:
            lk = factory()
            return _registry_trial(
                threads, write_every, (lambda: lk, lambda: lk), read_delay=read_delay
            )

        return Variant(name, make, note=note)

    def rw_v(policy: RWLockPolicy) -> Variant:
        def make(threads: int) -> Trial:
            rw = RWLock(policy)
            return _registry_trial(threads, write_every, (rw.read, rw.write), read_delay=read_delay)

        return Variant(
            f"RWLock({policy})", make, note=f"with rw.read() / with rw.write(), policy {policy!r}"
        )

    def opt_v() -> Variant:
        def make(threads: int) -> Trial:
            rw = RWLock("writer")
            return _registry_trial(threads, write_every, (rw.read, rw.write), optimistic=rw)

        return Variant(
            "RWLock optimistic",
            make,
            note="stamp = optimistic(); read; validate(stamp) else re-read under read()",
        )

    if read_delay:
        return (
            lock_v("Lock", threading.Lock, "with lock: for reads and writes"),
            rw_v("writer"),
            rw_v("reader"),
            rw_v("fair"),
        )
    return (
        lock_v("Lock", threading.Lock, "with lock: for reads and writes"),
        lock_v("RLock", threading.RLock, "with rlock: for reads and writes"),
        rw_v("writer"),
        rw_v("reader"),
        rw_v("fair"),
        opt_v(),
    )


# --------------------------------------------------------------- uncontended


def _micro(name: str, body_for: Callable[[], Callable[[int], None]], note: str) -> Variant:
    return Variant(name, lambda threads: Trial([body_for() for _ in range(threads)]), note=note)


def _lock_ar() -> Callable[[int], None]:
    lk = threading.Lock()

    def body(n: int) -> None:
        a, r = lk.acquire, lk.release
        for _ in range(n):
            a()
            r()

    return body


def _lock_with() -> Callable[[int], None]:
    lk = threading.Lock()

    def body(n: int) -> None:
        for _ in range(n):
            with lk:
                pass

    return body


def _rw_pair() -> Callable[[int], None]:
    rw = RWLock()

    def body(n: int) -> None:
        a, r = rw.acquire_read, rw.release_read
        for _ in range(n):
            a()
            r()

    return body


def _rw_with() -> Callable[[int], None]:
    rw = RWLock()

    def body(n: int) -> None:
        for _ in range(n):
            with rw.read():
                pass

    return body


def _rw_opt() -> Callable[[int], None]:
    rw = RWLock()

    def body(n: int) -> None:
        o, v = rw.optimistic, rw.validate
        for _ in range(n):
            v(o())

    return body


def _rw_reader_obj() -> Callable[[int], None]:
    rw = RWLock()

    def body(n: int) -> None:
        lk = rw.reader
        for _ in range(n):
            with lk:
                pass

    return body


def _rw_writer_obj() -> Callable[[int], None]:
    rw = RWLock()
    rw.acquire_read()  # a registered reader slot, as in real use
    rw.release_read()

    def body(n: int) -> None:
        lk = rw.writer
        for _ in range(n):
            with lk:
                pass

    return body


def _rw_write() -> Callable[[int], None]:
    rw = RWLock()
    rw.acquire_read()  # a registered reader slot, as in real use
    rw.release_read()

    def body(n: int) -> None:
        for _ in range(n):
            with rw.write():
                pass

    return body


WORKLOADS = [
    Workload(
        name="registry_95_5",
        group="rwlock",
        description="registry lookups, 95% reads / 5% writes, 1024 keys, one shared lock",
        baseline="Lock",
        variants=_variants(20),
        unit="ops",
    ),
    Workload(
        name="registry_99_1",
        group="rwlock",
        description="registry lookups, 99% reads / 1% writes, 1024 keys, one shared lock",
        baseline="Lock",
        variants=_variants(100),
        unit="ops",
    ),
    Workload(
        name="registry_blocking_reads",
        group="rwlock",
        description="95% reads that block 20 us inside the read lock (I/O) / 5% writes",
        baseline="Lock",
        variants=_variants(20, read_delay=20e-6),
        unit="ops",
    ),
    Workload(
        name="uncontended",
        group="rwlock",
        description="acquire + release with nothing else going on (per-thread locks at n>1)",
        baseline="Lock acquire/release",
        variants=(
            _micro("Lock acquire/release", _lock_ar, "lock.acquire(); lock.release()"),
            _micro("with Lock", _lock_with, "with lock: pass"),
            _micro("RWLock read pair", _rw_pair, "acquire_read(); release_read()"),
            _micro("with RWLock.read()", _rw_with, "with rw.read(): pass"),
            _micro("RWLock optimistic", _rw_opt, "validate(optimistic())"),
            _micro("with RWLock.write()", _rw_write, "with rw.write(): pass"),
            _micro("with rw.reader", _rw_reader_obj, "with rw.reader: pass (Lock-protocol object)"),
            _micro("with rw.writer", _rw_writer_obj, "with rw.writer: pass (Lock-protocol object)"),
        ),
        threads=(1,),
    ),
]

__all__ = ["WORKLOADS"]
