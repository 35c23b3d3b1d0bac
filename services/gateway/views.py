"""HTTP answers built from what the store read: the only place that turns domain objects into
the response models of :mod:`models` (the store never builds them)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from services.common.contracts.action_records import ActionInfo, DeadLetter, LastDelivery, service_running
from services.common.contracts.health import ActionsHealth, InferenceHealth
from services.common.contracts.messages import Counts, Event, StateSnapshot
from services.gateway.models import (
    ActionOut,
    ActionsOut,
    ActionsServiceOut,
    ChatBotOut,
    DeadLetterOut,
    DetectionOut,
    EventOut,
    Health,
    LastDeliveryOut,
    LegacyStatus,
    NearMiss,
    SessionOut,
    SessionRef,
    Status,
    Streak,
    StreamStatus,
)
from services.gateway.modes import mode_counts_out
from services.gateway.store import ActionRecords, ChannelState, PipelineHealth, SessionTotals


def now_ms() -> int:
    return int(time.time() * 1000)


def iso_ms(epoch_ms: int) -> str:
    """Epoch milliseconds as ISO 8601 UTC."""
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def counts_fields(counts: Counts) -> dict[str, Any]:
    """The count fields every answer with counts shares."""
    return {
        "victories": counts.victories,
        "defeats": counts.defeats,
        "draws": counts.draws,
        "total": counts.total,
        "win_rate": counts.win_rate,
    }


def event_out(event: Event) -> EventOut:
    return EventOut(**event.as_dict())


def near_miss_out(inference: InferenceHealth) -> NearMiss | None:
    n = inference
    if n.near_miss not in ("victory", "defeat", "draw") or n.near_miss_seq is None:
        return None
    return NearMiss(
        outcome=n.near_miss,  # type: ignore[arg-type]
        confidence=n.near_miss_confidence or 0.0,
        frame_seq=n.near_miss_seq,
        captured_at=n.near_miss_at or 0,
        text=n.near_miss_text or "",
    )


def health_out(health: PipelineHealth) -> Health:
    capture, inference = health.capture, health.inference
    last_frame_at = capture.last_frame_at or None
    held_back = (capture.held_back_s or 0.0) if capture.backpressure else None
    age = None if last_frame_at is None else max(0.0, (now_ms() - last_frame_at) / 1000)
    return Health(
        obs_connected=capture.obs_connected,
        capture_source=capture.source,
        last_frame_at=last_frame_at,
        last_frame_age_s=age,
        last_seq=capture.last_seq,
        capture_error=capture.last_error or None,
        capture_state=capture.state,
        last_label=inference.last_label,
        last_confidence=inference.last_confidence,
        last_label_at=inference.last_label_at,
        # the model of the last classified frame; before the first one, what the running workers loaded
        model=inference.model or ", ".join(health.models) or None,
        near_miss=near_miss_out(inference),
        workers=health.workers,
        state_alive=health.state_alive,
        capture_held_back_s=held_back,
        redis_write_error=health.redis_write_error,
    )


def status_out(channel: str, snap: StateSnapshot | None, last_event: Event | None, health: Health) -> Status:
    now = now_ms()
    cooldown = 0.0
    if snap and snap.phase == "cooldown" and snap.cooldown_until:
        cooldown = max(0.0, (snap.cooldown_until - now) / 1000)
    return Status(
        channel=channel,
        **counts_fields(snap.counts if snap else Counts()),
        streak=Streak(outcome=snap.streak_outcome if snap else None, length=snap.streak if snap else 0),
        recent=list(snap.recent) if snap else [],
        phase=snap.phase if snap else None,
        cooldown_remaining_s=round(cooldown, 3),
        session=SessionRef(id=snap.session if snap else "", started_at=snap.session_started_at if snap else None),
        last_outcome=snap.last_outcome if snap else None,
        last_event_at=snap.last_event_at if snap else None,
        last_event_id=snap.last_event_id if snap else "",
        last_event=event_out(last_event) if last_event else None,
        health=health,
        updated_at=snap.updated_at if snap else 0,
        server_time=now,
        mode=snap.mode if snap else "",
        by_mode=mode_counts_out(snap.by_mode, snap.mode_runs) if snap else {},
    )


def channel_status(channel: str, state: ChannelState) -> Status:
    return status_out(channel, state.snapshot, state.last_event, health_out(state.health))


def stream_status(channel: str, snap: StateSnapshot | None, event: Event | None, health: Health) -> StreamStatus:
    """An SSE message: the full status as of ``event`` (counts from the event itself), or the snapshot."""
    status = status_out(channel, snap, None, health)
    if event is None:
        return StreamStatus(**status.model_dump())
    update = {
        **counts_fields(event.counts),
        "last_event_id": event.id,
        "last_event": event_out(event),
        "event": event_out(event),
    }
    if event.outcome is not None and event.type == "detected":
        update["last_outcome"] = event.outcome
    return StreamStatus(**{**status.model_dump(), **update})


def session_out(session: SessionTotals) -> SessionOut:
    return SessionOut(
        id=session.id,
        started_at=session.started_at,
        ended_at=session.ended_at,
        **counts_fields(session.counts),
        current=session.current,
        summary=session.summary,
    )


def detection_out(channel: str, seq: int, info: dict[str, Any]) -> DetectionOut | None:
    """None when the stored record does not fit (written by another version): say nothing rather than fail."""
    try:
        return DetectionOut.model_validate({**info, "channel": channel, "frame_seq": seq})
    except (ValueError, TypeError):
        return None


def legacy_status(status: Status) -> LegacyStatus:
    """The prototype's shape of a status."""
    changed = status.last_event_at or (status.last_event.ts if status.last_event else None)
    kept = status.model_dump(include={"victories", "defeats", "draws", "total", "win_rate", "last_outcome"})
    return LegacyStatus(**kept, timestamp=iso_ms(changed) if changed else iso_ms(now_ms()))


def last_delivery_out(last: LastDelivery) -> LastDeliveryOut:
    return LastDeliveryOut(at=last.at, ok=last.ok, status=last.status, result=last.result, channel=last.channel,
                           event_id=last.event, event_type=last.type, outcome=last.outcome, test=last.test)


def dead_letter_out(letter: DeadLetter) -> DeadLetterOut:
    return DeadLetterOut(at=letter.at, error=letter.error, channel=letter.channel, event_id=letter.event,
                         event_type=letter.type, outcome=letter.outcome, test=letter.test, attempts=letter.attempts)


def actions_out(
    known: list[ActionInfo], configured: set[str], health: ActionsHealth | None, records: list[ActionRecords]
) -> ActionsOut:
    """The Automations panel: each known action with its records, the service and the chat bot."""
    now = now_ms()
    by_name = {r.name: r for r in records}
    actions = []
    for info in known:
        rec = by_name.get(info.name)
        actions.append(ActionOut(
            name=info.name, kind=info.kind, description=info.description, configured=info.name in configured,
            last=last_delivery_out(rec.last) if rec and rec.last else None,
            dead_letters=rec.dead_letters if rec else 0,
            recent_dead_letters=[dead_letter_out(d) for d in rec.recent_dead_letters] if rec else [],
            queued=rec.queued if rec else 0,
        ))
    seen = health.updated_at if health else None
    running = service_running(seen, now)
    chat = None
    if health is not None and running and health.chat:
        chat = ChatBotOut(state=health.chat, channel=health.chat_channel, ok=health.chat == "connected")
    return ActionsOut(
        actions=actions,
        service=ActionsServiceOut(running=running, last_seen_at=seen if running else None),
        chat=chat,
        server_time=now,
    )
