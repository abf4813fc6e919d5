"""Processes the harness starts: each in its own process group, logged to a file, stopped by its group id."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness.common import (
    HarnessError,
    tail,
)


def _group_members(pgid: int) -> list[int]:
    """PIDs (not zombies) whose process group is ``pgid``, read from /proc."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read().decode("utf-8", errors="replace")
        except OSError:
            continue
        # The command name is in parentheses and may contain spaces: split after the last ')'.
        rest = stat[stat.rfind(")") + 2 :].split()
        state, pgrp = rest[0], int(rest[2])
        if pgrp == pgid and state != "Z":
            members.append(int(entry))
    return members


@dataclass(frozen=True)
class ProcessInfo:
    """What /proc says about one process."""

    pid: int
    ppid: int
    pgid: int
    state: str  # R, S, D, Z (zombie), T...
    cmdline: str  # the process title (setproctitle changes it), arguments joined by spaces


def process_info(pid: int) -> ProcessInfo | None:
    """The process ``pid`` from /proc, or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode("utf-8", errors="replace")
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read().replace(b"\0", b" ").decode("utf-8", errors="replace").strip()
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = stat[stat.rfind(")") + 2 :].split()
    return ProcessInfo(pid=pid, ppid=int(rest[1]), pgid=int(rest[2]), state=rest[0], cmdline=cmdline)


def process_ancestry(pid: int) -> list[ProcessInfo]:
    """``pid`` and its ancestors up to init, nearest first (stops where /proc has no entry)."""
    chain: list[ProcessInfo] = []
    seen: set[int] = set()
    while pid > 0 and pid not in seen:
        seen.add(pid)
        info = process_info(pid)
        if info is None:
            break
        chain.append(info)
        pid = info.ppid
    return chain


def wait_until_dead(pid: int, timeout: float = 10.0) -> bool:
    """Wait until ``pid`` is gone or a zombie (dead, not yet reaped); True if it is."""
    deadline = time.monotonic() + timeout
    while True:
        info = process_info(pid)
        if info is None or info.state in ("Z", "X"):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


_LIVE_PROCESSES: set[ManagedProcess] = set()


def _stop_all_at_exit() -> None:
    for proc in list(_LIVE_PROCESSES):
        with contextlib.suppress(Exception):
            proc.stop(timeout=10)


atexit.register(_stop_all_at_exit)


@dataclass(eq=False)
class ManagedProcess:
    """One command in its own process group (session), output appended to ``log_path``."""

    name: str
    argv: list[str]
    log_path: Path
    env: Mapping[str, str]
    cwd: Path | None = None
    proc: subprocess.Popen | None = field(default=None, init=False)
    started_at: float | None = field(default=None, init=False)

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"--- {time.strftime('%H:%M:%S')} starting {' '.join(self.argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(self.env),
                cwd=str(self.cwd) if self.cwd else None,
                start_new_session=True,
            )
        self.started_at = time.monotonic()
        _LIVE_PROCESSES.add(self)
        return self

    @property
    def pgid(self) -> int | None:
        # start_new_session=True makes the child a session and group leader: pgid == pid.
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def stop(self, timeout: float = 20.0) -> list[int]:
        """TERM the whole group, wait up to ``timeout`` s, then KILL what is left.

        Returns the PIDs that had to be killed.
        """
        if self.proc is None:
            return []
        pgid = self.pgid
        assert pgid is not None
        killed: list[int] = []
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.proc.poll()
            if self.proc.returncode is not None and not _group_members(pgid):
                break
            time.sleep(0.2)
        else:
            killed = _group_members(pgid)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
        _LIVE_PROCESSES.discard(self)
        return killed

    def tail(self, lines: int = 60) -> str:
        return tail(self.log_path, lines)


def run_logged(
    name: str, argv: list[str], log_path: Path, env: Mapping[str, str], timeout: float, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """Run a command to completion in its own process group (in ``cwd``); kill the group on timeout."""
    proc = ManagedProcess(name, argv, log_path, env, cwd=cwd).start()
    assert proc.proc is not None
    try:
        rc = proc.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        proc.stop(timeout=5)
        raise HarnessError(f"{name} did not finish within {timeout:.0f}s; log tail:\n{proc.tail()}") from exc
    proc.stop(timeout=5)  # reap anything it left in its group
    if rc != 0:
        raise HarnessError(f"{name} exited with {rc}; log tail:\n{proc.tail(80)}")
    return subprocess.CompletedProcess(argv, rc)


# --------------------------------------------------------------------------------------------
# REST client
# --------------------------------------------------------------------------------------------
