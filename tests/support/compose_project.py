"""The real compose.yaml on the private engine (tests/support/docker_engine.py), with the test override."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.support import deploy
from tests.support.docker_engine import DockerEngine, run
from tests.support.ports import free_port

OVERRIDE = deploy.REPO / "tests" / "compose" / "compose.test.yaml"
PROJECT = "owcct"  # compose project name: containers owcct_<service>_<n>, volumes owcct_redis-data, …


class ComposeProject:
    """``docker-compose`` (v1, Debian) with compose.yaml + the override, on free host ports."""

    def __init__(
        self,
        engine: DockerEngine,
        workdir: Path,
        env: dict[str, str] | None = None,
        name: str = PROJECT,
        overrides: tuple[Path, ...] = (OVERRIDE,),
    ) -> None:
        self.engine = engine
        self.workdir = workdir
        self.name = name
        self.overrides = overrides
        workdir.mkdir(parents=True, exist_ok=True)
        self.started_at = time.monotonic()  # of the last `up` that matters to a test
        self.http_port = free_port()
        self.prometheus_port = free_port()
        self.http_host = "127.0.0.1"
        self.env_file = workdir / ".env"
        self.set_env(env or {})

    def set_env(self, values: dict[str, str]) -> None:
        """.env.example with test secrets, free host ports, and ``values`` (what a user writes in .env)."""
        deploy.filled_env_example(self.env_file, values)
        extra = {"OWC_HTTP_PORT": str(self.http_port), "PROMETHEUS_PORT": str(self.prometheus_port),
                 "COMPOSE_PROJECT_NAME": self.name, **values}
        self.http_host = extra.get("OWC_HTTP_BIND", "127.0.0.1")
        listed = {line.partition("=")[0] for line in deploy.ENV_EXAMPLE.read_text().splitlines()
                  if "=" in line and not line.lstrip().startswith("#")}
        with self.env_file.open("a") as f:
            f.writelines(f"{key}={value}\n" for key, value in extra.items() if key not in listed)

    def compose(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        compose = deploy.docker_compose()
        assert compose is not None
        argv = [compose, "--project-name", self.name, "--project-directory", str(deploy.REPO),
                "--env-file", str(self.env_file), "-f", str(deploy.COMPOSE_FILE)]
        for override in self.overrides:
            argv += ["-f", str(override)]
        argv += ["--profile", "monitoring", *args]
        return run(argv, timeout=timeout, check=check, env=self.engine.env)

    # ---- what is running ----------------------------------------------------------------------
    def services(self) -> list[str]:
        return self.compose("config", "--services", timeout=60).stdout.split()

    def container_ids(self, service: str) -> list[str]:
        return self.compose("ps", "-q", service, timeout=60).stdout.split()

    def inspect(self, container: str) -> dict[str, Any]:
        data: list[dict[str, Any]] = json.loads(self.engine.docker("inspect", container, timeout=30).stdout)
        return data[0]

    def health(self, container: str) -> str:
        state = self.inspect(container)["State"]
        return str(state.get("Health", {}).get("Status", state["Status"]))

    def all_healthy(self, services: list[str]) -> bool:
        for service in services:
            ids = self.container_ids(service)
            if not ids or any(self.health(c) != "healthy" for c in ids):
                return False
        return True

    # ---- through the published ports ------------------------------------------------------------
    def get_json(self, path: str, port: int | None = None) -> Any:
        host = self.http_host if port is None else "127.0.0.1"
        url = f"http://{host}:{port or self.http_port}{path}"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.loads(resp.read())

    def post_json(self, path: str, body: dict[str, Any], token: str | None = None) -> tuple[int, Any]:
        """POST to the gateway as the admin page does; returns (HTTP status, JSON body)."""
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(f"http://{self.http_host}:{self.http_port}{path}",
                                     data=json.dumps(body).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def status(self, channel: str = "default") -> dict[str, Any]:
        data: dict[str, Any] = self.get_json(f"/api/v1/channels/{channel}/status")
        return data

    def counts(self) -> dict[str, int]:
        status = self.status()
        return {k: int(status[k]) for k in ("victories", "defeats", "draws")}

    def prometheus(self, path: str) -> Any:
        return self.get_json(path, self.prometheus_port)

    # ---- inside Redis (not published: through `docker-compose exec`) ----------------------------
    def redis_cli(self, *args: str) -> list[str]:
        return self.compose("exec", "-T", "redis", "redis-cli", "--raw", *args, timeout=60).stdout.splitlines()

    def group_idle(self, stream: str, group: str) -> bool:
        """The consumer group has read and acknowledged everything in the stream."""
        lines = self.redis_cli("XINFO", "GROUPS", stream)
        groups: list[dict[str, str]] = []
        for key, value in zip(lines[::2], lines[1::2], strict=False):  # flat key/value lines, group after group
            if key == "name":
                groups.append({})
            if groups:
                groups[-1][key] = value
        return any(g.get("name") == group and g.get("pending") == "0" and g.get("lag") == "0" for g in groups)

    def memory(self) -> dict[str, str]:
        """``docker stats`` memory of every container of the project."""
        out = self.engine.docker("stats", "--no-stream", "--format", "{{.Name}}\t{{.MemUsage}}", timeout=120).stdout
        mem = {}
        for line in out.splitlines():
            name, _, usage = line.partition("\t")
            if name.startswith(self.name):
                mem[name] = usage.split("/")[0].strip()
        return mem


def elapsed(t0: float) -> float:
    return round(time.monotonic() - t0, 1)
