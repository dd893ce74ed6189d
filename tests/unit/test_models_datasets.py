"""The synthetic and digits generators write CIFAR-format data sets the trainers can learn."""

from __future__ import annotations

import hashlib
import io
import random
import tarfile
from pathlib import Path

import numpy as np
import pytest

from models import cifar10_data as data
from models import digits_cifar, synthetic_cifar


def read_split(directory: Path, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(images `n x 3 x 32 x 32` uint8, labels `n`) of some batch files."""
    raw = np.concatenate([np.fromfile(directory / name, dtype=np.uint8) for name in names])
    raw = raw.reshape(-1, data.RECORD_BYTES)
    return raw[:, 1:].reshape(-1, 3, 32, 32), raw[:, 0]


# --- synthetic -------------------------------------------------------------------------------


def test_synthetic_set_has_the_cifar_layout(tmp_path: Path) -> None:
    synthetic_cifar.write_synthetic_cifar(
        dest=tmp_path, train_images=103, test_images=20, seed=1, recordio=True
    )

    sizes = [(tmp_path / name).stat().st_size // data.RECORD_BYTES for name in data.TRAIN_BATCHES]
    assert sizes == [21, 21, 21, 20, 20]
    assert data.count_images(tmp_path) == (103, 20)
    assert len((tmp_path / data.META_FILE).read_text().split()) == 10
    assert len(list(data.read_recordio(tmp_path / "train.rec"))) == 103


def test_synthetic_set_is_determined_by_the_seed(tmp_path: Path) -> None:
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        synthetic_cifar.write_synthetic_cifar(
            dest=tmp_path / name, train_images=10, test_images=5, seed=seed
        )

    def digest(name: str) -> str:
        return hashlib.md5((tmp_path / name / data.TEST_BATCH).read_bytes()).hexdigest()

    assert digest("a") == digest("b") != digest("c")


def test_synthetic_classes_are_learnable_from_mean_colour(tmp_path: Path) -> None:
    """A nearest-class-mean classifier on mean colour separates the classes, so any network
    can beat chance quickly (what the trainer tests rely on)."""
    synthetic_cifar.write_synthetic_cifar(dest=tmp_path, train_images=400, test_images=200, seed=0)
    train_x, train_y = read_split(tmp_path, data.TRAIN_BATCHES)
    test_x, test_y = read_split(tmp_path, (data.TEST_BATCH,))
    train_colour = train_x.mean(axis=(2, 3))
    centroids = np.stack([train_colour[train_y == c].mean(axis=0) for c in range(10)])
    distances = ((test_x.mean(axis=(2, 3))[:, None, :] - centroids[None]) ** 2).sum(axis=2)

    accuracy = (distances.argmin(axis=1) == test_y).mean()

    assert accuracy > 0.95
    assert set(np.unique(train_y)) == set(range(10))


def test_synthetic_noise_spreads_pixels_around_the_class_colour() -> None:
    (image,) = synthetic_cifar.synthetic_images(count=1, rng=random.Random(5), noise=64)
    red = np.frombuffer(image.pixels[:1024], dtype=np.uint8).astype(int)
    colour = synthetic_cifar._CLASS_COLOURS[image.label][0]

    assert red.min() >= max(0, colour - 64) and red.max() <= min(255, colour + 63)
    assert red.std() > 20


def test_synthetic_archive_is_reproducible_and_laid_out_like_cifar() -> None:
    first = synthetic_cifar.synthetic_archive(train_images=10, test_images=5, seed=2, noise=64)
    second = synthetic_cifar.synthetic_archive(train_images=10, test_images=5, seed=2, noise=64)

    assert first == second
    with tarfile.open(fileobj=io.BytesIO(first), mode="r:gz") as tar:
        names = sorted(tar.getnames())
    expected = sorted(
        f"cifar-10-batches-bin/{n}" for n in (*data.TRAIN_BATCHES, data.TEST_BATCH, data.META_FILE)
    )
    assert names == expected


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"train_images": 4, "test_images": 1}, "train_images: 4; must be >= 5"),
        ({"train_images": 5, "test_images": 0}, "test_images: 0; must be >= 1"),
        ({"train_images": 5, "test_images": 1, "noise": 300}, "noise: 300; must be in 0..255"),
    ],
)
def test_synthetic_bad_sizes_are_named(tmp_path: Path, arguments: dict, message: str) -> None:
    with pytest.raises(data.InvalidInputError, match=message):
        synthetic_cifar.write_synthetic_cifar(dest=tmp_path, seed=0, **arguments)


def test_synthetic_main_writes_an_archive_that_the_data_command_accepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "a.tar.gz"

    status = synthetic_cifar.main(["--archive", str(archive), "--train-images", "20"])

    md5 = capsys.readouterr().out.split("md5 ")[1].rstrip(")\n")
    assert status == 0
    result = data.prepare_cifar10(dest=tmp_path / "d", from_archive=archive, md5=md5)
    assert result.train_images == 20


# --- digits ----------------------------------------------------------------------------------


def test_digits_become_32x32_rgb_blocks() -> None:
    digit = np.zeros((1, 8, 8))
    digit[0, 2, 5] = 16
    digit[0, 7, 0] = 8

    image = digits_cifar.digits_as_cifar(digit)

    assert image.shape == (1, 3, 32, 32) and image.dtype == np.uint8
    assert (image[0, :, 8:12, 20:24] == 255).all()
    assert (image[0, :, 28:32, 0:4] == 128).all()
    assert image.sum() == 3 * 16 * (255 + 128)


def test_digits_data_set_is_stratified_and_idempotent(tmp_path: Path) -> None:
    dest = tmp_path / "digits"

    first = digits_cifar.write_digits_cifar(dest=dest, seed=0)
    again = digits_cifar.write_digits_cifar(dest=dest, seed=0)

    assert (first.train_images, first.test_images, first.reused) == (1437, 360, False)
    assert again.reused
    assert data.count_images(dest) == (1437, 360)
    _, test_labels = read_split(dest, (data.TEST_BATCH,))
    assert np.bincount(test_labels, minlength=10).min() >= 35  # every digit, ~36 each
    assert (dest / data.META_FILE).read_text().split() == [str(d) for d in range(10)]
    assert len(list(data.read_recordio(dest / "test.rec"))) == 360
    assert [p.name for p in tmp_path.iterdir()] == ["digits"]


def test_digits_refuses_a_dest_made_differently(tmp_path: Path) -> None:
    dest = tmp_path / "digits"
    digits_cifar.write_digits_cifar(dest=dest, seed=0)

    with pytest.raises(data.DestinationError, match="not the digits data set made with"):
        digits_cifar.write_digits_cifar(dest=dest, seed=1)


def test_digits_bad_test_fraction_is_named() -> None:
    with pytest.raises(data.InvalidInputError, match="test_fraction: 1.5; must be in"):
        digits_cifar.digits_splits(seed=0, test_fraction=1.5)
