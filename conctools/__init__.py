"""conctools: thread-safe shared-state primitives for free-threaded CPython.

Every primitive is correct on both builds of CPython (with and without the
GIL) and documents its locking semantics precisely.
"""

from __future__ import annotations

from ._internal.sentinel import MISSING
from ._runtime import RuntimeInfo, free_threaded_build, gil_enabled, runtime_info
from .atomic import AtomicBool, AtomicFloat, AtomicInt, AtomicRef
from .cache import CacheInfo, CacheStats, ConcurrentCache, Expiry, RemovalCause, cached
from .counters import (
    ConcurrentCounter,
    ConcurrentCounterHandle,
    StripedCounter,
    StripedCounterHandle,
)
from .queue import (
    AsyncQueueView,
    ConcurrentLifoQueue,
    ConcurrentPriorityQueue,
    ConcurrentQueue,
    PartialPut,
    QueueClosed,
    SyncQueueView,
)
from .rwlock import ReadLock, RWLock, RWLockPolicy, WriteLock
from .sharded_dict import ShardedDict, ShardedDictHandle
from .sharded_set import ShardedSet, ShardedSetHandle

__version__ = "0.1.0"

__all__ = [
    "MISSING",
    "AsyncQueueView",
    "AtomicBool",
    "AtomicFloat",
    "AtomicInt",
    "AtomicRef",
    "CacheInfo",
    "CacheStats",
    "ConcurrentCache",
    "ConcurrentCounter",
    "ConcurrentCounterHandle",
    "ConcurrentLifoQueue",
    "ConcurrentPriorityQueue",
    "ConcurrentQueue",
    "Expiry",
    "PartialPut",
    "QueueClosed",
    "RemovalCause",
    "RWLock",
    "RWLockPolicy",
    "ReadLock",
    "RuntimeInfo",
    "ShardedDict",
    "ShardedDictHandle",
    "ShardedSet",
    "ShardedSetHandle",
    "StripedCounter",
    "StripedCounterHandle",
    "SyncQueueView",
    "WriteLock",
    "__version__",
    "cached",
    "free_threaded_build",
    "gil_enabled",
    "runtime_info",
]
