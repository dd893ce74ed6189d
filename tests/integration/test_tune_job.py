"""Whole tuning jobs on a local Ray with real subprocess trials of the stand-in trainer."""

from __future__ import annotations

import json
import re
from pathlib import Path

import psutil
import pytest

from orchestrator.store.export import write_csv
from orchestrator.store.job_dir import JobDir
from orchestrator.store.ledger import Event, read_events
from orchestrator.store.view import load_job_view
from orchestrator.trial.outcome import TrialState
from orchestrator.tune.runner import RunOptions, run_job
from tests.fixtures.standin_trainer import final_accuracy
from tests.helpers import OBJECTIVE, attempt_files, standin_spec

pytestmark = pytest.mark.usefixtures("local_ray")
QUIET = RunOptions(show_progress=False, metrics_port=None)


def _run(tmp_path: Path, **overrides):
    spec = standin_spec(tmp_path, **overrides)
    return spec, run_job(spec, QUIET)


@pytest.mark.parametrize("strategy", ["Random", "Bayesian"])
def test_full_job_records_every_trial_with_the_trainers_objective(tmp_path, strategy):
    spec, result = _run(tmp_path, strategy=strategy, max_jobs=6)
    assert result.reason == "MaxNumberOfTrainingJobsReached"
    trials = result.trials
    assert list(trials) == [f"trial-{i:04d}" for i in range(1, 7)]
    for record in trials.values():
        assert record.state is TrialState.COMPLETED
        expected = final_accuracy(x=record.config["x"], y=record.config["y"])
        assert record.objective == pytest.approx(expected, abs=1e-6)
        assert [step for step, _ in record.history] == [1, 2]  # one report per epoch
        assert record.config["epochs"] == 2  # static values travel with every trial
        log = attempt_files(spec.job_dir, record.trial_id, record.attempts).log.read_text()
        assert "validation: accuracy=" in log
        hps = json.loads(
            (JobDir(path=spec.job_dir).trial_files(record.trial_id).hyperparameters).read_text()
        )
        assert hps["x"] == record.config["x"]
        assert (
            attempt_files(spec.job_dir, record.trial_id, record.attempts).model_dir / "model.txt"
        ).exists()
    assert result.best is not None
    assert result.best.objective == max(t.objective for t in trials.values())
    state = json.loads((spec.job_dir / "searcher_state.json").read_text())
    assert state  # the searcher's state is saved for resuming
    events = read_events(spec.job_dir / "ledger.jsonl")
    assert events[-1]["event"] == Event.JOB_COMPLETED.value
    assert events[-1]["best_trial_id"] == result.best.trial_id


def test_grid_job_enumerates_every_combination_then_stops(tmp_path):
    ranges = {
        "opt": {"type": "Categorical", "values": ["sgd", "adam", "nag"]},
        "layers": {"type": "Integer", "min_value": 2, "max_value": 3},
    }
    _, result = _run(tmp_path, strategy="Grid", hyperparameter_ranges=ranges, max_jobs=10)
    assert result.reason == "SearchSpaceExhausted"
    combos = {(t.config["opt"], t.config["layers"]) for t in result.trials.values()}
    assert combos == {(o, n) for o in ("sgd", "adam", "nag") for n in (2, 3)}
    assert len(result.trials) == 6


def test_parallel_trials_actually_overlap(tmp_path):
    _, result = _run(tmp_path, max_jobs=2, hyperparameters={"epochs": 2, "sleep": 1.0})
    first, second = result.trials.values()
    assert second.start_time < first.end_time  # two slots, two trials at once


@pytest.mark.parametrize(
    ("flags", "reason_fragment"),
    [
        ({"crash": 1}, "exit"),
        ({"nan": 1}, "nan"),
        ({"no_metric": 1}, OBJECTIVE),
        ({"kill_self": 1}, "SIGKILL"),
    ],
)
def test_failed_trials_are_recorded_with_a_reason_and_a_job_of_only_failures_fails(
    tmp_path, flags, reason_fragment
):
    _, result = _run(tmp_path, max_jobs=2, hyperparameters={"epochs": 2, **flags})
    assert len(result.trials) == 2  # the first failure did not end the job
    for record in result.trials.values():
        assert record.state is TrialState.FAILED
        assert record.objective is None
        assert reason_fragment.lower() in record.reason.lower()
    assert result.failed and result.reason == "AllTrainingJobsFailed"
    assert result.failure.startswith("all 2 trials failed; the most common reason (2 of them): ")
    assert reason_fragment.lower() in result.failure.lower()


def test_a_trial_past_its_runtime_is_killed_with_its_children(tmp_path):
    spec, result = _run(
        tmp_path,
        max_jobs=1,
        max_runtime_in_seconds=3,
        hyperparameters={"epochs": 2, "hang": 1, "spawn_child": 1},
    )
    (record,) = result.trials.values()
    assert record.state is TrialState.FAILED
    assert "max_runtime_in_seconds" in record.reason
    assert record.duration_s < 3 + 10 + 30  # runtime + grace + slack for two busy cores
    log = attempt_files(spec.job_dir, record.trial_id, record.attempts).log.read_text()
    (grandchild,) = re.findall(r"spawned child pid=(\d+)", log)
    assert not _alive(int(grandchild))


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_retry_happens_for_a_killed_trial_and_not_for_a_crash(tmp_path):
    once = tmp_path / "killed-once"
    _, result = _run(
        tmp_path,
        max_jobs=1,
        retry_strategy={"maximum_retry_attempts": 2},
        hyperparameters={"epochs": 2, "kill_self_once_file": str(once)},
    )
    (record,) = result.trials.values()
    assert record.state is TrialState.COMPLETED and record.attempts == 2

    (tmp_path / "b").mkdir()
    _, crashed = _run(
        tmp_path / "b",
        max_jobs=1,
        retry_strategy={"maximum_retry_attempts": 2},
        hyperparameters={"epochs": 2, "crash": 1},
    )
    (record,) = crashed.trials.values()
    assert record.state is TrialState.FAILED and record.attempts == 1


def test_export_csv_has_a_row_per_trial(tmp_path):

    spec, _ = _run(tmp_path, max_jobs=3)
    out = tmp_path / "trials.csv"
    with open(out, "w", newline="") as handle:
        assert write_csv(load_job_view(spec.job_dir), handle) == 3
    import csv

    rows = list(csv.DictReader(out.open()))
    assert [r["trial_id"] for r in rows] == ["trial-0001", "trial-0002", "trial-0003"]
    assert {
        "status",
        "objective",
        "failure_reason",
        "start_time",
        "end_time",
        "duration_s",
        "x",
        "y",
    } <= set(rows[0])
    assert all(r["status"] == "Completed" and float(r["objective"]) > 0 for r in rows)


def test_rerunning_a_finished_job_runs_nothing_more(tmp_path):
    spec, first = _run(tmp_path, max_jobs=2)
    second = run_job(spec, QUIET)
    assert list(second.trials) == list(first.trials)
    starts = [
        e
        for e in read_events(spec.job_dir / "ledger.jsonl")
        if e["event"] == Event.TRIAL_STARTED.value
    ]
    assert len(starts) == 2


def test_a_different_job_in_the_same_directory_is_refused(tmp_path):
    from orchestrator.errors import ResumeError

    spec, _ = _run(tmp_path, max_jobs=1)
    changed = standin_spec(tmp_path, max_jobs=1, objective_type="Minimize")
    with pytest.raises(ResumeError, match="objective_type"):
        run_job(changed, QUIET)
    assert spec.job_dir == changed.job_dir
