"""SageMaker's `Session` and `get_execution_role` on one's own cluster.

A session knows where S3 lives (the local mirror, `orchestrator.sagemaker.s3`), its default
bucket, and so where jobs are written: SageMaker's default `output_path` is
`s3://<default bucket>/<default bucket prefix>/`, and so is openamt's, in the mirror. Tuning and
training jobs are found by name there (`HyperparameterTuner.attach(name)`,
`HyperparameterTuningJobAnalytics(name)`), as SageMaker finds them by name in an account.

AWS clients and configuration (`boto_session`, `sagemaker_client`, `settings`, ...) are accepted
and not used: nothing here calls AWS.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.errors import OpenAMTError
from orchestrator.sagemaker.s3 import S3Uri, parse_s3_uri, s3_root

BUCKET_VARIABLE = "OPENAMT_DEFAULT_BUCKET"
DEFAULT_BUCKET = "sagemaker-openamt"
#: What `get_execution_role()` returns: a role is recorded with each job, never assumed.
EXECUTION_ROLE = "arn:aws:iam::000000000000:role/openamt-local"
REGION = "local"


class Session:
    """SageMaker's `Session`: its default bucket, uploads into the S3 mirror, where jobs live.

    Positional order and defaults are the SDK's; `default_bucket` falls back to
    `$OPENAMT_DEFAULT_BUCKET`, then `sagemaker-openamt`.
    """

    def __init__(
        self,
        boto_session: Any = None,
        sagemaker_client: Any = None,
        sagemaker_runtime_client: Any = None,
        sagemaker_featurestore_runtime_client: Any = None,
        default_bucket: str | None = None,
        settings: Any = None,
        sagemaker_metrics_client: Any = None,
        sagemaker_config: dict[str, Any] | None = None,
        default_bucket_prefix: str | None = None,
    ) -> None:
        bucket = default_bucket or os.environ.get(BUCKET_VARIABLE) or DEFAULT_BUCKET
        parse_s3_uri(f"s3://{bucket}", field="default_bucket")  # S3's bucket name rule
        self._default_bucket = bucket
        self.default_bucket_prefix = (default_bucket_prefix or "").strip("/") or None
        self.boto_region_name = REGION
        self.local_mode = False

    def default_bucket(self) -> str:
        """The default bucket's name; its directory in the mirror is created if missing."""
        S3Uri(bucket=self._default_bucket).local_path.mkdir(parents=True, exist_ok=True)
        return self._default_bucket

    @property
    def default_output_path(self) -> str:
        """`s3://<default bucket>/<default bucket prefix>`: where jobs go by default."""
        return str(S3Uri(bucket=self._default_bucket).join(self.default_bucket_prefix or ""))

    def upload_data(
        self,
        path: str | os.PathLike[str],
        bucket: str | None = None,
        key_prefix: str = "data",
        callback: Callable[[int], Any] | None = None,
        extra_args: dict[str, Any] | None = None,
    ) -> str:
        """Copy a file or directory into the mirror and return its `s3://` URI, as the SDK does:
        a directory's files go under `key_prefix` (URI `s3://bucket/key_prefix`), a file to
        `key_prefix/<its name>` (URI of that object). Files already there with the same size and
        modification time are not copied again. `callback` gets each file's size in bytes;
        `extra_args` (S3 upload options) do not apply."""
        source = Path(os.path.abspath(os.fspath(path)))
        if not source.exists():
            raise OpenAMTError(f"upload_data: path {os.fspath(path)!r} does not exist")
        key = self._prefixed(key_prefix) if bucket is None else key_prefix
        unchecked = S3Uri(bucket=bucket or self.default_bucket()).join(key)
        prefix = parse_s3_uri(str(unchecked), field="key_prefix")
        if source.is_dir():
            for file in sorted(p for p in source.rglob("*") if p.is_file()):
                relative = file.relative_to(source).as_posix()
                _copy(file, prefix.join(relative).local_path, callback)
            return str(prefix)
        target = prefix.join(source.name)
        _copy(source, target.local_path, callback)
        return str(target)

    def _prefixed(self, key: str) -> str:
        """`default_bucket_prefix/key` for the default bucket, as the SDK does."""
        return "/".join(p.strip("/") for p in (self.default_bucket_prefix or "", key) if p)

    @property
    def s3_root(self) -> Path:
        """The mirror's root directory (`$OPENAMT_S3_ROOT`)."""
        return s3_root()


class LocalSession(Session):
    """SageMaker's local-mode session: the same as `Session` here (every job runs on one's own
    machines); pair it with `instance_type="local"` or `"local_gpu"`."""

    def __init__(
        self,
        boto_session: Any = None,
        default_bucket: str | None = None,
        s3_endpoint_url: str | None = None,
        disable_local_code: bool = False,
        sagemaker_config: dict[str, Any] | None = None,
        default_bucket_prefix: str | None = None,
    ) -> None:
        super().__init__(
            boto_session=boto_session,
            default_bucket=default_bucket,
            sagemaker_config=sagemaker_config,
            default_bucket_prefix=default_bucket_prefix,
        )
        self.local_mode = True


def get_execution_role(sagemaker_session: Session | None = None, use_default: bool = False) -> str:
    """A placeholder role ARN: an estimator records its `role`, and nothing assumes it."""
    return EXECUTION_ROLE


def _copy(source: Path, target: Path, callback: Callable[[int], Any] | None) -> None:
    """Copy one file unless an identical-looking one (size, mtime) is there already."""
    stat = source.stat()
    if source.resolve() != target.resolve():
        try:
            existing = target.stat()
            same = existing.st_size == stat.st_size and existing.st_mtime == stat.st_mtime
        except FileNotFoundError:
            same = False
        if not same:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    if callback is not None:
        callback(stat.st_size)
