"""SageMaker's parameter ranges: `search`'s, which take the SDK's arguments and meanings
(`ContinuousParameter(min_value, max_value, scaling_type="Auto")`, ...)."""

from __future__ import annotations

from collections.abc import Sequence

from search import CategoricalParameter as _CategoricalParameter
from search import ContinuousParameter, IntegerParameter, Parameter
from search.parameters import Scalar

ParameterRange = Parameter


class CategoricalParameter(_CategoricalParameter):
    """One of `values`; like the SDK's, a single value that is not a list is a list of one."""

    def __init__(self, values: Sequence[Scalar] | Scalar) -> None:
        super().__init__(values if isinstance(values, list | tuple) else [values])


__all__ = ["CategoricalParameter", "ContinuousParameter", "IntegerParameter", "ParameterRange"]
