"""ConcurrentCache under contention: hypothesis state machine, each step a concurrent batch.

The cache is larger than the key set, so nothing is evicted and it must
behave as a dict: ``get``, ``put``, ``invalidate`` and ``c[key]`` are
documented linearizable per key. ``get_or_load`` is not (a put or invalidate
during a load wins, and the loaded value is then returned but not cached), so
it runs with the sequential observations of each step.
"""

from __future__ import annotations

from typing import Any

from _stateful_common import as_test
from hypothesis import strategies as st

from conctools import ConcurrentCache
from conctools.testing.stateful import ConcurrentStateMachine

KEYS = st.sampled_from([0, 1, 2])
VALUES = st.integers(10, 13)


def load(key: int) -> int:
    return key * 100


class CacheSpec:
    def __init__(self) -> None:
        self.d: dict[Any, Any] = {}

    def get(self, key: Any, default: Any = None) -> Any:
        return self.d.get(key, default)

    def __getitem__(self, key: Any) -> Any:
        return self.d[key]

    def __contains__(self, key: Any) -> bool:
        return key in self.d

    def put(self, key: Any, value: Any) -> None:
        self.d[key] = value

    def invalidate(self, key: Any) -> bool:
        return self.d.pop(key, self) is not self

    def get_or_load(self, key: Any, loader: Any) -> Any:
        if key not in self.d:
            self.d[key] = loader(key)
        return self.d[key]

    def __len__(self) -> int:
        return len(self.d)

    def clear(self) -> None:
        self.d.clear()


class CacheMachine(ConcurrentStateMachine):
    vocabulary = {  # noqa: RUF012
        "get": st.one_of(st.tuples(KEYS), st.tuples(KEYS, st.just(-1))),
        "__getitem__": st.tuples(KEYS),
        "__contains__": st.tuples(KEYS),
        "put": st.tuples(KEYS, VALUES),
        "invalidate": st.tuples(KEYS),
    }
    observations = {  # noqa: RUF012
        "__len__": st.just(()),
        "clear": st.just(()),
        "get_or_load": st.tuples(KEYS, st.just(load)),
    }

    def make_object(self) -> ConcurrentCache[Any, Any]:
        return ConcurrentCache(maxsize=64)

    def make_spec(self) -> CacheSpec:
        return CacheSpec()


TestConcurrentCacheStateful = as_test(CacheMachine)


class WeightedExpiringCacheMachine(CacheMachine):
    """The same contract with weights (room for every key), a long ttl, a
    removal listener and a W-TinyLFU policy: none of them may change what a
    reader sees when nothing is evicted or expires."""

    def make_object(self) -> ConcurrentCache[Any, Any]:
        return ConcurrentCache(
            maxweight=1000,
            weigher=lambda k, v: 1 + v % 7,
            ttl=3600.0,
            on_evict=lambda k, v, cause: None,
            policy="tinylfu",
        )


TestWeightedExpiringCacheStateful = as_test(WeightedExpiringCacheMachine)
