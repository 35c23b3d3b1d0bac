"""Channel-points predictions: one per match, opened at the re-arm, resolved with the counted result.

The record in Redis (``owc:twitch:prediction:{channel}``, :class:`PredictionRecord`) is the truth
this service acts from, so a restart resumes where it was:

- **open** (the loop, :meth:`Predictions.tick`): when the counter's phase is back to ``ready``
  and no prediction was opened after the channel's last event, or on demand (admin page,
  ``!predict``). The record is written as ``opening`` *before* the create request, and every
  open first looks at Twitch's running predictions: a create whose answer was lost is adopted,
  never created twice; a stale one is ended (``stale = "end"``) or left alone, said once.
- **resolve** (the action, per event): the first result counted after the record's ``after``
  ends it: RESOLVED with the counted outcome, or CANCELED for a draw (by default). A result of an
  earlier match never resolves it. If Twitch says it already ended (a redelivery after a crash,
  the streamer ended it by hand), Twitch's own status is recorded.
- **cancel**: on a new session, after ``result_timeout_s`` without a result, or on demand.
- an **undo** of a result that resolved one says in chat that Twitch cannot un-resolve, once, even
  after the next match's prediction opened: the record keeps the last few results that ended one
  (``resolved``), and marks the one whose undo was said.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable

import redis

from services.actions.delivery import PermanentError, RetryableError, StoppingError
from services.actions.formatting import EventContext
from services.actions.twitch import rules
from services.actions.twitch.helix import Helix, HelixError, Prediction
from services.actions.twitch.tokens import TokenError
from services.common.config.sections_twitch import TwitchSettings
from services.common.contracts.codec import text
from services.common.contracts.keys import Keys
from services.common.contracts.messages import MessageError
from services.common.contracts.twitch_records import PredictionRecord, Resolution

log = logging.getLogger("owc.actions.twitch")

TICK_S = 1.0
RETRY_OPEN_S = (2.0, 5.0, 15.0, 60.0)
TWITCH_STATUS = {"RESOLVED": "resolved", "CANCELED": "cancelled", "LOCKED": "locked", "ACTIVE": "open"}


def _now_ms() -> int:
    return int(time.time() * 1000)


class Predictions:
    def __init__(self, client: redis.Redis, keys: Keys, settings: TwitchSettings, helix: Helix,
                 say: Callable[[str], None] | None = None, stop: threading.Event | None = None) -> None:
        self.client = client
        self.stop = stop or threading.Event()
        self.keys = keys
        self.s = settings
        self.helix = helix
        self.say = say
        self.channel = settings.counter_channel
        self._lock = threading.RLock()
        self._unsaved: PredictionRecord | None = None  # done on Twitch, Redis was down: written first
        self._said: set[str] = set()
        self._open_failures = 0
        self._next_open = 0.0

    # ------------------------------------------------------------------ the record

    def record(self) -> PredictionRecord | None:
        if self._unsaved is not None:
            return self._unsaved
        return PredictionRecord.from_json(self.client.get(self.keys.twitch_prediction(self.channel)))

    def _save(self, rec: PredictionRecord) -> PredictionRecord:
        """Write the record; while Redis is down, wait (what was done on Twitch must be recorded)."""
        self._unsaved = rec
        while True:
            try:
                self.client.set(self.keys.twitch_prediction(self.channel), rec.to_json())
                break
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, redis.ResponseError) as exc:
                self._once("save", f"prediction {rec.id or '(opening)'} is {rec.status} but Redis is unavailable "
                                   f"({exc}); its record waits for Redis")
                if self.stop.wait(0.5):
                    raise StoppingError("stopping") from None
        self._said.discard("save")
        self._unsaved = None
        return rec

    def _once(self, key: str, message: str, level: int = logging.WARNING) -> None:
        if len(self._said) > 200:  # distinct problems over a long evening: forget the old ones
            self._said.clear()
        if key not in self._said:
            self._said.add(key)
            log.log(level, "twitch: %s", message)

    # ------------------------------------------------------------------ open

    def open(self, after: str, by: str) -> PredictionRecord | None:
        """Open the prediction for the match after event ``after`` (or resume an ``opening`` one)."""
        with self._lock:
            rec = self.record()
            if rec is not None and rec.active and rec.status != "opening":
                return rec
            if rec is None or rec.status != "opening":
                history = rec.resolved if rec is not None else ()  # an undo may still come for those
                rec = self._save(PredictionRecord(self.channel, after, "opening", self.s.title, self.s.window_s,
                                                  _now_ms(), updated_at=_now_ms(), by=by, resolved=history))
            try:
                return self._finish_opening(rec)
            except TokenError as exc:
                return self._save(rec.updated(_now_ms(), status="failed", result=str(exc)))
            except HelixError as exc:  # Twitch refused to list the predictions: not a passing failure
                log.error("twitch: the prediction was not opened: %s", exc)
                return self._save(rec.updated(_now_ms(), status="failed", result=exc.message))

    def _finish_opening(self, rec: PredictionRecord) -> PredictionRecord:
        # look before creating: a create whose answer was lost, or someone else's prediction
        running = [p for p in self.helix.predictions() if p.status in ("ACTIVE", "LOCKED")]
        for p in running:
            if rules.is_ours(p, rec, self.s):
                log.info("twitch: prediction %s was created but its answer was lost; adopting it", p.id)
                return self._opened(rec, p)
        for p in running:
            if not self._clear_stale(rec, p):
                return self._save(rec.updated(_now_ms(), status="failed",
                                              result="another prediction is running; none was opened"))
        titles = rules.outcome_titles(self.s)
        try:
            p = self.helix.create_prediction(self.s.title, list(titles.values()), self.s.window_s)
        except HelixError as exc:
            if exc.status == 400 and "active" in exc.message.lower():
                # one started meanwhile (by hand?): the next attempt looks again
                self._once(f"active-{rec.opened_at}", f"Twitch says a prediction is already active ({exc.message})")
                raise RetryableError(exc.message) from None
            log.error("twitch: Twitch refused the prediction: %s", exc.message)
            return self._save(rec.updated(_now_ms(), status="failed", result=exc.message))
        log.info("twitch: prediction %s opened (“%s”, %d s to predict)", p.id, p.title, self.s.window_s)
        return self._opened(rec, p)

    def _opened(self, rec: PredictionRecord, p: Prediction) -> PredictionRecord:
        by_title = {title: ours for ours, title in rules.outcome_titles(self.s).items()}
        ids = {by_title[t]: oid for t, oid in p.outcomes.items() if t in by_title}
        status = TWITCH_STATUS.get(p.status, "open")
        return self._save(rec.updated(_now_ms(), id=p.id, outcomes=ids, status=status))

    def _clear_stale(self, rec: PredictionRecord, p: Prediction) -> bool:
        """Another prediction runs where ours should: end it (``stale = "end"``) or leave it. Said once."""
        if self.s.stale == "leave":
            self._once(f"stale-{p.id}", f"prediction {p.id} (“{p.title}”) is already running; ours will open "
                                        "once it is over (actions.twitch.stale = \"leave\")")
            return False
        self._once(f"stale-{p.id}", f"prediction {p.id} (“{p.title}”) was still running: cancelling it "
                                    "(points refunded) before opening the next one")
        with contextlib.suppress(HelixError):  # it ended meanwhile
            self.helix.end_prediction(p.id, "CANCELED")
        return True

    # ------------------------------------------------------------------ end

    def end(self, rec: PredictionRecord, status: str, winner: str | None, event: str, why: str,
            by_result: bool = False) -> PredictionRecord:
        """End ``rec`` on Twitch (RESOLVED with ``winner``, or CANCELED) and record how it ended; when
        the result event ``event`` ended it (``by_result``), also in ``resolved`` (for a later undo)."""
        if rec.status == "opening" or not rec.id:
            rec = self._finish_opening(rec)
            if not rec.active:
                return rec
        try:
            p = self.helix.end_prediction(rec.id, status, winner)
        except HelixError as exc:
            # already ended (a redelivery after a crash, or ended by hand): Twitch's status is the truth
            found = self.helix.predictions(ids=[rec.id])
            if not found or found[0].status in ("ACTIVE", "LOCKED"):
                raise PermanentError(f"Twitch refused to end prediction {rec.id}: {exc.message}") from None
            p = found[0]
            log.info("twitch: prediction %s had already ended (%s)", rec.id, p.status)
        ours = TWITCH_STATUS.get(p.status, "cancelled")
        winner_title = next((t for t, oid in p.outcomes.items() if oid == p.winning_outcome_id), "")
        log.info("twitch: prediction %s %s (%s)", rec.id, ours, why)
        history = rec.resolved
        if by_result and ours in ("resolved", "cancelled"):
            history = rules.remember(history, Resolution(event, rec.id, rec.title, ours, winner_title, why))
        return self._save(rec.updated(_now_ms(), status=ours, event=event, result=why,
                                      winner=winner_title, resolved=history))

    def cancel(self, why: str, event: str = "") -> PredictionRecord | None:
        with self._lock:
            rec = self.record()
            if rec is None or not rec.active:
                return rec
            return self.end(rec, "CANCELED", None, event, why)

    # ------------------------------------------------------------------ events (the action)

    def on_event(self, ctx: EventContext) -> str:
        event = ctx.event
        if ctx.test:
            return "a test event never resolves a real prediction"
        with self._lock:
            rec = self.record()
            if event.type == "session_started":
                if rec is None or not rec.active or not rules.after(event.id, rec.after):
                    return "no prediction running"  # (or it opened after this session began)
                self.end(rec, "CANCELED", None, event.id, "new session")
                return f"prediction {rec.id} cancelled: new session"
            if event.type == "undone":
                return self._undone(rec, event.undoes)
            if rec is None or not rules.covers(rec, event):
                return "no prediction for this match"
            assert event.outcome is not None
            if rec.status == "opening" or not rec.id:
                # the create's answer was lost (a crash): adopt it first, so its outcome ids are known
                rec = self._finish_opening(rec)
                if not rec.active:
                    return f"the prediction could not be opened: {rec.result}"
            status, winner = rules.ending(event.outcome, self.s, rec.outcomes)
            why = event.outcome if status == "RESOLVED" else f"{event.outcome}: refunded"
            done = self.end(rec, status, winner, event.id, why, by_result=True)
            return f"prediction {done.id} {done.status} ({why})"

    def _undone(self, rec: PredictionRecord | None, undoes: str) -> str:
        """An undo of a result that ended a prediction (the current one or an earlier one): said once.

        The record notes it right after the line went out, so a redelivery says nothing again."""
        ended = rules.to_note(rec.resolved, undoes) if rec is not None else None
        if rec is None or ended is None:
            return "nothing to undo on Twitch"
        line = rules.undo_notice(ended)
        if self.say is None:
            log.warning("twitch: %s", line)
            outcome = "undo of a resolved prediction: no chat bot to say so (logged)"
        else:
            try:
                self.say(line)
                outcome = f"said in chat that Twitch cannot un-resolve prediction {ended.id}"
            except RetryableError as exc:
                # best effort: retrying here would hold this lane (the next prediction's resolution) on chat
                log.warning("twitch: %s (chat could not take it: %s)", line, exc)
                outcome = f"undo of resolved prediction {ended.id}: chat not connected, said in the log"
        self._save(rec.updated(_now_ms(), resolved=rules.noted(rec.resolved, ended.event)))
        return outcome

    # ------------------------------------------------------------------ the loop

    def tick(self) -> None:
        """Once a second: a pending write, requests from the admin page and chat, re-arm, time-out."""
        with self._lock:
            if self._unsaved is not None:
                self._save(self._unsaved)
            self._requests()
            rec = self.record()
            now = _now_ms()
            if rec is not None and rec.active and now - rec.opened_at > self.s.result_timeout_s * 1000:
                why = f"no result within {self.s.result_timeout_s / 60:g} min"
                try:
                    self.end(rec, "CANCELED", None, "", why)
                except (PermanentError, HelixError) as exc:  # never retried every second: said, recorded
                    log.error("twitch: cancelling prediction %s (%s) failed: %s", rec.id, why, exc)
                    self._save(rec.updated(now, status="failed", result=f"{why}; the cancel failed: {exc}"))
                return
            if rec is not None and rec.status == "opening":
                self._try_open(rec.after, rec.by)
                return
            if not self.s.auto_open:
                return
            raw = self.client.hmget(self.keys.state(self.channel), ["phase", "last_event_id"])
            phase, last = (text(v or "") for v in raw)
            if rules.should_open(rec, phase, last):
                self._try_open(last, "auto")

    def _try_open(self, after: str, by: str) -> None:
        if time.monotonic() < self._next_open:
            return
        try:
            self.open(after, by)
            self._open_failures = 0
        except RetryableError as exc:
            wait = RETRY_OPEN_S[min(self._open_failures, len(RETRY_OPEN_S) - 1)]
            self._open_failures += 1
            self._next_open = time.monotonic() + wait
            log.warning("twitch: opening the prediction failed (%s); trying again in %.0f s", exc, wait)

    def _requests(self) -> None:
        raw = self.client.rpop(self.keys.twitch_requests)
        if not isinstance(raw, (bytes, str)):
            return
        try:
            req = json.loads(raw)
            op, by = str(req["op"]), str(req.get("by", "?"))
        except (ValueError, KeyError, TypeError):
            log.error("twitch: dropping an unreadable request")
            return
        if op == "cancel":
            log.info("twitch: cancel asked by %s", by)
            self.cancel(f"cancelled by {by}")
        elif op == "open":
            rec = self.record()
            if rec is not None and rec.active:
                log.info("twitch: %s asked for a prediction; one is already running", by)
                return
            last = self.client.hget(self.keys.state(self.channel), "last_event_id")
            after = text(last or "")
            log.info("twitch: prediction asked by %s", by)
            self._next_open = 0.0
            self._try_open(after, by)

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(TICK_S):
            try:
                self.tick()
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, redis.ResponseError) as exc:
                self._once("redis", f"Redis is unavailable ({exc}); predictions wait for it")
                continue
            except (RetryableError, PermanentError) as exc:
                self._once(f"error-{exc}", str(exc))  # each distinct problem once, not every second
            except TokenError:
                pass  # said once by the token manager, shown on the admin page
            except (MessageError, StoppingError):
                pass
            except Exception:  # a bug or an odd answer must not end the loop: said, then the next tick
                log.exception("twitch: the prediction loop failed; going on")
            self._said.discard("redis")


class PredictionAction:
    """Resolves or cancels the channel's prediction from its events (the action interface)."""

    name = "twitch-prediction"
    delayed = True  # resolving shows the result to viewers: held for the stream delay

    def __init__(self, predictions: Predictions) -> None:
        self.predictions = predictions

    def describe(self) -> str:
        return f"twitch-prediction (counter {self.predictions.channel})"

    def wants(self, ctx: EventContext) -> bool:
        e = ctx.event
        return ctx.channel == self.predictions.channel and (
            rules.is_result(e) or e.type in ("undone", "session_started"))

    def perform(self, ctx: EventContext) -> str:
        try:
            return self.predictions.on_event(ctx)
        except TokenError as exc:
            raise PermanentError(str(exc)) from None
