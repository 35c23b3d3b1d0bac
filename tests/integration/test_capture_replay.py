"""The replay source against a real redis-server."""

from __future__ import annotations

import itertools
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import redis
from prometheus_client import CollectorRegistry

from services.capture.metrics import CaptureMetrics
from services.capture.publisher import BackPressure, FramePublisher, Picture, now_ms
from services.capture.replay import ReplaySource
from services.common.config.settings import Settings
from services.common.contracts.keys import GROUP_INFERENCE, Keys
from services.common.contracts.messages import Frame
from tests.support.obsws_server import make_test_image
from tests.support.redis_proc import RedisServer
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


def numbered(i: int, width: int, height: int) -> np.ndarray:
    """A frame whose index can be read back after JPEG: its mean brightness."""
    image = np.full((height, width, 3), (i * 9) % 250, np.uint8)
    return image


def brightness(frame: Frame) -> float:
    image = cv2.imdecode(np.frombuffer(frame.image, np.uint8), cv2.IMREAD_COLOR)
    return float(image.mean())


@pytest.fixture
def png_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    # names sort differently from creation order: the replay must sort by name
    for i in reversed(range(12)):
        cv2.imwrite(str(folder / f"shot_{i:04d}.png"), numbered(i, 1920, 1080))
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "match.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 20, (640, 360))
    assert writer.isOpened()
    for i in range(40):  # 2 s of video at 20 fps
        writer.write(numbered(i, 640, 360))
    writer.release()
    return path


def frames_of(client: redis.Redis, keys: Keys) -> list[Frame]:
    return [Frame.from_fields(f) for _, f in client.xrange(keys.frames)]


def make_source(
    settings: Settings, client: redis.Redis, keys: Keys, path: Path
) -> tuple[ReplaySource, CollectorRegistry]:
    registry = CollectorRegistry()
    return ReplaySource(path, settings.capture, client, keys, CaptureMetrics(registry)), registry


def test_folder_of_1080p_pngs_becomes_640x360_jpegs_on_the_replay_clock(
    settings_factory: Callable[..., Settings], redis_client: redis.Redis, keys: Keys, png_folder: Path
) -> None:
    settings = settings_factory(capture__fps=4, capture__speed=50)
    source, registry = make_source(settings, redis_client, keys, png_folder)
    started = time.monotonic()
    summary = source.run(threading.Event())
    took = time.monotonic() - started
    assert summary.finished and summary.published == 12
    frames = frames_of(redis_client, keys)
    assert len(frames) == 12
    assert all((f.format, f.width, f.height) == ("jpg", 640, 360) for f in frames)
    assert all(f.image[:2] == b"\xff\xd8" for f in frames)
    # in name order, every frame
    levels = [brightness(f) for f in frames]
    assert levels == pytest.approx([(i * 9) % 250 for i in range(12)], abs=2)
    seqs = [f.seq for f in frames]
    assert seqs == list(range(seqs[0], seqs[0] + 12))
    # replay clock: exactly 1000/fps apart although replayed 50x faster
    assert {b.captured_at - a.captured_at for a, b in itertools.pairwise(frames)} == {250}
    # wall-clock pacing 1/(fps*speed) = 5 ms a frame: 11 gaps take >= 55 ms
    assert took >= 0.055
    assert registry.get_sample_value("owc_capture_frames_published_total", {"source": "replay"}) == 12
    # its last health record says it finished, and stays for the admin page (not the usual 30 s)
    record = redis_client.hgetall(keys.health(settings.capture.channel, "capture"))
    assert record[b"state"] == b"finished" and int(record[b"last_seq"]) == seqs[-1]
    assert redis_client.ttl(keys.health(settings.capture.channel, "capture")) > 3600


def test_jpegs_already_at_the_capture_size_and_quality_are_published_as_they_are(
    settings_factory: Callable[..., Settings], redis_client: redis.Redis, keys: Keys, tmp_path: Path
) -> None:
    """No decode and re-encode of a file that is already what capture makes; any other file is re-encoded."""
    folder = tmp_path / "jpegs"
    folder.mkdir()
    files = []
    for i, (quality, size) in enumerate([(80, (640, 360)), (80, (640, 360)), (60, (640, 360)), (80, (800, 450))]):
        ok, data = cv2.imencode(".jpg", numbered(i * 5, *size), [cv2.IMWRITE_JPEG_QUALITY, quality])
        assert ok
        files.append(data.tobytes())
        (folder / f"shot_{i}.jpg").write_bytes(files[-1])
    settings = settings_factory(capture__fps=10, capture__speed=100, capture__quality=80)
    source, _ = make_source(settings, redis_client, keys, folder)
    assert source.run(threading.Event()).published == 4
    frames = frames_of(redis_client, keys)
    assert [f.image == data for f, data in zip(frames, files, strict=True)] == [True, True, False, False]
    assert all((f.width, f.height) == (640, 360) for f in frames)
    assert [brightness(f) for f in frames] == pytest.approx([(i * 45) % 250 for i in range(4)], abs=2)


def test_a_folder_of_jpegs_as_captured_is_replayed_without_opencv_or_numpy(
    redis_server: object, redis_client: redis.Redis, prefix: str, keys: Keys, tmp_path: Path
) -> None:
    """`owc capture` replaying the demo's kind of folder loads neither (~29 MB of the process); a file that
    must be re-encoded still is (OpenCV then)."""
    folder = tmp_path / "jpegs"
    folder.mkdir()
    for i in range(3):
        ok, data = cv2.imencode(".jpg", numbered(i, 640, 360), [cv2.IMWRITE_JPEG_QUALITY, 80])
        assert ok
        (folder / f"shot_{i}.jpg").write_bytes(data.tobytes())
    env = {k: v for k, v in os.environ.items() if not k.startswith("OWC_")}
    env.update(OWC_REDIS__URL=redis_server.url, OWC_REDIS__PREFIX=prefix,  # type: ignore[attr-defined]
               OWC_CAPTURE__METRICS_PORT="0", OWC_CAPTURE__QUALITY="80")
    script = ("import sys; from services.cli import main; code = main(sys.argv[1:]); "
              "print(code, 'cv2' in sys.modules, 'numpy' in sys.modules)")

    def replay() -> str:
        proc = subprocess.run(
            [sys.executable, "-c", script, "capture", "--source", f"replay:{folder}", "--fps", "8", "--speed",
             "100"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    assert replay() == "0 False False"
    cv2.imwrite(str(folder / "shot_3.png"), numbered(3, 640, 360))
    assert replay() == "0 True True"
    assert len(frames_of(redis_client, keys)) == 7


def test_video_at_speed_is_sampled_at_fps_with_exact_spacing(
    settings_factory: Callable[..., Settings], redis_client: redis.Redis, keys: Keys, video: Path
) -> None:
    settings = settings_factory(capture__fps=5, capture__speed=20, capture__image_format="png",
                                capture__width=320, capture__height=180)
    source, _ = make_source(settings, redis_client, keys, video)
    summary = source.run(threading.Event())
    frames = frames_of(redis_client, keys)
    # 2 s of video at 5 fps: 10 frames, every 4th video frame
    assert summary.published == len(frames) == 10
    assert all((f.format, f.width, f.height) == ("png", 320, 180) for f in frames)
    assert {b.captured_at - a.captured_at for a, b in itertools.pairwise(frames)} == {200}
    assert [brightness(f) for f in frames] == pytest.approx([(i * 4 * 9) % 250 for i in range(10)], abs=4)


def test_loop_continues_the_replay_clock(
    settings_factory: Callable[..., Settings], redis_client: redis.Redis, keys: Keys, png_folder: Path
) -> None:
    settings = settings_factory(capture__fps=10, capture__speed=100, capture__loop=True)
    source, _ = make_source(settings, redis_client, keys, png_folder)
    summary = source.run(threading.Event(), max_messages=30)
    assert summary.published == 30 and summary.passes == 2 and not summary.finished
    frames = frames_of(redis_client, keys)
    assert {b.captured_at - a.captured_at for a, b in itertools.pairwise(frames)} == {100}


def test_fast_replay_pauses_for_inference_and_delivers_every_frame_in_order(
    settings_factory: Callable[..., Settings], redis_client: redis.Redis, keys: Keys, tmp_path: Path
) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    small = make_test_image(160, 90)
    for i in range(60):
        cv2.imwrite(str(folder / f"{i:03d}.jpg"), small)
    redis_client.xgroup_create(keys.frames, GROUP_INFERENCE, id="$", mkstream=True)
    settings = settings_factory(capture__fps=4, capture__speed=1000, capture__max_lag=5, capture__frames_maxlen=16)
    source, registry = make_source(settings, redis_client, keys, folder)
    seen: list[int] = []
    max_backlog = 0
    done = threading.Event()

    def worker() -> None:  # a slow inference worker: ~100 frames/s
        nonlocal max_backlog
        while not done.is_set() or len(seen) < 60:
            got = redis_client.xreadgroup(GROUP_INFERENCE, "w", {keys.frames: ">"}, count=1, block=100)
            for _, msgs in got or []:
                for msg_id, fields in msgs:
                    seen.append(Frame.from_fields(fields).seq)
                    redis_client.xack(keys.frames, GROUP_INFERENCE, msg_id)
                    time.sleep(0.01)
            info = redis_client.xinfo_groups(keys.frames)[0]
            max_backlog = max(max_backlog, int(info["lag"] or 0) + int(info["pending"]))
            if len(seen) >= 60:
                return

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    summary = source.run(threading.Event())
    done.set()
    thread.join(20)
    assert summary.published == 60
    # nothing trimmed unread although the stream is capped at ~16 entries
    assert len(seen) == 60
    assert seen == sorted(seen) and len(set(seen)) == 60
    assert summary.paused_s > 0
    assert (registry.get_sample_value("owc_capture_replay_paused_seconds_total") or 0) > 0
    # the backlog stayed near max_lag (one projection step of slack), far from 60
    assert max_backlog <= 5 + 2


def test_no_inference_worker_waits_then_gives_up(
    settings_factory: Callable[..., Settings], redis_client: redis.Redis, keys: Keys, png_folder: Path
) -> None:
    settings = settings_factory(capture__fps=4, capture__speed=1000, capture__max_lag=4)
    registry = CollectorRegistry()
    source = ReplaySource(
        png_folder, settings.capture, redis_client, keys, CaptureMetrics(registry), no_group_wait_s=0.5
    )
    started = time.monotonic()
    summary = source.run(threading.Event())
    assert summary.finished and summary.published == 12
    assert time.monotonic() - started >= 0.5


def test_replay_waits_for_a_late_inference_worker(
    settings_factory: Callable[..., Settings], redis_client: redis.Redis, keys: Keys, png_folder: Path
) -> None:
    settings = settings_factory(capture__fps=4, capture__speed=1000, capture__max_lag=4)
    source, _ = make_source(settings, redis_client, keys, png_folder)
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(source.run(threading.Event())), daemon=True)
    thread.start()
    wait_until(lambda: source.summary.published >= 4, timeout=10)
    time.sleep(0.3)
    assert source.summary.published == 4  # paused: nobody reads yet
    # a worker joins at the start of the stream and drains it
    redis_client.xgroup_create(keys.frames, GROUP_INFERENCE, id="0")
    seen: list[int] = []
    while len(seen) < 12:
        got = redis_client.xreadgroup(GROUP_INFERENCE, "w", {keys.frames: ">"}, count=10, block=1000)
        for _, msgs in got or []:
            for msg_id, fields in msgs:
                seen.append(Frame.from_fields(fields).seq)
                redis_client.xack(keys.frames, GROUP_INFERENCE, msg_id)
    thread.join(10)
    assert seen == sorted(seen) and len(seen) == 12


def test_owc_capture_replay_cli_exits_0_with_a_summary(
    redis_server: object, redis_client: redis.Redis, prefix: str, keys: Keys, png_folder: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OWC_")}
    env.update(
        OWC_REDIS__URL=redis_server.url,  # type: ignore[attr-defined]
        OWC_REDIS__PREFIX=prefix,
        OWC_CAPTURE__METRICS_PORT="0",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "services", "capture", "--source", f"replay:{png_folder}",
         "--fps", "8", "--speed", "100", "--channel", "replaytest"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "replay finished: 12 frames published" in proc.stderr
    frames = frames_of(redis_client, keys)
    assert len(frames) == 12 and {f.channel for f in frames} == {"replaytest"}
    health = redis_client.hgetall(keys.health("replaytest", "capture"))
    assert health[b"frames_published"] == b"12"


def test_owc_capture_replay_bad_path_is_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "services", "capture", "--source", f"replay:{tmp_path / 'nope'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"owc: replay path '{tmp_path / 'nope'}' does not exist"]


def test_an_interrupted_replay_resumes_after_the_last_published_frame(
    settings_factory: Callable[..., Settings], redis_client: redis.Redis, keys: Keys, png_folder: Path
) -> None:
    settings = settings_factory(capture__fps=4, capture__speed=100)
    first, _ = make_source(settings, redis_client, keys, png_folder)
    assert first.run(threading.Event(), max_messages=5).published == 5
    second, _ = make_source(settings, redis_client, keys, png_folder)
    summary = second.run(threading.Event())
    assert summary.finished and summary.published == 7
    frames = frames_of(redis_client, keys)
    assert [brightness(f) for f in frames] == pytest.approx([(i * 9) % 250 for i in range(12)], abs=2)
    # the replay clock went on (it runs ahead of the wall clock at speed 100: no gap needed)
    assert {b.captured_at - a.captured_at for a, b in itertools.pairwise(frames)} == {250}
    # a finished replay starts afresh; --from-start (resume=False) too
    third, _ = make_source(settings, redis_client, keys, png_folder)
    assert third.run(threading.Event()).published == 12
    fourth = ReplaySource(png_folder, settings.capture, redis_client, keys, CaptureMetrics(CollectorRegistry()),
                          resume=False)
    assert fourth.run(threading.Event(), max_messages=3).published == 3
    fifth = ReplaySource(png_folder, settings.capture, redis_client, keys, CaptureMetrics(CollectorRegistry()),
                         resume=False)
    assert fifth.run(threading.Event()).published == 12


def test_resume_moves_a_lagging_replay_clock_to_now(
    settings_factory: Callable[..., Settings], redis_client: redis.Redis, keys: Keys, png_folder: Path
) -> None:
    settings = settings_factory(capture__fps=4, capture__speed=100)
    first, _ = make_source(settings, redis_client, keys, png_folder)
    first.run(threading.Event(), max_messages=3)
    # the capture was down for a minute: its clock is far behind the wall clock
    redis_client.hincrby(keys.replay("default"), "start_ms", -60_000)
    before = int(time.time() * 1000)
    second, _ = make_source(settings, redis_client, keys, png_folder)
    second.run(threading.Event())
    frames = frames_of(redis_client, keys)
    assert len(frames) == 12
    assert frames[3].captured_at >= before  # not stamped in the past
    gaps = [b.captured_at - a.captured_at for a, b in itertools.pairwise(frames)]
    assert gaps[3:] == [250] * 8 and all(g == 250 for g in gaps[:2])


@pytest.mark.slow
def test_kill_9_mid_replay_then_restart_publishes_every_frame_once(
    redis_server: object, redis_client: redis.Redis, prefix: str, keys: Keys, tmp_path: Path
) -> None:
    folder = tmp_path / "evening"
    folder.mkdir()
    for i in range(40):
        cv2.imwrite(str(folder / f"{i:03d}.png"), numbered(i, 320, 180))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OWC_")}
    env.update(
        OWC_REDIS__URL=redis_server.url,  # type: ignore[attr-defined]
        OWC_REDIS__PREFIX=prefix,
        OWC_CAPTURE__METRICS_PORT="0",
    )
    argv = [sys.executable, "-m", "services", "capture", "--source", f"replay:{folder}", "--fps", "4", "--speed", "8"]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: redis_client.xlen(keys.frames) >= 8, timeout=30, message="8 frames")
        proc.kill()
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    killed_at = redis_client.xlen(keys.frames)
    assert 8 <= killed_at < 40
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "resuming the interrupted replay" in done.stderr
    frames = frames_of(redis_client, keys)
    assert len(frames) == 40
    assert [brightness(f) for f in frames] == pytest.approx([(i * 9) % 250 for i in range(40)], abs=2)
    seqs = [f.seq for f in frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == 40
    stamps = [f.captured_at for f in frames]
    assert stamps == sorted(stamps)


def test_a_long_pause_does_not_leave_the_replay_clock_behind(
    settings_factory: Callable[..., Settings], redis_client: redis.Redis, keys: Keys, png_folder: Path
) -> None:
    """At speed 1 a pause for inference must not stamp every later frame in the past
    (inference would drop them all as stale): the clock moves forward like on a resume."""
    settings = settings_factory(capture__fps=20, capture__speed=1, capture__max_lag=4)
    source, _ = make_source(settings, redis_client, keys, png_folder)
    thread = threading.Thread(target=lambda: source.run(threading.Event()), daemon=True)
    thread.start()
    wait_until(lambda: source.summary.published >= 4, timeout=10)
    paused_at = time.time()
    wait_until(lambda: time.time() - paused_at > 2.5, timeout=5)  # longer than inference.max_frame_age_ms
    redis_client.xgroup_create(keys.frames, GROUP_INFERENCE, id="0")
    seen = 0
    while seen < 12:
        got = redis_client.xreadgroup(GROUP_INFERENCE, "w", {keys.frames: ">"}, count=10, block=1000)
        for _, msgs in got or []:
            for msg_id, _fields in msgs:
                seen += 1
                redis_client.xack(keys.frames, GROUP_INFERENCE, msg_id)
    thread.join(10)
    entries = redis_client.xrange(keys.frames)
    after = [(int(eid.split(b"-")[0]), Frame.from_fields(f)) for eid, f in entries][4:]
    assert after, "frames after the pause"
    for added_ms, frame in after:
        # stamped (about) when published, not seconds before
        assert added_ms - frame.captured_at < 1000, (added_ms, frame.captured_at)
    stamps = [f.captured_at for _, f in after]
    assert stamps == sorted(stamps)


def test_the_replay_clock_starts_when_the_first_frame_goes_out_not_before_the_fingerprint(
    settings_factory: Callable[..., Settings], redis_client: redis.Redis, keys: Keys, png_folder: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A big folder's fingerprint takes a while; stamped before it, every frame looked that much older than it
    was (the e2e bench counted up to 190 ms of it as capture time)."""
    from services.capture import replay

    fingerprint = replay.fingerprint

    def slow(path: Path) -> str:
        time.sleep(0.6)  # a folder of thousands of frames on a slow disk
        return fingerprint(path)

    monkeypatch.setattr(replay, "fingerprint", slow)
    redis_client.xgroup_create(keys.frames, GROUP_INFERENCE, id="0", mkstream=True)
    settings = settings_factory(capture__fps=4, capture__speed=1)
    source, _ = make_source(settings, redis_client, keys, png_folder)
    stop = threading.Event()
    thread = threading.Thread(target=lambda: source.run(stop), daemon=True)
    thread.start()
    try:
        wait_until(lambda: redis_client.xlen(keys.frames) >= 2, timeout=10, message="two frames")
    finally:
        stop.set()
        thread.join(10)
    for eid, fields in redis_client.xrange(keys.frames)[:2]:
        added_ms, frame = int(eid.split(b"-")[0]), Frame.from_fields(fields)
        assert 0 <= added_ms - frame.captured_at < 400, (added_ms, frame.captured_at)


def _drain(client: redis.Redis, keys: Keys) -> int:
    """Read and ack everything new on the frames stream, like an inference worker that keeps up."""
    n = 0
    while True:
        got = client.xreadgroup(GROUP_INFERENCE, "w", {keys.frames: ">"}, count=100)
        msgs = [msg_id for _, entries in got or [] for msg_id, _ in entries]
        if not msgs:
            return n
        client.xack(keys.frames, GROUP_INFERENCE, *msgs)
        n += len(msgs)


def test_capture_keeps_publishing_after_an_aof_rewrite_and_a_redis_restart(
    settings_factory: Callable[..., Settings], own_redis: RedisServer, keys: Keys, tmp_path: Path
) -> None:
    """Issue 13.1: Redis < 7.2.4 loses the group's read counter on an AOF rewrite (redis/redis#12898).

    After the rewrite and a restart, ``XINFO GROUPS`` reports every frame read
    since the rewrite as undelivered; capture trusted that ``lag`` and froze.
    """
    folder = tmp_path / "loop"
    folder.mkdir()
    for i in range(5):
        cv2.imwrite(str(folder / f"{i:03d}.jpg"), make_test_image(160, 90))
    settings = settings_factory(
        redis__url=own_redis.url, capture__fps=4, capture__speed=1000, capture__max_lag=8, capture__loop=True
    )
    client = own_redis.client()
    client.xgroup_create(keys.frames, GROUP_INFERENCE, id="$", mkstream=True)
    publisher = FramePublisher(client, keys, "default", 512, CaptureMetrics(CollectorRegistry()), "replay")
    image = bytes(cv2.imencode(".jpg", make_test_image(160, 90))[1].tobytes())
    for _ in range(10):
        publisher.publish(Picture(now_ms(), image, "jpg", 160, 90))
    assert _drain(client, keys) == 10
    client.bgrewriteaof()
    wait_until(
        lambda: not (p := client.info("persistence"))["aof_rewrite_in_progress"] and not p["aof_rewrite_scheduled"]
        and p["aof_last_bgrewrite_status"] == "ok" and p["aof_rewrites"] >= 1,
        timeout=20, message="the AOF rewrite",
    )
    for _ in range(30):  # read after the rewrite: the counter Redis forgets
        publisher.publish(Picture(now_ms(), image, "jpg", 160, 90))
    assert _drain(client, keys) == 30
    client.close()
    own_redis.restart()
    client = own_redis.client()
    info = client.xinfo_groups(keys.frames)[0]
    assert int(info["pending"]) == 0
    version = tuple(int(x) for x in client.info("server")["redis_version"].split(".")[:3])
    if version < (7, 2, 4):  # the Redis bug is there: its lag lies
        assert int(info["lag"]) == 30

    source, _ = make_source(settings, client, keys, folder)
    stop = threading.Event()
    reader_done = threading.Event()

    def reader() -> None:
        while not reader_done.is_set():
            _drain(client, keys)
            reader_done.wait(0.02)

    threads = [
        threading.Thread(target=lambda: source.run(stop, max_messages=20), daemon=True),
        threading.Thread(target=reader, daemon=True),
    ]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: source.summary.published >= 20, timeout=20, message="capture publishing again")
    finally:
        stop.set()
        reader_done.set()
        for t in threads:
            t.join(10)
        client.close()


def test_held_back_capture_warns_and_keeps_its_health_fresh(
    settings_factory: Callable[..., Settings], redis_client: redis.Redis, keys: Keys, png_folder: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Inference really is behind (nobody reads): the replay waits, says why, and its health stays alive."""
    redis_client.xgroup_create(keys.frames, GROUP_INFERENCE, id="$", mkstream=True)
    settings = settings_factory(capture__fps=4, capture__speed=1000, capture__max_lag=3)
    metrics = CaptureMetrics(CollectorRegistry())
    pressure = BackPressure(redis_client, keys.frames, 3, metrics, held_warn_s=0.3)
    source = ReplaySource(png_folder, settings.capture, redis_client, keys, metrics, backpressure=pressure)
    stop = threading.Event()
    thread = threading.Thread(target=lambda: source.run(stop), daemon=True)
    caplog.set_level(logging.INFO, logger="owc.capture")
    thread.start()
    try:
        wait_until(lambda: source.summary.published >= 4, timeout=10)
        paused_at = now_ms()
        health_key = keys.health("default", "capture")

        def refreshed() -> bool:
            fields = redis_client.hgetall(health_key)
            return int(fields.get(b"updated_at", 0)) >= paused_at + 1000 and fields.get(b"backpressure") == b"1"

        wait_until(refreshed, timeout=10, message="the capture health refreshed while waiting")
        assert source.summary.published == 4  # still held back
        assert float(redis_client.hget(health_key, "held_back_s") or 0) > 0
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "held back" in r.getMessage()]
        assert warnings, "no WARNING while capture was held back"
        assert "4 frames waiting for inference" in warnings[0].getMessage()
        assert "capture.max_lag=3" in warnings[0].getMessage()
    finally:
        stop.set()
        thread.join(10)


def test_the_pacing_starts_with_the_replay_clock_so_a_frame_is_taken_when_it_is_stamped(
    settings_factory: Callable[..., Settings], redis_client: redis.Redis, keys: Keys, png_folder: Path
) -> None:
    """Slow progress writes at the start (a busy process) do not make every frame's ``XADD`` later than its
    ``captured_at`` by that much: the pacing clock starts when the replay clock's start time is taken."""
    settings = settings_factory(capture__fps=4, capture__speed=1)
    source, _ = make_source(settings, redis_client, keys, png_folder)
    real_start = source._start_or_resume

    def slow_start() -> tuple[int, int, int, int]:
        started = real_start()
        time.sleep(0.4)  # what the writes after the clock's start took
        return started

    source._start_or_resume = slow_start  # type: ignore[method-assign]
    source.run(threading.Event(), max_messages=3)
    entries = redis_client.xrange(keys.frames)
    assert len(entries) == 3
    for entry_id, fields in entries:
        added_ms = int(entry_id.split(b"-")[0])
        # taken on time (not 400 ms late): the XADD comes within its publish time of the stamp
        assert added_ms - int(fields[b"captured_at"]) < 200
