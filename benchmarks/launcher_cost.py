"""What the trial supervisor adds to each trial's start and end.

Starts `benchmarks/sleep_trainer.py --sleep 0` N times each way, as `run_trial_process` would
(new session, pipes, closed fds): bare, under the trial supervisor
(`orchestrator/trial/supervisor.py`, which ends the trainer's whole process tree on every path)
started for the trial, and under one a `SupervisorPool` started ahead, as Ray workers run trials
(the pool gets 0.2 s between trials, untimed, to start the next one, as a running trial gives it).
Reports the mean per start.

    .venv/bin/python benchmarks/launcher_cost.py
    .venv/bin/python benchmarks/launcher_cost.py --starts 100
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator.trial.process import supervised_argv  # noqa: E402
from orchestrator.trial.supervisors import SupervisorPool  # noqa: E402

TRAINER = [sys.executable, str(REPO / "benchmarks" / "sleep_trainer.py"), "--sleep", "0"]


def mean_start_ms(argv: list[str], starts: int) -> float:
    """Mean wall time, in ms, from starting `argv` to its exit."""
    started = time.perf_counter()
    for _ in range(starts):
        subprocess.run(
            argv, capture_output=True, start_new_session=True, close_fds=True, check=True
        )
    return 1000 * (time.perf_counter() - started) / starts


def mean_pooled_start_ms(starts: int) -> float:
    """Mean wall time, in ms, from handing `TRAINER` to a pool's waiting supervisor to its exit."""
    pool = SupervisorPool()
    total = 0.0
    try:
        for _ in range(starts):
            time.sleep(0.2)  # what a running trial gives the pool to start the next spare
            started = time.perf_counter()
            process = pool.launch(TRAINER, cwd=REPO, env=dict(os.environ), grace_period_s=120.0)
            process.communicate()
            total += time.perf_counter() - started
    finally:
        pool.close()
    return 1000 * total / starts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=30, help="starts per way")
    args = parser.parse_args(argv)
    ways = {
        "bare": TRAINER,
        "trial supervisor": supervised_argv(TRAINER, grace_period_s=120.0),
    }
    mean_start_ms(TRAINER, 3)  # warm the page cache
    print("| launcher | mean ms per start |\n|---|---|")
    for name, command in ways.items():
        print(f"| {name} | {mean_start_ms(command, args.starts):.1f} |", flush=True)
    print(f"| trial supervisor started ahead | {mean_pooled_start_ms(args.starts):.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
