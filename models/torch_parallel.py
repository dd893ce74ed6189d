"""Data-parallel training over a trial's GPUs, the way MXNet's trainer does it, started by the
trainer itself; and the SIGTERM stop that a trial's end relies on.

One script-mode trial stays one process to the orchestrator: the trainer spawns one replica
process per GPU (`torch.multiprocessing`, spawn), supervises them and exits with their
outcome. Only replica 0 prints metric lines and writes the model. The semantics are MXNet's
with kvstore `device`: each replica trains on its own `batch_size` slice of a global batch of
`batch_size x replicas`, batch-norm statistics are per device (no SyncBatchNorm), and the
gradients are averaged over the global batch before one identical update on every replica.
NCCL between GPUs, gloo between CPU processes (the tests). Imports only PyTorch and the
standard library.
"""

from __future__ import annotations

import importlib
import multiprocessing.connection
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType

import torch
import torch.distributed as dist
import torch.multiprocessing

#: Exit status of a replica (and of the trainer) that ran out of GPU memory.
EXIT_OUT_OF_MEMORY = 3


class StopRequest:
    """Set by SIGTERM; the training loop looks at it between steps.

    The orchestrator ends a trial with SIGTERM, then SIGKILL after a grace period: the trainer
    finishes the step it is in, writes the best model, prints a footer and exits with SIGTERM's
    status (so a SIGTERM that the orchestrator did not send still reads as one).
    """

    def __init__(self) -> None:
        self.requested = False
        self.by_signal: signal.Signals | None = None

    def install(self) -> signal.Handlers | Callable[..., object] | int | None:
        """Handle SIGTERM from now on; returns the previous handler, for the caller to put back."""
        return signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        self.by_signal = signal.Signals(signum)


def die_by_signal(signum: signal.Signals) -> None:
    """Die of `signum` with its default action, as if it had never been caught, so whoever
    waits for this process sees the signal (after the trainer has written what it keeps)."""
    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    signal.pause()  # the default action ends the process


class Collective:
    """The collectives a data-parallel step needs. With one replica each is a no-op, so the
    training code has one path; with several, every replica must make the same calls in the
    same order (they do: the step count, the evaluation and the best-epoch test agree)."""

    def __init__(self, *, rank: int = 0, world_size: int = 1, device: torch.device) -> None:
        self.rank, self.world_size = rank, world_size
        self._flag = torch.zeros(1, dtype=torch.float32, device=device)

    @property
    def parallel(self) -> bool:
        return self.world_size > 1

    def sum_(self, tensor: torch.Tensor) -> None:
        if self.parallel:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)

    def average_(self, tensor: torch.Tensor) -> None:
        if self.parallel:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
            tensor.div_(self.world_size)

    def any(self, flag: bool) -> bool:
        """True on every replica if it is true on any (the stop vote: all stop at one step)."""
        if not self.parallel:
            return flag
        self._flag.fill_(float(flag))
        dist.all_reduce(self._flag, op=dist.ReduceOp.MAX)
        return bool(self._flag.item())


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def join_group(*, rank: int, world_size: int, device: torch.device, rendezvous: str) -> Collective:
    """Join the replicas' process group (a file rendezvous: one node, no port to pick)."""
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(
        backend_for(device), init_method=rendezvous, rank=rank, world_size=world_size
    )
    return Collective(rank=rank, world_size=world_size, device=device)


def leave_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


# --- the supervising parent ------------------------------------------------------------------


@dataclass(frozen=True)
class ReplicasOutcome:
    """How the replicas ended: `exit_codes[rank]` as multiprocessing reports them (negative:
    killed by that signal); `failed` is the first replica that failed, if any."""

    exit_codes: tuple[int, ...]
    failed: int | None
    stopped: bool

    @property
    def out_of_memory(self) -> bool:
        return self.failed is not None and self.exit_codes[self.failed] == EXIT_OUT_OF_MEMORY


def run_replicas(
    *, target: str, world_size: int, argv: Sequence[str], started_at: float | None
) -> ReplicasOutcome:
    """Start `world_size` replicas of `target` ("module:function", called as
    `function(rank, world_size, rendezvous, argv, started_at)` and returning an exit status),
    wait for all of them, and forward SIGTERM to them.

    When one fails, the others are killed at once: they would wait for it in a collective (on
    a GPU, in a spin the host cannot interrupt), and a failed trial's checkpoint is not used.
    """
    # One node: loopback is the right interface for gloo's and NCCL's bootstrap sockets.
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    os.environ.setdefault("NCCL_SOCKET_IFNAME", "lo")
    context = torch.multiprocessing.get_context("spawn")
    stop = StopRequest()
    processes: list[multiprocessing.process.BaseProcess] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        stop.requested = True
        for process in processes:
            if process.pid is not None and process.exitcode is None:
                os.kill(process.pid, signum)

    previous = signal.signal(signal.SIGTERM, forward)
    failed: int | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="openamt-replicas-") as scratch:
            rendezvous = f"file://{scratch}/rendezvous"
            for rank in range(world_size):
                process = context.Process(
                    target=_replica_entry,
                    args=(target, rank, world_size, rendezvous, list(argv), started_at),
                    name=f"replica-{rank}",
                )
                process.start()
                processes.append(process)
            if stop.requested:  # a SIGTERM while they started: the later ones have it too
                forward(signal.SIGTERM, None)
            waiting = dict(enumerate(processes))
            while waiting:
                ready = multiprocessing.connection.wait([p.sentinel for p in waiting.values()])
                for rank, process in list(waiting.items()):
                    if process.sentinel not in ready:
                        continue
                    process.join()  # its sentinel closes as it exits; join reaps it
                    del waiting[rank]
                    ended_well = process.exitcode in (0, -signal.SIGTERM)
                    if not ended_well and failed is None:
                        failed = rank
                        for other in waiting.values():
                            other.kill()
    finally:
        for process in processes:
            if process.exitcode is None:
                process.kill()
            process.join()
        signal.signal(signal.SIGTERM, previous)
    codes = tuple(p.exitcode if p.exitcode is not None else -signal.SIGKILL for p in processes)
    stopped = stop.requested or -signal.SIGTERM in codes
    return ReplicasOutcome(exit_codes=codes, failed=failed, stopped=stopped)


def _replica_entry(
    target: str,
    rank: int,
    world_size: int,
    rendezvous: str,
    argv: list[str],
    started_at: float | None,
) -> None:
    module_name, function_name = target.split(":")
    function = getattr(importlib.import_module(module_name), function_name)
    sys.exit(function(rank, world_size, rendezvous, argv, started_at))
