"""Playbook workloads: what the runtime does to ordinary code.

These measure no conctools structure.  They back the numbers in the
"concurrency playbook" page: CPU-bound Python in threads against processes,
the cost of a contended lock, and the ``dict.get`` pitfall of CPython 3.13t.
"""

from __future__ import annotations

import atexit
import multiprocessing
import multiprocessing.pool
import threading

from ..baselines import key_streams
from ..harness import Body, Trial, Variant, Workload

__all__ = ["WORKLOADS", "cpu_task"]


def cpu_task(n: int) -> int:
    """A pure-Python CPU-bound loop (module level so processes can run it)."""
    s = 0
    for i in range(n):
        s += (i * i) % 7
    return s


def _threads_variant() -> Variant:
    def make(threads: int) -> Trial:
        def body(n: int) -> None:
            cpu_task(n)

        return Trial([body] * threads)

    return Variant("threads", make, note="each thread runs the loop itself")


_POOLS: dict[int, multiprocessing.pool.Pool] = {}
_POOLS_LOCK = threading.Lock()


def _pool(size: int) -> multiprocessing.pool.Pool:
    with _POOLS_LOCK:
        pool = _POOLS.get(size)
        if pool is None:
            # spawn: forking a process that runs threads is unsafe.
            pool = multiprocessing.get_context("spawn").Pool(size)
            pool.map(cpu_task, [1] * size)  # start the workers before timing
            _POOLS[size] = pool
        return pool


@atexit.register
def _close_pools() -> None:
    for pool in _POOLS.values():
        pool.terminate()
    _POOLS.clear()


def _processes_variant() -> Variant:
    def make(threads: int) -> Trial:
        pool = _pool(threads)

        def body(n: int) -> None:
            pool.apply(cpu_task, (n,))

        return Trial([body] * threads)

    return Variant(
        "processes",
        make,
        note="each thread hands the loop to its own worker process (multiprocessing, spawn)",
    )


def _lock_variant(shared: bool) -> Variant:
    def make(threads: int) -> Trial:
        common = threading.Lock()
        locks = [common if shared else threading.Lock() for _ in range(threads)]
        cells = [[0] for _ in range(threads)]

        def body_for(lock: threading.Lock, cell: list[int]) -> Body:
            def body(n: int) -> None:
                for _ in range(n):
                    with lock:
                        cell[0] += 1

            return body

        return Trial([body_for(lk, c) for lk, c in zip(locks, cells, strict=True)])

    if shared:
        return Variant("one shared Lock", make, note="every thread takes the same lock")
    return Variant("Lock per thread", make, note="same work, each thread has its own lock")


def _dict_read_variant(kind: str) -> Variant:
    def make(threads: int) -> Trial:
        d = dict.fromkeys(range(1024), 0)  # created (owned) by the timing thread
        streams = key_streams(threads, 1024)

        def body_for(keys: list[int]) -> Body:
            m = len(keys) - 1
            if kind == "get":

                def body(n: int) -> None:
                    for i in range(n):
                        d.get(keys[i & m])

            elif kind == "in":

                def body(n: int) -> None:
                    for i in range(n):
                        keys[i & m] in d  # noqa: B015

            else:

                def body(n: int) -> None:
                    for i in range(n):
                        d[keys[i & m]]

            return body

        return Trial([body_for(s) for s in streams])

    labels = {"get": "d.get(k)", "in": "k in d", "index": "d[k]"}
    return Variant(labels[kind], make)


WORKLOADS = [
    Workload(
        name="cpu_bound",
        group="playbook",
        description="pure-Python CPU loop: threads vs processes",
        baseline="threads",
        variants=(_threads_variant(), _processes_variant()),
        unit="iterations",
    ),
    Workload(
        name="lock_contention",
        group="playbook",
        description="increment under a lock: one shared lock vs a lock per thread",
        baseline="one shared Lock",
        variants=(_lock_variant(True), _lock_variant(False)),
    ),
    Workload(
        name="dict_read_pitfall",
        group="playbook",
        description="read-only lookups in a dict built by another (blocked) thread",
        baseline="d[k]",
        variants=(_dict_read_variant("index"), _dict_read_variant("get"), _dict_read_variant("in")),
    ),
]
