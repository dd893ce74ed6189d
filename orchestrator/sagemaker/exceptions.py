"""The SDK's exceptions that notebooks catch."""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.errors import OpenAMTError


class UnexpectedStatusException(OpenAMTError, ValueError):
    """A job ended in a status the caller did not wait for (SageMaker's: a training job that
    Failed, a tuning job that Failed)."""

    def __init__(self, message: str, allowed_statuses: Sequence[str], actual_status: str) -> None:
        self.allowed_statuses = list(allowed_statuses)
        self.actual_status = actual_status
        super().__init__(message)
