"""Queue workloads: items per second through a queue, n producers + n consumers.

Each producer puts ``n_ops`` distinct ints, each consumer takes ``n_ops``
items (so every item put is taken); a run's count is the number of items
delivered. ``verify`` checks the exact multiset delivered (nothing lost or
duplicated) and that each consumer saw each producer's items in order.

Baselines specific to queues live here: :class:`queue.Queue`,
:class:`queue.SimpleQueue` (unbounded only), the ``collections.deque`` +
``threading.Condition`` queue people write by hand, :class:`queue.LifoQueue`,
:class:`queue.PriorityQueue` and :class:`asyncio.Queue` (one event loop).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from conctools.bench.harness import Body, Trial, Variant, Workload
from conctools.queue import ConcurrentLifoQueue, ConcurrentPriorityQueue, ConcurrentQueue

__all__ = ["WORKLOADS", "DequeConditionQueue"]

BATCH = 64
BOUND = 64
THREADS_NOTE = "n producers + n consumers (2n threads); items/s delivered"


class DequeConditionQueue:
    """The hand-written queue: a deque, one lock, two Conditions, notify per op."""

    def __init__(self, maxsize: int = 0) -> None:
        self._maxsize = maxsize
        self._items: deque[Any] = deque()
        lock = threading.Lock()
        self._not_empty = threading.Condition(lock)
        self._not_full = threading.Condition(lock)

    def put(self, item: Any) -> None:
        with self._not_full:
            if self._maxsize > 0:
                while len(self._items) >= self._maxsize:
                    self._not_full.wait()
            self._items.append(item)
            self._not_empty.notify()

    def get(self) -> Any:
        with self._not_empty:
            while not self._items:
                self._not_empty.wait()
            item = self._items.popleft()
            if self._maxsize > 0:
                self._not_full.notify()
            return item


def _verify(outs: list[list[int]], threads: int, ordered: bool = True) -> Callable[[int], None]:
    def verify(n: int) -> None:
        got: list[int] = []
        for out in outs:
            got.extend(out)
            last: dict[int, int] = {}
            for x in out:
                p = x // n
                if ordered and last.get(p, -1) >= x:
                    raise AssertionError(f"producer {p}'s items reordered: {x} after {last[p]}")
                last[p] = x
        if len(got) != n * threads or sorted(got) != list(range(n * threads)):
            raise AssertionError(f"queue lost or duplicated items: {len(got)} != {n * threads}")

    return verify


def _per_item_trial(threads: int, q: Any, *, put_name: str = "put", get_name: str = "get") -> Trial:
    return _trial(threads, q, put_name, get_name, True)


def _trial(threads: int, q: Any, put_name: str, get_name: str, ordered: bool) -> Trial:
    outs: list[list[int]] = [[] for _ in range(threads)]

    def producer(p: int) -> Body:
        def body(n: int) -> int:
            put = getattr(q, put_name)
            base = p * n
            for i in range(base, base + n):
                put(i)
            return 0

        return body

    def consumer(c: int) -> Body:
        def body(n: int) -> int:
            get = getattr(q, get_name)
            out = outs[c]
            append = out.append
            for _ in range(n):
                append(get())
            return n

        return body

    bodies = [producer(i) for i in range(threads)] + [consumer(i) for i in range(threads)]
    return Trial(bodies, _verify(outs, threads, ordered))


def _batch_trial(threads: int, q: ConcurrentQueue[int], batch: int) -> Trial:
    outs: list[list[int]] = [[] for _ in range(threads)]

    def producer(p: int) -> Body:
        def body(n: int) -> int:
            put_many = q.put_many
            base = p * n
            end = base + n
            for i in range(base, end, batch):
                put_many(list(range(i, min(i + batch, end))))
            return 0

        return body

    def consumer(c: int) -> Body:
        def body(n: int) -> int:
            get_many = q.get_many
            out = outs[c]
            extend = out.extend
            got = 0
            while got < n:
                b = get_many(min(batch, n - got))
                extend(b)
                got += len(b)
            return n

        return body

    bodies = [producer(i) for i in range(threads)] + [consumer(i) for i in range(threads)]
    return Trial(bodies, _verify(outs, threads))


def _variant(name: str, factory: Callable[[], Any], note: str) -> Variant:
    return Variant(name, lambda t: _per_item_trial(t, factory()), note=note)


def _batch_variant(name: str, maxsize: int, batch: int) -> Variant:
    return Variant(
        name,
        lambda t: _batch_trial(t, ConcurrentQueue(maxsize), batch),
        note=f"put_many / get_many in batches of {batch}",
    )


def _variants(maxsize: int) -> tuple[Variant, ...]:
    out = [
        _variant(
            "ConcurrentQueue",
            lambda: ConcurrentQueue[int](maxsize),
            "conctools.queue.ConcurrentQueue put/get",
        ),
        _variant("queue.Queue", lambda: queue.Queue(maxsize), "stdlib queue.Queue put/get"),
    ]
    if maxsize <= 0:
        out.append(
            _variant(
                "queue.SimpleQueue", queue.SimpleQueue, "stdlib queue.SimpleQueue (C, unbounded)"
            )
        )
    out.append(
        _variant(
            "deque+Condition",
            lambda: DequeConditionQueue(maxsize),
            "collections.deque + threading.Condition, notify on every op",
        )
    )
    return tuple(out)


def _batch_variants(maxsize: int) -> tuple[Variant, ...]:
    return (
        _variant(
            "ConcurrentQueue per item",
            lambda: ConcurrentQueue[int](maxsize),
            "put/get one item at a time",
        ),
        _batch_variant(f"ConcurrentQueue batch {BATCH}", maxsize, BATCH),
        _variant("queue.Queue", lambda: queue.Queue(maxsize), "stdlib queue.Queue put/get"),
    )


def _order_variant(name: str, factory: Callable[[], Any], note: str) -> Variant:
    # LIFO and priority orders do not keep one producer's items in order.
    return Variant(name, lambda t: _trial(t, factory(), "put", "get", False), note=note)


def _async_trial(threads: int, make: Callable[[], tuple[Any, Any]]) -> Trial:
    """One thread runs one event loop with n producer and n consumer coroutines."""
    outs: list[list[int]] = [[] for _ in range(threads)]

    def body(n: int) -> int:
        async def main() -> None:
            put, get = make()

            async def producer(p: int) -> None:
                for i in range(p * n, p * n + n):
                    await put(i)

            async def consumer(c: int) -> None:
                out = outs[c]
                for _ in range(n):
                    out.append(await get())

            await asyncio.gather(
                *(producer(p) for p in range(threads)), *(consumer(c) for c in range(threads))
            )

        asyncio.run(main())
        return n * threads

    return Trial([body], _verify(outs, threads))


def _async_variants(maxsize: int) -> tuple[Variant, ...]:
    def ours() -> tuple[Any, Any]:
        aq = ConcurrentQueue[int](maxsize).async_q
        return aq.put, aq.get

    def stdlib() -> tuple[Any, Any]:
        q: asyncio.Queue[int] = asyncio.Queue(maxsize)
        return q.put, q.get

    return (
        Variant(
            "ConcurrentQueue.async_q",
            lambda t: _async_trial(t, ours),
            note="await q.async_q.put()/get() on one event loop",
        ),
        Variant(
            "asyncio.Queue",
            lambda t: _async_trial(t, stdlib),
            note="stdlib asyncio.Queue (single loop, not thread-safe)",
        ),
    )


WORKLOADS = [
    Workload(
        name="queue_unbounded",
        group="queue",
        description="n producers -> unbounded queue -> n consumers, one item per call",
        baseline="queue.Queue",
        variants=_variants(0),
        unit="items",
        threads_note=THREADS_NOTE,
    ),
    Workload(
        name="queue_bounded64",
        group="queue",
        description=f"n producers -> queue bounded at {BOUND} -> n consumers, one item per call",
        baseline="queue.Queue",
        variants=_variants(BOUND),
        unit="items",
        threads_note=THREADS_NOTE,
    ),
    Workload(
        name="queue_batch64_unbounded",
        group="queue",
        description=f"put_many/get_many in batches of {BATCH} vs per item, unbounded",
        baseline="ConcurrentQueue per item",
        variants=_batch_variants(0),
        unit="items",
        threads_note=THREADS_NOTE,
    ),
    Workload(
        name="queue_batch64_bounded",
        group="queue",
        description=f"put_many/get_many in batches of {BATCH} vs per item, bounded at {BOUND}",
        baseline="ConcurrentQueue per item",
        variants=_batch_variants(BOUND),
        unit="items",
        threads_note=THREADS_NOTE,
    ),
    Workload(
        name="queue_lifo_priority",
        group="queue",
        description=(
            f"n producers -> LIFO / priority queue bounded at {BOUND} -> n consumers, "
            "one item per call"
        ),
        baseline="queue.PriorityQueue",
        variants=(
            _order_variant(
                "ConcurrentPriorityQueue",
                lambda: ConcurrentPriorityQueue[int](BOUND),
                "conctools ConcurrentPriorityQueue put/get",
            ),
            _order_variant(
                "queue.PriorityQueue", lambda: queue.PriorityQueue(BOUND), "stdlib PriorityQueue"
            ),
            _order_variant(
                "ConcurrentLifoQueue",
                lambda: ConcurrentLifoQueue[int](BOUND),
                "conctools ConcurrentLifoQueue put/get",
            ),
            _order_variant("queue.LifoQueue", lambda: queue.LifoQueue(BOUND), "stdlib LifoQueue"),
        ),
        unit="items",
        threads_note=THREADS_NOTE,
    ),
    Workload(
        name="queue_async_single_loop",
        group="queue",
        description=(
            f"one event loop, n producer and n consumer coroutines, queue bounded at {BOUND}"
        ),
        baseline="asyncio.Queue",
        variants=_async_variants(BOUND),
        unit="items",
        threads_note="n producer + n consumer coroutines on one loop (one thread); items/s",
    ),
]
