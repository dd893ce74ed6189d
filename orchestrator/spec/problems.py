"""Turning pydantic's validation errors into `SpecProblem`s a person can act on.

pydantic reports locations as tuples and messages in its own words; job-file authors need the
dotted field path, the value they wrote, the rule it broke and, for a misspelt key, a guess at
what they meant.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from orchestrator.errors import MISSING, SpecProblem

# Hints appended to pydantic's own message for the error types people hit most in YAML.
_HINTS: dict[str, str] = {
    "string_type": "quote it in YAML if it looks like a number or a boolean",
    "missing": "add it to the job file",
}


class RuleViolation(ValueError):
    """Raised inside validators so the problem keeps our value and rule, not pydantic's wording.

    `subfield` extends the location pydantic knows (a model validator only knows its model).
    """

    def __init__(self, rule: str, *, value: Any, subfield: str | int | None = None) -> None:
        super().__init__(rule)
        self.rule = rule
        self.value = value
        self.subfield = subfield


def format_location(location: Iterable[str | int]) -> str:
    """('metric_definitions', 2, 'Regex') -> 'metric_definitions[2].Regex'."""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "<job spec>"


def problems_from_validation_error(
    error: ValidationError, *, root: type[BaseModel]
) -> list[SpecProblem]:
    """One `SpecProblem` per pydantic error, with paths, values and rules in our words."""
    problems = []
    for detail in error.errors(include_url=False):
        location = [part for part in detail["loc"] if part != "[key]"]
        violation = detail.get("ctx", {}).get("error")
        if isinstance(violation, RuleViolation):
            if violation.subfield is not None:
                location.append(violation.subfield)
            problems.append(SpecProblem(format_location(location), violation.value, violation.rule))
            continue
        kind = detail["type"]
        if kind == "extra_forbidden":
            rule = unknown_key_rule(str(location[-1]), allowed_keys(root, location[:-1]))
            value = detail["input"]
        elif kind == "missing":
            rule, value = f"required field is missing; {_HINTS[kind]}", MISSING
        else:
            rule, value = detail["msg"], detail["input"]
            if kind in _HINTS:
                rule = f"{rule}; {_HINTS[kind]}"
        problems.append(SpecProblem(format_location(location), value, rule))
    return problems


def unknown_key_rule(key: str, allowed: Sequence[str]) -> str:
    """'unknown key; did you mean ...?' naming the closest allowed key, else listing them all."""
    suggestion = suggest(key, allowed)
    if suggestion:
        return f"unknown key; did you mean {suggestion!r}?"
    return f"unknown key; allowed keys: {', '.join(sorted(allowed))}"


def suggest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to `word`, ignoring case and underscores (so SageMaker's CamelCase
    `MaxParallelTrainingJobs`-style names find their snake_case twins)."""
    by_key = {_squash(candidate): candidate for candidate in candidates}
    close = difflib.get_close_matches(_squash(word), list(by_key), n=1, cutoff=0.6)
    return by_key[close[0]] if close else None


def _squash(word: str) -> str:
    return word.lower().replace("_", "").replace("-", "")


def allowed_keys(root: type[BaseModel], location: Sequence[str | int]) -> list[str]:
    """The keys the model at `location` (a pydantic error location) accepts, as written in YAML."""
    model = _model_at(root, location)
    if model is None:
        return []
    return [field.alias or name for name, field in model.model_fields.items()]


def _model_at(root: type[BaseModel], location: Sequence[str | int]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = root
    for part in location:
        if model is None:
            return None
        if isinstance(part, int):
            continue  # an index into a list of models: the model stays the same
        field = next(
            (f for name, f in model.model_fields.items() if part in (name, f.alias)),
            None,
        )
        model = _find_model(field.annotation) if field is not None else None
    return model


def _find_model(annotation: Any) -> type[BaseModel] | None:
    """The model class inside an annotation such as `Sub | None` or `list[Sub]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list, typing.Annotated):
        for argument in typing.get_args(annotation):
            model = _find_model(argument)
            if model is not None:
                return model
    return None
