"""One local Ray for the whole integration session: starting Ray costs ~5 s."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def local_ray():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield
    ray.shutdown()
