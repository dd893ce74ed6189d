"""Relay stdin/stdout to a TCP port: an SSH `ProxyCommand` that reaches sshd on a chosen port.

Ray's cluster launcher has no SSH port setting, only `auth.ssh_proxy_command`, so the `ray up`
test points that at `python tcp_relay.py 127.0.0.1 PORT` (what `nc 127.0.0.1 PORT` does, with
the standard library only).

    python tests/system/tcp_relay.py HOST PORT
"""

from __future__ import annotations

import socket
import sys
import threading

CHUNK_BYTES = 65536


def relay(host: str, port: int) -> None:
    """Copy stdin to the socket and the socket to stdout until the server closes."""
    connection = socket.create_connection((host, port), timeout=30)
    connection.settimeout(None)
    upstream = threading.Thread(target=_stdin_to_socket, args=(connection,), daemon=True)
    upstream.start()
    stdout = sys.stdout.buffer
    while chunk := connection.recv(CHUNK_BYTES):
        stdout.write(chunk)
        stdout.flush()
    connection.close()


def _stdin_to_socket(connection: socket.socket) -> None:
    stdin = sys.stdin.buffer.raw
    try:
        while chunk := stdin.read(CHUNK_BYTES):
            connection.sendall(chunk)
        connection.shutdown(socket.SHUT_WR)  # ssh closed its end: tell the server
    except OSError:
        return  # the server went away first; the main loop sees it too


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: tcp_relay.py HOST PORT", file=sys.stderr)
        return 2
    relay(argv[0], int(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
