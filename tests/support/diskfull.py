"""A real redis-server (AOF on) whose data directory is a small tmpfs that can be filled up.

Needs root (``mount -t tmpfs``); the test is skipped with the reason otherwise.
The tmpfs is unmounted whatever happens, the server killed first.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.redis_proc import RedisServer


class SmallDisk:
    def __init__(self, data_dir: Path, server: RedisServer) -> None:
        self.data_dir = data_dir
        self.server = server
        self.filler = data_dir / "filler.bin"

    def fill(self) -> None:
        """Take every free byte of the tmpfs."""
        with self.filler.open("ab") as f:
            block = b"\0" * (1 << 16)
            with contextlib.suppress(OSError):
                while True:
                    f.write(block)
                    f.flush()

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def refusing_writes(self, client: redis.Redis) -> bool:
        """Write once; True when Redis refuses writes (MISCONF). Redis notices a full disk on its next AOF write."""
        try:
            client.set("diskfull:probe", "x")
        except redis.ResponseError as exc:
            return "MISCONF" in str(exc)
        return False


@contextlib.contextmanager
def redis_on_small_disk(workdir: Path, size: str = "8m") -> Iterator[SmallDisk]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs to fill up needs root")
    data = workdir / "redis-data"
    data.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(data)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    server: RedisServer | None = None
    try:
        server = RedisServer(data)
        server.start()
        yield SmallDisk(data, server)
    finally:
        if server is not None:
            server.stop(kill=True)
        if subprocess.run(["umount", str(data)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(data)], capture_output=True)
