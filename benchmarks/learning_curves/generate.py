"""Learning-curve tables from real training: every configuration of a grid, epoch by epoch.

Each problem trains small PyTorch networks on a real data set that ships with scikit-learn,
for every configuration of a full-factorial grid of hyperparameters, and records after each
epoch the validation accuracy and the measured seconds of that epoch (training plus
evaluation). A multi-fidelity benchmark then replays these curves instead of training
(``simulator.py``): a trial stopped after 3 epochs costs what those 3 epochs really cost.

Problems (real data only; no ``make_classification``):
  digits_mlp      8x8 digits, 1,197 train / 600 validation, MLP, 252 configs, 81 epochs;
  digits_cnn      the same images as 1x8x8 tensors, a two-layer CNN, 216 configs, 27 epochs;
  breast_cancer   569 tumours, 30 features, MLP, 3-fold CV, 504 configs, 27 epochs;
  wine            178 wines, 13 features, MLP, 3-fold CV, 504 configs, 81 epochs.

Every network trains with SGD (Nesterov momentum 0.9) and a cosine learning-rate schedule
over the problem's full epoch budget, as a real trainer told ``epochs=max`` would: a trial
stopped early sees the schedule unfinished, so low-fidelity rankings are honest guesses,
not foregone conclusions.

Run from the repository root (two worker processes with one torch thread each; about an
hour on 2 cores that other jobs were using too):
    nice -n 10 .venv/bin/python benchmarks/learning_curves/generate.py
    nice -n 10 .venv/bin/python benchmarks/learning_curves/generate.py --problems wine
Writes ``benchmarks/learning_curves/<problem>.npz`` (see ``table.py`` for the format).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import multiprocessing
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn

HERE = Path(__file__).resolve().parent
FORMAT = "openamt.learning_curves/1"


@dataclass(frozen=True)
class Problem:
    """A grid of hyperparameters over one data set and network family."""

    name: str
    description: str
    max_epochs: int
    min_epochs: int  # the smallest rung a multi-fidelity method should use
    grid: dict[str, tuple[float, ...]]  # hyperparameter -> its values, in order
    network: Callable[[dict[str, float], int], nn.Module]  # (config, n_features) -> net
    splits: Callable[[], list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]]


def _log_grid(low_exponent: float, high_exponent: float, count: int) -> tuple[float, ...]:
    return tuple(float(f"{v:.4g}") for v in np.logspace(low_exponent, high_exponent, count))


# --- data: (x_train, y_train, x_valid, y_valid) per fold, standardised on train only ----------
def _standardised(x_train, y_train, x_valid, y_valid):
    scaler = StandardScaler().fit(x_train)
    return (
        scaler.transform(x_train).astype(np.float32),
        y_train.astype(np.int64),
        scaler.transform(x_valid).astype(np.float32),
        y_valid.astype(np.int64),
    )


def digits_holdout() -> list[tuple[np.ndarray, ...]]:
    x, y = load_digits(return_X_y=True)
    x_train, x_valid, y_train, y_valid = train_test_split(
        x, y, test_size=600, stratify=y, random_state=0
    )
    return [_standardised(x_train, y_train, x_valid, y_valid)]


def cross_validation(loader: Callable[..., Any]) -> Callable[[], list[tuple[np.ndarray, ...]]]:
    def splits() -> list[tuple[np.ndarray, ...]]:
        x, y = loader(return_X_y=True)
        folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=0).split(x, y)
        return [_standardised(x[a], y[a], x[b], y[b]) for a, b in folds]

    return splits


# --- networks ---------------------------------------------------------------------------------
def mlp(config: dict[str, float], n_features: int, n_classes: int) -> nn.Module:
    layers: list[nn.Module] = []
    width, previous = int(config["width"]), n_features
    for _ in range(int(config["depth"])):
        layers += [nn.Linear(previous, width), nn.ReLU()]
        previous = width
    layers.append(nn.Linear(previous, n_classes))
    return nn.Sequential(*layers)


def small_cnn(config: dict[str, float], n_features: int) -> nn.Module:
    channels = int(config["channels"])
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, channels, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(channels, 2 * channels, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(config["dropout"]),
        nn.Linear(2 * channels * 16, 10),
    )


PROBLEMS: dict[str, Problem] = {
    "digits_mlp": Problem(
        name="digits_mlp",
        description="scikit-learn digits (1,797 8x8 images), 1,197 train / 600 validation, MLP",
        max_epochs=81,
        min_epochs=3,
        grid={
            "learning_rate": _log_grid(-3, 0, 7),
            "batch_size": (32, 128),
            "width": (16, 64, 256),
            "depth": (1, 2),
            "weight_decay": (0.0, 1e-3, 1e-2),
        },
        network=lambda c, n: mlp(c, n, 10),
        splits=digits_holdout,
    ),
    "digits_cnn": Problem(
        name="digits_cnn",
        description="scikit-learn digits as 1x8x8 images, 1,197 train / 600 validation, 2-conv CNN",
        max_epochs=27,
        min_epochs=1,
        grid={
            "learning_rate": _log_grid(-3, -0.5, 6),
            "batch_size": (32, 128),
            "channels": (4, 8, 16),
            "weight_decay": (0.0, 1e-3),
            "dropout": (0.0, 0.25, 0.5),
        },
        network=small_cnn,
        splits=digits_holdout,
    ),
    "breast_cancer": Problem(
        name="breast_cancer",
        description="scikit-learn breast cancer (569 tumours, 30 features), 3-fold CV, MLP",
        max_epochs=27,
        min_epochs=1,
        grid={
            "learning_rate": _log_grid(-3.5, -0.5, 7),
            "batch_size": (16, 32, 64),
            "width": (8, 32, 128),
            "depth": (1, 2),
            "weight_decay": (0.0, 1e-4, 1e-3, 1e-2),
        },
        network=lambda c, n: mlp(c, n, 2),
        splits=cross_validation(load_breast_cancer),
    ),
    "wine": Problem(
        name="wine",
        description="scikit-learn wine (178 wines, 13 features), 3-fold CV, MLP",
        max_epochs=81,
        min_epochs=3,
        grid={
            "learning_rate": _log_grid(-3.5, -0.5, 7),
            "batch_size": (8, 16, 32),
            "width": (8, 32, 128),
            "depth": (1, 2),
            "weight_decay": (0.0, 1e-4, 1e-3, 1e-2),
        },
        network=lambda c, n: mlp(c, n, 3),
        splits=cross_validation(load_wine),
    ),
}


def configurations(problem: Problem) -> list[dict[str, float]]:
    """Every grid configuration, in lexicographic order of the grid levels."""
    names = list(problem.grid)
    return [
        dict(zip(names, values, strict=True))
        for values in itertools.product(*(problem.grid[n] for n in names))
    ]


# --- training ---------------------------------------------------------------------------------
def train_curve(problem_name: str, index: int) -> tuple[int, np.ndarray, np.ndarray]:
    """Train configuration ``index`` of the problem for ``max_epochs``: validation accuracy
    (mean over folds) and wall seconds (all folds) of each epoch, both of shape ``max_epochs``."""
    problem = PROBLEMS[problem_name]
    config = configurations(problem)[index]
    folds = _DATA[problem_name]
    torch.manual_seed(index)  # this worker process only: initial weights, dropout
    shuffle = torch.Generator().manual_seed(index)
    runs = []
    for x_train, y_train, x_valid, y_valid in folds:
        net = problem.network(config, x_train.shape[1])
        optimizer = torch.optim.SGD(
            net.parameters(),
            lr=config["learning_rate"],
            momentum=0.9,
            nesterov=True,
            weight_decay=config["weight_decay"],
        )
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, problem.max_epochs)
        tensors = [torch.from_numpy(a) for a in (x_train, y_train, x_valid, y_valid)]
        runs.append((net, optimizer, schedule, tensors))
    accuracy = np.zeros(problem.max_epochs, dtype=np.float32)
    seconds = np.zeros(problem.max_epochs, dtype=np.float32)
    loss_fn = nn.CrossEntropyLoss()
    batch = int(config["batch_size"])
    for epoch in range(problem.max_epochs):
        start = time.perf_counter()
        correct = total = 0
        for net, optimizer, schedule, (xt, yt, xv, yv) in runs:
            net.train()
            order = torch.randperm(len(xt), generator=shuffle)
            for first in range(0, len(xt), batch):
                rows = order[first : first + batch]
                optimizer.zero_grad(set_to_none=True)
                loss_fn(net(xt[rows]), yt[rows]).backward()
                optimizer.step()
            schedule.step()
            net.eval()
            with torch.no_grad():
                # A diverged network (NaN weights) predicts class 0, as a real one would.
                predictions = torch.nan_to_num(net(xv), nan=0.0).argmax(dim=1)
            correct += int((predictions == yv).sum())
            total += len(yv)
        seconds[epoch] = time.perf_counter() - start
        accuracy[epoch] = correct / total
    return index, accuracy, seconds


_DATA: dict[str, list[tuple[np.ndarray, ...]]] = {}


def _train_task(task: tuple[str, int]) -> tuple[int, np.ndarray, np.ndarray]:
    return train_curve(*task)


def _init_worker(problem_name: str) -> None:
    torch.set_num_threads(1)
    _DATA[problem_name] = PROBLEMS[problem_name].splits()


def generate(problem: Problem, *, workers: int, limit: int | None, out: Path) -> Path:
    configs = configurations(problem)
    indices = list(range(len(configs)))[:limit]
    accuracy = np.zeros((len(indices), problem.max_epochs), dtype=np.float32)
    seconds = np.zeros_like(accuracy)
    start = time.time()
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_init_worker, initargs=(problem.name,)) as pool:
        tasks = [(problem.name, i) for i in indices]
        results = pool.imap_unordered(_train_task, tasks, chunksize=4)
        for done, (i, acc, sec) in enumerate(results, 1):
            accuracy[i], seconds[i] = acc, sec
            if done % 100 == 0:
                print(f"  {done}/{len(tasks)} after {time.time() - start:.0f} s", flush=True)
    elapsed = time.time() - start
    meta = {
        "format": FORMAT,
        "problem": problem.name,
        "description": problem.description,
        "max_epochs": problem.max_epochs,
        "min_epochs": problem.min_epochs,
        "grid": {name: list(values) for name, values in problem.grid.items()},
        "configurations": len(indices),
        "complete_grid": limit is None,
        "optimizer": "SGD, Nesterov momentum 0.9, cosine schedule over max_epochs",
        "generated_with": {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
            "workers": workers,
            "torch_threads_per_worker": 1,
            "wall_seconds": round(elapsed, 1),
        },
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{problem.name}.npz"
    np.savez_compressed(
        path,
        accuracy=accuracy,
        seconds=seconds.astype(np.float16),
        meta=np.array(json.dumps(meta)),
    )
    best = accuracy[:, -1].max()
    print(
        f"{problem.name}: {len(indices)} configs x {problem.max_epochs} epochs in "
        f"{elapsed:.0f} s; best final accuracy {best:.4f}; "
        f"median epoch {np.median(seconds) * 1000:.1f} ms -> {path}",
        flush=True,
    )
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="only the first N configs")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args(argv)
    for name in args.problems:
        problem = PROBLEMS[name]
        print(
            f"{name}: {math.prod(len(v) for v in problem.grid.values())} configurations",
            flush=True,
        )
        generate(problem, workers=args.workers, limit=args.limit, out=args.out)


if __name__ == "__main__":
    main()
