"""The HTTP server behind a job's `/metrics`: loopback only unless the user opts in.

A taken port stops the job before any trial starts, rather than letting it run unobserved.
The server checks for shutdown every `POLL_INTERVAL_S` (the standard library's 0.5 s would add
a quarter of a second, on average, to the end of every job).
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
import threading
from types import TracebackType
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from orchestrator.monitor.exporter import ExporterError

log = logging.getLogger(__name__)

# 9464 is the port OpenTelemetry's Prometheus exporter conventionally uses; Ray (8265, 6379,
# 8080, 10001, its metrics export port), Prometheus (9090) and Grafana (3000) leave it free.
DEFAULT_METRICS_PORT = 9464
_LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})
#: How often the serving thread checks whether it should stop.
POLL_INTERVAL_S = 0.02


class MetricsPortError(ExporterError):
    """The metrics port is taken; the job must not run without metrics."""


class MetricsServer:
    """The HTTP server behind `/metrics`; close it when the job ends."""

    def __init__(self, *, server: WSGIServer, thread: threading.Thread, host: str) -> None:
        self._server = server
        self._thread = thread
        self.host = host
        self.port: int = server.server_address[1]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def start_metrics_server(
    *,
    registry: CollectorRegistry,
    host: str = "127.0.0.1",
    port: int = DEFAULT_METRICS_PORT,
    allow_public: bool = False,
) -> MetricsServer:
    """Serve `registry` on http://host:port/metrics from a daemon thread.

    Port 0 picks a free port (see `.port`). A taken port raises `MetricsPortError` rather than
    letting the job run unobserved. Binding beyond loopback needs `allow_public`, since anyone
    who reaches the port learns what the cluster is doing.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ExporterError(f"--metrics-port: must be an integer in 0..65535 (got {port!r})")
    if not is_loopback(host) and not allow_public:
        raise ExporterError(
            f"--metrics-host: {host!r} is not a loopback address; metrics are served on "
            "loopback only unless you explicitly allow a public address"
        )
    try:
        server, thread = _serve(registry, host=host, port=port)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise MetricsPortError(
                f"metrics port {port} on {host} is already in use; choose a free one with "
                f"--metrics-port (for example --metrics-port {port + 1 if port < 65535 else 0}) "
                "or stop the process that holds it"
            ) from error
        raise ExporterError(
            f"cannot serve metrics on {host}:{port} ({error.strerror or error}); "
            "check --metrics-host and --metrics-port"
        ) from error
    metrics_server = MetricsServer(server=server, thread=thread, host=host)
    if is_loopback(host):
        log.info("serving metrics on %s", metrics_server.url)
    else:
        log.warning(
            "serving metrics on %s, reachable beyond this machine; restrict access to it",
            metrics_server.url,
        )
    return metrics_server


def _serve(
    registry: CollectorRegistry, *, host: str, port: int
) -> tuple[WSGIServer, threading.Thread]:
    """prometheus_client's WSGI server (a thread per scrape), on host's address family, served
    from a daemon thread that polls for shutdown every `POLL_INTERVAL_S`."""
    family, _, _, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]

    class Server(ThreadingWSGIServer):
        address_family = family

    server = make_server(
        address[0], port, make_wsgi_app(registry), Server, handler_class=_QuietHandler
    )
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": POLL_INTERVAL_S},
        name="openamt-metrics",
        daemon=True,
    )
    thread.start()
    return server, thread


class _QuietHandler(WSGIRequestHandler):
    """Scrapes are not logged: one every few seconds would drown the job's own log."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib's name)
        return


def is_loopback(host: str) -> bool:
    """True for names and addresses that only this machine can reach."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
