"""A streamer's own overlays over the game (program-scene captures): webcam, chat, counters, alerts, bars.

Many users capture the program scene, so the detector sees what the streamer
put over the game: a webcam box (often at the right edge, with its own W/L/D
counter under it), chat lines at the left, a player/info bar at the bottom,
follower/subscriber alerts. The same overlays go on banner and ``none``
frames alike (the gate must learn to ignore them, not to key on them).
"""

from __future__ import annotations

import cv2
import numpy as np

from training.synth.base import F32, Rng, fill_rect, paste, pick, rand_colour, to_u8
from training.synth.scenes import bg_natural, bg_noise, hershey, random_name
from training.synth.splits import Split

COUNTER_FORMATS = ("W {w}  L {l}  D {d}", "W:{w} L:{l} D:{d}", "{w}W - {l}L - {d}D", "WINS {w} | LOSSES {l}",
                   "W {w} / L {l} / D {d}", "TODAY {w}-{l}-{d}", "WIN STREAK {w}")
ALERTS = ("NEW FOLLOWER!", "{name} just followed!", "{name} subscribed for {n} months!", "{name} cheered {n}00 bits",
          "RAID! {name} x{n}", "THANK YOU {name}!", "HYPE TRAIN LEVEL {n}")
CHAT_WORDS = ("gg", "lol", "nice", "ez", "KEKW", "no way", "clip it", "LETS GO", "hi chat", "what rank",
              "that ult", "pog", "rip", "omg", "defend point", "heal me", "gl", "W", "L", "draw?")


def _text(img: np.ndarray, text: str, x: int, y: int, split: Split, scale: float, col: tuple[int, int, int],
          thick: int) -> None:
    cv2.putText(img, text, (x, y), hershey(split), scale, col, thick, cv2.LINE_AA)


def draw_webcam(frame: F32, rng: Rng, split: Split) -> None:
    """A webcam box, most often at the right edge (x 0.77-1.0, y 0.43-0.70 in the real capture), with a counter."""
    H, W = frame.shape[:2]
    if rng.random() < 0.7:
        x0, x1 = W * float(rng.uniform(0.72, 0.82)), W * float(rng.uniform(0.97, 1.0))
        y0 = H * float(rng.uniform(0.3, 0.55))
    else:  # another corner
        x0 = W * float(pick(rng, (rng.uniform(0.0, 0.03), rng.uniform(0.72, 0.8))))
        x1 = x0 + W * float(rng.uniform(0.18, 0.26))
        y0 = H * float(pick(rng, (rng.uniform(0.0, 0.05), rng.uniform(0.6, 0.75))))
    y1 = min(H * 0.98, y0 + (x1 - x0) * 9 / 16 * float(rng.uniform(0.9, 1.3)))
    bw, bh = max(4, int(x1 - x0)), max(4, int(y1 - y0))
    cam = (bg_natural(rng, bw, bh, split) if rng.random() < 0.7 else bg_noise(rng, bw, bh)).astype(np.float32)
    paste(frame, cam, np.ones((bh, bw), np.float32), int(x0), int(y0))
    img = to_u8(frame)
    border = rand_colour(rng, 60, 256)
    cv2.rectangle(img, (int(x0), int(y0)), (int(x0) + bw, int(y0) + bh), border, max(1, H // 240))
    if rng.random() < 0.8:  # the streamer's own W/L/D counter under (or over) the webcam
        fmt = pick(rng, COUNTER_FORMATS)
        text = fmt.format(w=int(rng.integers(0, 12)), l=int(rng.integers(0, 12)), d=int(rng.integers(0, 4)))
        ty = int(y0 + bh + H * 0.045) if y0 + bh + H * 0.06 < H else int(y0 - H * 0.015)
        cv2.rectangle(img, (int(x0), ty - int(H * 0.04)), (int(x0) + bw, ty + int(H * 0.012)),
                      rand_colour(rng, 0, 60), -1)
        _text(img, text, int(x0 + W * 0.01), ty, split, H / 700 * float(rng.uniform(0.7, 1.1)),
              rand_colour(rng, 160, 256), max(1, H // 360))
    frame[:] = img


def draw_chat(frame: F32, rng: Rng, split: Split) -> None:
    """Chat lines at the left edge, sometimes on a translucent dark panel."""
    H, W = frame.shape[:2]
    x0 = W * float(rng.uniform(0.0, 0.02))
    x1 = W * float(rng.uniform(0.2, 0.3))
    y0, y1 = H * float(rng.uniform(0.25, 0.5)), H * float(rng.uniform(0.75, 0.95))
    if rng.random() < 0.6:
        fill_rect(frame, x0, y0, x1, y1, (20.0, 18.0, 16.0), float(rng.uniform(0.3, 0.7)))
    img = to_u8(frame)
    scale = H / 1000 * float(rng.uniform(0.8, 1.2))
    step = max(8, int(H * 0.035))
    for y in range(int(y0 + step), int(y1), step):
        name = random_name(rng, 3, 9).lower()
        msg = " ".join(pick(rng, CHAT_WORDS) for _ in range(int(rng.integers(1, 4))))
        _text(img, f"{name}: {msg}", int(x0 + W * 0.005), y, split, scale, rand_colour(rng, 120, 256),
              max(1, H // 720))
    frame[:] = img


def draw_bar(frame: F32, rng: Rng, split: Split) -> None:
    """A player/info bar across the bottom (or top): name, socials, a goal."""
    H, W = frame.shape[:2]
    top = rng.random() < 0.25
    h = H * float(rng.uniform(0.04, 0.09))
    y0 = 0.0 if top else H - h
    c = rand_colour(rng, 0, 90)
    fill_rect(frame, 0, y0, W, y0 + h, (float(c[0]), float(c[1]), float(c[2])), float(rng.uniform(0.7, 1.0)))
    img = to_u8(frame)
    parts = [random_name(rng, 4, 10), f"@{random_name(rng, 4, 8).lower()}", f"GOAL {rng.integers(1, 99)}/100"]
    x = int(W * 0.02)
    for part in parts[: int(rng.integers(1, 4))]:
        _text(img, part, x, int(y0 + h * 0.7), split, H / 800, rand_colour(rng, 170, 256), max(1, H // 360))
        x += int(W * float(rng.uniform(0.2, 0.3)))
    frame[:] = img


def draw_alert(frame: F32, rng: Rng, split: Split) -> None:
    """A follower/subscriber alert: a coloured box with text, above or below the banner's place."""
    H, W = frame.shape[:2]
    name = random_name(rng, 4, 10)
    text = pick(rng, ALERTS).format(name=name, n=int(rng.integers(2, 20)))
    bw = W * float(rng.uniform(0.25, 0.45))
    bh = H * float(rng.uniform(0.06, 0.1))
    cx = W * float(rng.uniform(0.3, 0.7))
    cy = H * float(pick(rng, (rng.uniform(0.08, 0.22), rng.uniform(0.7, 0.85))))
    c = rand_colour(rng, 30, 230)
    fill_rect(frame, cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2, (float(c[0]), float(c[1]), float(c[2])),
              float(rng.uniform(0.75, 1.0)))
    img = to_u8(frame)
    _text(img, text, int(cx - bw / 2 + W * 0.01), int(cy + bh * 0.2), split, H / 650, rand_colour(rng, 200, 256),
          max(1, H // 300))
    frame[:] = img


def draw_stream_overlays(frame: F32, rng: Rng, split: Split) -> list[str]:
    """Some of the overlays (at least one); returns which."""
    drawn: list[str] = []
    for name, drawer, p in (("webcam", draw_webcam, 0.7), ("chat", draw_chat, 0.5), ("bar", draw_bar, 0.5),
                            ("alert", draw_alert, 0.25)):
        if rng.random() < p:
            drawer(frame, rng, split)
            drawn.append(name)
    if not drawn:
        draw_webcam(frame, rng, split)
        drawn.append("webcam")
    return drawn
