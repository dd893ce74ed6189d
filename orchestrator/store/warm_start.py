"""Warm start: seed a job's searcher with the finished trials of up to five parent jobs.

* `IdenticalDataAndAlgorithm`: the parent must train the same model on the same data — same
  trainer, static hyperparameters and inputs (`JobSpec.fingerprint`); ranges may change.
* `TransferLearning`: anything may change; a parent trial is used if its tuned values fit the
  new ranges (the searcher drops the rest with a warning naming them).

Both need the same objective metric and direction, or the parents' values would mislead.
Parent values of static hyperparameters are replaced by this job's, so only tuned values carry.
A parent must have finished (as in SageMaker): one whose driver still runs is refused.

What the child took is recorded once in its job directory (`warm_start.json`); a resumed child
reads that record instead of its parents, so a parent changed or deleted since does not matter.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from orchestrator.errors import OpenAMTError, ResumeError, SpecError, SpecProblem
from orchestrator.spec import JobSpec, WarmStartType
from orchestrator.spec.sections import WarmStartConfig
from orchestrator.store.job_dir import JobDir, write_atomic
from orchestrator.store.view import JobView, TuningJobStatus, load_job_view
from orchestrator.trial.outcome import TrialState
from search.searcher import Observation

log = logging.getLogger(__name__)

PARENTS_FIELD = "warm_start_config.parent_hyperparameter_tuning_jobs"
#: (hyperparameters, objective): one finished parent trial; a failed one has objective None.


def parent_observations(spec: JobSpec, job_dir: JobDir) -> list[Observation]:
    """What the job's searcher is warm-started with: the record in `job_dir` if there is one,
    else the finished trials of the parents, then recorded. Raises `SpecError` (naming the
    parent) for a parent that is running, is no job, or does not fit this job."""
    config = spec.warm_start_config
    if config is None:
        return []
    recorded = _read_record(job_dir, config)
    if recorded is not None:
        log.info("warm start: %d parent trials, as recorded in %s", len(recorded), job_dir.path)
        return recorded
    observations, parents = read_parents(spec)
    record = {
        "warm_start_type": config.warm_start_type.value,
        "parent_hyperparameter_tuning_jobs": list(config.parent_hyperparameter_tuning_jobs),
        "parents": parents,
        "observations": [
            {"hyperparameters": values, "objective": objective}
            for values, objective in observations
        ],
    }
    write_atomic(job_dir.warm_start_path, json.dumps(record, indent=1, allow_nan=False))
    return observations


def read_parents(spec: JobSpec) -> tuple[list[Observation], list[dict[str, Any]]]:
    """The parents' finished trials as observations, and what was read from each parent."""
    if spec.warm_start_config is None:
        return [], []
    written = spec.warm_start_config.parent_hyperparameter_tuning_jobs
    identical = spec.warm_start_config.warm_start_type is WarmStartType.IDENTICAL_DATA_AND_ALGORITHM
    observations: list[Observation] = []
    parents: list[dict[str, Any]] = []
    problems: list[SpecProblem] = []
    for index, (as_written, parent_dir) in enumerate(
        zip(written, spec.parent_job_dirs, strict=True)
    ):
        field = f"{PARENTS_FIELD}[{index}]"
        try:
            view = load_job_view(parent_dir)
        except OpenAMTError as error:
            problems.append(SpecProblem(field, as_written, f"is not a parent job: {error}"))
            continue
        if view.status is TuningJobStatus.IN_PROGRESS:
            problems.append(_running_problem(field, as_written, view))
            continue
        parent = JobSpec.from_mapping(view.spec, base_dir=parent_dir, check_paths=False)
        found = _compatibility_problems(spec, parent, field=field, value=as_written)
        if identical:
            found += _identity_problems(spec, parent, field=field, value=as_written)
        if found:
            problems += found
            continue
        taken = _finished_trials(spec, parent.name, view)
        observations += taken
        parents.append(
            {
                "path": str(parent_dir),
                "name": parent.name,
                "status": view.status.value,
                "trials": len(taken),
            }
        )
    if problems:
        raise SpecError(problems)
    log.info("warm start: %d parent trials offered to the searcher", len(observations))
    return observations, parents


def _running_problem(field: str, value: str, view: JobView) -> SpecProblem:
    return SpecProblem(
        field,
        value,
        f"parent job {view.name!r} is still running (driver pid {view.driver_pid}); warm start "
        "takes finished parents only, as SageMaker does: wait for it to end or stop it",
    )


def _finished_trials(spec: JobSpec, parent_name: str, view: JobView) -> list[Observation]:
    tuned = list(spec.hyperparameter_ranges)
    observations: list[Observation] = []
    for record in view.trials.values():
        if not record.finished:
            continue
        missing = [name for name in tuned if name not in record.config]
        if missing:
            log.warning(
                "warm start: %s/%s has no value for %s; not used",
                parent_name,
                record.trial_id,
                ", ".join(missing),
            )
            continue
        values = {name: record.config[name] for name in tuned}
        objective = record.objective if record.state is not TrialState.FAILED else None
        observations.append(({**spec.hyperparameters, **values}, objective))
    return observations


def _compatibility_problems(
    child: JobSpec, parent: JobSpec, *, field: str, value: str
) -> list[SpecProblem]:
    problems = []
    for name in ("objective_metric_name", "objective_type"):
        mine, theirs = getattr(child, name), getattr(parent, name)
        if mine != theirs:
            problems.append(
                SpecProblem(
                    field,
                    value,
                    f"parent's {name} {_v(theirs)} differs "
                    f"from this job's {_v(mine)}; warm start needs the same objective",
                )
            )
    return problems


def _identity_problems(
    child: JobSpec, parent: JobSpec, *, field: str, value: str
) -> list[SpecProblem]:
    if child.fingerprint() == parent.fingerprint():
        return []
    differing = [
        name
        for name in ("trainer", "hyperparameters", "inputs")
        if _dump(getattr(child, name)) != _dump(getattr(parent, name))
    ]
    return [
        SpecProblem(
            field,
            value,
            "IdenticalDataAndAlgorithm needs the parent's trainer, static hyperparameters "
            f"and inputs unchanged; these differ: {', '.join(differing)} "
            "(use TransferLearning to allow it)",
        )
    ]


def _read_record(job_dir: JobDir, config: WarmStartConfig) -> list[Observation] | None:
    """The recorded observations, or None before the first run recorded them."""
    path = job_dir.warm_start_path
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        observations = [
            (dict(item["hyperparameters"]), item["objective"]) for item in record["observations"]
        ]
        written = record["parent_hyperparameter_tuning_jobs"]
        kind = record["warm_start_type"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ResumeError(
            f"{path} cannot be read ({error}); it records what this job took from its warm-start "
            "parents. Restore it, or move the job directory aside to start afresh"
        ) from None
    if written != list(config.parent_hyperparameter_tuning_jobs) or (
        kind != config.warm_start_type.value
    ):
        raise ResumeError(
            f"{path} records a {kind} warm start from {written}, but the spec asks for a "
            f"{config.warm_start_type.value} warm start from "
            f"{list(config.parent_hyperparameter_tuning_jobs)}; use another name or output_path "
            "for a new job"
        )
    return observations


def _v(value: Any) -> str:
    return repr(getattr(value, "value", value))


def _dump(value: Any) -> Any:
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value
