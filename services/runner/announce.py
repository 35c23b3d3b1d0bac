"""The "ready — overlay: …" line of `owc run`, and the reminder while capture waits for OBS.

Standard library only: the keeper (:mod:`services.runner.keeper`) says it in processes mode.
"""

from __future__ import annotations

import json
import logging
import socket
import threading

log = logging.getLogger("owc.run")


def http_get(host: str, port: int, path: str, timeout_s: float) -> tuple[int, bytes]:
    """``(status, body)`` of a plain ``GET`` (HTTP/1.0: the server closes when done).

    A socket, not urllib: urllib/http.client load ssl and email, +8 MB in the keeper,
    whose whole point is to be small. Raises OSError when nothing answers.
    """
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        shown = f"[{host}]" if ":" in host else host
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {shown}:{port}\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise OSError(f"not an HTTP answer from {host}:{port}")
    return int(parts[1]), body

OBS_REMINDER_S = 30.0  # the first reminder; then twice as long each time, up to OBS_REMINDER_MAX_S
OBS_REMINDER_MAX_S = 300.0  # each look is a status request to the gateway (most of an idle stack's HTTP work)


def announce_when_up(host: str, port: int, channel: str, stop: threading.Event, obs: str | None = None) -> None:
    """Say where the pages are once the gateway answers; then, while capture waits for OBS
    (``obs`` is its address, None for a replay), remind after ~30 s, then less and less often (up to
    every 5 min) instead of going silent."""
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base = f"http://{shown_host}:{port}"
    while not stop.wait(0.3):
        try:
            if http_get(shown_host, port, "/healthz", 1.0)[0] == 200:
                break
        except OSError:
            continue
    else:
        return
    suffix = "" if channel == "default" else f"?channel={channel}"
    log.info("ready — overlay: %s/overlay%s   admin: %s/admin%s", base, suffix, base, suffix)
    if obs is None:
        return
    status = f"/api/v1/channels/{channel}/status"
    every = OBS_REMINDER_S
    while not stop.wait(every):
        every = min(every * 2, max(OBS_REMINDER_S, OBS_REMINDER_MAX_S))
        try:
            code, body = http_get(shown_host, port, status, 2.0)
            health = json.loads(body).get("health") or {} if code == 200 else {}
        except (OSError, ValueError):
            continue
        if health.get("obs_connected") is True:
            every = OBS_REMINDER_S  # OBS is there: a later wait is reminded of soon again
        elif health.get("obs_connected") is False:
            log.info("waiting for OBS at %s (%s): open %s/admin%s for details",
                     obs, health.get("capture_error") or "not connected yet", base, suffix)
