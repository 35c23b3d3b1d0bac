"""The whole stack: Redis (embedded unless configured) and every service, in one process or many.

``owc run`` and ``owc demo`` run it; so do the whole-stack benches.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.common.cli.cliargs import child_environment, fail
from services.runner.announce import announce_when_up

if TYPE_CHECKING:
    from services.common.config.settings import Loaded, Settings
    from services.runner.supervisor import ChildSpec, Supervisor

log = logging.getLogger("owc.run")

SERVICE_ORDER = ("state", "actions", "gateway", "inference", "capture")


METRICS_PORT_KEYS = ("capture.metrics_port", "inference.metrics_port", "state.metrics_port",
                     "actions.metrics_port")


def run_stack(
    loaded: Loaded,
    passthrough: list[str],
    stop: threading.Event | None = None,
    on_started: Callable[[Any, str], None] | None = None,
    *,
    processes: bool = False,
    keeper: bool = False,
) -> int:
    """Run Redis (embedded unless configured) and the services until ``stop``.

    Three shapes, one set of services talking through Redis:

    - one process (default): every service is a thread of this process (:mod:`services.runner.host`);
    - ``keeper=True`` (`owc run`): the same one process, as a child of a stdlib-only keeper that
      this process *becomes* (``exec``) and that restarts it if it dies (:mod:`services.runner.keeper`);
    - ``processes=True`` (`owc run --processes`): one supervised child process per service (with
      ``keeper=True``, supervised by the keeper too, so the supervisor carries no settings library).

    ``passthrough`` are the configuration flags for every service; the ``--set`` ones reach the
    children as ``OWC_…`` environment variables, never on their command lines (see
    :func:`child_environment`). ``on_started(supervisor or host, redis_url)`` runs in a thread once
    everything is started (``owc demo --once`` watches the pipeline from there); both have
    ``running(name)``.
    """
    # Imported here so `owc --help` stays light.
    from services.common.config.redact import mask_credentials
    from services.common.config.settings import env_var_name, home, under_home
    from services.common.infra.lifecycle import stop_on_signals
    from services.runner.embedded_redis import EmbeddedRedisError, pick_port, redis_spec, socket_path
    from services.runner.preflight import PreflightError, check_gateway_port, lock_data_dir
    from services.runner.supervisor import ChildSpec

    settings = loaded.settings
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        stop_on_signals(stop)
    log.info("home %s: owc.toml, custom.css and data/ are looked for there (set OWC_HOME for another folder)",
             home())

    specs: list[ChildSpec] = []
    extra, env = child_environment(passthrough)
    url = settings.redis.url
    lock_fd: int | None = None
    try:
        check_gateway_port(settings.gateway.host, settings.gateway.port)
        if not url:
            data = under_home(Path(settings.redis.data_dir)).resolve()
            lock_fd = lock_data_dir(data)
    except PreflightError as exc:
        fail(str(exc))
    if not url:
        try:
            port = pick_port(settings)
            spec = redis_spec(settings, port)
        except EmbeddedRedisError as exc:
            fail(str(exc))
        # the embedded Redis holds the data folder's lock too: while it runs, nobody starts another
        spec.pass_fds = () if lock_fd is None else (lock_fd,)
        specs.append(spec)
        sock = socket_path(settings)
        # the services use the Unix socket when there is one (cheaper a round trip); the port stays open
        url = f"redis://127.0.0.1:{port}/0" if sock is None else f"unix://{sock}?db=0"
        env[env_var_name("redis.url")] = url
        log.info("embedded Redis on 127.0.0.1:%d%s, data in %s%s", port, "" if sock is None else f" and {sock}",
                 data, "" if (data / "appendonlydir").exists() else " (new: no counts yet)")
    else:
        log.info("using Redis at %s", mask_credentials(url))

    from services.actions.cli import action_names, check_actions

    actions = action_names(settings)
    if actions:
        problem = check_actions(settings)
        if problem:
            fail(problem)
        log.info("match-end actions: %s", ", ".join(actions))
    else:
        log.info("no match-end actions configured (webhooks, chat, OBS: docs/actions.md); not starting `actions`")
    owc = [sys.executable, "-m", "services"]
    if processes:
        specs += _service_specs(settings, owc, extra, env, bool(actions))
    elif keeper:
        specs.append(ChildSpec("stack", [sys.executable, "-m", "services.runner.inproc", *extra], env=env))
    if keeper:
        from services.runner.keeper import exec_keeper

        # one process: the stack process says "ready" itself (again after a restart)
        exec_keeper(specs, settings.run.restart_backoff_max_s, settings.log.level,
                    _announcement(settings) if processes else None)  # does not return

    try:
        return _supervise(loaded, specs, stop, url, on_started, processes=processes, with_actions=bool(actions))
    finally:
        if lock_fd is not None:  # the lock ends with the run (the embedded Redis has stopped)
            os.close(lock_fd)


def _supervise(loaded: Loaded, specs: list[ChildSpec], stop: threading.Event, url: str,
               on_started: Callable[[Any, str], None] | None, *, processes: bool, with_actions: bool) -> int:
    import redis

    from services.common.infra.redisio import RedisUnavailableError, check_version
    from services.runner.supervisor import RestartBackoff, Supervisor

    settings = loaded.settings
    sup = Supervisor(specs, stop, backoff=RestartBackoff(max_s=settings.run.restart_backoff_max_s))
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
    if not processes:
        try:
            with_url = settings.model_copy(update={"redis": settings.redis.model_copy(update={"url": url})})
            return host_stack(dataclasses.replace(loaded, settings=with_url), stop, on_started,
                              with_actions=with_actions, supervisor=sup)
        finally:
            sup.shutdown()
    sup.start({s.name for s in specs if s.name != "redis"})
    _announce(settings, stop)
    if on_started is not None:
        threading.Thread(target=on_started, args=(sup, url), daemon=True).start()
    sup.run()
    return 0


def _announcement(settings: Settings) -> dict[str, Any]:
    """What the "ready — overlay: …" line needs (:func:`announce_when_up`'s arguments but ``stop``)."""
    obs = None if settings.capture.source.startswith("replay:") else f"ws://{settings.obs.host}:{settings.obs.port}"
    return {"host": settings.gateway.host, "port": settings.gateway.port, "channel": settings.capture.channel,
            "obs": obs}


def _announce(settings: Settings, stop: threading.Event) -> None:
    threading.Thread(target=announce_when_up, kwargs={**_announcement(settings), "stop": stop}, daemon=True).start()


def _service_specs(settings: Settings, owc: list[str], extra: list[str], env: dict[str, str],
                   with_actions: bool) -> list[ChildSpec]:
    """`owc run --processes`: one child process per service."""
    from services.common.config.settings import env_var_name
    from services.runner.supervisor import ChildSpec

    specs: list[ChildSpec] = []
    for service in SERVICE_ORDER:
        if service == "actions" and not with_actions:
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
    return specs


def host_stack(
    loaded: Loaded,
    stop: threading.Event,
    on_started: Callable[[Any, str], None] | None = None,
    *,
    with_actions: bool | None = None,
    supervisor: Supervisor | None = None,
) -> int:
    """Every service as a thread of this process, on the Redis at ``redis.url``, until ``stop``.

    ``supervisor`` (the embedded Redis's, when this process started it) is polled: a Redis that
    dies is restarted as in processes mode.
    """
    from services.actions.cli import action_names
    from services.common.cli.cliargs import redis_for
    from services.common.infra.redisio import RedisUnavailableError, check_version
    from services.runner.host import ServiceHost, stack_services
    from services.runner.supervisor import RestartBackoff

    settings = loaded.settings
    client, _keys = redis_for(settings, 30.0)
    try:
        check_version(client)
    except RedisUnavailableError as exc:
        fail(str(exc))
    finally:
        client.close()
    if with_actions is None:
        with_actions = bool(action_names(settings))
    _say_what_does_not_apply(loaded, with_actions)
    host = ServiceHost(stack_services(loaded, with_actions), stop,
                       backoff=RestartBackoff(max_s=settings.run.restart_backoff_max_s))
    host.start()
    _announce(settings, stop)
    if on_started is not None:
        threading.Thread(target=on_started, args=(host, settings.redis.url or ""), daemon=True).start()
    try:
        while not stop.wait(0.5 if supervisor is not None else 5.0):
            if supervisor is not None:
                supervisor.poll_once()
    finally:
        stop.set()
        host.join()
        log.info("all services stopped" if supervisor is None else "every service thread stopped")
    return 0


def _say_what_does_not_apply(loaded: Loaded, with_actions: bool) -> None:
    """Settings that one-process mode accepts but does not use: said once, never an error."""
    port = loaded.settings.gateway.port
    shown = "127.0.0.1" if loaded.settings.gateway.host in ("0.0.0.0", "::") else loaded.settings.gateway.host
    given = [k for k in METRICS_PORT_KEYS if loaded.sources.get(k, "default") != "default"]
    log.info("one process: capture, inference ×%d, state, gateway%s as threads; every service's metrics on "
             "http://%s:%d/metrics", loaded.settings.run.workers,
             ", actions" if with_actions else "",
             shown, port)
    if given:
        log.info("%s: not used in one process (the gateway's /metrics carries every service's metrics); "
                 "they apply to `owc run --processes` and to a service run on its own", ", ".join(given))
