"""``owc scan``'s pure parts: the import payload, which results are new, the rules' scan_import, sampling."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from services.common.contracts.messages import Command, Counts, Event, MessageError
from services.common.contracts.scanimport import ScanImport, ScanResult, clock, parse_key, result_key
from services.scan.recording import open_recording
from services.state.machine import Machine
from services.state.rules import CommandInput, Rejected, Rules, transition
from services.state.scanimport import MATCH_WINDOW_MS, only_new

SHA = "ab" * 32
BATCH = ScanImport("current", "evening.mp4", SHA, (
    ScanResult("victory", 754_250, 0.99), ScanResult("draw", 1_500_000, 0.93), ScanResult("defeat", 2_400_500, 1.0),
))


def test_clock_and_keys() -> None:
    assert clock(0) == "00:00:00.000" and clock(3_723_045) == "01:02:03.045" and clock(-5) == "00:00:00.000"
    key = result_key(SHA, 754_250)
    assert key == f"scan:{SHA[:32]}:754250" and parse_key(key) == (SHA[:32], 754_250)
    assert parse_key("") is None and parse_key("scan:short:1") is None and parse_key(f"scan:{SHA[:32]}:x") is None


def test_the_payload_round_trips_and_bad_ones_say_why() -> None:
    assert ScanImport.from_json(BATCH.to_json()) == BATCH
    bad = {
        "not json": "{",
        "sha256: String should match pattern": BATCH.to_json().replace(SHA, "xyz"),
        "results.1.outcome: Input should be 'victory', 'defeat' or 'draw'": BATCH.to_json().replace('"draw"', '"win"'),
        "results.1.confidence: Input should be less than or equal to 1": BATCH.to_json().replace("0.93", "1.5"),
        "results.0.at_ms: Input should be greater than or equal to 0": BATCH.to_json().replace("754250", "-1"),
        "session: String should have at least 1 character": BATCH.to_json().replace('"current"', '""'),
        "not valid": '{"session": "current"}',
    }
    for why, text in bad.items():
        with pytest.raises(MessageError, match="scan import") as caught:
            ScanImport.from_json(text)
        assert why in str(caught.value) or why == "not json", (why, caught.value)


def _imported(at_ms: int, sha: str = SHA, source: str = "import") -> Event:
    return Event(type="adjusted", counts=Counts(1, 0, 0), session="s", source=source, ts=1,  # type: ignore[arg-type]
                 outcome="victory", delta=1, request_id=result_key(sha, at_ms))


def _cmd(batch: ScanImport = BATCH) -> Command:
    return Command(request_id="r1", channel="default", type="scan_import", payload=batch.to_json())


def _results(cmd: Command) -> list[int]:
    return [r.at_ms for r in ScanImport.from_json(cmd.payload).results]


def test_only_new_drops_what_the_log_holds_within_a_minute_of_the_same_recording() -> None:
    assert _results(only_new(_cmd(), [])) == [754_250, 1_500_000, 2_400_500]
    # the same match found a frame later (another interval): not new; another recording, or a manual
    # event that happens to carry such a request id: no effect
    log = [_imported(754_000), _imported(1_500_000, sha="cd" * 32), _imported(2_400_500, source="manual")]
    assert _results(only_new(_cmd(), log)) == [1_500_000, 2_400_500]
    assert _results(only_new(_cmd(), [_imported(754_250 + MATCH_WINDOW_MS)])) == [754_250, 1_500_000, 2_400_500]
    # results of one command are not compared with each other (only exact repeats are dropped)
    close = replace(BATCH, results=(BATCH.results[0], replace(BATCH.results[0], at_ms=760_000), BATCH.results[0]))
    assert _results(only_new(_cmd(close), [])) == [754_250, 760_000]
    assert only_new(replace(_cmd(), payload="{"), []).payload == "{"  # the rules refuse it with the reason


def test_the_rules_add_each_result_as_an_imported_adjustment() -> None:
    rules = Rules()
    m, events = transition(Machine(), CommandInput(_cmd(), 1_000), rules)
    assert [e.type for e in events] == ["session_started", "adjusted", "adjusted", "adjusted"]
    added = events[1:]
    assert all(e.source == "import" and e.delta == 1 for e in added)
    assert [e.outcome for e in added] == ["victory", "draw", "defeat"]
    assert [e.request_id for e in added] == [result_key(SHA, r.at_ms) for r in BATCH.results]
    assert added[0].note == "evening.mp4 at 00:12:34.250" and added[1].confidence == 0.93
    assert m.counts == Counts(1, 1, 1) and m.phase == "ready" and m.results == "WDL"
    # the session by its id; a new one only when the current one has events
    m2, events = transition(m, CommandInput(replace(_cmd(replace(BATCH, session=m.session)), request_id="r2"), 2_000),
                            rules)
    assert m2.counts == Counts(2, 2, 2) and all(e.session == m.session for e in events)
    m3, events = transition(m2, CommandInput(_cmd(replace(BATCH, session="new")), 3_000), rules)
    assert events[0].type == "session_started" and m3.session != m.session and m3.counts == Counts(1, 1, 1)
    # nothing new: no event, no new session
    _, events = transition(m3, CommandInput(_cmd(replace(BATCH, session="new", results=())), 4_000), rules)
    assert events == []


def test_the_rules_refuse_another_session_and_a_bad_payload() -> None:
    m, _ = transition(Machine(), CommandInput(_cmd(), 1_000), Rules())
    with pytest.raises(Rejected, match="not this channel's current session") as caught:
        transition(m, CommandInput(_cmd(replace(BATCH, session="20200101-000000-000")), 2_000), Rules())
    assert caught.value.code == "rejected"
    with pytest.raises(Rejected, match="cannot import the scan") as caught:
        transition(m, CommandInput(replace(_cmd(), payload="[]"), 2_000), Rules())
    assert caught.value.code == "invalid"


# ------------------------------------------------------------------ sampling


def _jpeg(path: Path, value: int) -> None:
    cv2.imwrite(str(path), np.full((36, 64, 3), value, np.uint8))


def test_a_folder_is_sampled_on_the_interval_grid_and_a_bad_frame_is_an_error_sample(tmp_path: Path) -> None:
    for i in range(10):
        _jpeg(tmp_path / f"f{i:02d}.jpg", i * 20)
    (tmp_path / "f03.jpg").write_bytes(b"\xff\xd8\xff broken")
    (tmp_path / "notes.txt").write_text("ignored")
    rec = open_recording(tmp_path, frame_interval_ms=100)
    assert rec.kind == "folder" and rec.frames == 10 and rec.duration_ms == 900 and (rec.width, rec.height) == (64, 36)
    samples = list(rec.samples(250))
    assert [s.at_ms for s in samples] == [0, 300, 500, 800]  # the first frame at or after 0, 250, 500, 750
    assert samples[1].image is None and "f03.jpg" in samples[1].error
    assert int(samples[2].image[0, 0, 0]) == pytest.approx(100, abs=3)  # type: ignore[index]
    # the identity is the frames' names and bytes, not the folder's name
    other = tmp_path.parent / "copy"
    other.mkdir()
    for f in tmp_path.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    assert open_recording(other, 100).sha256 == rec.sha256


def test_a_gif_is_sampled_by_its_frame_delays(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (64, 36), (v, v, v)) for v in (0, 100, 200)]
    path = tmp_path / "a.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=[600, 100, 300], loop=0)
    rec = open_recording(path)
    assert rec.kind == "gif" and rec.frames == 3 and rec.duration_ms == 700
    samples = list(rec.samples(250))
    # frame 0 is on screen 0-600 ms (samples at 0, 250, 500), frame 1 600-700 (none), frame 2 700-1000
    assert [(s.at_ms, int(s.image[0, 0, 0])) for s in samples] == [  # type: ignore[index]
        (0, 0), (250, 0), (500, 0), (750, 200)]


def test_a_folder_whose_first_frame_lies_still_opens(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    _jpeg(tmp_path / "b.jpg", 50)
    rec = open_recording(tmp_path)
    assert (rec.width, rec.height) == (0, 0)
    samples = list(rec.samples(250))
    assert samples[0].image is None and "a.png" in samples[0].error and samples[1].image is not None


def test_an_unreadable_frame_is_an_error_label_that_breaks_a_streak(tmp_path: Path) -> None:
    from services.common.config.sections import CaptureSettings
    from services.inference.classifier import Classifier
    from services.scan.scanner import Scanner
    from tools.synthetic_model import write_synthetic_model

    # a stand-in model that sees a confident victory in every frame
    model = write_synthetic_model(tmp_path / "m.onnx", width=32, height=16, channels=(4,), logit_bias=(-20, 20, 0, 0))
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(5):
        _jpeg(frames / f"{i}.jpg", 90)
    (frames / "1.jpg").write_bytes(b"\xff\xd8\xff broken")
    scanner = Scanner(Classifier(model), Rules(), CaptureSettings())
    report = scanner.scan(open_recording(frames), 250)
    assert report.frames == 5 and len(report.errors) == 1 and "1.jpg" in report.errors[0]
    # frame 0 starts a streak, frame 1 (unreadable) breaks it, frames 2 and 3 count
    assert [(r.outcome, r.at_ms) for r in report.results] == [("victory", 750)]
    assert [f.seq for f in report.results[0].frames] == [2, 3] and report.counts()["victory"] == 1


def test_the_recordings_evaluation_scores_each_banner_once() -> None:
    from training.scan_eval import _score

    starts, outcomes = [16, 76, 136], ["victory", "draw", "defeat"]
    # counted on frames 17, 78 (right), 140 as a victory (wrong), and banner 0 a second time (extra)
    results = [("victory", 17 * 250), ("draw", 78 * 250), ("victory", 140 * 250), ("victory", 20 * 250)]
    hit, extra = _score(results, starts, outcomes)
    assert hit == [True, True, False]
    assert extra == ["victory at 35000 ms (banner 2: defeat)", "victory at 5000 ms (banner 0: victory)"]
    assert _score([("draw", 0)], starts, outcomes) == ([False, False, False], ["draw at 0 ms (banner -1: -)"])


@pytest.mark.parametrize("side", [5000, 20000])  # over the frame cap; over Pillow's own bomb limit
def test_a_gif_declaring_huge_frames_is_refused_from_its_header(tmp_path: Path, side: int) -> None:
    import io

    from services.scan.recording import RecordingError

    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "GIF")
    data = bytearray(buf.getvalue())
    data[6:10] = side.to_bytes(2, "little") * 2  # the logical screen: side × side
    (tmp_path / "big.gif").write_bytes(bytes(data))
    with pytest.raises(RecordingError, match="too large"):
        open_recording(tmp_path / "big.gif")
