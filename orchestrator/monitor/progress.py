"""Live progress of a running job in the terminal: counts, best so far, and a line per trial."""

from __future__ import annotations

import math
from collections.abc import Mapping

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from orchestrator.control.events import TrialEvent, TrialFinished, TrialStarted
from orchestrator.spec import JobSpec
from orchestrator.store.records import TrialRecord, best_trial
from orchestrator.trial.outcome import TrialEnd, TrialState
from orchestrator.trial.output import without_control_sequences


class ProgressDisplay:
    """A listener (`orchestrator.control.events`) drawing a progress bar on stderr."""

    def __init__(
        self, *, spec: JobSpec, trials: Mapping[str, TrialRecord], console: Console | None = None
    ) -> None:
        self.metric = spec.objective_metric_name
        self.maximize = spec.maximize
        self.console = console or Console(stderr=True)
        finished = [t for t in trials.values() if t.finished]
        self.done = len(finished)
        self.failed = sum(t.state is TrialState.FAILED for t in finished)
        self.stopped = sum(t.state is TrialState.STOPPED for t in finished)
        best = best_trial(trials, maximize=self.maximize)
        self.best: tuple[str, float] | None = (best.trial_id, best.objective) if best else None
        self.running = 0
        self.progress = Progress(
            TextColumn("[bold]{task.fields[job]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[summary]}", markup=False),
            TimeElapsedColumn(),
            console=self.console,
        )
        self.task = self.progress.add_task(
            "tuning", total=spec.max_jobs, completed=self.done, job=spec.name, summary=""
        )
        self.progress.start()
        self._refresh()

    def update(self, event: TrialEvent) -> None:
        if isinstance(event, TrialStarted):
            self.running += 1
        elif isinstance(event, TrialFinished):
            self.running = max(0, self.running - 1)
            self._finished(event.trial_id, event.end, event.will_retry)
        self._refresh()

    def _finished(self, trial_id: str, end: TrialEnd, will_retry: bool) -> None:
        value = end.objective
        shown = f"{self.metric}={value:.6g}" if value is not None else ""
        duration = f"({end.duration_s:.1f} s)" if end.duration_s is not None else ""
        if will_retry:
            self._line(trial_id, ("retrying", "yellow"), end.reason or "")
            return
        self.done += 1
        if end.state is TrialState.FAILED:
            self.failed += 1
            self._line(trial_id, ("Failed", "red"), end.reason or "")
            return
        if end.state is TrialState.STOPPED:
            self.stopped += 1
        if value is not None and math.isfinite(value) and self._better(value):
            self.best = (trial_id, value)
        colour = "green" if end.state is TrialState.COMPLETED else "cyan"
        self._line(trial_id, (end.state.value, colour), f"{shown} {duration}")

    def _line(self, trial_id: str, state: tuple[str, str], detail: str) -> None:
        """One line per finished trial. `detail` may quote the trainer's output: it is shown as
        text (never as markup), without terminal control sequences."""
        self.console.print(
            Text.assemble(trial_id, "  ", state, "  ", without_control_sequences(detail)),
            highlight=False,
        )

    def _better(self, value: float) -> bool:
        if self.best is None:
            return True
        return value > self.best[1] if self.maximize else value < self.best[1]

    def _refresh(self) -> None:
        best = f"best {self.best[1]:.6g} ({self.best[0]})" if self.best else "best -"
        summary = f"running {self.running} · failed {self.failed} · stopped {self.stopped} · {best}"
        self.progress.update(self.task, completed=self.done, summary=summary)

    def close(self) -> None:
        self.progress.stop()
