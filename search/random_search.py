"""``RandomSearcher``: independent uniform draws in the scaled space."""

from __future__ import annotations

from search.enums import Strategy
from search.rng import RANDOM_STREAM, generator
from search.sampling import draw_unseen
from search.searcher import Searcher
from search.space import Config


class RandomSearcher(Searcher):
    """Uniform in each parameter's scaled space (log-uniform for ``Logarithmic``, and so
    on), skipping configs already tried or pending; None once a finite space is used up.

    Also serves SageMaker's ``Hyperband`` strategy, which samples configurations at
    random: the early-stopping scheduler is the orchestrator's business, not the
    searcher's.
    """

    strategy = Strategy.RANDOM

    def _propose(self, trial_id: str, index: int) -> Config | None:
        rng = generator(self.seed, RANDOM_STREAM, index)
        return draw_unseen(self.space, rng, self._seen_keys())
