"""The admin page's Automations panel in headless Chromium: the real actions worker delivering to a
real local webhook receiver, driven by the panel's buttons."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from services.actions.webhooks import WebhookAction
from services.common.config.settings import Settings
from services.common.contracts import health
from services.common.contracts.health import ActionsHealth
from services.common.contracts.keys import Keys
from tests.support.actions import add_event, start_worker
from tests.support.gateway import SCREENSHOTS, GatewayThread, chromium, settings_for
from tests.support.redis_proc import RedisServer
from tests.support.waiting import wait_until
from tests.support.webhook_receiver import Receiver

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    c = redis_server.client()
    yield c
    c.close()


def open_admin(browser: Any, url: str, width: int = 1100) -> tuple[Any, Any, list[str]]:
    context = browser.new_context(viewport={"width": width, "height": 900}, is_mobile=width < 500)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(f"{url}/admin")
    return context, page, errors


def settings_with_hook(redis_server: RedisServer, prefix: str, receiver: Receiver, **extra: Any) -> Settings:
    return settings_for(redis_server.url, prefix, **{
        "actions.webhooks": [{"url": receiver.url, "name": "hook"}],
        "actions.max_attempts": 1,
        **extra,
    })


def test_the_buttons_send_a_test_event_and_retry_a_dead_letter(
    browser: Any, redis_server: RedisServer, prefix: str, keys: Keys, client: redis.Redis, receiver: Receiver
) -> None:
    settings = settings_with_hook(redis_server, prefix, receiver)
    gw = GatewayThread(settings).start()
    w = start_worker(client, keys, settings, [WebhookAction(settings.actions.webhooks[0])])
    context, page, errors = open_admin(browser, gw.url)
    try:
        page.wait_for_selector('[data-testid="auto-hook"]')
        page.wait_for_selector('#auto-service[data-running="true"]', timeout=15_000)
        assert "Nothing sent yet." in page.locator('[data-testid="auto-hook"]').inner_text()
        assert page.locator('[data-testid="auto-retry-hook"]').is_disabled()  # no dead letter to retry

        # "Send a test event": the receiver gets exactly one request, marked as a test
        page.click('[data-testid="auto-test-hook"]')
        page.wait_for_selector("#message.ok")
        assert "test event queued" in page.locator("#message").inner_text()
        page.wait_for_function(
            "() => document.querySelector('[data-testid=\"auto-hook\"] .auto-last.victory')"
            "?.textContent.includes('sent test VICTORY')", timeout=15_000)
        wait_until(lambda: client.llen(keys.action_retry) == 0, message="the retry list worked through")
        (got,) = receiver.snapshot()
        assert got.headers["x-owc-test"] == "1" and got.json["test"] is True
        assert got.json["text"].startswith("[test] VICTORY!")
        assert client.xlen(keys.events("default")) == 0  # a test never touches the log

        # a delivery the receiver refuses becomes a dead letter, shown in red with its error
        receiver.default_status = 404
        eid = add_event(client, keys, "default", "detected", "defeat", 1, (0, 1, 0), source="auto")
        dead = page.locator('[data-testid="auto-dead-hook"]')
        dead.wait_for(timeout=15_000)
        assert "1 failed delivery waiting" in dead.inner_text()
        assert page.locator('[data-testid="auto-hook"] .auto-last.defeat').is_visible()
        dead.locator("summary").click()
        item = dead.locator("li")
        item.wait_for()
        assert "DEFEAT (detected)" in item.inner_text() and "HTTP 404" in item.inner_text()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.locator('[data-testid="automations"]').screenshot(path=str(SCREENSHOTS / "admin-automations.png"))

        # "Retry dead letters" queues it again; the service sends it, once
        receiver.default_status = 200
        before = len(receiver.snapshot())
        page.click('[data-testid="auto-retry-hook"]')
        page.wait_for_function("() => document.getElementById('message').textContent.includes("
                               "'1 dead letter queued again') && document.getElementById('message').className === 'ok'")
        wait_until(lambda: len(receiver.snapshot()) == before + 1, message="the dead letter sent again")
        assert receiver.snapshot()[-1].key == f"default/{eid}" and "x-owc-test" not in receiver.snapshot()[-1].headers
        dead.wait_for(state="detached", timeout=15_000)
        page.wait_for_function(
            "() => document.querySelector('[data-testid=\"auto-hook\"] .auto-last.victory')"
            "?.textContent.includes('sent DEFEAT (detected)')", timeout=15_000)
        assert client.llen(keys.action_dlq("hook")) == 0 and len(receiver.snapshot()) == before + 1
        assert not errors, errors
    finally:
        context.close()
        w.close()
        gw.stop()


def test_a_wrong_chat_token_is_red_and_the_panel_fits_a_phone(
    browser: Any, redis_server: RedisServer, prefix: str, keys: Keys, client: redis.Redis, receiver: Receiver
) -> None:
    settings = settings_with_hook(redis_server, prefix, receiver, **{
        "actions.chat.enabled": True, "actions.chat.nick": "owbot",
    })
    # a dead letter with a long error, as the worker writes them, to test the width
    w = start_worker(client, keys, settings, [WebhookAction(settings.actions.webhooks[0])])
    receiver.default_status = 410
    try:
        add_event(client, keys, "default", "detected", "victory", 1, (1, 0, 0), source="auto")
        wait_until(lambda: client.llen(keys.action_dlq("hook")) == 1, message="a dead letter")
    finally:
        w.close()
    # what a running `owc actions` publishes when Twitch refuses the bot's token (services/actions/chat.py)
    health.publish(client, keys, "default",
                   ActionsHealth(actions="hook,chat", dead_letters=1, chat="auth_failed", chat_channel="#owbot"))
    gw = GatewayThread(settings).start()
    context, page, errors = open_admin(browser, gw.url, width=390)
    try:
        line = page.locator('[data-testid="auto-chat"][data-state="auth_failed"]')
        line.wait_for()
        assert "refused the bot's token" in line.inner_text()
        assert page.evaluate("getComputedStyle(document.getElementById('auto-chat')).color") == "rgb(255, 90, 90)"
        page.locator('[data-testid="auto-dead-hook"] summary').click()
        page.locator('[data-testid="auto-dead-hook"] li').wait_for()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert page.evaluate("document.body.scrollWidth") <= 390
        for testid in ("auto-retry-hook", "auto-test-hook", "auto-test-chat"):
            box = page.locator(f'[data-testid="{testid}"]').bounding_box()
            assert box is not None and box["x"] + box["width"] <= 390, testid
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.locator('[data-testid="automations"]').screenshot(path=str(SCREENSHOTS / "admin-automations-390.png"))
        assert not errors, errors
    finally:
        context.close()
        gw.stop()


def test_no_automations_is_one_plain_sentence(browser: Any, redis_server: RedisServer, prefix: str) -> None:
    gw = GatewayThread(settings_for(redis_server.url, prefix)).start()
    context, page, errors = open_admin(browser, gw.url, width=390)
    try:
        none = page.locator('[data-testid="auto-none"]')
        none.wait_for()
        assert "docs/actions.md" in none.inner_text()
        assert page.locator('[data-testid="auto-service"]').is_hidden()
        assert page.locator('[data-testid="auto-list"] .auto-row').count() == 0
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert not errors, errors
    finally:
        context.close()
        gw.stop()
