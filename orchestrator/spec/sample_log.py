"""Checking metric definitions against a sample of the trainer's output before a job runs."""

from __future__ import annotations

import math

from orchestrator.errors import SpecProblem
from orchestrator.spec.schema import JobSpec


def validate_sample_log(spec: JobSpec, log_text: str) -> list[SpecProblem]:
    """Metric definitions that would extract nothing from this log (a sample of the trainer's
    output): their regex matches no line, or captures no number. Lines are matched one by one
    with `re.search`, as trials do."""
    lines = log_text.splitlines()
    problems = []
    for index, definition in enumerate(spec.metric_definitions):
        captures = [m.group(1) for line in lines if (m := definition.pattern.search(line))]
        field = f"metric_definitions[{index}].Regex"
        if not captures:
            problems.append(
                SpecProblem(
                    field,
                    definition.regex,
                    f"metric {definition.name!r} matches no line of the log",
                )
            )
        elif not any(_is_number(capture) for capture in captures):
            problems.append(
                SpecProblem(
                    field,
                    definition.regex,
                    f"metric {definition.name!r} matches the log but captures no number "
                    f"(NaN and infinity do not count; first capture: {captures[0]!r})",
                )
            )
    return problems


def _is_number(text: str | None) -> bool:
    """A finite number: a trial records NaN and infinity as no value."""
    if text is None:
        return False
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False
