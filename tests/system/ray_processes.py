"""`ray stop --force`, confined to one Ray temp directory.

`ray stop` stops every Ray process on the machine, including other people's clusters and other
tests' embedded Ray. The system tests give each Ray node its own temp directory instead and stop
exactly the processes that name it (GCS, raylet, agents, `ray start`) and everything those
started (Ray workers, whose titles no longer show it, and the trainers they run).

    python tests/system/ray_processes.py TEMP_DIR     # what the `ray up` test's `ray stop` runs
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import psutil

GRACE_PERIOD_S = 5.0


def processes_of(temp_dir: Path) -> list[psutil.Process]:
    """Processes whose command line names `temp_dir`, and all their descendants."""
    marker = os.path.abspath(temp_dir)
    own = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
    found: dict[int, psutil.Process] = {}
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if marker not in cmdline or process.pid in own:
            continue
        try:
            family = [process, *process.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        found.update((p.pid, p) for p in family if p.pid not in own)
    return list(found.values())


def stop_ray_processes(temp_dir: Path, *, force: bool = False) -> int:
    """Stop the processes of `temp_dir` (SIGKILL at once with `force`, else SIGTERM, then SIGKILL
    after a grace period); returns how many there were."""
    processes = processes_of(temp_dir)
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill() if force else process.terminate()
    _, alive = psutil.wait_procs(processes, timeout=0.5 if force else GRACE_PERIOD_S)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(alive, timeout=5)
    return len(processes)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: ray_processes.py TEMP_DIR", file=sys.stderr)
        return 2
    count = stop_ray_processes(Path(argv[0]))
    print(f"stopped {count} Ray processes of {argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
