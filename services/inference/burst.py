"""Burst confirmation, the inference side: a candidate asks its capture for the next frame at once.

A *candidate* here is a frame the detector read an outcome on (or almost:
a near miss): counting needs a second frame that agrees, and the sooner
it is taken the sooner the overlay changes (contract and reasons in
:mod:`services.common.infra.burst`). The hint goes out as soon as the frame is
read, before its label is committed with the rest of the batch.

Why after the reader and not when the gate passes: the gate is tuned for
recall and passes 5–10% of gameplay frames (models/MODEL_CARD.md); each
hint moves the channel's next capture earlier and the one after it later
(a burst is never an extra frame), so hints on gameplay would make the
wait for a real banner's first frame longer. The reader says "outcome"
on almost no gameplay frame, and it is done about when the 50 ms a burst
keeps from the previous frame are over (services/capture/schedule.py),
so waiting for it costs little.
"""

from __future__ import annotations

import logging

import redis

from services.common.contracts.keys import Keys
from services.common.contracts.messages import Frame
from services.common.infra.burst import request_bursts
from services.inference.classifier import Prediction

log = logging.getLogger("owc.inference")


def is_candidate(pred: Prediction) -> bool:
    """Whether a frame's reading asks for a confirming frame (pure): an outcome, a near miss, or any
    outcome word the reader saw (the rules weigh such evidence over the banner's frames)."""
    return pred.label in ("victory", "defeat", "draw") or bool(pred.near_miss) or bool(pred.read)


class EarlyHint:
    """A frame's hint sent as soon as its reading names an outcome word, before the list check (called by
    :meth:`~services.inference.banner.BannerReader.frame`): the list check then runs while capture takes
    the confirming frame, not on that frame's critical path. Sent at most once."""

    def __init__(self, client: redis.Redis, keys: Keys, frame: Frame) -> None:
        self.client, self.keys, self.frame = client, keys, frame
        self.sent = False

    def __call__(self) -> None:
        if not self.sent:
            self.sent = True
            _send(self.client, self.keys, self.frame)


def ask_for_burst(client: redis.Redis, keys: Keys, frame: Frame, pred: Prediction, *, sent: bool = False) -> None:
    """Publish a hint for a candidate frame (unless an :class:`EarlyHint` ``sent`` it); a Redis error only
    costs the burst."""
    if sent or not is_candidate(pred):
        return
    _send(client, keys, frame)


def _send(client: redis.Redis, keys: Keys, frame: Frame) -> None:
    try:
        request_bursts(client, keys, [(frame.channel, frame.seq)])
    except redis.RedisError as exc:
        log.debug("cannot ask capture for a burst (%s)", exc)
