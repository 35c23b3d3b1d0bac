"""The OBS source against the obs-websocket 5 test server and a real redis-server."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import pytest
import redis
from prometheus_client import CollectorRegistry

from services.capture.metrics import CaptureMetrics
from services.capture.obs_source import Backoffs, ObsSource
from services.common.config.settings import Settings
from services.common.contracts.keys import GROUP_INFERENCE, Keys
from services.common.contracts.messages import Frame
from tests.support.obsws_server import FakeSource, ObsWsServer, make_test_image
from tests.support.waiting import wait_until

FAST = Backoffs(connect_initial=0.05, connect_max=0.5, auth=0.3, kicked=0.5, config_error=0.2)


@pytest.fixture
def obs_server() -> Iterator[ObsWsServer]:
    server = ObsWsServer(password="s3cret").start()
    yield server
    server.close()


@dataclass
class Running:
    source: ObsSource
    metrics: CaptureMetrics
    registry: CollectorRegistry
    stop: threading.Event
    thread: threading.Thread
    client: redis.Redis
    keys: Keys
    channel: str

    def frames(self) -> list[Frame]:
        return [Frame.from_fields(f) for _, f in self.client.xrange(self.keys.frames)]

    def count(self) -> int:
        return self.source.publisher.published

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def health(self) -> dict[str, str]:
        raw = self.client.hgetall(self.keys.health(self.channel, "capture"))
        return {k.decode(): v.decode() for k, v in raw.items()}

    def wait_frames(self, n: int, timeout: float = 10) -> None:
        wait_until(lambda: self.count() >= n, timeout=timeout, message=f"{n} frames published")

    def halt(self) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive(), "capture did not stop"


@pytest.fixture
def start_capture(
    settings_factory: Callable[..., Settings], redis_client: redis.Redis, keys: Keys, obs_server: ObsWsServer
) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(backoffs: Backoffs = FAST, max_messages: int | None = None, **overrides: Any) -> Running:
        flat = {
            "obs__port": obs_server.port,
            "obs__password": "s3cret",
            "capture__interval_ms": 50,
            **overrides,
        }
        settings = settings_factory(**flat)
        registry = CollectorRegistry()
        metrics = CaptureMetrics(registry)
        source = ObsSource(settings.obs, settings.capture, redis_client, keys, metrics, backoffs=backoffs)
        stop = threading.Event()
        thread = threading.Thread(target=source.run, args=(stop, max_messages), daemon=True)
        running = Running(source, metrics, registry, stop, thread, redis_client, keys, settings.capture.channel)
        thread.start()
        started.append(running)
        return running

    yield start
    for running in started:
        running.halt()


def test_frames_have_the_contract_fields_and_the_requested_size(start_capture: Callable[..., Running]) -> None:
    run = start_capture(max_messages=6)
    run.thread.join(15)
    frames = run.frames()
    assert len(frames) == 6
    seqs = [f.seq for f in frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == 6
    for f in frames:
        assert (f.channel, f.format, f.width, f.height) == ("default", "jpg", 640, 360)
        image = cv2.imdecode(np.frombuffer(f.image, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (360, 640, 3)
        assert f.captured_at > 1_600_000_000_000
    spacing = [b.captured_at - a.captured_at for a, b in itertools.pairwise(frames)]
    assert all(s > 0 for s in spacing)
    assert run.metric("owc_capture_frames_published_total", source="obs") == 6
    assert run.metric("owc_capture_screenshot_seconds_count") == 6
    health = run.health()
    assert health["last_seq"] == str(seqs[-1])
    assert health["frames_published"] == "6"
    assert health["source"] == "(program scene)"
    assert int(health["last_frame_at"]) == frames[-1].captured_at
    assert "obs_connected" in health and "last_error" in health and "skipped" in health


def test_png_at_another_size_and_a_named_source(
    start_capture: Callable[..., Running], obs_server: ObsWsServer
) -> None:
    run = start_capture(
        max_messages=2, capture__image_format="png", capture__width=320, capture__height=180, obs__source="Game"
    )
    run.thread.join(15)
    frames = run.frames()
    assert [(f.format, f.width, f.height) for f in frames] == [("png", 320, 180)] * 2
    shots = [d for t, d in obs_server.requests if t == "GetSourceScreenshot"]
    assert shots[0] == {
        "sourceName": "Game",
        "imageFormat": "png",
        "imageWidth": 320,
        "imageHeight": 180,
        "imageCompressionQuality": 80,
    }


def test_seq_keeps_increasing_across_restarts(start_capture: Callable[..., Running]) -> None:
    first = start_capture(max_messages=3)
    first.thread.join(15)
    second = start_capture(max_messages=3)
    second.thread.join(15)
    seqs = [f.seq for f in second.frames()]
    assert len(seqs) == 6
    assert seqs == sorted(seqs) and len(set(seqs)) == 6


def test_wrong_password_is_reported_and_retried_slowly(
    start_capture: Callable[..., Running], obs_server: ObsWsServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "owc")
    obs_server.password = "another"
    run = start_capture()
    wait_until(lambda: obs_server.auth_failures >= 2, timeout=10, message="two refused logins")
    assert run.count() == 0
    assert run.thread.is_alive()
    assert "refused the password" in caplog.text
    # said once, not on every retry
    assert caplog.text.count("refused the password") == 1
    health = run.health()
    assert health["state"] == "auth_failed" and health["obs_connected"] == "0"
    assert "refused the password" in health["last_error"]
    assert run.metric("owc_capture_errors_total", kind="auth") >= 2
    # retried slowly: the backoff (0.3 s here) separates attempts
    attempts = obs_server.identify_attempts
    time.sleep(0.1)
    assert obs_server.identify_attempts <= attempts + 1
    obs_server.password = "s3cret"  # the user fixes the setting in OBS
    run.wait_frames(2)


def test_missing_password_when_obs_requires_one(
    start_capture: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "owc")
    run = start_capture(obs__password="")
    wait_until(lambda: "refused the password" in run.health().get("last_error", ""), timeout=10)
    assert "or empty" in run.health()["last_error"]


def test_missing_source_names_the_sources_that_exist(
    start_capture: Callable[..., Running], obs_server: ObsWsServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "owc")
    run = start_capture(obs__source="Gameplay")
    wait_until(lambda: run.metric("owc_capture_errors_total", kind="source_missing") >= 2, timeout=10)
    assert run.count() == 0
    message = run.health()["last_error"]
    assert "no source named 'Gameplay' (600)" in message
    for name in ("'Scene'", "'Game'", "'Mic/Aux'"):
        assert name in message
    assert caplog.text.count("no source named 'Gameplay'") == 1
    obs_server.add_source(FakeSource("Gameplay", "image_source", make_test_image(text="now")))
    run.wait_frames(2)
    assert "capturing 'Gameplay' again" in caplog.text


def test_audio_source_is_not_a_video_source(
    start_capture: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "owc")
    run = start_capture(obs__source="Mic/Aux")
    wait_until(lambda: run.metric("owc_capture_errors_total", kind="not_video") >= 2, timeout=10)
    assert "'Mic/Aux' is not a video source (602" in run.health()["last_error"]
    assert run.thread.is_alive() and run.count() == 0


def test_render_failures_are_counted_and_capture_continues(
    start_capture: Callable[..., Running], obs_server: ObsWsServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "owc")
    obs_server.sources["Game"].render_fails = True
    run = start_capture(obs__source="Game")
    wait_until(lambda: run.metric("owc_capture_errors_total", kind="render_failed") >= 5, timeout=10)
    assert run.count() == 0
    assert caplog.text.count("could not render 'Game' (702") == 1
    assert run.metric("owc_capture_frames_skipped_total", reason="error") >= 5
    assert run.health()["obs_connected"] == "1"  # still connected: a render failure is not a disconnect
    obs_server.sources["Game"].render_fails = False  # the game capture hooks
    run.wait_frames(3)
    assert run.source.connects == 1


def _resume_after_restart(run: Running, obs_server: ObsWsServer, abrupt: bool) -> float:
    run.wait_frames(2)
    obs_server.stop(abrupt=abrupt)
    wait_until(lambda: run.health().get("obs_connected") == "0", timeout=10, message="disconnect noticed")
    time.sleep(1.0)  # OBS stays away for a while: capture keeps retrying
    before = run.count()
    obs_server.start()
    back = time.monotonic()
    wait_until(lambda: run.count() > before, timeout=10, message="capture resumed")
    return time.monotonic() - back


@pytest.mark.parametrize("abrupt", [False, True], ids=["closed", "dropped"])
def test_obs_stopped_and_started_again_resumes_within_5s(
    settings_factory: Callable[..., Settings],
    start_capture: Callable[..., Running],
    obs_server: ObsWsServer,
    caplog: pytest.LogCaptureFixture,
    abrupt: bool,
) -> None:
    caplog.set_level(logging.INFO, "owc")
    # the production backoffs: the 5 s promise must hold with them
    run = start_capture(backoffs=Backoffs())
    took = _resume_after_restart(run, obs_server, abrupt)
    assert took < 5.0
    assert "lost the connection to OBS" in caplog.text
    assert "not reachable" in caplog.text
    assert caplog.text.count("not reachable") == 1  # said once per outage
    assert run.source.connects == 2
    seqs = [f.seq for f in run.frames()]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_exit_started_then_obs_back(
    start_capture: Callable[..., Running], obs_server: ObsWsServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "owc")
    run = start_capture(backoffs=Backoffs())
    run.wait_frames(2)
    obs_server.exit_obs()
    wait_until(lambda: "is closing (ExitStarted)" in caplog.text, timeout=10)
    before = run.count()
    obs_server.start()
    back = time.monotonic()
    wait_until(lambda: run.count() > before, timeout=10, message="capture resumed")
    assert time.monotonic() - back < 5.0


def test_kicked_session_backs_off_then_reconnects(
    start_capture: Callable[..., Running], obs_server: ObsWsServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "owc")
    run = start_capture(backoffs=Backoffs(kicked=1.0))
    run.wait_frames(2)
    kicked_at = time.monotonic()
    obs_server.kick_all()
    wait_until(lambda: "kicked, close code 4011" in caplog.text, timeout=10)
    assert run.health()["state"] == "kicked"
    assert run.metric("owc_capture_errors_total", kind="kicked") == 1
    wait_until(lambda: run.source.connects == 2, timeout=10, message="reconnected")
    assert time.monotonic() - kicked_at >= 0.9  # waited the kick backoff, did not hammer


def test_program_scene_follows_scene_changes(
    start_capture: Callable[..., Running], obs_server: ObsWsServer
) -> None:
    obs_server.add_source(FakeSource("BRB", "scene", make_test_image(text="BRB")))
    run = start_capture()
    run.wait_frames(1)
    obs_server.set_program_scene("BRB")
    wait_until(
        lambda: obs_server.requests[-1] == ("GetSourceScreenshot", {**obs_server.requests[-1][1], "sourceName": "BRB"}),
        timeout=10,
    )


def test_slow_obs_skips_slots_instead_of_queueing(
    start_capture: Callable[..., Running], obs_server: ObsWsServer
) -> None:
    obs_server.screenshot_delay_s = 0.16  # slower than the 50 ms interval
    run = start_capture(max_messages=4)
    run.thread.join(20)
    assert run.count() == 4
    assert run.metric("owc_capture_frames_skipped_total", reason="obs_slow") >= 4
    # one request in flight: never more screenshots asked than answered (+ the last one)
    assert obs_server.request_count("GetSourceScreenshot") == 4


def test_a_timeout_reconnects_instead_of_reading_a_stale_answer(
    start_capture: Callable[..., Running], obs_server: ObsWsServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "owc")
    obs_server.screenshot_delay_s = 1.5
    run = start_capture(obs__timeout_s=0.5)
    wait_until(lambda: run.metric("owc_capture_errors_total", kind="closed") >= 1, timeout=10)
    assert "did not answer within 0.5s" in caplog.text
    obs_server.screenshot_delay_s = 0.0
    run.wait_frames(3)
    frames = run.frames()
    assert all((f.width, f.height) == (640, 360) for f in frames)


def test_backpressure_skips_captures_while_inference_is_behind(
    start_capture: Callable[..., Running], redis_client: redis.Redis, keys: Keys
) -> None:
    redis_client.xgroup_create(keys.frames, GROUP_INFERENCE, id="$", mkstream=True)
    run = start_capture(capture__max_lag=3)
    wait_until(
        lambda: run.metric("owc_capture_frames_skipped_total", reason="backpressure") >= 5,
        timeout=15,
        message="back-pressure skips",
    )
    held = run.count()
    assert held <= 3 + 1 + 20  # at most max_lag + one projection window at 20/s
    assert run.metric("owc_capture_inference_backlog_frames") >= 3
    # an inference worker drains the stream: capture goes on
    entries = redis_client.xreadgroup(GROUP_INFERENCE, "w1", {keys.frames: ">"}, count=1000)
    ids = [i for _, msgs in entries for i, _ in msgs]
    redis_client.xack(keys.frames, GROUP_INFERENCE, *ids)
    run.wait_frames(held + 2, timeout=10)


def test_no_inference_group_does_not_block_live_capture(
    start_capture: Callable[..., Running], redis_client: redis.Redis, keys: Keys
) -> None:
    run = start_capture(capture__max_lag=2, max_messages=8)
    run.thread.join(15)
    assert run.count() == 8
    assert run.metric("owc_capture_frames_skipped_total", reason="backpressure") == 0


@pytest.mark.slow
def test_redis_outage_is_survived(
    settings_factory: Callable[..., Settings], obs_server: ObsWsServer, own_redis: Any, keys: Keys
) -> None:
    settings = settings_factory(
        redis__url=own_redis.url, obs__port=obs_server.port, obs__password="s3cret", capture__interval_ms=50
    )
    client = own_redis.client()
    registry = CollectorRegistry()
    source = ObsSource(settings.obs, settings.capture, client, keys, CaptureMetrics(registry), backoffs=FAST)
    stop = threading.Event()
    thread = threading.Thread(target=source.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: source.publisher.published >= 2, timeout=10)
        own_redis.stop(kill=True)
        # redis-py retries a refused connection with backoff for a few seconds before raising
        wait_until(
            lambda: (registry.get_sample_value("owc_capture_errors_total", {"kind": "redis"}) or 0) >= 1,
            timeout=30,
            message="the outage noticed",
        )
        own_redis.start()
        before = source.publisher.published
        wait_until(lambda: source.publisher.published > before + 1, timeout=30, message="publishing again")
        assert thread.is_alive()
    finally:
        stop.set()
        thread.join(10)


def test_owc_capture_cli_serves_metrics_and_stops_on_sigterm(
    redis_server: Any, redis_client: redis.Redis, prefix: str, keys: Keys, obs_server: ObsWsServer
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    from tests.support.ports import free_port

    metrics_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OWC_")}
    env.update(
        OWC_REDIS__URL=redis_server.url,
        OWC_REDIS__PREFIX=prefix,
        OWC_OBS__PORT=str(obs_server.port),
        OWC_OBS__PASSWORD="s3cret",
        OWC_CAPTURE__METRICS_PORT=str(metrics_port),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "services", "capture", "--channel", "cli", "--set", "capture.interval_ms=100"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: redis_client.xlen(keys.frames) >= 3, timeout=30, message="frames from the CLI")

        def scrape() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2) as resp:
                return str(resp.read().decode())

        text = wait_until(lambda: "owc_capture_frames_published_total" in scrape() and scrape(), timeout=10)
        assert 'owc_capture_frames_published_total{source="obs"}' in text
        assert "owc_capture_obs_connected 1.0" in text
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err
        assert "received SIGTERM, stopping" in err
        assert "capture stopped:" in err
        assert "s3cret" not in err  # the password never reaches the log
        frames = [Frame.from_fields(f) for _, f in redis_client.xrange(keys.frames)]
        assert {f.channel for f in frames} == {"cli"}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_health_stays_alive_during_a_long_backoff(
    start_capture: Callable[..., Running], obs_server: ObsWsServer
) -> None:
    run = start_capture(backoffs=Backoffs(kicked=12.0))
    run.wait_frames(1)
    obs_server.kick_all()
    wait_until(lambda: run.health().get("state") == "kicked", timeout=10)
    first = int(run.health()["updated_at"])
    # refreshed every 5 s while waiting, so the 30 s TTL never lapses on a live capture
    wait_until(lambda: int(run.health()["updated_at"]) >= first + 4000, timeout=10, message="a refresh")
    assert run.health()["state"] == "kicked" and run.source.connects == 1


def test_in_the_channels_cooldown_a_screenshot_a_second_then_the_usual_rate(
    start_capture: Callable[..., Running], redis_client: redis.Redis, keys: Keys
) -> None:
    """services/capture/cooldown.py: nothing can be counted in a cooldown, OBS renders a screenshot a second."""
    run = start_capture()  # every 50 ms outside a cooldown
    run.wait_frames(2)
    written = int(time.time() * 1000)
    end = written + 3000
    redis_client.hset(keys.state("default"), mapping={"phase": "cooldown", "cooldown_until": end})
    run.wait_frames(run.count() + 12, timeout=15)
    slow = [f.captured_at for f in run.frames() if written < f.captured_at < end - 1000]
    # every frame taken since the write brings the news with its publish: one a second from the first of them up
    # to a second before the end
    assert 1 <= len(slow) <= 3
    assert all(b - a >= 900 for a, b in itertools.pairwise(slow))
    assert run.metric("owc_capture_frames_skipped_total", reason="cooldown") >= 10
