"""benchmarks/trainer_throughput.py runs (tiny, on the CPU) and reports what it promises."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "trainer_throughput.py"


def load_benchmark():  # noqa: ANN201 - a module loaded from a file path
    spec = importlib.util.spec_from_file_location("trainer_throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def epoch_line(epoch: int, accuracy: float, seconds: float, rate: float) -> str:
    return (
        f"[Epoch {epoch}] validation: accuracy={accuracy} training: accuracy=0.4 loss=1.0 "
        f"time={seconds:.2f}s images/s={rate:.1f}\n"
    )


def test_mxnet_log_parsing_uses_line_arrivals_for_the_epoch_bounds() -> None:
    """No footer (the MXNet trainer): an epoch starts at its line's arrival less its time."""
    lines = [
        (100.0, "model: x\n"),
        (112.0, epoch_line(1, 0.5, 10.0, 100.0)),
        (114.5, epoch_line(2, 0.6, 2.0, 500.0)),
        (117.0, epoch_line(3, 0.7, 2.0, 300.0)),
    ]

    run = load_benchmark().parse_log(lines, wall_seconds=20.0)

    assert run.steady_images_per_second == pytest.approx(400.0)  # 1600 images in 4 s
    assert (run.train_seconds, run.epochs, run.final_accuracy) == (14.0, 3, 0.7)
    assert (run.first_epoch_start, run.last_epoch_end) == (102.0, 117.0)
    assert run.images == 1000 + 1000 + 600 and run.breakdown is None


def test_torch_log_parsing_takes_bounds_and_breakdown_from_the_footer() -> None:
    footer = {
        "startup": 1.5,
        "data": 0.2,
        "capture": 0.8,
        "train": 4.0,
        "evaluate": 0.3,
        "save": 0.1,
        "images": 2048,
        "first_epoch_start": 1000.25,
        "last_epoch_end": 1004.75,
    }
    lines = [
        (1001.0, epoch_line(1, 0.5, 2.0, 512.0)),
        (1004.0, epoch_line(2, 0.6, 2.0, 512.0)),
        (1004.1, "done: best_validation_accuracy=0.6\n"),
        (1004.2, f"timing: {json.dumps(footer)}\n"),
    ]

    run = load_benchmark().parse_log(lines, wall_seconds=7.0)

    assert (run.first_epoch_start, run.last_epoch_end, run.images) == (1000.25, 1004.75, 2048)
    assert run.breakdown == {k: footer[k] for k in load_benchmark().BREAKDOWN}


@pytest.mark.parametrize(("trainer", "trials"), [("torch", 2), ("mxnet", 1)])
def test_tiny_cpu_run_reports_throughput_together_and_where_the_time_went(
    tmp_path: Path, trainer: str, trials: int
) -> None:
    summary_path = tmp_path / "summary.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}

    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--trainer", trainer]
        + ["--trials-per-gpu", str(trials), "--json", str(summary_path)],
        cwd=tmp_path,  # the script finds the repository by itself
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    summary = json.loads(summary_path.read_text())
    runs = summary["runs"]
    assert summary["trials_per_gpu"] == trials and len(runs) == trials
    assert all(run["epochs"] == 2 and run["final_accuracy"] > 0.3 for run in runs)
    # 8 batches of 64, two epochs: the footer's count, or time x rate from MXNet's lines (time
    # to 0.1 ms and rate to 0.1 image/s, so within 1% even for an epoch of 20 ms)
    exact = trainer == "torch"
    assert all(run["images"] == pytest.approx(2 * 512, rel=0 if exact else 0.01) for run in runs)
    span = max(r["last_epoch_end"] for r in runs) - min(r["first_epoch_start"] for r in runs)
    assert summary["together_span_seconds"] == pytest.approx(span)
    together = sum(r["images"] for r in runs) / span
    assert summary["images_per_second_together"] == pytest.approx(together)
    for run in runs:  # each process's own wall time covers its epochs
        assert run["wall_seconds"] > run["last_epoch_end"] - run["first_epoch_start"] > 0
    if trainer == "torch":
        breakdown = summary["breakdown_per_trial"]
        assert set(breakdown) == {"startup", "data", "capture", "train", "evaluate", "save"}
        assert breakdown["startup"] > 0 and breakdown["save"] > 0  # a model directory, as a trial
        assert sum(breakdown.values()) < summary["seconds_per_trial_wall"]
        assert "where a trial's time went (s): startup" in completed.stdout
    else:
        assert summary["breakdown_per_trial"] is None
    for label in ("images/s together:", "images/s per trial:", "seconds per trial:"):
        assert label in completed.stdout
    assert f"trials per GPU:       {trials}" in completed.stdout


def test_a_packed_gpu_trial_gets_the_share_the_orchestrator_would_give() -> None:
    env, share = load_benchmark().trainer_environment(
        device="gpu", trials=4, gpu_share=None, extra={"CUDA_MPS_PIPE_DIRECTORY": "/x"}
    )

    assert (env["SM_NUM_GPUS"], env["OPENAMT_NUM_GPUS"], share) == ("1", "0.25", 0.25)
    assert env["CUDA_MPS_PIPE_DIRECTORY"] == "/x"


def test_bad_trial_count_is_refused() -> None:
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--trials-per-gpu", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert completed.returncode == 2
    assert "--trials-per-gpu 0; must be >= 1" in completed.stderr
