"""CIFAR-10 for the trainers: download, verify, extract, and write MXNet RecordIO.

The standard library, plus Pillow for the RecordIO PNGs (imported only there; both the
orchestrator environment, through matplotlib, and the MXNet environment, through gluoncv, have
it), so either environment can import and run it; no NumPy, torch or MXNet. What a finished
data directory holds (the trainers read it):

    data_batch_1.bin .. data_batch_5.bin, test_batch.bin   CIFAR binary batches
    batches.meta.txt                                        class names, one per line
    train.rec, train.idx, test.rec, test.idx                MXNet RecordIO, one PNG per record
    openamt-dataset.json                                    manifest; written last, marks DEST done

Everything is built in a temporary directory next to DEST and renamed into place at the end,
so an interrupted or failed run never leaves a half-written DEST behind.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import io
import json
import os
import re
import secrets
import shutil
import struct
import sys
import tarfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
CLASS_NAMES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

IMAGE_SIDE = 32
IMAGE_BYTES = 3 * IMAGE_SIDE * IMAGE_SIDE
RECORD_BYTES = 1 + IMAGE_BYTES  # one label byte, then the image channel-planar (R, G, B)
NUM_CLASSES = 10
TRAIN_BATCHES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_BATCH = "test_batch.bin"
META_FILE = "batches.meta.txt"
MANIFEST_FILE = "openamt-dataset.json"
MANIFEST_FORMAT = "openamt-cifar10/1"

ProgressCallback = Callable[[int, int | None], None]
"""progress(bytes_done, bytes_total); bytes_total is None when the server does not say."""

_CHUNK_BYTES = 1 << 20
_MD5_PATTERN = re.compile(r"^[0-9a-f]{32}$")


class DataError(Exception):
    """Base of every error raised here; each message says what went wrong and what to do."""


class InvalidInputError(DataError, ValueError):
    """An argument breaks a rule (the message names the field, the value and the rule)."""


class DownloadError(DataError):
    """The transfer failed; a partial download is kept so the next run resumes it."""


class ChecksumError(DataError):
    """The archive's MD5 is not the expected one."""


class CorruptDataError(DataError):
    """An archive or batch file cannot be read or does not have the CIFAR-10 layout."""


class DestinationError(DataError):
    """DEST holds something that this module did not finish writing."""


@dataclass(frozen=True)
class CifarImage:
    """One labelled image in CIFAR's layout: 3072 bytes, R then G then B planes, rows of 32."""

    label: int
    pixels: bytes


@dataclass(frozen=True)
class PreparedDataset:
    """What `prepare_cifar10` left in `dest`; `reused` is True when DEST was already complete."""

    dest: Path
    train_images: int
    test_images: int
    archive_md5: str
    reused: bool


# --- CIFAR binary batches ------------------------------------------------------------------


def read_batch(path: Path) -> list[CifarImage]:
    """Read one CIFAR binary batch file, checking its size and labels."""
    data = Path(path).read_bytes()
    if not data or len(data) % RECORD_BYTES:
        raise CorruptDataError(
            f"{path}: size {len(data)} bytes is not a positive multiple of {RECORD_BYTES} "
            "(one label byte + 3072 pixel bytes per image)"
        )
    images = [
        CifarImage(label=data[i], pixels=data[i + 1 : i + RECORD_BYTES])
        for i in range(0, len(data), RECORD_BYTES)
    ]
    _check_labels(path, bytes(image.label for image in images))
    return images


def write_batch(path: Path, images: Iterable[CifarImage]) -> int:
    """Write images as one CIFAR binary batch file; returns how many were written."""
    count = 0
    with open(path, "wb") as out:
        for image in images:
            _check_image(image)
            out.write(bytes((image.label,)))
            out.write(image.pixels)
            count += 1
    return count


def write_cifar_batches(
    *,
    dest_dir: Path,
    train: Sequence[CifarImage],
    test: Sequence[CifarImage],
    class_names: Sequence[str] = CLASS_NAMES,
) -> None:
    """Write a data set in the CIFAR-10 binary layout: five train batches, a test batch, meta.

    Used by the synthetic and digits generators so every data set looks like the real one.
    """
    if len(train) < len(TRAIN_BATCHES):
        raise InvalidInputError(
            f"train: {len(train)} images; need at least {len(TRAIN_BATCHES)} (one per batch file)"
        )
    if not test:
        raise InvalidInputError("test: 0 images; need at least 1")
    if len(class_names) != NUM_CLASSES:
        raise InvalidInputError(f"class_names: {len(class_names)} names; need {NUM_CLASSES}")
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    per_batch, extra = divmod(len(train), len(TRAIN_BATCHES))
    start = 0
    for index, name in enumerate(TRAIN_BATCHES):
        stop = start + per_batch + (1 if index < extra else 0)
        write_batch(dest_dir / name, train[start:stop])
        start = stop
    write_batch(dest_dir / TEST_BATCH, test)
    (dest_dir / META_FILE).write_text("\n".join(class_names) + "\n", encoding="utf-8")


def _check_image(image: CifarImage) -> None:
    if not 0 <= image.label < NUM_CLASSES:
        raise InvalidInputError(f"label: {image.label}; must be in 0..{NUM_CLASSES - 1}")
    if len(image.pixels) != IMAGE_BYTES:
        raise InvalidInputError(f"pixels: {len(image.pixels)} bytes; must be {IMAGE_BYTES}")


def _check_labels(path: Path, labels: bytes) -> None:
    if labels and max(labels) >= NUM_CLASSES:
        raise CorruptDataError(
            f"{path}: label {max(labels)} found; CIFAR-10 labels are 0..{NUM_CLASSES - 1}"
        )


# --- MXNet RecordIO --------------------------------------------------------------------------

_RECORDIO_MAGIC = struct.pack("<I", 0xCED7230A)
_MAX_PART_BYTES = (1 << 29) - 1  # the length field has 29 bits; the top 3 hold the part flag
_IR_HEADER = struct.Struct("<IfQQ")  # flag, label, id, id2: MXNet's IRHeader


def encode_record(payload: bytes) -> bytes:
    """One logical record in RecordIO framing: magic, (flag << 29 | length), data, zero pad to 4.

    Readers resynchronise on the magic word, so a payload that contains it at a 4-byte-aligned
    offset is cut there and written as several parts (flag 1 first, 2 middle, 3 last); the
    reader puts the magic back between the parts.
    """
    cuts = []
    position = payload.find(_RECORDIO_MAGIC)
    while position != -1:
        if position % 4 == 0:
            cuts.append(position)
            position = payload.find(_RECORDIO_MAGIC, position + 4)
        else:
            position = payload.find(_RECORDIO_MAGIC, position + 1)
    parts = []
    start = 0
    for cut in cuts:
        parts.append(payload[start:cut])
        start = cut + 4
    parts.append(payload[start:])
    flags = [0] if len(parts) == 1 else [1] + [2] * (len(parts) - 2) + [3]
    framed = bytearray()
    for flag, part in zip(flags, parts, strict=True):
        if len(part) > _MAX_PART_BYTES:
            raise InvalidInputError(f"payload: {len(part)} bytes; RecordIO parts hold < 2**29")
        framed += _RECORDIO_MAGIC + struct.pack("<I", (flag << 29) | len(part)) + part
    framed += bytes(-len(framed) % 4)
    return bytes(framed)


def write_recordio(rec_path: Path, payloads: Iterable[bytes], *, idx_path: Path | None) -> int:
    """Write payloads as a RecordIO file (and an `id<TAB>offset` index); returns the count."""
    count = 0
    offset = 0
    index_lines = []
    with open(rec_path, "wb") as rec:
        for payload in payloads:
            framed = encode_record(payload)
            rec.write(framed)
            index_lines.append(f"{count}\t{offset}\n")
            offset += len(framed)
            count += 1
    if idx_path is not None:
        Path(idx_path).write_text("".join(index_lines), encoding="ascii")
    return count


def read_recordio(rec_path: Path) -> Iterator[bytes]:
    """Yield the logical records of a RecordIO file (the inverse of `write_recordio`)."""
    with open(rec_path, "rb") as rec:
        pending: bytearray | None = None
        while header := rec.read(8):
            if len(header) != 8 or header[:4] != _RECORDIO_MAGIC:
                raise CorruptDataError(f"{rec_path}: bad RecordIO header at byte {rec.tell()}")
            (word,) = struct.unpack("<I", header[4:])
            flag, length = word >> 29, word & _MAX_PART_BYTES
            part = rec.read(length)
            rec.read(-length % 4)
            if len(part) != length:
                raise CorruptDataError(f"{rec_path}: truncated record at byte {rec.tell()}")
            if flag == 0:
                yield part
            elif flag == 1:
                pending = bytearray(part)
            elif pending is not None and flag in (2, 3):
                pending += _RECORDIO_MAGIC + part
                if flag == 3:
                    yield bytes(pending)
                    pending = None
            else:
                raise CorruptDataError(f"{rec_path}: unexpected part flag {flag}")


def pack_image_record(*, label: int, record_id: int, image: bytes) -> bytes:
    """An image record as MXNet's `recordio.pack` makes it: IRHeader, then the encoded image."""
    return _IR_HEADER.pack(0, float(label), record_id, 0) + image


def unpack_image_record(payload: bytes) -> tuple[int, int, bytes]:
    """(label, record id, encoded image) of a record written by `pack_image_record`."""
    flag, label, record_id, _ = _IR_HEADER.unpack_from(payload)
    if flag != 0:
        raise CorruptDataError(f"image record {record_id}: flag {flag}; expected one label (0)")
    return int(label), record_id, payload[_IR_HEADER.size :]


def encode_png(pixels: bytes) -> bytes:
    """Encode a CIFAR channel-planar 32x32 image as an RGB PNG (lossless; OpenCV decodes it)."""
    # Imported here: only RecordIO needs PNGs, and the binary batches (synthetic data on a GPU
    # machine that has only PyTorch and NumPy) must not need Pillow.
    from PIL import Image

    if len(pixels) != IMAGE_BYTES:
        raise InvalidInputError(f"pixels: {len(pixels)} bytes; must be {IMAGE_BYTES}")
    plane = IMAGE_SIDE * IMAGE_SIDE
    size = (IMAGE_SIDE, IMAGE_SIDE)
    channels = [
        Image.frombytes("L", size, pixels[channel * plane : (channel + 1) * plane])
        for channel in range(3)
    ]
    out = io.BytesIO()
    Image.merge("RGB", channels).save(out, format="PNG", compress_level=6)
    return out.getvalue()


def write_recordio_from_batches(
    *, batches_dir: Path, dest_dir: Path | None = None
) -> tuple[int, int]:
    """Write train.rec/.idx and test.rec/.idx from the binary batches; returns (train, test)."""
    batches_dir = Path(batches_dir)
    dest_dir = batches_dir if dest_dir is None else Path(dest_dir)
    counts = []
    for split, names in (("train", TRAIN_BATCHES), ("test", (TEST_BATCH,))):
        images = (image for name in names for image in read_batch(batches_dir / name))
        payloads = (
            pack_image_record(label=image.label, record_id=i, image=encode_png(image.pixels))
            for i, image in enumerate(images)
        )
        counts.append(
            write_recordio(dest_dir / f"{split}.rec", payloads, idx_path=dest_dir / f"{split}.idx")
        )
    return counts[0], counts[1]


# --- download and verification ---------------------------------------------------------------


def download(
    *,
    url: str,
    part_path: Path,
    progress: ProgressCallback | None = None,
    timeout_s: float = 60.0,
) -> None:
    """Download `url` into `part_path`, resuming with an HTTP Range request if it exists.

    A transfer that breaks off keeps what arrived, so the next call continues from there.
    A server that ignores Range (answers 200) gets the file written again from the start.
    """
    part_path = Path(part_path)
    have = part_path.stat().st_size if part_path.exists() else 0
    headers = {"User-Agent": "openamt-data/1"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            return  # nothing left to fetch: the part file is whole; the checksum decides
        raise DownloadError(f"GET {url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"GET {url}: {exc}; check --url or use --from-archive") from exc
    with response:
        done, total, mode = _resume_point(response, url=url, have=have)
        with open(part_path, mode) as out:
            done = _copy_body(response, out, done=done, total=total, progress=progress, url=url)
    if total is not None and done < total:
        raise DownloadError(
            f"GET {url}: connection closed after {done} of {total} bytes; "
            "run the command again to resume"
        )


def _resume_point(
    response: http.client.HTTPResponse, *, url: str, have: int
) -> tuple[int, int | None, str]:
    """(bytes already on disk, total size or None, file mode) for this response."""
    if response.status == 206:
        match = re.match(r"bytes (\d+)-\d+/(\d+)", response.headers.get("Content-Range", ""))
        if not match or int(match.group(1)) != have:
            raise DownloadError(
                f"GET {url}: server resumed at {response.headers.get('Content-Range')!r}, "
                f"asked for byte {have}; delete the partial download and retry"
            )
        return have, int(match.group(2)), "ab"
    length = response.headers.get("Content-Length")
    return 0, (int(length) if length is not None else None), "wb"


def _copy_body(
    response: http.client.HTTPResponse,
    out: IO[bytes],
    *,
    done: int,
    total: int | None,
    progress: ProgressCallback | None,
    url: str,
) -> int:
    """Stream the body to `out`, flushing what arrived even when the connection breaks."""
    if progress is not None:
        progress(done, total)
    while True:
        try:
            chunk = response.read(_CHUNK_BYTES)
        except http.client.IncompleteRead as exc:
            out.write(exc.partial)
            return done + len(exc.partial)
        except OSError as exc:
            out.flush()
            raise DownloadError(
                f"GET {url}: {exc} after {done} bytes; run the command again to resume"
            ) from exc
        if not chunk:
            return done
        out.write(chunk)
        done += len(chunk)
        if progress is not None:
            progress(done, total)


def md5_of(path: Path) -> str:
    """Hex MD5 of a file (the checksum CIFAR-10 publishes), read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def verify_md5(path: Path, expected: str) -> None:
    """Raise ChecksumError unless `path` has MD5 `expected`."""
    actual = md5_of(path)
    if actual != expected:
        raise ChecksumError(
            f"{path}: md5 is {actual}, expected {expected}; the file is corrupt, truncated or "
            "a different archive (pass --md5 for a different archive)"
        )


# --- extraction ------------------------------------------------------------------------------


def extract_batches(*, archive: Path, into: Path) -> None:
    """Copy the batch and meta files out of a CIFAR-10 binary archive into `into` (flat).

    Only the known file names are written, by their base name, so member paths in the archive
    (absolute, `..`, links) can never write outside `into`.
    """
    wanted = {*TRAIN_BATCHES, TEST_BATCH, META_FILE}
    found: set[str] = set()
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                name = PurePosixPath(member.name).name
                if not member.isfile() or name not in wanted or name in found:
                    continue
                source = tar.extractfile(member)
                if source is None:
                    continue
                with source, open(Path(into) / name, "wb") as out:
                    shutil.copyfileobj(source, out, _CHUNK_BYTES)
                found.add(name)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise CorruptDataError(f"{archive}: cannot read the archive ({exc})") from exc
    missing = sorted(wanted - found)
    if missing:
        raise CorruptDataError(
            f"{archive}: no {', '.join(missing)} inside; expected the CIFAR-10 *binary* "
            "archive (cifar-10-binary.tar.gz)"
        )


def count_images(batches_dir: Path) -> tuple[int, int]:
    """(train, test) image counts of a batches directory, validating every batch file."""
    counts = []
    for names in (TRAIN_BATCHES, (TEST_BATCH,)):
        total = 0
        for name in names:
            path = Path(batches_dir) / name
            data = path.read_bytes()
            if not data or len(data) % RECORD_BYTES:
                raise CorruptDataError(
                    f"{path}: size {len(data)} bytes is not a positive multiple of {RECORD_BYTES}"
                )
            _check_labels(path, data[::RECORD_BYTES])
            total += len(data) // RECORD_BYTES
        counts.append(total)
    return counts[0], counts[1]


# --- the whole command -----------------------------------------------------------------------


def prepare_cifar10(
    *,
    dest: Path,
    url: str = CIFAR10_URL,
    md5: str = CIFAR10_MD5,
    from_archive: Path | None = None,
    progress: ProgressCallback | None = None,
    timeout_s: float = 60.0,
) -> PreparedDataset:
    """Make `dest` a finished CIFAR-10 directory (see the module docstring); idempotent.

    Downloads `url` (or reads `from_archive`), checks its MD5, extracts and converts in a
    temporary directory beside DEST, then renames it to DEST. A DEST already finished from an
    archive with this MD5 is left as it is.
    """
    md5 = _normalise_md5(md5)
    dest = Path(dest)
    existing = _finished_dataset(dest, md5)
    if existing is not None:
        return existing
    parent = dest.parent
    parent.mkdir(parents=True, exist_ok=True)
    part_path = parent / f".{dest.name}.download-{md5}.part"
    if from_archive is not None:
        archive = Path(from_archive)
        if not archive.is_file():
            raise InvalidInputError(f"from_archive: {archive} is not a file")
        verify_md5(archive, md5)
    else:
        download(url=url, part_path=part_path, progress=progress, timeout_s=timeout_s)
        archive = part_path
        try:
            verify_md5(archive, md5)
        except ChecksumError:
            part_path.unlink()  # resuming a wrong file can never succeed: start over next time
            raise
    # Not tempfile.mkdtemp: its 0700 mode would become DEST's; mkdir honours the umask.
    staging = parent / f".{dest.name}.staging-{os.getpid()}-{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        extract_batches(archive=archive, into=staging)
        train_images, test_images = count_images(staging)
        write_recordio_from_batches(batches_dir=staging)
        _write_manifest(staging, md5=md5, train_images=train_images, test_images=test_images)
        if dest.exists():
            dest.rmdir()  # _finished_dataset let it through, so it is an empty directory
        os.rename(staging, dest)
    except CorruptDataError:
        if from_archive is None:
            part_path.unlink()  # downloading the same bytes again would fail the same way
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if from_archive is None:
        part_path.unlink(missing_ok=True)
    return PreparedDataset(
        dest=dest,
        train_images=train_images,
        test_images=test_images,
        archive_md5=md5,
        reused=False,
    )


def _normalise_md5(md5: str) -> str:
    value = md5.strip().lower()
    if not _MD5_PATTERN.match(value):
        raise InvalidInputError(f"md5: {md5!r}; must be 32 hexadecimal digits")
    return value


def _finished_dataset(dest: Path, md5: str) -> PreparedDataset | None:
    """The data set already in DEST, None if DEST is absent or empty; raises otherwise."""
    if not dest.exists():
        return None
    if not dest.is_dir():
        raise DestinationError(f"dest: {dest} exists and is not a directory")
    manifest_path = dest / MANIFEST_FILE
    if not manifest_path.is_file():
        if any(dest.iterdir()):
            raise DestinationError(
                f"dest: {dest} is not empty and has no {MANIFEST_FILE}, so it is not a finished "
                "CIFAR-10 directory; remove it or choose another --dest"
            )
        return None
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        files_present = all((dest / name).is_file() for name in manifest["files"])
        recorded_md5 = manifest["archive_md5"]
        train_images, test_images = manifest["train_images"], manifest["test_images"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DestinationError(
            f"dest: {manifest_path} is unreadable ({exc}); remove {dest}"
        ) from exc
    if recorded_md5 != md5:
        raise DestinationError(
            f"dest: {dest} holds the data set from archive md5 {recorded_md5}, not {md5}; "
            "remove it or choose another --dest"
        )
    if not files_present:
        raise DestinationError(
            f"dest: {dest} is missing files listed in {MANIFEST_FILE}; remove it"
        )
    return PreparedDataset(
        dest=dest,
        train_images=train_images,
        test_images=test_images,
        archive_md5=md5,
        reused=True,
    )


def _write_manifest(directory: Path, *, md5: str, train_images: int, test_images: int) -> None:
    files = sorted(path.name for path in directory.iterdir())
    manifest = {
        "format": MANIFEST_FORMAT,
        "archive_md5": md5,
        "train_images": train_images,
        "test_images": test_images,
        "files": files,
    }
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


# --- command line ----------------------------------------------------------------------------


class TextProgress:
    """A plain-text progress display: one rewritten line on a terminal, 10% steps otherwise."""

    def __init__(self, *, stream: IO[str]) -> None:
        self._stream = stream
        self._interactive = stream.isatty()
        self._last_step = -1

    def __call__(self, done: int, total: int | None) -> None:
        mib = done / (1 << 20)
        if total:
            percent = 100.0 * done / total
            text = f"downloaded {mib:8.1f} of {total / (1 << 20):.1f} MiB ({percent:5.1f}%)"
            step = int(percent // 10)
        else:
            text = f"downloaded {mib:8.1f} MiB"
            step = int(mib // 10)
        if self._interactive:
            end = "\n" if total and done >= total else ""
            self._stream.write(f"\r{text}{end}")
        elif step != self._last_step:
            self._stream.write(text + "\n")
        self._last_step = step
        self._stream.flush()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m models.cifar10_data",
        description="Download CIFAR-10 (binary version), verify it, and write the binary "
        "batches plus train.rec/test.rec for the trainers.",
        epilog="example: python -m models.cifar10_data --dest data/cifar10",
    )
    parser.add_argument("--dest", type=Path, required=True, help="directory to create")
    parser.add_argument(
        "--from-archive",
        type=Path,
        default=None,
        help="use this local cifar-10-binary.tar.gz instead of downloading (air-gapped)",
    )
    parser.add_argument("--url", default=CIFAR10_URL, help="archive address (a mirror)")
    parser.add_argument("--md5", default=CIFAR10_MD5, help="expected MD5 of the archive")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="network timeout in seconds (default 60)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """`openamt data cifar10` and `python -m models.cifar10_data`; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        result = prepare_cifar10(
            dest=args.dest,
            url=args.url,
            md5=args.md5,
            from_archive=args.from_archive,
            progress=TextProgress(stream=sys.stderr),
            timeout_s=args.timeout,
        )
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    state = "already complete" if result.reused else "ready"
    print(
        f"CIFAR-10 {state} in {result.dest}: {result.train_images} training and "
        f"{result.test_images} test images (binary batches, train.rec, test.rec)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
