"""Ray's own Prometheus metrics, passed through as they are.

A Ray head started with `ray start` writes a Prometheus service-discovery file listing every
node's metrics export port, and `deploy/prometheus/prometheus.yml` reads it. Ray started
embedded in `openamt tune` (no dashboard) does not, so the runner writes the same file itself,
and removes it when that Ray goes away.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from orchestrator.store.job_dir import write_atomic

log = logging.getLogger(__name__)

SERVICE_DISCOVERY_FILE = "prom_metrics_service_discovery.json"


def ray_temp_dir() -> Path:
    """Ray's temp root (/tmp/ray unless RAY_TMPDIR or --temp-dir says otherwise)."""
    import ray

    node = getattr(ray._private.worker, "_global_node", None)
    if node is not None:
        return Path(node.get_temp_dir_path())
    return Path(os.environ.get("RAY_TMPDIR", "/tmp")) / "ray"


def metrics_targets() -> list[str]:
    """`host:port` of every live node's metrics export port."""
    import ray

    return sorted(
        f"{node['NodeManagerAddress']}:{node['MetricsExportPort']}"
        for node in ray.nodes()
        if node.get("Alive") and node.get("MetricsExportPort")
    )


def publish_service_discovery(path: Path | None = None) -> Path | None:
    """Write the discovery file unless Ray already keeps one; returns the path we wrote."""
    path = path or ray_temp_dir() / SERVICE_DISCOVERY_FILE
    if path.exists():
        return None
    targets = metrics_targets()
    if not targets:
        return None
    write_atomic(path, json.dumps([{"labels": {"job": "ray"}, "targets": targets}]))
    log.info("Ray metrics for Prometheus: %s (listed in %s)", ", ".join(targets), path)
    return path
