"""Hyperband's training data for the GP: rung results as model inputs, and where to aim.

A point is ``(config, resource, value)``: one rung result of one trial, its value larger is
better (``None``: the trial failed). ``HyperbandSearcher`` gathers the points; these
functions turn them into the model's inputs and pick the resource the acquisition targets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from search import multi_fidelity_gp
from search.space import SearchSpace

Point = tuple[Mapping[str, Any], int, float | None]


def target_resource(points: Sequence[Point], levels: Sequence[int], dimension: int) -> int:
    """The highest rung level reached by at least ``dimension + 2`` results (else the
    lowest): where the model has evidence instead of a few points to extrapolate from."""
    needed = dimension + 2
    for level in reversed(levels):
        if sum(resource >= level for _, resource, _ in points) >= needed:
            return level
    return levels[0]


def rungs_reached(levels: Sequence[int], resource: int) -> int:
    """How many rung levels ``resource`` has reached (its rung is ``levels[n - 1]``)."""
    return int(np.searchsorted(levels, resource, side="right"))


def model_inputs(
    points: Sequence[Point],
    *,
    space: SearchSpace,
    levels: Sequence[int],
    max_resource: int,
    rung_scores: bool,
    max_points: int,
    target: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Model inputs (``n x (d + 1)``: unit point, then fidelity) and values (``n``; with
    ``rung_scores``, normal scores within each rung). Failures take the worst finite value.
    Beyond ``max_points``, every point at or above the ``target`` resource is kept (the best
    ones if even those are too many), then the best of the rest and an ``rng`` sample of the
    others."""
    worst = min(v for *_, v in points if v is not None)
    x = np.array(
        [[*space.to_unit(c), multi_fidelity_gp.fidelity(r, max_resource)] for c, r, _ in points]
    )
    y = np.array([worst if v is None else v for *_, v in points])
    if rung_scores:
        rungs = np.array([rungs_reached(levels, r) for _, r, _ in points])
        y = multi_fidelity_gp.normal_scores(y, rungs)
    if len(y) <= max_points:
        return x, y
    high = np.array([r >= target for _, r, _ in points])
    order_high = np.flatnonzero(high)[np.argsort(-y[high], kind="stable")][:max_points]
    rest = np.flatnonzero(~high)[np.argsort(-y[~high], kind="stable")]
    room = max_points - len(order_high)
    best_rest = rest[: room // 2]
    others = rest[room // 2 :]
    sample = rng.choice(others, size=min(room - len(best_rest), len(others)), replace=False)
    keep = np.sort(np.concatenate([order_high, best_rest, sample]).astype(int))
    return x[keep], y[keep]
