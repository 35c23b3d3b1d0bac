"""Frames that must stay ``none``: gameplay and every hard negative the game shows.

Each ``draw_*`` function paints one kind onto a gameplay frame. ``NEGATIVE_KINDS``
lists them with their share of the ``none`` frames.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from training.synth.banners import (
    OUTCOME_WORDS,
    OUTCOMES,
    TextStyle,
    draw_banner,
    draw_final_score,
    draw_flash,
    draw_scoreboard,
    draw_streak,
    draw_text,
    outcome_colour,
    random_style,
)
from training.synth.base import (
    F32,
    GOLD,
    OTHER_COLOURS,
    PALETTE,
    RED,
    WHITE,
    Placed,
    Rng,
    colour,
    f32,
    paste,
    pick,
    rgb2bgr,
    to_u8,
)
from training.synth.fonts import FontSpec
from training.synth.fonts import usable as _usable
from training.synth.scenes import bg_daylight, bg_end_screen, bg_natural, hershey, random_name
from training.synth.splits import Split

# Big centred texts the game shows that are NOT an end-of-match banner.
NEGATIVE_TEXTS = (
    "OVERTIME", "ROUND 2", "ROUND 3", "PLAY OF THE GAME", "DOUBLE KILL", "TRIPLE KILL",
    "QUADRUPLE KILL", "TEAM KILL", "ON FIRE", "ELIMINATED", "OBJECTIVE CAPTURED",
    "POINT CAPTURED", "ATTACK", "DEFEND", "ESCORT THE PAYLOAD", "STOP THE PAYLOAD",
    "CAPTURE THE OBJECTIVE", "SUDDEN DEATH", "VICTORIES", "MATCH COMPLETE", "YOU DIED",
    "RESPAWNING", "ASSEMBLE YOUR TEAM", "PREPARE TO ATTACK", "FINAL ROUND", "SWITCHING SIDES",
    "MVP", "BLOCKED", "SHUTDOWN", "COMPETITIVE", "HERO SELECT", "MATCH POINT", "CONTESTED",
    "DEFEATED", "DEFENSE", "PREPARE TO DEFEND", "ATTACKERS WIN",
)
# The words closest to an outcome word: drawn more often.
LOOKALIKES = ("DEFEND", "ATTACK", "VICTORIES", "DEFEATED", "DEFENSE", "PREPARE TO DEFEND", "OVERTIME", "DRAFT")
NEGATIVE_TEXTS_JA = ("オーバータイム", "ラウンド2", "攻撃", "防衛", "目標を確保", "キル", "プレイ・オブ・ザ・ゲーム",
                     "勝利数", "撃破", "敗退")
KILL_FEED_WORDS = ("DEFEATED", "VICTORIES", "ELIMINATED", "ASSIST", "KILLED")
MENU_ITEMS = ("PLAY", "HEROES", "CAREER", "CHALLENGES", "SHOP", "SOCIAL", "OPTIONS", "HERO GALLERY",
              "BATTLE PASS", "QUICK PLAY", "COMPETITIVE", "ARCADE")
BANNER_STYLE_COLOURS = tuple(PALETTE.values())  # any colour, like the banners (v7)


def _font(rng: Rng, split: Split, ja: bool = False) -> FontSpec:
    fonts = _usable(split.cjk if ja else split.latin)
    spec: FontSpec = pick(rng, fonts)
    return FontSpec(spec.file, spec.index, (0.05, 0.25)) if ja else spec


def draw_other_text(frame: F32, rng: Rng, split: Split, banner_like: bool = False) -> str:
    """Another big centred text (callout, round or objective announcement) in banner colours and style."""
    H, W = frame.shape[:2]
    ja = rng.random() < 0.2
    if ja:
        text: str = pick(rng, NEGATIVE_TEXTS_JA)
    else:
        text = pick(rng, LOOKALIKES if rng.random() < 0.4 else NEGATIVE_TEXTS)
    spec = _font(rng, split, ja)
    col = colour(rng, pick(rng, BANNER_STYLE_COLOURS))
    if banner_like:  # exactly where and how big the banner is
        centre = (W * float(rng.uniform(0.485, 0.535)), H * float(rng.uniform(0.39, 0.47)))
        cap = H * float(rng.uniform(0.08, 0.16))
    else:
        centre = (W * float(rng.uniform(0.46, 0.56)), H * float(rng.uniform(0.3, 0.6)))
        cap = H * float(rng.uniform(0.05, 0.14))
    box = draw_text(frame, rng, text, spec, cap, centre, col, random_style(rng), alpha=float(rng.uniform(0.7, 1.0)),
                    max_w=W * float(rng.uniform(0.3, 0.6)))
    if rng.random() < 0.3:
        draw_streak(frame, rng, (box.y0 + box.y1) / 2, float(rng.uniform(0.2, 0.8)))
    if rng.random() < 0.3:  # a small line under it, like the score line
        sub = f"{rng.integers(0, 6)} | {rng.integers(0, 6)}" if rng.random() < 0.5 else pick(rng, NEGATIVE_TEXTS)
        draw_text(frame, rng, sub, spec, (box.y1 - box.y0) * float(rng.uniform(0.25, 0.4)),
                  (centre[0], box.y1 + (box.y1 - box.y0) * 0.4), colour(rng, WHITE), max_w=W * 0.4)
    return "other_text"


def draw_colours(frame: F32, rng: Rng, split: Split) -> str:
    """Banner colours and light without text: streaks, flashes, gold/red blobs."""
    H, W = frame.shape[:2]
    if rng.random() < 0.6:
        draw_streak(frame, rng, H * float(rng.uniform(0.35, 0.55)), float(rng.uniform(0.3, 1.0)))
    if rng.random() < 0.5:
        draw_flash(frame, float(rng.uniform(0.1, 0.6)))
    if rng.random() < 0.6:
        col = rgb2bgr(colour(rng, pick(rng, BANNER_STYLE_COLOURS)))
        x0, y0 = int(W * rng.uniform(0.3, 0.5)), int(H * rng.uniform(0.35, 0.5))
        w, h = int(W * rng.uniform(0.05, 0.3)), int(H * rng.uniform(0.02, 0.12))
        blob = np.ones((h, w), np.float32)
        paste(frame, np.broadcast_to(col, (h, w, 3)).astype(np.float32), blob * float(rng.uniform(0.5, 1)), x0, y0)
    return "colours"


def draw_word_elsewhere(frame: F32, rng: Rng, split: Split) -> str:
    """An outcome word far from the banner position, or tiny."""
    H, W = frame.shape[:2]
    label = pick(rng, OUTCOMES)
    ja = rng.random() < 0.3
    text = OUTCOME_WORDS[label][1 if ja else 0]
    if rng.random() < 0.5:
        cy = H * float(rng.choice([rng.uniform(0.05, 0.2), rng.uniform(0.75, 0.95)]))
        cx = W * float(rng.uniform(0.15, 0.85))
        cap = H * float(rng.uniform(0.04, 0.12))
    else:
        cx = W * float(rng.choice([rng.uniform(0.05, 0.25), rng.uniform(0.78, 0.95)]))
        cy = H * float(rng.uniform(0.1, 0.9))
        cap = H * float(rng.uniform(0.03, 0.08))
    draw_text(frame, rng, text, _font(rng, split, ja), cap, (cx, cy), outcome_colour(rng, label),
              random_style(rng), max_w=W * 0.2)
    return "word_elsewhere"


def draw_cut_banner(frame: F32, rng: Rng, split: Split) -> str:
    """Only a small part of the outcome text is visible (the rest off the ROI or cut)."""
    label = pick(rng, OUTCOMES)
    if rng.random() < 0.5:
        x0 = float(rng.uniform(0, 0.75))
        keep = (x0, 0.0, x0 + float(rng.uniform(0.12, 0.25)), 1.0)
    else:
        y0 = float(rng.choice([0.0, 0.8]))
        keep = (0.0, y0, 1.0, y0 + 0.2)
    draw_banner(frame, rng, label, split, keep=keep, style=random_style(rng))
    return "cut_banner"


def draw_killfeed(frame: F32, rng: Rng, split: Split) -> str:
    """Kill feed rows with DEFEATED / VICTORIES top-right, and an elimination callout under the crosshair."""
    H, W = frame.shape[:2]
    img = to_u8(frame)
    font = hershey(split)
    lw = max(1, H // 400)
    rows = int(rng.integers(2, 6))
    for i in range(rows):
        y = H * (0.06 + 0.045 * i)
        x = W * float(rng.uniform(0.66, 0.74))
        cv2.rectangle(img, (int(x - W * 0.01), int(y - H * 0.025)), (int(W * 0.98), int(y + H * 0.012)),
                      (40, 40, 40), -1)
        cv2.putText(img, random_name(rng), (int(x), int(y)), font, H / 1000, (230, 230, 230), lw, cv2.LINE_AA)
    frame[:] = img
    spec = _font(rng, split)
    for i in range(rows):
        if rng.random() < 0.6:
            y = H * (0.06 + 0.045 * i) - H * 0.006
            word: str = pick(rng, KILL_FEED_WORDS)
            col = colour(rng, pick(rng, (RED, GOLD, WHITE)))
            draw_text(frame, rng, word, spec, H * float(rng.uniform(0.015, 0.03)), (W * 0.86, y), col,
                      TextStyle(), max_w=W * 0.1)
    if rng.random() < 0.8:  # the callout under the crosshair
        word = pick(rng, ("DEFEATED", "ELIMINATED", "YOU DEFEATED", "ASSIST", "SAVED", "DEFEATED BY"))
        text = f"{word} {random_name(rng)}"
        cy = H * float(rng.uniform(0.58, 0.7))
        col = colour(rng, pick(rng, (RED, WHITE, GOLD)))
        box = draw_text(frame, rng, text, spec, H * float(rng.uniform(0.025, 0.05)), (W * 0.5, cy), col,
                        random_style(rng), max_w=W * 0.4)
        if rng.random() < 0.5:
            draw_text(frame, rng, f"+{int(rng.integers(1, 30)) * 25}", spec, H * 0.025,
                      (W * 0.5, box.y1 + H * 0.03), colour(rng, WHITE), max_w=W * 0.1)
    return "kill_feed"


def draw_kill_callout(frame: F32, rng: Rng, split: Split) -> str:
    """Kill-streak and medal callouts (DOUBLE KILL, ON FIRE...) mid-screen, medium size."""
    H, W = frame.shape[:2]
    text: str = pick(rng, ("DOUBLE KILL", "TRIPLE KILL", "QUADRUPLE KILL", "TEAM KILL", "ON FIRE", "SHUTDOWN",
                           "DEFEATED", "ELIMINATED", "BLOCKED", "MVP"))
    box = draw_text(frame, rng, text, _font(rng, split), H * float(rng.uniform(0.035, 0.08)),
                    (W * float(rng.uniform(0.45, 0.55)), H * float(rng.uniform(0.25, 0.66))),
                    colour(rng, pick(rng, BANNER_STYLE_COLOURS)), random_style(rng), max_w=W * 0.4)
    if rng.random() < 0.5:
        draw_streak(frame, rng, (box.y0 + box.y1) / 2, float(rng.uniform(0.1, 0.5)))
    return "kill_callout"


def _ui_backdrop(frame: F32, rng: Rng, dim: tuple[float, float]) -> None:
    """Menus and career screens: the scene blurred and dimmed behind the UI, tinted blue."""
    H = frame.shape[0]
    blurred = f32(cv2.GaussianBlur(frame, (0, 0), max(1.0, H * float(rng.uniform(0.005, 0.02)))))
    tint = np.array([float(rng.uniform(40, 90)), float(rng.uniform(20, 50)), float(rng.uniform(5, 30))], np.float32)
    k = float(rng.uniform(*dim))
    frame[:] = blurred * k + tint * (1 - k)


def draw_career(frame: F32, rng: Rng, split: Split) -> str:
    """The career match-history screen: rows of past matches, each with VICTORY / DEFEAT / DRAW at medium size."""
    H, W = frame.shape[:2]
    _ui_backdrop(frame, rng, (0.2, 0.55))
    spec = _font(rng, split)
    draw_text(frame, rng, pick(rng, ("CAREER PROFILE", "MATCH HISTORY", "HISTORY", "GAME REPORTS")), spec,
              H * 0.045, (W * float(rng.uniform(0.15, 0.3)), H * 0.08), colour(rng, WHITE), max_w=W * 0.35)
    n = int(rng.integers(4, 9))
    top, bottom = H * float(rng.uniform(0.14, 0.22)), H * float(rng.uniform(0.86, 0.95))
    row_h = (bottom - top) / n
    word_x = W * float(rng.uniform(0.4, 0.7))
    ja = rng.random() < 0.2
    thumb_w = int(W * 0.12)
    for i in range(n):
        y0 = top + i * row_h
        base = frame[int(y0):int(y0 + row_h * 0.9), int(W * 0.06):int(W * 0.94)]
        base *= 0.5
        base += np.array([60.0, 35.0, 20.0], np.float32) * 0.5
        th = max(2, int(row_h * 0.8))
        thumb = (bg_daylight(rng, thumb_w, th) if rng.random() < 0.5 else bg_natural(rng, thumb_w, th, split))
        paste(frame, thumb.astype(np.float32), np.ones((th, thumb_w), np.float32), int(W * 0.07),
              int(y0 + row_h * 0.05))
        label = pick(rng, OUTCOMES)
        draw_text(frame, rng, OUTCOME_WORDS[label][1 if ja else 0], _font(rng, split, ja),
                  row_h * float(rng.uniform(0.3, 0.55)), (word_x, y0 + row_h * 0.45), outcome_colour(rng, label),
                  random_style(rng, thin=0.3), max_w=W * 0.15)
        small = to_u8(frame)
        cv2.putText(small, f"{random_name(rng)} - {random_name(rng, 4, 8)}", (int(W * 0.21), int(y0 + row_h * 0.45)),
                    hershey(split), H / 1200, (220, 220, 220), 1, cv2.LINE_AA)
        cv2.putText(small, f"{int(rng.integers(1, 28))}/{int(rng.integers(1, 12))}  {int(rng.integers(5, 25))}:"
                    f"{int(rng.integers(10, 60))}", (int(W * 0.78), int(y0 + row_h * 0.45)), hershey(split),
                    H / 1200, (200, 200, 200), 1, cv2.LINE_AA)
        frame[:] = small
    return "career"


def draw_potg(frame: F32, rng: Rng, split: Split) -> str:
    """The Play of the Game intro: a slanted orange/white band with the title, the player and hero name."""
    H, W = frame.shape[:2]
    cy = H * float(rng.uniform(0.35, 0.55))
    band = np.zeros((H, W), np.float32)
    slant = float(rng.uniform(-0.15, 0.15))
    pts = np.array([[0, cy - H * 0.08 + slant * H], [W, cy - H * 0.08 - slant * H],
                    [W, cy + H * 0.08 - slant * H], [0, cy + H * 0.08 + slant * H]], np.int32)
    cv2.fillPoly(band, [pts], 1.0)
    col = rgb2bgr(colour(rng, ((230, 255), (120, 170), (20, 60)))) if rng.random() < 0.6 else \
        rgb2bgr(colour(rng, WHITE))
    paste(frame, np.broadcast_to(col, (H, W, 3)).astype(np.float32), band * float(rng.uniform(0.3, 0.8)), 0, 0)
    ja = rng.random() < 0.2
    title = "プレイ・オブ・ザ・ゲーム" if ja else "PLAY OF THE GAME"
    box = draw_text(frame, rng, title, _font(rng, split, ja), H * float(rng.uniform(0.05, 0.11)), (W * 0.5, cy),
                    colour(rng, pick(rng, (WHITE, GOLD))), random_style(rng), max_w=W * 0.7)
    draw_text(frame, rng, random_name(rng, 4, 12), _font(rng, split), H * float(rng.uniform(0.03, 0.05)),
              (W * float(rng.uniform(0.4, 0.6)), box.y1 + H * 0.06), colour(rng, WHITE), max_w=W * 0.4)
    return "potg"


def draw_menu(frame: F32, rng: Rng, split: Split) -> str:
    """A menu: the scene blurred and dimmed, a column of items on the left, a title or panel mid-screen."""
    H, W = frame.shape[:2]
    _ui_backdrop(frame, rng, (0.35, 0.8))
    spec = _font(rng, split)
    x = W * float(rng.uniform(0.1, 0.22))
    n = int(rng.integers(4, 8))
    items = rng.permutation(len(MENU_ITEMS))[:n]
    for i, j in enumerate(items):
        hot = i == int(rng.integers(0, n))
        draw_text(frame, rng, MENU_ITEMS[int(j)], spec, H * float(rng.uniform(0.03, 0.05)),
                  (x, H * (0.3 + 0.075 * i)), colour(rng, GOLD if hot else WHITE), max_w=W * 0.25)
    if rng.random() < 0.6:  # a mode card or title mid-screen
        text = pick(rng, ("OVERWATCH", "COMPETITIVE", "QUICK PLAY", "SEASON 12", "FIND MATCH", "ARCADE"))
        draw_text(frame, rng, text, spec, H * float(rng.uniform(0.05, 0.12)),
                  (W * float(rng.uniform(0.45, 0.6)), H * float(rng.uniform(0.3, 0.55))),
                  colour(rng, pick(rng, (WHITE, GOLD, OTHER_COLOURS[1]))), random_style(rng), max_w=W * 0.45)
    return "menu"


def draw_ow1_end(frame: F32, rng: Rng, split: Split) -> str:
    """An Overwatch 1 end screen: a small VICTORY / DEFEAT / DRAW top-left, team cards below."""
    H, W = frame.shape[:2]
    label = pick(rng, OUTCOMES)
    ja = rng.random() < 0.2
    cap = H * float(rng.uniform(0.04, 0.08))
    box = draw_text(frame, rng, OUTCOME_WORDS[label][1 if ja else 0], _font(rng, split, ja), cap,
                    (W * float(rng.uniform(0.08, 0.16)), H * float(rng.uniform(0.07, 0.14))),
                    outcome_colour(rng, label), random_style(rng), max_w=W * 0.22)
    draw_text(frame, rng, random_name(rng, 5, 12), _font(rng, split), cap * 0.4,
              ((box.x0 + box.x1) / 2, box.y1 + cap * 0.5), colour(rng, WHITE), max_w=W * 0.2)
    if rng.random() < 0.6:  # team cards along the bottom
        for i in range(6):
            x0 = W * (0.1 + 0.135 * i)
            region = frame[int(H * 0.7):int(H * 0.92), int(x0):int(x0 + W * 0.12)]
            region *= 0.4
            region += np.array([90.0, 60.0, 30.0], np.float32) * 0.6
    return "ow1_end"


def draw_tab_scoreboard(frame: F32, rng: Rng, split: Split) -> str:
    """The post-match (or mid-match) Tab scoreboard over gameplay, no banner behind it."""
    draw_scoreboard(frame, rng, split, float(rng.uniform(0.55, 0.95)))
    return "scoreboard"


def draw_gameplay(frame: F32, rng: Rng, split: Split) -> str:
    return "gameplay"


def draw_end_screen(frame: F32, rng: Rng, split: Split) -> str:
    """The dark end screen with its score lines (``3 | 3``, ``FINAL SCORE``) but no outcome word.

    So that the gate keys on the word, not on the screen it is shown on.
    """
    H, W = frame.shape[:2]
    frame[:] = bg_end_screen(rng, W, H)
    cap = H * float(rng.uniform(0.095, 0.15))
    cx, y1 = W * float(rng.uniform(0.485, 0.535)), H * float(rng.uniform(0.44, 0.5))
    box = Placed(int(cx - W * 0.1), int(y1 - cap), int(cx + W * 0.1), int(y1))
    draw_final_score(frame, rng, split, str(pick(rng, OUTCOMES)), box, cap, 1.0, random_style(rng))
    if rng.random() < 0.3:  # another end-screen line where the word would be
        draw_text(frame, rng, str(pick(rng, ("MATCH COMPLETE", "FINAL ROUND", "COMPETITIVE", "ROUND 3"))),
                  _font(rng, split), cap * float(rng.uniform(0.4, 0.8)), (cx, y1 - cap / 2),
                  colour(rng, pick(rng, BANNER_STYLE_COLOURS)), random_style(rng), max_w=W * 0.35)
    return "end_screen"


NegativeDrawer = Callable[[F32, Rng, Split], str]

# kind -> (drawer, share of the none frames)
NEGATIVE_KINDS: dict[str, tuple[NegativeDrawer, float]] = {
    "gameplay": (draw_gameplay, 0.17),
    "other_text": (draw_other_text, 0.2),
    "kill_feed": (draw_killfeed, 0.07),
    "kill_callout": (draw_kill_callout, 0.05),
    "colours": (draw_colours, 0.07),
    "word_elsewhere": (draw_word_elsewhere, 0.06),
    "cut_banner": (draw_cut_banner, 0.05),
    "scoreboard": (draw_tab_scoreboard, 0.09),
    "career": (draw_career, 0.08),
    "potg": (draw_potg, 0.05),
    "menu": (draw_menu, 0.05),
    "ow1_end": (draw_ow1_end, 0.06),
    "end_screen": (draw_end_screen, 0.05),
}


def negative_kind(rng: Rng) -> str:
    kinds = list(NEGATIVE_KINDS)
    p = np.array([NEGATIVE_KINDS[k][1] for k in kinds], np.float64)
    return kinds[int(rng.choice(len(kinds), p=p / p.sum()))]


def draw_negative(frame: F32, rng: Rng, split: Split, kind: str | None = None) -> str:
    """Draw a hard negative (or nothing) on ``frame``; returns its kind."""
    kind = kind or negative_kind(rng)
    return NEGATIVE_KINDS[kind][0](frame, rng, split)
