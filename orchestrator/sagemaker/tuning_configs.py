"""The tuner's configuration objects, with the SDK's arguments, and their job-spec form.

Each has the SDK's constructor, `to_input_req()` (SageMaker's request form) and `to_spec()` (the
job-spec section it becomes), and `from_spec()` for `HyperparameterTuner.attach`.
`WarmStartTypes` is the job spec's own enum (same members, same values).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from orchestrator.spec import CompleteOnConvergence, WarmStartType
from orchestrator.spec.enums import ConfigurationSelection

WarmStartTypes = WarmStartType


class WarmStartConfig:
    """Parent tuning jobs (names, or job directories) whose trials seed the new job."""

    def __init__(self, warm_start_type: WarmStartType, parents: Iterable[str]) -> None:
        if warm_start_type not in list(WarmStartType):
            raise ValueError(
                f"Invalid type: {warm_start_type}, valid warm start types are: "
                f"{list(WarmStartType)}"
            )
        if not parents:
            raise ValueError(f"Invalid parents: {parents}, parents should not be None/empty")
        self.type = warm_start_type
        self.parents = set(parents)

    def to_input_req(self) -> dict[str, Any]:
        return {
            "WarmStartType": self.type.value,
            "ParentHyperParameterTuningJobs": [
                {"HyperParameterTuningJobName": parent} for parent in sorted(self.parents)
            ],
        }

    @classmethod
    def from_job_desc(cls, warm_start_config: Mapping[str, Any] | None) -> WarmStartConfig | None:
        if not warm_start_config or "WarmStartType" not in warm_start_config:
            return None
        parents = [
            p["HyperParameterTuningJobName"]
            for p in warm_start_config.get("ParentHyperParameterTuningJobs", [])
        ]
        return cls(WarmStartType(warm_start_config["WarmStartType"]), parents)

    @classmethod
    def from_spec(cls, section: Mapping[str, Any] | None) -> WarmStartConfig | None:
        if not section:
            return None
        parents = [str(p) for p in section["parent_hyperparameter_tuning_jobs"]]
        return cls(WarmStartType(section["warm_start_type"]), parents)


class HyperbandStrategyConfig:
    """Hyperband's resources (epochs): a trial is not stopped before `min_resource` and is
    done at `max_resource`. New configurations are drawn at random, as SageMaker's Hyperband
    does; `configuration_selection="Bayesian"` (openamt's addition) draws them from a Gaussian
    process that learns from every rung."""

    def __init__(
        self, max_resource: int, min_resource: int, *, configuration_selection: str = "Random"
    ) -> None:
        self.min_resource = min_resource
        self.max_resource = max_resource
        self.configuration_selection = configuration_selection

    def to_input_req(self) -> dict[str, Any]:
        return {"MinResource": self.min_resource, "MaxResource": self.max_resource}

    def to_spec(self) -> dict[str, Any]:
        return {
            "min_resource": self.min_resource,
            "max_resource": self.max_resource,
            "configuration_selection": self.configuration_selection,
        }

    @classmethod
    def from_job_desc(cls, config: Mapping[str, Any]) -> HyperbandStrategyConfig:
        return cls(min_resource=config["MinResource"], max_resource=config["MaxResource"])


class StrategyConfig:
    """The strategy's configuration: Hyperband's, for `strategy="Hyperband"`."""

    def __init__(self, hyperband_strategy_config: HyperbandStrategyConfig) -> None:
        self.hyperband_strategy_config = hyperband_strategy_config

    def to_input_req(self) -> dict[str, Any]:
        return {"HyperbandStrategyConfig": self.hyperband_strategy_config.to_input_req()}

    @classmethod
    def from_spec(cls, section: Mapping[str, Any] | None) -> StrategyConfig | None:
        if not section:
            return None
        selection = section.get("configuration_selection", ConfigurationSelection.BAYESIAN.value)
        return cls(
            HyperbandStrategyConfig(
                max_resource=section["max_resource"],
                min_resource=section["min_resource"],
                configuration_selection=selection,
            )
        )


class TuningJobCompletionCriteriaConfig:
    """When a tuning job may end before `max_jobs` trials (SageMaker's rules)."""

    def __init__(
        self,
        max_number_of_training_jobs_not_improving: int | None = None,
        complete_on_convergence: bool | None = None,
        target_objective_metric_value: float | None = None,
    ) -> None:
        self.max_number_of_training_jobs_not_improving = max_number_of_training_jobs_not_improving
        self.complete_on_convergence = complete_on_convergence
        self.target_objective_metric_value = target_objective_metric_value

    def to_input_req(self) -> dict[str, Any]:
        request: dict[str, Any] = {}
        not_improving = self.max_number_of_training_jobs_not_improving
        if not_improving is not None:
            request["BestObjectiveNotImproving"] = {
                "MaxNumberOfTrainingJobsNotImproving": not_improving
            }
        if self.target_objective_metric_value is not None:
            request["TargetObjectiveMetricValue"] = self.target_objective_metric_value
        if self.complete_on_convergence is not None:
            request["ConvergenceDetected"] = {"CompleteOnConvergence": self._convergence()}
        return request

    def to_spec(self) -> dict[str, Any]:
        section: dict[str, Any] = {}
        if self.max_number_of_training_jobs_not_improving is not None:
            section["best_objective_not_improving"] = {
                "max_number_of_training_jobs_not_improving": (
                    self.max_number_of_training_jobs_not_improving
                )
            }
        if self.target_objective_metric_value is not None:
            section["target_objective_metric_value"] = self.target_objective_metric_value
        if self.complete_on_convergence is not None:
            section["convergence_detected"] = {"complete_on_convergence": self._convergence()}
        return section

    def _convergence(self) -> str:
        enabled = CompleteOnConvergence.ENABLED if self.complete_on_convergence else None
        return (enabled or CompleteOnConvergence.DISABLED).value

    @classmethod
    def from_spec(
        cls, section: Mapping[str, Any] | None
    ) -> TuningJobCompletionCriteriaConfig | None:
        """The criteria of a job spec's `completion_criteria` (its `max_runtime_in_seconds` is
        the tuner's argument of that name)."""
        if not section:
            return None
        improving = section.get("best_objective_not_improving") or {}
        convergence = section.get("convergence_detected") or {}
        on_convergence = convergence.get("complete_on_convergence")
        config = cls(
            max_number_of_training_jobs_not_improving=improving.get(
                "max_number_of_training_jobs_not_improving"
            ),
            complete_on_convergence=(
                None
                if on_convergence is None
                else CompleteOnConvergence(on_convergence) is CompleteOnConvergence.ENABLED
            ),
            target_objective_metric_value=section.get("target_objective_metric_value"),
        )
        return config if config.to_spec() else None
