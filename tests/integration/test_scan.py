"""``owc scan`` on generated clips with known results (a folder, an mp4, a GIF), its output shapes, bad input,
and ``--import`` against a real redis-server with the real state worker."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import redis
from PIL import Image

from services.cli import main
from services.common.config.settings import Settings
from services.common.contracts.keys import Keys
from services.common.contracts.messages import Event, StateSnapshot
from services.state.worker import StateWorker
from tests.support.clips import evening

OUTCOMES = ["victory", "draw", "defeat"]
EXPECTED = {"victory": 1, "defeat": 1, "draw": 1}
# short matches: the rules must re-arm between the clip's banners (a few seconds apart)
RULES = ["--set", "state.cooldown_s=1", "--set", "state.required_none=3"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One evening (victory, draw, defeat) as a folder of 4 fps JPEG frames, an 8 fps mp4 and a GIF."""
    root = tmp_path_factory.mktemp("clips")
    folder, _, _ = evening(root / "frames", OUTCOMES, lead_frames=4, banner_frames=5, tail_frames=5, seed=5)
    frames = sorted(folder.glob("*.jpg"))
    images = [cv2.imread(str(f)) for f in frames]
    video = root / "evening.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 8.0, (640, 360))
    assert writer.isOpened()
    for image in images:  # each frame twice: the scan samples every other one
        writer.write(image)
        writer.write(image)
    writer.release()
    gif = root / "evening.gif"
    pictures = [Image.fromarray(np.ascontiguousarray(i[:, :, ::-1])) for i in images]
    pictures[0].save(gif, save_all=True, append_images=pictures[1:], duration=250, loop=0)
    return {"folder": folder, "video": video, "gif": gif}


def scan(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["scan", "--no-progress", "--log-level", "WARNING", *RULES, *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("kind", ["folder", "video", "gif"])
def test_a_scan_finds_every_result_with_its_time_and_scores(
    clips: dict[str, Path], capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    code, out, err = scan(capsys, str(clips[kind]), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["counts"] == EXPECTED, doc["results"]
    assert [r["outcome"] for r in doc["results"]] == OUTCOMES
    assert doc["recording"]["kind"] == kind and len(doc["recording"]["sha256"]) == 64
    assert doc["interval_ms"] == 250 and doc["frames"] == 42 and doc["errors"] == 0
    assert doc["frames_per_second"] > 0 and doc["candidates"] >= 6
    # each banner is 5 frames from frame 4 of its 14-frame match (frame k at k·250 ms): counted on its 2nd frame
    for i, result in enumerate(doc["results"]):
        start_ms = (14 * i + 4) * 250
        assert start_ms <= result["at_ms"] <= start_ms + 4 * 250, result
        assert result["time"].startswith("00:00:") and result["confidence"] >= 0.9
        assert len(result["frames"]) >= 2
        last = result["frames"][-1]
        assert last["label"] == result["outcome"] and last["gate"] is not None and last["reader"] is not None


def test_the_timeline_and_the_csv(clips: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = scan(capsys, str(clips["folder"]))
    assert code == 0
    assert "frames/s" in out and "total: 1 victory, 1 defeat, 1 draw" in out
    timeline = [line.split()[1] for line in out.splitlines() if line.startswith("  00:")]
    assert timeline[:3] == ["VICTORY", "DRAW", "DEFEAT"]
    code, out, _ = scan(capsys, str(clips["folder"]), "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and out.splitlines()[0] == "kind,time,at_ms,outcome,confidence,gate,reader,frames,first_ms,text"
    results = [r for r in rows if r["kind"] == "result"]
    assert [r["outcome"] for r in results] == OUTCOMES
    assert all(r["time"].startswith("00:00:") and float(r["gate"]) > 0 and float(r["reader"]) < 0 for r in results)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.mp4", "does not exist"),
        (lambda d: _write(d / "empty.mp4", b""), "is empty"),
        (lambda d: _write(d / "notes.mp4", b"just some text, not a video\n" * 20), "not a video"),
        (lambda d: _write(d / "broken.gif", b"GIF89a\x00\x01garbage"), "not a readable GIF"),
        (lambda d: _write(d / "frame.png", cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes()),
         "single image"),
        (lambda d: (d / "nothing").mkdir() or d / "nothing", "holds no frames"),
    ],
)
def test_bad_recordings_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: Callable[[Path], Path], message: str
) -> None:
    path = make(tmp_path)
    with pytest.raises(SystemExit) as exited:
        scan(capsys, str(path))
    _, err = capsys.readouterr()
    assert exited.value.code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("owc: scan: ") and message in lines[0], err
    assert "Traceback" not in err


def test_a_truncated_video_is_an_error_or_its_readable_part(
    clips: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = clips["video"].read_bytes()
    cut = _write(tmp_path / "cut.mp4", data[: len(data) // 3])  # the index (moov) is at the end: unreadable
    with pytest.raises(SystemExit) as exited:
        scan(capsys, str(cut))
    _, err = capsys.readouterr()
    assert exited.value.code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_recording_ffmpeg_cannot_read_is_one_line_on_the_real_stderr(tmp_path: Path) -> None:
    """FFmpeg and OpenCV write their own warnings to file descriptor 2; the command keeps them quiet."""
    notes = _write(tmp_path / "notes.mp4", b"just some text, not a video\n" * 20)
    for path in (notes, tmp_path / "missing.mkv"):
        done = subprocess.run([sys.executable, "-m", "services", "scan", str(path), "--no-progress"],
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 2 and done.stdout == ""
        assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("owc: scan: "), done.stderr


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ------------------------------------------------------------------ --import


@pytest.fixture
def state_worker(
    redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings]
) -> Iterator[StateWorker]:
    worker = StateWorker(redis_client, keys, settings_factory(state__reorder_window_ms=50, state__lease_ttl_ms=1000))
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    yield worker
    stop.set()
    thread.join(10)


def _events(client: redis.Redis, keys: Keys) -> list[Event]:
    return [Event.from_fields(f, id=i) for i, f in client.xrange(keys.events("default"))]


def test_import_adds_the_results_once(
    clips: dict[str, Path], capsys: pytest.CaptureFixture[str], state_worker: StateWorker,
    redis_client: redis.Redis, keys: Keys, redis_server: Any, prefix: str,
) -> None:
    target = ["--set", f"redis.url={redis_server.url}", "--set", f"redis.prefix={prefix}"]
    code, out, err = scan(capsys, str(clips["folder"]), "--json", "--import", "current", *target)
    assert code == 0, err
    first = json.loads(out)["import"]
    assert first["added"] == 3 and first["already"] == 0 and first["channel"] == "default"
    imported = [e for e in _events(redis_client, keys) if e.source == "import"]
    assert [(e.type, e.outcome, e.delta) for e in imported] == [("adjusted", o, 1) for o in OUTCOMES]
    assert all(e.request_id.startswith("scan:") and "frames at 00:00:" in e.note for e in imported)
    counts = StateSnapshot.from_fields(redis_client.hgetall(keys.state("default"))).counts
    assert counts.as_dict() == {"victories": 1, "defeats": 1, "draws": 1}
    log_length = redis_client.xlen(keys.events("default"))

    # the same file again, and the same frames scanned at another interval: nothing added
    for extra in ([], ["--interval", "500"]):
        code, out, err = scan(capsys, str(clips["folder"]), "--json", "--frame-interval", "250", "--import",
                              first["session"], *extra, *target)
        assert code == 0, err
        again = json.loads(out)["import"]
        assert again["added"] == 0 and again["already"] == len(json.loads(out)["results"])
    assert redis_client.xlen(keys.events("default")) == log_length

    # another session id than the current one: refused, one line, exit 1
    with pytest.raises(SystemExit) as exited:
        scan(capsys, str(clips["folder"]), "--import", "20200101-000000-000", *target)
    _, err = capsys.readouterr()
    assert exited.value.code == 1 and "not this channel's current session" in err
    assert redis_client.xlen(keys.events("default")) == log_length


def test_the_actions_ignore_imported_results(
    redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings]
) -> None:
    from services.actions.webhooks import WebhookAction
    from tests.support.actions import add_event, pending, start_worker
    from tests.support.waiting import wait_until
    from tests.support.webhook_receiver import Receiver

    receiver = Receiver().start()
    try:
        settings = settings_factory(actions__webhooks=[{"url": receiver.url, "name": "hook"}])
        w = start_worker(redis_client, keys, settings, [WebhookAction(settings.actions.webhooks[0])])
        try:
            add_event(redis_client, keys, "default", "adjusted", "victory", 1, (1, 0, 0), source="import")
            live = add_event(redis_client, keys, "default", "adjusted", "defeat", 1, (1, 1, 0))
            wait_until(lambda: pending(redis_client, keys) == 0 and w.worker.processed >= 2 and receiver.snapshot(),
                       message="both events handled")
        finally:
            w.close()
        assert [r.key for r in receiver.snapshot()] == [f"default/{live}"]
    finally:
        receiver.stop()


def test_a_banner_read_not_clearly_enough_is_a_near_miss(tmp_path: Path) -> None:
    """A banner partly covered (its last letters hidden) reads as a near miss: listed with its time, not counted."""
    from services.common.config.sections import CaptureSettings
    from services.inference.classifier import Classifier
    from services.scan.recording import open_recording
    from services.scan.scanner import Scanner
    from services.state.rules import Rules
    from training import synth
    from training.clips import CLIP_SPLIT
    from training.config import MODEL_PATH
    from training.synth.assets import ensure_fonts

    ensure_fonts(CLIP_SPLIT)  # the banner in the clip's own fonts (not a fallback font, whatever ran before)
    width, height = 640, 360
    classifier = Classifier(MODEL_PATH)
    scene = synth.bg_scene(np.random.default_rng(3), width, height).astype(np.float32) * 0.8
    banner = scene.copy()
    synth.draw_banner(banner, np.random.default_rng([5, 1]), "defeat", CLIP_SPLIT, alpha=1.0, japanese=False,
                      score=False, centre=(width * 0.51, height * 0.43), cap_frac=0.13)

    def jpeg(image: np.ndarray) -> bytes:
        return bytes(cv2.imencode(".jpg", np.clip(image, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 95])[1])

    scanner = Scanner(classifier, Rules(), CaptureSettings.model_validate({}))
    covered = None
    for x in np.arange(0.50, 0.60, 0.005):  # hide the word from x on: somewhere it reads "DEFE…", not enough
        frame = banner.copy()
        frame[:, int(x * width):] = scene[:, int(x * width):]
        seen = scanner.frame_bytes(cv2.imdecode(np.frombuffer(jpeg(frame), np.uint8), cv2.IMREAD_COLOR))
        pred = classifier.classify([(seen, width, height)])[0]  # the frame exactly as the scan will make it
        if pred.label == "none" and pred.near_miss == "defeat":
            covered = frame
            break
    assert covered is not None, "no partly covered DEFEAT reads as a near miss: the test's banner needs a new cut"
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(12):  # gameplay, the covered banner for 1 s (frames 4-7), gameplay
        (folder / f"{i:03d}.jpg").write_bytes(jpeg(covered if 4 <= i < 8 else scene))
    report = scanner.scan(open_recording(folder), 250)
    assert report.results == [] and report.frames == 12
    assert [(n.outcome, n.at_ms, [f.seq for f in n.frames]) for n in report.near_misses] == [
        ("defeat", 1000, [4, 5, 6, 7])]
    assert all(f.reader is not None and f.reader < -2.0 for f in report.near_misses[0].frames)
