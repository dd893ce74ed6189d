"""Prometheus metrics for a running tuning job, served from the driver with prometheus-client.

The runner owns one `TuningMetrics` per job and calls it on every trial event; Prometheus scrapes
the server started by `start_metrics_server` (default port `DEFAULT_METRICS_PORT`, loopback only
unless the user opts in, because metrics reveal what a cluster is doing).

Every series carries a `tuning_job` label (not `job`: Prometheus sets `job` on every scraped series
itself, and a clash would rename ours to `exported_job`). Per-trial series exist only for running
trials and the last `recent_finished_trials` finished ones, so a 500-trial job exposes about as
many series as a 5-trial one. Hyperparameter values never become labels: they are unbounded and
they are the user's business.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections import deque
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from orchestrator.errors import OpenAMTError
from orchestrator.store.records import TrialRecord
from orchestrator.trial.outcome import TrialState
from search import ObjectiveType, SearchSpaceError
from search.enums import find_member, parse_enum

log = logging.getLogger(__name__)

DEFAULT_RECENT_FINISHED_TRIALS = 20

# Trials run for seconds (stand-ins) to a day (ResNet on CIFAR-10 for 50 epochs on a slow GPU).
TRIAL_DURATION_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 43200, 86400)
# A random suggestion takes microseconds; a GP fit with many observations takes seconds.
SUGGESTION_LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ExporterError(OpenAMTError):
    """The metrics exporter was given something it cannot work with."""


class TuningMetrics:
    """The job's metrics in an injected registry; the runner calls one method per trial event."""

    def __init__(
        self,
        *,
        registry: CollectorRegistry,
        job_name: str,
        strategy: str,
        objective_metric_name: str,
        objective_type: str,
        max_jobs: int,
        recent_finished_trials: int = DEFAULT_RECENT_FINISHED_TRIALS,
    ) -> None:
        _require_text("job_name", job_name)
        _require_text("strategy", strategy)
        _require_text("objective_metric_name", objective_metric_name)
        if isinstance(max_jobs, bool) or not isinstance(max_jobs, int) or max_jobs < 1:
            raise ExporterError(f"max_jobs: must be an integer >= 1 (got {max_jobs!r})")
        if (
            isinstance(recent_finished_trials, bool)
            or not isinstance(recent_finished_trials, int)
            or recent_finished_trials < 0
        ):
            raise ExporterError(
                f"recent_finished_trials: must be an integer >= 0 (got {recent_finished_trials!r})"
            )
        self.job_name = job_name
        try:
            self.objective_type = parse_enum(ObjectiveType, objective_type, field="objective_type")
        except SearchSpaceError as error:
            raise ExporterError(str(error)) from None
        self.recent_finished_trials = recent_finished_trials
        self._lock = threading.Lock()
        self._seen: set[str] = set()  # every trial id ever started, so retries count once
        self._states: dict[str, TrialState] = {}
        self._recent_finished: deque[str] = deque()
        self._best: float | None = None
        self._touched = False

        job = ("tuning_job",)
        trial = ("tuning_job", "trial")
        self._info = Info(
            "openamt_job", "The tuning job's strategy and objective.", job, registry=registry
        )
        self._max_jobs = Gauge(
            "openamt_max_jobs", "Trials the job will run in total.", job, registry=registry
        )
        self._trials = Gauge(
            "openamt_trials",
            "Trials by state; a trial waiting for a retry counts as Running.",
            ("tuning_job", "state"),
            registry=registry,
        )
        self._started = Counter(
            "openamt_trials_started",
            "Trials started (retries not counted).",
            job,
            registry=registry,
        )
        self._completed = Counter(
            "openamt_trials_completed", "Trials completed.", job, registry=registry
        )
        self._failed = Counter(
            "openamt_trials_failed", "Trials failed for good.", job, registry=registry
        )
        self._stopped = Counter(
            "openamt_trials_stopped", "Trials stopped early.", job, registry=registry
        )
        self._retries = Counter(
            "openamt_trial_retries", "Failed attempts that were retried.", job, registry=registry
        )
        self._best_objective = Gauge(
            "openamt_best_objective",
            "Best objective of the finished trials so far (direction in openamt_job_info).",
            job,
            registry=registry,
        )
        self._trial_objective = Gauge(
            "openamt_trial_objective",
            "Latest objective of each running or recently finished trial.",
            trial,
            registry=registry,
        )
        self._trial_epoch = Gauge(
            "openamt_trial_epoch",
            "Latest epoch (step) of each running trial.",
            trial,
            registry=registry,
        )
        self._trial_progress = Gauge(
            "openamt_trial_progress_ratio",
            "Epoch / total epochs of each running trial that says how many it will run.",
            trial,
            registry=registry,
        )
        self._duration = Histogram(
            "openamt_trial_duration_seconds",
            "Wall time of each trial attempt.",
            job,
            buckets=TRIAL_DURATION_BUCKETS,
            registry=registry,
        )
        self._suggestion_latency = Histogram(
            "openamt_suggestion_latency_seconds",
            "Time the searcher took for one suggestion.",
            job,
            buckets=SUGGESTION_LATENCY_BUCKETS,
            registry=registry,
        )
        self._suggestion_wait = Histogram(
            "openamt_suggestion_wait_seconds",
            "Time a free trial slot waited for its suggestion (less than the searcher's time "
            "when the next suggestion is computed ahead, while trials run).",
            job,
            buckets=SUGGESTION_LATENCY_BUCKETS,
            registry=registry,
        )
        self._fallbacks = Gauge(
            "openamt_searcher_fallbacks",
            "Suggestions the Bayesian searcher had to make at random (GP fit failed).",
            job,
            registry=registry,
        )
        self._gpu_seconds = Counter(
            "openamt_gpu_seconds",
            "GPU time held by trials (GPUs per trial x duration).",
            job,
            registry=registry,
        )

        self._info.labels(job_name).info(
            {
                "strategy": strategy,
                "objective_metric": objective_metric_name,
                "direction": self.objective_type.value,
            }
        )
        self._max_jobs.labels(job_name).set(max_jobs)
        # Touch every job-level series so dashboards show zeros rather than "no data".
        for counter in (
            self._started,
            self._completed,
            self._failed,
            self._stopped,
            self._retries,
            self._gpu_seconds,
        ):
            counter.labels(job_name)
        self._duration.labels(job_name)
        self._suggestion_latency.labels(job_name)
        self._suggestion_wait.labels(job_name)
        self._fallbacks.labels(job_name).set(0)
        self._publish_state_counts()

    @property
    def best_objective(self) -> float | None:
        return self._best

    def restore(self, trials: Mapping[str, TrialRecord], *, gpus_per_trial: float = 0.0) -> None:
        """Seed counters, state counts and the best objective from the ledger when a job resumes.

        Call once, before any other event. Trials the ledger has as running are not running now:
        they are only counted as started, and show up as running when the runner restarts them.
        GPU-seconds are estimated from each trial's first start to its last end.
        """
        with self._lock:
            if self._touched:
                raise ExporterError("restore: must be called once, before any trial event")
            self._touched = True
            for record in trials.values():
                self._mark_seen(record.trial_id)
                if not record.finished:
                    continue
                self._count_final_state(record.state)
                self._states[record.trial_id] = record.state
                if record.duration_s is not None:
                    self._duration.labels(self.job_name).observe(record.duration_s)
                    self._gpu_seconds.labels(self.job_name).inc(record.duration_s * gpus_per_trial)
                self._consider_best(record.state, record.objective)
            finished_in_order = sorted(
                (r for r in trials.values() if r.finished and r.end_time is not None),
                key=lambda r: r.end_time,
            )
            for record in finished_in_order:
                self._show_finished_objective(record.trial_id, record.objective)
            self._publish_state_counts()

    def trial_started(self, trial_id: str) -> None:
        """A trial (or a retry of it) began running."""
        with self._lock:
            self._touched = True
            self._start(trial_id)
            self._publish_state_counts()

    def trial_progress(
        self, trial_id: str, *, objective: float | None, epoch: int, total_epochs: int | None
    ) -> None:
        """A running trial reported; `total_epochs` is None when the trainer does not say."""
        with self._lock:
            self._touched = True
            state = self._states.get(trial_id)
            if state is None:
                self._start(trial_id)  # a report can overtake the start event; count it once
                self._publish_state_counts()
            elif state.finished:
                return  # a report straggling in after the end changes nothing
            if _is_finite(objective):
                self._trial_objective.labels(self.job_name, trial_id).set(objective)
            self._trial_epoch.labels(self.job_name, trial_id).set(epoch)
            if total_epochs is not None and total_epochs > 0:
                ratio = min(max(epoch / total_epochs, 0.0), 1.0)
                self._trial_progress.labels(self.job_name, trial_id).set(ratio)

    def trial_finished(
        self,
        trial_id: str,
        *,
        state: TrialState,
        objective: float | None,
        duration_s: float,
        gpus_per_trial: float,
        will_retry: bool = False,
    ) -> None:
        """An attempt ended; with `will_retry` the trial stays running and only a retry counts."""
        state = _finished_state(state)
        if not _is_finite(duration_s) or duration_s < 0:
            raise ExporterError(f"duration_s: must be a finite number >= 0 (got {duration_s!r})")
        if not _is_finite(gpus_per_trial) or gpus_per_trial < 0:
            raise ExporterError(
                f"gpus_per_trial: must be a finite number >= 0 (got {gpus_per_trial!r})"
            )
        with self._lock:
            self._touched = True
            previous = self._states.get(trial_id)
            if previous is not None and previous.finished:
                log.warning(
                    "trial %s finished twice without a restart; ignoring the second end", trial_id
                )
                return
            self._mark_seen(trial_id)
            self._duration.labels(self.job_name).observe(duration_s)
            self._gpu_seconds.labels(self.job_name).inc(duration_s * gpus_per_trial)
            self._remove_running_series(trial_id)
            if will_retry:
                self._retries.labels(self.job_name).inc()
                self._states[trial_id] = TrialState.RUNNING
                self._publish_state_counts()
                return
            self._states[trial_id] = state
            self._count_final_state(state)
            self._consider_best(state, objective)
            self._show_finished_objective(trial_id, objective)
            self._publish_state_counts()

    def observe_suggestion_latency(self, seconds: float) -> None:
        """The searcher computed one suggestion in `seconds`."""
        self._suggestion_latency.labels(self.job_name).observe(_checked_seconds(seconds))

    def observe_suggestion_wait(self, seconds: float) -> None:
        """A free slot waited `seconds` for its suggestion."""
        self._suggestion_wait.labels(self.job_name).observe(_checked_seconds(seconds))

    def set_fallback_count(self, count: int) -> None:
        """The searcher's running total of random fallbacks (it keeps the count, we mirror it)."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ExporterError(f"count: must be an integer >= 0 (got {count!r})")
        self._fallbacks.labels(self.job_name).set(count)

    # -- internals (callers hold self._lock) --

    def _mark_seen(self, trial_id: str) -> None:
        if trial_id not in self._seen:
            self._seen.add(trial_id)
            self._started.labels(self.job_name).inc()

    def _start(self, trial_id: str) -> None:
        self._mark_seen(trial_id)
        self._states[trial_id] = TrialState.RUNNING
        if trial_id in self._recent_finished:  # a finished trial started again: live, not recent
            self._recent_finished.remove(trial_id)

    def _count_final_state(self, state: TrialState) -> None:
        counter = {
            TrialState.COMPLETED: self._completed,
            TrialState.FAILED: self._failed,
            TrialState.STOPPED: self._stopped,
        }[state]
        counter.labels(self.job_name).inc()

    def _consider_best(self, state: TrialState, objective: float | None) -> None:
        """Same rule as `ledger.best_trial`: completed and stopped trials with an objective."""
        if state not in (TrialState.COMPLETED, TrialState.STOPPED) or not _is_finite(objective):
            return
        maximize = self.objective_type is ObjectiveType.MAXIMIZE
        if self._best is None or (objective > self._best if maximize else objective < self._best):
            self._best = objective
            self._best_objective.labels(self.job_name).set(objective)

    def _show_finished_objective(self, trial_id: str, objective: float | None) -> None:
        """Keep a finished trial's final objective among the recent ones, evicting the oldest."""
        if trial_id in self._recent_finished:
            self._recent_finished.remove(trial_id)
        if not _is_finite(objective) or self.recent_finished_trials == 0:
            self._remove_series(self._trial_objective, trial_id)
            return
        self._trial_objective.labels(self.job_name, trial_id).set(objective)
        self._recent_finished.append(trial_id)
        while len(self._recent_finished) > self.recent_finished_trials:
            evicted = self._recent_finished.popleft()
            self._remove_series(self._trial_objective, evicted)

    def _remove_running_series(self, trial_id: str) -> None:
        self._remove_series(self._trial_epoch, trial_id)
        self._remove_series(self._trial_progress, trial_id)

    def _remove_series(self, gauge: Gauge, trial_id: str) -> None:
        with contextlib.suppress(KeyError):  # older prometheus-client raise for absent series
            gauge.remove(self.job_name, trial_id)

    def _publish_state_counts(self) -> None:
        counts = dict.fromkeys(TrialState, 0)
        for state in self._states.values():
            counts[state] += 1
        for state, count in counts.items():
            self._trials.labels(self.job_name, state.value).set(count)


def _finished_state(value: TrialState | str) -> TrialState:
    """Completed, Failed or Stopped, given as the enum or its name in any letter case."""
    state = find_member(TrialState, value)
    if state is not None and state.finished:
        return state
    raise ExporterError(
        f"state: must be Completed, Failed or Stopped for a finished trial (got {value!r})"
    )


def _is_finite(value: float | None) -> bool:
    return value is not None and not isinstance(value, bool) and math.isfinite(value)


def _require_text(field: str, value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ExporterError(f"{field}: must be a non-empty string (got {value!r})")


def _checked_seconds(seconds: float) -> float:
    if not _is_finite(seconds) or seconds < 0:
        raise ExporterError(f"seconds: must be a finite number >= 0 (got {seconds!r})")
    return seconds
