"""The typed health records: written as text, read leniently (a record from another version never breaks)."""

from __future__ import annotations

from services.common.contracts.health import Cadence, CaptureHealth, InferenceHealth, StateHealth


def test_round_trip_through_hash_fields() -> None:
    rec = CaptureHealth(source="replay:/x", obs_connected=False, last_seq=12, last_frame_at=1_700_000_000_000,
                        backpressure=True, held_back_s=6.5, last_error="")
    fields = rec.to_fields()
    assert fields["obs_connected"] == "0" and fields["backpressure"] == "1" and "state" not in fields  # None left out
    raw = {k.encode(): v.encode() for k, v in fields.items()}
    assert CaptureHealth.from_fields(raw) == rec


def test_reading_is_lenient() -> None:
    assert InferenceHealth.from_fields({}) is None and InferenceHealth.from_fields(None) is None
    rec = InferenceHealth.from_fields({b"last_label": b"none", b"last_confidence": b"oops", b"future_field": b"x"})
    assert rec is not None and rec.last_label == "none" and rec.last_confidence is None
    assert StateHealth.from_fields({"phase": "ready", "victories": "3"}) == StateHealth(phase="ready", victories=3)
    assert (CaptureHealth.SERVICE, InferenceHealth.SERVICE, StateHealth.SERVICE) == ("capture", "inference", "state")


def test_an_unknown_field_is_a_bug_said_loudly() -> None:
    import pytest

    rec = CaptureHealth().updated(obs_version="29.0.2", render_failures=3)
    assert rec.to_fields() == {"obs_version": "29.0.2", "render_failures": "3"}
    with pytest.raises(TypeError, match="no field"):
        rec.updated(obs_versoin="typo")


def test_cadence_writes_a_changing_record_every_interval_and_an_unchanged_one_every_refresh() -> None:
    cadence = Cadence(interval_s=1.0, refresh_s=10.0)
    record = CaptureHealth(state="connected", frames_published=1)
    assert cadence.due("default", record, 100.0)  # never written
    cadence.sent("default", record, 100.0)
    assert not cadence.due("default", record, 100.5)
    assert not cadence.due("default", record, 109.9)  # unchanged: kept alive, not rewritten
    assert cadence.due("default", record, 110.0)
    changed = record.updated(frames_published=2)
    assert not cadence.due("default", changed, 100.9)  # changed, but at most once an interval
    assert cadence.due("default", changed, 101.0)
    assert cadence.due("other", record, 100.5)  # each key on its own


def test_cadence_says_when_a_record_was_last_sent() -> None:
    cadence = Cadence(interval_s=1.0, refresh_s=10.0)
    assert cadence.sent_at("default") is None  # never: due, whatever it holds
    cadence.sent("default", CaptureHealth(frames_published=1), 100.0)
    assert cadence.sent_at("default") == 100.0
    assert cadence.sent_at("other") is None
