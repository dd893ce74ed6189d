"""`openamt report JOB_DIR`: one self-contained HTML page about a tuning job.

Everything comes from the job's read model (`orchestrator.store.view`), so the report works on
a finished job, on a running one (its running trials are shown as running) and on a copy of the
directory on another machine. Plots are PNGs embedded as base64, so the file can be mailed or
archived and still open offline.
"""

from __future__ import annotations

import base64
import html
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import OpenAMTError
from orchestrator.report import plots
from orchestrator.store.job_dir import JobDir, write_atomic
from orchestrator.store.ledger import Event
from orchestrator.store.records import TrialRecord
from orchestrator.store.view import load_job_view
from orchestrator.trial.outcome import TrialState
from search import ObjectiveType, SearchSpace, SearchSpaceError
from search.enums import parse_enum

_REQUIRED_SPEC_KEYS = ("name", "objective_metric_name", "objective_type")


class ReportError(OpenAMTError):
    """The job directory cannot be reported on (missing or unreadable spec)."""


@dataclass(frozen=True)
class JobSnapshot:
    """What the report shows: the spec's essentials and the trials as the ledger has them now."""

    name: str
    strategy: str
    objective_metric_name: str
    objective_type: ObjectiveType
    max_jobs: int | None
    space: SearchSpace | None
    trials: Mapping[str, TrialRecord]
    job_start: float
    status: str  # the read model's status, in words
    taken_at: float

    @property
    def maximize(self) -> bool:
        return self.objective_type is ObjectiveType.MAXIMIZE

    def scored(self) -> list[TrialRecord]:
        """Finished trials with an objective, best first."""
        scored = [
            t
            for t in self.trials.values()
            if t.state.scored and t.finished and _finite(t.objective)
        ]
        return sorted(scored, key=lambda t: t.objective, reverse=self.maximize)

    def finished_in_order(self) -> list[TrialRecord]:
        finished = [t for t in self.trials.values() if t.finished]
        return sorted(finished, key=lambda t: t.end_time or self.taken_at)


def write_report(job_dir: Path, *, now: float | None = None) -> Path:
    """Write the job's `report.html` and return its path; `now` is for reproducible tests."""
    snapshot = load_snapshot(Path(job_dir), now=time.time() if now is None else now)
    path = JobDir(path=Path(job_dir)).report_path
    write_atomic(path, render_html(snapshot))  # a browser refreshing mid-write sees a whole file
    return path


def load_snapshot(job_dir: Path, *, now: float) -> JobSnapshot:
    """The read model of the job, with what the report needs checked; fail with the path and
    the reason when the spec is unusable."""
    try:
        view = load_job_view(job_dir)
    except OpenAMTError as error:
        raise ReportError(str(error)) from None
    spec, spec_path = view.spec, JobDir(path=view.path).spec_path
    missing = [key for key in _REQUIRED_SPEC_KEYS if key not in spec]
    if missing:
        raise ReportError(f"{spec_path} lacks {', '.join(missing)}, which the report needs")
    try:
        objective_type = parse_enum(
            ObjectiveType, spec["objective_type"], field=f"{spec_path}: objective_type"
        )
    except SearchSpaceError as error:
        raise ReportError(str(error)) from None
    space = None
    if spec.get("hyperparameter_ranges"):
        try:
            space = SearchSpace.from_config(spec["hyperparameter_ranges"])
        except SearchSpaceError as error:
            raise ReportError(f"{spec_path}: hyperparameter_ranges: {error}") from None
    starts = [e["time"] for e in view.events if e.get("event") == Event.JOB_STARTED.value]
    starts += [t.start_time for t in view.trials.values() if t.start_time is not None]
    return JobSnapshot(
        name=view.name,
        strategy=str(spec.get("strategy", "?")),
        objective_metric_name=view.objective_metric_name,
        objective_type=objective_type,
        max_jobs=spec.get("max_jobs"),
        space=space,
        trials=view.trials,
        job_start=min(starts, default=now),
        status=view.status_text,
        taken_at=now,
    )


# -- HTML --

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1150px; color: #212121; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
.summary td { padding: 0.15em 1em 0.15em 0; }
.empty { color: #616161; font-style: italic; }
img { max-width: 100%; display: block; margin: 0.5em 0; }
table.trials { border-collapse: collapse; font-size: 0.9em; }
table.trials th, table.trials td {
  border: 1px solid #ddd; padding: 0.25em 0.5em; text-align: right;
}
table.trials th { background: #f5f5f5; }
table.trials td.text { text-align: left; }
.Completed { color: #2e7d32; } .Stopped { color: #ef6c00; }
.Failed { color: #c62828; } .Running { color: #1565c0; }
"""


def render_html(snapshot: JobSnapshot) -> str:
    """The whole report page."""
    sections = [
        _summary(snapshot),
        _section("Best objective so far", _best_so_far_plot(snapshot)),
        _section("Objective by hyperparameter", _hyperparameter_plot(snapshot)),
        _section("Timeline", _timeline_plot(snapshot)),
        _section("Trials, best first", _trial_table(snapshot)),
    ]
    title = html.escape(f"openamt report: {snapshot.name}")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<title>{title}</title>\n<link rel="icon" href="data:,">\n'
        f"<style>{_STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n"
        + "\n".join(sections)
        + "\n</body>\n</html>\n"
    )


def _summary(snapshot: JobSnapshot) -> str:
    counts = dict.fromkeys(TrialState, 0)
    for trial in snapshot.trials.values():
        counts[trial.state] += 1
    finished = sum(1 for trial in snapshot.trials.values() if trial.finished)
    scored = snapshot.scored()
    best = (
        f"{_number(scored[0].objective)} (trial {scored[0].trial_id})"
        if scored
        else "none yet (no finished trial)"
    )
    taken = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(snapshot.taken_at))
    rows = [
        ("Job status", snapshot.status),
        ("Strategy", snapshot.strategy),
        ("Objective", f"{snapshot.objective_metric_name} ({snapshot.objective_type.value})"),
        ("Best objective", best),
        ("Trials finished", f"{finished} of {snapshot.max_jobs or '?'}"),
        ("By state", ", ".join(f"{state.value} {n}" for state, n in counts.items())),
        ("Report written", taken),
    ]
    cells = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in rows
    )
    return f'<table class="summary">{cells}</table>'


def _best_so_far_plot(snapshot: JobSnapshot) -> str:
    if not snapshot.scored():
        return _empty("No finished trials yet: the best-so-far curves appear after the first one.")
    figure = plots.best_so_far(
        snapshot.finished_in_order(),
        maximize=snapshot.maximize,
        job_start=snapshot.job_start,
        objective_name=snapshot.objective_metric_name,
    )
    return _image(figure, "best objective so far by trial number and by wall time")


def _hyperparameter_plot(snapshot: JobSnapshot) -> str:
    scored = snapshot.scored()
    if snapshot.space is None:
        return _empty("The spec has no hyperparameter_ranges.")
    if not scored:
        return _empty("No finished trials yet: nothing to plot against the hyperparameters.")
    figure = plots.objective_vs_hyperparameters(
        scored,
        space=snapshot.space,
        objective_name=snapshot.objective_metric_name,
        best_trial_id=scored[0].trial_id,
    )
    return _image(figure, "objective against each tuned hyperparameter")


def _timeline_plot(snapshot: JobSnapshot) -> str:
    if not snapshot.trials:
        return _empty("No trials have started yet.")
    in_start_order = sorted(
        snapshot.trials.values(), key=lambda t: t.start_time or snapshot.taken_at
    )
    figure = plots.timeline(in_start_order, job_start=snapshot.job_start, now=snapshot.taken_at)
    return _image(figure, "timeline of trials coloured by state")


def _trial_table(snapshot: JobSnapshot) -> str:
    if not snapshot.trials:
        return _empty("No trials have started yet.")
    scored = snapshot.scored()
    ranked = {t.trial_id for t in scored}
    rest = sorted(
        (t for t in snapshot.trials.values() if t.trial_id not in ranked),
        key=lambda t: (t.state is not TrialState.RUNNING, t.start_time or 0.0),
    )
    names = list(snapshot.space.parameters) if snapshot.space else _config_names(snapshot.trials)
    header = ["#", "Trial", "State", "Objective", "Duration", "Attempts", "Started at", "Reason"]
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header + names)
    rows = []
    for rank, trial in enumerate([*scored, *rest], start=1):
        cells = [
            _td(str(rank) if trial.trial_id in ranked else ""),
            _td(html.escape(trial.trial_id), text=True),
            _td(f'<span class="{trial.state.value}">{trial.state.value}</span>', text=True),
            _td(_objective_cell(trial)),
            _td(_duration(_trial_duration(trial, snapshot.taken_at))),
            _td(str(trial.attempts)),
            _td(
                _duration((trial.start_time or snapshot.job_start) - snapshot.job_start, plus=True)
            ),
            _td(html.escape(trial.reason or ""), text=True),
            *(_value_td(trial.config.get(name, "")) for name in names),
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="trials"><tr>{head}</tr>\n' + "\n".join(rows) + "\n</table>"


def _objective_cell(trial: TrialRecord) -> str:
    if trial.state is TrialState.RUNNING and trial.history:
        step, value = trial.history[-1]
        return f"{_number(value)} (step {step}, running)"
    return _number(trial.objective) if _finite(trial.objective) else "&ndash;"


def _trial_duration(trial: TrialRecord, now: float) -> float | None:
    if trial.start_time is None:
        return None
    return (trial.end_time or now) - trial.start_time


def _config_names(trials: Mapping[str, TrialRecord]) -> list[str]:
    names: dict[str, None] = {}
    for trial in trials.values():
        names.update(dict.fromkeys(trial.config))
    return list(names)


def _section(title: str, body: str) -> str:
    return f"<h2>{html.escape(title)}</h2>\n{body}"


def _image(figure: Any, alt: str) -> str:
    encoded = base64.b64encode(plots.to_png(figure)).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'


def _empty(message: str) -> str:
    return f'<p class="empty">{html.escape(message)}</p>'


def _td(content: str, *, text: bool = False) -> str:
    """A table cell holding already-escaped `content`; text is left-aligned, numbers right."""
    return f'<td class="text">{content}</td>' if text else f"<td>{content}</td>"


def _value_td(value: Any) -> str:
    if isinstance(value, float):
        return _td(_number(value))
    return _td(html.escape(str(value)), text=True)


def _number(value: float | None) -> str:
    if value is None:
        return "&ndash;"
    return f"{value:.6g}"


def _duration(seconds: float | None, *, plus: bool = False) -> str:
    if seconds is None:
        return "&ndash;"
    sign = "+" if plus else ""
    if seconds < 60:
        return f"{sign}{max(seconds, 0.0):.1f} s"
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
    return sign + text


def _finite(value: float | None) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)
