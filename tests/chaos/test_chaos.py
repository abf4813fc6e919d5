"""
The seeded chaos suite: many orders at once on a real Airflow (PostgreSQL, LocalExecutor), with
random test values, transient faults before and after commit on every service, random cancels and
address changes, workers killed mid-step, one service down for a stretch and then back, and the
carrier's answers lost while parcels are picked up. Afterwards every order either completed once or
was fully undone, none left to a person; nothing was done twice, no charge held with nothing
shipping, no goods shipping with the charge refunded (see verdict.py).

``CHAOS_ORDERS`` (default 30) and ``CHAOS_SEED`` (default: drawn and reported) choose the run;
``make chaos N=500 SEED=7`` is a long one. Runs in a pytest session of its own (see conftest.py).
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from harness import report
from tests.chaos.plan import SERVICES, ChaosSettings, plan_kills, plan_orders, plan_stretches
from tests.chaos.runner import DAG_ID, ChaosRun
from tests.chaos.verdict import NEVER_SETTLED, judge

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

#: Orders whose evidence is printed in full when the suite fails.
DESCRIBE_AT_MOST = 5
OUTCOMES = ("completed", "cancelled", "failed", "manual", "VIOLATION")


def _at(moment, record) -> str:
    return f"{moment - record.started:.1f}s" if moment is not None else "never"


def test_every_order_completes_once_or_is_undone_under_chaos(client, airflow_env, services, request):
    settings = ChaosSettings.from_env()
    plans = plan_orders(settings)
    kills = plan_kills(settings)
    stretches = plan_stretches(settings)
    say = lambda text: report(request.config, text)  # noqa: E731
    say(f"chaos: CHAOS_SEED={settings.seed} CHAOS_ORDERS={settings.orders}, at most {settings.in_flight} in flight, "
        f"{len(kills)} worker kill(s), faults changed every {settings.fault_period:g}s, time limit {settings.time_limit:g}s")

    chaos = ChaosRun(settings, plans, kills, client=client, airflow_env=airflow_env, services=services, say=say,
                     stretches=stretches)
    record = chaos.run()
    evidence = {order_id: chaos.evidence(order_id) for order_id in record.submitted}
    verdicts = {order_id: judge(e) for order_id, e in evidence.items()}
    failed_at = Counter(e.failed_step for e in evidence.values() if e.failed_step)
    checked_at = time.monotonic()

    outcomes = Counter(v.outcome for v in verdicts.values())
    phases = Counter((f.service, f.phase) for f in record.faults)
    cancels, addresses = record.answers("cancel"), record.answers("address")
    bring_up = airflow_env.timings.get("bring_up_s", 0.0)
    lines = [
        f"chaos summary: CHAOS_SEED={settings.seed} CHAOS_ORDERS={settings.orders}",
        f"  outcomes      {', '.join(f'{name} {outcomes.get(name, 0)}' for name in OUTCOMES)}",
        f"  failed at     {', '.join(f'{step} {n}' for step, n in failed_at.most_common()) or 'nowhere'}",
        f"  alerted       {sum(1 for v in verdicts.values() if v.alerts)} order(s) with a manual-intervention alert",
        f"  rolled fwd    {sum(1 for e in evidence.values() if e.rolled_forward)} order(s) completed past the "
        "carrier's pickup instead of undone",
        f"  faults drawn  {len(record.faults)} configurations: "
        + ", ".join(f"{s} {phases[(s, 'before')]}b/{phases[(s, 'after')]}a" for s in SERVICES)
        + f"; error rates {min(f.error_rate for f in record.faults):.2f}-{max(f.error_rate for f in record.faults):.2f}",
        f"  cancels       sent {sum(cancels.values())}: accepted {cancels.get(202, 0)}, refused {cancels.get(409, 0)}, "
        f"other {sum(n for c, n in cancels.items() if c not in (202, 409))}",
        f"  addresses     sent {sum(addresses.values())}: accepted {addresses.get(200, 0)}, refused {addresses.get(409, 0)}, "
        f"other {sum(n for c, n in addresses.items() if c not in (200, 409))}; {record.signals_not_sent} signal(s) "
        "not sent (order already final)",
        f"  worker kills  {'; '.join(k.describe() for k in record.kills) or 'none'}",
        f"  stretches     {'; '.join(record.stretches) or 'none'}",
        f"  submissions   {dict(record.submit_answers)} {record.submit_refusals[:3]}",
        f"  duration      {record.ended - record.started:.1f}s of chaos (all submitted at "
        f"{_at(record.all_submitted_at, record)}, faults cleared at {_at(record.faults_cleared_at, record)})"
        f"{', TIME LIMIT HIT' if record.timed_out else ''}, checks {checked_at - record.ended:.1f}s, "
        f"Airflow bring-up {bring_up:.1f}s",
    ]
    for order_id, verdict in verdicts.items():
        if verdict.outcome == "manual":
            lines.append(f"  manual        {order_id}: {verdict.alerts[0]} ({'; '.join(verdict.notes)[:300]})")
    say("\n".join(lines))

    # A broken promise is any violation but "never settled" (which the time limit below reports).
    bad = {order_id: v for order_id, v in verdicts.items()
           if any(not problem.startswith(NEVER_SETTLED) for problem in v.violations)}
    unsettled = {order_id: v.outcome for order_id, v in verdicts.items() if not v.ok and order_id not in bad}
    details = []
    for order_id, verdict in list(bad.items())[:DESCRIBE_AT_MOST]:
        found = chaos.evidence(order_id)
        ledger = "\n".join(f"    {e['created_at'][11:23]} {e['service']}.{e['operation']} {e['status']} "
                           f"{e['idempotency_key']} {e['details'].get('error_type') or ''}" for e in found.ledger)
        details.append(
            f"ORDER {order_id}: {verdict.violations}\n  order: {found.order}\n  signals: {found.signal_answers}"
            f"\n  ledger:\n{ledger}\n{airflow_env.describe_run(DAG_ID, order_id)}"
        )
    assert not bad, (
        f"{len(bad)} of {len(verdicts)} orders broke a promise (CHAOS_SEED={settings.seed}):\n" + "\n\n".join(details)
    )
    assert not record.timed_out and not unsettled, (
        f"the run did not settle within {settings.time_limit:g}s (CHAOS_TIME_LIMIT; CHAOS_SEED={settings.seed}): "
        f"{len(record.submitted)} of {settings.orders} orders submitted, still unsettled: {unsettled}"
    )
    assert len(record.submitted) == settings.orders, f"only {len(record.submitted)} of {settings.orders} orders submitted"
    # A service down for a stretch and back, and the carrier's answers lost while parcels are picked
    # up: every order still ends completed or fully compensated; nothing is left to a person.
    assert len(record.stretches) == len(stretches), (record.stretches, stretches)
    manual = {order_id: v.alerts for order_id, v in verdicts.items() if v.outcome == "manual"}
    assert not manual, f"{len(manual)} order(s) left to a person (CHAOS_SEED={settings.seed}): {manual}"

    # The chaos really happened: faults of both phases on every service, and workers killed mid-step,
    # each detected by Airflow's heartbeat timeout.
    assert all(phases[(s, p)] for s in SERVICES for p in ("before", "after")), phases
    killed = [k for k in record.kills if k.run_id]
    assert killed, f"no worker was killed mid-step: {[k.describe() for k in record.kills]}"
    for kill in killed:
        events = client.event_logs(dag_id=DAG_ID, run_id=kill.run_id, task_id=kill.task_id, event="heartbeat timeout")
        assert any(e.get("try_number") == kill.try_number for e in events), (
            f"the kill of {kill.describe()} was not detected by the heartbeat timeout: {events}"
        )
