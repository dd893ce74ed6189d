"""Warm start: seed a job's searcher with the finished trials of up to five parent jobs.

* `IdenticalDataAndAlgorithm`: the parent must train the same model on the same data — same
  trainer, static hyperparameters and inputs (`JobSpec.fingerprint`); ranges may change.
* `TransferLearning`: anything may change; a parent trial is used if its tuned values fit the
  new ranges (the searcher drops the rest with a warning naming them).

Both need the same objective metric and direction, or the parents' values would mislead.
Parent values of static hyperparameters are replaced by this job's, so only tuned values carry.
"""

from __future__ import annotations

import logging
from typing import Any

from orchestrator.errors import SpecError, SpecProblem
from orchestrator.spec import JobSpec, WarmStartType
from orchestrator.store.view import load_job_view
from orchestrator.trial.outcome import TrialState

log = logging.getLogger(__name__)

PARENTS_FIELD = "warm_start_config.parent_hyperparameter_tuning_jobs"


def parent_observations(spec: JobSpec) -> list[tuple[dict[str, Any], float | None]]:
    """(config, objective) of every finished parent trial; failed trials carry None."""
    config = spec.warm_start_config
    if config is None:
        return []
    identical = config.warm_start_type is WarmStartType.IDENTICAL_DATA_AND_ALGORITHM
    tuned = list(spec.hyperparameter_ranges)
    observations: list[tuple[dict[str, Any], float | None]] = []
    for index, parent_dir in enumerate(spec.parent_job_dirs):
        field = f"{PARENTS_FIELD}[{index}]"
        view = load_job_view(parent_dir)
        parent = JobSpec.from_mapping(view.spec, base_dir=parent_dir, check_paths=False)
        _check_compatible(spec, parent, field=field, identical=identical)
        for record in view.trials.values():
            if not record.state.finished:
                continue
            missing = [name for name in tuned if name not in record.config]
            if missing:
                log.warning(
                    "warm start: %s/%s has no value for %s; not used",
                    parent.name,
                    record.trial_id,
                    ", ".join(missing),
                )
                continue
            values = {name: record.config[name] for name in tuned}
            objective = record.objective if record.state is not TrialState.FAILED else None
            observations.append(({**spec.hyperparameters, **values}, objective))
    log.info("warm start: %d parent trials offered to the searcher", len(observations))
    return observations


def _check_compatible(child: JobSpec, parent: JobSpec, *, field: str, identical: bool) -> None:
    problems = []
    for name in ("objective_metric_name", "objective_type"):
        mine, theirs = getattr(child, name), getattr(parent, name)
        if mine != theirs:
            problems.append(
                SpecProblem(
                    field,
                    str(parent.job_dir),
                    f"parent's {name} {_v(theirs)} differs "
                    f"from this job's {_v(mine)}; warm start needs the same objective",
                )
            )
    if identical and child.fingerprint() != parent.fingerprint():
        differing = [
            name
            for name in ("trainer", "hyperparameters", "inputs")
            if _dump(getattr(child, name)) != _dump(getattr(parent, name))
        ]
        problems.append(
            SpecProblem(
                field,
                str(parent.job_dir),
                "IdenticalDataAndAlgorithm needs the parent's trainer, static hyperparameters "
                f"and inputs unchanged; these differ: {', '.join(differing)} "
                "(use TransferLearning to allow it)",
            )
        )
    if problems:
        raise SpecError(problems)


def _v(value: Any) -> str:
    return repr(getattr(value, "value", value))


def _dump(value: Any) -> Any:
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value
