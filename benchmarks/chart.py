"""The report's chart (``benchmarks[-PROFILE].png``): one panel per measure and the table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.settings import DAG_IDS, GOALS, NOOP, ORDER, verdict


def chart(results: dict[str, Any], path: Path, title: str, rows: list[list[str]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {ORDER: "#d95f02", NOOP: "#7570b3"}
    fig, grid = plt.subplots(2, 3, figsize=(17, 10))
    axes = list(grid.flat)
    fig.suptitle(title, fontsize=12)

    def heading(ax, p: str, text: str) -> None:
        r = results.get(p)
        line = f"{p} {text}"
        if r and r.get("ratio") is not None:
            op, goal, _ = GOALS[p]
            value = f"{r['ratio']:+.2f} ms" if p == "P5" else f"ratio {r['ratio']:.2f}"
            line += f"\n{value} (goal {op} {goal:g}{' ms' if p == 'P5' else ''}): {verdict(p, r)}"
        ax.set_title(line, fontsize=10)
        if r is None:
            ax.axis("off")
            ax.text(0.5, 0.5, "not run", transform=ax.transAxes, ha="center", va="center", color="grey")

    def dots(ax, groups: list[tuple[str, list[float], str]], ylabel: str) -> None:
        for x, (_label, values, color) in enumerate(groups):
            values = [v for v in values if v is not None]
            if not values:
                continue
            ax.boxplot([values], positions=[x], widths=0.5, showfliers=False, medianprops={"color": "black"})
            jitter = [x + 0.15 * ((i % 7) - 3) / 3 for i in range(len(values))]
            ax.scatter(jitter, values, s=14, alpha=0.6, color=color, zorder=3)
        ax.set_xticks(range(len(groups)), [g[0] for g in groups], fontsize=9)
        ax.set_xlim(-0.6, len(groups) - 0.4)
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.grid(axis="y", alpha=0.3)

    def p1_latencies() -> dict[str, list[float]]:
        return {d: [v for rd in results["P1"]["rounds"] for v in rd[d]["latencies_s"]] for d in DAG_IDS}

    ax = axes[0]
    heading(ax, "P1", "sequential runs: latency (end_date - queued_at)")
    if "P1" in results:
        lat = p1_latencies()
        dots(ax, [("order_processing", lat[ORDER], colors[ORDER]), ("order_shape_noop", lat[NOOP], colors[NOOP])],
             "run latency, s")
    ax = axes[1]
    heading(ax, "P2", "burst: drain rate")
    if "P2" in results:
        rounds = list(results["P2"]["rounds"])
        labels = [f"round {i + 1}\n{rd[ORDER]['n']} runs" for i, rd in enumerate(rounds)]
        hb = results["P2"].get("heartbeat_interval")
        if hb:
            for name in ("default", "shipped"):
                rounds.append(hb[name])
                labels.append(f"interval {hb[f'{name}_value']} s\n({name})")
        width = 0.38
        for j, d in enumerate(DAG_IDS):
            xs = [i + (j - 0.5) * width for i in range(len(rounds))]
            values = [rd[d]["runs_per_min"] for rd in rounds]
            ax.bar(xs, values, width, label=d, color=colors[d])
            for x, v in zip(xs, values, strict=True):
                ax.text(x, v, f"{v:.1f}", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(rounds)), labels, fontsize=8)
        ax.set_ylabel("runs per minute (N / (last end - first queued))")
        ax.legend(fontsize=8, loc="lower right")
        ax.grid(axis="y", alpha=0.3)
    ax = axes[2]
    r3 = results.get("P3")
    heading(ax, "P3", f"latency with {r3['parked'] if r3 else 'M'} orders parked in approval")
    if r3:
        without = p1_latencies() if "P1" in results else r3["baseline_latencies_s"]
        dots(ax, [("order\nwithout", without[ORDER], colors[ORDER]),
                  ("order\nparked", r3["latencies_s"][ORDER], colors[ORDER]),
                  ("no-op\nwithout", without[NOOP], colors[NOOP]),
                  ("no-op\nparked", r3["latencies_s"][NOOP], colors[NOOP])],
             "run latency, s")
        ax.text(0.02, 0.02, f"running task instances among the parked runs: {r3['parked_running_tis']}",
                transform=ax.transAxes, fontsize=8)
    ax = axes[3]
    heading(ax, "P4", "DAG file parse: DAG processor, and in-process part")
    if "P4" in results:
        sm = results["P4"]["samples"]
        ps = results["P4"]["processor_samples_s"]
        dots(ax, [("order\nprocessor", [v * 1000 for v in ps[ORDER]], colors[ORDER]),
                  ("no-op\nprocessor", [v * 1000 for v in ps[NOOP]], colors[NOOP]),
                  ("order\nin-process", [x["parse_file_s"] * 1000 for x in sm[ORDER]], colors[ORDER]),
                  ("no-op\nin-process", [x["parse_file_s"] * 1000 for x in sm[NOOP]], colors[NOOP])],
             "parse time, ms")
    ax = axes[4]
    heading(ax, "P5", "hook call vs raw GET on loopback")
    if "P5" in results:
        r5 = results["P5"]
        groups = [("PaymentHook.get_charge", [v * 1000 for v in r5["hook_s"]], colors[ORDER]),
                  ("requests GET", [v * 1000 for v in r5["raw_s"]], colors[NOOP])]
        if r5.get("raw_httpx_s"):
            groups.append(("httpx GET\n(not the baseline)", [v * 1000 for v in r5["raw_httpx_s"]], "#1b9e77"))
        dots(ax, groups, "call time, ms")
    ax = axes[5]
    ax.axis("off")
    cells = [[r[0], r[2], r[3].split(" (")[0], r[4], r[5], r[6]] for r in rows[1:]]
    table = ax.table(cellText=cells, colLabels=["", "order DAG", "baseline", "ratio", "goal", "result"],
                     loc="center", cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1, 1.6)
    for (row, col), cell in table.get_celld().items():
        if row > 0 and col == 5:
            cell.set_facecolor({"pass": "#d9f0d3", "FAIL": "#f4cccc", "INVALID": "#fce5cd"}.get(cells[row - 1][5], "white"))
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=100)
    plt.close(fig)
