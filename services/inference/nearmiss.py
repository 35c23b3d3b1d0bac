"""Near misses: frames where the reader saw an outcome word but not clearly enough to count it.

The worker keeps the latest one per channel for its health record (the admin
page offers to count it) and logs one line per channel and outcome a minute
while a banner is on screen, not one per frame.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from services.common.contracts.messages import Frame
from services.inference.classifier import Prediction

log = logging.getLogger("owc.inference")

LOG_EVERY_S = 60.0


class NearMisses:
    def __init__(self, clock: Any = time.monotonic) -> None:
        self._latest: dict[str, dict[str, str | int | float]] = {}
        self._logged: dict[tuple[str, str], float] = {}
        self._clock = clock

    def record(self, frame: Frame, pred: Prediction) -> None:
        outcome = pred.near_miss or ""
        reader = pred.stages.get("reader") or {}
        p = pred.probs.get(outcome, 0.0)
        self._latest[frame.channel] = {
            "near_miss": outcome, "near_miss_confidence": round(p, 4), "near_miss_seq": frame.seq,
            "near_miss_at": frame.captured_at, "near_miss_text": str(reader.get("text", ""))[:40],
        }
        key = (frame.channel, outcome)
        now = self._clock()
        if now - self._logged.get(key, -1e9) >= LOG_EVERY_S:
            self._logged[key] = now
            log.info(
                "%s: saw %s at %.0f%% (read %r) - not counted; the admin page can count it with one click",
                frame.channel, outcome.upper(), 100 * p, reader.get("text", ""),
            )

    def fields(self, channel: str) -> dict[str, str | int | float]:
        """The channel's latest near miss as health-record fields (empty when none)."""
        return self._latest.get(channel, {})
