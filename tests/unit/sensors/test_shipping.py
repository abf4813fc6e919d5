"""
The sensor that waits for the carrier's pickup, against real reference services over loopback.

Shipments that must stay ``scheduled`` come from the session's services (dispatch after 5 s);
shipments that must reach ``dispatched`` come from services started here with a 0.5 s dispatch
delay, which also take this module's injected faults.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from airflow.sdk import DAG, PokeReturnValue
from airflow.sdk.bases.operator import TRIGGER_FAIL_REPR, TriggerFailureReason

from airflow_order_provider.exceptions import OrderServiceError
from airflow_order_provider.hooks.shipping import ShippingHook
from airflow_order_provider.sensors.shipping import ShipmentNotDispatchedError, WaitForDispatchSensor
from airflow_order_provider.triggers.shipping import ShipmentDispatchedTrigger
from airflow_order_provider.version_compat import HAS_RETRY_POLICY, AirflowFailException
from tests.compat import AirflowSensorTimeout, TaskDeferred
from tests.unit.conftest import dispatched_shipment, schedule_shipment


def sensor(order_id: str, shipment_id: str, **kwargs) -> WaitForDispatchSensor:
    return WaitForDispatchSensor(task_id="wait_for_dispatch", order_id=order_id, shipment_id=shipment_id, **kwargs)


def without_wait(result):
    """The sensor's result less ``waited_seconds`` (how long it waited; checked on its own)."""
    assert result["waited_seconds"] >= 0
    return {key: value for key, value in result.items() if key != "waited_seconds"}


def expected_summary(shipment: dict) -> dict:
    return {
        "shipment_id": shipment["shipment_id"],
        "order_id": shipment["order_id"],
        "tracking_number": shipment["tracking_number"],
        "carrier": shipment["carrier"],
        "status": "dispatched",
        "dispatched_at": shipment["dispatch_at"],
    }


# -- arguments ------------------------------------------------------------------------------------


def test_defaults_are_scaled_and_deferrable():
    """The test session runs at time_scale 0.01: 24 h -> 864 s; 60 s -> 0.6 s, raised to 1 s."""
    wait = sensor("ord-1", "shp_1")
    assert wait.deferrable is True
    assert wait.timeout == 864.0
    assert wait.poll_interval == wait.poke_interval == 1.0
    assert wait.conn_id is None


def test_defaults_follow_the_time_scale(monkeypatch):
    monkeypatch.setenv("AIRFLOW__ORDER_PROVIDER__TIME_SCALE", "1")
    wait = sensor("ord-1", "shp_1")
    assert (wait.timeout, wait.poll_interval) == (86400.0, 60.0)


def test_explicit_arguments_and_default_args_win():
    wait = sensor("ord-1", "shp_1", poll_interval=timedelta(seconds=5), timeout=30, deferrable=False)
    assert (wait.poll_interval, wait.timeout, wait.deferrable) == (5.0, 30.0, False)
    assert sensor("ord-1", "shp_1", poke_interval=7).poll_interval == 7.0
    with DAG("dispatch_defaults", default_args={"timeout": 120, "poll_interval": 3}, schedule=None):
        from_dag = sensor("ord-1", "shp_1")
    assert (from_dag.timeout, from_dag.poll_interval) == (120.0, 3.0)


def test_a_failed_try_is_retried_like_a_shipping_step():
    """
    The wait only reads, so a try that Airflow fails from outside is retried: a worker's death, or
    Airflow 3.3.2's scheduler failing a resumed deferral ("finished with state success, but the
    task instance's state attribute is queued"; make rush N=20 on the demo lost 1 order in 20 to
    it). The retry asks the carrier again. Cancels, timeouts and refusals still fail at once.
    """
    from airflow_order_provider.policies import policy_for

    wait = sensor("ord-1", "shp_1")
    shipping = policy_for("shipping").operator_defaults()
    assert wait.retries == shipping["retries"] == 2
    assert (wait.retry_delay, wait.retry_exponential_backoff, wait.max_retry_delay) == (
        shipping["retry_delay"], shipping["retry_exponential_backoff"], shipping["max_retry_delay"])
    assert (getattr(wait, "retry_policy", None) is not None) is HAS_RETRY_POLICY
    # the carrier's wait is bounded by its own timeout, not a step's execution timeout
    assert wait.execution_timeout is None
    assert issubclass(ShipmentNotDispatchedError, AirflowFailException)
    assert sensor("ord-1", "shp_1", retries=0).retries == 0


def test_poll_interval_and_poke_interval_are_one_setting():
    with pytest.raises(ValueError, match="poll_interval or poke_interval"):
        sensor("ord-1", "shp_1", poll_interval=5, poke_interval=5)


def test_order_and_shipment_are_templated():
    with DAG("dispatch_templates", schedule=None):
        wait = sensor("{{ params.order_id }}", "{{ params.shipment_id }}")
    wait.render_template_fields({"params": {"order_id": "ord-7", "shipment_id": "shp_7"}})
    assert (wait.order_id, wait.shipment_id) == ("ord-7", "shp_7")


def test_not_dispatched_error_is_an_order_service_error_never_retried():
    assert issubclass(ShipmentNotDispatchedError, OrderServiceError)
    assert issubclass(ShipmentNotDispatchedError, AirflowFailException)


# -- poke -----------------------------------------------------------------------------------------


def test_poke_is_false_while_scheduled(service_connections, order_id):
    shipment = schedule_shipment(order_id)
    assert sensor(order_id, shipment["shipment_id"]).poke({}) is False


def test_poke_is_true_once_dispatched_with_the_summary(fast_connections, order_id):
    shipment = dispatched_shipment(order_id)
    done = sensor(order_id, shipment["shipment_id"]).poke({})
    assert isinstance(done, PokeReturnValue) and bool(done) is True
    assert done.xcom_value == expected_summary(shipment)


def test_poke_fails_for_good_on_a_cancelled_shipment(service_connections, order_id):
    shipment = schedule_shipment(order_id)
    ShippingHook().cancel(
        shipment_id=shipment["shipment_id"], reason="test", idempotency_key=f"{order_id}:shipping.cancel"
    )
    with pytest.raises(ShipmentNotDispatchedError, match="is cancelled: it will not be dispatched"):
        sensor(order_id, shipment["shipment_id"]).poke({})


def test_poke_fails_for_good_on_an_unknown_shipment(service_connections, order_id):
    with pytest.raises(ShipmentNotDispatchedError) as raised:
        sensor(order_id, "shp_does_not_exist").poke({})
    assert raised.value.error_type == "ShipmentNotFoundError"
    assert raised.value.status_code == 404


def test_poke_waits_through_a_shipping_outage(fast_connections, order_id):
    shipment = dispatched_shipment(order_id)
    fast_connections.set_faults("shipping", error_rate=1.0, seed=5)
    assert sensor(order_id, shipment["shipment_id"]).poke({}) is False
    fast_connections.clear_faults()
    assert sensor(order_id, shipment["shipment_id"]).poke({})


# -- deferrable execution -------------------------------------------------------------------------


def test_defers_to_the_trigger_while_scheduled(service_connections, order_id):
    shipment = schedule_shipment(order_id)
    wait = sensor(order_id, shipment["shipment_id"], timeout=600, poll_interval=2)
    with pytest.raises(TaskDeferred) as deferred:
        wait.execute({})
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout == timedelta(seconds=600)
    trigger = deferred.value.trigger
    assert isinstance(trigger, ShipmentDispatchedTrigger)
    assert trigger.serialize()[1] == {
        "shipment_id": shipment["shipment_id"], "order_id": order_id, "conn_id": None, "poll_interval": 2.0,
    }


def test_returns_at_once_when_already_dispatched(fast_connections, order_id):
    shipment = dispatched_shipment(order_id)
    assert without_wait(sensor(order_id, shipment["shipment_id"]).execute({})) == expected_summary(shipment)


def test_a_pickup_due_within_seconds_is_waited_for_in_the_worker_not_deferred(fast_connections, order_id):
    """
    The carrier picks up 0.5 s after booking: deferring would cost more than that, and a trigger
    that fires within a second of the deferral can meet Airflow 3.3.2's race that fails the
    resumed task (``make rush N=10`` on the demo lost 1 order in 10 to it). No deferral.
    """
    shipment = schedule_shipment(order_id)
    wait = sensor(order_id, shipment["shipment_id"], poll_interval=2)
    assert wait.inline_wait == 5.0
    assert without_wait(wait.execute({})) == expected_summary(shipment)


def test_a_pickup_due_later_than_the_inline_wait_is_deferred(fast_connections, order_id):
    shipment = schedule_shipment(order_id)
    with pytest.raises(TaskDeferred):
        sensor(order_id, shipment["shipment_id"], inline_wait=0).execute({})
    with pytest.raises(ValueError, match="inline_wait must not be negative"):
        sensor(order_id, shipment["shipment_id"], inline_wait=-1)


def test_the_whole_deferral_against_a_real_pickup(fast_connections, order_id):
    """execute defers; the trigger it hands over fires once dispatched; resuming gives the XCom."""
    shipment = schedule_shipment(order_id)
    wait = sensor(order_id, shipment["shipment_id"], poll_interval=0.2, inline_wait=0)
    with pytest.raises(TaskDeferred) as deferred:
        wait.execute({})

    async def first_event() -> dict:
        events = deferred.value.trigger.run()
        try:
            return (await asyncio.wait_for(events.__anext__(), 10)).payload
        finally:
            await events.aclose()

    event = asyncio.run(first_event())
    result = wait.resume_execution(deferred.value.method_name, {"event": event}, {})
    assert without_wait(result) == expected_summary(shipment)


def test_resume_with_an_error_event_fails_clearly():
    wait = sensor("ord-1", "shp_gone")
    event = {"status": "error", "message": "shipment shp_gone not found", "error_type": "ShipmentNotFoundError",
             "status_code": 404, "shipment_id": "shp_gone", "order_id": "ord-1"}
    with pytest.raises(ShipmentNotDispatchedError) as raised:
        wait.resume_execution("execute_complete", {"event": event}, {})
    assert str(raised.value) == (
        "shipping wait for dispatch: ShipmentNotFoundError: shipment shp_gone not found (HTTP 404)"
    )


def test_execute_complete_on_a_dispatched_event_returns_the_summary():
    shipment = {"shipment_id": "shp_1", "order_id": "ord-1", "tracking_number": "TRK1", "carrier": "ACME Freight",
                "status": "dispatched", "dispatched_at": "2026-01-01T00:00:00Z"}
    result = sensor("ord-1", "shp_1").execute_complete({}, {"status": "dispatched", "shipment": shipment})
    assert without_wait(result) == shipment


def test_deferral_timeout_is_a_sensor_timeout():
    with pytest.raises(AirflowSensorTimeout):
        sensor("ord-1", "shp_1").resume_execution(
            TRIGGER_FAIL_REPR, {"error": TriggerFailureReason.TRIGGER_TIMEOUT}, {}
        )


# -- non-deferrable execution ---------------------------------------------------------------------


def test_pokes_from_the_worker_when_not_deferrable(fast_connections, order_id):
    shipment = schedule_shipment(order_id)
    wait = sensor(order_id, shipment["shipment_id"], deferrable=False, poll_interval=0.2, timeout=10)
    started = time.monotonic()
    assert without_wait(wait.execute({})) == expected_summary(shipment)
    assert time.monotonic() - started < 5


def test_pokes_until_the_sensor_times_out(service_connections, order_id):
    shipment = schedule_shipment(order_id)
    wait = sensor(order_id, shipment["shipment_id"], deferrable=False, poll_interval=0.2, timeout=0.5)
    with pytest.raises(AirflowSensorTimeout):
        wait.execute({})
