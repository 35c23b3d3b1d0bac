"""The overlay and the admin page in the system's headless Chromium, against the real state service."""

from __future__ import annotations

import functools
import http.server
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from services.common.contracts import health
from services.common.contracts.health import CaptureHealth, InferenceHealth
from services.common.contracts.keys import Keys
from services.common.contracts.messages import Event, Label
from tests.support.gateway import (
    SCREENSHOTS,
    GatewayThread,
    ServiceProcess,
    chromium,
    post_json,
    settings_for,
    start_state,
)
from tests.support.ports import free_port
from tests.support.redis_proc import RedisServer
from tests.support.waiting import wait_until

pytestmark = pytest.mark.browser
POLICY_WORKING = ("frame-ancestors", "https://cdn.redoc.ly/redoc/logo-mini.svg")



@pytest.fixture(scope="module")
def prefix() -> str:
    return f"e2e{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def keys(prefix: str) -> Keys:
    return Keys(prefix)


@pytest.fixture(scope="module")
def state_proc(
    redis_server: RedisServer, prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    # short cooldown so a detection is counted right away in the thumbnail test
    proc = start_state(tmp_path_factory.mktemp("state"), redis_server.url, prefix, **{"state.reorder_window_ms": 50})
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("config")


@pytest.fixture(scope="module")
def gateway(
    redis_server: RedisServer, prefix: str, state_proc: ServiceProcess, config_dir: Path
) -> Iterator[GatewayThread]:
    gw = GatewayThread(settings_for(redis_server.url, prefix), config_dir).start()
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    pg = context.new_page()
    errors: list[str] = []
    # Anything our Content-Security-Policy refused: the pages must not need it. (frame-ancestors
    # refusals are another site framing us, and ReDoc's sidebar logo is Redocly's CDN: the policy
    # working, not a page breaking.)
    blocked: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on(
        "console",
        lambda msg: blocked.append(msg.text)
        if "Content Security Policy" in msg.text and not any(ok in msg.text for ok in POLICY_WORKING)
        else None,
    )
    yield pg
    context.close()
    assert not errors, f"uncaught JavaScript errors: {errors}"
    assert not blocked, f"the pages broke their own Content-Security-Policy: {blocked}"


@pytest.fixture
def channel(redis_server: RedisServer, keys: Keys, gateway: GatewayThread) -> str:
    name = f"e{uuid.uuid4().hex[:8]}"
    client = redis_server.client()
    client.sadd(keys.channels, name)
    client.close()
    # start its session now, so the tests below see only their own changes
    post_json(gateway.url, f"/api/v1/channels/{name}/set", {"victories": 0, "defeats": 0, "draws": 0})
    return name


def counts(gw: GatewayThread, ch: str) -> tuple[int, int, int]:
    s = httpx.get(f"{gw.url}/api/v1/channels/{ch}/status").json()
    return s["victories"], s["defeats"], s["draws"]


def shot(page: Any, name: str, **kw: Any) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), **kw)


def overlay_value(page: Any, key: str) -> str:
    return str(page.locator(f'[data-count="{key}"]').text_content())


# ---------------------------------------------------------------- overlay


def test_overlay_shows_a_count_change_within_one_second(page: Any, gateway: GatewayThread, channel: str) -> None:
    page.goto(f"{gateway.url}/overlay?channel={channel}&show=counts,rate,streak,recent")
    page.wait_for_selector('#owc[data-connected="true"]', timeout=10_000)
    assert overlay_value(page, "victories") == "0"
    for expected in ("1", "2", "3"):
        started = time.monotonic()
        r = post_json(gateway.url, f"/api/v1/channels/{channel}/adjust", {"outcome": "victory"})
        assert r.status_code == 200
        page.wait_for_function(
            "v => document.querySelector('[data-count=\"victories\"]').textContent === v",
            arg=expected,
            timeout=5_000,
            polling="raf",
        )
        elapsed = time.monotonic() - started
        assert elapsed < 1.0, f"overlay updated {elapsed:.3f} s after the command"
        assert "owc-bump" in str(page.locator('[data-count="victories"]').get_attribute("class"))  # animated
    post_json(gateway.url, f"/api/v1/channels/{channel}/adjust", {"outcome": "defeat"})
    page.wait_for_function("() => document.querySelector('[data-count=\"defeats\"]').textContent === '1'")
    assert page.locator("#owc-rate").text_content() == "75%"
    assert page.locator("#owc-recent span").count() == 4
    # the page background stays transparent for OBS
    bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert bg in ("rgba(0, 0, 0, 0)", "transparent")
    page.set_viewport_size({"width": 420, "height": 180})
    shot(page, "overlay.png", omit_background=True)


def test_overlay_custom_css_query_params_and_local_font(
    page: Any, gateway: GatewayThread, channel: str, config_dir: Path
) -> None:
    (config_dir / "custom.css").write_text(":root { --owc-victory: rgb(1, 2, 3); --owc-font-size: 40px; }\n")
    try:
        requests: list[str] = []
        page.on("request", lambda req: requests.append(req.url))
        page.goto(f"{gateway.url}/overlay?channel={channel}&show=counts&theme=panel&scale=2")
        page.wait_for_selector('#owc[data-connected="true"]')
        color = page.evaluate("getComputedStyle(document.querySelector('.owc-victory .owc-value')).color")
        assert color == "rgb(1, 2, 3)"
        assert page.evaluate("getComputedStyle(document.querySelector('.owc')).fontSize") == "40px"
        assert page.locator(".owc-rate").is_hidden() and page.locator(".owc-counts").is_visible()
        assert page.evaluate("document.body.classList.contains('owc-theme-panel')")
        assert (
            page.evaluate("getComputedStyle(document.getElementById('owc')).getPropertyValue('--owc-scale')").strip()
            == "2"
        )
        box = page.locator(".owc").bounding_box()
        assert box is not None and box["height"] > 100, box  # scale=2 grows the layout (nothing clipped)
        page.evaluate("document.fonts.ready")
        assert page.evaluate("document.fonts.check('40px \"Bebas Neue\"')")
        # everything is served by the gateway itself: no CDN
        assert requests and all(u.startswith(gateway.url) for u in requests), requests
        shot(page, "overlay-custom-css.png", omit_background=True)
    finally:
        (config_dir / "custom.css").unlink(missing_ok=True)


def test_overlay_reconnects_after_a_gateway_restart(page: Any, gateway: GatewayThread, channel: str) -> None:
    page.goto(f"{gateway.url}/overlay?channel={channel}")
    page.wait_for_selector('#owc[data-connected="true"]')
    gateway.stop()
    page.wait_for_selector("#owc.owc-stale", timeout=10_000)  # dims while the gateway is away
    assert page.evaluate("getComputedStyle(document.getElementById('owc')).opacity") != "1"
    gateway.start()
    page.wait_for_selector('#owc[data-connected="true"]', timeout=15_000)
    post_json(gateway.url, f"/api/v1/channels/{channel}/adjust", {"outcome": "draw", "delta": 2})
    page.wait_for_function("() => document.querySelector('[data-count=\"draws\"]').textContent === '2'", timeout=5_000)
    assert not page.evaluate("document.getElementById('owc').classList.contains('owc-stale')")


OUTSIDE_JS = """() => {
  const out = [];
  for (const el of document.querySelectorAll('#owc, #owc *')) {
    if (el.offsetParent === null && el.id !== 'owc') continue;  // hidden parts
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (r.left < -0.5 || r.top < -0.5 || r.right > innerWidth + 0.5 || r.bottom > innerHeight + 0.5) {
      out.push(`${el.tagName}.${el.className} ${JSON.stringify(r)}`);
    }
  }
  return out;
}"""


@pytest.mark.parametrize("size", [(600, 300), (400, 200), (1920, 1080)])
def test_overlay_fits_its_browser_source_at_any_scale(
    browser: Any, gateway: GatewayThread, channel: str, size: tuple[int, int]
) -> None:
    """Auto-fit: no element outside the viewport at any tested size, scale, theme or number of recent results."""
    for outcome in ("victory", "defeat", "draw", "victory") * 3:  # 12 results: recent=10 is full
        post_json(gateway.url, f"/api/v1/channels/{channel}/adjust", {"outcome": outcome})
    width, height = size
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    try:
        for query in (
            "recent=10&theme=row&scale=1.5&show=counts,rate,streak,recent",  # the docs' own example
            "scale=2",
            "scale=4&theme=panel&show=counts,rate,streak,recent,goal&goal=10",
            "theme=ow&show=counts,rate,streak,recent&recent=20",
            "theme=minimal",
        ):
            page.goto(f"{gateway.url}/overlay?channel={channel}&{query}")
            page.wait_for_selector('#owc[data-connected="true"]')
            page.wait_for_function("() => document.querySelector('[data-count=\"victories\"]').textContent === '6'")
            page.evaluate("document.fonts.ready")
            assert page.evaluate(OUTSIDE_JS) == [], (size, query)
        page.goto(f"{gateway.url}/overlay?channel={channel}&theme=ow&goal=10&show=counts,rate,streak,recent,goal")
        page.wait_for_selector('#owc[data-connected="true"]')
        assert page.locator("#owc-goal").text_content() == "6 / 10 wins"
        shot(page, f"overlay-ow-{width}x{height}.png", omit_background=True)
    finally:
        context.close()


@pytest.mark.parametrize("theme", ["", "panel", "row", "minimal", "ow"])
def test_theme_pictures(browser: Any, gateway: GatewayThread, channel: str, theme: str) -> None:
    """One picture per theme over a bright and a dark strip (docs/img via `make screenshots`)."""
    for outcome in ("victory", "victory", "defeat", "draw", "victory"):
        post_json(gateway.url, f"/api/v1/channels/{channel}/adjust", {"outcome": outcome})
    context = browser.new_context(viewport={"width": 600, "height": 150})
    page = context.new_page()
    try:
        page.goto(f"{gateway.url}/overlay?channel={channel}&theme={theme}&show=counts,rate,streak,recent&goal=5")
        page.wait_for_selector('#owc[data-connected="true"]')
        page.wait_for_function("() => document.querySelector('[data-count=\"victories\"]').textContent === '3'")
        page.evaluate("document.fonts.ready")
        # what OBS would show it over: half a bright sky, half a dark corridor
        page.add_style_tag(content="html { background: linear-gradient(90deg, #cfe6ff 50%, #1b1f27 50%) !important; }")
        assert page.evaluate(OUTSIDE_JS) == []
        shot(page, f"theme-{theme or 'plain'}.png")
    finally:
        context.close()


def test_every_theme_outlines_its_text(page: Any, gateway: GatewayThread, channel: str) -> None:
    """Readable over a bright sky: every theme keeps an outline/shadow on the text."""
    for theme in ("", "panel", "row", "minimal", "ow"):
        page.goto(f"{gateway.url}/overlay?channel={channel}&theme={theme}")
        page.wait_for_selector('#owc[data-connected="true"]')
        shadow = page.evaluate("getComputedStyle(document.querySelector('.owc-victory .owc-value')).textShadow")
        assert shadow not in ("", "none") and shadow.count("rgba(0, 0, 0") >= 4, (theme, shadow)


def test_a_counted_match_gets_its_result_moment(browser: Any, gateway: GatewayThread, channel: str) -> None:
    context = browser.new_context(viewport={"width": 800, "height": 400})
    page = context.new_page()
    try:
        page.goto(f"{gateway.url}/overlay?channel={channel}&theme=ow")
        page.wait_for_selector('#owc[data-connected="true"]')
        assert page.locator("#owc-flash").get_attribute("data-count") is None  # nothing on connect
        post_json(gateway.url, f"/api/v1/channels/{channel}/adjust", {"outcome": "defeat"})
        page.wait_for_selector("#owc-flash.owc-flash-on", timeout=5_000)
        assert page.locator("#owc-flash").get_attribute("data-outcome") == "defeat"
        assert page.locator("#owc-flash-text").text_content() == "DEFEAT"
        shot(page, "overlay-result-moment.png", omit_background=True)
        page.wait_for_selector("#owc-flash:not(.owc-flash-on)", state="attached", timeout=10_000)  # it ends by itself
        # removing a match is no result moment
        post_json(gateway.url, f"/api/v1/channels/{channel}/adjust", {"outcome": "defeat", "delta": -1})
        page.wait_for_function("() => document.querySelector('[data-count=\"defeats\"]').textContent === '0'")
        assert page.locator("#owc-flash").get_attribute("data-count") == "1"
        # ?flash=0 turns it off
        page.goto(f"{gateway.url}/overlay?channel={channel}&flash=0")
        page.wait_for_selector('#owc[data-connected="true"]')
        post_json(gateway.url, f"/api/v1/channels/{channel}/adjust", {"outcome": "victory"})
        page.wait_for_function("() => document.querySelector('[data-count=\"victories\"]').textContent === '1'")
        assert page.locator("#owc-flash").get_attribute("data-count") is None
    finally:
        context.close()
    # prefers-reduced-motion: a still card instead of the sweep
    context = browser.new_context(viewport={"width": 800, "height": 400}, reduced_motion="reduce")
    page = context.new_page()
    try:
        page.goto(f"{gateway.url}/overlay?channel={channel}")
        page.wait_for_selector('#owc[data-connected="true"]')
        post_json(gateway.url, f"/api/v1/channels/{channel}/adjust", {"outcome": "draw"})
        page.wait_for_selector("#owc-flash.owc-flash-on", timeout=5_000)
        name = page.evaluate("getComputedStyle(document.getElementById('owc-flash')).animationName")
        assert name == "owc-flash-still"
    finally:
        context.close()


# ---------------------------------------------------------------- admin


def test_admin_buttons_undo_set_and_new_session(page: Any, gateway: GatewayThread, channel: str) -> None:
    page.goto(f"{gateway.url}/admin?channel={channel}")
    page.wait_for_selector('#conn[data-connected="true"]')

    def value(key: str) -> str:
        return str(page.locator(f'.row [data-count="{key}"]').text_content())

    page.click('[data-testid="plus-victory"]')
    page.wait_for_function("() => document.querySelector('.row [data-count=\"victories\"]').textContent === '1'")
    page.click('[data-testid="plus-defeat"]')
    page.wait_for_function("() => document.querySelector('.row [data-count=\"defeats\"]').textContent === '1'")
    page.click('[data-testid="plus-victory"]')
    page.wait_for_function("() => document.querySelector('.row [data-count=\"victories\"]').textContent === '2'")
    assert counts(gateway, channel) == (2, 1, 0)
    page.click('[data-testid="minus-victory"]')
    page.wait_for_function("() => document.querySelector('.row [data-count=\"victories\"]').textContent === '1'")
    page.click('[data-testid="undo"]')  # undoes the minus
    page.wait_for_function("() => document.querySelector('.row [data-count=\"victories\"]').textContent === '2'")
    assert counts(gateway, channel) == (2, 1, 0)
    # history shows the manual changes
    page.wait_for_function("() => document.querySelectorAll('#history tr').length >= 5")
    assert "adjusted" in str(page.locator("#history").text_content())
    # set counts
    page.fill('#set-form input[name="victories"]', "10")
    page.fill('#set-form input[name="defeats"]', "4")
    page.fill('#set-form input[name="draws"]', "1")
    page.click('[data-testid="set"]')
    page.wait_for_function("() => document.querySelector('.row [data-count=\"victories\"]').textContent === '10'")
    assert counts(gateway, channel) == (10, 4, 1)
    assert page.locator("#rate").text_content() == "67%"
    # overlay URL
    assert page.input_value("#overlay-url") == f"{gateway.url}/overlay?channel={channel}"
    shot(page, "admin.png", full_page=True)
    # new session: dismissing the confirmation changes nothing, accepting resets
    page.once("dialog", lambda d: d.dismiss())
    page.click('[data-testid="new-session"]')
    assert value("victories") == "10" and counts(gateway, channel) == (10, 4, 1)
    page.once("dialog", lambda d: d.accept())
    page.click('[data-testid="new-session"]')
    page.wait_for_function("() => document.querySelector('.row [data-count=\"victories\"]').textContent === '0'")
    assert counts(gateway, channel) == (0, 0, 0)
    # a refused command shows the state service's sentence
    page.click('[data-testid="minus-draw"]')
    page.wait_for_selector("#message.error")
    assert len(str(page.locator("#message").text_content())) > 10
    assert counts(gateway, channel) == (0, 0, 0)


def test_admin_token_comes_from_the_url_once(
    page: Any, redis_server: RedisServer, prefix: str, state_proc: ServiceProcess, channel: str, tmp_path: Path
) -> None:
    secret = "tok-" + uuid.uuid4().hex
    gw = GatewayThread(settings_for(redis_server.url, prefix, **{"gateway.admin_token": secret}), tmp_path).start()
    try:
        page.goto(f"{gw.url}/admin?channel={channel}")
        page.wait_for_selector('#conn[data-connected="true"]')
        page.click('[data-testid="plus-victory"]')
        page.wait_for_selector("#message.error")
        assert page.locator("#token-box").is_visible()
        assert counts(gw, channel) == (0, 0, 0)
        page.goto(f"{gw.url}/admin?channel={channel}&token={secret}")
        page.wait_for_selector('#conn[data-connected="true"]')
        assert secret not in page.url and f"channel={channel}" in page.url
        assert page.evaluate("localStorage.getItem('owc.adminToken')") == secret
        page.click('[data-testid="plus-victory"]')
        page.wait_for_function("() => document.querySelector('.row [data-count=\"victories\"]').textContent === '1'")
        assert counts(gw, channel) == (1, 0, 0)
        page.reload()  # kept locally
        page.wait_for_selector('#conn[data-connected="true"]')
        page.click('[data-testid="plus-victory"]')
        page.wait_for_function("() => document.querySelector('.row [data-count=\"victories\"]').textContent === '2'")
        assert secret not in page.content()
        # a link from another site carries a junk token: never saved without the streamer's word
        asked: list[str] = []
        page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
        page.goto(f"{gw.url}/admin?channel={channel}&token=junk")
        page.wait_for_selector('#conn[data-connected="true"]')
        assert asked and "differs from the one saved" in asked[0]
        assert page.evaluate("localStorage.getItem('owc.adminToken')") == secret and "junk" not in page.url
        page.click('[data-testid="plus-victory"]')
        page.wait_for_function("() => document.querySelector('.row [data-count=\"victories\"]').textContent === '3'")
        # a new token the streamer confirms replaces it; the same token again asks nothing
        page.once("dialog", lambda d: d.accept())
        page.goto(f"{gw.url}/admin?channel={channel}&token=rotated")
        page.wait_for_selector('#conn[data-connected="true"]')
        assert page.evaluate("localStorage.getItem('owc.adminToken')") == "rotated"
        page.on("dialog", lambda d: asked.append(d.message))
        page.goto(f"{gw.url}/admin?channel={channel}&token=rotated")
        page.wait_for_selector('#conn[data-connected="true"]')
        assert len(asked) == 1
    finally:
        gw.stop()


def _jpeg(text: str) -> bytes:
    import cv2
    import numpy as np

    img = np.zeros((90, 160, 3), dtype=np.uint8)
    img[:] = (40, 120, 200)
    cv2.putText(img, text, (8, 55), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return bytes(buf)


def test_admin_shows_the_detection_thumbnail(
    page: Any, gateway: GatewayThread, channel: str, redis_server: RedisServer, keys: Keys
) -> None:
    client: redis.Redis = redis_server.client()
    now = int(time.time() * 1000)
    page.goto(f"{gateway.url}/admin?channel={channel}")
    page.wait_for_selector('#conn[data-connected="true"]')
    for seq in range(1, 5):  # four confident VICTORY frames, as inference would publish them
        client.set(keys.detframe(channel, seq), _jpeg(f"VICTORY {seq}"))
        client.set(keys.detinfo(channel, seq), json.dumps({
            "label": "victory", "confidence": 0.99, "model": "test-model", "captured_at": now + seq * 250,
            "stages": {"gate": {"score": 0.97, "threshold": 0.12, "probs": {}},
                       "reader": {"scores": {"victory": -0.31, "defeat": -9.0, "draw": -8.0}, "words": {},
                                  "text": "VICTORY!", "accept": -2.3, "ms": 9.1, "near_miss": None}}}))
        label = Label(channel, seq, now + seq * 250, "victory", 0.99, {"victory": 0.99}, "test-model", "w1", 1.0)
        client.xadd(keys.labels, label.to_fields())  # type: ignore[arg-type]
    client.close()
    page.wait_for_selector("#history img.thumb", timeout=15_000)
    wait_until(
        lambda: page.evaluate(
            "(() => { const i = document.querySelector('#history img.thumb');"
            " return i && i.complete && i.naturalWidth === 160; })()"
        ),
        timeout=10,
        message="the thumbnail to load",
    )
    row = page.locator("#history tr", has=page.locator("img.thumb")).first
    text = str(row.text_content())
    assert "detected" in text and "victory" in text and "auto" in text and "99.0%" in text
    # what each stage saw, under the thumbnail
    page.wait_for_selector("#history .why", timeout=10_000)
    why = str(page.locator("#history .why").first.text_content())
    assert "gate 0.97" in why and 'read "VICTORY!"' in why and "looks like VICTORY, clear enough to count" in why
    assert "counts from" not in why and "-0.31" not in why  # words a streamer reads, not log-likelihoods
    assert counts(gateway, channel) == (1, 0, 0)
    shot(page, "admin-detection.png", full_page=True)


def test_admin_offers_to_count_a_near_miss_once(
    page: Any, gateway: GatewayThread, channel: str, redis_server: RedisServer, keys: Keys
) -> None:
    """The reader saw DEFEAT but not clearly enough: the admin page says so, shows the frame, counts it on a click."""
    client: redis.Redis = redis_server.client()
    now = int(time.time() * 1000)
    client.set(keys.detframe(channel, 77), _jpeg("DEFEAT"))
    # as the inference worker reports it in its health hash
    health.publish(client, keys, channel, InferenceHealth(
        last_label="none", last_confidence=0.6, last_label_at=now, model="test-model", worker="w1",
        near_miss="defeat", near_miss_confidence=0.53, near_miss_seq=77, near_miss_at=now, near_miss_text="DEERT",
    ))
    page.goto(f"{gateway.url}/admin?channel={channel}")
    page.wait_for_selector('[data-testid="near-miss"]:not(.hidden)', timeout=10_000)
    text = str(page.locator('[data-testid="near-miss"]').text_content())
    assert "Saw DEFEAT at 53% — not counted" in text and "DEERT" in text
    shot(page, "admin-near-miss.png", full_page=True)
    page.click('[data-testid="near-miss-count"]')
    wait_until(lambda: counts(gateway, channel) == (0, 1, 0), timeout=10, message="the near miss counted")
    assert page.locator('[data-testid="near-miss"]').is_hidden()
    entries = client.xrevrange(keys.events(channel), "+", "-", 1)
    event = Event.from_fields(entries[0][1], entries[0][0])  # type: ignore[arg-type]
    assert (event.type, event.source, event.outcome, event.frame_seq) == ("adjusted", "manual", "defeat", 77)
    # handled: a reload does not offer it again
    page.reload()
    page.wait_for_selector('#conn[data-connected="true"]')
    wait_until(lambda: page.locator('[data-count="defeats"]').text_content() == "1", timeout=10,
               message="the first status rendered")  # renders the near-miss box in the same call
    assert page.locator('[data-testid="near-miss"]').is_hidden()
    client.close()
    assert counts(gateway, channel) == (0, 1, 0)


def test_admin_fits_a_phone(browser: Any, gateway: GatewayThread, channel: str) -> None:
    """390 px wide (a phone): one column and no sideways scrolling, with history rows and a thumbnail."""
    for outcome in ("victory", "defeat", "draw"):
        post_json(gateway.url, f"/api/v1/channels/{channel}/adjust", {"outcome": outcome, "note": "x" * 60})
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, device_scale_factor=2)
    page = context.new_page()
    try:
        page.goto(f"{gateway.url}/admin?channel={channel}")
        page.wait_for_selector('#conn[data-connected="true"]')
        page.wait_for_selector("#history tr")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert page.evaluate("document.body.scrollWidth") <= 390
        assert page.locator('[data-testid="plus-victory"]').is_visible()
        box = page.locator('[data-testid="plus-draw"]').bounding_box()
        assert box is not None and box["x"] + box["width"] <= 390
        shot(page, "admin-390.png", full_page=True)
    finally:
        context.close()


def test_the_designer_url_renders_what_the_preview_showed(
    page: Any, browser: Any, gateway: GatewayThread, channel: str
) -> None:
    post_json(gateway.url, f"/api/v1/channels/{channel}/adjust", {"outcome": "victory", "delta": 3})
    page.goto(f"{gateway.url}/admin?channel={channel}")
    page.wait_for_selector('#conn[data-connected="true"]')
    form = page.locator("#designer-form")
    form.locator('select[name="theme"]').select_option("ow")
    form.locator('input[name="show"][value="goal"]').check()
    form.locator('input[name="goal"]').fill("10")
    form.locator('input[name="victory"]').fill("#123456")
    form.locator('input[name="size"]').fill("40")
    form.locator('input[name="flash"]').uncheck()
    url = str(page.locator('[data-testid="designer-url"]').input_value())
    assert "theme=ow" in url and "victory=123456" in url and "goal=10" in url and "flash=0" in url, url
    assert f"channel={channel}" in url

    def look(frame: Any) -> dict[str, Any]:
        frame.wait_for_selector('#owc[data-connected="true"]')
        frame.wait_for_function("() => document.querySelector('[data-count=\"victories\"]').textContent === '3'")
        return dict(frame.evaluate("""() => ({
            theme: document.body.className,
            colour: getComputedStyle(document.querySelector('.owc-victory .owc-value')).color,
            size: getComputedStyle(document.querySelector('.owc')).fontSize,
            goal: document.getElementById('owc-goal').textContent,
            goalShown: !document.querySelector('.owc-goal').classList.contains('owc-hidden'),
        })"""))

    # (Playwright's sync API only sees frame navigations while it is called: wait inside the page)
    page.wait_for_function(
        "() => document.getElementById('designer-preview').contentWindow.location.href.includes('victory=123456')"
    )
    preview_frame = next(f for f in page.frames if "victory=123456" in f.url)
    shown = look(preview_frame)
    assert shown == {"theme": "owc-body owc-theme-ow", "colour": "rgb(18, 52, 86)", "size": "40px",
                     "goal": "3 / 10 wins", "goalShown": True}, shown
    other = browser.new_context(viewport={"width": 800, "height": 300})
    try:
        obs = other.new_page()
        obs.goto(url)
        assert look(obs.main_frame) == shown  # the copied URL renders what the preview showed
    finally:
        other.close()
    shot(page, "admin-designer.png", full_page=True)


def test_sessions_list_and_chart_after_an_evening(page: Any, gateway: GatewayThread, channel: str) -> None:
    url = f"/api/v1/channels/{channel}"
    evening = ["victory", "defeat", "victory", "victory", "draw", "defeat", "victory"]
    for outcome in evening:
        post_json(gateway.url, f"{url}/adjust", {"outcome": outcome})
    assert post_json(gateway.url, f"{url}/sessions", {}).status_code == 200  # a new session
    for outcome in ("defeat", "victory"):
        post_json(gateway.url, f"{url}/adjust", {"outcome": outcome})
    page.goto(f"{gateway.url}/admin?channel={channel}")
    page.wait_for_selector('#conn[data-connected="true"]')
    page.wait_for_function("() => document.querySelectorAll('#sessions tr').length >= 2")
    rows = page.locator("#sessions tr")
    first = str(rows.nth(0).text_content())
    assert "1-1-0" in first and "50%" in first and "running" in first, first
    earlier = str(rows.nth(1).text_content())
    assert "4-2-1" in earlier and "57%" in earlier and "2W" in earlier, earlier
    # the chart of the current session: one point per event of the session (start, two results)
    page.wait_for_selector("#chart canvas")
    assert page.locator("#chart").get_attribute("data-points") == "3"
    # a session of a few seconds: its time axis reads as a clock, never in milliseconds
    ticks = str(page.locator("#chart").get_attribute("data-ticks")).split("|")
    assert ticks and all(":" in t and "." not in t for t in ticks), ticks
    rows.nth(1).click()
    page.wait_for_function("() => document.getElementById('chart').dataset.points === '9'")  # set + start + 7
    assert page.locator("#chart-title").text_content().endswith("4-2-1")  # type: ignore[union-attr]
    href = str(rows.nth(1).locator("a").get_attribute("href"))
    assert "export?format=csv&session=" in href
    assert httpx.get(gateway.url + href).text.count("\n") >= 8
    shot(page, "admin-sessions.png", full_page=True)


def test_health_is_honest_during_a_replay_with_no_frames_yet(
    page: Any, gateway: GatewayThread, channel: str, redis_server: RedisServer, keys: Keys
) -> None:
    """A replay needs no OBS (no red "disconnected"); the state service is running (it holds
    its lease) although no frame has arrived; no frame yet is "none yet", never a huge age."""
    client: redis.Redis = redis_server.client()
    health.publish(client, keys, channel, CaptureHealth(source="replay:/clips/demo", obs_connected=False,
                                                      last_seq=0, last_frame_at=0))
    client.delete(keys.health(channel, "state"))
    page.goto(f"{gateway.url}/admin?channel={channel}")
    page.wait_for_selector('#conn[data-connected="true"]')
    page.wait_for_function("() => document.getElementById('h-obs').textContent.startsWith('not needed')")
    assert page.locator("#h-obs").get_attribute("class") == "victory"
    assert page.locator("#h-frame").text_content() == "none yet"
    assert page.locator("#h-state").text_content() == "running"  # the state fixture holds the lease
    status = httpx.get(f"{gateway.url}/api/v1/channels/{channel}/status").json()
    assert status["health"]["last_frame_age_s"] is None and status["health"]["state_alive"] is True
    # the clip has ended (make demo): said as such, with its last frame, not "no capture running"
    health.publish(client, keys, channel, CaptureHealth(state="finished", last_seq=120,
                                                      last_frame_at=int(time.time() * 1000) - 60_000))
    page.wait_for_function("() => document.getElementById('h-obs').textContent.includes('has finished')")
    assert page.locator("#h-obs").text_content() == "not needed: the replay of /clips/demo has finished"
    assert page.locator("#h-obs").get_attribute("class") == "victory"
    assert str(page.locator("#h-frame").text_content()).endswith("s ago (#120)")
    client.close()


def test_the_header_badge_says_whether_obs_feeds_the_counter(
    page: Any, gateway: GatewayThread, channel: str, redis_server: RedisServer, keys: Keys
) -> None:
    """Green "live" means counting can happen; the page being connected while OBS is gone is not that.
    The Model row names the model the workers loaded before any frame was classified."""
    client: redis.Redis = redis_server.client()
    health.worker_beat(client, keys, "browser-worker", model="detector-e2e")
    health.publish(client, keys, channel, CaptureHealth(source="Game", obs_connected=False, state="reconnecting"))
    try:
        page.goto(f"{gateway.url}/admin?channel={channel}")
        page.wait_for_selector('#conn[data-connected="true"]')
        page.wait_for_function("() => document.getElementById('conn').textContent === 'OBS disconnected'")
        assert page.locator("#conn").get_attribute("data-feed") == "bad"
        assert page.locator("#h-model").text_content() == "detector-e2e"
        health.publish(client, keys, channel, CaptureHealth(obs_connected=True, state="connected"))
        page.wait_for_function("() => document.getElementById('conn').textContent === 'live'", timeout=10_000)
        assert page.locator("#conn").get_attribute("data-feed") == "ok"
    finally:
        health.worker_beat(client, keys, "browser-worker", alive=False)
        client.close()


def test_an_empty_sessions_card_says_so_instead_of_a_blank_chart(
    page: Any, gateway: GatewayThread, channel: str, redis_server: RedisServer, keys: Keys
) -> None:
    page.goto(f"{gateway.url}/admin?channel={channel}")  # a session with nothing counted yet
    page.wait_for_function("() => document.getElementById('chart-title').textContent.includes('nothing to chart')")
    assert page.locator("#chart").is_hidden() and page.locator("#chart canvas").count() == 0
    fresh = f"e{uuid.uuid4().hex[:8]}"  # a channel no session was ever started in
    client = redis_server.client()
    client.sadd(keys.channels, fresh)
    client.close()
    page.goto(f"{gateway.url}/admin?channel={fresh}")
    page.wait_for_function("() => document.getElementById('chart-title').textContent.startsWith('No sessions yet')")
    assert page.locator("#chart").is_hidden()
    # the first result brings the chart
    post_json(gateway.url, f"/api/v1/channels/{channel}/adjust", {"outcome": "victory"})
    page.goto(f"{gateway.url}/admin?channel={channel}")
    page.wait_for_selector("#chart canvas")
    assert page.locator("#chart").is_visible()


def test_mode_names_that_are_javascript_property_names_show_as_typed(
    browser: Any, gateway: GatewayThread, channel: str
) -> None:
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    admin, overlay = context.new_page(), context.new_page()
    try:
        for name in ("constructor", "toString", "__proto__"):
            assert post_json(gateway.url, f"/api/v1/channels/{channel}/mode", {"mode": name}).status_code == 200
            post_json(gateway.url, f"/api/v1/channels/{channel}/adjust", {"outcome": "victory"})
        admin.goto(f"{gateway.url}/admin?channel={channel}")
        admin.wait_for_function("() => document.querySelector('#mode-summary').textContent.includes('by mode')")
        summary = str(admin.locator('[data-testid="mode-summary"]').text_content())
        assert "Playing __proto__" in summary and "constructor 1-0-0" in summary and "toString 1-0-0" in summary
        admin.wait_for_function("() => document.querySelectorAll('#history .mode-tag').length >= 3")
        tags = set(admin.locator("#history tr .mode-tag").all_text_contents())
        assert {"constructor", "toString", "__proto__"} <= tags, tags
        for name in ("constructor", "toString", "__proto__"):
            overlay.goto(f"{gateway.url}/overlay?channel={channel}&mode={name}")
            overlay.wait_for_selector('#owc[data-connected="true"]', timeout=10_000)
            overlay.wait_for_function("() => document.querySelector('[data-count=\"victories\"]').textContent === '1'")
            assert overlay.locator("#owc-mode").text_content() == name
        text = admin.content() + overlay.content()
        assert "native code" not in text and "[object Object]" not in text
    finally:
        context.close()


# ---------------------------------------------------------------- another web site


ATTACK_PAGE = """<!doctype html><html><body>
<h1>Totally unrelated site</h1>
<iframe name="sink" style="display:none"></iframe>
<form id="f" method="POST" action="GW/api/adjust" enctype="text/plain" target="sink">
  <input name='{"outcome":"victory","delta":5,"x":"' value='"}'>
</form>
<script>
const gw = "GW";
const body = JSON.stringify({ outcome: "victory", delta: 5 });
async function attack() {
  const tries = [
    fetch(gw + "/api/v1/channels/CH/adjust", { method: "POST", mode: "no-cors",
      headers: { "Content-Type": "text/plain" }, body }),
    fetch(gw + "/api/v1/channels/CH/adjust", { method: "POST",
      headers: { "Content-Type": "application/json" }, body }),
    fetch(gw + "/api/v1/channels/CH/set", { method: "POST", mode: "no-cors",
      headers: { "Content-Type": "application/x-www-form-urlencoded" }, body: "victories=99" }),
    fetch(gw + "/api/adjust", { method: "POST", mode: "no-cors", body }),
    fetch(gw + "/api/initialize", { method: "POST", mode: "no-cors",
      body: new Blob([JSON.stringify({ victories: 99 })], { type: "application/json" }) }),
  ];
  const results = await Promise.allSettled(tries);
  window.results = results.map((r) => r.status);
  document.getElementById("f").submit();
  window.done = true;
}
attack();
</script></body></html>"""


def test_a_page_on_another_origin_cannot_change_the_counts(
    page: Any, gateway: GatewayThread, channel: str, tmp_path: Path
) -> None:
    post_json(gateway.url, "/api/v1/channels/default/set", {"victories": 3, "defeats": 2, "draws": 1})
    before_default = counts(gateway, "default")
    before = counts(gateway, channel)
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text(ATTACK_PAGE.replace("GW", gateway.url).replace("CH", channel))
    port = free_port()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def refused() -> float:
        text = httpx.get(f"{gateway.url}/metrics").text
        total = 0.0
        for line in text.splitlines():
            if line.startswith("owc_gateway_http_requests_total{") and 'status="403"' in line:
                total += float(line.rsplit(" ", 1)[1])
        return total

    refused_before = refused()
    try:
        page.goto(f"http://localhost:{port}/index.html")
        page.wait_for_function("() => window.done === true", timeout=10_000)
        # the requests reached the gateway and were refused there (not only by the browser's CORS)
        wait_until(lambda: refused() >= refused_before + 4, timeout=10, message="the gateway to refuse the requests")
        assert counts(gateway, channel) == before
        assert counts(gateway, "default") == before_default
    finally:
        server.shutdown()
        server.server_close()


def test_overlay_takes_obs_custom_css_as_a_browser_source_does(page: Any, gateway: GatewayThread, channel: str) -> None:
    """OBS loads the overlay top-level and injects its "Custom CSS" field: as a <style> element
    (obs-browser today) or a data: stylesheet (older versions). The CSP must let both through."""
    page.goto(f"{gateway.url}/overlay?channel={channel}")
    page.wait_for_selector('#owc[data-connected="true"]', timeout=10_000)
    page.evaluate(
        """() => {
          const style = document.createElement("style");
          style.innerHTML = "body { background-color: rgba(0, 0, 0, 0); margin: 0px auto; overflow: hidden; }"
            + " :root { --obs-style: injected; }";
          document.querySelector("head").appendChild(style);
          const link = document.createElement("link");
          link.rel = "stylesheet";
          link.href = "data:text/css;charset=utf-8;base64," + btoa(":root { --obs-link: injected; }");
          document.head.appendChild(link);
        }"""
    )
    for prop in ("--obs-style", "--obs-link"):
        page.wait_for_function(
            "p => getComputedStyle(document.documentElement).getPropertyValue(p).trim() === 'injected'",
            arg=prop,
            timeout=5_000,
        )


FRAMING_PAGE = """<!doctype html><html><body>
<h1>Win a free skin: click the button!</h1>
<iframe id="admin" src="GW/admin?channel=CH" width="1000" height="700" style="opacity:0.01"
        onload="this.dataset.loaded = 'yes'"></iframe>
<iframe id="overlay" src="GW/overlay?channel=CH" width="600" height="300"
        onload="this.dataset.loaded = 'yes'"></iframe>
</body></html>"""


def test_a_page_on_another_site_cannot_frame_the_admin_page(
    browser: Any, gateway: GatewayThread, channel: str, tmp_path: Path
) -> None:
    """Clickjacking: an invisible /admin in a cross-site frame must show nothing to click; the overlay,
    which other tools may embed, still loads in the same kind of frame."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "frames.html").write_text(FRAMING_PAGE.replace("GW", gateway.url).replace("CH", channel))
    port = free_port()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    context = browser.new_context(viewport={"width": 1100, "height": 1100})
    try:
        before = counts(gateway, channel)
        page = context.new_page()
        page.goto(f"http://localhost:{port}/frames.html")  # localhost vs 127.0.0.1: another site
        page.wait_for_function(
            "() => [...document.querySelectorAll('iframe')].every(f => f.dataset.loaded === 'yes')", timeout=10_000
        )
        # the overlay is embeddable: it connects and shows the counts inside the frame
        page.frame_locator("#overlay").locator('#owc[data-connected="true"]').wait_for(timeout=10_000)
        # the admin page is not rendered at all: nothing in its frame to click
        admin = page.frame_locator("#admin")
        assert admin.locator("button").count() == 0
        assert admin.locator('[data-testid="plus-victory"]').count() == 0
        frame = next(f for f in page.frames if f.parent_frame is not None and "/overlay" not in f.url)
        assert "/admin" not in frame.url or frame.locator("body *").count() == 0, frame.url
        box = page.locator("#admin").bounding_box()
        for fx, fy in ((0.1, 0.1), (0.3, 0.2), (0.5, 0.5), (0.8, 0.3)):  # the victim's clicks land nowhere
            page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
        assert counts(gateway, channel) == before
    finally:
        context.close()
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------- API docs


@pytest.mark.parametrize(
    ("path", "operation"),
    [("/docs", ".opblock"), ("/redoc", '[data-section-id*="/operation/"]')],
)
def test_api_docs_render_offline_under_their_own_policy(
    page: Any, gateway: GatewayThread, path: str, operation: str
) -> None:
    """Swagger UI and ReDoc come from the gateway itself: every operation is shown, no request leaves
    the gateway (they work offline, no CDN), and nothing breaks the page's policy (own scripts only;
    the fixture fails on any violation)."""
    schema = httpx.get(f"{gateway.url}/openapi.json").json()
    operations = sum(len(methods) for methods in schema["paths"].values())
    # As if offline: whatever gets past the page's policy towards another host is recorded and dropped.
    foreign: list[str] = []

    def leave(route: Any) -> None:
        foreign.append(route.request.url)
        route.abort()

    page.route(lambda url: not url.startswith(gateway.url), leave)
    page.goto(f"{gateway.url}{path}")
    page.wait_for_function(
        "([sel, n]) => document.querySelectorAll(sel).length >= n", arg=[operation, operations], timeout=30_000
    )
    shot(page, f"docs{path.replace('/', '-')}.png")
    assert not foreign, f"{path} sent requests outside the gateway: {foreign}"


# ---------------------------------------------------------------- per-mode records


def test_a_mode_change_in_the_admin_splits_the_counts_the_overlay_shows_with_mode(
    browser: Any, gateway: GatewayThread, channel: str
) -> None:
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    admin, overlay = context.new_page(), context.new_page()
    errors: list[str] = []
    for pg in (admin, overlay):
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        admin.goto(f"{gateway.url}/admin?channel={channel}")
        admin.wait_for_selector('#conn[data-connected="true"]')

        def value(key: str) -> str:
            return str(admin.locator(f'.row [data-count="{key}"]').text_content())

        def click(testid: str, key: str, expected: str) -> None:
            admin.click(f'[data-testid="{testid}"]')
            admin.wait_for_function(
                "([k, v]) => document.querySelector(`.row [data-count=\"${k}\"]`).textContent === v",
                arg=[key, expected],
            )

        # a short evening: two modes, picked in the admin page (a built-in, then a custom name)
        admin.select_option('[data-testid="mode-select"]', "competitive")
        wait_until(lambda: status(gateway, channel)["mode"] == "competitive", timeout=10)
        click("plus-victory", "victories", "1")
        click("plus-defeat", "defeats", "1")
        click("plus-victory", "victories", "2")
        admin.select_option('[data-testid="mode-select"]', "*custom")
        admin.fill('[data-testid="mode-custom"]', "Mystery Heroes")
        admin.click('[data-testid="set-mode"]')
        wait_until(lambda: status(gateway, channel)["mode"] == "Mystery Heroes", timeout=10)
        click("plus-draw", "draws", "1")
        click("plus-victory", "victories", "3")
        assert counts(gateway, channel) == (3, 1, 1)
        admin.wait_for_function("() => document.querySelector('#mode-summary').textContent.includes('Mystery')")
        summary = str(admin.locator('[data-testid="mode-summary"]').text_content())
        assert "Playing Mystery Heroes · by mode:" in summary and "Competitive 2-1-0 67%" in summary, summary
        assert "Mystery Heroes 1-0-1 50%" in summary, summary
        # the history shows each event's mode
        admin.wait_for_function("() => document.querySelectorAll('#history .mode-tag').length >= 7")
        tags = [str(t) for t in admin.locator("#history tr .mode-tag").all_text_contents()]
        assert tags[:2] == ["Mystery Heroes", "Mystery Heroes"] and "Competitive" in tags, tags

        # the overlay with ?mode= shows that mode's counts, with a small label
        overlay.goto(f"{gateway.url}/overlay?channel={channel}&mode=Competitive")
        overlay.wait_for_selector('#owc[data-connected="true"]', timeout=10_000)
        overlay.wait_for_function("() => document.querySelector('[data-count=\"victories\"]').textContent === '2'")
        assert [overlay_value(overlay, k) for k in ("victories", "defeats", "draws")] == ["2", "1", "0"]
        assert overlay.locator("#owc-rate").text_content() == "67%"
        label = overlay.locator("#owc-mode")
        assert label.is_visible() and label.text_content() == "Competitive"
        # a match in another mode leaves it (and its result moment) alone; one in this mode shows at once
        flashes = overlay.locator("#owc-flash").get_attribute("data-count")
        click("plus-victory", "victories", "4")
        time.sleep(0.5)
        assert overlay_value(overlay, "victories") == "2"
        assert overlay.locator("#owc-flash").get_attribute("data-count") == flashes
        admin.select_option('[data-testid="mode-select"]', "competitive")
        wait_until(lambda: status(gateway, channel)["mode"] == "competitive", timeout=10)
        click("plus-victory", "victories", "5")
        overlay.wait_for_function("() => document.querySelector('[data-count=\"victories\"]').textContent === '3'")
        assert overlay.locator("#owc-rate").text_content() == "75%"
        overlay.set_viewport_size({"width": 420, "height": 200})
        shot(overlay, "overlay-mode.png", omit_background=True)
        # the custom mode's overlay, and the plain one (every mode)
        overlay.goto(f"{gateway.url}/overlay?channel={channel}&mode=mystery%20heroes&theme=row")
        overlay.wait_for_function("() => document.querySelector('[data-count=\"victories\"]').textContent === '2'")
        assert [overlay_value(overlay, k) for k in ("victories", "defeats", "draws")] == ["2", "0", "1"]
        assert overlay.locator("#owc-mode").text_content() == "Mystery Heroes"  # as the streamer named it
        overlay.goto(f"{gateway.url}/overlay?channel={channel}")
        overlay.wait_for_function("() => document.querySelector('[data-count=\"victories\"]').textContent === '5'")
        assert not overlay.locator("#owc-mode").is_visible()
        # a new session keeps the mode and starts its per-mode counts from nothing
        admin.once("dialog", lambda d: d.accept())
        admin.click('[data-testid="new-session"]')
        admin.wait_for_function("() => document.querySelector('.row [data-count=\"victories\"]').textContent === '0'")
        assert admin.locator('[data-testid="mode-select"]').input_value() == "competitive"
        # the designer writes ?mode= for a browser source per mode
        admin.fill('[data-testid="designer-mode"]', "Quick Play")
        assert "mode=quickplay" in admin.locator('[data-testid="designer-url"]').input_value()
        shot(admin, "admin-modes.png", full_page=True)
    finally:
        context.close()
    assert not errors, f"uncaught JavaScript errors: {errors}"


def status(gw: GatewayThread, ch: str) -> dict[str, Any]:
    data: dict[str, Any] = httpx.get(f"{gw.url}/api/v1/channels/{ch}/status").json()
    return data


# ---------------------------------------------------------------- overlay presets

OVERLAY_LOOK = """() => ({
    theme: document.body.className,
    victory: getComputedStyle(document.querySelector('.owc-victory .owc-value')).color,
    defeat: getComputedStyle(document.querySelector('.owc-defeat .owc-value')).color,
    size: getComputedStyle(document.querySelector('.owc')).fontSize,
    shown: [...document.querySelectorAll('[data-part]')].filter((p) => !p.classList.contains('owc-hidden'))
        .map((p) => p.dataset.part),
    recent: document.getElementById('owc-recent').textContent,
    victories: document.querySelector('[data-count="victories"]').textContent,
})"""


def overlay_look(frame: Any, victories: str) -> dict[str, Any]:
    frame.wait_for_selector('#owc[data-connected="true"]')
    frame.wait_for_function("(v) => document.querySelector('[data-count=\"victories\"]').textContent === v",
                            arg=victories)
    return dict(frame.evaluate(OVERLAY_LOOK))


def test_a_preset_saved_in_the_designer_renders_what_the_preview_showed(
    page: Any, browser: Any, gateway: GatewayThread, channel: str
) -> None:
    name = f"look-{uuid.uuid4().hex[:6]}"
    post_json(gateway.url, f"/api/v1/channels/{channel}/adjust", {"outcome": "victory", "delta": 2})
    post_json(gateway.url, f"/api/v1/channels/{channel}/adjust", {"outcome": "defeat", "delta": 1})
    page.goto(f"{gateway.url}/admin?channel={channel}")
    page.wait_for_selector('#conn[data-connected="true"]')
    form = page.locator("#designer-form")
    form.locator('select[name="theme"]').select_option("panel")
    form.locator('input[name="show"][value="rate"]').uncheck()
    form.locator('input[name="show"][value="recent"]').check()
    form.locator('input[name="victory"]').fill("#00e0ff")
    form.locator('input[name="defeat"]').fill("#aa00cc")
    form.locator('input[name="size"]').fill("44")
    designed = str(page.locator('[data-testid="designer-url"]').input_value())
    page.wait_for_function(
        "() => document.getElementById('designer-preview').contentWindow.location.href.includes('victory=00e0ff')"
    )
    preview = overlay_look(next(f for f in page.frames if "victory=00e0ff" in f.url), "2")
    assert preview == {"theme": "owc-body owc-theme-panel", "victory": "rgb(0, 224, 255)",
                       "defeat": "rgb(170, 0, 204)", "size": "44px", "shown": ["counts", "streak", "recent"],
                       "recent": "WWL", "victories": "2"}, preview

    page.fill('[data-testid="preset-name"]', name)
    page.click('[data-testid="preset-save"]')
    page.wait_for_function("(n) => document.getElementById('preset-status').textContent === `saved preset ${n}`",
                           arg=name)
    short = str(page.locator('[data-testid="preset-url"]').input_value())
    assert short == f"{gateway.url}/overlay?preset={name}&channel={channel}"
    assert name in page.locator('[data-testid="preset-list"] option').all_text_contents()
    assert page.locator('[data-testid="designer-url"]').input_value() == designed  # the full URL stays

    other = browser.new_context(viewport={"width": 800, "height": 300})
    warnings: list[str] = []
    try:
        obs = other.new_page()
        obs.on("console", lambda msg: warnings.append(msg.text) if msg.type == "warning" else None)
        obs.goto(short)
        assert overlay_look(obs.main_frame, "2") == preview  # the short URL renders what the preview showed
        assert obs.locator("#owc").get_attribute("data-preset") == name
        # an explicit parameter wins over the preset's; the rest is still the preset's
        obs.goto(f"{short}&theme=row&victory=112233")
        assert overlay_look(obs.main_frame, "2") == {**preview, "theme": "owc-body owc-theme-row",
                                                     "victory": "rgb(17, 34, 51)"}
        # an unknown preset: the overlay with its defaults, and a warning in the console (never a blank page)
        obs.goto(f"{gateway.url}/overlay?preset=no-such-look&channel={channel}")
        assert overlay_look(obs.main_frame, "2") == {
            "theme": "owc-body", "victory": "rgb(94, 224, 122)", "defeat": "rgb(255, 90, 90)", "size": "56px",
            "shown": ["counts", "rate", "streak"], "recent": "WWL", "victories": "2"}
        assert obs.locator("#owc").get_attribute("data-preset") == ""
        assert any("no-such-look" in w and "defaults" in w for w in warnings), warnings
    finally:
        other.close()

    # load it back into the designer after changing the form; then delete it
    form.locator('select[name="theme"]').select_option("minimal")
    form.locator('input[name="victory"]').fill("#ffffff")
    assert page.locator('[data-testid="designer-url"]').input_value() != designed
    page.select_option('[data-testid="preset-list"]', name)
    page.click('[data-testid="preset-load"]')
    page.wait_for_function("(u) => document.querySelector('[data-testid=\"designer-url\"]').value === u",
                           arg=designed)
    page.select_option('[data-testid="preset-list"]', name)
    page.click('[data-testid="preset-delete"]')
    page.wait_for_function("(n) => document.getElementById('preset-status').textContent === `deleted preset ${n}`",
                           arg=name)
    assert name not in page.locator('[data-testid="preset-list"] option').all_text_contents()
    assert httpx.get(f"{gateway.url}/api/v1/overlay/presets/{name}").status_code == 404


def test_the_overlay_with_mode_shows_that_modes_streak_and_last_results(
    page: Any, gateway: GatewayThread, channel: str
) -> None:
    def send(path: str, body: dict[str, Any]) -> None:
        r = post_json(gateway.url, f"/api/v1/channels/{channel}/{path}", body)
        assert r.status_code == 200, r.text

    send("mode", {"mode": "competitive"})
    send("adjust", {"outcome": "victory", "delta": 2})
    send("mode", {"mode": "quickplay"})
    send("adjust", {"outcome": "defeat"})
    page.goto(f"{gateway.url}/overlay?channel={channel}&mode=Competitive&show=counts,streak,recent")
    page.wait_for_selector('#owc[data-connected="true"]')

    def shown() -> tuple[str, str]:
        return str(page.locator("#owc-streak").text_content()), str(page.locator("#owc-recent").text_content())

    page.wait_for_function("() => document.getElementById('owc-recent').textContent === 'WW'")
    assert shown() == ("2W", "WW")  # the session's streak is 1L: this is competitive's own
    send("adjust", {"outcome": "defeat"})  # quickplay again: competitive's overlay stays as it is
    send("mode", {"mode": "competitive"})
    send("adjust", {"outcome": "draw"})
    page.wait_for_function("() => document.getElementById('owc-recent').textContent === 'WWD'")
    assert shown() == ("1D", "WWD")
    s = status(gateway, channel)
    assert (s["streak"], s["recent"]) == ({"outcome": "draw", "length": 1}, ["victory", "victory", "defeat",
                                                                             "defeat", "draw"])
    page.goto(f"{gateway.url}/overlay?channel={channel}&mode=quickplay&show=streak,recent")
    page.wait_for_function("() => document.getElementById('owc-recent').textContent === 'LL'")
    assert shown() == ("2L", "LL")
