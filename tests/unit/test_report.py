"""The job report: written from a real ledger, on finished, running and empty jobs."""

from __future__ import annotations

import base64
import io
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from matplotlib.image import imread

from orchestrator.errors import OpenAMTError
from orchestrator.report import plots
from orchestrator.report.page import ReportError, load_snapshot, write_report
from orchestrator.store.job_dir import REPORT_FILE, JobDir
from orchestrator.store.ledger import Event, Ledger
from orchestrator.store.records import summarize_trials
from orchestrator.trial.outcome import TrialState
from search import SearchSpace

RANGES = {
    "learning_rate": {
        "type": "Continuous",
        "min_value": 0.0001,
        "max_value": 0.5,
        "scaling_type": "Logarithmic",
    },
    "momentum": {
        "type": "Continuous",
        "min_value": 0.5,
        "max_value": 0.999,
        "scaling_type": "ReverseLogarithmic",
    },
    "layers": {"type": "Integer", "min_value": 1, "max_value": 4},
    "optimizer": {"type": "Categorical", "values": ["sgd", "adam", "rmsprop"]},
}


def write_spec(job_dir: Path, *, objective_type: str = "Maximize") -> None:
    job_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "name": "report-test",
        "objective_metric_name": "validation:accuracy",
        "objective_type": objective_type,
        "strategy": "Bayesian",
        "max_jobs": 8,
        "max_parallel_jobs": 2,
        "hyperparameters": {"epochs": 3},
        "hyperparameter_ranges": RANGES,
    }
    (job_dir / "spec.yaml").write_text(yaml.safe_dump(spec))


def config(number: int) -> dict[str, Any]:
    return {
        "learning_rate": 0.0001 * 3**number,
        "momentum": 0.5 + 0.06 * number,
        "layers": 1 + number % 4,
        "optimizer": ["sgd", "adam", "rmsprop"][number % 3],
        "epochs": 3,
    }


def start(ledger: Ledger, trial: str, number: int) -> None:
    ledger.append(
        Event.TRIAL_STARTED, trial_id=trial, attempt=1, config=config(number), node_id="node-1"
    )


def report(ledger: Ledger, trial: str, value: float, step: int) -> None:
    ledger.append(
        Event.TRIAL_RESULT,
        trial_id=trial,
        attempt=1,
        metric="validation:accuracy",
        value=value,
        step=step,
    )


def finish(ledger: Ledger, trial: str, status: str, objective: float | None, **extra: Any) -> None:
    ledger.append(
        Event.TRIAL_COMPLETED,
        trial_id=trial,
        attempt=1,
        status=status,
        objective=objective,
        reason=extra.get("reason"),
        retryable=False,
        will_retry=extra.get("will_retry", False),
        duration_s=1.0,
    )


def write_running_job(job_dir: Path, *, objective_type: str = "Maximize") -> None:
    """Six trials: completed, stopped, failed (with HTML in its reason) and two running, with
    this test process as the job's live driver (its pid in the lock file)."""
    write_spec(job_dir, objective_type=objective_type)
    JobDir(path=job_dir).lock_file.write_text(f"{os.getpid()}\n")
    ledger = Ledger(job_dir=job_dir)
    ledger.append(Event.JOB_STARTED, run=1)
    outcomes = [
        ("t0", "Completed", 0.61),
        ("t1", "Completed", 0.83),
        ("t2", "Failed", None),
        ("t3", "Stopped", 0.42),
        ("t4", "Completed", 0.77),
    ]
    for number, (trial, status, objective) in enumerate(outcomes):
        start(ledger, trial, number)
        report(ledger, trial, 0.3, 1)
        finish(ledger, trial, status, objective, reason="<script>alert(1)</script>")
    start(ledger, "t5", 5)
    report(ledger, "t5", 0.55, 2)
    start(ledger, "t6", 6)


def embedded_images(page: str) -> list[np.ndarray]:
    encoded = re.findall(r'<img alt="[^"]+" src="data:image/png;base64,([A-Za-z0-9+/=]+)">', page)
    return [imread(io.BytesIO(base64.b64decode(data)), format="png") for data in encoded]


def table_rows(page: str) -> list[list[str]]:
    table = page[page.index('<table class="trials">') :]
    rows = re.findall(r"<tr>(.*?)</tr>", table)[1:]
    return [
        [re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        for row in rows
    ]


def test_report_of_a_running_job_has_plots_and_sorted_table(tmp_path: Path) -> None:
    write_running_job(tmp_path)
    path = write_report(tmp_path)

    assert path == tmp_path / REPORT_FILE
    page = path.read_text()
    images = embedded_images(page)
    assert len(images) == 3  # best-so-far, objective by hyperparameter, timeline
    for image in images:
        assert image.shape[0] > 100 and image.shape[1] > 100
        assert image[..., :3].std() > 0.05  # not blank

    rows = table_rows(page)
    assert [row[1] for row in rows] == ["t1", "t4", "t0", "t3", "t5", "t6", "t2"]
    assert [row[0] for row in rows[:4]] == ["1", "2", "3", "4"]
    assert [row[2] for row in rows] == [
        "Completed",
        "Completed",
        "Completed",
        "Stopped",
        "Running",
        "Running",
        "Failed",
    ]
    assert rows[4][3] == "0.55 (step 2, running)"
    assert f"running (driver pid {os.getpid()})" in page
    assert "0.83 (trial t1)" in page
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_minimize_puts_the_smallest_objective_first(tmp_path: Path) -> None:
    write_running_job(tmp_path, objective_type="minimize")
    rows = table_rows(write_report(tmp_path).read_text())
    assert [row[1] for row in rows[:4]] == ["t3", "t0", "t4", "t1"]


def test_report_is_self_contained(tmp_path: Path) -> None:
    write_running_job(tmp_path)
    page = write_report(tmp_path).read_text()
    sources = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert sources and all(source.startswith("data:") for source in sources)
    assert "http://" not in page and "https://" not in page


def test_finished_job_says_so(tmp_path: Path) -> None:
    write_running_job(tmp_path)
    ledger = Ledger(job_dir=tmp_path)
    finish(ledger, "t5", "Completed", 0.9)
    finish(ledger, "t6", "Failed", None, reason="exit code 1")
    ledger.append(
        Event.JOB_COMPLETED, reason="max_jobs reached", best_trial_id="t5", best_objective=0.9
    )
    page = write_report(tmp_path).read_text()
    assert "finished (max_jobs reached)" in page
    assert "0.9 (trial t5)" in page


def test_interrupted_job_says_how_to_resume(tmp_path: Path) -> None:
    write_running_job(tmp_path)
    Ledger(job_dir=tmp_path).append(Event.JOB_INTERRUPTED, finished=4)
    page = write_report(tmp_path).read_text()
    assert "stopped; rerun `openamt tune` with the same job file to resume" in page


def test_job_with_no_finished_trials_says_so(tmp_path: Path) -> None:
    write_spec(tmp_path)
    JobDir(path=tmp_path).lock_file.write_text(f"{os.getpid()}\n")  # a live driver
    ledger = Ledger(job_dir=tmp_path)
    ledger.append(Event.JOB_STARTED, run=1)
    start(ledger, "t0", 0)
    page = write_report(tmp_path).read_text()
    assert "No finished trials yet" in page
    assert "none yet (no finished trial)" in page
    assert len(embedded_images(page)) == 1  # the timeline with the running trial
    assert [row[2] for row in table_rows(page)] == ["Running"]


def test_job_with_no_ledger_yet(tmp_path: Path) -> None:
    write_spec(tmp_path)
    page = write_report(tmp_path).read_text()
    assert page.count("No trials have started yet.") == 2  # timeline and table
    assert "not started: no driver ran it yet" in page
    assert embedded_images(page) == []


def test_retried_trial_shows_its_attempts(tmp_path: Path) -> None:
    write_spec(tmp_path)
    ledger = Ledger(job_dir=tmp_path)
    start(ledger, "t0", 0)
    finish(ledger, "t0", "Failed", None, reason="node lost", will_retry=True)
    start(ledger, "t0", 0)
    finish(ledger, "t0", "Completed", 0.7)
    rows = table_rows(write_report(tmp_path).read_text())
    assert rows[0][1:3] == ["t0", "Completed"] and rows[0][5] == "2"


def test_missing_spec_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"not an openamt job directory \(it has no spec.yaml"):
        write_report(tmp_path)
    with pytest.raises(ReportError, match="does not exist"):
        write_report(tmp_path / "nowhere")


def test_bad_spec_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text("- just\n- a list\n")
    with pytest.raises(ReportError, match="must hold a mapping"):
        write_report(tmp_path)
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump({"name": "x"}))
    with pytest.raises(ReportError, match="lacks objective_metric_name, objective_type"):
        write_report(tmp_path)
    write_spec(tmp_path, objective_type="Sideways")
    with pytest.raises(OpenAMTError, match=r"objective_type='Sideways' is not one of"):
        write_report(tmp_path)


def test_axes_follow_the_ranges(tmp_path: Path) -> None:
    write_running_job(tmp_path)
    snapshot = load_snapshot(tmp_path, now=2e9)
    figure = plots.objective_vs_hyperparameters(
        snapshot.scored(),
        space=SearchSpace.from_config(RANGES),
        objective_name="validation:accuracy",
        best_trial_id="t1",
    )
    axes = {a.get_xlabel(): a for a in figure.axes if a.get_visible()}
    assert set(axes) == set(RANGES)
    assert axes["learning_rate"].get_xscale() == "log"
    assert axes["momentum"].get_xscale() == "function"
    assert axes["layers"].get_xscale() == "linear"
    labels = [tick.get_text() for tick in axes["optimizer"].get_xticklabels()]
    assert labels == ["sgd", "adam", "rmsprop"]


def test_best_so_far_and_timeline_data(tmp_path: Path) -> None:
    write_running_job(tmp_path)
    snapshot = load_snapshot(tmp_path, now=2e9)
    figure = plots.best_so_far(
        snapshot.finished_in_order(),
        maximize=True,
        job_start=snapshot.job_start,
        objective_name="validation:accuracy",
    )
    steps = figure.axes[0].get_lines()[0].get_ydata()
    assert np.allclose(steps, [0.61, 0.83, 0.83, 0.83, 0.83])  # failed t2 keeps the best
    trials = sorted(snapshot.trials.values(), key=lambda t: t.start_time)
    timeline = plots.timeline(trials, job_start=snapshot.job_start, now=snapshot.taken_at)
    bars = timeline.axes[0].patches
    assert len(bars) == 7
    colours = [bar.get_facecolor() for bar in bars]
    running = [i for i, t in enumerate(trials) if t.state is TrialState.RUNNING]
    assert {colours[i] for i in running} == {colours[running[0]]}
    assert colours[running[0]] != colours[0]


def test_snapshot_folds_the_ledger_like_the_ledger(tmp_path: Path) -> None:
    write_running_job(tmp_path)
    snapshot = load_snapshot(tmp_path, now=2e9)
    ledger_trials = summarize_trials(
        Ledger(job_dir=tmp_path).events(), objective_metric_name="validation:accuracy"
    )
    assert {k: v.state for k, v in snapshot.trials.items()} == {
        k: v.state for k, v in ledger_trials.items()
    }
