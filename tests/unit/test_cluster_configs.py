"""The cluster configs pass Ray's own validation and keep the security defaults; the job scripts
for `ray submit` and their YAML twins describe the same, reference, experiment.

Ray is imported only for its cluster-config validation (`ray.autoscaler._private.util`, the
function `ray up` runs); nothing here starts Ray.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from orchestrator.spec import JobSpec, load_job_spec, validate_sample_log

REPO = Path(__file__).resolve().parents[2]
CLUSTERS = REPO / "deploy" / "ray"
JOBS = REPO / "deploy" / "jobs"
CLUSTER_CONFIGS = ["aws-p3.yaml", "onprem.yaml"]

#: The reference experiment (DESIGN.md): ranges, static hyperparameters, trials and parallelism.
REFERENCE_RANGES = {
    "learning_rate": (0.001, 0.5),
    "momentum": (0.0, 0.99),
    "wd": (0.0, 0.001),
}
REFERENCE_STATIC = {"batch_size": 1024, "epochs": 50}
REFERENCE_RUNS = {  # (script, YAML twin): (strategy, trials, in parallel)
    ("cifar10_bayesian.py", "cifar10-bayesian.yaml"): ("Bayesian", 30, 2),
    ("cifar10_random.py", "cifar10-random.yaml"): ("Random", 120, 8),
}
#: What the MXNet trainer prints once per epoch (models/mxnet_cifar10.py).
MXNET_EPOCH_LINE = (
    "[Epoch 3] validation: accuracy=0.512300 training: accuracy=0.498000 loss=1.403211 "
    "time=9.61s images/s=5203.1"
)


def cluster_config(name: str) -> dict[str, Any]:
    return yaml.safe_load((CLUSTERS / name).read_text())


def ray_start_commands(config: dict[str, Any]) -> list[str]:
    commands = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    return [command for command in commands if "ray start" in command]


def load_script(name: str) -> ModuleType:
    """A job script as a module (it only runs `main()` as `__main__`)."""
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), JOBS / name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tuner_fields(module: ModuleType, argv: list[str]) -> dict[str, Any]:
    """What a script's tuner would put in the job spec, in the spec's vocabulary."""
    args = module.parse_args(argv)
    tuner = module.build_tuner(args)
    return {
        "hyperparameter_ranges": tuner.hyperparameter_ranges,
        "hyperparameters": tuner.trainer.hyperparameters,
        "metric_definitions": tuner.metric_definitions,
        "objective_metric_name": tuner.objective_metric_name,
        "strategy": tuner.strategy,
        "max_jobs": tuner.max_jobs,
        "max_parallel_jobs": tuner.max_parallel_jobs,
        "resources_per_trial": tuner.trainer.resources_per_trial,
        "max_runtime_in_seconds": tuner.trainer.max_runtime_in_seconds,
        "retry_strategy": tuner.retry_strategy,
        "random_seed": tuner.random_seed,
        "output_path": tuner.output_path,
        "inputs": {"training": args.data} if hasattr(args, "data") else {},
    }


def yaml_fields(spec: JobSpec) -> dict[str, Any]:
    mapping = spec.to_mapping()
    return {
        # A range written without scaling_type has SageMaker's default, as the API spells out.
        "hyperparameter_ranges": {
            name: {"scaling_type": "Auto", **declared}
            for name, declared in mapping["hyperparameter_ranges"].items()
        },
        "hyperparameters": mapping["hyperparameters"],
        "metric_definitions": mapping["metric_definitions"],
        "objective_metric_name": mapping["objective_metric_name"],
        "strategy": mapping["strategy"],
        "max_jobs": mapping["max_jobs"],
        "max_parallel_jobs": mapping["max_parallel_jobs"],
        "resources_per_trial": mapping["resources_per_trial"],
        "max_runtime_in_seconds": mapping["max_runtime_in_seconds"],
        "retry_strategy": mapping["retry_strategy"],
        "random_seed": mapping["random_seed"],
        "output_path": mapping["output_path"],
        "inputs": mapping.get("inputs", {}),
    }


# -- cluster configs ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CLUSTER_CONFIGS)
def test_cluster_config_passes_rays_validation(name: str) -> None:
    validate_config(prepare_config(cluster_config(name)))


@pytest.mark.parametrize("name", CLUSTER_CONFIGS)
def test_rays_validation_rejects_a_misspelt_field(name: str) -> None:
    config = cluster_config(name)
    config["max_worker"] = config.pop("max_workers", 2)
    with pytest.raises(jsonschema.ValidationError, match="max_worker"):
        validate_config(prepare_config(config))


@pytest.mark.parametrize("name", CLUSTER_CONFIGS)
def test_every_node_starts_ray_with_token_authentication(name: str) -> None:
    config = cluster_config(name)
    starts = ray_start_commands(config)
    assert len(starts) == 2, "one `ray start` for the head, one for the workers"
    for command in starts:
        assert "RAY_AUTH_MODE=token ray start" in command, command
        assert "--metrics-export-port=8080" in command, command
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    assert "chmod 700 ~/.ray && chmod 600 ~/.ray/auth_token" in config["setup_commands"]
    bashrc = next(c for c in config["setup_commands"] if "~/.bashrc" in c)
    assert "export RAY_AUTH_MODE=token" in bashrc, "`ray submit` scripts need the mode too"


@pytest.mark.parametrize("name", CLUSTER_CONFIGS)
def test_head_serves_dashboard_and_prometheus_on_loopback_only(name: str) -> None:
    head = " ".join(cluster_config(name)["head_start_ray_commands"])
    assert re.search(r"ray start --head\b.*--dashboard-host=127\.0\.0\.1", head), head
    assert "--web.listen-address=127.0.0.1:9090" in head
    assert "deploy/prometheus/prometheus.yml" in head
    assert "--num-cpus=0" in head, "trials never run on the head"


@pytest.mark.parametrize("name", CLUSTER_CONFIGS)
def test_every_node_mounts_the_shared_storage_and_builds_both_environments(name: str) -> None:
    setup = " ".join(cluster_config(name)["setup_commands"])
    assert "/shared" in setup
    assert "python3 -m venv .venv;" in setup and ".venv/bin/pip install -q -e ." in setup
    assert "s/^mxnet==/mxnet-cu112==/" in setup, "GPU nodes need MXNet's CUDA build"
    assert "torch" not in setup


def test_aws_workers_are_p3_8xlarge_and_the_head_runs_no_trials() -> None:
    config = cluster_config("aws-p3.yaml")
    node_types = config["available_node_types"]
    head = node_types[config["head_node_type"]]
    [workers] = [t for name, t in node_types.items() if name != config["head_node_type"]]
    assert workers["node_config"]["InstanceType"] == "p3.8xlarge"
    assert workers["resources"] == {"CPU": 32, "GPU": 4}
    assert workers["min_workers"] == 0
    assert workers["max_workers"] == config["max_workers"] >= 8, "random search: 8 nodes"
    assert head["resources"] == {"CPU": 0}
    assert "p3" not in head["node_config"]["InstanceType"]
    assert config["provider"]["cache_stopped_nodes"] is False
    efs = next(c for c in config["setup_commands"] if "mount -t nfs4" in c)
    assert re.search(r"efs\.\S+\.amazonaws\.com:/ /shared", efs)


def test_onprem_names_its_machines() -> None:
    provider = cluster_config("onprem.yaml")["provider"]
    assert provider["type"] == "local"
    assert provider["head_ip"] not in provider["worker_ips"]
    assert provider["worker_ips"]
    # The local provider refuses node types of its own: Ray builds the one node type.
    assert "available_node_types" not in cluster_config("onprem.yaml")


# -- job scripts and their YAML twins -------------------------------------------------------------
@pytest.mark.parametrize(("script", "twin"), list(REFERENCE_RUNS))
def test_reference_job_reproduces_the_reference_experiment(script: str, twin: str) -> None:
    strategy, trials, parallel = REFERENCE_RUNS[(script, twin)]
    spec = load_job_spec(JOBS / twin, check_paths=False)
    assert (spec.strategy.value, spec.max_jobs, spec.max_parallel_jobs) == (
        strategy,
        trials,
        parallel,
    )
    ranges = {
        name: (declared["min_value"], declared["max_value"])
        for name, declared in spec.to_mapping()["hyperparameter_ranges"].items()
    }
    assert ranges == REFERENCE_RANGES
    assert spec.hyperparameters == REFERENCE_STATIC
    assert spec.resources_per_trial.gpu == 4, "one trial per p3.8xlarge node, as the reference"
    assert spec.trainer.command == ["python", "-m", "models.mxnet_cifar10"]
    assert spec.trainer.working_path == REPO
    assert str(spec.input_paths["training"]) == "/shared/data/cifar10"
    assert not validate_sample_log(spec, MXNET_EPOCH_LINE)


@pytest.mark.parametrize(
    ("script", "twin"), [*REFERENCE_RUNS, ("standin_cluster.py", "standin-cluster.yaml")]
)
def test_job_script_and_yaml_twin_describe_the_same_job(script: str, twin: str) -> None:
    from_script = tuner_fields(load_script(script), [])
    from_yaml = yaml_fields(load_job_spec(JOBS / twin, check_paths=False))
    assert from_script == from_yaml


@pytest.mark.parametrize("script", [script for script, _ in REFERENCE_RUNS])
def test_per_gpu_flag_runs_one_trial_per_gpu(script: str) -> None:
    module = load_script(script)
    per_node = tuner_fields(module, [])["resources_per_trial"]
    per_gpu = tuner_fields(module, ["--per-gpu"])["resources_per_trial"]
    assert (per_node["gpu"], per_gpu["gpu"]) == (4, 1)
    assert per_gpu["cpu"] * 4 <= 32, "four trials fit on one p3.8xlarge's 32 vCPUs"


def test_the_two_reference_scripts_differ_only_in_strategy_and_size() -> None:
    """`ray submit` uploads one file, so the scripts cannot share a module; this keeps the
    copies from drifting apart."""
    sizing = {"STRATEGY", "MAX_JOBS", "MAX_PARALLEL_JOBS", "BASE_JOB_NAME"}

    def sets_sizing(node: ast.stmt) -> bool:
        return isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id in sizing for target in node.targets
        )

    def body(name: str) -> str:
        tree = ast.parse((JOBS / name).read_text())
        # The module docstring (first statement) differs on purpose.
        tree.body = [node for node in tree.body[1:] if not sets_sizing(node)]
        return ast.dump(tree)

    bayesian, random = (body(script) for script, _ in REFERENCE_RUNS)
    assert bayesian == random
    assert load_script("cifar10_random.py").STRATEGY == "Random"


def test_twins_resolve_into_the_repository_and_write_to_the_shared_storage() -> None:
    """Relative paths in a twin resolve from its own directory, as they will on every node."""
    standin = load_job_spec(JOBS / "standin-cluster.yaml", check_paths=False)
    assert (standin.trainer.working_path / "standin_trainer.py").is_file()
    for twin in ("cifar10-bayesian.yaml", "cifar10-random.yaml", "standin-cluster.yaml"):
        spec = load_job_spec(JOBS / twin, check_paths=False)
        assert spec.job_dir.parent == Path("/shared/runs"), twin
