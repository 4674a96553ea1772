"""Cache workloads: hit rates on synthetic traces, and GetPut throughput.

* ``cache_hit_rates`` (metric): single-threaded hit rate, in percent, of
  ``ConcurrentCache`` (lru, tinylfu), :func:`functools.lru_cache`,
  cachetools ``LRUCache``/``LFUCache`` (when installed) and Bélády's offline
  optimum, on deterministic synthetic traces: Zipf 0.8 and 1.0, Zipf polluted
  by periodic one-off scans, a loop slightly larger than the cache, and a
  shifting working set.  The ``lru 2T`` column replays the trace from two
  threads (thread i takes accesses i, i+2, ...) to show that striping keeps
  the global LRU order.
* ``cache_getput_*`` (throughput): Caffeine's GetPut benchmark.  The cache is
  pre-populated with every key; each thread draws Zipf(1.0) keys from its own
  stream and reads (``get``) or writes (``put``) them: read-only, 75/25 and
  write-only.  ``cache_get_or_put`` uses a cache holding a quarter of the keys,
  so misses insert and evict (the slow path).
* ``cached_decorator``: a ``@cached`` function against a
  ``functools.lru_cache`` one on Zipf arguments.
* ``cache_hit_configs`` and ``cache_hit_configs_mixed``: the cost of a hit
  (read-only GetPut, and the 75/25 mix) with weights (``maxweight`` and a
  weigher), expiry (a ``ttl``; an expiry policy object; per-entry ``ttl=``
  puts) and a removal listener, against the plain LRU ``ConcurrentCache``.
* ``cached_async_hit``: awaiting an ``@cached`` coroutine function (all hits)
  against a coroutine that looks the key up in a dict.

Baselines specific to caches live here: cachetools ``LRUCache`` + ``Lock`` (the
usual way to share a cachetools cache) and an ``OrderedDict`` LRU + ``Lock``.
cachetools is optional: without it those variants and columns are skipped.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import random
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from conctools.bench.baselines import dist_version, key_streams, optional_module, zipf_keys
from conctools.bench.harness import Body, MetricWorkload, Trial, Variant, Workload
from conctools.cache import ConcurrentCache, cached
from conctools.cache.core import PolicyName
from conctools.cache.decorator import _wrap

try:  # optional: a benchmark dependency, never a runtime one
    import cachetools
except ImportError:  # pragma: no cover - depends on the environment
    cachetools = None
# Optional comparison caches (Rust cores): the GetPut workloads show them when installed.
moka_py = optional_module("moka_py")
theine = optional_module("theine")

__all__ = [
    "WORKLOADS",
    "LockedCachetools",
    "OrderedDictLRU",
    "belady_hits",
    "static_topk_hits",
    "hit_rate_rows",
    "hit_rate_svg",
    "traces",
]

# --------------------------------------------------------------------- baselines


class OrderedDictLRU:
    """The LRU people write by hand: an OrderedDict and one Lock."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._od: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, default: Any = None) -> Any:
        # ``key in od`` + ``od[key]``: ``OrderedDict.get`` is pathologically slow
        # on 3.13t when the dict's owner thread is blocked (see cache.core._find).
        with self._lock:
            od = self._od
            if key not in od:
                return default
            od.move_to_end(key)
            return od[key]

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            od = self._od
            od[key] = value
            od.move_to_end(key)
            if len(od) > self.maxsize:
                od.popitem(last=False)

    def __len__(self) -> int:
        return len(self._od)


class LockedCachetools:
    """A cachetools cache shared the documented way: every call under one Lock."""

    def __init__(self, cache: Any) -> None:
        self._c = cache
        self._lock = threading.Lock()

    def get(self, key: Hashable, default: Any = None) -> Any:
        with self._lock:
            return self._c.get(key, default)

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._c[key] = value

    def __len__(self) -> int:
        return len(self._c)


class MokaCache:
    """moka-py's ``Moka`` (Rust, Caffeine's design; thread-safe itself): its
    own ``get``/``set`` are the bodies' calls, with no wrapper in between."""

    def __init__(self, maxsize: int) -> None:
        assert moka_py is not None
        self._m = moka_py.Moka(maxsize)
        self.get = self._m.get
        self.put = self._m.set

    def __len__(self) -> int:
        pending = getattr(self._m, "run_pending_tasks", None)  # moka-py >= 0.4
        if pending is not None:
            pending()  # moka counts entries asynchronously
        return int(self._m.count())


class TheineCache:
    """theine's ``Cache`` (W-TinyLFU on a Rust core, its own lock): its own
    ``get`` (returning ``(value, found)``) and ``set`` are the bodies' calls."""

    def __init__(self, maxsize: int) -> None:
        assert theine is not None
        self._c = theine.Cache(maxsize)
        self.get = self._c.get
        self.put = self._c.set

    def __len__(self) -> int:
        return len(self._c)


# ------------------------------------------------------------------------ traces


def traces(quick: bool) -> tuple[int, dict[str, list[int]]]:
    """``(cache size, {trace name: keys})``, deterministic."""
    size = 200 if quick else 500
    length = 60 * size if quick else 200 * size
    nkeys = 10 * size
    out: dict[str, list[int]] = {}
    for skew in (0.8, 1.0):
        out[f"zipf {skew}"] = zipf_keys(random.Random(61), nkeys, skew, length)
    # Zipf 0.8 polluted by scans: after every 5 x size Zipf accesses, a scan of
    # 2 x size keys never seen before nor again.
    rng = random.Random(62)
    base = zipf_keys(rng, nkeys, 0.8, length)
    scanned: list[int] = []
    fresh = nkeys
    block = 5 * size
    for i in range(0, length, block):
        scanned.extend(base[i : i + block])
        scanned.extend(range(fresh, fresh + 2 * size))
        fresh += 2 * size
    out["zipf 0.8 + scans"] = scanned
    loop = int(size * 1.1)
    out["loop 1.1 x size"] = [i % loop for i in range(length)]
    # Shifting working set: 5 phases, each a Zipf 1.0 over its own key range.
    rng = random.Random(63)
    phase = length // 5
    shifting: list[int] = []
    for p in range(5):
        off = p * nkeys // 10
        shifting.extend(off + k for k in zipf_keys(rng, nkeys // 5, 1.0, phase))
    out["shifting set"] = shifting
    return size, out


def belady_hits(trace: Sequence[int], size: int) -> int:
    """Hits of Bélády's MIN (evict the key used farthest in the future)."""
    n = len(trace)
    nxt = [n] * n
    last: dict[int, int] = {}
    for i in range(n - 1, -1, -1):
        k = trace[i]
        nxt[i] = last.get(k, n + i)  # never used again: farthest, distinct
        last[k] = i
    cached_next: dict[int, int] = {}
    heap: list[tuple[int, int]] = []
    hits = 0
    for i, k in enumerate(trace):
        if k in cached_next:
            hits += 1
        elif len(cached_next) >= size:
            while True:
                neg, victim = heapq.heappop(heap)
                if cached_next.get(victim) == -neg:
                    del cached_next[victim]
                    break
        cached_next[k] = nxt[i]
        heapq.heappush(heap, (-nxt[i], k))
    return hits


def static_topk_hits(trace: Sequence[int], size: int) -> int:
    """Hits of an oracle that caches the ``size`` most frequent keys of the trace
    (the best *online* policy when accesses are independent, as in a Zipf trace)."""
    counts: dict[int, int] = {}
    for k in trace:
        counts[k] = counts.get(k, 0) + 1
    top = heapq.nlargest(size, counts.values())
    return sum(top) - len(top)


def _conc_hits(policy: PolicyName, trace: Sequence[int], size: int, threads: int = 1) -> int:
    c: ConcurrentCache[int, int] = ConcurrentCache(size, policy=policy)

    def run(part: Sequence[int]) -> None:
        get, put = c.get, c.put
        for k in part:
            if get(k) is None:
                put(k, k)

    if threads == 1:
        run(trace)
    else:
        # Lock-step rounds: in round r thread i replays chunk r * threads + i,
        # so the global order is kept up to a window of threads x chunk.
        chunk = 16
        rounds = -(-len(trace) // (chunk * threads))
        barrier = threading.Barrier(threads)

        def worker(i: int) -> None:
            for r in range(rounds):
                start = (r * threads + i) * chunk
                run(trace[start : start + chunk])
                barrier.wait()

        ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    s = c.stats()
    assert s.hits + s.misses == len(trace), s
    assert len(c) <= size
    return s.hits


def _lru_cache_hits(trace: Sequence[int], size: int) -> int:
    @functools.lru_cache(maxsize=size)
    def f(k: int) -> int:
        return k

    for k in trace:
        f(k)
    return f.cache_info().hits


def _cachetools_hits(kind: str, trace: Sequence[int], size: int) -> int:
    c = getattr(cachetools, kind)(maxsize=size)
    hits = 0
    for k in trace:
        if c.get(k) is None:
            c[k] = k
        else:
            hits += 1
    return hits


def hit_rate_rows(quick: bool) -> list[dict[str, Any]]:
    size, ts = traces(quick)
    rows: list[dict[str, Any]] = []
    for name, trace in ts.items():
        n = len(trace)

        def pct(h: int, n: int = n) -> float:
            return round(100.0 * h / n, 1)

        row: dict[str, Any] = {"trace": f"{name} (n={n}, size={size})"}
        row["lru"] = pct(_conc_hits("lru", trace, size))
        row["lru 2T"] = pct(_conc_hits("lru", trace, size, threads=2))
        row["tinylfu"] = pct(_conc_hits("tinylfu", trace, size))
        row["functools.lru_cache"] = pct(_lru_cache_hits(trace, size))
        if cachetools is not None:
            row["cachetools LRU"] = pct(_cachetools_hits("LRUCache", trace, size))
            row["cachetools LFU"] = pct(_cachetools_hits("LFUCache", trace, size))
        row["static top-k"] = pct(static_topk_hits(trace, size))
        row["optimal"] = pct(belady_hits(trace, size))
        rows.append(row)
    return rows


# -------------------------------------------------------------------- throughput

NKEYS = 2048  # the cache holds every key in the GetPut workloads


@functools.lru_cache(maxsize=64)
def _streams(threads: int, seed: int) -> tuple[list[int], ...]:
    """Zipf(1.0) key streams, drawn once per (threads, seed): bodies only read them."""
    return tuple(key_streams(threads, NKEYS, skew=1.0, seed=seed))


class _KeepExpiry:
    """An expiry policy: an hour after a write; reads keep the deadline."""

    def expire_after_create(self, key: Any, value: Any, now: float) -> float | None:
        return 3600.0

    def expire_after_update(self, key: Any, value: Any, now: float, cur: float | None) -> float:
        return 3600.0

    def expire_after_read(self, key: Any, value: Any, now: float, cur: float | None) -> Any:
        return cur


def _weigh_one(key: Any, value: Any) -> int:
    return 1


def _make_cache(kind: str, maxsize: int) -> Any:
    if kind == "lru":
        return ConcurrentCache(maxsize, policy="lru")
    if kind == "lru-weighted":
        return ConcurrentCache(maxweight=maxsize, weigher=_weigh_one)
    if kind == "tinylfu-weighted":
        return ConcurrentCache(maxweight=maxsize, weigher=_weigh_one, policy="tinylfu")
    if kind == "lru-ttl":
        return ConcurrentCache(maxsize, ttl=3600.0)
    if kind == "lru-expiry":
        return ConcurrentCache(maxsize, expiry=_KeepExpiry())
    if kind == "lru-listener":
        return ConcurrentCache(maxsize, on_evict=lambda k, v, cause: None)
    if kind == "tinylfu":
        return ConcurrentCache(maxsize, policy="tinylfu")
    if kind == "cachetools":
        return LockedCachetools(cachetools.LRUCache(maxsize=maxsize))
    if kind == "moka":
        return MokaCache(maxsize)
    if kind == "theine":
        return TheineCache(maxsize)
    return OrderedDictLRU(maxsize)


def _getput_variant(name: str, kind: str, write_every: int | None, read_only: bool) -> Variant:
    """``write_every``: None = reads only; 4 = one put in 4 ops (75/25); 1 = puts only."""

    def make(threads: int) -> Trial:
        cache = _make_cache(kind, NKEYS)
        for k in range(NKEYS):
            cache.put(k, k)
        streams = _streams(threads, 77)

        def body_for(keys: list[int]) -> Body:
            get, put = cache.get, cache.put
            m = len(keys) - 1

            if write_every is None:

                def body(n: int) -> None:
                    for i in range(n):
                        get(keys[i & m])

            elif write_every == 1:

                def body(n: int) -> None:
                    for i in range(n):
                        put(keys[i & m], i)

            else:
                mask = write_every - 1

                def body(n: int) -> None:
                    for i in range(n):
                        k = keys[i & m]
                        if i & mask == mask:
                            put(k, i)
                        else:
                            get(k)

            return body

        def verify(n: int) -> None:
            if len(cache) != NKEYS:
                raise AssertionError(f"{name}: {len(cache)} entries, expected {NKEYS}")
            if isinstance(cache, ConcurrentCache):
                s = cache.stats()
                reads = 0 if write_every == 1 else n - (n // write_every if write_every else 0)
                if s.hits != reads * threads or s.misses:
                    raise AssertionError(f"{name}: stats {s} for {reads * threads} reads")

        return Trial([body_for(s) for s in streams], verify)

    return Variant(name, make, note=_NOTES[kind], external=kind not in ("lru", "tinylfu"))


def _get_or_put_variant(name: str, kind: str) -> Variant:
    def make(threads: int) -> Trial:
        size = NKEYS // 4
        cache = _make_cache(kind, size)
        streams = _streams(threads, 78)

        def body_for(keys: list[int]) -> Body:
            get, put = cache.get, cache.put
            m = len(keys) - 1

            def body(n: int) -> None:
                for i in range(n):
                    k = keys[i & m]
                    if get(k) is None:
                        put(k, k)

            return body

        def verify(n: int) -> None:
            if len(cache) > size:
                raise AssertionError(f"{name}: {len(cache)} entries > maxsize {size}")

        return Trial([body_for(s) for s in streams], verify)

    return Variant(name, make, note=_NOTES[kind])


_NOTES = {
    "lru-weighted": "ConcurrentCache(maxweight=2048, weigher=...): every entry weighs 1",
    "tinylfu-weighted": "ConcurrentCache(maxweight=2048, weigher=..., policy='tinylfu')",
    "lru-ttl": "ConcurrentCache(ttl=3600): the expiring configuration",
    "lru-expiry": "ConcurrentCache(expiry=...): expire_after_read called on every hit",
    "lru-listener": "ConcurrentCache(on_evict=...): put takes the maintenance lock",
    "lru": "ConcurrentCache(policy='lru')",
    "tinylfu": "ConcurrentCache(policy='tinylfu')",
    "cachetools": "cachetools.LRUCache, every call under one threading.Lock",
    "odict": "OrderedDict LRU, every call under one threading.Lock",
    "moka": f"moka_py.Moka {dist_version('moka-py')} (Rust): get / set",
    "theine": f"theine.Cache {dist_version('theine')} (Rust core, W-TinyLFU): get / set",
}
_NAMES = {
    "lru-weighted": "lru maxweight",
    "tinylfu-weighted": "tinylfu maxweight",
    "lru-ttl": "lru ttl",
    "lru-expiry": "lru expiry policy",
    "lru-listener": "lru on_evict",
    "lru": "ConcurrentCache lru",
    "tinylfu": "ConcurrentCache tinylfu",
    "cachetools": "cachetools LRU+Lock",
    "odict": "OrderedDict LRU+Lock",
    "moka": "moka-py",
    "theine": "theine",
}
_KINDS: tuple[str, ...] = (
    ("lru", "tinylfu", "cachetools", "odict") if cachetools else ("lru", "tinylfu", "odict")
)
# Optional peers, in the GetPut workloads only (skipped when not installed).
_PEERS = tuple(k for k, mod in (("moka", moka_py), ("theine", theine)) if mod is not None)
_KINDS += _PEERS
_BASELINE = _NAMES["cachetools" if cachetools else "odict"]


def _decorator_variant(name: str, engine: str | None) -> Variant:
    """``engine``: None = functools.lru_cache itself; else cached()'s engine."""

    def make(threads: int) -> Trial:
        def ident(k: int) -> int:
            return k

        f: Any = (
            functools.lru_cache(maxsize=NKEYS)(ident)
            if engine is None
            else _wrap(ident, NKEYS, None, "lru", False, engine=engine)
        )
        streams = _streams(threads, 79)
        for k in range(NKEYS):
            f(k)

        def body_for(keys: list[int]) -> Body:
            m = len(keys) - 1

            def body(n: int) -> None:
                for i in range(n):
                    f(keys[i & m])

            return body

        def verify(n: int) -> None:
            info = f.cache_info()
            if info.hits != n * threads or info.misses != NKEYS:
                raise AssertionError(f"{name}: {info} after {n * threads} calls")

        return Trial([body_for(s) for s in streams], verify)

    return Variant(name, make, note=_DECO_NOTES[engine])


_DECO_NOTES = {
    None: "functools.lru_cache (C; no single-flight)",
    "lru_cache": "@cached, policy='lru', no ttl: lru_cache serves hits + single-flight misses",
    "conctools": "@cached on a ConcurrentCache (the engine for ttl / tinylfu)",
}


def _wl(
    name: str,
    description: str,
    make: Callable[[str, str], Variant],
    kinds: Sequence[str] = _KINDS,
    threads: tuple[int, ...] | None = None,
) -> Workload:
    return Workload(
        name=name,
        group="cache",
        description=description,
        baseline=_BASELINE,
        variants=tuple(make(_NAMES[k], k) for k in kinds if k in _KINDS),
        threads=threads,
    )


WORKLOADS: list[Workload | MetricWorkload] = [
    MetricWorkload(
        name="cache_hit_rates",
        group="cache",
        description="hit rate % on synthetic traces (single-threaded unless noted)",
        compute=hit_rate_rows,
    ),
    _wl(
        "cache_getput_read",
        f"GetPut read-only: get of Zipf(1.0) keys, {NKEYS} keys all cached",
        lambda n, k: _getput_variant(n, k, None, True),
    ),
    _wl(
        "cache_getput_75_25",
        f"GetPut 75% get / 25% put, Zipf(1.0), {NKEYS} keys all cached",
        lambda n, k: _getput_variant(n, k, 4, False),
        kinds=("lru", "cachetools", "odict", *_PEERS),
    ),
    _wl(
        "cache_getput_write",
        f"GetPut write-only: put of Zipf(1.0) keys, {NKEYS} keys all cached",
        lambda n, k: _getput_variant(n, k, 1, False),
        kinds=("lru", "cachetools", "odict", *_PEERS),
    ),
    _wl(
        "cache_get_or_put",
        f"get, put on miss: Zipf(1.0) over {NKEYS} keys, cache of {NKEYS // 4}",
        _get_or_put_variant,
        kinds=("lru", "tinylfu", "cachetools", "odict"),
        threads=(1, 2),
    ),
    Workload(
        name="cache_hit_configs",
        group="cache",
        description=f"cost of a hit by configuration: get of Zipf(1.0) keys, {NKEYS} all cached",
        baseline=_NAMES["lru"],
        variants=tuple(
            _getput_variant(_NAMES[k], k, None, True)
            for k in ("lru", "lru-weighted", "tinylfu", "tinylfu-weighted", "lru-ttl", "lru-expiry")
        ),
        threads=(1, 2),
    ),
    Workload(
        name="cache_hit_configs_mixed",
        group="cache",
        description=f"75% get / 25% put by configuration, Zipf(1.0), {NKEYS} all cached",
        baseline=_NAMES["lru"],
        variants=tuple(
            _getput_variant(_NAMES[k], k, 4, False)
            for k in ("lru", "lru-weighted", "lru-ttl", "lru-expiry", "lru-listener")
        ),
        threads=(1, 2),
    ),
    Workload(
        name="cached_decorator",
        group="cache",
        description=f"@cached vs functools.lru_cache, Zipf(1.0) args, {NKEYS} cached",
        baseline="functools.lru_cache",
        variants=(
            _decorator_variant("@cached", "lru_cache"),
            _decorator_variant("@cached ConcurrentCache", "conctools"),
            _decorator_variant("functools.lru_cache", None),
        ),
        unit="calls",
        threads=(1, 2),
    ),
]


def hit_rate_svg(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A grouped bar chart (SVG text, no dependency) of ``hit_rate_rows`` output:
    one group per trace, one bar per column.  ``docs/_static/cache_hit_rates.svg``
    is made with it (see the cache docs page)."""
    colors = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3"]
    bar, gap, left, top, height = 16, 24, 40, 20, 220
    group_w = bar * len(columns) + gap
    width = left + group_w * len(rows) + 10
    legend_h = 18 * ((len(columns) + 2) // 3)
    total_h = top + height + 60 + legend_h
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{total_h}" '
        f'font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{total_h}" fill="white"/>',
    ]
    for pct in range(0, 101, 20):
        y = top + height - height * pct / 100
        out.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{pct}%</text>'
        )
    for g, row in enumerate(rows):
        x0 = left + g * group_w + gap / 2
        for c, col in enumerate(columns):
            v = float(row.get(col, 0.0) or 0.0)
            h = height * v / 100
            out.append(
                f'<rect x="{x0 + c * bar:.1f}" y="{top + height - h:.1f}" width="{bar - 1}" '
                f'height="{h:.1f}" fill="{colors[c % len(colors)]}"><title>{col}: {v}%'
                "</title></rect>"
            )
        label = str(row["trace"]).split(" (")[0]
        out.append(
            f'<text x="{x0 + bar * len(columns) / 2:.1f}" y="{top + height + 16}" '
            f'text-anchor="middle">{label}</text>'
        )
    for c, col in enumerate(columns):
        lx = left + (c % 3) * 170
        ly = top + height + 40 + 18 * (c // 3)
        out.append(
            f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" '
            f'fill="{colors[c % len(colors)]}"/><text x="{lx + 14}" y="{ly}">{col}</text>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------- async @cached


def _async_hit_variant(name: str, kind: str) -> Variant:
    """Hits of a memoized coroutine function, awaited in a loop per thread.

    ``kind``: "cached" (``@cached`` on an ``async def``), "ttl" (the same with
    a ttl) or "dict" (the baseline: a coroutine that looks the key up in a
    dict and awaits the computation on a miss, the hand-written memo)."""

    def make(threads: int) -> Trial:
        async def ident(k: int) -> int:
            return k

        memo: dict[int, int] = {}
        f: Any
        if kind == "dict":

            async def f(k: int) -> int:
                try:
                    return memo[k]
                except KeyError:
                    v = memo[k] = await ident(k)
                    return v

        else:
            f = cached(maxsize=NKEYS, ttl=3600.0 if kind == "ttl" else None)(ident)
        loops = [asyncio.new_event_loop() for _ in range(threads)]

        async def warm() -> None:
            for k in range(NKEYS):
                await f(k)

        loops[0].run_until_complete(warm())
        streams = _streams(threads, 83)

        def body_for(keys: list[int], loop: asyncio.AbstractEventLoop) -> Body:
            m = len(keys) - 1

            async def run(n: int) -> None:
                for i in range(n):
                    await f(keys[i & m])

            def body(n: int) -> None:
                loop.run_until_complete(run(n))

            return body

        def verify(n: int) -> None:
            if kind == "dict":
                if len(memo) != NKEYS:
                    raise AssertionError(f"{name}: {len(memo)} keys")
                return
            info = f.cache_info()
            if info.hits != n * threads or info.misses != NKEYS:
                raise AssertionError(f"{name}: {info} after {n * threads} calls")

        def cleanup() -> None:
            for loop in loops:
                loop.close()

        bodies = [body_for(s, lp) for s, lp in zip(streams, loops, strict=True)]
        return Trial(bodies, verify, cleanup)

    return Variant(name, make, note=_ASYNC_NOTES[kind])


_ASYNC_NOTES = {
    "cached": "@cached on an async def (hits: functools.lru_cache, no lock, no task)",
    "ttl": "@cached(ttl=3600) on an async def (a ConcurrentCache)",
    "dict": "a coroutine looking the key up in a dict (await the computation on a miss)",
}

WORKLOADS.append(
    Workload(
        name="cached_async_hit",
        group="cache",
        description=f"await of a memoized coroutine, all hits, Zipf(1.0) args, {NKEYS} cached",
        baseline="dict in a coroutine",
        variants=(
            _async_hit_variant("async @cached", "cached"),
            _async_hit_variant("async @cached ttl", "ttl"),
            _async_hit_variant("dict in a coroutine", "dict"),
        ),
        unit="calls",
        threads=(1, 2),
    )
)
