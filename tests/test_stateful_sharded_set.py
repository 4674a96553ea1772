"""ShardedSet under contention: hypothesis state machine, each step a concurrent batch."""

from __future__ import annotations

from typing import Any

from _stateful_common import as_test
from hypothesis import strategies as st

from conctools import ShardedSet
from conctools.testing.stateful import ConcurrentStateMachine

ITEMS = st.sampled_from([0, 1, 2, "x"])


class SetSpec:
    def __init__(self) -> None:
        self.s: set[Any] = set()

    def add(self, x: Any) -> None:
        self.s.add(x)

    def add_if_absent(self, x: Any) -> bool:
        if x in self.s:
            return False
        self.s.add(x)
        return True

    def discard(self, x: Any) -> None:
        self.s.discard(x)

    def remove(self, x: Any) -> None:
        self.s.remove(x)

    def __contains__(self, x: Any) -> bool:
        return x in self.s

    def __len__(self) -> int:
        return len(self.s)

    def snapshot(self) -> set[Any]:
        return set(self.s)


class ShardedSetMachine(ConcurrentStateMachine):
    vocabulary = {  # noqa: RUF012
        "add": st.tuples(ITEMS),
        "add_if_absent": st.tuples(ITEMS),
        "discard": st.tuples(ITEMS),
        "remove": st.tuples(ITEMS),
        "__contains__": st.tuples(ITEMS),
    }
    observations = {"__len__": st.just(()), "snapshot": st.just(())}  # noqa: RUF012

    def make_object(self) -> ShardedSet[Any]:
        return ShardedSet(shards=2)

    def make_spec(self) -> SetSpec:
        return SetSpec()


TestShardedSetStateful = as_test(ShardedSetMachine)
