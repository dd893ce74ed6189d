"""Randomness derived from ``(seed, stream, n)``, so no generator state needs saving.

Every random choice a searcher makes for its ``n``-th suggestion comes from a generator
built from the searcher's seed, a fixed stream number for the purpose and ``n``. Resuming
from a ``state_dict`` therefore replays exactly, and nothing touches global RNGs (torch's
samplers get ``derived_seed`` values; a suggestion may run in a background thread).
"""

from __future__ import annotations

import numpy as np

#: Stream numbers: one per purpose, so purposes never share random numbers.
SOBOL_STREAM = 1
RANDOM_STREAM = 2
TORCH_STREAM = 3
SUBSAMPLE_STREAM = 4
ACQUISITION_STREAM = 5


def generator(seed: int, stream: int, *indices: int) -> np.random.Generator:
    """A NumPy generator determined by ``seed``, ``stream`` and ``indices``."""
    return np.random.default_rng(np.random.SeedSequence([seed, stream, *indices]))


def derived_seed(seed: int, stream: int, *indices: int) -> int:
    """A 31-bit integer seed determined by ``seed``, ``stream`` and ``indices``."""
    state = np.random.SeedSequence([seed, stream, *indices]).generate_state(1, dtype=np.uint32)
    return int(state[0]) & 0x7FFFFFFF
