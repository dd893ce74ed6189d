"""The job spec: every setting of a tuning job, checked before any trial starts.

A job burns GPU-hours; a typo found after the first trial is a typo found too late. So the whole
spec is validated up front and every problem is reported at once, each naming the field (a dotted
path such as `metric_definitions[2].Regex`), the value and the rule (`SpecError`).

Field names follow SageMaker's `HyperparameterTuner` in snake_case (metric definitions keep their
`Name`/`Regex` keys). Relative paths (`output_path`, `trainer.working_dir`, `inputs`, warm-start
parents) are relative to the job file's directory when loaded from a file, else to the current
directory; the trainer's `interpreter` and command are relative to `trainer.working_dir`.
Range rules (bounds, scaling, limits on counts) belong to `search.SearchSpace`; this module calls
it and converts its errors instead of repeating them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import sys
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from orchestrator.errors import SpecError, SpecProblem
from orchestrator.spec.problems import RuleViolation, problems_from_validation_error, suggest
from search import ObjectiveType, Parameter, SearchSpace, SearchSpaceError, Strategy

NAME_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}")
NAME_RULE = (
    "SageMaker's tuning job name rule: 1-32 letters, digits or hyphens, starting and ending "
    r"with a letter or digit (^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$)"
)
MAX_NAME_CHARS = 32
MAX_METRIC_DEFINITIONS = 20
MAX_METRIC_NAME_CHARS = 255
MAX_REGEX_CHARS = 500
# Channel names become `SM_CHANNEL_<NAME>` environment variables, so they must be valid in one.
CHANNEL_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
ENV_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A command starting with one of these runs under the trainer's interpreter instead.
PYTHON_PLACEHOLDERS = frozenset({"python", "python3"})

__all__ = [
    "CompleteOnConvergence",
    "EarlyStoppingType",
    "JobSpec",
    "MetricDefinition",
    "ObjectiveType",  # search's enum, re-exported: one enum per concept across the project
    "ResourcesPerTrial",
    "Strategy",
    "TrainerSpec",
    "WarmStartType",
    "check_resources",
    "load_job_spec",
    "parse_yaml",
    "validate_sample_log",
]


class EarlyStoppingType(Enum):
    OFF = "Off"
    AUTO = "Auto"


class WarmStartType(Enum):
    IDENTICAL_DATA_AND_ALGORITHM = "IdenticalDataAndAlgorithm"
    TRANSFER_LEARNING = "TransferLearning"


class CompleteOnConvergence(Enum):
    DISABLED = "Disabled"
    ENABLED = "Enabled"


def _case_insensitive(enum_type: type[Enum]) -> BeforeValidator:
    """Accept enum values in any case. YAML reads a bare `Off` as False, so False means "Off"."""

    def parse(value: Any) -> Any:
        text = ("On" if value else "Off") if isinstance(value, bool) else value
        if isinstance(text, str):
            for member in enum_type:
                if member.value.lower() == text.strip().lower():
                    return member
        return value  # pydantic rejects it, listing the allowed values

    return BeforeValidator(parse)


StrictInt = Annotated[int, Strict()]
FiniteFloat = Annotated[float, Strict(), Field(allow_inf_nan=False)]
ObjectiveTypeField = Annotated[ObjectiveType, _case_insensitive(ObjectiveType)]
StrategyField = Annotated[Strategy, _case_insensitive(Strategy)]
EarlyStoppingTypeField = Annotated[EarlyStoppingType, _case_insensitive(EarlyStoppingType)]
WarmStartTypeField = Annotated[WarmStartType, _case_insensitive(WarmStartType)]
CompleteOnConvergenceField = Annotated[
    CompleteOnConvergence, _case_insensitive(CompleteOnConvergence)
]


class _Section(BaseModel):
    """Common settings: unknown keys are errors, and a validated spec never changes."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_by_name=True, validate_by_alias=True
    )


def _base_dir_from(info: ValidationInfo) -> Path:
    base_dir = (info.context or {}).get("base_dir")
    return Path(os.path.abspath(base_dir if base_dir is not None else os.getcwd()))


class TrainerSpec(_Section):
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
        self._base_dir = _base_dir_from(info)
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


class MetricDefinition(_Section):
    """A metric scraped from the trainer's log: `Regex` has one capture group, the value."""

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
        except re.error as error:
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

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile(self.regex)


class ResourcesPerTrial(_Section):
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


class HyperbandStrategyConfig(_Section):
    """Resources (epochs the trainer reports) Hyperband gives a trial, at least and at most."""

    min_resource: StrictInt = Field(ge=1)
    max_resource: StrictInt

    @model_validator(mode="after")
    def _max_above_min(self) -> HyperbandStrategyConfig:
        if self.max_resource <= self.min_resource:
            raise RuleViolation(
                f"must be greater than min_resource ({self.min_resource})",
                value=self.max_resource,
                subfield="max_resource",
            )
        return self


class BestObjectiveNotImproving(_Section):
    max_number_of_training_jobs_not_improving: StrictInt = Field(ge=3)


class ConvergenceDetected(_Section):
    complete_on_convergence: CompleteOnConvergenceField


class CompletionCriteria(_Section):
    """When a job may end before `max_jobs` trials (SageMaker's TuningJobCompletionCriteria)."""

    target_objective_metric_value: FiniteFloat | None = None
    best_objective_not_improving: BestObjectiveNotImproving | None = None
    convergence_detected: ConvergenceDetected | None = None
    max_runtime_in_seconds: StrictInt | None = Field(default=None, gt=0)


class RetryStrategy(_Section):
    maximum_retry_attempts: StrictInt = Field(ge=1, le=30)


class WarmStartConfig(_Section):
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


class JobSpec(_Section):
    """A whole tuning job. Build it with `load_job_spec` or `JobSpec.from_mapping`."""

    name: str
    trainer: TrainerSpec
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    hyperparameter_ranges: dict[str, Any] = Field(default_factory=dict)
    objective_metric_name: str
    objective_type: ObjectiveTypeField = ObjectiveType.MAXIMIZE
    metric_definitions: list[MetricDefinition]
    strategy: StrategyField = Strategy.BAYESIAN
    max_jobs: StrictInt = Field(ge=1)
    max_parallel_jobs: StrictInt = Field(default=1, ge=1)
    resources_per_trial: ResourcesPerTrial = Field(default_factory=ResourcesPerTrial)
    inputs: dict[str, str] = Field(default_factory=dict)
    max_runtime_in_seconds: FiniteFloat | None = Field(default=None, gt=0)
    random_seed: StrictInt = Field(default=0, ge=0)
    output_path: str = Field(default="runs", min_length=1)
    early_stopping_type: EarlyStoppingTypeField = EarlyStoppingType.OFF
    hyperband_strategy_config: HyperbandStrategyConfig | None = None
    completion_criteria: CompletionCriteria | None = None
    retry_strategy: RetryStrategy | None = None
    warm_start_config: WarmStartConfig | None = None

    _base_dir: Path = PrivateAttr(default_factory=lambda: Path(os.getcwd()))
    _warnings: tuple[SpecProblem, ...] = PrivateAttr(default=())

    @field_validator("name")
    @classmethod
    def _name_follows_sagemaker(cls, value: str) -> str:
        if not 1 <= len(value) <= MAX_NAME_CHARS:
            raise RuleViolation(
                f"must be 1-{MAX_NAME_CHARS} characters long, got {len(value)}; {NAME_RULE}",
                value=value,
            )
        if not NAME_PATTERN.fullmatch(value):
            raise RuleViolation(f"does not follow {NAME_RULE}", value=value)
        return value

    @field_validator("hyperparameters")
    @classmethod
    def _static_values_are_scalars(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name, static in value.items():
            if not isinstance(static, str | int | float | bool):
                raise RuleViolation(
                    "a static hyperparameter must be a string, number or boolean; "
                    "ranges belong in hyperparameter_ranges",
                    value=static,
                    subfield=name,
                )
        return value

    @field_validator("hyperparameter_ranges", mode="before")
    @classmethod
    def _parameters_to_config(cls, value: Any) -> Any:
        """Python callers may pass `search` parameters (`ContinuousParameter(0.001, 0.5)`)."""
        if not isinstance(value, Mapping):
            return value
        return {
            name: declared.to_config() if isinstance(declared, Parameter) else declared
            for name, declared in value.items()
        }

    @field_validator("hyperparameter_ranges")
    @classmethod
    def _ranges_are_mappings(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name, declared in value.items():
            if not isinstance(declared, Mapping):
                raise RuleViolation(
                    "a range must be a mapping such as {type: Continuous, min_value: 0.001, "
                    "max_value: 0.1}; a fixed value belongs in hyperparameters",
                    value=declared,
                    subfield=name,
                )
        return value

    @field_validator("metric_definitions")
    @classmethod
    def _metric_definition_count(cls, value: list[MetricDefinition]) -> list[MetricDefinition]:
        if not 1 <= len(value) <= MAX_METRIC_DEFINITIONS:
            raise RuleViolation(
                f"must hold 1-{MAX_METRIC_DEFINITIONS} metric definitions (SageMaker's limit), "
                f"got {len(value)}",
                value=len(value),
            )
        return value

    @field_validator("inputs")
    @classmethod
    def _channels_are_valid(cls, value: dict[str, str]) -> dict[str, str]:
        for channel, path in value.items():
            if not CHANNEL_PATTERN.fullmatch(channel):
                raise RuleViolation(
                    "a channel name is 1-64 letters, digits or underscores starting with a "
                    "letter (it becomes the SM_CHANNEL_<NAME> environment variable)",
                    value=channel,
                    subfield=channel,
                )
            if not path:
                raise RuleViolation("must be a path", value=path, subfield=channel)
        return value

    @model_validator(mode="after")
    def _check_across_fields(self, info: ValidationInfo) -> JobSpec:
        """Rules that need several fields or the file system; raises `SpecError` directly so
        each problem keeps its own field path."""
        context = info.context or {}
        self._base_dir = _base_dir_from(info)
        findings = _Findings()
        _check_metrics(self, findings)
        _check_parameters(self, findings)
        _check_strategy(self, findings)
        if context.get("check_paths", True):
            _check_trainer_exists(self.trainer, findings)
            _check_parents_exist(self, findings)
        if findings.problems:
            raise SpecError(findings.problems, source=context.get("source"))
        self._warnings = tuple(findings.warnings)
        return self

    @classmethod
    def from_mapping(
        cls,
        data: Any,
        *,
        base_dir: str | Path | None = None,
        check_paths: bool = True,
        source: str | None = None,
    ) -> JobSpec:
        """Validate a job spec given as a mapping (the YAML form). Raises `SpecError`.

        `base_dir` anchors relative paths (default: the current directory). `check_paths=False`
        skips the file-system checks, for reading back the spec of a job run elsewhere.
        """
        if not isinstance(data, Mapping):
            raise SpecError(
                [
                    SpecProblem(
                        "<job spec>",
                        data,
                        "must be a mapping of field names to values (name: ..., trainer: ...)",
                    )
                ],
                source=source,
            )
        context = {"base_dir": base_dir, "check_paths": check_paths, "source": source}
        try:
            return cls.model_validate(dict(data), context=context)
        except ValidationError as error:
            raise SpecError(
                problems_from_validation_error(error, root=cls), source=source
            ) from None

    def to_mapping(self) -> dict[str, Any]:
        """The spec as plain data (the YAML form); `from_mapping` of it gives this spec again."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def to_yaml(self) -> str:
        """The spec as YAML, fields in declaration order (what goes into the job's spec.yaml)."""
        return yaml.safe_dump(self.to_mapping(), sort_keys=False, allow_unicode=True)

    @property
    def warnings(self) -> tuple[SpecProblem, ...]:
        """Things allowed but probably wrong (a regex matching the empty string, ...)."""
        return self._warnings

    @property
    def base_dir(self) -> Path:
        """The directory relative paths in the spec start from."""
        return self._base_dir

    def resolve_path(self, path: str) -> Path:
        """An absolute path for a path written in the spec."""
        return Path(os.path.abspath(self._base_dir / Path(path).expanduser()))

    @property
    def job_dir(self) -> Path:
        """`output_path/name`: where the job's spec, ledger and trials live."""
        return self.resolve_path(self.output_path) / self.name

    @property
    def input_paths(self) -> dict[str, Path]:
        """Data channels with absolute paths."""
        return {channel: self.resolve_path(path) for channel, path in self.inputs.items()}

    @property
    def parent_job_dirs(self) -> list[Path]:
        """Warm-start parents as absolute job directories (empty without warm start)."""
        if self.warm_start_config is None:
            return []
        return [
            self.resolve_path(p) for p in self.warm_start_config.parent_hyperparameter_tuning_jobs
        ]

    @property
    def objective_definition(self) -> MetricDefinition:
        """The metric definition whose value is the objective."""
        return next(d for d in self.metric_definitions if d.name == self.objective_metric_name)

    def search_space(self) -> SearchSpace:
        """Static and tuned hyperparameters as one `search.SearchSpace`."""
        return SearchSpace.from_config({**self.hyperparameters, **self.hyperparameter_ranges})

    def fingerprint(self) -> str:
        """A stable hash (sha256 hex) of what makes two jobs train the same model on the same
        data: the trainer, the static hyperparameters and the inputs, as written in the spec
        (so moving the project does not change it). Ranges and budgets are left out; they may
        change between a warm-start parent and its child."""
        identity = {
            "trainer": self.trainer.model_dump(mode="json"),
            "hyperparameters": self.hyperparameters,
            "inputs": self.inputs,
        }
        canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class _Findings:
    """Problems (the spec is rejected) and warnings (it is accepted) found by the checks below."""

    def __init__(self) -> None:
        self.problems: list[SpecProblem] = []
        self.warnings: list[SpecProblem] = []

    def problem(self, field: str, value: Any, rule: str) -> None:
        self.problems.append(SpecProblem(field, value, rule))

    def warning(self, field: str, value: Any, rule: str) -> None:
        self.warnings.append(SpecProblem(field, value, rule))


def _check_metrics(spec: JobSpec, findings: _Findings) -> None:
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


def _check_parameters(spec: JobSpec, findings: _Findings) -> None:
    """Ranges are checked one by one (so every bad range is reported under its own field),
    then as a whole space (limits on counts, static values); the rules are `search`'s."""
    both = sorted(set(spec.hyperparameters) & set(spec.hyperparameter_ranges))
    for name in both:
        findings.problem(
            f"hyperparameters.{name}",
            spec.hyperparameters[name],
            "duplicate parameter name: also in hyperparameter_ranges; "
            "a parameter is either static or tuned",
        )
    for name, declared in spec.hyperparameter_ranges.items():
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


def _check_strategy(spec: JobSpec, findings: _Findings) -> None:
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
            spec.hyperband_strategy_config.model_dump(),
            f"is only allowed with strategy Hyperband, not {spec.strategy.value}",
        )


def _check_trainer_exists(trainer: TrainerSpec, findings: _Findings) -> None:
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


def _check_parents_exist(spec: JobSpec, findings: _Findings) -> None:
    if spec.warm_start_config is None:
        return
    for index, parent in enumerate(spec.warm_start_config.parent_hyperparameter_tuning_jobs):
        path = spec.resolve_path(parent)
        if not path.is_dir():
            findings.problem(
                f"warm_start_config.parent_hyperparameter_tuning_jobs[{index}]",
                parent,
                f"parent job directory not found (resolved to {path})",
            )


def load_job_spec(
    path: str | Path, *, base_dir: str | Path | None = None, check_paths: bool = True
) -> JobSpec:
    """Read and validate a YAML job file. Relative paths in it start from the file's directory
    unless `base_dir` says otherwise (e.g. reading back a job directory's spec.yaml)."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SpecError(
            [SpecProblem("<job file>", source, f"cannot be read: {error.strerror}")], source=source
        ) from None
    data = parse_yaml(text, source=source)
    anchor = base_dir if base_dir is not None else path.parent
    return JobSpec.from_mapping(data, base_dir=anchor, check_paths=check_paths, source=source)


def parse_yaml(text: str, *, source: str | None = None) -> Any:
    """YAML to Python data, refusing duplicate keys (PyYAML silently keeps the last one, which
    would hide a parameter defined twice)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        duplicates = _duplicate_keys(node, "") if node is not None else []
        if duplicates:
            raise SpecError(duplicates, source=source)
        return loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as error:
        raise SpecError(
            [
                SpecProblem(
                    "<job file>", source, f"is not valid YAML: {_describe_yaml_error(error)}"
                )
            ],
            source=source,
        ) from None
    finally:
        loader.dispose()


def _describe_yaml_error(error: yaml.YAMLError) -> str:
    """PyYAML's message on one line: what is wrong and where."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        return f"{error.problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(error).split())


def _duplicate_keys(node: yaml.Node, path: str) -> list[SpecProblem]:
    problems = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = f"{path}.{key}" if path else key
            if key in seen:
                problems.append(
                    SpecProblem(
                        child,
                        key,
                        f"duplicate key (again on line {key_node.start_mark.line + 1}); "
                        "each name may appear once",
                    )
                )
            seen.add(key)
            problems += _duplicate_keys(value_node, child)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            problems += _duplicate_keys(item, f"{path}[{index}]")
    return problems


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


def validate_sample_log(spec: JobSpec, log_text: str) -> list[SpecProblem]:
    """Metric definitions that would extract nothing from this log (a sample of the trainer's
    output): their regex matches no line, or captures no number. Lines are matched one by one
    with `re.search`, as trials do."""
    lines = log_text.splitlines()
    problems = []
    for index, definition in enumerate(spec.metric_definitions):
        captures = [m.group(1) for line in lines if (m := definition.pattern.search(line))]
        field = f"metric_definitions[{index}].Regex"
        if not captures:
            problems.append(
                SpecProblem(
                    field,
                    definition.regex,
                    f"metric {definition.name!r} matches no line of the log",
                )
            )
        elif not any(_is_number(capture) for capture in captures):
            problems.append(
                SpecProblem(
                    field,
                    definition.regex,
                    f"metric {definition.name!r} matches the log but captures no number "
                    f"(first capture: {captures[0]!r})",
                )
            )
    return problems


def _is_number(text: str | None) -> bool:
    if text is None:
        return False
    try:
        float(text)
    except ValueError:
        return False
    return True
