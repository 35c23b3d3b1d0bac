"""State service: commands, replies, idempotency, snapshot/log agreement (real redis-server)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
import redis

from services.common.config.settings import Settings
from services.common.contracts.export import to_jsonl
from services.common.contracts.keys import GROUP_STATE, Keys
from services.common.contracts.messages import Command, Counts, Event, Label, ModeRun, Reply, StateSnapshot
from services.common.contracts.sessions import SessionSummary
from services.state.history import fold_counts
from services.state.machine import Machine
from services.state.store import MACHINE_FIELD, Commit, ConflictError, Lease, LeaseLostError, Store
from services.state.worker import StateWorker
from tests.support.waiting import wait_until


class Running:
    def __init__(self, worker: StateWorker) -> None:
        self.worker = worker
        self.stop = threading.Event()
        self.thread = threading.Thread(target=worker.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive()


@pytest.fixture
def start(
    redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings]
) -> Iterator[Callable[..., Running]]:
    running: list[Running] = []

    def make(**overrides: Any) -> Running:
        overrides.setdefault("state__reorder_window_ms", 50)
        overrides.setdefault("state__lease_ttl_ms", 1000)
        r = Running(StateWorker(redis_client, keys, settings_factory(**overrides)))
        running.append(r)
        return r

    yield make
    for r in running:
        r.close()


def send(client: redis.Redis, keys: Keys, timeout: float = 10.0, **kw: Any) -> Reply:
    kw.setdefault("request_id", uuid.uuid4().hex)
    kw.setdefault("channel", "default")
    cmd = Command(**kw)
    client.xadd(keys.commands, cmd.to_fields())  # type: ignore[arg-type]
    answer = client.blpop([keys.reply(cmd.request_id)], timeout=timeout)
    assert answer, f"no reply to {cmd.type} within {timeout}s"
    return Reply.from_json(answer[1])


def events(client: redis.Redis, keys: Keys, channel: str = "default") -> list[Event]:
    return [Event.from_fields(f, id=i) for i, f in client.xrange(keys.events(channel))]


def snapshot(client: redis.Redis, keys: Keys, channel: str = "default") -> StateSnapshot:
    return StateSnapshot.from_fields(client.hgetall(keys.state(channel)))


def test_commands_reply_with_the_event_they_produced(
    start: Callable[..., Running], redis_client: redis.Redis, keys: Keys
) -> None:
    start()
    r1 = send(redis_client, keys, type="adjust", outcome="victory", delta=2)
    assert r1.ok and r1.event_id
    r2 = send(redis_client, keys, type="adjust", outcome="defeat", delta=1, note="missed one")
    r3 = send(redis_client, keys, type="set", counts=Counts(5, 4, 1))
    r4 = send(redis_client, keys, type="undo")
    assert r2.ok and r3.ok and r4.ok
    log = events(redis_client, keys)
    assert [e.type for e in log] == ["session_started", "adjusted", "adjusted", "set", "undone"]
    by_id = {e.id: e for e in log}
    assert by_id[r1.event_id].delta == 2 and by_id[r1.event_id].outcome == "victory"
    assert by_id[r2.event_id].note == "missed one"
    assert by_id[r4.event_id].undoes == r3.event_id
    assert all(by_id[r.event_id].request_id == r.request_id for r in (r1, r2, r3, r4))
    snap = snapshot(redis_client, keys)
    assert snap.counts == Counts(2, 1, 0) == fold_counts(log)
    assert snap.last_event_id == r4.event_id
    assert redis_client.sismember(keys.channels, "default")


def test_rejections_are_sentences_and_change_nothing(
    start: Callable[..., Running], redis_client: redis.Redis, keys: Keys
) -> None:
    start()
    r = send(redis_client, keys, type="adjust", outcome="victory", delta=-1)
    assert not r.ok and r.code == "rejected"
    assert r.error == "cannot remove a victory: the count is already 0"
    r = send(redis_client, keys, type="undo")
    assert not r.ok and r.code == "rejected" and "nothing to undo" in r.error
    r = send(redis_client, keys, type="adjust", outcome="draw")
    assert not r.ok and r.code == "invalid"
    r = send(redis_client, keys, type="set", counts=Counts(-1, 0, 0))
    assert not r.ok and r.code == "invalid" and "negative" in r.error
    # past its deadline: refused, never applied
    r = send(redis_client, keys, type="adjust", outcome="victory", delta=1, deadline=int(time.time() * 1000) - 1)
    assert not r.ok and r.code == "expired"
    assert [e for e in events(redis_client, keys) if e.type != "session_started"] == []
    assert not redis_client.exists(keys.state("default")) or snapshot(redis_client, keys).counts == Counts()
    # garbage: an answer for the caller, the entry parked in the DLQ
    redis_client.xadd(keys.commands, {b"request_id": b"bad1", b"channel": b"default", b"type": b"explode"})
    answer = redis_client.blpop([keys.reply("bad1")], timeout=10)
    assert answer and Reply.from_json(answer[1]).code == "invalid"
    wait_until(lambda: redis_client.xlen(Keys.dlq(keys.commands)) == 1, message="DLQ entry")


def test_a_retried_request_is_applied_once_and_answered_again(
    start: Callable[..., Running], redis_client: redis.Redis, keys: Keys
) -> None:
    start()
    first = send(redis_client, keys, request_id="req-1", type="adjust", outcome="victory", delta=1)
    again = send(redis_client, keys, request_id="req-1", type="adjust", outcome="victory", delta=1)
    assert first == again and first.ok
    assert snapshot(redis_client, keys).counts == Counts(1, 0, 0)
    assert len([e for e in events(redis_client, keys) if e.request_id == "req-1"]) == 1
    stored = redis_client.hget(keys.command_done("default"), "req-1")
    assert stored is not None and Reply.from_json(stored) == first
    # an expired command is not remembered: the caller may retry it with a new deadline
    late = send(redis_client, keys, request_id="req-2", type="adjust", outcome="draw", delta=1, deadline=1)
    assert late.code == "expired"
    retry = send(redis_client, keys, request_id="req-2", type="adjust", outcome="draw", delta=1)
    assert retry.ok and snapshot(redis_client, keys).counts == Counts(1, 0, 1)


def test_sessions_keep_their_history(start: Callable[..., Running], redis_client: redis.Redis, keys: Keys) -> None:
    start()
    for outcome in ("victory", "victory", "defeat", "victory"):
        assert send(redis_client, keys, type="adjust", outcome=outcome, delta=1).ok
    first_session = snapshot(redis_client, keys).session
    r = send(redis_client, keys, type="new_session", note="day two")
    assert r.ok
    snap = snapshot(redis_client, keys)
    assert snap.counts == Counts() and snap.session != first_session
    sessions = {
        k.decode(): SessionSummary.from_json(v) for k, v in redis_client.hgetall(keys.sessions("default")).items()
    }
    old = sessions[first_session]
    assert old.counts == Counts(3, 1, 0) and old.ended_at is not None
    assert old.win_rate == 0.75 and old.longest_win_streak == 2 and old.longest_loss_streak == 1
    assert sessions[snap.session].ended_at is None
    # undo cannot reach into the previous session
    assert not send(redis_client, keys, type="undo").ok


def test_missing_session_summaries_are_filled_in_when_the_state_service_takes_over(
    start: Callable[..., Running], redis_client: redis.Redis, keys: Keys
) -> None:
    """A log older than the summaries (or one deleted by hand): the state service writes them from the
    log when it loads the channel — at once when it takes the lease, with no new command — so
    readers (the gateway's Sessions card) never fold the log themselves."""
    first = start()
    for outcome in ("victory", "defeat", "victory"):
        assert send(redis_client, keys, type="adjust", outcome=outcome, delta=1).ok
    assert send(redis_client, keys, type="new_session").ok
    assert send(redis_client, keys, type="adjust", outcome="draw", delta=1).ok
    first.close()
    written = {k: SessionSummary.from_json(v) for k, v in redis_client.hgetall(keys.sessions("default")).items()}
    assert len(written) == 2
    redis_client.delete(keys.sessions("default"))
    ended = next(k for k, v in written.items() if v.ended_at is not None)
    redis_client.hset(keys.sessions("default"), ended, written[ended].to_json())  # one survived
    start()
    wait_until(lambda: redis_client.hlen(keys.sessions("default")) == 2, timeout=10,
               message="the missing summary written from the log")
    filled = {k: SessionSummary.from_json(v) for k, v in redis_client.hgetall(keys.sessions("default")).items()}
    assert filled == written


def test_snapshot_is_rebuilt_from_the_log_and_checked_against_it(
    start: Callable[..., Running], redis_client: redis.Redis, keys: Keys
) -> None:
    r = start()
    assert send(redis_client, keys, type="adjust", outcome="defeat", delta=3).ok
    assert send(redis_client, keys, type="adjust", outcome="victory", delta=1).ok
    r.close()
    # lose the snapshot entirely: the next writer folds the log
    redis_client.delete(keys.state("default"))
    start()
    assert send(redis_client, keys, type="adjust", outcome="draw", delta=1).ok
    assert snapshot(redis_client, keys).counts == Counts(1, 3, 1)
    # and undo still works on what the log says happened
    assert send(redis_client, keys, type="undo").ok
    assert send(redis_client, keys, type="undo").ok
    assert snapshot(redis_client, keys).counts == Counts(0, 3, 0)


def test_a_snapshot_that_disagrees_with_the_log_loses(
    start: Callable[..., Running], redis_client: redis.Redis, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    r = start()
    assert send(redis_client, keys, type="adjust", outcome="victory", delta=2).ok
    r.close()
    machine = json.loads(redis_client.hget(keys.state("default"), MACHINE_FIELD) or b"")
    machine["counts"]["victories"] = 7
    redis_client.hset(keys.state("default"), MACHINE_FIELD, json.dumps(machine))
    start()
    assert send(redis_client, keys, type="adjust", outcome="victory", delta=1).ok
    assert snapshot(redis_client, keys).counts == Counts(3, 0, 0)
    assert "SNAPSHOT AND EVENT LOG DISAGREE" in caplog.text


def test_labels_count_and_are_acked_after_commit(
    start: Callable[..., Running], redis_client: redis.Redis, keys: Keys
) -> None:
    start(state__required_none=2, state__cooldown_s=1)
    t0 = 1_700_000_000_000
    seq = [(1, "none"), (2, "victory"), (3, "victory"), (4, "victory"), (10, "none"), (11, "none"), (12, "none"),
           (13, "defeat"), (14, "defeat")]
    # out of order, as several inference workers would deliver them
    for s, name in sorted(seq, key=lambda x: (x[0] % 3, x[0])):
        label = Label("default", s, t0 + s * 250, name, 0.99, {}, "m", "w", 1.0)  # type: ignore[arg-type]
        redis_client.xadd(keys.labels, label.to_fields())  # type: ignore[arg-type]
    wait_until(lambda: snapshot(redis_client, keys).counts == Counts(1, 1, 0), message="two detections")
    wait_until(lambda: redis_client.xpending(keys.labels, GROUP_STATE)["pending"] == 0, message="all acked")
    det = [e for e in events(redis_client, keys) if e.type == "detected"]
    assert [(e.outcome, e.frame_seq) for e in det] == [("victory", 3), ("defeat", 14)]


def test_import_restores_an_export_into_an_empty_channel(
    start: Callable[..., Running], redis_client: redis.Redis, keys: Keys
) -> None:
    start()
    for kw in (
        {"type": "adjust", "outcome": "victory", "delta": 2},
        {"type": "adjust", "outcome": "defeat", "delta": 1},
        {"type": "undo"},
        {"type": "new_session"},
        {"type": "adjust", "outcome": "draw", "delta": 1},
    ):
        assert send(redis_client, keys, **kw).ok
    exported = events(redis_client, keys)
    payload = to_jsonl(exported)
    r = send(redis_client, keys, channel="restored", type="import", payload=payload)
    assert r.ok, r.error
    restored = events(redis_client, keys, "restored")
    assert [e.type for e in restored] == [e.type for e in exported] + ["imported"]
    assert snapshot(redis_client, keys, "restored").counts == Counts(0, 0, 1)
    assert snapshot(redis_client, keys, "restored").session == snapshot(redis_client, keys).session
    undone = next(e for e in restored if e.type == "undone")
    assert undone.undoes in {e.id for e in restored}
    assert len(redis_client.hkeys(keys.sessions("restored"))) == 2
    again = send(redis_client, keys, channel="restored", type="import", payload=payload)
    assert not again.ok and again.code == "rejected" and "empty channel" in again.error
    bad = send(redis_client, keys, channel="other", type="import", payload="{not json\n")
    assert not bad.ok and bad.code == "invalid" and "line 1" in bad.error


def test_a_label_that_breaks_the_rules_goes_to_the_dlq_and_the_rest_still_count(
    start: Callable[..., Running], redis_client: redis.Redis, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    import services.state.worker as worker_module

    real = worker_module.transition

    def flaky(machine: Any, inp: Any, rules: Any) -> Any:
        if getattr(inp, "label", None) is not None and inp.label.seq == 2:
            raise RuntimeError("boom")
        return real(machine, inp, rules)

    monkeypatch.setattr(worker_module, "transition", flaky)
    start()
    for s in (1, 2, 3, 4):
        label = Label("default", s, 1000 + s * 250, "victory", 0.99, {}, "m", "w", 1.0)
        redis_client.xadd(keys.labels, label.to_fields())  # type: ignore[arg-type]
    wait_until(lambda: snapshot(redis_client, keys).counts == Counts(1, 0, 0), message="3 and 4 count")
    dlq = redis_client.xrange(Keys.dlq(keys.labels))
    assert len(dlq) == 1 and dlq[0][1][b"seq"] == b"2" and b"boom" in dlq[0][1][b"dlq_reason"]
    wait_until(lambda: redis_client.xpending(keys.labels, GROUP_STATE)["pending"] == 0, message="all acked")


def test_owc_state_export_and_import(
    start: Callable[..., Running], redis_client: redis.Redis, keys: Keys, redis_server: Any, prefix: str,
    tmp_path: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    from services.cli import main

    monkeypatch.setattr("services.common.cli.cliargs.setup_logging", lambda level: None)  # keep pytest's handlers
    start()
    assert send(redis_client, keys, type="adjust", outcome="victory", delta=2).ok
    assert send(redis_client, keys, type="new_session").ok
    assert send(redis_client, keys, type="adjust", outcome="defeat", delta=1, note="a, b").ok
    conf = ["--set", f"redis.url={redis_server.url}", "--set", f"redis.prefix={prefix}"]
    capsys.readouterr()
    assert main(["state", "export", "--format", "csv", *conf]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("id,type,outcome") and len(lines) == 3  # header, session_started, adjusted
    backup = tmp_path / "all.jsonl"
    assert main(["state", "export", "--session", "all", "-o", str(backup), *conf]) == 0
    assert len(backup.read_text().splitlines()) == 4  # two sessions of two events
    assert main(["state", "import", str(backup), "--channel", "copy", *conf]) == 0
    assert "imported into channel 'copy'" in capsys.readouterr().out
    assert snapshot(redis_client, keys, "copy").counts == Counts(0, 1, 0)
    with pytest.raises(SystemExit):
        main(["state", "import", str(backup), "--channel", "copy", *conf])
    assert "empty channel" in capsys.readouterr().err


def test_run_returns_after_max_messages(
    redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings]
) -> None:
    for s in (1, 2, 3):
        label = Label("default", s, 1000 + s * 250, "none", 0.99, {}, "m", "w", 1.0)
        redis_client.xadd(keys.labels, label.to_fields())  # type: ignore[arg-type]
    worker = StateWorker(redis_client, keys, settings_factory(state__reorder_window_ms=0))
    assert worker.run(threading.Event(), max_messages=3) == 3
    assert redis_client.get(keys.lease("state")) is None  # released on the way out
    assert json.loads(redis_client.hget(keys.state("default"), MACHINE_FIELD) or b"")["last_seq"] == 3


def test_a_lease_left_by_a_dead_process_of_this_host_is_taken_at_once(
    redis_client: redis.Redis, keys: Keys
) -> None:
    import os
    import subprocess

    from services.state.store import Lease, new_holder_id

    mine = new_holder_id()
    host, _pid, tail = mine.rsplit("-", 2)
    gone = subprocess.Popen(["true"])
    gone.wait()
    key = keys.lease("state")
    lease = Lease(redis_client, key, mine, 60_000)
    # held by a live process (our parent) or by another host: left alone until it expires
    for holder in (f"{host}-{os.getppid()}-{tail}", f"elsewhere-{gone.pid}-{tail}", f"{host}-{gone.pid}-nonamespace"):
        redis_client.set(key, holder, px=60_000)
        assert not lease.acquire() and redis_client.get(key) == holder.encode()
    # held by a process of this host that is gone (kill -9, then `owc run` restarts the service)
    redis_client.set(key, f"{host}-{gone.pid}-{tail}", px=60_000)
    assert lease.acquire() and redis_client.get(key) == mine.encode()
    assert 0 < redis_client.pttl(key) <= 60_000


def test_entries_a_deposed_writer_read_are_picked_up(
    start: Callable[..., Running], redis_client: redis.Redis, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    from services.common.infra.streams import ensure_group
    from services.state.inbox import CONSUMER

    caplog.set_level("INFO", logger="owc.state")
    running = start()
    assert send(redis_client, keys, type="adjust", outcome="draw", delta=1).ok
    # a deposed writer (frozen, then woken) reads a command under the shared consumer name and dies
    ensure_group(redis_client, keys.commands, GROUP_STATE)
    cmd = Command("orphan-1", "default", "adjust", outcome="victory", delta=1)
    running.stop.set()
    running.thread.join(10)
    redis_client.xadd(keys.commands, cmd.to_fields())  # type: ignore[arg-type]
    assert redis_client.xreadgroup(GROUP_STATE, CONSUMER, {keys.commands: ">"}, count=10)
    start()  # the writer reads its consumer's pending entries on taking the lease
    answer = redis_client.blpop([keys.reply("orphan-1")], timeout=10)
    assert answer and Reply.from_json(answer[1]).ok
    # and while it runs: the deposed writer's read lands first (in one MULTI, blocked readers wait for EXEC)
    cmd2 = Command("orphan-2", "default", "adjust", outcome="victory", delta=1)
    pipe = redis_client.pipeline(transaction=True)
    pipe.xadd(keys.commands, cmd2.to_fields())  # type: ignore[arg-type]
    pipe.xreadgroup(GROUP_STATE, CONSUMER, {keys.commands: ">"}, count=10)
    assert pipe.execute()[1]
    answer = redis_client.blpop([keys.reply("orphan-2")], timeout=10)
    assert answer and Reply.from_json(answer[1]).ok
    assert "entries pending on state-writer that this writer does not hold" in caplog.text
    assert snapshot(redis_client, keys).counts == Counts(2, 0, 1)


def test_the_mode_is_recorded_carried_by_every_event_and_survives_a_lost_snapshot(
    start: Callable[..., Running], redis_client: redis.Redis, keys: Keys
) -> None:
    r = start()
    assert send(redis_client, keys, type="adjust", outcome="victory", delta=1).ok
    changed = send(redis_client, keys, type="mode", mode="Competitive")
    assert changed.ok and changed.event_id
    again = send(redis_client, keys, type="mode", mode="competitive")
    assert again.ok and again.event_id == ""  # already the mode: nothing recorded
    bad = send(redis_client, keys, type="mode", mode="<script>")
    assert not bad.ok and bad.code == "invalid" and "letters, digits" in bad.error
    assert send(redis_client, keys, type="adjust", outcome="defeat", delta=2).ok
    assert send(redis_client, keys, type="new_session").ok
    assert send(redis_client, keys, type="adjust", outcome="draw", delta=1).ok
    log = events(redis_client, keys)
    assert [(e.type, e.mode) for e in log] == [
        ("session_started", ""), ("adjusted", ""), ("mode_changed", "competitive"), ("adjusted", "competitive"),
        ("session_started", "competitive"), ("adjusted", "competitive")]
    snap = snapshot(redis_client, keys)
    assert (snap.mode, snap.by_mode) == ("competitive", {"competitive": Counts(0, 0, 1)})
    r.close()
    redis_client.delete(keys.state("default"))  # lose the snapshot: the log rebuilds the mode and its counts
    start()
    assert send(redis_client, keys, type="mode", mode="arcade").ok
    assert send(redis_client, keys, type="adjust", outcome="victory", delta=1).ok
    snap = snapshot(redis_client, keys)
    assert (snap.mode, snap.by_mode) == ("arcade", {"competitive": Counts(0, 0, 1), "arcade": Counts(1, 0, 0)})


def test_a_log_and_snapshot_from_before_modes_keep_counting_as_no_mode(
    start: Callable[..., Running], redis_client: redis.Redis, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    r = start()
    assert send(redis_client, keys, type="adjust", outcome="victory", delta=2).ok
    r.close()
    # what an older version wrote: no mode on the events, no mode/by_mode in the snapshot or its machine
    key = keys.events("default")
    old = [(i, {k: v for k, v in f.items() if k != b"mode"}) for i, f in redis_client.xrange(key)]
    machine = json.loads(redis_client.hget(keys.state("default"), MACHINE_FIELD) or b"")
    del machine["mode"], machine["by_mode"], machine["mode_results"]
    for u in machine["undo"]:
        del u["mode"], u["mode_counts_before"], u["mode_results_before"]
    redis_client.delete(key)
    for i, f in old:
        redis_client.xadd(key, f, id=i)  # type: ignore[arg-type]
    redis_client.hdel(keys.state("default"), "mode", "by_mode", "mode_runs")
    redis_client.hset(keys.state("default"), MACHINE_FIELD, json.dumps(machine))
    assert snapshot(redis_client, keys).by_mode == {}
    start()
    assert send(redis_client, keys, type="undo").ok
    assert send(redis_client, keys, type="mode", mode="quickplay").ok
    assert send(redis_client, keys, type="adjust", outcome="defeat", delta=1).ok
    snap = snapshot(redis_client, keys)
    assert snap.counts == Counts(0, 1, 0) and snap.by_mode == {"quickplay": Counts(0, 1, 0)}
    assert snap.mode_runs == {"quickplay": ModeRun(("defeat",), "defeat", 1)}
    assert "DISAGREE" not in caplog.text


def test_a_snapshot_from_before_per_mode_results_takes_them_from_the_log(
    start: Callable[..., Running], redis_client: redis.Redis, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    r = start()
    for mode, outcome in (("competitive", "victory"), ("arcade", "defeat"), ("competitive", "victory")):
        assert send(redis_client, keys, type="mode", mode=mode).ok
        assert send(redis_client, keys, type="adjust", outcome=outcome, delta=1).ok
    r.close()
    # what the version before per-mode results wrote: modes and their counts, no results per mode
    machine = json.loads(redis_client.hget(keys.state("default"), MACHINE_FIELD) or b"")
    del machine["mode_results"]
    for u in machine["undo"]:
        del u["mode_results_before"]
    redis_client.hdel(keys.state("default"), "mode_runs")
    redis_client.hset(keys.state("default"), MACHINE_FIELD, json.dumps(machine))
    assert snapshot(redis_client, keys).mode_runs == {}
    start()
    assert send(redis_client, keys, type="undo").ok  # competitive's second victory
    assert send(redis_client, keys, type="adjust", outcome="defeat", delta=1).ok
    snap = snapshot(redis_client, keys)
    assert snap.mode_runs == {"arcade": ModeRun(("defeat",), "defeat", 1),
                              "competitive": ModeRun(("victory", "defeat"), "defeat", 1)}
    assert "DISAGREE" not in caplog.text


def test_frames_that_change_nothing_visible_are_committed_together_and_survive_a_crash(
    redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings]
) -> None:
    """`none` frames in `ready` change only the cursor: held, then one commit acknowledges them all. A writer
    that dies holding them (no last commit) leaves them pending; the next one re-reads them."""
    settings = settings_factory(state__reorder_window_ms=0, state__lease_ttl_ms=1000)

    def push(seqs: range) -> None:
        for s in seqs:
            label = Label("default", s, 1000 + s * 250, "none", 0.99, {}, "m", "w", 1.0)
            redis_client.xadd(keys.labels, label.to_fields())  # type: ignore[arg-type]

    def stored_seq() -> int:
        raw = redis_client.hget(keys.state("default"), MACHINE_FIELD)
        return -1 if raw is None else int(json.loads(raw)["last_seq"])

    def pending() -> int:
        return int(redis_client.xpending(keys.labels, GROUP_STATE)["pending"])

    first = StateWorker(redis_client, keys, settings)
    first.inbox.ensure_groups()
    assert first._try_acquire()
    push(range(1, 2))  # the channel's first frame starts its session: an event, committed at once
    while first.processed < 1:
        first.step()
    assert stored_seq() == 1 and pending() == 0
    push(range(2, 6))
    while first.processed < 5:
        first.step()
    assert first.channels["default"].machine.last_seq == 5
    assert stored_seq() == 1 and pending() == 4  # held: not written, not acknowledged
    # the writer dies here (no last commit); its lease expires
    redis_client.delete(keys.lease("state"))
    second = Running(StateWorker(redis_client, keys, settings))
    try:
        wait_until(lambda: stored_seq() == 5 and pending() == 0, timeout=10,
                   message="the held frames re-read, committed and acknowledged")
        def commits() -> int:  # a MULTI/EXEC under WATCH, or a snapshot-only commit's script (EVALSHA)
            stats = redis_client.info("commandstats")
            return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("watch", "evalsha"))

        commits_before = commits()
        push(range(6, 26))  # 20 frames at once: one commit, within a second
        wait_until(lambda: stored_seq() == 25 and pending() == 0, timeout=10, message="the next frames committed")
        assert 1 <= commits() - commits_before <= 3
        assert [e.type for e in events(redis_client, keys)] == ["session_started"]  # nothing counted
    finally:
        second.close()


def test_a_snapshot_only_commit_keeps_the_guards_of_a_full_one(redis_client: redis.Redis, keys: Keys) -> None:
    """The held commit's one script writes nothing for a writer that lost the lease or whose log moved."""
    lease = Lease(redis_client, keys.lease("state"), "me", 5000)
    store = Store(redis_client, keys, lease)
    redis_client.xgroup_create(keys.labels, GROUP_STATE, id="0", mkstream=True)
    label = redis_client.xadd(keys.labels, {"x": "1"})
    redis_client.xreadgroup(GROUP_STATE, "c", {keys.labels: ">"})
    before = Machine()
    after = replace(before, last_seq=7)
    held = Commit("default", before, after, acks={keys.labels: [label]})

    redis_client.set(keys.lease("state"), "someone-else")
    with pytest.raises(LeaseLostError, match="someone-else"):
        store.commit(held)
    assert lease.acquire() is False and redis_client.delete(keys.lease("state")) and lease.acquire()
    moved = redis_client.xadd(keys.events("default"), {"type": "detected"})
    with pytest.raises(ConflictError, match=moved.decode()):
        store.commit(held)
    assert not redis_client.exists(keys.state("default"))  # nothing written
    assert int(redis_client.xpending(keys.labels, GROUP_STATE)["pending"]) == 1  # nothing acknowledged

    store.commit(replace(held, before=replace(before, last_event_id=moved.decode())))
    assert json.loads(redis_client.hget(keys.state("default"), MACHINE_FIELD))["last_seq"] == 7  # type: ignore[arg-type]
    assert int(redis_client.xpending(keys.labels, GROUP_STATE)["pending"]) == 0
    assert redis_client.sismember(keys.channels, "default")


def test_a_commit_renews_the_lease_and_only_ours(redis_client: redis.Redis, keys: Keys) -> None:
    """Both kinds of commit (the snapshot script, the MULTI/EXEC of an event) give our lease its TTL again, as
    Lease.renew does; a lease that is someone else's is neither renewed nor written under."""
    lease = Lease(redis_client, keys.lease("state"), "me", 5000)
    store = Store(redis_client, keys, lease)
    assert lease.acquire()
    before = Machine()
    redis_client.pexpire(keys.lease("state"), 300)
    store.commit(Commit("default", before, replace(before, last_seq=3)))  # snapshot only: the script
    assert redis_client.pttl(keys.lease("state")) > 4000
    event = Event(id="1700000000000-0", ts=1_700_000_000_000, type="adjusted", source="manual", outcome="victory",
                  delta=1, counts=Counts(1, 0, 0), session="s")
    redis_client.pexpire(keys.lease("state"), 300)
    store.commit(Commit("default", replace(before, last_seq=3), replace(before, last_seq=3,
                                                                       last_event_id=event.id), [event]))
    assert redis_client.pttl(keys.lease("state")) > 4000
    assert [e.id for e in events(redis_client, keys)] == [event.id]

    redis_client.set(keys.lease("state"), "someone-else", px=300)
    with pytest.raises(LeaseLostError):
        store.commit(Commit("default", before, replace(before, last_seq=4)))
    assert 0 < redis_client.pttl(keys.lease("state")) <= 300


def test_a_writer_on_a_live_feed_renews_its_lease_with_its_commits(
    start: Callable[..., Running], redis_client: redis.Redis, keys: Keys
) -> None:
    """Frames every 100 ms, `none`: the held commits (about one a second) keep the lease; no renewal of its own,
    and no wake-up for the held labels' commit (it rides on the next label)."""
    running = start(state__lease_ttl_ms=6000)  # renewals due every 2 s; commits come every ~1.1 s
    wait_until(lambda: redis_client.get(keys.lease("state")) is not None, message="the writer holds the lease")
    redis_client.config_resetstat()
    seq = 0
    t_end = time.monotonic() + 3.0
    while time.monotonic() < t_end:
        seq += 1
        label = Label("default", seq, 1_700_000_000_000 + seq * 100, "none", 0.99, {}, "m", "w", 1.0)
        redis_client.xadd(keys.labels, label.to_fields())  # type: ignore[arg-type]
        time.sleep(0.1)
    stats = redis_client.info("commandstats")
    calls = {name: int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("eval", "evalsha", "xreadgroup")}
    assert running.worker.leader
    assert calls["eval"] == 0  # no Lease.renew (EVAL of its script): the commits (EVALSHA) renewed it
    assert calls["evalsha"] >= 2
    # one read per label, not one more per held commit (the reclaim scans are XAUTOCLAIM, not counted here)
    assert calls["xreadgroup"] <= seq + 2

    def stored_seq() -> int:
        raw = redis_client.hget(keys.state("default"), MACHINE_FIELD)
        return -1 if raw is None else int(json.loads(raw)["last_seq"])

    wait_until(lambda: stored_seq() == seq, timeout=5, message="the last frame committed")
