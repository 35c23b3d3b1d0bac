"""The gateway's HTTP API against a real redis-server and the real `owc state`."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from services.common.contracts import health
from services.common.contracts.keys import Keys
from tests.support.gateway import GatewayThread, ServiceProcess, post_json, settings_for, start_state
from tests.support.redis_proc import RedisServer
from tests.support.waiting import wait_until


@pytest.fixture(scope="module")
def gw_prefix() -> str:
    return f"gw{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def gw_keys(gw_prefix: str) -> Keys:
    return Keys(gw_prefix)


@pytest.fixture(scope="module")
def state_proc(
    redis_server: RedisServer, gw_prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    proc = start_state(tmp_path_factory.mktemp("state"), redis_server.url, gw_prefix)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("config")


@pytest.fixture(scope="module")
def gateway(
    redis_server: RedisServer, gw_prefix: str, state_proc: ServiceProcess, config_dir: Path
) -> Iterator[GatewayThread]:
    gw = GatewayThread(settings_for(redis_server.url, gw_prefix, **{"gateway.max_body_bytes": 4096}), config_dir)
    gw.start()
    yield gw
    gw.stop()


@pytest.fixture
def rc(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis_server.client()
    yield client
    client.close()


@pytest.fixture
def channel(rc: redis.Redis, gw_keys: Keys) -> str:
    """A fresh channel, registered the way capture registers one (SADD owc:channels)."""
    name = f"ch-{uuid.uuid4().hex[:8]}"
    rc.sadd(gw_keys.channels, name)
    return name


def get(gw: GatewayThread, path: str, **kw: Any) -> httpx.Response:
    return httpx.get(f"{gw.url}{path}", timeout=15, **kw)


def api(ch: str) -> str:
    return f"/api/v1/channels/{ch}"


# ---------------------------------------------------------------- operations and pages


def test_healthz_readyz_metrics_docs(gateway: GatewayThread) -> None:
    assert get(gateway, "/healthz").json() == {"status": "ok"}
    ready = get(gateway, "/readyz").json()
    assert ready["status"] == "ready" and ready["redis"].startswith("7.")
    get(gateway, "/api/v1/channels")
    metrics = get(gateway, "/metrics").text
    assert 'owc_gateway_http_requests_total{method="GET",route="/api/v1/channels",status="200"}' in metrics
    assert "owc_gateway_sse_clients" in metrics
    assert get(gateway, "/docs").status_code == 200
    spec = get(gateway, "/openapi.json").json()
    for path in ("/api/v1/channels/{ch}/status", "/api/v1/channels/{ch}/adjust", "/api/status", "/events"):
        assert path in spec["paths"]


def test_readyz_503_when_redis_is_unreachable(tmp_path: Path) -> None:
    from tests.support.ports import free_port

    gw = GatewayThread(settings_for(f"redis://127.0.0.1:{free_port()}/0", "x"), tmp_path).start()
    try:
        resp = get(gw, "/readyz")
        assert resp.status_code == 503
        assert "Redis is not reachable" in resp.json()["detail"]
        status = get(gw, "/api/v1/channels/default/status")
        assert status.status_code == 503 and "Redis" in status.json()["detail"]
    finally:
        gw.stop()


def test_pages_and_static(gateway: GatewayThread, config_dir: Path) -> None:
    resp = httpx.get(f"{gateway.url}/?channel=abc", follow_redirects=False)
    assert resp.status_code == 307 and resp.headers["location"] == "/overlay?channel=abc"
    overlay = get(gateway, "/overlay")
    assert overlay.status_code == 200 and "/custom.css" in overlay.text
    assert overlay.text.index("/static/overlay.css") < overlay.text.index("/custom.css")
    admin = get(gateway, "/admin").text
    assert 'data-testid="undo"' in admin and 'id="outcome-rows"' in admin  # the outcome rows are admin.js's
    font = get(gateway, "/static/fonts/BebasNeue-Regular.otf")
    assert font.status_code == 200 and len(font.content) > 10_000
    assert get(gateway, "/static/nope.js").status_code == 404
    icon = get(gateway, "/favicon.ico")  # browsers ask for it whatever the page says
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/x-icon"
    assert icon.content[:4] == b"\x00\x00\x01\x00" and len(icon.content) < 4096
    # custom.css: empty without a file, the file's content with one
    (config_dir / "custom.css").unlink(missing_ok=True)
    empty = get(gateway, "/custom.css")
    assert empty.status_code == 200 and empty.text == "" and empty.headers["content-type"].startswith("text/css")
    (config_dir / "custom.css").write_text(":root { --owc-victory: #123456; }\n")
    assert "--owc-victory: #123456" in get(gateway, "/custom.css").text


# ---------------------------------------------------------------- reads


def test_channels_and_unknown_channel(gateway: GatewayThread, channel: str) -> None:
    names = get(gateway, "/api/v1/channels").json()["channels"]
    assert "default" in names and channel in names
    for bad in ("nope-" + uuid.uuid4().hex[:6], "bad%20name", "-x"):
        resp = get(gateway, f"/api/v1/channels/{bad}/status")
        assert resp.status_code == 404, bad
        assert "unknown channel" in resp.json()["detail"]
    assert get(gateway, "/api/v1/nothing").json()["detail"].startswith("no such page")


def test_status_of_a_fresh_channel(gateway: GatewayThread, channel: str) -> None:
    status = get(gateway, f"{api(channel)}/status").json()
    assert (status["victories"], status["defeats"], status["draws"], status["total"]) == (0, 0, 0, 0)
    assert status["win_rate"] is None and status["phase"] is None and status["last_event"] is None
    assert status["health"]["obs_connected"] is None and status["health"]["workers"] == 0


def test_status_reports_pipeline_health(gateway: GatewayThread, channel: str, rc: redis.Redis, gw_keys: Keys) -> None:
    now = int(time.time() * 1000)
    rc.hset(
        gw_keys.health(channel, "capture"),
        mapping={"obs_connected": "1", "source": "Game", "last_frame_at": str(now - 2000), "last_seq": "41"},
    )
    rc.hset(
        gw_keys.health(channel, "inference"),
        mapping={"last_label": "none", "last_confidence": "0.99", "last_label_at": str(now), "model": "m-123"},
    )
    # workers count from their heartbeats, frames or not: two beating, one silent for 20 s, one stopped
    health.worker_beat(rc, gw_keys, "worker-a")
    health.worker_beat(rc, gw_keys, "worker-b")
    rc.zadd(gw_keys.inference_workers, {"worker-silent": now - 20_000})
    health.worker_beat(rc, gw_keys, "worker-c")
    health.worker_beat(rc, gw_keys, "worker-c", alive=False)
    h = get(gateway, f"{api(channel)}/status").json()["health"]
    assert h["obs_connected"] is True and h["capture_source"] == "Game" and h["last_seq"] == 41
    assert 1.5 <= h["last_frame_age_s"] < 30
    assert h["last_label"] == "none" and h["last_confidence"] == 0.99 and h["model"] == "m-123"
    assert h["workers"] == 2
    # the state service holds its lease: running, although it has not seen this channel yet
    assert h["state_alive"] is True and not rc.exists(gw_keys.health(channel, "state"))
    assert h["capture_held_back_s"] is None and h["redis_write_error"] is None
    rc.hset(gw_keys.health(channel, "capture"), mapping={"backpressure": "1", "held_back_s": "12.5"})
    assert get(gateway, f"{api(channel)}/status").json()["health"]["capture_held_back_s"] == 12.5
    post_json(gateway.url, f"{api(channel)}/adjust", {"outcome": "victory"})
    wait_until(
        lambda: rc.exists(gw_keys.health(channel, "state")),
        timeout=15,
        message="the state service to publish its health for the channel",
    )
    assert get(gateway, f"{api(channel)}/status").json()["health"]["state_alive"] is True


# ---------------------------------------------------------------- commands


def test_the_model_is_known_before_the_first_frame(gateway: GatewayThread, channel: str, rc: redis.Redis,
                                                   gw_keys: Keys) -> None:
    """The workers say which model they loaded with their heartbeat: the Model row needs no frame."""
    assert get(gateway, f"{api(channel)}/status").json()["health"]["model"] is None
    health.worker_beat(rc, gw_keys, "worker-m", model="detector-v7")
    health.worker_beat(rc, gw_keys, "worker-gone", model="old-model")
    health.worker_beat(rc, gw_keys, "worker-gone", alive=False)
    try:
        h = get(gateway, f"{api(channel)}/status").json()["health"]
        assert h["model"] == "detector-v7" and h["workers"] >= 1
        assert rc.hget(gw_keys.inference_models, "worker-gone") is None
        # once a frame is classified, its record names the model that classified it
        rc.hset(gw_keys.health(channel, "inference"), mapping={"last_label": "none", "model": "detector-v8"})
        assert get(gateway, f"{api(channel)}/status").json()["health"]["model"] == "detector-v8"
    finally:
        health.worker_beat(rc, gw_keys, "worker-m", alive=False)


def test_adjust_set_undo_new_session(gateway: GatewayThread, channel: str) -> None:
    r = post_json(gateway.url, f"{api(channel)}/adjust", {"outcome": "victory"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True and body["event_id"]
    assert body["status"]["victories"] == 1 and body["status"]["last_event"]["id"] == body["event_id"]
    r = post_json(gateway.url, f"{api(channel)}/adjust", {"outcome": "defeat", "delta": 2, "note": "missed two"})
    assert r.json()["status"]["defeats"] == 2
    r = post_json(gateway.url, f"{api(channel)}/set", {"victories": 5, "defeats": 4, "draws": 1})
    s = r.json()["status"]
    assert (s["victories"], s["defeats"], s["draws"], s["total"]) == (5, 4, 1, 10)
    assert s["win_rate"] == pytest.approx(0.5)
    r = post_json(gateway.url, f"{api(channel)}/undo", {})
    assert r.status_code == 200, r.text
    s = r.json()["status"]
    assert (s["victories"], s["defeats"], s["draws"]) == (1, 2, 0)
    assert s["last_event"]["type"] == "undone"
    old_session = s["session"]["id"]
    r = post_json(gateway.url, f"{api(channel)}/sessions", {"note": "evening"})
    s = r.json()["status"]
    assert s["total"] == 0 and s["session"]["id"] != old_session
    post_json(gateway.url, f"{api(channel)}/adjust", {"outcome": "draw"})
    sessions = get(gateway, f"{api(channel)}/sessions").json()["sessions"]
    assert [x["current"] for x in sessions] == [True, False]
    assert (sessions[0]["draws"], sessions[0]["total"]) == (1, 1)
    assert (sessions[1]["victories"], sessions[1]["defeats"], sessions[1]["total"]) == (1, 2, 3)
    assert sessions[1]["ended_at"] is not None and sessions[0]["ended_at"] is None


def test_command_refused_by_state_is_409_with_its_sentence(gateway: GatewayThread, channel: str) -> None:
    r = post_json(gateway.url, f"{api(channel)}/adjust", {"outcome": "victory", "delta": -1})
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "rejected" and len(r.json()["detail"]) > 10
    r = post_json(gateway.url, f"{api(channel)}/undo", {})
    assert r.status_code == 409 and r.json()["detail"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"outcome": "win"}, "outcome"),
        ({"outcome": "victory", "delta": 0}, "delta must not be 0"),
        ({"outcome": "victory", "delta": 5000}, "delta"),
        ({"outcome": "victory", "delta": "two"}, "delta"),
        ({"outcome": "victory", "extra": 1}, "unknown field 'extra'"),
        ([1, 2], "dictionary"),
        (None, "a JSON body is required"),
    ],
)
def test_adjust_bad_bodies_are_422(gateway: GatewayThread, body: Any, needle: str) -> None:
    content = b"" if body is None else json.dumps(body).encode()
    r = httpx.post(
        f"{gateway.url}{api('default')}/adjust", content=content, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422, r.text
    assert needle in r.json()["detail"], r.json()


def test_bad_input_is_4xx_never_500(gateway: GatewayThread) -> None:
    base = f"{gateway.url}{api('default')}"
    cases = [
        httpx.post(f"{base}/adjust", content=b"{oops", headers={"Content-Type": "application/json"}),
        httpx.post(f"{base}/set", json={"victories": -1, "defeats": 0, "draws": 0}),
        httpx.post(f"{base}/set", json={"victories": 1}),
        httpx.post(f"{base}/set", json={"victories": 10**12, "defeats": 0, "draws": 0}),
        httpx.post(
            f"{base}/adjust",
            content='{"outcome": "vict\u00f6ry"}'.encode(),
            headers={"Content-Type": "application/json"},
        ),
        httpx.get(f"{base}/history?limit=0"),
        httpx.get(f"{base}/history?limit=abc"),
        httpx.get(f"{base}/history?before=1-2-3"),
        httpx.get(f"{base}/history?before=99999999999999999999999-0"),
        httpx.get(f"{base}/export?format=xml"),
        httpx.get(f"{base}/detframe/-5.jpg"),
        httpx.get(f"{base}/detframe/abc.jpg"),
        httpx.put(f"{base}/adjust", json={}),
        httpx.post(
            f"{base}/adjust", content=b'{"outcome": "vict\xf6ry"}', headers={"Content-Type": "application/json"}
        ),
    ]
    for resp in cases:
        assert 400 <= resp.status_code < 500, (resp.request.url, resp.status_code, resp.text)
        assert isinstance(resp.json()["detail"], str) and resp.json()["detail"]
        assert resp.json()["code"], (resp.request.url, resp.text)  # every error says what kind it is


def test_a_body_that_is_not_utf8_is_invalid_json_with_a_code(gateway: GatewayThread) -> None:
    r = httpx.post(
        f"{gateway.url}{api('default')}/adjust",
        content=b'{"outcome": "victory", "note": "caf\xe9"}',  # Latin-1, not UTF-8
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid" and "UTF-8" in r.json()["detail"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/channels/default/set", {"victories": True, "defeats": 0, "draws": 0}),
        ("/api/v1/channels/default/set", {"victories": "7", "defeats": 0, "draws": 0}),
        ("/api/v1/channels/default/set", {"victories": 7.5, "defeats": 0, "draws": 0}),
        ("/api/v1/channels/default/adjust", {"outcome": "victory", "delta": True}),
        ("/api/v1/channels/default/adjust", {"outcome": "victory", "delta": "2"}),
        ("/api/initialize", {"victories": True, "defeats": 0, "draws": 0}),
        ("/api/initialize", {"victories": "7", "defeats": "0", "draws": "0"}),
        ("/api/adjust", {"outcome": "victory", "delta": "1"}),
        ("/api/adjust", {"value": "draw", "delta": True}),
        ("/api/adjust", {"value": "draw", "delta": 0.5}),
    ],
)
def test_counts_must_be_json_integers(gateway: GatewayThread, path: str, body: dict[str, Any]) -> None:
    before = get(gateway, "/api/v1/channels/default/status").json()
    r = post_json(gateway.url, path, body)
    assert r.status_code == 422, (body, r.text)
    assert r.json()["code"] == "invalid" and "integer" in r.json()["detail"]
    after = get(gateway, "/api/v1/channels/default/status").json()
    assert (after["victories"], after["defeats"], after["draws"]) == (
        before["victories"], before["defeats"], before["draws"]
    )


def test_the_openapi_schema_and_the_validation_agree(gateway: GatewayThread, channel: str) -> None:
    """What the schema allows is accepted and what it forbids is refused (the fuzz tier relies on it)."""
    spec = get(gateway, "/openapi.json").json()
    schemas = spec["components"]["schemas"]
    # a delta of 0 is a 422: the schema says so
    for model in ("AdjustIn", "LegacyAdjustIn"):
        assert schemas[model]["properties"]["delta"]["not"] == {"const": 0}, model
    assert post_json(gateway.url, "/api/adjust", {"outcome": "victory", "delta": 0}).status_code == 422
    # a mode name: 32 characters in the schema as in the code (surrounding spaces dropped first)
    assert schemas["ModeIn"]["properties"]["mode"]["maxLength"] == 32
    assert post_json(gateway.url, f"{api(channel)}/mode", {"mode": f"  {'m' * 32} "}).status_code == 200
    # JSON Schema's integer includes 4876.0: a count or a delta written that way is that integer
    r = post_json(gateway.url, f"{api(channel)}/set", {"victories": 4876.0, "defeats": 2, "draws": 0.0})
    assert r.status_code == 200, r.text
    r = post_json(gateway.url, f"{api(channel)}/adjust", {"outcome": "victory", "delta": -6.0})
    assert r.status_code == 200 and r.json()["status"]["victories"] == 4870, r.text
    r = post_json(gateway.url, "/api/initialize", {"victories": 4876.0, "defeats": 1, "draws": 0})
    assert r.status_code == 200 and r.json()["victories"] == 4876, r.text


def test_the_openapi_documents_the_422_the_api_sends(gateway: GatewayThread) -> None:
    spec = get(gateway, "/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert schemas["ErrorOut"]["properties"]["detail"]["type"] == "string"
    documented = 0
    for path_item in spec["paths"].values():
        for operation in path_item.values():
            invalid = operation["responses"].get("422")
            if invalid is not None:
                documented += 1
                assert invalid["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorOut"}
    assert documented >= 10
    history = spec["paths"]["/api/v1/channels/{ch}/history"]["get"]["responses"]
    assert "422" in history
    body = get(gateway, f"{api('default')}/history?limit=0").json()
    assert isinstance(body["detail"], str) and body["code"] == "invalid"
    assert body["errors"][0]["loc"] == ["query", "limit"] and set(body["errors"][0]) == {"loc", "msg", "type"}


def test_methods_a_path_does_not_accept_are_405_with_every_allowed_method(gateway: GatewayThread) -> None:
    base = f"{gateway.url}{api('default')}"
    for method, url in [
        ("PUT", f"{base}/adjust"),
        ("PUT", f"{gateway.url}/overlay"),
        ("DELETE", f"{base}/status"),
        ("PATCH", f"{gateway.url}/api/status"),
        ("POST", f"{base}/status"),
    ]:
        r = httpx.request(method, url, content=b"x", headers={"Content-Type": "text/plain"})
        assert r.status_code == 405, (method, url, r.status_code, r.text)
        assert r.json()["code"] == "method_not_allowed"
    r = httpx.request("PUT", f"{gateway.url}/nothing/here", content=b"x")
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = httpx.delete(f"{base}/sessions")
    assert r.status_code == 405
    assert [m.strip() for m in r.headers["allow"].split(",")] == ["GET", "POST"]
    assert httpx.delete(f"{base}/adjust").headers["allow"] == "POST"


def test_reads_check_the_host_too_against_dns_rebinding(gateway: GatewayThread, channel: str) -> None:
    paths = [
        f"{api(channel)}/status",
        f"{api(channel)}/history",
        f"{api(channel)}/export?format=jsonl",
        f"{api(channel)}/sessions",
        "/api/status",
        "/api/v1/channels",
        "/metrics",
        "/admin",
    ]
    for path in paths:
        r = get(gateway, path, headers={"Host": f"rebound.example:{gateway.port}"})
        assert r.status_code == 403, (path, r.status_code)
        assert r.json()["code"] == "bad_host"
        for host in (f"127.0.0.1:{gateway.port}", f"localhost:{gateway.port}", f"[::1]:{gateway.port}"):
            assert get(gateway, path, headers={"Host": host}).status_code == 200, (path, host)
    with httpx.stream(
        "GET", f"{gateway.url}{api(channel)}/events", headers={"Host": "rebound.example"}, timeout=15
    ) as stream:
        assert stream.status_code == 403


def test_only_the_overlay_may_be_framed(gateway: GatewayThread) -> None:
    for path in ("/admin", "/api/v1/channels/default/status", "/api/status", "/docs", "/metrics", "/nothing"):
        r = get(gateway, path)
        assert r.headers["x-frame-options"] == "DENY", path
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"], path
    refused = httpx.post(f"{gateway.url}{api('default')}/adjust", content=b"x")  # the guard's own answer
    assert refused.status_code == 415 and refused.headers["x-frame-options"] == "DENY"
    for path in ("/overlay", "/"):
        r = httpx.get(f"{gateway.url}{path}", follow_redirects=False)
        assert "x-frame-options" not in r.headers, path
        assert "frame-ancestors" not in r.headers["content-security-policy"], path
        assert "script-src 'self';" in r.headers["content-security-policy"], path
    admin_csp = get(gateway, "/admin").headers["content-security-policy"]
    assert "script-src 'self';" in admin_csp and "unsafe-inline" not in admin_csp
    assert get(gateway, "/static/admin.js").headers["x-content-type-options"] == "nosniff"


def test_mutations_must_be_json(gateway: GatewayThread) -> None:
    url = f"{gateway.url}{api('default')}/adjust"
    for headers, content in [
        ({"Content-Type": "text/plain"}, b'{"outcome":"victory"}'),
        ({"Content-Type": "application/x-www-form-urlencoded"}, b"outcome=victory"),
        ({}, b'{"outcome":"victory"}'),
    ]:
        r = httpx.post(url, content=content, headers=headers)
        assert r.status_code == 415, r.text
        assert "application/json" in r.json()["detail"]


def test_cross_origin_mutations_are_403(gateway: GatewayThread) -> None:
    url = f"{gateway.url}{api('default')}/adjust"
    for origin in (
        "http://evil.example",
        "null",
        f"http://127.0.0.1:{gateway.port + 1}",
        "https://127.0.0.1",
        f"http://localhost:{gateway.port}",
    ):
        r = httpx.post(url, json={"outcome": "victory"}, headers={"Origin": origin})
        assert r.status_code == 403, origin
        assert "cross-origin" in r.json()["detail"]
    r = httpx.post(url, json={"outcome": "victory"}, headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    # DNS rebinding: a foreign host name that resolves to 127.0.0.1 looks same-origin
    r = httpx.post(
        url, json={"outcome": "victory"}, headers={"Host": "evil.example:1", "Origin": "http://evil.example:1"}
    )
    assert r.status_code == 403 and r.json()["code"] == "bad_host"


def test_same_origin_mutation_is_accepted(gateway: GatewayThread, channel: str) -> None:
    for origin in (gateway.url, f"http://localhost:{gateway.port}"):
        host = origin.removeprefix("http://")
        r = httpx.post(
            f"{gateway.url}{api(channel)}/adjust", json={"outcome": "victory"}, headers={"Origin": origin, "Host": host}
        )
        assert r.status_code == 200, r.text


def test_body_size_limit_is_413(gateway: GatewayThread) -> None:
    big = json.dumps({"outcome": "victory", "note": "x" * 5000}).encode()
    r = httpx.post(f"{gateway.url}{api('default')}/adjust", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "too large" in r.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked
        yield b'{"outcome": "victory", "note": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}'

    r = httpx.post(
        f"{gateway.url}{api('default')}/adjust", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413


def test_admin_token(
    redis_server: RedisServer,
    gw_prefix: str,
    state_proc: ServiceProcess,
    channel: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "s3cret-" + uuid.uuid4().hex
    gw = GatewayThread(settings_for(redis_server.url, gw_prefix, **{"gateway.admin_token": secret}), tmp_path).start()
    try:
        url = f"{api(channel)}/adjust"
        for token in (None, "wrong", secret + "x", secret[:-1]):
            r = post_json(gw.url, url, {"outcome": "victory"}, token)
            assert r.status_code == 401, token
            assert r.headers["www-authenticate"] == "Bearer"
            assert secret not in r.text
        r = httpx.post(f"{gw.url}{url}", json={"outcome": "victory"}, headers={"Authorization": f"Basic {secret}"})
        assert r.status_code == 401
        r = post_json(gw.url, url, {"outcome": "victory"}, secret)
        assert r.status_code == 200 and r.json()["status"]["victories"] == 1
        assert secret not in r.text
        # reads stay open (the overlay needs no token)
        assert get(gw, f"{api(channel)}/status").status_code == 200
        # the admin page with ?token= works and the secret is neither echoed nor logged
        page = get(gw, f"/admin?token={secret}")
        assert page.status_code == 200 and secret not in page.text
        assert secret not in get(gw, "/openapi.json").text
        assert secret not in get(gw, "/metrics").text
        assert secret not in caplog.text
    finally:
        gw.stop()


def test_timeout_is_503_and_the_command_is_never_applied_later(
    redis_server: RedisServer, tmp_path: Path, rc: redis.Redis
) -> None:
    prefix = f"to{uuid.uuid4().hex[:8]}"
    keys = Keys(prefix)
    gw = GatewayThread(settings_for(redis_server.url, prefix, **{"gateway.command_timeout_s": 0.5}), tmp_path).start()
    state: ServiceProcess | None = None
    try:
        started = time.monotonic()
        r = post_json(gw.url, f"{api('default')}/adjust", {"outcome": "victory"})
        assert r.status_code == 503
        assert 0.4 < time.monotonic() - started < 5
        assert r.json()["code"] == "timeout" and "did not answer" in r.json()["detail"]
        assert rc.xlen(keys.commands) == 1  # it was sent, with a deadline that has passed
        # the state service starts late: it must refuse the stale command, not apply it
        state = start_state(tmp_path / "state", redis_server.url, prefix)

        def consumed() -> bool:
            groups = rc.xinfo_groups(keys.commands)
            return any(g["pending"] == 0 and g.get("lag") == 0 for g in groups)

        wait_until(consumed, timeout=20, message="the state service to consume the stale command")
        assert rc.xlen(keys.events("default")) <= 1  # at most its session_started, never the adjust
        status = get(gw, f"{api('default')}/status").json()
        assert status["victories"] == 0
        # and a fresh command now works
        r = post_json(gw.url, f"{api('default')}/adjust", {"outcome": "victory"})
        assert r.status_code == 200 and r.json()["status"]["victories"] == 1
    finally:
        gw.stop()
        if state is not None:
            state.stop()


def test_history_paging(gateway: GatewayThread, channel: str) -> None:
    ids = []
    for outcome in ("victory", "defeat", "draw", "victory", "victory"):
        ids.append(post_json(gateway.url, f"{api(channel)}/adjust", {"outcome": outcome}).json()["event_id"])
    page1 = get(gateway, f"{api(channel)}/history?limit=2").json()
    assert [e["id"] for e in page1["events"]] == ids[::-1][:2]
    assert page1["next_before"] == ids[3]
    page2 = get(gateway, f"{api(channel)}/history", params={"limit": 2, "before": page1["next_before"]}).json()
    assert [e["id"] for e in page2["events"]] == [ids[2], ids[1]]
    everything = get(gateway, f"{api(channel)}/history?limit=500").json()
    assert everything["next_before"] is None
    adjusted = [e for e in everything["events"] if e["type"] == "adjusted"]
    assert [e["outcome"] for e in adjusted] == ["victory", "victory", "draw", "defeat", "victory"]
    assert adjusted[0]["source"] == "manual" and adjusted[0]["victories"] == 3


def test_export_csv_and_jsonl(gateway: GatewayThread, channel: str) -> None:
    post_json(gateway.url, f"{api(channel)}/adjust", {"outcome": "victory"})
    first_session = get(gateway, f"{api(channel)}/status").json()["session"]["id"]
    post_json(gateway.url, f"{api(channel)}/sessions", {})
    post_json(gateway.url, f"{api(channel)}/adjust", {"outcome": "defeat", "delta": 3})
    csv_resp = get(gateway, f"{api(channel)}/export?format=csv")
    assert csv_resp.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv_resp.headers["content-disposition"]
    lines = csv_resp.text.strip().splitlines()
    assert lines[0].startswith("id,type,outcome")
    jsonl = get(gateway, f"{api(channel)}/export?format=jsonl").text.strip().splitlines()
    assert len(jsonl) == len(lines) - 1
    rows = [json.loads(line) for line in jsonl]
    assert rows[-1]["defeats"] == 3 and rows[-1]["type"] == "adjusted"
    only_first = get(gateway, f"{api(channel)}/export", params={"format": "jsonl", "session": first_session}).text
    rows = [json.loads(line) for line in only_first.strip().splitlines()]
    assert rows and {r["session"] for r in rows} == {first_session}
    assert rows[-1]["victories"] == 1


def test_prototype_aliases(gateway: GatewayThread, rc: redis.Redis, gw_keys: Keys) -> None:
    before = get(gateway, "/api/status").json()
    assert set(before) >= {"victories", "defeats", "draws", "last_outcome", "timestamp"}
    r = httpx.post(f"{gateway.url}/api/adjust", json={"value": "victory", "delta": 1})  # the older key
    assert r.status_code == 200, r.text
    assert r.json()["victories"] == before["victories"] + 1
    r = httpx.post(f"{gateway.url}/api/adjust", json={"outcome": "draw", "delta": 2})
    assert r.json()["draws"] == before["draws"] + 2
    assert httpx.post(f"{gateway.url}/api/adjust", json={"outcome": "lose"}).status_code == 422
    r = httpx.post(f"{gateway.url}/api/initialize", json={"victories": 7, "defeats": 3, "draws": 1})
    assert r.status_code == 200, r.text
    assert {k: r.json()[k] for k in ("victories", "defeats", "draws")} == {"victories": 7, "defeats": 3, "draws": 1}
    now = get(gateway, "/api/status").json()
    assert now["victories"] == 7 and now["timestamp"].endswith("Z")
    assert get(gateway, "/api/v1/channels/default/status").json()["victories"] == 7
    assert httpx.post(f"{gateway.url}/api/initialize", json={"victories": -7}).status_code == 422
    # a body that names no count (or misspells one) must never zero the counts
    for body in ({}, {"outcome": "win"}, {"victories": 1, "defeats": 0, "draws": 0, "wins": 3}):
        assert httpx.post(f"{gateway.url}/api/initialize", json=body).status_code == 422, body


def test_detection_frame(gateway: GatewayThread, channel: str, rc: redis.Redis, gw_keys: Keys) -> None:
    jpeg = b"\xff\xd8\xff\xe0" + b"fake-jpeg-body" + b"\xff\xd9"
    rc.set(gw_keys.detframe(channel, 77), jpeg)
    r = get(gateway, f"{api(channel)}/detframe/77.jpg")
    assert r.status_code == 200 and r.content == jpeg and r.headers["content-type"] == "image/jpeg"
    missing = get(gateway, f"{api(channel)}/detframe/78.jpg")
    assert missing.status_code == 404 and "expired" in missing.json()["detail"]


def test_command_metrics(gateway: GatewayThread, channel: str) -> None:
    post_json(gateway.url, f"{api(channel)}/adjust", {"outcome": "victory"})
    text = get(gateway, "/metrics").text
    assert 'owc_gateway_commands_total{result="ok",type="adjust"}' in text
    assert "owc_gateway_http_request_seconds_bucket" in text


@pytest.mark.slow
def test_a_command_timeout_longer_than_the_socket_timeout(redis_server: RedisServer, tmp_path: Path) -> None:
    """command_timeout_s above redis-py's 5 s socket timeout still ends as a clean timeout, not a Redis error."""
    prefix = f"lt{uuid.uuid4().hex[:8]}"
    gw = GatewayThread(settings_for(redis_server.url, prefix, **{"gateway.command_timeout_s": 6}), tmp_path).start()
    try:
        started = time.monotonic()
        r = post_json(gw.url, f"{api('default')}/adjust", {"outcome": "victory"})
        assert r.status_code == 503 and r.json()["code"] == "timeout", r.text
        assert 5.9 < time.monotonic() - started < 15
    finally:
        gw.stop()


def test_history_before_0_0_is_a_422_not_a_redis_outage(gateway: GatewayThread) -> None:
    """Issue 13.4: Redis rejects ``XREVRANGE … (0-0``; that is bad input, not "Redis is not reachable"."""
    for before in ("0-0", "0"):
        r = get(gateway, f"{api('default')}/history?before={before}")
        assert r.status_code == 422, (before, r.status_code, r.text)
        assert "before" in r.json()["detail"] and "not reachable" not in r.json()["detail"]


# ---------------------------------------------------------------- per-mode records


def test_mode_splits_the_counts_in_status_history_and_export(gateway: GatewayThread, channel: str) -> None:
    assert get(gateway, f"{api(channel)}/status").json()["mode"] == ""
    post_json(gateway.url, f"{api(channel)}/adjust", {"outcome": "victory"})
    r = post_json(gateway.url, f"{api(channel)}/mode", {"mode": "Quick Play", "note": "with friends"})
    assert r.status_code == 200, r.text
    assert r.json()["event_id"] and r.json()["status"]["mode"] == "quickplay"
    same = post_json(gateway.url, f"{api(channel)}/mode", {"mode": "QUICKPLAY"})
    assert same.status_code == 200 and same.json()["event_id"] == ""  # already the mode: nothing recorded
    post_json(gateway.url, f"{api(channel)}/adjust", {"outcome": "defeat", "delta": 2})
    post_json(gateway.url, f"{api(channel)}/mode", {"mode": "My 6v6"})
    s = post_json(gateway.url, f"{api(channel)}/adjust", {"outcome": "victory"}).json()["status"]
    assert (s["mode"], s["victories"], s["defeats"]) == ("My 6v6", 2, 2)
    won = {"streak": {"outcome": "victory", "length": 1}, "recent": ["victory"]}
    assert s["by_mode"] == {
        "": {"victories": 1, "defeats": 0, "draws": 0, "total": 1, "win_rate": 1.0, **won},
        "My 6v6": {"victories": 1, "defeats": 0, "draws": 0, "total": 1, "win_rate": 1.0, **won},
        "quickplay": {"victories": 0, "defeats": 2, "draws": 0, "total": 2, "win_rate": 0.0,
                      "streak": {"outcome": "defeat", "length": 2}, "recent": ["defeat", "defeat"]},
    }
    assert s["streak"] == {"outcome": "victory", "length": 1}  # the session's, across the modes
    assert s["recent"] == ["victory", "defeat", "defeat", "victory"]
    refused = post_json(gateway.url, f"{api(channel)}/adjust", {"outcome": "defeat", "delta": -1})
    assert refused.status_code == 409 and "in My 6v6" in refused.json()["detail"]
    # a new session keeps the mode
    s = post_json(gateway.url, f"{api(channel)}/sessions", {}).json()["status"]
    assert (s["mode"], s["by_mode"], s["total"]) == ("My 6v6", {}, 0)
    ended = get(gateway, f"{api(channel)}/sessions").json()["sessions"][1]
    assert ended["summary"]["by_mode"]["quickplay"] == {"victories": 0, "defeats": 2, "draws": 0}
    events = get(gateway, f"{api(channel)}/history").json()["events"]
    assert [(e["type"], e["mode"]) for e in events[:3]] == [
        ("session_started", "My 6v6"), ("adjusted", "My 6v6"), ("mode_changed", "My 6v6")]
    assert events[-2]["mode"] == "" and any(e["note"] == "with friends" for e in events)
    lines = get(gateway, f"{api(channel)}/export?format=csv").text.strip().splitlines()
    assert lines[0].endswith(",mode") and lines[-1].endswith(",My 6v6")
    rows = [json.loads(line) for line in get(gateway, f"{api(channel)}/export?format=jsonl").text.splitlines()]
    assert [row["mode"] for row in rows].count("quickplay") == 2


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"mode": "x" * 33}, "at most 32"),
        ({"mode": "a/b"}, "'/'"),
        ({"mode": 3}, "mode"),
        ({}, "mode"),
        ({"mode": "arcade", "extra": 1}, "unknown field 'extra'"),
    ],
)
def test_mode_bad_bodies_are_422(gateway: GatewayThread, body: Any, needle: str) -> None:
    r = post_json(gateway.url, f"{api('default')}/mode", body)
    assert r.status_code == 422, r.text
    assert needle in r.json()["detail"], r.json()


def test_mode_is_guarded_like_every_mutation(gateway: GatewayThread, channel: str) -> None:
    url = f"{gateway.url}{api(channel)}/mode"
    r = httpx.post(url, json={"mode": "arcade"}, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    r = httpx.post(url, content=b'{"mode": "arcade"}', headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert httpx.post(f"{gateway.url}{api('nope-' + uuid.uuid4().hex[:6])}/mode", json={"mode": ""}).status_code == 404
    assert get(gateway, f"{api(channel)}/status").json()["mode"] == ""
    assert "/api/v1/channels/{ch}/mode" in get(gateway, "/openapi.json").json()["paths"]
