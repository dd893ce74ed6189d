"""Ray ends the whole process when any thread calls into its core worker during or after
`ray.shutdown()`. A garbage collection in another thread (a log follower's) could do that by
finalising the finished experiment's Ray handles, so the session collects them first."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import gc, json, sys
sys.path.insert(0, sys.argv[1])
import ray
from orchestrator.tune.session import SessionOptions, ray_session

finalised_with_ray_up = []


class Holder:
    '''A Ray object ref in a reference cycle: only a garbage collection frees it.'''

    def __init__(self):
        self.ref = ray.put(1)
        self.cycle = self

    def __del__(self):
        finalised_with_ray_up.append(ray.is_initialized())


gc.disable()  # no collection but the session's own may finalise the holder
with ray_session(SessionOptions(publish_ray_metrics=False)):
    Holder()
disabled_after = not gc.isenabled()
gc.enable()
with ray_session(SessionOptions(publish_ray_metrics=False)):
    pass
gc.collect()
print(json.dumps({"finalised": finalised_with_ray_up, "disabled_after": disabled_after,
                  "enabled_after": gc.isenabled()}))
"""


def test_ray_handles_are_finalised_before_the_shutdown_and_gc_is_left_as_it_was(tmp_path):
    env = {**os.environ, "RAY_AUTH_TOKEN_PATH": str(tmp_path / "token")}
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(REPO)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["finalised"] == [True]  # collected while Ray was up, not after
    assert result["disabled_after"] and result["enabled_after"]
