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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from orchestrator.errors import SpecError, SpecProblem
from orchestrator.spec import checks
from orchestrator.spec.enums import (
    EarlyStoppingType,
    EarlyStoppingTypeField,
    FiniteFloat,
    ObjectiveTypeField,
    StrategyField,
    StrictInt,
)
from orchestrator.spec.problems import RuleViolation, problems_from_validation_error
from orchestrator.spec.sections import (
    CompletionCriteria,
    HyperbandStrategyConfig,
    MetricDefinition,
    ResourcesPerTrial,
    RetryStrategy,
    Section,
    TrainerSpec,
    WarmStartConfig,
    base_dir_from,
)
from search import ObjectiveType, Parameter, SearchSpace, Strategy

NAME_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}")
NAME_RULE = (
    "SageMaker's tuning job name rule: 1-32 letters, digits or hyphens, starting and ending "
    r"with a letter or digit (^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$)"
)
MAX_NAME_CHARS = 32
DEFAULT_MAX_RUN_S = 86_400.0  # SageMaker's max_run default: one day per trial
DEFAULT_GRACE_PERIOD_S = 120.0  # SageMaker's StopTrainingJob: SIGTERM, 120 s, SIGKILL
DEFAULT_MAX_LOG_BYTES = 64 * 1024 * 1024
MIN_LOG_BYTES = 64 * 1024
MAX_METRIC_DEFINITIONS = 20
# Channel names become `SM_CHANNEL_<NAME>` environment variables, so they must be valid in one.
CHANNEL_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")


class JobSpec(Section):
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
    # Per trial; SageMaker's `max_run` default. A stop or a timeout sends SIGTERM, waits the
    # grace period, then SIGKILLs the trial's whole process tree.
    max_runtime_in_seconds: FiniteFloat = Field(default=DEFAULT_MAX_RUN_S, gt=0)
    stop_grace_period_in_seconds: FiniteFloat = Field(default=DEFAULT_GRACE_PERIOD_S, ge=0)
    max_trial_log_bytes: StrictInt = Field(default=DEFAULT_MAX_LOG_BYTES, ge=MIN_LOG_BYTES)
    random_seed: StrictInt = Field(default=0, ge=0)
    output_path: str = Field(default="runs", min_length=1)
    early_stopping_type: EarlyStoppingTypeField = EarlyStoppingType.OFF
    hyperband_strategy_config: HyperbandStrategyConfig | None = None
    completion_criteria: CompletionCriteria | None = None
    retry_strategy: RetryStrategy | None = None
    warm_start_config: WarmStartConfig | None = None
    # Accepted for compatibility and kept with the job, never acted on (the SageMaker SDK's
    # role, tags, VPC settings, framework image...; see orchestrator/sagemaker/README.md).
    recorded_settings: dict[str, Any] | None = None

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
        seen: dict[str, str] = {}
        for channel, path in value.items():
            if not CHANNEL_PATTERN.fullmatch(channel):
                raise RuleViolation(
                    "a channel name is 1-64 letters, digits or underscores starting with a "
                    "letter (it becomes the SM_CHANNEL_<NAME> environment variable)",
                    value=channel,
                    subfield=channel,
                )
            variable = f"SM_CHANNEL_{channel.upper()}"
            if variable in seen:
                raise RuleViolation(
                    f"differs from {seen[variable]!r} only by case; both would set {variable}, "
                    "so channel names must differ ignoring case",
                    value=channel,
                    subfield=channel,
                )
            seen[variable] = channel
            if not path:
                raise RuleViolation("must be a path", value=path, subfield=channel)
        return value

    @model_validator(mode="after")
    def _check_across_fields(self, info: ValidationInfo) -> JobSpec:
        """Rules that need several fields or the file system; raises `SpecError` directly so
        each problem keeps its own field path."""
        context = info.context or {}
        self._base_dir = base_dir_from(info)
        findings = checks.Findings()
        checks.check_metrics(self, findings)
        checks.check_parameters(self, findings)
        checks.check_strategy(self, findings)
        if context.get("check_paths", True):
            checks.check_trainer_exists(self.trainer, findings)
            checks.check_parents_exist(self, findings)
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
    def hyperband_resources(self) -> tuple[int, int]:
        """(min_resource, max_resource) for strategy Hyperband: the config's, else 1 and the
        static `epochs` hyperparameter (81 without one)."""
        config = self.hyperband_strategy_config
        if config is not None:
            return config.min_resource, config.max_resource
        epochs = self.hyperparameters.get("epochs")
        return 1, epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else 81

    @property
    def maximize(self) -> bool:
        """Whether larger objective values are better."""
        return self.objective_type is ObjectiveType.MAXIMIZE

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
