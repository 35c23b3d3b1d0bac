"""The whole stack in one process tree: Redis (embedded unless configured) and every service.

``owc run`` and ``owc demo`` run it; so do the whole-stack benches.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from services.common.cliargs import child_environment, fail

if TYPE_CHECKING:
    from services.common.settings import Settings
    from services.runner.supervisor import Supervisor

log = logging.getLogger("owc.run")

SERVICE_ORDER = ("state", "actions", "gateway", "inference", "capture")


OBS_REMINDER_S = 30.0


def _announce_when_up(host: str, port: int, channel: str, stop: threading.Event, obs: str | None = None) -> None:
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


def run_stack(
    settings: Settings,
    passthrough: list[str],
    stop: threading.Event | None = None,
    on_started: Callable[[Supervisor, str], None] | None = None,
) -> int:
    """Run Redis (embedded unless configured) and the services until ``stop``.

    ``passthrough`` are the configuration flags for every service; the
    ``--set`` ones reach the children as ``OWC_…`` environment variables, never
    on their command lines (see :func:`child_environment`).
    ``on_started(supervisor, redis_url)`` runs in a thread once everything is
    started (``owc demo --once`` watches the pipeline from there).
    """
    # Imported here so `owc --help` stays light.
    import redis

    from services.common.lifecycle import stop_on_signals
    from services.common.redact import mask_credentials
    from services.common.redisio import RedisUnavailableError, check_version
    from services.common.settings import env_var_name, home, under_home
    from services.runner.embedded_redis import EmbeddedRedisError, pick_port, redis_spec
    from services.runner.supervisor import ChildSpec, Supervisor

    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        stop_on_signals(stop)
    log.info("home %s: owc.toml, custom.css and data/ are looked for there (set OWC_HOME for another folder)",
             home())

    specs: list[ChildSpec] = []
    extra, env = child_environment(passthrough)
    url = settings.redis.url
    if not url:
        try:
            port = pick_port(settings)
            specs.append(redis_spec(settings, port))
        except EmbeddedRedisError as exc:
            fail(str(exc))
        url = f"redis://127.0.0.1:{port}/0"
        env[env_var_name("redis.url")] = url
        data = under_home(Path(settings.redis.data_dir)).resolve()
        log.info("embedded Redis on 127.0.0.1:%d, data in %s%s", port, data,
                 "" if (data / "appendonlydir").exists() else " (new: no counts yet)")
    else:
        log.info("using Redis at %s", mask_credentials(url))

    owc = [sys.executable, "-m", "services"]
    from services.actions.cli import action_names

    actions = action_names(settings)
    if actions:
        log.info("match-end actions: %s", ", ".join(actions))
    else:
        log.info("no match-end actions configured (webhooks, chat, OBS: docs/actions.md); not starting `actions`")
    for service in SERVICE_ORDER:
        if service == "actions" and not actions:
            continue
        if service == "inference":
            for i in range(settings.run.workers):
                name = "inference" if settings.run.workers == 1 else f"inference-{i + 1}"
                worker_env = dict(env)
                if settings.inference.metrics_port:
                    port_var = env_var_name("inference.metrics_port")
                    worker_env[port_var] = str(settings.inference.metrics_port + 10 * i)
                specs.append(ChildSpec(name, [*owc, "inference", *extra], env=worker_env))
        elif service == "capture":
            # a replay that is not looping ends by itself: that is not a crash
            finite = settings.capture.source.startswith("replay:") and not settings.capture.loop
            specs.append(
                ChildSpec(service, [*owc, service, *extra], env=env, restart="on-failure" if finite else "always")
            )
        else:
            specs.append(ChildSpec(service, [*owc, service, *extra], env=env))

    sup = Supervisor(specs, stop, backoff_max_s=settings.run.restart_backoff_max_s)
    if not settings.redis.url:
        sup.start({"redis"})
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 20
        while True:
            try:
                version = check_version(client)
                log.info("Redis %s is up", version)
                break
            except RedisUnavailableError as exc:
                sup.shutdown()
                fail(str(exc))
            except redis.RedisError:
                if time.monotonic() > deadline or stop.is_set():
                    sup.shutdown()
                    fail(f"the embedded Redis did not start on {url}; see the 'redis |' lines above")
                sup.poll_once()
                time.sleep(0.1)
        client.close()
    sup.start({s.name for s in specs if s.name != "redis"})
    threading.Thread(
        target=_announce_when_up,
        args=(settings.gateway.host, settings.gateway.port, settings.capture.channel, stop,
              None if settings.capture.source.startswith("replay:") else f"ws://{settings.obs.host}:{settings.obs.port}"),
        daemon=True,
    ).start()
    if on_started is not None:
        threading.Thread(target=on_started, args=(sup, url), daemon=True).start()
    sup.run()
    return 0
