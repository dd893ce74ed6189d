"""Reading a learning-curve table written by ``generate.py`` (NumPy only, any interpreter).

A table holds, for every configuration of a full-factorial grid, the validation accuracy
after each epoch and the measured seconds of that epoch. Configurations are addressed by
their grid *levels*: ``{hyperparameter: index into its list of values}``; the flat row is
the levels' C-order (``itertools.product``) position, as ``generate.py`` trained them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
PROBLEMS = ("digits_mlp", "digits_cnn", "breast_cancer", "wine")


@dataclass(frozen=True)
class CurveTable:
    """One problem's curves: ``accuracy`` and ``seconds`` are ``n_configs x max_epochs``."""

    name: str
    grid: dict[str, list[float]]
    accuracy: np.ndarray
    seconds: np.ndarray
    max_epochs: int
    min_epochs: int
    meta: dict[str, Any]

    @classmethod
    def load(cls, name: str, directory: Path = HERE) -> CurveTable:
        with np.load(directory / f"{name}.npz") as data:
            meta = json.loads(str(data["meta"]))
            accuracy = data["accuracy"].astype(np.float64)
            seconds = data["seconds"].astype(np.float64)
        if not meta.get("complete_grid", False):
            raise ValueError(f"{name}.npz holds part of its grid; regenerate it without --limit")
        return cls(
            name=name,
            grid=meta["grid"],
            accuracy=accuracy,
            seconds=seconds,
            max_epochs=int(meta["max_epochs"]),
            min_epochs=int(meta["min_epochs"]),
            meta=meta,
        )

    @property
    def shape(self) -> tuple[int, ...]:
        """Number of values of each hyperparameter, in grid order."""
        return tuple(len(values) for values in self.grid.values())

    def row(self, levels: dict[str, int]) -> int:
        """The table row of a configuration given by its grid levels."""
        return int(np.ravel_multi_index([int(levels[n]) for n in self.grid], self.shape))

    def levels(self, row: int) -> dict[str, int]:
        return {
            n: int(i) for n, i in zip(self.grid, np.unravel_index(row, self.shape), strict=True)
        }

    def values(self, levels: dict[str, int]) -> dict[str, float]:
        """The hyperparameter values of a configuration given by its levels."""
        return {n: self.grid[n][int(levels[n])] for n in self.grid}

    @property
    def best_final(self) -> float:
        """The best accuracy any configuration reaches at any epoch (the table's optimum)."""
        return float(self.accuracy.max())
