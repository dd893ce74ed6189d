"""Warm start from parent job directories: finished parents only, and what the child took is
recorded once in its own job directory, so resuming it needs no parent."""

from __future__ import annotations

import json
import shutil
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import ResumeError, SpecError
from orchestrator.spec import JobSpec
from orchestrator.store.job_dir import JobDir
from orchestrator.store.ledger import Event, Ledger
from orchestrator.store.warm_start import parent_observations
from tests.unit.test_bad_input import (
    assert_names_field_value_and_rule,
    bad_input,
    changed,
    minimal_job,
)

PARENTS = "warm_start_config.parent_hyperparameter_tuning_jobs"
# (trial, layers, status, objective) of the parent's trials; trial-0004 is still running.
PARENT_TRIALS = [
    ("trial-0001", 2, "Completed", 0.81),
    ("trial-0002", 4, "Completed", 0.86),
    ("trial-0003", 1, "Failed", None),
]


def write_parent(root: Path, name: str = "parent", changes: dict[str, Any] | None = None) -> JobDir:
    """A parent job directory as a finished run leaves it, one trial cut off by its end."""
    spec = JobSpec.from_mapping(
        changed(minimal_job(), {"name": name, **(changes or {})}), base_dir=root
    )
    job_dir = JobDir(path=spec.job_dir)
    job_dir.create()
    job_dir.spec_path.write_text(spec.to_yaml())
    ledger = Ledger(job_dir=job_dir.path)
    ledger.append(Event.JOB_STARTED, run=1)
    for trial_id, layers, status, objective in PARENT_TRIALS:
        ledger.append(Event.TRIAL_STARTED, trial_id=trial_id, attempt=1, config={"layers": layers})
        ledger.append(
            Event.TRIAL_COMPLETED,
            trial_id=trial_id,
            attempt=1,
            status=status,
            objective=objective,
        )
    ledger.append(Event.TRIAL_STARTED, trial_id="trial-0004", attempt=1, config={"layers": 3})
    ledger.append(Event.JOB_COMPLETED, reason="MaxNumberOfTrainingJobsReached")
    return job_dir


def child_spec(root: Path, parents: list[str], kind: str = "TransferLearning") -> JobSpec:
    data = changed(
        minimal_job(),
        {
            "name": "child",
            "hyperparameters": {"seed": 7},
            "warm_start_config": {
                "parent_hyperparameter_tuning_jobs": parents,
                "warm_start_type": kind,
            },
        },
    )
    return JobSpec.from_mapping(data, base_dir=root)


EXPECTED = [({"seed": 7, "layers": 2}, 0.81), ({"seed": 7, "layers": 4}, 0.86)]
EXPECTED += [({"seed": 7, "layers": 1}, None)]


def test_the_first_run_takes_the_finished_parent_trials_and_records_them(tmp_path: Path) -> None:
    write_parent(tmp_path)
    spec = child_spec(tmp_path, ["runs/parent"])
    job_dir = JobDir(path=spec.job_dir)
    job_dir.create()

    observations = parent_observations(spec, job_dir)

    assert observations == EXPECTED  # the running trial-0004 is left out; Failed has no value
    record = json.loads(job_dir.warm_start_path.read_text())
    assert record["parent_hyperparameter_tuning_jobs"] == ["runs/parent"]
    assert record["parents"] == [
        {
            "path": str(tmp_path / "runs" / "parent"),
            "name": "parent",
            "status": "Completed",
            "trials": 3,
        }
    ]


def test_a_resumed_child_reads_its_record_even_when_the_parent_is_gone(tmp_path: Path) -> None:
    parent = write_parent(tmp_path)
    spec = child_spec(tmp_path, ["runs/parent"])
    job_dir = JobDir(path=spec.job_dir)
    job_dir.create()
    parent_observations(spec, job_dir)
    written = job_dir.warm_start_path.read_bytes()

    shutil.rmtree(parent.path)
    resumed = child_spec(tmp_path, ["runs/parent"])  # the job file loads again: it has started

    assert parent_observations(resumed, job_dir) == EXPECTED
    assert job_dir.warm_start_path.read_bytes() == written


def test_the_record_is_written_once_and_later_parent_trials_do_not_change_it(
    tmp_path: Path,
) -> None:
    parent = write_parent(tmp_path)
    spec = child_spec(tmp_path, ["runs/parent"])
    job_dir = JobDir(path=spec.job_dir)
    job_dir.create()
    parent_observations(spec, job_dir)

    ledger = Ledger(job_dir=parent.path)  # the parent is resumed and finishes one more trial
    ledger.append(Event.TRIAL_STARTED, trial_id="trial-0005", attempt=1, config={"layers": 3})
    ledger.append(
        Event.TRIAL_COMPLETED, trial_id="trial-0005", attempt=1, status="Completed", objective=0.9
    )

    assert parent_observations(spec, job_dir) == EXPECTED


def test_a_new_child_without_its_parent_is_refused_when_loaded(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        child_spec(tmp_path, ["runs/parent"])

    assert_names_field_value_and_rule(
        caught.value, f"{PARENTS}[0]", "runs/parent", "parent job directory not found"
    )


@pytest.mark.parametrize(
    ("record", "rule"),
    [
        ("{not json", "cannot be read"),
        (json.dumps({"observations": []}), "cannot be read ('parent_hyperparameter_tuning_jobs')"),
        (
            json.dumps(
                {
                    "warm_start_type": "TransferLearning",
                    "parent_hyperparameter_tuning_jobs": ["runs/other"],
                    "observations": [],
                }
            ),
            "records a TransferLearning warm start from ['runs/other'], but the spec asks",
        ),
    ],
    ids=["not-json", "a-key-missing", "other-parents"],
)
def test_a_damaged_or_foreign_record_is_refused_naming_the_file(
    record: str, rule: str, tmp_path: Path
) -> None:
    write_parent(tmp_path)
    spec = child_spec(tmp_path, ["runs/parent"])
    job_dir = JobDir(path=spec.job_dir)
    job_dir.create()
    job_dir.warm_start_path.write_text(record)

    with pytest.raises(ResumeError) as caught:
        parent_observations(spec, job_dir)

    assert str(job_dir.warm_start_path) in str(caught.value) and rule in str(caught.value)


def running(parent: JobDir) -> AbstractContextManager[None]:
    """The parent's driver is this test process: it holds the lock, its run has no end."""
    Ledger(job_dir=parent.path).append(Event.JOB_STARTED, run=2)
    return parent.lock()


BAD_PARENTS = [
    # (id, parent spec changes, parent state, warm start type, rule)
    (
        "parent-still-running",
        {},
        running,
        "TransferLearning",
        "parent job 'parent' is still running",
    ),
    (
        "objective-metric-differs",
        {
            "metric_definitions": [{"Name": "acc", "Regex": "acc=([0-9.]+)"}],
            "objective_metric_name": "acc",
        },
        None,
        "TransferLearning",
        "parent's objective_metric_name 'acc' differs from this job's 'accuracy'",
    ),
    (
        "objective-direction-differs",
        {"objective_type": "Minimize"},
        None,
        "TransferLearning",
        "parent's objective_type 'Minimize' differs from this job's 'Maximize'",
    ),
    (
        "identical-but-static-values-differ",
        {"hyperparameters": {"seed": 8}},
        None,
        "IdenticalDataAndAlgorithm",
        "these differ: hyperparameters (use TransferLearning to allow it)",
    ),
    ("not-a-job-directory", None, None, "TransferLearning", "is not an openamt job directory"),
]


@bad_input("warm-start parents")
@pytest.mark.parametrize(
    ("changes", "state", "kind", "rule"),
    [case[1:] for case in BAD_PARENTS],
    ids=[case[0] for case in BAD_PARENTS],
)
def test_a_bad_parent_is_refused_naming_the_field_and_the_parent(
    changes: dict[str, Any] | None, state: Any, kind: str, rule: str, tmp_path: Path
) -> None:
    if changes is None:
        (tmp_path / "runs" / "parent").mkdir(parents=True)
        parent = None
    else:
        parent = write_parent(tmp_path, changes={"hyperparameters": {"seed": 7}, **changes})
    spec = child_spec(tmp_path, ["runs/parent"], kind)
    job_dir = JobDir(path=spec.job_dir)
    job_dir.create()

    parent_state = state(parent) if state else nullcontext()
    with parent_state, pytest.raises(SpecError) as caught:
        parent_observations(spec, job_dir)

    assert_names_field_value_and_rule(caught.value, f"{PARENTS}[0]", "runs/parent", rule)
    assert not job_dir.warm_start_path.exists()  # nothing recorded: the next run reads again


@bad_input("warm-start parents")
def test_every_bad_parent_is_reported_at_once(tmp_path: Path) -> None:
    write_parent(tmp_path, name="good", changes={"hyperparameters": {"seed": 7}})
    write_parent(tmp_path, name="min", changes={"objective_type": "Minimize"})
    (tmp_path / "runs" / "empty").mkdir()
    spec = child_spec(tmp_path, ["runs/good", "runs/min", "runs/empty"])

    with pytest.raises(SpecError) as caught:
        parent_observations(spec, JobDir(path=spec.job_dir))

    assert [p.field for p in caught.value.problems] == [f"{PARENTS}[1]", f"{PARENTS}[2]"]


@bad_input("warm-start parents")
def test_a_job_cannot_warm_start_from_itself(tmp_path: Path) -> None:
    (tmp_path / "runs" / "child").mkdir(parents=True)

    with pytest.raises(SpecError) as caught:
        child_spec(tmp_path, ["runs/child"])

    assert_names_field_value_and_rule(
        caught.value, f"{PARENTS}[0]", "runs/child", "a job cannot warm-start from itself"
    )
