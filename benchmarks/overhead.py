"""openamt's overhead: wall time against the floor and against bare Ray Tune (issue 8).

N trials of a trainer that sleeps 1 s, 2 at a time, so the floor is N / 2 seconds. Each
configuration runs in its own process with its own Ray (num_cpus = parallel), timed from the
first trial's submission to the last result (Ray's start-up is reported apart):

    openamt-random     openamt, strategy Random, script-mode trials (benchmarks/sleep_trainer.py
                       with --sleep 1, started as a subprocess per trial; --trainer standin
                       runs the test suite's stand-in instead)
    openamt-bayesian   the same with strategy Bayesian (GP suggestions in the driver)
    tune-default       bare Ray Tune, function trials that time.sleep(1), default settings
                       (a fresh actor per trial)
    tune-reuse         the same with reuse_actors=True
    tune-reuse-script  bare Ray Tune with reuse_actors=True, each trial running the same
                       script-mode trainer as openamt (what a subprocess per trial costs)

For openamt it also reports /metrics size and scrape time near the end of the job, the
suggestion latency and how long free slots waited for suggestions (from the exporter's
histograms), where a slot's time goes (see
`_slot_breakdown`), the driver's peak RSS and the job directory's size; for bare Ray Tune, the
trial bodies' length and the idle time between them. For every configuration it records the
driver's CPU seconds, how busy the whole machine was during the run (all processes, all cores),
and the load average before and after, since a busy machine stretches everything.

    .venv/bin/python benchmarks/overhead.py --trials 100
    .venv/bin/python benchmarks/overhead.py --quick              # 40 trials
    .venv/bin/python benchmarks/overhead.py --trials 500 --output overhead-500.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = Path(__file__).resolve().parent
#: Script-mode trainers: the default only sleeps and prints; the stand-in of the test suite
#: also imports json, subprocess and pathlib, which adds its own start-up time per trial.
TRAINERS = {
    "sleep": BENCHMARKS / "sleep_trainer.py",
    "standin": REPO / "tests" / "fixtures" / "standin_trainer.py",
}
CONFIGS = ("openamt-random", "openamt-bayesian", "tune-default", "tune-reuse", "tune-reuse-script")
QUICK_TRIALS = 40
SCRAPE_INTERVAL_S = 2.0


# -- one configuration, in its own process --------------------------------------------------------


def run_one(
    config: str, *, trials: int, parallel: int, sleep_s: float, workdir: Path, trainer: str
) -> dict:
    """Start Ray, run one configuration, return its numbers (JSON-ready)."""
    import ray

    load_before = os.getloadavg()
    started = time.perf_counter()
    ray.init(num_cpus=parallel, include_dashboard=False, log_to_driver=False)
    ray_start_s = time.perf_counter() - started
    busy_before = _machine_busy_s()
    try:
        if config.startswith("openamt-"):
            numbers = _run_openamt(
                strategy=config.removeprefix("openamt-").capitalize(),
                trials=trials,
                parallel=parallel,
                sleep_s=sleep_s,
                workdir=workdir,
                trainer=TRAINERS[trainer],
            )
        else:
            numbers = _run_bare(
                config,
                trials=trials,
                parallel=parallel,
                sleep_s=sleep_s,
                workdir=workdir,
                trainer=TRAINERS[trainer],
            )
    finally:
        machine_busy_s = _machine_busy_s() - busy_before
        ray.shutdown()
    floor_s = trials * sleep_s / parallel
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "config": config,
        "trials": trials,
        "parallel": parallel,
        "sleep_s": sleep_s,
        "trainer": trainer,
        "floor_s": floor_s,
        "overhead_pct": 100.0 * (numbers["wall_s"] - floor_s) / floor_s,
        "ray_start_s": ray_start_s,
        "driver_peak_rss_mib": usage.ru_maxrss / 1024,
        "driver_cpu_s": usage.ru_utime + usage.ru_stime,
        "machine_cpu_busy_pct": 100.0 * machine_busy_s / (numbers["wall_s"] * os.cpu_count()),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        **numbers,
    }


def _run_bare(
    config: str, *, trials: int, parallel: int, sleep_s: float, workdir: Path, trainer: Path
) -> dict:
    from bare_ray_tune import run_bare_tune

    storage = workdir / config
    run = run_bare_tune(
        trials=trials,
        parallel=parallel,
        sleep_s=sleep_s,
        reuse_actors=config != "tune-default",
        storage_path=storage,
        script_argv=_trainer_argv(trainer, sleep_s) if config == "tune-reuse-script" else None,
    )
    size, files = _tree_size(storage)
    return {
        "wall_s": run.wall_s,
        "finished_trials": run.finished_trials,
        "errored_trials": run.errored_trials,
        "body_mean_s": run.body_mean_s,
        "gap_to_next_body_mean_s": run.gap_to_next_body_mean_s,
        "output_dir_mib": size / 2**20,
        "output_dir_files": files,
    }


def _trainer_argv(trainer: Path, sleep_s: float) -> list[str]:
    """The chosen trainer as one script-mode trial of the benchmark runs it."""
    return [sys.executable, str(trainer), "--epochs", "1", "--sleep", repr(sleep_s)]


def _run_openamt(
    *, strategy: str, trials: int, parallel: int, sleep_s: float, workdir: Path, trainer: Path
) -> dict:
    # Imported before the clock starts, as bare Ray Tune's module is: both then exclude
    # importing Ray Tune itself (about 1 s), which run_job would otherwise do inside the clock.
    import orchestrator.tune.experiment  # noqa: F401
    from orchestrator.spec import JobSpec
    from orchestrator.store.job_dir import JobDir
    from orchestrator.store.ledger import read_events
    from orchestrator.trial.outcome import TrialState
    from orchestrator.tune.runner import RunOptions, run_job

    spec = JobSpec.from_mapping(
        _job(strategy, trials, parallel, sleep_s, workdir, trainer), base_dir=workdir
    )
    port = _free_port()
    with Scraper(port=port) as scraper:
        started = time.perf_counter()
        result = run_job(spec, RunOptions(show_progress=False, metrics_port=port))
        wall_s = time.perf_counter() - started
    ledger_path = JobDir(path=spec.job_dir).ledger_path
    events = read_events(ledger_path)
    size, files = _tree_size(spec.job_dir)
    ray_size, _ = _tree_size(spec.job_dir / "ray")
    return {
        "wall_s": wall_s,
        "finished_trials": sum(1 for t in result.trials.values() if t.state.finished),
        "failed_trials": sum(1 for t in result.trials.values() if t.state is TrialState.FAILED),
        "job_dir_mib": size / 2**20,
        "job_dir_files": files,
        "job_dir_ray_mib": ray_size / 2**20,
        "ledger_kib": ledger_path.stat().st_size / 1024,
        **_slot_breakdown(events, job_dir=spec.job_dir, parallel=parallel),
        **scraper.summary(),
    }


def _job(
    strategy: str, trials: int, parallel: int, sleep_s: float, workdir: Path, trainer: Path
) -> dict:
    objective = "validation:accuracy"
    return {
        "name": f"overhead-{strategy.lower()}",
        "trainer": {
            "command": ["python", str(trainer)],
            "interpreter": sys.executable,
            "working_dir": str(workdir),
        },
        "hyperparameters": {"epochs": 1, "sleep": sleep_s},
        "hyperparameter_ranges": {
            "x": {"type": "Continuous", "min_value": 0.0, "max_value": 1.0},
            "y": {"type": "Continuous", "min_value": 0.0, "max_value": 1.0},
        },
        "objective_metric_name": objective,
        "objective_type": "Maximize",
        "metric_definitions": [{"Name": objective, "Regex": r"validation: accuracy=([0-9.]+)"}],
        "strategy": strategy,
        "max_jobs": trials,
        "max_parallel_jobs": parallel,
        "resources_per_trial": {"cpu": 1},
        "random_seed": 0,
        "output_path": str(workdir / "runs"),
    }


def _slot_breakdown(
    events: list[dict[str, Any]], *, job_dir: Path, parallel: int
) -> dict[str, float]:
    """Where a slot's time goes, per trial (seconds). From the ledger and the trial files:

    * wait: the planner hands the trial to Tune (ledger `trial_started`) -> the trainable
      starts on a worker (its `hyperparameters.json` is written just before the trainer);
      the first wave's wait is Ray starting its workers and is reported apart;
    * process: the trainer process, from `Popen` to exit (`duration_s`);
    * finish: the trial log is closed -> the driver records the end (ledger `trial_completed`);
    * gap: a completion -> the next trial handed out (the slot standing idle, e.g. while the
      GP suggests).
    """
    from orchestrator.store.job_dir import JobDir

    starts = {e["trial_id"]: e["time"] for e in events if e["event"] == "trial_started"}
    ends = {e["trial_id"]: e for e in events if e["event"] == "trial_completed"}
    first_wave = sorted(starts, key=starts.get)[:parallel]
    waits, first_waits, finishes = [], [], []
    for trial_id, started in starts.items():
        files = JobDir(path=job_dir).trial_files(trial_id)
        wait = files.hyperparameters.stat().st_mtime - started
        (first_waits if trial_id in first_wave else waits).append(wait)
        if trial_id in ends:
            log = files.attempt(ends[trial_id].get("attempt", 1)).log
            finishes.append(ends[trial_id]["time"] - log.stat().st_mtime)
    process = [e["duration_s"] for e in ends.values() if e.get("duration_s") is not None]
    completion_times = sorted(e["time"] for e in ends.values())
    gaps = []
    for start in sorted(starts.values())[parallel:]:
        before = [t for t in completion_times if t <= start]
        if before:
            gaps.append(start - before[-1])
    spans = [ends[t]["time"] - starts[t] for t in ends if t in starts and t not in first_wave]
    return {
        "first_wave_wait_s": max(first_waits, default=0.0),
        "wait_mean_s": _mean(waits),
        "wait_median_s": statistics.median(waits) if waits else 0.0,
        "trainer_process_mean_s": _mean(process),
        "finish_mean_s": _mean(finishes),
        "gap_to_next_start_mean_s": _mean(gaps),
        "gap_to_next_start_median_s": statistics.median(gaps) if gaps else 0.0,
        "trial_span_mean_s": _mean(spans),
    }


def _machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy (all cores, all processes) since boot."""
    import psutil

    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else 0.0


class Scraper:
    """Scrapes the job's /metrics every couple of seconds; the last scrape stands for "at the
    end of the job", since the server closes when the job returns. It runs in the driver's
    process, as a thread, so its timings include its own waits for the driver's GIL, which a
    Prometheus server in its own process does not have."""

    def __init__(self, *, port: int) -> None:
        self._url = f"http://127.0.0.1:{port}/metrics"
        self._last: tuple[int, float, str] | None = None
        self._durations: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(SCRAPE_INTERVAL_S):
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(self._url, timeout=5) as response:
                    body = response.read()
            except OSError:
                continue
            elapsed = time.perf_counter() - started
            self._durations.append(elapsed)
            self._last = (len(body), elapsed, body.decode())

    def summary(self) -> dict[str, float]:
        """Size and time of the last scrape, the median and slowest of all, and what the last
        said about trials and suggestions."""
        if self._last is None:
            return {}
        from prometheus_client.parser import text_string_to_metric_families

        size, seconds, body = self._last
        samples = {
            sample.name: sample.value
            for family in text_string_to_metric_families(body)
            for sample in family.samples
        }
        count = samples.get("openamt_suggestion_latency_seconds_count", 0.0)
        total = samples.get("openamt_suggestion_latency_seconds_sum", 0.0)
        waits = samples.get("openamt_suggestion_wait_seconds_count", 0.0)
        waited = samples.get("openamt_suggestion_wait_seconds_sum", 0.0)
        return {
            "metrics_bytes": size,
            "metrics_series": body.count("\n") - body.count("\n#"),
            "metrics_scrape_ms": 1000 * seconds,
            "metrics_scrapes": len(self._durations),
            "metrics_scrape_median_ms": 1000 * statistics.median(self._durations),
            "metrics_scrape_max_ms": 1000 * max(self._durations),
            "metrics_at_trials_started": samples.get("openamt_trials_started_total", 0.0),
            "suggestions": count,
            "suggestion_mean_ms": 1000 * total / count if count else 0.0,
            "suggestion_total_s": total,
            "suggestion_wait_mean_ms": 1000 * waited / waits if waits else 0.0,
            "suggestion_wait_total_s": waited,
            "searcher_fallbacks": samples.get("openamt_searcher_fallbacks", 0.0),
        }


def _tree_size(path: Path) -> tuple[int, int]:
    """Bytes and file count under `path`."""
    files = [p for p in path.rglob("*") if p.is_file()] if path.exists() else []
    return sum(p.stat().st_size for p in files), len(files)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- all configurations, each in a fresh process ---------------------------------------------------


def run_all(
    configs: list[str],
    *,
    trials: int,
    parallel: int,
    sleep_s: float,
    workdir: Path,
    trainer: str,
    report: Callable[[dict], None],
) -> list[dict]:
    """Run each configuration in a child process (a fresh Ray and an honest peak RSS)."""
    results = []
    env = {
        **os.environ,
        # Ray workers unpickle bare_ray_tune's trainables by module name.
        "PYTHONPATH": os.pathsep.join(
            [str(BENCHMARKS), str(REPO), os.environ.get("PYTHONPATH", "")]
        ),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
    }
    for config in configs:
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--run-one",
            config,
            "--trials",
            str(trials),
            "--parallel",
            str(parallel),
            "--sleep",
            repr(sleep_s),
            "--workdir",
            str(workdir / config),
            "--trainer",
            trainer,
        ]
        completed = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True)
        if completed.returncode != 0:
            raise SystemExit(
                f"{config} failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}"
            )
        result = json.loads(completed.stdout.strip().splitlines()[-1])
        if result["finished_trials"] != trials or result.get("failed_trials", 0) > 0:
            raise SystemExit(
                f"{config}: not every trial succeeded, so its timing means nothing: {result}"
            )
        results.append(result)
        report(result)
    return results


def markdown_table(results: list[dict]) -> str:
    """The headline numbers, one row per configuration."""
    rows = [
        "| configuration | trials | wall s | floor s | over floor | Ray start s "
        "| peak RSS MiB | load avg (1 min) before / after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rows.append(
            f"| {r['config']} | {r['finished_trials']} | {r['wall_s']:.1f} "
            f"| {r['floor_s']:.0f} | {r['overhead_pct']:+.0f}% | {r['ray_start_s']:.1f} "
            f"| {r['driver_peak_rss_mib']:.0f} "
            f"| {r['loadavg_before'][0]:.1f} / {r['loadavg_after'][0]:.1f} |"
        )
    return "\n".join(rows)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=500, help="trials per configuration")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_TRIALS} trials")
    parser.add_argument("--parallel", type=int, default=2, help="trials at a time")
    parser.add_argument("--sleep", type=float, default=1.0, help="seconds each trial sleeps")
    parser.add_argument(
        "--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS), help="what to run"
    )
    parser.add_argument(
        "--trainer",
        choices=list(TRAINERS),
        default="sleep",
        help="script-mode trainer: sleep_trainer.py (default) or the test suite's stand-in",
    )
    parser.add_argument("--output", type=Path, help="also write the results as JSON here")
    parser.add_argument("--workdir", type=Path, help="where jobs run (default: a temp dir)")
    parser.add_argument("--run-one", choices=CONFIGS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.trials = QUICK_TRIALS
    for name in ("trials", "parallel"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}: must be >= 1 (got {getattr(args, name)})")
    if args.sleep <= 0:
        parser.error(f"--sleep: must be > 0 (got {args.sleep})")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.run_one:
        args.workdir.mkdir(parents=True, exist_ok=True)
        result = run_one(
            args.run_one,
            trials=args.trials,
            parallel=args.parallel,
            sleep_s=args.sleep,
            workdir=args.workdir,
            trainer=args.trainer,
        )
        print(json.dumps(result))
        return 0
    with tempfile.TemporaryDirectory(prefix="openamt-overhead-") as scratch:
        workdir = args.workdir or Path(scratch)
        print(
            f"{args.trials} trials x {args.sleep:g} s ({args.trainer} trainer), "
            f"{args.parallel} in parallel; "
            f"{os.cpu_count()} CPUs; load average {os.getloadavg()}",
            flush=True,
        )
        results = run_all(
            args.configs,
            trials=args.trials,
            parallel=args.parallel,
            sleep_s=args.sleep,
            workdir=workdir,
            trainer=args.trainer,
            report=lambda r: print(json.dumps(r), flush=True),
        )
    print(markdown_table(results))
    if args.output:
        args.output.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
