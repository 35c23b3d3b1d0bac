"""Webhooks against a real local HTTP receiver: one effect per event, retries, dead letters, kill -9."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from services.actions.delivery import queue_retries
from services.actions.formatting import SIGNATURE_HEADER, verify
from services.actions.webhooks import WebhookAction
from services.actions.worker import caught_up
from services.cli import main as owc_main
from services.common.config.settings import Settings
from services.common.contracts.keys import Keys
from services.common.contracts.messages import Command, Reply, StateSnapshot
from tests.support.actions import add_event, pending, start_worker
from tests.support.gateway import ServiceProcess, start_state
from tests.support.redis_proc import RedisServer
from tests.support.waiting import wait_until
from tests.support.webhook_receiver import Receiver


def hook_settings(settings_factory: Callable[..., Settings], receiver: Receiver, **hook: Any) -> Settings:
    flat = {k: v for k, v in hook.items() if k.startswith("actions__")}
    hook = {k: v for k, v in hook.items() if not k.startswith("actions__")}
    return settings_factory(
        actions__webhooks=[{"url": receiver.url, "name": "hook", **hook}],
        actions__retry_initial_s=0.05, actions__retry_max_s=0.2, **flat,
    )


def test_each_event_is_posted_once_with_its_key_and_a_valid_signature(
    redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings], receiver: Receiver
) -> None:
    settings = hook_settings(settings_factory, receiver, secret="s3cret")
    before = add_event(redis_client, keys, "default", "adjusted", "victory", 1, (1, 0, 0))  # history: never sent
    w = start_worker(redis_client, keys, settings, [WebhookAction(settings.actions.webhooks[0])])
    try:
        ids = [
            add_event(redis_client, keys, "default", "detected", "victory", 1, (2, 0, 0), source="auto"),
            add_event(redis_client, keys, "default", "undone", "victory", -1, (1, 0, 0)),
            add_event(redis_client, keys, "default", "adjusted", "defeat", 1, (1, 1, 0)),
        ]
        wait_until(lambda: len(receiver.snapshot()) >= 3 and pending(redis_client, keys) == 0,
                   message="three deliveries, all acked")
    finally:
        w.close()
    got = receiver.snapshot()
    assert [r.json["event"]["id"] for r in got] == ids
    assert before not in receiver.unique_keys()
    assert [r.key for r in got] == [f"default/{i}" for i in ids]
    for r in got:
        assert verify("s3cret", r.body, r.headers[SIGNATURE_HEADER.lower()])
        assert r.headers["content-type"] == "application/json"
    assert got[1].json["text"] == "correction: that was not a victory. today 1W 0L 0D, 100%"
    status = json.loads(redis_client.hget(keys.action_status, "hook") or b"{}")
    assert status["status"] == "ok" and status["event"] == ids[-1]


def test_only_the_chosen_events_and_channels(
    redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings], receiver: Receiver
) -> None:
    settings = hook_settings(settings_factory, receiver, events=["detected"], channels=["main"], preset="discord")
    w = start_worker(redis_client, keys, settings, [WebhookAction(settings.actions.webhooks[0])],
                     channels=("main", "alt"))
    try:
        add_event(redis_client, keys, "main", "adjusted", "victory", 1, (1, 0, 0))
        add_event(redis_client, keys, "alt", "detected", "victory", 1, (1, 0, 0), source="auto")
        wanted = add_event(redis_client, keys, "main", "detected", "defeat", 1, (1, 1, 0), source="auto")
        wait_until(lambda: pending(redis_client, keys, "main") == 0 and pending(redis_client, keys, "alt") == 0
                   and receiver.snapshot(), message="the events handled")
        # handled in log order per channel: once the wanted one was posted the others were decided too
        wait_until(lambda: w.worker.processed >= 3, message="all three events read")
    finally:
        w.close()
    assert [(r.key, r.json) for r in receiver.snapshot()] == [
        (f"main/{wanted}", {"content": "DEFEAT. today 1W 1L 0D, 50%", "allowed_mentions": {"parse": []}})
    ]


def test_5xx_and_timeouts_are_retried_until_delivered(
    redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings], receiver: Receiver
) -> None:
    settings = hook_settings(settings_factory, receiver, timeout_s=0.5)
    receiver.script((503, 0.0), (500, 0.0), (200, 2.0), (200, 0.0))  # two 5xx, one too slow, then fine
    w = start_worker(redis_client, keys, settings, [WebhookAction(settings.actions.webhooks[0])])
    try:
        eid = add_event(redis_client, keys, "default", "detected", "draw", 1, (0, 0, 1), source="auto")
        wait_until(lambda: pending(redis_client, keys) == 0 and len(receiver.snapshot()) >= 4, timeout=20,
                   message="the event delivered after its retries")
    finally:
        w.close()
    got = receiver.snapshot()
    assert len(got) == 4 and {r.key for r in got} == {f"default/{eid}"}
    assert len({r.body for r in got}) == 1  # the same bytes every time: the receiver can dedupe by key
    status = json.loads(redis_client.hget(keys.action_status, "hook") or b"{}")
    assert status["status"] == "ok" and status["result"] == "HTTP 200"
    assert redis_client.llen(keys.action_dlq("hook")) == 0


def test_gives_up_into_the_dead_letters_and_the_retry_command_sends_again(
    redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings], receiver: Receiver,
    redis_server: RedisServer, prefix: str, capsys: pytest.CaptureFixture[str],
) -> None:
    settings = hook_settings(settings_factory, receiver, actions__max_attempts=3)
    receiver.default_status = 502
    w = start_worker(redis_client, keys, settings, [WebhookAction(settings.actions.webhooks[0])])
    try:
        eid = add_event(redis_client, keys, "default", "detected", "victory", 1, (1, 0, 0), source="auto")
        wait_until(lambda: redis_client.llen(keys.action_dlq("hook")) == 1 and pending(redis_client, keys) == 0,
                   message="the event in the dead letters, acked")
        assert len(receiver.snapshot()) == 3
        letter = json.loads(redis_client.lindex(keys.action_dlq("hook"), 0) or b"{}")
        assert letter["id"] == eid and letter["error"] == "HTTP 502" and letter["action"] == "hook"
        # a 4xx is not retried at all
        receiver.default_status = 404
        eid2 = add_event(redis_client, keys, "default", "detected", "defeat", 1, (1, 1, 0), source="auto")
        wait_until(lambda: redis_client.llen(keys.action_dlq("hook")) == 2, message="the 404 dead-lettered")
        assert [r.key for r in receiver.snapshot()].count(f"default/{eid2}") == 1

        receiver.default_status = 200
        flags = ["--set", f"redis.url={redis_server.url}", "--set", f"redis.prefix={prefix}",
                 "--set", f"actions.webhooks=[{{\"url\": \"{receiver.url}\", \"name\": \"hook\"}}]"]
        assert owc_main(["actions", "retry", *flags]) == 0
        assert "hook: 2 dead letters queued again" in capsys.readouterr().out
        wait_until(lambda: redis_client.llen(keys.action_retry) == 0 and len(receiver.snapshot()) == 6,
                   message="both dead letters sent again")
    finally:
        w.close()
    assert redis_client.llen(keys.action_dlq("hook")) == 0
    assert [r.key for r in receiver.snapshot()[-2:]] == [f"default/{eid}", f"default/{eid2}"]  # oldest first
    assert queue_retries(redis_client, keys, "hook") == 0


def test_a_lost_ack_does_not_repeat_the_delivery(
    redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings], receiver: Receiver
) -> None:
    """A crash after the record but before the ack: the redelivered event is recognised, not re-sent."""
    settings = hook_settings(settings_factory, receiver)
    w = start_worker(redis_client, keys, settings, [WebhookAction(settings.actions.webhooks[0])])
    eid = add_event(redis_client, keys, "default", "detected", "victory", 1, (1, 0, 0), source="auto")
    wait_until(lambda: pending(redis_client, keys) == 0 and receiver.snapshot(), message="delivered")
    w.close()
    # forget the ack: the group hands the event out again, as after a kill -9 before XACK
    redis_client.xgroup_setid(keys.events("default"), "actions", "0")
    w = start_worker(redis_client, keys, settings, [WebhookAction(settings.actions.webhooks[0])])
    try:
        wait_until(lambda: w.worker.processed >= 1 and pending(redis_client, keys) == 0,
                   message="the redelivered event handled")
        after = add_event(redis_client, keys, "default", "detected", "defeat", 1, (1, 1, 0), source="auto")
        wait_until(lambda: len(receiver.snapshot()) >= 2, message="the next event delivered")
    finally:
        w.close()
    assert [r.key for r in receiver.snapshot()] == [f"default/{eid}", f"default/{after}"]


# ---------------------------------------------------------------------- the service as a process


def send_command(client: redis.Redis, keys: Keys, type_: str, **kw: Any) -> Reply:
    now = int(time.time() * 1000)
    cmd = Command(request_id=f"t{time.monotonic_ns()}", channel="default", type=type_,  # type: ignore[arg-type]
                  issued_at=now, deadline=now + 10_000, **kw)
    client.xadd(keys.commands, cmd.to_fields())  # type: ignore[arg-type]
    answer = client.blpop([keys.reply(cmd.request_id)], timeout=10)
    assert answer is not None, "the state service did not answer"
    return Reply.from_json(answer[1])


def start_actions(tmp_path: Path, redis_server: RedisServer, prefix: str, receiver: Receiver,
                  timeout_s: float = 5.0) -> ServiceProcess:
    hooks = json.dumps([{"url": receiver.url, "name": "hook", "timeout_s": timeout_s}])
    proc = ServiceProcess(tmp_path / "actions", "actions", {
        "redis.url": redis_server.url, "redis.prefix": prefix, "actions.metrics_port": 0,
        "actions.retry_initial_s": 0.1, "actions.retry_max_s": 0.5,
    }, "--set", f"actions.webhooks={hooks}").start()
    return proc


@pytest.mark.slow
def test_exactly_one_effect_per_event_across_a_kill_9_of_the_actions_service(
    tmp_path: Path, redis_server: RedisServer, redis_client: redis.Redis, prefix: str, keys: Keys,
    receiver: Receiver,
) -> None:
    state = start_state(tmp_path, redis_server.url, prefix)
    actions = start_actions(tmp_path, redis_server, prefix, receiver)

    def all_sent() -> bool:
        return len(receiver.unique_keys()) == redis_client.xlen(keys.events("default"))

    try:
        wait_until(lambda: redis_client.exists(keys.actions_since), timeout=30, message="owc actions started")
        assert send_command(redis_client, keys, "adjust", outcome="victory", delta=1).ok  # + session_started
        wait_until(all_sent, timeout=20, message="the first deliveries")

        # kill -9 while a delivery is in flight: the receiver has the request, the sender never sees the answer
        receiver.hold()
        assert send_command(redis_client, keys, "adjust", outcome="defeat", delta=1).ok
        assert receiver.wait_held(20), "the delivery never arrived"
        actions.stop(kill=True)
        receiver.release()
        # counting goes on without the actions service
        assert send_command(redis_client, keys, "adjust", outcome="draw", delta=1).ok
        assert send_command(redis_client, keys, "undo").ok

        actions = start_actions(tmp_path, redis_server, prefix, receiver)
        wait_until(all_sent, timeout=30, message="the missed events delivered")
        # and a kill -9 at a quiet moment: nothing is repeated
        actions.stop(kill=True)
        actions = start_actions(tmp_path, redis_server, prefix, receiver)
        assert send_command(redis_client, keys, "adjust", outcome="victory", delta=1).ok
        wait_until(all_sent, timeout=30, message="the last event delivered")
        wait_until(lambda: pending(redis_client, keys) == 0, timeout=10, message="every event acked")
        events = redis_client.xrange(keys.events("default"))
    finally:
        actions.stop()
        state.stop()
    ids = [eid.decode() for eid, _ in events]
    assert len(ids) == 6
    got = receiver.snapshot()
    keys_sent = [r.key for r in got]
    # exactly one effect per event: every event's key, each event's body identical across its deliveries
    assert sorted(set(keys_sent)) == sorted(f"default/{i}" for i in ids)
    for key in set(keys_sent):
        assert len({r.body for r in got if r.key == key}) == 1
    # only the delivery cut by the kill was sent twice (at-least-once; the key lets the receiver drop it)
    repeated = {k for k in keys_sent if keys_sent.count(k) > 1}
    assert repeated == {receiver.held_key}
    assert keys_sent.count(receiver.held_key) == 2
    texts = [r.json["text"] for r in got]
    assert "correction: that was not a draw. today 1W 1L 0D, 50%" in texts


@pytest.mark.slow
def test_a_slow_receiver_never_blocks_counting(
    tmp_path: Path, redis_server: RedisServer, redis_client: redis.Redis, prefix: str, keys: Keys,
    receiver: Receiver,
) -> None:
    receiver.default_delay_s = 3.0  # every delivery takes 3 s
    state = start_state(tmp_path, redis_server.url, prefix)
    actions = start_actions(tmp_path, redis_server, prefix, receiver, timeout_s=10)
    try:
        wait_until(lambda: redis_client.exists(keys.actions_since), timeout=30, message="owc actions started")
        started = time.monotonic()
        for _ in range(5):
            assert send_command(redis_client, keys, "adjust", outcome="victory", delta=1).ok
        counted_in = time.monotonic() - started
        snapshot = StateSnapshot.from_fields(redis_client.hgetall(keys.state("default")))
        delivered_by_then = len(receiver.snapshot())
        total = redis_client.xlen(keys.events("default"))  # session_started + 5 results
        wait_until(lambda: len(receiver.unique_keys()) == total, timeout=60, message="all delivered, slowly")
    finally:
        actions.stop()
        state.stop()
    assert snapshot.counts.victories == 5 and total == 6
    assert counted_in < 3.0, f"counting waited for the receiver ({counted_in:.1f} s)"
    assert delivered_by_then <= 2


def test_a_test_event_goes_through_the_running_service_marked_as_a_test(
    redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings], receiver: Receiver,
    redis_server: RedisServer, prefix: str, capsys: pytest.CaptureFixture[str],
) -> None:
    settings = hook_settings(settings_factory, receiver, events=["undone"])  # a test is sent whatever the filter
    w = start_worker(redis_client, keys, settings, [WebhookAction(settings.actions.webhooks[0])])
    try:
        flags = ["--set", f"redis.url={redis_server.url}", "--set", f"redis.prefix={prefix}",
                 "--set", f"actions.webhooks=[{{\"url\": \"{receiver.url}\", \"name\": \"hook\"}}]"]
        assert owc_main(["actions", "test", *flags]) == 0
        assert "hook: test event default/test-" in capsys.readouterr().out
        wait_until(lambda: receiver.snapshot(), message="the test event")
        assert owc_main(["actions", "status", *flags]) == 0
        assert "hook: last: ok (HTTP 200) for event default/test-" in capsys.readouterr().out
    finally:
        w.close()
    (got,) = receiver.snapshot()
    assert got.headers["x-owc-test"] == "1"
    assert got.json["test"] is True and got.json["text"] == "[test] VICTORY! today 1W 0L 0D, 100%"
    assert redis_client.xlen(keys.events("default")) == 0  # the log is untouched


def test_caught_up_says_when_every_event_is_done(
    redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings], receiver: Receiver
) -> None:
    settings = hook_settings(settings_factory, receiver)
    assert not caught_up(redis_client, keys, "default")  # no log, no group
    receiver.hold()
    w = start_worker(redis_client, keys, settings, [WebhookAction(settings.actions.webhooks[0])])
    try:
        add_event(redis_client, keys, "default", "detected", "victory", 1, (1, 0, 0), source="auto")
        assert receiver.wait_held(10)
        assert not caught_up(redis_client, keys, "default")  # read, not finished
        receiver.release()
        wait_until(lambda: caught_up(redis_client, keys, "default"), message="caught up")
        add_event(redis_client, keys, "default", "detected", "defeat", 1, (1, 1, 0), source="auto")
        # a new event is behind until it is handled (no race: the check may only go false -> true)
        wait_until(lambda: len(receiver.snapshot()) == 2 and caught_up(redis_client, keys, "default"),
                   message="caught up again")
    finally:
        w.close()


@pytest.mark.slow
def test_a_redis_restart_loses_and_repeats_nothing(
    own_redis: RedisServer, keys: Keys, settings_factory: Callable[..., Settings], receiver: Receiver
) -> None:
    settings = settings_factory(
        redis__url=own_redis.url, actions__webhooks=[{"url": receiver.url, "name": "hook"}],
        actions__retry_initial_s=0.05, actions__retry_max_s=0.2,
    )
    client = own_redis.client()
    w = start_worker(client, keys, settings, [WebhookAction(settings.actions.webhooks[0])])
    try:
        first = add_event(client, keys, "default", "detected", "victory", 1, (1, 0, 0), source="auto")
        wait_until(lambda: pending(client, keys) == 0 and len(receiver.snapshot()) == 1, message="delivered")
        client.bgrewriteaof()  # not needed for AOF, but makes the restart load the rewritten file too
        wait_until(lambda: client.info("persistence")["aof_rewrite_in_progress"] == 0, message="AOF rewrite")
        own_redis.restart(kill=True)
        second = add_event(client, keys, "default", "detected", "defeat", 1, (1, 1, 0), source="auto")
        wait_until(lambda: len(receiver.snapshot()) >= 2 and pending(client, keys) == 0, timeout=20,
                   message="delivered after the restart")
    finally:
        w.close()
        client.close()
    assert [r.key for r in receiver.snapshot()] == [f"default/{first}", f"default/{second}"]


class Outage:
    """Redis goes away (SIGTERM; the AOF keeps everything) or refuses writes (``maxmemory``; a full disk
    is MISCONF) while an effect is being done, then comes back."""

    def __init__(self, kind: str, server: RedisServer, client: redis.Redis) -> None:
        self.kind, self.server, self.client = kind, server, client
        self.said = "Redis is unavailable" if kind == "down" else "Redis refuses writes"

    def begin(self) -> None:
        if self.kind == "down":
            self.server.stop()
        else:
            self.client.config_set("maxmemory-policy", "noeviction")
            self.client.config_set("maxmemory", 1)

    def end(self) -> None:
        if self.kind == "down":
            self.server.start()
        else:
            self.client.config_set("maxmemory", 0)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["down", "refusing writes"])
def test_an_effect_done_during_a_redis_outage_is_recorded_once_it_is_back_not_repeated(
    kind: str, own_redis: RedisServer, keys: Keys, settings_factory: Callable[..., Settings], receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The receiver answers during the outage: the record waits for Redis instead of being lost (or the
    service crashing), so the redelivered event finds it and is not sent again (for chat or OBS, a
    second line or clip)."""
    settings = settings_factory(
        redis__url=own_redis.url, actions__webhooks=[{"url": receiver.url, "name": "hook"}],
        actions__retry_initial_s=0.05, actions__retry_max_s=0.2,
    )
    caplog.set_level(logging.INFO)
    client = own_redis.client()
    outage = Outage(kind, own_redis, client)
    w = start_worker(client, keys, settings, [WebhookAction(settings.actions.webhooks[0])])
    try:
        receiver.hold()
        first = add_event(client, keys, "default", "detected", "victory", 1, (1, 0, 0), source="auto")
        assert receiver.wait_held(10), "the delivery never arrived"
        outage.begin()
        receiver.release()  # the effect is done; its record cannot be written now
        wait_until(lambda: any(outage.said in r.getMessage() for r in caplog.records), timeout=20,
                   message="the worker to meet the outage")
        assert w.thread.is_alive(), "the actions service died in the outage"
        outage.end()
        wait_until(lambda: caught_up(client, keys, "default"), timeout=30, message="the event finished")
        second = add_event(client, keys, "default", "detected", "defeat", 1, (1, 1, 0), source="auto")
        wait_until(lambda: caught_up(client, keys, "default") and len(receiver.snapshot()) >= 2, timeout=20,
                   message="the next event delivered")
        done = client.hgetall(keys.action_done("hook"))
    finally:
        w.close()
        client.close()
    assert [r.key for r in receiver.snapshot()] == [f"default/{first}", f"default/{second}"]
    assert json.loads(done[f"default/{first}".encode()])["status"] == "ok"
