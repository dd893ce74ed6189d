"""Which process drives a job now, read from the job directory by anyone on the machine.

A driver records its pid twice: `.lock` (every driver, while it holds the lock) and `driver.pid`
(a detached driver, from the moment it is started). A recorded pid counts as the job's driver
while that process lives, was started before the file was written (so a reused pid does not
count), and the ledger's latest run has not recorded its end.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psutil

from orchestrator.store.job_dir import JobDir
from orchestrator.store.ledger import last_run_ended, read_events


def running_driver_pid(
    job_dir: JobDir, *, events: Sequence[dict[str, Any]] | None = None
) -> int | None:
    """The pid of the live driver of `job_dir`, or None."""
    # Newest first, and the first that lives: a second driver that lost the race for the lock
    # may have overwritten `driver.pid` before it died, while the first still runs.
    alive = [
        pid
        for pid, written_at in job_dir.recorded_driver_pids()
        if is_alive(pid, started_before=written_at)
    ]
    if not alive:
        return None
    if events is None:
        events = read_events(job_dir.ledger_path)
    return None if last_run_ended(events) else alive[0]


def is_alive(pid: int, *, started_before: float) -> bool:
    """The process lives and is not a later process that reused the pid."""
    try:
        process = psutil.Process(pid)
        return (
            process.status() != psutil.STATUS_ZOMBIE
            and process.create_time() <= started_before + 1.0
        )
    except psutil.Error:
        return False
