"""Space-filling and uniform draws of configs that have not been tried yet."""

from __future__ import annotations

import logging

import numpy as np
import torch

from search.rng import SOBOL_STREAM, derived_seed
from search.space import Config, SearchSpace

logger = logging.getLogger(__name__)

#: Rejection-sampling attempts before a finite space is enumerated instead.
MAX_REJECTIONS = 64
#: Finite spaces up to this size may be enumerated to find the untried configs.
MAX_ENUMERATION = 100_000

Key = tuple[int, ...]


def sobol_point(space: SearchSpace, *, seed: int, index: int) -> np.ndarray:
    """Point ``index`` of the scrambled Sobol sequence of ``seed``: shape ``d``."""
    engine = torch.quasirandom.SobolEngine(
        space.dimension, scramble=True, seed=derived_seed(seed, SOBOL_STREAM)
    )
    engine.fast_forward(index)
    return engine.draw(1, dtype=torch.float64)[0].numpy()


def is_exhausted(space: SearchSpace, seen: set[Key]) -> bool:
    """Whether every config of a finite space has been tried (or is pending)."""
    return space.size is not None and len(seen) >= space.size


def draw_unseen(
    space: SearchSpace,
    rng: np.random.Generator,
    seen: set[Key],
    *,
    first_choice: np.ndarray | None = None,
) -> Config | None:
    """A config whose key is not in ``seen``: ``first_choice`` (a unit point) if new,
    else uniform draws; None when a finite space is exhausted.

    Rejection sampling is tried first; a finite space whose untried configs are too rare
    for it is enumerated and one untried config picked uniformly.
    """
    if is_exhausted(space, seen):
        return None
    if first_choice is not None:
        config = space.from_unit(first_choice)
        if space.key(config) not in seen:
            return config
    for _ in range(MAX_REJECTIONS):
        config = space.from_unit(rng.random(space.dimension))
        if space.key(config) not in seen:
            return config
    if space.size is not None and space.size <= MAX_ENUMERATION:
        untried = [c for c in space.iter_grid() if space.key(c) not in seen]
        return untried[int(rng.integers(len(untried)))]
    logger.warning("no untried config found after %d draws; repeating one", MAX_REJECTIONS)
    return config


def draw_unseen_points(
    space: SearchSpace, rng: np.random.Generator, seen: set[Key], count: int
) -> np.ndarray:
    """Up to ``count`` unit points (``m x d``, rows unique by key) of untried configs,
    each snapped to its config's exact encoding."""
    keys: set[Key] = set()
    points = []
    for _ in range(2 * count):
        config = space.from_unit(rng.random(space.dimension))
        key = space.key(config)
        if key not in seen and key not in keys:
            keys.add(key)
            points.append(space.to_unit(config))
            if len(points) == count:
                break
    return np.array(points, dtype=np.float64).reshape(-1, space.dimension)
