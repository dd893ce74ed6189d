"""The exporter's metrics after simulated trial events, each test on a fresh registry."""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from orchestrator.errors import OpenAMTError
from orchestrator.monitor.exporter import ExporterError, TuningMetrics
from orchestrator.monitor.server import (
    DEFAULT_METRICS_PORT,
    MetricsPortError,
    is_loopback,
    start_metrics_server,
)
from orchestrator.store.ledger import Event, Ledger
from orchestrator.store.records import best_trial, summarize_trials
from orchestrator.trial.outcome import TrialState

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "openamt.json"
PROMETHEUS_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
JOB = "digits-bayes"


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def make_metrics(
    registry: CollectorRegistry, *, objective_type: str = "Maximize", recent: int = 20
) -> TuningMetrics:
    return TuningMetrics(
        registry=registry,
        job_name=JOB,
        strategy="Bayesian",
        objective_metric_name="validation:accuracy",
        objective_type=objective_type,
        max_jobs=12,
        recent_finished_trials=recent,
    )


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, {"tuning_job": JOB, **labels})


def trials_by_state(registry: CollectorRegistry) -> dict[str, float | None]:
    return {s.value: value(registry, "openamt_trials", state=s.value) for s in TrialState}


def series_count(registry: CollectorRegistry, name: str) -> int:
    return sum(1 for metric in registry.collect() for s in metric.samples if s.name == name)


def test_fresh_job_exposes_info_and_zeros_but_no_best(registry: CollectorRegistry) -> None:
    make_metrics(registry)
    info = {"strategy": "Bayesian", "objective_metric": "validation:accuracy"}
    assert value(registry, "openamt_job_info", direction="Maximize", **info) == 1.0
    assert value(registry, "openamt_max_jobs") == 12
    assert trials_by_state(registry) == {"Running": 0, "Completed": 0, "Failed": 0, "Stopped": 0}
    for counter in ("started", "completed", "failed", "stopped"):
        assert value(registry, f"openamt_trials_{counter}_total") == 0
    assert value(registry, "openamt_searcher_fallbacks") == 0
    assert value(registry, "openamt_gpu_seconds_total") == 0
    assert value(registry, "openamt_best_objective") is None  # no finished trial yet: no value


def test_trial_lifecycle_updates_states_counters_best_and_progress(
    registry: CollectorRegistry,
) -> None:
    metrics = make_metrics(registry)
    for trial in ("t1", "t2", "t3"):
        metrics.trial_started(trial)
    assert trials_by_state(registry)["Running"] == 3
    assert value(registry, "openamt_trials_started_total") == 3

    metrics.trial_progress("t1", objective=0.5, epoch=2, total_epochs=10)
    assert value(registry, "openamt_trial_progress_ratio", trial="t1") == pytest.approx(0.2)
    assert value(registry, "openamt_trial_epoch", trial="t1") == 2
    assert value(registry, "openamt_trial_objective", trial="t1") == 0.5
    metrics.trial_progress("t2", objective=0.3, epoch=1, total_epochs=None)
    assert value(registry, "openamt_trial_progress_ratio", trial="t2") is None

    metrics.trial_finished(
        "t1", state=TrialState.COMPLETED, objective=0.8, duration_s=30, gpus_per_trial=0.5
    )
    metrics.trial_finished(
        "t2", state=TrialState.FAILED, objective=None, duration_s=4, gpus_per_trial=0.5
    )
    metrics.trial_finished(
        "t3", state=TrialState.STOPPED, objective=0.6, duration_s=10, gpus_per_trial=0.5
    )

    assert trials_by_state(registry) == {"Running": 0, "Completed": 1, "Failed": 1, "Stopped": 1}
    assert value(registry, "openamt_trials_completed_total") == 1
    assert value(registry, "openamt_trials_failed_total") == 1
    assert value(registry, "openamt_trials_stopped_total") == 1
    assert value(registry, "openamt_best_objective") == 0.8
    assert metrics.best_objective == 0.8
    # Progress is for running trials only; the final objective stays for recent finished ones.
    assert value(registry, "openamt_trial_progress_ratio", trial="t1") is None
    assert value(registry, "openamt_trial_epoch", trial="t1") is None
    assert value(registry, "openamt_trial_objective", trial="t1") == 0.8
    assert value(registry, "openamt_trial_objective", trial="t2") is None  # failed: no objective
    assert value(registry, "openamt_gpu_seconds_total") == pytest.approx((30 + 4 + 10) * 0.5)
    assert value(registry, "openamt_trial_duration_seconds_count") == 3
    assert value(registry, "openamt_trial_duration_seconds_sum") == pytest.approx(44)
    assert value(registry, "openamt_trial_duration_seconds_bucket", le="5.0") == 1


def test_best_objective_respects_minimize(registry: CollectorRegistry) -> None:
    metrics = make_metrics(registry, objective_type="minimize")  # case-insensitive
    for trial, loss in (("a", 0.7), ("b", 0.2), ("c", 0.4)):
        metrics.trial_started(trial)
        metrics.trial_finished(
            trial, state=TrialState.COMPLETED, objective=loss, duration_s=1, gpus_per_trial=0
        )
    assert value(registry, "openamt_best_objective") == 0.2
    info = {"strategy": "Bayesian", "objective_metric": "validation:accuracy"}
    assert value(registry, "openamt_job_info", direction="Minimize", **info) == 1.0


def test_failed_and_nan_objectives_never_become_best(registry: CollectorRegistry) -> None:
    metrics = make_metrics(registry)
    metrics.trial_started("a")
    metrics.trial_finished(
        "a", state=TrialState.FAILED, objective=0.99, duration_s=1, gpus_per_trial=0
    )
    metrics.trial_started("b")
    metrics.trial_finished(
        "b", state=TrialState.COMPLETED, objective=float("nan"), duration_s=1, gpus_per_trial=0
    )
    assert value(registry, "openamt_best_objective") is None


def test_retry_keeps_trial_running_and_counts_it_once(registry: CollectorRegistry) -> None:
    metrics = make_metrics(registry)
    metrics.trial_started("t1")
    metrics.trial_progress("t1", objective=0.1, epoch=3, total_epochs=5)
    metrics.trial_finished(
        "t1",
        state=TrialState.FAILED,
        objective=None,
        duration_s=20,
        gpus_per_trial=1,
        will_retry=True,
    )
    assert trials_by_state(registry)["Running"] == 1
    assert value(registry, "openamt_trial_retries_total") == 1
    assert value(registry, "openamt_trials_failed_total") == 0
    assert value(registry, "openamt_trial_progress_ratio", trial="t1") is None  # starts over

    metrics.trial_started("t1")
    metrics.trial_finished(
        "t1", state=TrialState.COMPLETED, objective=0.9, duration_s=40, gpus_per_trial=1
    )
    assert value(registry, "openamt_trials_started_total") == 1
    assert value(registry, "openamt_trials_completed_total") == 1
    assert trials_by_state(registry) == {"Running": 0, "Completed": 1, "Failed": 0, "Stopped": 0}
    assert value(registry, "openamt_gpu_seconds_total") == 60  # both attempts held the GPU


def test_per_trial_series_are_bounded_to_running_and_recent(registry: CollectorRegistry) -> None:
    metrics = make_metrics(registry, recent=3)
    for number in range(500):
        trial = f"t{number:03d}"
        metrics.trial_started(trial)
        metrics.trial_progress(trial, objective=number / 1000, epoch=1, total_epochs=2)
        metrics.trial_finished(
            trial,
            state=TrialState.COMPLETED,
            objective=number / 1000,
            duration_s=1,
            gpus_per_trial=0,
        )
    metrics.trial_started("live")
    metrics.trial_progress("live", objective=0.01, epoch=1, total_epochs=2)

    assert series_count(registry, "openamt_trial_objective") == 4  # 3 recent + 1 running
    assert series_count(registry, "openamt_trial_progress_ratio") == 1
    kept = {
        s.labels["trial"]
        for m in registry.collect()
        for s in m.samples
        if s.name == "openamt_trial_objective"
    }
    assert kept == {"t497", "t498", "t499", "live"}
    assert value(registry, "openamt_trials_completed_total") == 500
    assert value(registry, "openamt_best_objective") == pytest.approx(0.499)
    # The whole exposition stays small however many trials ran.
    assert len(generate_latest(registry)) < 12_000


def test_progress_before_start_counts_the_trial_once(registry: CollectorRegistry) -> None:
    metrics = make_metrics(registry)
    metrics.trial_progress("t1", objective=0.2, epoch=1, total_epochs=4)
    metrics.trial_started("t1")
    assert value(registry, "openamt_trials_started_total") == 1
    assert trials_by_state(registry)["Running"] == 1


def test_progress_after_the_end_is_ignored(registry: CollectorRegistry) -> None:
    metrics = make_metrics(registry)
    metrics.trial_started("t1")
    metrics.trial_finished(
        "t1", state=TrialState.COMPLETED, objective=0.9, duration_s=1, gpus_per_trial=0
    )
    metrics.trial_progress("t1", objective=0.1, epoch=2, total_epochs=4)
    assert trials_by_state(registry) == {"Running": 0, "Completed": 1, "Failed": 0, "Stopped": 0}
    assert value(registry, "openamt_trial_objective", trial="t1") == 0.9
    assert value(registry, "openamt_trial_progress_ratio", trial="t1") is None


def test_a_second_end_without_a_restart_is_ignored(registry: CollectorRegistry) -> None:
    metrics = make_metrics(registry)
    metrics.trial_started("t1")
    for _ in range(2):
        metrics.trial_finished(
            "t1", state="completed", objective=0.9, duration_s=1, gpus_per_trial=1
        )
    assert value(registry, "openamt_trials_completed_total") == 1
    assert value(registry, "openamt_gpu_seconds_total") == 1


def test_suggestion_latency_and_fallbacks(registry: CollectorRegistry) -> None:
    metrics = make_metrics(registry)
    for seconds in (0.002, 0.3, 4.0):
        metrics.observe_suggestion_latency(seconds)
    metrics.set_fallback_count(2)
    assert value(registry, "openamt_suggestion_latency_seconds_count") == 3
    assert value(registry, "openamt_suggestion_latency_seconds_bucket", le="0.005") == 1
    assert value(registry, "openamt_suggestion_latency_seconds_bucket", le="0.5") == 2
    assert value(registry, "openamt_suggestion_latency_seconds_sum") == pytest.approx(4.302)
    assert value(registry, "openamt_searcher_fallbacks") == 2
    metrics.observe_suggestion_wait(0.0)  # computed ahead: the slot did not wait
    assert value(registry, "openamt_suggestion_wait_seconds_count") == 1
    assert value(registry, "openamt_suggestion_wait_seconds_bucket", le="0.001") == 1


def write_ledger(job_dir: Path) -> Ledger:
    ledger = Ledger(job_dir=job_dir)
    ledger.append(Event.JOB_STARTED, run=1)
    outcomes = [("t1", "Completed", 0.71), ("t2", "Failed", None), ("t3", "Stopped", 0.75)]
    for trial, status, objective in outcomes:
        config = {"learning_rate": 0.0123456789, "optimizer": "sgd-secret-choice"}
        ledger.append(Event.TRIAL_STARTED, trial_id=trial, attempt=1, config=config, node_id="n")
        ledger.append(
            Event.TRIAL_COMPLETED,
            trial_id=trial,
            attempt=1,
            status=status,
            objective=objective,
            reason=None,
            retryable=False,
            will_retry=False,
            duration_s=1.0,
        )
    config = {"learning_rate": 0.5, "optimizer": "adam"}
    ledger.append(Event.TRIAL_STARTED, trial_id="t4", attempt=1, config=config, node_id="n")
    return ledger


def test_restore_from_ledger_matches_the_ledger(
    registry: CollectorRegistry, tmp_path: Path
) -> None:
    trials = summarize_trials(write_ledger(tmp_path).events())
    metrics = make_metrics(registry)
    metrics.restore(trials, gpus_per_trial=2)

    assert value(registry, "openamt_best_objective") == best_trial(trials, maximize=True).objective
    assert trials_by_state(registry) == {"Running": 0, "Completed": 1, "Failed": 1, "Stopped": 1}
    assert value(registry, "openamt_trials_started_total") == 4
    assert value(registry, "openamt_trial_objective", trial="t3") == 0.75
    held = sum(t.duration_s for t in trials.values() if t.state.finished)
    assert value(registry, "openamt_gpu_seconds_total") == pytest.approx(held * 2)

    metrics.trial_started("t4")  # the interrupted trial, restarted by the runner
    assert value(registry, "openamt_trials_started_total") == 4
    assert trials_by_state(registry)["Running"] == 1

    exposition = generate_latest(registry).decode()
    assert "0.0123456789" not in exposition and "sgd-secret-choice" not in exposition


def test_restore_after_events_is_refused(registry: CollectorRegistry) -> None:
    metrics = make_metrics(registry)
    metrics.trial_started("t1")
    with pytest.raises(ExporterError, match="restore: must be called once, before any"):
        metrics.restore({})


@pytest.mark.parametrize(
    ("overrides", "field", "shown"),
    [
        ({"objective_type": "Upward"}, "objective_type", "'Upward'"),
        ({"max_jobs": 0}, "max_jobs", "0"),
        ({"job_name": ""}, "job_name", "''"),
        ({"recent_finished_trials": -1}, "recent_finished_trials", "-1"),
    ],
)
def test_bad_constructor_input_names_field_value_and_rule(
    registry: CollectorRegistry, overrides: dict, field: str, shown: str
) -> None:
    arguments = {
        "registry": registry,
        "job_name": JOB,
        "strategy": "Random",
        "objective_metric_name": "loss",
        "objective_type": "Minimize",
        "max_jobs": 3,
        **overrides,
    }
    with pytest.raises(ExporterError) as caught:
        TuningMetrics(**arguments)
    message = str(caught.value)
    assert message.startswith(field) and shown in message
    assert "must be" in message or "is not one of: Maximize, Minimize" in message


def test_bad_event_input_is_rejected(registry: CollectorRegistry) -> None:
    metrics = make_metrics(registry)
    for state in (TrialState.RUNNING, "Finished"):
        with pytest.raises(ExporterError, match=r"state: must be Completed, Failed or Stopped"):
            metrics.trial_finished("t", state=state, objective=1.0, duration_s=1, gpus_per_trial=0)
    with pytest.raises(ExporterError, match=r"duration_s: must be a finite number >= 0 \(got -1"):
        metrics.trial_finished(
            "t", state=TrialState.COMPLETED, objective=1.0, duration_s=-1, gpus_per_trial=0
        )
    with pytest.raises(ExporterError, match=r"seconds: must be a finite number >= 0 \(got nan"):
        metrics.observe_suggestion_latency(float("nan"))
    with pytest.raises(ExporterError, match=r"seconds: must be a finite number >= 0 \(got -0.5"):
        metrics.observe_suggestion_wait(-0.5)
    with pytest.raises(ExporterError, match=r"count: must be an integer >= 0 \(got -2\)"):
        metrics.set_fallback_count(-2)


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def test_server_serves_the_registry_on_loopback(registry: CollectorRegistry) -> None:
    metrics = make_metrics(registry)
    metrics.trial_started("t1")
    with start_metrics_server(registry=registry, port=0) as server:
        assert server.host == "127.0.0.1" and server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}/metrics"
        body = fetch(server.url)
    assert f'openamt_trials{{state="Running",tuning_job="{JOB}"}} 1.0' in body
    with socket.socket() as probe:  # closed: nothing listens there any more
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", server.port))


def test_taken_port_raises_naming_port_and_flag(registry: CollectorRegistry) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(MetricsPortError) as caught:
            start_metrics_server(registry=registry, port=port)
    assert isinstance(caught.value, OpenAMTError)
    assert f"metrics port {port}" in str(caught.value)
    assert "--metrics-port" in str(caught.value)


def test_public_host_needs_opt_in_and_warns(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    make_metrics(registry)
    with pytest.raises(ExporterError, match=r"--metrics-host: '0.0.0.0' is not a loopback"):
        start_metrics_server(registry=registry, host="0.0.0.0", port=0)
    with caplog.at_level(logging.WARNING, logger="orchestrator.monitor.exporter"):
        server = start_metrics_server(registry=registry, host="0.0.0.0", port=0, allow_public=True)
    try:
        assert "reachable beyond this machine" in caplog.text
        assert "openamt_trials_started_total" in fetch(f"http://127.0.0.1:{server.port}/metrics")
    finally:
        server.close()


def test_bad_port_is_rejected(registry: CollectorRegistry) -> None:
    with pytest.raises(ExporterError, match=r"--metrics-port: must be an integer in 0..65535"):
        start_metrics_server(registry=registry, port=70000)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.0.0.5", False),
        ("example.org", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


# -- the deploy/ config must agree with what the exporter exports --


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_dashboard_uses_only_metrics_the_exporter_exports(registry: CollectorRegistry) -> None:
    metrics = make_metrics(registry)
    metrics.trial_started("t1")
    metrics.trial_progress("t1", objective=0.4, epoch=1, total_epochs=3)
    metrics.trial_finished(
        "t1", state=TrialState.COMPLETED, objective=0.4, duration_s=2, gpus_per_trial=1
    )
    metrics.trial_started("t2")
    metrics.trial_progress("t2", objective=0.3, epoch=1, total_epochs=3)
    exported = {s.name for m in registry.collect() for s in m.samples}
    used = {
        name
        for expr in dashboard_expressions()
        for name in re.findall(r"\b(openamt_[a-z_]+)", expr)
    }
    assert used, "the dashboard queries no openamt metric"
    assert used <= exported, f"dashboard queries metrics nobody exports: {used - exported}"


def test_dashboard_is_grafana_10_with_the_required_panels() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] >= 38
    panels = dashboard["panels"]
    assert {panel["type"] for panel in panels} <= {"timeseries", "stat"}
    assert len({panel["id"] for panel in panels}) == len(panels)
    titles = {panel["title"] for panel in panels}
    for required in (
        "Trials by state",
        "Best objective over time",
        "Objective per trial",
        "Running trials' progress",
        "Suggestion latency",
        "Searcher fallbacks",
        "GPU-seconds used",
        "GPU utilisation (Ray)",
    ):
        assert required in titles
    assert any("ray_node_gpus_utilization" in expr for expr in dashboard_expressions())
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]


def test_prometheus_config_scrapes_exporter_and_ray() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["openamt"]["static_configs"][0]["targets"] == [f"127.0.0.1:{DEFAULT_METRICS_PORT}"]
    sd_files = jobs["ray"]["file_sd_configs"][0]["files"]
    assert sd_files == ["/tmp/ray/prom_metrics_service_discovery.json"]


def test_grafana_provisioning_points_at_the_dashboard_and_prometheus() -> None:
    provisioning = REPO / "deploy" / "grafana" / "provisioning"
    source = yaml.safe_load((provisioning / "datasources" / "openamt.yml").read_text())
    assert source["datasources"][0]["type"] == "prometheus"
    assert source["datasources"][0]["url"] == "http://127.0.0.1:9090"
    provider = yaml.safe_load((provisioning / "dashboards" / "openamt.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "${OPENAMT_GRAFANA_DASHBOARDS}"


def test_server_serves_on_ipv6_loopback(registry: CollectorRegistry) -> None:
    make_metrics(registry)
    with start_metrics_server(registry=registry, host="::1", port=0) as server:
        assert server.url == f"http://[::1]:{server.port}/metrics"
        assert "openamt_trials_started_total" in fetch(server.url)


def test_close_does_not_wait_out_a_long_poll(registry: CollectorRegistry) -> None:
    """Every job closes its server on the way out; the standard library's 0.5 s shutdown poll
    added 0.25 s on average to each (8 closes: about 2 s)."""
    make_metrics(registry)
    before = set(threading.enumerate())
    servers = [start_metrics_server(registry=registry, port=0) for _ in range(8)]
    serving = [t for t in threading.enumerate() if t not in before and t.name == "openamt-metrics"]
    assert len(serving) == 8
    started = time.perf_counter()
    for server in servers:
        server.close()
    assert time.perf_counter() - started < 1.0
    assert not any(thread.is_alive() for thread in serving)
