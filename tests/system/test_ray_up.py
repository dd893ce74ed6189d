"""The cluster launcher for real: `ray up` a copy of deploy/ray/onprem.yaml pointed at this
machine over SSH, `ray submit` the Python-API smoke job, `ray down`.

sshd runs on a free loopback port with a throwaway key and its own config; its sessions get a
home directory inside the test's temp dir, so everything `ray up` writes to `~` (the synced
repository, the bootstrap config and key, the token) lands there. The copy of the shipped config
changes only what must differ on this machine: the provider (head 127.0.0.1, no workers), the
SSH user, key and port (a ProxyCommand, as Ray has no port setting), the token file, and the
setup and start commands: no NFS mount, no environments to build (the repository's .venv is
used), free ports instead of 6379/8265, and a head kept on loopback. `ray stop`, which Ray's
start commands and `ray down` run and which stops every Ray process on a machine, is a shim on
the session's PATH that stops only this test's head (tests/system/ray_processes.py).
"""

from __future__ import annotations

import getpass
import glob
import hashlib
import shutil
import stat
import sys
from pathlib import Path

import psutil
import pytest
import yaml

from orchestrator.store.ledger import Event, read_events
from orchestrator.store.records import summarize_trials
from orchestrator.trial.outcome import TrialState
from tests.helpers import attempt_files
from tests.system.cluster_fixtures import (  # noqa: F401 - cluster_tmp_fixture is a fixture
    RAY_CLI,
    REPO,
    VENV_BIN,
    SshServer,
    cluster_tmp_fixture,
    free_port,
    ray_env,
    require_program,
    run_cli,
    write_token,
)
from tests.system.ray_processes import processes_of, stop_ray_processes

pytestmark = [pytest.mark.system, pytest.mark.slow]

ONPREM_CONFIG = REPO / "deploy" / "ray" / "onprem.yaml"
SMOKE_SCRIPT = REPO / "deploy" / "jobs" / "standin_cluster.py"
LAUNCHER_TIMEOUT_S = 240


def ray_stop_shim(directory: Path, *, ray_temp_dir: Path) -> Path:
    """The `ray` of the SSH sessions: `ray stop` stops this test's head only; any other
    command is the real `ray`."""
    directory.mkdir()
    shim = directory / "ray"
    stopper = REPO / "tests" / "system" / "ray_processes.py"
    shim.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = stop ]; then exec {sys.executable} {stopper} {ray_temp_dir}; fi\n'
        f'exec {RAY_CLI} "$@"\n'
    )
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    return directory


def onprem_copy(
    directory: Path, *, ssh: SshServer, token_path: Path, shim_dir: Path, node_tmp: Path
) -> tuple[Path, dict[str, int]]:
    """deploy/ray/onprem.yaml for this machine (see the module docstring); returns its path and
    the ports chosen for the head."""
    config = yaml.safe_load(ONPREM_CONFIG.read_text())
    ports = {name: free_port() for name in ("gcs", "dashboard", "agent", "client")}
    config["cluster_name"] = f"openamt-test-{directory.name}"
    config["provider"].update(head_ip="127.0.0.1", worker_ips=[])
    config["auth"] = {
        "ssh_user": ssh.user,
        "ssh_private_key": str(ssh.client_key),
        "ssh_proxy_command": ssh.proxy_command,
    }
    config["file_mounts"]["~/.ray/auth_token"] = str(token_path)
    environment = [
        f'export PATH="{shim_dir}:{VENV_BIN}:$PATH"',
        "export RAY_AUTH_MODE=token",
        f"export RAY_TMPDIR={node_tmp}",  # the head's Ray temp dir: {node_tmp}/ray
        "export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0",  # a one-node cluster on 127.0.0.1
    ]
    config["setup_commands"] = [
        "printf '%s\\n' " + " ".join(f"'{line}'" for line in environment) + " > ~/.bashrc",
        *[command for command in config["setup_commands"] if command.startswith("chmod")],
        "python -c 'import orchestrator, ray'",
    ]
    config["head_setup_commands"] = []
    config["head_start_ray_commands"] = [
        "ray stop",
        "RAY_AUTH_MODE=token ray start --head --autoscaling-config=~/ray_bootstrap_config.yaml"
        f" --port={ports['gcs']} --dashboard-host=127.0.0.1 --dashboard-port={ports['dashboard']}"
        f" --dashboard-agent-listen-port={ports['agent']}"
        f" --ray-client-server-port={ports['client']} --num-cpus=2 --disable-usage-stats",
    ]
    config["worker_start_ray_commands"] = []
    path = directory / "cluster.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path, ports


def listening_addresses(port: int) -> set[str]:
    return {
        connection.laddr.ip
        for connection in psutil.net_connections(kind="tcp")
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port
    }


def test_ray_up_submit_and_down_with_the_onprem_config(cluster_tmp: Path) -> None:
    require_program("rsync", package="rsync")
    home = cluster_tmp / "home"
    ssh = SshServer(directory=cluster_tmp / "ssh", home=home)
    node_tmp = cluster_tmp / "node"
    head_ray_dir = node_tmp / "ray"
    token_path = cluster_tmp / "auth_token"
    write_token(token_path)
    shim_dir = ray_stop_shim(cluster_tmp / "bin", ray_temp_dir=head_ray_dir)
    config, ports = onprem_copy(
        cluster_tmp, ssh=ssh, token_path=token_path, shim_dir=shim_dir, node_tmp=node_tmp
    )
    client_tmp = cluster_tmp / "client"
    client_tmp.mkdir()
    # Where `ray up` keeps the local provider's state and its config cache on this side.
    env = ray_env(token_path=None, extra={"RAY_TMPDIR": str(client_tmp), "TMPDIR": str(client_tmp)})
    try:
        up = run_cli(
            [RAY_CLI, "up", "-y", "--no-config-cache", str(config)],
            env=env,
            cwd=REPO,  # the config syncs "." (the repository) to ~/openamt
            timeout=LAUNCHER_TIMEOUT_S,
        )
        assert up.returncode == 0, up.stdout[-6000:]
        assert (home / "openamt" / "tests" / "fixtures" / "standin_trainer.py").is_file()
        synced_token = home / ".ray" / "auth_token"
        assert synced_token.read_text() == token_path.read_text()
        assert stat.S_IMODE(synced_token.stat().st_mode) == 0o600
        head = processes_of(head_ray_dir)
        assert head, f"`ray up` left no Ray head running:\n{up.stdout[-6000:]}"
        raylet = next(p for p in head if p.name() == "raylet")
        assert raylet.environ().get("RAY_AUTH_MODE") == "token"
        assert listening_addresses(ports["dashboard"]) == {"127.0.0.1"}

        runs = cluster_tmp / "runs"
        submit = run_cli(
            [
                RAY_CLI,
                "submit",
                "--no-config-cache",
                str(config),
                str(SMOKE_SCRIPT),
                "--",
                f"--output-path={runs}",
                "--no-metrics",
                "--no-progress",
            ],
            env=env,
            cwd=REPO,
            timeout=LAUNCHER_TIMEOUT_S,
        )
        assert submit.returncode == 0, submit.stdout[-6000:]
        assert "best trial: trial-" in submit.stdout, submit.stdout[-6000:]
        [job_dir] = glob.glob(str(runs / "standin-cluster-*"))
        events = read_events(Path(job_dir) / "ledger.jsonl")
        assert events[-1]["event"] == Event.JOB_COMPLETED.value
        assert events[-1]["reason"] == "MaxNumberOfTrainingJobsReached"
        trials = summarize_trials(events, objective_metric_name="validation:accuracy")
        assert len(trials) == 4
        assert {t.state for t in trials.values()} == {TrialState.COMPLETED}
        for trial_id in trials:
            assert (attempt_files(Path(job_dir), trial_id).model_dir / "model.txt").is_file()

        down = run_cli(
            [RAY_CLI, "down", "-y", str(config)], env=env, cwd=REPO, timeout=LAUNCHER_TIMEOUT_S
        )
        assert down.returncode == 0, down.stdout[-6000:]
        assert not processes_of(head_ray_dir), "`ray down` left the head's Ray running"
    finally:
        ssh.stop()
        stop_ray_processes(ssh.directory, force=True)  # ssh clients kept as control masters
        _remove_ssh_control_dir(config_name=yaml.safe_load(config.read_text())["cluster_name"])


def _remove_ssh_control_dir(*, config_name: str) -> None:
    """Ray keeps SSH control sockets in /tmp/ray_ssh_<user hash>/<cluster hash>; the cluster
    was this test's, so is that directory."""
    user_hash = hashlib.sha256(getpass.getuser().encode())
    cluster_hash = hashlib.sha256(config_name.encode()).hexdigest()[:10]
    shutil.rmtree(Path("/tmp") / f"ray_ssh_{user_hash.hexdigest()[:10]}" / cluster_hash, True)
