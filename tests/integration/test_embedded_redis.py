"""The embedded Redis of `owc run`: the port check after a restart, private data files (issue 13.7), the Unix
socket its services use (issue 22)."""

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
from services.runner.embedded_redis import EmbeddedRedisError, pick_port, redis_spec, socket_path
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


def test_it_listens_on_a_private_socket_in_the_data_folder_and_replaces_one_a_killed_run_left(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    left = socket.socket(socket.AF_UNIX)  # a killed run leaves its socket file behind
    left.bind(str(data / "redis.sock"))
    left.close()
    port = free_port()
    settings = load_settings(overrides={"redis.data_dir": str(data), "redis.embedded_port": port}).settings
    sock = socket_path(settings)
    assert sock == (data / "redis.sock").resolve()
    stop = threading.Event()
    sup = Supervisor([redis_spec(settings, pick_port(settings))], stop, output=io.StringIO())
    sup.start()
    over_socket = redis.Redis.from_url(f"unix://{sock}?db=0")
    over_tcp = redis.Redis(port=port)
    try:
        wait_until(lambda: over_socket.ping(), timeout=15, message="the embedded Redis on its socket")
        over_socket.set("k", "v")
        assert over_tcp.get("k") == b"v"  # the port stays open for everything else
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    finally:
        over_socket.close()
        over_tcp.close()
        stop.set()
        sup.shutdown()


def test_a_socket_path_too_long_for_the_system_means_tcp(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120)
    settings = load_settings(overrides={"redis.data_dir": str(deep)}).settings
    assert socket_path(settings) is None
    assert "--unixsocket" not in redis_spec(settings, free_port()).argv


def test_its_timer_runs_twice_a_second_or_five_times_for_a_short_state_lease(tmp_path: Path) -> None:
    """`hz` is most of an idle Redis' CPU; a blocking read's timeout may end up to 1/hz late, which the state
    writer's lease renewal (every third of the lease) must survive."""
    def hz(**overrides: object) -> int:
        settings = load_settings(overrides={"redis.data_dir": str(tmp_path / "data"), **overrides}).settings
        argv = redis_spec(settings, free_port()).argv
        return int(argv[argv.index("--hz") + 1])

    assert hz() == 2  # the default 5 s lease: a renewal 500 ms late is still 2.8 s early
    assert hz(**{"state.lease_ttl_ms": 1500}) == 2
    assert hz(**{"state.lease_ttl_ms": 1000}) == 5
