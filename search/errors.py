"""The exception hierarchy of ``search``: catch ``SearchError`` to handle them all."""

from __future__ import annotations


class SearchError(Exception):
    """Base class of every error raised on purpose by the ``search`` package."""


class SearchSpaceError(SearchError, ValueError):
    """A search space, parameter or strategy is invalid; the message names the
    parameter (or field), the offending value and the rule it breaks."""


class UnknownStrategyError(SearchSpaceError):
    """``make_searcher`` got a strategy name it does not know."""


class SearcherOptionError(SearchError, ValueError):
    """A searcher got an option it does not accept, or an option value out of range."""


class TrialStateError(SearchError, ValueError):
    """A trial id was used out of order: suggested twice, observed while not pending,
    or forgotten while not pending."""


class StateDictError(SearchError, ValueError):
    """A ``state_dict`` cannot be loaded: malformed, or saved by a searcher that was
    built differently (another strategy, space, objective or seed)."""


class ObservationError(SearchError, ValueError):
    """An objective value (or a prior observation) has the wrong type or shape."""
