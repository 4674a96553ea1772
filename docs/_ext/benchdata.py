"""Sphinx directives that render the committed benchmark results.

The docs never run benchmarks: they read ``benchmarks/results/*.json`` (written
by ``nox -s bench_results``) and the PNG charts in ``docs/_static/bench/``.

* ``.. bench-table:: WORKLOAD`` - ops/s and ratio to baseline per variant and
  thread count, one table per committed result file (GIL, no-GIL), a column
  group per implementation of conctools (native, pure Python) and their ratio.
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

from conctools.bench.report import human, impl_label, impls, rows_by_key, variant_thread_keys
from conctools.bench.runner import upgrade

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
        ":class:`~conctools.sharded_dict.ShardedDict`; with the pure-Python "
        "implementation a dict + Lock is faster on one core",
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
            docs.append(upgrade(json.load(fh)))
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


def _settings(doc: dict[str, Any], impl: str | None = None) -> dict[str, Any]:
    for i in doc.get("implementations", []):
        if impl is None or i["name"] == impl:
            found: dict[str, Any] = i.get("settings") or doc["settings"]
            return found
    settings: dict[str, Any] = doc["settings"]
    return settings


def _ratio(x: float | None) -> str:
    return f"{x:.2f}" if x is not None else "-"


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
        reps = sorted({_settings(d)["repeat"] for d in docs})
        lines = [
            f"*{first['description']}* (baseline: {first['baseline']}; medians of "
            f"{'/'.join(map(str, reps))} paired repetitions)",
            "",
        ]
        if first.get("threads_note"):
            lines += [f"Threads: {first['threads_note']}.", ""]
        for d in docs:
            w = find(d, name)
            assert w is not None
            names = [n for n in impls(d) if any(r.get("impl") == n for r in w["results"])]
            both = {"native", "pure"} <= set(names)
            header = ["variant", "threads"]
            for n in names:
                header += [f"{impl_label(n)} {w['unit']}/s", "x baseline"]
            if both:
                header.append("native / pure")
            rows_of = rows_by_key(w)
            rows = []
            for variant, threads in variant_thread_keys(w):
                if wanted is not None and variant not in wanted:
                    continue
                row = [
                    variant + (" (baseline)" if variant == w["baseline"] else ""),
                    str(threads),
                ]
                for n in names:
                    r = rows_of.get((n, variant, threads))
                    if r is None:
                        row += ["-", "-"]
                    else:
                        row += [
                            human(r["ops_per_sec"]["median"]),
                            f"{r['ratio_to_baseline']['median']:.2f}",
                        ]
                if both:
                    nat = rows_of.get(("native", variant, threads))
                    row.append(_ratio(nat.get("native_over_pure") if nat else None))
                rows.append(row)
            lines += [f"**{label(d)}**", ""]
            lines += list_table(header, rows)
        return self.render(lines)


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
        impl = impl_label(w.get("impl", "pure"))
        lines = [
            f"*{w['description']}* (measured on {label(docs[0])}, {impl}; deterministic, the "
            "same on every build and implementation)",
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
            runs = []
            for i in d.get("implementations", []):
                st = i.get("settings") or d["settings"]
                runs.append(
                    f"{impl_label(i['name'])}: {st['repeat']} repetitions at "
                    f"{'/'.join(map(str, st['threads']))} threads"
                )
            rows.append(
                [
                    label(d),
                    rt["summary"],
                    str(rt["cpu_count"]),
                    d["machine"],
                    d["created"],
                    "; ".join(runs),
                    f"{d['elapsed_seconds']:.0f} s",
                ]
            )
        return self.render(
            list_table(
                [
                    "interpreter",
                    "state",
                    "cores",
                    "machine",
                    "measured",
                    "implementations",
                    "run time",
                ],
                rows,
            )
        )


def _guide_ratio(
    w: dict[str, Any], variant: str, against: str | None, n: int, impl: str = "pure"
) -> str:
    rows = rows_by_key(w)

    def median_of(name: str) -> float | None:
        hit = rows.get((impl, name, n))
        return hit["ops_per_sec"]["median"] if hit else None

    if against is None:
        hit = rows.get((impl, variant, n))
        return f"{hit['ratio_to_baseline']['median']:.2f}" if hit else "-"
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
        several = any(len(impls(d)) > 1 for d in docs)
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
                parts = []
                for impl in impls(d):
                    cells = [_guide_ratio(w, variant, against, n, impl) for n in (1, 2, 4)]
                    while len(cells) > 1 and cells[-1] == "-":
                        cells.pop()  # thread counts this implementation did not run
                    if set(cells) == {"-"}:
                        continue
                    tag = f"{impl_label(impl)} " if several else ""
                    parts.append(tag + " / ".join(cells))
                # The build is named in the cell too: on narrow screens the
                # table is shown as one card per row, without its header.
                tag = "no GIL" if not d["runtime"]["gil_enabled"] else "GIL"
                row.append(
                    f"**{tag}:** " + ("; ".join(parts) or "-") + f" vs {against or w['baseline']}"
                )
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
        common = [i for i in impls(gil[0]) if i in impls(ft[0])]
        if not common:
            return self.missing("one implementation measured on both builds")

        def one_thread(w: dict[str, Any], impl: str) -> dict[str, float]:
            return {
                r["variant"]: r["ops_per_sec"]["median"]
                for r in w["results"]
                if r["threads"] == 1 and r.get("impl") == impl
            }

        def summary(name: str, ratios: list[float]) -> list[str]:
            ratios = sorted(ratios)
            return [
                name,
                str(len(ratios)),
                f"{ratios[0]:.2f}",
                f"{ratios[len(ratios) // 2]:.2f}",
                f"{ratios[-1]:.2f}",
            ]

        rows = []
        ratios_all: dict[str, list[float]] = {i: [] for i in common}
        for wg in gil[0]["workloads"]:
            wf = find(ft[0], wg["name"])
            if wf is None or wg["kind"] != "throughput":
                continue
            for impl in common:
                one_g, one_f = one_thread(wg, impl), one_thread(wf, impl)
                ratios = [one_f[v] / one_g[v] for v in one_g if v in one_f and one_g[v]]
                ratios_all[impl] += ratios
                if ratios and impl == common[0]:
                    rows.append(summary(f"{wg['group']} / {wg['name']}", ratios))
        for impl in common:
            if ratios_all[impl]:
                rows.append(summary(f"**all workloads, {impl_label(impl)}**", ratios_all[impl]))
        header = ["workload", "variants", "min", "median", "max"]
        lines = [
            f"Single-thread throughput, {label(ft[0])} divided by {label(gil[0])} "
            "(1.00 = same speed; below 1 the free-threaded build is slower); per workload "
            f"with the {impl_label(common[0])} implementation of conctools:",
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
