"""Pure decisions of the Twitch actions: which event is a result, which match a prediction covers,
how it ends, when one opens, what a marker says. No Redis, no network, no clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from services.actions.twitch.helix import Prediction
from services.common.config.sections_twitch import TwitchSettings
from services.common.contracts.messages import Event, Outcome
from services.common.contracts.modes import mode_label
from services.common.contracts.streamids import parse_id_or
from services.common.contracts.twitch_records import RESOLUTIONS_KEPT, PredictionRecord, Resolution

MARKER_WORDS: dict[Outcome, str] = {"victory": "VICTORY", "defeat": "DEFEAT", "draw": "DRAW"}
ADOPT_SLACK_MS = 10_000  # a prediction created this long before our create request may still be ours


def is_result(event: Event) -> bool:
    """A match counted: by the detector, or +1 by hand (a moderator's ``!win``, the admin page)."""
    if event.outcome is None:
        return False
    return event.type == "detected" or (event.type == "adjusted" and event.delta > 0)


def stream_id(eid: str) -> tuple[int, int]:
    return parse_id_or(eid, (0, 0))


def after(event_id: str, record_after: str) -> bool:
    """``event_id`` came after the event a prediction opened after (so it belongs to its match)."""
    return stream_id(event_id) > stream_id(record_after)


def covers(record: PredictionRecord, event: Event) -> bool:
    """Whether ``event`` is the result of the match ``record`` predicts: it is active and the event
    came after the one it opened after (a result of an earlier match never resolves it)."""
    return record.active and is_result(event) and after(event.id, record.after)


def outcome_titles(s: TwitchSettings) -> dict[str, str]:
    """Our outcome -> its title on Twitch (a draw outcome only when one is configured)."""
    titles = {"victory": s.outcome_victory, "defeat": s.outcome_defeat}
    if s.outcome_draw:
        titles["draw"] = s.outcome_draw
    return titles


def ending(outcome: Outcome, s: TwitchSettings, outcome_ids: dict[str, str]) -> tuple[str, str | None]:
    """``("RESOLVED", winning outcome id)``, or ``("CANCELED", None)``: a draw refunds by default."""
    if outcome == "draw" and (s.draw == "cancel" or "draw" not in outcome_ids):
        return "CANCELED", None
    winner = outcome_ids.get(outcome)
    if winner is None:
        return "CANCELED", None
    return "RESOLVED", winner


def should_open(record: PredictionRecord | None, phase: str, last_event_id: str) -> bool:
    """The counter is armed for the next match and no prediction was opened for it yet.

    ``last_event_id`` (the channel's last event) names the match: a prediction opened after it
    that ended without a result (cancelled on time-out) is not opened again for the same match.
    """
    if phase != "ready":
        return False
    if record is None:
        return True
    return not record.active and record.after != last_event_id


def _epoch_ms(rfc3339: str) -> int:
    try:
        text = rfc3339.replace("Z", "+00:00")
        if "." in text:  # Twitch sends nanoseconds; Python parses at most microseconds
            head, _, tail = text.partition(".")
            frac, sign, zone = tail.partition("+")
            text = f"{head}.{frac[:6]}{sign}{zone}"
        return int(datetime.fromisoformat(text).timestamp() * 1000)
    except ValueError:
        return 0


def is_ours(p: Prediction, record: PredictionRecord | None, s: TwitchSettings) -> bool:
    """A running prediction this service created for ``record`` (its create answer was lost)."""
    if record is None or p.title != s.title or set(p.outcomes) != set(outcome_titles(s).values()):
        return False
    return _epoch_ms(p.created_at) >= record.opened_at - ADOPT_SLACK_MS


def marker_description(event: Event) -> str:
    """``VICTORY · Competitive · 12–8`` (victories–defeats, –draws when there are any)."""
    assert event.outcome is not None
    c = event.counts
    score = f"{c.victories}–{c.defeats}" + (f"–{c.draws}" if c.draws else "")
    parts = [MARKER_WORDS[event.outcome]]
    if event.mode:
        parts.append(mode_label(event.mode))
    parts.append(score)
    return " · ".join(parts)[:140]


def remember(history: tuple[Resolution, ...], ended: Resolution,
             keep: int = RESOLUTIONS_KEPT) -> tuple[Resolution, ...]:
    """``history`` with ``ended`` added (newest last; a redelivered result replaces its own entry,
    keeping whether its undo was noted), at most ``keep`` entries."""
    same = next((r for r in history if r.event == ended.event), None)
    if same is not None:
        ended = replace(ended, noted=same.noted)
    return (*(r for r in history if r.event != ended.event), ended)[-keep:]


def to_note(history: tuple[Resolution, ...], undoes: str) -> Resolution | None:
    """The prediction the undone result ``undoes`` ended, if chat was not told yet (else ``None``).

    Not only the current prediction: by the time an undo comes, the next match's is usually open."""
    if not undoes:
        return None
    return next((r for r in history if r.event == undoes and not r.noted), None)


def noted(history: tuple[Resolution, ...], event: str) -> tuple[Resolution, ...]:
    """``history`` with the undo of ``event`` marked as said."""
    return tuple(replace(r, noted=True) if r.event == event else r for r in history)


def undo_notice(ended: Resolution) -> str:
    """What chat says when a result that resolved a prediction is undone."""
    if ended.status == "cancelled":
        return "correction noted. The prediction was already cancelled and everyone got their points back."
    return (f"correction noted, but Twitch cannot un-resolve a prediction: the points already went to "
            f"“{ended.winner or ended.result}”. The counter is fixed; to make it up to viewers, a moderator "
            "can run a new prediction (!predict).")
