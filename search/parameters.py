"""Tunable hyperparameters and their one conversion to and from the unit interval.

Every searcher works on the unit cube: a parameter maps its value to ``u`` in ``[0, 1]``
(``to_unit``) and back (``from_unit``). Discrete parameters (integers, categoricals) split
``[0, 1]`` into equal-probability bins, one per value, so uniform ``u`` gives every value
its fair share (no half-weight end points) and a value is represented by its bin's centre.

Constructors mirror SageMaker's: ``ContinuousParameter(min_value, max_value,
scaling_type="Auto")``, ``IntegerParameter(...)`` likewise, ``CategoricalParameter(values)``.
They validate eagerly and raise ``SearchSpaceError`` naming the field, the value and the
rule; ``SearchSpace.from_config`` adds the hyperparameter's name to the message.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from typing import Any, ClassVar, TypeAlias

from search.enums import ScalingType, parse_enum
from search.errors import SearchSpaceError

#: A value a categorical parameter or a static hyperparameter may take.
Scalar: TypeAlias = str | int | float | bool

MAX_CATEGORICAL_VALUES = 30
MAX_VALUE_LENGTH = 256
#: ``Auto`` picks ``Logarithmic`` when a positive range spans at least this ratio.
AUTO_LOG_RATIO = 100.0


class Parameter(abc.ABC):
    """A tunable hyperparameter: its valid values and its map onto ``[0, 1]``."""

    kind: ClassVar[str]

    @abc.abstractmethod
    def to_unit(self, value: Any) -> float:
        """Position of a valid ``value`` in ``[0, 1]`` (a bin centre for discrete ones)."""

    @abc.abstractmethod
    def from_unit(self, u: float) -> Any:
        """The value at position ``u`` (clipped into ``[0, 1]``), of the parameter's type."""

    @abc.abstractmethod
    def violation(self, value: object) -> str | None:
        """Why ``value`` is not a valid value of this parameter, or None if it is."""

    @abc.abstractmethod
    def coerce(self, value: Any) -> Any:
        """The canonical form of a valid ``value`` (``int`` for integers, the declared
        categorical value for categoricals)."""

    @abc.abstractmethod
    def to_config(self) -> dict[str, Any]:
        """The job-file form of this parameter (see ``SearchSpace.from_config``)."""

    @property
    def cardinality(self) -> int | None:
        """Number of distinct values, or None for continuous parameters."""
        grid = self.grid_values()
        return None if grid is None else len(grid)

    def grid_values(self) -> tuple[Any, ...] | None:
        """Every value in ascending unit order, or None for continuous parameters."""
        return None

    def unit_grid(self) -> tuple[float, ...] | None:
        """Unit positions (bin centres) of ``grid_values``, or None if continuous."""
        grid = self.grid_values()
        return None if grid is None else tuple(self.to_unit(value) for value in grid)

    def key(self, value: Any) -> int:
        """An integer equal for values that count as the same for de-duplication: the bin
        index for discrete parameters, ``u`` rounded to 1e-6 of the range otherwise."""
        return round(self.to_unit(value) * 1_000_000)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.to_config() == self.to_config()

    def __hash__(self) -> int:
        return hash(repr(self))

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.to_config().items() if k != "type")
        return f"{type(self).__name__}({fields})"


class _NumericParameter(Parameter, abc.ABC):
    """Shared validation of ``min_value``, ``max_value`` and ``scaling_type``."""

    def __init__(
        self, min_value: float, max_value: float, scaling_type: ScalingType | str = "Auto"
    ) -> None:
        owner = type(self).__name__
        lo = self._bound(min_value, "min_value")
        hi = self._bound(max_value, "max_value")
        scaling = parse_enum(ScalingType, scaling_type, field=f"{owner}: scaling_type")
        if not lo < hi:
            raise SearchSpaceError(
                f"{owner}: min_value={min_value!r} must be less than max_value={max_value!r}"
            )
        if scaling is ScalingType.LOGARITHMIC and lo <= 0:
            raise SearchSpaceError(
                f"{owner}: min_value={min_value!r} must be > 0 for Logarithmic scaling"
            )
        if scaling is ScalingType.REVERSE_LOGARITHMIC:
            self._check_reverse_logarithmic(lo, hi)
        self._min_value = lo
        self._max_value = hi
        self._scaling_type = scaling
        self._resolved = _resolve_auto(scaling, lo, hi)

    @abc.abstractmethod
    def _bound(self, value: object, field: str) -> Any:
        """Validate and convert one bound."""

    def _check_reverse_logarithmic(self, lo: float, hi: float) -> None:
        owner = type(self).__name__
        if lo < 0:
            raise SearchSpaceError(
                f"{owner}: min_value={lo!r} must be >= 0 for ReverseLogarithmic scaling"
            )
        if hi >= 1:
            raise SearchSpaceError(
                f"{owner}: max_value={hi!r} must be < 1 for ReverseLogarithmic scaling"
            )

    @property
    def min_value(self) -> Any:
        return self._min_value

    @property
    def max_value(self) -> Any:
        return self._max_value

    @property
    def scaling_type(self) -> ScalingType:
        """The scaling as given (possibly ``AUTO``); see ``resolved_scaling_type``."""
        return self._scaling_type

    @property
    def resolved_scaling_type(self) -> ScalingType:
        """The scaling actually used: ``AUTO`` resolved by the rule on ``ScalingType``."""
        return self._resolved

    def to_config(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "min_value": self._min_value,
            "max_value": self._max_value,
            "scaling_type": self._scaling_type.value,
        }

    def _out_of_range(self, value: float) -> str | None:
        if not self._min_value <= value <= self._max_value:
            return f"{value!r} is outside [{self._min_value!r}, {self._max_value!r}]"
        return None


class ContinuousParameter(_NumericParameter):
    """A real-valued hyperparameter in ``[min_value, max_value]``.

    ``Linear`` is uniform in the value, ``Logarithmic`` uniform in ``log(value)``, and
    ``ReverseLogarithmic`` uniform in ``-log(1 - value)`` (dense close to 1, for momentum-
    like parameters).
    """

    kind = "Continuous"

    def _bound(self, value: object, field: str) -> float:
        return _finite_number(value, field, type(self).__name__)

    def to_unit(self, value: Any) -> float:
        x, lo, hi = float(value), self._min_value, self._max_value
        if self._resolved is ScalingType.LOGARITHMIC:
            u = (math.log(x) - math.log(lo)) / (math.log(hi) - math.log(lo))
        elif self._resolved is ScalingType.REVERSE_LOGARITHMIC:
            u = (math.log1p(-lo) - math.log1p(-x)) / (math.log1p(-lo) - math.log1p(-hi))
        else:
            u = (x - lo) / (hi - lo)
        return _clip01(u)

    def from_unit(self, u: float) -> float:
        u, lo, hi = _clip01(u), self._min_value, self._max_value
        # Interpolating logs (not multiplying ratios) avoids overflow for extreme ranges.
        if self._resolved is ScalingType.LOGARITHMIC:
            x = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
        elif self._resolved is ScalingType.REVERSE_LOGARITHMIC:
            x = -math.expm1(math.log1p(-lo) + u * (math.log1p(-hi) - math.log1p(-lo)))
        else:
            x = lo + u * (hi - lo)
        return min(max(x, lo), hi)

    def violation(self, value: object) -> str | None:
        if not _is_number(value) or not math.isfinite(value):
            return f"{value!r} is not a finite number"
        return self._out_of_range(float(value))

    def coerce(self, value: Any) -> float:
        return float(value)


class IntegerParameter(_NumericParameter):
    """An integer hyperparameter in ``[min_value, max_value]`` (both included).

    The unit interval is cut into one bin per integer, padded by half a step at each end
    in the scaled space, so rounding a uniform draw is unbiased. ``ReverseLogarithmic``
    is rejected (as SageMaker does): an integer range inside ``[0, 1)`` has one value.
    """

    kind = "Integer"

    def __init__(
        self, min_value: int, max_value: int, scaling_type: ScalingType | str = "Auto"
    ) -> None:
        super().__init__(min_value, max_value, scaling_type)
        lo, hi = self._min_value, self._max_value
        if self._resolved is ScalingType.LOGARITHMIC:
            log_lo, log_hi = math.log(lo - 0.5), math.log(hi + 0.5)
            self._edges = tuple(
                (math.log(lo - 0.5 + j) - log_lo) / (log_hi - log_lo) for j in range(hi - lo + 2)
            )
        else:
            count = hi - lo + 1
            self._edges = tuple(j / count for j in range(count + 1))

    def _bound(self, value: object, field: str) -> int:
        owner = type(self).__name__
        number = _finite_number(value, field, owner)
        if isinstance(value, float) and not number.is_integer():
            raise SearchSpaceError(f"{owner}: {field}={value!r} must be an integer")
        return int(number)

    def _check_reverse_logarithmic(self, lo: float, hi: float) -> None:
        raise SearchSpaceError(
            f"{type(self).__name__}: scaling_type='ReverseLogarithmic' is only supported "
            "for ContinuousParameter"
        )

    def grid_values(self) -> tuple[int, ...]:
        return tuple(range(self._min_value, self._max_value + 1))

    def to_unit(self, value: Any) -> float:
        index = int(value) - self._min_value
        return 0.5 * (self._edges[index] + self._edges[index + 1])

    def from_unit(self, u: float) -> int:
        u = _clip01(u)
        count = self._max_value - self._min_value + 1
        if self._resolved is ScalingType.LOGARITHMIC:
            log_lo = math.log(self._min_value - 0.5)
            log_hi = math.log(self._max_value + 0.5)
            index = math.floor(math.exp(log_lo + u * (log_hi - log_lo)) + 0.5) - self._min_value
        else:
            index = math.floor(u * count)
        return self._min_value + min(max(index, 0), count - 1)

    def key(self, value: Any) -> int:
        return int(value) - self._min_value

    def violation(self, value: object) -> str | None:
        if not _is_number(value) or not math.isfinite(value):
            return f"{value!r} is not a finite number"
        if isinstance(value, float) and not value.is_integer():
            return f"{value!r} is not an integer"
        return self._out_of_range(value)

    def coerce(self, value: Any) -> int:
        return int(value)


class CategoricalParameter(Parameter):
    """A hyperparameter taking one of 1 to 30 unordered ``values``.

    Values are strings, numbers or booleans; like SageMaker, which passes them as
    strings, two values are the same when their string forms are (so ``"64"`` matches
    ``64``), and suggestions return the value exactly as declared.
    """

    kind = "Categorical"

    def __init__(self, values: Sequence[Scalar]) -> None:
        owner = type(self).__name__
        if isinstance(values, str | bytes) or not isinstance(values, Sequence):
            raise SearchSpaceError(f"{owner}: values={values!r} must be a list of values")
        if not 1 <= len(values) <= MAX_CATEGORICAL_VALUES:
            raise SearchSpaceError(
                f"{owner}: values={list(values)!r} must hold 1 to {MAX_CATEGORICAL_VALUES} "
                f"values, got {len(values)}"
            )
        index_of: dict[str, int] = {}
        for value in values:
            check_scalar(value, f"{owner}: value", MAX_VALUE_LENGTH)
            text = str(value)
            if not text:
                raise SearchSpaceError(
                    f"{owner}: value {value!r} is empty; categorical values need 1 to "
                    f"{MAX_VALUE_LENGTH} characters"
                )
            if text in index_of:
                raise SearchSpaceError(f"{owner}: value {value!r} is duplicated in values")
            index_of[text] = len(index_of)
        self._values = tuple(values)
        self._index_of = index_of

    @property
    def values(self) -> tuple[Scalar, ...]:
        return self._values

    def grid_values(self) -> tuple[Scalar, ...]:
        return self._values

    def index(self, value: object) -> int:
        """Position of ``value`` in ``values`` (matched by string form)."""
        return self._index_of[str(value)]

    def to_unit(self, value: Any) -> float:
        return (self.index(value) + 0.5) / len(self._values)

    def from_unit(self, u: float) -> Scalar:
        count = len(self._values)
        return self._values[min(math.floor(_clip01(u) * count), count - 1)]

    def key(self, value: Any) -> int:
        return self.index(value)

    def violation(self, value: object) -> str | None:
        if not isinstance(value, str | int | float) or str(value) not in self._index_of:
            return f"{value!r} is not one of {list(self._values)!r}"
        return None

    def coerce(self, value: Any) -> Scalar:
        return self._values[self.index(value)]

    def to_config(self) -> dict[str, Any]:
        return {"type": self.kind, "values": list(self._values)}


def _resolve_auto(scaling: ScalingType, lo: float, hi: float) -> ScalingType:
    if scaling is not ScalingType.AUTO:
        return scaling
    if lo > 0 and hi / lo >= AUTO_LOG_RATIO:
        return ScalingType.LOGARITHMIC
    return ScalingType.LINEAR


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite_number(value: object, field: str, owner: str) -> float:
    if not _is_number(value):
        raise SearchSpaceError(f"{owner}: {field}={value!r} must be a number")
    if not math.isfinite(value):
        raise SearchSpaceError(f"{owner}: {field}={value!r} must be finite")
    return value


def check_scalar(value: object, field: str, max_length: int) -> None:
    """Reject anything but a string, finite number or boolean of at most ``max_length``
    characters (string form)."""
    if not isinstance(value, str | int | float):
        raise SearchSpaceError(
            f"{field}={value!r} must be a string, number or boolean, not {type(value).__name__}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise SearchSpaceError(f"{field}={value!r} must be finite")
    if len(str(value)) > max_length:
        raise SearchSpaceError(
            f"{field}={str(value)[:40]!r}... is {len(str(value))} characters long; "
            f"the limit is {max_length}"
        )


def _clip01(u: float) -> float:
    return min(max(float(u), 0.0), 1.0)
