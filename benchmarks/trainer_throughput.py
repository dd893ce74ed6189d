"""Trainer throughput: images/s together and per trial, seconds per trial and where they go.

Starts `--trials-per-gpu N` copies of a trainer at once on one device. On a GPU they share it
the way Ray packs trials with a fractional `resources_per_trial.gpu`: each gets the
environment the orchestrator would give it (`SM_NUM_GPUS=1`, `OPENAMT_NUM_GPUS=1/N`) and its
own model directory, like a real trial. The data set is synthetic with CIFAR-10's shapes
(50,000 + 10,000 images of 32x32, so throughput is CIFAR-10's). It prints:

    images/s together     all trials' training images over the span from the first epoch's
                          start to the last epoch's end (over all trials): evaluation and the
                          gaps between epochs count against it, start-up does not
    images/s per trial    steady state: each trial's epochs after the first, averaged
    seconds per trial     each process's wall time from its own start and exit, and where it
                          went (the PyTorch trainer's `timing:` footer): start-up, data to
                          device, warm-up and capture, training, evaluation, saving
    device-seconds/trial  wall time from the first start to the last exit, / N

The MXNet trainer prints no footer: its epoch bounds come from when its epoch lines arrive
(an epoch's start is its line's arrival less its `time=`, so its evaluation is counted in the
gap before the next epoch), and it has no breakdown.

The flagship measurement (PyTorch trainer, ResNet-34, batch 1024, 50 epochs; targets: one
trial <= 10 s with start-up, >= 190k images/s together with several trials on one GPU):

    .venv/bin/python benchmarks/trainer_throughput.py --device gpu
    .venv/bin/python benchmarks/trainer_throughput.py --device gpu --trials-per-gpu 4

A tiny CPU run (seconds; checks the machinery, not the hardware):

    .venv/bin/python benchmarks/trainer_throughput.py --device cpu --tiny

Anything after `--` goes to the trainer (e.g. `-- --cuda_graphs false` for the eager baseline).
Imports only the standard library (and the repository's stdlib-only synthetic data writer).
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
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from models.synthetic_cifar import write_synthetic_cifar  # noqa: E402

TRAINER_MODULES = {"torch": "models.torch_cifar10", "mxnet": "models.mxnet_cifar10"}
DEFAULT_PYTHON = {"torch": Path(sys.executable), "mxnet": REPO / ".venv-mxnet" / "bin" / "python"}
EPOCH_LINE = re.compile(r"\[Epoch (\d+)\] .*time=([0-9.]+)s images/s=([0-9.]+)")
ACCURACY = re.compile(r"validation: accuracy=([0-9.]+)")
TIMING_LINE = re.compile(r"^timing: (\{.*\})$", re.MULTILINE)
BREAKDOWN = ("startup", "data", "capture", "train", "evaluate", "save")
TINY = {"epochs": 2, "train_images": 512, "test_images": 128, "batch_size": 64}


@dataclass(frozen=True)
class TrialRun:
    """One trainer process: what it logged and how long it took (bounds are Unix times)."""

    wall_seconds: float  # from its start to its exit, by its own two timestamps
    train_seconds: float
    steady_images_per_second: float
    epochs: int
    images: int
    final_accuracy: float
    first_epoch_start: float
    last_epoch_end: float
    breakdown: dict[str, float] | None  # seconds per phase, from the trainer's footer
    model_dir: str | None = None


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
    gpu_share: float | None
    images_per_second_together: float
    images_per_second_per_trial: float
    together_span_seconds: float
    seconds_per_trial_wall: float
    seconds_per_trial_training: float
    device_seconds_per_trial: float
    breakdown_per_trial: dict[str, float] | None
    runs: list[TrialRun] = field(default_factory=list)


@dataclass
class _Process:
    """A running trainer whose output is read as it comes, each line stamped on arrival."""

    process: subprocess.Popen[str]
    started: float
    log_path: Path
    lines: list[tuple[float, str]] = field(default_factory=list)
    ended: float | None = None

    def pump(self) -> None:
        assert self.process.stdout is not None
        with open(self.log_path, "w") as log:
            for line in self.process.stdout:
                self.lines.append((time.time(), line))
                log.write(line)
        self.process.wait()
        self.ended = time.time()


def parse_log(lines: Sequence[tuple[float, str]], *, wall_seconds: float) -> TrialRun:
    """A trial's numbers from its log lines (each with its arrival time, Unix seconds)."""
    text = "".join(line for _, line in lines)
    epochs = []
    for arrived, line in lines:
        match = EPOCH_LINE.search(line)
        if match:
            seconds, rate = float(match.group(2)), float(match.group(3))
            epochs.append((arrived, seconds, rate))
    if not epochs:
        raise RuntimeError(f"no epoch lines in the trainer's log:\n{text[-2000:]}")
    steady = epochs[1:] or epochs  # the first epoch includes warm-up (MXNet: its set-up)
    steady_images = sum(seconds * rate for _, seconds, rate in steady)
    steady_seconds = sum(seconds for _, seconds, _ in steady)
    images = round(sum(seconds * rate for _, seconds, rate in epochs))
    first_start = epochs[0][0] - epochs[0][1]
    last_end = epochs[-1][0]
    breakdown = None
    timing = TIMING_LINE.findall(text)
    if timing:
        footer = json.loads(timing[-1])
        breakdown = {name: float(footer[name]) for name in BREAKDOWN}
        images = int(footer["images"])
        first_start, last_end = footer["first_epoch_start"], footer["last_epoch_end"]
    return TrialRun(
        wall_seconds=wall_seconds,
        train_seconds=sum(seconds for _, seconds, _ in epochs),
        steady_images_per_second=steady_images / steady_seconds,
        epochs=len(epochs),
        images=images,
        final_accuracy=float(ACCURACY.findall(text)[-1]),
        first_epoch_start=first_start,
        last_epoch_end=last_end,
        breakdown=breakdown,
    )


def run_trials(
    *,
    argvs: Sequence[Sequence[str]],
    env: Mapping[str, str],
    log_dir: Path,
    deadline: float | None = None,
) -> tuple[list[TrialRun], float]:
    """Start one trainer per argv, all at once, each with its own model directory under
    `log_dir`; wait for all (killing them at `deadline`, a time.monotonic() value); parse each
    log. Returns the runs and the span from the first start to the last exit."""
    running = []
    for index, argv in enumerate(argvs):
        model_dir = log_dir / f"model-{index}"
        started = time.time()
        process = subprocess.Popen(
            [*argv, "--model-dir", str(model_dir)],
            cwd=REPO,
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        log_path = log_dir / f"{index}.log"
        running.append(_Process(process=process, started=started, log_path=log_path))
    pumps = [threading.Thread(target=trial.pump, daemon=True) for trial in running]
    for pump in pumps:
        pump.start()
    for pump in pumps:
        pump.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if pump.is_alive():
            for trial in running:
                trial.process.kill()
            raise TimeoutError(f"trainers still running at the deadline; logs in {log_dir}")
    runs = []
    for index, trial in enumerate(running):
        if trial.process.returncode != 0:
            tail = "".join(line for _, line in trial.lines)[-3000:]
            raise RuntimeError(f"trial {index} exited with {trial.process.returncode}:\n{tail}")
        assert trial.ended is not None
        run = parse_log(trial.lines, wall_seconds=trial.ended - trial.started)
        runs.append(replace(run, model_dir=str(log_dir / f"model-{index}")))
    span = max(t.ended for t in running if t.ended) - min(t.started for t in running)
    return runs, span


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


def trainer_environment(
    *, device: str, trials: int, gpu_share: float | None, extra: Mapping[str, str]
) -> tuple[dict[str, str], float | None]:
    """The environment a trial gets from the orchestrator, packed `trials` to a GPU."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "OPENAMT_"))}
    share = None
    if device == "gpu":
        share = gpu_share if gpu_share is not None else 1 / trials
        env |= {"SM_NUM_GPUS": "1", "OPENAMT_NUM_GPUS": f"{share:.6g}"}
    else:
        env["SM_NUM_GPUS"] = "0"
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // trials)))
    return env | dict(extra), share


def trainer_argv(
    *,
    trainer: str,
    python: Path | None,
    data_dir: Path,
    model: str,
    epochs: int,
    batch_size: int,
    extra: Sequence[str] = (),
) -> list[str]:
    """The trainer's command line, with the benchmark's fixed hyperparameters."""
    argv = [str(python or DEFAULT_PYTHON[trainer]), "-m", TRAINER_MODULES[trainer]]
    argv += ["--data-dir", str(data_dir), "--model", model]
    argv += ["--epochs", str(epochs), "--batch_size", str(batch_size)]
    return argv + ["--learning_rate", "0.05", "--momentum", "0.9", "--wd", "0.0005", *extra]


def measure(
    *,
    trainer: str = "torch",
    device: str,
    trials: int,
    model: str,
    epochs: int,
    batch_size: int,
    train_images: int,
    test_images: int,
    scratch: Path,
    data_dir: Path | None = None,
    python: Path | None = None,
    trainer_args: Sequence[str] = (),
    gpu_share: float | None = None,
    extra_env: Mapping[str, str] | None = None,
    deadline: float | None = None,
) -> Summary:
    """Run `trials` trainers at once (logs and model directories under `scratch`)."""
    if trials < 1:
        raise ValueError(f"trials: {trials}; must be >= 1")
    if data_dir is None:
        data_dir = scratch / "data"
        if not (data_dir / "test_batch.bin").is_file():
            write_synthetic_cifar(
                dest=data_dir, train_images=train_images, test_images=test_images, seed=0
            )
    env, share = trainer_environment(
        device=device, trials=trials, gpu_share=gpu_share, extra=extra_env or {}
    )
    argv = trainer_argv(
        trainer=trainer,
        python=python,
        data_dir=data_dir,
        model=model,
        epochs=epochs,
        batch_size=batch_size,
        extra=trainer_args,
    )
    log_dir = Path(tempfile.mkdtemp(prefix=f"{trainer}-x{trials}-", dir=scratch))
    runs, span = run_trials(argvs=[argv] * trials, env=env, log_dir=log_dir, deadline=deadline)
    together_span = max(r.last_epoch_end for r in runs) - min(r.first_epoch_start for r in runs)
    breakdowns = [r.breakdown for r in runs if r.breakdown is not None]
    return Summary(
        trainer=trainer,
        device=device,
        hardware=hardware_name(device),
        model=model,
        batch_size=batch_size,
        epochs=epochs,
        train_images=train_images,
        trials_per_gpu=trials,
        gpu_share=share,
        images_per_second_together=sum(r.images for r in runs) / together_span,
        images_per_second_per_trial=sum(r.steady_images_per_second for r in runs) / trials,
        together_span_seconds=together_span,
        seconds_per_trial_wall=sum(r.wall_seconds for r in runs) / trials,
        seconds_per_trial_training=sum(r.train_seconds for r in runs) / trials,
        device_seconds_per_trial=span / trials,
        breakdown_per_trial=(
            {name: sum(b[name] for b in breakdowns) / len(breakdowns) for name in BREAKDOWN}
            if breakdowns
            else None
        ),
        runs=runs,
    )


def report(summary: Summary) -> str:
    lines = [
        f"hardware:             {summary.hardware} ({summary.device})",
        f"trainer / model:      {summary.trainer} / {summary.model}, batch {summary.batch_size}, "
        f"{summary.epochs} epochs of {summary.train_images} images",
        f"trials per GPU:       {summary.trials_per_gpu}"
        + (f" (share {summary.gpu_share:.4g} each)" if summary.gpu_share is not None else ""),
        f"images/s together:    {summary.images_per_second_together:,.0f} "
        f"(first epoch start to last epoch end: {summary.together_span_seconds:.2f} s)",
        f"images/s per trial:   {summary.images_per_second_per_trial:,.0f} (steady state)",
        f"seconds per trial:    {summary.seconds_per_trial_wall:.2f} wall "
        f"({summary.seconds_per_trial_training:.2f} training)",
    ]
    if summary.breakdown_per_trial is not None:
        parts = ", ".join(f"{k} {v:.2f}" for k, v in summary.breakdown_per_trial.items())
        lines.append(f"where a trial's time went (s): {parts}")
    lines.append(
        f"device-seconds/trial: {summary.device_seconds_per_trial:.2f} "
        "(first start to last exit / trials per GPU)"
    )
    return "\n".join(lines)


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
    parser.add_argument(
        "--gpu-share", type=float, default=None, help="each trial's OPENAMT_NUM_GPUS (1/N)"
    )
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
    with tempfile.TemporaryDirectory(prefix="trainer-throughput-") as scratch:
        print(f"running: {args.trainer} {model} x {args.trials_per_gpu}", flush=True)
        summary = measure(
            trainer=args.trainer,
            device=args.device,
            trials=args.trials_per_gpu,
            model=model,
            epochs=args.epochs,
            batch_size=args.batch_size,
            train_images=args.train_images,
            test_images=args.test_images,
            scratch=Path(scratch),
            data_dir=args.data_dir,
            python=args.python,
            trainer_args=args.trainer_args,
            gpu_share=args.gpu_share,
        )
    print(report(summary))
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(summary), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
