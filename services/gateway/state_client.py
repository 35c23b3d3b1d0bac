"""The gateway's client of the state service: send a command, wait for its reply.

The command carries a deadline (now + ``gateway.command_timeout_s``): if the
state service only gets to it later, it refuses it (``code=expired``), so a
caller that got a 503 never sees the command applied behind its back.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from services.common.contracts.keys import Keys
from services.common.contracts.messages import CommandType, Counts, MessageError, Outcome, Reply
from services.common.infra.command_client import AsyncCommandClient, new_command
from services.gateway import metrics
from services.gateway.errors import CommandFailedError, redis_problem

log = logging.getLogger("owc.gateway")


@dataclass(frozen=True)
class StateClient:
    """Every mutation of the gateway is a command for the state service (the single writer)."""

    client: Any  # redis.asyncio.Redis (bytes responses)
    keys: Keys
    timeout_s: float

    async def send(
        self,
        channel: str,
        type_: CommandType,
        *,
        outcome: Outcome | None = None,
        delta: int | None = None,
        counts: Counts | None = None,
        note: str = "",
        frame_seq: int | None = None,
        mode: str = "",
    ) -> Reply:
        """Return the ok reply, or raise :class:`CommandFailedError` with the HTTP status to answer."""
        command = new_command(
            channel, type_, self.timeout_s,
            outcome=outcome, delta=delta, counts=counts, note=note, frame_seq=frame_seq, mode=mode,
        )
        started = time.perf_counter()
        try:
            reply = await AsyncCommandClient(self.client, self.keys).send(command)
        except RedisError as exc:
            metrics.COMMANDS.labels(type_, "error").inc()
            raise CommandFailedError(503, *redis_problem(exc)) from None
        except MessageError as exc:
            metrics.COMMANDS.labels(type_, "error").inc()
            raise CommandFailedError(502, f"the state service sent an unreadable reply ({exc})", "bad_reply") from None
        if reply is None:
            metrics.COMMANDS.labels(type_, "timeout").inc()
            raise CommandFailedError(
                503,
                f"the state service did not answer within {self.timeout_s:g} s (is `owc state` running?); "
                "the command was not applied and will not be applied later",
                "timeout",
            )
        metrics.COMMAND_SECONDS.observe(time.perf_counter() - started)
        if reply.ok:
            metrics.COMMANDS.labels(type_, "ok").inc()
            return reply
        code = reply.code or "rejected"
        metrics.COMMANDS.labels(type_, code if code in ("rejected", "invalid", "expired") else "error").inc()
        detail = reply.error or f"the state service refused the command ({code})"
        if code == "invalid":
            raise CommandFailedError(422, detail, code)
        if code == "expired":
            raise CommandFailedError(503, detail, code)
        raise CommandFailedError(409, detail, code)
