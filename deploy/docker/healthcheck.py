#!/usr/bin/env python3
"""Container health check shared by every ``owc`` service (the image's HEALTHCHECK).

Every service serves Prometheus ``/metrics`` over HTTP: capture, inference and
state on their ``<service>.metrics_port``, the gateway on its HTTP port (and
``owc run`` on all of them). Inside a container the network namespace is the
container's own, so ``/proc/net/tcp{,6}`` lists exactly the sockets the
service listens on. The check asks each listening port for ``GET /metrics``
and is healthy as soon as one answers 200. It therefore needs no knowledge of
the configuration (flags, ``OWC_…`` variables or ``owc.toml``) and imports only
the standard library, so it costs a few tens of milliseconds per run.

Exit 0: healthy. Exit 1: unhealthy (one line on stdout says why; Docker keeps
it in ``docker inspect``).
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path

LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp
PROC_NET = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))


def _decode_addr(hex_addr: str) -> str:
    """``0100007F`` -> ``127.0.0.1`` (IPv4 in /proc is little-endian); IPv6 -> ``::1``-style host."""
    if len(hex_addr) == 8:
        octets = [str(int(hex_addr[i : i + 2], 16)) for i in range(6, -2, -2)]
        return ".".join(octets)
    # IPv6: four little-endian 32-bit words
    words = [hex_addr[i : i + 8] for i in range(0, 32, 8)]
    raw = b"".join(bytes.fromhex(w)[::-1] for w in words)
    import ipaddress

    return str(ipaddress.IPv6Address(raw))


def listening(tables: Iterable[str]) -> list[tuple[str, int]]:
    """``(host to connect to, port)`` for every LISTEN socket in /proc/net/tcp-style tables."""
    found: list[tuple[str, int]] = []
    for text in tables:
        for line in text.splitlines()[1:]:
            fields = line.split()
            if len(fields) < 4 or fields[3] != LISTEN:
                continue
            hex_addr, _, hex_port = fields[1].partition(":")
            host = _decode_addr(hex_addr)
            if host in ("0.0.0.0", "::", "::ffff:0.0.0.0"):
                host = "127.0.0.1"
            elif ":" in host:
                host = host.removeprefix("::ffff:") if host.startswith("::ffff:") else f"[{host}]"
            pair = (host, int(hex_port, 16))
            if pair not in found:
                found.append(pair)
    return found


def metrics_ok(host: str, port: int, timeout: float = 3.0) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=timeout) as resp:
            return int(resp.status) == 200
    except (OSError, urllib.error.HTTPError, ValueError):
        return False


def check(targets: Iterable[tuple[str, int]], timeout: float = 3.0) -> tuple[bool, str]:
    targets = list(targets)
    if not targets:
        return False, "unhealthy: the container listens on no TCP port (is <service>.metrics_port 0?)"
    for host, port in targets:
        if metrics_ok(host, port, timeout):
            return True, f"healthy: http://{host}:{port}/metrics answered 200"
    shown = ", ".join(f"{h}:{p}" for h, p in targets)
    return False, f"unhealthy: no listening port answered GET /metrics with 200 ({shown})"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv:  # explicit ports (manual use / tests): healthcheck.py 9101 [HOST:]PORT …
        targets = []
        for arg in argv:
            host, _, port = arg.rpartition(":")
            targets.append((host or "127.0.0.1", int(port)))
    else:
        tables = [p.read_text() for p in PROC_NET if p.exists()]
        targets = listening(tables)
    ok, message = check(targets)
    print(message)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
