"""Stop requests from the driver to a running attempt, as a file in the attempt's folder.

The driver decides every stop (early stopping, Hyperband, completion criteria, a job stop, a
newer attempt fencing off an older one); the attempt, wherever it runs, sees the file within a
fraction of a second and stops its trainer gracefully. A file on the job's shared storage works
on every node, survives Ray's API changes and leaves a record of why.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from orchestrator.store.job_dir import AttemptFiles, make_dirs, write_atomic
from orchestrator.trial.outcome import EndCause, StopRequest

#: How often a running attempt looks for its stop request.
POLL_INTERVAL_S = 0.25


def request_stop(files: AttemptFiles, request: StopRequest) -> None:
    """Ask the attempt to stop (a first request wins: it is not replaced)."""
    if files.stop_request.exists():
        return
    make_dirs(files.directory)  # the attempt may not have begun yet
    payload = {"reason": request.reason, "cause": request.cause.value, "time": time.time()}
    write_atomic(files.stop_request, json.dumps(payload))


def read_stop_request(files: AttemptFiles) -> StopRequest | None:
    try:
        payload = json.loads(files.stop_request.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return StopRequest(reason="stopped by the driver (unreadable stop request)")
    return StopRequest(reason=str(payload.get("reason")), cause=EndCause(payload["cause"]))


class StopWatcher:
    """`read_stop_request` at most every `POLL_INTERVAL_S`, for a trial's supervision loop."""

    def __init__(self, files: AttemptFiles, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._files = files
        self._clock = clock
        self._next = 0.0
        self._request: StopRequest | None = None

    def __call__(self) -> StopRequest | None:
        if self._request is None and self._clock() >= self._next:
            self._next = self._clock() + POLL_INTERVAL_S
            self._request = read_stop_request(self._files)
        return self._request
