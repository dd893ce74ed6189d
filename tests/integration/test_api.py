"""The SageMaker-style Python API end to end: real jobs of the stand-in trainer on a local Ray,
in this process (`wait=True`) and in a detached driver (`wait=False`, `attach`, `stop`)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from orchestrator.api import FunctionTrainer, HyperparameterTuner, ScriptTrainer
from orchestrator.store.ledger import Event, read_events
from orchestrator.store.view import load_job_view
from orchestrator.trial.function import FunctionLaunch
from orchestrator.trial.outcome import EPOCH_KEY, EndCause, TrialEnd, TrialState
from orchestrator.tune.runner import RunOptions
from orchestrator.tune.trainables import make_function_trainable
from search import ContinuousParameter
from tests.fixtures.standin_trainer import final_accuracy
from tests.helpers import REPO, STANDIN, attempt_files

pytestmark = pytest.mark.usefixtures("local_ray")
OBJECTIVE = "Validation-accuracy"
METRICS = [{"Name": OBJECTIVE, "Regex": "validation: accuracy=([0-9\\.]+)"}]
RANGES = {"x": ContinuousParameter(0.0, 1.0), "y": ContinuousParameter(0.0, 1.0)}
QUIET = RunOptions(show_progress=False, metrics_port=None)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A notebook's working directory holding a training script (the stand-in trainer)."""
    shutil.copy(STANDIN, tmp_path / "standin.py")
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _tuner(**overrides) -> HyperparameterTuner:
    trainer = ScriptTrainer(
        "standin.py",
        source_dir=".",
        python=sys.executable,
        hyperparameters=overrides.pop("hyperparameters", {"epochs": 2}),
        resources_per_trial={"cpu": 1},
    )
    settings = {
        "objective_metric_name": OBJECTIVE,
        "hyperparameter_ranges": RANGES,
        "metric_definitions": METRICS,
        "max_jobs": 4,
        "max_parallel_jobs": 2,
        **overrides,
    }
    return HyperparameterTuner(trainer, **settings)


def test_the_sagemaker_example_runs_as_written(project):
    tuner = _tuner()  # the default strategy, Bayesian
    tuner.fit(inputs={"training": "data"}, wait=True, run_options=QUIET)

    job_dir = tuner.latest_tuning_job.job_dir
    assert job_dir.parent == project / "runs"
    assert job_dir.name.startswith("standin-") and len(job_dir.name) <= 32
    view = load_job_view(job_dir)
    assert len(view.trials) == 4
    assert all(t.state is TrialState.COMPLETED for t in view.trials.values())
    for trial in view.trials.values():
        expected = final_accuracy(x=trial.config["x"], y=trial.config["y"])
        assert trial.objective == pytest.approx(expected, abs=1e-6)
    assert tuner.best_training_job() == view.best.trial_id

    job_file = yaml.safe_load((job_dir / "job.yaml").read_text())
    assert job_file["inputs"] == {"training": str(project / "data")}
    assert job_file["trainer"]["working_dir"] == str(project)
    model = json.loads((attempt_files(job_dir, "trial-0001").model_dir / "model.txt").read_text())
    assert model["env"]["SM_CHANNEL_TRAINING"] == str(project / "data")

    description = tuner.describe()
    assert description["HyperParameterTuningJobStatus"] == "Completed"
    assert description["CompletionReason"] == "MaxNumberOfTrainingJobsReached"
    assert description["TrainingJobStatusCounters"]["Completed"] == 4
    best = description["BestTrainingJob"]
    assert best["TrainingJobName"] == view.best.trial_id
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == view.best.objective
    assert set(best["TunedHyperParameters"]) == {"x", "y"}


def test_analytics_dataframe_matches_the_ledger(project):
    tuner = _tuner(strategy="Random", max_jobs=3)
    tuner.fit(wait=True, run_options=QUIET)

    frame = tuner.analytics().dataframe()
    view = load_job_view(tuner.latest_tuning_job.job_dir)
    assert list(frame.columns) == [
        "x",
        "y",
        "TrainingJobName",
        "TrainingJobStatus",
        "FinalObjectiveValue",
        "TrainingStartTime",
        "TrainingEndTime",
        "TrainingElapsedTimeSeconds",
    ]
    assert list(frame["TrainingJobName"]) == list(view.trials)
    for row in frame.itertuples(index=False):
        trial = view.trials[row.TrainingJobName]
        assert row.TrainingJobStatus == "Completed"
        assert (row.x, row.y) == (trial.config["x"], trial.config["y"])
        assert row.FinalObjectiveValue == trial.objective
        assert row.TrainingStartTime.timestamp() == pytest.approx(trial.start_time)
        assert row.TrainingElapsedTimeSeconds == pytest.approx(trial.duration_s)


ATTACH_AND_WAIT = """
import sys
from orchestrator.api import HyperparameterTuner
tuner = HyperparameterTuner.attach(sys.argv[1])
description = tuner.wait(timeout=240)
print(description["HyperParameterTuningJobStatus"], tuner.best_training_job())
"""


@pytest.mark.slow
def test_a_detached_job_is_followed_from_a_second_process(project):
    tuner = _tuner(strategy="Random", max_jobs=3)
    started = time.monotonic()
    tuner.fit(inputs="data", wait=False)
    assert time.monotonic() - started < 15  # returns at once; the driver does the work
    job_dir = tuner.latest_tuning_job.job_dir
    assert tuner.describe()["HyperParameterTuningJobStatus"] == "InProgress"

    follower = subprocess.run(
        [sys.executable, "-c", ATTACH_AND_WAIT, str(job_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert follower.returncode == 0, follower.stderr
    status, best = follower.stdout.split()
    assert status == "Completed"
    assert best == load_job_view(job_dir).best.trial_id

    description = tuner.wait(timeout=60)
    assert description["HyperParameterTuningJobStatus"] == "Completed"
    assert description["TrainingJobStatusCounters"]["Completed"] == 3
    assert "job finished" in (job_dir / "driver.log").read_text()


@pytest.mark.slow
def test_stop_interrupts_a_detached_job_cleanly(project):
    tuner = _tuner(strategy="Random", max_jobs=6, hyperparameters={"epochs": 20, "sleep": 0.5})
    tuner.fit(wait=False)
    job_dir = tuner.latest_tuning_job.job_dir
    _wait_for(lambda: _started_trials(job_dir) >= 1, timeout=120)

    description = tuner.stop(timeout=120)
    assert description["HyperParameterTuningJobStatus"] == "Stopped"
    events = read_events(job_dir / "ledger.jsonl")
    assert events[-1]["event"] == Event.JOB_INTERRUPTED.value
    assert not _trainers_running(project)

    attached = HyperparameterTuner.attach(job_dir.name, output_path="runs")
    assert attached.describe()["HyperParameterTuningJobStatus"] == "Stopped"


def test_function_trainer_runs_in_ray_trials_with_the_script_contract(tmp_path):
    """The function trainable alone, on Tune: per-epoch reports, then the final outcome."""
    from ray import tune

    def train(hyperparameters, report):
        for epoch in range(1, hyperparameters["epochs"] + 1):
            report(**{OBJECTIVE: hyperparameters["x"] * epoch, "loss": 1.0 / epoch})

    def broken(hyperparameters, report):
        report(**{OBJECTIVE: 0.5})
        raise ValueError("diverged")

    launch = FunctionLaunch(objective_metric_name=OBJECTIVE, job_dir=str(tmp_path))
    results = {}
    for name, fn in (("good", train), ("bad", broken)):
        tuner = tune.Tuner(
            make_function_trainable(fn, launch=launch),
            param_space={
                "trial_id": f"trial-{name}",
                "attempt": 1,
                "hyperparameters": {"epochs": 3, "x": 0.25},
            },
            run_config=tune.RunConfig(storage_path=str(tmp_path / "ray"), verbose=0),
        )
        (result,) = tuner.fit()
        results[name] = result.metrics
    good, bad = (TrialEnd.from_result(results[name]) for name in ("good", "bad"))
    assert good.state is TrialState.COMPLETED and good.objective == pytest.approx(0.75)
    assert results["good"][EPOCH_KEY] == good.epochs == 3
    assert results["good"]["training_iteration"] == 4  # 3 epochs + final
    assert bad.state is TrialState.FAILED and "ValueError: diverged" in bad.reason
    assert bad.cause is EndCause.TRAINER and not bad.retryable
    log = attempt_files(tmp_path, "trial-good").log.read_text()
    assert f"[epoch 3] {OBJECTIVE}=0.75 loss=" in log
    assert "Traceback" in attempt_files(tmp_path, "trial-bad").log.read_text()


def test_function_trainer_through_the_tuner(project):
    def train(hyperparameters, report):
        final = final_accuracy(x=hyperparameters["x"], y=hyperparameters["y"])
        for epoch in range(1, 3):
            report(**{OBJECTIVE: final * epoch / 2})

    tuner = HyperparameterTuner(
        FunctionTrainer(train, resources_per_trial={"cpu": 1}),
        objective_metric_name=OBJECTIVE,
        hyperparameter_ranges=RANGES,
        strategy="Random",
        max_jobs=3,
        max_parallel_jobs=2,
    )
    tuner.fit(wait=True, run_options=QUIET)
    view = load_job_view(tuner.latest_tuning_job.job_dir)
    assert len(view.trials) == 3
    for trial in view.trials.values():
        assert trial.state is TrialState.COMPLETED
        expected = final_accuracy(x=trial.config["x"], y=trial.config["y"])
        assert trial.objective == pytest.approx(expected)
        assert [step for step, _ in trial.history] == [1, 2]
    assert tuner.describe()["HyperParameterTuningJobStatus"] == "Completed"


def _wait_for(condition, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _started_trials(job_dir: Path) -> int:
    events = read_events(job_dir / "ledger.jsonl")
    return sum(1 for e in events if e["event"] == Event.TRIAL_STARTED.value)


def _trainers_running(project: Path) -> list[int]:
    """Stand-in trainer processes still alive in `project` (trials run in the source dir)."""
    alive = []
    for process in psutil.process_iter(["pid", "cmdline", "status", "cwd"]):
        cmdline = process.info["cmdline"] or []
        running = process.info["status"] != psutil.STATUS_ZOMBIE
        if "standin.py" in cmdline and running and process.info["cwd"] == str(project):
            alive.append(process.info["pid"])
    return alive
