"""Checking metric definitions against a sample of the trainer's output before a job runs."""

from __future__ import annotations

import math

from orchestrator.errors import SpecProblem
from orchestrator.spec.schema import JobSpec
from orchestrator.spec.sections import MATCH_TIMEOUT_S


def validate_sample_log(spec: JobSpec, log_text: str) -> list[SpecProblem]:
    """Metric definitions that would extract nothing from this log (a sample of the trainer's
    output): their regex matches no line, captures no number, or takes so long on a line
    that a trial would skip it. Lines are matched one by one, under the same time limit, as
    trials match them (`MetricDefinition.search`)."""
    lines = log_text.splitlines()
    problems = []
    for index, definition in enumerate(spec.metric_definitions):
        field = f"metric_definitions[{index}].Regex"
        captures, slow_lines = [], []
        for number, line in enumerate(lines, start=1):
            try:
                found = definition.search(line)
            except TimeoutError:
                slow_lines.append(number)
                continue
            if found is not None:
                captures.append(found.group(1))
        if slow_lines:
            shown = ", ".join(str(n) for n in slow_lines[:5]) + (
                ", ..." if len(slow_lines) > 5 else ""
            )
            problems.append(
                SpecProblem(
                    field,
                    definition.regex,
                    f"metric {definition.name!r}: the regex takes over "
                    f"{MATCH_TIMEOUT_S * 1000:g} ms on line {shown} of the log (it backtracks); "
                    "a trial skips such lines and stops applying it after a few: simplify it",
                )
            )
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
