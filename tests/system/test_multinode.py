"""A two-node Ray cluster runs one job: trials land on both nodes, and losing a node mid-trial
costs an attempt, not the job.

The head and a worker, one CPU each, are two `ray start` processes with token authentication;
`openamt tune` of the shipped smoke job (deploy/jobs/standin-cluster.yaml: 1 CPU per trial, 2 in
parallel, retries on) connects to the head, so the two running trials must sit on different
nodes. After both nodes have finished a
trial, the worker is killed (SIGKILL to every process it started, trainer included) while it runs
the next one; Ray reports the trial's worker lost, openamt records that attempt as failed and
retried, and the trial reruns on the head.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from orchestrator.store.ledger import Event, read_events
from orchestrator.store.records import summarize_trials
from orchestrator.trial.outcome import TrialState
from tests.system.cluster_fixtures import (  # noqa: F401 - cluster_tmp_fixture is a fixture
    FAST_NODE_DEATH_ENV,
    REPO,
    VENV_BIN,
    RayNode,
    cluster_tmp_fixture,
    ray_env,
    write_token,
)

pytestmark = [pytest.mark.system, pytest.mark.slow]

SMOKE_JOB = REPO / "deploy" / "jobs" / "standin-cluster.yaml"
TRAINER_DIR = REPO / "tests" / "fixtures"
STEP_TIMEOUT_S = 120
LOST_NODE_REASON = "was lost"


def smoke_job_copy(directory: Path) -> Path:
    """The shipped smoke job with this machine's paths: trainer in the repository, job
    directory in the test's temp dir instead of the cluster's shared storage."""
    job = yaml.safe_load(SMOKE_JOB.read_text())
    job["trainer"]["working_dir"] = str(TRAINER_DIR)
    job["output_path"] = str(directory / "runs")
    # 10 s trials: a trial's actor on the worker takes up to ~10 s to start on a busy 2-core
    # machine, and Ray Tune hands a waiting trial to the first actor that is free.
    job["hyperparameters"]["sleep"] = 2.0
    path = directory / "standin-cluster.yaml"
    path.write_text(yaml.safe_dump(job, sort_keys=False))
    return path


def wait_for(
    condition: Callable[[], Any], *, what: str, driver: subprocess.Popen[bytes], log: Path
) -> Any:
    """Poll until `condition()` is truthy; fail if the driver exits first or time runs out."""
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if driver.poll() is not None:
            tail = log.read_text(errors="replace")[-4000:]
            raise AssertionError(f"the driver exited ({driver.returncode}) before {what}:\n{tail}")
        time.sleep(0.2)
    raise AssertionError(f"timed out after {STEP_TIMEOUT_S}s waiting for {what}")


def completed_node_ids(ledger: Path) -> set[str]:
    return {
        event["node_id"]
        for event in read_events(ledger)
        if event["event"] == Event.TRIAL_COMPLETED.value
        and event["status"] == TrialState.COMPLETED.value
        and event.get("node_id")
    }


def running_trial_on(node: RayNode) -> str | None:
    """The trial id of a trainer process running on `node`, if one runs there now."""
    for process in node.descendants():
        try:
            if "standin_trainer.py" in " ".join(process.cmdline()):
                return process.environ().get("OPENAMT_TRIAL_ID")
        except psutil.NoSuchProcess:
            continue
    return None


def test_trials_use_both_nodes_and_a_lost_node_costs_one_attempt(cluster_tmp: Path) -> None:
    token_path = cluster_tmp / "auth_token"
    token = write_token(token_path)
    env = ray_env(token_path=token_path)
    head = RayNode.start_head(
        temp_dir=cluster_tmp / "head",
        env={**env, **FAST_NODE_DEATH_ENV},
        num_cpus=1,
    )
    worker = RayNode.start_worker(
        temp_dir=cluster_tmp / "worker", env=env, head_address=head.gcs_address, num_cpus=1
    )
    node_ids = {head.node_id, worker.node_id}
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while head.alive_node_ids(token=token) != node_ids:
        assert time.monotonic() < deadline, "the worker never joined the head"
        time.sleep(0.5)

    job_file = smoke_job_copy(cluster_tmp)
    ledger = cluster_tmp / "runs" / "standin-cluster" / "ledger.jsonl"
    driver_log = cluster_tmp / "driver.log"
    with open(driver_log, "wb") as log:
        driver = subprocess.Popen(
            [
                str(VENV_BIN / "openamt"),
                "tune",
                str(job_file),
                f"--address={head.gcs_address}",
                "--no-progress",
                "--no-metrics",
            ],
            env=env,
            cwd=cluster_tmp,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        # Two trials at a time, one CPU each, one CPU per node: they run on both nodes.
        wait_for(
            lambda: completed_node_ids(ledger) == node_ids,
            what="a completed trial on each node",
            driver=driver,
            log=driver_log,
        )
        lost_trial = wait_for(
            lambda: running_trial_on(worker),
            what="a trial running on the worker",
            driver=driver,
            log=driver_log,
        )
        assert worker.kill() > 0
        driver.wait(timeout=STEP_TIMEOUT_S)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    output = driver_log.read_text(errors="replace")
    assert driver.returncode == 0, output[-6000:]
    assert "job finished: MaxNumberOfTrainingJobsReached" in output, output[-6000:]

    events = read_events(ledger)
    assert events[-1]["event"] == Event.JOB_COMPLETED.value
    ends = [
        e
        for e in events
        if e["event"] == Event.TRIAL_COMPLETED.value and e["trial_id"] == lost_trial
    ]
    lost_attempt, *later_attempts = ends
    assert lost_attempt["status"] == TrialState.FAILED.value, ends
    assert lost_attempt["will_retry"] is True, ends
    assert LOST_NODE_REASON in lost_attempt["reason"], ends
    assert [a["status"] for a in later_attempts] == [TrialState.COMPLETED.value], ends
    assert later_attempts[0]["node_id"] == head.node_id, "the retry ran where a node was left"

    trials = summarize_trials(events, objective_metric_name="validation:accuracy")
    assert len(trials) == 4
    assert {t.state for t in trials.values()} == {TrialState.COMPLETED}
    assert trials[lost_trial].attempts == 2
    assert all(t.objective is not None and 0 < t.objective <= 0.95 for t in trials.values())
    head.stop()
    assert not head.descendants(), "the head's processes outlived `ray start --block`"
