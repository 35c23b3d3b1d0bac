"""The embedded redis-server that ``owc run`` starts when no redis.url is given."""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

from services.common.config.settings import Settings, under_home
from services.common.infra.ports import free_port, port_free
from services.runner.supervisor import ChildSpec

log = logging.getLogger("owc.run")


class EmbeddedRedisError(RuntimeError):
    pass


def pick_port(settings: Settings) -> int:
    port = settings.redis.embedded_port
    if port == 0:
        return free_port()
    if not port_free("127.0.0.1", port):
        raise EmbeddedRedisError(
            f"port {port} on 127.0.0.1 is already in use, so the embedded Redis cannot start: "
            "stop the other program, set redis.embedded_port to a free port (0 = any), "
            "or point redis.url at a running Redis"
        )
    return port


SOCKET_NAME = "redis.sock"
MAX_SOCKET_PATH = 100  # sun_path holds 104-108 bytes, depending on the system


def socket_path(settings: Settings) -> Path | None:
    """Where the embedded Redis also listens on a Unix socket (in its private data folder), or None.

    The services ``owc run`` starts talk to it there: a round trip costs Redis and the client about a
    quarter less CPU than over TCP on 127.0.0.1 (a frame is four of them). The TCP port stays open for
    everything else (``owc state export``, ``redis-cli -p``). None on Windows or when the path is too long
    for a socket: TCP then, as before.
    """
    if sys.platform.startswith("win"):
        return None
    path = under_home(Path(settings.redis.data_dir)).resolve() / SOCKET_NAME
    return path if len(os.fsencode(path)) <= MAX_SOCKET_PATH else None


QUIET_HZ, LEASE_SAFE_HZ = 2, 5


def timer_hz(settings: Settings) -> int:
    """How often a second the embedded Redis runs its timer (``hz``): 2, or 5 for a short state lease.

    The timer (expiring keys, answering blocking reads whose time is up, the AOF's fsync every second) is
    most of an idle Redis' CPU, ~0.015% of a core per run a second on this machine: 10 (Redis' default)
    0.145%, 5 0.074%, 2 0.029%. What it costs: a blocking read's timeout can end up to 1/hz late when
    nothing else happens meanwhile (a new entry still wakes a reader at once, and any command makes Redis
    look at the timeouts, so on a live feed they are on time). Nobody waits on one for a result; the one
    that matters is the state writer's wake-up to renew its lease (every third of ``state.lease_ttl_ms``):
    late by up to 500 ms it must still come before the lease ends, which holds with a 1.5 s margin for the
    default 5 s lease; a lease shorter than 1.5 s keeps 5 runs a second (200 ms).
    """
    return QUIET_HZ if settings.state.lease_ttl_ms >= 1500 else LEASE_SAFE_HZ


def redis_spec(settings: Settings, port: int) -> ChildSpec:
    binary = shutil.which(settings.redis.server_bin)
    if binary is None:
        raise EmbeddedRedisError(
            f"{settings.redis.server_bin!r} was not found: install Redis 6.2+ "
            "(`make setup` does it: apt-get install redis-server), set redis.server_bin to its path, "
            "or point redis.url (OWC_REDIS__URL) at a running Redis"
        )
    data_dir = under_home(Path(settings.redis.data_dir)).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    make_private(data_dir)
    argv = [
        binary,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--protected-mode", "yes",
        "--dir", str(data_dir),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",
        "--hz", str(timer_hz(settings)),
        "--daemonize", "no",
        "--loglevel", "warning",
    ]
    sock = socket_path(settings)
    if sock is not None:  # redis-server replaces a socket file a killed run left behind
        argv += ["--unixsocket", str(sock), "--unixsocketperm", "600"]
    # umask 077: the AOF files redis-server creates are 0600 in 0700 directories (the counts, the
    # history and any admin notes are nobody else's business on a shared machine)
    return ChildSpec("redis", argv, stop_last=True, umask=0o077)


def make_private(data_dir: Path) -> None:
    """``chmod go=`` the data directory and what an older version left in it (0644 files in 0755)."""
    try:
        os.chmod(data_dir, 0o700)
        for path in data_dir.rglob("*"):
            if path.is_symlink():
                continue
            os.chmod(path, 0o700 if path.is_dir() else 0o600)
    except OSError as exc:
        log.warning("cannot make the Redis data directory %s private (%s); its files may be readable by others",
                    data_dir, exc)
