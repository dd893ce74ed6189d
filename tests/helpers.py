"""Shared test helpers: job specs around the deterministic stand-in trainer."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from orchestrator.spec import JobSpec
from orchestrator.store.job_dir import AttemptFiles, JobDir

REPO = Path(__file__).resolve().parents[1]
STANDIN = REPO / "tests" / "fixtures" / "standin_trainer.py"
OBJECTIVE = "validation:accuracy"


def standin_job(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    """A small valid job mapping running the stand-in trainer; override any field."""
    job: dict[str, Any] = {
        "name": "standin",
        "trainer": {
            "command": ["python", str(STANDIN)],
            "interpreter": sys.executable,
            "working_dir": str(tmp_path),
        },
        "hyperparameters": {"epochs": 2},
        "hyperparameter_ranges": {
            "x": {"type": "Continuous", "min_value": 0.0, "max_value": 1.0},
            "y": {"type": "Continuous", "min_value": 0.0, "max_value": 1.0},
        },
        "objective_metric_name": OBJECTIVE,
        "objective_type": "Maximize",
        "metric_definitions": [
            {"Name": OBJECTIVE, "Regex": r"validation: accuracy=([-+0-9.eEnaif]+)"},
            {"Name": "train:loss", "Regex": r"train: loss=([0-9.]+)"},
        ],
        "strategy": "Random",
        "max_jobs": 4,
        "max_parallel_jobs": 2,
        "resources_per_trial": {"cpu": 1},
        "max_runtime_in_seconds": 60,
        "stop_grace_period_in_seconds": 10,
        "random_seed": 0,
        "output_path": str(tmp_path / "runs"),
    }
    job.update(overrides)
    return job


def standin_spec(tmp_path: Path, **overrides: Any) -> JobSpec:
    return JobSpec.from_mapping(standin_job(tmp_path, **overrides), base_dir=tmp_path)


def attempt_files(job_dir: Path, trial_id: str, attempt: int = 1) -> AttemptFiles:
    """The files of one attempt of a trial (its log, model/ and output/)."""
    return JobDir(path=Path(job_dir)).trial_files(trial_id).attempt(attempt)
