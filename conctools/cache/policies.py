"""Eviction policies: the global order of entries, kept under the maintenance lock.

A policy only tracks keys (and, in a weighted cache, their weights).  The cache
calls it with the maintenance lock held: ``access`` for each buffered read or
update, ``insert`` for a new key (returning the keys to evict so that at most
``maxsize`` remain, or a total weight of at most ``maxsize`` for the weighted
policies), ``reweigh`` for a key whose value (and weight) was replaced,
``remove`` for a key dropped for another reason, ``clear``.  Policies are not
thread-safe on their own.
"""

from __future__ import annotations

import functools
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Generic, TypeVar

from .sketch import FrequencySketch

__all__ = [
    "LruPolicy",
    "Policy",
    "WTinyLfuPolicy",
    "WeightedLruPolicy",
    "WeightedWTinyLfuPolicy",
    "make_policy",
]

K = TypeVar("K", bound=Hashable)

_consume: Callable[[Iterable[Any]], object] = functools.partial(deque, maxlen=0)


class Policy(Generic[K]):
    """Interface of an eviction policy (see the module docstring)."""

    name = "abstract"

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize

    def access(self, keys: Iterable[Any]) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def insert(self, key: K, weight: int = 1) -> list[K]:  # pragma: no cover - interface
        raise NotImplementedError

    def reweigh(self, key: K, weight: int) -> list[K]:
        """A present key's value was replaced (weighing ``weight``): an access;
        returns the keys to evict.  Unweighted policies ignore the weight."""
        self.access((key,))
        return []

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

    def insert(self, key: K, weight: int = 1) -> list[K]:
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
        sketch_capacity: int | None = None,
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
        self.sketch = FrequencySketch(
            maxsize if sketch_capacity is None else sketch_capacity, doorkeeper=doorkeeper
        )

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

    def insert(self, key: K, weight: int = 1) -> list[K]:
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


class WeightedLruPolicy(LruPolicy[K]):
    """LRU bounded by the total weight of its keys (``maxsize`` is the maximum weight).

    The caller rejects a key heavier than the bound before inserting it, so
    evicting from the LRU end always stops before reaching the key just
    inserted or reweighed (it is the most recently used)."""

    name = "lru"

    def __init__(self, maxweight: int) -> None:
        super().__init__(maxweight)
        self._w: dict[K, int] = {}
        self.total = 0

    def _trim(self) -> list[K]:
        victims: list[K] = []
        order, w = self._order, self._w
        while self.total > self.maxsize and order:
            k = order.popitem(last=False)[0]
            self.total -= w[k]
            del w[k]
            victims.append(k)
        return victims

    def insert(self, key: K, weight: int = 1) -> list[K]:
        w = self._w
        if key in w:
            return self.reweigh(key, weight)
        self._order[key] = None
        w[key] = weight
        self.total += weight
        return self._trim()

    def reweigh(self, key: K, weight: int) -> list[K]:
        w = self._w
        if key not in w:
            return self.insert(key, weight)
        self.total += weight - w[key]
        w[key] = weight
        self._order.move_to_end(key)
        return self._trim()

    def remove(self, key: K) -> None:
        if key in self._order:
            del self._order[key]
            self.total -= self._w[key]
            del self._w[key]

    def clear(self) -> None:
        super().clear()
        self._w.clear()
        self.total = 0


class WeightedWTinyLfuPolicy(WTinyLfuPolicy[K]):
    """W-TinyLFU bounded by total weight (``maxsize`` is the maximum weight).

    The regions' bounds are weights (window 1 % of the maximum weight at
    first, adaptive as without weights; protected 80 % of the main region).
    A candidate leaving the window competes with the main region's victim by
    frequency as in the unweighted policy; if the cache is still over its
    weight afterwards, entries are evicted from the main region's LRU ends
    (probation first), then from the window.  The frequency sketch is sized for
    ``min(maxweight, 65536)`` entries."""

    name = "tinylfu"

    def __init__(self, maxweight: int) -> None:
        super().__init__(maxweight, sketch_capacity=min(maxweight, 1 << 16))
        self._w: dict[K, int] = {}
        self._sizes = [0, 0, 0]  # weight in window, probation, protected
        self.total = 0

    def _move(self, k: K, src: int, dst: int) -> None:
        wt = self._w[k]
        self._sizes[src] -= wt
        self._sizes[dst] += wt

    def access(self, keys: Iterable[Any]) -> None:
        items = keys if isinstance(keys, (list, tuple)) else list(keys)
        if not items:
            return
        counts = Counter(items)
        add = self.sketch.add
        for k, n in counts.items():
            add(k, n)
        where = self._where
        window, probation, protected = self._window, self._probation, self._protected
        sizes = self._sizes
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
                self._move(k, _PROBATION, _PROTECTED)
                while sizes[_PROTECTED] > self.protected_max and len(protected) > 1:
                    demoted, _ = protected.popitem(last=False)
                    probation[demoted] = None
                    where[demoted] = _PROBATION
                    self._move(demoted, _PROTECTED, _PROBATION)
        self._hits += hits

    def _climb(self) -> None:
        super()._climb()
        # (the parent demoted by count; demote by weight as well)
        protected, probation, where = self._protected, self._probation, self._where
        while self._sizes[_PROTECTED] > self.protected_max and protected:
            demoted, _ = protected.popitem(last=False)
            probation[demoted] = None
            where[demoted] = _PROBATION
            self._move(demoted, _PROTECTED, _PROBATION)

    def _drop(self, region: OrderedDict[K, None], idx: int) -> K:
        victim, _ = region.popitem(last=False)
        del self._where[victim]
        wt = self._w[victim]
        del self._w[victim]
        self._sizes[idx] -= wt
        self.total -= wt
        return victim

    def insert(self, key: K, weight: int = 1) -> list[K]:
        if key in self._where:
            return self.reweigh(key, weight)
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
        sizes = self._sizes
        window[key] = None
        where[key] = _WINDOW
        self._w[key] = weight
        sizes[_WINDOW] += weight
        self.total += weight
        victims: list[K] = []
        freq = self.sketch.frequency
        while sizes[_WINDOW] > self.window_max and window:
            cand = next(iter(window))
            if self.total <= self.maxsize:
                del window[cand]
                probation[cand] = None
                where[cand] = _PROBATION
                self._move(cand, _WINDOW, _PROBATION)
                continue
            if probation:
                vregion, vidx = probation, _PROBATION
            elif protected:
                vregion, vidx = protected, _PROTECTED
            else:
                victims.append(self._drop(window, _WINDOW))
                continue
            victim = next(iter(vregion))
            if freq(cand) > freq(victim):
                victims.append(self._drop(vregion, vidx))
                del window[cand]
                probation[cand] = None
                where[cand] = _PROBATION
                self._move(cand, _WINDOW, _PROBATION)
            else:
                victims.append(self._drop(window, _WINDOW))
        victims.extend(self._trim())
        return victims

    def _trim(self) -> list[K]:
        victims: list[K] = []
        while self.total > self.maxsize:
            if self._probation:
                victims.append(self._drop(self._probation, _PROBATION))
            elif self._protected:
                victims.append(self._drop(self._protected, _PROTECTED))
            elif self._window:
                victims.append(self._drop(self._window, _WINDOW))
            else:  # pragma: no cover - total > 0 implies a key
                break
        return victims

    def reweigh(self, key: K, weight: int) -> list[K]:
        if key not in self._where:
            return self.insert(key, weight)
        old = self._w[key]
        self._w[key] = weight
        self._sizes[self._where[key]] += weight - old
        self.total += weight - old
        self.access((key,))
        return self._trim()

    def remove(self, key: K) -> None:
        if key not in self._where:
            return
        region = self._where[key]
        super().remove(key)
        wt = self._w[key]
        del self._w[key]
        self._sizes[region] -= wt
        self.total -= wt

    def clear(self) -> None:
        super().clear()
        self._w.clear()
        self._sizes = [0, 0, 0]
        self.total = 0


def make_policy(name: str, maxsize: int, *, weighted: bool = False) -> Policy[K]:
    if name == "lru":
        return WeightedLruPolicy(maxsize) if weighted else LruPolicy(maxsize)
    if name == "tinylfu":
        return WeightedWTinyLfuPolicy(maxsize) if weighted else WTinyLfuPolicy(maxsize)
    raise ValueError(f"policy must be 'lru' or 'tinylfu', not {name!r}")
