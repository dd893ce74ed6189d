"""Where successive halving loses the configurations that reach Q, and what forecasts cost.

Replays an openamt Hyperband method on the learning-curve tables (as `multifidelity.py`
does) and follows every configuration whose curve ever reaches Q, Bayesian@30's mean final
accuracy read from `learning_curves/comparison.json`. Per problem and parallelism it counts
the runs that proposed one, the runs that trained one to the epoch at which it reaches Q,
and the runs that stopped one before it. With promotion by forecast on, it also times every
forecast.

    .venv/bin/python benchmarks/hyperband_stops.py --problems digits_mlp digits_cnn
    .venv/bin/python benchmarks/hyperband_stops.py --method hyperband-gp-forecast --seeds 3
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
CURVES = ROOT / "benchmarks" / "learning_curves"
sys.path[:0] = [str(ROOT), str(CURVES)]

from methods import METHODS  # noqa: E402
from simulator import simulate  # noqa: E402
from table import PROBLEMS, CurveTable  # noqa: E402

from search.hyperband import HyperbandSearcher  # noqa: E402

FORECAST_SECONDS: list[float] = []
KEPT = [0]


def _timed(opinion):
    def timed(self, trial_id, rung):
        started = time.perf_counter()
        keep = opinion(self, trial_id, rung)
        FORECAST_SECONDS.append(time.perf_counter() - started)
        KEPT[0] += keep
        return keep

    return timed


def one_run(table: CurveTable, method: str, workers: int, seed: int, q: float, fraction: float):
    """(proposed one, trained one to Q, stopped one before Q, the epochs those stopped ended
    at) for one replayed run."""
    searcher = METHODS[method][0](table, seed)
    ended: dict[str, int] = {}
    finish = searcher.finish

    def record(trial_id: str, epoch: int, accuracy: float, stopped: bool) -> None:
        ended[trial_id] = epoch
        finish(trial_id, epoch, accuracy, stopped)

    searcher.finish = record
    trace = simulate(
        table, searcher, workers=workers, budget_epochs=int(30 * table.max_epochs * fraction)
    )
    first = {int(r): 1 + int(np.argmax(table.accuracy[r] >= q)) for r in _reaching(table, q)}
    tried = [(first[row], ended.get(f"t{i}")) for i, row in enumerate(trace.rows) if row in first]
    stops = [end for needed, end in tried if end is not None and end < needed]
    reached = any(end is not None and end >= needed for needed, end in tried)
    return bool(tried), reached, bool(stops), stops


def _reaching(table: CurveTable, q: float) -> np.ndarray:
    return np.flatnonzero(table.accuracy.max(axis=1) >= q)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="hyperband-gp", choices=sorted(METHODS))
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=PROBLEMS)
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 8])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget-fraction", type=float, default=1 / 3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    HyperbandSearcher._forecast_opinion = _timed(HyperbandSearcher._forecast_opinion)
    cells = json.loads((CURVES / "comparison.json").read_text())["cells"]
    print(
        "| problem, parallel | runs that proposed one | trained to Q | stopped before Q "
        "| epochs they were stopped at |"
    )
    print("|---|---|---|---|---|")
    for problem in args.problems:
        table = CurveTable.load(problem)
        for workers in args.workers:
            q = cells[f"{problem}@{workers}"]["Q"]
            runs = [
                one_run(table, args.method, workers, seed, q, args.budget_fraction)
                for seed in range(args.seeds)
            ]
            counts = [sum(run[k] for run in runs) for k in range(3)]
            stops = sorted(epoch for run in runs for epoch in run[3])
            row = [f"{problem}, {workers}", *map(str, counts), ", ".join(map(str, stops))]
            print("| " + " | ".join(row) + " |", flush=True)
    if FORECAST_SECONDS:
        ms = np.array(FORECAST_SECONDS) * 1000
        print(
            f"\n{len(ms)} forecasts, {KEPT[0]} kept the trial going; median {np.median(ms):.1f}"
            f" ms, p95 {np.quantile(ms, 0.95):.1f} ms, max {ms.max():.1f} ms"
        )


if __name__ == "__main__":
    main()
