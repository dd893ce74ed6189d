"""Trial supervisors started one trial ahead, so a trial does not wait for one to start.

A supervisor is a Python interpreter of its own (`orchestrator.trial.supervisor`), and its start
cost about 12 ms of every trial's slot. A `SupervisorPool` keeps one started and waiting: it
has armed its parent-death signal and become a subreaper, and it blocks on a pipe. `launch`
writes the trial's argv, working directory, environment and grace period into that pipe; the
supervisor then starts the trainer exactly as if it had been started for it. The pool then
starts the next spare in the background, while the trial runs.

Spares are started by the pool's own thread, which lives as long as the process: the
supervisor's parent-death signal follows the thread that started it, so a spare (and the
trainer it runs) dies with the process, not with the thread of the trial that used it. A spare
that is never used exits when the pool closes its pipe, or when the process dies.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

SUPERVISOR = Path(__file__).with_name("supervisor.py")
#: How long `launch` waits for the pool's thread to start a spare before giving up.
START_TIMEOUT_S = 60.0


class _Spare:
    """One started supervisor and the write end of the pipe it waits on."""

    def __init__(self) -> None:
        read_end, self._write_end = os.pipe()
        try:
            self.process = subprocess.Popen(
                _await_argv(read_end),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
                pass_fds=(read_end,),
            )
        except BaseException:
            os.close(self._write_end)
            raise
        finally:
            os.close(read_end)

    def send(self, launch: Mapping[str, object]) -> subprocess.Popen[bytes]:
        """Hand the trial over; the pipe's end tells the supervisor the message is complete."""
        try:
            with os.fdopen(self._write_end, "wb") as pipe:
                pipe.write(json.dumps(launch).encode())
        except BrokenPipeError:
            pass  # it died waiting: the caller sees it exit and classifies that
        return self.process

    def discard(self) -> None:
        """An unused spare exits when its pipe closes without a message."""
        os.close(self._write_end)
        self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


class SupervisorPool:
    """Launches supervised trainers from a spare supervisor started ahead of time."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._spare: _Spare | None = None
        self._error: BaseException | None = None
        self._closed = False
        self._thread: threading.Thread | None = None

    def launch(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        grace_period_s: float,
    ) -> subprocess.Popen[bytes]:
        """Start `argv` in `cwd` with exactly `env`, supervised, as `subprocess.Popen` would
        (a missing working directory raises the same `OSError`); returns the supervisor."""
        _check_directory(cwd)
        spare = self._take()
        if spare.process.poll() is not None:  # it died waiting (killed from outside): replace it
            spare.discard()
            spare = self._take()
        return spare.send(
            {"argv": list(argv), "cwd": str(cwd), "env": dict(env), "grace_s": grace_period_s}
        )

    def close(self) -> None:
        """Stop starting spares and let the waiting one exit."""
        with self._condition:
            self._closed = True
            spare, self._spare = self._spare, None
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join()
        if spare is not None:
            spare.discard()

    def _take(self) -> _Spare:
        with self._condition:
            if self._closed:
                raise RuntimeError("the supervisor pool is closed")
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._keep_one_ready, name="openamt-supervisors", daemon=True
                )
                self._thread.start()
            ready = self._condition.wait_for(
                lambda: self._spare is not None or self._error is not None, START_TIMEOUT_S
            )
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            if not ready or self._spare is None:
                raise OSError(errno.ETIMEDOUT, "no trial supervisor started in time")
            spare, self._spare = self._spare, None
            self._condition.notify_all()  # the pool's thread starts the next one
            return spare

    def _keep_one_ready(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(
                    lambda: self._closed or (self._spare is None and self._error is None)
                )
                if self._closed:
                    return
            try:
                spare = _Spare()
            except OSError as error:  # fork failed: the next `launch` reports it
                with self._condition:
                    self._error = error
                    self._condition.notify_all()
                continue
            with self._condition:
                if self._closed:
                    closed = True
                else:
                    closed, self._spare = False, spare
                    self._condition.notify_all()
            if closed:
                spare.discard()
                return


def _await_argv(fd: int) -> list[str]:
    return [sys.executable, "-I", "-S", str(SUPERVISOR), str(os.getpid()), "--await", str(fd)]


def _check_directory(cwd: Path) -> None:
    """The error `subprocess.Popen(cwd=...)` raises for a working directory it cannot enter."""
    try:
        os.stat(cwd)
    except OSError as error:
        raise type(error)(error.errno, error.strerror, str(cwd)) from None
    if not os.path.isdir(cwd):
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(cwd))
    if not os.access(cwd, os.X_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(cwd))


#: The pool of this process's Ray worker: its spares outlive single trials, not the process.
WORKER_POOL = SupervisorPool()
