"""Scores against frozen references, and paired per-seed comparisons.

Score of a run = 100 x (1 - normalised regret), Bayesmark's definition, with
``regret = (picked - optimum) / (random median - optimum)``: ``picked`` is the noise-free
value of the config with the best observed value, ``optimum`` the known global minimum (or
the best value ever found, frozen), ``random median`` the median of uniform random draws
(crashes counting as worse than anything), frozen too. 100 = found the optimum, 0 = a
typical random config. Both references live in ``references.json`` and do not depend on
which methods ran, so scores from different invocations compare.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.hpo.problems import PROBLEMS

REFERENCES_PATH = Path(__file__).with_name("references.json")
#: Uniform random draws behind each frozen random median.
RANDOM_DRAWS = {"default": 10_000, "svm_wine": 1_000, "rf_breast_cancer": 1_000}


def load_references() -> dict[str, dict[str, Any]]:
    return json.loads(REFERENCES_PATH.read_text())


def score(run: dict[str, Any], references: dict[str, dict[str, Any]]) -> float:
    reference = references[run["problem"]]
    optimum, median = reference["optimum"], reference["random_median"]
    picked = run["picked_true_value"]
    if picked is None:  # every trial crashed: no better than random
        return 0.0
    return 100.0 * (1.0 - (picked - optimum) / (median - optimum))


@dataclass(frozen=True)
class Paired:
    """Mean per-seed difference ``a - b`` and its 95% t-interval (n seeds)."""

    mean: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:+.1f} [{self.low:+.1f}, {self.high:+.1f}]"


def paired(a: dict[int, float], b: dict[int, float]) -> Paired | None:
    """The paired comparison over the seeds both have (None with fewer than 2)."""
    from scipy import stats

    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        return None
    diffs = np.array([a[s] - b[s] for s in seeds])
    mean = float(diffs.mean())
    half = float(stats.t.ppf(0.975, len(diffs) - 1) * diffs.std(ddof=1) / math.sqrt(len(diffs)))
    return Paired(mean, mean - half, mean + half, len(diffs))


def scores_by(
    runs: Iterable[dict[str, Any]], references: dict[str, dict[str, Any]]
) -> dict[tuple[str, str], dict[str, dict[int, float]]]:
    """``{(setting, problem): {method: {seed: score}}}``."""
    table: dict[tuple[str, str], dict[str, dict[int, float]]] = {}
    for run in runs:
        cell = table.setdefault((run["setting"], run["problem"]), {})
        cell.setdefault(run["method"], {})[run["seed"]] = score(run, references)
    return table


def mean(values: Iterable[float]) -> float:
    return statistics.mean(list(values))


# ------------------------------------------------------------ freezing them
def freeze_references(reference_runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Random medians from uniform draws (seeded) and optima: known ones, else the best
    noise-free value of the draws and of ``reference_runs`` (long runs made for this)."""
    from search import SearchSpace

    references = {}
    for name, problem in PROBLEMS.items():
        space = SearchSpace.from_config(problem.space)
        rng = np.random.default_rng(12345)
        draws = RANDOM_DRAWS.get(name, RANDOM_DRAWS["default"])
        values = []
        for _ in range(draws):
            value = problem.objective(space.from_unit(rng.random(space.dimension)))
            values.append(math.inf if value is None else value)
        if problem.optimum is not None:
            optimum, how = problem.optimum, "known global minimum"
        else:
            found = [r["picked_true_value"] for r in reference_runs if r["problem"] == name]
            optimum = min([v for v in values if math.isfinite(v)] + found)
            how = (
                f"best of {draws} random draws and {len(found)} long reference runs "
                "(openamt and Optuna TPE, 100 sequential trials)"
            )
        references[name] = {
            "optimum": optimum,
            "optimum_from": how,
            "random_median": float(np.median(values)),
            "random_draws": draws,
            "crash_fraction": float(np.mean([not math.isfinite(v) for v in values])),
        }
    return references
