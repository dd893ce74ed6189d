"""Real Ray nodes for the cluster tests, each confined to its own temp directory and ports.

Every node is `ray start ... --block` in its own session, with token authentication on
(`RAY_AUTH_MODE=token`, a throwaway token file of mode 0600 named by `RAY_AUTH_TOKEN_PATH`, never
the user's `~/.ray/auth_token`), free ports and a short temp directory of its own, so a test
neither clashes with nor stops anybody else's Ray; `tests/system/ray_processes.py` stops exactly
what a node started. Ray runs only in subprocesses: the pytest process never imports it.

Ray 2.60 on Linux replaces 127.0.0.1 by the host's own address for a node that other nodes join
(`ray._private.services.resolve_ip_for_localhost`), and a head kept on loopback
(`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`) refuses worker nodes. So a multi-node cluster here
registers its nodes under the host's address (packets to it stay inside the host); a
single-node head keeps everything on 127.0.0.1 (`RayNode.start_head(loopback_only=True)`).
"""

from __future__ import annotations

import getpass
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import psutil
import pytest

from tests.system.ray_processes import processes_of, stop_ray_processes

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
RAY_CLI = str(VENV_BIN / "ray")
STANDIN_TRAINER = REPO / "tests" / "fixtures" / "standin_trainer.py"
NODE_START_TIMEOUT_S = 90
STARTED_LINE = "Ray runtime started"
#: Seconds until the GCS declares a silent node dead (Ray's default is about 30).
FAST_NODE_DEATH_ENV = {
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_token(path: Path) -> str:
    """A fresh random token in a file only its owner can read, as Ray expects it."""
    token = secrets.token_hex(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token)
    return token


def ray_env(*, token_path: Path | None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment for a Ray process: token auth on with `token_path` (off when None),
    this venv first on PATH (so `openamt` and `ray` resolve), no inherited cluster address."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE")
    }
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    if token_path is None:
        env["RAY_AUTH_MODE"] = "disabled"
    else:
        env["RAY_AUTH_MODE"] = "token"
        env["RAY_AUTH_TOKEN_PATH"] = str(token_path)
    env.update(extra or {})
    return env


class RayNode:
    """One `ray start --block` process and every process it started, in `temp_dir`."""

    def __init__(
        self,
        *,
        temp_dir: Path,
        args: Sequence[str],
        env: Mapping[str, str],
        dashboard_port: int | None = None,
    ) -> None:
        self.temp_dir = temp_dir
        self.dashboard_port = dashboard_port
        self.log_path = temp_dir.with_suffix(".log")
        temp_dir.mkdir(parents=True)
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(
                [RAY_CLI, "start", *args, "--block", f"--temp-dir={temp_dir}"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env),
                start_new_session=True,
            )
        self._wait_started()

    @classmethod
    def start_head(
        cls,
        *,
        temp_dir: Path,
        env: Mapping[str, str],
        num_cpus: int,
        loopback_only: bool = False,
    ) -> RayNode:
        """A head node with its dashboard (and the job API) on 127.0.0.1 and free ports."""
        head_env = dict(env)
        if loopback_only:
            head_env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # node address 127.0.0.1
        dashboard_port = free_port()
        args = [
            "--head",
            f"--port={free_port()}",
            f"--num-cpus={num_cpus}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dashboard_port}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--ray-client-server-port={free_port()}",
            "--disable-usage-stats",
        ]
        return cls(temp_dir=temp_dir, args=args, env=head_env, dashboard_port=dashboard_port)

    @classmethod
    def start_worker(
        cls, *, temp_dir: Path, env: Mapping[str, str], head_address: str, num_cpus: int
    ) -> RayNode:
        return cls(
            temp_dir=temp_dir,
            args=[
                f"--address={head_address}",
                f"--num-cpus={num_cpus}",
                f"--dashboard-agent-listen-port={free_port()}",
                "--disable-usage-stats",
            ],
            env=env,
        )

    def _wait_started(self) -> None:
        deadline = time.monotonic() + NODE_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if STARTED_LINE in self.log():
                return
            if self._process.poll() is not None:
                raise AssertionError(f"`ray start` exited early:\n{self.log()[-4000:]}")
            time.sleep(0.3)
        raise AssertionError(f"Ray node not started in {NODE_START_TIMEOUT_S}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def gcs_address(self) -> str:
        """host:port of the cluster, as this head wrote it for `ray.init(address="auto")`."""
        return (self.temp_dir / "ray_current_cluster").read_text().strip()

    @property
    def dashboard_url(self) -> str:
        """The dashboard and job API of a head node (on 127.0.0.1)."""
        assert self.dashboard_port is not None, "only a head node serves the dashboard"
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def node_id(self) -> str:
        """Ray's id of this node: its raylet's `--node_id`."""
        for process in processes_of(self.temp_dir):
            try:
                cmdline = process.cmdline()
            except psutil.NoSuchProcess:
                continue
            if cmdline and cmdline[0].endswith("raylet"):
                for arg in cmdline:
                    if arg.startswith("--node_id="):
                        return arg.split("=", 1)[1]
        raise AssertionError(f"no raylet running for {self.temp_dir}")

    def alive_node_ids(self, *, token: str) -> set[str]:
        """Ids of the cluster's live nodes, from a head's state API (with the token)."""
        request = urllib.request.Request(
            f"{self.dashboard_url}/api/v0/nodes", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            nodes = json.load(response)["data"]["result"]["result"]
        return {node["node_id"] for node in nodes if node["state"] == "ALIVE"}

    def descendants(self) -> list[psutil.Process]:
        return processes_of(self.temp_dir)

    def kill(self) -> int:
        """The node dies at once, as a machine that loses power: SIGKILL to all its processes."""
        return stop_ray_processes(self.temp_dir, force=True)

    def stop(self) -> None:
        """Graceful: `ray start --block` stops what it started on SIGTERM; then sweep."""
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        stop_ray_processes(self.temp_dir)


@pytest.fixture(name="cluster_tmp")
def cluster_tmp_fixture() -> Iterator[Path]:
    """A temp directory with a short path (Ray's Unix sockets must fit 107 bytes) whose Ray
    processes are stopped and files removed afterwards, whatever the test did."""
    path = Path(tempfile.mkdtemp(prefix="oa-"))
    yield path
    stop_ray_processes(path, force=True)
    shutil.rmtree(path, ignore_errors=True)


def run_cli(
    argv: Sequence[str], *, env: Mapping[str, str], timeout: float, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command in its own session, output captured; past `timeout` its whole process
    group is killed and the test fails with the output so far."""
    with subprocess.Popen(
        list(argv),
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            command = " ".join(list(argv)[:3])
            raise AssertionError(f"`{command}` ran past {timeout}s:\n{output[-6000:]}") from None
    return subprocess.CompletedProcess(list(argv), process.returncode, output)


def require_program(name: str, *, package: str) -> str:
    """The program's path (sbin directories included), or a test failure naming the package."""
    search_path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    path = shutil.which(name, path=search_path)
    if path is None:
        pytest.fail(
            f"`{name}` is not installed. This system test needs Debian's `{package}` package: "
            f"apt-get install -y --no-install-recommends {package}",
            pytrace=False,
        )
    return path


class SshServer:
    """sshd on a free loopback port with its own config, host key and one throwaway client
    key, for the current user. Sessions get `home` as HOME, so what a cluster launcher writes
    to `~` lands in the test's directory, not the user's home."""

    def __init__(self, *, directory: Path, home: Path) -> None:
        sshd = require_program("sshd", package="openssh-server")
        keygen = require_program("ssh-keygen", package="openssh-client")
        directory.mkdir(mode=0o700, parents=True)
        home.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.user = getpass.getuser()
        self.port = free_port()
        self.client_key = directory / "client_key"
        for key in (self.client_key, directory / "host_key"):
            subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        authorized = directory / "authorized_keys"
        shutil.copy(self.client_key.with_suffix(".pub"), authorized)
        authorized.chmod(0o600)
        config = directory / "sshd_config"
        config.write_text(
            f"Port {self.port}\n"
            "ListenAddress 127.0.0.1\n"
            f"HostKey {directory / 'host_key'}\n"
            f"PidFile {directory / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {authorized}\n"
            f"AllowUsers {self.user}\n"
            "PubkeyAuthentication yes\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "UsePAM no\n"
            "PermitRootLogin prohibit-password\n"
            "StrictModes no\n"  # its files sit under the world-writable temp directory
            f"SetEnv HOME={home}\n"
        )
        if os.geteuid() == 0:
            # sshd started as root insists on its privilege-separation directory, which the
            # packaged service would create at boot.
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.log_path = directory / "sshd.log"
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(
                [sshd, "-D", "-e", "-f", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_listening()

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise AssertionError(f"sshd exited at startup:\n{self.log()}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise AssertionError(f"sshd not listening on {self.port}:\n{self.log()}")

    @property
    def proxy_command(self) -> str:
        """An SSH ProxyCommand that reaches this server (Ray has no SSH port setting)."""
        return (
            f"{sys.executable} {REPO / 'tests' / 'system' / 'tcp_relay.py'} 127.0.0.1 {self.port}"
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait()
