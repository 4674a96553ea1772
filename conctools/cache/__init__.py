"""A bounded, thread-safe cache (LRU or W-TinyLFU, TTL, single-flight loading) and ``@cached``."""

from __future__ import annotations

from .core import ConcurrentCache, Expiry, RemovalCause
from .decorator import CacheInfo, cached
from .stats import CacheStats

__all__ = [
    "CacheInfo",
    "CacheStats",
    "ConcurrentCache",
    "Expiry",
    "RemovalCause",
    "cached",
]
