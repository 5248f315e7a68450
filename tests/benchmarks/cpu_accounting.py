"""CPU time of groups of processes, read from Linux ``/proc``, for benchmarks to print per item.

    groups = {"worker main": lambda: [pid], "postgres": processes_named("postgres")}
    before = cpu_seconds(groups)
    ...  # the measured work
    spent = {name: after - before[name] for name, after in cpu_seconds(groups).items()}

Processes that start or end between the two readings are counted only for the time they were seen,
and processes of the same name belonging to other work on the machine are counted too: the figures
are an estimate, printed, never asserted.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path

#: A group: a function listing its process ids when called.
Group = Callable[[], list[int]]
_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def cpu_seconds(groups: Mapping[str, Group]) -> dict[str, float]:
    """User plus system CPU seconds each group's processes have used so far."""
    return {name: sum(_process_cpu(pid) for pid in pids()) for name, pids in groups.items()}


def processes_named(command: str) -> Group:
    """The processes whose command name (``/proc/<pid>/comm``) starts with ``command``."""

    def pids() -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if (entry / "comm").read_text().startswith(command):
                        found.append(int(entry.name))
        return found

    return pids


def _process_cpu(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0  # gone since it was listed
    # Fields after the command name (which may hold spaces) start after the last ")".
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_SECOND
