"""Scoring words against a CTC text recogniser's output (pure numpy, no I/O).

A CTC recogniser emits, for each of ``T`` horizontal steps of a text line, a
probability for every character of its dictionary plus a *blank*. Greedy
decoding (best class per step, collapse repeats, drop blanks) spells *some*
word, and on the game's slanted condensed banners it often misspells it
(``DEERT`` for ``DEFEAT``). We never need the spelling: we only ask "how well
does this crop read as ``DEFEAT``?", which is ``log P(word | crop)``, summed
over every alignment of the word to the steps — the CTC forward algorithm.
Divided by the word's length it is comparable across words.

A different word in the same place (``DEFEND``, ``VICTORIES``) has to explain
its extra or different characters with steps that see other letters, so its
score falls far below the real word's: unlike fuzzy matching on the greedy
text, the whole word must be there and nothing else that looks like a letter.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

BLANK = 0
_TINY = 1e-30


def extend(labels: Sequence[int]) -> list[int]:
    """``[l1, l2, …]`` → ``[blank, l1, blank, l2, …, blank]`` (the CTC state sequence)."""
    out = [BLANK]
    for c in labels:
        out += [c, BLANK]
    return out


def word_log_likelihoods(probs: npt.NDArray[np.floating], words: Sequence[Sequence[int]]) -> npt.NDArray[np.float64]:
    """``log P(word | steps)`` for each word under CTC, all words in one pass.

    ``probs`` is ``(T, C)``: per-step class probabilities (already softmaxed,
    column 0 the blank). ``words`` are sequences of class indices (no blanks).
    Runs in the probability domain with a per-step rescale (whose logs are
    summed), which is exact and several times cheaper than log-sum-exp.
    A word longer than the steps can hold gets ``-inf``.
    """
    n = len(words)
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    p = np.asarray(probs, dtype=np.float64)
    t_steps = p.shape[0]
    ext = [extend(w) for w in words]
    s_max = max(len(e) for e in ext)
    idx = np.zeros((n, s_max), dtype=np.int64)
    valid = np.zeros((n, s_max), dtype=bool)
    skip = np.zeros((n, s_max), dtype=bool)  # may jump from s-2 (between two different characters)
    for i, e in enumerate(ext):
        idx[i, : len(e)] = e
        valid[i, : len(e)] = True
        for s in range(2, len(e)):
            skip[i, s] = e[s] != BLANK and e[s] != e[s - 2]
    emit = np.maximum(p[:, idx], _TINY) * valid  # (T, n, S)
    alpha = np.zeros((n, s_max), dtype=np.float64)
    alpha[:, 0] = emit[0, :, 0]
    alpha[:, 1] = emit[0, :, 1]
    total = alpha.sum(axis=1)
    alpha /= total[:, None]
    log_scale = np.log(total)
    for t in range(1, t_steps):
        prev = alpha
        nxt = prev.copy()
        nxt[:, 1:] += prev[:, :-1]
        nxt[:, 2:] += prev[:, :-2] * skip[:, 2:]
        alpha = nxt * emit[t]
        total = alpha.sum(axis=1)
        total[total <= 0] = _TINY
        alpha /= total[:, None]
        log_scale += np.log(total)
    lengths = np.array([len(e) for e in ext])
    rows = np.arange(n)
    end = alpha[rows, lengths - 1] + alpha[rows, lengths - 2]
    with np.errstate(divide="ignore"):
        out = np.log(end) + log_scale
    # a word needs at least one step per character, plus one between repeated characters
    need = np.array([len(w) + sum(1 for a, b in itertools.pairwise(w) if a == b) for w in words])
    out[need > t_steps] = -np.inf
    return np.asarray(out, dtype=np.float64)


def greedy_text(probs: npt.NDArray[np.floating], charset: Sequence[str]) -> str:
    """The recogniser's own best spelling (for ``--explain``; never used to decide)."""
    best = np.asarray(probs).argmax(axis=1)
    out: list[str] = []
    last = BLANK
    for c in best.tolist():
        if c != last and c != BLANK and c < len(charset):
            out.append(charset[c])
        last = c
    return "".join(out)
