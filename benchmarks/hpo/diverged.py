"""One diverged run among smooth losses: do the next suggestions stay near the optimum?

Per seed: 14 uniform observations of a smooth 2-D bowl (losses 0.3-2.3, optimum at
(0.3, 0.7)) plus one finite diverged loss of 1e6, then 6 sequential suggestions, each
observed. Counts the suggestions within 0.15 of the optimum (``tests/unit/
test_search_outputs.py`` checks seed 1).

Run from the repository root: python benchmarks/hpo/diverged.py [--seeds 5]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from search import BayesianSearcher, ContinuousParameter, SearchSpace  # noqa: E402

OPTIMUM = (0.3, 0.7)


def loss(config: dict) -> float:
    return 0.3 + 2.04 * ((config["x"] - OPTIMUM[0]) ** 2 + (config["y"] - OPTIMUM[1]) ** 2)


def near_optimum(seed: int) -> tuple[int, int]:
    """Suggestions (of 6) near the optimum, and the searcher's fallbacks."""
    space = SearchSpace({"x": ContinuousParameter(0.0, 1.0), "y": ContinuousParameter(0.0, 1.0)})
    rng = np.random.default_rng(seed)
    priors = []
    for _ in range(14):
        config = {"x": float(rng.random()), "y": float(rng.random())}
        priors.append((config, loss(config)))
    priors.append(({"x": 0.97, "y": 0.05}, 1e6))
    searcher = BayesianSearcher(
        space=space, objective_type="Minimize", seed=seed, prior_observations=priors
    )
    near = 0
    for i in range(6):
        config = searcher.suggest(f"t{i}")
        near += math.dist((config["x"], config["y"]), OPTIMUM) < 0.15
        searcher.observe(f"t{i}", loss(config))
    return near, searcher.fallback_count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    total = 0
    for seed in range(args.seeds):
        near, fallbacks = near_optimum(seed)
        total += near
        print(f"seed {seed}: {near} of 6 near the optimum, {fallbacks} fallbacks")
    print(f"{total} of {6 * args.seeds} suggestions near the optimum")


if __name__ == "__main__":
    main()
