"""The CIFAR-10 data command against a local HTTP server serving a synthetic archive."""

from __future__ import annotations

import hashlib
import io
import random
import re
import struct
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from models import cifar10_data as data
from models.synthetic_cifar import synthetic_archive, write_synthetic_cifar

REPO = Path(__file__).resolve().parents[2]
MXNET_PYTHON = REPO / ".venv-mxnet" / "bin" / "python"
TRAIN_IMAGES, TEST_IMAGES, SEED = 60, 25, 7


class ArchiveServer(ThreadingHTTPServer):
    """Serves `payload` at any path, with Range support that tests can turn off, and can
    break the connection after `cut_after` bytes (Content-Length still announces them all)."""

    def __init__(self, payload: bytes) -> None:
        super().__init__(("127.0.0.1", 0), ArchiveHandler)
        self.payload = payload
        self.honour_range = True
        self.cut_after: int | None = None
        self.range_headers: list[str | None] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/cifar-10-binary.tar.gz"


class ArchiveHandler(BaseHTTPRequestHandler):
    server: ArchiveServer

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        payload = self.server.payload
        requested = self.headers.get("Range")
        self.server.range_headers.append(requested)
        start = 0
        if requested and self.server.honour_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", requested).group(1))
            if start >= len(payload):
                self.send_response(416)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(payload) - 1}/{len(payload)}")
        else:
            self.send_response(200)
        body = payload[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.server.cut_after is not None:
            body = body[: self.server.cut_after]
            self.close_connection = True
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def archive_bytes() -> bytes:
    return synthetic_archive(
        train_images=TRAIN_IMAGES, test_images=TEST_IMAGES, seed=SEED, noise=64
    )


@pytest.fixture(scope="module")
def archive_md5(archive_bytes: bytes) -> str:
    return hashlib.md5(archive_bytes).hexdigest()


@pytest.fixture(scope="module")
def expected_batches(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The batch files the archive holds, written directly by the generator."""
    directory = tmp_path_factory.mktemp("expected")
    write_synthetic_cifar(
        dest=directory, train_images=TRAIN_IMAGES, test_images=TEST_IMAGES, seed=SEED
    )
    return directory


def serve(payload: bytes) -> Iterator[ArchiveServer]:
    server = ArchiveServer(payload)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def server(archive_bytes: bytes) -> Iterator[ArchiveServer]:
    yield from serve(archive_bytes)


def leftovers(parent: Path, dest: Path) -> list[str]:
    """Anything in DEST's parent besides DEST itself (temporary or partial files)."""
    return sorted(p.name for p in parent.iterdir() if p != dest)


def decode_png(png: bytes) -> bytes:
    """A PNG back to CIFAR's planar layout, decoded by Pillow; it must be 32x32 8-bit RGB."""
    image = Image.open(io.BytesIO(png))
    assert (image.format, image.mode, image.size) == ("PNG", "RGB", (32, 32))
    return b"".join(channel.tobytes() for channel in image.split())


# --- download, verify, extract -------------------------------------------------------------


def test_download_with_good_checksum_writes_batches_and_recordio(
    tmp_path: Path, server: ArchiveServer, archive_md5: str, expected_batches: Path
) -> None:
    dest = tmp_path / "cifar10"
    calls: list[tuple[int, int | None]] = []

    result = data.prepare_cifar10(
        dest=dest, url=server.url, md5=archive_md5, progress=lambda d, t: calls.append((d, t))
    )

    assert (result.train_images, result.test_images, result.reused) == (60, 25, False)
    for name in (*data.TRAIN_BATCHES, data.TEST_BATCH):
        assert (dest / name).read_bytes() == (expected_batches / name).read_bytes()
    expected_files = {
        *data.TRAIN_BATCHES,
        data.TEST_BATCH,
        data.META_FILE,
        "train.rec",
        "train.idx",
        "test.rec",
        "test.idx",
        data.MANIFEST_FILE,
    }
    assert {p.name for p in dest.iterdir()} == expected_files
    assert leftovers(tmp_path, dest) == []
    done = [d for d, _ in calls]
    assert done == sorted(done) and calls[-1] == (len(server.payload), len(server.payload))


def test_recordio_records_hold_the_images_as_png(tmp_path: Path, expected_batches: Path) -> None:
    counts = data.write_recordio_from_batches(batches_dir=expected_batches, dest_dir=tmp_path)

    assert counts == (TRAIN_IMAGES, TEST_IMAGES)
    images = data.read_batch(expected_batches / data.TEST_BATCH)
    records = list(data.read_recordio(tmp_path / "test.rec"))
    assert len(records) == len(images)
    for index, (payload, image) in enumerate(zip(records, images, strict=True)):
        label, record_id, png = data.unpack_image_record(payload)
        assert (label, record_id) == (image.label, index)
        assert decode_png(png) == image.pixels
    offsets = [
        int(line.split("\t")[1]) for line in (tmp_path / "test.idx").read_text().splitlines()
    ]
    with open(tmp_path / "test.rec", "rb") as rec:
        for offset in offsets:
            rec.seek(offset)
            assert rec.read(4) == struct.pack("<I", 0xCED7230A)


def test_bad_checksum_is_refused_and_leaves_nothing(
    tmp_path: Path, server: ArchiveServer, archive_md5: str
) -> None:
    dest = tmp_path / "cifar10"
    wrong = "0" * 32

    with pytest.raises(data.ChecksumError, match=f"md5 is {archive_md5}, expected {wrong}"):
        data.prepare_cifar10(dest=dest, url=server.url, md5=wrong)

    assert not dest.exists()
    assert leftovers(tmp_path, dest) == []  # the wrong file is not kept for resuming


def test_truncated_download_fails_then_resumes_with_range(
    tmp_path: Path, server: ArchiveServer, archive_md5: str
) -> None:
    dest = tmp_path / "cifar10"
    half = len(server.payload) // 2
    server.cut_after = half

    with pytest.raises(data.DownloadError, match=f"after {half} of {len(server.payload)} bytes"):
        data.prepare_cifar10(dest=dest, url=server.url, md5=archive_md5)
    assert not dest.exists()
    (partial,) = [tmp_path / name for name in leftovers(tmp_path, dest)]
    assert partial.stat().st_size == half

    server.cut_after = None
    result = data.prepare_cifar10(dest=dest, url=server.url, md5=archive_md5)

    assert server.range_headers == [None, f"bytes={half}-"]
    assert result.train_images == TRAIN_IMAGES
    assert leftovers(tmp_path, dest) == []


def test_resume_restarts_when_the_server_ignores_range(
    tmp_path: Path, server: ArchiveServer, archive_md5: str
) -> None:
    dest = tmp_path / "cifar10"
    server.cut_after = 1000
    with pytest.raises(data.DownloadError):
        data.prepare_cifar10(dest=dest, url=server.url, md5=archive_md5)

    server.cut_after, server.honour_range = None, False
    result = data.prepare_cifar10(dest=dest, url=server.url, md5=archive_md5)

    assert server.range_headers == [None, "bytes=1000-"]  # asked to resume, got a 200
    assert result.test_images == TEST_IMAGES


def test_complete_partial_file_is_verified_not_refetched(
    tmp_path: Path, server: ArchiveServer, archive_md5: str
) -> None:
    dest = tmp_path / "cifar10"
    part = tmp_path / f".cifar10.download-{archive_md5}.part"
    part.write_bytes(server.payload)  # a previous run got everything, then was interrupted

    data.prepare_cifar10(dest=dest, url=server.url, md5=archive_md5)

    assert server.range_headers == [f"bytes={len(server.payload)}-"]  # answered 416
    assert (dest / data.MANIFEST_FILE).is_file()


def test_corrupt_archive_with_matching_checksum_leaves_nothing(
    tmp_path: Path, archive_bytes: bytes
) -> None:
    truncated = archive_bytes[: len(archive_bytes) // 2]
    dest = tmp_path / "cifar10"
    for server in serve(truncated):
        with pytest.raises(data.CorruptDataError, match="cannot read the archive"):
            data.prepare_cifar10(dest=dest, url=server.url, md5=hashlib.md5(truncated).hexdigest())
    assert not dest.exists()
    assert leftovers(tmp_path, dest) == []


def test_archive_without_the_binary_batches_is_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")  # the Python version
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    archive = tmp_path / "python-version.tar.gz"
    archive.write_bytes(buffer.getvalue())
    dest = tmp_path / "cifar10"

    with pytest.raises(data.CorruptDataError, match=r"no .*data_batch_1\.bin.*\*binary\* archive"):
        data.prepare_cifar10(
            dest=dest, from_archive=archive, md5=hashlib.md5(buffer.getvalue()).hexdigest()
        )
    assert not dest.exists()


def test_batch_with_bad_labels_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data_batch_1.bin"
    path.write_bytes(bytes([12]) + bytes(3072))

    with pytest.raises(data.CorruptDataError, match="label 12 found"):
        data.read_batch(path)


# --- offline, idempotence, bad input -------------------------------------------------------


def test_from_archive_works_offline(tmp_path: Path, archive_bytes: bytes, archive_md5: str) -> None:
    archive = tmp_path / "cifar-10-binary.tar.gz"
    archive.write_bytes(archive_bytes)
    dest = tmp_path / "out" / "cifar10"

    result = data.prepare_cifar10(
        dest=dest, from_archive=archive, md5=archive_md5, url="http://127.0.0.1:9/unreachable"
    )

    assert result.train_images == TRAIN_IMAGES
    assert archive.read_bytes() == archive_bytes  # the user's archive is left alone
    assert leftovers(dest.parent, dest) == []


def test_from_archive_with_wrong_checksum_or_missing_file(
    tmp_path: Path, archive_bytes: bytes
) -> None:
    archive = tmp_path / "cifar-10-binary.tar.gz"
    archive.write_bytes(archive_bytes)

    with pytest.raises(data.ChecksumError, match=data.CIFAR10_MD5):
        data.prepare_cifar10(dest=tmp_path / "a", from_archive=archive)
    with pytest.raises(
        data.InvalidInputError, match="from_archive: .*missing.tar.gz is not a file"
    ):
        data.prepare_cifar10(dest=tmp_path / "b", from_archive=tmp_path / "missing.tar.gz")
    assert archive.exists() and not (tmp_path / "a").exists()


def test_second_run_is_a_no_op(tmp_path: Path, server: ArchiveServer, archive_md5: str) -> None:
    dest = tmp_path / "cifar10"
    data.prepare_cifar10(dest=dest, url=server.url, md5=archive_md5)
    before = {p.name: p.stat().st_mtime_ns for p in dest.iterdir()}

    again = data.prepare_cifar10(dest=dest, url=server.url, md5=archive_md5)

    assert again.reused and (again.train_images, again.test_images) == (60, 25)
    assert len(server.range_headers) == 1  # no second download
    assert {p.name: p.stat().st_mtime_ns for p in dest.iterdir()} == before


def test_existing_dest_that_is_not_ours_is_refused(
    tmp_path: Path, server: ArchiveServer, archive_md5: str
) -> None:
    dest = tmp_path / "cifar10"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")

    with pytest.raises(data.DestinationError, match="not empty and has no openamt-dataset.json"):
        data.prepare_cifar10(dest=dest, url=server.url, md5=archive_md5)
    assert (dest / "notes.txt").read_text() == "mine"
    assert server.range_headers == []


def test_empty_existing_dest_is_filled(
    tmp_path: Path, server: ArchiveServer, archive_md5: str
) -> None:
    dest = tmp_path / "cifar10"
    dest.mkdir()

    data.prepare_cifar10(dest=dest, url=server.url, md5=archive_md5)

    assert (dest / "train.rec").is_file()


def test_dest_from_another_archive_is_refused(
    tmp_path: Path, server: ArchiveServer, archive_md5: str
) -> None:
    dest = tmp_path / "cifar10"
    data.prepare_cifar10(dest=dest, url=server.url, md5=archive_md5)

    with pytest.raises(data.DestinationError, match=f"archive md5 {archive_md5}, not {'a' * 32}"):
        data.prepare_cifar10(dest=dest, url=server.url, md5="A" * 32)


def test_malformed_md5_names_field_value_and_rule(tmp_path: Path) -> None:
    with pytest.raises(data.InvalidInputError, match="md5: 'xyz'; must be 32 hexadecimal digits"):
        data.prepare_cifar10(dest=tmp_path / "d", md5="xyz")


def test_unreachable_url_is_a_download_error(tmp_path: Path) -> None:
    with pytest.raises(data.DownloadError, match="127.0.0.1:9"):
        data.prepare_cifar10(dest=tmp_path / "d", url="http://127.0.0.1:9/x.tar.gz", timeout_s=5)


# --- command line ----------------------------------------------------------------------------


def test_main_downloads_with_text_progress(
    tmp_path: Path, server: ArchiveServer, archive_md5: str, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "cifar10"

    status = data.main(["--dest", str(dest), "--url", server.url, "--md5", archive_md5])

    out, err = capsys.readouterr()
    assert status == 0
    assert "ready in" in out and "60 training and 25 test images" in out
    assert re.search(r"downloaded .* MiB \(100\.0%\)", err)
    assert data.main(["--dest", str(dest), "--url", server.url, "--md5", archive_md5]) == 0
    assert "already complete" in capsys.readouterr().out


def test_main_reports_errors_with_status_1(
    tmp_path: Path, server: ArchiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    status = data.main(["--dest", str(tmp_path / "d"), "--url", server.url, "--md5", "f" * 32])

    err = capsys.readouterr().err
    assert status == 1
    assert "\nerror: " in err and f"expected {'f' * 32}" in err


def test_module_imports_in_both_environments_without_third_party_packages(
    tmp_path: Path, archive_bytes: bytes, archive_md5: str
) -> None:
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(archive_bytes)
    check = (
        "import sys, models.cifar10_data, models.synthetic_cifar;"
        "third = {'numpy', 'torch', 'mxnet', 'PIL'} & set(sys.modules); assert not third, third"
    )
    for index, python in enumerate((sys.executable, str(MXNET_PYTHON))):
        subprocess.run([python, "-c", check], cwd=REPO, check=True, timeout=120)
        dest = tmp_path / f"dest{index}"
        completed = subprocess.run(
            [python, "-m", "models.cifar10_data", "--dest", str(dest)]
            + ["--from-archive", str(archive), "--md5", archive_md5],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert completed.returncode == 0, completed.stderr
        assert (dest / "test.rec").is_file()


# --- RecordIO framing ------------------------------------------------------------------------

MAGIC = struct.pack("<I", 0xCED7230A)


def test_payload_containing_the_magic_is_split_into_parts() -> None:
    payload = b"abcd" + MAGIC + b"efgh" + MAGIC + b"xyz"

    framed = data.encode_record(payload)

    headers = [struct.unpack("<I", framed[i + 4 : i + 8])[0] for i in (0, 12, 24)]
    assert [word >> 29 for word in headers] == [1, 2, 3]
    assert [word & ((1 << 29) - 1) for word in headers] == [4, 4, 3]
    assert len(framed) % 4 == 0


def test_unaligned_magic_needs_no_split() -> None:
    payload = b"ab" + MAGIC + b"cd"

    framed = data.encode_record(payload)

    assert framed[:4] == MAGIC and struct.unpack("<I", framed[4:8])[0] == len(payload)
    assert framed[8:] == payload + bytes(-len(payload) % 4)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.lists(st.one_of(st.binary(max_size=9), st.just(MAGIC)), max_size=6).map(b"".join),
        max_size=5,
    )
)
def test_recordio_round_trip(
    tmp_path_factory: pytest.TempPathFactory, payloads: list[bytes]
) -> None:
    path = tmp_path_factory.mktemp("rec") / "x.rec"

    count = data.write_recordio(path, payloads, idx_path=None)

    assert count == len(payloads)
    assert list(data.read_recordio(path)) == payloads


def test_png_is_lossless_and_keeps_the_channels_apart() -> None:
    pixels = random.Random(0).randbytes(data.IMAGE_BYTES)  # three different planes

    assert decode_png(data.encode_png(pixels)) == pixels


# --- MXNet reads what we write ---------------------------------------------------------------

MXNET_CHECK = r"""
import sys
import numpy as np
import mxnet as mx

directory, tricky_rec = sys.argv[1], sys.argv[2]
train_batches = [f"data_batch_{i}.bin" for i in range(1, 6)]
for split, batches in (("test", ["test_batch.bin"]), ("train", train_batches)):
    raw = np.concatenate([np.fromfile(f"{directory}/{b}", dtype=np.uint8) for b in batches])
    raw = raw.reshape(-1, 3073)
    it = mx.io.ImageRecordIter(
        path_imgrec=f"{directory}/{split}.rec", data_shape=(3, 32, 32), batch_size=16,
        preprocess_threads=1, shuffle=False,
    )
    seen = 0
    for batch in it:
        count = batch.data[0].shape[0] - batch.pad
        images = batch.data[0].asnumpy()[:count]
        labels = batch.label[0].asnumpy()[:count]
        expected = raw[seen : seen + count]
        assert (images == expected[:, 1:].reshape(-1, 3, 32, 32)).all(), split
        assert (labels == expected[:, 0]).all(), split
        seen += count
    assert seen == len(raw), (split, seen, len(raw))
    print(split, seen)

record = mx.recordio.MXIndexedRecordIO(f"{directory}/train.idx", f"{directory}/train.rec", "r")
header, image = mx.recordio.unpack_img(record.read_idx(5))
assert header.id == 5 and image.shape == (32, 32, 3)

reader = mx.recordio.MXRecordIO(tricky_rec, "r")
records = []
while (item := reader.read()) is not None:
    records.append(item)
print("tricky", [r.hex() for r in records])
"""


def test_mxnet_image_record_iter_decodes_our_recordio(
    tmp_path: Path, expected_batches: Path
) -> None:
    data.write_recordio_from_batches(batches_dir=expected_batches, dest_dir=tmp_path)
    for name in (*data.TRAIN_BATCHES, data.TEST_BATCH):
        (tmp_path / name).write_bytes((expected_batches / name).read_bytes())
    tricky = [b"abcd" + MAGIC + b"efgh", MAGIC, b"xy" + MAGIC + MAGIC + b"z", b""]
    data.write_recordio(tmp_path / "tricky.rec", tricky, idx_path=None)

    completed = subprocess.run(
        [str(MXNET_PYTHON), "-c", MXNET_CHECK, str(tmp_path), str(tmp_path / "tricky.rec")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )

    assert completed.returncode == 0, completed.stderr
    assert f"test {TEST_IMAGES}" in completed.stdout and f"train {TRAIN_IMAGES}" in completed.stdout
    (tricky_line,) = [line for line in completed.stdout.splitlines() if line.startswith("tricky")]
    assert tricky_line == f"tricky {[r.hex() for r in tricky]}"
