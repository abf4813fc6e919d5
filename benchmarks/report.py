"""The report: the table (stdout and markdown), the verdicts, ``benchmarks[-PROFILE].{md,json}`` and the chart."""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.chart import chart
from benchmarks.common import median
from benchmarks.settings import ALL_PS, DAG_IDS, GOALS, NOOP, ORDER, Settings, verdict


def table_rows(results: dict[str, Any], settings: Settings) -> list[list[str]]:
    def f(value, fmt):
        return "-" if value is None else format(value, fmt)

    rows = [["", "measure", "order DAG", "baseline", "ratio", "goal", "result"]]
    spec = {
        "P1": (f"latency, {settings.sequential} sequential x {settings.rounds} rounds", "s", ".2f", "no-op DAG"),
        "P2": (f"burst of {settings.burst} x {settings.rounds} rounds, runs/min", "", ".1f", "no-op DAG"),
        "P3": (f"latency with {settings.parked} parked", "s", ".2f", "none parked"),
        "P4": (f"parse (DAG processor), median of {settings.parse_processes}", "ms", ".0f", "no-op file"),
        "P5": (f"hook call vs raw GET, {settings.hook_calls} calls", "ms", ".2f", "raw GET"),
    }
    for p in ALL_PS:
        what, unit, fmt, base = spec[p]
        r = results.get(p)
        op, goal, _ = GOALS[p]
        goal_text = f"{op} {goal:g}{' ms' if p == 'P5' else ''}"
        if r is None:
            rows.append([p, what, "-", "-", "-", goal_text, "not run"])
            continue
        scale = 1000 if p == "P4" else 1
        order_v = r.get(ORDER)
        base_v = r.get("order_without_parked_s") if p == "P3" else r.get(NOOP)
        ratio = r.get("ratio")
        ratio_text = (f"{ratio:+.2f} ms" if p == "P5" else f"x{ratio:.3f}") if ratio is not None else "-"
        if p == "P3":
            what += f" ({r['parked_running_tis']} running TIs among them)"
        unit_text = f" {unit}" if unit else ""
        rows.append([p, what, f"{f(order_v and order_v * scale, fmt)}{unit_text}",
                     f"{f(base_v and base_v * scale, fmt)}{unit_text} ({base})", ratio_text, goal_text,
                     verdict(p, r)])
    return rows


def format_table(rows: list[list[str]], markdown: bool = False) -> str:
    if markdown:
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join("---" for _ in rows[0]) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for n, r in enumerate(rows):
        out.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def p2_slot_lines(r2: dict[str, Any]) -> list[str]:
    """The report's lines on how long an executor slot stays busy after its task."""
    rows = []
    for rd_index, rd in enumerate(r2["rounds"]):
        rows += [(f"round {rd_index + 1}, shipped settings", d, rd[d]) for d in DAG_IDS if rd[d].get("slots")]
    hb = r2.get("heartbeat_interval")
    if hb:
        for name in ("default", "shipped"):
            rows += [(f"`min_heartbeat_interval={hb[f'{name}_value']}` ({name})", d, hb[name][d]) for d in DAG_IDS]
    if not rows:
        return []
    lines = [
        "P2 detail, executor slots: the supervisor's `Workload finished` duration (when it lets the slot go) "
        "against the task's own span (`start_date` to `end_date`), over every task of the burst that ran once "
        "on a worker; `held` is the difference (process start, and the wait for the task process's exit after "
        "it reported its state: docs/slot-release.md).",
        "",
        "| burst | DAG | runs/min | workload p50 / p95 | over 2 s | task span p50 / p95 | held p50 / p95 "
        "| heartbeats per task-s | API server CPU share |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for what, d, r in rows:
        sl = r["slots"]
        lines.append(f"| {what} | {d} | {r['runs_per_min']:.1f} | {sl['workload_p50_s']} / {sl['workload_p95_s']} s "
                     f"| {sl['share_workloads_over_2s']:.0%} | {sl['span_p50_s']} / {sl['span_p95_s']} s "
                     f"| {sl['hold_p50_s']} / {sl['hold_p95_s']} s | {sl['heartbeats_per_task_s']} "
                     f"| {r.get('api_server_cpu_share', 0):.2f} |" if sl["tasks"] else
                     f"| {what} | {d} | {r['runs_per_min']:.1f} | - | - | - | - | - | - |")
    lines.append("")
    if hb:
        lines.append("Shipped interval against Airflow's default, runs/min: " + ", ".join(
            f"{d} {hb['shipped'][d]['runs_per_min']:.1f} vs {hb['default'][d]['runs_per_min']:.1f} "
            f"(x{hb['speedup'][d]:.2f})" for d in DAG_IDS) + ".")
        longs = [(name, d, hb[name][d]["long_task"]) for name in ("default", "shipped") for d in DAG_IDS
                 if hb[name][d].get("long_task")]
        if longs:
            lines.append("A task of " + str(longs[0][2]["seconds"]) + " s beside each of these bursts: " + "; ".join(
                f"{name} interval, beside {d}: {lt['state']}, span {lt['span_p50_s']} s, slot {lt['workload_p50_s']} s, "
                f"{lt['heartbeat_calls']} heartbeat calls ({lt['heartbeats_per_task_s']}/s)" for name, d, lt in longs) + ".")
        lines.append("")
    return lines


def write_report(settings: Settings, results: dict[str, Any], meta: dict[str, Any], problems: list[str]) -> dict:
    if settings.out_dir is None:
        settings.out_dir = Path(tempfile.mkdtemp(prefix="order-bench-smoke-"))
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    base = settings.out_dir / f"benchmarks{settings.suffix}"
    paths = {"md": base.with_suffix(".md"), "json": base.with_suffix(".json"), "png": base.with_suffix(".png")}
    rows = table_rows(results, settings)
    meta["rounds_detail"] = {
        p: [round(x, 3) for x in results[p]["ratio_per_round"]] for p in ("P1", "P2") if p in results
    }
    paths["json"].write_text(json.dumps({"meta": meta, "results": results, "problems": problems,
                                         "table": rows}, indent=1, default=str) + "\n")
    title = (f"order_processing vs order_shape_noop, Airflow {meta['airflow_version']}, profile "
             f"{settings.profile_name}, {meta['nproc']} cores, {meta['date']}")
    chart(results, paths["png"], title, rows)
    lines = [
        f"# Benchmarks{f' ({settings.profile.stem})' if settings.profile else ''}",
        "",
        "Issue 11: the order DAG (`dags/order_processing.py`) against a no-op DAG of the same shape "
        "(`benchmarks/dags/order_shape_noop.py`) on the same Airflow. Written by `python -m benchmarks.run` "
        "(`make bench`); how each figure is measured is in `benchmarks/run.py`'s docstring.",
        "",
        f"* date: {meta['date']}",
        f"* command: `{meta['command']}`",
        f"* machine: {meta['nproc']} cores (`nproc`), {meta['platform']}, Python {meta['python']}",
        f"* load average (1, 5, 15 min): before {meta['loadavg_before']}, after {meta['loadavg_after']}",
        f"* Airflow {meta['airflow_version']}, LocalExecutor, PostgreSQL; profile: {settings.profile_name}",
        f"* settings on top of the harness's: {', '.join(f'`{k}={v}`' for k, v in meta['settings'].items())}",
        f"* duration: {meta['duration_s'] / 60:.1f} min; P1 and P2: median of {settings.rounds} round(s)"
        + (f" (ratios per round: {meta['rounds_detail']})" if meta["rounds_detail"] else ""),
        "",
        format_table(rows, markdown=True),
        "",
        f"![benchmarks](benchmarks{settings.suffix}.png)",
        "",
    ]
    if "P1" in results and results["P1"].get("api_calls_per_run"):
        calls = results["P1"]["api_calls_per_run"]
        kinds = Counter()
        runs = 0
        for rd in results["P1"]["rounds"]:
            kinds.update(rd[ORDER]["api_calls_by_kind"])
            runs += len(rd[ORDER]["api_calls"])
        lines += [
            f"Execution API calls per run (API server access log, sequential runs; median): order "
            f"{calls[ORDER]}, no-op {calls[NOOP]}. The order's, per run: "
            + ", ".join(f"`{kind}` {n / max(runs, 1):.1f}" for kind, n in kinds.most_common()) + ".",
            "",
        ]
    if "P2" in results:
        per_dag: dict[str, list[dict[str, float]]] = {ORDER: [], NOOP: []}
        for rd in results["P2"]["rounds"]:
            for dag_id in DAG_IDS:
                if rd[dag_id].get("cpu_s_per_run"):
                    per_dag[dag_id].append(rd[dag_id]["cpu_s_per_run"])
        if per_dag[ORDER] and per_dag[NOOP]:
            parts = list(per_dag[ORDER][0])
            cpu = {d: {part: median(r[part] for r in per_dag[d]) for part in parts} for d in DAG_IDS}
            lines += [
                "P2 detail, CPU seconds per run during the bursts (median of the rounds; each Airflow component "
                "with all its processes, the LocalExecutor's workers and task processes under the scheduler; "
                "`other` is PostgreSQL and the rest of the machine):",
                "",
                "| component | order | no-op | difference |",
                "|---|---|---|---|",
                *[f"| {part} | {cpu[ORDER][part]:.3f} | {cpu[NOOP][part]:.3f} | {cpu[ORDER][part] - cpu[NOOP][part]:+.3f} |"
                  for part in parts],
                "",
            ]
    if "P2" in results:
        lines += p2_slot_lines(results["P2"])
    if "P3" in results and results["P3"].get("variants"):
        r3 = results["P3"]
        lines += [
            f"P3 variants, with the same {r3['parked']} orders parked (sequential runs; ratios against the "
            "shipped settings' latency with none parked):",
            "",
            "| settings | order | no-op |",
            "|---|---|---|",
            f"| shipped | {r3[ORDER]:.2f} s (x{r3['ratio']:.2f}) | {r3['noop_with_parked_s']:.2f} s "
            f"(x{r3['noop_ratio']:.2f}) |",
            *[f"| {name}: {v['settings']} | {v[ORDER]:.2f} s (x{v['ratio']:.2f}) | {v[NOOP]:.2f} s "
              f"(x{v['noop_ratio']:.2f}) |" for name, v in r3["variants"].items()],
            "",
        ]
    if "P3" in results:
        r3 = results["P3"]
        before = r3["slots_before"]
        lines += [
            f"P3 detail: {r3['parked']} of {r3['m']} orders parked in `approve_order` after {r3['park_s']:.0f}s "
            f"({r3['parked_after']} still parked after the measurement); task instances `running` among their "
            f"runs: {r3['parked_running_tis']}; while parked, running task instances in all DAGs "
            f"{before['running_tis_all_dags']}, queued {before['queued_tis_all_dags']}, of "
            f"parallelism {before['executor_parallelism']} (open executor slots about "
            f"{before['executor_open_slots_estimate']}); no-op latency with them parked x"
            f"{r3['noop_ratio']:.2f} of without.",
            "",
        ]
    if "P4" in results:
        r4 = results["P4"]
        parts = [f"{part[:-2]} {r4[part][ORDER] * 1000:.0f} ms vs {r4[part][NOOP] * 1000:.0f} ms"
                 for part in ("dagbag_s", "serialize_s", "stability_check_s") if r4.get(part, {}).get(ORDER) is not None]
        probe = r4.get("probe") or {}
        lines += [f"P4 detail: the DAG processor's `last_parse_duration` (ms) order "
                  f"{[round(v * 1000) for v in r4['processor_samples_s'][ORDER]]}, no-op "
                  f"{[round(v * 1000) for v in r4['processor_samples_s'][NOOP]]}; the in-process part alone "
                  f"(parse probe, medians) {probe.get(ORDER, 0) * 1000:.0f} ms vs {probe.get(NOOP, 0) * 1000:.0f} ms "
                  f"(x{probe.get('ratio', 0):.2f}): {', '.join(parts)}.", ""]
    if "P5" in results:
        r5 = results["P5"]
        lines += [f"P5 detail: hook p50 {r5[ORDER]:.2f} ms / p90 {r5['hook_p90_ms']:.2f} ms, raw p50 "
                  f"{r5[NOOP]:.2f} ms / p90 {r5['raw_p90_ms']:.2f} ms; importing and creating the hook {r5['hook_created_ms']:.1f} ms, "
                  f"its first call (reads the connection) {r5['hook_first_call_ms']:.1f} ms"
                  + (f"; the same GET with one httpx.Client: p50 {r5['raw_httpx_ms']:.2f} ms (hook over it "
                     f"{r5[ORDER] - r5['raw_httpx_ms']:+.2f} ms)" if r5.get("raw_httpx_ms") is not None else "")
                  + ".", ""]
    if problems:
        lines += ["## Problems", "", *[f"* {p.splitlines()[0]}" for p in problems[:50]], ""]
    paths["md"].write_text("\n".join(lines))
    return paths
