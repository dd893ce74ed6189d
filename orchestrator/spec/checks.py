"""Rules that need several fields of a spec, the file system, or the cluster.

Problems reject the spec; warnings accept it but say what is probably wrong. Range rules
(bounds, scaling, limits on counts) belong to `search.SearchSpace`; these checks call it and file
its errors under the field they mention instead of repeating them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from orchestrator.errors import SpecError, SpecProblem
from orchestrator.spec.enums import EarlyStoppingType
from orchestrator.spec.names import (
    HYPERPARAMETER_NAME_RULE,
    case_collisions,
    hyperparameter_variable,
    is_hyperparameter_name,
)
from orchestrator.spec.problems import suggest
from orchestrator.spec.sections import TrainerSpec, locate_executable
from search import SearchSpace, SearchSpaceError, Strategy

if TYPE_CHECKING:
    from orchestrator.spec.schema import JobSpec


class Findings:
    """Problems (the spec is rejected) and warnings (it is accepted) found by the checks below."""

    def __init__(self) -> None:
        self.problems: list[SpecProblem] = []
        self.warnings: list[SpecProblem] = []

    def problem(self, field: str, value: Any, rule: str) -> None:
        self.problems.append(SpecProblem(field, value, rule))

    def warning(self, field: str, value: Any, rule: str) -> None:
        self.warnings.append(SpecProblem(field, value, rule))


def check_metrics(spec: JobSpec, findings: Findings) -> None:
    names = [definition.name for definition in spec.metric_definitions]
    for index, definition in enumerate(spec.metric_definitions):
        if definition.name in names[:index]:
            findings.problem(
                f"metric_definitions[{index}].Name", definition.name, "duplicate metric name"
            )
        if definition.pattern.search("") is not None:
            findings.warning(
                f"metric_definitions[{index}].Regex",
                definition.regex,
                "matches the empty string, so it matches every log line",
            )
    if spec.objective_metric_name not in names:
        guess = suggest(spec.objective_metric_name, names)
        findings.problem(
            "objective_metric_name",
            spec.objective_metric_name,
            f"must be the Name of one of the metric_definitions: {', '.join(names)}"
            + (f"; did you mean {guess!r}?" if guess else ""),
        )


def check_parameters(spec: JobSpec, findings: Findings) -> None:
    """Ranges are checked one by one (so every bad range is reported under its own field),
    then as a whole space (limits on counts, static values); the rules are `search`'s."""
    bad_names = _check_names(spec, findings)
    both = sorted(set(spec.hyperparameters) & set(spec.hyperparameter_ranges))
    for name in both:
        findings.problem(
            f"hyperparameters.{name}",
            spec.hyperparameters[name],
            "duplicate parameter name: also in hyperparameter_ranges; "
            "a parameter is either static or tuned",
        )
    for name, declared in spec.hyperparameter_ranges.items():
        if name in bad_names:
            continue  # reported once, by the name rule
        try:
            SearchSpace.from_config({name: declared})
        except SearchSpaceError as error:
            findings.problems.append(_range_problem(name, declared, error))
    if findings.problems:
        return
    try:
        space = spec.search_space()
    except SearchSpaceError as error:
        findings.problems.append(_space_problem(spec, error))
        return
    if spec.strategy is Strategy.GRID:
        for name, parameter in space.parameters.items():
            if parameter.cardinality is None:
                findings.problem(
                    f"hyperparameter_ranges.{name}",
                    spec.hyperparameter_ranges[name],
                    "strategy Grid enumerates values; it cannot take a continuous range "
                    "(use Integer or Categorical, or another strategy)",
                )


def _check_names(spec: JobSpec, findings: Findings) -> set[str]:
    """Script mode's name rule, and no two names that set the same `SM_HP_<NAME>`; returns the
    names that broke the rule."""
    bad: set[str] = set()
    where: dict[str, str] = {}  # name -> the field it is declared in first
    for field, names in (
        ("hyperparameters", spec.hyperparameters),
        ("hyperparameter_ranges", spec.hyperparameter_ranges),
    ):
        for name in names:
            where.setdefault(name, field)
            if not is_hyperparameter_name(name):
                bad.add(name)
                findings.problem(f"{field}.{name}", name, HYPERPARAMETER_NAME_RULE)
    good = [name for name in where if name not in bad]
    for earlier, later in case_collisions(good):
        findings.problem(
            f"{where[later]}.{later}",
            later,
            f"differs from {earlier!r} (in {where[earlier]}) only by case; both would set "
            f"{hyperparameter_variable(later)}, so hyperparameter names must differ ignoring case",
        )
    return bad


def _range_problem(name: str, declared: Mapping[str, Any], error: SearchSpaceError) -> SpecProblem:
    """File a `search` error about one range under the key it mentions (`min_value=...`)."""
    message = str(error).removeprefix(f"hyperparameter {name!r}: ")
    mentioned = [(message.find(f"{key}="), key) for key in declared if f"{key}=" in message]
    if mentioned:
        key = min(mentioned)[1]
        return SpecProblem(f"hyperparameter_ranges.{name}.{key}", declared[key], message)
    return SpecProblem(f"hyperparameter_ranges.{name}", dict(declared), message)


def _space_problem(spec: JobSpec, error: SearchSpaceError) -> SpecProblem:
    """File a `search` error about the whole space under the static value it names, if any."""
    message = str(error)
    for name, value in spec.hyperparameters.items():
        if repr(name) in message:
            return SpecProblem(f"hyperparameters.{name}", value, message)
    counts = f"{len(spec.hyperparameter_ranges)} tuned, {len(spec.hyperparameters)} static"
    return SpecProblem("hyperparameter_ranges", counts, message)


def check_strategy(spec: JobSpec, findings: Findings) -> None:
    if spec.max_parallel_jobs > spec.max_jobs:
        findings.warning(
            "max_parallel_jobs",
            spec.max_parallel_jobs,
            f"is more than max_jobs ({spec.max_jobs}); only {spec.max_jobs} trials will run",
        )
    hyperband = spec.strategy is Strategy.HYPERBAND
    if hyperband and spec.early_stopping_type is not EarlyStoppingType.OFF:
        findings.problem(
            "early_stopping_type",
            spec.early_stopping_type.value,
            "must be Off with strategy Hyperband, which stops trials itself (as in SageMaker)",
        )
    if spec.hyperband_strategy_config is not None and not hyperband:
        findings.problem(
            "hyperband_strategy_config",
            spec.hyperband_strategy_config.model_dump(exclude_unset=True),  # as written
            f"is only allowed with strategy Hyperband, not {spec.strategy.value}",
        )


def check_trainer_exists(trainer: TrainerSpec, findings: Findings) -> None:
    if not trainer.working_path.is_dir():
        findings.problem(
            "trainer.working_dir",
            trainer.working_dir,
            f"is not a directory (resolved to {trainer.working_path})",
        )
        return
    field = "trainer.interpreter" if trainer.uses_interpreter else "trainer.command[0]"
    program = trainer.executable()
    located = locate_executable(program, trainer.working_path)
    if located is None:
        findings.problem(
            field,
            program,
            f"trainer not found: no such file relative to {trainer.working_path} "
            "and not a program on PATH",
        )
    elif os.path.isabs(located) and not os.access(located, os.X_OK):
        findings.problem(field, program, f"trainer is not executable: {located}")
    if trainer.interpreter is not None and not trainer.uses_interpreter:
        findings.warning(
            "trainer.interpreter",
            trainer.interpreter,
            "is ignored: the command does not start with python",
        )
    script = trainer.command[1] if trainer.uses_interpreter and len(trainer.command) > 1 else ""
    if script.endswith(".py") and not (trainer.working_path / script).is_file():
        findings.problem(
            "trainer.command[1]",
            script,
            f"trainer script not found in the working directory {trainer.working_path}",
        )


def check_parents_exist(spec: JobSpec, findings: Findings) -> None:
    """Parents must exist when a job starts; once its job directory exists, the job has
    recorded what it took from them (`orchestrator.store.warm_start`) and may be resumed
    without them."""
    if spec.warm_start_config is None:
        return
    started = spec.job_dir.is_dir()
    for index, parent in enumerate(spec.warm_start_config.parent_hyperparameter_tuning_jobs):
        path = spec.resolve_path(parent)
        field = f"warm_start_config.parent_hyperparameter_tuning_jobs[{index}]"
        if path == spec.job_dir:
            findings.problem(
                field, parent, "is this job's own directory; a job cannot warm-start from itself"
            )
        elif not path.is_dir() and not started:
            findings.problem(field, parent, f"parent job directory not found (resolved to {path})")


def check_resources(spec: JobSpec, available: Mapping[str, float]) -> None:
    """Refuse a job whose single trial needs more CPUs or GPUs than the whole cluster has,
    which Ray would otherwise leave pending forever. `available` is Ray's
    `cluster_resources()` (keys "CPU", "GPU"; any case)."""
    offered = {key.upper(): float(amount) for key, amount in available.items()}
    problems = []
    for resource, needed in (
        ("CPU", spec.resources_per_trial.cpu),
        ("GPU", spec.resources_per_trial.gpu),
    ):
        have = offered.get(resource, 0.0)
        if needed > have:
            problems.append(
                SpecProblem(
                    f"resources_per_trial.{resource.lower()}",
                    needed,
                    f"one trial needs {needed:g} {resource}s but the cluster offers {have:g}",
                )
            )
    if problems:
        raise SpecError(problems)
