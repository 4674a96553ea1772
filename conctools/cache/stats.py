"""Immutable snapshot of a cache's counters."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CacheStats"]


@dataclass(frozen=True)
class CacheStats:
    """An immutable snapshot of a :class:`~conctools.cache.ConcurrentCache`'s counters.

    Returned by :meth:`ConcurrentCache.stats() <conctools.cache.ConcurrentCache.stats>`.
    Counters only grow over the life of a cache; subtract two snapshots
    (``later - earlier``) to get the activity between them.

    * ``hits``: lookups that found a live entry, including a caller of
      ``get_or_load`` that waited for another caller's successful load;
    * ``misses``: lookups that found no live entry (absent or expired), including
      every caller that ran a loader and every waiter whose shared load failed;
    * ``loads``: loader calls made by ``get_or_load`` (one per single-flight
      load, whatever the number of waiters);
    * ``load_failures``: loader calls that raised;
    * ``evictions``: entries dropped to respect ``maxsize``, including
      candidates the W-TinyLFU admission policy refused;
    * ``expirations``: entries dropped because their time-to-live or idle time
      ran out;
    * ``rejections``: values not admitted because they weigh more than the
      cache's whole ``maxweight`` (not counted in ``evictions``).

    Explicit removals (``invalidate``, ``clear``) are counted nowhere.

    **Thread safety.** Immutable (a frozen dataclass): safe to share.

    **Atomic operations.** None needed; ``stats()`` builds the snapshot under
    the cache's maintenance lock after applying every buffered access record,
    so the counters of one snapshot are mutually consistent.

    **Iteration.** Not iterable; compare (``==``), add and subtract snapshots.

    **Blocking and timeouts.** Nothing blocks.

    **Complexity.** O(1).
    """

    hits: int = 0
    misses: int = 0
    loads: int = 0
    load_failures: int = 0
    evictions: int = 0
    expirations: int = 0
    rejections: int = 0

    @property
    def requests(self) -> int:
        """``hits + misses``."""
        return self.hits + self.misses

    @property
    def hit_rate(self) -> float:
        """``hits / requests``, and ``1.0`` when there was no request (as in Caffeine)."""
        n = self.hits + self.misses
        return 1.0 if n == 0 else self.hits / n

    @property
    def miss_rate(self) -> float:
        """``misses / requests``, and ``0.0`` when there was no request."""
        n = self.hits + self.misses
        return 0.0 if n == 0 else self.misses / n

    def __sub__(self, other: CacheStats) -> CacheStats:
        if not isinstance(other, CacheStats):
            return NotImplemented
        return CacheStats(
            self.hits - other.hits,
            self.misses - other.misses,
            self.loads - other.loads,
            self.load_failures - other.load_failures,
            self.evictions - other.evictions,
            self.expirations - other.expirations,
            self.rejections - other.rejections,
        )

    def __add__(self, other: CacheStats) -> CacheStats:
        if not isinstance(other, CacheStats):
            return NotImplemented
        return CacheStats(
            self.hits + other.hits,
            self.misses + other.misses,
            self.loads + other.loads,
            self.load_failures + other.load_failures,
            self.evictions + other.evictions,
            self.expirations + other.expirations,
            self.rejections + other.rejections,
        )
