"""The trial around the PyTorch trainer's training loop: the best weights kept on the device
and written once, and where the trial's time went (its `timing:` footer).

Imports only PyTorch and the standard library.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from models.torch_parallel import Collective
from models.torch_steps import snapshot

# --- checkpoints -----------------------------------------------------------------------------


class BestWeights:
    """The best epoch's weights and batch-norm statistics, kept as a copy on the training
    device: an improvement costs one device-to-device copy instead of an 85 MB file written
    while training waits. Written once, at the end or when stopped. With several replicas the
    copy's batch-norm statistics are the replicas' average (what Gluon saves from several
    devices); the weights are identical on every replica."""

    def __init__(self, net: nn.Module) -> None:
        self.tensors = snapshot(net)
        self._averaged = [name for name, value in net.named_buffers() if value.is_floating_point()]
        self.epoch: int | None = None
        self.accuracy: float | None = None

    @torch.no_grad()
    def keep(self, net: nn.Module, *, epoch: int, accuracy: float, collective: Collective) -> None:
        for name, value in net.state_dict().items():
            self.tensors[name].copy_(value)
        for name in self._averaged:
            collective.average_(self.tensors[name])
        self.epoch, self.accuracy = epoch, accuracy

    def write(self, *, model_dir: Path, description: dict[str, object]) -> None:
        """The weights (contiguous, on the CPU) plus what rebuilding the network needs, each
        renamed into place."""
        model_dir.mkdir(parents=True, exist_ok=True)
        weights = model_dir / "model.pt"
        state = {
            name: value.to("cpu", memory_format=torch.contiguous_format, copy=True)
            for name, value in self.tensors.items()
        }
        torch.save(state, str(weights) + ".tmp")
        os.replace(str(weights) + ".tmp", weights)
        info = model_dir / "model-info.json"
        info.with_suffix(".tmp").write_text(json.dumps(description, indent=2) + "\n")
        os.replace(info.with_suffix(".tmp"), info)


# --- where the time went --------------------------------------------------------------------


@dataclass
class Timings:
    """Where the trial's wall time went, in seconds: the footer's `timing:` line, which
    benchmarks/trainer_throughput.py reads. Epoch bounds are Unix times, comparable between
    trials running side by side; an epoch ends after its evaluation."""

    startup: float = 0.0  # process start to ready to load: interpreter, imports, device set-up
    data: float = 0.0  # reading the data set and copying it to the device
    capture: float = 0.0  # network, optimizer, warm-up and graph capture
    train: float = 0.0
    evaluate: float = 0.0
    save: float = 0.0  # keeping the best weights on the device, then writing them
    images: int = 0  # trained, all epochs and replicas
    first_epoch_start: float | None = None
    last_epoch_end: float | None = None

    def line(self) -> str:
        rounded = {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}
        return "timing: " + json.dumps(rounded)


class Lap:
    """Seconds since the previous lap; on a GPU, once the device has finished its work."""

    def __init__(self) -> None:
        self._last = time.perf_counter()

    def take(self, device: torch.device | None = None) -> float:
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)
        now = time.perf_counter()
        seconds, self._last = now - self._last, now
        return seconds


def process_started_at() -> float | None:
    """This process's start as a Unix time (to ~10 ms), from /proc; None where there is none."""
    try:
        stat = Path("/proc/self/stat").read_text()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except OSError:
        return None
    ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22, starttime
    return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
