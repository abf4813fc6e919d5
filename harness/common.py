"""What every part of the end-to-end harness shares: paths, states, errors, small helpers."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
TERMINAL_RUN_STATES = frozenset({"success", "failed"})
# Task-instance states that mean "this task never ran".
NOT_RUN_TI_STATES = frozenset({None, "none", "upstream_failed", "skipped", "removed", "scheduled", "queued"})


class HarnessError(RuntimeError):
    """Raised when the deployment cannot be brought up or an API wait times out."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def tail(path: Path, lines: int = 60) -> str:
    """Last ``lines`` lines of a text file (empty string if it does not exist)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 256 * 1024))
            data = fh.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def report(config: Any, text: str) -> None:
    """Print ``[e2e] text`` on pytest's terminal even while output is captured (fixtures run captured).

    ``config`` is the ``pytest.Config``; without a terminal reporter the line goes to stderr.
    """
    terminal = config.pluginmanager.get_plugin("terminalreporter") if config else None
    if terminal is None:
        sys.stderr.write(f"[e2e] {text}\n")
        return
    capture = config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        terminal.write_line(f"\n[e2e] {text}")


def read_env_file(path: Path) -> dict[str, str]:
    """``{KEY: value}`` of a plain env file (``deploy/airflow-order.env``): ``KEY=value`` lines, ``#`` comments.

    Values are taken verbatim (no quotes, no expansion), as docker's ``--env-file`` and
    ``scripts/demo.sh`` read them; any other line is an error.
    """
    values: dict[str, str] = {}
    for number, raw in enumerate(Path(path).read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", line)
        if match is None:
            raise HarnessError(f"{path}:{number} is not KEY=value: {raw!r}")
        values[match.group(1)] = match.group(2)
    return values


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------
