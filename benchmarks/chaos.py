"""Chaos: a seeded schedule of faults against real jobs, and an audit of what each left behind.

Each round runs a small real job (`openamt tune`, embedded Ray, the deterministic stand-in
trainer), injects one fault at a seeded moment, reruns the same command until the job ends (as a
user would), and audits the job directory and the machine:

    lost         trials missing at the end (fewer finished trials than max_jobs), or a trial
                 whose record has no end
    duplicated   a configuration trained as two trials, or more trials than max_jobs
    left running trials the record still has running after a driver exited by itself
                 (a SIGKILLed driver cannot write; what the read model shows then is audited too)
    alive        processes carrying a trial's marker 10 s after a driver exited
    refused      reruns that refused to resume the job

Fault kinds: driver SIGKILL, Ray worker SIGKILL, trainer SIGKILL, grandchild SIGKILL, a disk
that fills mid-job (tmpfs; needs root), an output flood, a job-level stop with trials running
(the job's runtime limit), and SIGINT to a driver started with SIGINT ignored.

    .venv/bin/python benchmarks/chaos.py                      # 3 rounds a kind, about 15 min
    .venv/bin/python benchmarks/chaos.py --rounds 1 --kinds driver_sigkill,job_stop
    .venv/bin/python benchmarks/chaos.py --results benchmarks/RESULTS.md   # update the table

The goal is zero in every column.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator.store.ledger import Event, read_events  # noqa: E402
from orchestrator.store.records import summarize_trials  # noqa: E402
from orchestrator.store.view import load_job_view  # noqa: E402
from orchestrator.trial.outcome import TrialState  # noqa: E402

STANDIN = REPO / "tests" / "fixtures" / "standin_trainer.py"
OPENAMT = [sys.executable, "-m", "orchestrator.cli"]
MAX_RERUNS = 6
DRIVER_TIMEOUT_S = 240
KINDS = (
    "driver_sigkill",
    "worker_sigkill",
    "trainer_sigkill",
    "grandchild_sigkill",
    "disk_full",
    "output_flood",
    "job_stop",
    "interrupt",
)
#: What a driver says when it refuses to resume a job.
REFUSALS = ("cannot be resumed", "Refusing to resume", "ResumeError", "different spec")
COLUMNS = ("rounds", "lost", "duplicated", "left running", "alive", "refused")


@dataclass
class Audit:
    """What went wrong in the rounds of one fault kind (zero everywhere is the goal)."""

    rounds: int = 0
    lost: int = 0
    duplicated: int = 0
    left_running: int = 0
    alive: int = 0
    refused: int = 0
    notes: list[str] = field(default_factory=list)

    def row(self) -> list[int]:
        return [self.rounds, self.lost, self.duplicated, self.left_running, self.alive,
                self.refused]  # fmt: skip


@dataclass
class Round:
    """One job in its own folder, and the driver processes run for it."""

    kind: str
    rng: random.Random
    root: Path
    audit: Audit
    max_jobs: int = 4
    job: Path = field(init=False)
    job_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.job = self.root / "job.yaml"
        self.job_dir = self.root / "runs" / "chaos"

    def write_job(self, **overrides: Any) -> None:
        job = {
            "name": "chaos",
            "trainer": {
                "command": ["python", str(STANDIN)],
                "interpreter": sys.executable,
                "working_dir": str(self.root),
            },
            "hyperparameters": {"epochs": 4, "sleep": 0.5},
            "hyperparameter_ranges": {
                "x": {"type": "Continuous", "min_value": 0.0, "max_value": 1.0},
                "y": {"type": "Continuous", "min_value": 0.0, "max_value": 1.0},
            },
            "objective_metric_name": "validation:accuracy",
            "metric_definitions": [
                {"Name": "validation:accuracy", "Regex": r"validation: accuracy=([-+0-9.eEnaif]+)"}
            ],
            "strategy": "Random",
            "max_jobs": self.max_jobs,
            "max_parallel_jobs": 2,
            "resources_per_trial": {"cpu": 1},
            "stop_grace_period_in_seconds": 5,
            "retry_strategy": {"maximum_retry_attempts": 3},
            "random_seed": self.rng.randrange(10_000),
            "output_path": str(self.root / "runs"),
        }
        job.update(overrides)
        self.job.write_text(yaml.safe_dump(job))

    def start(self, *, ignore_sigint: bool = False) -> subprocess.Popen[str]:
        def ignore() -> None:
            signal.signal(signal.SIGINT, signal.SIG_IGN)

        return subprocess.Popen(
            [*OPENAMT, "tune", str(self.job), "--no-progress", "--no-metrics"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=ignore if ignore_sigint else None,
        )

    def finish(self, driver: subprocess.Popen[str], *, killed: bool) -> int:
        """Wait for a driver, then audit what its exit left behind."""
        try:
            output, _ = driver.communicate(timeout=DRIVER_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            driver.kill()
            output, _ = driver.communicate()
            self.audit.notes.append(f"{self.kind}: a driver ran past {DRIVER_TIMEOUT_S} s")
        if "Traceback" in output:
            self.audit.notes.append(f"{self.kind}: traceback: {output[-400:]!r}")
        if not killed:
            self._audit_exit()
        # anything of the job's still alive 10 s after its driver exited counts
        wait_for(lambda: not marked_processes(self.job_dir), timeout=10)
        self.audit.alive += len(marked_processes(self.job_dir))
        for process in marked_processes(self.job_dir):
            with _quietly():
                process.kill()
        if any(
            word in output for word in ("cannot be resumed", "Refusing to resume", "ResumeError")
        ):
            self.audit.refused += 1
        return driver.returncode

    def _audit_exit(self) -> None:
        trials = summarize_trials(read_events(self.job_dir / "ledger.jsonl"))
        self.audit.left_running += sum(t.state is TrialState.RUNNING for t in trials.values())
        shown = load_job_view(self.job_dir).trials.values()
        self.audit.left_running += sum(t.state is TrialState.RUNNING for t in shown)

    def run_to_the_end(self) -> None:
        """Rerun the same command until the job has finished."""
        for _ in range(MAX_RERUNS):
            if completed(self.job_dir):
                break
            self.finish(self.start(), killed=False)
        self.audit_final()

    def audit_final(self) -> None:
        events = read_events(self.job_dir / "ledger.jsonl")
        trials = summarize_trials(events)
        finished = [t for t in trials.values() if t.finished]
        expected = self.max_jobs if not self.stops_early() else len(trials)
        self.audit.lost += max(0, expected - len(finished))
        self.audit.lost += sum(t.state is TrialState.RUNNING for t in trials.values())
        configs = [json.dumps(t.config, sort_keys=True) for t in trials.values()]
        self.audit.duplicated += len(configs) - len(set(configs))
        self.audit.duplicated += max(0, len(trials) - self.max_jobs)
        if not completed(self.job_dir):
            self.audit.notes.append(f"{self.kind}: the job did not complete")

    def stops_early(self) -> bool:
        return self.kind == "job_stop"


def completed(job_dir: Path) -> bool:
    events = read_events(job_dir / "ledger.jsonl") if job_dir.exists() else []
    return bool(events) and events[-1]["event"] == Event.JOB_COMPLETED.value


def marked_processes(job_dir: Path) -> list[psutil.Process]:
    """Living processes that belong to a trial of the job (its marker in their environment)."""
    found = []
    for process in psutil.process_iter():
        with _quietly():
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            if process.environ().get("OPENAMT_JOB_DIR") == str(job_dir):
                found.append(process)
    return found


class _quietly:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, *rest: object) -> bool:
        return kind is not None and issubclass(kind, psutil.Error)


def wait_for(condition: Callable[[], bool], *, timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def results_seen(job_dir: Path, count: int) -> Callable[[], bool]:
    def check() -> bool:
        ledger = job_dir / "ledger.jsonl"
        events = read_events(ledger) if ledger.exists() else []
        return sum(e["event"] == Event.TRIAL_RESULT.value for e in events) >= count

    return check


# -- the faults ---------------------------------------------------------------------------------
def kill_after_results(round_: Round, pick: Callable[[Round], psutil.Process | None]) -> None:
    round_.write_job()
    driver = round_.start()
    if wait_for(results_seen(round_.job_dir, round_.rng.randint(1, 6))):
        victim = pick(round_)
        if victim is not None:
            with _quietly():
                victim.kill()
    round_.finish(driver, killed=False)
    round_.run_to_the_end()


def driver_sigkill(round_: Round) -> None:
    round_.write_job()
    driver = round_.start()
    wait_for(results_seen(round_.job_dir, round_.rng.randint(1, 8)))
    time.sleep(round_.rng.uniform(0, 1.5))
    driver.kill()
    round_.finish(driver, killed=True)
    shown = load_job_view(round_.job_dir).trials.values()  # what status shows meanwhile
    round_.audit.left_running += sum(t.state is TrialState.RUNNING for t in shown)
    round_.run_to_the_end()


#: How to recognise each kind of victim by its command line.
VICTIMS: dict[str, Callable[[str], bool]] = {
    "supervisor": lambda cmdline: "supervisor.py" in cmdline,
    "trainer": lambda cmdline: "standin_trainer" in cmdline and "supervisor" not in cmdline,
    "grandchild": lambda cmdline: "time.sleep(3600)" in cmdline,
}


def _trial_process(round_: Round, *, kind: str) -> psutil.Process | None:
    """A random process of that kind among the job's; for "supervisor", its Ray worker."""
    candidates = []
    for process in marked_processes(round_.job_dir):
        with _quietly():
            if VICTIMS[kind](" ".join(process.cmdline())):
                candidates.append(process.parent() if kind == "supervisor" else process)
    return round_.rng.choice(candidates) if candidates else None


def worker_sigkill(round_: Round) -> None:
    kill_after_results(round_, lambda r: _trial_process(r, kind="supervisor"))


def trainer_sigkill(round_: Round) -> None:
    kill_after_results(round_, lambda r: _trial_process(r, kind="trainer"))


def grandchild_sigkill(round_: Round) -> None:
    round_.write_job(hyperparameters={"epochs": 4, "sleep": 0.5, "spawn_child": 1})
    driver = round_.start()
    if wait_for(results_seen(round_.job_dir, round_.rng.randint(1, 6))):
        victim = _trial_process(round_, kind="grandchild")
        if victim is not None:
            with _quietly():
                victim.kill()
    round_.finish(driver, killed=False)
    round_.run_to_the_end()


def disk_full(round_: Round) -> None:
    runs = round_.root / "runs"
    runs.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(runs)],
                             capture_output=True)  # fmt: skip
    if mounted.returncode != 0:
        round_.audit.notes.append("disk_full: cannot mount a tmpfs here (needs root)")
        return
    try:
        round_.write_job()
        driver = round_.start()
        wait_for(results_seen(round_.job_dir, round_.rng.randint(1, 6)))
        filler = runs / "filler"
        with open(filler, "wb", buffering=0) as handle:
            for chunk in (1 << 20, 1 << 12, 1):
                with _no_space():
                    while True:
                        handle.write(b"\0" * chunk)
        round_.finish(driver, killed=False)
        subprocess.run(["mount", "-o", "remount,size=96m", str(runs)], check=True)  # grown
        round_.run_to_the_end()
    finally:
        subprocess.run(["umount", "-l", str(runs)], capture_output=True)


class _no_space:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, *rest: object) -> bool:
        return kind is not None and issubclass(kind, OSError)


def output_flood(round_: Round) -> None:
    round_.write_job(hyperparameters={"flood": 100_000}, max_trial_log_bytes=1_000_000)
    round_.finish(round_.start(), killed=False)
    results = [e for e in read_events(round_.job_dir / "ledger.jsonl")
               if e["event"] == Event.TRIAL_RESULT.value]  # fmt: skip
    if len(results) > 200 * round_.max_jobs:
        round_.audit.notes.append(f"output_flood: {len(results)} progress lines in the ledger")
    round_.run_to_the_end()


def job_stop(round_: Round) -> None:
    round_.write_job(
        hyperparameters={"epochs": 40, "sleep": 1.0, "graceful": 1},
        completion_criteria={"max_runtime_in_seconds": round_.rng.randint(20, 35)},
    )
    round_.finish(round_.start(), killed=False)
    starts = len([e for e in read_events(round_.job_dir / "ledger.jsonl")
                  if e["event"] == Event.TRIAL_STARTED.value])  # fmt: skip
    round_.finish(round_.start(), killed=False)  # rerunning a finished job starts nothing
    again = len([e for e in read_events(round_.job_dir / "ledger.jsonl")
                 if e["event"] == Event.TRIAL_STARTED.value])  # fmt: skip
    round_.audit.duplicated += again - starts
    round_.audit_final()


def interrupt(round_: Round) -> None:
    round_.write_job()
    driver = round_.start(ignore_sigint=True)
    wait_for(results_seen(round_.job_dir, round_.rng.randint(1, 6)))
    driver.send_signal(signal.SIGINT)
    round_.finish(driver, killed=False)
    round_.run_to_the_end()


FAULTS: dict[str, Callable[[Round], None]] = {
    "driver_sigkill": driver_sigkill,
    "worker_sigkill": worker_sigkill,
    "trainer_sigkill": trainer_sigkill,
    "grandchild_sigkill": grandchild_sigkill,
    "disk_full": disk_full,
    "output_flood": output_flood,
    "job_stop": job_stop,
    "interrupt": interrupt,
}


def table(audits: dict[str, Audit]) -> str:
    lines = ["| fault | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for kind, audit in audits.items():
        lines.append(f"| {kind} | " + " | ".join(str(n) for n in audit.row()) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds per fault kind")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated fault kinds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the audit as JSON here")
    args = parser.parse_args(argv)
    kinds = [kind for kind in args.kinds.split(",") if kind]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        parser.error(f"--kinds: unknown {unknown}; choose from {', '.join(KINDS)}")
    rng = random.Random(args.seed)
    audits = {kind: Audit() for kind in kinds}
    started = time.monotonic()
    schedule = [kind for kind in kinds for _ in range(args.rounds)]
    rng.shuffle(schedule)
    for number, kind in enumerate(schedule, start=1):
        with tempfile.TemporaryDirectory(prefix="openamt-chaos-") as root:
            round_ = Round(kind=kind, rng=random.Random(rng.random()), root=Path(root),
                           audit=audits[kind])  # fmt: skip
            FAULTS[kind](round_)
            audits[kind].rounds += 1
        print(f"round {number}/{len(schedule)}: {kind} done ({time.monotonic() - started:.0f} s)",
              flush=True)  # fmt: skip
    print(table(audits))
    print(f"\n{len(schedule)} rounds in {time.monotonic() - started:.0f} s (seed {args.seed})")
    for audit in audits.values():
        for note in audit.notes:
            print(f"note: {note}")
    if args.json:
        args.json.write_text(json.dumps({k: vars(a) for k, a in audits.items()}, indent=2))
    failures = sum(sum(a.row()[1:]) for a in audits.values())
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
