"""ShardedDict under contention: hypothesis state machine, each step a concurrent batch."""

from __future__ import annotations

from typing import Any

from _stateful_common import as_test
from hypothesis import strategies as st

from conctools import MISSING, ShardedDict
from conctools.testing.stateful import ConcurrentStateMachine

KEYS = st.sampled_from([0, 1, 2, "k"])
VALUES = st.integers(0, 3)
EXPECTED = st.one_of(VALUES, st.just(MISSING))


class DictSpec:
    def __init__(self) -> None:
        self.d: dict[Any, Any] = {}

    def __setitem__(self, key: Any, value: Any) -> None:
        self.d[key] = value

    def __getitem__(self, key: Any) -> Any:
        return self.d[key]

    def __delitem__(self, key: Any) -> None:
        del self.d[key]

    def __contains__(self, key: Any) -> bool:
        return key in self.d

    def __len__(self) -> int:
        return len(self.d)

    def get(self, key: Any, default: Any = None) -> Any:
        return self.d.get(key, default)

    def pop(self, key: Any, *default: Any) -> Any:
        return self.d.pop(key, *default)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        return self.d.setdefault(key, default)

    def get_or_set(self, key: Any, default: Any) -> Any:
        return self.d.setdefault(key, default)

    def increment(self, key: Any, delta: Any = 1) -> Any:
        self.d[key] = self.d.get(key, 0) + delta
        return self.d[key]

    def compare_and_set(self, key: Any, expected: Any, new: Any) -> bool:
        cur = self.d.get(key, MISSING)
        if cur is MISSING if expected is MISSING else (cur is not MISSING and cur == expected):
            if new is MISSING:
                self.d.pop(key, None)
            else:
                self.d[key] = new
            return True
        return False

    def snapshot(self) -> dict[Any, Any]:
        return dict(self.d)


class ShardedDictMachine(ConcurrentStateMachine):
    vocabulary = {  # noqa: RUF012
        "__setitem__": st.tuples(KEYS, VALUES),
        "__getitem__": st.tuples(KEYS),
        "__delitem__": st.tuples(KEYS),
        "__contains__": st.tuples(KEYS),
        "get": st.one_of(st.tuples(KEYS), st.tuples(KEYS, VALUES)),
        "pop": st.one_of(st.tuples(KEYS), st.tuples(KEYS, VALUES)),
        "setdefault": st.tuples(KEYS, VALUES),
        "get_or_set": st.tuples(KEYS, VALUES),
        "increment": st.tuples(st.sampled_from([0, 1]), st.integers(1, 2)),
        "compare_and_set": st.tuples(KEYS, EXPECTED, EXPECTED),
    }
    observations = {"__len__": st.just(()), "snapshot": st.just(())}  # noqa: RUF012

    def make_object(self) -> ShardedDict[Any, Any]:
        return ShardedDict(shards=2)

    def make_spec(self) -> DictSpec:
        return DictSpec()


TestShardedDictStateful = as_test(ShardedDictMachine)
