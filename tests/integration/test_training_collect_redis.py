"""`owc collect --from-redis` against a real redis-server: the detection frames the stack kept become samples."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import redis

from services.cli import main as owc
from services.common.keys import Keys
from services.common.settings import Settings
from training import demo_clip


def test_collect_from_redis_detframes(
    redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_factory()
    frames = demo_clip.render_frames()
    banner = frames[demo_clip.BANNER_START + 8]
    redis_client.set(keys.detframe("default", 41), banner)
    redis_client.set(keys.detframe("default", 42), banner)
    redis_client.set(keys.detframe("other", 7), frames[0])  # another channel: not collected
    out = tmp_path / "samples"
    argv = ["collect", "--from-redis", "--channel", "default", "--out", str(out),
            "--set", f"redis.url={settings.redis.url}", "--set", f"redis.prefix={keys.prefix}"]
    assert owc(argv) == 0
    names = sorted(p.name for p in out.rglob("*.jpg"))
    assert names == ["redis-default-41.jpg", "redis-default-42.jpg"]
    assert sorted(p.parent.name for p in out.rglob("*.jpg")) == ["victory", "victory"]
    assert (out / "victory" / "redis-default-41.jpg").read_bytes() == banner
