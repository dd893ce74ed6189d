"""The incremental parser that scrapes metrics from a trainer's log.

This is SageMaker's contract: a trainer prints whatever it likes, and each metric is a named
regular expression with exactly one capture group holding the number (`spec.MetricDefinition`,
validated once when the spec is loaded). The parser sees the log in arbitrary chunks as they
come off a pipe, so it keeps the unfinished last line until the rest arrives and only ever
matches whole lines.

A regular expression can backtrack for minutes on one unlucky line, which would stall the
pipe and with it the trainer. So each line is matched under a time limit
(`MetricDefinition.search`), and a definition that runs out of time `MAX_TIMEOUTS` times is no
longer applied in that trial (with a warning in the trial log). `openamt validate
--sample-log` reports such a regex before a job runs.
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.spec import MetricDefinition
from orchestrator.spec.sections import MATCH_TIMEOUT_S

# A line longer than this (a progress bar that never prints a newline) is matched and dropped
# rather than buffered forever.
DEFAULT_MAX_LINE_CHARS = 1_000_000
#: Timeouts after which a definition is no longer applied in a trial.
MAX_TIMEOUTS = 3


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
        self._definitions = list(definitions)
        self._max_line_chars = max_line_chars
        self._pending = ""
        self._timeouts: dict[str, int] = {}
        self._warnings: list[str] = []

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

    def take_warnings(self) -> list[str]:
        """Warnings since the last call (a regex that ran out of time), for the trial log."""
        warnings, self._warnings = self._warnings, []
        return warnings

    def _match_lines(self, lines: list[str]) -> list[tuple[str, float]]:
        matches: list[tuple[str, float]] = []
        for line in lines:
            for definition in list(self._definitions):
                try:
                    found = definition.search(line)
                except TimeoutError:
                    self._timed_out(definition)
                    continue
                if found is None:
                    continue
                value = _to_float(found.group(1))
                if value is not None:
                    matches.append((definition.name, value))
        return matches

    def _timed_out(self, definition: MetricDefinition) -> None:
        count = self._timeouts[definition.name] = self._timeouts.get(definition.name, 0) + 1
        limit = f"{MATCH_TIMEOUT_S * 1000:g} ms"
        if count < MAX_TIMEOUTS:
            self._warnings.append(
                f"metric {definition.name!r}: its Regex took over {limit} on a line; "
                "that line was skipped"
            )
            return
        self._definitions.remove(definition)
        self._warnings.append(
            f"metric {definition.name!r}: its Regex took over {limit} on {count} lines; it is "
            "no longer applied in this trial (simplify it: `openamt validate --sample-log`)"
        )


def _to_float(captured: str | None) -> float | None:
    if captured is None:
        return None
    try:
        return float(captured)
    except ValueError:
        return None
