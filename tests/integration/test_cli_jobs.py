"""`openamt tune --detach`, `openamt stop` and `openamt list` on a real job: the CLI runs as a
user runs it (subprocesses), the detached driver starts Ray embedded, and trials are real
processes of the stand-in trainer."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from orchestrator.store.ledger import Event, read_events
from orchestrator.store.records import summarize_trials
from orchestrator.store.view import load_job_view
from orchestrator.trial.outcome import TrialState
from tests.helpers import REPO, attempt_files, standin_job

OPENAMT = [sys.executable, "-m", "orchestrator.cli"]
#: Two trials of 15 s each in parallel: long enough to be stopped mid-run on a busy machine.
SLOW_TRIALS = {"epochs": 60, "sleep": 0.25}


def openamt(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*OPENAMT, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def drivers():
    """Pids of detached drivers a test started; one left running by a failed test is stopped
    (SIGTERM: its trials are stopped too), so it cannot run on into the tests after it."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGTERM)
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).wait(timeout=60)


@pytest.mark.slow
def test_detach_then_stop_then_resume(tmp_path, drivers):
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(standin_job(tmp_path, max_jobs=2, hyperparameters=SLOW_TRIALS)))
    job_dir = tmp_path / "runs" / "standin"

    # --detach returns once the driver has recorded its start, with the job still running.
    started = time.monotonic()
    detach = openamt("tune", str(job), "--detach", "--no-metrics", timeout=240)
    detach_s = time.monotonic() - started
    assert detach.returncode == 0, detach.stdout + detach.stderr
    driver = int(re.search(r"driver pid (\d+)", detach.stdout).group(1))
    drivers.append(driver)
    assert f"openamt status {job_dir}" in detach.stdout
    assert f"openamt stop {job_dir}" in detach.stdout
    assert _alive(driver), "the driver did not outlive the command that started it"
    assert os.getsid(driver) == driver  # its own session: the shell's Ctrl-C does not reach it
    events = read_events(job_dir / "ledger.jsonl")
    assert [e["pid"] for e in events if e["event"] == Event.JOB_STARTED.value] == [driver]
    assert not any(e["event"] == Event.JOB_COMPLETED.value for e in events)
    assert "has not started" not in detach.stderr

    status = openamt("status", str(job_dir))
    assert f"state: running (driver pid {driver})" in status.stdout, status.stdout

    again = openamt("tune", str(job), "--detach", "--no-metrics")
    assert again.returncode == 1, again.stdout
    assert f"job standin is already running (driver pid {driver})" in again.stderr
    assert "Traceback" not in again.stderr
    assert (job_dir / "driver.pid").read_text().strip() == str(driver)  # nothing started
    assert _alive(driver)

    # stop: both trials are mid-run; they are recorded Stopped and their trainers are gone.
    _wait_for(lambda: _trials_with_results(job_dir) == {"trial-0001", "trial-0002"}, timeout=120)
    trainers = {t: _trainer_pid(job_dir, t) for t in ("trial-0001", "trial-0002")}
    configs = {t: r.config for t, r in load_job_view(job_dir).trials.items()}
    started = time.monotonic()
    stop = openamt("stop", str(job_dir), timeout=150)
    stop_s = time.monotonic() - started
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert "job standin: Stopped (0 completed, 2 stopped, 0 failed)" in stop.stdout
    assert not _alive(driver), "openamt stop returned before the driver exited"
    events = read_events(job_dir / "ledger.jsonl")
    assert events[-1]["event"] == Event.JOB_INTERRUPTED.value
    assert events[-1]["reason"] == "SIGTERM"
    ends = {e["trial_id"]: e for e in events if e["event"] == Event.TRIAL_COMPLETED.value}
    assert {t: e["status"] for t, e in ends.items()} == dict.fromkeys(trainers, "Stopped")
    assert all(e["signal"] == "SIGTERM" and e["resume"] for e in ends.values())
    recorded = summarize_trials(events)  # the ledger itself, not the view's reading of it
    assert not [t for t, r in recorded.items() if r.state is TrialState.RUNNING]
    assert not [pid for pid in trainers.values() if _alive(pid)], "a trainer outlived the stop"
    assert "state: stopped" in openamt("status", str(job_dir)).stdout

    stop_again = openamt("stop", str(job_dir))
    assert stop_again.returncode == 0, stop_again.stderr
    assert "job standin is not running: stopped" in stop_again.stdout

    # Rerunning the same command resumes: the stopped trials run again, under their ids.
    resume = openamt("tune", str(job), "--no-progress", "--no-metrics", timeout=300)
    assert resume.returncode == 0, resume.stdout + resume.stderr
    view = load_job_view(job_dir)
    assert list(view.trials) == ["trial-0001", "trial-0002"]
    for trial_id, record in view.trials.items():
        assert record.state is TrialState.COMPLETED
        assert record.config == configs[trial_id]
        assert record.attempts == 2
    assert view.completion["reason"] == "MaxNumberOfTrainingJobsReached"

    listing = openamt("list", str(job_dir.parent))
    assert listing.returncode == 0, listing.stderr
    row = listing.stdout.splitlines()[1].split()
    assert row[:5] == ["standin", "Completed", "2", "of", "2"]
    assert row[5] == f"validation:accuracy={view.best.objective:.6g}"

    finished = openamt("tune", str(job), "--detach", "--no-metrics")
    assert finished.returncode == 0, finished.stderr
    assert "job standin has nothing left to run: finished" in finished.stdout
    print(f"detach {detach_s:.1f} s, stop {stop_s:.1f} s")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_for(condition, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _trials_with_results(job_dir: Path) -> set[str]:
    events = read_events(job_dir / "ledger.jsonl")
    return {e["trial_id"] for e in events if e["event"] == Event.TRIAL_RESULT.value}


def _trainer_pid(job_dir: Path, trial_id: str) -> int:
    """The pid the stand-in trainer printed first in its log."""
    log = attempt_files(job_dir, trial_id).log.read_text(errors="replace")
    return int(re.search(r"trainer pid=(\d+)", log).group(1))
