"""The MXNet trainer, run the way the orchestrator runs it: `.venv-mxnet/bin/python -m ...`.

This test process never imports MXNet (it lives in its own environment, apart from torch).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from models import torch_cifar10 as tc
from models.synthetic_cifar import write_synthetic_cifar

REPO = Path(__file__).resolve().parents[2]
MXNET_PYTHON = REPO / ".venv-mxnet" / "bin" / "python"
REFERENCE_REGEX = re.compile(r"validation: accuracy=([0-9\.]+)")
QUICK = ["--model", "small_cnn", "--batch_size", "16", "--learning_rate", "0.05"]


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("synthetic")
    write_synthetic_cifar(dest=directory, train_images=320, test_images=100, seed=0)
    return directory


def trainer_env(**extra: str) -> dict[str, str]:
    """A clean environment: no SM_* from the caller, one thread, no GPU visible."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", **extra)
    return env


def run_mxnet(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MXNET_PYTHON), "-m", "models.mxnet_cifar10", *args],
        cwd=REPO,
        env=trainer_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def sm_run(synthetic_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """Two epochs configured only through the SageMaker environment."""
    model_dir = tmp_path_factory.mktemp("model")
    completed = run_mxnet(
        [*QUICK, "--epochs", "2", "--momentum", "0.9", "--wd", "0.0005"],
        SM_CHANNEL_TRAINING=str(synthetic_dir),
        SM_MODEL_DIR=str(model_dir),
        SM_NUM_GPUS="0",
    )
    return completed, model_dir


def test_reference_regex_reads_one_accuracy_per_epoch_above_chance(sm_run: tuple) -> None:
    completed, _ = sm_run
    assert completed.returncode == 0, completed.stderr

    accuracies = [float(m.group(1)) for m in REFERENCE_REGEX.finditer(completed.stdout)]

    assert len(accuracies) == 2
    assert accuracies[-1] > 0.3  # chance is 0.1
    epoch_lines = [line for line in completed.stdout.splitlines() if line.startswith("[Epoch")]
    pattern = (
        r"\[Epoch (\d)\] validation: accuracy=[0-9.]+ training: accuracy=[0-9.]+ "
        r"loss=[0-9.]+ time=[0-9.]+s images/s=[0-9.]+"
    )
    assert [re.fullmatch(pattern, line).group(1) for line in epoch_lines] == ["1", "2"]


def test_sm_environment_gives_data_model_dir_and_device(sm_run: tuple) -> None:
    completed, model_dir = sm_run

    assert "devices=cpu(0)" in completed.stdout and "train_images=320" in completed.stdout
    info = json.loads((model_dir / "model-info.json").read_text())
    best = max(float(m.group(1)) for m in REFERENCE_REGEX.finditer(completed.stdout))
    assert info["validation_accuracy"] == pytest.approx(best)
    assert (info["framework"], info["model"], info["stem"]) == ("mxnet", "small_cnn", "imagenet")
    assert (model_dir / "model.params").stat().st_size > 24_000 * 4  # ~24k float32 weights
    assert not list(model_dir.glob("*.tmp"))


def test_gpus_requested_but_absent_is_a_clear_error(synthetic_dir: Path) -> None:
    completed = run_mxnet(
        [*QUICK, "--epochs", "1"], SM_CHANNEL_TRAINING=str(synthetic_dir), SM_NUM_GPUS="2"
    )

    assert completed.returncode == 1
    assert "SM_NUM_GPUS/--num-gpus: 2 GPUs requested, MXNet sees 0" in completed.stderr
    assert "mxnet-cu112" in completed.stderr


def test_missing_data_names_the_channel() -> None:
    completed = run_mxnet(QUICK)

    assert completed.returncode == 1
    assert "pass --data-dir or set SM_CHANNEL_TRAINING" in completed.stderr


PARSE_CASES = r"""
import contextlib, io, json, sys
from models import mxnet_cifar10 as trainer
results = []
for case in json.loads(sys.argv[1]):
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            trainer.build_parser().parse_args(case)
            status = 0
        except SystemExit as exit:
            status = exit.code
    results.append([status, stderr.getvalue()])
print(json.dumps(results))
"""
BAD_ARGUMENTS = {
    ("--learning_rate", "0"): r"argument --learning_rate.*'0' breaks the rule: must be > 0",
    ("--momentum", "abc"): r"argument --momentum: 'abc' is not a number",
    ("--momentum", "1"): r"argument --momentum: '1' breaks the rule: must be in \[0, 1\)",
    ("--wd", "-1"): r"argument --wd: '-1' breaks the rule: must be >= 0",
    ("--batch_size", "0"): r"argument --batch_size.*'0' breaks the rule: must be >= 1",
    ("--thumbnail", "maybe"): r"argument --thumbnail: 'maybe' is not a boolean",
    ("--stem", "tiny"): r"argument --stem: 'tiny' is not one of imagenet, cifar",
}


def test_bad_arguments_name_flag_value_and_rule() -> None:
    """All cases in one MXNet process (its start-up is the slow part)."""
    cases = [list(args) for args in BAD_ARGUMENTS]
    completed = subprocess.run(
        [str(MXNET_PYTHON), "-c", PARSE_CASES, json.dumps(cases)],
        cwd=REPO,
        env=trainer_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr

    results = json.loads(completed.stdout.splitlines()[-1])

    for (args, message), (status, stderr) in zip(BAD_ARGUMENTS.items(), results, strict=True):
        assert status == 2, args
        assert re.search(message, stderr), (args, stderr)


def test_cifar_stem_on_a_network_without_one_is_refused(synthetic_dir: Path) -> None:
    completed = run_mxnet(
        ["--model", "small_cnn", "--thumbnail", "true"], SM_CHANNEL_TRAINING=str(synthetic_dir)
    )

    assert completed.returncode == 1
    assert "stem: cifar (thumbnail) applies to model-zoo ResNets, not 'small_cnn'" in (
        completed.stderr
    )


@pytest.mark.slow
def test_flagship_network_runs_with_the_reference_defaults(synthetic_dir: Path) -> None:
    """resnet34_v2, ImageNet stem, Xavier(2), the default lr/momentum/wd: one short epoch."""
    completed = run_mxnet(["--epochs", "1", "--batch_size", "64", "--data-dir", str(synthetic_dir)])

    assert completed.returncode == 0, completed.stderr
    assert "model: resnet34_v2 stem=imagenet parameters=21288138" in completed.stdout
    assert len(REFERENCE_REGEX.findall(completed.stdout)) == 1


PARAMETER_COUNTS = r"""
import json
import mxnet as mx
counts = {}
for name in ("resnet18_v2", "resnet34_v2"):
    for thumbnail in (False, True):
        net = mx.gluon.model_zoo.vision.get_model(name, classes=10, thumbnail=thumbnail)
        net.initialize()
        net(mx.nd.zeros((1, 3, 32, 32)))
        trainable = [p for p in net.collect_params().values() if p.grad_req != "null"]
        counts[f"{name} {thumbnail}"] = sum(p.data().size for p in trainable)
print(json.dumps(counts))
"""


def test_torch_twin_has_the_same_parameter_count_as_the_model_zoo() -> None:
    completed = subprocess.run(
        [str(MXNET_PYTHON), "-c", PARAMETER_COUNTS],
        env=trainer_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    mxnet_counts = json.loads(completed.stdout.splitlines()[-1])

    for architecture in (tc.Architecture.RESNET18_V2, tc.Architecture.RESNET34_V2):
        for stem in tc.Stem:
            net = tc.build_network(architecture, classes=10, stem=stem)
            key = f"{architecture.value} {stem is tc.Stem.CIFAR}"
            assert tc.count_parameters(net) == mxnet_counts[key], key


@pytest.mark.slow
def test_cifar_stem_runs(tmp_path: Path) -> None:
    """The 3x3 stem keeps 32x32 resolution, so it costs ~16x more: a few images only."""
    write_synthetic_cifar(dest=tmp_path, train_images=16, test_images=8, seed=1)

    completed = run_mxnet(
        ["--model", "resnet18_v2", "--thumbnail", "--epochs", "1", "--batch_size", "8"],
        SM_CHANNEL_TRAINING=str(tmp_path),
    )

    assert completed.returncode == 0, completed.stderr
    assert "model: resnet18_v2 stem=cifar parameters=11172170" in completed.stdout
    assert len(REFERENCE_REGEX.findall(completed.stdout)) == 1
