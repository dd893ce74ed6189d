"""Fixtures that start real external programs: a Prometheus server and headless Chromium.

The binaries come from Debian's `prometheus` and `chromium` packages, which `make test` installs
first (.ci/system-packages), or stops before any test with the command that does. When one is
missing all the same (pytest run directly) the test fails, never skips, with that command, so CI
cannot pass without them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
STARTUP_TIMEOUT_S = 30


def require_binary(name: str, *, package: str) -> str:
    """The program's path (sbin directories included, as .ci/system-packages looks), or a test
    failure saying how to install it."""
    path = shutil.which(
        name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    )
    if path is None:
        pytest.fail(
            f"`{name}` is not installed. This system test needs Debian's `{package}` package: "
            "`make system-packages` installs it (as root or with sudo without a password), or "
            "run: sudo apt-get update && "
            f"sudo apt-get install -y --no-install-recommends {package}",
            pytrace=False,
        )
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrometheusServer:
    """A Prometheus process on loopback with a temporary config and data directory."""

    def __init__(self, *, binary: str, config: dict[str, Any], workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log_path = workdir / "prometheus.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen(
            [
                binary,
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise AssertionError(f"prometheus exited at startup:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"prometheus not ready after {STARTUP_TIMEOUT_S}s:\n{self.log()}")

    def api(self, endpoint: str, **params: Any) -> dict[str, Any]:
        """GET /api/v1/<endpoint>; returns the JSON body whatever the HTTP status."""
        url = f"{self.url}/api/v1/{endpoint}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:  # 400/422 carry the PromQL error as JSON
            return json.load(error)

    def query_range(self, expr: str, *, start: float, end: float, step: float = 1.0) -> Any:
        """The `data` of a range query; raises with Prometheus's message if it is rejected."""
        body = self.api("query_range", query=expr, start=start, end=end, step=step)
        if body.get("status") != "success":
            raise AssertionError(f"Prometheus rejected {expr!r}: {body.get('error')}")
        return body["data"]

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._log.close()


def shipped_config_for(*, exporter_port: int, scrape_interval: str = "1s") -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml, scraping `exporter_port` every `scrape_interval`."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"]["scrape_interval"] = scrape_interval
    config["global"]["evaluation_interval"] = scrape_interval
    for job in config["scrape_configs"]:
        if job["job_name"] == "openamt":
            job["static_configs"] = [{"targets": [f"127.0.0.1:{exporter_port}"]}]
    return config


@pytest.fixture
def prometheus_binary() -> str:
    return require_binary("prometheus", package="prometheus")


@pytest.fixture
def start_prometheus(prometheus_binary: str, tmp_path: Path) -> Iterator[Any]:
    """Call with the exporter's port: a Prometheus running the shipped config, stopped after."""
    servers: list[PrometheusServer] = []

    def start(exporter_port: int) -> PrometheusServer:
        server = PrometheusServer(
            binary=prometheus_binary,
            config=shipped_config_for(exporter_port=exporter_port),
            workdir=tmp_path / f"prometheus{len(servers)}",
        )
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def metrics_port() -> int:
    """A loopback port free right now, for an exporter the test starts in another process."""
    return free_port()


@pytest.fixture
def chromium_binary() -> str:
    return require_binary("chromium", package="chromium")


@dataclass(frozen=True)
class PageInspection:
    """What headless Chromium saw after loading a page."""

    images: list[dict[str, Any]]  # per <img>: complete, naturalWidth, naturalHeight, alt
    errors: list[str]  # console errors, uncaught exceptions, failed loads
    screenshot_png: bytes


class HeadlessChromium:
    """Chromium driven over the DevTools protocol (a websocket; aiohttp comes with Ray)."""

    def __init__(self, *, binary: str, workdir: Path) -> None:
        profile = workdir / "profile"
        profile.mkdir(parents=True)
        self.log_path = workdir / "chromium.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--enable-logging=stderr",
                "about:blank",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.port = self._wait_for_port(profile / "DevToolsActivePort")

    def _wait_for_port(self, port_file: Path) -> int:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise AssertionError(f"chromium exited at startup:\n{self.log()}")
            if port_file.exists() and port_file.read_text().strip():
                return int(port_file.read_text().split()[0])
            time.sleep(0.1)
        raise AssertionError(f"chromium gave no DevTools port in {STARTUP_TIMEOUT_S}s")

    def inspect(self, url: str, *, width: int = 1200, height: int = 2400) -> PageInspection:
        """Load `url`, wait for its load event, then report its images, errors and a screenshot."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=10) as r:
            pages = [t for t in json.load(r) if t["type"] == "page"]
        return asyncio.run(_inspect(pages[0]["webSocketDebuggerUrl"], url, width, height))

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._log.close()


class _DevTools:
    """One websocket session: numbered commands, and the events that arrive meanwhile."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self._socket = socket
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        await self._socket.send_json({"id": self._next_id, "method": method, "params": params})
        while True:
            message = await self._receive()
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise AssertionError(f"DevTools {method} failed: {message['error']}")
                return message["result"]
            self.events.append(message)

    async def wait_for_event(self, method: str) -> None:
        while not any(event.get("method") == method for event in self.events):
            self.events.append(await self._receive())

    async def _receive(self) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self._socket.receive_str(), STARTUP_TIMEOUT_S))


_IMAGES_JS = """JSON.stringify(Array.from(document.images).map(i => ({
    alt: i.alt, complete: i.complete, naturalWidth: i.naturalWidth,
    naturalHeight: i.naturalHeight})))"""


async def _inspect(ws_url: str, url: str, width: int, height: int) -> PageInspection:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(ws_url, max_msg_size=0) as socket,
    ):
        devtools = _DevTools(socket)
        for domain in ("Page", "Runtime", "Log"):
            await devtools.call(f"{domain}.enable")
        await devtools.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        navigation = await devtools.call("Page.navigate", url=url)
        if navigation.get("errorText"):
            raise AssertionError(f"navigation to {url} failed: {navigation['errorText']}")
        await devtools.wait_for_event("Page.loadEventFired")
        evaluated = await devtools.call("Runtime.evaluate", expression=_IMAGES_JS)
        images = json.loads(evaluated["result"]["value"])
        shot = await devtools.call("Page.captureScreenshot", format="png")
        return PageInspection(
            images=images,
            errors=_errors(devtools.events),
            screenshot_png=base64.b64decode(shot["data"]),
        )


def _errors(events: list[dict[str, Any]]) -> list[str]:
    errors = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append(f"console.{params['type']}: {params.get('args')}")
        elif method == "Runtime.exceptionThrown":
            errors.append(f"exception: {params.get('exceptionDetails')}")
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            errors.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
    return errors


@pytest.fixture
def chromium(chromium_binary: str, tmp_path: Path) -> Iterator[HeadlessChromium]:
    browser = HeadlessChromium(binary=chromium_binary, workdir=tmp_path / "chromium")
    yield browser
    browser.stop()
