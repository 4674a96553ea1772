"""Text tables, side-by-side comparison and plots of bench results."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["compare_tables", "format_results", "human", "plot_results"]


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
    s = doc["settings"]
    return (
        f"conctools {doc['conctools_version']} bench - Python {rt['python_version']} "
        f"({rt['implementation']}), {rt['summary']} cores={rt['cpu_count']}; "
        f"threads={','.join(map(str, s['threads']))} repeat={s['repeat']}"
        f"{' quick' if s['quick'] else ''}; medians, [min-max] over repetitions"
    )


def format_workload(w: dict[str, Any]) -> str:
    title = f"== {w['group']} / {w['name']}: {w['description']}"
    if w["kind"] == "metric":
        rows = w["rows"]
        if not rows:
            return title + "\n(no rows)"
        headers = list(rows[0].keys())
        body = [[_cell(r.get(h)) for h in headers] for r in rows]
        return title + "\n" + _table(headers, body)
    headers = [
        "variant",
        "threads",
        f"{w['unit']}/s",
        "spread",
        f"x {w['baseline']}",
        "x own 1T",
        "rates",
    ]
    body = []
    one_thread = {
        r["variant"]: r["ops_per_sec"]["median"] for r in w["results"] if r["threads"] == 1
    }
    for r in w["results"]:
        ops = r["ops_per_sec"]
        ratio = r["ratio_to_baseline"]["median"]
        own = one_thread.get(r["variant"])
        rates = ""
        if "rates" in r:
            rates = " ".join(f"{k}={human(v['median'])}" for k, v in sorted(r["rates"].items()))
        body.append(
            [
                r["variant"] + (" *" if r["variant"] == w["baseline"] else ""),
                str(r["threads"]),
                human(ops["median"]),
                f"[{human(ops['min'])}-{human(ops['max'])}]",
                f"{ratio:.2f}" if math.isfinite(ratio) else "-",
                f"{ops['median'] / own:.2f}" if own else "-",
                rates,
            ]
        )
    note = f"\n({w['threads_note']})" if w.get("threads_note") else ""
    return title + note + "\n" + _table(headers, body)


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def format_results(doc: dict[str, Any]) -> str:
    parts = [
        _header(doc),
        "(* = baseline; x baseline = paired ratio to the baseline at the same thread count)",
    ]
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


def compare_tables(a: dict[str, Any], b: dict[str, Any]) -> str:
    """Side-by-side table of two result documents (e.g. GIL vs no-GIL)."""
    la, lb = _label(a), _label(b)
    out = [f"A = {la}   B = {lb}"]
    bw = {w["name"]: w for w in b["workloads"]}
    for wa in a["workloads"]:
        wb = bw.get(wa["name"])
        if wb is None or wa["kind"] != "throughput" or wb["kind"] != "throughput":
            continue
        idx = {(r["variant"], r["threads"]): r for r in wb["results"]}
        rows = []
        for r in wa["results"]:
            rb = idx.get((r["variant"], r["threads"]))
            if rb is None:
                continue
            sa, sb = r["ops_per_sec"]["median"], rb["ops_per_sec"]["median"]
            rows.append(
                [
                    r["variant"],
                    str(r["threads"]),
                    human(sa),
                    human(sb),
                    f"{sb / sa:.2f}" if sa else "-",
                    f"{r['ratio_to_baseline']['median']:.2f}",
                    f"{rb['ratio_to_baseline']['median']:.2f}",
                ]
            )
        if rows:
            out.append(f"\n== {wa['group']} / {wa['name']} (baseline {wa['baseline']})")
            out.append(
                _table(
                    ["variant", "threads", "A ops/s", "B ops/s", "B/A", "A x base", "B x base"],
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
        raise RuntimeError(
            "plotting needs matplotlib: pip install 'conctools[bench]' (or matplotlib)"
        ) from exc
    outdir = Path(directory)
    outdir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    names: list[str] = []
    for d in docs:
        for w in d["workloads"]:
            if w["kind"] == "throughput" and w["name"] not in names:
                names.append(w["name"])
    for name in names:
        fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
        palette = plt.get_cmap("tab10").colors
        colours: dict[str, Any] = {}  # one colour per variant; line style tells the build
        group = ""
        for d in docs:
            label = _label(d)
            style = "-" if not d["runtime"]["gil_enabled"] else "--"
            for w in d["workloads"]:
                if w["name"] != name or w["kind"] != "throughput":
                    continue
                group = w["group"]
                for v in w["variants"]:
                    pts = sorted(
                        (r["threads"], r["ops_per_sec"]["median"])
                        for r in w["results"]
                        if r["variant"] == v["name"]
                    )
                    if not pts:
                        continue
                    xs, ys = zip(*pts, strict=True)
                    suffix = f" ({label})" if len(docs) > 1 else ""
                    colour = colours.setdefault(v["name"], palette[len(colours) % len(palette)])
                    ax.plot(
                        xs,
                        [y / 1e6 for y in ys],
                        style,
                        marker="o",
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
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = outdir / f"{name}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written
