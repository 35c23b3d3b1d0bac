"""The "ready — overlay: …" line of `owc run`, and the reminder while capture waits for OBS.

Standard library only: the keeper (:mod:`services.runner.keeper`) says it in processes mode.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.request

log = logging.getLogger("owc.run")

OBS_REMINDER_S = 30.0


def announce_when_up(host: str, port: int, channel: str, stop: threading.Event, obs: str | None = None) -> None:
    """Say where the pages are once the gateway answers; then, while capture waits for OBS
    (``obs`` is its address, None for a replay), remind every ~30 s instead of going silent."""
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base = f"http://{shown_host}:{port}"
    while not stop.wait(0.3):
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=1) as resp:
                if resp.status == 200:
                    break
        except OSError:
            continue
    else:
        return
    suffix = "" if channel == "default" else f"?channel={channel}"
    log.info("ready — overlay: %s/overlay%s   admin: %s/admin%s", base, suffix, base, suffix)
    if obs is None:
        return
    status = f"{base}/api/v1/channels/{channel}/status"
    while not stop.wait(OBS_REMINDER_S):
        try:
            with urllib.request.urlopen(status, timeout=2) as resp:
                health = json.load(resp).get("health") or {}
        except (OSError, ValueError):
            continue
        if health.get("obs_connected") is False:
            log.info("waiting for OBS at %s (%s): open %s/admin%s for details",
                     obs, health.get("capture_error") or "not connected yet", base, suffix)
