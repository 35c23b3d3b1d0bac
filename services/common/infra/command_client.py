"""Send a command to the state service and wait for its reply — the one way every caller does it.

A command carries a deadline (``issued_at`` + the caller's timeout). The caller
waits for the reply until that deadline and no longer; the state service
refuses a command it only reaches after it (``code=expired``), so a caller that
gave up never sees the command applied behind its back.

The reply is a list the state service pushes onto (``owc:reply:{request_id}``);
the wait is a BLPOP in slices shorter than the client's socket timeout (redis-py
reuses the connect timeout), never a BLPOP with 0 (which would block forever).

Two faces of one client: :class:`CommandClient` for a blocking ``redis.Redis``
(the chat bot, ``owc state import``) and :class:`AsyncCommandClient` for
``redis.asyncio`` (the gateway). Both return the :class:`Reply`, or None when
none came before the deadline; Redis errors propagate, an unreadable reply is a
:class:`~services.common.contracts.messages.MessageError`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

from services.common.contracts.keys import Keys
from services.common.contracts.messages import Command, CommandType, Reply
from services.common.infra.streams import xadd_message

BLPOP_SLICE_S = 2.0  # under redis-py's socket timeout
MIN_WAIT_S = 0.01  # BLPOP 0 blocks forever: never ask for less than this


def new_command(channel: str, type_: CommandType, timeout_s: float, *, request_id: str = "", **fields: Any) -> Command:
    """A command for ``channel`` whose deadline is ``timeout_s`` from now (``fields``: the
    :class:`Command`'s optional fields: outcome, delta, counts, note, frame_seq, mode, payload)."""
    now = int(time.time() * 1000)
    return Command(
        request_id=request_id or uuid.uuid4().hex, channel=channel, type=type_,
        issued_at=now, deadline=now + int(timeout_s * 1000), **fields,
    )


def _waits(command: Command) -> Iterator[float]:
    """How long each BLPOP may block, until the command's deadline has passed."""
    while (left := command.deadline / 1000 - time.time()) > 0:
        yield max(MIN_WAIT_S, min(left, BLPOP_SLICE_S))


class CommandClient:
    """The state service's commands over a blocking ``redis.Redis``."""

    def __init__(self, client: Any, keys: Keys) -> None:
        self.client = client
        self.keys = keys

    def send(self, command: Command) -> Reply | None:
        """Append ``command`` to ``owc:commands``; its reply, or None when none came by its deadline."""
        xadd_message(self.client, self.keys.commands, command)
        key = self.keys.reply(command.request_id)
        for wait in _waits(command):
            popped = self.client.blpop([key], timeout=wait)
            if popped is not None:
                return Reply.from_json(popped[1])
        return None


class AsyncCommandClient:
    """The state service's commands over ``redis.asyncio`` (bytes responses)."""

    def __init__(self, client: Any, keys: Keys) -> None:
        self.client = client
        self.keys = keys

    async def send(self, command: Command) -> Reply | None:
        """Append ``command`` to ``owc:commands``; its reply, or None when none came by its deadline."""
        await self.client.xadd(self.keys.commands, command.to_fields())
        key = self.keys.reply(command.request_id)
        for wait in _waits(command):
            popped = await self.client.blpop([key], timeout=wait)
            if popped is not None:
                return Reply.from_json(popped[1])
        return None


__all__ = ["AsyncCommandClient", "CommandClient", "new_command"]
