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
    info = json.loads((model_dir / "model-info.json").read_text())
    best = max(float(m.group(1)) for m in REFERENCE_REGEX.finditer(completed.stdout))
    assert info["validation_accuracy"] == pytest.approx(best)
    assert info["model"] == "small_cnn" and info["framework"] == "torch"
    weights = torch.load(model_dir / "model.pt", weights_only=True)
    net = tc.build_network(tc.Architecture.SMALL_CNN, classes=10, stem=tc.Stem.IMAGENET)
    net.load_state_dict(weights)  # raises if the saved weights do not fit the network
    assert not list(model_dir.glob("*.tmp"))


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
        (["--precision", "fp8"], "'fp8' is not one of auto, bf16, fp32"),
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
        (["--num-gpus", "many"], "SM_NUM_GPUS/--num-gpus: 'many' is not a number"),
        (["--model", "small_cnn"], "batch_size: 1024 exceeds the 320 training images"),
    ],
)
def test_inconsistent_settings_are_refused(
    args: list[str], message: str, synthetic_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tc.main([*args, "--data-dir", str(synthetic_dir)]) == 1
    assert message in capsys.readouterr().err


def test_fractional_gpu_share_counts_as_one_gpu() -> None:
    assert [tc.parse_gpu_count(text) for text in ("0", "0.25", "1", "2")] == [0, 1, 1, 2]


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


def test_sgd_matches_torch_optim_sgd() -> None:
    torch.manual_seed(0)
    ours_net, reference_net = torch.nn.Linear(5, 3), torch.nn.Linear(5, 3)
    reference_net.load_state_dict(ours_net.state_dict())
    ours = tc.SGD(params=list(ours_net.parameters()), lr=0.1, momentum=0.9, wd=0.01)
    reference = torch.optim.SGD(reference_net.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    inputs = torch.randn(4, 8, 5)

    for x in inputs:
        for net, optimizer in ((ours_net, ours), (reference_net, reference)):
            optimizer.zero_grad()
            net(x).square().sum().backward()
            optimizer.step()

    assert torch.allclose(ours_net.weight, reference_net.weight, atol=1e-6)
    assert torch.allclose(ours_net.bias, reference_net.bias, atol=1e-6)


def test_restore_after_warmup_steps_gives_the_same_training() -> None:
    """Graph mode trains a few warm-up steps, captures, then restores in place; what follows
    must equal training that never warmed up (checked eagerly: no GPU here)."""

    def fresh() -> tuple[torch.nn.Module, tc.SGD, tc.TrainStep]:
        net = tc.build_network(tc.Architecture.SMALL_CNN, classes=10, stem=tc.Stem.IMAGENET)
        tc.xavier_init(net, magnitude=2.0, generator=torch.Generator().manual_seed(0))
        optimizer = tc.SGD(params=list(net.parameters()), lr=0.05, momentum=0.9, wd=1e-4)
        step = tc.TrainStep(
            net=net,
            optimizer=optimizer,
            batch=8,
            mean=torch.full((1, 3, 1, 1), 100.0),
            std=torch.full((1, 3, 1, 1), 50.0),
            autocast_dtype=None,
            memory_format=torch.contiguous_format,
        )
        return net, optimizer, step

    batches = torch.randint(0, 256, (4, 8, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (4, 8))
    warmed_net, warmed_optimizer, warmed_step = fresh()
    saved = tc.snapshot(warmed_net)
    for _ in range(tc.WARMUP_STEPS):
        warmed_step.images.copy_(batches[0])
        warmed_step.labels.copy_(labels[0])
        warmed_step()
    tc.restore(warmed_net, warmed_optimizer, saved)
    plain_net, _, plain_step = fresh()

    for step in (warmed_step, plain_step):
        step.correct.zero_()
        for images, targets in zip(batches, labels, strict=True):
            step.images.copy_(images)
            step.labels.copy_(targets)
            step()

    for (name, a), (_, b) in zip(
        warmed_net.state_dict().items(), plain_net.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    assert warmed_step.correct.item() == plain_step.correct.item()


def test_evaluation_ignores_padding_rows() -> None:
    net = tc.build_network(tc.Architecture.SMALL_CNN, classes=10, stem=tc.Stem.IMAGENET)
    mean, std = torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1)
    step = tc.EvalStep(
        net=net,
        batch=8,
        mean=mean,
        std=std,
        autocast_dtype=None,
        memory_format=torch.contiguous_format,
    )
    images = torch.randint(0, 256, (11, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        predictions = net.eval()(images.float()).argmax(dim=1)
    test = tc.Split(images=images, labels=predictions)  # labels the net gets all right

    accuracy = tc.evaluate(run_step=step, step=step, test=test, net=net)

    assert accuracy == 1.0  # 11 of 11: the 5 padding rows of the last batch never count
    assert net.training


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
