"""Train a pre-activation ResNet on CIFAR-10 with SGD: the MXNet trainer's PyTorch twin.

Same command line, hyperparameters, SageMaker environment, log line and network as
models/mxnet_cifar10.py (Gluon's `resnet34_v2`: pre-activation ResNet-34, ImageNet stem by
default, `--stem cifar` / `--thumbnail` for the 3x3 stem), for GPUs MXNet cannot use. Which
speed targets apply to which stem is in models/README.md (the CIFAR stem costs ~16x more).

Why the GPU path looks the way it does: one 50-epoch trial at batch 1024 on 32x32 images is
bound by kernel launches, not arithmetic (eager PyTorch spends ~45 s on an H100, the maths
needs a few). So
- the data set lives on the GPU and each epoch's crops and mirrors are made there at once;
- one training step (normalise, forward, loss, backward, SGD update, accuracy counters) reads
  fixed input buffers and is captured once as a CUDA graph, then replayed: one launch per
  step instead of hundreds; evaluation is captured the same way, from the same memory pool
  (models/torch_steps.py);
- the weights and gradients are two flat buffers, so the update, the overflow check and the
  all-reduce are a handful of kernels;
- autocast and channels_last keep the remaining kernels on tensor cores: bf16 from compute
  capability 8.0, fp16 with loss scaling on Volta (the p3 nodes), fp32 below (models/
  torch_device.py).
Every GPU of the trial trains data-parallel with MXNet's semantics (models/torch_parallel.py);
a trial packed onto part of a GPU caps its memory at its share. The best weights stay on the
device and are written once, at the end or on SIGTERM (models/torch_trial.py). The CPU runs
the same code eagerly (the tests), graph branch included when a capture is injected.

Imports only PyTorch, NumPy and the standard library.
"""

from __future__ import annotations

import argparse
import enum
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.torch_device import (
    Capture,
    CudaGraphs,
    DeviceError,
    GpuShare,
    Hardware,
    LossScaler,
    Precision,
    PrecisionChoice,
    apply_backends,
    choose_precision,
    out_of_memory_line,
    parse_gpu_share,
    plan_backends,
    probe_hardware,
)
from models.torch_parallel import (
    EXIT_OUT_OF_MEMORY,
    Collective,
    ReplicasOutcome,
    StopRequest,
    die_by_signal,
    join_group,
    leave_group,
    run_replicas,
)
from models.torch_steps import (
    SGD,
    EvalStep,
    TrainStep,
    capture_steps,
    compose,
    step_phases,
)
from models.torch_trial import BestWeights, Lap, Timings, process_started_at

NUM_CLASSES = 10
IMAGE_SIDE = 32
CROP_PADDING = 4
RECORD_BYTES = 1 + 3 * IMAGE_SIDE * IMAGE_SIDE
TRAIN_BATCHES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_BATCH = "test_batch.bin"

N = TypeVar("N", int, float)


class Stem(enum.Enum):
    """The network's first layers: ImageNet's 7x7/2 conv + max-pool, or CIFAR's 3x3/1 conv."""

    IMAGENET = "imagenet"
    CIFAR = "cifar"


class Architecture(enum.Enum):
    RESNET18_V2 = "resnet18_v2"
    RESNET34_V2 = "resnet34_v2"
    SMALL_CNN = "small_cnn"


class TrainerError(Exception):
    """A problem with the trainer's inputs or environment; main() prints it and exits 1."""


# --- hyperparameters -------------------------------------------------------------------------


def _number(kind: Callable[[str], N], rule: str, check: Callable[[N], bool]) -> Callable[[str], N]:
    """An argparse type whose error names the value and the rule (argparse adds the flag)."""

    def parse(text: str) -> N:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not check(value):
            raise argparse.ArgumentTypeError(f"{text!r} breaks the rule: {rule}")
        return value

    return parse


def _choice(enum_type: type[enum.Enum]) -> Callable[[str], enum.Enum]:
    """An argparse type for an enum, case-insensitive, listing the choices on error."""

    def parse(text: str) -> enum.Enum:
        try:
            return enum_type(text.strip().lower())
        except ValueError:
            choices = ", ".join(member.value for member in enum_type)
            raise argparse.ArgumentTypeError(f"{text!r} is not one of {choices}") from None

    return parse


def parse_bool(text: str) -> bool:
    """SageMaker passes every hyperparameter as text, so `--thumbnail true` must work."""
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean (true/false)")


def parse_auto_bool(text: str) -> bool | None:
    """`auto` (None: the trainer decides) or a boolean."""
    return None if text.strip().lower() == "auto" else parse_bool(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m models.torch_cifar10",
        description="PyTorch pre-activation ResNet on CIFAR-10 (SageMaker script mode).",
    )
    add = parser.add_argument
    positive = _number(float, "must be > 0", lambda v: v > 0 and math.isfinite(v))
    add("--learning_rate", "--learning-rate", type=positive, default=0.01)
    add(
        "--momentum",
        type=_number(float, "must be in [0, 1)", lambda v: 0 <= v < 1),
        default=0.0,
    )
    add("--wd", type=_number(float, "must be >= 0", lambda v: 0 <= v < math.inf), default=0.0)
    add(
        "--batch_size",
        "--batch-size",
        type=_number(int, "must be >= 1", lambda v: v >= 1),
        default=1024,
        help="per device; the global batch is batch_size x replicas, as in the MXNet trainer",
    )
    add("--epochs", type=_number(int, "must be >= 1", lambda v: v >= 1), default=50)
    add("--model", type=_choice(Architecture), default=Architecture.RESNET34_V2)
    add(
        "--thumbnail",
        type=parse_bool,
        nargs="?",
        const=True,
        default=None,
        help="true: the CIFAR 3x3 stem (same as --stem cifar)",
    )
    add("--stem", type=_choice(Stem), default=None, help="imagenet (default) or cifar")
    add("--seed", type=int, default=0)
    add("--data-dir", "--data_dir", type=Path, default=None, help="default: $SM_CHANNEL_TRAINING")
    add("--model-dir", "--model_dir", type=Path, default=None, help="default: $SM_MODEL_DIR")
    add(
        "--num-gpus",
        "--num_gpus",
        type=str,
        default=None,
        help="GPUs, fractional when packed (default: $OPENAMT_NUM_GPUS, else $SM_NUM_GPUS, else 0)",
    )
    add(
        "--replicas",
        type=_number(int, "must be >= 1", lambda v: v >= 1),
        default=None,
        help="data-parallel processes: default one per GPU; on the CPU, gloo processes (tests)",
    )
    add("--precision", type=_choice(Precision), default=Precision.AUTO)
    add(
        "--cuda_graphs",
        "--cuda-graphs",
        type=parse_bool,
        default=True,
        help="capture the training and evaluation steps as CUDA graphs (GPU only)",
    )
    add(
        "--channels_last",
        "--channels-last",
        type=parse_auto_bool,
        default=None,
        help="auto (default: on the GPU only; on the CPU it measured slower), true or false",
    )
    add(
        "--deterministic",
        type=parse_bool,
        default=False,
        help="deterministic kernels, no cuDNN autotuning: bit-for-bit repeatable, slower",
    )
    add(
        "--compile",
        type=parse_bool,
        default=False,
        help="torch.compile the network first (GPU only; compiling costs tens of seconds)",
    )
    return parser


@dataclass(frozen=True)
class Settings:
    """Arguments merged with the SageMaker environment: everything train() needs."""

    learning_rate: float
    momentum: float
    wd: float
    batch_size: int
    epochs: int
    model: Architecture
    stem: Stem
    seed: int
    data_dir: Path
    model_dir: Path | None
    gpus: GpuShare
    replicas: int
    num_cpus: int | None
    precision: Precision
    cuda_graphs: bool
    channels_last: bool | None
    deterministic: bool
    compile: bool


def resolve_stem(*, stem: Stem | None, thumbnail: bool | None) -> Stem:
    """`--thumbnail` is MXNet's name for the CIFAR stem; both spellings are accepted."""
    if thumbnail and stem is Stem.IMAGENET:
        raise TrainerError("thumbnail: true contradicts --stem imagenet; pass one of them")
    if thumbnail or stem is Stem.CIFAR:
        return Stem.CIFAR
    return Stem.IMAGENET


def resolve_settings(args: argparse.Namespace, environ: dict[str, str]) -> Settings:
    """Flags win over SM_*/OPENAMT_* variables, which win over defaults."""
    data_dir = args.data_dir or _env_path(environ, "SM_CHANNEL_TRAINING")
    if data_dir is None:
        raise TrainerError(
            "data: pass --data-dir or set SM_CHANNEL_TRAINING (the training channel)"
        )
    try:
        gpus = parse_gpu_share(flag=args.num_gpus, environ=environ)
    except DeviceError as exc:
        raise TrainerError(str(exc)) from None
    replicas = args.replicas if args.replicas is not None else max(1, gpus.count)
    if gpus.count and replicas > gpus.count:
        raise TrainerError(
            f"replicas: {replicas} exceeds the trial's {gpus.count} GPU(s) "
            f"(share {gpus.share:g}); at most one replica per GPU"
        )
    cpus_text = environ.get("SM_NUM_CPUS", "").strip()
    stem = resolve_stem(stem=args.stem, thumbnail=args.thumbnail)
    if stem is Stem.CIFAR and args.model is Architecture.SMALL_CNN:
        raise TrainerError("stem: cifar (thumbnail) applies to the ResNets, not small_cnn")
    return Settings(
        learning_rate=args.learning_rate,
        momentum=args.momentum,
        wd=args.wd,
        batch_size=args.batch_size,
        epochs=args.epochs,
        model=args.model,
        stem=stem,
        seed=args.seed,
        data_dir=data_dir,
        model_dir=args.model_dir or _env_path(environ, "SM_MODEL_DIR"),
        gpus=gpus,
        replicas=replicas,
        num_cpus=max(1, math.floor(float(cpus_text))) if cpus_text else None,
        precision=args.precision,
        cuda_graphs=args.cuda_graphs,
        channels_last=args.channels_last,
        deterministic=args.deterministic,
        compile=args.compile,
    )


def _env_path(environ: dict[str, str], name: str) -> Path | None:
    value = environ.get(name, "").strip()
    return Path(value) if value else None


# --- data ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    """Images `n x 3 x 32 x 32` uint8 (RGB) and labels `n` int64, on the training device."""

    images: torch.Tensor
    labels: torch.Tensor


def find_batches_dir(data_dir: Path) -> Path:
    """The directory holding data_batch_1.bin: DATA_DIR or its cifar-10-batches-bin."""
    for candidate in (data_dir, data_dir / "cifar-10-batches-bin"):
        if (candidate / TRAIN_BATCHES[0]).is_file():
            return candidate
    raise TrainerError(
        f"data: no {TRAIN_BATCHES[0]} in {data_dir} or {data_dir}/cifar-10-batches-bin; "
        "prepare it with `openamt data cifar10 --dest DIR`"
    )


def read_split(paths: list[Path], device: torch.device) -> Split:
    raw = np.concatenate([np.fromfile(path, dtype=np.uint8) for path in paths])
    if raw.size == 0 or raw.size % RECORD_BYTES:
        raise TrainerError(f"data: {paths} do not hold whole {RECORD_BYTES}-byte CIFAR records")
    raw = raw.reshape(-1, RECORD_BYTES)
    labels = raw[:, 0].astype(np.int64)
    if labels.max() >= NUM_CLASSES:
        raise TrainerError(f"data: label {labels.max()} in {paths}; must be < {NUM_CLASSES}")
    images = np.ascontiguousarray(raw[:, 1:]).reshape(-1, 3, IMAGE_SIDE, IMAGE_SIDE)
    return Split(
        images=torch.from_numpy(images).to(device), labels=torch.from_numpy(labels).to(device)
    )


def load_data(data_dir: Path, device: torch.device) -> tuple[Split, Split]:
    batches = find_batches_dir(data_dir)
    names = [name for name in TRAIN_BATCHES if (batches / name).is_file()]
    return read_split([batches / n for n in names], device), read_split(
        [batches / TEST_BATCH], device
    )


def random_crop_flip(
    images: torch.Tensor, order: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """The epoch's training inputs: images in `order`, each a random 32x32 window of the
    zero-padded image, half of them mirrored.

    `images` is `n x 3 x 32 x 32` uint8, `order` a permutation `m`; returns `m x 3 x 32 x 32`
    uint8 in channels_last layout (the gather yields `m x 32 x 32 x 3`, permuted as a view).
    One gather on the data's device, so on a GPU the epoch costs a handful of kernels.
    """
    count, device = len(order), images.device
    pad = CROP_PADDING
    padded = F.pad(images, (pad, pad, pad, pad))
    offsets = torch.arange(IMAGE_SIDE, device=device)
    window = 2 * pad + 1
    rows = torch.randint(0, window, (count, 1), device=device, generator=generator) + offsets
    cols = torch.randint(0, window, (count, 1), device=device, generator=generator) + offsets
    mirror = torch.rand((count, 1), device=device, generator=generator) < 0.5
    cols = torch.where(mirror, cols.flip(1), cols)
    crops = padded[order[:, None, None], :, rows[:, :, None], cols[:, None, :]]
    return crops.permute(0, 3, 1, 2)


def channel_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std as `1 x 3 x 1 x 1` float32, from this data set's training images."""
    as_float = images.float()
    mean = as_float.mean(dim=(0, 2, 3))
    std = as_float.std(dim=(0, 2, 3), unbiased=False).clamp_min(1.0)
    return mean.view(1, 3, 1, 1), std.view(1, 3, 1, 1)


# --- network: Gluon's ResNetV2, layer for layer ----------------------------------------------


def conv3x3(in_channels: int, channels: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)


class BasicBlockV2(nn.Module):
    """Pre-activation residual block: BN-ReLU-conv twice; the shortcut taps the activated input."""

    def __init__(self, *, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv2 = conv3x3(channels, channels, 1)
        self.downsample = (
            nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False)
            if channels != in_channels
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x
        x = F.relu(self.bn1(x))
        if self.downsample is not None:
            residual = self.downsample(x)
        x = self.conv1(x)
        x = self.conv2(F.relu(self.bn2(x)))
        return x + residual


class ResNetV2(nn.Module):
    """Gluon model zoo's ResNetV2 (basic blocks): input BN without affine, stem, four stages of
    64/128/256/512 channels, BN-ReLU, global average pool, dense. Takes `b x 3 x 32 x 32`."""

    def __init__(self, *, layers: tuple[int, ...], classes: int, stem: Stem) -> None:
        super().__init__()
        widths = (64, 128, 256, 512)
        features: list[nn.Module] = [nn.BatchNorm2d(3, affine=False)]
        if stem is Stem.CIFAR:
            features.append(conv3x3(3, widths[0], 1))
        else:
            features += [
                nn.Conv2d(3, widths[0], 7, stride=2, padding=3, bias=False),
                nn.BatchNorm2d(widths[0]),
                nn.ReLU(),
                nn.MaxPool2d(3, stride=2, padding=1),
            ]
        in_channels = widths[0]
        for stage, (blocks, channels) in enumerate(zip(layers, widths, strict=True)):
            for block in range(blocks):
                stride = 2 if stage > 0 and block == 0 else 1
                features.append(
                    BasicBlockV2(in_channels=in_channels, channels=channels, stride=stride)
                )
                in_channels = channels
        features += [nn.BatchNorm2d(in_channels), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*features)
        self.output = nn.Linear(in_channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.features(x))


def small_cnn(classes: int) -> nn.Sequential:
    """Three conv-BN-ReLU-pool stages: the MXNet trainer's small_cnn, for quick CPU runs."""
    layers: list[nn.Module] = []
    in_channels = 3
    for channels in (16, 32, 64):
        layers += [
            nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ]
        in_channels = channels
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_channels, classes)]
    return nn.Sequential(*layers)


def build_network(architecture: Architecture, *, classes: int, stem: Stem) -> nn.Module:
    if architecture is Architecture.RESNET18_V2:
        return ResNetV2(layers=(2, 2, 2, 2), classes=classes, stem=stem)
    if architecture is Architecture.RESNET34_V2:
        return ResNetV2(layers=(3, 4, 6, 3), classes=classes, stem=stem)
    return small_cnn(classes)


def xavier_init(net: nn.Module, *, magnitude: float, generator: torch.Generator) -> None:
    """MXNet's Xavier(magnitude, 'uniform', 'avg'): U(+-sqrt(magnitude / ((fan_in + fan_out)/2)))
    for conv and dense weights, zero biases (BN keeps gamma 1, beta 0). Draws from `generator`
    so a trial's initial weights depend on its seed only."""
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                weight = module.weight
                receptive = weight[0, 0].numel() if weight.dim() > 2 else 1
                fan_in, fan_out = weight.shape[1] * receptive, weight.shape[0] * receptive
                scale = math.sqrt(magnitude / ((fan_in + fan_out) / 2))
                nn.init.uniform_(weight, -scale, scale, generator=generator)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


# --- training --------------------------------------------------------------------------------


@dataclass(frozen=True)
class EpochResult:
    train_accuracy: float
    train_loss: float
    seconds: float
    images: int  # trained in this epoch, all replicas
    stopped_after: int | None = None  # steps done when a stop cut the epoch short
    steps: int = 0


def train_epoch(
    *,
    run_step: Callable[[], None],
    step: TrainStep,
    train: Split,
    generator: torch.Generator,
    collective: Collective,
    stop: StopRequest,
) -> EpochResult:
    """One pass over a fresh permutation; the last incomplete global batch is dropped (fixed
    shapes). Every replica draws the same permutation and crops and trains on its own slice
    of each global batch. A stop is agreed on by all replicas and cuts the epoch short."""
    start = time.perf_counter()
    batch = len(step.labels)
    global_batch = batch * collective.world_size
    order = torch.randperm(len(train.labels), device=train.labels.device, generator=generator)
    inputs = random_crop_flip(train.images, order, generator)
    labels = train.labels[order]
    step.correct.zero_()
    step.loss_sum.zero_()
    steps = len(order) // global_batch
    for index in range(steps):
        if collective.any(stop.requested):
            return EpochResult(
                train_accuracy=math.nan,
                train_loss=math.nan,
                seconds=time.perf_counter() - start,
                images=index * global_batch,
                stopped_after=index,
                steps=steps,
            )
        first = index * global_batch + collective.rank * batch
        step.images.copy_(inputs[first : first + batch])
        step.labels.copy_(labels[first : first + batch])
        run_step()
    collective.sum_(step.correct)
    collective.sum_(step.loss_sum)
    correct, loss_sum = step.correct.item(), step.loss_sum.item()  # waits for the device
    images = steps * global_batch
    return EpochResult(
        train_accuracy=correct / images,
        train_loss=loss_sum / images,
        seconds=time.perf_counter() - start,
        images=images,
        steps=steps,
    )


def evaluate(
    *,
    run_step: Callable[[], None],
    step: EvalStep,
    test: Split,
    net: nn.Module,
    collective: Collective | None = None,
) -> float:
    """Accuracy on the test split; each replica counts its own contiguous shard with its own
    batch-norm statistics (as MXNet splits evaluation over devices)."""
    collective = collective or Collective(device=step.correct.device)
    net.eval()
    batch = len(step.labels)
    shard = math.ceil(len(test.labels) / collective.world_size)
    low = collective.rank * shard
    high = min(len(test.labels), low + shard)
    step.correct.zero_()
    for start in range(low, high, batch):
        end = min(high, start + batch)
        step.images[: end - start].copy_(test.images[start:end])
        step.labels.fill_(-1)
        step.labels[: end - start].copy_(test.labels[start:end])
        run_step()
    net.train()
    collective.sum_(step.correct)
    return step.correct.item() / len(test.labels)


# --- the trial -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialResult:
    best_accuracy: float | None
    best_epoch: int | None
    stopped: bool
    timings: Timings = field(default_factory=Timings)


def choose_device(settings: Settings, rank: int) -> torch.device:
    if settings.gpus.count == 0:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise TrainerError(
            f"SM_NUM_GPUS/--num-gpus: {settings.gpus.count} GPUs requested, PyTorch sees none "
            "(a CPU build, or CUDA_VISIBLE_DEVICES is empty)"
        )
    visible = torch.cuda.device_count()
    if visible < settings.replicas:
        raise TrainerError(
            f"SM_NUM_GPUS/--num-gpus: {settings.replicas} GPUs requested, PyTorch sees {visible}"
        )
    return torch.device("cuda", rank)


def describe_model(settings: Settings, mean: torch.Tensor, std: torch.Tensor) -> dict[str, object]:
    return {
        "framework": "torch",
        "model": settings.model.value,
        "stem": settings.stem.value,
        "classes": NUM_CLASSES,
        "mean": mean.flatten().tolist(),
        "std": std.flatten().tolist(),
    }


@dataclass(frozen=True)
class Steps:
    """The trial's network and its steps, ready to run: `run_train`/`run_eval` replay the
    captured graphs, or call the steps eagerly."""

    net: nn.Module
    step: TrainStep
    eval_step: EvalStep
    run_train: Callable[[], None]
    run_eval: Callable[[], None]
    channels_last: bool
    graphs: bool


def build_steps(
    settings: Settings,
    *,
    device: torch.device,
    choice: PrecisionChoice,
    collective: Collective,
    capture: Capture | None,
    train: Split,
    mean: torch.Tensor,
    std: torch.Tensor,
) -> Steps:
    """Network, optimizer, loss scaler and steps; then, with graphs, warm-up and capture."""
    on_gpu = device.type == "cuda"
    channels_last = on_gpu if settings.channels_last is None else settings.channels_last
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    net = build_network(settings.model, classes=NUM_CLASSES, stem=settings.stem)
    xavier_init(net, magnitude=2.0, generator=torch.Generator().manual_seed(settings.seed))
    net = net.to(device=device, memory_format=memory_format)
    optimizer = SGD(net=net, lr=settings.learning_rate, momentum=settings.momentum, wd=settings.wd)
    scaler = LossScaler(device=device) if choice.loss_scaling else None
    batch = settings.batch_size
    common = {
        "net": torch.compile(net) if settings.compile and on_gpu else net,
        "batch_shape": (batch, 3, IMAGE_SIDE, IMAGE_SIDE),
        "mean": mean,
        "std": std,
        "autocast_dtype": choice.autocast_dtype,
        "memory_format": memory_format,
    }
    step = TrainStep(optimizer=optimizer, scaler=scaler, replicas=collective.world_size, **common)
    eval_step = EvalStep(**common)
    phases = step_phases(step, collective)
    graphs = settings.cuda_graphs and (on_gpu or capture is not None)
    if graphs:
        run_train, run_eval = capture_steps(
            capture=capture or CudaGraphs(),
            phases=phases,
            step=step,
            eval_step=eval_step,
            net=net,
            first_images=train.images[:batch],
            first_labels=train.labels[:batch],
        )
    else:
        run_train, run_eval = compose(phases, None), eval_step
    return Steps(
        net=net,
        step=step,
        eval_step=eval_step,
        run_train=run_train,
        run_eval=run_eval,
        channels_last=channels_last,
        graphs=graphs,
    )


def train(
    settings: Settings,
    *,
    hardware: Hardware | None = None,
    capture: Capture | None = None,
    collective: Collective | None = None,
    stop: StopRequest | None = None,
    started_at: float | None = None,
) -> TrialResult:
    """Train, log one line per epoch, keep the best weights and write them at the end or when
    `stop` is requested. The tests inject `hardware` (a GPU's compute capability), `capture`
    (the graph branch on the CPU), `collective` (a replica's process group) and `stop`."""
    started_at = started_at or time.time()
    timings = Timings()
    lap = Lap()
    collective = collective or Collective(device=torch.device("cpu"))
    stop = stop or StopRequest()
    leader = collective.rank == 0
    device = choose_device(settings, collective.rank)
    on_gpu = device.type == "cuda"
    hardware = hardware or probe_hardware(device)
    choice = choose_precision(settings.precision, hardware)
    backends = plan_backends(
        hardware=hardware, choice=choice, share=settings.gpus, deterministic=settings.deterministic
    )
    apply_backends(backends, device)
    if not on_gpu and settings.num_cpus is not None:
        torch.set_num_threads(max(1, settings.num_cpus // settings.replicas))
    if on_gpu:
        torch.zeros(1, device=device)  # the CUDA context, counted as start-up
    timings.startup = time.time() - started_at
    lap.take()

    train_split, test_split = load_data(settings.data_dir, device)
    if settings.batch_size * settings.replicas > len(train_split.labels):
        raise TrainerError(
            f"batch_size: {settings.batch_size} x {settings.replicas} replicas exceeds the "
            f"{len(train_split.labels)} training images"
        )
    mean, std = channel_stats(train_split.images)
    timings.data = lap.take(device)
    steps = build_steps(
        settings,
        device=device,
        choice=choice,
        collective=collective,
        capture=capture,
        train=train_split,
        mean=mean,
        std=std,
    )
    best = BestWeights(steps.net)
    timings.capture = lap.take(device)
    if leader:
        print(
            f"model: {settings.model.value} stem={settings.stem.value} "
            f"parameters={count_parameters(steps.net)} "
            f"batch={settings.batch_size * collective.world_size} "
            f"({settings.batch_size} per replica x {collective.world_size}) "
            f"train_images={len(train_split.labels)} test_images={len(test_split.labels)}",
            flush=True,
        )
        print(
            f"setup: device={device} ({hardware.name}) replicas={collective.world_size} "
            f"precision={choice.precision.value} ({choice.reason}) "
            f"loss_scaling={choice.loss_scaling} cuda_graphs={steps.graphs} "
            f"channels_last={steps.channels_last} compile={settings.compile and on_gpu} "
            f"{backends.describe()} gpu_share={settings.gpus.share:g}",
            flush=True,
        )
        if settings.model_dir is None:
            print("note: no SM_MODEL_DIR or --model-dir, weights are not saved", flush=True)

    data_generator = torch.Generator(device=device).manual_seed(settings.seed)
    stopped: EpochResult | None = None
    for epoch in range(1, settings.epochs + 1):
        timings.first_epoch_start = timings.first_epoch_start or time.time()
        result = train_epoch(
            run_step=steps.run_train,
            step=steps.step,
            train=train_split,
            generator=data_generator,
            collective=collective,
            stop=stop,
        )
        timings.train += lap.take()
        timings.images += result.images
        if result.stopped_after is not None:
            stopped = result
            break
        accuracy = evaluate(
            run_step=steps.run_eval,
            step=steps.eval_step,
            test=test_split,
            net=steps.net,
            collective=collective,
        )
        timings.evaluate += lap.take()
        timings.last_epoch_end = time.time()
        if leader:
            print(
                f"[Epoch {epoch}] validation: accuracy={accuracy:.6f} "
                f"training: accuracy={result.train_accuracy:.6f} loss={result.train_loss:.6f} "
                f"time={result.seconds:.4f}s images/s={result.images / result.seconds:.1f}",
                flush=True,
            )
        if best.accuracy is None or accuracy > best.accuracy:
            best.keep(steps.net, epoch=epoch, accuracy=accuracy, collective=collective)
            timings.save += lap.take(device)

    if leader and settings.model_dir is not None and best.epoch is not None:
        description = describe_model(settings, mean, std)
        description |= {"epoch": best.epoch, "validation_accuracy": best.accuracy}
        best.write(model_dir=settings.model_dir, description=description)
    timings.save += lap.take()
    if leader:
        print_footer(
            settings=settings,
            best=best,
            stopped=stopped,
            stop=stop,
            epoch=epoch,
            timings=timings,
            trial_seconds=time.time() - started_at,
        )
    return TrialResult(
        best_accuracy=best.accuracy,
        best_epoch=best.epoch,
        stopped=stopped is not None,
        timings=timings,
    )


def print_footer(
    *,
    settings: Settings,
    best: BestWeights,
    stopped: EpochResult | None,
    stop: StopRequest,
    epoch: int,
    timings: Timings,
    trial_seconds: float,
) -> None:
    if best.epoch is None:
        kept = "no epoch finished, nothing saved"
    else:
        written = f"written to {settings.model_dir}" if settings.model_dir else "not saved"
        kept = f"best_validation_accuracy={best.accuracy:.6f} from epoch {best.epoch} {written}"
    if stopped is None:
        print(
            f"done: best_validation_accuracy={best.accuracy:.6f} best_epoch={best.epoch} "
            f"train_seconds={timings.train:.2f} trial_seconds={trial_seconds:.2f}",
            flush=True,
        )
    else:
        cause = stop.by_signal.name if stop.by_signal is not None else "stop requested"
        print(
            f"stopped: {cause} in epoch {epoch} after {stopped.stopped_after} of "
            f"{stopped.steps} steps; {kept}; trial_seconds={trial_seconds:.2f}",
            flush=True,
        )
    print(timings.line(), flush=True)


def run_trial(
    settings: Settings,
    *,
    stop: StopRequest,
    collective: Collective | None = None,
    started_at: float | None = None,
    hardware: Hardware | None = None,
    capture: Capture | None = None,
) -> int:
    """train() with its failures turned into an exit status and one last line on stderr; a
    trial stopped by a signal dies of that signal once its best weights are written."""
    rank = 0 if collective is None else collective.rank
    who = f"replica {rank}: " if settings.replicas > 1 else ""
    try:
        result = train(
            settings,
            hardware=hardware,
            capture=capture,
            collective=collective,
            stop=stop,
            started_at=started_at,
        )
    except TrainerError as exc:
        print(f"error: {who}{exc}", file=sys.stderr, flush=True)
        return 1
    except torch.OutOfMemoryError as exc:
        where = f"cuda:{rank}" + (f" (replica {rank} of {settings.replicas})" if who else "")
        line = out_of_memory_line(exc, where=where, share=settings.gpus, batch=settings.batch_size)
        print(line, file=sys.stderr, flush=True)
        return EXIT_OUT_OF_MEMORY
    if result.stopped and stop.by_signal is not None:
        die_by_signal(stop.by_signal)
    return 0


def replica_main(
    rank: int, world_size: int, rendezvous: str, argv: list[str], started_at: float | None
) -> int:
    """One data-parallel replica, a process spawned by main(); returns its exit status."""
    stop = StopRequest()
    stop.install()
    settings = resolve_settings(build_parser().parse_args(argv), dict(os.environ))
    device = choose_device(settings, rank)
    collective = join_group(rank=rank, world_size=world_size, device=device, rendezvous=rendezvous)
    try:
        return run_trial(settings, stop=stop, collective=collective, started_at=started_at)
    finally:
        leave_group()


def report_replicas(outcome: ReplicasOutcome, *, replicas: int) -> int:
    """The trainer's exit status from its replicas'; a failure's reason is stderr's last line."""
    if outcome.failed is None:
        if outcome.stopped:
            die_by_signal(signal.SIGTERM)
        return 0
    rank, code = outcome.failed, outcome.exit_codes[outcome.failed]
    if outcome.out_of_memory:
        print(
            f"error: CUDA out of memory in replica {rank} of {replicas} (its message is above) "
            "-- give the trial more GPU memory or a smaller batch_size",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_OUT_OF_MEMORY
    how = f"signal {signal.Signals(-code).name}" if code < 0 else f"code {code}"
    print(f"error: replica {rank} of {replicas} ended with {how}", file=sys.stderr, flush=True)
    return 1


def main(argv: list[str] | None = None) -> int:
    started_at = process_started_at()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        settings = resolve_settings(args, dict(os.environ))
        if settings.replicas > 1:
            choose_device(settings, 0)  # fail fast, before any replica starts
    except TrainerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if settings.replicas > 1:
        module = __spec__.name if __spec__ is not None else __name__
        outcome = run_replicas(
            target=f"{module}:replica_main",
            world_size=settings.replicas,
            argv=argv,
            started_at=started_at,
        )
        return report_replicas(outcome, replicas=settings.replicas)
    stop = StopRequest()
    previous = stop.install()
    try:
        return run_trial(settings, stop=stop, started_at=started_at)
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
