"""A real job shows what GP-guided Hyperband saves: the digits quickstart trainer, tuned with
Bayesian search at full fidelity and with Hyperband (GP-guided and random configurations).

Each strategy runs as a real `openamt` job (embedded Ray, real trainer processes, 2 in
parallel) on `models.sklearn_digits`, for the same number of epochs per trial at most. Reported
per job: wall time, epochs trained in all (the GPU-hours proxy), the best validation accuracy,
and the epochs and seconds it took to first reach the quality Bayesian reached at the end.

    .venv/bin/python benchmarks/hyperband_digits.py                 # about 10 minutes
    .venv/bin/python benchmarks/hyperband_digits.py --seeds 0 1 2   # more seeds
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator.spec import JobSpec  # noqa: E402
from orchestrator.store.job_dir import JobDir  # noqa: E402
from orchestrator.store.ledger import Event, read_events  # noqa: E402
from orchestrator.tune.runner import RunOptions, run_job  # noqa: E402

QUICKSTART = REPO / "deploy" / "jobs" / "quickstart-digits.yaml"
EPOCHS = 27
STRATEGIES: dict[str, dict[str, Any]] = {
    "Bayesian@30 (full fidelity)": {"strategy": "Bayesian", "max_jobs": 30},
    "Hyperband, GP-guided": {
        "strategy": "Hyperband",
        "max_jobs": 60,
        "hyperband_strategy_config": {"min_resource": 1, "max_resource": EPOCHS},
    },
    "Hyperband, random": {
        "strategy": "Hyperband",
        "max_jobs": 60,
        "hyperband_strategy_config": {
            "min_resource": 1,
            "max_resource": EPOCHS,
            "configuration_selection": "Random",
        },
    },
}


def run(name: str, overrides: dict[str, Any], *, seed: int, root: Path) -> dict[str, Any]:
    job = yaml.safe_load(QUICKSTART.read_text())
    job.update(overrides)
    job.update(
        name=f"hb-digits-{list(STRATEGIES).index(name)}-{seed}",
        hyperparameters={"epochs": EPOCHS},
        random_seed=seed,
        output_path=str(root),
        max_parallel_jobs=2,
    )
    job["trainer"]["working_dir"] = str(REPO)
    job["trainer"]["interpreter"] = str(REPO / ".venv" / "bin" / "python")
    spec = JobSpec.from_mapping(job, base_dir=REPO)
    started = time.monotonic()
    run_job(spec, RunOptions(show_progress=False, metrics_port=None))
    wall = time.monotonic() - started
    return {"strategy": name, "seed": seed, "wall_s": wall, **progress(JobDir(path=spec.job_dir))}


def progress(job_dir: JobDir) -> dict[str, Any]:
    """Epochs trained in the order results arrived, with each value and its time."""
    events = read_events(job_dir.ledger_path)
    start = next(e["time"] for e in events if e["event"] == Event.JOB_STARTED.value)
    reached: dict[str, int] = {}
    curve = []  # (cumulative epochs, seconds since start, value)
    for event in events:
        if event["event"] != Event.TRIAL_RESULT.value or event.get("value") is None:
            continue
        trial = event["trial_id"]
        step = event["step"]
        trained = max(0, step - reached.get(trial, 0))
        reached[trial] = max(reached.get(trial, 0), step)
        total = (curve[-1][0] if curve else 0) + trained
        curve.append((total, event["time"] - start, event["value"]))
    return {"curve": curve, "epochs": curve[-1][0] if curve else 0,
            "best": max((v for _, _, v in curve), default=None)}  # fmt: skip


def to_reach(curve: list[tuple[int, float, float]], target: float) -> tuple[int, float] | None:
    """Epochs and seconds until a value first reached `target`."""
    for epochs, seconds, value in curve:
        if value >= target:
            return epochs, seconds
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--json", type=Path, help="write every run here")
    args = parser.parse_args(argv)
    runs = []
    with tempfile.TemporaryDirectory(prefix="openamt-hb-digits-") as root:
        for seed in args.seeds:
            for name, overrides in STRATEGIES.items():
                runs.append(run(name, overrides, seed=seed, root=Path(root)))
                print(f"{name}, seed {seed}: {runs[-1]['wall_s']:.0f} s", flush=True)
    print(
        "| strategy | wall s | epochs in all | best | epochs to Bayesian's best | seconds to it |"
    )
    print("|---|---|---|---|---|---|")
    for name in STRATEGIES:
        mine = [r for r in runs if r["strategy"] == name]
        reach = []
        for r in mine:
            target = next(
                b["best"]
                for b in runs
                if b["seed"] == r["seed"] and b["strategy"] == next(iter(STRATEGIES))
            )
            reach.append(to_reach(r["curve"], target))  # fmt: skip
        hit = [x for x in reach if x is not None]
        epochs_to = f"{statistics.mean(e for e, _ in hit):.0f}" if hit else "not reached"
        seconds_to = f"{statistics.mean(s for _, s in hit):.0f}" if hit else "-"
        print(
            f"| {name} | {statistics.mean(r['wall_s'] for r in mine):.0f} "
            f"| {statistics.mean(r['epochs'] for r in mine):.0f} "
            f"| {statistics.mean(r['best'] for r in mine):.4f} "
            f"| {epochs_to} ({len(hit)}/{len(mine)} runs) | {seconds_to} |"
        )
    if args.json:
        args.json.write_text(json.dumps(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
