"""
P5 probe: a provider hook call against the same raw HTTP request, on loopback.

    python benchmarks/hook_probe.py BASE_URL API_KEY PAYMENT_ID CALLS RESULT_JSON

Started by ``benchmarks/run.py`` with the deployment's environment, in which
``AIRFLOW_CONN_ORDER_PAYMENT_DEFAULT=http://:KEY@127.0.0.1:PORT`` points at the reference services.
``PaymentHook`` is created once (as a task does); then ``hook.get_charge(payment_id)`` and
``requests.Session().get(<same URL>, <same Authorization header>).json()`` (one session, created
once) are timed alternately, CALLS times each (and the same GET with one ``httpx.Client`` when
httpx is installed, reported beside), after a warm-up of 20 calls each (the hook's first
call reads the connection and builds its session; that first call is reported apart).
"""

from __future__ import annotations

import json
import sys
import time


def main(base_url: str, api_key: str, payment_id: str, calls: str, result_path: str) -> int:
    import requests

    from airflow_order_provider.hooks import hook_class_for

    n = int(calls)
    url = f"{base_url.rstrip('/')}/payment/charges/{payment_id}"
    headers = {"Authorization": f"Bearer {api_key}"}
    t0 = time.perf_counter()
    hook = hook_class_for("payment")()
    created_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    first = hook.get_charge(payment_id)
    first_call_s = time.perf_counter() - t0
    session = requests.Session()

    def raw() -> dict:
        response = session.get(url, headers=headers, timeout=10)
        response.raise_for_status()
        return response.json()

    def via_hook() -> dict:
        return hook.get_charge(payment_id)

    kinds = {"hook_s": via_hook, "raw_s": raw}
    try:  # the same request with httpx as well (the client the hooks may be built on), when installed
        import httpx
    except ImportError:
        httpx = None
    if httpx is not None:
        client = httpx.Client(timeout=10)

        def raw_httpx() -> dict:
            response = client.get(url, headers=headers)
            response.raise_for_status()
            return response.json()

        kinds["raw_httpx_s"] = raw_httpx

    for fn in kinds.values():
        assert fn()["payment_id"] == first["payment_id"] == payment_id, (first, payment_id)
    for _ in range(20):
        for fn in kinds.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in kinds}
    names = list(kinds)
    for i in range(n):
        # Interleaved, each kind first in turn.
        for name in names[i % len(names):] + names[: i % len(names)]:
            t = time.perf_counter()
            kinds[name]()
            times[name].append(time.perf_counter() - t)
    with open(result_path, "w") as fh:
        json.dump({"url": url, **times, "hook_created_s": created_s, "hook_first_call_s": first_call_s,
                   "hook_module": type(hook).__module__}, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:6]))
