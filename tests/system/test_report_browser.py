"""The report opens in a real browser (Debian's headless `chromium`): no errors, plots visible."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from matplotlib.image import imread

from orchestrator.report.page import write_report
from orchestrator.report.plots import STATE_COLOURS
from orchestrator.store.job_dir import JobDir
from orchestrator.store.ledger import Event, Ledger
from orchestrator.trial.outcome import TrialState

pytestmark = pytest.mark.system

SPEC = {
    "name": "browser-test",
    "objective_metric_name": "accuracy",
    "objective_type": "Maximize",
    "strategy": "Bayesian",
    "max_jobs": 6,
    "hyperparameter_ranges": {
        "learning_rate": {
            "type": "Continuous",
            "min_value": 0.001,
            "max_value": 0.5,
            "scaling_type": "Logarithmic",
        },
        "optimizer": {"type": "Categorical", "values": ["sgd", "adam"]},
    },
}


def write_job(job_dir: Path, *, finished: int) -> None:
    """`finished` trials that ended (completed, stopped, failed in turn) and one still running,
    under a live driver (this process: without one, a running trial is shown as cut off)."""
    job_dir.mkdir(parents=True)
    (job_dir / "spec.yaml").write_text(yaml.safe_dump(SPEC))
    JobDir(path=job_dir).record_driver_pid(os.getpid())
    ledger = Ledger(job_dir=job_dir)
    ledger.append(Event.JOB_STARTED, run=1)
    for number in range(finished + 1):
        trial = f"trial-{number}"
        config = {"learning_rate": 0.001 * 2**number, "optimizer": ["sgd", "adam"][number % 2]}
        ledger.append(Event.TRIAL_STARTED, trial_id=trial, attempt=1, config=config, node_id="n")
        ledger.append(
            Event.TRIAL_RESULT, trial_id=trial, attempt=1, metric="accuracy", value=0.5, step=1
        )
        if number == finished:
            break  # still running
        status = ("Completed", "Stopped", "Failed")[number % 3]
        ledger.append(
            Event.TRIAL_COMPLETED,
            trial_id=trial,
            attempt=1,
            status=status,
            objective=None if status == "Failed" else 0.5 + 0.04 * number,
            reason="exit code 1" if status == "Failed" else None,
            retryable=False,
            will_retry=False,
            duration_s=1.0,
        )


def screenshot_pixels(png: bytes) -> np.ndarray:
    return imread(io.BytesIO(png), format="png")[..., :3]


def near(pixels: np.ndarray, hex_colour: str, tolerance: float = 0.08) -> int:
    """How many pixels are within `tolerance` of `hex_colour` in every channel."""
    target = np.array([int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    return int((np.abs(pixels - target) < tolerance).all(axis=-1).sum())


def test_report_renders_in_chromium_with_its_plots(chromium: Any, tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    write_job(job_dir, finished=5)
    report = write_report(job_dir)

    seen = chromium.inspect(report.as_uri())

    assert seen.errors == [], f"browser errors: {seen.errors}\n{chromium.log()}"
    assert len(seen.images) == 3
    for image in seen.images:
        assert image["complete"] and image["naturalWidth"] > 300, image
        assert image["naturalHeight"] > 150, image
    pixels = screenshot_pixels(seen.screenshot_png)
    assert pixels.shape[:2] == (2400, 1200)
    not_white = (pixels < 0.95).any(axis=-1).mean()
    assert not_white > 0.02, f"screenshot is nearly blank ({not_white:.1%} non-white)"
    # The plots themselves are on screen: bars and points in the state colours.
    for state in (TrialState.COMPLETED, TrialState.FAILED, TrialState.RUNNING):
        assert near(pixels, STATE_COLOURS[state]) > 200, f"no {state.value} colour on screen"


def test_report_without_finished_trials_renders_in_chromium(chromium: Any, tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    write_job(job_dir, finished=0)
    seen = chromium.inspect(write_report(job_dir).as_uri())
    assert seen.errors == [], f"browser errors: {seen.errors}\n{chromium.log()}"
    assert len(seen.images) == 1  # the timeline of the running trial
    assert seen.images[0]["complete"] and seen.images[0]["naturalWidth"] > 300
    assert near(screenshot_pixels(seen.screenshot_png), STATE_COLOURS[TrialState.RUNNING]) > 200
