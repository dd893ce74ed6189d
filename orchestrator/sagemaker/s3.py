"""`s3://` URIs on one's own cluster: a local directory stands in for S3.

`s3://BUCKET/KEY` is the path `$OPENAMT_S3_ROOT/BUCKET/KEY`. Put the root on storage every
node sees at the same path (the cluster's shared disk) and a notebook's S3 URIs work unchanged:
`Session.upload_data` copies into it and returns the URI, `fit(inputs)` reads from it, job
directories and models are written under it. `file://PATH` and plain paths are local paths.

The root defaults to `~/openamt/s3`; set `OPENAMT_S3_ROOT` on every node (and in the notebook's
environment) to change it. Nothing here talks to AWS.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from orchestrator.errors import SpecError, SpecProblem

ROOT_VARIABLE = "OPENAMT_S3_ROOT"
DEFAULT_ROOT = "~/openamt/s3"
# S3's bucket naming rule (3-63 lowercase letters, digits, dots and hyphens).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def s3_root() -> Path:
    """The local directory that holds the buckets (read each time: a notebook may set it)."""
    return Path(os.path.abspath(os.path.expanduser(os.environ.get(ROOT_VARIABLE) or DEFAULT_ROOT)))


@dataclass(frozen=True)
class S3Uri:
    """A bucket and a key (no leading slash; may be empty: the whole bucket)."""

    bucket: str
    key: str = ""

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}" if self.key else f"s3://{self.bucket}"

    def join(self, *parts: str) -> S3Uri:
        key = "/".join(part.strip("/") for part in (self.key, *parts) if part.strip("/"))
        return S3Uri(bucket=self.bucket, key=key)

    @property
    def local_path(self) -> Path:
        """Where this object or prefix lives in the mirror."""
        bucket = s3_root() / self.bucket
        return bucket.joinpath(*self.key.split("/")) if self.key else bucket


def parse_s3_uri(text: str, *, field: str = "s3_data") -> S3Uri:
    """`s3://bucket/key` as an `S3Uri`; a clear error for anything else, and for keys that
    would leave the mirror (`..`)."""
    parsed = urlparse(text)
    if parsed.scheme != "s3":
        raise _problem(field, text, "must be an s3:// URI (s3://bucket/key)")
    if not _BUCKET.fullmatch(parsed.netloc or ""):
        raise _problem(
            field, text, "the bucket must be 3-63 lowercase letters, digits, dots or hyphens"
        )
    key = unquote(parsed.path).strip("/")
    if any(part in (".", "..") for part in key.split("/")):
        raise _problem(field, text, "a key may not contain '.' or '..' segments")
    return S3Uri(bucket=parsed.netloc, key=key)


def local_path(location: str | os.PathLike[str], *, field: str = "s3_data") -> Path:
    """The local path for an `s3://` URI (in the mirror), a `file://` URI or a plain path."""
    text = os.fspath(location)
    if not text:
        raise _problem(field, text, "must be an s3:// URI, a file:// URI or a path")
    scheme = urlparse(text).scheme
    if scheme == "s3":
        return parse_s3_uri(text, field=field).local_path
    if scheme == "file":
        return Path(os.path.abspath(unquote(urlparse(text).path)))
    if scheme and len(scheme) > 1:  # "C:" is a drive, not a scheme
        raise _problem(
            field, text, "only s3:// (the local mirror), file:// URIs and paths can be read"
        )
    return Path(os.path.abspath(os.path.expanduser(text)))


def to_s3_uri(path: Path) -> str | None:
    """The `s3://` URI of a path inside the mirror, or None for a path outside it."""
    root = s3_root()
    path = Path(os.path.abspath(path))
    if not path.is_relative_to(root) or path == root:
        return None
    bucket, *key = path.relative_to(root).parts
    return str(S3Uri(bucket=bucket, key="/".join(key)))


def _problem(field: str, value: str, rule: str) -> SpecError:
    return SpecError([SpecProblem(field, value, rule)])
