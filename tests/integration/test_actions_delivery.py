"""Deliveries that one receiver cannot hold: a bounded answer, a total deadline per try, one lane per action.

Each is a reproduction of an attack on the service (real local receivers on 127.0.0.1, a real IRC
server): a 200 with an endless body, an answer trickled one byte at a time, and a slow webhook that
used to hold back chat and every later event with it.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from services.actions.chat import ChatAction, ChatBot
from services.actions.delivery import Action
from services.actions.webhooks import WebhookAction
from services.common.config.settings import Settings
from services.common.contracts.keys import Keys
from tests.support.actions import add_event, pending, start_worker
from tests.support.gateway import ServiceProcess
from tests.support.irc import NGIRCD, IrcServer, IrcUser
from tests.support.redis_proc import RedisServer
from tests.support.waiting import wait_until
from tests.support.webhook_receiver import Receiver

CHANNEL = "#streamer"
BOT = "owcbot"


@pytest.fixture
def fast() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.mark.slow
def test_a_200_with_a_huge_body_is_cut_after_a_small_answer_and_memory_stays_bounded(
    tmp_path: Path, redis_server: RedisServer, redis_client: redis.Redis, prefix: str, keys: Keys,
    receiver: Receiver,
) -> None:
    """The attack: 200 with a 1.5 GB body took the service from 112 MB to 2.98 GB. Here 600 MB (enough to
    tell, cheap to send): the service reads at most a small answer, hangs up, records the delivery."""
    receiver.body_bytes = 600 * 1024 * 1024
    hooks = json.dumps([{"url": receiver.url, "name": "hook", "timeout_s": 30}])
    proc = ServiceProcess(tmp_path / "actions", "actions", {
        "redis.url": redis_server.url, "redis.prefix": prefix, "actions.metrics_port": 0,
    }, "--set", f"actions.webhooks={hooks}").start()
    try:
        wait_until(lambda: redis_client.exists(keys.actions_since), timeout=30, message="owc actions started")
        redis_client.sadd(keys.channels, "default")
        eid = add_event(redis_client, keys, "default", "detected", "victory", 1, (1, 0, 0), source="auto")
        wait_until(lambda: redis_client.hexists(keys.action_done("hook"), f"default/{eid}"), timeout=60,
                   message="the delivery recorded")
        assert proc.proc is not None
        peak = peak_rss_mb(proc.proc.pid)
    finally:
        proc.stop()
    print(f"receiver wrote {receiver.body_sent / 2**20:.1f} MB of its body; peak RSS of owc actions {peak:.0f} MB")
    # what left the receiver: the bound, plus what the kernel's socket buffers took before the hang-up
    assert receiver.body_sent < 32 * 1024 * 1024, receiver.body_sent
    assert peak < 300, f"peak RSS {peak:.0f} MB"  # about 110 MB at rest; reading the body would be > 600 MB
    record = json.loads(redis_client.hget(keys.action_done("hook"), f"default/{eid}") or b"{}")
    assert record["status"] == "ok" and record["result"] == "HTTP 200 (answer cut after 64 KiB)", record
    assert len(receiver.snapshot()) == 1  # answered 200: not retried


def test_a_trickled_answer_meets_a_total_deadline_and_holds_back_neither_chat_nor_the_next_event(
    tmp_path: Path, redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings],
    receiver: Receiver, fast: Receiver,
) -> None:
    """The attack: one byte every 2 s held a delivery with timeout_s = 3 for 40 s, and chat and every event
    behind it waited. Here one byte every 0.4 s against timeout_s = 1: each try ends at its deadline, the
    event goes the normal retry / dead-letter way, and the other webhook and chat get every event at once."""
    if not Path(NGIRCD).exists():
        pytest.skip("ngircd is missing: `make setup-dev` installs it")
    receiver.trickle_s = 0.4  # each network read gets a byte well within 1 s: only a total deadline ends it
    server = IrcServer(tmp_path / "irc", password="oauth:tok").start()
    settings = settings_factory(
        actions__webhooks=[{"url": receiver.url, "name": "slow", "timeout_s": 1},
                           {"url": fast.url, "name": "fast", "timeout_s": 1}],
        actions__max_attempts=2, actions__retry_initial_s=0.1, actions__retry_max_s=0.1,
        actions__chat__enabled=True, actions__chat__server="127.0.0.1", actions__chat__port=server.port,
        actions__chat__tls=False, actions__chat__nick=BOT, actions__chat__token="tok",
        actions__chat__twitch_channel="streamer", actions__chat__reconnect_max_s=1,
    )
    stop = threading.Event()
    bot = ChatBot(settings.actions.chat, redis_client, keys)
    bot.start(stop)
    viewer = IrcUser(server.port, "viewer", server.password)
    actions: list[Action] = [WebhookAction(w) for w in settings.actions.webhooks]
    actions.append(ChatAction(bot))
    w = start_worker(redis_client, keys, settings, actions, stop=stop)
    try:
        viewer.join(CHANNEL)
        wait_until(lambda: bot.joined, timeout=20, message="the bot in the channel")
        first = add_event(redis_client, keys, "default", "detected", "victory", 1, (1, 0, 0), source="auto")
        second = add_event(redis_client, keys, "default", "detected", "defeat", 1, (1, 1, 0), source="auto")
        # the slow one: two tries per event, each cut at its 1 s deadline, then its dead letter
        wait_until(lambda: redis_client.llen(keys.action_dlq("slow")) == 2 and pending(redis_client, keys) == 0,
                   timeout=20, message="both events in the slow webhook's dead letters")
        wait_until(lambda: len(viewer.messages_from(BOT, CHANNEL)) == 2, message="both chat lines")
        letters = [json.loads(raw) for raw in redis_client.lrange(keys.action_dlq("slow"), 0, -1)]
        chat_times = [at for at, _ in viewer.timed_messages_from(BOT, CHANNEL)]
    finally:
        w.close()
        stop.set()
        bot.join(10)
        viewer.close()
        server.stop()
        for action in actions:
            getattr(action, "close", lambda: None)()
    assert [r.key for r in fast.snapshot()] == [f"default/{first}", f"default/{second}"]
    assert viewer.messages_from(BOT, CHANNEL) == ["VICTORY! today 1W 0L 0D, 100%", "DEFEAT. today 1W 1L 0D, 50%"]
    assert {letter["id"] for letter in letters} == {first, second}
    assert all("no complete answer within 1 s" in letter["error"] for letter in letters), letters
    tries = receiver.snapshot()
    assert [r.key for r in tries] == [f"default/{first}"] * 2 + [f"default/{second}"] * 2
    # a try starts at most its deadline plus the backoff (and some scheduling) after the one before
    gaps = [b.at - a.at for a, b in itertools.pairwise(tries)]
    assert all(0.9 < gap < 3.0 for gap in gaps), gaps
    # chat and the other webhook had the second event before the slow one even started on it
    assert fast.snapshot()[1].wall < tries[2].wall and chat_times[1] < tries[2].wall


def test_each_action_has_its_own_lane_a_held_webhook_does_not_hold_the_other(
    redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings], receiver: Receiver,
    fast: Receiver,
) -> None:
    """A delivery in flight on one lane (held by its receiver) while the other action goes through three
    events; once released, the held lane catches up in order, each event once."""
    settings = settings_factory(
        actions__webhooks=[{"url": receiver.url, "name": "held", "timeout_s": 30},
                           {"url": fast.url, "name": "fast"}],
        actions__retry_initial_s=0.05, actions__retry_max_s=0.2,
    )
    actions = [WebhookAction(h) for h in settings.actions.webhooks]
    receiver.hold()
    w = start_worker(redis_client, keys, settings, actions)
    try:
        ids = [add_event(redis_client, keys, "default", "detected", "victory", 1, (n, 0, 0), source="auto")
               for n in (1, 2, 3)]
        assert receiver.wait_held(10)
        wait_until(lambda: len(fast.snapshot()) == 3, timeout=10, message="the other lane goes on")
        assert len(receiver.snapshot()) == 1 and pending(redis_client, keys) > 0
        started = time.monotonic()
        receiver.release()
        wait_until(lambda: len(receiver.snapshot()) == 3 and pending(redis_client, keys) == 0, timeout=10,
                   message="the held lane caught up")
        assert time.monotonic() - started < 10
    finally:
        w.close()
        for a in actions:
            a.close()
    expected = [f"default/{i}" for i in ids]
    assert [r.key for r in fast.snapshot()] == expected
    assert [r.key for r in receiver.snapshot()] == expected
