"""Ray's own metrics reach Prometheus through the service-discovery file."""

from __future__ import annotations

import json
import stat
import time
import urllib.request

import pytest

from orchestrator.tune.ray_metrics import metrics_targets, publish_service_discovery

pytestmark = pytest.mark.usefixtures("local_ray")


def test_the_discovery_file_lists_nodes_that_serve_ray_metrics(tmp_path):
    path = tmp_path / "sd.json"
    assert publish_service_discovery(path) == path
    [group] = json.loads(path.read_text())
    assert group["targets"] == metrics_targets() and group["targets"]
    body = ""
    deadline = time.monotonic() + 30  # Ray's agent exports a few seconds after start
    while "ray_node_cpu_count" not in body and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{group['targets'][0]}/metrics", timeout=5) as r:
                body = r.read().decode()
        except OSError:
            time.sleep(1)
    assert "ray_node_cpu_count" in body


def test_an_existing_file_is_left_to_ray(tmp_path):
    path = tmp_path / "sd.json"
    path.write_text("[]")
    assert publish_service_discovery(path) is None
    assert path.read_text() == "[]"


def test_a_link_planted_where_the_file_goes_is_replaced_not_written_through(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("someone else's file")
    path = tmp_path / "sd.json"
    path.symlink_to(victim)  # what another user could plant in a world-writable folder
    staging = tmp_path / "session"
    staging.mkdir(mode=0o700)
    assert publish_service_discovery(path, staging_dir=staging) == path
    assert victim.read_text() == "someone else's file"
    assert not path.is_symlink() and json.loads(path.read_text())[0]["targets"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # Prometheus may run as another user
    assert list(staging.iterdir()) == []  # nothing left behind in the staging folder
