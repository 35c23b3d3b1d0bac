"""Pure pieces of the capture service: image headers, data URIs, auth, replay parsing."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from services.capture.encode import encode_image
from services.capture.metrics import ERROR_KINDS
from services.capture.obs_errors import PROBLEMS, Backoffs
from services.capture.obs_source import decode_image_data
from services.capture.obsclient import ObsClosedError, ObsRequestError, auth_response
from services.capture.publisher import ImageError, image_size
from services.capture.replay import ReplayError, check_replay_path, iter_frames, parse_replay_source


def image(w: int = 64, h: int = 48) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 255, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize(("fmt", "size"), [("jpg", (640, 360)), ("png", (1920, 1080)), ("jpg", (8, 8))])
def test_image_size_reads_the_header(fmt: str, size: tuple[int, int]) -> None:
    data = encode_image(image(), fmt, *size, quality=80)  # type: ignore[arg-type]
    assert image_size(data) == (fmt, *size)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape[:2] == (size[1], size[0])


def test_progressive_jpeg_header() -> None:
    ok, buf = cv2.imencode(".jpg", image(100, 50), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert ok
    assert image_size(buf.tobytes()) == ("jpg", 100, 50)


@pytest.mark.parametrize("data", [b"", b"GIF89a....", b"\xff\xd8\xff\xe0\x00\x10JFIF", b"\x89PNG\r\n\x1a\n"])
def test_image_size_refuses_garbage(data: bytes) -> None:
    with pytest.raises(ImageError):
        image_size(data)


def test_jpeg_quality_changes_size() -> None:
    big = encode_image(image(640, 360), "jpg", 640, 360, quality=95)
    small = encode_image(image(640, 360), "jpg", 640, 360, quality=20)
    assert len(small) < len(big)


def test_decode_image_data_strips_the_data_uri() -> None:
    raw = b"\xff\xd8hello"
    assert decode_image_data("data:image/jpg;base64," + base64.b64encode(raw).decode()) == raw
    assert decode_image_data(base64.b64encode(raw).decode()) == raw
    for bad in (None, "", "data:image/png;base64", "data:image/png;base64,@@@"):
        with pytest.raises(ValueError):
            decode_image_data(bad)


def test_auth_response_follows_the_protocol() -> None:
    password, salt, challenge = "supersecretpassword", "PZVbYpvAnZut2SS6JNJytDm9", "ztTBnnuqrqaKDzRM3xcVdbYm"
    secret = base64.b64encode(hashlib.sha256((password + salt).encode()).digest()).decode()
    expected = base64.b64encode(hashlib.sha256((secret + challenge).encode()).digest()).decode()
    assert auth_response(password, salt, challenge) == expected
    assert auth_response(password, challenge, salt) != expected


def test_error_kinds() -> None:
    assert ObsClosedError(4009, "Authentication failed.").kind == "auth"
    assert ObsClosedError(4011, "").kind == "kicked"
    assert ObsClosedError(None, "reset").kind == "closed"
    assert ObsRequestError("GetSourceScreenshot", 600, "x").kind == "source_missing"
    assert ObsRequestError("GetSourceScreenshot", 602, "x").kind == "not_video"
    assert ObsRequestError("GetSourceScreenshot", 702, "x").kind == "render_failed"
    assert ObsRequestError("GetSourceScreenshot", 402, "x").kind == "request"


def test_parse_replay_source() -> None:
    assert parse_replay_source("obs") is None
    assert parse_replay_source("replay:/a/b") == Path("/a/b")
    for bad in ("replay:", "file:/a", "OBS"):
        with pytest.raises(ReplayError):
            parse_replay_source(bad)


def test_check_replay_path_messages(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="does not exist"):
        check_replay_path(tmp_path / "missing")
    with pytest.raises(ReplayError, match=r"no \.png/\.jpg images"):
        check_replay_path(tmp_path)
    (tmp_path / "x.mp4").write_bytes(b"not a video")
    with pytest.raises(ReplayError, match="neither a folder nor a video"):
        check_replay_path(tmp_path / "x.mp4")


def test_video_is_sampled_at_the_replay_fps(tmp_path: Path) -> None:
    path = tmp_path / "v.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (64, 48))
    for i in range(90):  # 3 s at 30 fps
        writer.write(np.full((48, 64, 3), i * 2, np.uint8))
    writer.release()
    frames = list(iter_frames(path, fps=4))
    # 0, 0.25, …, 2.75 s: 12 frames, video frames 0, 8 (7.5 rounded up), 15, 23, …
    assert [k for k, _ in frames] == list(range(12))
    expected = [int(np.ceil(k * 7.5)) * 2 for k in range(12)]
    assert [float(f.mean()) for _, f in frames] == pytest.approx(expected, abs=3)
    # resuming at replay frame 5 gives the same frames from there
    resumed = list(iter_frames(path, fps=4, start=5))
    assert [k for k, _ in resumed] == list(range(5, 12))
    assert [float(f.mean()) for _, f in resumed] == pytest.approx(expected[5:], abs=3)


def test_folder_order_and_unreadable_files(tmp_path: Path) -> None:
    for name, level in (("b.png", 20), ("a.jpg", 10), ("c.PNG", 30)):
        cv2.imwrite(str(tmp_path / name.lower()), np.full((8, 8, 3), level, np.uint8))
    (tmp_path / "d.png").write_bytes(b"broken")
    frames = list(iter_frames(tmp_path, fps=1))
    assert [i for i, _ in frames] == [0, 1, 2]
    assert [float(f.mean()) for _, f in frames] == pytest.approx([10, 20, 30], abs=2)
    assert [i for i, _ in iter_frames(tmp_path, fps=1, start=2)] == [2]


def test_every_obs_problem_row_formats_and_names_a_known_kind() -> None:
    values = {"where": "ws://h:1", "error": "boom", "source": "Game", "code": 999, "comment": "",
              "sources": "scenes: 'Scene'", "or_empty": ""}
    for key, problem in PROBLEMS.items():
        assert problem.kind in ERROR_KINDS, key
        text = problem.message(**values)
        assert "{" not in text, key
        problem.then.format(wait=1.0, max=2.0)
        assert Backoffs().delay(problem.backoff) >= 0
    assert "(602: e.g. an audio input)" in PROBLEMS[602].message(**values)
    assert "(702: render failed)" in PROBLEMS[702].message(**values)


def test_reconnect_waits_double_up_to_the_cap() -> None:
    b = Backoffs()
    assert [b.delay("doubling", n) for n in range(5)] == [0.25, 0.5, 1.0, 2.0, 2.0]
    assert (b.delay("restart", 3), b.delay("auth"), b.delay("kicked"), b.delay("next_slot")) == (0.25, 15, 30, 0)


def test_jpeg_header_tells_quality_size_and_subsampling_apart() -> None:
    from services.capture.jpeg import as_captured, jpeg_header, jpeg_reference

    image = np.full((360, 640, 3), 90, np.uint8)

    def jpeg(quality: int, img: np.ndarray = image, *extra: int) -> bytes:
        ok, data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality, *extra])
        assert ok
        return bytes(data.tobytes())

    ref = jpeg_reference(640, 360, 80)
    assert ref is not None and as_captured(jpeg(80), ref)
    assert not as_captured(jpeg(79), ref)
    assert not as_captured(jpeg(80, np.full((360, 641, 3), 90, np.uint8)), ref)
    assert not as_captured(jpeg(80, image, cv2.IMWRITE_JPEG_PROGRESSIVE, 1), ref)
    assert not as_captured(jpeg(80, image, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444), ref)
    _, png = cv2.imencode(".png", image)
    assert jpeg_header(png.tobytes()) is None and not as_captured(png.tobytes(), ref)
    assert jpeg_header(b"\xff\xd8\x00garbage") is None and not as_captured(jpeg(80), None)


def test_the_reference_header_is_the_one_opencv_writes() -> None:
    """services/capture/jpeg.py computes libjpeg's tables and frame header; held to what encode_image makes
    (the default quality -1 included) at every quality and a few sizes."""
    from services.capture.jpeg import jpeg_header, jpeg_reference

    for quality in [-1, *range(0, 101)]:
        for width, height in [(640, 360), (1920, 1080), (17, 9)]:
            made = jpeg_header(encode_image(np.zeros((height, width, 3), np.uint8), "jpg", width, height, quality))
            assert jpeg_reference(width, height, quality) == made, (quality, width, height)
