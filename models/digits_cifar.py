"""scikit-learn's digits written as a CIFAR-format data set, for the CPU quickstart.

The 1797 8x8 grey images (values 0..16) that ship with scikit-learn become 32x32 RGB by
scaling to 0..255 and repeating each pixel 4x4 (nearest neighbour keeps the strokes sharp),
then are split (stratified, seeded) into train and test and written in the CIFAR-10 binary
layout plus RecordIO, so the CIFAR trainers run on them unchanged and in seconds.

    python -m models.digits_cifar --dest data/digits-cifar

Built next to DEST and renamed into place; running it again with the same seed is a no-op.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from models.cifar10_data import (
    IMAGE_SIDE,
    MANIFEST_FILE,
    CifarImage,
    DataError,
    DestinationError,
    InvalidInputError,
    write_cifar_batches,
    write_recordio_from_batches,
)

DIGITS_FORMAT = "openamt-digits-cifar/1"
DEFAULT_TEST_FRACTION = 0.2
_DIGIT_SIDE = 8
_DIGIT_MAX = 16


@dataclass(frozen=True)
class DigitsDataset:
    dest: Path
    train_images: int
    test_images: int
    reused: bool


def digits_as_cifar(images: np.ndarray) -> np.ndarray:
    """`n x 8 x 8` digit images (0..16) -> `n x 3 x 32 x 32` uint8 (grey in all channels)."""
    scale = IMAGE_SIDE // _DIGIT_SIDE
    grey = np.rint(images * (255.0 / _DIGIT_MAX)).clip(0, 255).astype(np.uint8)
    big = grey.repeat(scale, axis=1).repeat(scale, axis=2)
    return np.repeat(big[:, None], 3, axis=1)


def digits_splits(*, seed: int, test_fraction: float) -> tuple[list[CifarImage], list[CifarImage]]:
    """Stratified train/test split of the digits as CIFAR images."""
    if not 0 < test_fraction < 1:
        raise InvalidInputError(f"test_fraction: {test_fraction}; must be in (0, 1)")
    digits = load_digits()
    pixels = digits_as_cifar(digits.images)
    labels = digits.target.astype(int)
    train_index, test_index = train_test_split(
        np.arange(len(labels)), test_size=test_fraction, random_state=seed, stratify=labels
    )

    def as_images(index: np.ndarray) -> list[CifarImage]:
        return [CifarImage(label=int(labels[i]), pixels=pixels[i].tobytes()) for i in index]

    return as_images(train_index), as_images(test_index)


def write_digits_cifar(
    *, dest: Path, seed: int = 0, test_fraction: float = DEFAULT_TEST_FRACTION
) -> DigitsDataset:
    """Make DEST the digits data set (batches, meta, train/test .rec and .idx, manifest)."""
    dest = Path(dest)
    wanted = {"format": DIGITS_FORMAT, "seed": seed, "test_fraction": test_fraction}
    existing = _existing(dest, wanted)
    if existing is not None:
        return existing
    train, test = digits_splits(seed=seed, test_fraction=test_fraction)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.parent / f".{dest.name}.staging-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        write_cifar_batches(
            dest_dir=staging, train=train, test=test, class_names=[str(d) for d in range(10)]
        )
        write_recordio_from_batches(batches_dir=staging)
        manifest = {**wanted, "train_images": len(train), "test_images": len(test)}
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        if dest.exists():
            dest.rmdir()  # _existing let it through, so it is an empty directory
        os.rename(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return DigitsDataset(dest=dest, train_images=len(train), test_images=len(test), reused=False)


def _existing(dest: Path, wanted: dict[str, object]) -> DigitsDataset | None:
    """The data set already in DEST, None if DEST is absent or empty; raises otherwise."""
    if not dest.exists() or (dest.is_dir() and not any(dest.iterdir())):
        return None
    manifest_path = dest / MANIFEST_FILE
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        manifest = {}
    if not isinstance(manifest, dict) or any(manifest.get(k) != v for k, v in wanted.items()):
        raise DestinationError(
            f"dest: {dest} exists and is not the digits data set made with {wanted}; "
            "remove it or choose another --dest"
        )
    return DigitsDataset(
        dest=dest,
        train_images=int(manifest["train_images"]),
        test_images=int(manifest["test_images"]),
        reused=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m models.digits_cifar",
        description="Write scikit-learn's digits as a CIFAR-10-format data set (32x32 RGB).",
        epilog="example: python -m models.digits_cifar --dest data/digits-cifar",
    )
    parser.add_argument("--dest", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0, help="seed of the train/test split")
    parser.add_argument("--test-fraction", type=float, default=DEFAULT_TEST_FRACTION)
    args = parser.parse_args(argv)
    try:
        result = write_digits_cifar(
            dest=args.dest, seed=args.seed, test_fraction=args.test_fraction
        )
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    state = "already complete" if result.reused else "ready"
    print(
        f"digits {state} in {result.dest}: {result.train_images} training and "
        f"{result.test_images} test images"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
