"""HPO quality: Bayesmark-style scores of openamt's searchers against Optuna's samplers.

Score per run = 100 x (1 - normalised simple regret), where
``regret = (best found - optimum) / (median of random single draws - optimum)``: 100 means
the optimum was found, 0 means no better than a typical random config. The optimum is
the known global minimum for Branin and Hartmann6, and the best value any method found
in this run for the scikit-learn problems (as Bayesmark does). The median of random
draws comes from 10,000 uniform draws for the synthetic functions and from every
Random@120 evaluation of this run for the scikit-learn problems.

Methods (budgets in trials):
  bayesian@30x2  openamt Bayesian, 30 trials, 2 in parallel (asynchronous: each
                 suggestion sees the other worker's trial as pending);
  random@30      openamt Random, 30 trials (the first 30 suggestions of random@120x8:
                 a random searcher's suggestions do not depend on observations);
  random@120x8   openamt Random, 120 trials, 8 in parallel (the reference comparison);
  tpe@30         Optuna TPESampler, defaults, sequential;
  gp@30          Optuna GPSampler, defaults, sequential.

Run from the repository root:
    python benchmarks/hpo_quality.py            # 5 seeds, every problem (< 15 min, 2 cores)
    python benchmarks/hpo_quality.py --quick    # 1 seed (about a minute)
Needs the ``bench`` extra (scikit-learn, optuna).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import multiprocessing
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from search import SearchSpace, make_searcher  # noqa: E402

METHODS = ("bayesian@30x2", "random@30", "random@120x8", "tpe@30", "gp@30")
RANDOM_DRAWS_FOR_MEDIAN = 10_000


@dataclass(frozen=True)
class Problem:
    """A minimisation problem over a job-file style search space."""

    name: str
    space: dict[str, Any]
    objective: Callable[[dict[str, Any]], float]
    optimum: float | None  # known global minimum, or None (estimated from the run)


# ----------------------------------------------------------------- objectives
def branin(config: dict[str, Any]) -> float:
    x1, x2 = config["x1"], config["x2"]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


_HARTMANN_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
_HARTMANN_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)
_HARTMANN_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(config: dict[str, Any]) -> float:
    x = np.array([config[f"x{i}"] for i in range(1, 7)])
    inner = (_HARTMANN_A * (x - _HARTMANN_P) ** 2).sum(axis=1)
    return float(-(_HARTMANN_ALPHA * np.exp(-inner)).sum())


@functools.cache
def _dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets

    loader = {
        "wine": datasets.load_wine,
        "digits": datasets.load_digits,
        "breast_cancer": datasets.load_breast_cancer,
    }[name]
    return loader(return_X_y=True)


def svm_wine(config: dict[str, Any]) -> float:
    """3-fold cross-validated log loss of an RBF SVC on the standardised wine data."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    x, y = _dataset("wine")
    model = make_pipeline(
        StandardScaler(),
        SVC(C=config["C"], gamma=config["gamma"], probability=True, random_state=0),
    )
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    return -cross_val_score(model, x, y, cv=folds, scoring="neg_log_loss").mean()


def mlp_digits(config: dict[str, Any]) -> float:
    """Validation log loss of a one-hidden-layer MLP trained 10 epochs on 600 digits
    (validated on 600 others)."""
    from sklearn.metrics import log_loss
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    x, y = _dataset("digits")
    x_train, x_valid, y_train, y_valid = train_test_split(
        x / 16.0, y, train_size=600, test_size=600, random_state=0, stratify=y
    )
    model = MLPClassifier(
        hidden_layer_sizes=(config["hidden_units"],),
        alpha=config["alpha"],
        learning_rate_init=config["learning_rate_init"],
        activation=config["activation"],
        batch_size=128,
        max_iter=10,
        random_state=0,
    )
    model.fit(x_train, y_train)
    return log_loss(y_valid, model.predict_proba(x_valid))


def rf_breast_cancer(config: dict[str, Any]) -> float:
    """3-fold cross-validated log loss of a 10-tree random forest on breast_cancer."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    x, y = _dataset("breast_cancer")
    model = RandomForestClassifier(
        n_estimators=10,
        max_depth=config["max_depth"],
        min_samples_split=config["min_samples_split"],
        max_features=config["max_features"],
        criterion=config["criterion"],
        random_state=0,
    )
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    return -cross_val_score(model, x, y, cv=folds, scoring="neg_log_loss").mean()


def _continuous(lo: float, hi: float, scaling: str = "Linear") -> dict[str, Any]:
    return {"type": "Continuous", "min_value": lo, "max_value": hi, "scaling_type": scaling}


def _integer(lo: int, hi: int, scaling: str = "Linear") -> dict[str, Any]:
    return {"type": "Integer", "min_value": lo, "max_value": hi, "scaling_type": scaling}


PROBLEMS = {
    problem.name: problem
    for problem in (
        Problem("branin", {"x1": _continuous(-5, 10), "x2": _continuous(0, 15)}, branin, 0.397887),
        Problem(
            "hartmann6",
            {f"x{i}": _continuous(0.0, 1.0) for i in range(1, 7)},
            hartmann6,
            -3.322368,
        ),
        Problem(
            "svm_wine",
            {
                "C": _continuous(1e-3, 1e3, "Logarithmic"),
                "gamma": _continuous(1e-5, 10, "Logarithmic"),
            },
            svm_wine,
            None,
        ),
        Problem(
            "mlp_digits",
            {
                "hidden_units": _integer(8, 128, "Logarithmic"),
                "alpha": _continuous(1e-6, 1e-1, "Logarithmic"),
                "learning_rate_init": _continuous(1e-4, 0.3, "Logarithmic"),
                "activation": {"type": "Categorical", "values": ["relu", "tanh", "logistic"]},
            },
            mlp_digits,
            None,
        ),
        Problem(
            "rf_breast_cancer",
            {
                "max_depth": _integer(1, 16),
                "min_samples_split": _integer(2, 32, "Logarithmic"),
                "max_features": _continuous(0.05, 1.0),
                "criterion": {"type": "Categorical", "values": ["gini", "entropy"]},
            },
            rf_breast_cancer,
            None,
        ),
    )
}


# -------------------------------------------------------------------- methods
def run_openamt(
    strategy: str, problem: Problem, seed: int, budget: int, parallel: int
) -> list[float]:
    """Objective values in completion order; ``parallel`` workers finish in FIFO order."""
    space = SearchSpace.from_config(problem.space)
    searcher = make_searcher(strategy, space, objective_type="Minimize", seed=seed)
    values: list[float] = []
    running: list[str] = []
    suggested = 0
    while len(values) < budget:
        while len(running) < parallel and suggested < budget:
            trial_id = f"trial-{suggested}"
            if searcher.suggest(trial_id) is None:
                break
            running.append(trial_id)
            suggested += 1
        if not running:
            break
        trial_id = running.pop(0)
        value = problem.objective(dict(searcher.pending[trial_id]))
        searcher.observe(trial_id, value)
        values.append(value)
    return values


def _optuna_distributions(space_config: dict[str, Any]) -> dict[str, Any]:
    import optuna

    distributions = {}
    for name, entry in space_config.items():
        log = entry.get("scaling_type") == "Logarithmic"
        if entry["type"] == "Continuous":
            distributions[name] = optuna.distributions.FloatDistribution(
                entry["min_value"], entry["max_value"], log=log
            )
        elif entry["type"] == "Integer":
            distributions[name] = optuna.distributions.IntDistribution(
                entry["min_value"], entry["max_value"], log=log
            )
        else:
            distributions[name] = optuna.distributions.CategoricalDistribution(entry["values"])
    return distributions


def run_optuna(sampler_name: str, problem: Problem, seed: int, budget: int) -> list[float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = {"tpe": optuna.samplers.TPESampler, "gp": optuna.samplers.GPSampler}[sampler_name]
    study = optuna.create_study(direction="minimize", sampler=sampler(seed=seed))
    distributions = _optuna_distributions(problem.space)
    values = []
    for _ in range(budget):
        trial = study.ask(distributions)
        value = problem.objective(dict(trial.params))
        study.tell(trial, value)
        values.append(value)
    return values


def run_task(task: tuple[str, str, int]) -> dict[str, Any]:
    """One (problem, method, seed) run: its objective values and wall time."""
    problem_name, method, seed = task
    problem = PROBLEMS[problem_name]
    warnings.simplefilter("ignore")
    start = time.perf_counter()
    if method == "bayesian@30x2":
        values = run_openamt("Bayesian", problem, seed, budget=30, parallel=2)
    elif method == "random@120x8":
        values = run_openamt("Random", problem, seed, budget=120, parallel=8)
    else:
        values = run_optuna(method.split("@")[0], problem, seed, budget=30)
    seconds = time.perf_counter() - start
    return {
        "problem": problem_name,
        "method": method,
        "seed": seed,
        "values": values,
        "seconds": seconds,
    }


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


# -------------------------------------------------------------------- scoring
def random_median(problem: Problem) -> float:
    space = SearchSpace.from_config(problem.space)
    rng = np.random.default_rng(12345)
    draws = [
        problem.objective(space.from_unit(rng.random(space.dimension)))
        for _ in range(RANDOM_DRAWS_FOR_MEDIAN)
    ]
    return float(np.median(draws))


def score_runs(runs: list[dict[str, Any]]) -> dict[str, dict[str, list[float]]]:
    """``{problem: {method: [score per seed]}}``; random@30 is cut from random@120x8."""
    for run in [r for r in runs if r["method"] == "random@120x8"]:
        runs.append({**run, "method": "random@30", "values": run["values"][:30]})
    scores: dict[str, dict[str, list[float]]] = {}
    for name in sorted({r["problem"] for r in runs}, key=list(PROBLEMS).index):
        problem = PROBLEMS[name]
        mine = [r for r in runs if r["problem"] == name]
        if problem.optimum is not None:
            optimum, median = problem.optimum, random_median(problem)
        else:
            optimum = min(min(r["values"]) for r in mine)
            median = float(
                np.median([v for r in mine if r["method"] == "random@120x8" for v in r["values"]])
            )
        scores[name] = {}
        for method in METHODS:
            seeds = sorted((r for r in mine if r["method"] == method), key=lambda r: r["seed"])
            scores[name][method] = [
                100.0 * (1.0 - (min(r["values"]) - optimum) / (median - optimum)) for r in seeds
            ]
    return scores


def report(scores: dict[str, dict[str, list[float]]], runs: list[dict[str, Any]]) -> str:
    """A markdown table of the methods that ran (``--methods`` may pick a subset)."""
    methods = [m for m in METHODS if all(s[m] for s in scores.values())]
    lines = ["| problem | " + " | ".join(methods) + " |", "|" + "---|" * (len(methods) + 1)]
    for name, by_method in scores.items():
        cells = [f"{statistics.mean(by_method[m]):.1f}" for m in methods]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    means = {m: statistics.mean(statistics.mean(s[m]) for s in scores.values()) for m in methods}
    lines.append("| **mean** | " + " | ".join(f"**{means[m]:.1f}**" for m in methods) + " |")
    seconds = {
        m: statistics.mean(r["seconds"] for r in runs if r["method"] == m)
        for m in methods
        if m != "random@30"
    }
    lines.append("")
    lines.append(
        "Mean wall time per run (s): " + ", ".join(f"{m} {s:.1f}" for m, s in seconds.items())
    )
    if "bayesian@30x2" not in means:
        return "\n".join(lines)
    wins = sum(
        statistics.mean(s["bayesian@30x2"]) > statistics.mean(s["random@120x8"])
        for s in scores.values()
    )
    summary = (
        f"bayesian@30x2 beats random@120x8 on {wins}/{len(scores)} problems; mean "
        f"{means['bayesian@30x2']:.1f} vs random@120x8 {means['random@120x8']:.1f}"
    )
    optuna = [means[m] for m in ("tpe@30", "gp@30") if m in means]
    if optuna:
        summary += f" and best Optuna {max(optuna):.1f}"
    lines.append(summary)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one seed (about a minute)")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (default 5)")
    parser.add_argument("--problems", nargs="*", default=list(PROBLEMS), choices=list(PROBLEMS))
    parser.add_argument("--methods", nargs="*", default=None, help="subset of methods to run")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--json", type=Path, default=None, help="write raw results here")
    args = parser.parse_args(argv)
    seeds = args.seeds or (1 if args.quick else 5)
    methods = [m for m in (args.methods or METHODS) if m != "random@30"]
    if "random@120x8" not in methods:
        methods.append("random@120x8")  # needed for scoring (median of random draws)
    tasks = [(p, m, s) for s in range(seeds) for p in args.problems for m in methods]
    # Longest runs first keeps both workers busy until the end.
    tasks.sort(key=lambda t: (t[1] not in ("bayesian@30x2", "gp@30"), t[0] != "mlp_digits"))
    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(args.workers, initializer=_init_worker) as pool:
        runs = pool.map(run_task, tasks, chunksize=1)
    elapsed = time.perf_counter() - start
    if args.json:
        args.json.write_text(json.dumps(runs))
    scores = score_runs(runs)
    print(report(scores, runs))
    print(f"\n{len(tasks)} runs, {seeds} seed(s), {args.workers} workers, {elapsed:.0f} s wall")


if __name__ == "__main__":
    main()
