"""One benchmark run: a method on a problem with a seed, a budget and a way of running
trials in parallel.

The issue's settings run **synchronous batches**: ask for ``parallel`` configs, evaluate
them all, tell all results. The ``-async`` settings run trials as the orchestrator does: each
trial takes a simulated, seeded duration (log-normal, ``DURATION_SIGMA``), and whenever one
finishes its result is told and the freed slot gets the next config at once, with the
others still running (pending). Only methods with an asynchronous interface (openamt's)
take them.
"""

from __future__ import annotations

import dataclasses
import heapq
import time
import warnings
from typing import Any

import numpy as np

from benchmarks.hpo.methods import Config, Method, build
from benchmarks.hpo.problems import PROBLEMS, Problem


@dataclasses.dataclass(frozen=True)
class Setting:
    trials: int
    parallel: int
    asynchronous: bool = False


#: The two settings of the issue, in synchronous batches.
SETTINGS = {"30x2": Setting(30, 2), "32x8": Setting(32, 8)}
#: The same budgets run asynchronously, as the orchestrator runs trials.
ASYNC_SETTINGS = {"30x2-async": Setting(30, 2, True), "32x8-async": Setting(32, 8, True)}
#: The long sequential runs behind the frozen optima of problems without a known one.
REFERENCE_SETTING = {"100x1": Setting(100, 1)}
ALL_SETTINGS = SETTINGS | ASYNC_SETTINGS | REFERENCE_SETTING
#: Log-normal sigma of the simulated trial durations (median 1): the slowest of 8 trials
#: takes about twice as long as the fastest.
DURATION_SIGMA = 0.3
#: Seed-sequence stream of the durations (the problems' noise uses 7919).
DURATION_STREAM = 104729


def run_task(task: tuple[str, str, str, int]) -> dict[str, Any]:
    """Run ``(problem, method, setting, seed)``; returns JSON-ready results: the observed
    value per trial in the order the trials started (None: crashed), the noise-free value of
    the config the method would pick (its best observed), openamt's telemetry and the wall
    time."""
    problem_name, method_name, setting_name, seed = task
    problem = PROBLEMS[problem_name]
    setting = ALL_SETTINGS[setting_name]
    warnings.simplefilter("ignore")  # peers' chatter; this is a worker process of ours
    start = time.perf_counter()
    method = build(method_name, problem.space, seed=seed, deterministic=problem.deterministic)
    run = run_asynchronously if setting.asynchronous else run_in_batches
    results = run(method, problem, setting, seed)
    seconds = time.perf_counter() - start
    finite = [(value, config) for config, value in results if value is not None]
    best = min(finite, key=lambda pair: pair[0]) if finite else None
    telemetry = method.telemetry()
    return {
        "problem": problem_name,
        "method": method_name,
        "setting": setting_name,
        "seed": seed,
        "observed": [value for _, value in results],
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


def run_in_batches(
    method: Method, problem: Problem, setting: Setting, seed: int
) -> list[tuple[Config, float | None]]:
    """``(config, observed value)`` per trial: synchronous batches of ``parallel``."""
    results: list[tuple[Config, float | None]] = []
    while len(results) < setting.trials:
        configs = method.ask(min(setting.parallel, setting.trials - len(results)))
        if not configs:
            break
        batch = []
        for config in configs:
            batch.append((config, problem.observe(config, seed=seed, index=len(results))))
            results.append(batch[-1])
        method.tell(batch)
    return results


def run_asynchronously(
    method: Method, problem: Problem, setting: Setting, seed: int
) -> list[tuple[Config, float | None]]:
    """``(config, observed value)`` per trial, in the order they started: up to
    ``parallel`` trials at a time, each result told when its trial ends, the freed slot
    filled at once. Trial ``i`` lasts ``durations[i]``, the same for every method."""
    durations = np.random.default_rng([seed, DURATION_STREAM]).lognormal(
        0.0, DURATION_SIGMA, setting.trials
    )
    results: list[tuple[Config, float | None]] = []
    running: list[tuple[float, int, str]] = []  # (end time, index, token), a heap
    now = 0.0
    while True:
        while len(running) < setting.parallel and len(results) < setting.trials:
            asked = method.ask_one()
            if asked is None:
                break
            token, config = asked
            index = len(results)
            results.append((config, problem.observe(config, seed=seed, index=index)))
            heapq.heappush(running, (now + float(durations[index]), index, token))
        if not running:
            return results
        now, index, token = heapq.heappop(running)
        method.tell_one(token, results[index][1])


def init_worker() -> None:
    """One thread per worker process: the workers already use every core."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)
