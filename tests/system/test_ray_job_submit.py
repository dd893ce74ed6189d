"""`ray job submit` of a YAML job to a head started with token authentication, and the same
submission without the token (or with a wrong one) refused before anything runs.

The head is a `ray start` node kept on 127.0.0.1; its job API is the dashboard's port. The
working directory uploaded with the job is small on purpose: the shipped smoke job
(deploy/jobs/standin-cluster.yaml, its trainer directory pointed at the upload) and the
stand-in trainer, instead of the whole repository.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from orchestrator.store.ledger import Event, read_events
from orchestrator.store.records import summarize_trials
from orchestrator.trial.outcome import TrialState
from tests.helpers import attempt_files
from tests.system.cluster_fixtures import (  # noqa: F401 - cluster_tmp_fixture is a fixture
    RAY_CLI,
    REPO,
    STANDIN_TRAINER,
    RayNode,
    cluster_tmp_fixture,
    ray_env,
    run_cli,
    write_token,
)

pytestmark = [pytest.mark.system, pytest.mark.slow]

SMOKE_JOB = REPO / "deploy" / "jobs" / "standin-cluster.yaml"
SUBMIT_TIMEOUT_S = 240


def small_working_dir(directory: Path, *, output_path: Path) -> Path:
    """The job file and the stand-in trainer, nothing else; trials write to `output_path`."""
    directory.mkdir()
    shutil.copy(STANDIN_TRAINER, directory / STANDIN_TRAINER.name)
    job = yaml.safe_load(SMOKE_JOB.read_text())
    job["trainer"]["working_dir"] = "."  # the trainer sits next to the job file in the upload
    job["hyperparameters"]["sleep"] = 0.0
    job["output_path"] = str(output_path)
    (directory / SMOKE_JOB.name).write_text(yaml.safe_dump(job, sort_keys=False))
    return directory


def submit(head: RayNode, working_dir: Path, env: dict[str, str], submission_id: str) -> str:
    """`ray job submit`, waiting for the job; returns its output, asserting nothing yet."""
    result = run_cli(
        [
            RAY_CLI,
            "job",
            "submit",
            f"--address={head.dashboard_url}",
            f"--working-dir={working_dir}",
            f"--submission-id={submission_id}",
            "--",
            "openamt",
            "tune",
            SMOKE_JOB.name,
            "--address=auto",
            "--no-progress",
            "--no-metrics",
        ],
        env=env,
        timeout=SUBMIT_TIMEOUT_S,
    )
    return f"exit code {result.returncode}\n{result.stdout}"


def test_job_submit_needs_the_token_and_runs_the_job_with_it(cluster_tmp: Path) -> None:
    token_path = cluster_tmp / "auth_token"
    write_token(token_path)
    head_env = ray_env(token_path=token_path)
    head = RayNode.start_head(
        temp_dir=cluster_tmp / "head", env=head_env, num_cpus=2, loopback_only=True
    )
    runs = cluster_tmp / "runs"
    working_dir = small_working_dir(cluster_tmp / "upload", output_path=runs)

    no_token = ray_env(token_path=None, extra={"HOME": str(cluster_tmp)})  # no ~/.ray either
    output = submit(head, working_dir, no_token, "no-token")
    assert "exit code 0" not in output, output
    assert "Unauthorized: Missing authentication token" in output, output

    wrong_token_path = cluster_tmp / "wrong_token"
    write_token(wrong_token_path)
    output = submit(head, working_dir, ray_env(token_path=wrong_token_path), "wrong-token")
    assert "exit code 0" not in output, output
    assert "Forbidden: Invalid authentication token" in output, output
    assert not runs.exists(), "a refused submission ran the job"

    output = submit(head, working_dir, head_env, "with-token")
    assert output.startswith("exit code 0"), output
    assert "job finished: MaxNumberOfTrainingJobsReached" in output, output
    assert "Job 'with-token' succeeded" in output, output

    events = read_events(runs / "standin-cluster" / "ledger.jsonl")
    assert events[-1]["event"] == Event.JOB_COMPLETED.value
    trials = summarize_trials(events, objective_metric_name="validation:accuracy")
    assert len(trials) == 4
    assert {t.state for t in trials.values()} == {TrialState.COMPLETED}
    assert {t.node_id for t in trials.values()} == {head.node_id}
    for trial_id in trials:
        assert (attempt_files(runs / "standin-cluster", trial_id).model_dir / "model.txt").is_file()
