"""What an `instance_type` reserves for one trial: SageMaker's instance types, and one's own.

On SageMaker a training job gets a whole instance; here a trial of that type reserves the
instance's vCPUs and GPUs on one Ray node (`resources_per_trial`), so a p3.8xlarge trial takes a
whole p3.8xlarge node, as on SageMaker, and two fit on a node with twice that. Before any trial
starts the job checks that some node can hold one (else it stops with the numbers). The GPU
model and memory are recorded with the job and shown in errors; Ray schedules trials by CPUs and
GPUs, so a trial runs on whichever GPU model the node has.

`local` and `local_gpu` are SageMaker's local mode: this machine, one CPU (and one GPU).

On-premises node types: a YAML file named by `OPENAMT_INSTANCE_TYPES` adds (or overrides)
types, e.g.

    dgx-a100:       {vcpus: 128, memory_gib: 1024, gpus: 8, gpu_model: A100}
    ml.p3.8xlarge:  {vcpus: 32, memory_gib: 244, gpus: 4, gpu_model: V100}   # a node of ours
    cpu-box:        {vcpus: 16, memory_gib: 64}
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import SpecError, SpecProblem

FILE_VARIABLE = "OPENAMT_INSTANCE_TYPES"
LOCAL_TYPES = ("local", "local_gpu")


@dataclass(frozen=True)
class InstanceType:
    """One instance type: what a trial of it reserves, and what it is."""

    name: str
    vcpus: float
    memory_gib: float
    gpus: int = 0
    gpu_model: str | None = None

    @property
    def resources_per_trial(self) -> dict[str, float]:
        """The job spec's `resources_per_trial` for one trial of this type."""
        return {"cpu": self.vcpus, "gpu": float(self.gpus)}

    def describe(self) -> str:
        gpus = f"{self.gpus} {self.gpu_model or ''} GPU{'s' if self.gpus != 1 else ''}, "
        return f"{gpus if self.gpus else ''}{self.vcpus:g} vCPUs, {self.memory_gib:g} GiB"

    def to_record(self) -> dict[str, Any]:
        """The type as the job records it."""
        return {
            "name": self.name,
            "vcpus": self.vcpus,
            "memory_gib": self.memory_gib,
            "gpus": self.gpus,
            "gpu_model": self.gpu_model,
        }


def _types(gpu_model: str | None, rows: dict[str, tuple[float, float, int]]) -> dict[str, Any]:
    return {
        name: InstanceType(
            name=name, vcpus=vcpus, memory_gib=memory, gpus=gpus, gpu_model=gpu_model
        )
        for name, (vcpus, memory, gpus) in rows.items()
    }


#: SageMaker's training instance types: (vCPUs, memory GiB, GPUs), from AWS's published specs.
SAGEMAKER_TYPES: dict[str, InstanceType] = {
    **_types("K80", {"ml.p2.xlarge": (4, 61, 1), "ml.p2.8xlarge": (32, 488, 8),
                     "ml.p2.16xlarge": (64, 732, 16)}),
    **_types("V100", {"ml.p3.2xlarge": (8, 61, 1), "ml.p3.8xlarge": (32, 244, 4),
                      "ml.p3.16xlarge": (64, 488, 8), "ml.p3dn.24xlarge": (96, 768, 8)}),
    **_types("T4", {"ml.g4dn.xlarge": (4, 16, 1), "ml.g4dn.2xlarge": (8, 32, 1),
                    "ml.g4dn.4xlarge": (16, 64, 1), "ml.g4dn.8xlarge": (32, 128, 1),
                    "ml.g4dn.12xlarge": (48, 192, 4), "ml.g4dn.16xlarge": (64, 256, 1)}),
    **_types("A10G", {"ml.g5.xlarge": (4, 16, 1), "ml.g5.2xlarge": (8, 32, 1),
                      "ml.g5.4xlarge": (16, 64, 1), "ml.g5.8xlarge": (32, 128, 1),
                      "ml.g5.12xlarge": (48, 192, 4), "ml.g5.16xlarge": (64, 256, 1),
                      "ml.g5.24xlarge": (96, 384, 4), "ml.g5.48xlarge": (192, 768, 8)}),
    **_types("A100", {"ml.p4d.24xlarge": (96, 1152, 8)}),
    **_types("H100", {"ml.p5.48xlarge": (192, 2048, 8)}),
    **_types(None, {"ml.m5.large": (2, 8, 0), "ml.m5.xlarge": (4, 16, 0),
                    "ml.m5.2xlarge": (8, 32, 0), "ml.m5.4xlarge": (16, 64, 0),
                    "ml.m5.12xlarge": (48, 192, 0), "ml.m5.24xlarge": (96, 384, 0),
                    "ml.c5.xlarge": (4, 8, 0), "ml.c5.2xlarge": (8, 16, 0),
                    "ml.c5.4xlarge": (16, 32, 0), "ml.c5.9xlarge": (36, 72, 0),
                    "ml.c5.18xlarge": (72, 144, 0)}),
}  # fmt: skip
#: SageMaker's local mode: this machine (memory unknown: 0).
LOCAL: dict[str, InstanceType] = {
    "local": InstanceType(name="local", vcpus=1, memory_gib=0),
    "local_gpu": InstanceType(name="local_gpu", vcpus=1, memory_gib=0, gpus=1),
}


def instance_type(name: object, *, field: str = "instance_type") -> InstanceType:
    """The type named `name`: the user's file first, then SageMaker's table, then local mode.
    A clear error, with the closest known names, for anything else."""
    known = known_types()
    if isinstance(name, str) and name in known:
        return known[name]
    close = difflib.get_close_matches(str(name), list(known), n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    rule = (
        f"unknown instance type{hint}; known are SageMaker's ml.p2/p3/p3dn/g4dn/g5/p4d/p5/m5/c5 "
        f"types, local and local_gpu, and the node types in the YAML file named by {FILE_VARIABLE}"
    )
    raise SpecError([SpecProblem(field, name, rule)])


def known_types() -> dict[str, InstanceType]:
    """Every type by name: the file named by `OPENAMT_INSTANCE_TYPES` overrides the tables."""
    return {**SAGEMAKER_TYPES, **LOCAL, **_user_types()}


def _user_types() -> dict[str, InstanceType]:
    path_text = os.environ.get(FILE_VARIABLE)
    if not path_text:
        return {}
    path = Path(os.path.expanduser(path_text))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise SpecError(
            [SpecProblem(FILE_VARIABLE, path_text, f"cannot be read as YAML: {error}")]
        ) from None
    if not isinstance(data, dict):
        raise SpecError(
            [SpecProblem(FILE_VARIABLE, path_text, "must hold a mapping of type name -> specs")]
        )
    problems: list[SpecProblem] = []
    types = {}
    for name, specs in data.items():
        parsed = _user_type(str(name), specs, f"{path_text}: {name}", problems)
        if parsed is not None:
            types[str(name)] = parsed
    if problems:
        raise SpecError(problems)
    return types


def _user_type(
    name: str, specs: Any, where: str, problems: list[SpecProblem]
) -> InstanceType | None:
    rule = "{vcpus: N, memory_gib: N, gpus: N (default 0), gpu_model: NAME (optional)}"
    if not isinstance(specs, dict) or set(specs) - {"vcpus", "memory_gib", "gpus", "gpu_model"}:
        problems.append(SpecProblem(where, specs, f"must be a mapping {rule}"))
        return None
    before = len(problems)
    for key, minimum in (("vcpus", 0), ("memory_gib", 0), ("gpus", -1)):
        value = specs.get(key, 0 if key == "gpus" else None)
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or value <= minimum or (key == "gpus" and value != int(value)):
            wanted = "a whole number >= 0" if key == "gpus" else "a number > 0"
            problems.append(SpecProblem(f"{where}.{key}", value, f"must be {wanted}; {rule}"))
    model = specs.get("gpu_model")
    if model is not None and not isinstance(model, str):
        problems.append(SpecProblem(f"{where}.gpu_model", model, "must be a name such as A100"))
    if len(problems) > before:
        return None
    return InstanceType(
        name=name,
        vcpus=float(specs["vcpus"]),
        memory_gib=float(specs["memory_gib"]),
        gpus=int(specs.get("gpus", 0)),
        gpu_model=model,
    )
