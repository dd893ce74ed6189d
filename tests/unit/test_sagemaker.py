"""`orchestrator.sagemaker` without Ray: the SDK's signatures, instance types, the S3 mirror,
inputs, what is applied, recorded or refused, how a tuner becomes a job spec, and the runner
that makes a training job succeed when its script exits 0."""

from __future__ import annotations

import inspect
import json
import logging
import os
import re
import subprocess
import sys

import pytest
import yaml

from orchestrator import sagemaker
from orchestrator.errors import SpecError
from orchestrator.sagemaker import compat, instance_types, script_runner
from orchestrator.sagemaker.analytics import TrainingJobAnalytics
from orchestrator.sagemaker.estimator import Estimator, EstimatorBase, Framework
from orchestrator.sagemaker.inputs import TrainingInput, channels
from orchestrator.sagemaker.mxnet import MXNet
from orchestrator.sagemaker.pytorch import PyTorch
from orchestrator.sagemaker.s3 import local_path, to_s3_uri
from orchestrator.sagemaker.session import Session
from orchestrator.sagemaker.tuner import (
    CategoricalParameter,
    ContinuousParameter,
    HyperbandStrategyConfig,
    HyperparameterTuner,
    IntegerParameter,
    StrategyConfig,
    TuningJobCompletionCriteriaConfig,
    WarmStartConfig,
    WarmStartTypes,
)
from tests.helpers import REPO, STANDIN

R = inspect.Parameter.empty  # a required argument
OBJECTIVE = "validation:accuracy"
METRICS = [{"Name": OBJECTIVE, "Regex": r"validation: accuracy=([0-9.]+)"}]


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A notebook's directory: a training script, data, and an S3 mirror of its own."""
    (tmp_path / "train.py").write_text(STANDIN.read_text())
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.csv").write_text("1,2\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAMT_S3_ROOT", str(tmp_path / "s3"))
    monkeypatch.delenv("OPENAMT_INSTANCE_TYPES", raising=False)
    monkeypatch.delenv("OPENAMT_DEFAULT_BUCKET", raising=False)
    return tmp_path


def _estimator(**overrides) -> Estimator:
    settings = {
        "role": "role",
        "instance_count": 1,
        "instance_type": "local",
        "entry_point": "train.py",
        "hyperparameters": {"epochs": 2},
        "metric_definitions": METRICS,
        **overrides,
    }
    return Estimator("standin:latest", **settings)


# -- the SDK's signatures (sagemaker-python-sdk v2.257.6) ---------------------------------------
_BASE = [
    ("role", None), ("instance_count", None), ("instance_type", None),
    ("keep_alive_period_in_seconds", None), ("volume_size", 30), ("volume_kms_key", None),
    ("max_run", 86400), ("input_mode", "File"), ("output_path", None), ("output_kms_key", None),
    ("base_job_name", None), ("sagemaker_session", None),
]  # fmt: skip
_ESTIMATOR_TAIL = [
    ("subnets", None), ("security_group_ids", None), ("model_uri", None),
    ("model_channel_name", "model"), ("metric_definitions", None),
    ("encrypt_inter_container_traffic", None), ("use_spot_instances", False), ("max_wait", None),
    ("checkpoint_s3_uri", None), ("checkpoint_local_path", None),
]  # fmt: skip
_LATE = [
    ("instance_groups", None), ("training_repository_access_mode", None),
    ("training_repository_credentials_provider_arn", None),
]  # fmt: skip
SIGNATURES = {
    "HyperparameterTuner": (HyperparameterTuner.__init__, [
        ("estimator", R), ("objective_metric_name", R), ("hyperparameter_ranges", R),
        ("metric_definitions", None), ("strategy", "Bayesian"), ("objective_type", "Maximize"),
        ("max_jobs", None), ("max_parallel_jobs", 1), ("max_runtime_in_seconds", None),
        ("tags", None), ("base_tuning_job_name", None), ("warm_start_config", None),
        ("strategy_config", None), ("completion_criteria_config", None),
        ("early_stopping_type", "Off"), ("estimator_name", None), ("random_seed", None),
        ("autotune", False), ("hyperparameters_to_keep_static", None)]),
    "HyperparameterTuner.fit": (HyperparameterTuner.fit, [
        ("inputs", None), ("job_name", None), ("include_cls_metadata", False),
        ("estimator_kwargs", None), ("wait", True)]),
    "HyperparameterTuner.attach": (HyperparameterTuner.attach, [
        ("tuning_job_name", R), ("sagemaker_session", None), ("job_details", None),
        ("estimator_cls", None)]),
    "HyperparameterTuner.best_estimator": (HyperparameterTuner.best_estimator, [
        ("best_training_job", None)]),
    "HyperparameterTuner.transfer_learning_tuner": (HyperparameterTuner.transfer_learning_tuner,
        [("additional_parents", None), ("estimator", None)]),
    "WarmStartConfig": (WarmStartConfig.__init__, [("warm_start_type", R), ("parents", R)]),
    "HyperbandStrategyConfig": (HyperbandStrategyConfig.__init__, [
        ("max_resource", R), ("min_resource", R), ("configuration_selection", "Random")]),
    "StrategyConfig": (StrategyConfig.__init__, [("hyperband_strategy_config", R)]),
    "TuningJobCompletionCriteriaConfig": (TuningJobCompletionCriteriaConfig.__init__, [
        ("max_number_of_training_jobs_not_improving", None),
        ("complete_on_convergence", None), ("target_objective_metric_value", None)]),
    "EstimatorBase": (EstimatorBase.__init__, [
        *_BASE, ("tags", None), *_ESTIMATOR_TAIL, ("rules", None),
        ("debugger_hook_config", None), ("tensorboard_output_config", None),
        ("enable_sagemaker_metrics", None), ("enable_network_isolation", None),
        ("profiler_config", None), ("disable_profiler", None), ("environment", None),
        ("max_retry_attempts", None), ("source_dir", None), ("git_config", None),
        ("hyperparameters", None), ("container_log_level", logging.INFO),
        ("code_location", None), ("entry_point", None), ("dependencies", None), *_LATE,
        ("enable_infra_check", None), ("container_entry_point", None),
        ("container_arguments", None), ("disable_output_compression", False),
        ("enable_remote_debug", None), ("enable_session_tag_chaining", None),
        ("training_plan", None), ("instance_placement_config", None)]),
    "Estimator": (Estimator.__init__, [
        ("image_uri", R), *_BASE, ("hyperparameters", None), ("tags", None),
        *_ESTIMATOR_TAIL, ("enable_network_isolation", None), ("rules", None),
        ("debugger_hook_config", None), ("tensorboard_output_config", None),
        ("enable_sagemaker_metrics", None), ("profiler_config", None),
        ("disable_profiler", False), ("environment", None), ("max_retry_attempts", None),
        ("source_dir", None), ("git_config", None), ("container_log_level", logging.INFO),
        ("code_location", None), ("entry_point", None), ("dependencies", None), *_LATE,
        ("container_entry_point", None), ("container_arguments", None),
        ("disable_output_compression", False), ("enable_infra_check", None),
        ("enable_remote_debug", None), ("enable_session_tag_chaining", None),
        ("training_plan", None), ("instance_placement_config", None)]),
    "EstimatorBase.fit": (EstimatorBase.fit, [
        ("inputs", None), ("wait", True), ("logs", "All"), ("job_name", None),
        ("experiment_config", None)]),
    "EstimatorBase.attach": (EstimatorBase.attach, [
        ("training_job_name", R), ("sagemaker_session", None), ("model_channel_name", "model")]),
    "Framework": (Framework.__init__, [
        ("entry_point", R), ("source_dir", None), ("hyperparameters", None),
        ("container_log_level", logging.INFO), ("code_location", None), ("image_uri", None),
        ("dependencies", None), ("enable_network_isolation", None), ("git_config", None),
        ("checkpoint_s3_uri", None), ("checkpoint_local_path", None),
        ("enable_sagemaker_metrics", None)]),
    "MXNet": (MXNet.__init__, [
        ("entry_point", R), ("framework_version", None), ("py_version", None),
        ("source_dir", None), ("hyperparameters", None), ("image_uri", None),
        ("distribution", None)]),
    "PyTorch": (PyTorch.__init__, [
        ("entry_point", None), ("framework_version", None), ("py_version", None),
        ("source_dir", None), ("hyperparameters", None), ("image_uri", None),
        ("distribution", None), ("compiler_config", None), ("training_recipe", None),
        ("recipe_overrides", None)]),
    "TrainingInput": (TrainingInput.__init__, [
        ("s3_data", R), ("distribution", None), ("compression", None), ("content_type", None),
        ("record_wrapping", None), ("s3_data_type", "S3Prefix"), ("instance_groups", None),
        ("input_mode", None), ("attribute_names", None), ("target_attribute_name", None),
        ("shuffle_config", None), ("hub_access_config", None), ("model_access_config", None)]),
    "Session": (Session.__init__, [
        ("boto_session", None), ("sagemaker_client", None), ("sagemaker_runtime_client", None),
        ("sagemaker_featurestore_runtime_client", None), ("default_bucket", None),
        ("settings", None), ("sagemaker_metrics_client", None), ("sagemaker_config", None),
        ("default_bucket_prefix", None)]),
    "Session.upload_data": (Session.upload_data, [
        ("path", R), ("bucket", None), ("key_prefix", "data"), ("callback", None),
        ("extra_args", None)]),
    "get_execution_role": (sagemaker.get_execution_role, [
        ("sagemaker_session", None), ("use_default", False)]),
    "HyperparameterTuningJobAnalytics": (sagemaker.HyperparameterTuningJobAnalytics.__init__, [
        ("hyperparameter_tuning_job_name", R), ("sagemaker_session", None)]),
    "TrainingJobAnalytics": (TrainingJobAnalytics.__init__, [
        ("training_job_name", R), ("metric_names", None), ("sagemaker_session", None),
        ("start_time", None), ("end_time", None), ("period", None)]),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_signatures_are_the_sdks_in_order_with_its_defaults(name):
    """Positional calls written for the SDK bind the same way here. Only keyword-only extras
    (openamt's additions, e.g. Hyperband's configuration_selection) may follow."""
    function, expected = SIGNATURES[name]
    parameters = [
        p
        for p in inspect.signature(function).parameters.values()
        if p.name not in ("self", "cls") and p.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    assert [(p.name, p.default) for p in parameters] == expected
    positional = [p for p in parameters if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    assert [p.name for p in positional] == [n for n, _ in expected][: len(positional)]


def test_the_sdks_module_tree_is_there():
    from orchestrator.sagemaker import estimator, inputs, parameter, tuner

    assert sagemaker.estimator is estimator and sagemaker.tuner is tuner
    assert sagemaker.TrainingInput is inputs.TrainingInput
    assert parameter.ContinuousParameter is ContinuousParameter
    assert {"MXNet", "PyTorch"} == {MXNet.__name__, PyTorch.__name__}
    assert isinstance(sagemaker.LocalSession(), sagemaker.Session)


# -- instance types -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "cpu", "gpu", "model"),
    [
        ("ml.p2.16xlarge", 64, 16, "K80"),
        ("ml.p3.2xlarge", 8, 1, "V100"),
        ("ml.p3.8xlarge", 32, 4, "V100"),
        ("ml.p3dn.24xlarge", 96, 8, "V100"),
        ("ml.g4dn.12xlarge", 48, 4, "T4"),
        ("ml.g5.48xlarge", 192, 8, "A10G"),
        ("ml.p4d.24xlarge", 96, 8, "A100"),
        ("ml.p5.48xlarge", 192, 8, "H100"),
        ("ml.m5.large", 2, 0, None),
        ("ml.c5.18xlarge", 72, 0, None),
        ("local", 1, 0, None),
        ("local_gpu", 1, 1, None),
    ],
)
def test_an_instance_type_reserves_its_vcpus_and_gpus_per_trial(name, cpu, gpu, model):
    found = instance_types.instance_type(name)
    assert found.resources_per_trial == {"cpu": cpu, "gpu": gpu}
    assert found.gpu_model == model


def test_every_required_instance_family_is_in_the_table():
    names = set(instance_types.SAGEMAKER_TYPES)
    for required in ("ml.p2.xlarge", "ml.p2.8xlarge", "ml.p3.16xlarge", "ml.g4dn.xlarge"):
        assert required in names
    for family in ("ml.g4dn.", "ml.g5.", "ml.m5.", "ml.c5."):
        assert sum(name.startswith(family) for name in names) >= 5, family


def test_an_unknown_instance_type_is_refused_with_the_closest_names(project):
    with pytest.raises(SpecError) as caught:
        _estimator(instance_type="ml.p3.8xlarg")
    (problem,) = caught.value.problems
    assert problem.field == "instance_type" and problem.value == "ml.p3.8xlarg"
    assert "did you mean ml.p3.8xlarge" in problem.rule and "OPENAMT_INSTANCE_TYPES" in problem.rule


def test_a_user_file_adds_and_overrides_node_types(project, monkeypatch):
    path = project / "types.yaml"
    path.write_text(
        "dgx-a100: {vcpus: 128, memory_gib: 1024, gpus: 8, gpu_model: A100}\n"
        "ml.p3.8xlarge: {vcpus: 16, memory_gib: 122, gpus: 2, gpu_model: V100}\n"
    )
    monkeypatch.setenv("OPENAMT_INSTANCE_TYPES", str(path))
    assert instance_types.instance_type("dgx-a100").resources_per_trial == {"cpu": 128, "gpu": 8}
    assert instance_types.instance_type("ml.p3.8xlarge").gpus == 2
    path.write_text("bad: {vcpus: 0, memory_gib: 8, gpus: 1.5}\nworse: 3\n")
    with pytest.raises(SpecError) as caught:
        instance_types.instance_type("bad")
    fields = {p.field for p in caught.value.problems}
    assert fields == {f"{path}: bad.vcpus", f"{path}: bad.gpus", f"{path}: worse"}


def test_one_instance_per_trial(project):
    with pytest.raises(SpecError, match="instance_count: must be 1"):
        Estimator("image", "role", 2, "ml.p3.2xlarge", entry_point="train.py")
    with pytest.raises(ValueError, match="instance_count and instance_type"):
        Estimator("image", "role", entry_point="train.py")


# -- the S3 mirror and inputs -------------------------------------------------------------------
def test_upload_data_copies_into_the_mirror_and_returns_the_sdks_uris(project):
    session = Session()
    uri = session.upload_data("data", key_prefix="data/DEMO")
    assert uri == "s3://sagemaker-openamt/data/DEMO"
    assert (project / "s3/sagemaker-openamt/data/DEMO/train.csv").read_text() == "1,2\n"
    sizes = []
    one = session.upload_data("data/train.csv", bucket="other-bucket", callback=sizes.append)
    assert one == "s3://other-bucket/data/train.csv" and sizes == [4]
    prefixed = Session(default_bucket="team", default_bucket_prefix="alice")
    assert prefixed.upload_data("data") == "s3://team/alice/data"
    assert prefixed.default_output_path == "s3://team/alice"
    assert local_path(uri) == project / "s3/sagemaker-openamt/data/DEMO"
    assert to_s3_uri(project / "s3/team/alice/data") == "s3://team/alice/data"
    assert to_s3_uri(project / "data") is None
    with pytest.raises(SpecError, match="key_prefix"):
        session.upload_data("data", key_prefix="../escape")


def test_inputs_are_s3_uris_file_uris_paths_or_training_inputs(project):
    uri = Session().upload_data("data", key_prefix="train")
    mirror = str(project / "s3/sagemaker-openamt/train")
    assert channels(uri) == {"training": mirror}
    assert channels({"train": TrainingInput(uri), "test": f"file://{project}/data"}) == {
        "train": mirror,
        "test": str(project / "data"),
    }
    assert channels({"extra": "data"}) == {"extra": str(project / "data")}
    assert TrainingInput(uri).config == {
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": uri,
                "S3DataDistributionType": "FullyReplicated",
            }
        }
    }


@pytest.mark.parametrize(
    ("value", "field", "fragment"),
    [
        ("s3://sagemaker-openamt/missing", "inputs.training", "the S3 mirror has no such prefix"),
        ("https://example.com/data", "inputs.training", "only s3://"),
        ("s3://Bad_Bucket/x", "inputs.training", "bucket"),
        (TrainingInput("data", input_mode="Pipe"), "inputs.training.input_mode", "Pipe"),
        (TrainingInput("data", s3_data_type="ManifestFile"), "inputs.training.s3_data_type", ""),
    ],
)
def test_inputs_that_cannot_be_read_as_files_are_refused(project, value, field, fragment):
    with pytest.raises(SpecError) as caught:
        channels(value)
    assert any(p.field == field and fragment in p.rule for p in caught.value.problems)


# -- applied, recorded, refused -----------------------------------------------------------------
def test_what_cannot_apply_is_recorded_with_the_job(project):
    estimator = _estimator(
        subnets=["subnet-1"],
        use_spot_instances=True,
        max_wait=7200,
        tags=[{"Key": "team", "Value": "vision"}],
        volume_size=100,
    )
    spec = _tuner(estimator)._native()._spec(name="recorded", inputs={}, check_paths=True)
    record = spec.recorded_settings["sagemaker"]
    assert record["kind"] == "tuning-job"
    assert record["recorded"] == {
        "image_uri": "standin:latest",
        "role": "role",
        "subnets": ["subnet-1"],
        "use_spot_instances": True,
        "max_wait": 7200,
        "tags": [{"Key": "team", "Value": "vision"}],
        "volume_size": 100,
    }
    assert record["instance_type"]["name"] == "local"
    assert record["estimator"]["class"] == "orchestrator.sagemaker.estimator.Estimator"


def test_what_would_change_results_is_refused_naming_every_argument(project):
    with pytest.raises(SpecError) as caught:
        _estimator(
            checkpoint_s3_uri="s3://bucket/checkpoints",
            enable_network_isolation=True,
            git_config={"repo": "https://example.com/x.git"},
        )
    fields = {p.field for p in caught.value.problems}
    assert fields == {"checkpoint_s3_uri", "enable_network_isolation", "git_config"}
    assert all("not supported on openamt" in p.rule for p in caught.value.problems)
    with pytest.raises(SpecError, match="distribution"):
        MXNet("train.py", "1.9.1", "py3", instance_count=1, instance_type="local",
              distribution={"parameter_server": {"enabled": True}})  # fmt: skip
    with pytest.raises(SpecError, match="input_mode"):
        _estimator(input_mode="Pipe")
    with pytest.raises(SpecError, match="entry_point"):
        Estimator("image", "role", 1, "local")
    with pytest.raises(TypeError, match="unexpected keyword argument 'instance_typ'"):
        _estimator(instance_typ="local")


def test_sdk_v1_argument_names_still_work(project):
    with pytest.warns(DeprecationWarning, match="train_max_run is renamed max_run"):
        estimator = Estimator(
            "image", "role", entry_point="train.py", train_instance_count=1,
            train_instance_type="local", train_max_run=60,
        )  # fmt: skip
    assert estimator.max_run == 60 and estimator.instance_type == "local"


def test_the_porting_guide_lists_every_argument_as_the_code_treats_it():
    guide = (REPO / "orchestrator" / "sagemaker" / "README.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| (applied|recorded|refused) \|", guide, re.M))
    expected = {
        name: rule.treatment.value
        for name, rule in {**compat.ESTIMATOR_ARGUMENTS, **compat.TUNER_ARGUMENTS}.items()
    }
    assert rows == expected


# -- the tuner as a job spec --------------------------------------------------------------------
def _tuner(estimator=None, *args, **kwargs) -> HyperparameterTuner:
    ranges = {"x": ContinuousParameter(0.0, 1.0), "layers": IntegerParameter(1, 4)}
    return HyperparameterTuner(estimator or _estimator(), OBJECTIVE, ranges, *args, **kwargs)


def test_the_tuners_arguments_become_the_job_spec(project):
    tuner = _tuner(
        _estimator(max_run=900, max_retry_attempts=2),
        METRICS,
        "Hyperband",
        "Minimize",
        12,
        3,
        7200,
        strategy_config=StrategyConfig(HyperbandStrategyConfig(max_resource=27, min_resource=1)),
        completion_criteria_config=TuningJobCompletionCriteriaConfig(
            max_number_of_training_jobs_not_improving=5,
            complete_on_convergence=True,
            target_objective_metric_value=0.1,
        ),
        random_seed=7,
    )
    spec = tuner._native()._spec(name="mapped", inputs={}, check_paths=True).to_mapping()
    assert (spec["strategy"], spec["objective_type"]) == ("Hyperband", "Minimize")
    assert (spec["max_jobs"], spec["max_parallel_jobs"], spec["random_seed"]) == (12, 3, 7)
    assert spec["max_runtime_in_seconds"] == 900  # max_run: one trial
    assert spec["completion_criteria"] == {
        "target_objective_metric_value": 0.1,
        "best_objective_not_improving": {"max_number_of_training_jobs_not_improving": 5},
        "convergence_detected": {"complete_on_convergence": "Enabled"},
        "max_runtime_in_seconds": 7200,  # the tuner's: the whole job
    }
    assert spec["hyperband_strategy_config"] == {
        "min_resource": 1,
        "max_resource": 27,
        "configuration_selection": "Random",  # SageMaker's Hyperband
    }
    assert spec["retry_strategy"] == {"maximum_retry_attempts": 2}
    assert spec["resources_per_trial"] == {"cpu": 1.0, "gpu": 0.0}
    assert spec["hyperparameters"] == {"epochs": 2}
    assert spec["trainer"]["command"] == ["python", "train.py"]
    assert spec["output_path"] == str(project / "s3" / "sagemaker-openamt")


def test_the_sdks_defaults_and_refusals(project):
    tuner = _tuner()
    assert (tuner.max_jobs, tuner.strategy, tuner.early_stopping_type) == (1, "Bayesian", "Off")
    grid = HyperparameterTuner(
        _estimator(), OBJECTIVE,
        {"opt": CategoricalParameter(["sgd", "adam", "nag"]), "layers": IntegerParameter(1, 4)},
        strategy="Grid",
    )  # fmt: skip
    assert grid.max_jobs == 12
    assert CategoricalParameter("adam").values == ("adam",)  # one value, as the SDK allows
    with pytest.raises(ValueError, match="hyperparameter ranges"):
        HyperparameterTuner(_estimator(), OBJECTIVE, {})
    with pytest.raises(SpecError, match="estimator_name"):
        _tuner(estimator_name="a")
    with pytest.raises(SpecError) as caught:
        _tuner(max_jobs=0)
    assert [p.field for p in caught.value.problems] == ["max_jobs"]
    assert _tuner(tags=[{"Key": "k", "Value": "v"}])._native()._spec(
        name="t", inputs={}, check_paths=False
    ).recorded_settings["sagemaker"]["recorded"]["tags"] == [{"Key": "k", "Value": "v"}]


def test_warm_start_parents_are_job_names_in_the_output_path(project):
    parent = project / "s3" / "sagemaker-openamt" / "round-1"
    parent.mkdir(parents=True)
    (parent / "spec.yaml").write_text(yaml.safe_dump({"name": "round-1"}))
    config = WarmStartConfig(WarmStartTypes.TRANSFER_LEARNING, parents={"round-1"})
    assert config.to_input_req() == {
        "WarmStartType": "TransferLearning",
        "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": "round-1"}],
    }
    tuner = _tuner(warm_start_config=config)
    assert tuner._warm_start_section() == {
        "parent_hyperparameter_tuning_jobs": [str(parent)],
        "warm_start_type": "TransferLearning",
    }
    with pytest.raises(ValueError, match="parents"):
        WarmStartConfig(WarmStartTypes.TRANSFER_LEARNING, parents=set())


# -- the training job's runner ------------------------------------------------------------------
SHOW = """
import json, os, sys
print(json.dumps({"argv": sys.argv, "name": __name__, "hps": json.loads(os.environ["SM_HPS"]),
                  "env": json.loads(os.environ["SM_TRAINING_ENV"]),
                  "hp_vars": sorted(k for k in os.environ if k.startswith("SM_HP_"))}))
sys.exit(int(os.environ.get("EXIT_WITH", "0")))
"""


@pytest.mark.parametrize("status", [0, 3])
def test_the_runner_hides_the_platforms_hyperparameters_and_reports_a_clean_exit(tmp_path, status):
    script = tmp_path / "show.py"
    script.write_text(SHOW)
    hps = {"epochs": 2, "sagemaker_job_name": "job-1"}
    env = {
        **os.environ,
        "EXIT_WITH": str(status),
        "SM_HPS": json.dumps(hps),
        "SM_USER_ARGS": json.dumps(["--epochs", "2", "--sagemaker_job_name", "job-1"]),
        "SM_TRAINING_ENV": json.dumps({"hyperparameters": hps, "job_name": "trial-0001"}),
        "SM_HP_EPOCHS": "2",
        "SM_HP_SAGEMAKER_JOB_NAME": "job-1",
    }
    result = subprocess.run(
        [sys.executable, script_runner.__file__, str(script), "--epochs", "2",
         "--sagemaker_job_name", "job-1"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert result.returncode == status
    lines = result.stdout.splitlines()
    seen = json.loads(lines[0])
    assert seen["argv"] == [str(script), "--epochs", "2"] and seen["name"] == "__main__"
    assert seen["hps"] == {"epochs": 2} and seen["hp_vars"] == ["SM_HP_EPOCHS"]
    assert seen["env"] == {"hyperparameters": {"epochs": 2}, "job_name": "job-1"}
    marker = [line for line in lines if re.search(script_runner.EXIT_REGEX, line)]
    assert marker == ([script_runner.EXIT_LINE] if status == 0 else [])
