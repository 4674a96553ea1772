"""ShardedSet workload: the "seen" set of a crawler or a dedup stage.

Each thread walks a pre-drawn stream of URLs (strings, 16384 distinct, half
of them already seen): 90% of the operations ask whether a URL was seen, 10%
claim it (``add_if_absent``: the caller that gets ``True`` does the work).
Variants:

* ``set+Lock`` - a ``set`` and one ``threading.Lock`` around every
  operation, the usual way to share a set;
* ``set+Lock (lock-free reads)`` - the same with ``x in seen`` taken without
  the lock (one atomic set operation in CPython), the claim under the lock;
* ``ShardedSet`` - ``x in s`` and ``s.add_if_absent(x)`` on the shared set;
* ``ShardedSet.handle()`` - the same calls through a per-thread handle.

``verify`` checks that every URL was claimed exactly once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ...sharded_set import ShardedSet
from ..baselines import key_streams, op_streams
from ..harness import Trial, Variant, Workload

NKEYS = 16384
SEEN, CLAIM = 0, 1

Maker = Callable[[int], Trial]
_URLS = [f"https://example.org/page/{k}" for k in range(NKEYS)]


def _crawler_dedup(kind: str) -> Maker:
    """90% membership / 10% add_if_absent over 16384 URLs, half pre-seen."""

    def make(threads: int) -> Trial:
        streams = [[_URLS[k] for k in ks] for ks in key_streams(threads, NKEYS, seed=4321)]
        opss = op_streams(threads, (90, 10))
        prefill = [u for i, u in enumerate(_URLS) if i % 2 == 0]
        lock = threading.Lock()
        plain: set[str] = set(prefill)
        ss: ShardedSet[str] = ShardedSet(prefill)
        claimed = [0] * threads

        def body_for(t: int, urls: list[str], ops: list[int]) -> Callable[[int], None]:
            m = len(urls) - 1
            if kind == "locked":

                def body(n: int) -> None:
                    seen = plain
                    won = 0
                    for i in range(n):
                        j = i & m
                        u = urls[j]
                        if ops[j] == SEEN:
                            with lock:
                                u in seen  # noqa: B015 - the membership test is the op
                        else:
                            with lock:
                                if u not in seen:
                                    seen.add(u)
                                    won += 1
                    claimed[t] += won

            elif kind == "reads":

                def body(n: int) -> None:
                    seen = plain
                    won = 0
                    for i in range(n):
                        j = i & m
                        u = urls[j]
                        if ops[j] == SEEN:
                            u in seen  # noqa: B015
                        else:
                            with lock:
                                if u not in seen:
                                    seen.add(u)
                                    won += 1
                    claimed[t] += won

            else:

                def body(n: int) -> None:
                    s: Any = ss.handle() if kind == "handle" else ss
                    claim = s.add_if_absent
                    won = 0
                    for i in range(n):
                        j = i & m
                        u = urls[j]
                        if ops[j] == SEEN:
                            u in s  # noqa: B015
                        elif claim(u):
                            won += 1
                    claimed[t] += won

            return body

        def verify(n: int) -> None:
            size = len(plain) if kind in ("locked", "reads") else len(ss)
            if sum(claimed) != size - len(prefill):
                raise AssertionError(
                    f"crawler dedup: {sum(claimed)} claims for {size - len(prefill)} new URLs"
                )

        bodies = [body_for(t, u, o) for t, (u, o) in enumerate(zip(streams, opss, strict=True))]
        return Trial(bodies, verify)

    return make


_NOTES = {
    "locked": "one Lock around every op: `with lock: u in seen` / check-and-add",
    "reads": "`u in seen` without the lock; check-and-add under one Lock",
    "plain": "`u in s` and s.add_if_absent(u) on the shared set",
    "handle": "h = s.handle() in each thread, then `u in h` / h.add_if_absent(u)",
}
_NAMES = {
    "locked": "set+Lock",
    "reads": "set+Lock (lock-free reads)",
    "plain": "ShardedSet",
    "handle": "ShardedSet.handle()",
}

WORKLOADS = [
    Workload(
        name="crawler_dedup",
        group="sharded_set",
        description="90% `url in seen` / 10% add_if_absent over 16384 URLs, half pre-seen",
        baseline="set+Lock",
        variants=tuple(
            Variant(_NAMES[k], _crawler_dedup(k), note=_NOTES[k])
            for k in ("locked", "reads", "plain", "handle")
        ),
        threads=(1, 2, 4),
    ),
]
