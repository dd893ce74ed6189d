"""Bare Ray Tune running the overhead benchmark's trials, as the baseline openamt is measured
against (see `benchmarks/overhead.py`).

Two kinds of trial, both sleeping the same time as openamt's trials:

* a function trainable that calls `time.sleep` (what Ray Tune is usually benchmarked with), and
* a function trainable that starts the same script-mode trainer openamt runs and reads its
  objective from stdout, which separates the cost of starting a process from openamt's own.

Each trial reports when its body (the sleep or the trainer process) started and ended, so the
time between one trial's body and the next one's is known: that is Ray Tune's own overhead.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import tune

OBJECTIVE_LINE = re.compile(r"validation: accuracy=([0-9.]+)")


@dataclass(frozen=True)
class BareTuneRun:
    """What one bare Ray Tune experiment took (seconds)."""

    wall_s: float
    finished_trials: int
    errored_trials: int
    body_mean_s: float  # the sleep, or the trainer process
    gap_to_next_body_mean_s: float  # a body's end to the next body's start (the slot idle)


def sleep_trial(config: dict[str, Any]) -> None:
    """A function trial that only sleeps, then reports an objective."""
    started = time.time()
    time.sleep(config["sleep_s"])
    tune.report({"objective": config["x"], "body_start": started, "body_end": time.time()})


def script_trial(config: dict[str, Any]) -> None:
    """A function trial that runs the script-mode trainer like openamt does, minus openamt."""
    argv = [*config["argv"], "--x", repr(config["x"]), "--y", repr(config["y"])]
    started = time.time()
    completed = subprocess.run(argv, capture_output=True, check=True)
    ended = time.time()
    # The stand-in prints bytes that are not UTF-8 on purpose; openamt's reader replaces them.
    values = OBJECTIVE_LINE.findall(completed.stdout.decode(errors="replace"))
    tune.report({"objective": float(values[-1]), "body_start": started, "body_end": ended})


def run_bare_tune(
    *,
    trials: int,
    parallel: int,
    sleep_s: float,
    reuse_actors: bool,
    storage_path: Path,
    script_argv: Sequence[str] | None = None,
) -> BareTuneRun:
    """Run `trials` random trials, `parallel` at a time, one CPU each; Ray must be initialised.

    With `script_argv`, each trial runs that trainer (which must sleep `sleep_s` itself);
    without, each trial sleeps in the trainable.
    """
    space: dict[str, Any] = {"x": tune.uniform(0.0, 1.0), "y": tune.uniform(0.0, 1.0)}
    if script_argv is None:
        trainable: Any = sleep_trial
        space["sleep_s"] = sleep_s
    else:
        trainable = script_trial
        space["argv"] = list(script_argv)
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space=space,
        tune_config=tune.TuneConfig(
            num_samples=trials, max_concurrent_trials=parallel, reuse_actors=reuse_actors
        ),
        run_config=tune.RunConfig(storage_path=str(storage_path), name="bare", verbose=0),
    )
    started = time.perf_counter()
    results = tuner.fit()
    wall_s = time.perf_counter() - started
    bodies = sorted(
        (r.metrics["body_start"], r.metrics["body_end"]) for r in results if r.error is None
    )
    errored = sum(1 for result in results if result.error is not None)
    return BareTuneRun(
        wall_s=wall_s,
        finished_trials=len(results) - errored,
        errored_trials=errored,
        body_mean_s=statistics.fmean(end - start for start, end in bodies) if bodies else 0.0,
        gap_to_next_body_mean_s=_mean_gap(bodies, parallel=parallel),
    )


def _mean_gap(bodies: list[tuple[float, float]], *, parallel: int) -> float:
    """Mean time from the latest body end before each start to that start (first wave excluded)."""
    ends = sorted(end for _, end in bodies)
    gaps = []
    for start, _ in bodies[parallel:]:
        before = [end for end in ends if end <= start]
        if before:
            gaps.append(start - before[-1])
    return statistics.fmean(gaps) if gaps else 0.0
