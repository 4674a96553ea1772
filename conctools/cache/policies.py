"""Eviction policies: the global order of entries, kept under the maintenance lock.

A policy only tracks keys.  The cache calls it with the maintenance lock held:
``access`` for each buffered read or update, ``insert`` for a new key (returning
the keys to evict so that at most ``maxsize`` remain), ``remove`` for a key
dropped for another reason, ``clear``.  Policies are not thread-safe on their own.
"""

from __future__ import annotations

import functools
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Generic, TypeVar

from .sketch import FrequencySketch

__all__ = ["LruPolicy", "Policy", "WTinyLfuPolicy", "make_policy"]

K = TypeVar("K", bound=Hashable)

_consume: Callable[[Iterable[Any]], object] = functools.partial(deque, maxlen=0)


class Policy(Generic[K]):
    """Interface of an eviction policy (see the module docstring)."""

    name = "abstract"

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize

    def access(self, keys: Iterable[Any]) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def insert(self, key: K) -> list[K]:  # pragma: no cover - interface
        raise NotImplementedError

    def remove(self, key: K) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def clear(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def __len__(self) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def keys(self) -> list[K]:  # pragma: no cover - interface
        """Keys from the next victim to the safest (for tests and debugging)."""
        raise NotImplementedError

    def victim(self) -> K:  # pragma: no cover - interface
        """The key that would be evicted next; ``KeyError`` if there is none."""
        raise NotImplementedError


class LruPolicy(Policy[K]):
    """Least recently used: one ordered dict, oldest first."""

    name = "lru"

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self._order: OrderedDict[K, None] = OrderedDict()

    def access(self, keys: Iterable[Any]) -> None:
        move = self._order.move_to_end
        try:
            _consume(map(move, keys))  # C speed when every key is still present
        except KeyError:
            # Some key was removed since it was read: redo key by key (moving
            # the same keys again in the same order gives the same order).
            for k in keys:
                try:  # noqa: SIM105 - cheaper than contextlib.suppress in this loop
                    move(k)
                except KeyError:
                    pass

    def insert(self, key: K) -> list[K]:
        order = self._order
        order[key] = None
        victims: list[K] = []
        while len(order) > self.maxsize:
            victims.append(order.popitem(last=False)[0])
        return victims

    def remove(self, key: K) -> None:
        if key in self._order:  # not OrderedDict.pop(key, None): see core._find
            del self._order[key]

    def clear(self) -> None:
        self._order.clear()

    def __len__(self) -> int:
        return len(self._order)

    def keys(self) -> list[K]:
        return list(self._order)

    def victim(self) -> K:
        for key in self._order:
            return key
        raise KeyError("victim(): the cache is empty")


_WINDOW, _PROBATION, _PROTECTED = 0, 1, 2


class WTinyLfuPolicy(Policy[K]):
    """W-TinyLFU (Einziger, Eytan, Friedman, Manes; as in Caffeine).

    A window LRU takes new keys (``window_fraction`` of the capacity, at least
    one entry).  The rest is a segmented LRU: *probation* and *protected*
    (``protected_fraction`` of the main region).  A key read while in
    probation moves to protected; protected's overflow drops back to probation.
    When the window overflows, its oldest key becomes a *candidate* for the main
    region; if the cache is over capacity the candidate competes with the main
    region's *victim* (probation's oldest): the one with the higher frequency
    estimate in a count-min sketch stays, the other is evicted (ties evict the
    candidate).  The sketch is aged by halving periodically.

    With ``adaptive=True`` (the default) the window's share is tuned by hill
    climbing, as in Caffeine: after every sample of ``10 x maxsize`` requests
    the window grows or shrinks by a step (6.25 % of the capacity, decaying)
    in the direction that last improved the hit rate, so recency-heavy
    workloads get a large window and frequency-heavy ones a small one.
    """

    name = "tinylfu"

    def __init__(
        self,
        maxsize: int,
        *,
        window_fraction: float = 0.01,
        protected_fraction: float = 0.8,
        doorkeeper: bool = False,
        adaptive: bool = True,
    ) -> None:
        super().__init__(maxsize)
        self.window_max = max(1, int(maxsize * window_fraction))
        self._protected_fraction = protected_fraction
        self.protected_max = int((maxsize - self.window_max) * protected_fraction)
        self._adaptive = adaptive and maxsize >= 16
        self._sample = 10 * maxsize
        self._hits = 0
        self._misses = 0
        self._prev_rate = 0.0
        self._step = maxsize * 0.0625
        self._window: OrderedDict[K, None] = OrderedDict()
        self._probation: OrderedDict[K, None] = OrderedDict()
        self._protected: OrderedDict[K, None] = OrderedDict()
        self._where: dict[K, int] = {}
        self.sketch = FrequencySketch(maxsize, doorkeeper=doorkeeper)

    def access(self, keys: Iterable[Any]) -> None:
        # A batch is applied per distinct key: the sketch gets each key's count
        # at once (C-level counting), and the regions see each key once, in the
        # order of its last access (which gives the same recency order).
        items = keys if isinstance(keys, (list, tuple)) else list(keys)
        if not items:
            return
        counts = Counter(items)
        add = self.sketch.add
        for k, n in counts.items():
            add(k, n)
        where = self._where
        window, probation, protected = self._window, self._probation, self._protected
        hits = 0
        for k in reversed(dict.fromkeys(reversed(items))):
            try:
                region = where[k]
            except KeyError:
                continue
            hits += counts[k]
            if region == _WINDOW:
                window.move_to_end(k)
            elif region == _PROTECTED:
                protected.move_to_end(k)
            else:
                del probation[k]
                protected[k] = None
                where[k] = _PROTECTED
                if len(protected) > self.protected_max:
                    demoted, _ = protected.popitem(last=False)
                    probation[demoted] = None
                    where[demoted] = _PROBATION
        self._hits += hits

    def _climb(self) -> None:
        """One hill-climbing step on the window size (every sample of requests)."""
        rate = self._hits / (self._hits + self._misses)
        change = rate - self._prev_rate
        if change < 0:
            self._step = -self._step
        if abs(change) >= 0.05:  # the workload changed: big steps again
            self._step = (1 if self._step > 0 else -1) * self.maxsize * 0.0625
        else:
            self._step *= 0.98
        self._prev_rate = rate
        self._hits = self._misses = 0
        new = round(self.window_max + self._step)
        self.window_max = min(max(1, new), self.maxsize - 1)
        self.protected_max = int((self.maxsize - self.window_max) * self._protected_fraction)
        protected, probation, where = self._protected, self._probation, self._where
        while len(protected) > self.protected_max:
            demoted, _ = protected.popitem(last=False)
            probation[demoted] = None
            where[demoted] = _PROBATION

    def insert(self, key: K) -> list[K]:
        if self._adaptive:
            self._misses += 1
            if self._hits + self._misses >= self._sample:
                self._climb()
        self.sketch.increment(key)
        window, probation, protected, where = (
            self._window,
            self._probation,
            self._protected,
            self._where,
        )
        window[key] = None
        where[key] = _WINDOW
        victims: list[K] = []
        freq = self.sketch.frequency
        while len(window) > self.window_max:
            cand, _ = window.popitem(last=False)
            if len(window) + len(probation) + len(protected) + 1 <= self.maxsize:
                probation[cand] = None
                where[cand] = _PROBATION
                continue
            # Over capacity: the candidate competes with the main region's victim.
            if probation:
                victim = next(iter(probation))
                vregion = probation
            elif protected:
                victim = next(iter(protected))
                vregion = protected
            else:
                del where[cand]
                victims.append(cand)
                continue
            if freq(cand) > freq(victim):
                del vregion[victim]
                del where[victim]
                victims.append(victim)
                probation[cand] = None
                where[cand] = _PROBATION
            else:
                del where[cand]
                victims.append(cand)
        # The window may have grown (adaptive): then the main region yields.
        while len(window) + len(probation) + len(protected) > self.maxsize:
            region = probation or protected or window
            victim, _ = region.popitem(last=False)
            del where[victim]
            victims.append(victim)
        return victims

    def remove(self, key: K) -> None:
        if key not in self._where:
            return
        region = self._where.pop(key)
        if region == _WINDOW:
            del self._window[key]
        elif region == _PROBATION:
            del self._probation[key]
        elif region == _PROTECTED:
            del self._protected[key]

    def clear(self) -> None:
        self._window.clear()
        self._probation.clear()
        self._protected.clear()
        self._where.clear()
        self.sketch.clear()
        self._hits = self._misses = 0

    def __len__(self) -> int:
        return len(self._where)

    def keys(self) -> list[K]:
        return [*self._probation, *self._protected, *self._window]

    def victim(self) -> K:
        # The main region yields first (probation, then protected), as insert does.
        for region in (self._probation, self._protected, self._window):
            for key in region:
                return key
        raise KeyError("victim(): the cache is empty")

    def regions(self) -> tuple[list[K], list[K], list[K]]:
        """(window, probation, protected) keys, oldest first (tests, debugging)."""
        return list(self._window), list(self._probation), list(self._protected)


def make_policy(name: str, maxsize: int) -> Policy[K]:
    if name == "lru":
        return LruPolicy(maxsize)
    if name == "tinylfu":
        return WTinyLfuPolicy(maxsize)
    raise ValueError(f"policy must be 'lru' or 'tinylfu', not {name!r}")
