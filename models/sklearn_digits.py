"""Digits classifier: the quickstart trainer, a SageMaker script-mode program.

A multi-layer perceptron (scikit-learn) on the 8x8 handwritten digits that ship with
scikit-learn, so it needs no download and a trial takes seconds. Hyperparameters arrive as
`--name value` arguments, the model goes to `SM_MODEL_DIR`, and each epoch prints a line the
job's regexes can read:

    [Epoch 3] train: accuracy=0.912000 validation: accuracy=0.897778 time=0.041s

The defaults (plain SGD at a small learning rate, one hidden layer) learn slowly and stay well
below what a tuned learning rate and Adam reach in the same ten epochs, so tuning shows.

    python -m models.sklearn_digits --learning_rate 0.01 --optimizer adam --layers 2
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

OPTIMIZERS = ("sgd", "adam")
MAX_LAYERS = 4
VALIDATION_FRACTION = 0.25


# --- hyperparameters -------------------------------------------------------------------------


def _bounded(
    kind: type[int] | type[float], *, low: float, high: float | None = None, rule: str
) -> Callable[[str], int | float]:
    """An argparse type that names the value and the rule it broke. Integers may arrive as
    `3.0` (a searcher's float for an integer range) and are accepted when whole."""

    def parse(text: str) -> int | float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} must be {rule}") from None
        whole = value.is_integer()
        in_range = value >= low and (high is None or value <= high)
        if not math.isfinite(value) or not in_range or (kind is int and not whole):
            raise argparse.ArgumentTypeError(f"{text!r} must be {rule}")
        return int(value) if kind is int else value

    return parse


def parse_hyperparameters(argv: list[str] | None = None) -> argparse.Namespace:
    """Reads SageMaker-style arguments; ones this trainer does not know are reported and ignored
    (a tuning job may pass static hyperparameters meant for another trainer)."""
    parser = argparse.ArgumentParser(
        prog="python -m models.sklearn_digits", description=__doc__.split("\n\n")[0]
    )
    positive = _bounded(float, low=1e-12, rule="a number > 0")
    parser.add_argument("--learning_rate", type=positive, default=0.001, help="initial rate")
    parser.add_argument(
        "--layers",
        type=_bounded(int, low=1, high=MAX_LAYERS, rule=f"an integer from 1 to {MAX_LAYERS}"),
        default=1,
        help="hidden layers",
    )
    parser.add_argument(
        "--hidden_units",
        type=_bounded(int, low=1, high=4096, rule="an integer from 1 to 4096"),
        default=64,
        help="units per hidden layer",
    )
    parser.add_argument(
        "--optimizer", type=str.lower, choices=OPTIMIZERS, default="sgd", help="sgd or adam"
    )
    parser.add_argument(
        "--alpha", type=_bounded(float, low=0.0, rule="a number >= 0"), default=1e-4, help="L2"
    )
    parser.add_argument("--epochs", type=_bounded(int, low=1, rule="an integer >= 1"), default=10)
    parser.add_argument(
        "--batch_size", type=_bounded(int, low=1, rule="an integer >= 1"), default=64
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="data split, initialisation and shuffling"
    )
    parser.add_argument(
        "--model_dir",
        default=os.environ.get("SM_MODEL_DIR"),
        help="where model.pkl goes (default: $SM_MODEL_DIR; not saved if neither is set)",
    )
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        print(f"sklearn_digits: ignoring unknown arguments {unknown}", file=sys.stderr)
    return args


# --- data ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Digits:
    """Pixels scaled to [0, 1] (`n x 64`), labels 0-9 (`n`), split once by `seed`."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


def load_data(*, seed: int) -> Digits:
    """The 1,797 bundled images; a stratified split so every class is in both halves."""
    images, labels = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(
        images / 16.0,
        labels,
        test_size=VALIDATION_FRACTION,
        stratify=labels,
        random_state=seed,
    )
    return Digits(x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val)


# --- network ---------------------------------------------------------------------------------


def build_model(args: argparse.Namespace) -> MLPClassifier:
    """A ReLU perceptron; `partial_fit` below runs exactly one epoch per call."""
    return MLPClassifier(
        hidden_layer_sizes=(args.hidden_units,) * args.layers,
        solver=args.optimizer,
        learning_rate_init=args.learning_rate,
        alpha=args.alpha,
        batch_size=args.batch_size,
        shuffle=True,
        random_state=args.seed,
    )


# --- training loop and evaluation ------------------------------------------------------------


def train(args: argparse.Namespace, data: Digits) -> tuple[MLPClassifier, float]:
    """Trains epoch by epoch, printing each epoch's metrics as it ends; returns the model and
    its final validation accuracy (the value a tuning job takes as the objective)."""
    model = build_model(args)
    classes = np.unique(data.y_train)
    val_accuracy = 0.0
    for epoch in range(1, args.epochs + 1):
        started = time.perf_counter()
        with warnings.catch_warnings():
            # A diverging learning rate is a legitimate (bad) trial, not something to shout at.
            warnings.simplefilter("ignore", category=ConvergenceWarning)
            warnings.simplefilter("ignore", category=RuntimeWarning)
            model.partial_fit(data.x_train, data.y_train, classes=classes)
        train_accuracy = model.score(data.x_train, data.y_train)
        val_accuracy = model.score(data.x_val, data.y_val)
        print(
            f"[Epoch {epoch}] train: accuracy={train_accuracy:.6f} "
            f"validation: accuracy={val_accuracy:.6f} time={time.perf_counter() - started:.3f}s",
            flush=True,
        )
    return model, val_accuracy


def save_model(model: MLPClassifier, model_dir: str | None) -> Path | None:
    if not model_dir:
        print("sklearn_digits: no SM_MODEL_DIR or --model_dir; model not saved", file=sys.stderr)
        return None
    path = Path(model_dir) / "model.pkl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:
        pickle.dump(model, file)
    return path


def main(argv: list[str] | None = None) -> int:
    args = parse_hyperparameters(argv)
    data = load_data(seed=args.seed)
    model, _ = train(args, data)
    save_model(model, args.model_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
