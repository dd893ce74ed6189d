"""openamt's exception hierarchy: catching `OpenAMTError` catches every error raised on purpose."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

_MAX_VALUE_CHARS = 80


class OpenAMTError(Exception):
    """Base class of every error openamt raises deliberately."""


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


#: The `value` of a problem about a required field that was not given.
MISSING: Final = _Missing()


@dataclass(frozen=True)
class SpecProblem:
    """One thing wrong with a job spec: where (`field`, dotted), what (`value`), why (`rule`).

    Also used for warnings, which have the same three parts but do not stop a job.
    """

    field: str
    value: Any
    rule: str

    def __str__(self) -> str:
        if self.value is MISSING:
            return f"{self.field}: {self.rule}"
        shown = repr(self.value)
        if len(shown) > _MAX_VALUE_CHARS:
            shown = shown[: _MAX_VALUE_CHARS - 3] + "..."
        return f"{self.field}: {self.rule} (got {shown})"


class SpecError(OpenAMTError):
    """A job spec is invalid; holds every problem found, so one `validate` run shows them all."""

    def __init__(self, problems: Sequence[SpecProblem], *, source: str | None = None) -> None:
        self.problems: tuple[SpecProblem, ...] = tuple(problems)
        self.source = source
        super().__init__(self._message())

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from its problems when pickled (Ray ships exceptions between processes).
        return (functools.partial(SpecError, source=self.source), (self.problems,))

    def _message(self) -> str:
        where = f"job spec {self.source}" if self.source else "job spec"
        count = len(self.problems)
        header = f"{where} is invalid ({count} problem{'s' if count != 1 else ''}):"
        return "\n".join([header, *(f"  - {problem}" for problem in self.problems)])


class ResumeError(OpenAMTError):
    """An existing job directory cannot be resumed safely (corrupt ledger, different spec, ...)."""


class TrialError(OpenAMTError):
    """A trial could not be started or its outcome could not be recorded."""


class TunerError(OpenAMTError):
    """The tuner was used in a way it cannot honour (no job yet, a function trainer detached)."""


class TuningJobFailedError(TunerError):
    """The job's driver ended without recording the end of the job."""


class WaitTimeoutError(TunerError, TimeoutError):
    """`wait(timeout=...)` ran out of time; the job goes on."""


class JobInterrupted(OpenAMTError):
    """The driver was asked to stop (Ctrl-C / SIGTERM); the job is resumable."""
