"""Latency of ``BayesianSearcher.suggest``, small jobs and as observations accumulate.

Small jobs (the target: median <= 0.1 s, p95 <= 0.3 s with <= 30 observations): for each
space and seed, a fresh searcher runs a job with two trials always pending (three in
parallel) until 30 observations; every GP-based suggestion is timed (the Sobol ones of
the initial design take about a millisecond and are left out, so they cannot flatter the
median). Each timing includes that suggestion's GP hyperparameter fit.

Larger counts: the searcher is warm-started with n observations (50 ... 400), two
trials are left pending, then ``--repeats`` times: time one ``suggest``, observe the
oldest pending trial. So every timed call sees 2 pending trials and between n and
n + repeats - 1 observations, and the hyperparameter refits happen as in a real job.

Spaces: 3-D (the flagship: learning rate log-scaled, momentum reverse-log, weight decay
linear), 6-D continuous (Hartmann6's unit cube) and 6-D mixed (3 continuous, 2 integer,
1 categorical). Torch runs one thread, as the searcher's docstring recommends.

Run from the repository root:
    python benchmarks/suggest_latency.py            # 3 seeds, 15 repeats per large cell
    python benchmarks/suggest_latency.py --quick    # 1 seed, 5 repeats, n in 100, 400
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from search import (  # noqa: E402
    BayesianSearcher,
    CategoricalParameter,
    ContinuousParameter,
    IntegerParameter,
    SearchSpace,
)

COUNTS = (50, 100, 200, 400)
QUICK_COUNTS = (100, 400)
#: Observations up to which the small-job target applies.
SMALL_JOB_OBSERVATIONS = 30


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


def time_small_job(space: SearchSpace, seed: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of every GP-based suggestion of a job with 2 trials pending,
    up to 30 observations."""
    searcher = BayesianSearcher(space=space, seed=seed)
    timings, cpu = [], []
    index = 0
    while len(searcher.observations) < SMALL_JOB_OBSERVATIONS:
        while len(searcher.pending) < 3:
            gp_before = len(searcher.telemetry().expected_improvement_history)
            start, cpu_start = time.perf_counter(), time.thread_time()
            searcher.suggest(f"t{index}")
            seconds, cpu_seconds = time.perf_counter() - start, time.thread_time() - cpu_start
            if len(searcher.telemetry().expected_improvement_history) > gp_before:
                timings.append(seconds)
                cpu.append(cpu_seconds)
            index += 1
        oldest = next(iter(searcher.pending))
        searcher.observe(oldest, objective(space, dict(searcher.pending[oldest])))
    _check_telemetry(searcher)
    return timings, cpu


def _check_telemetry(searcher: BayesianSearcher) -> None:
    telemetry = searcher.telemetry()
    if telemetry.fallback_count or telemetry.nan_picks:
        print(
            f"  FAILED: {telemetry.fallback_count} fallbacks, {telemetry.nan_picks} NaN picks",
            file=sys.stderr,
        )


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
    _check_telemetry(searcher)
    return timings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, 5 repeats, fewer sizes")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--spaces", nargs="*", default=None, help="subset of space names")
    args = parser.parse_args(argv)
    repeats = args.repeats or (5 if args.quick else 15)
    seeds = args.seeds or (1 if args.quick else 3)
    counts = QUICK_COUNTS if args.quick else COUNTS
    torch.set_num_threads(1)
    print(f"cpus={os.cpu_count()} load average at start={os.getloadavg()[0]:.1f}")
    chosen = {n: s for n, s in spaces().items() if not args.spaces or n in args.spaces}
    print(f"\nSmall jobs (<= {SMALL_JOB_OBSERVATIONS} observations, 2 pending), {seeds} seeds:")
    print("| space | GP suggestions | median s | p95 s | mean s | CPU median s | CPU p95 s |")
    print("|---|---|---|---|---|---|---|")
    pooled: list[float] = []
    pooled_cpu: list[float] = []
    for name, space in chosen.items():
        timings, cpu = [], []
        for seed in range(seeds):
            wall_times, cpu_times = time_small_job(space, seed)
            timings += wall_times
            cpu += cpu_times
        pooled += timings
        pooled_cpu += cpu
        print(f"| {name} | {_summary(timings)} | {_cpu(cpu)} |", flush=True)
    print(f"| **all** | {_summary(pooled)} | {_cpu(pooled_cpu)} |")
    median, p95 = statistics.median(pooled), float(np.percentile(pooled, 95))
    print(
        f"target median <= 0.100 s: {'met' if median <= 0.1 else 'missed'} ({median:.3f}); "
        f"p95 <= 0.300 s: {'met' if p95 <= 0.3 else 'missed'} ({p95:.3f})"
    )
    print(f"\nWarm-started with n observations, 2 pending, {repeats} timed calls:")
    print("| space | observations | median s | p95 s | mean s |")
    print("|---|---|---|---|---|")
    for name, space in chosen.items():
        for count in counts:
            timings = time_cell(space, count, repeats, seed=0)
            p95 = float(np.percentile(timings, 95))
            print(
                f"| {name} | {count} | {statistics.median(timings):.3f} | {p95:.3f} | "
                f"{statistics.mean(timings):.3f} |",
                flush=True,
            )
    print(f"load average at end={os.getloadavg()[0]:.1f}")


def _cpu(timings: list[float]) -> str:
    """CPU time of the suggesting thread: what the wall time would be on an idle core."""
    return f"{statistics.median(timings):.3f} | {float(np.percentile(timings, 95)):.3f}"


def _summary(timings: list[float]) -> str:
    return (
        f"{len(timings)} | {statistics.median(timings):.3f} | "
        f"{float(np.percentile(timings, 95)):.3f} | {statistics.mean(timings):.3f}"
    )


if __name__ == "__main__":
    main()
