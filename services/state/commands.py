"""A command from the gateway or the CLI (adjust, undo, reset, import, …), applied by the active writer.

Its reply is committed with its effect and remembered by request id, so a
retried command is answered again and applied once. A command that cannot be
read is answered (when it says who asked) and dead-lettered; one that breaks
the rules is answered with an error, never crash-looped on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from services.common.contracts.codec import text
from services.common.contracts.keys import InvalidChannelError, validate_channel
from services.common.contracts.messages import Command, MessageError, Reply
from services.common.infra.streams import Delivery
from services.state import metrics as M
from services.state.history import session_updates
from services.state.rules import CommandInput, Rejected, transition
from services.state.scanimport import only_new
from services.state.store import Commit

if TYPE_CHECKING:
    from services.state.worker import StateWorker

log = logging.getLogger("owc.state")


def handle_command(worker: StateWorker, delivery: Delivery, commit: Callable[[Commit], None]) -> None:
    """Apply one command entry of ``owc:commands`` and commit it with its reply and ack (``commit``)."""
    acks = {worker.keys.commands: [delivery.id]}
    try:
        cmd = Command.from_fields(delivery.fields)
        validate_channel(cmd.channel)
    except (MessageError, InvalidChannelError) as exc:
        request_id = text(delivery.fields.get(b"request_id", b""), "replace")
        if request_id:
            worker.store.push_reply(Reply(request_id, False, error=f"invalid command: {exc}", code="invalid"))
        worker.commands.dead_letter(delivery, str(exc))
        M.DEAD_LETTERS.labels("commands").inc()
        M.COMMANDS.labels("unknown", "invalid").inc()
        return
    ch = worker.channel(cmd.channel)
    stored = worker.store.stored_reply(cmd.channel, cmd.request_id)
    if stored is not None:  # a retry: answer again, apply nothing
        worker.store.push_reply(stored, acks)
        M.COMMANDS.labels(cmd.type, "repeat").inc()
        return
    if cmd.type == "scan_import":  # which of its results are new depends on the log
        cmd = only_new(cmd, worker.store.read_events(cmd.channel))
    before = ch.machine
    now = worker.now_ms()
    try:
        after, events = transition(before, CommandInput(cmd, now), worker.rules)
        reply = Reply(cmd.request_id, True, event_id=events[-1].id if events else "")
        remember, result = True, "ok"
    except Rejected as exc:
        after, events = before, []
        reply = Reply(cmd.request_id, False, error=exc.message, code=exc.code)
        # an expired command was never applied: a retry with a new deadline may still be
        remember, result = exc.code != "expired", exc.code
        log.info("channel %s: %s command %s refused (%s): %s", cmd.channel, cmd.type, cmd.request_id,
                 exc.code, exc.message)
    except Exception as exc:  # a bug must not crash-loop the service on this entry
        log.exception("channel %s: %s command %s broke the rules", cmd.channel, cmd.type, cmd.request_id)
        worker.store.push_reply(Reply(cmd.request_id, False, error=f"internal error in the state service: {exc}",
                                    code="error"))
        worker.commands.dead_letter(delivery, f"state rules failed: {exc!r}")
        M.DEAD_LETTERS.labels("commands").inc()
        M.COMMANDS.labels(cmd.type, "error").inc()
        return
    sessions = session_updates(before, after, events) if events else {}
    commit(Commit(cmd.channel, before, after, events, sessions, [(reply, remember)], acks))
    M.COMMANDS.labels(cmd.type, result).inc()
