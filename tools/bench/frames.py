"""The inference benches' frames: game-like JPEGs, and the demo clip's gameplay and banner frames."""

from __future__ import annotations

import numpy as np

WIDTH, HEIGHT, QUALITY = 640, 360, 80
DISTINCT_FRAMES = 48


def make_frames(n: int = DISTINCT_FRAMES, seed: int = 7) -> list[bytes]:
    """Game-like 640×360 JPEGs (q80): gradients, shapes, text, a HUD, sensor-like noise."""
    import cv2

    rng = np.random.default_rng(seed)
    out: list[bytes] = []
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    for i in range(n):
        base = rng.uniform(20, 200, 3).astype(np.float32)
        slope = rng.uniform(-0.25, 0.25, (2, 3)).astype(np.float32)
        img = base + xx[..., None] * slope[0] + yy[..., None] * slope[1]
        img = np.clip(img, 0, 255).astype(np.uint8)
        for _ in range(int(rng.integers(15, 40))):
            color = tuple(int(c) for c in rng.integers(0, 256, 3))
            p1 = (int(rng.integers(0, WIDTH)), int(rng.integers(0, HEIGHT)))
            p2 = (int(rng.integers(0, WIDTH)), int(rng.integers(0, HEIGHT)))
            if rng.random() < 0.5:
                cv2.rectangle(img, p1, p2, color, -1)
            else:
                cv2.circle(img, p1, int(rng.integers(5, 80)), color, -1)
        img = cv2.GaussianBlur(img, (5, 5), 0)
        if i == 0:  # one outcome frame in DISTINCT_FRAMES (~2%), like a live feed: rare
            cv2.putText(img, "VICTORY!", (230, 170), cv2.FONT_HERSHEY_TRIPLEX, 1.6, (40, 190, 230), 3)
        cv2.rectangle(img, (20, 300), (180, 340), (240, 240, 240), 2)  # HUD-like box
        cv2.putText(img, f"{100 + i} | 200", (30, 330), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
        noise = rng.integers(-10, 11, img.shape, dtype=np.int16)
        img = np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
        assert ok
        out.append(buf.tobytes())
    return out


def bench_frames() -> tuple[list[tuple[bytes, int, int]], list[tuple[bytes, int, int]]]:
    """Gameplay: the bench's frames and the demo clip's gameplay; banners: the demo clip's banner."""
    from training import demo_clip

    clip = demo_clip.render_frames()
    size = (demo_clip.WIDTH, demo_clip.HEIGHT)
    gameplay = [(d, WIDTH, HEIGHT) for d in make_frames()[1:]]
    gameplay += [(d, *size) for i, d in enumerate(clip) if demo_clip.frame_label(i) == "none"]
    banners = [(d, *size) for i, d in enumerate(clip)
               if i >= demo_clip.BANNER_START + demo_clip.ENTRY_FRAMES and demo_clip.frame_label(i) != "none"]
    return gameplay, banners
