"""Helpers for the actions tests: the worker in a thread, events appended to a log, the service as a process."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from services.actions.delivery import Action
from services.actions.worker import ActionsWorker, queued_in_lanes
from services.common.config.settings import Settings
from services.common.contracts.keys import GROUP_ACTIONS, Keys
from services.common.contracts.messages import Counts, Event
from tests.support.waiting import wait_until


@dataclass
class WorkerThread:
    worker: ActionsWorker
    stop: threading.Event
    thread: threading.Thread

    def close(self) -> None:
        self.stop.set()
        self.thread.join(15)
        assert not self.thread.is_alive(), "actions worker did not stop"


def start_worker(
    client: redis.Redis,
    keys: Keys,
    settings: Settings,
    actions: Sequence[Action],
    channels: Sequence[str] = ("default",),
    stop: threading.Event | None = None,
) -> WorkerThread:
    """The actions loop in a thread; returns once it follows ``channels``' logs."""
    for ch in channels:
        client.sadd(keys.channels, ch)
    worker = ActionsWorker(client, keys, settings.actions, actions)
    stop = stop or threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), name="actions-worker", daemon=True)
    thread.start()
    wait_until(lambda: all(keys.events(ch) in worker.consumers for ch in channels), timeout=10,
               message="the actions worker to follow the channels")
    return WorkerThread(worker, stop, thread)


def add_event(
    client: redis.Redis, keys: Keys, channel: str, type_: str, outcome: str | None = None, delta: int = 0,
    counts: tuple[int, int, int] = (0, 0, 0), source: str = "manual", undoes: str = "",
) -> str:
    """Append an event to a channel's log as the state service would; return its stream id."""
    event = Event(type=type_, outcome=outcome, delta=delta, counts=Counts(*counts), session="s1",  # type: ignore[arg-type]
                  source=source, ts=int(time.time() * 1000), undoes=undoes)  # type: ignore[arg-type]
    eid = client.xadd(keys.events(channel), event.to_fields())  # type: ignore[arg-type]
    return eid.decode() if isinstance(eid, bytes) else str(eid)


def pending(client: redis.Redis, keys: Keys, channel: str = "default") -> int:
    """The channel's events not finished: unacked in the log, or still queued on an action's lane."""
    summary: Any = client.xpending(keys.events(channel), GROUP_ACTIONS)
    return int(summary["pending"]) + queued_in_lanes(client, keys, channel)


def dead_letter_of_one_result(client: redis.Redis, keys: Keys, worker: WorkerThread, action: str) -> dict[str, Any]:
    """One detected victory through ``worker`` until ``action`` gives up on it (the worker is closed):
    the one dead letter."""
    try:
        add_event(client, keys, "default", "detected", "victory", 1, (1, 0, 0), source="auto")
        wait_until(lambda: client.llen(keys.action_dlq(action)) == 1, message=f"a dead letter of {action}")
    finally:
        worker.close()
    assert client.llen(keys.action_dlq(action)) == 1
    return dict(json.loads(client.lindex(keys.action_dlq(action), 0) or b"{}"))
