"""The Python API without Ray: argument validation, names, trainers, and reading jobs back
(status, describe, best, analytics) from job directories written with the real ledger."""

from __future__ import annotations

import datetime as dt
import io
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from orchestrator.api import (
    FunctionTrainer,
    HyperparameterTuner,
    ScriptTrainer,
    TunerError,
    TuningJobFailedError,
    WaitTimeoutError,
)
from orchestrator.api.tuner import _timestamped
from orchestrator.errors import SpecError
from orchestrator.spec import EarlyStoppingType, ObjectiveType, Strategy
from orchestrator.store.analytics import DATAFRAME_COLUMNS, HyperparameterTuningJobAnalytics
from orchestrator.store.ledger import Event, Ledger, read_events
from orchestrator.trial import function as function_trial
from orchestrator.trial.outcome import TrialState
from search import ContinuousParameter, IntegerParameter
from search import ObjectiveType as SearchObjectiveType
from tests.helpers import REPO, STANDIN, standin_spec

OBJECTIVE = "validation:accuracy"
METRICS = [{"Name": OBJECTIVE, "Regex": r"validation: accuracy=([0-9.]+)"}]


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "standin.py").write_text(STANDIN.read_text())
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _trainer(**overrides) -> ScriptTrainer:
    settings = {"python": sys.executable, "hyperparameters": {"epochs": 2}, **overrides}
    return ScriptTrainer("standin.py", **settings)


def _tuner(trainer=None, **overrides) -> HyperparameterTuner:
    settings = {
        "objective_metric_name": OBJECTIVE,
        "hyperparameter_ranges": {"x": ContinuousParameter(0.0, 1.0)},
        "metric_definitions": METRICS,
        "max_jobs": 3,
        **overrides,
    }
    return HyperparameterTuner(trainer or _trainer(), **settings)


# -- trainers and names -------------------------------------------------------------------------
def test_script_trainer_records_absolute_paths(project):
    trainer = ScriptTrainer("train.py", source_dir="src", python=".venv-mxnet/bin/python")
    assert trainer.trainer_section() == {
        "command": ["python", "train.py"],
        "working_dir": str(project / "src"),
        "interpreter": str(project / ".venv-mxnet" / "bin" / "python"),
        "env": {},
    }
    assert ScriptTrainer("train.py", python="python3").python == "python3"  # left for PATH
    assert trainer.base_job_name == "train"


def test_module_trainer_runs_python_dash_m(project):
    trainer = ScriptTrainer("models.sklearn_digits", module=True, env={"OMP_NUM_THREADS": "1"})
    section = trainer.trainer_section()
    assert section["command"] == ["python", "-m", "models.sklearn_digits"]
    assert section["env"] == {"OMP_NUM_THREADS": "1"}
    assert trainer.base_job_name == "sklearn-digits"


def test_job_names_keep_sagemakers_32_characters():
    now = dt.datetime(2024, 1, 2, 3, 4, 5)
    assert _timestamped("cifar10-bayes", now) == "cifar10-bayes-240102-030405"
    long = _timestamped("a-very-long-base-name-for-a-tuning-job", now, 2)
    assert len(long) == 32 and long.endswith("-240102-030405-2")


def test_a_second_job_in_the_same_second_gets_its_own_name(project):
    tuner = _tuner(base_tuning_job_name="digits")
    first = tuner._unique_name()
    (project / "runs" / first).mkdir(parents=True)
    second = tuner._unique_name()
    assert second != first and second.startswith("digits-")


# -- validation ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"max_jobs": 0}, "max_jobs"),
        ({"max_parallel_jobs": 0}, "max_parallel_jobs"),
        ({"objective_metric_name": "accuracy"}, "objective_metric_name"),
        ({"strategy": "Annealing"}, "strategy"),
        ({"objective_type": "Bigger"}, "objective_type"),
        ({"base_tuning_job_name": "my_job"}, "base_tuning_job_name"),
        ({"metric_definitions": None}, "metric_definitions"),
        ({"metric_definitions": [{"Name": OBJECTIVE, "Regex": "no group"}]}, "Regex"),
        (
            {"hyperparameter_ranges": {"x": ContinuousParameter(0.0, 1.0), "y": 3}},
            "hyperparameter_ranges.y",
        ),
        (
            {
                "hyperparameter_ranges": {
                    "x": {"type": "Continuous", "min_value": 1, "max_value": 0}
                }
            },
            "hyperparameter_ranges.x.min_value",
        ),
        ({"strategy": "Hyperband", "early_stopping_type": "Auto"}, "early_stopping_type"),
        ({"hyperband_strategy_config": {"min_resource": 1, "max_resource": 9}}, "hyperband"),
        ({"retry_strategy": {"maximum_retry_attempts": 31}}, "retry_strategy.maximum_retry"),
        (
            {"completion_criteria": {"target_objective_metric_value": "high"}},
            "completion_criteria.target_objective_metric_value",
        ),
        ({"random_seed": -1}, "random_seed"),
    ],
)
def test_bad_tuner_arguments_raise_spec_errors_naming_the_argument(project, overrides, field):
    with pytest.raises(SpecError) as caught:
        _tuner(**overrides)
    fields = [problem.field for problem in caught.value.problems]
    assert any(field in f for f in fields), fields


@pytest.mark.parametrize(
    ("trainer_settings", "field", "value"),
    [
        ({"resources_per_trial": {"gpu": 1.5}}, "resources_per_trial.gpu", 1.5),
        ({"hyperparameters": {"batch": [1, 2]}}, "hyperparameters.batch", [1, 2]),
        ({"max_runtime_in_seconds": -5.0}, "max_runtime_in_seconds", -5.0),
        ({"env": {"1BAD": "x"}}, "env", "1BAD"),
    ],
)
def test_bad_trainer_arguments_raise_spec_errors_naming_the_argument(
    project, trainer_settings, field, value
):
    with pytest.raises(SpecError) as caught:
        _tuner(_trainer(**trainer_settings))
    (problem,) = caught.value.problems
    assert problem.field.startswith(field)
    assert problem.value == value


def test_files_are_checked_by_fit_under_the_arguments_names(project):
    tuner = _tuner(ScriptTrainer("missing.py", python="no-such-dir/python"))
    with pytest.raises(SpecError) as caught:
        tuner.fit(wait=True)
    fields = {problem.field for problem in caught.value.problems}
    assert fields == {"python", "entry_point"}
    assert "missing.py" in str(caught.value)
    assert not (project / "runs").exists()  # nothing started


@pytest.mark.parametrize(
    ("fit_arguments", "field"),
    [({"job_name": "no spaces allowed"}, "job_name"), ({"inputs": 42}, "inputs")],
)
def test_bad_fit_arguments_are_refused_before_anything_starts(project, fit_arguments, field):
    with pytest.raises(SpecError) as caught:
        _tuner().fit(wait=True, **fit_arguments)
    assert caught.value.problems[0].field == field
    assert not (project / "runs").exists()


def test_strings_are_case_insensitive_and_enums_are_accepted(project):
    tuner = _tuner(
        strategy="random",
        objective_type=SearchObjectiveType.MINIMIZE,
        early_stopping_type="auto",
        hyperparameter_ranges={
            "layers": IntegerParameter(1, 4),
            "x": {"type": "continuous", "min_value": 0.0, "max_value": 1.0},
        },
    )
    spec = tuner._spec(name="case-test", inputs={}, check_paths=True)
    assert spec.strategy is Strategy.RANDOM
    assert spec.objective_type is ObjectiveType.MINIMIZE
    assert spec.early_stopping_type is EarlyStoppingType.AUTO
    assert spec.search_space().tunable_names == ("layers", "x")


def test_relative_inputs_and_parents_become_absolute(project):
    (project / "runs" / "parent").mkdir(parents=True)
    tuner = _tuner(
        warm_start_config={
            "parent_hyperparameter_tuning_jobs": ["runs/parent"],
            "warm_start_type": "TransferLearning",
        }
    )
    spec = tuner._spec(name="child", inputs={"train": "data/train"}, check_paths=True)
    mapping = spec.to_mapping()
    assert mapping["warm_start_config"]["parent_hyperparameter_tuning_jobs"] == [
        str(project / "runs" / "parent")
    ]
    assert mapping["output_path"] == str(project / "runs")


# -- function trainers ------------------------------------------------------------------------
def train_function(hyperparameters, report):
    report(**{OBJECTIVE: hyperparameters["x"]})


def test_a_function_trainer_cannot_run_detached(project):
    tuner = _tuner(FunctionTrainer(train_function), metric_definitions=None)
    with pytest.raises(TunerError, match="wait=False"):
        tuner.fit(wait=False)
    assert not (project / "runs").exists()


def test_a_function_trainer_is_recorded_by_name_in_the_spec(project):
    tuner = _tuner(
        FunctionTrainer(train_function, hyperparameters={"epochs": 3}), metric_definitions=None
    )
    spec = tuner._spec(name="fn", inputs={}, check_paths=True)
    section = spec.to_mapping()["trainer"]
    assert section["command"][-1].endswith(":train_function")
    assert function_trial.is_function_trainer(section)
    assert not function_trial.is_function_trainer(_trainer().trainer_section())
    (definition,) = spec.metric_definitions
    assert definition.name == OBJECTIVE
    assert definition.pattern.search(f"[epoch 1] {OBJECTIVE}=0.5").group(1) == "0.5"


def test_running_a_function_trainers_command_explains_instead(project):
    command = function_trial.trainer_section(train_function, working_dir=str(project))["command"]
    result = subprocess.run(
        [sys.executable, *command[1:]], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert result.returncode == function_trial.EXIT_NOT_RUNNABLE
    assert "fit(wait=True)" in result.stderr


def _recorder():
    reports: list[tuple[dict[str, float], int]] = []
    recorder = function_trial.Recorder(
        log=io.StringIO(),
        objective_metric_name=OBJECTIVE,
        on_objective=lambda latest, epoch: reports.append((latest, epoch)),
    )
    return recorder, reports


def test_each_objective_report_is_one_epoch():
    recorder, reports = _recorder()
    recorder.report(loss=0.9)
    recorder.report(**{OBJECTIVE: 0.5, "loss": 0.5})
    recorder.report(**{OBJECTIVE: 0.7})
    assert reports == [({"loss": 0.5, OBJECTIVE: 0.5}, 1), ({"loss": 0.5, OBJECTIVE: 0.7}, 2)]
    end = recorder.end(None, duration_s=1.0)
    assert (end.state, end.objective, end.reason) == (TrialState.COMPLETED, 0.7, None)
    assert end.epochs == 2
    assert recorder.log.getvalue().splitlines()[-1] == f"[epoch 2] {OBJECTIVE}=0.7"


@pytest.mark.parametrize("value", ["0.5", True, None, [0.5]])
def test_report_refuses_values_that_are_not_numbers(value):
    recorder, reports = _recorder()
    with pytest.raises(TypeError, match=OBJECTIVE):
        recorder.report(**{OBJECTIVE: value})
    assert reports == []


def test_function_outcomes_follow_the_script_rules():
    recorder, _ = _recorder()

    def state_and_objective(error=None):
        end = recorder.end(error, duration_s=0.0)
        return end.state, end.objective

    assert state_and_objective() == (TrialState.FAILED, None)  # never reported the objective
    recorder.report(**{OBJECTIVE: math.nan})
    assert state_and_objective() == (TrialState.FAILED, None)
    end = recorder.end(RuntimeError("boom"), duration_s=0.0)
    assert (end.state, end.objective) == (TrialState.FAILED, None)
    assert "RuntimeError: boom" in end.reason


# -- reading jobs back --------------------------------------------------------------------------
def _job(tmp_path: Path, events: list[tuple[Event, dict]]) -> Path:
    """A job directory as a driver leaves it: spec.yaml and a ledger of `events`."""
    spec = standin_spec(tmp_path, name="readback", output_path=str(tmp_path / "runs"))
    spec.job_dir.mkdir(parents=True)
    (spec.job_dir / "spec.yaml").write_text(spec.to_yaml())
    ledger = Ledger(job_dir=spec.job_dir)
    for event, fields in events:
        ledger.append(event, **fields)
    return spec.job_dir


def _trial(trial_id, x, objective, status="Completed", **end):
    return [
        (Event.TRIAL_STARTED, {"trial_id": trial_id, "attempt": 1, "config": {"x": x, "y": 0.5}}),
        (Event.TRIAL_RESULT, {"trial_id": trial_id, "metric": OBJECTIVE, "value": 0.1, "step": 1}),
        (
            Event.TRIAL_COMPLETED,
            {"trial_id": trial_id, "status": status, "objective": objective, **end},
        ),
    ]


FINISHED = [
    (Event.JOB_STARTED, {"run": 1, "pid": 1}),
    *_trial("trial-0001", 0.1, 0.70),
    *_trial("trial-0002", 0.3, 0.90),
    *_trial("trial-0003", 0.9, None, status="Failed", reason="trainer exited with code 3"),
    (Event.JOB_COMPLETED, {"reason": "MaxNumberOfTrainingJobsReached"}),
]


def test_describe_reports_a_finished_job_like_sagemaker(tmp_path):
    tuner = HyperparameterTuner.attach(_job(tmp_path, FINISHED))
    description = tuner.describe()
    assert description["HyperParameterTuningJobName"] == "readback"
    assert description["HyperParameterTuningJobStatus"] == "Completed"
    assert description["CompletionReason"] == "MaxNumberOfTrainingJobsReached"
    assert description["TrainingJobStatusCounters"] == {
        "Completed": 2,
        "InProgress": 0,
        "RetryableError": 0,
        "NonRetryableError": 1,
        "Stopped": 0,
    }
    assert description["ObjectiveStatusCounters"] == {"Succeeded": 2, "Pending": 0, "Failed": 1}
    best = description["BestTrainingJob"]
    assert best["TrainingJobName"] == "trial-0002"
    assert best["TunedHyperParameters"] == {"x": 0.3, "y": 0.5}
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == 0.90
    assert description["HyperParameterTuningEndTime"].tzinfo is dt.timezone.utc
    assert tuner.best_training_job() == "trial-0002"
    assert tuner.wait(timeout=1)["HyperParameterTuningJobStatus"] == "Completed"


def test_attach_rebuilds_the_tuner_from_the_spec(tmp_path, monkeypatch):
    job_dir = _job(tmp_path, FINISHED)
    monkeypatch.chdir(tmp_path)
    tuner = HyperparameterTuner.attach("readback", output_path="runs")
    assert tuner.latest_tuning_job.job_dir == job_dir
    assert tuner.objective_metric_name == OBJECTIVE
    assert tuner.strategy == "Random" and tuner.max_jobs == 4
    assert tuner.trainer.hyperparameters == {"epochs": 2}
    with pytest.raises(TunerError, match="no tuning job at"):
        HyperparameterTuner.attach("no-such-job")


def test_dataframe_has_sagemakers_columns_and_the_ledgers_values(tmp_path):
    analytics = HyperparameterTuningJobAnalytics(_job(tmp_path, FINISHED))
    frame = analytics.dataframe()
    assert list(frame.columns) == ["x", "y", *DATAFRAME_COLUMNS]
    assert list(frame["TrainingJobName"]) == ["trial-0001", "trial-0002", "trial-0003"]
    assert list(frame["TrainingJobStatus"]) == ["Completed", "Completed", "Failed"]
    assert list(frame["x"]) == [0.1, 0.3, 0.9]
    assert frame["FinalObjectiveValue"].iloc[1] == 0.90
    assert math.isnan(frame["FinalObjectiveValue"].iloc[2])
    assert (frame["TrainingElapsedTimeSeconds"] >= 0).all()
    assert str(frame["TrainingStartTime"].dt.tz) == "UTC"
    assert analytics.tuning_ranges["x"]["type"] == "Continuous"


def test_dataframe_is_cached_until_refreshed(tmp_path):
    job_dir = _job(tmp_path, FINISHED[:4])
    analytics = HyperparameterTuningJobAnalytics(job_dir)
    assert len(analytics.dataframe()) == 1
    Ledger(job_dir=job_dir).append(
        Event.TRIAL_STARTED, trial_id="trial-0002", attempt=1, config={"x": 0.2, "y": 0.5}
    )
    assert len(analytics.dataframe()) == 1
    refreshed = analytics.dataframe(force_refresh=True)
    # No driver runs the job: a trial the ledger has running was cut off, not in progress.
    assert list(refreshed["TrainingJobStatus"]) == ["Completed", "Stopped"]
    (job_dir / ".lock").write_text(f"{os.getpid()}\n")  # this process as the live driver
    refreshed = analytics.dataframe(force_refresh=True)
    assert list(refreshed["TrainingJobStatus"]) == ["Completed", "InProgress"]


def test_an_interrupted_job_is_stopped(tmp_path):
    events = [
        (Event.JOB_STARTED, {"run": 1, "pid": 1}),
        *_trial("trial-0001", 0.1, 0.7),
        (Event.JOB_INTERRUPTED, {"finished": 1}),
    ]
    tuner = HyperparameterTuner.attach(_job(tmp_path, events))
    description = tuner.describe()
    assert description["HyperParameterTuningJobStatus"] == "Stopped"
    assert description["CompletionReason"] is None


def test_a_job_whose_driver_died_has_failed(tmp_path):
    job_dir = _job(tmp_path, [(Event.JOB_STARTED, {"run": 1, "pid": 1}), *_trial("t-1", 0.1, 0.7)])
    (job_dir / ".lock").write_text(f"{_dead_pid()}\n")
    (job_dir / "driver.log").write_text("Traceback ...\nMemoryError\n")
    tuner = HyperparameterTuner.attach(job_dir)
    assert tuner.describe()["HyperParameterTuningJobStatus"] == "Failed"
    with pytest.raises(TuningJobFailedError, match="MemoryError"):
        tuner.wait()


def test_a_live_driver_means_in_progress_and_wait_times_out(tmp_path):
    job_dir = _job(tmp_path, [(Event.JOB_STARTED, {"run": 1, "pid": 1})])
    with _sleeper() as driver:
        (job_dir / ".lock").write_text(f"{driver.pid}\n")
        tuner = HyperparameterTuner.attach(job_dir)
        assert tuner.describe()["HyperParameterTuningJobStatus"] == "InProgress"
        with pytest.raises(WaitTimeoutError):
            tuner.wait(timeout=0.5)
        with pytest.raises(TunerError, match="no trial has finished"):
            tuner.best_training_job()
        old = time.time() - 3600  # a pid file older than the process: the pid was reused
        os.utime(job_dir / ".lock", (old, old))
        assert tuner.describe()["HyperParameterTuningJobStatus"] == "Failed"


STANDIN_DRIVER = """
import os, signal, sys, time
from pathlib import Path
from orchestrator.store.ledger import Event, Ledger
job_dir = Path(sys.argv[1])
time.sleep(1.0)  # importing, starting Ray: a SIGTERM now would not stop the job cleanly
(job_dir / ".lock").write_text(f"{os.getpid()}\\n")
ledger = Ledger(job_dir=job_dir)
received = []
signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
ledger.append(Event.JOB_STARTED, run=1, pid=os.getpid())
deadline = time.monotonic() + 60
while not received and time.monotonic() < deadline:
    time.sleep(0.05)
ledger.append(Event.JOB_INTERRUPTED, finished=0, reason=signal.Signals(received[0]).name)
sys.exit(130)
"""


def test_stop_waits_for_the_driver_to_start_then_sends_it_sigterm(tmp_path):
    job_dir = _job(tmp_path, [])
    driver = subprocess.Popen(
        [sys.executable, "-c", STANDIN_DRIVER, str(job_dir)], cwd=REPO, start_new_session=True
    )
    try:
        (job_dir / "driver.pid").write_text(f"{driver.pid}\n")
        tuner = HyperparameterTuner.attach(job_dir)
        assert tuner.describe()["HyperParameterTuningJobStatus"] == "InProgress"
        description = tuner.stop(timeout=30)
        assert driver.wait(timeout=10) == 130  # stopped after recording its start
        assert description["HyperParameterTuningJobStatus"] == "Stopped"
        assert read_events(job_dir / "ledger.jsonl")[-1]["reason"] == "SIGTERM"
    finally:
        driver.kill()
        driver.wait()


def test_a_job_being_run_is_not_started_twice(project):
    tuner = _tuner(base_tuning_job_name="busy")
    job_dir = project / "runs" / "busy-job"
    job_dir.mkdir(parents=True)
    with _sleeper() as driver:
        (job_dir / ".lock").write_text(f"{driver.pid}\n")
        with pytest.raises(TunerError, match=f"driver pid {driver.pid}"):
            tuner.fit(job_name="busy-job", wait=False)


@contextmanager
def _sleeper() -> Iterator[subprocess.Popen]:
    """A live process standing in for a driver."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield process
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_the_tuners_max_runtime_limits_the_whole_job_not_a_trial(project):
    """SageMaker's meaning: the tuner's max_runtime_in_seconds is the job's; a trial's limit is
    the trainer's (the estimator's max_run)."""
    tuner = _tuner(
        _trainer(max_runtime_in_seconds=300),
        max_runtime_in_seconds=600,
        completion_criteria={"target_objective_metric_value": 0.9},
        recorded_settings={"role": "arn:aws:iam::1:role/x"},
    )
    spec = tuner._spec(name="runtime", inputs={}, check_paths=False)
    assert spec.completion_criteria.max_runtime_in_seconds == 600
    assert spec.completion_criteria.target_objective_metric_value == 0.9
    assert spec.max_runtime_in_seconds == 300
    assert spec.recorded_settings == {"role": "arn:aws:iam::1:role/x"}
    assert (
        "recorded_settings"
        not in _tuner()._spec(name="plain", inputs={}, check_paths=False).to_mapping()
    )
