"""Case study: N agents reasoning in parallel over shared state.

Each agent repeatedly takes a task from a shared message queue, does CPU-bound
"reasoning" on it (pure Python: scoring candidate moves of a small puzzle),
publishes its best finding on a shared blackboard (a ShardedDict), counts what it
saw (a ConcurrentCounter), and posts follow-up messages to the queue.  The run is
repeated with 1 thread and with ``--threads N`` threads on the same tasks, and the
speedup is reported with the build it ran on.

On a GIL build the speedup stays near 1.0x: the agents take turns.  On a
free-threaded build (``python3.13t``, ``PYTHON_GIL=0``) the agents run in
parallel, and the shared structures keep up.

    python examples/agents.py --threads 2 --tasks 400
"""

from __future__ import annotations

import argparse
import threading
import time

from conctools import AtomicInt, ConcurrentCounter, ConcurrentQueue, ShardedDict, runtime_info


def reason(seed: int, depth: int) -> tuple[int, int]:
    """CPU-bound work: search a tiny deterministic game tree; returns (best, nodes)."""
    best = -(1 << 30)
    nodes = 0
    stack = [(seed, 0, 0)]
    while stack:
        state, d, score = stack.pop()
        nodes += 1
        if d == depth:
            best = max(best, score)
            continue
        for move in range(3):
            nxt = (state * 1103515245 + 12345 + move) & 0x7FFFFFFF
            stack.append((nxt, d + 1, score + (nxt % 17) - 8))
    return best, nodes


def run(threads: int, tasks: int, depth: int) -> tuple[float, dict[str, int]]:
    inbox: ConcurrentQueue[tuple[int, int]] = ConcurrentQueue()
    blackboard: ShardedDict[int, int] = ShardedDict()
    seen: ConcurrentCounter[str] = ConcurrentCounter()
    remaining = AtomicInt(tasks)
    all_done = threading.Event()

    for t in range(tasks // 2):
        inbox.put((t, 0))

    def agent() -> None:
        for seed, generation in inbox:
            best, nodes = reason(seed, depth)
            topic = seed % 64
            blackboard.merge(topic, best, max)
            seen.increment("nodes", nodes)
            seen.increment(f"generation-{generation}")
            if generation == 0:
                inbox.put((seed + 10_000, 1))  # a follow-up message
            if remaining.decrement() == 0:
                all_done.set()

    workers = [threading.Thread(target=agent) for _ in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    if not all_done.wait(timeout=600):
        raise RuntimeError("agents did not finish")
    inbox.close()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    summary = {
        "topics": len(blackboard),
        "nodes": seen["nodes"],
        "messages": seen["generation-0"] + seen["generation-1"],
    }
    return elapsed, summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tasks", type=int, default=200, help="messages processed (even number)")
    p.add_argument("--depth", type=int, default=7, help="search depth of one reasoning step")
    ns = p.parse_args()
    if ns.threads < 1 or ns.tasks < 2 or ns.tasks % 2:
        p.error("--threads >= 1 and an even --tasks >= 2")
    info = runtime_info()
    one, s1 = run(1, ns.tasks, ns.depth)
    many, sn = run(ns.threads, ns.tasks, ns.depth)
    assert s1 == sn, f"results differ: {s1} vs {sn}"
    print(f"Python {info.python_version}: {info.summary} cores={info.cpu_count}")
    print(f"{ns.tasks} messages, depth {ns.depth}: {s1['nodes']} nodes searched")
    print(f"1 thread : {one:.2f} s")
    print(f"{ns.threads} threads: {many:.2f} s")
    print(f"speedup  : {one / many:.2f}x")


if __name__ == "__main__":
    main()
