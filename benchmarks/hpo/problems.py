"""Benchmark problems: minimisation over a job-file style search space.

Each problem has a noise-free objective (``None`` where the "trainer" crashes) and,
for noisy problems, a noise level: methods see ``objective + noise``, scores use the
noise-free value of the config each method would pick (its best observed one).

Kinds covered: smooth synthetic functions (Branin, Hartmann6), a multi-modal one (Ackley,
5-D), a ResNet-like response surface with momentum on a reverse-logarithmic scale and a
region where training diverges and the trainer crashes (also in a noisy variant), a
10-D mixed space (continuous, log-scaled, integer and categorical parameters), and cheap
scikit-learn models (an RBF SVM and a random forest).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

Config = dict[str, Any]


@dataclass(frozen=True)
class Problem:
    """A minimisation problem; ``optimum`` is the known global minimum, or None when the
    frozen reference file holds the best value found for it."""

    name: str
    space: dict[str, Any]
    objective: Callable[[Config], float | None]
    optimum: float | None = None
    noise_sd: float = 0.0
    deterministic: bool = True

    def observe(self, config: Config, *, seed: int, index: int) -> float | None:
        """What a method sees for its ``index``-th evaluation in run ``seed``: the
        objective plus seeded Gaussian noise, or None if the trainer crashed."""
        value = self.objective(config)
        if value is None or not self.noise_sd:
            return value
        rng = np.random.default_rng([seed, index, 7919])
        return value + self.noise_sd * float(rng.normal())


def _continuous(lo: float, hi: float, scaling: str = "Linear") -> dict[str, Any]:
    return {"type": "Continuous", "min_value": lo, "max_value": hi, "scaling_type": scaling}


def _integer(lo: int, hi: int, scaling: str = "Linear") -> dict[str, Any]:
    return {"type": "Integer", "min_value": lo, "max_value": hi, "scaling_type": scaling}


def _categorical(*values: str) -> dict[str, Any]:
    return {"type": "Categorical", "values": list(values)}


# ----------------------------------------------------------------- synthetic
def branin(config: Config) -> float:
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


def hartmann6(config: Config) -> float:
    x = np.array([config[f"x{i}"] for i in range(1, 7)])
    inner = (_HARTMANN_A * (x - _HARTMANN_P) ** 2).sum(axis=1)
    return float(-(_HARTMANN_ALPHA * np.exp(-inner)).sum())


def ackley5(config: Config) -> float:
    """Ackley's multi-modal function on [-5, 10]^5 (minimum 0 at the origin)."""
    x = np.array([config[f"x{i}"] for i in range(1, 6)])
    d = len(x)
    return float(
        -20 * math.exp(-0.2 * math.sqrt((x**2).sum() / d))
        - math.exp(np.cos(2 * math.pi * x).sum() / d)
        + 20
        + math.e
    )


def resnet_surface(config: Config) -> float | None:
    """Validation error of a ResNet-like trainer (0.05 at best, 0.9 for nonsense):
    the effective step ``lr / (1 - momentum)`` matters most, weight decay interacts
    with it, momentum itself prefers about 0.9. Training diverges, and the trainer
    crashes, once the effective step exceeds 8."""
    lr, momentum, wd = config["learning_rate"], config["momentum"], config["wd"]
    step = lr / (1.0 - momentum)
    if step > 8.0:
        return None
    a = math.log10(step) / 0.5
    w = (math.log10(wd) + 3.3) / 0.8
    m = (math.log10(1.0 - momentum) + 1.0) / 0.7
    q = a * a + w * w + m * m + 0.6 * a * w
    return 0.9 - 0.85 * math.exp(-0.5 * q)


_MIXED_TARGETS = {
    "a": (0.2, 0.8, 0.5, 0.3, 0.6),
    "b": (0.7, 0.3, 0.4, 0.8, 0.2),
    "c": (0.5, 0.5, 0.9, 0.1, 0.5),
    "d": (0.1, 0.2, 0.3, 0.6, 0.9),
}
_MIXED_OFFSET = {"a": 0.0, "b": 0.15, "c": 0.3, "d": 0.5}
_MIXED_PENALTY = {"x": 0.0, "y": 0.25, "z": 0.6}
_MIXED_WEIGHTS = (1.0, 2.0, 1.5, 0.8, 1.2)


def mixed10(config: Config) -> float:
    """A 10-D mixed function (minimum 0): five continuous parameters whose best values
    depend on a categorical, a log-scaled one, two integers (one log-scaled), and a
    second categorical with an additive effect."""
    kind = config["kind"]
    u = np.array([config[f"u{i}"] for i in range(1, 6)])
    t = np.array(_MIXED_TARGETS[kind])
    value = float((np.array(_MIXED_WEIGHTS) * (u - t) ** 2).sum())
    value += 0.5 * (u[0] - t[0]) * (u[1] - t[1])
    value += 0.25 * (math.log10(config["rate"]) + 2.0) ** 2
    value += ((config["depth"] - 7) / 10.0) ** 2
    value += (math.log10(config["width"]) - math.log10(30.0)) ** 2
    return value + _MIXED_OFFSET[kind] + _MIXED_PENALTY[config["style"]]


# -------------------------------------------------------------- scikit-learn
@functools.cache
def _dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets

    loader = {"wine": datasets.load_wine, "breast_cancer": datasets.load_breast_cancer}[name]
    return loader(return_X_y=True)


def svm_wine(config: Config) -> float:
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
    return float(-cross_val_score(model, x, y, cv=folds, scoring="neg_log_loss").mean())


def rf_breast_cancer(config: Config) -> float:
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
    return float(-cross_val_score(model, x, y, cv=folds, scoring="neg_log_loss").mean())


_RESNET_SPACE = {
    "learning_rate": _continuous(1e-3, 1.0, "Logarithmic"),
    "momentum": _continuous(0.0, 0.999, "ReverseLogarithmic"),
    "wd": _continuous(1e-6, 1e-2, "Logarithmic"),
}

PROBLEMS: dict[str, Problem] = {
    problem.name: problem
    for problem in (
        Problem("branin", {"x1": _continuous(-5, 10), "x2": _continuous(0, 15)}, branin, 0.397887),
        Problem(
            "hartmann6", {f"x{i}": _continuous(0.0, 1.0) for i in range(1, 7)}, hartmann6, -3.32237
        ),
        Problem("ackley5", {f"x{i}": _continuous(-5.0, 10.0) for i in range(1, 6)}, ackley5, 0.0),
        Problem("resnet_crash", _RESNET_SPACE, resnet_surface, 0.05),
        Problem(
            "resnet_noisy",
            _RESNET_SPACE,
            resnet_surface,
            0.05,
            noise_sd=0.02,
            deterministic=False,
        ),
        Problem(
            "mixed10",
            {
                **{f"u{i}": _continuous(0.0, 1.0) for i in range(1, 6)},
                "rate": _continuous(1e-4, 1.0, "Logarithmic"),
                "depth": _integer(1, 20),
                "width": _integer(1, 100, "Logarithmic"),
                "kind": _categorical("a", "b", "c", "d"),
                "style": _categorical("x", "y", "z"),
            },
            mixed10,
            0.0,
        ),
        Problem(
            "svm_wine",
            {
                "C": _continuous(1e-3, 1e3, "Logarithmic"),
                "gamma": _continuous(1e-5, 10, "Logarithmic"),
            },
            svm_wine,
        ),
        Problem(
            "rf_breast_cancer",
            {
                "max_depth": _integer(1, 16),
                "min_samples_split": _integer(2, 32, "Logarithmic"),
                "max_features": _continuous(0.05, 1.0),
                "criterion": _categorical("gini", "entropy"),
            },
            rf_breast_cancer,
        ),
    )
}
