"""The Automations card's Twitch block in headless Chromium: the real actions worker and prediction
loop against the local Helix server, the Cancel button ending the prediction on "Twitch", and a red
row for a refused token."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import redis

from services.actions.twitch.service import start_twitch
from services.common.contracts import health
from services.common.contracts.health import ActionsHealth
from services.common.contracts.keys import Keys
from tests.support.actions import start_worker
from tests.support.gateway import SCREENSHOTS, GatewayThread, chromium, settings_for
from tests.support.helix import CLIENT_ID, HelixServer
from tests.support.redis_proc import RedisServer
from tests.support.waiting import wait_until

pytestmark = pytest.mark.browser


def twitch_settings(redis_server: RedisServer, prefix: str, helix: HelixServer, token_file: Path) -> Any:
    return settings_for(redis_server.url, prefix, **{
        "actions.twitch.enabled": True, "actions.twitch.client_id": CLIENT_ID,
        "actions.twitch.oauth_url": helix.oauth_url, "actions.twitch.helix_url": helix.helix_url,
        "actions.twitch.token_file": str(token_file), "actions.twitch.markers": False,
        "gateway.admin_token": "t0ken",
    })


def test_the_card_shows_the_prediction_and_its_cancel_button_ends_it(
    redis_server: RedisServer, prefix: str, keys: Keys, helix: HelixServer, tmp_path: Path
) -> None:
    token_file = tmp_path / "token.json"
    token_file.write_text(helix.issue().file_json())
    settings = twitch_settings(redis_server, prefix, helix, token_file)
    client: redis.Redis = redis_server.client()
    client.hset(keys.state("default"), mapping={"phase": "ready", "last_event_id": ""})
    stop = threading.Event()
    actions = start_twitch(settings.actions.twitch, client, keys, stop)
    w = start_worker(client, keys, settings, actions, stop=stop)
    health.publish(client, keys, "default", ActionsHealth(actions="twitch-prediction"))
    gw = GatewayThread(settings).start()
    try:
        wait_until(lambda: helix.current() is not None, message="the prediction opened at the re-arm")
        with chromium() as browser:
            page = browser.new_context(viewport={"width": 1100, "height": 900}).new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{gw.url}/admin?token=t0ken")  # the admin page keeps it (localStorage)
            page.wait_for_selector('[data-testid="auto-twitch-prediction"][data-status="open"]', timeout=15_000)
            text = page.locator('[data-testid="auto-twitch"]').inner_text()
            assert "signed in as owcstreamer" in text and "Will we win this match?" in text
            assert page.locator('[data-testid="auto-twitch-token"]').get_attribute("class") == "victory"
            assert page.locator('[data-testid="auto-twitch-open"]').is_disabled()
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.locator('[data-testid="automations"]').screenshot(path=str(SCREENSHOTS / "admin-twitch.png"))
            page.click('[data-testid="auto-twitch-cancel"]')
            page.wait_for_selector('[data-testid="auto-twitch-prediction"][data-status="cancelled"]',
                                   timeout=15_000)
            assert helix.predictions[0].status == "CANCELED" and len(helix.predictions) == 1
            assert "cancelled by admin" in page.locator('[data-testid="auto-twitch"]').inner_text()
            # a revoked sign-in: a red row with what to do
            client.hset(keys.twitch_status, mapping={
                "token": "refused", "message": "Twitch refused the token (invalid access token): run "
                "`owc actions twitch-login`"})
            page.wait_for_selector('[data-testid="auto-twitch-token"][data-state="refused"]', timeout=15_000)
            assert page.locator('[data-testid="auto-twitch-token"]').get_attribute("class") == "defeat"
            assert errors == []
    finally:
        gw.stop()
        w.close()
        client.close()
