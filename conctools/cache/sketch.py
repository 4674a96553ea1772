"""Count-min sketch of access frequencies with periodic aging (TinyLFU).

Not thread-safe: the cache only touches it under its maintenance lock.
"""

from __future__ import annotations

from collections.abc import Hashable

__all__ = ["FrequencySketch"]

_M64 = (1 << 64) - 1
# Odd 64-bit multipliers (from Caffeine's FrequencySketch and splitmix64).
_SEEDS = (0x97CB3127_A1B3C5E9, 0xC3A5C85C_97CB3127, 0xB492B66F_BE98F273, 0x9AE16A3B_2F90404F)
_MAX = 15  # 4-bit counters, as in Caffeine


class FrequencySketch:
    """Approximate access counts of keys, in ``depth = 4`` rows of ``width`` counters.

    ``increment(key)`` adds one to the key's counter in every row (capped at
    15); ``frequency(key)`` is the minimum over the rows, an over-estimate of the
    true count.  After ``sample_size`` increments (10 x width by default) every
    counter is halved ("aging"), so that the sketch follows a changing
    popularity instead of remembering the distant past.  With ``doorkeeper=True``
    a key's first occurrence in each aging period only sets a bit in a small
    Bloom filter; it reaches the counters from its second occurrence, which
    keeps one-hit wonders out of the counters (frequency adds the doorkeeper
    bit back).
    """

    __slots__ = ("_door", "_door_mask", "_mask", "_rows", "_sample", "_shift", "_size", "_width")

    def __init__(self, capacity: int, *, doorkeeper: bool = False, sample_factor: int = 10) -> None:
        width = 16
        while width < capacity:
            width <<= 1
        self._width = width
        self._mask = width - 1
        self._shift = 64 - (width.bit_length() - 1)
        self._rows: list[list[int]] = [[0] * width for _ in _SEEDS]
        self._sample = sample_factor * width
        self._size = 0
        self._door: bytearray | None = bytearray(width * 4) if doorkeeper else None
        self._door_mask = width * 4 - 1

    @property
    def sample_size(self) -> int:
        """Number of increments between two halvings."""
        return self._sample

    def _indexes(self, key: Hashable) -> tuple[int, int, int, int]:
        h = hash(key) & _M64
        h = ((h ^ (h >> 31)) * 0xBF58476D1CE4E5B9) & _M64
        s = self._shift
        a, b, c, d = _SEEDS
        return (
            ((h * a) & _M64) >> s,
            ((h * b) & _M64) >> s,
            ((h * c) & _M64) >> s,
            ((h * d) & _M64) >> s,
        )

    def frequency(self, key: Hashable) -> int:
        """Estimated number of recent occurrences of ``key`` (0..15, +1 with a doorkeeper)."""
        i0, i1, i2, i3 = self._indexes(key)
        r = self._rows
        f = min(r[0][i0], r[1][i1], r[2][i2], r[3][i3])
        door = self._door
        if door is not None:
            m = self._door_mask
            if door[(i0 ^ (i1 << 2)) & m] and door[(i2 ^ (i3 << 2)) & m]:
                f += 1
        return f

    def increment(self, key: Hashable) -> None:
        """Record one occurrence of ``key``; ages the sketch every ``sample_size`` calls."""
        i0, i1, i2, i3 = self._indexes(key)
        door = self._door
        if door is not None:
            m = self._door_mask
            j0, j1 = (i0 ^ (i1 << 2)) & m, (i2 ^ (i3 << 2)) & m
            if not (door[j0] and door[j1]):
                door[j0] = door[j1] = 1
                self._tick()
                return
        r = self._rows
        added = False
        row = r[0]
        if row[i0] < _MAX:
            row[i0] += 1
            added = True
        row = r[1]
        if row[i1] < _MAX:
            row[i1] += 1
            added = True
        row = r[2]
        if row[i2] < _MAX:
            row[i2] += 1
            added = True
        row = r[3]
        if row[i3] < _MAX:
            row[i3] += 1
            added = True
        if added:
            self._tick()

    def add(self, key: Hashable, count: int) -> None:
        """Record ``count`` occurrences of ``key`` at once (as ``count`` increments)."""
        if self._door is not None:
            for _ in range(count):
                self.increment(key)
            return
        h = hash(key) & _M64
        h = ((h ^ (h >> 31)) * 0xBF58476D1CE4E5B9) & _M64
        s = self._shift
        a, b, c, d = _SEEDS
        r0, r1, r2, r3 = self._rows
        i = ((h * a) & _M64) >> s
        j = ((h * b) & _M64) >> s
        k = ((h * c) & _M64) >> s
        m = ((h * d) & _M64) >> s
        v0, v1, v2, v3 = r0[i], r1[j], r2[k], r3[m]
        if v0 == _MAX and v1 == _MAX and v2 == _MAX and v3 == _MAX:
            return
        r0[i] = min(_MAX, v0 + count)
        r1[j] = min(_MAX, v1 + count)
        r2[k] = min(_MAX, v2 + count)
        r3[m] = min(_MAX, v3 + count)
        self._size += count
        if self._size >= self._sample:
            self.age()

    def _tick(self) -> None:
        self._size += 1
        if self._size >= self._sample:
            self.age()

    def age(self) -> None:
        """Halve every counter (and reset the doorkeeper)."""
        self._rows = [[c >> 1 for c in row] for row in self._rows]
        self._size //= 2
        if self._door is not None:
            self._door = bytearray(len(self._door))

    def clear(self) -> None:
        """Forget everything."""
        self._rows = [[0] * self._width for _ in _SEEDS]
        self._size = 0
        if self._door is not None:
            self._door = bytearray(len(self._door))
