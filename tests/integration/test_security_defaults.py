"""Security defaults (issue 8): loopback unless the user opts in, token auth on every cluster,
and nothing private in metric labels or the ledger.

The exporter's own rules are unit-tested in tests/unit/test_exporter.py; these tests check that
a whole job (driver, CLI, cluster configs) keeps them.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.trial.outcome import TrialState
from orchestrator.tune.runner import RunOptions, run_job
from tests.helpers import REPO, standin_job, standin_spec

pytestmark = pytest.mark.usefixtures("local_ray")
OPENAMT = [sys.executable, "-m", "orchestrator.cli"]
CLUSTER_CONFIGS = REPO / "deploy" / "ray"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _openamt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*OPENAMT, *args],
        cwd=REPO,
        env={**os.environ, "COLUMNS": "1000"},  # no line wrapping inside messages
        capture_output=True,
        text=True,
        timeout=240,
    )


class JobWatcher:
    """While a job runs: scrape its /metrics and note which addresses its port listens on."""

    def __init__(self, *, port: int) -> None:
        self.port = port
        self.bodies: list[str] = []
        self.listen_addresses: set[str] = set()
        self.refused_addresses: set[str] = set()
        self._others = _non_loopback_addresses()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> JobWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                url = f"http://127.0.0.1:{self.port}/metrics"
                with urllib.request.urlopen(url, timeout=2) as response:
                    self.bodies.append(response.read().decode())
            except OSError:
                self._stop.wait(0.1)
                continue
            for connection in psutil.net_connections(kind="inet"):
                if connection.status == psutil.CONN_LISTEN and connection.laddr.port == self.port:
                    self.listen_addresses.add(connection.laddr.ip)
            for address in self._others:
                if not _connects(address, self.port):
                    self.refused_addresses.add(address)
            self._stop.wait(0.2)


def _non_loopback_addresses() -> list[str]:
    """This machine's own IPv4 addresses that other machines could reach."""
    found = []
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if (
                address.family == socket.AF_INET
                and not ipaddress.ip_address(address.address).is_loopback
            ):
                found.append(address.address)
    return found


def _connects(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


# -- the exporter binds to loopback unless told otherwise ----------------------------------------


def test_the_cli_and_the_runner_default_to_loopback_metrics() -> None:
    assert RunOptions().metrics_host == "127.0.0.1"
    assert RunOptions().allow_public_metrics is False
    shown = _openamt("tune", "--help")
    help_text = " ".join(shown.stdout.split())
    assert shown.returncode == 0
    assert re.search(r"--metrics-host METRICS_HOST [^-]*\(default 127\.0\.0\.1\)", help_text)


def test_a_running_job_serves_metrics_on_loopback_only(tmp_path: Path) -> None:
    port = _free_port()
    spec = standin_spec(tmp_path, max_jobs=2, hyperparameters={"epochs": 2, "sleep": 0.5})

    with JobWatcher(port=port) as watcher:
        result = run_job(spec, RunOptions(show_progress=False, metrics_port=port))

    assert result.reason == "MaxNumberOfTrainingJobsReached"
    assert watcher.bodies, "the job's /metrics was never reachable on 127.0.0.1"
    assert watcher.listen_addresses == {"127.0.0.1"}
    assert watcher.refused_addresses == set(_non_loopback_addresses())


def test_a_public_metrics_host_is_refused_without_the_flag_and_warned_about_with_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(standin_job(tmp_path, max_jobs=1)))

    refused = _openamt(
        "tune", str(job), "--no-progress", "--metrics-host", "0.0.0.0", "--metrics-port", "0"
    )

    assert refused.returncode == 1
    message = " ".join(refused.stderr.split())
    assert "--metrics-host: '0.0.0.0' is not a loopback address" in message
    assert "Traceback" not in refused.stderr
    ledger = tmp_path / "runs" / "standin" / "ledger.jsonl"
    assert not ledger.exists() or "trial_started" not in ledger.read_text()

    options = RunOptions(
        show_progress=False, metrics_port=0, metrics_host="0.0.0.0", allow_public_metrics=True
    )
    with caplog.at_level("WARNING", logger="orchestrator.monitor.exporter"):
        result = run_job(standin_spec(tmp_path, max_jobs=1), options)
    assert result.reason == "MaxNumberOfTrainingJobsReached"
    assert re.search(
        r"serving metrics on http://0\.0\.0\.0:\d+/metrics, reachable beyond", caplog.text
    )


LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def test_embedded_ray_listens_on_loopback_only_with_a_private_token(tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(standin_job(
        tmp_path, max_jobs=2, hyperparameters={"epochs": 3, "sleep": 2.0}
    )))  # fmt: skip
    token = tmp_path / "ray-token"  # where this job's Ray keeps its token (not ~/.ray)
    env = {**os.environ, "RAY_AUTH_TOKEN_PATH": str(token)}
    env.pop("RAY_AUTH_MODE", None)
    env.pop("RAY_AUTH_TOKEN", None)
    driver = subprocess.Popen(
        [*OPENAMT, "tune", str(job), "--no-progress", "--metrics-port", "0"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    listening: set[tuple[str, str]] = set()
    ledger = tmp_path / "runs" / "standin" / "ledger.jsonl"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and "trial_result" not in _text(ledger):
            time.sleep(0.2)
        assert "trial_result" in _text(ledger), "no trial ran"
        for process in [psutil.Process(driver.pid), *psutil.Process(driver.pid).children(True)]:
            try:
                for connection in process.net_connections(kind="inet"):
                    if connection.status == psutil.CONN_LISTEN:
                        listening.add((process.name(), connection.laddr.ip))
            except psutil.Error:
                continue
    finally:
        driver.wait(timeout=300)
    assert driver.returncode == 0, driver.stderr.read()
    names = {name for name, _ in listening}
    assert {"gcs_server", "raylet"} <= names, listening  # Ray's servers were looked at
    assert {ip for _, ip in listening} <= LOOPBACK, listening
    assert stat.S_IMODE(token.stat().st_mode) == 0o600


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


# -- Ray clusters keep token authentication -----------------------------------------------------

START_COMMAND_LISTS = ("head_start_ray_commands", "worker_start_ray_commands")
SETUP_COMMAND_LISTS = (
    "initialization_commands",
    "setup_commands",
    "head_setup_commands",
    "worker_setup_commands",
)


def _commands(config: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    return [str(command) for key in keys for command in config.get(key) or []]


def _persists_token_mode(config: dict[str, Any]) -> bool:
    """A setup command writes RAY_AUTH_MODE=token where every later login shell reads it."""
    return any(
        "RAY_AUTH_MODE=token" in command
        and re.search(r"\.bashrc|\.profile|/etc/environment", command)
        for command in _commands(config, SETUP_COMMAND_LISTS)
    )


def test_every_cluster_config_starts_ray_with_token_auth_and_a_loopback_dashboard() -> None:
    configs = sorted(CLUSTER_CONFIGS.glob("*.yaml"))
    assert {p.name for p in configs} >= {"aws-p3.yaml", "onprem.yaml"}, (
        f"the cluster configs of issue 7 are missing from {CLUSTER_CONFIGS.relative_to(REPO)}"
    )
    for path in configs:
        text = path.read_text()
        config = yaml.safe_load(text)
        assert not re.search(r"RAY_AUTH_MODE\s*=\s*[\"']?disabled", text, re.IGNORECASE), path.name
        starts = [c for c in _commands(config, START_COMMAND_LISTS) if "ray start" in c]
        assert any("--head" in c for c in starts), f"{path.name}: no head `ray start`"
        persisted = _persists_token_mode(config)
        for command in starts:
            assert persisted or "RAY_AUTH_MODE=token" in command, (
                f"{path.name}: `{command}` starts Ray without RAY_AUTH_MODE=token"
            )
            host = re.search(r"--dashboard-host[= ]+[\"']?([^\s\"']+)", command)
            if host:
                assert ipaddress.ip_address(host.group(1)).is_loopback, (
                    f"{path.name}: the dashboard is bound to {host.group(1)}"
                )


# -- nothing private in metric labels or the ledger -----------------------------------------------

DRIVER_SECRET = "driver-secret-5d1f0c9b"
TRAINER_SECRET = "trainer-secret-a83e77d2"
STATIC_MARKER = "static-hp-value-19c4"
CATEGORY_MARKERS = ["category-hp-value-7b21", "category-hp-value-e90a"]


def test_no_secret_or_hyperparameter_value_reaches_metric_labels_or_the_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAMT_TEST_DRIVER_SECRET", DRIVER_SECRET)
    port = _free_port()
    spec = standin_spec(
        tmp_path,
        trainer={
            "command": ["python", str(REPO / "tests" / "fixtures" / "standin_trainer.py")],
            "interpreter": sys.executable,
            "env": {"SECRET_TOKEN": TRAINER_SECRET},
        },
        hyperparameters={"epochs": 2, "sleep": 0.3, "note": STATIC_MARKER},
        hyperparameter_ranges={
            "x": {"type": "Continuous", "min_value": 0.0, "max_value": 1.0},
            "flavour": {"type": "Categorical", "values": CATEGORY_MARKERS},
        },
        max_jobs=3,
    )

    with JobWatcher(port=port) as watcher:
        result = run_job(spec, RunOptions(show_progress=False, metrics_port=port))

    assert all(r.state is TrialState.COMPLETED for r in result.trials.values())
    allowed = {
        spec.name,
        *result.trials,
        *(state.value for state in TrialState),
        spec.strategy.value,
        spec.objective_metric_name,
        spec.objective_type.value,
    }
    labels = set()
    for body in watcher.bodies:
        for marker in (DRIVER_SECRET, TRAINER_SECRET, STATIC_MARKER, *CATEGORY_MARKERS):
            assert marker not in body
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                labels.update(
                    (name, value) for name, value in sample.labels.items() if name != "le"
                )
    assert any(name == "trial" for name, _ in labels), "no per-trial series was ever scraped"
    assert {value for _, value in labels} <= allowed, {v for _, v in labels} - allowed
    assert {name for name, _ in labels} <= {
        "tuning_job",
        "trial",
        "state",
        "strategy",
        "objective_metric",
        "direction",
    }
    # No file openamt or Ray wrote holds a secret; spec.yaml is the user's own job spec.
    for path in spec.job_dir.rglob("*"):
        if path.is_file() and path.name != "spec.yaml":
            text = path.read_text(errors="ignore")
            assert DRIVER_SECRET not in text and TRAINER_SECRET not in text, path
    ledger = (spec.job_dir / "ledger.jsonl").read_text()
    assert STATIC_MARKER in ledger  # the ledger records configurations, by design
