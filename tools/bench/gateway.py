"""``owc bench gateway``: SSE fan-out latency with many clients, and status requests per second.

Starts its own redis-server, ``owc state`` and ``owc gateway`` (subprocesses,
as in production), connects N SSE clients (raw asyncio sockets, so the bench
itself stays cheap), then sends ``adjust`` commands one at a time. For each
resulting event: latency = time a client read the event's ``id:`` line -
the event's ``ts`` (the epoch ms at which the state service appended it to
the log; same machine, same clock). "All clients" = the slowest client.
Then it measures ``GET …/status`` requests per second over keep-alive
connections while the SSE clients stay connected.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from services.common.contracts.keys import Keys
from services.common.contracts.messages import Event
from services.common.infra.ports import free_port
from tools.bench.report import machine, percentile
from tools.redisproc import RedisProcess

PREFIX = "owcbench"
CHANNEL = "default"


def log(msg: str) -> None:
    print(f"[bench gateway] {msg}", file=sys.stderr, flush=True)


class SSEClient:
    """A minimal SSE reader: records (event id, wall-clock time) of every ``id:`` line."""

    def __init__(self, host: str, port: int, path: str) -> None:
        self.host, self.port, self.path = host, port, path
        self.received: dict[str, float] = {}
        self.connected = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def run(self) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self.writer = writer
        writer.write(
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        await writer.drain()
        while True:
            line = await reader.readline()
            if not line:
                return
            if line.startswith(b"id: "):
                self.received[line[4:].strip().decode()] = time.time()
            elif line.startswith(b"data: "):
                self.connected.set()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.task is not None:
            self.task.cancel()


async def status_load(host: str, port: int, path: str, seconds: float, concurrency: int) -> tuple[int, list[float]]:
    """Keep-alive GETs from ``concurrency`` connections for ``seconds``; returns (count, latencies)."""
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                writer.write(request)
                await writer.drain()
                status_line = await reader.readline()
                if b" 200 " not in status_line:
                    raise RuntimeError(f"status request failed: {status_line!r}")
                length = 0
                while True:
                    header = await reader.readline()
                    if header in (b"\r\n", b""):
                        break
                    name, _, value = header.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - t0)
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(latencies), latencies


async def post_json(host: str, port: int, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection(host, port)
    data = json.dumps(body).encode()
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
        + data
    )
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), payload


def wait_http(url_host: str, port: int, timeout_s: float, proc: subprocess.Popen[bytes], what: str) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://{url_host}:{port}/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not answer within {timeout_s:.0f} s")


async def measure(args: argparse.Namespace, port: int, keys: Keys, redis_proc: RedisProcess) -> dict[str, Any]:
    host = "127.0.0.1"
    base = f"/api/v1/channels/{CHANNEL}"
    # a first command starts the channel's session before the clients connect
    code, payload = await post_json(host, port, f"{base}/set", {"victories": 0, "defeats": 0, "draws": 0})
    if code != 200:
        raise SystemExit(f"the first command failed ({code}): {payload[:200]!r}")

    log(f"connecting {args.clients} SSE clients …")
    clients = [SSEClient(host, port, f"{base}/events") for _ in range(args.clients)]
    for i, c in enumerate(clients):
        c.task = asyncio.create_task(c.run())
        if i % 50 == 49:
            await asyncio.sleep(0.05)  # don't SYN-flood the accept queue
    deadline = time.monotonic() + 60
    while not all(c.connected.is_set() for c in clients):
        failed = [
            c.task.exception() or "stream ended"
            for c in clients
            if c.task is not None and c.task.done() and not c.task.cancelled()
        ]
        if failed or time.monotonic() > deadline:
            done = sum(c.connected.is_set() for c in clients)
            raise SystemExit(f"only {done}/{len(clients)} SSE clients connected ({failed[:1] or 'timeout'})")
        await asyncio.sleep(0.05)
    log(f"{args.clients} clients connected; sending {args.events} commands one at a time")

    event_ids: list[str] = []
    command_s: list[float] = []
    lost = 0
    for i in range(args.events):
        t0 = time.perf_counter()
        code, payload = await post_json(host, port, f"{base}/adjust", {"outcome": ("victory", "defeat", "draw")[i % 3]})
        command_s.append(time.perf_counter() - t0)
        if code != 200:
            raise SystemExit(f"command {i} failed ({code}): {payload[:200]!r}")
        event_id = json.loads(payload)["event_id"]
        event_ids.append(event_id)
        wait_deadline = time.monotonic() + 10
        while not all(event_id in c.received for c in clients):
            if time.monotonic() > wait_deadline:
                lost += sum(1 for c in clients if event_id not in c.received)
                break
            await asyncio.sleep(0.002)
        if (i + 1) % max(1, args.events // 10) == 0:
            log(f"  {i + 1}/{args.events} events fanned out")

    client: Any = redis_proc.client()
    ts_of: dict[str, int] = {}
    for entry_id, fields in client.xrange(keys.events(CHANNEL)):
        event = Event.from_fields(fields, entry_id)
        ts_of[event.id] = event.ts
    client.close()
    all_ms: list[float] = []
    each_ms: list[float] = []
    for event_id in event_ids:
        appended = ts_of[event_id] / 1000
        times = [c.received[event_id] for c in clients if event_id in c.received]
        if times:
            all_ms.append((max(times) - appended) * 1000)
            each_ms.extend((t - appended) * 1000 for t in times)

    log(f"status requests for {args.status_seconds:g} s with {args.concurrency} connections (SSE clients still on) …")
    count, latencies = await status_load(host, port, f"{base}/status", args.status_seconds, args.concurrency)
    for c in clients:
        c.close()
    return {
        "clients": args.clients,
        "events": len(event_ids),
        "lost_deliveries": lost,
        "fanout_all_clients_ms": {
            "p50": round(percentile(all_ms, 50), 2),
            "p99": round(percentile(all_ms, 99), 2),
            "max": round(max(all_ms), 2) if all_ms else None,
        },
        "fanout_per_client_ms": {"p50": round(percentile(each_ms, 50), 2), "p99": round(percentile(each_ms, 99), 2)},
        "command_round_trip_ms": {
            "p50": round(percentile(command_s, 50) * 1000, 2),
            "p99": round(percentile(command_s, 99) * 1000, 2),
        },
        "status_requests_per_s": round(count / args.status_seconds, 1),
        "status_latency_ms": {
            "p50": round(percentile(latencies, 50) * 1000, 2),
            "p99": round(percentile(latencies, 99) * 1000, 2),
        },
        "status_concurrency": args.concurrency,
        "note": "latency = client read the event's id line - event ts (ms clock of the state service)",
    }


def main(args: argparse.Namespace) -> int:
    if args.clients < 1 or args.events < 1:
        raise SystemExit("--clients and --events must be >= 1")
    mach = machine()
    with tempfile.TemporaryDirectory(prefix="owc-bench-gw-") as tmp:
        work = Path(tmp)
        redis_proc = RedisProcess(work / "redis", appendonly=False)
        redis_proc.start()
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("OWC_")}
        common = ["--set", f"redis.url={redis_proc.url}", "--set", f"redis.prefix={PREFIX}", "--log-level", "WARNING"]
        procs: list[subprocess.Popen[bytes]] = []
        try:
            log("starting redis-server, owc state and owc gateway …")
            state = subprocess.Popen(
                [sys.executable, "-m", "services", "state", *common, "--set", "state.metrics_port=0"], env=env, cwd=tmp
            )
            procs.append(state)
            gateway = subprocess.Popen(
                [sys.executable, "-m", "services", "gateway", "--port", str(port), *common], env=env, cwd=tmp
            )
            procs.append(gateway)
            wait_http("127.0.0.1", port, 60, gateway, "owc gateway")
            result = asyncio.run(measure(args, port, Keys(PREFIX), redis_proc))
            try:
                import psutil

                p = psutil.Process(gateway.pid)
                result["gateway_rss_mb"] = round(p.memory_info().rss / 2**20, 1)
                cpu = p.cpu_times()
                result["gateway_cpu_s"] = round(cpu.user + cpu.system, 2)
            except Exception:
                pass
        finally:
            for proc in reversed(procs):
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
            redis_proc.stop()
    result["machine"] = mach
    print(json.dumps(result, indent=2))
    fan = result["fanout_all_clients_ms"]
    log(
        f"{result['clients']} SSE clients: event appended -> all clients received p50 {fan['p50']} ms, "
        f"p99 {fan['p99']} ms; status {result['status_requests_per_s']} req/s"
    )
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["lost_deliveries"] == 0 else 1
