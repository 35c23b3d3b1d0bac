"""A private redis-server process: random port on 127.0.0.1, its own directory.

Used by the benches and by the test fixtures (``tests.support.redis_proc``);
``owc run`` starts its embedded Redis itself (``services.runner.embedded_redis``).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from services.common.infra.ports import free_port


class RedisProcess:
    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        *,
        binary: str = "redis-server",
        appendonly: bool = True,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        found = shutil.which(binary)
        if found is None:
            raise RuntimeError(
                f"{binary} is not installed: `apt-get install redis-server` "
                "(or set redis.server_bin to its path)"
            )
        self.binary = found
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.appendonly = appendonly
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=False)

    def start(self, timeout_s: float = 15.0) -> None:
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.workdir),
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.workdir / "redis.log"),
        ]
        if self.appendonly:
            args += ["--appendonly", "yes", "--appendfsync", "everysec"]
        else:
            args += ["--appendonly", "no"]
        self.proc = subprocess.Popen(
            [*args, *self.extra_args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = self.client()
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.BusyLoadingError):
                    pass
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"redis-server exited with status {self.proc.returncode}; "
                        f"see {self.workdir / 'redis.log'}"
                    )
                if time.monotonic() >= deadline:
                    raise RuntimeError(f"redis-server on port {self.port} did not answer within {timeout_s:.0f}s")
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self, kill: bool = False) -> None:
        self.stop(kill=kill)
        self.start()
