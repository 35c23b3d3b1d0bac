"""The embedded Redis of `owc run`: the port check after a restart, private data files (issue 13.7)."""

from __future__ import annotations

import io
import os
import socket
import stat
import threading
from pathlib import Path

import pytest
import redis

from services.common.config.settings import load_settings
from services.runner.embedded_redis import EmbeddedRedisError, pick_port, redis_spec
from services.runner.supervisor import Supervisor
from tests.support.ports import free_port
from tests.support.waiting import wait_until


def _time_wait_on(port: int) -> None:
    """Leave a connection of a server on ``port`` in TIME_WAIT, as a stopped Redis does for ~60 s."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(1)
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = listener.accept()
    conn.close()  # the server side closes first: its end (127.0.0.1:port) goes to TIME_WAIT
    client.recv(1)
    client.close()
    listener.close()


def test_the_port_check_does_not_refuse_a_port_left_in_time_wait() -> None:
    port = free_port()
    _time_wait_on(port)
    settings = load_settings(overrides={"redis.embedded_port": port}).settings
    assert pick_port(settings) == port  # old check: "already in use" for about a minute
    with socket.socket() as busy:  # a live listener is still a clash
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", port))
        busy.listen(1)
        with pytest.raises(EmbeddedRedisError, match="already in use"):
            pick_port(settings)


def test_aof_files_are_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    (data / "old-dump.aof").write_text("left by an older version")
    os.chmod(data / "old-dump.aof", 0o644)
    port = free_port()
    settings = load_settings(overrides={"redis.data_dir": str(data), "redis.embedded_port": port}).settings
    stop = threading.Event()
    sup = Supervisor([redis_spec(settings, pick_port(settings))], stop, output=io.StringIO())
    sup.start()
    client = redis.Redis(port=port)
    try:
        wait_until(lambda: client.ping(), timeout=15, message="the embedded Redis")
        client.set("k", "v")
        wait_until(lambda: list((data / "appendonlydir").glob("*.incr.aof")), timeout=15, message="AOF files")
        entries = [data, *data.rglob("*")]
        modes = {str(p.relative_to(tmp_path)): stat.S_IMODE(p.stat().st_mode) for p in entries}
        for path, mode in modes.items():
            assert mode & 0o077 == 0, (path, oct(mode), modes)
        assert len(modes) >= 4, modes  # data, appendonlydir, manifest, base/incr files, the old file
    finally:
        client.close()
        stop.set()
        sup.shutdown()
