"""``SearchSpace``: the tunable and static hyperparameters of a job, validated as a whole.

The space owns the one conversion between configs (``{name: value}`` dicts holding every
hyperparameter, static ones too) and points of the unit cube (``d`` floats, one per
tunable parameter in declaration order), built from each parameter's own conversion.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from search.errors import SearchSpaceError
from search.parameters import (
    MAX_VALUE_LENGTH,
    CategoricalParameter,
    ContinuousParameter,
    IntegerParameter,
    Parameter,
    Scalar,
    check_scalar,
)

MAX_TUNABLE_PARAMETERS = 30
MAX_TOTAL_PARAMETERS = 100
MAX_NAME_LENGTH = 256

_PARAMETER_TYPES: dict[str, type[Parameter]] = {
    "continuous": ContinuousParameter,
    "integer": IntegerParameter,
    "categorical": CategoricalParameter,
}
_CONFIG_FIELDS: dict[type[Parameter], tuple[set[str], set[str]]] = {
    # (required fields, optional fields) besides "type"
    ContinuousParameter: ({"min_value", "max_value"}, {"scaling_type"}),
    IntegerParameter: ({"min_value", "max_value"}, {"scaling_type"}),
    CategoricalParameter: ({"values"}, set()),
}

#: A complete hyperparameter assignment: every tunable and static name to its value.
Config = dict[str, Any]


class SearchSpace:
    """Tunable parameters plus static values that are passed through unchanged.

    Limits are SageMaker's: 1 to 30 tunable parameters, at most 100 hyperparameters in
    total, names of at most 256 characters. Violations raise ``SearchSpaceError`` naming
    the hyperparameter, the value and the rule.
    """

    def __init__(self, parameters: Mapping[str, Parameter | Scalar]) -> None:
        if not isinstance(parameters, Mapping):
            raise SearchSpaceError(
                f"search space={parameters!r} must be a mapping of names to parameters"
            )
        tunable: dict[str, Parameter] = {}
        static: dict[str, Scalar] = {}
        for name, parameter in parameters.items():
            _check_name(name)
            if isinstance(parameter, Parameter):
                tunable[name] = parameter
            else:
                check_scalar(parameter, f"static hyperparameter {name!r}", MAX_VALUE_LENGTH)
                static[name] = parameter
        if not 1 <= len(tunable) <= MAX_TUNABLE_PARAMETERS:
            raise SearchSpaceError(
                f"search space has {len(tunable)} tunable parameters "
                f"({sorted(tunable)!r}); it must have 1 to {MAX_TUNABLE_PARAMETERS}"
            )
        if len(tunable) + len(static) > MAX_TOTAL_PARAMETERS:
            raise SearchSpaceError(
                f"search space has {len(tunable) + len(static)} hyperparameters "
                f"(tunable and static); at most {MAX_TOTAL_PARAMETERS} are allowed"
            )
        self._order = tuple(parameters)
        self._tunable = tunable
        self._static = static

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SearchSpace:
        """Build a space from the job-file form.

        Each entry is ``{type: Continuous|Integer, min_value, max_value[, scaling_type]}``,
        ``{type: Categorical, values: [...]}`` (type names case-insensitive), or a plain
        scalar, which becomes a static value.
        """
        if not isinstance(config, Mapping):
            raise SearchSpaceError(f"hyperparameters={config!r} must be a mapping")
        parameters: dict[str, Parameter | Scalar] = {}
        for name, entry in config.items():
            _check_name(name)
            if isinstance(entry, Mapping):
                parameters[name] = _parameter_from_config(name, entry)
            elif isinstance(entry, str | int | float):
                parameters[name] = entry
            else:
                raise SearchSpaceError(
                    f"hyperparameter {name!r}: {entry!r} must be a mapping with a 'type' "
                    "(Continuous, Integer, Categorical) or a plain scalar static value"
                )
        return cls(parameters)

    def to_config(self) -> dict[str, Any]:
        """The job-file form; ``SearchSpace.from_config(space.to_config()) == space``."""
        return {
            name: self._tunable[name].to_config() if name in self._tunable else self._static[name]
            for name in self._order
        }

    @property
    def parameters(self) -> Mapping[str, Parameter]:
        """Tunable parameters, in declaration order."""
        return MappingProxyType(self._tunable)

    @property
    def tunable_names(self) -> tuple[str, ...]:
        return tuple(self._tunable)

    @property
    def static_values(self) -> Mapping[str, Scalar]:
        return MappingProxyType(self._static)

    @property
    def dimension(self) -> int:
        """``d``: the number of tunable parameters (unit-cube coordinates)."""
        return len(self._tunable)

    @property
    def size(self) -> int | None:
        """Number of distinct configs, or None when a parameter is continuous."""
        cardinalities = [p.cardinality for p in self._tunable.values()]
        if any(c is None for c in cardinalities):
            return None
        return math.prod(cardinalities)

    def violations(self, config: Mapping[str, Any]) -> list[str]:
        """Why ``config`` is outside the space (empty when it is inside). Only tunable
        names are checked: static values and unknown keys are ignored."""
        if not isinstance(config, Mapping):
            return [f"config {config!r} is not a mapping"]
        reasons = []
        for name, parameter in self._tunable.items():
            if name not in config:
                reasons.append(f"{name!r} is missing")
            elif (reason := parameter.violation(config[name])) is not None:
                reasons.append(f"{name!r}: {reason}")
        return reasons

    def contains(self, config: Mapping[str, Any]) -> bool:
        """Whether every tunable parameter of ``config`` holds a valid value."""
        return not self.violations(config)

    def normalize(self, config: Mapping[str, Any]) -> Config:
        """``config`` in canonical form: tunable values of their parameter's type, static
        values of this space, in declaration order. Raises ``SearchSpaceError`` if outside."""
        reasons = self.violations(config)
        if reasons:
            raise SearchSpaceError(f"config {dict(config)!r} is outside the space: {reasons}")
        return {
            name: self._tunable[name].coerce(config[name])
            if name in self._tunable
            else self._static[name]
            for name in self._order
        }

    def to_unit(self, config: Mapping[str, Any]) -> np.ndarray:
        """The ``d`` unit-cube coordinates of a valid ``config``."""
        return np.array(
            [p.to_unit(config[name]) for name, p in self._tunable.items()], dtype=np.float64
        )

    def from_unit(self, point: np.ndarray | list[float]) -> Config:
        """The config at a unit-cube ``point`` of length ``d`` (coordinates are clipped)."""
        if len(point) != self.dimension:
            raise SearchSpaceError(
                f"unit point has {len(point)} coordinates; the space has {self.dimension}"
            )
        values = {
            name: p.from_unit(float(u))
            for (name, p), u in zip(self._tunable.items(), point, strict=True)
        }
        return {
            name: values[name] if name in values else self._static[name] for name in self._order
        }

    def key(self, config: Mapping[str, Any]) -> tuple[int, ...]:
        """A hashable identity of a valid ``config``: equal for configs that are the same
        after rounding (discrete values by bin, continuous ones to 1e-6 of their range)."""
        return tuple(p.key(config[name]) for name, p in self._tunable.items())

    def iter_grid(self) -> Iterator[Config]:
        """Every config of a finite space, in lexicographic order of the parameters as
        declared (integers ascending, categoricals as listed)."""
        if self.size is None:
            raise SearchSpaceError("iter_grid needs a space without continuous parameters")
        names = list(self._tunable)
        index = [0] * len(names)
        grids = [self._tunable[name].grid_values() for name in names]
        while True:
            values = {name: grid[i] for name, grid, i in zip(names, grids, index, strict=True)}
            yield {
                name: values[name] if name in values else self._static[name] for name in self._order
            }
            position = len(names) - 1
            while position >= 0 and index[position] == len(grids[position]) - 1:
                index[position] = 0
                position -= 1
            if position < 0:
                return
            index[position] += 1

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and other.to_config() == self.to_config()

    def __hash__(self) -> int:
        return hash(repr(self))

    def __repr__(self) -> str:
        return f"SearchSpace({self.to_config()!r})"


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not name:
        raise SearchSpaceError(f"hyperparameter name {name!r} must be a non-empty string")
    if len(name) > MAX_NAME_LENGTH:
        raise SearchSpaceError(
            f"hyperparameter name {name[:40]!r}... is {len(name)} characters long; "
            f"the limit is {MAX_NAME_LENGTH}"
        )


def _parameter_from_config(name: str, entry: Mapping[str, Any]) -> Parameter:
    type_name = entry.get("type")
    parameter_type = _PARAMETER_TYPES.get(str(type_name).lower()) if type_name else None
    if parameter_type is None:
        raise SearchSpaceError(
            f"hyperparameter {name!r}: type={type_name!r} is not one of: Continuous, "
            "Integer, Categorical (case-insensitive)"
        )
    required, optional = _CONFIG_FIELDS[parameter_type]
    given = set(entry) - {"type"}
    if missing := required - given:
        raise SearchSpaceError(
            f"hyperparameter {name!r}: {sorted(missing)!r} missing; a "
            f"{parameter_type.kind} parameter needs {sorted(required)!r}"
        )
    if unknown := given - required - optional:
        raise SearchSpaceError(
            f"hyperparameter {name!r}: unknown field(s) {sorted(unknown)!r}; a "
            f"{parameter_type.kind} parameter takes {sorted(required | optional)!r}"
        )
    try:
        return parameter_type(**{field: entry[field] for field in given})
    except SearchSpaceError as error:
        raise SearchSpaceError(f"hyperparameter {name!r}: {error}") from error
