"""One prepared GPU check of the PyTorch trainer: one command, one JSON and one markdown summary.

On one H100 or H200 it finishes in under 8 minutes (`--budget-s`, default 420: a part that
would not fit is skipped and says so) and needs only PyTorch and NumPy, no Ray and no network:

    python benchmarks/gpu_check.py --out DIR

It measures, each through the trainer's real command line (models/torch_cifar10.py):

(a) parity    graph against eager: parameters after 20 fp32 steps (batch 1024, TF32 off,
              `--deterministic true`), one run with CUDA graphs and one without, from one
              seed; tolerance max |difference| <= 1e-6 (deterministic kernels replay the
              same arithmetic, so the expected difference is exactly 0)
(b) trial     one 50-epoch resnet34_v2 (ImageNet stem) trial at batch 1024 on CIFAR-10-shaped
              data, wall seconds from its start to its exit, with the trainer's breakdown;
              target <= 10 s
(c) packing   1, 2, 4 and 8 trials on the GPU at once, each with the share the orchestrator
              gives (OPENAMT_NUM_GPUS=1/N), training images/s together over the span from the
              first epoch's start to the last epoch's end; with and without CUDA MPS where a
              private MPS control daemon can start (stopped afterwards); target >= 190,000
(d) precision bf16 against fp32 final validation accuracy on a learnable synthetic set (class
              templates under noise, so accuracy is neither chance nor 100%); target within
              1 point
(e) versions  GPU, driver, CUDA, cuDNN, NCCL, PyTorch, NumPy, Python

`--cpu-smoke` runs every part reduced on the CPU (small_cnn, hundreds of images, no MPS, no
graphs to capture), in under a minute: the CI test runs it, so this script cannot rot.
Exit status 0 when every part ran (a missed target is a result, not an error), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import trainer_throughput as tt  # noqa: E402

from models.cifar10_data import TEST_BATCH, TRAIN_BATCHES  # noqa: E402

JSON_NAME, MARKDOWN_NAME = "gpu_check.json", "gpu_check.md"
PARITY_TOLERANCE = 1e-6
TRIAL_TARGET_S = 10.0
PACKED_TARGET = 190_000
PRECISION_TARGET_POINTS = 1.0
LEARNABLE_AMPLITUDE, LEARNABLE_NOISE = 4.0, 60.0  # ~90% reachable, not 100% (see write_learnable)


@dataclass(frozen=True)
class Plan:
    """The sizes of one check: the full one for a GPU, or the CPU smoke test's."""

    device: str  # "gpu" or "cpu"
    model: str
    batch: int
    train_images: int
    test_images: int
    parity_steps: int
    trial_epochs: int
    packing: tuple[int, ...]
    packing_epochs: int
    precision_epochs: int
    precision_learning_rate: float
    budget_s: float
    part_minimum_s: float  # a part starts only with this much budget left (packing: per run)


FULL = Plan(
    device="gpu",
    model="resnet34_v2",
    batch=1024,
    train_images=50_000,
    test_images=10_000,
    parity_steps=20,
    trial_epochs=50,
    packing=(1, 2, 4, 8),
    packing_epochs=10,
    precision_epochs=15,
    precision_learning_rate=0.1,
    budget_s=420.0,
    part_minimum_s=30.0,
)
CPU_SMOKE = Plan(
    device="cpu",
    model="small_cnn",
    batch=32,
    train_images=256,
    test_images=64,
    parity_steps=4,
    trial_epochs=2,
    packing=(2,),
    packing_epochs=1,
    precision_epochs=1,
    precision_learning_rate=0.05,
    budget_s=120.0,
    part_minimum_s=0.0,
)


# --- data ------------------------------------------------------------------------------------


def write_learnable(dest: Path, *, train_images: int, test_images: int, seed: int) -> Path:
    """A CIFAR-format data set a network learns but does not finish: each class is a fixed
    random 4x4 colour pattern blown up to 32x32, shown at low contrast under strong pixel noise
    (uint8, around grey). Nearest-pattern guessing on 8x8 block means is right ~95% of the
    time without augmentation; the trainer's crops and mirrors make it harder, so accuracy
    after a few epochs lands well between chance and 100% and can tell two trainings apart."""
    rng = np.random.default_rng(seed)
    templates = np.kron(rng.normal(size=(10, 3, 4, 4)), np.ones((1, 1, 8, 8)))

    def records(count: int) -> np.ndarray:
        labels = rng.integers(0, 10, count)
        pixels = 128 + LEARNABLE_AMPLITUDE * templates[labels]
        pixels = pixels + LEARNABLE_NOISE * rng.normal(size=pixels.shape)
        pixels = np.clip(np.rint(pixels), 0, 255).astype(np.uint8).reshape(count, -1)
        return np.concatenate([labels.astype(np.uint8)[:, None], pixels], axis=1)

    dest.mkdir(parents=True, exist_ok=True)
    train = records(train_images)
    for name, part in zip(TRAIN_BATCHES, np.array_split(train, len(TRAIN_BATCHES)), strict=True):
        (dest / name).write_bytes(part.tobytes())
    (dest / TEST_BATCH).write_bytes(records(test_images).tobytes())
    return dest


# --- running trainers ------------------------------------------------------------------------


class Check:
    """The run's state: where it writes, its clock, its trainer command, its results."""

    def __init__(self, *, plan: Plan, out: Path, python: Path, command: str) -> None:
        self.plan, self.out, self.python = plan, out, python
        self.started = time.monotonic()
        self.trainer_extra: list[str] = []  # for every later trainer (the eager fallback)
        self.scratch = Path(tempfile.mkdtemp(prefix="gpu-check-"))
        self.results: dict[str, object] = {
            "mode": "full" if plan.device == "gpu" else "cpu-smoke",
            "command": command,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "plan": asdict(plan),
            "parts": {},
        }

    def left_s(self) -> float:
        return self.plan.budget_s - (time.monotonic() - self.started)

    def deadline(self) -> float:
        return self.started + self.plan.budget_s

    def argv(self, *, data: Path, epochs: int, extra: Sequence[str] = ()) -> list[str]:
        return tt.trainer_argv(
            trainer="torch",
            python=self.python,
            data_dir=data,
            model=self.plan.model,
            epochs=epochs,
            batch_size=self.plan.batch,
            extra=[*self.trainer_extra, *extra],
        )

    def run(
        self,
        label: str,
        argvs: Sequence[Sequence[str]],
        *,
        share: float | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> tuple[list[tt.TrialRun], float]:
        """Trainers side by side with the orchestrator's environment; logs kept under out."""
        env, _ = tt.trainer_environment(
            device=self.plan.device, trials=len(argvs), gpu_share=share, extra=extra_env or {}
        )
        if self.plan.device == "cpu":
            env["OMP_NUM_THREADS"] = "1"
        work = self.scratch / label
        work.mkdir(parents=True)
        try:
            return tt.run_trials(argvs=argvs, env=env, log_dir=work, deadline=self.deadline())
        finally:
            logs = self.out / "logs" / label
            logs.mkdir(parents=True, exist_ok=True)
            for log in work.glob("*.log"):
                shutil.copy(log, logs / log.name)

    def forget(self, label: str) -> None:
        """Drop a run's model directories (85 MB each on the flagship network)."""
        shutil.rmtree(self.scratch / label, ignore_errors=True)

    def part(self, name: str, minimum_s: float, measure: Callable[[], dict[str, object]]) -> None:
        """Run one part unless the budget is spent; record its result or its error, then write
        the summaries, so a run cut short still leaves what it measured."""
        parts = self.results["parts"]
        assert isinstance(parts, dict)
        if self.left_s() < minimum_s:
            parts[name] = {
                "status": "skipped",
                "reason": f"time budget: {self.left_s():.0f} s left",
            }
        else:
            began = time.monotonic()
            try:
                parts[name] = {"status": "ran", **measure()}
            except Exception as exc:  # noqa: BLE001 - every part reports, the next still runs
                parts[name] = {
                    "status": "error",
                    "error": f"{type(exc).__name__}: {exc}"[-3000:],
                    "traceback": traceback.format_exc()[-3000:],
                }
            parts[name]["seconds"] = round(time.monotonic() - began, 2)
        self.write()

    def write(self) -> None:
        self.results["seconds"] = round(time.monotonic() - self.started, 2)
        self.results["extra_trainer_args"] = self.trainer_extra
        (self.out / JSON_NAME).write_text(json.dumps(self.results, indent=2) + "\n")
        (self.out / MARKDOWN_NAME).write_text(markdown(self.results))


# --- the parts -------------------------------------------------------------------------------


def check_parity(check: Check) -> dict[str, object]:
    plan = check.plan
    data = write_learnable(
        check.scratch / "parity-data",
        train_images=plan.parity_steps * plan.batch,
        test_images=plan.batch,
        seed=1,
    )
    fixed = ["--precision", "fp32", "--deterministic", "true", "--seed", "7"]
    argvs = [
        check.argv(data=data, epochs=1, extra=[*fixed, "--cuda_graphs", graphs])
        for graphs in ("true", "false")
    ]
    runs, _ = check.run("parity", argvs)
    import torch  # here: the check's own process never touches the GPU

    graphs, eager = (torch.load(Path(run.model_dir) / "model.pt") for run in runs)
    check.forget("parity")
    differences = {
        name: (graphs[name].double() - eager[name].double()).abs().max().item()
        for name in eager
        if eager[name].is_floating_point()
    }
    worst = max(differences, key=differences.get)
    setup = setup_line(check, "parity")
    return {
        "steps": plan.parity_steps,
        "batch": plan.batch,
        "graphs_captured": setup is not None and "cuda_graphs=True" in setup,
        "setup": setup,
        "max_abs_difference": differences[worst],
        "worst_tensor": worst,
        "bitwise_equal": all(torch.equal(graphs[n], eager[n]) for n in eager),
        "tolerance": PARITY_TOLERANCE,
        "met": differences[worst] <= PARITY_TOLERANCE,
        "validation_accuracy": [run.final_accuracy for run in runs],
    }


def setup_line(check: Check, label: str) -> str | None:
    """The trainer's `setup:` line (device, precision, graphs, TF32, cuDNN, memory cap)."""
    log = check.out / "logs" / label / "0.log"
    lines = log.read_text().splitlines() if log.is_file() else []
    return next((line for line in lines if line.startswith("setup: ")), None)


def check_trial(check: Check, data: Path) -> dict[str, object]:
    """The flagship trial. Should it fail with CUDA graphs, it runs again without them and the
    parts after it do too, so one GPU session still measures something (the error is kept)."""
    plan = check.plan
    graphs_error = None
    try:
        runs, _ = check.run("trial", [check.argv(data=data, epochs=plan.trial_epochs)])
    except RuntimeError as exc:
        graphs_error = str(exc)[-3000:]
        check.trainer_extra = ["--cuda_graphs", "false"]
        runs, _ = check.run("trial-eager", [check.argv(data=data, epochs=plan.trial_epochs)])
    check.forget("trial")
    check.forget("trial-eager")
    (run,) = runs
    return {
        "model": plan.model,
        "stem": "imagenet",
        "epochs": run.epochs,
        "batch": plan.batch,
        "wall_seconds": round(run.wall_seconds, 2),
        "breakdown_seconds": run.breakdown,
        "steady_images_per_second": round(run.steady_images_per_second),
        "final_accuracy": run.final_accuracy,
        "setup": setup_line(check, "trial" if graphs_error is None else "trial-eager"),
        "graphs_error": graphs_error,
        "target_seconds": TRIAL_TARGET_S,
        "met": run.wall_seconds <= TRIAL_TARGET_S,
    }


class MpsDaemon:
    """A private CUDA MPS control daemon: its own pipe and log directories (clients find it
    through CUDA_MPS_PIPE_DIRECTORY), so a system daemon is neither used nor disturbed.
    `env` points clients at it; `no_mps_env` at an empty directory, so they run without MPS."""

    def __init__(self, root: Path) -> None:
        self.pipes, self.logs, self.empty = root / "pipe", root / "log", root / "none"
        for directory in (self.pipes, self.logs, self.empty):
            directory.mkdir(parents=True, exist_ok=True)
        self.env = {
            "CUDA_MPS_PIPE_DIRECTORY": str(self.pipes),
            "CUDA_MPS_LOG_DIRECTORY": str(self.logs),
        }
        self.no_mps_env = {"CUDA_MPS_PIPE_DIRECTORY": str(self.empty)}
        self.running = False

    def control(self, command: str | None) -> subprocess.CompletedProcess[str]:
        argv = ["nvidia-cuda-mps-control"] + ([] if command else ["-d"])
        return subprocess.run(
            argv,
            input=command,
            env=os.environ | self.env,
            capture_output=True,
            text=True,
            timeout=30,
        )

    def start(self, probe: Callable[[Mapping[str, str]], str | None]) -> str | None:
        """Start it and check that a CUDA client works through it; the reason when not."""
        if shutil.which("nvidia-cuda-mps-control") is None:
            return "nvidia-cuda-mps-control is not installed"
        started = self.control(None)
        if started.returncode != 0:
            return f"the daemon did not start: {(started.stderr or started.stdout).strip()}"
        self.running = True
        failure = probe(self.env)
        if failure is not None:
            self.stop()
            return f"a CUDA client failed under MPS: {failure}"
        return None

    def stop(self) -> None:
        if self.running:
            self.control("quit\n")
            self.running = False


def cuda_probe(python: Path) -> Callable[[Mapping[str, str]], str | None]:
    def probe(env: Mapping[str, str]) -> str | None:
        code = "import torch; torch.ones(1, device='cuda').add_(1); torch.cuda.synchronize()"
        done = subprocess.run(
            [str(python), "-c", code],
            env=os.environ | dict(env),
            capture_output=True,
            text=True,
            timeout=120,
        )
        return None if done.returncode == 0 else (done.stderr.strip().splitlines() or ["?"])[-1]

    return probe


def check_packing(check: Check, data: Path) -> dict[str, object]:
    plan = check.plan
    modes: list[tuple[str, dict[str, str]]] = [("off", {})]
    mps_status: dict[str, object] = {"available": False}
    daemon = None
    if plan.device == "gpu":
        daemon = MpsDaemon(check.scratch / "mps")
        reason = daemon.start(cuda_probe(check.python))
        mps_status = {"available": reason is None, "reason": reason}
        modes = [("off", daemon.no_mps_env)] + ([("on", daemon.env)] if reason is None else [])
    else:
        mps_status["reason"] = "no GPU (CPU smoke)"
    runs = []
    try:
        for mps, env in modes:
            for trials in plan.packing:
                label = f"packing-{trials}-mps-{mps}"
                if check.left_s() < plan.part_minimum_s:
                    runs.append({"trials": trials, "mps": mps, "skipped": "time budget"})
                    continue
                argv = check.argv(data=data, epochs=plan.packing_epochs)
                trial_runs, span = check.run(
                    label, [argv] * trials, share=1 / trials, extra_env=env
                )
                check.forget(label)
                bounds = [(r.first_epoch_start, r.last_epoch_end) for r in trial_runs]
                together_span = max(end for _, end in bounds) - min(start for start, _ in bounds)
                images = sum(r.images for r in trial_runs)
                runs.append(
                    {
                        "trials": trials,
                        "mps": mps,
                        "images_per_second_together": round(images / together_span),
                        "steady_images_per_second_summed": round(
                            sum(r.steady_images_per_second for r in trial_runs)
                        ),
                        "together_span_seconds": round(together_span, 2),
                        "wall_seconds_first_start_to_last_exit": round(span, 2),
                        "wall_seconds_per_trial": [round(r.wall_seconds, 2) for r in trial_runs],
                    }
                )
    finally:
        if daemon is not None:
            daemon.stop()
    measured = [run for run in runs if "images_per_second_together" in run]
    best = max(measured, key=lambda run: run["images_per_second_together"], default=None)
    return {
        "epochs_per_trial": plan.packing_epochs,
        "mps": mps_status,
        "runs": runs,
        "best": best,
        "target_images_per_second": PACKED_TARGET,
        "met": best is not None and best["images_per_second_together"] >= PACKED_TARGET,
    }


def check_precision(check: Check, data: Path) -> dict[str, object]:
    plan = check.plan
    extra = ["--learning_rate", str(plan.precision_learning_rate), "--seed", "11"]
    argvs = [
        check.argv(data=data, epochs=plan.precision_epochs, extra=[*extra, "--precision", name])
        for name in ("bf16", "fp32")
    ]
    runs, _ = check.run("precision", argvs)
    check.forget("precision")
    bf16, fp32 = (run.final_accuracy for run in runs)
    difference = 100 * abs(bf16 - fp32)
    return {
        "epochs": plan.precision_epochs,
        "data": f"learnable templates, amplitude {LEARNABLE_AMPLITUDE}, noise {LEARNABLE_NOISE}",
        "bf16_accuracy": bf16,
        "fp32_accuracy": fp32,
        "difference_points": round(difference, 3),
        "wall_seconds": {
            "bf16": round(runs[0].wall_seconds, 2),
            "fp32": round(runs[1].wall_seconds, 2),
        },
        "target_points": PRECISION_TARGET_POINTS,
        "met": difference <= PRECISION_TARGET_POINTS,
    }


VERSIONS_PROBE = r"""
import json, platform, sys
import numpy, torch
info = {"python": platform.python_version(), "numpy": numpy.__version__,
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(), "gpu": None}
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    info["gpu"] = {"name": p.name, "capability": f"{p.major}.{p.minor}",
                   "memory_gib": round(p.total_memory / 2**30, 1),
                   "count": torch.cuda.device_count()}
    try:
        info["nccl"] = ".".join(map(str, torch.cuda.nccl.version()))
    except (AttributeError, RuntimeError):
        info["nccl"] = None
print(json.dumps(info))
"""


def check_versions(check: Check) -> dict[str, object]:
    done = subprocess.run(
        [str(check.python), "-c", VERSIONS_PROBE], capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    info = json.loads(done.stdout)
    info["driver"] = nvidia_driver()
    info["platform"] = platform.platform()
    info["cpus"] = os.cpu_count()
    return info


def nvidia_driver() -> str | None:
    """The NVIDIA driver's version (not CUDA's): the kernel module's, else nvidia-smi's."""
    try:
        words = Path("/proc/driver/nvidia/version").read_text().split()
        return next((w for w in words if "." in w and w.replace(".", "").isdigit()), None)
    except OSError:
        pass
    if shutil.which("nvidia-smi") is None:
        return None
    query = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader", "--id=0"]
    done = subprocess.run(query, capture_output=True, text=True, timeout=60)
    return done.stdout.strip() or None if done.returncode == 0 else None


# --- the summaries ---------------------------------------------------------------------------


def markdown(results: Mapping[str, object]) -> str:
    parts = results["parts"]
    assert isinstance(parts, dict)
    versions = parts.get("versions", {})
    gpu = versions.get("gpu") if isinstance(versions, dict) else None
    lines = [
        f"# GPU check ({results['mode']})",
        "",
        f"- command: `{results['command']}`",
        f"- started {results['started']}, took {results.get('seconds', 0):.0f} s",
    ]
    if isinstance(versions, dict) and versions.get("status") == "ran":
        device = f"{gpu['name']} (compute capability {gpu['capability']})" if gpu else "CPU"
        lines.append(
            f"- {device}; driver {versions.get('driver')}, CUDA {versions.get('cuda')}, "
            f"cuDNN {versions.get('cudnn')}, PyTorch {versions.get('torch')}, "
            f"NumPy {versions.get('numpy')}, Python {versions.get('python')}"
        )
    lines += ["", "| target | goal | measured | met |", "|---|---|---|---|"]
    for name, goal, measured in (
        ("parity", f"max abs difference <= {PARITY_TOLERANCE:g}", _parity_text),
        ("trial", f"<= {TRIAL_TARGET_S:g} s wall, start-up included", _trial_text),
        ("packing", f">= {PACKED_TARGET:,} images/s together", _packing_text),
        ("precision", f"bf16 within {PRECISION_TARGET_POINTS:g} point of fp32", _precision_text),
    ):
        part = parts.get(name, {"status": "not run"})
        status = part.get("status")
        text = (
            measured(part)
            if status == "ran"
            else f"{status}: {part.get('reason') or part.get('error', '')}"
        )
        met = {True: "yes", False: "no"}.get(part.get("met"), "-")
        lines.append(f"| {name} | {goal} | {text} | {met} |")
    packing = parts.get("packing", {})
    if packing.get("status") == "ran":
        lines += [
            "",
            f"Packed trials ({packing['epochs_per_trial']} epochs each; MPS: "
            f"{'available' if packing['mps']['available'] else packing['mps'].get('reason')}):",
            "",
            "| trials | MPS | images/s together | steady images/s summed | span s |",
            "|---|---|---|---|---|",
        ]
        for run in packing["runs"]:
            if "skipped" in run:
                lines.append(f"| {run['trials']} | {run['mps']} | skipped | | |")
                continue
            lines.append(
                f"| {run['trials']} | {run['mps']} | {run['images_per_second_together']:,} | "
                f"{run['steady_images_per_second_summed']:,} | {run['together_span_seconds']} |"
            )
    return "\n".join(lines) + "\n"


def _parity_text(part: Mapping[str, object]) -> str:
    return (
        f"{part['max_abs_difference']:.3g} after {part['steps']} steps (bitwise equal: "
        f"{part['bitwise_equal']}, graphs captured: {part['graphs_captured']})"
    )


def _trial_text(part: Mapping[str, object]) -> str:
    breakdown = part.get("breakdown_seconds") or {}
    parts = ", ".join(f"{k} {v:.2f}" for k, v in breakdown.items())
    return f"{part['wall_seconds']} s ({parts}); {part['steady_images_per_second']:,} images/s"


def _packing_text(part: Mapping[str, object]) -> str:
    best = part.get("best")
    if not best:
        return "nothing measured"
    return f"{best['images_per_second_together']:,} with {best['trials']} trials, MPS {best['mps']}"


def _precision_text(part: Mapping[str, object]) -> str:
    return (
        f"bf16 {part['bf16_accuracy']:.4f}, fp32 {part['fp32_accuracy']:.4f}: "
        f"{part['difference_points']} points after {part['epochs']} epochs"
    )


# --- the command -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, required=True, help="where the summaries go")
    parser.add_argument(
        "--cpu-smoke", action="store_true", help="every part reduced, on the CPU (CI)"
    )
    parser.add_argument("--budget-s", type=float, default=None, help="stop starting parts after")
    parser.add_argument(
        "--python", type=Path, default=Path(sys.executable), help="the trainer's interpreter"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    plan = CPU_SMOKE if args.cpu_smoke else FULL
    if args.budget_s is not None:
        plan = Plan(**(asdict(plan) | {"budget_s": args.budget_s}))
    args.out.mkdir(parents=True, exist_ok=True)
    command = shlex.join(
        ["python", "benchmarks/gpu_check.py", *(sys.argv[1:] if argv is None else argv)]
    )
    check = Check(plan=plan, out=args.out, python=args.python, command=command)
    try:
        minimum = plan.part_minimum_s
        check.part("versions", 0, lambda: check_versions(check))
        data = write_learnable(
            check.scratch / "data",
            train_images=plan.train_images,
            test_images=plan.test_images,
            seed=0,
        )
        # packing last: the longest, and the one that can stop early and still say something
        check.part("parity", minimum, lambda: check_parity(check))
        check.part("trial", minimum, lambda: check_trial(check, data))
        check.part("precision", minimum, lambda: check_precision(check, data))
        check.part("packing", minimum, lambda: check_packing(check, data))
    finally:
        shutil.rmtree(check.scratch, ignore_errors=True)
        check.write()
    parts = check.results["parts"]
    assert isinstance(parts, dict)
    print((args.out / MARKDOWN_NAME).read_text(), end="")
    return 0 if all(part.get("status") == "ran" for part in parts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
