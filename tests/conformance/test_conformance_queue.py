"""CPython's queue tests run against conctools' queues and their views.

``Lib/test/test_queue.py`` (the ``queue.Queue``/``LifoQueue``/``PriorityQueue``
tests) runs against the queues themselves and against ``q.sync_q``;
``Lib/test/test_asyncio/test_queues.py`` against ``q.async_q``. The vendored
tests name the type under test through ``self.queue`` (a module-like
namespace) or ``asyncio.Queue``; the adapter binds those names to our types
with the stdlib class names (``basic_queue_test`` looks the expected order up
by class name). Every skip is a row in DEVIATIONS.md.
"""

from __future__ import annotations

import asyncio
import queue as std_queue
import sys
import types
import unittest
from typing import Any

import pytest

import conctools.queue as cq

from . import cpython_test_queue as ctq
from . import cpython_test_queues as ctqs

pytestmark = pytest.mark.timeout(120)


# ------------------------------------------------------------ queue.Queue


def _queue_namespace(view: bool) -> types.SimpleNamespace:
    if view:

        class Queue(cq.SyncQueueView[Any]):
            __slots__ = ()

            def __init__(self, maxsize: int = 0) -> None:
                super().__init__(cq.ConcurrentQueue(maxsize))

        class LifoQueue(cq.SyncQueueView[Any]):
            __slots__ = ()

            def __init__(self, maxsize: int = 0) -> None:
                super().__init__(cq.ConcurrentLifoQueue(maxsize))

        class PriorityQueue(cq.SyncQueueView[Any]):
            __slots__ = ()

            def __init__(self, maxsize: int = 0) -> None:
                super().__init__(cq.ConcurrentPriorityQueue(maxsize))

    else:

        class Queue(cq.ConcurrentQueue[Any]):  # type: ignore[no-redef]
            __slots__ = ()

        class LifoQueue(cq.ConcurrentLifoQueue[Any]):  # type: ignore[no-redef]
            __slots__ = ()

        class PriorityQueue(cq.ConcurrentPriorityQueue[Any]):  # type: ignore[no-redef]
            __slots__ = ()

    return types.SimpleNamespace(
        Queue=Queue,
        LifoQueue=LifoQueue,
        PriorityQueue=PriorityQueue,
        Full=std_queue.Full,
        Empty=std_queue.Empty,
        ShutDown=cq.ShutDown,
    )


QUEUE_NS = _queue_namespace(view=False)
SYNC_Q_NS = _queue_namespace(view=True)


class TestConcurrentQueue(ctq.QueueTest, unittest.TestCase):
    queue = QUEUE_NS


class TestConcurrentLifoQueue(ctq.LifoQueueTest, unittest.TestCase):
    queue = QUEUE_NS


class TestConcurrentPriorityQueue(ctq.PriorityQueueTest, unittest.TestCase):
    queue = QUEUE_NS


class TestSyncQ(ctq.QueueTest, unittest.TestCase):
    queue = SYNC_Q_NS


class TestSyncQLifo(ctq.LifoQueueTest, unittest.TestCase):
    queue = SYNC_Q_NS


class TestSyncQPriority(ctq.PriorityQueueTest, unittest.TestCase):
    queue = SYNC_Q_NS


# FailingQueueTest subclasses the queue and overrides _put/_get: not
# supported (DEVIATIONS.md); the SimpleQueue tests are for another type.


# ---------------------------------------------------------- asyncio.Queue


def _async_factory(cls: type[cq.ConcurrentQueue[Any]], name: str) -> type:
    class View(cq.AsyncQueueView[Any]):
        __slots__ = ()

        def __init__(self, maxsize: int = 0) -> None:
            super().__init__(cls(maxsize))

    View.__name__ = View.__qualname__ = name
    return View


class _AsyncioProxy(types.ModuleType):
    """``asyncio`` with Queue/LifoQueue/PriorityQueue bound to ``async_q`` views."""

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)


_proxy = _AsyncioProxy("asyncio")
_proxy.Queue = _async_factory(cq.ConcurrentQueue, "Queue")  # type: ignore[attr-defined]
_proxy.LifoQueue = _async_factory(cq.ConcurrentLifoQueue, "LifoQueue")  # type: ignore[attr-defined]
_proxy.PriorityQueue = _async_factory(cq.ConcurrentPriorityQueue, "PriorityQueue")  # type: ignore[attr-defined]
if sys.version_info < (3, 13):
    _proxy.QueueShutDown = cq.QueueShutDown  # type: ignore[attr-defined]
ctqs.asyncio = _proxy  # the vendored module's global "asyncio"


class TestAsyncQBasic(ctqs.QueueBasicTests):
    pass


class TestAsyncQGet(ctqs.QueueGetTests):
    pass


class TestAsyncQPut(ctqs.QueuePutTests):
    pass


class TestAsyncQLifo(ctqs.LifoQueueTests):
    pass


class TestAsyncQPriority(ctqs.PriorityQueueTests):
    pass


class TestAsyncQJoin(ctqs._QueueJoinTestMixin, unittest.IsolatedAsyncioTestCase):
    q_class = _proxy.Queue  # type: ignore[attr-defined]


class TestAsyncQLifoJoin(ctqs._QueueJoinTestMixin, unittest.IsolatedAsyncioTestCase):
    q_class = _proxy.LifoQueue  # type: ignore[attr-defined]


class TestAsyncQPriorityJoin(ctqs._QueueJoinTestMixin, unittest.IsolatedAsyncioTestCase):
    q_class = _proxy.PriorityQueue  # type: ignore[attr-defined]


class TestAsyncQShutdown(ctqs._QueueShutdownTestMixin, unittest.IsolatedAsyncioTestCase):
    q_class = _proxy.Queue  # type: ignore[attr-defined]


class TestAsyncQLifoShutdown(ctqs._QueueShutdownTestMixin, unittest.IsolatedAsyncioTestCase):
    q_class = _proxy.LifoQueue  # type: ignore[attr-defined]


class TestAsyncQPriorityShutdown(ctqs._QueueShutdownTestMixin, unittest.IsolatedAsyncioTestCase):
    q_class = _proxy.PriorityQueue  # type: ignore[attr-defined]


# ------------------------------------------------------------- deviations
# Each is a row in DEVIATIONS.md and a documented difference on the queue page.

PRIVATE = "uses asyncio.Queue's private attributes (_getters/_putters/_format/_unfinished_tasks)"
SKIPS: dict[type, dict[str, str]] = {
    TestAsyncQBasic: {
        "test_generic_alias": "q_class[int] is a typing generic alias, not types.GenericAlias",
        "test_repr": "repr() names the view and the queue's state, not asyncio's format",
        "test_str": "str() names the view and the queue's state, not asyncio's format",
    },
    TestAsyncQGet: {
        "test_cancelled_getters_not_being_held_in_self_getters": PRIVATE,
        "test_get_with_putters": PRIVATE,
    },
    TestAsyncQPut: {
        "test_cancelled_puts_not_being_held_in_self_putters": PRIVATE,
        "test_float_maxsize": "maxsize must be an int (TypeError for 1.3)",
    },
}
for _cls in (
    TestAsyncQJoin,
    TestAsyncQLifoJoin,
    TestAsyncQPriorityJoin,
    TestAsyncQShutdown,
    TestAsyncQLifoShutdown,
    TestAsyncQPriorityShutdown,
):
    SKIPS[_cls] = {"test_format": PRIVATE}

for _cls, _tests in SKIPS.items():
    for _test, _reason in _tests.items():
        assert hasattr(_cls, _test), (_cls, _test)
        setattr(_cls, _test, unittest.skip(_reason)(getattr(_cls, _test)))

if sys.version_info < (3, 11):
    _TG = "the test uses asyncio.TaskGroup (Python 3.11+)"
    for _cls, _test in (
        (TestAsyncQGet, "test_why_are_getters_waiting"),
        (TestAsyncQPut, "test_get_cancel_drop_many_pending_readers"),
        (TestAsyncQPut, "test_why_are_putters_waiting"),
        (TestAsyncQJoin, "test_task_done"),
        (TestAsyncQLifoJoin, "test_task_done"),
        (TestAsyncQPriorityJoin, "test_task_done"),
    ):
        setattr(_cls, _test, unittest.skip(_TG)(getattr(_cls, _test)))
