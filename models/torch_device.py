"""The device side of the PyTorch trainer: precision, GPU share, backend settings, loss scaling,
graph capture and the out-of-memory report.

Kept apart from models/torch_cifar10.py so that the trainer reads top to bottom. Every choice
here is a function of a `Hardware` value that the caller may inject, so the CPU tests take the
branches a V100 or an H100 would take. Imports only PyTorch and the standard library.
"""

from __future__ import annotations

import enum
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import torch

#: Left outside a packed trial's memory fraction: the CUDA context and library handles live
#: outside PyTorch's caching allocator, which is all the fraction caps.
CONTEXT_ALLOWANCE = 0.05


class DeviceError(Exception):
    """A GPU setting that cannot be honoured; the message names the setting and the rule."""


class Precision(enum.Enum):
    """Compute precision. `auto`: bf16 autocast on compute capability >= 8.0 (Ampere, Hopper),
    fp16 autocast with loss scaling on 7.x (Volta, Turing: no bf16 tensor cores), fp32 below
    and on the CPU."""

    AUTO = "auto"
    BF16 = "bf16"
    FP16 = "fp16"
    FP32 = "fp32"


@dataclass(frozen=True)
class Hardware:
    """The training device as the choices below see it; tests inject a GPU's capability."""

    device: torch.device
    name: str
    capability: tuple[int, int] | None  # CUDA compute capability; None on the CPU
    total_memory: int | None  # bytes; None on the CPU


def probe_hardware(device: torch.device) -> Hardware:
    if device.type != "cuda":
        return Hardware(device=device, name="cpu", capability=None, total_memory=None)
    properties = torch.cuda.get_device_properties(device)
    return Hardware(
        device=device,
        name=properties.name,
        capability=(properties.major, properties.minor),
        total_memory=properties.total_memory,
    )


@dataclass(frozen=True)
class PrecisionChoice:
    precision: Precision  # never AUTO
    reason: str

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return {Precision.BF16: torch.bfloat16, Precision.FP16: torch.float16}.get(self.precision)

    @property
    def loss_scaling(self) -> bool:
        """fp16's narrow exponent underflows small gradients unless the loss is scaled up."""
        return self.precision is Precision.FP16

    @property
    def tf32(self) -> bool:
        """`fp32` means IEEE fp32: TF32 tensor-core maths only under the other choices."""
        return self.precision is not Precision.FP32


def choose_precision(requested: Precision, hardware: Hardware) -> PrecisionChoice:
    capability = hardware.capability
    where = (
        "the CPU" if capability is None else f"compute capability {capability[0]}.{capability[1]}"
    )
    if requested is not Precision.AUTO:
        reason = "requested"
        if requested is Precision.BF16 and capability is not None and capability < (8, 0):
            reason += f"; {where} has no bf16 tensor cores, so bf16 runs slowly here"
        return PrecisionChoice(precision=requested, reason=reason)
    if capability is None:
        return PrecisionChoice(precision=Precision.FP32, reason=f"auto: fp32 on {where}")
    if capability >= (8, 0):
        return PrecisionChoice(precision=Precision.BF16, reason=f"auto: bf16 on {where}")
    if capability >= (7, 0):
        return PrecisionChoice(
            precision=Precision.FP16,
            reason=f"auto: {where} has fp16 but no bf16 tensor cores; fp16 with loss scaling",
        )
    return PrecisionChoice(
        precision=Precision.FP32, reason=f"auto: {where} has no fp16 tensor cores"
    )


# --- how much of the GPU this trial holds ----------------------------------------------------


@dataclass(frozen=True)
class GpuShare:
    """The trial's GPUs: `share` is the exact amount (OPENAMT_NUM_GPUS, e.g. 0.25 when four
    trials are packed onto one GPU), `count` the devices it sees (SM_NUM_GPUS, rounded up)."""

    share: float

    @property
    def count(self) -> int:
        return math.ceil(self.share)

    @property
    def packed(self) -> bool:
        """Sharing one GPU with other trials."""
        return 0 < self.share < 1

    @property
    def memory_fraction(self) -> float | None:
        """The caching allocator's cap on the device, for a packed trial; None for whole GPUs."""
        return self.share * (1 - CONTEXT_ALLOWANCE) if self.packed else None


def parse_gpu_share(*, flag: str | None, environ: Mapping[str, str]) -> GpuShare:
    """`--num-gpus`, else OPENAMT_NUM_GPUS (the orchestrator's exact share), else SM_NUM_GPUS."""
    sm_text = environ.get("SM_NUM_GPUS", "").strip()
    exact_text = environ.get("OPENAMT_NUM_GPUS", "").strip()
    if flag is not None:
        return GpuShare(share=_gpu_amount("--num-gpus", flag))
    if exact_text:
        share = GpuShare(share=_gpu_amount("OPENAMT_NUM_GPUS", exact_text))
        if sm_text and _gpu_amount("SM_NUM_GPUS", sm_text) != share.count:
            raise DeviceError(
                f"SM_NUM_GPUS: {sm_text!r} disagrees with OPENAMT_NUM_GPUS={exact_text!r}; "
                f"must be that share rounded up ({share.count})"
            )
        return share
    return GpuShare(share=_gpu_amount("SM_NUM_GPUS", sm_text or "0"))


def _gpu_amount(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DeviceError(f"{name}: {text!r} is not a number") from None
    if not (value >= 0 and math.isfinite(value)):
        raise DeviceError(f"{name}: {text!r}; must be >= 0")
    if value > 1 and value != math.floor(value):
        raise DeviceError(f"{name}: {text!r}; more than one GPU must be a whole number")
    return value


# --- process-wide backend settings -----------------------------------------------------------


@dataclass(frozen=True)
class BackendPlan:
    """The process-wide backend settings for a trial, decided by `plan_backends`."""

    tf32: bool
    cudnn_benchmark: bool
    deterministic: bool
    memory_fraction: float | None  # of the device's memory, for the caching allocator

    def describe(self) -> str:
        fraction = "none" if self.memory_fraction is None else f"{self.memory_fraction:.4f}"
        return (
            f"tf32={self.tf32} cudnn_benchmark={self.cudnn_benchmark} "
            f"deterministic={self.deterministic} memory_fraction={fraction}"
        )


def plan_backends(
    *, hardware: Hardware, choice: PrecisionChoice, share: GpuShare, deterministic: bool
) -> BackendPlan:
    """TF32 only when the precision allows it; a packed trial's memory capped at its share.

    cuDNN's autotuner stays off for a packed trial: it times candidate kernels while the
    neighbours train (so it picks by their load) and tries workspace-hungry ones (memory spikes
    that fail under the cap). It stays off in deterministic mode, which needs fixed choices.
    """
    on_gpu = hardware.device.type == "cuda"
    return BackendPlan(
        tf32=choice.tf32 and on_gpu,
        cudnn_benchmark=on_gpu and not share.packed and not deterministic,
        deterministic=deterministic,
        memory_fraction=share.memory_fraction if on_gpu else None,
    )


def apply_backends(plan: BackendPlan, device: torch.device) -> None:
    """Set what `plan` says. The trainer owns its process, so these settings are its to make."""
    precision = "tf32" if plan.tf32 else "ieee"
    if hasattr(torch.backends, "fp32_precision"):  # PyTorch >= 2.9
        torch.backends.cuda.matmul.fp32_precision = precision
        torch.backends.cudnn.conv.fp32_precision = precision
    else:
        torch.backends.cuda.matmul.allow_tf32 = plan.tf32
        torch.backends.cudnn.allow_tf32 = plan.tf32
    if plan.deterministic:
        # cuBLAS reads this when its first handle is made: before any maths on the GPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        # warn_only: a few backward kernels (adaptive pooling) have no deterministic twin.
        # (This imports torch._inductor's config, and with it torch._dynamo: seconds of
        # start-up, paid only by deterministic runs.)
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = plan.cudnn_benchmark
    if plan.memory_fraction is not None:
        torch.cuda.set_per_process_memory_fraction(plan.memory_fraction, device)


# --- fp16 loss scaling, capturable -----------------------------------------------------------


class LossScaler:
    """Dynamic loss scaling with torch.amp.GradScaler's rule and defaults: start at 2**16,
    halve the scale and skip the step when a gradient overflows, double it after 2000 clean
    steps, using the same kernels.

    GradScaler asks the host whether a step overflowed, a sync that graph capture forbids. Here
    the answer stays on the device: `unscale_` returns `keep` (a 0-dim tensor, 0.0 after an
    overflow, else 1.0) and the optimizer multiplies its update by it.
    """

    def __init__(
        self,
        *,
        device: torch.device,
        init_scale: float = 2.0**16,
        growth_factor: float = 2.0,
        backoff_factor: float = 0.5,
        growth_interval: int = 2000,
    ) -> None:
        self.init_scale = init_scale
        self.growth_factor, self.backoff_factor = growth_factor, backoff_factor
        self.growth_interval = growth_interval
        self.scale = torch.full((), init_scale, dtype=torch.float32, device=device)
        self.found_inf = torch.zeros((), dtype=torch.float32, device=device)
        self._growth_tracker = torch.zeros((), dtype=torch.int32, device=device)

    def unscale_(self, grads: torch.Tensor, *, divide_by: int = 1) -> torch.Tensor:
        """Divide `grads` (flat, `p`) by the scale and `divide_by` in place; zero them if any is
        not finite. Returns `keep`."""
        self.found_inf.zero_()
        inverse = self.scale.double().reciprocal().float()  # as GradScaler computes it
        if divide_by != 1:
            inverse = inverse / divide_by
        torch._amp_foreach_non_finite_check_and_unscale_([grads], self.found_inf, inverse)
        grads.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
        return 1.0 - self.found_inf

    def update(self) -> None:
        torch._amp_update_scale_(
            self.scale,
            self._growth_tracker,
            self.found_inf,
            self.growth_factor,
            self.backoff_factor,
            self.growth_interval,
        )

    def reset(self) -> None:
        """Back to the initial scale, in place (a captured graph holds the tensors' addresses)."""
        self.scale.fill_(self.init_scale)
        self._growth_tracker.zero_()
        self.found_inf.zero_()


# --- graph capture ---------------------------------------------------------------------------


class Capture(Protocol):
    """How the trainer turns a step into something cheap to repeat.

    `warm_up(run)` runs `run` the way capture needs (CUDA: on a side stream, so cuDNN's first
    calls and autograd's set-up happen outside the graph); `capture(phase)` returns a callable
    that repeats `phase` on whatever its fixed buffers hold.
    """

    def warm_up(self, run: Callable[[], None]) -> None: ...

    def capture(self, phase: Callable[[], None]) -> Callable[[], None]: ...


class CudaGraphs:
    """Captures each phase as a CUDA graph; every graph of the trial draws from one memory pool.

    One pool, not one per graph: the train and eval graphs never run at the same time, and
    every tensor that outlives a replay (weights, gradients, counters) is allocated outside the
    graphs, so sharing is safe and a packed trial holds one pool's memory, not two.
    """

    def __init__(self) -> None:
        self.pool = torch.cuda.graph_pool_handle()
        self.graphs: list[torch.cuda.CUDAGraph] = []

    def warm_up(self, run: Callable[[], None]) -> None:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            run()
        torch.cuda.current_stream().wait_stream(side)

    def capture(self, phase: Callable[[], None]) -> Callable[[], None]:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            phase()
        self.graphs.append(graph)  # kept alive with the trial
        return graph.replay


class EagerCapture:
    """The CPU stand-in for CudaGraphs: warm-up runs as it would before a capture and the
    "captured" phase is the phase itself, so train()'s graph branch (snapshot, warm-up, eval
    warm-up, restore) runs where there is no GPU and can be compared with the plain run."""

    def __init__(self) -> None:
        self.captured: list[Callable[[], None]] = []

    def warm_up(self, run: Callable[[], None]) -> None:
        run()

    def capture(self, phase: Callable[[], None]) -> Callable[[], None]:
        self.captured.append(phase)
        return phase


# --- out of memory ---------------------------------------------------------------------------


def out_of_memory_line(exc: BaseException, *, where: str, share: GpuShare, batch: int) -> str:
    """One line for the last line of stderr; the orchestrator reads its words as the reason."""
    detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
    return (
        f"error: CUDA out of memory on {where} (GPU share {share.share:g}, batch_size {batch} "
        f"per device): {detail} -- give the trial a larger GPU share "
        "(resources_per_trial.gpu) or a smaller batch_size"
    )
