"""Banner evidence: what one frame's label gives a streak, and when a streak's frames may count (pure).

Used by :mod:`services.state.rules`; the rule in words is in docs/rules.md ("Banner evidence").
"""

from __future__ import annotations

import math

from services.common.contracts.messages import Label, Outcome

EVIDENCE_FLOOR = 1e-6  # p(none) below this (rounded to 0 in the label) counts as this


def support_of(label: Label, min_confidence: float) -> tuple[Outcome, float, float] | None:
    """What a frame gives a streak: ``(outcome, evidence, confidence)``, or None (it breaks the streak).

    A frame labelled with an outcome at ``min_confidence`` gives full evidence, ``logit(min_confidence)``
    (ln 9 at 0.9) — today's rule. A frame on which the reader saw an outcome word (``read``: accepted or a
    near miss) gives its log-odds against ``none``, ``ln(p(outcome) / p(none))`` from the label's own
    probabilities, when positive, capped at the same full evidence: no frame counts for more than one
    confident frame, so one frame never carries a count. Labels without ``read`` (older workers, a gate
    deciding alone) only ever give full evidence or none.
    """
    full = full_evidence(min_confidence)
    outcome = label.outcome
    if outcome is not None and label.confidence >= min_confidence:
        return outcome, full if full is not None else 1.0, label.confidence
    read = label.read_outcome
    if read is None or full is None or not label.probs:
        return None
    p, q = float(label.probs.get(read, 0.0)), float(label.probs.get("none", 0.0))
    if p <= 0.0:
        return None
    z = math.log(p / max(q, EVIDENCE_FLOOR))
    if z <= 0.0:
        return None
    return read, min(z, full), p


def full_evidence(min_confidence: float) -> float | None:
    """The log-odds of a frame at ``min_confidence`` (None when banner evidence is off: min_confidence
    of 1 or at most 0.5)."""
    c = min_confidence
    return math.log(c / (1.0 - c)) if 0.5 < c < 1.0 else None


def enough(evidence: tuple[float, ...], min_confidence: float, required: int) -> bool:
    """Whether a streak's last frames (``evidence``, at most ``required + 1``) may count.

    ``required`` is the rules' ``required_consecutive``. Either the last ``required`` frames are each
    sure (full evidence: today's rule), or the last ``required + 1`` frames are each read at least
    ``required / (required + 1)`` of a sure frame (at 0.9 and 2 frames: 2/3 of ln 9, p 0.81, −2.12 per
    letter for the shipped reader): a banner read a little under the bar counts when it holds one frame
    longer. Every frame of the window must clear that floor, so a weak reading between two sure frames
    of a look-alike never bridges them (issue 21: a `VICTORIES` read sure, at p 0.57, sure was counted
    by a sum over the window).
    """
    full = full_evidence(min_confidence)
    if full is None:
        return True  # banner evidence off: only sure frames get here (``support_of``)
    n = required
    if len(evidence) >= n and all(e >= full - 1e-9 for e in evidence[-n:]):
        return True
    window = evidence[-(n + 1):]
    return len(window) == n + 1 and all(e >= full * n / (n + 1) - 1e-9 for e in window)
