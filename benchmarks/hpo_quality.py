"""HPO quality: openamt's Bayesian search against pinned peers, on frozen references.

Methods (see ``benchmarks/hpo/methods.py``): openamt (Bayesian), random (openamt Random),
optuna-tpe (``TPESampler(multivariate=True, constant_liar=True)``), optuna-gp
(``GPSampler``, ``deterministic_objective=True`` on noise-free problems), hebo (HEBO 0.3.6
defaults), synetune-botorch (Syne Tune's ``BoTorchSearcher``) and botorch (a plain
BoTorch loop). Settings: ``30x2`` (30 trials in synchronous batches of 2) and ``32x8``
(32 trials, batches of 8), and for openamt alone ``30x2-async`` and ``32x8-async``, the same
budgets with each trial started as soon as a slot frees (``benchmarks/hpo/runner.py``).
Problems and their kinds: ``benchmarks/hpo/problems.py``.
Scores (``benchmarks/hpo/scoring.py``): Bayesmark's 100 x (1 - normalised regret) against
the optimum and random median frozen in ``benchmarks/hpo/references.json``; comparisons
are paired per seed, with 95% t-intervals.

An openamt run whose telemetry counts a random fallback or a NaN pick fails the
benchmark (listed, exit status 1).

Run from the repository root in the peers' environment (``benchmarks/setup_hpo_env.sh``):
    .venv-hpo/bin/python benchmarks/hpo_quality.py --quick          # 2 seeds, 3 problems
    nice -n 10 .venv-hpo/bin/python benchmarks/hpo_quality.py --jobs 2 --out runs.jsonl
    .venv-hpo/bin/python benchmarks/hpo_quality.py --report runs.jsonl
    .venv-hpo/bin/python benchmarks/hpo_quality.py --freeze-references   # rewrites the file
``--out`` appends each finished run, and a rerun with the same file skips the runs in it,
so an interrupted benchmark resumes.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.hpo.methods import ASYNCHRONOUS, METHODS  # noqa: E402
from benchmarks.hpo.problems import PROBLEMS  # noqa: E402
from benchmarks.hpo.report import render  # noqa: E402
from benchmarks.hpo.runner import ASYNC_SETTINGS, SETTINGS, init_worker, run_task  # noqa: E402
from benchmarks.hpo.scoring import (  # noqa: E402
    REFERENCES_PATH,
    freeze_references,
    load_references,
)

QUICK_PROBLEMS = ["branin", "resnet_crash", "mixed10"]
#: Slowest methods first keeps every worker busy until the end.
COST_ORDER = ["hebo", "synetune-botorch", "botorch", "optuna-gp", "openamt", "optuna-tpe"]


def run_all(tasks: list[tuple[str, str, str, int]], jobs: int, out: Path | None) -> list[dict]:
    """Run ``tasks`` on ``jobs`` processes, appending each result to ``out``."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    runs = []
    with multiprocessing.get_context("spawn").Pool(jobs, initializer=init_worker) as pool:
        for run in pool.imap_unordered(run_task, tasks, chunksize=1):
            runs.append(run)
            if out is not None:
                with out.open("a") as stream:
                    stream.write(json.dumps(run) + "\n")
            print(
                f"  {run['setting']} {run['problem']} {run['method']} seed {run['seed']}: "
                f"{run['seconds']:.1f} s ({len(runs)}/{len(tasks)})",
                file=sys.stderr,
                flush=True,
            )
    return runs


def read_runs(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def freeze(jobs: int) -> None:
    """Long reference runs for problems without a known optimum, then references.json."""
    unknown = [name for name, p in PROBLEMS.items() if p.optimum is None]
    tasks = [(p, m, "100x1", s) for p in unknown for m in ("openamt", "optuna-tpe") for s in (0, 1)]
    runs = run_all(tasks, jobs, None)
    references = freeze_references(runs)
    REFERENCES_PATH.write_text(json.dumps(references, indent=2) + "\n")
    print(f"wrote {REFERENCES_PATH}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, 3 problems")
    parser.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default 10)")
    parser.add_argument("--problems", nargs="*", default=None, choices=list(PROBLEMS))
    parser.add_argument("--methods", nargs="*", default=None, choices=list(METHODS))
    parser.add_argument(
        "--settings",
        nargs="*",
        default=list(SETTINGS),
        choices=list(SETTINGS | ASYNC_SETTINGS),
        help="default: the synchronous ones; the -async ones run only " + ", ".join(ASYNCHRONOUS),
    )
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--out", type=Path, default=None, help="JSONL of runs (appended)")
    parser.add_argument("--report", type=Path, default=None, help="only report this JSONL")
    parser.add_argument("--freeze-references", action="store_true")
    args = parser.parse_args(argv)
    if args.freeze_references:
        freeze(args.jobs)
        return 0
    references = load_references()
    if args.report:
        text, failed = render(read_runs(args.report), references)
        print(text)
        return 1 if failed else 0
    seeds = args.seeds or (2 if args.quick else 10)
    problems = args.problems or (QUICK_PROBLEMS if args.quick else list(PROBLEMS))
    methods = args.methods or list(METHODS)
    asynchronous = [s for s in args.settings if s in ASYNC_SETTINGS]
    batch_only = [m for m in methods if m not in ASYNCHRONOUS]
    if asynchronous and args.methods and batch_only:
        parser.error(
            f"--methods {' '.join(batch_only)} with --settings {' '.join(asynchronous)}: "
            f"asynchronous settings run only {', '.join(ASYNCHRONOUS)}"
        )
    done = (
        {(r["problem"], r["method"], r["setting"], r["seed"]) for r in read_runs(args.out)}
        if args.out
        else set()
    )
    tasks = [
        (p, m, s, seed)
        for seed in range(seeds)
        for s in args.settings
        for p in problems
        for m in methods
        if (p, m, s, seed) not in done and (s in SETTINGS or m in ASYNCHRONOUS)
    ]
    # Seed by seed, so an interrupted run leaves every method with the same seeds.
    tasks.sort(key=lambda t: (t[3], COST_ORDER.index(t[1]) if t[1] in COST_ORDER else 99))
    start = time.perf_counter()
    runs = run_all(tasks, args.jobs, args.out)
    elapsed = time.perf_counter() - start
    if args.out:
        runs = read_runs(args.out)
    text, failed = render(runs, references)
    print(text)
    print(
        f"\n{len(tasks)} runs now ({len(runs)} in all), {seeds} seed(s), {args.jobs} jobs, "
        f"{elapsed:.0f} s wall; load average {os.getloadavg()[0]:.1f}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
