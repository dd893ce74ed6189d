"""Train a pre-activation ResNet on CIFAR-10 with SGD: the MXNet trainer's PyTorch twin.

Same command line, hyperparameters, SageMaker environment, log line and network as
models/mxnet_cifar10.py (Gluon's `resnet34_v2`: pre-activation ResNet-34, ImageNet stem by
default, `--stem cifar` / `--thumbnail` for the 3x3 stem), for GPUs MXNet cannot use.

Why the GPU path looks the way it does: one 50-epoch trial at batch 1024 on 32x32 images is
bound by kernel launches, not arithmetic (eager PyTorch spends ~45 s on an H100, the maths
needs a few). So
- the data set lives on the GPU and each epoch's crops and mirrors are made there at once;
- one training step (normalise, forward, loss, backward, SGD update, accuracy counters) reads
  fixed input buffers and is captured once as a CUDA graph, then replayed: one launch per
  step instead of hundreds; evaluation is captured the same way;
- bf16 autocast and channels_last keep the remaining kernels on tensor cores.
Several trials can share a GPU (fractional `resources_per_trial.gpu`): each is its own
process. The CPU path runs the same step function eagerly (used by the tests).

Imports only PyTorch, NumPy and the standard library.
"""

from __future__ import annotations

import argparse
import enum
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

NUM_CLASSES = 10
IMAGE_SIDE = 32
CROP_PADDING = 4
RECORD_BYTES = 1 + 3 * IMAGE_SIDE * IMAGE_SIDE
TRAIN_BATCHES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_BATCH = "test_batch.bin"
WARMUP_STEPS = 3  # eager steps before capture: cuDNN picks algorithms, SGD makes its buffers

N = TypeVar("N", int, float)


class Stem(enum.Enum):
    """The network's first layers: ImageNet's 7x7/2 conv + max-pool, or CIFAR's 3x3/1 conv."""

    IMAGENET = "imagenet"
    CIFAR = "cifar"


class Precision(enum.Enum):
    """Compute precision on the GPU; `auto` is bf16 autocast there and fp32 on the CPU."""

    AUTO = "auto"
    BF16 = "bf16"
    FP32 = "fp32"


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
        help="per device (one device per trial here)",
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
    add("--num-gpus", "--num_gpus", type=str, default=None, help="default: $SM_NUM_GPUS, else 0")
    add("--precision", type=_choice(Precision), default=Precision.AUTO)
    add(
        "--cuda_graphs",
        "--cuda-graphs",
        type=parse_bool,
        default=True,
        help="capture the training and evaluation steps as CUDA graphs (GPU only)",
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
    num_gpus: int
    num_cpus: int | None
    precision: Precision
    cuda_graphs: bool
    compile: bool


def resolve_stem(*, stem: Stem | None, thumbnail: bool | None) -> Stem:
    """`--thumbnail` is MXNet's name for the CIFAR stem; both spellings are accepted."""
    if thumbnail and stem is Stem.IMAGENET:
        raise TrainerError("thumbnail: true contradicts --stem imagenet; pass one of them")
    if thumbnail or stem is Stem.CIFAR:
        return Stem.CIFAR
    return Stem.IMAGENET


def resolve_settings(args: argparse.Namespace, environ: dict[str, str]) -> Settings:
    """Flags win over SM_* variables, which win over defaults."""
    data_dir = args.data_dir or _env_path(environ, "SM_CHANNEL_TRAINING")
    if data_dir is None:
        raise TrainerError(
            "data: pass --data-dir or set SM_CHANNEL_TRAINING (the training channel)"
        )
    gpus_text = args.num_gpus if args.num_gpus is not None else environ.get("SM_NUM_GPUS", "0")
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
        num_gpus=parse_gpu_count(gpus_text),
        num_cpus=max(1, math.floor(float(cpus_text))) if cpus_text else None,
        precision=args.precision,
        cuda_graphs=args.cuda_graphs,
        compile=args.compile,
    )


def _env_path(environ: dict[str, str], name: str) -> Path | None:
    value = environ.get(name, "").strip()
    return Path(value) if value else None


def parse_gpu_count(text: str) -> int:
    """GPUs to use; a fractional share (a trial packed onto part of a GPU) counts as one."""
    try:
        value = float(text)
    except ValueError:
        raise TrainerError(f"SM_NUM_GPUS/--num-gpus: {text!r} is not a number") from None
    if not (value >= 0 and math.isfinite(value)):
        raise TrainerError(f"SM_NUM_GPUS/--num-gpus: {text!r}; must be >= 0")
    return math.ceil(value)


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


class SGD:
    """SGD with momentum and coupled weight decay, the update MXNet's and torch.optim's SGD make
    at a constant learning rate: `v = momentum * v + (g + wd * w)`, `w -= lr * v`.

    Written out because it is capturable by construction: the momentum buffers exist from the
    start and every update is in place, so a CUDA graph of `step()` keeps updating the same
    tensors. (torch.optim.SGD creates buffers lazily and imports torch._dynamo, seconds per
    trial.)
    """

    def __init__(
        self, *, params: list[nn.Parameter], lr: float, momentum: float, wd: float
    ) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.momentum, self.wd = lr, momentum, wd
        self.velocity = [torch.zeros_like(p) for p in self.params] if momentum else []

    def zero_grad(self) -> None:
        """Drop the gradients; under capture, backward then writes fresh ones from the graph's
        pool on every replay instead of accumulating."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        grads = [p.grad for p in self.params]
        if self.wd:
            torch._foreach_add_(grads, self.params, alpha=self.wd)
        if self.momentum:
            torch._foreach_mul_(self.velocity, self.momentum)
            torch._foreach_add_(self.velocity, grads)
            grads = self.velocity
        torch._foreach_add_(self.params, grads, alpha=-self.lr)

    def reset(self) -> None:
        """Momentum back to zero, in place (a captured graph holds the buffers' addresses)."""
        if self.velocity:
            torch._foreach_zero_(self.velocity)


class TrainStep:
    """One SGD step reading fixed buffers: `images` (`b x 3 x 32 x 32` uint8)
    and `labels` (`b`), adding to `correct` and `loss_sum` on the device.

    Fixed buffers and device-side counters are what make the step capturable as a CUDA graph:
    the graph replays with whatever the buffers hold and never syncs with the host. Eager mode
    (the CPU) calls the very same function once per batch.
    """

    def __init__(
        self,
        *,
        net: nn.Module,
        optimizer: SGD,
        batch: int,
        mean: torch.Tensor,
        std: torch.Tensor,
        autocast_dtype: torch.dtype | None,
        memory_format: torch.memory_format,
    ) -> None:
        device = mean.device
        self.net, self.optimizer = net, optimizer
        self.mean, self.std = mean, std
        self.autocast_dtype = autocast_dtype
        shape = (batch, 3, IMAGE_SIDE, IMAGE_SIDE)
        self.images = torch.zeros(shape, dtype=torch.uint8, device=device).to(
            memory_format=memory_format
        )
        self.labels = torch.zeros(batch, dtype=torch.int64, device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.loss_sum = torch.zeros((), dtype=torch.float32, device=device)

    def __call__(self) -> None:
        self.optimizer.zero_grad()
        logits = forward(self.net, self.images, self.mean, self.std, self.autocast_dtype)
        loss = F.cross_entropy(logits, self.labels)
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            self.correct += (logits.argmax(dim=1) == self.labels).sum()
            self.loss_sum += loss.detach() * len(self.labels)


class EvalStep:
    """Forward pass on fixed buffers counting correct predictions; padding rows carry label -1,
    which no prediction matches, so the last partial batch needs no special case."""

    def __init__(
        self,
        *,
        net: nn.Module,
        batch: int,
        mean: torch.Tensor,
        std: torch.Tensor,
        autocast_dtype: torch.dtype | None,
        memory_format: torch.memory_format,
    ) -> None:
        device = mean.device
        self.net, self.mean, self.std = net, mean, std
        self.autocast_dtype = autocast_dtype
        shape = (batch, 3, IMAGE_SIDE, IMAGE_SIDE)
        self.images = torch.zeros(shape, dtype=torch.uint8, device=device).to(
            memory_format=memory_format
        )
        self.labels = torch.full((batch,), -1, dtype=torch.int64, device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)

    def __call__(self) -> None:
        with torch.no_grad():
            logits = forward(self.net, self.images, self.mean, self.std, self.autocast_dtype)
            self.correct += (logits.argmax(dim=1) == self.labels).sum()


def forward(
    net: nn.Module,
    images: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    autocast_dtype: torch.dtype | None,
) -> torch.Tensor:
    """Normalise uint8 images and run the network; logits `b x classes` in float32."""
    x = (images.float() - mean) / std
    if autocast_dtype is None:
        return net(x)
    # cache_enabled=False: autocast's weight-cast cache would hold tensors made during capture.
    with torch.autocast(device_type=x.device.type, dtype=autocast_dtype, cache_enabled=False):
        logits = net(x)
    return logits.float()


def capture(step: Callable[[], None], *, warmup: Callable[[], None]) -> Callable[[], None]:
    """Record `step` as a CUDA graph after running `warmup` on a side stream; returns replay.

    Warm-up first because capture forbids what first calls do: cuDNN's algorithm search and
    workspace allocation, autograd's first-time set-up.
    """
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        warmup()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay


def snapshot(net: nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in net.state_dict().items()}


def restore(net: nn.Module, optimizer: SGD, saved: dict[str, torch.Tensor]) -> None:
    """Undo warm-up steps in place (a captured graph holds the tensors' addresses): weights and
    BN statistics back to `saved`, momentum back to zero."""
    with torch.no_grad():
        for name, value in net.state_dict().items():
            value.copy_(saved[name])
    optimizer.reset()


@dataclass(frozen=True)
class EpochResult:
    train_accuracy: float
    train_loss: float
    seconds: float
    images: int


def train_epoch(
    *, run_step: Callable[[], None], step: TrainStep, train: Split, generator: torch.Generator
) -> EpochResult:
    """One pass over a fresh permutation; the last incomplete batch is dropped (fixed shapes)."""
    start = time.perf_counter()
    batch = len(step.labels)
    order = torch.randperm(len(train.labels), device=train.labels.device, generator=generator)
    inputs = random_crop_flip(train.images, order, generator)
    labels = train.labels[order]
    step.correct.zero_()
    step.loss_sum.zero_()
    steps = len(order) // batch
    for index in range(steps):
        step.images.copy_(inputs[index * batch : (index + 1) * batch])
        step.labels.copy_(labels[index * batch : (index + 1) * batch])
        run_step()
    correct, loss_sum = step.correct.item(), step.loss_sum.item()  # waits for the device
    images = steps * batch
    return EpochResult(
        train_accuracy=correct / images,
        train_loss=loss_sum / images,
        seconds=time.perf_counter() - start,
        images=images,
    )


def evaluate(*, run_step: Callable[[], None], step: EvalStep, test: Split, net: nn.Module) -> float:
    net.eval()
    batch = len(step.labels)
    step.correct.zero_()
    for start in range(0, len(test.labels), batch):
        images = test.images[start : start + batch]
        step.images[: len(images)].copy_(images)
        step.labels.fill_(-1)
        step.labels[: len(images)].copy_(test.labels[start : start + batch])
        run_step()
    net.train()
    return step.correct.item() / len(test.labels)


def choose_device(settings: Settings) -> torch.device:
    if settings.num_gpus == 0:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise TrainerError(
            f"SM_NUM_GPUS/--num-gpus: {settings.num_gpus} GPUs requested, PyTorch sees none "
            "(a CPU build, or CUDA_VISIBLE_DEVICES is empty)"
        )
    if settings.num_gpus > 1:
        print(
            f"note: {settings.num_gpus} GPUs given, training on one: for this model, one trial "
            "per GPU (or several) is faster than one trial across GPUs",
            flush=True,
        )
    return torch.device("cuda", 0)


def save_model(*, net: nn.Module, model_dir: Path, description: dict[str, object]) -> None:
    """Best weights plus what rebuilding the network needs, each renamed into place."""
    model_dir.mkdir(parents=True, exist_ok=True)
    weights = model_dir / "model.pt"
    torch.save(net.state_dict(), str(weights) + ".tmp")
    os.replace(str(weights) + ".tmp", weights)
    info = model_dir / "model-info.json"
    info.with_suffix(".tmp").write_text(json.dumps(description, indent=2) + "\n")
    os.replace(info.with_suffix(".tmp"), info)


def train(settings: Settings) -> float:
    """Train, log one line per epoch, save the best weights; returns the best accuracy."""
    trial_start = time.perf_counter()
    device = choose_device(settings)
    on_gpu = device.type == "cuda"
    if not on_gpu and settings.num_cpus is not None:
        torch.set_num_threads(settings.num_cpus)
    if on_gpu:
        torch.backends.cudnn.benchmark = True
    train_split, test_split = load_data(settings.data_dir, device)
    batch = settings.batch_size
    if batch > len(train_split.labels):
        raise TrainerError(
            f"batch_size: {batch} exceeds the {len(train_split.labels)} training images"
        )
    use_bf16 = settings.precision is Precision.BF16 or (
        settings.precision is Precision.AUTO and on_gpu
    )
    autocast_dtype = torch.bfloat16 if use_bf16 else None
    use_graphs = on_gpu and settings.cuda_graphs
    # channels_last feeds tensor cores on the GPU; on the CPU it measured slower (oneDNN).
    memory_format = torch.channels_last if on_gpu else torch.contiguous_format

    init_generator = torch.Generator().manual_seed(settings.seed)
    data_generator = torch.Generator(device=device).manual_seed(settings.seed)
    net = build_network(settings.model, classes=NUM_CLASSES, stem=settings.stem)
    xavier_init(net, magnitude=2.0, generator=init_generator)
    net = net.to(device=device, memory_format=memory_format)
    optimizer = SGD(
        params=list(net.parameters()),
        lr=settings.learning_rate,
        momentum=settings.momentum,
        wd=settings.wd,
    )
    runnable = torch.compile(net) if settings.compile and on_gpu else net
    mean, std = channel_stats(train_split.images)
    step = TrainStep(
        net=runnable,
        optimizer=optimizer,
        batch=batch,
        mean=mean,
        std=std,
        autocast_dtype=autocast_dtype,
        memory_format=memory_format,
    )
    eval_step = EvalStep(
        net=runnable,
        batch=batch,
        mean=mean,
        std=std,
        autocast_dtype=autocast_dtype,
        memory_format=memory_format,
    )
    run_train, run_eval = step, eval_step
    if use_graphs:
        initial = snapshot(net)
        step.images.copy_(train_split.images[:batch])
        step.labels.copy_(train_split.labels[:batch])

        def warm_train() -> None:
            for _ in range(WARMUP_STEPS):
                step()

        run_train = capture(step, warmup=warm_train)
        net.eval()
        run_eval = capture(eval_step, warmup=eval_step)
        net.train()
        restore(net, optimizer, initial)

    print(
        f"model: {settings.model.value} stem={settings.stem.value} "
        f"parameters={count_parameters(net)} device={device} batch={batch} "
        f"precision={'bf16' if use_bf16 else 'fp32'} cuda_graphs={use_graphs} "
        f"compile={settings.compile and on_gpu} "
        f"train_images={len(train_split.labels)} test_images={len(test_split.labels)}",
        flush=True,
    )
    if settings.model_dir is None:
        print("note: no SM_MODEL_DIR or --model-dir, weights are not saved", flush=True)

    best, train_seconds = -1.0, 0.0
    for epoch in range(1, settings.epochs + 1):
        result = train_epoch(
            run_step=run_train, step=step, train=train_split, generator=data_generator
        )
        train_seconds += result.seconds
        accuracy = evaluate(run_step=run_eval, step=eval_step, test=test_split, net=net)
        print(
            f"[Epoch {epoch}] validation: accuracy={accuracy:.6f} "
            f"training: accuracy={result.train_accuracy:.6f} loss={result.train_loss:.6f} "
            f"time={result.seconds:.2f}s images/s={result.images / result.seconds:.1f}",
            flush=True,
        )
        if accuracy > best:
            best = accuracy
            if settings.model_dir is not None:
                description = {
                    "framework": "torch",
                    "model": settings.model.value,
                    "stem": settings.stem.value,
                    "classes": NUM_CLASSES,
                    "mean": mean.flatten().tolist(),
                    "std": std.flatten().tolist(),
                    "epoch": epoch,
                    "validation_accuracy": accuracy,
                }
                save_model(net=net, model_dir=settings.model_dir, description=description)
    print(
        f"done: best_validation_accuracy={best:.6f} train_seconds={train_seconds:.2f} "
        f"trial_seconds={time.perf_counter() - trial_start:.2f}",
        flush=True,
    )
    return best


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        train(resolve_settings(args, dict(os.environ)))
    except TrainerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
