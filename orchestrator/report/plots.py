"""The job report's figures, drawn with matplotlib's object API (Agg, no pyplot).

`Figure` objects are built directly rather than through pyplot, so nothing touches global
matplotlib state: the report can be written from a thread of a running driver, and no display is
needed. Each function takes plain data and returns a `Figure`; `to_png` renders it.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from orchestrator.store.records import TrialRecord
from orchestrator.trial.outcome import TrialState
from search import CategoricalParameter, IntegerParameter, ScalingType, SearchSpace

STATE_COLOURS = {
    TrialState.COMPLETED: "#2e7d32",
    TrialState.STOPPED: "#ef6c00",
    TrialState.FAILED: "#c62828",
    TrialState.RUNNING: "#1565c0",
}
BEST_COLOUR = "#6a1b9a"
DPI = 100
MAX_LABELLED_ROWS = 40


def to_png(figure: Figure) -> bytes:
    """Render a figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def best_so_far(
    finished: Sequence[TrialRecord], *, maximize: bool, job_start: float, objective_name: str
) -> Figure:
    """Best objective so far against finish order (trial number) and against wall time.

    `finished` are the finished trials in the order they finished; failed ones advance the trial
    number but never the best.
    """
    figure = Figure(figsize=(11, 4), layout="constrained")
    by_number, by_time = figure.subplots(1, 2)
    numbers = np.arange(1, len(finished) + 1)
    objectives = np.array([_scored_objective(t) for t in finished], dtype=float)
    best = _running_best(objectives, maximize=maximize)
    elapsed = np.array([(t.end_time or job_start) - job_start for t in finished], dtype=float)
    unit, scale = _time_unit(float(elapsed.max()) if len(elapsed) else 0.0)

    for axes, x, label in (
        (by_number, numbers, "trial number (in order of finishing)"),
        (by_time, elapsed / scale, f"wall time since the job started ({unit})"),
    ):
        axes.scatter(x, objectives, s=18, color="#9e9e9e", label="trial objective", zorder=2)
        axes.step(x, best, where="post", color=BEST_COLOUR, linewidth=2, label="best so far")
        axes.set_xlabel(label)
        axes.set_ylabel(objective_name)
        axes.grid(alpha=0.3)
    by_number.xaxis.set_major_locator(MaxNLocator(integer=True))
    by_time.set_xlim(left=0)
    by_number.legend(loc="best")
    by_number.set_title("Best so far by trial")
    by_time.set_title("Best so far over time")
    return figure


def objective_vs_hyperparameters(
    scored: Sequence[TrialRecord],
    *,
    space: SearchSpace,
    objective_name: str,
    best_trial_id: str | None,
) -> Figure:
    """One panel per tuned hyperparameter: each scored trial's objective at its value.

    Logarithmic ranges get a log axis, reverse-logarithmic ones a matching axis, and categorical
    ones a category axis in declaration order.
    """
    names = list(space.parameters)
    columns = min(3, len(names))
    rows = math.ceil(len(names) / columns)
    figure = Figure(figsize=(4.2 * columns, 3.4 * rows), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False).ravel()
    for axes, name in zip(grid, names, strict=False):
        parameter = space.parameters[name]
        points = [
            (trial, trial.config[name])
            for trial in scored
            if name in trial.config and parameter.violation(trial.config[name]) is None
        ]
        if isinstance(parameter, CategoricalParameter):
            xs = [parameter.index(value) for _, value in points]
            axes.set_xticks(range(len(parameter.values)))
            axes.set_xticklabels([str(value) for value in parameter.values], rotation=30)
            axes.set_xlim(-0.5, len(parameter.values) - 0.5)
        else:
            xs = [float(value) for _, value in points]
            _set_numeric_scale(axes, parameter.resolved_scaling_type)
            if isinstance(parameter, IntegerParameter):
                axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        ys = [trial.objective for trial, _ in points]
        colours = [STATE_COLOURS[trial.state] for trial, _ in points]
        axes.scatter(xs, ys, s=24, c=colours, alpha=0.8, zorder=2)
        for (trial, _), x, y in zip(points, xs, ys, strict=True):
            if trial.trial_id == best_trial_id:
                axes.scatter([x], [y], s=160, marker="*", color=BEST_COLOUR, zorder=3)
        axes.set_xlabel(name)
        axes.set_ylabel(objective_name)
        axes.grid(alpha=0.3)
    for axes in grid[len(names) :]:
        axes.set_visible(False)
    figure.suptitle("Objective by hyperparameter (star: best trial; orange: stopped early)")
    return figure


def timeline(trials: Sequence[TrialRecord], *, job_start: float, now: float) -> Figure:
    """Which trial ran when, coloured by how it ended; running trials extend to `now`."""
    height = min(2.0 + 0.22 * len(trials), 14.0)
    figure = Figure(figsize=(11, height), layout="constrained")
    axes = figure.subplots()
    spans = [
        ((t.start_time or job_start) - job_start, (t.end_time or now) - job_start) for t in trials
    ]
    unit, scale = _time_unit(max((end for _, end in spans), default=0.0))
    starts = np.array([start for start, _ in spans]) / scale
    widths = np.array([max(end - start, 0.0) for start, end in spans]) / scale
    colours = [STATE_COLOURS[trial.state] for trial in trials]
    axes.barh(np.arange(len(trials)), widths, left=starts, height=0.7, color=colours)
    if len(trials) <= MAX_LABELLED_ROWS:
        axes.set_yticks(range(len(trials)))
        axes.set_yticklabels([t.trial_id for t in trials])
    else:  # too many ids to read: number the rows instead (a tick per row is also slow)
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.invert_yaxis()  # first trial on top
    axes.set_xlim(left=0)
    axes.set_xlabel(f"wall time since the job started ({unit})")
    axes.set_ylabel("trial (in order of starting)")
    axes.grid(axis="x", alpha=0.3)
    present = {trial.state for trial in trials}
    legend = [Patch(color=c, label=s.value) for s, c in STATE_COLOURS.items() if s in present]
    axes.legend(handles=legend, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes.set_title("Timeline of trials")
    return figure


def _scored_objective(trial: TrialRecord) -> float:
    """The objective that counts towards the best (NaN for failed trials and missing values)."""
    if trial.state in (TrialState.COMPLETED, TrialState.STOPPED) and trial.objective is not None:
        return float(trial.objective)
    return math.nan


def _running_best(objectives: np.ndarray, *, maximize: bool) -> np.ndarray:
    """`n` best-so-far values of `n` objectives (NaN until the first scored one)."""
    best = np.full_like(objectives, np.nan)
    current = math.nan
    for index, value in enumerate(objectives):
        if not math.isnan(value) and (
            math.isnan(current) or (value > current if maximize else value < current)
        ):
            current = value
        best[index] = current
    return best


def _time_unit(span_s: float) -> tuple[str, float]:
    """Seconds, minutes or hours, whichever keeps the axis numbers readable."""
    if span_s < 180:
        return "s", 1.0
    if span_s < 3 * 3600:
        return "min", 60.0
    return "h", 3600.0


def _set_numeric_scale(axes: Any, scaling: ScalingType) -> None:
    if scaling is ScalingType.LOGARITHMIC:
        axes.set_xscale("log")
    elif scaling is ScalingType.REVERSE_LOGARITHMIC:
        # Spread values near 1 the way the searcher does: uniform in -log(1 - x).
        axes.set_xscale("function", functions=(_reverse_log, _reverse_log_inverse))


def _reverse_log(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.log1p(-np.asarray(x, dtype=float))


def _reverse_log_inverse(y: np.ndarray) -> np.ndarray:
    return -np.expm1(-np.asarray(y, dtype=float))
