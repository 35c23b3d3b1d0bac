"""A channel's counting state (the state service's machine) and its snapshot encoding.

The machine is what :func:`services.state.fold.apply` builds from the event
log and what the counting rules (``services/state/rules.py``) decide on: the
state service's alone (other services read the snapshot's public fields,
``services/common/contracts/messages.StateSnapshot``, and the session summaries it keeps,
``services/common/contracts/sessions.py``). No Redis, no clock.

A session's *results* are kept as a compact string, one character per match
in the order they were counted: ``W`` victory, ``L`` defeat, ``D`` draw.
Positive deltas append results; negative deltas remove the most recent
results of that outcome (an admin fixing a miscount means "the last one").
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from services.common.contracts.codec import JsonRecord
from services.common.contracts.messages import Counts, EventType, ModeRun, Outcome, Phase, StateSnapshot

RESULT_CHARS: dict[Outcome, str] = {"victory": "W", "defeat": "L", "draw": "D"}
CHAR_OUTCOMES: dict[str, Outcome] = {v: k for k, v in RESULT_CHARS.items()}
MAX_RESULTS = 1000  # per session; older results are dropped from the string (counts stay exact)
RECENT = 20  # results shown in the public snapshot


# --------------------------------------------------------------------------- results


def apply_results(results: str, outcome: Outcome, delta: int) -> str:
    """Append ``delta`` results of ``outcome`` (or remove the latest ``-delta`` of them)."""
    char = RESULT_CHARS[outcome]
    if delta >= 0:
        results += char * delta
        return results[-MAX_RESULTS:]
    chars = list(results)
    remaining = -delta
    for i in range(len(chars) - 1, -1, -1):
        if remaining == 0:
            break
        if chars[i] == char:
            del chars[i]
            remaining -= 1
    return "".join(chars)


def results_outcomes(results: str) -> tuple[Outcome, ...]:
    return tuple(CHAR_OUTCOMES[c] for c in results)


def current_run(results: str) -> tuple[Outcome | None, int]:
    """The outcome of the latest run of equal results and its length."""
    if not results:
        return None, 0
    last = results[-1]
    n = len(results) - len(results.rstrip(last))
    return CHAR_OUTCOMES[last], n


def longest_run(results: str, outcome: Outcome) -> int:
    char = RESULT_CHARS[outcome]
    best = run = 0
    for c in results:
        run = run + 1 if c == char else 0
        best = max(best, run)
    return best


# --------------------------------------------------------------------------- the machine


@dataclass(frozen=True, slots=True, kw_only=True)
class UndoEntry:
    """What it takes to revert one counting event (built by keyword: its stored form names every field)."""

    event_id: str
    type: EventType  # detected | adjusted | set
    outcome: Outcome | None = None  # None for ``set``
    delta: int = 0
    counts_before: Counts
    results_before: str = ""  # only kept for ``set`` (its inverse is not a delta)
    mode: str = ""  # the mode the event counted in
    mode_counts_before: Counts = field(default_factory=Counts)  # that mode's counts before a ``set``
    mode_results_before: str = ""  # that mode's results before a ``set``


@dataclass(frozen=True, slots=True)
class Machine:
    """A channel's full rule state (the snapshot's private ``machine`` field)."""

    session: str = ""
    session_started_at: int = 0
    session_events: int = 0
    counts: Counts = field(default_factory=Counts)
    results: str = ""
    phase: Phase = "ready"
    cooldown_until: int | None = None
    detected_at: int | None = None  # frame time of the detection that started the cooldown
    # the run of equal outcome frames in ``ready``
    frames_outcome: Outcome | None = None
    frames_len: int = 0
    frames_last_at: int | None = None
    frames_min_conf: float = 1.0
    none_run: int = 0  # consecutive `none` frames in ``waiting_for_none``
    last_seq: int = -1  # the newest frame with a verdict: the ordering cursor
    last_error_seq: int = -1  # the newest `error` frame handled (only so that a redelivery changes nothing)
    last_captured_at: int | None = None
    last_event_id: str = ""
    last_event_at: int | None = None
    has_history: bool = False  # any event other than session_started (import needs an empty channel)
    undo: tuple[UndoEntry, ...] = ()
    updated_at: int = 0
    mode: str = ""  # the channel's current mode ("" = none); new sessions keep it
    # the session's counts per mode (only modes with a match; "" = counted without a mode)
    by_mode: dict[str, Counts] = field(default_factory=dict)
    # the session's results per mode, as ``results`` but only the matches counted in that mode (only modes
    # with a result): the streak and the last results of one mode
    mode_results: dict[str, str] = field(default_factory=dict)
    # the banner evidence of the streak's latest frames (log-odds, each at most logit(min_confidence)),
    # newest last: services/state/rules.py; absent in snapshots older than banner evidence
    frames_evidence: tuple[float, ...] = ()

    def to_json(self) -> str:
        return MACHINE_JSON.dumps(self)

    @classmethod
    def from_json(cls, text: str | bytes) -> Machine:
        return MACHINE_JSON.loads(text)

    def mode_counts(self, mode: str) -> Counts:
        return self.by_mode.get(mode, _ZERO)

    def mode_runs(self) -> dict[str, ModeRun]:
        """Each mode's streak and last results (the public view of :attr:`mode_results`)."""
        return {mode: mode_run(results) for mode, results in sorted(self.mode_results.items())}

    def snapshot(self) -> StateSnapshot:
        """The public view (the snapshot hash's fields the gateway reads)."""
        run_outcome, run_len = current_run(self.results)
        return StateSnapshot(
            counts=self.counts,
            session=self.session,
            session_started_at=self.session_started_at,
            phase=self.phase,
            cooldown_until=self.cooldown_until if self.phase == "cooldown" else None,
            last_event_id=self.last_event_id,
            last_outcome=run_outcome,
            last_event_at=self.last_event_at,
            streak_outcome=run_outcome,
            streak=run_len,
            recent=results_outcomes(self.results[-RECENT:]),
            updated_at=self.updated_at,
            mode=self.mode,
            by_mode=dict(self.by_mode),
            mode_runs=self.mode_runs(),
        )


_ZERO = Counts()
MODE_RESULTS_FIELD = "mode_results"  # the machine JSON's key; absent in snapshots older than per-mode results


def mode_run(results: str) -> ModeRun:
    """A results string's current run and its last :data:`RECENT` results."""
    run_outcome, run_len = current_run(results)
    return ModeRun(recent=results_outcomes(results[-RECENT:]), streak_outcome=run_outcome, streak=run_len)


def _upgrade(raw: dict[str, Any]) -> dict[str, Any]:
    """Today's shape from any snapshot written so far (the fields added since have their defaults)."""
    if "by_mode" not in raw:  # a snapshot from before modes: every match was counted without one
        counts = Counts(**raw["counts"])
        raw["by_mode"] = {"": raw["counts"]} if counts != _ZERO else {}
    if MODE_RESULTS_FIELD not in raw:
        # before per-mode results: exact when the session counted in one mode only (always the case
        # before modes); else unknown here, and the state service takes them from the event log
        modes, results = _object(raw["by_mode"], "by_mode"), raw["results"]
        raw[MODE_RESULTS_FIELD] = {next(iter(modes)): results} if len(modes) == 1 and results else {}
    elif any(c not in CHAR_OUTCOMES for v in _object(raw[MODE_RESULTS_FIELD], MODE_RESULTS_FIELD).values()
             for c in str(v)):
        raise ValueError("mode_results: only W, L and D")
    raw["undo"] = [_upgrade_undo(u) for u in raw["undo"]]
    return raw


def _upgrade_undo(u: dict[str, Any]) -> dict[str, Any]:
    # before modes: everything was counted without one, so that mode had all the counts
    u.setdefault("mode_counts_before", u["counts_before"])
    # before per-mode results: best effort (the state service takes them from the log)
    u.setdefault("results_before", "")  # only kept for ``set`` once
    u.setdefault("mode_results_before", u["results_before"])
    return u


def _object(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{field}: expected a JSON object")
    return value


# The stored form: ``v`` then the fields in declaration order (the same keys, in the same order, as every
# snapshot written so far). Required: the keys of the first snapshots; the fields added since read as
# their defaults when absent.
MACHINE_JSON = JsonRecord(
    Machine, "state machine snapshot", upgrade=_upgrade,
    required=("session", "session_started_at", "counts", "results", "phase", "cooldown_until", "frames_outcome",
              "frames_len", "frames_last_at", "frames_min_conf", "none_run", "last_seq", "last_captured_at",
              "last_event_id", "last_event_at", "has_history", "undo"),
)


def add_in_mode(by_mode: dict[str, Counts], mode: str, outcome: Outcome, delta: int) -> dict[str, Counts]:
    """``by_mode`` with ``delta`` matches of ``outcome`` added in ``mode`` (never below 0)."""
    have = by_mode.get(mode, _ZERO)
    return with_mode_counts(by_mode, mode, have.add(outcome, max(delta, -have.get(outcome))))


def add_mode_result(mode_results: dict[str, str], mode: str, outcome: Outcome, delta: int) -> dict[str, str]:
    """``mode_results`` with ``delta`` results of ``outcome`` added in ``mode`` (see :func:`apply_results`)."""
    return with_mode_results(mode_results, mode, apply_results(mode_results.get(mode, ""), outcome, delta))


def with_mode_results(mode_results: dict[str, str], mode: str, results: str) -> dict[str, str]:
    """``mode_results`` with ``mode``'s results replaced; a mode left without results is dropped."""
    out = {k: v for k, v in mode_results.items() if k != mode}
    if results:
        out[mode] = results
    return out


def with_mode_counts(by_mode: dict[str, Counts], mode: str, counts: Counts) -> dict[str, Counts]:
    """``by_mode`` with ``mode``'s counts replaced; a mode left without matches is dropped."""
    out = {k: v for k, v in by_mode.items() if k != mode}
    if counts != _ZERO:
        out[mode] = counts
    return out


def clear_frames(m: Machine) -> Machine:
    """Forget the streak being built in ``ready``."""
    return replace(m, frames_outcome=None, frames_len=0, frames_last_at=None, frames_min_conf=1.0, frames_evidence=())


def rearm(m: Machine) -> Machine:
    """Back to ``ready``: the next match can be counted."""
    return clear_frames(replace(m, phase="ready", none_run=0, cooldown_until=None, detected_at=None))


__all__ = [
    "Machine",
    "UndoEntry",
    "add_in_mode",
    "add_mode_result",
    "apply_results",
    "clear_frames",
    "current_run",
    "longest_run",
    "mode_run",
    "rearm",
    "results_outcomes",
    "with_mode_counts",
    "with_mode_results",
]
