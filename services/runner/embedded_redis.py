"""The embedded redis-server that ``owc run`` starts when no redis.url is given."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

from services.common.settings import Settings
from services.runner.supervisor import ChildSpec


class EmbeddedRedisError(RuntimeError):
    pass


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_port(settings: Settings) -> int:
    port = settings.redis.embedded_port
    if port == 0:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])
    if not _port_free(port):
        raise EmbeddedRedisError(
            f"port {port} on 127.0.0.1 is already in use, so the embedded Redis cannot start: "
            "stop the other program, set redis.embedded_port to a free port (0 = any), "
            "or point redis.url at a running Redis"
        )
    return port


def redis_spec(settings: Settings, port: int) -> ChildSpec:
    binary = shutil.which(settings.redis.server_bin)
    if binary is None:
        raise EmbeddedRedisError(
            f"{settings.redis.server_bin!r} was not found: install Redis 6.2+ "
            "(`make setup` does it: apt-get install redis-server), set redis.server_bin to its path, "
            "or point redis.url (OWC_REDIS__URL) at a running Redis"
        )
    data_dir = Path(settings.redis.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        binary,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--protected-mode", "yes",
        "--dir", str(data_dir),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",
        "--daemonize", "no",
        "--loglevel", "warning",
    ]
    return ChildSpec("redis", argv, stop_last=True)
