"""Finding jobs by name, as SageMaker does in an account: in the session's output location.

A tuning job, and a training job started by `Estimator.fit`, is a job directory named after the
job in the output path (by default `s3://<default bucket>/<prefix>/`, in the S3 mirror). A
training job of a tuning job is one of its trials, named `<tuning job>-<trial id>` (e.g.
`cifar10-240101-120000-trial-0007`), so the name alone finds it again
(`TrainingJobAnalytics(name)`, `Estimator.attach(name)`). A job directory's path works wherever
a name does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import OpenAMTError
from orchestrator.sagemaker.s3 import local_path
from orchestrator.sagemaker.session import Session
from orchestrator.store.job_dir import JobDir
from orchestrator.store.view import JobView, load_job_view

#: The key of this package's record in a job spec's `recorded_settings`.
RECORD_KEY = "sagemaker"
TRAINING_JOB = "training-job"
TUNING_JOB = "tuning-job"


class JobNotFoundError(OpenAMTError, ValueError):
    """No job of that name in the output path."""


def output_root(session: Session, output_path: str | None = None) -> Path:
    """The directory job directories go in: `output_path` or the session's default."""
    return local_path(output_path or session.default_output_path, field="output_path")


def record(view: JobView) -> dict[str, Any]:
    """What `orchestrator.sagemaker` recorded with the job (empty for other jobs)."""
    settings = view.spec.get("recorded_settings") or {}
    return dict(settings.get(RECORD_KEY) or {})


def is_training_job(view: JobView) -> bool:
    """Whether the job is one training job (`Estimator.fit`) rather than a tuning job."""
    return record(view).get("kind") == TRAINING_JOB


def find_job_dir(name: str | os.PathLike[str], session: Session) -> Path:
    """The job directory of tuning (or training) job `name`, or of the path `name`."""
    for candidate in _candidates(name, session):
        if JobDir(path=candidate).is_job():
            return candidate
    raise JobNotFoundError(
        f"no job named {os.fspath(name)!r} in {output_root(session)} (the session's output "
        "path); pass its job directory, or the Session whose default bucket holds it"
    )


def training_job_name(view: JobView, trial_id: str) -> str:
    """A trial's training job name: the job's own name for `Estimator.fit`'s one-trial job."""
    return view.name if is_training_job(view) else f"{view.name}-{trial_id}"


@dataclass(frozen=True)
class TrainingJobRef:
    """Where a training job lives: its job directory, and its trial (None: the job's only
    trial, which may not have started yet)."""

    name: str
    job_dir: Path
    trial_id: str | None


def find_training_job(name: str, session: Session) -> TrainingJobRef:
    """A training job by name: a `fit` job, or `<tuning job>-<trial id>`."""
    for candidate in _candidates(name, session):
        if JobDir(path=candidate).is_job() and is_training_job(load_job_view(candidate)):
            return TrainingJobRef(name=Path(candidate).name, job_dir=candidate, trial_id=None)
    root = output_root(session)
    for index in range(len(name) - 1, 0, -1):
        if name[index] != "-":
            continue
        job, trial_id = name[:index], name[index + 1 :]
        job_dir = JobDir(path=root / job)
        if job_dir.is_job() and job_dir.trial_files(trial_id).directory.is_dir():
            return TrainingJobRef(name=name, job_dir=job_dir.path, trial_id=trial_id)
    raise JobNotFoundError(
        f"no training job named {name!r} in {root}: a training job is an Estimator.fit job "
        "or <tuning job>-<trial id> (see the TrainingJobName column of the tuning job's "
        "analytics)"
    )


def _candidates(name: str | os.PathLike[str], session: Session) -> list[Path]:
    text = os.fspath(name)
    candidates = [output_root(session) / text] if text and "/" not in text else []
    if os.sep in text or "/" in text or Path(text).is_dir():
        candidates.insert(0, Path(os.path.abspath(text)))
    return candidates
