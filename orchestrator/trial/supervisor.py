"""The trial supervisor: the one process between a Ray worker and a trainer, so that nothing the
trainer starts outlives its trial, whichever way the trial ends.

Run as `python -I -S supervisor.py PARENT_PID GRACE_S -- TRAINER ARGV...` (standard library only,
no site-packages), or started ahead of its trial as `supervisor.py PARENT_PID --await FD`: armed
as below, it then reads the trial (JSON: argv, cwd, env, grace_s) from file descriptor FD up to
its end, and exits quietly if none comes (`orchestrator.trial.supervisors`). A supervisor started
for its trial is paid for by the trial, so it imports only `os`, `time`, `ctypes` and the C
module `_signal` (the `signal` wrapper and `contextlib` would cost 7 ms a trial, mostly `enum`;
`benchmarks/launcher_cost.py` measures it). It

* dies with the thread that started it: the kernel sends it SIGUSR2 when that thread or its
  process dies (PR_SET_PDEATHSIG), and it then SIGKILLs every descendant before it exits;
* is a child subreaper (PR_SET_CHILD_SUBREAPER): a descendant whose parent exits (a bash wrapper
  that started a `setsid` helper, a double fork) is re-parented to the supervisor instead of
  init, so it stays in reach;
* starts the trainer in a process group of its own, with SIGINT and SIGTERM at their defaults
  and no signal blocked (a driver started with SIGINT ignored, `nohup ... &`, or by a runner
  that blocks signals must not pass that on), and with a parent-death SIGKILL of its own;
* on SIGTERM (a stop or a timeout) sends SIGTERM to every descendant, waits `GRACE_S` for the
  trainer to exit, then SIGKILLs every descendant;
* when the trainer exits, SIGKILLs whatever it left behind, reaps everything, and exits the way
  the trainer did (its exit code, or the signal that killed it), so the caller can classify the
  end as if it had been the trainer's parent.

If it cannot run the trainer it prints `openamt: cannot run X: why` and exits 127. Where the
kernel has no prctl (not Linux) the guarantees above shrink to the trainer's process group.
"""

from __future__ import annotations

import _signal as signal  # the C module under `signal`: the same calls, no enum import
import os
import sys
import time

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
EXIT_CANNOT_RUN = 127
# Python ignores SIGPIPE and SIGXFSZ at start, and a driver may run with SIGINT ignored; exec keeps
# ignored signals ignored, so the trainer gets the defaults back explicitly.
_RESET_IN_TRAINER = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGUSR2,
    signal.SIGALRM,
    signal.SIGPIPE,
    signal.SIGXFSZ,
)
_HANDLED = (signal.SIGUSR2, signal.SIGTERM, signal.SIGINT, signal.SIGALRM, signal.SIGCHLD)


def _prctl(option: int, value: int) -> bool:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def descendants(root: int) -> list[int]:
    """Every living process below `root`, from /proc (parents before children)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        # The name in parentheses may hold spaces and parentheses: split after the last ')'.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if fields and fields[0] != b"Z":
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, queue = [], [root]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def _signal_all(sig: int) -> None:
    for pid in descendants(os.getpid()):
        try:
            os.kill(pid, sig)
        except OSError:
            continue  # gone already


class Supervisor:
    """The supervisor's state: the trainer's pid, its exit status, and whether a stop began."""

    def __init__(self, *, grace_s: float) -> None:
        self.grace_s = grace_s
        self.trainer: int | None = None
        self.status: int | None = None
        self.stopping = False

    def on_stop(self, signum: int, frame: object) -> None:
        """SIGTERM/SIGINT: pass SIGTERM on to every descendant; SIGKILL them after the grace."""
        if not self.stopping:
            self.stopping = True
            _signal_all(signal.SIGTERM)
            signal.setitimer(signal.ITIMER_REAL, max(self.grace_s, 0.001))

    def on_grace_over(self, signum: int, frame: object) -> None:
        """SIGALRM: the grace period after a stop ran out."""
        _signal_all(signal.SIGKILL)

    def on_parent_death(self, signum: int, frame: object) -> None:
        """SIGUSR2 (the thread that started us died): nothing may outlive it."""
        _signal_all(signal.SIGKILL)
        os._exit(128 + signal.SIGKILL)

    def start(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        """Fork the trainer: `argv` with `env` (this process's own environment if None)."""
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the trainer
            try:
                os.setpgid(0, 0)
                signal.setitimer(signal.ITIMER_REAL, 0)
                for sig in _RESET_IN_TRAINER:
                    signal.signal(sig, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_SETMASK, set())  # nothing blocked, as in a shell
                _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
                if os.getppid() != parent:  # the supervisor died before the signal was armed
                    os._exit(EXIT_CANNOT_RUN)
                if env is None:
                    os.execvp(argv[0], argv)
                os.execvpe(argv[0], argv, env)
            except OSError as error:
                os.write(2, f"openamt: cannot run {argv[0]}: {error.strerror}\n".encode())
            os._exit(EXIT_CANNOT_RUN)
        self.trainer = pid

    def run(self) -> int:
        """Reap children until the trainer is gone and nothing is left; the trainer's status.

        Orphans of the trainer's tree are our children by the time the trainer is reaped (we
        are their subreaper), so once no child is left, no descendant is left either."""
        while True:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            if pid != self.trainer:
                continue
            self.status = status
            try:
                if os.waitpid(-1, os.WNOHANG) == (0, 0):  # something was left behind
                    _signal_all(signal.SIGKILL)
            except ChildProcessError:
                break
        return self.status if self.status is not None else 0


def exit_like(status: int) -> None:
    """Exit with the trainer's exit code, or die of the signal that killed it."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        time.sleep(1)  # the signal arrives before this ends
        os._exit(128 + sig)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def main(argv: list[str]) -> None:
    if len(argv) == 3 and argv[1] == "--await":
        _run_awaited(expected_parent=int(argv[0]), fd=int(argv[2]))
    expected_parent, grace_s, separator, *trainer = argv
    if separator != "--" or not trainer:
        sys.stderr.write(
            "usage: supervisor.py PARENT_PID GRACE_S -- TRAINER ARGV...\n"
            "       supervisor.py PARENT_PID --await FD\n"
        )
        os._exit(2)
    supervisor = Supervisor(grace_s=float(grace_s))
    _arm(supervisor, expected_parent=int(expected_parent))
    if supervisor.stopping:  # stopped before the trainer started: it never starts
        os._exit(128 + signal.SIGTERM)
    supervisor.start(trainer)
    exit_like(supervisor.run())


def _arm(supervisor: Supervisor, *, expected_parent: int) -> None:
    """Signal handlers, the parent-death signal and the subreaper flag, before any trainer."""
    signal.signal(signal.SIGUSR2, supervisor.on_parent_death)
    signal.signal(signal.SIGTERM, supervisor.on_stop)
    signal.signal(signal.SIGINT, supervisor.on_stop)
    signal.signal(signal.SIGALRM, supervisor.on_grace_over)
    # The signal mask survives fork and exec: a driver started by a runner that blocks signals
    # must not leave us deaf to the parent-death signal or to a stop.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _HANDLED)
    _prctl(PR_SET_PDEATHSIG, signal.SIGUSR2)
    if os.getppid() != expected_parent:  # the parent died before the signal was armed
        os.kill(os.getpid(), signal.SIGKILL)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)


def _run_awaited(*, expected_parent: int, fd: int) -> None:
    """A supervisor started ahead of its trial: arm, wait for the trial on `fd`, run it."""
    import json  # before the wait, so the trial does not pay for it

    supervisor = Supervisor(grace_s=0.0)
    _arm(supervisor, expected_parent=expected_parent)
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    os.close(fd)
    if not chunks:  # the pool let this spare go unused
        os._exit(0)
    launch = json.loads(b"".join(chunks))
    supervisor.grace_s = float(launch["grace_s"])
    if supervisor.stopping:
        os._exit(128 + signal.SIGTERM)
    argv = launch["argv"]
    try:
        os.chdir(launch["cwd"])
    except OSError as error:
        os.write(2, f"openamt: cannot run {argv[0]}: {launch['cwd']}: {error.strerror}\n".encode())
        os._exit(EXIT_CANNOT_RUN)
    supervisor.start(argv, env=launch["env"])
    exit_like(supervisor.run())


if __name__ == "__main__":
    main(sys.argv[1:])
