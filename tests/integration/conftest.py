"""One local Ray per test module: starting Ray costs ~5 s, and shutting it down after each
module leaves no Ray processes behind for tests that check their own children."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield
    ray.shutdown()
