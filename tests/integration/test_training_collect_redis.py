"""`owc collect --from-redis` against a real redis-server: the detection frames the stack kept become samples."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import redis

from services.cli import main as owc
from services.common.config.settings import Settings
from services.common.contracts.keys import Keys
from services.common.contracts.messages import Counts, Event
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


def test_collect_labels_frames_from_the_event_log(
    redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    """A detection the streamer undid is a `none` sample; a near miss counted by hand keeps its outcome."""
    settings = settings_factory()
    banner = demo_clip.render_frames()[demo_clip.BANNER_START + 8]  # the detector calls it a victory
    for seq in (41, 42, 43):
        redis_client.set(keys.detframe("default", seq), banner)
    log = keys.events("default")

    def add(**kw: object) -> str:
        ev = Event(counts=Counts(1, 0, 0), session="s1", ts=1, **kw)  # type: ignore[arg-type]
        return redis_client.xadd(log, ev.to_fields()).decode()  # type: ignore[arg-type, union-attr]

    add(type="detected", source="auto", outcome="victory", delta=1, frame_seq=41)
    false_positive = add(type="detected", source="auto", outcome="victory", delta=1, frame_seq=42)
    add(type="undone", source="manual", outcome="victory", delta=-1, undoes=false_positive)
    add(type="adjusted", source="manual", outcome="defeat", delta=1, frame_seq=43)
    out = tmp_path / "samples"
    argv = ["collect", "--from-redis", "--channel", "default", "--out", str(out),
            "--set", f"redis.url={settings.redis.url}", "--set", f"redis.prefix={keys.prefix}"]
    assert owc(argv) == 0
    got = {p.name: p.parent.name for p in out.rglob("*.jpg")}
    assert got == {"redis-default-41.jpg": "victory", "redis-default-42.jpg": "none", "redis-default-43.jpg": "defeat"}
