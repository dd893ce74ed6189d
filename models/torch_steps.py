"""The training step of models/torch_cifar10.py, built to be captured as a CUDA graph: a flat
SGD, the step and evaluation step on fixed buffers, the phases a data-parallel step splits
into, and the warm-up, capture and restore that precede training.

Imports only PyTorch and the standard library.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from models.torch_device import Capture, LossScaler
from models.torch_parallel import Collective

WARMUP_STEPS = 3  # eager steps before capture: cuDNN picks algorithms, autograd sets itself up


class SGD:
    """SGD with momentum and coupled weight decay, the update MXNet's and torch.optim's SGD make
    at a constant learning rate: `v = momentum * v + (g + wd * w)`, `w -= lr * v`.

    The network's parameters and their gradients become views into two flat buffers, `weights`
    and `grads` (`p` elements each, the parameters' layouts kept), so an update, an overflow
    check or an all-reduce is one kernel over one buffer, not one per tensor. Capturable by
    construction: every buffer exists from the start and every update is in place, so a CUDA
    graph of the step keeps updating the same memory. (torch.optim.SGD makes its buffers
    lazily and imports torch._dynamo, seconds per trial.)
    """

    def __init__(self, *, net: nn.Module, lr: float, momentum: float, wd: float) -> None:
        params = [p for p in net.parameters() if p.requires_grad]
        total = sum(p.numel() for p in params)
        self.weights = torch.empty(total, dtype=params[0].dtype, device=params[0].device)
        self.grads = torch.zeros_like(self.weights)
        offset = 0
        with torch.no_grad():
            for p in params:
                view = self.weights.as_strided(p.shape, p.stride(), offset)
                view.copy_(p)
                p.data = view
                p.grad = self.grads.as_strided(p.shape, p.stride(), offset)
                offset += p.numel()
        self.lr, self.momentum, self.wd = lr, momentum, wd
        self.velocity = torch.zeros_like(self.weights) if momentum else None

    def zero_grad(self) -> None:
        """Zero the gradients in place; backward then accumulates into the flat buffer."""
        self.grads.zero_()

    @torch.no_grad()
    def step(self, keep: torch.Tensor | None = None) -> None:
        """One update from `grads`; with `keep` (0-dim, 0.0 or 1.0: loss scaling's verdict)
        a step whose gradients overflowed changes nothing, without asking the host."""
        update = self.grads
        if self.wd:
            update.add_(self.weights, alpha=self.wd)
        if keep is not None:
            update.mul_(keep)  # all zero after an overflow (the scaler zeroed what was not finite)
        if self.velocity is not None:
            decay = self.momentum if keep is None else torch.where(keep > 0, self.momentum, 1.0)
            self.velocity.mul_(decay).add_(update)
            update = self.velocity
        if keep is None:
            self.weights.add_(update, alpha=-self.lr)
        else:
            self.weights.addcmul_(update, keep, value=-self.lr)

    def reset(self) -> None:
        """Momentum back to zero, in place (a captured graph holds the buffers' addresses)."""
        if self.velocity is not None:
            self.velocity.zero_()


class TrainStep:
    """One SGD step reading fixed buffers: `images` (`batch_shape`, `b x 3 x h x w` uint8) and
    `labels` (`b`), adding to `correct` and `loss_sum` on the device.

    Fixed buffers and device-side counters are what make the step capturable as a CUDA graph:
    the graph replays with whatever the buffers hold and never syncs with the host. Eager mode
    (the CPU) calls the very same functions once per batch. With several replicas the step is
    two phases, `compute_gradients` and `apply_update`, with the gradients' all-reduce between
    them; the update then divides by the replica count, so the gradient is the global batch's
    mean.
    """

    def __init__(
        self,
        *,
        net: nn.Module,
        optimizer: SGD,
        scaler: LossScaler | None,
        replicas: int,
        batch_shape: tuple[int, ...],
        mean: torch.Tensor,
        std: torch.Tensor,
        autocast_dtype: torch.dtype | None,
        memory_format: torch.memory_format,
    ) -> None:
        device = mean.device
        self.net, self.optimizer, self.scaler = net, optimizer, scaler
        self.replicas = replicas
        self.mean, self.std = mean, std
        self.autocast_dtype = autocast_dtype
        self.images = torch.zeros(batch_shape, dtype=torch.uint8, device=device).to(
            memory_format=memory_format
        )
        self.labels = torch.zeros(batch_shape[0], dtype=torch.int64, device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.loss_sum = torch.zeros((), dtype=torch.float32, device=device)

    def compute_gradients(self) -> None:
        self.optimizer.zero_grad()
        logits = forward(self.net, self.images, self.mean, self.std, self.autocast_dtype)
        loss = F.cross_entropy(logits, self.labels)
        (loss if self.scaler is None else loss * self.scaler.scale).backward()
        with torch.no_grad():
            self.correct += (logits.argmax(dim=1) == self.labels).sum()
            self.loss_sum += loss.detach() * len(self.labels)

    def apply_update(self) -> None:
        if self.scaler is not None:
            keep = self.scaler.unscale_(self.optimizer.grads, divide_by=self.replicas)
            self.optimizer.step(keep)
            self.scaler.update()
            return
        if self.replicas > 1:
            self.optimizer.grads.div_(self.replicas)
        self.optimizer.step()

    def __call__(self) -> None:
        self.compute_gradients()
        self.apply_update()


Phase = tuple[Callable[[], None], bool]  # a part of a step, and whether it may be captured


def step_phases(step: TrainStep, collective: Collective) -> list[Phase]:
    """The step as captured: whole with one replica; with several, the all-reduce stays out of
    the graphs (eager NCCL between two graphs: no collective inside a capture)."""
    if not collective.parallel:
        return [(step, True)]
    reduce = (lambda: collective.sum_(step.optimizer.grads), False)
    return [(step.compute_gradients, True), reduce, (step.apply_update, True)]


def compose(phases: Sequence[Phase], capture: Capture | None) -> Callable[[], None]:
    runs = [capture.capture(run) if capture and capturable else run for run, capturable in phases]
    if len(runs) == 1:
        return runs[0]

    def run_all() -> None:
        for run in runs:
            run()

    return run_all


class EvalStep:
    """Forward pass on fixed buffers counting correct predictions; padding rows carry label -1,
    which no prediction matches, so the last partial batch needs no special case."""

    def __init__(
        self,
        *,
        net: nn.Module,
        batch_shape: tuple[int, ...],
        mean: torch.Tensor,
        std: torch.Tensor,
        autocast_dtype: torch.dtype | None,
        memory_format: torch.memory_format,
    ) -> None:
        device = mean.device
        self.net, self.mean, self.std = net, mean, std
        self.autocast_dtype = autocast_dtype
        self.images = torch.zeros(batch_shape, dtype=torch.uint8, device=device).to(
            memory_format=memory_format
        )
        self.labels = torch.full((batch_shape[0],), -1, dtype=torch.int64, device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)

    def __call__(self) -> None:
        with torch.no_grad():
            logits = forward(self.net, self.images, self.mean, self.std, self.autocast_dtype)
            self.correct += (logits.argmax(dim=1) == self.labels).sum()


def forward(
    net: nn.Module,
    images: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    autocast_dtype: torch.dtype | None,
) -> torch.Tensor:
    """Normalise uint8 images and run the network; logits `b x classes` in float32."""
    x = (images.float() - mean) / std
    if autocast_dtype is None:
        return net(x)
    # cache_enabled=False: autocast's weight-cast cache would hold tensors made during capture.
    with torch.autocast(device_type=x.device.type, dtype=autocast_dtype, cache_enabled=False):
        logits = net(x)
    return logits.float()


def snapshot(net: nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in net.state_dict().items()}


def restore(
    net: nn.Module, optimizer: SGD, scaler: LossScaler | None, saved: dict[str, torch.Tensor]
) -> None:
    """Undo warm-up steps in place (a captured graph holds the tensors' addresses): weights and
    BN statistics back to `saved`, momentum to zero, the loss scale to its start."""
    with torch.no_grad():
        for name, value in net.state_dict().items():
            value.copy_(saved[name])
    optimizer.reset()
    if scaler is not None:
        scaler.reset()


def capture_steps(
    *,
    capture: Capture,
    phases: Sequence[Phase],
    step: TrainStep,
    eval_step: EvalStep,
    net: nn.Module,
    first_images: torch.Tensor,
    first_labels: torch.Tensor,
) -> tuple[Callable[[], None], Callable[[], None]]:
    """Warm up, capture the training and evaluation steps, then undo the warm-up: training
    starts from the same state as without graphs (the CPU tests check it bit for bit).

    Warm-up first because capture forbids what first calls do: cuDNN's algorithm search and
    workspace allocation, autograd's first-time set-up. The warm-up trains on `first_images`
    (`b x 3 x h x w` uint8) and `first_labels` (`b`).
    """
    initial = snapshot(net)
    step.images.copy_(first_images)
    step.labels.copy_(first_labels)
    eager = compose(phases, None)

    def warm_train() -> None:
        for _ in range(WARMUP_STEPS):
            eager()

    capture.warm_up(warm_train)
    run_train = compose(phases, capture)
    net.eval()
    capture.warm_up(eval_step)
    run_eval = capture.capture(eval_step)
    net.train()
    restore(net, step.optimizer, step.scaler, initial)
    return run_train, run_eval
