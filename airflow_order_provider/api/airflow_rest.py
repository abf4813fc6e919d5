"""
Airflow's own REST API, called by the order API on its caller's behalf.

The order API runs inside Airflow's API server. Where it needs something only Airflow's public REST
API offers (answering a Required Actions request), it calls that API on the same server over
loopback, as the user who called the order API: with a short-lived token the auth manager issues
for that user (``generate_jwt``), so Airflow checks that user's rights and records the answer
under that user's name, as if they had used the Required Actions page.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import httpx
from airflow.api_fastapi.app import API_ROOT_PATH, get_auth_manager
from airflow.configuration import conf
from fastapi import Request

log = logging.getLogger(__name__)

#: How long the token minted for one loopback call is valid, in seconds.
TOKEN_SECONDS = 60
#: How long one loopback call may take, in seconds.
CALL_TIMEOUT = 10.0
#: Addresses a server listens on that mean "every interface": reached here over loopback.
_ANY_INTERFACE = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def server_url(request: Request, ssl_cert: str) -> str:
    """This API server's base URL as seen from the server itself (loopback, same port)."""
    scheme = "https" if ssl_cert else "http"
    server = request.scope.get("server")
    if not server:  # a Unix socket: fall back to the configured address
        return conf.get("api", "base_url", fallback="http://127.0.0.1:8080").rstrip("/")
    host, port = server
    host = _ANY_INTERFACE.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}{API_ROOT_PATH.rstrip('/')}"


def answer_required_action(
    request: Request, user: Any, *, dag_id: str, run_id: str, task_id: str, chosen_options: list[str]
) -> bool:
    """
    Answer a pending Required Actions request as ``user``, through Airflow's
    ``PATCH /api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails``
    (the same path and body in Airflow 3.1, 3.2 and 3.3). True when Airflow recorded the answer;
    False, with the reason logged, when there was nothing to answer (404: not asked; 409:
    answered already) or the call failed. Call it outside any open transaction that holds a lock
    Airflow's handler may need (the task instance, the request or the run rows).
    """
    token = get_auth_manager().generate_jwt(user, expiration_time_in_seconds=TOKEN_SECONDS)
    ssl_cert = conf.get("api", "ssl_cert", fallback="")
    url = (
        f"{server_url(request, ssl_cert)}/api/v2/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}"
        f"/taskInstances/{quote(task_id, safe='')}/-1/hitlDetails"
    )
    try:
        response = httpx.patch(
            url, json={"chosen_options": chosen_options, "params_input": {}},
            headers={"Authorization": f"Bearer {token}"}, timeout=CALL_TIMEOUT, verify=ssl_cert or True,
        )
    except httpx.HTTPError as error:
        log.warning("Could not answer the Required Actions request of %s/%s: %s", run_id, task_id, error)
        return False
    if response.status_code == 200:
        return True
    log.warning("Airflow did not take the answer to the Required Actions request of %s/%s: %s %s",
                run_id, task_id, response.status_code, response.text[:300])
    return False
