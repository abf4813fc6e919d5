"""P4: the parse time of each DAG file, the DAG processor's own figure and the in-process part alone."""

from __future__ import annotations

import json
import sys
import time

from benchmarks.bench import BenchBase
from benchmarks.common import BenchmarkError, median, say
from benchmarks.settings import BENCH_DIR, DAG_IDS, NOOP, NOOP_DAG_FILE, ORDER, ORDER_DAG_FILE
from harness.common import HarnessError, tail
from harness.processes import run_logged


class ParseTimes(BenchBase):
    # -- P4: parse time --------------------------------------------------------------------------

    def parse_times(self) -> None:
        s = self.settings
        env = self.stack.environment()
        files = {ORDER: self.stack.dags_folder / ORDER_DAG_FILE.name, NOOP: self.stack.dags_folder / NOOP_DAG_FILE.name}
        samples: dict[str, list[dict]] = {ORDER: [], NOOP: []}
        work = self.stack.home / "p4"
        work.mkdir(exist_ok=True)
        say(f"P4: {s.parse_processes} fresh processes per DAG file, alternately")
        for i in range(s.parse_processes):
            for dag_id in (DAG_IDS if i % 2 == 0 else DAG_IDS[::-1]):
                result = work / f"{dag_id}-{i}.json"
                log = work / f"{dag_id}-{i}.log"
                try:
                    run_logged(f"parse probe {dag_id}",
                               [sys.executable, str(BENCH_DIR / "parse_probe.py"), str(files[dag_id]),
                                str(self.stack.dags_folder), str(result)],
                               log, env, timeout=300)
                except HarnessError as exc:
                    raise BenchmarkError(f"P4: parsing {files[dag_id].name} failed: {exc}\n{tail(log, 40)}") from exc
                samples[dag_id].append(json.loads(result.read_text()))
        probe_order = median(x["parse_file_s"] for x in samples[ORDER])
        probe_noop = median(x["parse_file_s"] for x in samples[NOOP])
        processor = self.processor_parse_durations(s.parse_processes)
        order = median(processor[ORDER])
        noop = median(processor[NOOP])
        parts = ("dagbag_s", "serialize_s", "stability_check_s")
        self.results["P4"] = {
            ORDER: order, NOOP: noop, "ratio": order / noop,
            "processor_samples_s": processor,
            "probe": {ORDER: probe_order, NOOP: probe_noop, "ratio": probe_order / probe_noop},
            **{part: {d: median(x.get(part) for x in samples[d]) for d in DAG_IDS} for part in parts},
            "samples": samples, "invalid_runs": 0,
        }
        detail = "; ".join(
            f"{part[:-2]} {self.results['P4'][part][ORDER] * 1000:.0f} vs {self.results['P4'][part][NOOP] * 1000:.0f} ms"
            for part in parts if self.results["P4"][part][ORDER] is not None
        )
        say(f"P4: the DAG processor's parse {order * 1000:.0f} ms vs {noop * 1000:.0f} ms (x{order / noop:.2f}); "
            f"in-process probe {probe_order * 1000:.0f} vs {probe_noop * 1000:.0f} ms "
            f"(x{probe_order / probe_noop:.2f}), of which {detail}")

    def processor_parse_durations(self, wanted: int, timeout: float = 300.0) -> dict[str, list[float]]:
        """
        Airflow's own parse time of each file: the DAG's ``last_parse_duration`` (REST API, DAG
        details; what the UI shows), i.e. the DAG processor's whole processing of the file, in its
        parsing process. ``wanted`` distinct parses per file, read as the processor re-parses them
        (every ``min_file_process_interval``).
        """
        seen: dict[str, dict[str, float]] = {d: {} for d in DAG_IDS}
        deadline = time.monotonic() + timeout
        while any(len(v) < wanted for v in seen.values()):
            if time.monotonic() > deadline:
                raise BenchmarkError(f"P4: fewer than {wanted} parses per file in {timeout:.0f}s: {seen}")
            for dag_id in DAG_IDS:
                details = self.client.get(f"/api/v2/dags/{dag_id}/details")
                if details.get("last_parsed_time") and details.get("last_parse_duration") is not None:
                    seen[dag_id][details["last_parsed_time"]] = float(details["last_parse_duration"])
            time.sleep(1)
        return {d: list(v.values())[-wanted:] for d, v in seen.items()}

