"""SageMaker's `TrainingInput`, and how `fit(inputs)` becomes the job's data channels.

A channel is a directory the script reads (`SM_CHANNEL_<NAME>`). `s3://` URIs are read from the
local mirror (`orchestrator.sagemaker.s3`), `file://` URIs and paths as they are. What a
`TrainingInput` says about S3 delivery applies as follows: `File` and `FastFile` input modes
both show the script the files (as SageMaker does); `Pipe` mode, manifest files and channels
limited to instance groups would change what the script reads, so they are refused.
Distribution, compression, content type, record wrapping and shuffling are kept in the channel's
config (`TrainingInput.config`, SageMaker's form) and do not change the files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestrator.errors import SpecError, SpecProblem
from orchestrator.sagemaker.s3 import local_path

DEFAULT_CHANNEL = "training"
_FILE_MODES = ("File", "FastFile")


class TrainingInput:
    """A channel's data and its delivery options, in the SDK's order; `config` is SageMaker's
    `Channel` request form."""

    def __init__(
        self,
        s3_data: str,
        distribution: str | None = None,
        compression: str | None = None,
        content_type: str | None = None,
        record_wrapping: str | None = None,
        s3_data_type: str = "S3Prefix",
        instance_groups: list[str] | None = None,
        input_mode: str | None = None,
        attribute_names: list[str] | None = None,
        target_attribute_name: str | None = None,
        shuffle_config: Any = None,
        hub_access_config: dict[str, Any] | None = None,
        model_access_config: dict[str, Any] | None = None,
    ) -> None:
        source: dict[str, Any] = {"S3DataType": s3_data_type, "S3Uri": s3_data}
        if not (target_attribute_name or distribution):
            distribution = "FullyReplicated"
        if distribution is not None:
            source["S3DataDistributionType"] = distribution
        for key, value in (
            ("InstanceGroupNames", instance_groups),
            ("AttributeNames", attribute_names),
            ("HubAccessConfig", hub_access_config),
            ("ModelAccessConfig", model_access_config),
        ):
            if value is not None:
                source[key] = value
        self.config: dict[str, Any] = {"DataSource": {"S3DataSource": source}}
        for key, value in (
            ("CompressionType", compression),
            ("ContentType", content_type),
            ("RecordWrapperType", record_wrapping),
            ("InputMode", input_mode),
            ("TargetAttributeName", target_attribute_name),
        ):
            if value is not None:
                self.config[key] = value
        if shuffle_config is not None:
            self.config["ShuffleConfig"] = {"Seed": getattr(shuffle_config, "seed", None)}

    @property
    def s3_data(self) -> str:
        return str(self.config["DataSource"]["S3DataSource"]["S3Uri"])


def channels(inputs: Any, *, input_mode: str = "File") -> dict[str, str]:
    """`fit(inputs)` as channel name -> local directory: a URI, path or `TrainingInput` is the
    `training` channel; a dict maps channel names to any of those. Checks every directory."""
    if inputs is None:
        return {}
    if not isinstance(inputs, Mapping):
        inputs = {DEFAULT_CHANNEL: inputs}
    return {
        str(name): str(_channel_dir(str(name), value, input_mode=input_mode))
        for name, value in inputs.items()
    }


def _channel_dir(name: str, value: Any, *, input_mode: str) -> Path:
    field = f"inputs.{name}"
    if isinstance(value, TrainingInput):
        _check_delivery(field, value.config, input_mode=input_mode)
        value = value.s3_data
    if not isinstance(value, str | os.PathLike):
        rule = "must be an s3:// URI, a file:// URI, a path or a TrainingInput"
        raise SpecError([SpecProblem(field, value, rule)])
    path = local_path(value, field=field)
    if not path.is_dir():
        in_s3 = os.fspath(value).startswith("s3://")
        where = "the S3 mirror has no such prefix" if in_s3 else "no such directory"
        raise SpecError(
            [
                SpecProblem(
                    field,
                    os.fspath(value),
                    f"must be a directory of data ({where}: {path}); upload it with "
                    "Session.upload_data or copy it there",
                )
            ]
        )
    return path


def _check_delivery(field: str, config: Mapping[str, Any], *, input_mode: str) -> None:
    source = config["DataSource"]["S3DataSource"]
    mode = config.get("InputMode", input_mode)
    problems = []
    if mode not in _FILE_MODES:
        problems.append(
            SpecProblem(
                f"{field}.input_mode",
                mode,
                "only File and FastFile input modes are supported (the script reads files); "
                "Pipe mode would need a FIFO per channel",
            )
        )
    if source["S3DataType"] != "S3Prefix":
        problems.append(
            SpecProblem(
                f"{field}.s3_data_type",
                source["S3DataType"],
                "only S3Prefix is supported: a manifest would select other files than the prefix's",
            )
        )
    if source.get("InstanceGroupNames"):
        problems.append(
            SpecProblem(
                f"{field}.instance_groups",
                source["InstanceGroupNames"],
                "instance groups are not supported (a trial runs on one node)",
            )
        )
    if problems:
        raise SpecError(problems)
