"""Which process drives a job, as `status`, `stop` and a second `--detach` read it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.store.driver import running_driver_pid
from orchestrator.store.job_dir import JobDir
from orchestrator.store.ledger import Event, Ledger


@pytest.fixture
def job_dir(tmp_path: Path) -> JobDir:
    job = JobDir(path=tmp_path / "job")
    job.path.mkdir()
    Ledger(job_dir=job.path).append(Event.JOB_STARTED, run=1, pid=os.getpid())
    return job


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_the_live_driver_counts_even_if_a_dead_one_wrote_its_pid_later(job_dir: JobDir) -> None:
    job_dir.lock_file.write_text(f"{os.getpid()}\n")  # the driver holding the lock: alive
    time.sleep(0.01)
    job_dir.record_driver_pid(dead_pid())  # a second driver that lost the race, newer file
    assert running_driver_pid(job_dir) == os.getpid()


def test_no_driver_when_every_recorded_pid_is_dead(job_dir: JobDir) -> None:
    job_dir.record_driver_pid(dead_pid())
    assert running_driver_pid(job_dir) is None


def test_no_driver_once_the_run_recorded_its_end(job_dir: JobDir) -> None:
    job_dir.record_driver_pid(os.getpid())
    assert running_driver_pid(job_dir) == os.getpid()
    Ledger(job_dir=job_dir.path).append(
        Event.JOB_COMPLETED, reason="MaxNumberOfTrainingJobsReached"
    )
    assert running_driver_pid(job_dir) is None
