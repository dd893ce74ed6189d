"""The reference experiment: an MXNet Gluon ResNet-34 on CIFAR-10 (batch 1024 per GPU,
50 epochs), tuning learning_rate (0.001-0.5), momentum (0-0.99) and wd (0-0.001), one trial per
p3.8xlarge node (4 V100s) as in the reference. Bayesian search (the default): 30 trials, 2 at a
time, as the reference, which reached 74% validation accuracy; random search (--strategy
Random): 120 trials, 8 at a time, the reference's 73.7%.

    ray submit deploy/ray/aws-p3.yaml deploy/jobs/cifar10.py
    ray submit deploy/ray/aws-p3.yaml deploy/jobs/cifar10.py -- --strategy Random
    ray submit deploy/ray/aws-p3.yaml deploy/jobs/cifar10.py -- --per-gpu
    ray submit deploy/ray/aws-p3.yaml deploy/jobs/cifar10.py -- --job-name NAME  # resume

`ray submit` copies this file to the head node's home directory and runs it there with the
`python` the cluster's setup commands put first on PATH (openamt's .venv). It connects to the
running cluster, prints each trial as it ends, and finishes with the best trial. CIFAR-10 must
be on the shared storage first: `openamt data cifar10 --dest /shared/data/cifar10`.
YAML twins: cifar10-bayesian.yaml and cifar10-random.yaml.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from orchestrator import HyperparameterTuner, ScriptTrainer
from orchestrator.tune.runner import RunOptions
from search import ContinuousParameter

#: The reference's sizing per strategy: (trials, in parallel, base job name).
SIZING = {
    "Bayesian": (30, 2, "cifar10-bayesian"),
    "Random": (120, 8, "cifar10-random"),
}

#: Where the cluster's file_mounts put the repository, on every node.
REPOSITORY = Path.home() / "openamt"
SHARED_DATA = "/shared/data/cifar10"
SHARED_RUNS = "/shared/runs"
OBJECTIVE = "Validation-accuracy"
#: A trial per p3.8xlarge node (the reference), or a trial per GPU with --per-gpu.
PER_NODE = {"cpu": 8, "gpu": 4}
PER_GPU = {"cpu": 8, "gpu": 1}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--strategy",
        type=str.capitalize,  # "random" and "RANDOM" are "Random"
        choices=list(SIZING),
        default="Bayesian",
        help="search strategy, with the reference's sizing (default: Bayesian)",
    )
    parser.add_argument("--max-jobs", type=int, help="trials (default: the reference's)")
    parser.add_argument("--max-parallel-jobs", type=int, help="trials at a time (default: ditto)")
    parser.add_argument("--per-gpu", action="store_true", help="one trial per GPU, not per node")
    parser.add_argument("--address", default="auto", help="Ray cluster (default: auto)")
    parser.add_argument("--data", default=SHARED_DATA, help="CIFAR-10 on the shared storage")
    parser.add_argument("--output-path", default=SHARED_RUNS, help="shared storage for jobs")
    parser.add_argument("--job-name", help="resume this job instead of starting a new one")
    parser.add_argument("--metrics-port", type=int, default=9464, help="Prometheus exporter")
    parser.add_argument("--no-metrics", action="store_true")
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def build_tuner(args: argparse.Namespace) -> HyperparameterTuner:
    max_jobs, max_parallel_jobs, base_job_name = SIZING[args.strategy]
    if args.max_jobs is not None:
        max_jobs = args.max_jobs
    if args.max_parallel_jobs is not None:
        max_parallel_jobs = args.max_parallel_jobs
    trainer = ScriptTrainer(
        "models.mxnet_cifar10",
        module=True,
        source_dir=REPOSITORY,
        python=REPOSITORY / ".venv-mxnet" / "bin" / "python",
        hyperparameters={"batch_size": 1024, "epochs": 50},  # batch_size is per GPU
        resources_per_trial=PER_GPU if args.per_gpu else PER_NODE,
        max_runtime_in_seconds=7200,  # ~480 s per trial on 4 V100s, ~4x that on one
    )
    return HyperparameterTuner(
        trainer,
        objective_metric_name=OBJECTIVE,
        hyperparameter_ranges={
            # SageMaker's Auto scaling, as in the reference: logarithmic for a 500x range.
            "learning_rate": ContinuousParameter(0.001, 0.5, scaling_type="Logarithmic"),
            "momentum": ContinuousParameter(0.0, 0.99, scaling_type="Linear"),
            "wd": ContinuousParameter(0.0, 0.001, scaling_type="Linear"),
        },
        metric_definitions=[
            {"Name": OBJECTIVE, "Regex": r"validation: accuracy=([0-9\.]+)"},
            {"Name": "Train-accuracy", "Regex": r"training: accuracy=([0-9\.]+)"},
            {"Name": "Train-loss", "Regex": r"loss=([0-9\.]+)"},
        ],
        strategy=args.strategy,
        max_jobs=max_jobs,
        max_parallel_jobs=max_parallel_jobs,
        base_tuning_job_name=base_job_name,
        output_path=args.output_path,
        random_seed=0,
        retry_strategy={"maximum_retry_attempts": 2},  # a lost node costs an attempt, not a trial
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tuner = build_tuner(args)
    tuner.fit(
        inputs={"training": args.data},
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
