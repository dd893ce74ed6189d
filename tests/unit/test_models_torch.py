"""The PyTorch trainer: its parts in-process, and the script as the orchestrator runs it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from models import torch_cifar10 as tc
from models.synthetic_cifar import write_synthetic_cifar

REPO = Path(__file__).resolve().parents[2]
REFERENCE_REGEX = re.compile(r"validation: accuracy=([0-9\.]+)")
RESNET34_V2_PARAMETERS = 21_288_138  # Gluon model zoo's resnet34_v2(classes=10), counted in MXNet
# ImageNet stem: 7x7 conv + BN (gamma, beta); CIFAR stem: a 3x3 conv alone.
STEM_DIFFERENCE = 64 * 3 * (7 * 7 - 3 * 3) + 2 * 64


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("synthetic")
    write_synthetic_cifar(dest=directory, train_images=320, test_images=100, seed=0)
    return directory


def trainer_env(**extra: str) -> dict[str, str]:
    """A clean environment: no SM_* from the caller, one thread, no GPU (the tests are about
    the CPU path, whatever machine runs them)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", **extra)
    return env


def run_trainer(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "models.torch_cifar10", *args],
        cwd=REPO,
        env=trainer_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
    )


QUICK = ["--model", "small_cnn", "--batch_size", "16", "--learning_rate", "0.05"]


# --- the script ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sm_run(synthetic_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """Two epochs configured only through the SageMaker environment."""
    model_dir = tmp_path_factory.mktemp("model")
    completed = run_trainer(
        [*QUICK, "--epochs", "2", "--momentum", "0.9", "--wd", "0.0005"],
        SM_CHANNEL_TRAINING=str(synthetic_dir),
        SM_MODEL_DIR=str(model_dir),
        SM_NUM_GPUS="0",
        SM_NUM_CPUS="1",
    )
    return completed, model_dir


def test_reference_regex_reads_one_accuracy_per_epoch_above_chance(sm_run: tuple) -> None:
    completed, _ = sm_run
    assert completed.returncode == 0, completed.stderr

    accuracies = [float(m.group(1)) for m in REFERENCE_REGEX.finditer(completed.stdout)]

    assert len(accuracies) == 2
    assert all(0.0 <= a <= 1.0 for a in accuracies)
    assert accuracies[-1] > 0.3  # chance is 0.1
    epoch_lines = [line for line in completed.stdout.splitlines() if line.startswith("[Epoch")]
    pattern = (
        r"\[Epoch (\d)\] validation: accuracy=[0-9.]+ training: accuracy=[0-9.]+ "
        r"loss=[0-9.]+ time=[0-9.]+s images/s=[0-9.]+"
    )
    assert [re.fullmatch(pattern, line).group(1) for line in epoch_lines] == ["1", "2"]


def test_sm_environment_gives_data_model_dir_and_device(sm_run: tuple) -> None:
    completed, model_dir = sm_run

    assert "device=cpu" in completed.stdout and "train_images=320" in completed.stdout
    assert "precision=fp32 (auto: fp32 on the CPU)" in completed.stdout
    info = json.loads((model_dir / "model-info.json").read_text())
    best = max(float(m.group(1)) for m in REFERENCE_REGEX.finditer(completed.stdout))
    assert info["validation_accuracy"] == pytest.approx(best)
    assert info["model"] == "small_cnn" and info["framework"] == "torch"
    weights = torch.load(model_dir / "model.pt", weights_only=True)
    net = tc.build_network(tc.Architecture.SMALL_CNN, classes=10, stem=tc.Stem.IMAGENET)
    net.load_state_dict(weights)  # raises if the saved weights do not fit the network
    assert not list(model_dir.glob("*.tmp"))
    assert all(value.is_contiguous() for value in weights.values())


def test_footer_reports_where_the_time_went(sm_run: tuple) -> None:
    """The `timing:` line benchmarks/trainer_throughput.py reads: the phases of the trial, and
    the epochs' bounds as Unix times."""
    completed, _ = sm_run
    lines = completed.stdout.splitlines()

    assert lines[-2].startswith("done: best_validation_accuracy=")
    assert lines[-1].startswith("timing: ")
    timing = json.loads(lines[-1].removeprefix("timing: "))
    phases = ("startup", "data", "capture", "train", "evaluate", "save")
    assert all(timing[name] >= 0 for name in phases)
    assert timing["startup"] > 0.1  # an interpreter and `import torch`, at least
    assert timing["images"] == 2 * 320  # two epochs of 20 batches of 16
    assert timing["last_epoch_end"] - timing["first_epoch_start"] >= timing["train"]


def test_flags_override_the_environment(synthetic_dir: Path, tmp_path: Path) -> None:
    completed = run_trainer(
        [*QUICK, "--epochs", "1", "--data-dir", str(synthetic_dir)],
        SM_CHANNEL_TRAINING=str(tmp_path / "nothing-here"),
    )

    assert completed.returncode == 0, completed.stderr
    assert "weights are not saved" in completed.stdout  # no SM_MODEL_DIR, no --model-dir


def test_gpus_requested_but_absent_is_a_clear_error(synthetic_dir: Path) -> None:
    completed = run_trainer(
        [*QUICK, "--epochs", "1"], SM_CHANNEL_TRAINING=str(synthetic_dir), SM_NUM_GPUS="1"
    )

    assert completed.returncode == 1
    assert "SM_NUM_GPUS/--num-gpus: 1 GPUs requested, PyTorch sees none" in completed.stderr


# In-process from here on: main() is the script minus interpreter start-up and `import torch`.


@pytest.fixture
def no_sm_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("SM_")]:
        monkeypatch.delenv(name)


@pytest.mark.usefixtures("no_sm_environment")
def test_missing_data_names_the_channel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tc.main(QUICK) == 1
    assert "pass --data-dir or set SM_CHANNEL_TRAINING" in capsys.readouterr().err

    monkeypatch.setenv("SM_CHANNEL_TRAINING", str(tmp_path))
    assert tc.main(QUICK) == 1
    assert f"no data_batch_1.bin in {tmp_path}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flag", "value", "rule"),
    [
        ("--learning_rate", "-1", "must be > 0"),
        ("--learning-rate", "nan", "must be > 0"),
        ("--momentum", "1.5", r"must be in \[0, 1\)"),
        ("--wd", "-0.1", "must be >= 0"),
        ("--batch_size", "0", "must be >= 1"),
        ("--epochs", "two", "is not a number"),
    ],
)
def test_bad_hyperparameter_names_flag_value_and_rule(
    flag: str, value: str, rule: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        tc.main([flag, value])

    assert exit_info.value.code == 2
    assert re.search(rf"argument \S*{flag}.*'{re.escape(value)}' .*{rule}", capsys.readouterr().err)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "resnet50"], "'resnet50' is not one of resnet18_v2, resnet34_v2, small_cnn"),
        (["--stem", "tiny"], "'tiny' is not one of imagenet, cifar"),
        (["--thumbnail", "maybe"], "'maybe' is not a boolean"),
        (["--precision", "fp8"], "'fp8' is not one of auto, bf16, fp16, fp32"),
        (["--channels_last", "sometimes"], "'sometimes' is not a boolean"),
    ],
)
def test_bad_choices_are_listed(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        tc.main(args)

    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--thumbnail", "--stem", "imagenet"], "thumbnail: true contradicts --stem imagenet"),
        (["--model", "small_cnn", "--stem", "cifar"], "applies to the ResNets, not small_cnn"),
        (["--num-gpus", "many"], "--num-gpus: 'many' is not a number"),
        (["--num-gpus", "1.5"], "--num-gpus: '1.5'; more than one GPU must be a whole number"),
        (["--num-gpus", "0.5", "--replicas", "2"], "replicas: 2 exceeds the trial's 1 GPU(s)"),
        (["--model", "small_cnn"], "batch_size: 1024 x 1 replicas exceeds the 320 training"),
    ],
)
def test_inconsistent_settings_are_refused(
    args: list[str], message: str, synthetic_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tc.main([*args, "--data-dir", str(synthetic_dir)]) == 1
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_flagship_network_runs_with_the_reference_defaults(synthetic_dir: Path) -> None:
    """resnet34_v2, ImageNet stem, the default lr/momentum/wd: one short epoch."""
    completed = run_trainer(
        ["--epochs", "1", "--batch_size", "64", "--data-dir", str(synthetic_dir)]
    )

    assert completed.returncode == 0, completed.stderr
    assert f"model: resnet34_v2 stem=imagenet parameters={RESNET34_V2_PARAMETERS}" in (
        completed.stdout
    )
    assert len(REFERENCE_REGEX.findall(completed.stdout)) == 1


# --- the network -----------------------------------------------------------------------------


def test_resnet34_v2_matches_gluon_in_size_and_shape() -> None:
    imagenet = tc.build_network(tc.Architecture.RESNET34_V2, classes=10, stem=tc.Stem.IMAGENET)
    cifar = tc.build_network(tc.Architecture.RESNET34_V2, classes=10, stem=tc.Stem.CIFAR)

    assert tc.count_parameters(imagenet) == RESNET34_V2_PARAMETERS
    assert tc.count_parameters(imagenet) - tc.count_parameters(cifar) == STEM_DIFFERENCE
    assert imagenet.eval()(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert cifar.eval()(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_xavier_init_matches_mxnet_bounds_and_is_seeded() -> None:
    def initialised(seed: int) -> torch.nn.Module:
        net = tc.build_network(tc.Architecture.SMALL_CNN, classes=10, stem=tc.Stem.IMAGENET)
        tc.xavier_init(net, magnitude=2.0, generator=torch.Generator().manual_seed(seed))
        return net

    first, second, other = initialised(1), initialised(1), initialised(2)

    conv = first[0].weight  # 16 x 3 x 3 x 3
    bound = np.sqrt(2.0 / ((3 * 9 + 16 * 9) / 2))
    assert conv.abs().max() <= bound and conv.abs().max() > 0.9 * bound
    assert torch.equal(first[-1].bias, torch.zeros(10))
    assert torch.equal(conv, second[0].weight) and not torch.equal(conv, other[0].weight)


# --- data and training steps -----------------------------------------------------------------


def test_random_crop_flip_takes_shifted_possibly_mirrored_windows() -> None:
    images = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8)
    order = torch.randperm(40, generator=torch.Generator().manual_seed(0))

    crops = tc.random_crop_flip(images, order, torch.Generator().manual_seed(1))

    assert crops.shape == (40, 3, 32, 32) and crops.dtype == torch.uint8
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    mirrored = 0
    for crop, source in zip(crops, order, strict=True):
        windows = {
            (dy, dx, flip)
            for dy in range(9)
            for dx in range(9)
            for flip in (False, True)
            if torch.equal(
                crop,
                padded[source, :, dy : dy + 32, dx : dx + 32].flip(-1)
                if flip
                else padded[source, :, dy : dy + 32, dx : dx + 32],
            )
        }
        assert windows, "every crop is a window of its padded source"
        mirrored += all(flip for _, _, flip in windows)
    assert 5 <= mirrored <= 35


def test_bf16_autocast_path_trains(synthetic_dir: Path) -> None:
    """The GPU's default precision, run on the CPU: the same autocast code, minus CUDA."""
    completed = run_trainer(
        [*QUICK, "--epochs", "2", "--precision", "BF16", "--data-dir", str(synthetic_dir)]
    )

    assert completed.returncode == 0, completed.stderr
    assert "precision=bf16" in completed.stdout
    assert float(REFERENCE_REGEX.findall(completed.stdout)[-1]) > 0.3


@pytest.mark.slow
def test_cifar_stem_runs(tmp_path: Path) -> None:
    """The 3x3 stem keeps 32x32 resolution, so it costs ~16x more: a few images only."""
    write_synthetic_cifar(dest=tmp_path, train_images=16, test_images=8, seed=1)

    completed = run_trainer(
        ["--model", "resnet18_v2", "--stem", "CIFAR", "--epochs", "1", "--batch_size", "8"],
        SM_CHANNEL_TRAINING=str(tmp_path),
    )

    assert completed.returncode == 0, completed.stderr
    assert "model: resnet18_v2 stem=cifar parameters=11172170" in completed.stdout
    assert len(REFERENCE_REGEX.findall(completed.stdout)) == 1
