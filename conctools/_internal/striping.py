"""Choosing stripe/shard counts and spreading hashes across them."""

from __future__ import annotations

from .._runtime import free_threaded_build, usable_cpu_count

__all__ = ["default_stripes", "mix_hash", "next_power_of_two", "check_stripes"]


def next_power_of_two(n: int) -> int:
    """Smallest power of two >= n (and >= 1)."""
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def default_stripes(per_cpu: int = 4, *, minimum: int = 4, gil_build: int | None = None) -> int:
    """Default number of stripes: a power of two >= ``per_cpu`` x usable CPUs.

    On builds with the GIL, ``gil_build`` (when given) is used instead: there
    threads never run Python in parallel, so many stripes only cost memory.
    """
    if not free_threaded_build() and gil_build is not None:
        return next_power_of_two(gil_build)
    return next_power_of_two(max(minimum, per_cpu * usable_cpu_count()))


def check_stripes(n: object, name: str = "shards") -> int:
    """Validate a user-supplied stripe count and round it up to a power of two."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{name} must be an int, not {type(n).__name__}")
    if n < 1:
        raise ValueError(f"{name} must be >= 1")
    return next_power_of_two(n)


def mix_hash(h: int) -> int:
    """Fold high bits of ``hash(key)`` into the low bits used for stripe selection.

    ``hash(i) == i`` for small ints, so keys that are multiples of the stripe
    count would all land in one stripe without mixing. The result is
    non-negative; callers mask it with ``stripes - 1``.
    """
    h ^= (h >> 16) ^ (h >> 32) ^ (h >> 7)
    return h & 0x7FFFFFFFFFFFFFFF
