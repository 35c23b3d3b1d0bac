"""``owc bench capture``: what one screenshot costs OBS, PNG 1920×1080 vs the defaults.

Measures ``GetSourceScreenshot`` round trips (the time OBS spends rendering,
scaling and encoding, plus a local websocket hop) and the bytes received,
for a few configurations, against a real OBS: a running one (``--obs-host``)
or a headless OBS started for the occasion (Xvfb, software OpenGL, a
1920×1080 scene showing a game-like picture or ``--media``).
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from services.common.config.settings import Settings
from services.common.infra.ports import free_port
from tools.bench.report import cpu_model

TARGET_RATIO = 50.0


@dataclass(frozen=True)
class Config:
    label: str
    fmt: str
    width: int
    height: int
    quality: int


@dataclass
class Result:
    config: Config
    rtts_s: list[float]
    sizes: list[int]

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.rtts_s) * 1000

    @property
    def p95_ms(self) -> float:
        ordered = sorted(self.rtts_s)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] * 1000

    @property
    def mean_bytes(self) -> float:
        return statistics.fmean(self.sizes)


def game_like_picture(path: Path, width: int = 1920, height: int = 1080) -> Path:
    """A busy 1080p picture (gradients, shapes, text, sensor-like noise): PNG-hostile like a game frame."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(7)
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    image = np.empty((height, width, 3), np.float32)
    image[..., 0] = 60 + 120 * x * y
    image[..., 1] = 40 + 150 * (1 - y)
    image[..., 2] = 90 + 100 * np.sin(6 * x + 3 * y) ** 2
    for _ in range(120):
        cx, cy = int(rng.integers(0, width)), int(rng.integers(0, height))
        color = tuple(float(c) for c in rng.integers(0, 255, 3))
        cv2.circle(image, (cx, cy), int(rng.integers(10, 160)), color, -1)
    image += rng.normal(0, 6, image.shape).astype(np.float32)
    picture = np.clip(image, 0, 255).astype(np.uint8)
    cv2.putText(picture, "VICTORY!", (width // 4, height // 2), cv2.FONT_HERSHEY_DUPLEX, 7, (255, 230, 120), 18)
    cv2.imwrite(str(path), picture)
    return path


def _progress(label: str, done: int, total: int) -> None:
    if sys.stderr.isatty():
        print(f"\r  {label:<28} {done:>3}/{total}", end="", file=sys.stderr, flush=True)
    elif done == total:
        print(f"  {label:<28} {done:>3}/{total} done", file=sys.stderr, flush=True)


def measure(client: object, source: str, config: Config, requests: int, warmup: int = 2) -> Result:
    from services.capture.obs_source import decode_image_data
    from services.capture.obsclient import ObsRequestClient

    assert isinstance(client, ObsRequestClient)
    data = {
        "sourceName": source,
        "imageFormat": config.fmt,
        "imageWidth": config.width,
        "imageHeight": config.height,
        "imageCompressionQuality": config.quality,
    }
    rtts: list[float] = []
    sizes: list[int] = []
    for i in range(warmup + requests):
        started = time.perf_counter()
        response = client.request("GetSourceScreenshot", data)
        elapsed = time.perf_counter() - started
        image = decode_image_data(response.get("imageData"))
        if i >= warmup:
            rtts.append(elapsed)
            sizes.append(len(image))
            _progress(config.label, len(rtts), requests)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    return Result(config, rtts, sizes)


def bench_capture(
    settings: Settings, *, start_obs: bool, requests: int, media: str | None, warmup: int = 2
) -> int:
    from services.capture.obsclient import ObsError, ObsRequestClient

    cap = settings.capture
    configs = [
        Config("PNG 1920x1080", "png", 1920, 1080, -1),
        Config("JPEG 1920x1080 q90", "jpg", 1920, 1080, 90),
        Config("JPEG 960x540 q80", "jpg", 960, 540, 80),
        Config(
            f"defaults: {cap.image_format.upper()} {cap.width}x{cap.height} q{cap.quality}",
            cap.image_format,
            cap.width,
            cap.height,
            cap.quality,
        ),
    ]
    host, port = settings.obs.host, settings.obs.port
    password = settings.obs.password.get_secret_value() if settings.obs.password else ""
    source = settings.obs.source
    with tempfile.TemporaryDirectory(prefix="owc-bench-obs-") as tmp:
        instance = None
        if start_obs:
            from tools.headless_obs import SCENE, ObsInstance, ObsStartError, obs_available

            if not obs_available():
                print(
                    "owc: cannot start OBS: obs-studio or Xvfb is not installed "
                    "(apt-get install obs-studio xvfb libgl1-mesa-dri); or pass --obs-host",
                    file=sys.stderr,
                )
                return 1
            picture = Path(media) if media else game_like_picture(Path(tmp) / "game.png")
            host, port, password = "127.0.0.1", free_port(), "bench"
            instance = ObsInstance(Path(tmp), port, password, picture)
            print(f"starting a headless OBS (Xvfb, software OpenGL, 1920x1080) showing {picture} ...",
                  file=sys.stderr)
            try:
                instance.start(timeout=90)
            except ObsStartError as exc:
                print(f"owc: {exc}", file=sys.stderr)
                instance.close()
                return 1
            source = source or SCENE
        try:
            try:
                client = ObsRequestClient(host, port, password, max(settings.obs.timeout_s, 30.0))
            except ObsError as exc:
                print(f"owc: cannot connect to OBS at ws://{host}:{port}: {exc}", file=sys.stderr)
                return 1
            try:
                version = client.request("GetVersion")
                if not source:
                    source = str(client.request("GetCurrentProgramScene").get("currentProgramSceneName", ""))
                print(
                    f"machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; "
                    f"OBS {version.get('obsVersion')} (obs-websocket {version.get('obsWebSocketVersion')})"
                    f"{' headless, software rendering' if instance else ''}; source {source!r}; "
                    f"{requests} requests per configuration after {warmup} warm-ups",
                )
                results = [measure(client, source, c, requests, warmup) for c in configs]
            except ObsError as exc:
                print(f"owc: OBS failed during the bench: {exc}", file=sys.stderr)
                return 1
            finally:
                client.disconnect()
        finally:
            if instance is not None:
                instance.close()
    png, default = results[0], results[-1]
    print()
    print(f"{'configuration':<30} {'p50 ms':>9} {'p95 ms':>9} {'bytes':>11} {'time ratio':>11} {'bytes ratio':>12}")
    for r in results:
        print(
            f"{r.config.label:<30} {r.p50_ms:>9.1f} {r.p95_ms:>9.1f} {r.mean_bytes:>11,.0f} "
            f"{png.p50_ms / r.p50_ms:>10.1f}x {png.mean_bytes / r.mean_bytes:>11.1f}x"
        )
    ratio = png.p50_ms / default.p50_ms
    verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
    print()
    print(
        f"defaults cost 1/{ratio:.0f} of a PNG 1920x1080 screenshot in OBS time (p50 {default.p50_ms:.1f} ms vs "
        f"{png.p50_ms:.0f} ms) and 1/{png.mean_bytes / default.mean_bytes:.0f} of its bytes: "
        f"{verdict} the target (<= 1/{TARGET_RATIO:.0f})"
    )
    return 0
