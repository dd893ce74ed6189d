"""The `openamt` command line: tune, validate, status, list, best, stop, export, report, data."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

from orchestrator.errors import JobInterrupted, OpenAMTError, SpecError
from orchestrator.monitor.server import DEFAULT_METRICS_PORT
from orchestrator.trial.outcome import TrialState

if TYPE_CHECKING:
    from orchestrator.store.view import JobView
    from orchestrator.tune.runner import RunOptions

EXAMPLES = {
    "tune": "openamt tune deploy/jobs/quickstart-digits.yaml\n"
    "openamt tune job.yaml --address auto --metrics-port 9464\n"
    "openamt tune job.yaml --detach",
    "validate": "openamt validate job.yaml --sample-log trial.log",
    "status": "openamt status runs/digits-bayes",
    "list": "openamt list runs",
    "stop": "openamt stop runs/digits-bayes",
    "best": "openamt best runs/digits-bayes --json",
    "export": "openamt export runs/digits-bayes --csv --output trials.csv",
    "report": "openamt report runs/digits-bayes",
    "data": "openamt data cifar10 --dest data/cifar10\n"
    "openamt data cifar10 --dest data/cifar10 --from-archive cifar-10-binary.tar.gz",
}

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
#: How long `openamt tune --detach` waits for its driver to start the job (Ray starts first).
DETACH_TIMEOUT_S = 180.0

# Markup off: job names, paths, hyperparameter values and trainer output are printed as they are
# (a trainer's "[/INST]" is text, not a style); only `Text` objects carry colour.
console = Console(soft_wrap=True, markup=False, highlight=False)
err_console = Console(stderr=True, soft_wrap=True, markup=False, highlight=False)


def _error(message: object, *, label: str = "error:") -> None:
    err_console.print(Text.assemble((label, "red"), " ", str(message)))


def _warning(message: object) -> None:
    err_console.print(Text.assemble(("warning:", "yellow"), " ", str(message)))


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.handler(args)
    except SpecError as error:
        _error(error)
        return EXIT_BAD_INPUT
    except OpenAMTError as error:
        _error(error)
        return EXIT_INTERRUPTED if isinstance(error, JobInterrupted) else EXIT_ERROR
    except OSError as error:  # disk full, permissions: the job stays resumable
        where = f" ({error.filename})" if error.filename else ""
        _error(
            f"{error.strerror or error}{where}. Everything recorded before this is intact; "
            "fix the cause and rerun the same command to resume."
        )
        return EXIT_ERROR


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="openamt",
        description="Self-hosted automatic model tuning on Ray.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        + "\n".join(f"  {line}" for v in EXAMPLES.values() for line in v.split("\n")),
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog="example:\n" + "\n".join(f"  {line}" for line in EXAMPLES[name].split("\n")),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        return sub

    tune = command("tune", "Run a tuning job, or resume it if its job directory exists.")
    tune.add_argument("job", type=Path, help="job spec (YAML)")
    tune.add_argument(
        "--address",
        help="Ray cluster address ('auto' for the local head); "
        "default: start Ray embedded in this process",
    )
    tune.add_argument(
        "--metrics-port",
        type=int,
        default=DEFAULT_METRICS_PORT,
        help=f"serve Prometheus metrics on this port (default {DEFAULT_METRICS_PORT}, the port "
        "deploy/prometheus/prometheus.yml scrapes; 0 picks a free port)",
    )
    tune.add_argument("--no-metrics", action="store_true", help="do not serve metrics")
    tune.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        help="address to bind the metrics server to (default 127.0.0.1)",
    )
    tune.add_argument(
        "--metrics-public",
        action="store_true",
        help="allow --metrics-host to be a non-loopback address",
    )
    tune.add_argument(
        "--ray-metrics-export-port",
        type=int,
        default=None,
        help="embedded Ray only: port for Ray's own Prometheus metrics",
    )
    tune.add_argument("--no-progress", action="store_true", help="no live progress bar")
    tune.add_argument(
        "--detach",
        action="store_true",
        help="run the job in a background driver and return once it runs "
        "(follow it with `openamt status`, stop it with `openamt stop`)",
    )
    tune.set_defaults(handler=_tune)

    validate = command("validate", "Check a job spec without running anything.")
    validate.add_argument("job", type=Path)
    validate.add_argument(
        "--sample-log", type=Path, help="a trainer log to check the metric regexes against"
    )
    validate.set_defaults(handler=_validate)

    for name, help_text, handler in (
        ("status", "Show a job's progress: trials by state, running trials, best so far.", _status),
        ("best", "Show the best trial of a job and its hyperparameters.", _best),
        ("report", "Write report.html with plots into the job directory.", _report),
    ):
        sub = command(name, help_text)
        sub.add_argument("job_dir", type=Path)
        if name == "best":
            sub.add_argument("--json", action="store_true", help="print JSON")
        sub.set_defaults(handler=handler)

    listing = command("list", "List the jobs in an output path: state, trials, best.")
    listing.add_argument(
        "output_path", type=Path, nargs="?", default=Path("runs"), help="default: runs"
    )
    listing.set_defaults(handler=_list)

    stop = command("stop", "Stop a running job gracefully; it stays resumable.")
    stop.add_argument("job_dir", type=Path)
    stop.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="how long to wait for the driver to exit (default: the job's grace period + 60)",
    )
    stop.set_defaults(handler=_stop)

    export = command("export", "Export one row per trial.")
    export.add_argument("job_dir", type=Path)
    export.add_argument("--csv", action="store_true", required=True, help="CSV format")
    export.add_argument("--output", type=Path, help="file to write (default: stdout)")
    export.set_defaults(handler=_export)

    data = command("data", "Download or convert a data set for the shipped trainers.")
    data.add_argument("dataset", choices=["cifar10"])
    data.add_argument(
        "rest",
        nargs=argparse.REMAINDER,
        help="--dest DIR [--from-archive PATH] [--url URL] [--md5 MD5]",
    )
    data.set_defaults(handler=_data)
    return parser


def _tune(args: argparse.Namespace) -> int:
    from orchestrator.spec import load_job_spec
    from orchestrator.tune.runner import RunOptions, run_job

    spec = load_job_spec(args.job)
    for warning in spec.warnings:
        _warning(warning)
    options = RunOptions(
        address=args.address,
        metrics_port=None if args.no_metrics else args.metrics_port,
        metrics_host=args.metrics_host,
        allow_public_metrics=args.metrics_public,
        show_progress=not args.no_progress,
        ray_metrics_export_port=args.ray_metrics_export_port,
    )
    if args.detach:
        return _tune_detached(args, spec.job_dir, options)
    result = run_job(spec, options)
    if result.failed:
        _error(result.failure, label="job failed:")
    else:
        console.print(f"job finished: {result.reason}")
    if result.best is not None:
        console.print(
            f"best trial: {result.best.trial_id}  "
            f"{spec.objective_metric_name}={result.best.objective:.6g}"
        )
        console.print(f"hyperparameters: {json.dumps(result.best.config)}", soft_wrap=True)
    else:
        console.print("no trial produced an objective value")
    console.print(f"job directory: {result.job_dir}")
    return EXIT_ERROR if result.failed else EXIT_OK


def _tune_detached(args: argparse.Namespace, job_dir: Path, options: RunOptions) -> int:
    """Start the job's driver in the background (its own session, output in `driver.log`) and
    return once it has recorded its start in the ledger, so a stop from now on is graceful."""
    from orchestrator.api.driver import TuningJob
    from orchestrator.store.job_dir import JobDir

    job = TuningJob(job_dir=job_dir)
    if job_dir.exists() and (running := job.driver_pid()) is not None:
        raise OpenAMTError(
            f"job {job.name} is already running (driver pid {running}); follow it with "
            f"`openamt status {job_dir}` or stop it with `openamt stop {job_dir}`"
        )
    JobDir(path=job_dir).create()
    job.start_driver(options, job_file=args.job.resolve())
    pid = job.driver_pid()
    if pid is None or not job.wait_until_running(pid, timeout=DETACH_TIMEOUT_S):
        if job.driver_pid() is None:  # it ended without starting a run; its status says why
            exit_code = job.driver_exit_code()
            if exit_code == 0:  # a finished job: nothing left to run
                console.print(f"job {job.name} has nothing left to run: {job.view().status_text}")
                return EXIT_OK
            raise OpenAMTError(
                f"the driver exited (status {exit_code}) before starting job {job.name}. Last "
                f"lines of {job.files.driver_log}:\n{job.driver_log_tail()}"
            )
        _warning(f"driver pid {pid} has not started the job after {DETACH_TIMEOUT_S:g} s")
    console.print(f"job {job.name} runs in the background (driver pid {pid})")
    console.print(f"job directory: {job_dir}")
    console.print(f"follow it: openamt status {job_dir}  (driver output: {job.files.driver_log})")
    console.print(f"stop it:   openamt stop {job_dir}")
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    """One line per job, in name order: state, finished trials of `max_jobs`, best objective,
    status in words. Plain columns, never cut short, so the output greps and pipes."""
    from orchestrator.store.job_dir import JobDir
    from orchestrator.store.view import load_job_view

    root: Path = args.output_path
    if not root.is_dir():
        problem = "is not a directory" if root.exists() else "no such directory"
        raise OpenAMTError(f"output_path {root}: {problem}; pass the directory jobs are in")
    lines = [["job", "state", "trials", "best", "note"]]
    for path in sorted(root.iterdir()):
        files = JobDir(path=path)  # a job, or what a driver leaves before its spec (not data/)
        marks = (files.spec_path, files.job_file, files.ledger_path, files.lock_file)
        if not path.is_dir() or not any(mark.exists() for mark in marks):
            continue
        try:
            lines.append(_list_row(path.name, load_job_view(path)))
        except (OpenAMTError, OSError) as error:  # one damaged job must not hide the others
            lines.append([path.name, "unreadable", "-", "-", str(error).split("\n")[0]])
    if len(lines) == 1:
        console.print(f"no jobs in {root}")
        return EXIT_OK
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]) - 1)]
    for line in lines:
        padded = (cell.ljust(width) for cell, width in zip(line[:-1], widths, strict=True))
        console.print("  ".join([*padded, line[-1]]))
    return EXIT_OK


def _list_row(name: str, view: JobView) -> list[str]:
    finished = sum(1 for t in view.trials.values() if t.finished)
    running = sum(1 for t in view.trials.values() if t.state is TrialState.RUNNING)
    trials = f"{finished} of {view.spec.get('max_jobs', '?')}" + (
        f", {running} running" if running else ""
    )
    best, shown = view.best, "-"
    if best is not None:
        shown = f"{view.objective_metric_name}={best.objective:.6g} ({best.trial_id})"
    unstarted = not view.events and not view.driver_running
    state = "NotStarted" if unstarted else view.status.value
    return [name, state, trials, shown, view.status_text]


def _stop(args: argparse.Namespace) -> int:
    """SIGTERM to the job's driver (its graceful stop, as `stop_tuning_job()`), then wait until
    the driver has recorded the end of the run and exited."""
    import time

    from orchestrator.store.driver import is_alive
    from orchestrator.store.view import load_job_view

    view = load_job_view(args.job_dir)
    if view.driver_pid is None:  # known without importing the tuner (and torch with it)
        console.print(f"job {view.name} is not running: {view.status_text}")
        return EXIT_OK
    from orchestrator.api.driver import STOP_MARGIN_S, TuningJob

    pid, asked = view.driver_pid, time.time()
    console.print(f"stopping job {view.name} (driver pid {pid}); running trials get SIGTERM")
    description = TuningJob(job_dir=args.job_dir).stop(timeout=args.timeout)
    # The driver records the end of its run, then exits: wait for that too, so that a rerun
    # right after this finds the job directory free.
    deadline = time.monotonic() + STOP_MARGIN_S
    while is_alive(pid, started_before=asked) and time.monotonic() < deadline:
        time.sleep(0.1)
    if is_alive(pid, started_before=asked):
        raise OpenAMTError(f"job {view.name}: driver pid {pid} recorded the stop but runs on")
    counters = description["TrainingJobStatusCounters"]
    console.print(
        f"job {view.name}: {description['HyperParameterTuningJobStatus']} "
        f"({counters['Completed']} completed, {counters['Stopped']} stopped, "
        f"{counters['NonRetryableError']} failed); rerun the same `openamt tune` to resume it"
    )
    return EXIT_OK


def _validate(args: argparse.Namespace) -> int:
    from orchestrator.spec import load_job_spec, validate_sample_log

    spec = load_job_spec(args.job)
    for warning in spec.warnings:
        _warning(warning)
    if args.sample_log is not None:
        problems = validate_sample_log(spec, args.sample_log.read_text(errors="replace"))
        if problems:
            raise SpecError(problems, source=f"{args.job} checked against {args.sample_log}")
    space = spec.search_space()
    console.print(
        f"{args.job}: valid — {len(space.tunable_names)} tuned hyperparameters, "
        f"strategy {spec.strategy.value}, {spec.max_jobs} trials, "
        f"{spec.max_parallel_jobs} in parallel; job directory {spec.job_dir}"
    )
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    from collections import Counter

    from orchestrator.store.view import load_job_view

    view = load_job_view(args.job_dir)
    counts = Counter(t.state.value for t in view.trials.values())
    max_jobs = view.spec.get("max_jobs")
    console.print(f"job {view.spec.get('name')}  ({view.path})")
    console.print(
        f"trials: {len(view.trials)} of {max_jobs}  "
        + "  ".join(f"{state} {n}" for state, n in sorted(counts.items()))
    )
    best = view.best
    if best is not None:
        console.print(f"best: {best.trial_id}  {view.objective_metric_name}={best.objective:.6g}")
    running = [t for t in view.trials.values() if t.state is TrialState.RUNNING]
    if running:
        table = Table("trial", "attempt", "latest objective", "epoch")
        for t in running:
            last = t.history[-1] if t.history else None
            table.add_row(
                t.trial_id,
                str(t.attempts),
                _fmt(last[1] if last else None),
                str(last[0]) if last else "-",
            )
        console.print(table)
    console.print(f"state: {view.status_text}")
    return EXIT_OK


def _best(args: argparse.Namespace) -> int:
    from orchestrator.store.view import load_job_view

    view = load_job_view(args.job_dir)
    best = view.best
    if best is None:
        raise OpenAMTError(f"{args.job_dir}: no trial has an objective value yet")
    if args.json:
        print(
            json.dumps(
                {
                    "trial_id": best.trial_id,
                    "objective": best.objective,
                    "hyperparameters": best.config,
                },
                indent=2,
            )
        )
    else:
        console.print(f"{best.trial_id}  {view.objective_metric_name}={best.objective:.6g}")
        for name, value in best.config.items():
            console.print(f"  {name} = {value}")
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    from orchestrator.store.export import write_csv
    from orchestrator.store.view import load_job_view

    view = load_job_view(args.job_dir)
    if args.output is None:
        write_csv(view, sys.stdout)
    else:
        with open(args.output, "w", newline="", encoding="utf-8") as handle:
            rows = write_csv(view, handle)
        err_console.print(f"wrote {rows} trials to {args.output}")
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from orchestrator.report.page import write_report

    path = write_report(args.job_dir)
    console.print(f"report written: {path}")
    return EXIT_OK


def _data(args: argparse.Namespace) -> int:
    from models import cifar10_data

    return cifar10_data.main(args.rest)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


if __name__ == "__main__":
    sys.exit(main())
