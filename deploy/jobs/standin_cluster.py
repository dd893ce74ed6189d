"""Cluster smoke test through the Python API: a few trials of the deterministic stand-in
trainer, spread over the cluster's nodes. No GPU and no data needed; run it after `ray up`
and before spending GPU-hours.

    ray submit deploy/ray/onprem.yaml deploy/jobs/standin_cluster.py
    ray submit deploy/ray/aws-p3.yaml deploy/jobs/standin_cluster.py -- --max-jobs 8

`ray submit` copies this file to the head node's home directory and runs it there with the
`python` the cluster's setup commands put first on PATH (openamt's .venv). It connects to the
running cluster, prints each trial as it ends, and finishes with the best trial (the trainer's
optimum is validation:accuracy 0.95 at x=0.3, y=0.7). YAML twin: standin-cluster.yaml.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from orchestrator import HyperparameterTuner, ScriptTrainer
from orchestrator.tune.runner import RunOptions
from search import ContinuousParameter

#: Where the cluster's file_mounts put the repository, on every node.
REPOSITORY = Path.home() / "openamt"
SHARED_RUNS = "/shared/runs"
OBJECTIVE = "validation:accuracy"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", default="auto", help="Ray cluster (default: auto)")
    parser.add_argument("--output-path", default=SHARED_RUNS, help="shared storage for jobs")
    parser.add_argument("--job-name", help="resume this job instead of starting a new one")
    parser.add_argument("--max-jobs", type=int, default=4)
    parser.add_argument("--max-parallel-jobs", type=int, default=2)
    parser.add_argument("--metrics-port", type=int, default=9464, help="Prometheus exporter")
    parser.add_argument("--no-metrics", action="store_true")
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def build_tuner(args: argparse.Namespace) -> HyperparameterTuner:
    trainer = ScriptTrainer(
        "standin_trainer.py",
        source_dir=REPOSITORY / "tests" / "fixtures",
        hyperparameters={"epochs": 5, "sleep": 1.0},  # 5 s per trial: trials overlap
        resources_per_trial={"cpu": 1, "gpu": 0},
        max_runtime_in_seconds=120,
    )
    return HyperparameterTuner(
        trainer,
        objective_metric_name=OBJECTIVE,
        hyperparameter_ranges={
            "x": ContinuousParameter(0.0, 1.0),
            "y": ContinuousParameter(0.0, 1.0),
        },
        metric_definitions=[
            {"Name": OBJECTIVE, "Regex": r"validation: accuracy=([0-9\.]+)"},
            {"Name": "train:loss", "Regex": r"train: loss=([0-9\.]+)"},
        ],
        strategy="Random",
        max_jobs=args.max_jobs,
        max_parallel_jobs=args.max_parallel_jobs,
        base_tuning_job_name="standin-cluster",
        output_path=args.output_path,
        random_seed=0,
        retry_strategy={"maximum_retry_attempts": 2},
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tuner = build_tuner(args)
    tuner.fit(
        job_name=args.job_name,
        run_options=RunOptions(
            address=args.address,
            metrics_port=None if args.no_metrics else args.metrics_port,
            show_progress=not args.no_progress,
        ),
    )
    description = tuner.describe()
    best = description.get("BestTrainingJob")
    print(f"job {description['HyperParameterTuningJobName']}: {description['CompletionReason']}")
    print(f"trials: {description['TrainingJobStatusCounters']}")
    if best is None:
        print("no trial produced an objective value")
        return 1
    metric = best["FinalHyperParameterTuningJobObjectiveMetric"]
    print(f"best trial: {best['TrainingJobName']}  {metric['MetricName']}={metric['Value']:.6g}")
    print(f"hyperparameters: {best['TunedHyperParameters']}")
    print(f"job directory: {description['JobDirectory']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
