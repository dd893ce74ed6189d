"""Small synthetic data sets in the CIFAR-10 layout, for tests, demos and benchmarks.

Each class has its own colour and every pixel is that colour plus uniform noise, so a network
learns it within an epoch (accuracy rises well above chance) while random crops and mirrors
keep the signal. Standard library only; the output is byte-for-byte determined by the seed.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import random
import sys
import tarfile
import tempfile
from pathlib import Path

from models.cifar10_data import (
    IMAGE_SIDE,
    META_FILE,
    NUM_CLASSES,
    TEST_BATCH,
    TRAIN_BATCHES,
    CifarImage,
    InvalidInputError,
    write_cifar_batches,
    write_recordio_from_batches,
)

ARCHIVE_DIR = "cifar-10-batches-bin"
DEFAULT_NOISE = 64

# Ten colours far apart in RGB, one per class.
_CLASS_COLOURS = (
    (200, 60, 60),
    (60, 200, 60),
    (60, 60, 200),
    (200, 200, 60),
    (200, 60, 200),
    (60, 200, 200),
    (128, 128, 128),
    (230, 150, 40),
    (40, 120, 230),
    (150, 40, 110),
)


def _noise_tables(noise: int) -> list[list[bytes]]:
    """Per class and channel, a byte table mapping uniform noise to `colour +- noise`.

    `bytes.translate` with these tables turns random bytes into pixels at C speed.
    """
    tables = []
    for colour in _CLASS_COLOURS:
        per_channel = []
        for level in colour:
            values = (level + ((i - 128) * noise) // 128 for i in range(256))
            per_channel.append(bytes(min(255, max(0, value)) for value in values))
        tables.append(per_channel)
    return tables


def synthetic_images(*, count: int, rng: random.Random, noise: int) -> list[CifarImage]:
    """`count` labelled images drawn from `rng` (labels uniform over the ten classes)."""
    plane = IMAGE_SIDE * IMAGE_SIDE
    tables = _noise_tables(noise)
    images = []
    for _ in range(count):
        label = rng.randrange(NUM_CLASSES)
        pixels = b"".join(rng.randbytes(plane).translate(tables[label][c]) for c in range(3))
        images.append(CifarImage(label=label, pixels=pixels))
    return images


def _check_sizes(*, train_images: int, test_images: int, noise: int) -> None:
    if train_images < len(TRAIN_BATCHES):
        raise InvalidInputError(
            f"train_images: {train_images}; must be >= {len(TRAIN_BATCHES)} (one per batch file)"
        )
    if test_images < 1:
        raise InvalidInputError(f"test_images: {test_images}; must be >= 1")
    if not 0 <= noise <= 255:
        raise InvalidInputError(f"noise: {noise}; must be in 0..255")


def write_synthetic_cifar(
    *,
    dest: Path,
    train_images: int,
    test_images: int,
    seed: int,
    noise: int = DEFAULT_NOISE,
    recordio: bool = False,
) -> None:
    """Write a synthetic data set into `dest`: the binary batches, meta, optionally .rec files."""
    _check_sizes(train_images=train_images, test_images=test_images, noise=noise)
    rng = random.Random(seed)
    train = synthetic_images(count=train_images, rng=rng, noise=noise)
    test = synthetic_images(count=test_images, rng=rng, noise=noise)
    write_cifar_batches(dest_dir=Path(dest), train=train, test=test)
    if recordio:
        write_recordio_from_batches(batches_dir=Path(dest))


def synthetic_archive(*, train_images: int, test_images: int, seed: int, noise: int) -> bytes:
    """A .tar.gz laid out like cifar-10-binary.tar.gz, identical bytes for identical arguments."""
    tar_buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as scratch:
        write_synthetic_cifar(
            dest=Path(scratch),
            train_images=train_images,
            test_images=test_images,
            seed=seed,
            noise=noise,
        )
        with tarfile.open(fileobj=tar_buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for name in (*TRAIN_BATCHES, TEST_BATCH, META_FILE):
                data = (Path(scratch) / name).read_bytes()
                info = tarfile.TarInfo(f"{ARCHIVE_DIR}/{name}")
                info.size = len(data)
                info.mtime = (
                    0  # fixed, like gzip's mtime below, so the MD5 depends on the seed only
                )
                tar.addfile(info, io.BytesIO(data))
    return gzip.compress(tar_buffer.getvalue(), mtime=0)


def write_synthetic_archive(
    *, path: Path, train_images: int, test_images: int, seed: int, noise: int = DEFAULT_NOISE
) -> str:
    """Write `synthetic_archive(...)` to `path`; returns its MD5 (to pass as --md5)."""
    data = synthetic_archive(
        train_images=train_images, test_images=test_images, seed=seed, noise=noise
    )
    Path(path).write_bytes(data)
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def main(argv: list[str] | None = None) -> int:
    """`python -m models.synthetic_cifar --dest DIR` (or `--archive FILE.tar.gz`)."""
    parser = argparse.ArgumentParser(
        prog="python -m models.synthetic_cifar",
        description="Write a small synthetic data set in the CIFAR-10 binary layout.",
        epilog="example: python -m models.synthetic_cifar --dest data/synthetic --recordio",
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--dest", type=Path, help="directory for the batch files")
    target.add_argument("--archive", type=Path, help="write a cifar-10-binary-style .tar.gz")
    parser.add_argument("--train-images", type=int, default=1000)
    parser.add_argument("--test-images", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", type=int, default=DEFAULT_NOISE, help="pixel noise, 0..255")
    parser.add_argument("--recordio", action="store_true", help="also write train.rec/test.rec")
    args = parser.parse_args(argv)
    sizes = {"train_images": args.train_images, "test_images": args.test_images}
    try:
        if args.archive is not None:
            md5 = write_synthetic_archive(
                path=args.archive, seed=args.seed, noise=args.noise, **sizes
            )
            print(f"wrote {args.archive} (md5 {md5})")
        else:
            write_synthetic_cifar(
                dest=args.dest, seed=args.seed, noise=args.noise, recordio=args.recordio, **sizes
            )
            print(f"wrote {args.dest}")
    except InvalidInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
