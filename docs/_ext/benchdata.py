"""Sphinx directives that render the committed benchmark results.

The docs never run benchmarks: they read ``benchmarks/results/*.json`` (written
by ``nox -s bench_results``) and the PNG charts in ``docs/_static/bench/``.

* ``.. bench-table:: WORKLOAD`` - ops/s and ratio to baseline per variant and
  thread count, one column group per committed result file (GIL, no-GIL).
* ``.. bench-metric:: WORKLOAD`` - the rows of a metric workload (hit rates).
* ``.. bench-plot:: WORKLOAD`` - the chart, when it exists.
* ``.. bench-runtime::`` - which interpreters and machine produced the data.
* ``.. bench-guide::`` - the decision table, from ``GUIDE`` below and the data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from conctools.bench.report import human

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
PLOTS = ROOT / "docs" / "_static" / "bench"

# The decision guide: access pattern -> (workload, conctools variant, what to use).
# Ratios are read from the committed results at build time.
# An optional fifth element names the variant to compare with instead of the
# workload's baseline (ratio of medians, not paired).
GUIDE: list[tuple[str, ...]] = [
    (
        "one shared total, incremented from many threads",
        "counter_increment",
        "StripedCounter handle",
        ":class:`~conctools.counters.StripedCounter`, ``h = c.handle()`` in each hot loop",
    ),
    (
        "a shared number you read, set or compare-and-set",
        "counter_increment",
        "AtomicInt",
        ":class:`~conctools.atomic.AtomicInt` / :class:`~conctools.atomic.AtomicRef`",
    ),
    (
        "counting occurrences per key",
        "keyed_counter",
        "ConcurrentCounter handle",
        ":class:`~conctools.counters.ConcurrentCounter` (``handle()`` in hot loops)",
        "dict+Lock (tuned)",
    ),
    (
        "a shared dict, 90% reads / 10% counter updates",
        "counter_mix",
        "ShardedDict.handle()",
        ":class:`~conctools.sharded_dict.ShardedDict`, ``handle()`` per thread",
    ),
    (
        "a shared dict, 98% reads",
        "read_heavy",
        "ShardedDict.handle()",
        ":class:`~conctools.sharded_dict.ShardedDict`, ``handle()`` per thread",
    ),
    (
        "a shared dict, write-heavy (10/40/40/10)",
        "exchange",
        "ShardedDict.handle()",
        ":class:`~conctools.sharded_dict.ShardedDict` if you need its atomic compound "
        "operations or more than one core; a dict + Lock is faster on one core",
    ),
    (
        "memoising results (all hits)",
        "cache_getput_read",
        "ConcurrentCache lru",
        ":class:`~conctools.cache.ConcurrentCache` or :func:`~conctools.cache.cached`",
    ),
    (
        "a bounded cache with misses and evictions",
        "cache_get_or_put",
        "ConcurrentCache lru",
        ":class:`~conctools.cache.ConcurrentCache` (``get_or_load`` for single-flight)",
    ),
    (
        "handing items between threads",
        "queue_unbounded",
        "ConcurrentQueue",
        ":class:`~conctools.queue.ConcurrentQueue`",
    ),
    (
        "a bounded work queue (back-pressure)",
        "queue_bounded64",
        "ConcurrentQueue",
        ":class:`~conctools.queue.ConcurrentQueue` (``maxsize``)",
    ),
    (
        "high-volume hand-off in batches",
        "queue_batch64_unbounded",
        "ConcurrentQueue batch 64",
        "``put_many`` / ``get_many`` of :class:`~conctools.queue.ConcurrentQueue`",
    ),
    (
        "read-mostly shared state, short in-memory reads",
        "registry_99_1",
        "RWLock optimistic",
        "a plain ``threading.Lock``; or :class:`~conctools.rwlock.RWLock` optimistic reads",
    ),
    (
        "read-mostly shared state, reads that block (I/O)",
        "registry_blocking_reads",
        "RWLock(fair)",
        ':class:`~conctools.rwlock.RWLock` (``"fair"`` or ``"writer"``)',
    ),
]


def load_results() -> list[dict[str, Any]]:
    docs = []
    for p in sorted(RESULTS.glob("*.json")):
        with open(p, encoding="utf-8") as fh:
            docs.append(json.load(fh))
    # GIL build first, then free-threaded
    docs.sort(key=lambda d: (not d["runtime"]["gil_enabled"], d["runtime"]["python_version"]))
    return docs


def label(doc: dict[str, Any]) -> str:
    rt = doc["runtime"]
    if rt["free_threaded_build"] and not rt["gil_enabled"]:
        return f"{rt['python_version']}t (no GIL)"
    return f"{rt['python_version']} (GIL)"


def find(doc: dict[str, Any], name: str) -> dict[str, Any] | None:
    for w in doc["workloads"]:
        if w["name"] == name:
            found: dict[str, Any] = w
            return found
    return None


def list_table(
    header: list[str],
    rows: list[list[str]],
    widths: str | None = None,
    css_class: str | None = None,
) -> list[str]:
    out = [".. list-table::", "   :header-rows: 1"]
    if widths:
        out.append(f"   :widths: {widths}")
    if css_class:
        out.append(f"   :class: {css_class}")
    out.append("")

    def cell(c: str) -> str:
        # A bare "-" would parse as an empty bullet list.
        return "n/a" if c in ("", "-") else c

    for r in [header, *rows]:
        out.append(f"   * - {cell(r[0])}")
        out.extend(f"     - {cell(c)}" for c in r[1:])
    out.append("")
    return out


class _Base(SphinxDirective):
    def render(self, lines: list[str]) -> list[nodes.Node]:
        container = nodes.container()
        self.state.nested_parse(
            StringList(lines, source="benchdata"), self.content_offset, container
        )
        return list(container.children)

    def missing(self, what: str) -> list[nodes.Node]:
        para = nodes.paragraph(
            text=f"(No committed benchmark results for {what} yet: run ``nox -s bench_results``.)"
        )
        return [para]


class BenchTable(_Base):
    required_arguments = 1
    option_spec: ClassVar[dict[str, Any]] = {"variants": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        docs = [d for d in load_results() if find(d, name)]
        if not docs:
            return self.missing(name)
        wanted = None
        if "variants" in self.options:
            wanted = [v.strip() for v in self.options["variants"].split(",")]
        first = find(docs[0], name)
        assert first is not None
        header = ["variant", "threads"]
        for d in docs:
            header += [f"{label(d)} {first['unit']}/s", f"x baseline ({label(d)})"]
        keys: list[tuple[str, int]] = []
        for d in docs:
            w = find(d, name)
            assert w is not None
            for r in w["results"]:
                k = (r["variant"], r["threads"])
                if k not in keys and (wanted is None or r["variant"] in wanted):
                    keys.append(k)
        rows = []
        for variant, threads in keys:
            row = [variant + (" (baseline)" if variant == first["baseline"] else ""), str(threads)]
            for d in docs:
                w = find(d, name)
                assert w is not None
                key = (variant, threads)
                hit = [r for r in w["results"] if (r["variant"], r["threads"]) == key]
                if hit:
                    r = hit[0]
                    row += [
                        human(r["ops_per_sec"]["median"]),
                        f"{r['ratio_to_baseline']['median']:.2f}",
                    ]
                else:
                    row += ["-", "-"]
            rows.append(row)
        lines = [
            f"*{first['description']}* (baseline: {first['baseline']}; medians of "
            f"{docs[0]['settings']['repeat']} paired repetitions)",
            "",
        ]
        if first.get("threads_note"):
            lines += [f"Threads: {first['threads_note']}.", ""]
        return self.render(lines + list_table(header, rows))


class BenchMetric(_Base):
    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        docs = [d for d in load_results() if find(d, name)]
        if not docs:
            return self.missing(name)
        w = find(docs[0], name)
        assert w is not None
        rows = w["rows"]
        if not rows:
            return self.missing(name)
        header = list(rows[0].keys())
        body = [[_cell(r.get(h)) for h in header] for r in rows]
        lines = [
            f"*{w['description']}* (measured on {label(docs[0])}; deterministic, the same on "
            "every build)",
            "",
        ]
        return self.render(lines + list_table(header, body))


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


class BenchPlot(_Base):
    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        path = PLOTS / f"{self.arguments[0]}.png"
        if not path.exists():
            return []
        return self.render(
            [
                f".. image:: /_static/bench/{path.name}",
                f"   :alt: {self.arguments[0]} throughput against threads",
                "",
            ]
        )


class BenchRuntime(_Base):
    def run(self) -> list[nodes.Node]:
        docs = load_results()
        if not docs:
            return self.missing("any workload")
        rows = []
        for d in docs:
            rt = d["runtime"]
            rows.append(
                [
                    label(d),
                    rt["summary"],
                    str(rt["cpu_count"]),
                    d["machine"],
                    d["created"],
                    str(d["settings"]["repeat"]),
                    f"{d['elapsed_seconds']:.0f} s",
                ]
            )
        return self.render(
            list_table(
                ["interpreter", "state", "cores", "machine", "measured", "repetitions", "run time"],
                rows,
            )
        )


def _guide_ratio(w: dict[str, Any], variant: str, against: str | None, n: int) -> str:
    def median_of(name: str) -> float | None:
        hit = [r for r in w["results"] if r["variant"] == name and r["threads"] == n]
        return hit[0]["ops_per_sec"]["median"] if hit else None

    if against is None:
        hit = [r for r in w["results"] if r["variant"] == variant and r["threads"] == n]
        return f"{hit[0]['ratio_to_baseline']['median']:.2f}" if hit else "-"
    a, b = median_of(variant), median_of(against)
    return f"{a / b:.2f}" if a and b else "-"


class BenchGuide(_Base):
    def run(self) -> list[nodes.Node]:
        docs = load_results()
        if not docs or not GUIDE:
            return self.missing("the decision guide")
        header = ["access pattern", "use"]
        for d in docs:
            header.append(f"x baseline at 1/2/4 threads, {label(d)}")
        rows = []
        for entry in GUIDE:
            pattern, workload, variant, use = entry[:4]
            against = entry[4] if len(entry) > 4 else None
            row = [pattern, use]
            for d in docs:
                w = find(d, workload)
                if w is None:
                    row.append("-")
                    continue
                cells = []
                for n in (1, 2, 4):
                    cells.append(_guide_ratio(w, variant, against, n))
                # The build is named in the cell too: on narrow screens the
                # table is shown as one card per row, without its header.
                tag = "no GIL" if not d["runtime"]["gil_enabled"] else "GIL"
                row.append(f"**{tag}:** " + " / ".join(cells) + f" vs {against or w['baseline']}")
            rows.append(row)
        return self.render(list_table(header, rows, css_class="bench-guide"))


class BenchOverhead(_Base):
    """Single-thread throughput of the free-threaded build relative to the GIL build."""

    def run(self) -> list[nodes.Node]:
        docs = load_results()
        gil = [d for d in docs if not d["runtime"]["free_threaded_build"]]
        ft = [
            d
            for d in docs
            if d["runtime"]["free_threaded_build"] and not d["runtime"]["gil_enabled"]
        ]
        if not gil or not ft:
            return self.missing("both builds")
        rows = []
        ratios_all: list[float] = []
        for wg in gil[0]["workloads"]:
            wf = find(ft[0], wg["name"])
            if wf is None or wg["kind"] != "throughput":
                continue
            one_g = {
                r["variant"]: r["ops_per_sec"]["median"] for r in wg["results"] if r["threads"] == 1
            }
            one_f = {
                r["variant"]: r["ops_per_sec"]["median"] for r in wf["results"] if r["threads"] == 1
            }
            ratios = sorted(one_f[v] / one_g[v] for v in one_g if v in one_f and one_g[v])
            if not ratios:
                continue
            ratios_all += ratios
            mid = ratios[len(ratios) // 2]
            rows.append(
                [
                    f"{wg['group']} / {wg['name']}",
                    str(len(ratios)),
                    f"{ratios[0]:.2f}",
                    f"{mid:.2f}",
                    f"{ratios[-1]:.2f}",
                ]
            )
        ratios_all.sort()
        if ratios_all:
            rows.append(
                [
                    "**all workloads**",
                    str(len(ratios_all)),
                    f"{ratios_all[0]:.2f}",
                    f"{ratios_all[len(ratios_all) // 2]:.2f}",
                    f"{ratios_all[-1]:.2f}",
                ]
            )
        header = ["workload", "variants", "min", "median", "max"]
        lines = [
            f"Single-thread throughput, {label(ft[0])} divided by {label(gil[0])} "
            "(1.00 = same speed; below 1 the free-threaded build is slower):",
            "",
        ]
        return self.render(lines + list_table(header, rows))


class BenchAll(_Base):
    """Every workload of the committed results: a rubric, the table, the chart."""

    def run(self) -> list[nodes.Node]:
        docs = load_results()
        if not docs:
            return self.missing("any workload")
        names: list[tuple[str, str, str]] = []
        for d in docs:
            for w in d["workloads"]:
                key = (w["group"], w["name"], w["kind"])
                if key not in names:
                    names.append(key)
        lines: list[str] = []
        for group, name, kind in names:
            lines += [f".. rubric:: {group} / {name}", ""]
            if kind == "metric":
                lines += [f".. bench-metric:: {name}", ""]
            else:
                lines += [f".. bench-table:: {name}", "", f".. bench-plot:: {name}", ""]
        return self.render(lines)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("bench-all", BenchAll)
    app.add_directive("bench-overhead", BenchOverhead)
    app.add_directive("bench-table", BenchTable)
    app.add_directive("bench-metric", BenchMetric)
    app.add_directive("bench-plot", BenchPlot)
    app.add_directive("bench-runtime", BenchRuntime)
    app.add_directive("bench-guide", BenchGuide)
    return {"parallel_read_safe": True, "version": "1"}
