"""Local TCP ports: is this one free, and pick any free one.

``owc run`` and ``owc demo`` use them for the embedded Redis and the gateway;
the benches and the tests use :func:`free_port` for everything they start.
"""

from __future__ import annotations

import socket


def port_free(host: str, port: int) -> bool:
    """True when a server could listen on ``host:port`` now.

    With ``SO_REUSEADDR``, as redis-server and uvicorn bind: connections of a
    previous run lingering in TIME_WAIT (about a minute after a restart) do not
    make the port look taken; a live listener does.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on at ``host`` right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class PreflightError(RuntimeError):
    """A refusal, already phrased as the one line to show."""


def check_gateway_port(host: str, port: int) -> None:
    if port_free(host, port):
        return
    raise PreflightError(
        f"port {port} on {host} is already in use by another program, so the gateway cannot start: "
        f"stop that program, or give the gateway a free port (gateway.port in owc.toml, "
        f"OWC_GATEWAY__PORT={port + 10}, or --set gateway.port={port + 10})"
    )
