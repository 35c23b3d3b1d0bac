"""The reader's schedule and memory per channel: recall that does not rest on the gate, a banner read once.

The gate (our CNN) passes a frame to the reader when it believes in a banner.
It was trained on our renderer, so it is not trusted alone (issue 21: a real
red ``DRAW`` scored 0.267 and was never read). :class:`BannerReader` also
sends frames to the reader on a fixed, cheap budget, whatever the gate says
(:class:`Schedule`, carried by the model metadata's ``schedule`` object):

- **settle**: the banner area changed strongly since it was last read (by
  ``change``, also when it fades in slowly) and now holds still (less than
  ``still`` from the previous frame): a banner flies in, then stays for
  seconds — read once;
- **every** ``every_n``-th frame of a channel (a floor, for a banner that
  appeared without a strong change);
- **follow**: after a read that found an outcome word (accepted or a near
  miss), read the channel's next ``follow`` frames too, so the counting rules
  get the consecutive frames they need.

And it reads a banner once, not forty times (issue 22):

- **reuse**: while the banner area's signature (a 24×12 grey thumbnail of the
  gate's own input, ~20 µs) stays within ``reuse_diff`` of the last full
  reading's, for at most ``reuse_s`` of frame time, the reading is reused;
  the decision is recomputed from it (pure, microseconds), so near misses,
  ``--explain`` and the label's evidence are the same as a fresh read; an
  *unsure* reading (its best outcome word at ``near_miss`` or better but below
  ``accept``) is reused at most ``unsure_reuse_s`` outside cooldown, so a
  banner read just under the bar gets another chance on its next frames; with
  ``fresh_confirm``, a reading the gate did not ask for that names an outcome is
  not reused outside cooldown either (a count needs two readings, not one twice);
- **the list check once per banner**: its band scores are kept for the same
  outcome while the area has not changed strongly (``list_s`` at most);
- **cooldown**: while the channel's state says cooldown and the frame is
  before ``cooldown_until`` (frame time, exact), nothing can be counted:
  schedule reads are skipped, the list check is skipped and readings are
  reused for up to ``cooldown_reuse_s`` while the area stays within
  ``cooldown_diff`` of them. The gate's candidates are read once the area
  holds still (``cooldown_still``; a frame still moving — a banner's entry
  animation — is labelled from the gate alone), so the admin page's last
  label shows the banner. The rules ignore every label before
  ``cooldown_until`` (frame time); the re-arm (``waiting_for_none``) sees
  only frames from then on, which are read as usual.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.common.contracts import codec
from services.inference.area import difference as difference  # re-exported: the tests import them here
from services.inference.area import signature as signature
from services.inference.classifier import Classifier, ClassifierError, Prediction
from services.inference.reader import Reading
from services.inference.strips import StripReader

# (phase, cooldown_until) of a channel from its state snapshot
PhaseSource = Callable[[str], tuple[str, int | None]]
PHASE_REFRESH_S = 1.0
# a list check is kept for the next frame naming the same outcome within this (frame time; a 250 ms
# interval or a burst) even when the banner area changed strongly (its fly-in)
LIST_NEXT_MS = 300
# a fresh reading within this (frame time) of a reading that named an outcome reads its wider crop beside the
# crop (strips.StripReader.read_frame): a banner's confirming frame, its next frames
SPECULATE_MS = 3000


def phase_from_snapshot(client: Any, keys: Any) -> PhaseSource:
    """The channel's phase and cooldown end (frame time) from its state snapshot hash (a hint)."""

    def phase(channel: str) -> tuple[str, int | None]:
        raw_phase, until = client.hmget(keys.state(channel), ["phase", "cooldown_until"])
        text = codec.text(raw_phase or "")
        try:
            end = int(until) if until else None
        except ValueError:
            end = None
        return text, end

    return phase


class Schedule(BaseModel):
    """When the reader runs regardless of the gate, and how long a reading is reused (model metadata
    ``schedule``; absent keys take these defaults, chosen with ``owc bench inference``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    every_n: int = Field(48, ge=0, le=10_000)  # 0 = off
    change: float = Field(0.08, gt=0, le=1)  # mean abs change of the signature (0..1) that arms a settle read
    still: float = Field(0.015, gt=0, le=1)  # ... and the change below which the area holds still
    follow: int = Field(4, ge=0, le=100)
    reuse_diff: float = Field(0.05, ge=0, le=1)
    reuse_s: float = Field(1.0, ge=0, le=60)
    list_s: float = Field(10.0, ge=0, le=600)
    cooldown_reuse_s: float = Field(5.0, ge=0, le=600)
    # in cooldown a reading is reused while the area is within this of it (no count can come of it: a banner
    # whose scene drifts is not read again), and an area still moving (``still``) is not read afresh at all —
    # a banner's entry animation in cooldown costs no reading, the frame it settles on one (issue 22). Not
    # written into a detector's metadata (``exclude``; accepted there): no count depends on them, so they are
    # not part of the detector's identity (its ``model_id`` hashes the schedule it writes)
    cooldown_diff: float = Field(0.08, ge=0, le=1, exclude=True)
    cooldown_still: bool = Field(True, exclude=True)
    # a reading that found no outcome word within ``negative_margin`` (per letter) of the near-miss level is
    # reused this long while the area stays within ``negative_diff`` of it (0 s = as any reading: the
    # default and the shipped detector's — at 3 s two of the card's 720 banner episodes were lost)
    negative_reuse_s: float = Field(0.0, ge=0, le=600)
    negative_diff: float = Field(0.05, ge=0, le=1)
    negative_margin: float = Field(1.0, ge=0, le=20)
    # outside cooldown, a reading whose best outcome word is unsure — at least ``near_miss`` but below ``accept`` — is
    # reused at most this long (None: as any reading, ``reuse_s``; detectors before it). A banner read just under the
    # bar is read afresh on its next frames: each frame's capture is another chance to read it at ``accept``
    unsure_reuse_s: float | None = Field(None, ge=0, le=60)
    # outside cooldown, a reading the gate did not ask for (settle, every, follow) that names an outcome (near_miss or
    # better) is not reused: the next frame the schedule reads is read afresh, so a count that rests on the schedule's
    # reads alone rests on two readings, not on one reading twice (issue 21, the live run: a held look-alike read well
    # once in 24 jittered frames was counted on its reuse). None/False: reused as any reading (detectors before it)
    fresh_confirm: bool | None = Field(None)

    @classmethod
    def from_meta(cls, extra: dict[str, Any] | None) -> Schedule:
        raw = (extra or {}).get("schedule") or {}
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in err["loc"])
            raise ClassifierError(f"model metadata: schedule.{where}: {err['msg']}") from None


@dataclass(slots=True)
class _Kept:
    sig: npt.NDArray[np.float32]
    at: int  # frame time (ms)
    reading: Reading
    image: npt.NDArray[np.uint8]  # the decoded frame, for a list check on a reused reading
    why: str = "gate"  # why the reader read it (gate, settle, every, follow)


@dataclass(slots=True)
class _ListKept:
    outcome: str
    sig: npt.NDArray[np.float32]
    at: int
    scores: list[float]


@dataclass(slots=True)
class _Channel:
    prev: npt.NDArray[np.float32] | None = None
    ref: npt.NDArray[np.float32] | None = None  # the area when it was last read (or first seen)
    armed: bool = False  # a strong change was seen: read once the area holds still
    since_read: int = 0
    follow_left: int = 0
    kept: _Kept | None = None
    listed: _ListKept | None = None
    named: str = ""  # the outcome the previous frame's reading named ("" if none or not read)
    phase: tuple[str, int | None] = ("ready", None)
    phase_at: float = float("-inf")


@dataclass(slots=True)
class Stats:
    """What the reader did, for ``owc bench inference`` and the metrics."""

    frames: int = 0
    candidates: int = 0  # the gate passed the frame
    scheduled: dict[str, int] = field(default_factory=lambda: {"settle": 0, "every": 0, "follow": 0})
    full_reads: int = 0
    reused: int = 0
    list_checks: int = 0
    list_reused: int = 0
    cooldown_skipped: int = 0  # schedule reads not done in cooldown
    cooldown_moving: int = 0  # the gate's candidates not read in cooldown: the area still moving

    def as_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "candidates": self.candidates, "scheduled": dict(self.scheduled),
                "full_reads": self.full_reads, "reused": self.reused, "list_checks": self.list_checks,
                "list_reused": self.list_reused, "cooldown_skipped": self.cooldown_skipped,
                "cooldown_moving": self.cooldown_moving}


class BannerReader:
    """The detector per channel: gate → (candidate or schedule) → reading (fresh or reused) → decision."""

    def __init__(
        self,
        classifier: Classifier,
        schedule: Schedule | None = None,
        phase: PhaseSource | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.classifier = classifier
        self.schedule = schedule or Schedule.from_meta(classifier.meta.model_extra)
        self.phase = phase
        self.clock = clock
        self.stats = Stats()
        self._channels: dict[str, _Channel] = {}
        self.strips = StripReader(classifier.reader, getattr(classifier, "reader_threads", 1)) \
            if classifier.reader is not None else None

    def classify_frame(self, channel: str, captured_at: int, data: bytes, width: int | None,
                       height: int | None, hint: Callable[[], None] | None = None) -> Prediction:
        """One encoded frame of ``channel`` through every stage (for tools that are not the worker:
        the bench, a recording scan; ``hint`` as in :meth:`frame`). Raises
        :class:`~services.inference.vision.FrameDecodeError`."""
        tensor = self.classifier.preprocess(data, width, height)
        row = self.classifier.predict(tensor[None])[0].tolist()
        return self.frame(channel, captured_at, row, tensor, (data, width, height), hint)

    def forget(self, channel: str) -> None:
        self._channels.pop(channel, None)

    def _in_cooldown(self, ch: _Channel, channel: str, captured_at: int) -> bool:
        if self.phase is None:
            return False
        now = self.clock()
        if now - ch.phase_at >= PHASE_REFRESH_S:
            ch.phase_at = now
            try:
                ch.phase = self.phase(channel)
            except Exception:  # a read-only hint: never let it fail a frame
                ch.phase = ("ready", None)
        phase, until = ch.phase
        return phase == "cooldown" and until is not None and captured_at < until

    def frame(
        self,
        channel: str,
        captured_at: int,
        row: Sequence[float],
        tensor: npt.NDArray[np.float32],
        source: tuple[bytes, int | None, int | None],
        hint: Callable[[], None] | None = None,
    ) -> Prediction:
        """One frame of ``channel`` (frames of a channel in capture order) given its gate output.

        ``hint`` is called as soon as the reading names an outcome word, before the list check (the
        worker asks capture for the confirming frame then); the list check of such a frame then runs at
        once instead of waiting for the next frame, so it is done while the confirming frame is taken."""
        clf = self.classifier
        stages = clf.gate_stages(row)
        self.stats.frames += 1
        if clf.reader is None:
            return clf.unread(row, stages)
        ch = self._channels.get(channel)
        if ch is None:
            ch = self._channels[channel] = _Channel()
        sig = signature(tensor)
        moved = difference(ch.prev, sig)
        ch.prev = sig
        if ch.ref is None:
            ch.ref = sig
        sched = self.schedule
        if moved >= sched.change:
            ch.follow_left = 0  # a cut or the banner leaving: following the last reading is over
        if difference(ch.ref, sig) >= sched.change:
            ch.armed = True  # the area changed strongly since it was last read (a fade counts too)
        ch.since_read += 1
        why = ""
        if clf.is_candidate(row):
            why = "gate"
            self.stats.candidates += 1
        elif ch.follow_left > 0:
            why = "follow"
        elif ch.armed and moved < sched.still:
            why = "settle"
        elif sched.every_n and ch.since_read >= sched.every_n:
            why = "every"
        # the phase matters only to a frame that would be read (a Redis read at most once a second, and none
        # while nothing is read)
        cooldown = bool(why) and self._in_cooldown(ch, channel, captured_at)
        if why in ("follow", "settle", "every") and cooldown:
            self.stats.cooldown_skipped += 1
            why = ""
            ch.since_read, ch.armed = 0, False
        if ch.follow_left > 0:
            ch.follow_left -= 1
        if not why:
            ch.named = ""
            return clf.unread(row, stages)
        got = self._reading(ch, sig, captured_at, source, cooldown, moved, hinted=hint is not None, why=why)
        if got is None:  # in cooldown and the area still moving: nothing could be counted, read once it settles
            self.stats.cooldown_moving += 1
            ch.named = ""
            return clf.unread(row, stages)
        reading, image = got
        if why != "gate":
            self.stats.scheduled[why] += 1
        ch.armed = False
        ch.since_read = 0
        ch.ref = sig
        stages["reader_why"] = why
        if cooldown:
            stages["cooldown"] = True  # nothing this frame says can be counted
        # the hint only when the reading names an outcome word (at the near-miss level or better): a read
        # gameplay frame never asks for a burst (each burst delays the slot after it)
        early = hint is not None and not self._negative(reading, 0.0)
        if early:
            assert hint is not None
            hint()
        around = self._list_check(ch, sig, captured_at, reading, image, cooldown, stages, early)
        if self.strips is not None:
            self.strips.discard()  # a list check started ahead that this frame did not take
        pred = clf.verdict(stages, reading, around)
        if image is None:
            pred.stages["reader"]["reused"] = True
        if pred.label != "none" and not cooldown:
            # this frame may be the one the rules count: the next frame that would be read asks for the
            # phase again (not up to PHASE_REFRESH_S later), so the banner's frames after the count are
            # treated as cooldown at once (a reading and a list check less per banner)
            ch.phase_at = float("-inf")
        if pred.read:
            ch.follow_left = sched.follow
        return pred

    def _named(self, ch: _Channel, reading: Reading) -> str:
        """Remember the outcome this reading names; True-ish when the previous frame named it too."""
        outcome = max(reading.labels, key=reading.labels.__getitem__) if reading.labels else ""
        before, ch.named = ch.named, outcome
        return outcome if before == outcome else ""

    def _negative(self, reading: Reading, margin: float | None = None) -> bool:
        """No outcome word within ``margin`` (default ``negative_margin``) of the near-miss level."""
        reader = self.classifier.reader
        assert reader is not None
        best = max(reading.labels.values(), default=-99.0)
        return best < reader.spec.near_miss - (self.schedule.negative_margin if margin is None else margin)

    def _unsure(self, reading: Reading) -> bool:
        """The reading's best outcome word is at least ``near_miss`` but below ``accept``."""
        reader = self.classifier.reader
        assert reader is not None
        best = max(reading.labels.values(), default=-99.0)
        return reader.spec.near_miss <= best < reader.spec.accept

    def _reading(
        self, ch: _Channel, sig: npt.NDArray[np.float32], at: int,
        source: tuple[bytes, int | None, int | None], cooldown: bool, moved: float = 0.0, hinted: bool = False,
        why: str = "gate",
    ) -> tuple[Reading, npt.NDArray[np.uint8] | None] | None:
        """The frame's reading (fresh or reused; the image is None when reused), or None: in cooldown, not read
        while the area still moves."""
        kept = ch.kept
        sched = self.schedule
        max_age = (sched.cooldown_reuse_s if cooldown else sched.reuse_s) * 1000.0
        if kept is not None and not cooldown and sched.unsure_reuse_s is not None and self._unsure(kept.reading):
            max_age = min(max_age, sched.unsure_reuse_s * 1000.0)
        max_diff = max(sched.reuse_diff, sched.cooldown_diff) if cooldown else sched.reuse_diff
        if kept is not None and sched.negative_reuse_s and self._negative(kept.reading):
            # nothing a banner would read: reused longer (and, when set so, over a larger change)
            max_age = max(max_age, sched.negative_reuse_s * 1000.0)
            max_diff = max(max_diff, sched.negative_diff)
        if (kept is not None and not cooldown and sched.fresh_confirm and kept.why != "gate"
                and not self._negative(kept.reading, 0.0)):
            max_age = 0.0
        if kept is not None and 0 <= at - kept.at < max_age and difference(kept.sig, sig) < max_diff:
            self.stats.reused += 1
            return Reading(kept.reading.words, kept.reading.labels, kept.reading.text, 0.0,
                           centres=kept.reading.centres, heights=kept.reading.heights), None
        if cooldown and sched.cooldown_still and moved >= sched.still:
            return None
        assert self.classifier.reader is not None and self.strips is not None
        # the last reading (recent) named an outcome: this one most likely reads the wider crop too (side by side)
        speculate = kept is not None and 0 <= at - kept.at <= SPECULATE_MS and not self._negative(kept.reading, 0.0)

        def ahead(first: Reading) -> bool:
            # the list check will most likely run on this frame at once (see _list_check): it names an outcome
            # (the hint goes out) and no check for that outcome is kept — its strips are read beside the wider crop
            if cooldown or not hinted or self._negative(first, 0.0) or not self.classifier.wants_list_check(first):
                return False
            outcome = max(first.labels, key=first.labels.__getitem__)
            listed = ch.listed
            return not (listed is not None and listed.outcome == outcome
                        and 0 <= at - listed.at < sched.list_s * 1000.0)

        reading, image = self.strips.read_frame(*source, speculate=speculate, ahead=ahead)
        self.stats.full_reads += 1
        ch.kept = _Kept(sig, at, reading, image, why)
        return reading, image

    def _list_check(
        self, ch: _Channel, sig: npt.NDArray[np.float32], at: int, reading: Reading,
        image: npt.NDArray[np.uint8] | None, cooldown: bool, stages: dict[str, Any], early: bool = False,
    ) -> list[float] | None:
        clf = self.classifier
        if cooldown or not clf.wants_list_check(reading):
            ch.named = ""
            return None
        outcome = max(reading.labels, key=reading.labels.__getitem__)
        listed = ch.listed
        named = self._named(ch, reading)
        if not early and not named and not (listed is not None and listed.outcome == outcome):
            # the first frame that names this outcome: it cannot count alone (never a count from one
            # frame), so the list check runs on the next one, which could — a banner's first frame
            # costs one reading, not three. With an early hint (``early``) it runs now instead: the
            # confirming frame is on its way and finds the check done
            stages["list"] = {"deferred": True}
            return None
        age = at - listed.at if listed is not None else -1
        similar = listed is not None and difference(listed.sig, sig) < self.schedule.change
        if (listed is not None and listed.outcome == outcome and 0 <= age < self.schedule.list_s * 1000.0
                and (similar or (named and age <= LIST_NEXT_MS))):
            # kept while the area has not changed strongly; and for the frame right after the one it was
            # made on, when both name the outcome (a banner's confirming frame after its fly-in: the
            # early check on the first frame is what the confirming frame uses); the area it is kept
            # for is then this frame's (list_s still counts from the check)
            if not similar:
                listed.sig = sig
            self.stats.list_reused += 1
            stages["list"] = {"reused": True}
            return list(listed.scores)
        assert self.strips is not None
        if image is None:  # a reused reading whose list check is not kept: the frame it was read on
            assert ch.kept is not None
            image = ch.kept.image
        scores = self.strips.scores(image)
        self.stats.list_checks += 1
        ch.listed = _ListKept(outcome, sig, at, scores)
        return scores
