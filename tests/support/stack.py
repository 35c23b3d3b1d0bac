"""Start the whole stack (`owc run` / `owc demo`) as a subprocess on free ports, for tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import psutil

from services.common.cli.cliargs import set_args
from tests.support.ports import free_port
from tests.support.waiting import wait_until


class Stack:
    """``owc run`` with every port free and every file in ``workdir``."""

    def __init__(self, workdir: Path, *args: str, settings: dict[str, Any] | None = None,
                 command: str = "run") -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.gateway_port = free_port()
        self.redis_port = free_port()
        self.metrics_ports = {"capture": free_port(), "inference": free_port(), "state": free_port(),
                              "actions": free_port()}
        base: dict[str, Any] = {
            "redis.embedded_port": self.redis_port,
            "redis.data_dir": str(workdir / "data"),
            "gateway.port": self.gateway_port,
            "capture.metrics_port": self.metrics_ports["capture"],
            "inference.metrics_port": self.metrics_ports["inference"],
            "state.metrics_port": self.metrics_ports["state"],
            "actions.metrics_port": self.metrics_ports["actions"],
        }
        base.update(settings or {})
        self.argv = [sys.executable, "-m", "services", command, *args, *set_args(base)]
        self.processes = "--processes" in args
        self.log_path = workdir / "stack.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def start(self, wait: bool = True) -> Stack:
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("OWC_")}
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT, cwd=self.workdir, env=env)
        if wait:
            wait_until(self.healthy, timeout=60, message=f"stack to answer /healthz (log: {self.log_path})")
        return self

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=1) as resp:
                return resp.status == 200
        except OSError:
            return False

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.base_url}{path}", timeout=5) as resp:
            return json.loads(resp.read())

    def status(self, channel: str = "default") -> Any:
        return self.get_json(f"/api/v1/channels/{channel}/status")

    def children(self) -> dict[str, psutil.Process]:
        """Direct children of the runner, by service name (read from their command lines)."""
        assert self.proc is not None
        out: dict[str, psutil.Process] = {}
        for child in psutil.Process(self.proc.pid).children():
            try:
                cmd = child.cmdline()
            except psutil.NoSuchProcess:
                continue
            if "redis-server" in os.path.basename(cmd[0]):
                out["redis"] = child
            elif "services.runner.inproc" in cmd:  # one-process mode: every service is a thread of it
                out["stack"] = child
            elif "services" in cmd:
                name = cmd[cmd.index("services") + 1]
                if name in out:  # several inference workers
                    name = f"{name}-{child.pid}"
                out[name] = child
        return out

    def capture_running(self) -> bool:
        """The capture service still runs (a replay that does not loop has not reached its end)."""
        if self.processes:
            return "capture" in self.children()
        return "owc.run: capture finished" not in self.log()

    def metrics_url(self, service: str) -> str:
        """Where ``service``'s metrics are: the gateway's /metrics in one process, else its own port."""
        if self.processes:
            return f"http://127.0.0.1:{self.metrics_ports[service]}/metrics"
        return f"{self.base_url}/metrics"

    def all_pids(self) -> list[int]:
        assert self.proc is not None
        return [p.pid for p in psutil.Process(self.proc.pid).children(recursive=True)]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 15) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode
