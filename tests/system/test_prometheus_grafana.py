"""A real Prometheus scrapes openamt; every PromQL expression of the Grafana dashboard must work.

Prometheus is Debian's `prometheus`, started on loopback with the shipped config
(deploy/prometheus/prometheus.yml) rewritten only to scrape every second and to point at the
test's exporter port. Grafana itself is not needed: the dashboard is a list of PromQL
expressions, and those are run through Prometheus's HTTP API the way Grafana would run them,
with the dashboard's variables filled in.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from orchestrator.monitor.exporter import TuningMetrics
from orchestrator.monitor.server import start_metrics_server
from orchestrator.store.ledger import read_events
from orchestrator.store.records import best_trial, summarize_trials
from orchestrator.trial.outcome import TrialState

pytestmark = pytest.mark.system

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "openamt.json"
STANDIN_TRAINER = REPO / "tests" / "fixtures" / "standin_trainer.py"
# Ray's GPU metric has no samples on a machine without GPUs; its query can only be parsed here.
GPU_ONLY_METRIC = "ray_node_gpus_utilization"
# Grafana's $__rate_interval is at least four scrape intervals; with 1 s scrapes, 10 s is plenty.
RATE_INTERVAL = "10s"


def dashboard_queries(*, job_name: str) -> list[tuple[str, str]]:
    """(panel title, expression) for every target, with Grafana's variables substituted."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", RATE_INTERVAL)
            # Job names are letters, digits and hyphens: nothing to escape in the =~ matcher.
            expr = expr.replace("$job", job_name)
            assert "$" not in expr, f"unsubstituted variable in {panel['title']!r}: {expr}"
            queries.append((panel["title"], expr))
    return queries


def finite_values(data: dict[str, Any]) -> list[float]:
    return [
        float(value)
        for series in data["result"]
        for _, value in series["values"]
        if math.isfinite(float(value))
    ]


def assert_every_dashboard_query_has_data(
    prometheus: Any, *, job_name: str, start: float, end: float
) -> None:
    empty = []
    for title, expr in dashboard_queries(job_name=job_name):
        data = prometheus.query_range(expr, start=start, end=end)  # raises if it does not parse
        if GPU_ONLY_METRIC in expr:
            # Parsed and evaluated above; no data is expected without GPUs, so none is asserted.
            assert data["resultType"] == "matrix"
            continue
        if not finite_values(data):
            empty.append(f"{title}: {expr}")
    assert not empty, "dashboard queries without data:\n" + "\n".join(empty)


def last_value(prometheus: Any, expr: str, *, start: float, end: float) -> float:
    data = prometheus.query_range(expr, start=start, end=end)
    assert len(data["result"]) == 1, f"{expr}: expected one series, got {data['result']}"
    return float(data["result"][0]["values"][-1][1])


def wait_until_scraped(prometheus: Any, *, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = prometheus.api("query", query='up{job="openamt"}')["data"]["result"]
        if result and result[0]["value"][1] == "1":
            return
        time.sleep(0.3)
    raise AssertionError(f"Prometheus never scraped the exporter:\n{prometheus.log()}")


def test_dashboard_queries_have_data_for_a_simulated_job(start_prometheus: Any) -> None:
    """The exporter alone, fed trial events by this test: fast, and independent of the runner."""
    registry = CollectorRegistry()
    metrics = TuningMetrics(
        registry=registry,
        job_name="simulated",
        strategy="Bayesian",
        objective_metric_name="accuracy",
        objective_type="Maximize",
        max_jobs=6,
    )
    with start_metrics_server(registry=registry, port=0) as server:
        prometheus = start_prometheus(server.port)
        wait_until_scraped(prometheus)
        start = time.time()
        objectives = iter([0.61, 0.72, 0.55, 0.80, 0.79, 0.40])
        for round_number in range(3):
            trials = [f"t{round_number}{slot}" for slot in range(2)]
            for trial in trials:
                metrics.observe_suggestion_latency(0.05 * (round_number + 1))
                metrics.trial_started(trial)
            for epoch in range(1, 4):
                time.sleep(0.5)
                for trial in trials:
                    metrics.trial_progress(
                        trial, objective=0.2 * epoch, epoch=epoch, total_epochs=3
                    )
            for slot, trial in enumerate(trials):
                state = (
                    TrialState.FAILED if (round_number, slot) == (2, 1) else TrialState.COMPLETED
                )
                metrics.trial_finished(
                    trial,
                    state=state,
                    objective=next(objectives),
                    duration_s=1.5,
                    gpus_per_trial=0.5,
                )
        metrics.set_fallback_count(1)
        time.sleep(2.5)  # a couple of scrapes of the final state
        end = time.time()

    assert_every_dashboard_query_has_data(prometheus, job_name="simulated", start=start, end=end)
    best = last_value(
        prometheus, 'openamt_best_objective{tuning_job="simulated"}', start=start, end=end
    )
    assert best == 0.80 == metrics.best_objective


def write_job(tmp_path: Path) -> Path:
    """A short Bayesian job of the stand-in trainer: 6 trials, 2 at a time, 4 epochs each."""
    job = tmp_path / "job.yaml"
    job.write_text(
        textwrap.dedent(
            f"""\
            name: monitoring-system
            trainer:
              command: [python, {json.dumps(str(STANDIN_TRAINER))}]
              interpreter: {json.dumps(sys.executable)}
              working_dir: {json.dumps(str(REPO))}
            hyperparameters: {{epochs: 4, sleep: 0.5}}
            hyperparameter_ranges:
              x: {{type: Continuous, min_value: 0.0, max_value: 1.0}}
              y: {{type: Continuous, min_value: 0.0, max_value: 1.0}}
            objective_metric_name: accuracy
            objective_type: Maximize
            metric_definitions:
              - {{Name: accuracy, Regex: "validation: accuracy=([0-9\\\\.]+)"}}
            strategy: Bayesian
            max_jobs: 6
            max_parallel_jobs: 2
            random_seed: 7
            output_path: {json.dumps(str(tmp_path / "runs"))}
            """
        )
    )
    return job


@pytest.mark.slow
def test_prometheus_scrapes_a_real_tuning_job(
    start_prometheus: Any, metrics_port: int, tmp_path: Path
) -> None:
    """`openamt tune --metrics-port` on a real job; Prometheus's best equals the ledger's."""
    openamt = Path(sys.executable).parent / "openamt"
    assert openamt.exists(), f"{openamt} is missing: install the package (pip install -e .)"
    job = write_job(tmp_path)
    port = metrics_port
    prometheus = start_prometheus(port)
    start = time.time()
    run = subprocess.run(
        [str(openamt), "tune", str(job), "--metrics-port", str(port), "--no-progress"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=400,
    )
    end = time.time()
    assert run.returncode == 0, f"openamt tune failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"

    trials = summarize_trials(
        read_events(tmp_path / "runs" / "monitoring-system" / "ledger.jsonl"),
        objective_metric_name="accuracy",
    )
    assert sum(t.state.finished for t in trials.values()) == 6
    ledger_best = best_trial(trials, maximize=True)
    assert ledger_best is not None

    assert_every_dashboard_query_has_data(
        prometheus, job_name="monitoring-system", start=start, end=end
    )
    expr = 'openamt_best_objective{tuning_job="monitoring-system"}'
    assert last_value(prometheus, expr, start=start, end=end) == ledger_best.objective
    completed = last_value(
        prometheus,
        'openamt_trials{tuning_job="monitoring-system", state="Completed"}',
        start=start,
        end=end,
    )
    assert completed == sum(t.state is TrialState.COMPLETED for t in trials.values())
