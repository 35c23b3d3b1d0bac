"""Named overlay presets (``/api/v1/overlay/presets``) against a real redis-server."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from services.common.contracts.keys import Keys
from services.gateway.presets import MAX_PRESETS
from tests.support.gateway import GatewayThread, settings_for
from tests.support.redis_proc import RedisServer

PRESETS = "/api/v1/overlay/presets"
LOOK = {"theme": "panel", "show": ["counts", "streak", "recent"], "recent": 8, "goal": 10, "size": 64,
        "scale": 1.5, "victory": "00e0ff", "defeat": "F0A", "flash": False, "sound": True, "volume": 0.5,
        "mode": "Quick Play"}


@pytest.fixture
def keys() -> Keys:
    return Keys(f"pr{uuid.uuid4().hex[:8]}")


@pytest.fixture
def gateway(redis_server: RedisServer, keys: Keys, tmp_path: Path) -> Iterator[GatewayThread]:
    gw = GatewayThread(settings_for(redis_server.url, keys.prefix), tmp_path).start()
    yield gw
    gw.stop()


def put(gw: GatewayThread, name: str, body: Any, **headers: str) -> httpx.Response:
    return httpx.put(f"{gw.url}{PRESETS}/{name}", json=body, headers=headers, timeout=15)


def delete(gw: GatewayThread, name: str, **headers: str) -> httpx.Response:
    return httpx.delete(f"{gw.url}{PRESETS}/{name}", headers={"Content-Type": "application/json", **headers},
                        timeout=15)


def get(gw: GatewayThread, path: str) -> httpx.Response:
    return httpx.get(f"{gw.url}{path}", timeout=15)


def test_save_read_list_replace_delete(gateway: GatewayThread, redis_client: redis.Redis, keys: Keys) -> None:
    assert get(gateway, PRESETS).json() == {"presets": []}
    r = put(gateway, "stream-main", {"params": LOOK})
    assert r.status_code == 200, r.text
    saved = r.json()
    assert saved["name"] == "stream-main"
    assert saved["params"] == {**LOOK, "mode": "quickplay", "draw": None, "text": None}  # the stored mode name
    assert saved["query"] == {"theme": "panel", "show": "counts,streak,recent", "recent": "8", "goal": "10",
                              "size": "64", "scale": "1.5", "victory": "00e0ff", "defeat": "F0A", "flash": "0",
                              "sound": "1", "volume": "0.5", "mode": "quickplay"}
    assert get(gateway, f"{PRESETS}/stream-main").json() == saved
    stored = json.loads(redis_client.hget(keys.overlay_presets, "stream-main") or b"")
    assert stored["params"]["theme"] == "panel" and stored["updated_at"] == saved["updated_at"]
    # absent parameters are the overlay's defaults: nothing stored for them
    plain = put(gateway, "plain", {"params": {}}).json()
    assert set(plain["params"].values()) == {None} and plain["query"] == {}
    assert json.loads(redis_client.hget(keys.overlay_presets, "plain") or b"")["params"] == {}
    assert [p["name"] for p in get(gateway, PRESETS).json()["presets"]] == ["plain", "stream-main"]
    # replacing keeps one preset of that name
    again = put(gateway, "stream-main", {"params": {"theme": "row"}}).json()
    assert again["query"] == {"theme": "row"} and len(get(gateway, PRESETS).json()["presets"]) == 2
    r = delete(gateway, "stream-main")
    assert r.status_code == 204 and r.content == b""
    assert get(gateway, f"{PRESETS}/stream-main").status_code == 404
    r = delete(gateway, "stream-main")
    assert r.status_code == 404 and r.json()["code"] == "not_found"


@pytest.mark.parametrize(
    ("name", "body", "why"),
    [
        ("Main", {"params": {}}, "name"),  # upper case
        ("-x", {"params": {}}, "name"),
        ("a" * 33, {"params": {}}, "name"),
        ("a_b", {"params": {}}, "name"),
        ("ok", {"params": {"theme": "neon"}}, "theme"),
        ("ok", {"params": {"show": []}}, "show"),
        ("ok", {"params": {"show": ["counts", "counts"]}}, "once"),
        ("ok", {"params": {"show": ["chat"]}}, "show"),
        ("ok", {"params": {"recent": 21}}, "recent"),
        ("ok", {"params": {"recent": "5"}}, "recent"),  # strict: a number, not its text
        ("ok", {"params": {"size": 8}}, "size"),
        ("ok", {"params": {"scale": 5}}, "scale"),
        ("ok", {"params": {"victory": "#00e0ff"}}, "victory"),
        ("ok", {"params": {"text": "red"}}, "text"),
        ("ok", {"params": {"flash": 1}}, "flash"),
        ("ok", {"params": {"volume": 2}}, "volume"),
        ("ok", {"params": {"mode": "a/b"}}, "mode"),
        ("ok", {"params": {"channel": "default"}}, "channel"),  # a preset is a look, not a channel
        ("ok", {"params": {"onload": "alert(1)"}}, "onload"),
        ("ok", {"theme": "panel"}, "theme"),  # the parameters belong in `params`
        ("ok", [], "body"),
    ],
)
def test_bad_input_is_a_422_and_changes_nothing(
    gateway: GatewayThread, redis_client: redis.Redis, keys: Keys, name: str, body: Any, why: str
) -> None:
    assert put(gateway, "ok", {"params": {"theme": "ow"}}).status_code == 200
    before = redis_client.hgetall(keys.overlay_presets)
    r = put(gateway, name, body)
    assert r.status_code == 422, r.text
    out = r.json()
    assert out["code"] == "invalid" and why in json.dumps(out), out
    assert redis_client.hgetall(keys.overlay_presets) == before


def test_mutations_are_guarded_and_reads_are_open(
    redis_server: RedisServer, keys: Keys, tmp_path: Path, redis_client: redis.Redis
) -> None:
    secret = "s3cret-" + uuid.uuid4().hex
    gw = GatewayThread(settings_for(redis_server.url, keys.prefix, **{"gateway.admin_token": secret}), tmp_path)
    gw.start()
    try:
        bearer = {"Authorization": f"Bearer {secret}"}
        assert put(gw, "look", {"params": {}}).status_code == 401
        assert put(gw, "look", {"params": {}}, Authorization="Bearer wrong").status_code == 401
        r = put(gw, "look", {"params": {}}, Origin="http://evil.example", **bearer)
        assert r.status_code == 403 and r.json()["code"] == "cross_origin"
        r = httpx.put(f"{gw.url}{PRESETS}/look", content=b"params=x", headers={
            "Content-Type": "application/x-www-form-urlencoded", **bearer})
        assert r.status_code == 415
        assert redis_client.exists(keys.overlay_presets) == 0  # none of them wrote anything
        assert put(gw, "look", {"params": {"theme": "row"}}, Origin=gw.url, **bearer).status_code == 200
        # the overlay in OBS has no token: reading stays open
        assert get(gw, f"{PRESETS}/look").json()["params"]["theme"] == "row"
        assert get(gw, PRESETS).status_code == 200
        assert delete(gw, "look").status_code == 401
        r = httpx.request("DELETE", f"{gw.url}{PRESETS}/look", content=b"params=x", headers={
            "Content-Type": "application/x-www-form-urlencoded", **bearer})
        assert r.status_code == 415
        r = httpx.request("DELETE", f"{gw.url}{PRESETS}/look", content=b"x", headers=bearer)  # a body: JSON only
        assert r.status_code == 415
        assert get(gw, f"{PRESETS}/look").status_code == 200
        assert delete(gw, "look", **bearer).status_code == 204
    finally:
        gw.stop()


def test_the_number_of_presets_is_bounded(gateway: GatewayThread, redis_client: redis.Redis, keys: Keys) -> None:
    value = json.dumps({"params": {}, "updated_at": 1})
    redis_client.hset(keys.overlay_presets, mapping={f"p{i}": value for i in range(MAX_PRESETS)})
    r = put(gateway, "one-more", {"params": {}})
    assert r.status_code == 409 and str(MAX_PRESETS) in r.json()["detail"]
    assert put(gateway, "p7", {"params": {"theme": "row"}}).status_code == 200  # replacing one is fine
    assert redis_client.hlen(keys.overlay_presets) == MAX_PRESETS


def test_an_unreadable_stored_preset_is_skipped_not_a_500(
    gateway: GatewayThread, redis_client: redis.Redis, keys: Keys
) -> None:
    put(gateway, "good", {"params": {"theme": "row"}})
    redis_client.hset(keys.overlay_presets, mapping={"bad": b"{not json", "odd": json.dumps(
        {"params": {"theme": "neon"}, "updated_at": 1})})
    assert [p["name"] for p in get(gateway, PRESETS).json()["presets"]] == ["good"]
    assert get(gateway, f"{PRESETS}/bad").status_code == 404


def test_a_delete_needs_no_body_nor_content_type_as_its_schema_says(
    gateway: GatewayThread, redis_client: redis.Redis, keys: Keys
) -> None:
    operation = get(gateway, "/openapi.json").json()["paths"][f"{PRESETS}/{{name}}"]["delete"]
    assert "requestBody" not in operation
    assert put(gateway, "bare", {"params": {}}).status_code == 200
    r = httpx.delete(f"{gateway.url}{PRESETS}/bare", timeout=15)  # as any HTTP client sends it
    assert r.status_code == 204, r.text
    assert redis_client.hexists(keys.overlay_presets, "bare") == 0


def test_a_mode_is_32_characters_in_the_schema_as_in_the_code(gateway: GatewayThread) -> None:
    schema = get(gateway, "/openapi.json").json()["components"]["schemas"]["OverlayParams"]["properties"]["mode"]
    assert [s["maxLength"] for s in schema["anyOf"] if s.get("type") == "string"] == [32]
    assert put(gateway, "long", {"params": {"mode": "m" * 33}}).status_code == 422
    assert put(gateway, "long", {"params": {"mode": " " + "m" * 32 + " "}}).json()["params"]["mode"] == "m" * 32


def test_the_openapi_documents_the_preset_operations(gateway: GatewayThread) -> None:
    paths = get(gateway, "/openapi.json").json()["paths"]
    assert set(paths[PRESETS]) == {"get"}
    one = paths[f"{PRESETS}/{{name}}"]
    assert set(one) == {"get", "put", "delete"}
    for method in ("put", "delete"):
        assert {"401", "403", "415", "422"} <= set(one[method]["responses"])
        assert one[method]["responses"]["422"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorOut"}
