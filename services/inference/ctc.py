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


class Vocabulary:
    """The words' CTC state sequences, laid out once for :meth:`log_likelihoods` (a reader scores the
    same words on every crop, so the layout is not rebuilt per reading)."""

    def __init__(self, words: Sequence[Sequence[int]]) -> None:
        self.n = len(words)
        ext = [extend(w) for w in words]
        s_max = max((len(e) for e in ext), default=0)
        self.idx = np.zeros((self.n, s_max), dtype=np.int64)
        self.valid = np.zeros((self.n, s_max), dtype=bool)
        # may jump from s-2 (between two different characters); 1.0/0.0 so the step multiplies floats
        self.skip = np.zeros((self.n, max(0, s_max - 2)), dtype=np.float64)
        for i, e in enumerate(ext):
            self.idx[i, : len(e)] = e
            self.valid[i, : len(e)] = True
            for s in range(2, len(e)):
                self.skip[i, s - 2] = float(e[s] != BLANK and e[s] != e[s - 2])
        # the columns the words use, gathered from the (T, C) output before anything else touches it
        self.columns, self.local = np.unique(self.idx, return_inverse=True)
        self.local = self.local.reshape(self.idx.shape)
        self.rows = np.arange(self.n)
        self.last = np.array([len(e) - 1 for e in ext], dtype=np.int64)
        # a word needs at least one step per character, plus one between repeated characters
        self.need = np.array([len(w) + sum(1 for a, b in itertools.pairwise(w) if a == b) for w in words])

    def log_likelihoods(self, probs: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
        """``log P(word | steps)`` for each word (see :func:`word_log_likelihoods`)."""
        if self.n == 0:
            return np.zeros(0, dtype=np.float64)
        # only the words' columns, then float64: the same values as converting the whole (T, C) first
        p = np.asarray(np.asarray(probs)[:, self.columns], dtype=np.float64)
        t_steps = p.shape[0]
        emit = np.maximum(p[:, self.local], _TINY) * self.valid  # (T, n, S)
        alpha = np.zeros(self.idx.shape, dtype=np.float64)
        alpha[:, 0] = emit[0, :, 0]
        alpha[:, 1] = emit[0, :, 1]
        total = alpha.sum(axis=1)
        alpha /= total[:, None]
        log_scale = np.log(total)
        skip = self.skip
        for t in range(1, t_steps):
            prev = alpha
            nxt = prev.copy()
            nxt[:, 1:] += prev[:, :-1]
            nxt[:, 2:] += prev[:, :-2] * skip
            alpha = nxt * emit[t]
            total = alpha.sum(axis=1)
            total[total <= 0] = _TINY
            alpha /= total[:, None]
            log_scale += np.log(total)
        end = alpha[self.rows, self.last] + alpha[self.rows, self.last - 1]
        with np.errstate(divide="ignore"):
            out = np.log(end) + log_scale
        out[self.need > t_steps] = -np.inf
        return np.asarray(out, dtype=np.float64)


def word_log_likelihoods(probs: npt.NDArray[np.floating], words: Sequence[Sequence[int]]) -> npt.NDArray[np.float64]:
    """``log P(word | steps)`` for each word under CTC, all words in one pass.

    ``probs`` is ``(T, C)``: per-step class probabilities (already softmaxed,
    column 0 the blank). ``words`` are sequences of class indices (no blanks).
    Runs in the probability domain with a per-step rescale (whose logs are
    summed), which is exact and several times cheaper than log-sum-exp.
    A word longer than the steps can hold gets ``-inf``.
    """
    return Vocabulary(words).log_likelihoods(probs)


def ink_span(probs: npt.NDArray[np.floating]) -> tuple[int, int] | None:
    """The first and last step whose likeliest class is a character, not the blank (None: all blank)."""
    steps = np.flatnonzero(np.asarray(probs).argmax(axis=1) != BLANK)
    return (int(steps[0]), int(steps[-1])) if steps.size else None


def runs_off(probs: npt.NDArray[np.floating], edge: int = 1) -> bool:
    """Does the text run into either end of the line: a character likeliest within ``edge`` steps of it?

    A word that fits in its crop leaves blank steps on both sides (its letters' centres lie inside);
    one cut by the crop emits its cut letter at the first or last step. Then the crop holds part of a
    word only — ``VICTORIES`` cut after ``VICTORIE`` reads as well as ``VICTORY`` as ``VICTORIES``.
    """
    span = ink_span(probs)
    return span is not None and (span[0] < edge or span[1] >= len(probs) - edge)


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


def spot_log_likelihoods(
    probs: npt.NDArray[np.floating], words: Sequence[Sequence[int]] | Vocabulary
) -> npt.NDArray[np.float64]:
    """For each word, ``log P`` of its likeliest placement anywhere in the line: the CTC forward algorithm over
    the steps from where the word starts to where it ends, the steps outside it free (whatever they hold).

    ``log_likelihoods`` asks whether the line *is* the word; this asks whether the line *holds* it, so a
    look-alike read beside other text (``ther DEFEATED``) still counts as read. Never below the whole-line
    score. The start is the best one (max), the alignments within a placement are summed.

    All words in one pass (their state sequences padded with states that stay impossible), and the log taken
    of the words' columns only: every value is computed with the same operations as word by word over the
    whole ``(T, C)`` output (:func:`spot_log_likelihoods_reference`), bit for bit, at a fraction of the cost
    (a banner's wider crop is read on every banner frame; the log of a 27 × 18 000 output alone was ~2 ms).
    ``words`` as a :class:`Vocabulary`: its layout, laid out once (a reader spots the same look-alikes every time).
    """
    vocab = words if isinstance(words, Vocabulary) else Vocabulary(words)
    if vocab.n == 0:
        return np.full(0, -np.inf)
    n, s_max = vocab.idx.shape
    logp = np.log(np.maximum(np.asarray(np.asarray(probs)[:, vocab.columns], dtype=np.float64), _TINY))
    emit = np.where(vocab.valid, logp[:, vocab.local], -np.inf)  # (T, n, S); padding never emits
    skip2 = vocab.skip > 0
    rows, last = vocab.rows, vocab.last
    alpha = np.full((n, s_max), -np.inf)
    best = np.full(n, -np.inf)
    with np.errstate(invalid="ignore"):
        for t in range(logp.shape[0]):
            nxt = alpha.copy()
            nxt[:, 1:] = np.logaddexp(nxt[:, 1:], alpha[:, :-1])
            nxt[:, 2:] = np.where(skip2, np.logaddexp(nxt[:, 2:], alpha[:, :-2]), nxt[:, 2:])
            nxt[:, 1] = np.maximum(nxt[:, 1], 0.0)  # the word may start here, the steps before are free
            alpha = nxt + emit[t]
            alpha[:, 0] = -np.inf  # a leading blank is part of the free prefix
            best = np.maximum(best, np.logaddexp(alpha[rows, last], alpha[rows, last - 1]))
    return np.asarray(best, dtype=np.float64)


def spot_log_likelihoods_reference(
    probs: npt.NDArray[np.floating], words: Sequence[Sequence[int]]
) -> npt.NDArray[np.float64]:
    """:func:`spot_log_likelihoods` word by word over the whole output, as first written (kept for the tests,
    which pin the fast one to it bit for bit)."""
    logp = np.log(np.maximum(np.asarray(probs, dtype=np.float64), _TINY))
    t_steps = logp.shape[0]
    out = np.full(len(words), -np.inf)
    for i, word in enumerate(words):
        ext = extend(word)
        s_n = len(ext)
        skip = np.array([s >= 2 and ext[s] != BLANK and ext[s] != ext[s - 2] for s in range(s_n)])
        emit = logp[:, ext]  # (T, S)
        alpha = np.full(s_n, -np.inf)
        best = -np.inf
        for t in range(t_steps):
            nxt = alpha.copy()
            nxt[1:] = np.logaddexp(nxt[1:], alpha[:-1])
            nxt[2:] = np.where(skip[2:], np.logaddexp(nxt[2:], alpha[:-2]), nxt[2:])
            nxt[1] = max(nxt[1], 0.0)  # the word may start here (its first character), the steps before are free
            alpha = nxt + emit[t]
            alpha[0] = -np.inf  # a leading blank is part of the free prefix
            best = max(best, float(np.logaddexp(alpha[-1], alpha[-2])) if s_n > 1 else best)
        out[i] = best
    return out



def word_centre(probs: npt.NDArray[np.floating], word: Sequence[int], letters: int | None = None) -> float | None:
    """Where ``word`` sits in the line: the centre of its letters on the likeliest alignment (Viterbi), as a
    share of the line's width (0 its left end, 1 its right end); None when the word cannot fit the steps.

    From the first step of its first letter to the last step of its ``letters``-th letter (all of them by
    default; a caller leaves out trailing punctuation, which is narrow and often emitted late, pulling the
    centre right). A word read whole in a crop centred on it sits at about 0.5, whatever else the line holds.
    """
    span = word_span(probs, word, letters)
    if span is None:
        return None
    return float((span[0] + span[1]) / 2 / np.asarray(probs).shape[0])


def word_span(
    probs: npt.NDArray[np.floating], word: Sequence[int], letters: int | None = None
) -> tuple[int, int] | None:
    """The steps ``[first, last + 1)`` that ``word``'s first ``letters`` letters (all by default) take on the
    likeliest alignment (Viterbi): from the first step of its first letter to the last step of its
    ``letters``-th letter; None when the word cannot fit the steps (:func:`word_centre` is its centre)."""
    t_steps = np.asarray(probs).shape[0]
    if t_steps == 0 or not word:
        return None
    upto = len(word) if letters is None else max(1, min(len(word), letters))
    ext = extend(word)
    s_n = len(ext)
    skip = np.array([s >= 2 and ext[s] != BLANK and ext[s] != ext[s - 2] for s in range(s_n)])
    # only the word's columns (the recogniser has ~18,700 classes)
    emit = np.log(np.maximum(np.asarray(np.asarray(probs)[:, ext], dtype=np.float64), _TINY))
    score = np.full(s_n, -np.inf)
    score[0], score[1] = emit[0, 0], emit[0, 1]
    back = np.zeros((t_steps, s_n), dtype=np.int8)  # 0: stay, 1: from s-1, 2: from s-2
    for t in range(1, t_steps):
        moves = np.full((3, s_n), -np.inf)
        moves[0] = score
        moves[1, 1:] = score[:-1]
        moves[2, 2:] = np.where(skip[2:], score[:-2], -np.inf)
        back[t] = moves.argmax(axis=0)
        score = moves.max(axis=0) + emit[t]
    s = s_n - 1 if score[s_n - 1] >= score[s_n - 2] else s_n - 2
    if not np.isfinite(score[s]):
        return None
    first, last = -1, -1
    for t in range(t_steps - 1, -1, -1):
        if s == 1:
            first = t
        if last < 0 and s == 2 * upto - 1:
            last = t
        s -= int(back[t, s]) if t > 0 else 0
    if first < 0 or last < 0:
        return None
    return first, last + 1
