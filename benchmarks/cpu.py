"""
Where the machine's CPU goes during a benchmark phase, by component.

Linux only (``/proc``). A component is a process we started (the scheduler, the API server...) with
all its descendants: the CPU time of each live process in the tree plus what it collected from its
children that have exited (``cutime``/``cstime``), so task processes that came and went during the
phase are counted under the process that waited for them (the LocalExecutor's workers, under the
scheduler). What no component accounts for is ``other``: PostgreSQL's backends, this harness, and
whatever else ran on the machine.

    before = snapshot({"scheduler": pid, ...})
    ...  # the phase
    spent = cpu_spent(before, snapshot({...}))   # {"scheduler": 12.3, ..., "other": 4.5, "total": 60.1}
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds of the process and its reaped children), or None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after its last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return ppid, (utime + stime + cutime + cstime) / _TICK


def _process_table() -> dict[int, tuple[int, float]]:
    table = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            found = _stat(int(entry.name))
            if found is not None:
                table[int(entry.name)] = found
    return table


def machine_cpu_seconds() -> float:
    """CPU seconds spent by the whole machine since boot (all cores, idle and iowait excluded)."""
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / _TICK


def snapshot(roots: Mapping[str, int | None]) -> dict[str, float]:
    """CPU seconds so far of each named process tree, and of the whole machine (``total``)."""
    table = _process_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    result: dict[str, float] = {}
    for name, root in roots.items():
        spent, stack, seen = 0.0, [root] if root in table else [], set()
        while stack:
            pid = stack.pop()
            if pid in seen:
                continue
            seen.add(pid)
            spent += table[pid][1]
            stack.extend(children.get(pid, ()))
        result[name] = spent
    result["total"] = machine_cpu_seconds()
    return result


def cpu_spent(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """CPU seconds each component spent between two snapshots; ``other`` is the machine's remainder.

    A process tree that lost members between the snapshots (a LocalExecutor worker that exited and
    was not waited for) can show less than it spent; such a difference is clamped to 0.
    """
    spent = {name: max(0.0, after[name] - before.get(name, 0.0)) for name in after if name != "total"}
    total = max(0.0, after["total"] - before["total"])
    spent["other"] = max(0.0, total - sum(spent.values()))
    spent["total"] = total
    return spent
