"""The cluster configs pass Ray's own validation and keep the security defaults; the job scripts
for `ray submit` and their YAML twins describe the same, reference, experiment.

Ray is imported only for its cluster-config validation (`ray.autoscaler._private.util`, the
function `ray up` runs); nothing here starts Ray.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
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
REFERENCE_SCRIPT = "cifar10.py"
REFERENCE_RUNS = {  # (argv for cifar10.py, YAML twin): (strategy, trials, in parallel)
    (("--strategy", "Bayesian"), "cifar10-bayesian.yaml"): ("Bayesian", 30, 2),
    (("--strategy", "Random"), "cifar10-random.yaml"): ("Random", 120, 8),
}
RUN_IDS = [strategy for strategy, _, _ in REFERENCE_RUNS.values()]
#: What the strategy decides in cifar10.py; everything else is the same for both.
SIZING_FIELDS = {"strategy", "max_jobs", "max_parallel_jobs", "name"}
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
        "name": tuner.base_tuning_job_name,
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
        "name": mapping["name"],
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


def mps_command(config: dict[str, Any]) -> str:
    [command] = [c for c in config["worker_start_ray_commands"] if "nvidia-cuda-mps-control" in c]
    return command


@pytest.mark.parametrize("name", CLUSTER_CONFIGS)
def test_gpu_nodes_start_the_mps_daemon_before_ray(name: str) -> None:
    """Packed trials share a GPU's time slices unless CUDA MPS runs; the head has no GPU."""
    config = cluster_config(name)
    workers = config["worker_start_ray_commands"]
    command = mps_command(config)
    assert workers.index(command) < workers.index(ray_start_commands(config)[1])
    assert "nvidia-cuda-mps-control -d" in command
    assert not any("mps" in c.lower() for c in config["head_start_ray_commands"])


@pytest.mark.parametrize("name", CLUSTER_CONFIGS)
@pytest.mark.parametrize(
    ("opted_out", "message"),
    [(False, "no nvidia-cuda-mps-control on"), (True, "MPS opted out on")],
)
def test_the_mps_command_never_fails_a_node_start(
    name: str, opted_out: bool, message: str, tmp_path: Path
) -> None:
    """Ray's launcher stops at a failing command: a node without MPS, or opted out with
    ~/.openamt-no-mps (deploy/README.md), must still start Ray."""
    if opted_out:
        (tmp_path / ".openamt-no-mps").touch()
    bin_dir = tmp_path / "bin"  # the shell's tools, and no nvidia-cuda-mps-control among them
    bin_dir.mkdir()
    for tool in ("hostname", "pgrep", "id"):
        (bin_dir / tool).symlink_to(shutil.which(tool))

    completed = subprocess.run(
        [shutil.which("bash"), "-c", mps_command(cluster_config(name))],
        env={"HOME": str(tmp_path), "PATH": str(bin_dir), "USER": "openamt"},
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith(f"openamt: {message}")


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
@pytest.mark.parametrize(("argv", "twin"), list(REFERENCE_RUNS), ids=RUN_IDS)
def test_reference_job_reproduces_the_reference_experiment(
    argv: tuple[str, ...], twin: str
) -> None:
    strategy, trials, parallel = REFERENCE_RUNS[(argv, twin)]
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
    ("script", "argv", "twin"),
    [
        *((REFERENCE_SCRIPT, argv, twin) for argv, twin in REFERENCE_RUNS),
        ("standin_cluster.py", (), "standin-cluster.yaml"),
    ],
    ids=[*RUN_IDS, "standin"],
)
def test_job_script_and_yaml_twin_describe_the_same_job(
    script: str, argv: tuple[str, ...], twin: str
) -> None:
    from_script = tuner_fields(load_script(script), list(argv))
    from_yaml = yaml_fields(load_job_spec(JOBS / twin, check_paths=False))
    assert from_script == from_yaml


@pytest.mark.parametrize("argv", [argv for argv, _ in REFERENCE_RUNS], ids=RUN_IDS)
def test_per_gpu_flag_runs_one_trial_per_gpu(argv: tuple[str, ...]) -> None:
    module = load_script(REFERENCE_SCRIPT)
    per_node = tuner_fields(module, list(argv))["resources_per_trial"]
    per_gpu = tuner_fields(module, [*argv, "--per-gpu"])["resources_per_trial"]
    assert (per_node["gpu"], per_gpu["gpu"]) == (4, 1)
    assert per_gpu["cpu"] * 4 <= 32, "four trials fit on one p3.8xlarge's 32 vCPUs"


def test_the_strategy_sets_only_the_reference_sizing() -> None:
    """`ray submit` uploads one file, so both strategies live in one script: `--strategy` picks
    the reference's sizing (and the twin's job name) and changes nothing else."""
    module = load_script(REFERENCE_SCRIPT)
    runs = {}
    for (argv, twin), (strategy, trials, parallel) in REFERENCE_RUNS.items():
        fields = tuner_fields(module, list(argv))
        sizing = {name: fields.pop(name) for name in SIZING_FIELDS}
        assert sizing == {
            "strategy": strategy,
            "max_jobs": trials,
            "max_parallel_jobs": parallel,
            "name": twin.removesuffix(".yaml"),
        }
        runs[strategy] = fields
    assert runs["Bayesian"] == runs["Random"]
    # Bayesian by default, as the reference; the strategy's case does not matter.
    assert tuner_fields(module, []) == tuner_fields(module, ["--strategy", "Bayesian"])
    assert tuner_fields(module, ["--strategy", "random"]) == tuner_fields(
        module, ["--strategy", "Random"]
    )


def test_max_jobs_flags_override_the_reference_sizing() -> None:
    module = load_script(REFERENCE_SCRIPT)
    fields = tuner_fields(
        module, ["--strategy", "Random", "--max-jobs", "16", "--max-parallel-jobs", "4"]
    )
    assert (fields["strategy"], fields["max_jobs"], fields["max_parallel_jobs"]) == (
        "Random",
        16,
        4,
    )


@pytest.mark.parametrize("strategy", ["Hyperband", "Grid", "bogus", ""])
def test_an_unsupported_strategy_is_refused(
    strategy: str, capsys: pytest.CaptureFixture[str]
) -> None:
    module = load_script(REFERENCE_SCRIPT)
    with pytest.raises(SystemExit) as exited:
        module.parse_args(["--strategy", strategy])
    assert exited.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_twins_resolve_into_the_repository_and_write_to_the_shared_storage() -> None:
    """Relative paths in a twin resolve from its own directory, as they will on every node."""
    standin = load_job_spec(JOBS / "standin-cluster.yaml", check_paths=False)
    assert (standin.trainer.working_path / "standin_trainer.py").is_file()
    for twin in ("cifar10-bayesian.yaml", "cifar10-random.yaml", "standin-cluster.yaml"):
        spec = load_job_spec(JOBS / twin, check_paths=False)
        assert spec.job_dir.parent == Path("/shared/runs"), twin
