"""Run methods on learning-curve tables in this interpreter; one JSON line per run.

``benchmarks/multifidelity.py`` calls this with each method's own interpreter; by hand:
    .venv/bin/python benchmarks/learning_curves/run.py --methods hyperband-gp \\
        --problems wine --workers 2 --seeds 0 1 --out /dev/stdout

A run: one method, one problem, ``workers`` trials in parallel, one seed. ``bayesian``
runs 30 full-fidelity trials; every other method runs until the epochs of all its trials
add up to what those 30 trials cost (``30 x max_epochs``), or ``--budget-fraction`` of it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

from methods import METHODS  # noqa: E402
from simulator import simulate  # noqa: E402
from table import CurveTable  # noqa: E402

BAYESIAN_TRIALS = 30
VERSIONED = ("torch", "botorch", "optuna", "ray", "syne-tune", "numpy")


def versions() -> dict[str, str]:
    found = {}
    for name in VERSIONED:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def run_one(
    table: CurveTable, method: str, workers: int, seed: int, budget_fraction: float = 1.0
) -> dict:
    constructor, _ = METHODS[method]
    start = time.process_time()
    wall = time.perf_counter()
    policy = constructor(table, seed)
    full = method == "bayesian"
    trace = simulate(
        table,
        policy,
        workers=workers,
        budget_epochs=round(
            BAYESIAN_TRIALS * table.max_epochs * (1.0 if full else budget_fraction)
        ),
        max_trials=BAYESIAN_TRIALS if full else None,
    )
    return {
        "method": method,
        "problem": table.name,
        "workers": workers,
        "seed": seed,
        "trace": trace.compact(),
        "cpu_seconds": round(time.process_time() - start, 2),
        "wall_seconds": round(time.perf_counter() - wall, 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", required=True, choices=sorted(METHODS))
    parser.add_argument("--problems", nargs="+", required=True)
    parser.add_argument("--workers", nargs="+", type=int, default=[2, 8])
    parser.add_argument("--seeds", nargs="+", type=int, default=list(range(10)))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--budget-fraction",
        type=float,
        default=1.0,
        help="multi-fidelity methods stop at this fraction of Bayesian@30's epochs",
    )
    args = parser.parse_args(argv)
    try:  # one thread: trials are many and small, and the host's cores are shared
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    tables = {name: CurveTable.load(name) for name in args.problems}
    env = versions()
    with args.out.open("a") as out:
        for method in args.methods:
            for table in tables.values():
                for workers in args.workers:
                    for seed in args.seeds:
                        record = run_one(table, method, workers, seed, args.budget_fraction)
                        record["versions"] = env
                        record["pid"] = os.getpid()
                        out.write(json.dumps(record) + "\n")
                        out.flush()


if __name__ == "__main__":
    main()
