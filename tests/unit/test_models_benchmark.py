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


def test_log_parsing_uses_the_epochs_after_the_first() -> None:
    log = (
        "model: x\n"
        "[Epoch 1] validation: accuracy=0.5 training: accuracy=0.4 loss=1.0 time=10.00s "
        "images/s=100.0\n"
        "[Epoch 2] validation: accuracy=0.6 training: accuracy=0.5 loss=0.9 time=2.00s "
        "images/s=500.0\n"
        "[Epoch 3] validation: accuracy=0.7 training: accuracy=0.6 loss=0.8 time=2.00s "
        "images/s=300.0\n"
    )

    run = load_benchmark().parse_log(log, wall_seconds=20.0)

    assert run.steady_images_per_second == pytest.approx(400.0)  # 1600 images in 4 s
    assert (run.train_seconds, run.epochs, run.final_accuracy) == (14.0, 3, 0.7)


@pytest.mark.parametrize(("trainer", "trials"), [("torch", 2), ("mxnet", 1)])
def test_tiny_cpu_run_reports_throughput_per_trial_and_together(
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
    assert summary["trials_per_gpu"] == trials and len(summary["runs"]) == trials
    assert all(run["epochs"] == 2 and run["final_accuracy"] > 0.3 for run in summary["runs"])
    rates = [run["steady_images_per_second"] for run in summary["runs"]]
    assert summary["images_per_second_together"] == pytest.approx(sum(rates))
    assert summary["seconds_per_trial_wall"] > summary["seconds_per_trial_training"] > 0
    for label in ("images/s per trial:", "images/s together:", "seconds per trial:"):
        assert label in completed.stdout
    assert f"trials per GPU:       {trials}" in completed.stdout


def test_bad_trial_count_is_refused() -> None:
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--trials-per-gpu", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert completed.returncode == 2
    assert "--trials-per-gpu 0; must be >= 1" in completed.stderr
