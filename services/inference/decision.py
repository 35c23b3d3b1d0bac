"""The reader's decision (pure; no model, no I/O): per-word scores and where the words sit -> probabilities.

Split from :mod:`services.inference.classifier` (which re-exports :func:`decide`); docs/detector.md#the-decision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from services.inference import vision


def decide(
    labels: Sequence[str], word_scores: dict[str, float], spec: vision.ReaderSpec,
    centres: dict[str, float] | None = None, heights: dict[str, float] | None = None,
) -> tuple[dict[str, float], str | None]:
    """The reader's verdict from its per-word scores (pure; no model).

    ``word_scores`` maps every word (outcome words and look-alikes) to its
    mean log-probability per character. An outcome's evidence is its best
    word, measured two ways, and the weaker one counts:

    * its mean score ``s`` against ``spec.accept``, the level below which the
      crop does not read as a word of ours: ``slope · (s − accept) + ln 9``,
      so an outcome read exactly at ``accept`` gets 0.9 — the counting rules'
      default ``min_confidence``;
    * its whole log-likelihood ``L = s · len`` against the best look-alike's
      (``DEFEND`` read well beats ``DEFEAT`` read worse): ``L − L_lookalike``,
      the log of the likelihood ratio, so an outcome needs nine times the
      likelihood of every look-alike to reach 0.9. Whole likelihoods, not
      means: a longer look-alike (``DEFEATS``) must pay for its extra letter,
      which a mean per letter would spread thin.

    With ``spec.centre``, an outcome whose word sits off the crop's centre (``centres``: its best word's
    centre, a share of the crop's width, from :meth:`services.inference.reader.Reader.centres`)
    outside the range ``spec.centre`` is not the banner — the game centres its banner on the frame — and its
    evidence is capped at ``−ln 9`` (p ≤ 0.1). This is what refuses a look-alike that *extends* the outcome
    word with letters the recogniser barely sees (a mid-sized ``DEFEATED`` whose ``ED`` runs into a blob of
    its own colour reads ``DEFEAT`` at −0.25 and ``DEFEATED`` at −0.83 per letter): no score comparison
    separates it from a real ``DEFEAT`` beside clutter (−0.14 vs −0.76 in the episode grid), but what it
    reads as ``DEFEAT`` sits well left of centre (0.28–0.34 of the crop), a banner's at 0.41–0.66. The range
    is wider on the right: every look-alike that extends an outcome word does so on its right (``DEFEATED``,
    ``VICTORIES``, ``勝利数``), so the outcome word it holds sits left of centre; a banner's word is measured up
    to 0.66 (slanted letters, the generator's centres up to 0.535 of the frame).

    With ``spec.letter_height``, an outcome whose word's letters are less tall than that share of its width per
    letter (``heights``, from :meth:`~services.inference.reader.Reader.places`) is a strip of a word — only its
    letters' tops or bottoms are visible — not the banner, and is capped the same way. The recogniser, trained on
    lines cut to their text, reads the tops of ``DEFEAT``'s six letters (a strip ~6 px of a 360-px frame) as
    ``DEFEAT`` at −1.3 … −2.1 per letter (issue 21.4, pool seed 2003, scene 2662): no score separates it, its
    height does — 0.29–0.37 of its width per letter, every banner frame of the episode grid at least 0.67
    (docs/detector.md#the-decision-servicesinferencedecisiondecide).

    Probabilities are a softmax over ``none`` (evidence 0) and the outcomes.
    Also returns the outcome the reader *almost* saw — scored at or above
    ``spec.near_miss`` but below ``spec.accept``, and likelier than any
    look-alike — for the admin page ("saw DEFEAT — not counted").
    """
    lookalike = max((word_scores[w] * len(w) for w in spec.lookalikes), default=-math.inf)
    z = {"none": 0.0}
    best_label, best_score, best_total = "", -math.inf, -math.inf
    for label in labels[1:]:
        word = max(spec.words[label], key=word_scores.__getitem__)
        score = word_scores[word]
        total = score * len(word)
        z[label] = min(spec.slope * (score - spec.accept) + math.log(9.0), total - lookalike)
        if off_centre(label, centres, spec) or too_short(label, heights, spec):
            z[label] = min(z[label], -math.log(9.0))
        if score > best_score:
            best_label, best_score, best_total = label, score, total
    top = max(z.values())
    exp = {k: math.exp(v - top) for k, v in z.items()}
    total_exp = sum(exp.values())
    probs = {k: exp[k] / total_exp for k in labels}
    near = best_label if (spec.near_miss <= best_score < spec.accept and best_total > lookalike
                          and not off_centre(best_label, centres, spec)
                          and not too_short(best_label, heights, spec)) else None
    return probs, near


def off_centre(label: str, centres: dict[str, float] | None, spec: vision.ReaderSpec) -> bool:
    """Does ``label``'s word's centre (a share of the crop's width) lie outside ``spec.centre``? False without the
    check or without a place for it."""
    if spec.centre is None or not centres or label not in centres:
        return False
    low, high = spec.centre
    return not low <= centres[label] <= high


def too_short(label: str, heights: dict[str, float] | None, spec: vision.ReaderSpec) -> bool:
    """Are ``label``'s word's letters less tall than ``spec.letter_height`` of its width per letter? False without
    the check or without a height for it."""
    if spec.letter_height is None or not heights or label not in heights:
        return False
    return heights[label] < spec.letter_height
