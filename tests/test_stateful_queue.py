"""ConcurrentQueue under contention: hypothesis state machine, each step a concurrent batch."""

from __future__ import annotations

import queue
from typing import Any

from _stateful_common import as_test
from hypothesis import strategies as st

from conctools import ConcurrentQueue
from conctools.testing.stateful import ConcurrentStateMachine

ITEMS = st.integers(0, 9)
MAXSIZE = 3


class QueueSpec:
    def __init__(self) -> None:
        self.items: list[Any] = []

    def put_nowait(self, item: Any) -> None:
        if len(self.items) >= MAXSIZE:
            raise queue.Full
        self.items.append(item)

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        self.put_nowait(item)  # only called with block=False

    def get_nowait(self) -> Any:
        if not self.items:
            raise queue.Empty
        return self.items.pop(0)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        return self.get_nowait()  # only called with block=False

    def qsize(self) -> int:
        return len(self.items)

    def empty(self) -> bool:
        return not self.items

    def full(self) -> bool:
        return len(self.items) >= MAXSIZE


class QueueMachine(ConcurrentStateMachine):
    vocabulary = {  # noqa: RUF012
        "put_nowait": st.tuples(ITEMS),
        "get_nowait": st.just(()),
        "put": st.tuples(ITEMS, st.just(False)),
        "get": st.just((False,)),
    }
    observations = {  # noqa: RUF012
        "qsize": st.just(()),
        "empty": st.just(()),
        "full": st.just(()),
    }

    def make_object(self) -> ConcurrentQueue[Any]:
        return ConcurrentQueue(maxsize=MAXSIZE)

    def make_spec(self) -> QueueSpec:
        return QueueSpec()


TestConcurrentQueueStateful = as_test(QueueMachine)
