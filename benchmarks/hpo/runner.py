"""One benchmark run: a method on a problem with a seed, a budget and a batch size."""

from __future__ import annotations

import dataclasses
import time
import warnings
from typing import Any

from benchmarks.hpo.methods import build
from benchmarks.hpo.problems import PROBLEMS

#: ``name: (trials, parallel)``: the two settings of the issue.
SETTINGS = {"30x2": (30, 2), "32x8": (32, 8)}
#: The long sequential runs behind the frozen optima of problems without a known one.
REFERENCE_SETTING = {"100x1": (100, 1)}


def run_task(task: tuple[str, str, str, int]) -> dict[str, Any]:
    """Run ``(problem, method, setting, seed)``; returns JSON-ready results: the observed
    value per trial (None: crashed), the noise-free value of the config the method would
    pick (its best observed), openamt's telemetry and the wall time."""
    problem_name, method_name, setting, seed = task
    problem = PROBLEMS[problem_name]
    budget, parallel = (SETTINGS | REFERENCE_SETTING)[setting]
    warnings.simplefilter("ignore")  # peers' chatter; this is a worker process of ours
    start = time.perf_counter()
    method = build(method_name, problem.space, seed=seed, deterministic=problem.deterministic)
    observed: list[float | None] = []
    best: tuple[float, dict[str, Any]] | None = None
    while len(observed) < budget:
        configs = method.ask(min(parallel, budget - len(observed)))
        if not configs:
            break
        results = []
        for config in configs:
            value = problem.observe(config, seed=seed, index=len(observed))
            observed.append(value)
            results.append((config, value))
            if value is not None and (best is None or value < best[0]):
                best = (value, config)
        method.tell(results)
    seconds = time.perf_counter() - start
    telemetry = method.telemetry()
    return {
        "problem": problem_name,
        "method": method_name,
        "setting": setting,
        "seed": seed,
        "observed": observed,
        "picked_true_value": None if best is None else problem.objective(best[1]),
        "seconds": seconds,
        "telemetry": None
        if telemetry is None
        else {
            k: v
            for k, v in dataclasses.asdict(telemetry).items()
            if k != "expected_improvement_history"
        },
    }


def init_worker() -> None:
    """One thread per worker process: the workers already use every core."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)
