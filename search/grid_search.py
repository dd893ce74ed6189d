"""``GridSearcher``: every combination of integer and categorical values, in order."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from search.enums import ObjectiveType, Strategy
from search.errors import SearchSpaceError
from search.searcher import Searcher
from search.space import Config, SearchSpace


class GridSearcher(Searcher):
    """Enumerates the space in lexicographic order of the parameters as declared
    (integers ascending, categoricals as listed); ``suggest`` returns None once every
    config has been observed or is pending.

    A forgotten trial's config is offered again (it was never evaluated); configs known
    from ``prior_observations`` are skipped. Continuous parameters are rejected, as
    SageMaker does: use an ``IntegerParameter`` or ``CategoricalParameter`` instead.
    The seed is accepted for a uniform interface but unused.
    """

    strategy = Strategy.GRID

    def __init__(
        self,
        *,
        space: SearchSpace,
        objective_type: ObjectiveType | str = ObjectiveType.MAXIMIZE,
        seed: int = 0,
        prior_observations: Iterable[tuple[Mapping[str, Any], float | None]] | None = None,
    ) -> None:
        if isinstance(space, SearchSpace):
            for name, parameter in space.parameters.items():
                if parameter.cardinality is None:
                    raise SearchSpaceError(
                        f"hyperparameter {name!r}: {parameter!r} is continuous; Grid search "
                        "supports only IntegerParameter and CategoricalParameter"
                    )
        super().__init__(
            space=space,
            objective_type=objective_type,
            seed=seed,
            prior_observations=prior_observations,
        )

    @property
    def size(self) -> int:
        """Total number of configs in the grid."""
        size = self.space.size
        assert size is not None  # guaranteed by the constructor's check
        return size

    def _propose(self, trial_id: str, index: int) -> Config | None:
        seen = self._seen_keys()
        for config in self.space.iter_grid():
            if self.space.key(config) not in seen:
                return config
        return None
