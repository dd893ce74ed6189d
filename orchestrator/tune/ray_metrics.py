"""Ray's own Prometheus metrics, passed through as they are.

A Ray head started with `ray start` writes a Prometheus service-discovery file listing every
node's metrics export port, and `deploy/prometheus/prometheus.yml` reads it. Ray started
embedded in `openamt tune` (no dashboard) does not, so the runner writes the same file itself,
and removes it when that Ray goes away.

Ray's temp root is writable by every user of the machine, so the file is never written in
place: it is written in this Ray session's own folder (created by this user) and renamed into
place, which replaces a link someone planted there instead of writing through it.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

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


#: Prometheus, often running as a user of its own, must be able to read it (addresses only).
DISCOVERY_FILE_MODE = 0o644


def publish_service_discovery(
    path: Path | None = None, *, staging_dir: Path | None = None
) -> Path | None:
    """Write the discovery file unless Ray already keeps one (a regular file there); returns
    the path written. It is staged in `staging_dir` (default: this Ray session's folder)."""
    path = path or ray_temp_dir() / SERVICE_DISCOVERY_FILE
    if path.is_file() and not path.is_symlink():
        return None
    targets = metrics_targets()
    if not targets:
        return None
    staging = staging_dir or ray_session_dir() or path.parent
    text = json.dumps([{"labels": {"job": "ray"}, "targets": targets}])
    fd, staged = tempfile.mkstemp(dir=staging, prefix=".sd-", suffix=".json")  # O_EXCL
    try:
        with open(fd, "w", encoding="utf-8") as handle:
            os.fchmod(fd, DISCOVERY_FILE_MODE)
            handle.write(text)
            handle.flush()
            os.fsync(fd)
        os.replace(staged, path)  # replaces a planted link; never writes through one
    except OSError:
        Path(staged).unlink(missing_ok=True)
        raise
    log.info("Ray metrics for Prometheus: %s (listed in %s)", ", ".join(targets), path)
    return path


def ray_session_dir() -> Path | None:
    """This Ray session's own folder, created by this user, or None before Ray started."""
    import ray

    node = getattr(ray._private.worker, "_global_node", None)
    return Path(node.get_session_dir_path()) if node is not None else None
