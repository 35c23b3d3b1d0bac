"""The gateway's Automations API (/api/v1/actions) against a real redis-server, the real actions
worker and a real local webhook receiver."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis

from services.actions.webhooks import WebhookAction
from services.common.config.settings import Settings
from services.common.contracts import health
from services.common.contracts.health import ActionsHealth
from services.common.contracts.keys import Keys
from tests.support.actions import add_event, pending, start_worker
from tests.support.gateway import GatewayThread, post_json
from tests.support.waiting import wait_until
from tests.support.webhook_receiver import Receiver

ACTIONS = "/api/v1/actions"


def hook_settings(settings_factory: Callable[..., Settings], receiver: Receiver, **extra: Any) -> Settings:
    """One JSON webhook `hook` to the receiver and a Discord-preset one that goes nowhere (never sent)."""
    return settings_factory(
        actions__webhooks=[
            {"url": receiver.url, "name": "hook"},
            {"url": "https://discord.example/api/webhooks/1/SECRET", "name": "discord", "preset": "discord",
             "events": ["detected"]},
        ],
        actions__max_attempts=2, actions__retry_initial_s=0.05, actions__retry_max_s=0.1, **extra,
    )


@pytest.fixture
def gateway_for() -> Iterator[Callable[[Settings], GatewayThread]]:
    started: list[GatewayThread] = []

    def start(settings: Settings) -> GatewayThread:
        gw = GatewayThread(settings).start()
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.stop()


def listing(gw: GatewayThread) -> dict[str, Any]:
    r = httpx.get(f"{gw.url}{ACTIONS}", timeout=15)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def action(data: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [a for a in data["actions"] if a["name"] == name]
    return found


def retry_letters(client: redis.Redis, keys: Keys) -> list[dict[str, Any]]:
    """The retry list as the service works through it: oldest first (it pops from the right)."""
    return [json.loads(raw) for raw in reversed(client.lrange(keys.action_retry, 0, -1))]


def test_no_action_configured_is_an_empty_list_and_a_stopped_service(
    settings_factory: Callable[..., Settings], gateway_for: Callable[[Settings], GatewayThread]
) -> None:
    gw = gateway_for(settings_factory())
    data = listing(gw)
    assert data["actions"] == []
    assert data["service"] == {"running": False, "last_seen_at": None}
    assert data["chat"] is None
    r = post_json(gw.url, f"{ACTIONS}/hook/test", {})
    assert r.status_code == 404
    assert r.json()["code"] == "not_found" and "configured: none" in r.json()["detail"]


def test_each_action_with_what_it_does_its_last_delivery_and_its_dead_letters(
    redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings], receiver: Receiver,
    gateway_for: Callable[[Settings], GatewayThread],
) -> None:
    settings = hook_settings(settings_factory, receiver)
    gw = gateway_for(settings)
    data = listing(gw)
    assert [(a["name"], a["kind"], a["configured"]) for a in data["actions"]] == [
        ("hook", "webhook", True), ("discord", "discord", True)
    ]
    hook = action(data, "hook")
    assert hook["description"] == f"Sends the result as JSON to http://127.0.0.1:{receiver.port}/… " \
                                  "(every change of the counts)."
    assert "SECRET" not in json.dumps(data)  # a Discord webhook URL is its token
    assert action(data, "discord")["description"] == "Posts a message in your Discord channel (only detected results)."
    assert hook["last"] is None and hook["dead_letters"] == 0 and hook["recent_dead_letters"] == []

    receiver.default_status = 502
    w = start_worker(redis_client, keys, settings, [WebhookAction(settings.actions.webhooks[0])])
    try:
        failed = add_event(redis_client, keys, "default", "detected", "victory", 1, (1, 0, 0), source="auto")
        wait_until(lambda: action(listing(gw), "hook")["dead_letters"] == 1, message="a dead letter in the listing")
        data = wait_until(lambda: (d := listing(gw))["service"]["running"] and d, message="the service's heartbeat")
        hook = action(data, "hook")
        assert hook["last"]["ok"] is False and hook["last"]["status"] == "dead"
        assert hook["last"]["result"] == "HTTP 502" and hook["last"]["event_id"] == failed
        assert hook["last"]["event_type"] == "detected" and hook["last"]["outcome"] == "victory"
        (letter,) = hook["recent_dead_letters"]
        assert letter["event_id"] == failed and letter["error"] == "HTTP 502" and letter["channel"] == "default"
        assert letter["event_type"] == "detected" and letter["outcome"] == "victory" and not letter["test"]
        assert letter["attempts"] == 2 and abs(letter["at"] - time.time() * 1000) < 60_000

        receiver.default_status = 200
        ok = add_event(redis_client, keys, "default", "adjusted", "defeat", 1, (1, 1, 0))
        wait_until(lambda: (action(listing(gw), "hook")["last"] or {}).get("event_id") == ok, message="delivered")
        hook = action(listing(gw), "hook")
        assert hook["last"]["ok"] is True and hook["last"]["result"] == "HTTP 200"
        assert hook["last"]["event_type"] == "adjusted" and hook["dead_letters"] == 1  # still waiting for a retry
    finally:
        w.close()


def test_retry_moves_the_dead_letters_to_the_retry_list_and_the_service_sends_them(
    redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings], receiver: Receiver,
    gateway_for: Callable[[Settings], GatewayThread],
) -> None:
    settings = hook_settings(settings_factory, receiver)
    gw = gateway_for(settings)
    receiver.default_status = 503
    w = start_worker(redis_client, keys, settings, [WebhookAction(settings.actions.webhooks[0])])
    try:
        ids = [add_event(redis_client, keys, "default", "detected", o, 1, (1, 0, 0), source="auto")
               for o in ("victory", "defeat", "draw")]
        wait_until(lambda: redis_client.llen(keys.action_dlq("hook")) == 3 and pending(redis_client, keys) == 0,
                   message="three dead letters")
    finally:
        w.close()  # stopped: what the button queues stays on the retry list where we can see it
    assert action(listing(gw), "hook")["dead_letters"] == 3
    assert [d["event_id"] for d in action(listing(gw), "hook")["recent_dead_letters"]] == ids[::-1]  # newest first

    r = post_json(gw.url, f"{ACTIONS}/hook/retry", {})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["queued"] == 3 and body["event_id"] is None and body["action"] == "hook"
    assert body["detail"].startswith("hook: 3 dead letters queued again")
    assert redis_client.llen(keys.action_dlq("hook")) == 0
    assert [(letter["action"], letter["id"]) for letter in retry_letters(redis_client, keys)] == [
        ("hook", i) for i in ids
    ]
    data = listing(gw)
    assert action(data, "hook")["dead_letters"] == 0 and action(data, "hook")["queued"] == 3
    # nothing left: a second press says so
    again = post_json(gw.url, f"{ACTIONS}/hook/retry", {}).json()
    assert again["queued"] == 0 and again["detail"] == "hook: no dead letters to send again"

    receiver.default_status = 200
    before = len(receiver.snapshot())
    w = start_worker(redis_client, keys, settings, [WebhookAction(settings.actions.webhooks[0])])
    try:
        wait_until(lambda: redis_client.llen(keys.action_retry) == 0 and len(receiver.snapshot()) == before + 3,
                   message="the three sent again")
    finally:
        w.close()
    assert [r.key for r in receiver.snapshot()[before:]] == [f"default/{i}" for i in ids]  # oldest first
    hook = action(listing(gw), "hook")
    assert hook["queued"] == 0 and hook["dead_letters"] == 0 and hook["last"]["ok"] is True


def test_a_test_event_is_queued_marked_as_a_test_and_sent_once(
    redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings], receiver: Receiver,
    gateway_for: Callable[[Settings], GatewayThread],
) -> None:
    settings = hook_settings(settings_factory, receiver)
    gw = gateway_for(settings)
    r = post_json(gw.url, f"{ACTIONS}/hook/test", {})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["queued"] == 1 and body["event_id"].startswith("test-")
    assert body["service_running"] is False and "not running" in body["detail"]  # honest: nobody sends it yet
    (letter,) = retry_letters(redis_client, keys)
    assert letter["action"] == "hook" and letter["test"] is True and letter["channel"] == "default"
    assert letter["id"] == body["event_id"] and letter["fields"]["outcome"] == "victory"
    assert redis_client.xlen(keys.events("default")) == 0  # the log is untouched

    w = start_worker(redis_client, keys, settings, [WebhookAction(settings.actions.webhooks[0])])
    try:
        wait_until(lambda: redis_client.llen(keys.action_retry) == 0 and receiver.snapshot(), message="the test sent")
        last = wait_until(lambda: action(listing(gw), "hook")["last"], message="its record")
    finally:
        w.close()
    (got,) = receiver.snapshot()
    assert got.headers["x-owc-test"] == "1" and got.json["test"] is True
    assert got.json["event"]["id"] == body["event_id"] and got.json["text"].startswith("[test] VICTORY!")
    assert last["test"] is True and last["ok"] is True and last["event_id"] == body["event_id"]
    # another channel: it must exist
    r = post_json(gw.url, f"{ACTIONS}/hook/test", {"channel": "nosuchchannel"})
    assert r.status_code == 404 and "unknown channel" in r.json()["detail"]


@pytest.mark.parametrize("verb", ["retry", "test"])
def test_unknown_or_invalid_action_names(
    settings_factory: Callable[..., Settings], receiver: Receiver, gateway_for: Callable[[Settings], GatewayThread],
    verb: str,
) -> None:
    gw = gateway_for(hook_settings(settings_factory, receiver))
    r = post_json(gw.url, f"{ACTIONS}/nosuch/{verb}", {})
    assert r.status_code == 404
    assert r.json() == {"detail": "no action named 'nosuch' is configured (configured: hook, discord; "
                                  "see docs/actions.md)", "code": "not_found"}
    r = post_json(gw.url, f"{ACTIONS}/b%C3%A4d%20name/{verb}", {})
    assert r.status_code == 422 and r.json()["code"] == "invalid"
    r = post_json(gw.url, f"{ACTIONS}/hook/{verb}", {"unknown": 1})
    assert r.status_code == 422 and "unknown field" in r.json()["detail"]


def test_the_chat_bot_state_and_actions_only_the_running_service_has(
    redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings], receiver: Receiver,
    gateway_for: Callable[[Settings], GatewayThread],
) -> None:
    settings = hook_settings(settings_factory, receiver, actions__chat__enabled=True, actions__chat__nick="OwBot")
    gw = gateway_for(settings)
    chat = action(listing(gw), "chat")
    assert chat["kind"] == "chat" and "#owbot" in chat["description"]
    # what `owc actions` publishes when Twitch refuses the token (services/actions/chat.py)
    record = ActionsHealth(actions="hook,discord,chat,elsewhere", dead_letters=0, chat="auth_failed",
                           chat_channel="#owbot")
    health.publish(redis_client, keys, "default", record)
    data = listing(gw)
    assert data["service"]["running"] is True
    assert data["chat"] == {"state": "auth_failed", "channel": "#owbot", "ok": False}
    extra = action(data, "elsewhere")
    assert extra["kind"] == "other" and extra["configured"] is False
    assert post_json(gw.url, f"{ACTIONS}/elsewhere/test", {}).status_code == 200  # the service has it

    health.publish(redis_client, keys, "default", record.updated(chat="connected"))
    assert listing(gw)["chat"] == {"state": "connected", "channel": "#owbot", "ok": True}
    # a record the service stopped renewing (it expires after 30 s) is a stopped service
    stale = int(time.time() * 1000) - 20_000
    redis_client.hset(keys.health("default", "actions"), "updated_at", str(stale))
    data = listing(gw)
    assert data["service"] == {"running": False, "last_seen_at": None} and data["chat"] is None
    assert post_json(gw.url, f"{ACTIONS}/elsewhere/test", {}).status_code == 200  # still known, queued for later


def test_retry_and_test_are_guarded_like_every_change(
    redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings], receiver: Receiver,
    gateway_for: Callable[[Settings], GatewayThread],
) -> None:
    gw = gateway_for(hook_settings(settings_factory, receiver, gateway__admin_token="t0ken"))
    for verb in ("retry", "test"):
        url = f"{gw.url}{ACTIONS}/hook/{verb}"
        r = httpx.post(url, json={}, headers={"Origin": "https://evil.example", "Authorization": "Bearer t0ken"})
        assert r.status_code == 403 and r.json()["code"] == "cross_origin"
        r = httpx.post(url, json={}, headers={"Sec-Fetch-Site": "cross-site", "Authorization": "Bearer t0ken"})
        assert r.status_code == 403
        r = httpx.post(url, content=b"{}", headers={"Content-Type": "text/plain", "Authorization": "Bearer t0ken"})
        assert r.status_code == 415
        assert post_json(gw.url, f"{ACTIONS}/hook/{verb}", {}).status_code == 401
        assert post_json(gw.url, f"{ACTIONS}/hook/{verb}", {}, token="wrong").status_code == 401
        assert redis_client.llen(keys.action_retry) == 0  # nothing refused was queued
    r = post_json(gw.url, f"{ACTIONS}/hook/test", {}, token="t0ken")
    assert r.status_code == 200
    r = httpx.post(f"{gw.url}{ACTIONS}/hook/test", json={}, timeout=15,
                   headers={"Origin": gw.url, "Authorization": "Bearer t0ken"})
    assert r.status_code == 200  # the admin page itself
    assert redis_client.llen(keys.action_retry) == 2
    assert httpx.get(f"{gw.url}{ACTIONS}").status_code == 200  # reading needs no token, like every read


def test_the_openapi_documents_the_actions_operations(
    settings_factory: Callable[..., Settings], gateway_for: Callable[[Settings], GatewayThread]
) -> None:
    gw = gateway_for(settings_factory())
    paths = httpx.get(f"{gw.url}/openapi.json").json()["paths"]
    assert set(paths[ACTIONS]) == {"get"}
    for verb in ("retry", "test"):
        op = paths[f"{ACTIONS}/{{name}}/{verb}"]["post"]
        for status in ("404", "422", "401", "403"):
            assert op["responses"][status]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorOut"
            }
