"""benchmarks/gpu_check.py in its CPU smoke mode: every part runs through the real trainer and
both summaries are written, so the command prepared for the GPU cannot rot."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
PARTS = ("versions", "parity", "trial", "precision", "packing")


def load_check():  # noqa: ANN201 - a module loaded from a file path
    sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def run_check(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "OPENAMT_"))}
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), "--cpu-smoke", *extra],
        cwd=tempfile.gettempdir(),  # the script finds the repository by itself
        env=env | {"CUDA_VISIBLE_DEVICES": ""},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("out")
    return run_check(out), out


@pytest.mark.slow
def test_every_part_runs_and_both_summaries_are_written(smoke: tuple) -> None:
    completed, out = smoke

    assert completed.returncode == 0, completed.stdout + completed.stderr
    results = json.loads((out / "gpu_check.json").read_text())
    assert results["mode"] == "cpu-smoke"
    assert {name: part["status"] for name, part in results["parts"].items()} == dict.fromkeys(
        PARTS, "ran"
    )
    markdown = (out / "gpu_check.md").read_text()
    assert markdown == completed.stdout  # what it prints is what it keeps
    for name in ("parity", "trial", "packing", "precision"):
        assert f"\n| {name} | " in markdown
    assert results["parts"]["versions"]["torch"] == torch.__version__
    assert (out / "logs" / "trial" / "0.log").read_text().startswith("model: small_cnn")


@pytest.mark.slow
def test_the_parts_measure_what_they_promise(smoke: tuple) -> None:
    _, out = smoke
    parts = json.loads((out / "gpu_check.json").read_text())["parts"]

    parity = parts["parity"]
    assert parity["bitwise_equal"] and parity["max_abs_difference"] == 0.0 and parity["met"]
    assert not parity["graphs_captured"]  # the CPU: the machinery runs, graphs need a GPU
    trial = parts["trial"]
    assert set(trial["breakdown_seconds"]) == {
        "startup",
        "data",
        "capture",
        "train",
        "evaluate",
        "save",
    }
    assert trial["wall_seconds"] > sum(trial["breakdown_seconds"].values()) * 0.5 > 0
    packing = parts["packing"]
    assert [run["trials"] for run in packing["runs"]] == [2]
    assert all(run["images_per_second_together"] > 0 for run in packing["runs"])
    assert packing["mps"] == {"available": False, "reason": "no GPU (CPU smoke)"}
    precision = parts["precision"]
    assert 0 <= precision["bf16_accuracy"] <= 1 and 0 <= precision["fp32_accuracy"] <= 1
    assert precision["difference_points"] == pytest.approx(
        100 * abs(precision["bf16_accuracy"] - precision["fp32_accuracy"]), abs=1e-3
    )


def test_a_spent_budget_skips_parts_and_still_writes_the_summaries(tmp_path: Path) -> None:
    completed = run_check(tmp_path, "--budget-s", "0")

    assert completed.returncode == 1  # not every part ran
    parts = json.loads((tmp_path / "gpu_check.json").read_text())["parts"]
    assert all(part["status"] == "skipped" for part in parts.values())
    assert "time budget" in parts["packing"]["reason"]
    assert "| packing | " in (tmp_path / "gpu_check.md").read_text()


def test_the_learnable_set_is_learnable_but_not_solved(tmp_path: Path) -> None:
    """bf16 against fp32 needs accuracy between chance and 100%: a nearest-class-mean guess on
    8x8 block means (what the templates are made of) gets most, not all, images right."""
    check = load_check()
    data = check.write_learnable(tmp_path, train_images=2000, test_images=500, seed=0)

    def split(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        raw = np.concatenate([np.fromfile(data / n, dtype=np.uint8) for n in names])
        raw = raw.reshape(-1, 3073)
        blocks = raw[:, 1:].reshape(-1, 3, 4, 8, 4, 8).astype(float).mean(axis=(3, 5))
        return raw[:, 0], blocks.reshape(len(raw), -1)

    train_labels, train_blocks = split(list(check.TRAIN_BATCHES))
    test_labels, test_blocks = split([check.TEST_BATCH])
    means = np.stack([train_blocks[train_labels == c].mean(axis=0) for c in range(10)])
    guesses = ((test_blocks[:, None] - means[None]) ** 2).sum(axis=-1).argmin(axis=1)
    accuracy = (guesses == test_labels).mean()

    assert len(train_labels) == 2000 and len(test_labels) == 500
    assert train_labels.max() == 9 and len(np.unique(train_labels)) == 10
    assert 0.6 < accuracy < 0.995
