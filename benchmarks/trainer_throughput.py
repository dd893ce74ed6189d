"""Trainer throughput: images/s, seconds per trial, and trials per GPU.

Starts `--trials-per-gpu N` copies of a trainer at once on one device (on a GPU they share it,
as Ray packs trials when `resources_per_trial.gpu` is fractional), each on a synthetic data set
with CIFAR-10's shapes (50,000 + 10,000 images of 32x32, so throughput is CIFAR-10's), reads
the trainers' per-epoch log lines and prints:

    images/s per trial      steady state: the epochs after the first (which pays for warm-up
                            and CUDA-graph capture)
    images/s together       the per-trial rates summed (all copies run at the same time)
    seconds per trial       process wall time (start-up included) and training time
    trials per GPU          N, and wall time / N: what a packed trial costs in GPU time

The flagship measurement (PyTorch trainer, ResNet-34, batch 1024, 50 epochs; target: one
trial <= 10 s, and >= 190k images/s per GPU with several trials):

    .venv/bin/python benchmarks/trainer_throughput.py --device gpu
    .venv/bin/python benchmarks/trainer_throughput.py --device gpu --trials-per-gpu 4

A tiny CPU run (seconds; checks the machinery, not the hardware):

    .venv/bin/python benchmarks/trainer_throughput.py --device cpu --tiny

Anything after `--` goes to the trainer (e.g. `-- --cuda_graphs false` for the eager baseline).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from models.synthetic_cifar import write_synthetic_cifar  # noqa: E402

TRAINER_MODULES = {"torch": "models.torch_cifar10", "mxnet": "models.mxnet_cifar10"}
DEFAULT_PYTHON = {"torch": Path(sys.executable), "mxnet": REPO / ".venv-mxnet" / "bin" / "python"}
EPOCH_LINE = re.compile(r"\[Epoch (\d+)\] .*time=([0-9.]+)s images/s=([0-9.]+)")
ACCURACY = re.compile(r"validation: accuracy=([0-9.]+)")
TINY = {"epochs": 2, "train_images": 512, "test_images": 128, "batch_size": 64}


@dataclass(frozen=True)
class TrialRun:
    """One trainer process: what it logged and how long it took."""

    wall_seconds: float
    train_seconds: float
    steady_images_per_second: float
    epochs: int
    final_accuracy: float


@dataclass(frozen=True)
class Summary:
    trainer: str
    device: str
    hardware: str
    model: str
    batch_size: int
    epochs: int
    train_images: int
    trials_per_gpu: int
    images_per_second_per_trial: float
    images_per_second_together: float
    seconds_per_trial_wall: float
    seconds_per_trial_training: float
    device_seconds_per_trial: float
    runs: list[TrialRun]


def parse_log(text: str, *, wall_seconds: float) -> TrialRun:
    """Per-epoch times and rates from a trainer log (the format both trainers print)."""
    epochs = [
        (int(m.group(1)), float(m.group(2)), float(m.group(3))) for m in EPOCH_LINE.finditer(text)
    ]
    if not epochs:
        raise RuntimeError(f"no epoch lines in the trainer's log:\n{text[-2000:]}")
    steady = epochs[1:] or epochs  # the first epoch includes warm-up and graph capture
    steady_images = sum(seconds * rate for _, seconds, rate in steady)
    steady_seconds = sum(seconds for _, seconds, _ in steady)
    return TrialRun(
        wall_seconds=wall_seconds,
        train_seconds=sum(seconds for _, seconds, _ in epochs),
        steady_images_per_second=steady_images / steady_seconds,
        epochs=len(epochs),
        final_accuracy=float(ACCURACY.findall(text)[-1]),
    )


def hardware_name(device: str) -> str:
    if device == "gpu" and shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader", "--id=0"]
        result = subprocess.run(query, capture_output=True, text=True, timeout=60)
        if result.returncode == 0:
            return result.stdout.strip()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} x {os.cpu_count()} CPUs"
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs"


def run_trials(
    *, argv: list[str], count: int, env: dict[str, str], log_dir: Path
) -> list[TrialRun]:
    """Start `count` copies of `argv` together; wait for all; parse each log."""
    processes = []
    for index in range(count):
        log = open(log_dir / f"trial-{index}.log", "w")  # noqa: SIM115 - closed below
        started = time.perf_counter()
        process = subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, text=True
        )
        processes.append((process, log, started))
    runs = []
    for index, (process, log, started) in enumerate(processes):
        status = process.wait()
        wall = time.perf_counter() - started
        log.close()
        text = (log_dir / f"trial-{index}.log").read_text()
        if status != 0:
            raise RuntimeError(f"trial {index} exited with {status}:\n{text[-3000:]}")
        runs.append(parse_log(text, wall_seconds=wall))
    return runs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  trainer_throughput.py --device gpu --trials-per-gpu 4\n"
        "  trainer_throughput.py --device cpu --tiny",
    )
    parser.add_argument("--trainer", choices=sorted(TRAINER_MODULES), default="torch")
    parser.add_argument("--device", choices=("gpu", "cpu"), default="gpu")
    parser.add_argument("--trials-per-gpu", type=int, default=1, help="copies run at once")
    parser.add_argument("--model", default=None, help="default resnet34_v2 (small_cnn if --tiny)")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--train-images", type=int, default=50_000)
    parser.add_argument("--test-images", type=int, default=10_000)
    parser.add_argument(
        "--tiny", action="store_true", help="a seconds-long smoke run: " + str(TINY)
    )
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="real data instead of synthetic"
    )
    parser.add_argument("--python", type=Path, default=None, help="the trainer's interpreter")
    parser.add_argument("--json", type=Path, default=None, help="also write the summary here")
    parser.add_argument("trainer_args", nargs="*", help="after --: passed to the trainer")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.trials_per_gpu < 1:
        print(f"error: --trials-per-gpu {args.trials_per_gpu}; must be >= 1", file=sys.stderr)
        return 2
    if args.tiny:
        for name, value in TINY.items():
            setattr(args, name, value)
    model = args.model or ("small_cnn" if args.tiny else "resnet34_v2")
    python = args.python or DEFAULT_PYTHON[args.trainer]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    env["SM_NUM_GPUS"] = "1" if args.device == "gpu" else "0"
    if args.device == "cpu":
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.trials_per_gpu)))

    with tempfile.TemporaryDirectory(prefix="trainer-throughput-") as scratch:
        data_dir = args.data_dir
        if data_dir is None:
            data_dir = Path(scratch) / "data"
            write_synthetic_cifar(
                dest=data_dir, train_images=args.train_images, test_images=args.test_images, seed=0
            )
        trainer_argv = [str(python), "-m", TRAINER_MODULES[args.trainer]]
        trainer_argv += ["--data-dir", str(data_dir), "--model", model]
        trainer_argv += ["--epochs", str(args.epochs), "--batch_size", str(args.batch_size)]
        trainer_argv += ["--learning_rate", "0.05", "--momentum", "0.9", "--wd", "0.0005"]
        trainer_argv += args.trainer_args
        print("running:", " ".join(trainer_argv), f"x {args.trials_per_gpu}", flush=True)
        runs = run_trials(
            argv=trainer_argv, count=args.trials_per_gpu, env=env, log_dir=Path(scratch)
        )

    count = len(runs)
    summary = Summary(
        trainer=args.trainer,
        device=args.device,
        hardware=hardware_name(args.device),
        model=model,
        batch_size=args.batch_size,
        epochs=args.epochs,
        train_images=args.train_images,
        trials_per_gpu=count,
        images_per_second_per_trial=sum(r.steady_images_per_second for r in runs) / count,
        images_per_second_together=sum(r.steady_images_per_second for r in runs),
        seconds_per_trial_wall=sum(r.wall_seconds for r in runs) / count,
        seconds_per_trial_training=sum(r.train_seconds for r in runs) / count,
        device_seconds_per_trial=max(r.wall_seconds for r in runs) / count,
        runs=runs,
    )
    print(f"hardware:             {summary.hardware} ({args.device})")
    print(
        f"trainer / model:      {args.trainer} / {model}, batch {args.batch_size}, "
        f"{args.epochs} epochs of {args.train_images} images"
    )
    print(f"trials per GPU:       {count}")
    print(f"images/s per trial:   {summary.images_per_second_per_trial:,.0f}")
    print(f"images/s together:    {summary.images_per_second_together:,.0f}")
    print(
        f"seconds per trial:    {summary.seconds_per_trial_wall:.1f} wall "
        f"({summary.seconds_per_trial_training:.1f} training)"
    )
    print(f"device-seconds/trial: {summary.device_seconds_per_trial:.1f} (wall / trials per GPU)")
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(summary), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
