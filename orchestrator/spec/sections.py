"""The sections of a job spec: trainer, metric definitions, resources and the feature configs.

Each is a frozen pydantic model that forbids unknown keys; rules that need several sections (or
the file system) live in `orchestrator.spec.checks`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
from functools import cached_property
from pathlib import Path
from typing import Any

import regex
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from orchestrator.spec.enums import (
    CompleteOnConvergenceField,
    ConfigurationSelection,
    ConfigurationSelectionField,
    FiniteFloat,
    StrictInt,
    WarmStartTypeField,
)
from orchestrator.spec.problems import RuleViolation

MAX_METRIC_NAME_CHARS = 255
MAX_REGEX_CHARS = 500
#: Only this much of a log line is matched against a metric's regex.
MAX_MATCHED_LINE_CHARS = 16 * 1024
#: Seconds one metric's regex may spend on one line.
MATCH_TIMEOUT_S = 0.05
ENV_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A command starting with one of these runs under the trainer's interpreter instead.
PYTHON_PLACEHOLDERS = frozenset({"python", "python3"})


class Section(BaseModel):
    """Common settings: unknown keys are errors, and a validated spec never changes."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_by_name=True, validate_by_alias=True
    )


def base_dir_from(info: ValidationInfo) -> Path:
    base_dir = (info.context or {}).get("base_dir")
    return Path(os.path.abspath(base_dir if base_dir is not None else os.getcwd()))


class TrainerSpec(Section):
    """How to start one trial: an argv list run in `working_dir` with extra environment."""

    command: list[str]
    interpreter: str | None = None
    working_dir: str = "."
    env: dict[str, str] = Field(default_factory=dict)

    _base_dir: Path = PrivateAttr(default_factory=lambda: Path(os.getcwd()))

    @field_validator("command", mode="before")
    @classmethod
    def _command_is_a_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise RuleViolation(
                f"must be a list of arguments, not one string (the shell never splits it); "
                f"write it as {json.dumps(shlex.split(value))}",
                value=value,
            )
        return value

    @field_validator("command")
    @classmethod
    def _command_names_a_program(cls, value: list[str]) -> list[str]:
        if not value or not value[0].strip():
            raise RuleViolation("must name the program to run as its first element", value=value)
        return value

    @field_validator("env")
    @classmethod
    def _env_names_are_valid(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not ENV_NAME_PATTERN.fullmatch(name):
                raise RuleViolation(
                    "environment variable names are letters, digits and underscores, "
                    "not starting with a digit",
                    value=name,
                    subfield=name,
                )
        return value

    @model_validator(mode="after")
    def _remember_base_dir(self, info: ValidationInfo) -> TrainerSpec:
        self._base_dir = base_dir_from(info)
        return self

    @property
    def uses_interpreter(self) -> bool:
        """True when the command starts with `python`, which is replaced by the interpreter."""
        return self.command[0] in PYTHON_PLACEHOLDERS

    @property
    def working_path(self) -> Path:
        """The absolute directory trials run in."""
        return Path(os.path.abspath(self._base_dir / self.working_dir))

    def executable(self, interpreter_default: str = sys.executable) -> str:
        """The program as written: the interpreter for `python ...` commands, else command[0]."""
        if self.uses_interpreter:
            return self.interpreter or interpreter_default
        return self.command[0]

    def argv(self, interpreter_default: str = sys.executable) -> list[str]:
        """The command to run, with a leading `python` replaced by the interpreter (or
        `interpreter_default`) and a relative program path made absolute against `working_dir`.
        A bare program name not found there is left for the PATH lookup."""
        program = self.executable(interpreter_default)
        located = locate_executable(program, self.working_path)
        return [located or program, *self.command[1:]]


def locate_executable(program: str, working_dir: Path) -> str | None:
    """Where `program` would be run from, or None if it is nowhere to be found.

    A path (absolute, or with a separator) is taken relative to `working_dir`. A bare name is
    a file in `working_dir` if there is one, else looked up on PATH and returned unchanged.
    The interpreter is not resolved through symlinks: a venv's python must stay in its venv.
    """
    candidate = Path(os.path.abspath(working_dir / Path(program).expanduser()))
    if os.sep in program or candidate.is_file():
        return str(candidate) if candidate.is_file() else None
    return program if shutil.which(program) else None


class MetricDefinition(Section):
    """A metric scraped from the trainer's log: `Regex` has one capture group, the value.

    Lines are matched with the `regex` package (Python's `re` syntax) under a time limit, and
    only their first `MAX_MATCHED_LINE_CHARS` characters, so no line can stall a trial.
    """

    name: str = Field(alias="Name")
    regex: str = Field(alias="Regex")

    @field_validator("name")
    @classmethod
    def _name_length(cls, value: str) -> str:
        if not 1 <= len(value) <= MAX_METRIC_NAME_CHARS:
            raise RuleViolation(
                f"must be 1-{MAX_METRIC_NAME_CHARS} characters (SageMaker's limit), "
                f"got {len(value)}",
                value=value,
            )
        return value

    @field_validator("regex")
    @classmethod
    def _regex_is_usable(cls, value: str) -> str:
        if len(value) > MAX_REGEX_CHARS:
            raise RuleViolation(
                f"must be at most {MAX_REGEX_CHARS} characters (SageMaker's limit), "
                f"got {len(value)}",
                value=value,
            )
        try:
            groups = re.compile(value).groups
            regex.compile(value, flags=regex.VERSION0)
        except (re.error, regex.error) as error:
            raise RuleViolation(
                f"is not a valid regular expression: {error}", value=value
            ) from None
        if groups != 1:
            raise RuleViolation(
                f"must have exactly one capture group (the metric's value), found {groups}; "
                "use (?:...) for grouping that should not capture",
                value=value,
            )
        return value

    @cached_property
    def pattern(self) -> regex.Pattern[str]:
        """The compiled regex (compiled once per definition, also in each Ray worker)."""
        return regex.compile(self.regex, flags=regex.VERSION0)

    def search(self, line: str) -> regex.Match[str] | None:
        """The first match in `line`; raises TimeoutError after `MATCH_TIMEOUT_S`."""
        return self.pattern.search(line[:MAX_MATCHED_LINE_CHARS], timeout=MATCH_TIMEOUT_S)


class ResourcesPerTrial(Section):
    """What one trial reserves on the cluster; a GPU below 1 is shared between trials."""

    cpu: FiniteFloat = Field(default=1.0, gt=0)
    gpu: FiniteFloat = Field(default=0.0, ge=0)

    @field_validator("gpu")
    @classmethod
    def _gpu_is_shareable(cls, value: float) -> float:
        if value > 1 and not value.is_integer():
            raise RuleViolation(
                "a fraction of a GPU must be below 1 (trials share one GPU); "
                "more than one GPU must be a whole number",
                value=value,
            )
        return value


class HyperbandStrategyConfig(Section):
    """Resources (epochs the trainer reports) Hyperband gives a trial, at least and at most,
    and how new configurations are chosen: by a Gaussian process over configuration and epoch
    that learns from every rung of every trial (`Bayesian`, the default), or at random
    (`Random`, SageMaker's Hyperband)."""

    min_resource: StrictInt = Field(ge=1)
    max_resource: StrictInt
    configuration_selection: ConfigurationSelectionField = ConfigurationSelection.BAYESIAN

    @model_validator(mode="after")
    def _max_above_min(self) -> HyperbandStrategyConfig:
        if self.max_resource <= self.min_resource:
            raise RuleViolation(
                f"must be greater than min_resource ({self.min_resource})",
                value=self.max_resource,
                subfield="max_resource",
            )
        return self


class BestObjectiveNotImproving(Section):
    max_number_of_training_jobs_not_improving: StrictInt = Field(ge=3)


class ConvergenceDetected(Section):
    complete_on_convergence: CompleteOnConvergenceField


class CompletionCriteria(Section):
    """When a job may end before `max_jobs` trials (SageMaker's TuningJobCompletionCriteria)."""

    target_objective_metric_value: FiniteFloat | None = None
    best_objective_not_improving: BestObjectiveNotImproving | None = None
    convergence_detected: ConvergenceDetected | None = None
    max_runtime_in_seconds: StrictInt | None = Field(default=None, gt=0)


class RetryStrategy(Section):
    maximum_retry_attempts: StrictInt = Field(ge=1, le=30)


class WarmStartConfig(Section):
    """Earlier jobs whose finished trials seed this job's searcher."""

    parent_hyperparameter_tuning_jobs: list[str] = Field(min_length=1, max_length=5)
    warm_start_type: WarmStartTypeField

    @field_validator("parent_hyperparameter_tuning_jobs")
    @classmethod
    def _parents_are_distinct(cls, value: list[str]) -> list[str]:
        for index, parent in enumerate(value):
            if parent in value[:index]:
                raise RuleViolation("is listed twice", value=parent, subfield=index)
        return value
