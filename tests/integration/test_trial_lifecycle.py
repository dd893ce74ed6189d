"""Every way a trial or a job ends is recorded once, stopped gracefully, and cleaned up to the
last process — with real Ray, real trainer processes and the deterministic stand-in trainer."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import psutil
import pytest
import torch
import yaml

from orchestrator.store.export import write_csv
from orchestrator.store.ledger import Event, read_events
from orchestrator.store.records import summarize_trials
from orchestrator.store.view import load_job_view
from orchestrator.trial.outcome import EndCause, TrialState
from orchestrator.tune.runner import RunOptions, run_job
from orchestrator.tune.session import QUIET_LOGGERS
from tests.helpers import OBJECTIVE, REPO, attempt_files, standin_job, standin_spec

pytestmark = pytest.mark.usefixtures("local_ray")
QUIET = RunOptions(show_progress=False, metrics_port=None)
OPENAMT = [sys.executable, "-m", "orchestrator.cli"]


def _events(job_dir: Path, kind: Event) -> list[dict]:
    return [e for e in read_events(job_dir / "ledger.jsonl") if e["event"] == kind.value]


def _wait_until(condition, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting until {what}")


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _marked(job_dir: Path, trial_id: str) -> list[psutil.Process]:
    """Living processes that carry the trial's marker (its id and job in their environment)."""
    marker = {"OPENAMT_TRIAL_ID": trial_id, "OPENAMT_JOB_DIR": str(job_dir)}
    found = []
    for process in psutil.process_iter():
        try:
            env = process.environ()
            if process.status() != psutil.STATUS_ZOMBIE and all(
                env.get(k) == v for k, v in marker.items()
            ):
                found.append(process)
        except psutil.Error:
            continue
    return found


# -- 1. job-level stops ---------------------------------------------------------------------------
def test_a_job_runtime_limit_stops_running_trials_gracefully_and_a_rerun_starts_nothing(tmp_path):
    spec = standin_spec(
        tmp_path,
        max_jobs=6,
        max_parallel_jobs=2,
        # Ray may take many seconds to start workers on a busy machine; the trials then run
        # well past the limit
        hyperparameters={"epochs": 20, "sleep": 3.0, "graceful": 1},
        completion_criteria={"max_runtime_in_seconds": 40},
    )
    result = run_job(spec, QUIET)

    assert result.reason == "MaxRuntimeReached"
    stopped = [t for t in result.trials.values() if t.state is TrialState.STOPPED]
    assert len(stopped) >= 2, result.trials
    assert all(t.state is not TrialState.RUNNING for t in result.trials.values())
    for record in stopped:
        assert "the job completed (MaxRuntimeReached)" in record.reason
        last = record.history[-1][1] if record.history else None
        assert record.objective == last  # its last objective
        files = attempt_files(spec.job_dir, record.trial_id)
        assert "stopped gracefully" in files.log.read_text()  # SIGTERM, not SIGKILL
        assert json.loads((files.model_dir / "model.txt").read_text())["stopped"] is True
    state = json.loads((spec.job_dir / "searcher_state.json").read_text())
    assert state["pending"] == []

    view = load_job_view(spec.job_dir)
    assert view.status.value == "Completed"
    assert all(t.state is not TrialState.RUNNING for t in view.trials.values())
    csv_path = tmp_path / "trials.csv"
    with open(csv_path, "w", newline="") as handle:
        write_csv(view, handle)
    assert "Running" not in csv_path.read_text()

    starts = len(_events(spec.job_dir, Event.TRIAL_STARTED))
    again = run_job(standin_spec(tmp_path, **_same_job(spec)), QUIET)
    assert again.reason == "MaxRuntimeReached"
    assert len(_events(spec.job_dir, Event.TRIAL_STARTED)) == starts  # 0 new trials


def _same_job(spec) -> dict:
    return {
        key: value
        for key, value in spec.to_mapping().items()
        if key not in ("name", "trainer", "objective_metric_name", "metric_definitions")
    }


def test_a_target_reached_with_several_trials_running_stops_them_all(tmp_path):
    spec = standin_spec(
        tmp_path,
        strategy="Grid",
        # a short trial reaches the target while a long one still runs (the test cluster has
        # two CPUs: two trials at a time)
        hyperparameter_ranges={"epochs": {"type": "Categorical", "values": ["2", "40"]}},
        hyperparameters={"x": 0.3, "y": 0.7, "sleep": 0.5},
        max_jobs=2,
        max_parallel_jobs=2,
        completion_criteria={"target_objective_metric_value": 0.5},
    )
    result = run_job(spec, QUIET)
    assert result.reason == "TargetObjectiveReached"
    states = {t.config["epochs"]: t.state for t in result.trials.values()}
    assert states == {"2": TrialState.COMPLETED, "40": TrialState.STOPPED}
    assert load_job_view(spec.job_dir).status.value == "Completed"


# -- 2. early stops are graceful, with a configurable grace ---------------------------------------
def test_an_early_stop_sends_sigterm_and_lets_the_trainer_save_its_model(tmp_path):
    spec = standin_spec(
        tmp_path,
        strategy="Grid",
        hyperparameter_ranges={
            "x": {"type": "Categorical", "values": ["0.30", "0.32", "0.28", "0.95", "0.05"]}
        },
        hyperparameters={"y": 0.7, "epochs": 4, "sleep": 0.3, "graceful": 1},
        max_jobs=5,
        max_parallel_jobs=1,
        early_stopping_type="Auto",
        stop_grace_period_in_seconds=2,
    )
    result = run_job(spec, QUIET)
    bad = [t for t in result.trials.values() if t.config["x"] in ("0.95", "0.05")]
    assert [t.state for t in bad] == [TrialState.STOPPED, TrialState.STOPPED]
    for record in bad:
        assert "worse than the median" in record.reason
        log = attempt_files(spec.job_dir, record.trial_id).log.read_text()
        assert "stopped gracefully" in log  # the trainer got SIGTERM and saved its model
        assert "==== openamt" in log.splitlines()[-1]  # the log footer was written


# -- 3. descendants do not survive a SIGKILLed Ray worker -----------------------------------------
def test_no_descendant_survives_the_ray_worker_being_sigkilled(tmp_path):
    wrapper = tmp_path / "run.sh"
    wrapper.write_text('#!/bin/bash\n( setsid sleep 600 & )\nexec "$@"\n')
    wrapper.chmod(0o755)
    job = standin_job(
        tmp_path,
        max_jobs=1,
        max_parallel_jobs=1,
        hyperparameters={"epochs": 2, "hang": 1, "setsid_child": 1},
    )
    job["trainer"] = {
        "command": [str(wrapper), sys.executable, str(REPO / "tests/fixtures/standin_trainer.py")],
        "working_dir": str(tmp_path),
    }
    from orchestrator.spec import JobSpec

    spec = JobSpec.from_mapping(job, base_dir=tmp_path)
    killed: list[int] = []
    supervisors: list[psutil.Process] = []

    def kill_the_worker() -> None:
        log = attempt_files(spec.job_dir, "trial-0001").log
        _wait_until(lambda: log.exists() and "setsid helper" in log.read_text(), timeout=120,
                    what="the trainer started its setsid helper")  # fmt: skip
        _wait_until(lambda: len(_marked(spec.job_dir, "trial-0001")) >= 3, timeout=30,
                    what="the wrapper's helper, the trainer and its helper run")  # fmt: skip
        # The supervisor was started ahead of the trial, with the worker's environment: it is
        # found as the trainer's ancestor (all of the trial's processes are its descendants).
        trainer = next(
            p
            for p in _marked(spec.job_dir, "trial-0001")
            if "standin_trainer.py" in " ".join(p.cmdline())
        )
        supervisor = next(p for p in trainer.parents() if "supervisor.py" in " ".join(p.cmdline()))
        worker = supervisor.parent()
        supervisors.append(supervisor)
        killed.append(worker.pid)
        worker.send_signal(signal.SIGKILL)

    killer = threading.Thread(target=kill_the_worker, daemon=True)
    killer.start()
    result = run_job(spec, QUIET)
    killer.join(timeout=5)
    assert killed, "the trial's worker was never found"
    record = result.trials["trial-0001"]
    assert record.state is TrialState.FAILED and "was lost" in record.reason
    _wait_until(lambda: not _marked(spec.job_dir, "trial-0001"), timeout=10,
                what="every process of the trial is gone")  # fmt: skip
    _wait_until(lambda: not _alive(supervisors[0]), timeout=10, what="the supervisor ended")


# -- 4. NaN never reaches a stopping rule, and such a job resumes ---------------------------------
def test_a_nan_mid_training_does_not_break_early_stopping_or_its_resume(tmp_path):
    overrides = {
        "strategy": "Grid",
        "hyperparameter_ranges": {
            "x": {"type": "Categorical", "values": ["0.30", "0.31", "0.29", "0.32", "0.90"]}
        },
        "hyperparameters": {"y": 0.7, "epochs": 3, "nan_at": 2, "sleep": 0.3},
        "max_parallel_jobs": 1,
        "early_stopping_type": "Auto",
    }
    first = run_job(standin_spec(tmp_path, max_jobs=3, **overrides), QUIET)
    assert any(e["value"] is None for e in _events(first.job_dir, Event.TRIAL_RESULT))
    resumed = run_job(standin_spec(tmp_path, max_jobs=5, **overrides), QUIET)
    assert len(resumed.trials) == 5
    assert all(t.state.finished for t in resumed.trials.values())


# -- 5 and 6. classification; the reason on the terminal is the ledger's, shown as text ----------
def test_the_terminal_shows_trainer_text_verbatim_and_the_ledgers_reason(tmp_path):
    markup = "[/INST] [bold]not bold[/bold] \x1b[31mred\x1b[0m"
    job = standin_job(tmp_path, max_jobs=2, hyperparameters={"epochs": 2, "stderr_text": markup})
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    completed = subprocess.run(
        [*OPENAMT, "tune", str(path), "--metrics-port", "0"],  # the default progress display
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "300"},
    )
    output = completed.stdout + completed.stderr
    assert "MarkupError" not in output and "Traceback" not in output, output[-3000:]
    assert "[/INST] [bold]not bold[/bold]" in output  # shown as written
    assert "\x1b[31m" not in output  # terminal control sequences are not passed on
    trials = summarize_trials(read_events(tmp_path / "runs" / "standin" / "ledger.jsonl"))
    assert {t.state for t in trials.values()} == {TrialState.FAILED}
    for record in trials.values():
        assert "trainer exited with code 5" in record.reason
        assert record.reason.split("\n", 1)[0] in output  # the reason shown is the ledger's
    assert completed.returncode == 1 and "job failed: all 2 trials failed" in output


def test_openamts_own_failure_stops_the_job_naming_the_cause_and_the_job_resumes(tmp_path):
    spec = standin_spec(tmp_path, max_jobs=2, max_parallel_jobs=1)
    blocker = spec.job_dir / "trials" / "trial-0001"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where the trial's folder belongs")
    with pytest.raises(Exception, match="openamt could not run the trial") as caught:
        run_job(spec, QUIET)
    assert "trial-0001" in str(caught.value)
    record = summarize_trials(read_events(spec.job_dir / "ledger.jsonl"))["trial-0001"]
    assert record.state is TrialState.FAILED and record.cause is EndCause.OPENAMT
    assert record.resumable  # not the hyperparameters' fault: it runs again
    blocker.unlink()
    resumed = run_job(spec, QUIET)
    assert [t.state for t in resumed.trials.values()] == [TrialState.COMPLETED] * 2
    assert resumed.trials["trial-0001"].attempts == 2


# -- 7. output floods ----------------------------------------------------------------------------
def test_a_flood_of_metric_lines_keeps_the_driver_and_the_ledger_bounded(tmp_path):
    lines = 100_000
    spec = standin_spec(
        tmp_path,
        max_jobs=1,
        max_parallel_jobs=1,
        hyperparameters={"flood": lines},
        max_trial_log_bytes=1_000_000,
    )
    environment, threads = dict(os.environ), torch.get_num_threads()
    levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    filters = list(warnings.filters)
    started = time.monotonic()
    result = run_job(spec, QUIET)
    elapsed = time.monotonic() - started
    # the process is left as it was (a notebook that ran fit(wait=True) goes on unchanged)
    assert dict(os.environ) == environment and torch.get_num_threads() == threads
    assert {name: logging.getLogger(name).level for name in QUIET_LOGGERS} == levels
    assert warnings.filters == filters
    record = result.trials["trial-0001"]
    assert record.state is TrialState.COMPLETED and record.objective == 1.0  # the last value
    results = _events(spec.job_dir, Event.TRIAL_RESULT)
    assert results[-1]["step"] == lines  # the step count is exact
    assert len(results) <= 10 * (record.duration_s or elapsed) + 5  # at most ~10 a second
    log = attempt_files(spec.job_dir, "trial-0001").log
    assert log.stat().st_size < 1_100_000
    text = log.read_text()
    assert "[Epoch 1] validation" in text and f"[Epoch {lines}] validation" in text
    assert "characters of output left out here" in text


def test_a_line_on_both_streams_counts_once_and_a_slow_regex_cannot_stall_the_trial(tmp_path):
    spec = standin_spec(
        tmp_path,
        max_jobs=1,
        max_parallel_jobs=1,
        # every line on both streams, and lines on which the "slow" regex backtracks for ages
        hyperparameters={"epochs": 3, "both_streams": 1, "sleep": 0.3, "echo": "a" * 60 + "b"},
        metric_definitions=[
            {"Name": OBJECTIVE, "Regex": r"validation: accuracy=([-+0-9.eEnaif]+)"},
            {"Name": "slow", "Regex": r"(a|aa)+$"},
        ],
    )
    started = time.monotonic()
    result = run_job(spec, QUIET)
    record = result.trials["trial-0001"]
    assert record.state is TrialState.COMPLETED
    assert [step for step, _ in record.history] == [1, 2, 3]  # not 1..6
    assert time.monotonic() - started < 120
    log = attempt_files(spec.job_dir, "trial-0001").log.read_text()
    assert "metric 'slow': its Regex took over 50 ms on a line" in log


# -- 10. outcomes of a whole job -----------------------------------------------------------------
def test_a_job_whose_every_trial_failed_fails_and_exits_non_zero(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(standin_job(tmp_path, max_jobs=2, hyperparameters={"crash": 1})))
    completed = subprocess.run(
        [*OPENAMT, "tune", str(path), "--no-progress", "--no-metrics"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 1
    assert "job failed: all 2 trials failed" in completed.stderr
    view = load_job_view(tmp_path / "runs" / "standin")
    assert view.status.value == "Failed" and "trainer exited with code 3" in view.failure_reason


# -- 11. signals -----------------------------------------------------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_driver_started_with_sigint_ignored_still_stops_cleanly_and_resumes(tmp_path, sig):
    job = standin_job(
        tmp_path, max_jobs=3, max_parallel_jobs=2, hyperparameters={"epochs": 3, "sleep": 2.0}
    )
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    ledger = tmp_path / "runs" / "standin" / "ledger.jsonl"
    driver = subprocess.Popen(
        [*OPENAMT, "tune", str(path), "--no-progress", "--no-metrics"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # `nohup ... &`
    )
    try:
        _wait_until(
            lambda: ledger.exists() and len(_events(ledger.parent, Event.TRIAL_RESULT)) >= 1,
            timeout=180,
            what="a trial reports",
        )
        driver.send_signal(sig)
        _, stderr = driver.communicate(timeout=120)
    finally:
        driver.kill()
    assert driver.returncode == 130, stderr
    assert "Traceback" not in stderr
    trials = summarize_trials(read_events(ledger))
    assert not [t for t in trials.values() if t.state is TrialState.RUNNING]
    interrupted = [t for t in trials.values() if t.cause is EndCause.INTERRUPTED]
    assert interrupted and all(t.resumable for t in interrupted)
    assert load_job_view(ledger.parent).status.value == "Stopped"

    resumed = subprocess.run(
        [*OPENAMT, "tune", str(path), "--no-progress", "--no-metrics"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    trials = summarize_trials(read_events(ledger))
    assert [t.state for t in trials.values()] == [TrialState.COMPLETED] * 3
