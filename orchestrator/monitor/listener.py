"""Connects a running job to the Prometheus exporter: starts the server, forwards trial events."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry

from orchestrator.monitor.exporter import TuningMetrics, start_metrics_server
from orchestrator.store.ledger import TrialRecord
from orchestrator.spec import JobSpec
from orchestrator.control.planner import TrialPlanner


def start_job_metrics(
    *,
    spec: JobSpec,
    planner: TrialPlanner,
    trials: Mapping[str, TrialRecord],
    host: str,
    port: int,
    allow_public: bool,
) -> tuple[Callable[[str, str, dict[str, Any]], None], Callable[[], None]]:
    """Serve the job's metrics and return (listener, close).

    Called before Ray starts, so a taken port fails the job before any trial runs.
    """
    registry = CollectorRegistry()
    metrics = TuningMetrics(
        registry=registry,
        job_name=spec.name,
        strategy=spec.strategy.value,
        objective_metric_name=spec.objective_metric_name,
        objective_type=spec.objective_type.value,
        max_jobs=spec.max_jobs,
    )
    metrics.restore(trials, gpus_per_trial=spec.resources_per_trial.gpu)
    server = start_metrics_server(
        registry=registry, host=host, port=port, allow_public=allow_public
    )
    total_epochs = _total_epochs(spec)
    gpus = spec.resources_per_trial.gpu
    # The searcher's own timings when it keeps them (`SuggestAhead`), else the planner's.
    computed = getattr(planner.searcher, "compute_seconds", planner.suggest_seconds)
    waited = planner.suggest_seconds
    computed_seen, waited_seen = len(computed), len(waited)

    def listener(event: str, trial_id: str, details: dict[str, Any]) -> None:
        nonlocal computed_seen, waited_seen
        for seconds in computed[computed_seen:]:
            metrics.observe_suggestion_latency(seconds)
        for seconds in waited[waited_seen:]:
            metrics.observe_suggestion_wait(seconds)
        computed_seen, waited_seen = len(computed), len(waited)
        metrics.set_fallback_count(planner.searcher.fallback_count)
        if event == "started":
            metrics.trial_started(trial_id)
        elif event == "progress":
            metrics.trial_progress(
                trial_id,
                objective=details["objective"],
                epoch=details["epoch"],
                total_epochs=total_epochs,
            )
        elif event == "finished":
            end = details["end"]
            metrics.trial_finished(
                trial_id,
                state=end.state,
                objective=end.objective,
                duration_s=end.duration_s or 0.0,
                gpus_per_trial=gpus,
                will_retry=details["will_retry"],
            )

    return listener, server.close


def _total_epochs(spec: JobSpec) -> int | None:
    """The epoch count trials report against: the static `epochs` hyperparameter, if any."""
    value = spec.hyperparameters.get("epochs")
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
