"""Train a Gluon ResNet on CIFAR-10 with SGD: the flagship tuning workload, in script mode.

The reference recipe: model-zoo `resnet34_v2` with 10 classes, Xavier(magnitude=2) init, SGD
with `learning_rate`, `momentum` and `wd`, random crop and mirror, batch `batch_size` per
device x GPUs. Hyperparameters arrive as `--name value`; the SageMaker environment gives the
data (`SM_CHANNEL_TRAINING`), the model directory (`SM_MODEL_DIR`) and the GPU count
(`SM_NUM_GPUS`, kvstore `device` on GPUs, CPU when 0). One line per epoch, e.g.

    [Epoch 3] validation: accuracy=0.512300 training: accuracy=0.498000 loss=1.403211 ...

so the reference regex `validation: accuracy=([0-9\\.]+)` reads the objective unchanged.
Runs in the MXNet environment and imports only MXNet (GluonCV for networks outside MXNet's
model zoo), NumPy and the standard library.
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

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon
from mxnet.gluon import nn

NUM_CLASSES = 10
IMAGE_SIDE = 32
CROP_PADDING = 4
RECORD_BYTES = 1 + 3 * IMAGE_SIDE * IMAGE_SIDE
TRAIN_BATCHES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_BATCH = "test_batch.bin"
SMALL_CNN = "small_cnn"

N = TypeVar("N", int, float)


class Stem(enum.Enum):
    """The network's first layers: ImageNet's 7x7/2 conv + max-pool, or CIFAR's 3x3/1 conv."""

    IMAGENET = "imagenet"
    CIFAR = "cifar"


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


def parse_bool(text: str) -> bool:
    """SageMaker passes every hyperparameter as text, so `--thumbnail true` must work."""
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean (true/false)")


def parse_stem(text: str) -> Stem:
    try:
        return Stem(text.strip().lower())
    except ValueError:
        choices = ", ".join(stem.value for stem in Stem)
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {choices}") from None


def resolve_stem(*, stem: Stem | None, thumbnail: bool | None) -> Stem:
    """`--thumbnail` is MXNet's name for the CIFAR stem; both spellings are accepted."""
    if thumbnail and stem is Stem.IMAGENET:
        raise TrainerError("thumbnail: true contradicts --stem imagenet; pass one of them")
    if thumbnail or stem is Stem.CIFAR:
        return Stem.CIFAR
    return Stem.IMAGENET


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m models.mxnet_cifar10",
        description="MXNet Gluon ResNet on CIFAR-10 (SageMaker script mode).",
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
        help="per device; the global batch is batch_size x max(1, GPUs)",
    )
    add("--epochs", type=_number(int, "must be >= 1", lambda v: v >= 1), default=50)
    add("--model", default="resnet34_v2", help=f"model-zoo or GluonCV name, or {SMALL_CNN}")
    add(
        "--thumbnail",
        type=parse_bool,
        nargs="?",
        const=True,
        default=None,
        help="true: the CIFAR 3x3 stem (same as --stem cifar; model-zoo ResNets only)",
    )
    add(
        "--stem",
        type=parse_stem,
        default=None,
        help="imagenet (default, as the reference) or cifar",
    )
    add("--seed", type=int, default=0)
    add("--data-dir", "--data_dir", type=Path, default=None, help="default: $SM_CHANNEL_TRAINING")
    add("--model-dir", "--model_dir", type=Path, default=None, help="default: $SM_MODEL_DIR")
    add("--num-gpus", "--num_gpus", type=str, default=None, help="default: $SM_NUM_GPUS, else 0")
    return parser


@dataclass(frozen=True)
class Settings:
    """Arguments merged with the SageMaker environment: everything main() needs."""

    learning_rate: float
    momentum: float
    wd: float
    batch_size: int
    epochs: int
    model: str
    stem: Stem
    seed: int
    data_dir: Path
    model_dir: Path | None
    num_gpus: int


def resolve_settings(args: argparse.Namespace, environ: dict[str, str]) -> Settings:
    """Flags win over SM_* variables, which win over defaults."""
    data_dir = args.data_dir or _env_path(environ, "SM_CHANNEL_TRAINING")
    if data_dir is None:
        raise TrainerError(
            "data: pass --data-dir or set SM_CHANNEL_TRAINING (the training channel)"
        )
    gpus_text = args.num_gpus if args.num_gpus is not None else environ.get("SM_NUM_GPUS", "0")
    stem = resolve_stem(stem=args.stem, thumbnail=args.thumbnail)
    if stem is Stem.CIFAR and not args.model.startswith("resnet"):
        raise TrainerError(
            f"stem: cifar (thumbnail) applies to model-zoo ResNets, not {args.model!r}"
        )
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
    """Images `n x 3 x 32 x 32` uint8 (RGB) and labels `n` int64."""

    images: np.ndarray
    labels: np.ndarray


def find_batches_dir(data_dir: Path) -> Path:
    """The directory holding data_batch_1.bin: DATA_DIR or its cifar-10-batches-bin."""
    for candidate in (data_dir, data_dir / "cifar-10-batches-bin"):
        if (candidate / TRAIN_BATCHES[0]).is_file():
            return candidate
    raise TrainerError(
        f"data: no {TRAIN_BATCHES[0]} in {data_dir} or {data_dir}/cifar-10-batches-bin; "
        "prepare it with `openamt data cifar10 --dest DIR`"
    )


def read_split(paths: list[Path]) -> Split:
    raw = np.concatenate([np.fromfile(path, dtype=np.uint8) for path in paths])
    if raw.size == 0 or raw.size % RECORD_BYTES:
        raise TrainerError(f"data: {paths} do not hold whole {RECORD_BYTES}-byte CIFAR records")
    raw = raw.reshape(-1, RECORD_BYTES)
    labels = raw[:, 0].astype(np.int64)
    if labels.max() >= NUM_CLASSES:
        raise TrainerError(f"data: label {labels.max()} in {paths}; must be < {NUM_CLASSES}")
    images = raw[:, 1:].reshape(-1, 3, IMAGE_SIDE, IMAGE_SIDE)
    return Split(images=np.ascontiguousarray(images), labels=labels)


def load_data(data_dir: Path) -> tuple[Split, Split]:
    batches = find_batches_dir(data_dir)
    train = read_split([batches / name for name in TRAIN_BATCHES if (batches / name).is_file()])
    test = read_split([batches / TEST_BATCH])
    return train, test


def random_crop_flip(padded: np.ndarray, index: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`b x 3 x 32 x 32` random 32x32 windows of zero-padded images, half of them mirrored.

    `padded` is `n x 3 x 40 x 40`; one gather builds the whole batch.
    """
    count = len(index)
    offsets = np.arange(IMAGE_SIDE)
    rows = rng.integers(0, 2 * CROP_PADDING + 1, count)[:, None] + offsets
    cols = rng.integers(0, 2 * CROP_PADDING + 1, count)[:, None] + offsets
    mirror = rng.random(count) < 0.5
    cols = np.where(mirror[:, None], cols[:, ::-1], cols)
    channels = np.arange(3)[None, :, None, None]
    return padded[
        index[:, None, None, None], channels, rows[:, None, :, None], cols[:, None, None, :]
    ]


def channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std (`3`), from the training images of whichever data set."""
    mean = images.mean(axis=(0, 2, 3), dtype=np.float64)
    std = images.std(axis=(0, 2, 3), dtype=np.float64)
    return mean.astype(np.float32), np.maximum(std, 1.0).astype(np.float32)


# --- network ---------------------------------------------------------------------------------


def small_cnn(classes: int) -> nn.HybridSequential:
    """Three conv-BN-ReLU-pool stages: for the CPU quickstart, where a ResNet is too slow."""
    net = nn.HybridSequential()
    for channels in (16, 32, 64):
        net.add(nn.Conv2D(channels, 3, padding=1, use_bias=False))
        net.add(nn.BatchNorm(), nn.Activation("relu"), nn.MaxPool2D(2))
    net.add(nn.GlobalAvgPool2D(), nn.Dense(classes))
    return net


def build_network(name: str, *, classes: int, stem: Stem) -> gluon.HybridBlock:
    """small_cnn, an MXNet model-zoo network (ResNets take the stem), else a GluonCV one."""
    if name == SMALL_CNN:
        return small_cnn(classes)
    kwargs: dict[str, object] = {"classes": classes}
    if stem is Stem.CIFAR:
        kwargs["thumbnail"] = True
    try:
        return gluon.model_zoo.vision.get_model(name, **kwargs)
    except ValueError:
        pass  # not in MXNet's model zoo: try GluonCV's, which is slow to import
    import gluoncv

    try:
        return gluoncv.model_zoo.get_model(name, **kwargs)
    except ValueError as exc:
        raise TrainerError(f"model: {name!r} is not in MXNet's or GluonCV's model zoo") from exc


def count_parameters(net: gluon.Block) -> int:
    return sum(p.data().size for p in net.collect_params().values() if p.grad_req != "null")


# --- training --------------------------------------------------------------------------------


@dataclass(frozen=True)
class EpochResult:
    train_accuracy: float
    train_loss: float
    seconds: float
    images: int


class Normaliser:
    """Moves uint8 batches to the devices and normalises them there (uint8 crosses PCIe)."""

    def __init__(self, *, mean: np.ndarray, std: np.ndarray, contexts: list[mx.Context]) -> None:
        self.mean, self.std = mean, std
        shape = (1, 3, 1, 1)
        self._mean = {ctx: mx.nd.array(mean.reshape(shape), ctx=ctx) for ctx in contexts}
        self._std = {ctx: mx.nd.array(std.reshape(shape), ctx=ctx) for ctx in contexts}

    def to_devices(self, images: np.ndarray, contexts: list[mx.Context]) -> list[mx.nd.NDArray]:
        """`b x 3 x 32 x 32` uint8 -> one float32 slice per device, batch split evenly."""
        parts = gluon.utils.split_and_load(images, contexts, even_split=False)
        return [
            (part.astype("float32") - self._mean[part.context]) / self._std[part.context]
            for part in parts
        ]


def train_epoch(
    *,
    net: gluon.HybridBlock,
    trainer: gluon.Trainer,
    train: Split,
    padded: np.ndarray,
    batch: int,
    contexts: list[mx.Context],
    normaliser: Normaliser,
    rng: np.random.Generator,
) -> EpochResult:
    """One pass over a fresh permutation; the last incomplete batch is dropped."""
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    order = rng.permutation(len(train.labels))
    steps = len(order) // batch
    correct = [mx.nd.zeros(1, ctx=ctx) for ctx in contexts]  # summed on device: no per-step sync
    loss_sum = [mx.nd.zeros(1, ctx=ctx) for ctx in contexts]
    start = time.perf_counter()
    for step in range(steps):
        index = order[step * batch : (step + 1) * batch]
        inputs = normaliser.to_devices(random_crop_flip(padded, index, rng), contexts)
        labels = gluon.utils.split_and_load(train.labels[index].astype(np.float32), contexts)
        with autograd.record():
            outputs = [net(x) for x in inputs]
            losses = [loss_fn(out, y) for out, y in zip(outputs, labels, strict=True)]
        autograd.backward(losses)
        trainer.step(batch)
        for i, (out, y, loss) in enumerate(zip(outputs, labels, losses, strict=True)):
            correct[i] += (out.argmax(axis=1) == y).sum()
            loss_sum[i] += loss.sum()
    total_correct = sum(c.asscalar() for c in correct)  # waits for the devices to finish
    total_loss = sum(s.asscalar() for s in loss_sum)
    seconds = time.perf_counter() - start
    images = steps * batch
    return EpochResult(
        train_accuracy=float(total_correct) / images,
        train_loss=float(total_loss) / images,
        seconds=seconds,
        images=images,
    )


def evaluate(
    *,
    net: gluon.HybridBlock,
    test: Split,
    batch: int,
    contexts: list[mx.Context],
    normaliser: Normaliser,
) -> float:
    correct = 0.0
    for start in range(0, len(test.labels), batch):
        labels = test.labels[start : start + batch]
        devices = contexts[: min(len(contexts), len(labels))]
        inputs = normaliser.to_devices(test.images[start : start + batch], devices)
        targets = gluon.utils.split_and_load(labels.astype(np.float32), devices, even_split=False)
        for x, y in zip(inputs, targets, strict=True):
            correct += (net(x).argmax(axis=1) == y).sum().asscalar()
    return correct / len(test.labels)


def save_model(*, net: gluon.HybridBlock, model_dir: Path, description: dict[str, object]) -> None:
    """Best parameters plus what rebuilding the network needs, each renamed into place."""
    model_dir.mkdir(parents=True, exist_ok=True)
    params = model_dir / "model.params"
    net.save_parameters(str(params) + ".tmp")
    os.replace(str(params) + ".tmp", params)
    info = model_dir / "model-info.json"
    info.with_suffix(".tmp").write_text(json.dumps(description, indent=2) + "\n")
    os.replace(info.with_suffix(".tmp"), info)


def train(settings: Settings) -> float:
    """Train, log one line per epoch, save the best parameters; returns the best accuracy."""
    if settings.num_gpus > mx.context.num_gpus():
        raise TrainerError(
            f"SM_NUM_GPUS/--num-gpus: {settings.num_gpus} GPUs requested, MXNet sees "
            f"{mx.context.num_gpus()} (a CPU build? GPU nodes need mxnet-cu112)"
        )
    contexts = [mx.gpu(i) for i in range(settings.num_gpus)] or [mx.cpu()]
    batch = settings.batch_size * len(contexts)
    train_split, test_split = load_data(settings.data_dir)
    if batch > len(train_split.labels):
        raise TrainerError(
            f"batch_size: {settings.batch_size} x {len(contexts)} devices exceeds the "
            f"{len(train_split.labels)} training images"
        )
    # MXNet's initialisers draw from its process-wide generator; this program owns the process.
    mx.random.seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    mean, std = channel_stats(train_split.images)
    normaliser = Normaliser(mean=mean, std=std, contexts=contexts)
    pad = CROP_PADDING
    padded = np.pad(train_split.images, ((0, 0), (0, 0), (pad, pad), (pad, pad)))

    net = build_network(settings.model, classes=NUM_CLASSES, stem=settings.stem)
    net.initialize(mx.init.Xavier(magnitude=2), ctx=contexts)
    net(mx.nd.zeros((1, 3, IMAGE_SIDE, IMAGE_SIDE), ctx=contexts[0]))  # resolve deferred shapes
    net.hybridize(static_alloc=True)
    trainer = gluon.Trainer(
        net.collect_params(),
        "sgd",
        {"learning_rate": settings.learning_rate, "momentum": settings.momentum, "wd": settings.wd},
        kvstore="device" if settings.num_gpus else "local",
    )
    print(
        f"model: {settings.model} stem={settings.stem.value} parameters={count_parameters(net)} "
        f"devices={','.join(str(c) for c in contexts)} batch={batch} "
        f"train_images={len(train_split.labels)} test_images={len(test_split.labels)}",
        flush=True,
    )
    if settings.model_dir is None:
        print("note: no SM_MODEL_DIR or --model-dir, parameters are not saved", flush=True)

    best = -1.0
    for epoch in range(1, settings.epochs + 1):
        result = train_epoch(
            net=net,
            trainer=trainer,
            train=train_split,
            padded=padded,
            batch=batch,
            contexts=contexts,
            normaliser=normaliser,
            rng=rng,
        )
        accuracy = evaluate(
            net=net, test=test_split, batch=batch, contexts=contexts, normaliser=normaliser
        )
        print(
            f"[Epoch {epoch}] validation: accuracy={accuracy:.6f} "
            f"training: accuracy={result.train_accuracy:.6f} loss={result.train_loss:.6f} "
            f"time={result.seconds:.4f}s images/s={result.images / result.seconds:.1f}",
            flush=True,
        )
        if accuracy > best:
            best = accuracy
            if settings.model_dir is not None:
                description = {
                    "framework": "mxnet",
                    "model": settings.model,
                    "stem": settings.stem.value,
                    "classes": NUM_CLASSES,
                    "mean": mean.tolist(),
                    "std": std.tolist(),
                    "epoch": epoch,
                    "validation_accuracy": accuracy,
                }
                save_model(net=net, model_dir=settings.model_dir, description=description)
    print(f"done: best_validation_accuracy={best:.6f}", flush=True)
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
