"""The spec's own enums, and field types that accept SageMaker's names in any letter case."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, Strict

from search import ObjectiveType, Strategy
from search.enums import find_member


class EarlyStoppingType(Enum):
    OFF = "Off"
    AUTO = "Auto"


class WarmStartType(Enum):
    IDENTICAL_DATA_AND_ALGORITHM = "IdenticalDataAndAlgorithm"
    TRANSFER_LEARNING = "TransferLearning"


class ConfigurationSelection(Enum):
    """How Hyperband picks new configurations."""

    BAYESIAN = "Bayesian"
    RANDOM = "Random"


class CompleteOnConvergence(Enum):
    DISABLED = "Disabled"
    ENABLED = "Enabled"


def case_insensitive(enum_type: type[Enum]) -> BeforeValidator:
    """Accept enum values in any case. YAML reads a bare `Off` as False, so False means "Off"."""

    def parse(value: Any) -> Any:
        text = ("On" if value else "Off") if isinstance(value, bool) else value
        member = find_member(enum_type, text)
        return value if member is None else member  # pydantic rejects it, listing the allowed

    return BeforeValidator(parse)


StrictInt = Annotated[int, Strict()]
FiniteFloat = Annotated[float, Strict(), Field(allow_inf_nan=False)]
ObjectiveTypeField = Annotated[ObjectiveType, case_insensitive(ObjectiveType)]
StrategyField = Annotated[Strategy, case_insensitive(Strategy)]
EarlyStoppingTypeField = Annotated[EarlyStoppingType, case_insensitive(EarlyStoppingType)]
WarmStartTypeField = Annotated[WarmStartType, case_insensitive(WarmStartType)]
CompleteOnConvergenceField = Annotated[
    CompleteOnConvergence, case_insensitive(CompleteOnConvergence)
]
ConfigurationSelectionField = Annotated[
    ConfigurationSelection, case_insensitive(ConfigurationSelection)
]
