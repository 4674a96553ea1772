"""Text tables, side-by-side comparison and plots of bench results."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._internal.dist import install_hint
from .runner import SCHEMA, upgrade

MATPLOTLIB_HINT = f"{install_hint('bench')} (or pip install matplotlib)"

__all__ = [
    "MATPLOTLIB_HINT",
    "compare_tables",
    "format_problem",
    "format_results",
    "human",
    "impl_label",
    "impls",
    "plot_results",
]

#: How implementation names are shown in tables.
IMPL_LABELS = {"native": "native", "pure": "pure Python"}


def impl_label(name: str) -> str:
    return IMPL_LABELS.get(name, name)


def impls(doc: dict[str, Any]) -> list[str]:
    """The implementations measured in ``doc``, in run order."""
    return [i["name"] for i in upgrade(doc).get("implementations", [])]


def rows_by_key(w: dict[str, Any]) -> dict[tuple[str, str, int], dict[str, Any]]:
    """A throughput workload's rows by (implementation, variant, threads)."""
    return {(r.get("impl", "pure"), r["variant"], r["threads"]): r for r in w["results"]}


def variant_thread_keys(w: dict[str, Any]) -> list[tuple[str, int]]:
    """(variant, threads) pairs of a workload in variant order, then threads."""
    keys: list[tuple[str, int]] = []
    order = {v["name"]: i for i, v in enumerate(w.get("variants", []))}
    for r in w["results"]:
        k = (r["variant"], r["threads"])
        if k not in keys:
            keys.append(k)
    return sorted(keys, key=lambda k: (order.get(k[0], len(order)), k[1]))


def human(x: float) -> str:
    """Format an ops/s figure: 12.3M, 456k, 789."""
    if not math.isfinite(x):
        return "-"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.2f}{suffix}"
    return f"{x:.0f}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for r in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, r, strict=True)]

    def line(cells: Sequence[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in pairs).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])


def _header(doc: dict[str, Any]) -> str:
    rt = doc["runtime"]
    lines = [
        f"conctools {doc['conctools_version']} bench - Python {rt['python_version']} "
        f"({rt['implementation']}), {rt['summary']} cores={rt['cpu_count']}; "
        "medians, [min-max] over repetitions"
    ]
    for i in doc.get("implementations", []):
        s = i.get("settings") or doc["settings"]
        types = i.get("native_types") or []
        lines.append(
            f"  {impl_label(i['name'])}: threads={','.join(map(str, s['threads']))} "
            f"repeat={s['repeat']} target={s['target_seconds']}s"
            f"{' quick' if s['quick'] else ''}; {i.get('reason', '')}"
            + (f" (native types: {', '.join(types)})" if types else "")
        )
    return "\n".join(lines)


def format_workload(w: dict[str, Any]) -> str:
    title = f"== {w['group']} / {w['name']}: {w['description']}"
    if w["kind"] == "metric":
        rows = w["rows"]
        if not rows:
            return title + "\n(no rows)"
        headers = list(rows[0].keys())
        body = [[_cell(r.get(h)) for h in headers] for r in rows]
        return title + "\n" + _table(headers, body)
    names = list(dict.fromkeys(r.get("impl", "pure") for r in w["results"]))
    multi = len(names) > 1
    headers = ["variant", "threads"]
    for name in names:
        tag = f"{impl_label(name)} " if multi else ""
        headers += [f"{tag}{w['unit']}/s", "spread", f"x {w['baseline']}"]
    headers.append("x own 1T")
    if {"native", "pure"} <= set(names):
        headers.append("native/pure")
    headers.append("rates")
    rows = rows_by_key(w)
    first = names[0] if names else "pure"
    one_thread = {
        r["variant"]: r["ops_per_sec"]["median"]
        for r in w["results"]
        if r["threads"] == 1 and r.get("impl", "pure") == first
    }
    body = []
    for variant, threads in variant_thread_keys(w):
        cells = [variant + (" *" if variant == w["baseline"] else ""), str(threads)]
        for name in names:
            r = rows.get((name, variant, threads))
            if r is None:
                cells += ["-", "", "-"]
                continue
            ops = r["ops_per_sec"]
            cells += [
                human(ops["median"]),
                f"[{human(ops['min'])}-{human(ops['max'])}]",
                _ratio(r["ratio_to_baseline"]["median"]),
            ]
        primary = rows.get((first, variant, threads))
        own = one_thread.get(variant)
        cells.append(f"{primary['ops_per_sec']['median'] / own:.2f}" if primary and own else "-")
        if {"native", "pure"} <= set(names):
            nat = rows.get(("native", variant, threads))
            cells.append(
                _ratio(nat["native_over_pure"]) if nat and "native_over_pure" in nat else "-"
            )
        rates = ""
        if primary and "rates" in primary:
            rates = " ".join(
                f"{k}={human(v['median'])}" for k, v in sorted(primary["rates"].items())
            )
        cells.append(rates)
        body.append(cells)
    note = f"\n({w['threads_note']})" if w.get("threads_note") else ""
    if w.get("baseline_note"):
        note += f"\n({w['baseline_note']})"
    return title + note + "\n" + _table(headers, body)


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def format_results(doc: dict[str, Any]) -> str:
    doc = upgrade(doc)
    legend = "(* = baseline; x baseline = paired ratio to the baseline at the same thread count"
    if {"native", "pure"} <= set(impls(doc)):
        legend += (
            ", within one implementation's run; native/pure = ratio of the two runs' "
            "medians, not paired"
        )
    parts = [_header(doc), legend + ")"]
    parts += [format_workload(w) for w in doc["workloads"]]
    return "\n\n".join(parts) + "\n"


def _label(doc: dict[str, Any]) -> str:
    rt = doc["runtime"]
    tag = (
        "no-GIL"
        if not rt["gil_enabled"]
        else ("GIL (ft build)" if rt["free_threaded_build"] else "GIL")
    )
    return f"{rt['python_version']} {tag}"


def format_problem(doc: Any) -> str | None:
    """What keeps ``doc`` from being a result document :func:`compare_tables`
    and :func:`plot_results` can read, or None when it is one."""
    if not isinstance(doc, dict):
        return "the top level is not an object"
    if doc.get("schema") not in (1, SCHEMA):
        return f"schema {doc.get('schema')!r}, expected 1 or {SCHEMA}"
    rt = doc.get("runtime")
    if not isinstance(rt, dict) or not {
        "python_version",
        "gil_enabled",
        "free_threaded_build",
    } <= set(rt):
        return "no runtime description"
    workloads = doc.get("workloads")
    if not isinstance(workloads, list):
        return "no workload list"
    for w in workloads:
        if not isinstance(w, dict) or not {"name", "group", "kind"} <= set(w):
            return "a workload without name, group or kind"
        if w["kind"] != "throughput":
            continue
        if not isinstance(w.get("results"), list) or not isinstance(w.get("variants"), list):
            return f"workload {w['name']!r} has no results"
        for r in w["results"]:
            try:
                float(r["ops_per_sec"]["median"])
                float(r["ratio_to_baseline"]["median"])
                str(r["variant"])
                int(r["threads"])
            except (KeyError, TypeError, ValueError):
                return f"a malformed result row in workload {w['name']!r}"
            if not isinstance(r["variant"], str) or not isinstance(r["threads"], int):
                return f"a malformed result row in workload {w['name']!r}"
            if doc["schema"] >= 2 and not isinstance(r.get("impl"), str):
                return f"a result row without implementation in workload {w['name']!r}"
        for v in w["variants"]:
            if not isinstance(v, dict) or not isinstance(v.get("name"), str):
                return f"a malformed variant in workload {w['name']!r}"
    return None


def _ratio(x: float) -> str:
    return f"{x:.2f}" if math.isfinite(x) else "-"


def compare_tables(a: dict[str, Any], b: dict[str, Any]) -> str:
    """Side-by-side table of two result documents (e.g. GIL vs no-GIL).

    Every workload and variant of either file is shown; a cell of a variant
    (or thread count) that only one file has is ``-``."""
    a, b = upgrade(a), upgrade(b)
    la, lb = _label(a), _label(b)
    out = [f"A = {la}   B = {lb}", "(- = not measured in that file)"]
    show_impl = set(impls(a)) | set(impls(b)) != {"pure"}
    wa_by = {w["name"]: w for w in a["workloads"] if w["kind"] == "throughput"}
    wb_by = {w["name"]: w for w in b["workloads"] if w["kind"] == "throughput"}
    names = list(wa_by) + [n for n in wb_by if n not in wa_by]
    for name in names:
        wa, wb = wa_by.get(name), wb_by.get(name)
        ia = {
            (r["variant"], r.get("impl", "pure"), r["threads"]): r
            for r in (wa["results"] if wa else [])
        }
        ib = {
            (r["variant"], r.get("impl", "pure"), r["threads"]): r
            for r in (wb["results"] if wb else [])
        }
        keys = list(ia) + [k for k in ib if k not in ia]
        first_seen = {v: i for i, v in reversed(list(enumerate(k[0] for k in keys)))}
        order = {"native": 0, "pure": 1}
        keys.sort(key=lambda k: (first_seen[k[0]], order.get(k[1], 2), k[2]))
        rows = []
        for key in keys:
            ra, rb = ia.get(key), ib.get(key)
            sa = ra["ops_per_sec"]["median"] if ra else float("nan")
            sb = rb["ops_per_sec"]["median"] if rb else float("nan")
            rows.append(
                [
                    key[0],
                    *([impl_label(key[1])] if show_impl else []),
                    str(key[2]),
                    human(sa),
                    human(sb),
                    _ratio(sb / sa) if ra and rb and sa else "-",
                    _ratio(ra["ratio_to_baseline"]["median"]) if ra else "-",
                    _ratio(rb["ratio_to_baseline"]["median"]) if rb else "-",
                ]
            )
        if not rows:
            continue
        first = wa or wb
        assert first is not None
        base_a, base_b = (wa or {}).get("baseline"), (wb or {}).get("baseline")
        if base_a and base_b and base_a != base_b:
            base = f"baseline A: {base_a}, B: {base_b}"
        else:
            base = f"baseline {base_a or base_b}"
        out.append(f"\n== {first['group']} / {name} ({base})")
        for label, w in (("A", wa), ("B", wb)):
            if w is None:
                out.append(f"(not in {label})")
            elif w.get("baseline_note"):
                out.append(f"({label}: {w['baseline_note']})")
        out.append(
            _table(
                [
                    "variant",
                    *(["impl"] if show_impl else []),
                    "threads",
                    "A ops/s",
                    "B ops/s",
                    "B/A",
                    "A x base",
                    "B x base",
                ],
                rows,
            )
        )
    return "\n".join(out) + "\n"


def plot_results(docs: Sequence[dict[str, Any]], directory: str | Path) -> list[Path]:
    """Write one PNG per throughput workload: ops/s against threads, one line
    per variant (and per result document when several are given)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(f"plotting needs matplotlib: {MATPLOTLIB_HINT}") from exc
    docs = [upgrade(d) for d in docs]
    outdir = Path(directory)
    outdir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    names: list[str] = []
    for d in docs:
        for w in d["workloads"]:
            if w["kind"] == "throughput" and w["name"] not in names:
                names.append(w["name"])
    for name in names:
        fig, ax = plt.subplots(figsize=(9.6, 4.4), dpi=100)
        # tab20 comes in pairs of a dark and a light shade: one pair per variant,
        # dark for native, light for pure Python; the line style tells the build.
        cmap = plt.get_cmap("tab20")
        palette = [cmap(i) for i in range(20)]
        colours: dict[str, int] = {}
        group = ""
        for d in docs:
            label = _label(d)
            style = "-" if not d["runtime"]["gil_enabled"] else "--"
            for w in d["workloads"]:
                if w["name"] != name or w["kind"] != "throughput":
                    continue
                group = w["group"]
                names = impls(d)
                for v in w["variants"]:
                    for impl in names:
                        if impl != names[0] and v.get("external"):
                            continue  # runs no conctools code: one line is enough
                        pts = sorted(
                            (r["threads"], r["ops_per_sec"]["median"])
                            for r in w["results"]
                            if r["variant"] == v["name"] and r.get("impl", "pure") == impl
                        )
                        if not pts:
                            continue
                        xs, ys = zip(*pts, strict=True)
                        # The pure Python line is thinner, with square markers.
                        tags = [impl_label(impl)] if len(names) > 1 else []
                        if len(docs) > 1:
                            tags.append(label)
                        suffix = f" ({', '.join(tags)})" if tags else ""
                        pair = colours.setdefault(v["name"], len(colours) % 10)
                        colour = palette[2 * pair + (impl != "native")]
                        ax.plot(
                            xs,
                            [y / 1e6 for y in ys],
                            style,
                            marker="o" if impl == "native" else "s",
                            linewidth=1.5 if impl == "native" else 1.0,
                            color=colour,
                            label=v["name"] + suffix,
                        )
        ax.set_title(f"{group}: {name}")
        ax.set_xlabel("threads")
        ax.set_xticks(
            sorted(
                {
                    r["threads"]
                    for d in docs
                    for w in d["workloads"]
                    if w["name"] == name and w["kind"] == "throughput"
                    for r in w["results"]
                }
            )
        )
        ax.set_ylabel("M ops/s")
        ax.grid(True, alpha=0.3)
        # Beside the axes: with two implementations and two builds the lines
        # are many, and a legend inside would hide some.
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
        fig.tight_layout()
        path = outdir / f"{name}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written
