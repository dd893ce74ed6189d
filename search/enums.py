"""SageMaker's names for scaling types, objectives and strategies, as enums.

Strings are accepted case-insensitively at the boundary (``parse_enum``); everything
inside the package works with the enum members.
"""

from __future__ import annotations

import enum
from typing import TypeVar

from search.errors import SearchSpaceError

E = TypeVar("E", bound=enum.Enum)


class ScalingType(enum.Enum):
    """How a numeric range maps onto the unit interval the searchers work in.

    ``Auto`` resolves when the parameter is built: ``Logarithmic`` when
    ``min_value > 0`` and ``max_value / min_value >= 100`` (the range spans at least two
    decades, like a learning rate), otherwise ``Linear``. It never picks
    ``ReverseLogarithmic``: ask for that explicitly.
    """

    AUTO = "Auto"
    LINEAR = "Linear"
    LOGARITHMIC = "Logarithmic"
    REVERSE_LOGARITHMIC = "ReverseLogarithmic"


class ObjectiveType(enum.Enum):
    """Whether larger or smaller objective values are better."""

    MAXIMIZE = "Maximize"
    MINIMIZE = "Minimize"


class Strategy(enum.Enum):
    """Search strategies ``make_searcher`` can build."""

    BAYESIAN = "Bayesian"
    RANDOM = "Random"
    GRID = "Grid"
    HYPERBAND = "Hyperband"


def parse_enum(
    enum_type: type[E],
    value: object,
    *,
    field: str,
    error_type: type[SearchSpaceError] = SearchSpaceError,
) -> E:
    """Return the member of ``enum_type`` named by ``value`` (a member, or its SageMaker
    name in any letter case); raise ``error_type`` naming ``field`` otherwise."""
    member = find_member(enum_type, value)
    if member is not None:
        return member
    allowed = ", ".join(member.value for member in enum_type)
    raise error_type(f"{field}={value!r} is not one of: {allowed} (case-insensitive)")


def find_member(enum_type: type[E], value: object) -> E | None:
    """The member of ``enum_type`` that ``value`` names (a member, or its value in any letter
    case, surrounding spaces ignored), or None: the one case-insensitive lookup."""
    if isinstance(value, enum_type):
        return value
    if isinstance(value, str):
        for member in enum_type:
            if member.value.lower() == value.strip().lower():
                return member
    return None
