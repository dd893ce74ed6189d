"""Connects a running job to the Prometheus exporter: starts the server, forwards trial events."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry

from orchestrator.control.events import (
    Listener,
    TrialEvent,
    TrialFinished,
    TrialProgress,
    TrialStarted,
)
from orchestrator.control.planner import TrialPlanner
from orchestrator.monitor.exporter import TuningMetrics
from orchestrator.monitor.server import start_metrics_server
from orchestrator.spec import JobSpec
from orchestrator.store.records import TrialRecord


def start_job_metrics(
    *,
    spec: JobSpec,
    planner: TrialPlanner,
    trials: Mapping[str, TrialRecord],
    host: str,
    port: int,
    allow_public: bool,
) -> tuple[Listener, Callable[[], None]]:
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
    computed = planner.searcher.compute_seconds  # the searcher's own time per suggestion
    waited = planner.suggest_seconds  # what free slots waited for their suggestions
    computed_seen, waited_seen = len(computed), len(waited)

    def listener(event: TrialEvent) -> None:
        nonlocal computed_seen, waited_seen
        for seconds in computed[computed_seen:]:
            metrics.observe_suggestion_latency(seconds)
        for seconds in waited[waited_seen:]:
            metrics.observe_suggestion_wait(seconds)
        computed_seen, waited_seen = len(computed), len(waited)
        metrics.set_fallback_count(planner.searcher.telemetry().fallback_count)
        if isinstance(event, TrialStarted):
            metrics.trial_started(event.trial_id)
        elif isinstance(event, TrialProgress):
            metrics.trial_progress(
                event.trial_id,
                objective=event.objective,
                epoch=event.epoch,
                total_epochs=total_epochs,
            )
        elif isinstance(event, TrialFinished):
            metrics.trial_finished(
                event.trial_id,
                state=event.end.state,
                objective=event.end.objective,
                duration_s=event.end.duration_s or 0.0,
                gpus_per_trial=gpus,
                will_retry=event.will_retry,
            )

    return listener, server.close


def _total_epochs(spec: JobSpec) -> int | None:
    """The epoch count trials report against: the static `epochs` hyperparameter, if any."""
    value = spec.hyperparameters.get("epochs")
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
