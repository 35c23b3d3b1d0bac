"""Burst confirmation, the inference side: a candidate asks its capture for the next frame at once.

Called right after the gate, before the reader: the confirming frame is
taken while this one is still being read (contract and reasons in
:mod:`services.common.burst`). A *candidate* is a frame the gate passes
(``1 - p(none) >= gate.threshold``); with a gate-only model, a frame whose
most likely label is an outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import redis

from services.common.burst import request_bursts
from services.common.keys import Keys
from services.common.messages import Frame
from services.inference.classifier import Classifier

log = logging.getLogger("owc.inference")


def candidates(classifier: Classifier, frames: Sequence[Frame], probs: npt.NDArray[np.float32]) -> list[Frame]:
    """The frames of a batch the gate passes (pure, given the gate's probabilities)."""
    gate = classifier.meta.gate
    out = []
    for frame, row in zip(frames, probs.tolist(), strict=True):
        if classifier.reader is not None and gate is not None:
            passed = classifier.gate_score(row) >= gate.threshold
        else:
            passed = classifier.labels[max(range(len(row)), key=row.__getitem__)] != "none"
        if passed:
            out.append(frame)
    return out


def ask_for_bursts(
    client: redis.Redis, keys: Keys, classifier: Classifier, frames: Sequence[Frame], probs: npt.NDArray[np.float32]
) -> None:
    """Publish a hint for each channel with a candidate in the batch; a Redis error only costs the burst."""
    found = candidates(classifier, frames, probs)
    if not found:
        return
    try:
        request_bursts(client, keys, [(frame.channel, frame.seq) for frame in found])
    except redis.RedisError as exc:
        log.debug("cannot ask capture for a burst (%s)", exc)
