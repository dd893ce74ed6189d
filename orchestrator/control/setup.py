"""Building a job's planner and job control from its spec and its record (no Ray)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator.control.completion import CompletionRules, active_seconds
from orchestrator.control.early_stopping import MedianStoppingRule
from orchestrator.control.job_control import JobControl
from orchestrator.control.planner import TrialPlanner
from orchestrator.errors import ResumeError
from orchestrator.spec import CompleteOnConvergence, EarlyStoppingType, JobSpec, Strategy
from orchestrator.spec.enums import ConfigurationSelection
from orchestrator.store.job_dir import JobDir
from orchestrator.store.ledger import Ledger
from orchestrator.store.records import summarize_trials
from orchestrator.store.warm_start import parent_observations

#: Successive halving keeps about a third of the trials at each rung (SageMaker's and Ray's).
HYPERBAND_REDUCTION_FACTOR = 3


def make_planner(
    spec: JobSpec, job_dir: JobDir, ledger: Ledger, *, capacity: Callable[[], int] | None = None
) -> TrialPlanner:
    """The job's planner, its searcher restored from the job directory (or warm-started)."""
    from search import make_searcher

    searcher = make_searcher(
        spec.strategy.value,
        spec.search_space(),
        objective_type=spec.objective_type.value,
        seed=spec.random_seed,
        prior_observations=parent_observations(spec, job_dir) or None,
        **_strategy_options(spec),
    )
    state = job_dir.load_searcher_state()
    if state is not None:
        searcher.load_state_dict(state)
    elif ledger.events():
        raise ResumeError(
            f"{job_dir.searcher_state_path} is missing but the ledger has trials; restore the "
            "file or move the job directory aside to start afresh"
        )
    retry = spec.retry_strategy.maximum_retry_attempts if spec.retry_strategy else 0
    return TrialPlanner(
        searcher=searcher,
        ledger=ledger,
        job_dir=job_dir,
        max_jobs=spec.max_jobs,
        max_parallel_jobs=spec.max_parallel_jobs,
        max_retry_attempts=retry,
        capacity=capacity,
    )


def _strategy_options(spec: JobSpec) -> dict[str, Any]:
    """Hyperband's successive halving and its choice of configurations live in its searcher."""
    if spec.strategy is not Strategy.HYPERBAND:
        return {}
    min_resource, max_resource = spec.hyperband_resources
    config = spec.hyperband_strategy_config
    selection = config.configuration_selection if config else ConfigurationSelection.BAYESIAN
    return {
        "min_resource": min_resource,
        "max_resource": max_resource,
        "reduction_factor": HYPERBAND_REDUCTION_FACTOR,
        "guided": selection is ConfigurationSelection.BAYESIAN,
    }


def make_control(spec: JobSpec, ledger: Ledger, planner: TrialPlanner) -> JobControl:
    """The job's early stopping and completion rules, replayed from the ledger."""
    criteria = spec.completion_criteria
    not_improving = criteria.best_objective_not_improving if criteria else None
    convergence = criteria.convergence_detected if criteria else None
    maximize = spec.maximize
    events = ledger.events()
    control = JobControl(
        planner=planner,
        rules=CompletionRules(
            maximize=maximize,
            target=criteria.target_objective_metric_value if criteria else None,
            not_improving_trials=(
                not_improving.max_number_of_training_jobs_not_improving if not_improving else None
            ),
            convergence=bool(
                convergence and convergence.complete_on_convergence is CompleteOnConvergence.ENABLED
            ),
            max_runtime_s=criteria.max_runtime_in_seconds if criteria else None,
            elapsed_before_s=active_seconds(events),
        ),
        median_rule=(
            MedianStoppingRule(maximize=maximize)
            if spec.early_stopping_type is EarlyStoppingType.AUTO
            else None
        ),
        grace_period_s=spec.stop_grace_period_in_seconds,
        hyperband=spec.strategy is Strategy.HYPERBAND,
    )
    control.restore(summarize_trials(events, objective_metric_name=spec.objective_metric_name))
    return control
