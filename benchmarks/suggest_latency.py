"""Latency of ``BayesianSearcher.suggest`` as observations accumulate.

For each space and each starting count n of observations (25, 50, 100, 200, 400): the
searcher is warm-started with n observations of a smooth test function, two trials are
left pending, and then ``--repeats`` times: time one ``suggest`` (three trials pending
afterwards), observe the oldest pending trial (back to two pending, one more
observation). So every timed call sees 2 pending trials and between n and
n + repeats - 1 observations, and the GP's warm-started hyperparameter fit sees new data
each time, as in a real job. Reports the median and 95th percentile.

Spaces: 3-D (the flagship: learning rate log-scaled, momentum reverse-log, weight decay
linear), 6-D continuous (Hartmann6's unit cube) and 6-D mixed (3 continuous, 2 integer,
1 categorical).

Run from the repository root:
    python benchmarks/suggest_latency.py            # 15 repeats per cell
    python benchmarks/suggest_latency.py --quick    # 5 repeats, n in 25, 100, 400
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from search import (  # noqa: E402
    BayesianSearcher,
    CategoricalParameter,
    ContinuousParameter,
    IntegerParameter,
    SearchSpace,
)

COUNTS = (25, 50, 100, 200, 400)
QUICK_COUNTS = (25, 100, 400)


def spaces() -> dict[str, SearchSpace]:
    return {
        "3-D continuous": SearchSpace(
            {
                "learning_rate": ContinuousParameter(0.001, 0.5, scaling_type="Logarithmic"),
                "momentum": ContinuousParameter(0.0, 0.99, scaling_type="ReverseLogarithmic"),
                "wd": ContinuousParameter(0.0, 0.001),
            }
        ),
        "6-D continuous": SearchSpace({f"x{i}": ContinuousParameter(0.0, 1.0) for i in range(6)}),
        "6-D mixed": SearchSpace(
            {
                "learning_rate": ContinuousParameter(1e-4, 0.3, scaling_type="Logarithmic"),
                "momentum": ContinuousParameter(0.0, 0.99, scaling_type="ReverseLogarithmic"),
                "wd": ContinuousParameter(0.0, 0.001),
                "layers": IntegerParameter(2, 12),
                "width": IntegerParameter(16, 512, scaling_type="Logarithmic"),
                "optimizer": CategoricalParameter(["sgd", "nag", "adam", "rmsprop"]),
            }
        ),
    }


def objective(space: SearchSpace, config: dict[str, Any]) -> float:
    """A smooth multi-modal function of the unit-cube point (Hartmann-like bumps)."""
    u = space.to_unit(config)
    centres = np.linspace(0.2, 0.8, 3)[:, None] + 0.1 * np.sin(np.arange(len(u)))[None, :]
    return float(sum(math.exp(-8 * ((u - c) ** 2).sum()) for c in centres))


def time_cell(space: SearchSpace, count: int, repeats: int, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    priors = []
    for _ in range(count):
        config = space.from_unit(rng.random(space.dimension))
        priors.append((config, objective(space, config)))
    searcher = BayesianSearcher(space=space, seed=seed, prior_observations=priors)
    for i in range(2):
        searcher.suggest(f"pending-{i}")
    timings = []
    for i in range(repeats):
        start = time.perf_counter()
        searcher.suggest(f"timed-{i}")
        timings.append(time.perf_counter() - start)
        oldest = next(iter(searcher.pending))
        searcher.observe(oldest, objective(space, dict(searcher.pending[oldest])))
    if searcher.fallback_count:
        print(f"  warning: {searcher.fallback_count} fallbacks", file=sys.stderr)
    return timings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 repeats, fewer sizes")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--spaces", nargs="*", default=None, help="subset of space names")
    args = parser.parse_args(argv)
    repeats = args.repeats or (5 if args.quick else 15)
    counts = QUICK_COUNTS if args.quick else COUNTS
    warnings.simplefilter("ignore")
    print(f"cpus={os.cpu_count()} load average at start={os.getloadavg()[0]:.1f}")
    print("| space | observations | median s | p95 s |")
    print("|---|---|---|---|")
    for name, space in spaces().items():
        if args.spaces and name not in args.spaces:
            continue
        for count in counts:
            timings = time_cell(space, count, repeats, seed=0)
            p95 = float(np.percentile(timings, 95))
            print(
                f"| {name} | {count} | {statistics.median(timings):.3f} | {p95:.3f} |", flush=True
            )
    print(f"load average at end={os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
