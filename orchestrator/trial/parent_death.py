"""Ties a trainer's life to the thread that starts it: the kernel SIGKILLs the trainer when that
thread dies (a Ray worker killed or crashed), so no trainer keeps a GPU busy for nobody.

Linux's PR_SET_PDEATHSIG does this, but it must be set in the child between fork and exec. A
Python `preexec_fn` could, but is unsafe in a multi-threaded process like a Ray worker, so the
trainer's argv is prefixed with a launcher that sets it and then execs the trainer:

* `setpriv --pdeathsig KILL` (util-linux) and a POSIX shell that checks the parent is still the
  one that started it (it may have died before the signal was armed) — about 2 ms a trial;
* where `setpriv` is missing or too old, a `python -I -S` doing the same — about 28 ms a trial,
  most of it importing ctypes, which a benchmark of one-second trials notices.

`benchmarks/launcher_cost.py` measures both.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys

__all__ = ["guard_with_parent_death"]

# `$1` is the pid that must still be the parent once the signal is armed; if it is not, the
# parent died in between and nothing would deliver the signal, so the trainer never starts.
_SHELL_CHECK = """
[ "$PPID" = "$1" ] || kill -KILL $$
shift
case $1 in
    */*) [ -f "$1" ] && [ -x "$1" ] ;;
    *) command -v "$1" >/dev/null ;;
esac || { printf 'openamt: cannot run %s: not found or not executable\\n' "$1" >&2; exit 127; }
exec "$@"
"""

_PYTHON_LAUNCHER = """
import ctypes, os, signal, sys
expected_parent, argv = int(sys.argv[1]), sys.argv[2:]
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
except (OSError, AttributeError):
    pass  # a libc without prctl: run unguarded rather than not at all
if os.getppid() != expected_parent:
    os.kill(os.getpid(), signal.SIGKILL)
try:
    os.execvp(argv[0], argv)
except OSError as error:
    sys.stderr.write(f"openamt: cannot run {argv[0]}: {error.strerror}\\n")
    sys.stderr.flush()
    os._exit(127)
"""


def guard_with_parent_death(argv: list[str], *, launcher: str | None = None) -> list[str]:
    """`argv` behind a parent-death launcher on Linux; unchanged elsewhere.

    `launcher` forces "setpriv" or "python" (the tests run both); by default setpriv is used
    when it works here.
    """
    if not sys.platform.startswith("linux"):
        return argv
    parent = str(os.getpid())
    if launcher is None:
        launcher = "setpriv" if _working_setpriv() else "python"
    if launcher == "setpriv":
        setpriv = _working_setpriv() or "setpriv"
        return [setpriv, "--pdeathsig", "KILL", "--", "/bin/sh", "-c", _SHELL_CHECK,
                "openamt-trial", parent, *argv]  # fmt: skip
    if launcher == "python":
        if not sys.executable:  # embedded without an interpreter to run: unguarded
            return argv
        return [sys.executable, "-I", "-S", "-c", _PYTHON_LAUNCHER, parent, *argv]
    raise ValueError(f"launcher={launcher!r}: must be 'setpriv', 'python' or None")


@functools.cache
def _working_setpriv() -> str | None:
    """The path of a setpriv that knows --pdeathsig (util-linux 2.33 and later), or None.
    An absolute path, so a trainer environment without PATH still finds it."""
    setpriv = shutil.which("setpriv")
    if setpriv is None or not os.path.exists("/bin/sh"):
        return None
    try:
        probe = subprocess.run(
            [setpriv, "--pdeathsig", "KILL", "--", "/bin/sh", "-c", "exit 0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return setpriv if probe.returncode == 0 else None
