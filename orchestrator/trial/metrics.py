"""Metric definitions and the incremental parser that scrapes them from a trainer's log.

This is SageMaker's contract: a trainer prints whatever it likes, and each metric is a named
regular expression with exactly one capture group holding the number. The parser sees the log
in arbitrary chunks as they come off a pipe, so it keeps the unfinished last line until the rest
arrives and only ever matches whole lines.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from orchestrator.errors import TrialError

# SageMaker's limits, kept so a job that runs here also runs there.
MAX_METRIC_NAME_CHARS = 255
MAX_REGEX_CHARS = 500

# A line longer than this (a progress bar that never prints a newline) is matched and dropped
# rather than buffered forever.
DEFAULT_MAX_LINE_CHARS = 1_000_000


class MetricDefinitionError(TrialError, ValueError):
    """A metric definition breaks a rule; the message names the field, the value and the rule."""


@dataclass(frozen=True)
class MetricDefinition:
    """One named metric: `regex` has exactly one capture group, which holds the value."""

    name: str
    regex: re.Pattern[str]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise MetricDefinitionError(
                f"metric definition Name={self.name!r}: must be a non-empty string"
            )
        if len(self.name) > MAX_METRIC_NAME_CHARS:
            raise MetricDefinitionError(
                f"metric definition Name={self.name[:40]!r}...: must be at most "
                f"{MAX_METRIC_NAME_CHARS} characters (it has {len(self.name)})"
            )
        if not isinstance(self.regex, re.Pattern):
            raise MetricDefinitionError(
                f"metric {self.name!r}: Regex={self.regex!r} must be a compiled re.Pattern"
            )
        if len(self.regex.pattern) > MAX_REGEX_CHARS:
            raise MetricDefinitionError(
                f"metric {self.name!r}: Regex={self.regex.pattern[:40]!r}... must be at most "
                f"{MAX_REGEX_CHARS} characters (it has {len(self.regex.pattern)})"
            )
        if self.regex.groups != 1:
            raise MetricDefinitionError(
                f"metric {self.name!r}: Regex={self.regex.pattern!r} must have exactly one "
                f"capture group holding the value (it has {self.regex.groups})"
            )

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, object]) -> MetricDefinition:
        """Build from SageMaker's `{"Name": ..., "Regex": ...}` (keys case-insensitive)."""
        fields = {str(key).lower(): value for key, value in mapping.items()}
        unknown = sorted(set(fields) - {"name", "regex"})
        if unknown:
            raise MetricDefinitionError(
                f"metric definition {dict(mapping)!r}: unknown key(s) {unknown}; "
                "only 'Name' and 'Regex' are allowed"
            )
        for key in ("name", "regex"):
            if key not in fields:
                raise MetricDefinitionError(
                    f"metric definition {dict(mapping)!r}: missing required key "
                    f"{key.capitalize()!r}"
                )
        name, pattern = fields["name"], fields["regex"]
        if not isinstance(pattern, str):
            raise MetricDefinitionError(f"metric {name!r}: Regex={pattern!r} must be a string")
        try:
            regex = re.compile(pattern)
        except re.error as error:
            raise MetricDefinitionError(
                f"metric {name!r}: Regex={pattern!r} does not compile: {error}"
            ) from error
        return cls(name=name, regex=regex)  # type: ignore[arg-type]  # checked in __post_init__


class MetricParser:
    """Applies every definition to each complete line of a stream fed in arbitrary chunks.

    A line ends at `\\n` or `\\r` (progress bars redraw with `\\r`). A capture that is not a
    number (`1.2.3`, an empty string) is ignored, as SageMaker does; `nan` and `inf` are numbers
    and come through, because judging them is the caller's business.
    """

    def __init__(
        self,
        *,
        definitions: Sequence[MetricDefinition],
        max_line_chars: int = DEFAULT_MAX_LINE_CHARS,
    ) -> None:
        if max_line_chars < 1:
            raise ValueError(f"max_line_chars={max_line_chars}: must be at least 1")
        self._definitions = tuple(definitions)
        self._max_line_chars = max_line_chars
        self._pending = ""

    def feed(self, chunk: str) -> list[tuple[str, float]]:
        """`(name, value)` for each match in the lines this chunk completes: in line order, and
        within a line in the order of the definitions."""
        if not chunk:
            return []
        text = self._pending + chunk
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
        self._pending = lines.pop()
        if len(self._pending) > self._max_line_chars:
            lines.append(self._pending)
            self._pending = ""
        return self._match_lines(lines)

    def finish(self) -> list[tuple[str, float]]:
        """Matches the last line if the stream ended without a newline."""
        line, self._pending = self._pending, ""
        return self._match_lines([line]) if line else []

    def _match_lines(self, lines: list[str]) -> list[tuple[str, float]]:
        matches: list[tuple[str, float]] = []
        for line in lines:
            for definition in self._definitions:
                found = definition.regex.search(line)
                if found is None:
                    continue
                value = _to_float(found.group(1))
                if value is not None:
                    matches.append((definition.name, value))
        return matches


def _to_float(captured: str | None) -> float | None:
    if captured is None:
        return None
    try:
        return float(captured)
    except ValueError:
        return None
