"""P5: ``PaymentHook.get_charge`` against the same GET with ``requests`` (and httpx) on loopback."""

from __future__ import annotations

import json
import sys

from order_services.testing import new_key

from benchmarks.bench import BenchBase
from benchmarks.common import BenchmarkError, median, say
from benchmarks.settings import BENCH_DIR, NOOP, ORDER
from harness.common import HarnessError, tail
from harness.processes import run_logged


class HookOverhead(BenchBase):
    # -- P5: hook overhead -----------------------------------------------------------------------

    def hook_overhead(self) -> None:
        s = self.settings
        services = self.stack.services
        assert services is not None
        order_id = f"bench-{self.tag}-p5"
        charge = services.post("/payment/charges", idempotency_key=new_key("bench"), json={
            "order_id": order_id, "customer_id": "cus-1", "amount": 2500, "currency": "USD",
            "payment_method": "pm_card_ok"})
        work = self.stack.home / "p5"
        work.mkdir(exist_ok=True)
        result, log = work / "hook.json", work / "hook.log"
        say(f"P5: {s.hook_calls} PaymentHook.get_charge calls and {s.hook_calls} raw GETs, interleaved")
        try:
            run_logged("hook probe", [sys.executable, str(BENCH_DIR / "hook_probe.py"), services.base_url,
                                      services.api_key, charge["payment_id"], str(s.hook_calls), str(result)],
                       log, self.stack.environment(), timeout=600)
        except HarnessError as exc:
            raise BenchmarkError(f"P5: the hook probe failed: {exc}\n{tail(log, 40)}") from exc
        data = json.loads(result.read_text())
        hook_ms = median(data["hook_s"]) * 1000
        raw_ms = median(data["raw_s"]) * 1000
        self.results["P5"] = {
            ORDER: hook_ms, NOOP: raw_ms, "ratio": hook_ms - raw_ms,
            "hook_p90_ms": sorted(data["hook_s"])[int(0.9 * (len(data["hook_s"]) - 1))] * 1000,
            "raw_p90_ms": sorted(data["raw_s"])[int(0.9 * (len(data["raw_s"]) - 1))] * 1000,
            "hook_created_ms": data["hook_created_s"] * 1000,
            "hook_first_call_ms": data["hook_first_call_s"] * 1000,
            "hook_s": data["hook_s"], "raw_s": data["raw_s"], "url": data["url"], "invalid_runs": 0,
            "raw_httpx_ms": median(data["raw_httpx_s"]) * 1000 if data.get("raw_httpx_s") else None,
            "raw_httpx_s": data.get("raw_httpx_s"),
        }
        httpx_note = (f" (raw with httpx.Client {self.results['P5']['raw_httpx_ms']:.2f} ms)"
                      if self.results["P5"]["raw_httpx_ms"] is not None else "")
        say(f"P5: hook {hook_ms:.2f} ms vs raw {raw_ms:.2f} ms: {hook_ms - raw_ms:+.2f} ms{httpx_note}")
