"""``owc scan --import``: hand the results to the state service (the single writer) and wait for its answer.

One ``scan_import`` command (``services/common/contracts/scanimport.py``), sent with the shared command client; the
state
service adds the results the channel's history does not hold yet. How many
were added is read back from the event log (the events carry their keys).
"""

from __future__ import annotations

from typing import Any, cast

import redis

from services.common.contracts.keys import Keys
from services.common.contracts.messages import Event, MessageError
from services.common.contracts.scanimport import ScanImport, parse_key
from services.common.infra.command_client import CommandClient, new_command


class ImportFailed(RuntimeError):
    """The state service refused the import or did not answer (one sentence)."""


def imported_here(client: redis.Redis, keys: Keys, channel: str, digest: str) -> tuple[int, str]:
    """How many results of the recording with hash prefix ``digest`` the log holds, and its current session."""
    found, session = 0, ""
    for _eid, fields in cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(keys.events(channel))):
        try:
            event = Event.from_fields(fields)
        except MessageError:
            continue
        session = event.session or session
        key = parse_key(event.request_id) if event.source == "import" else None
        if key is not None and key[0] == digest:
            found += 1
    return found, session


def send(client: redis.Redis, keys: Keys, channel: str, batch: ScanImport, timeout_s: float = 10.0) -> dict[str, Any]:
    """Send the command, wait for the reply; ``{"added", "already", "channel", "session", "event_id"}``."""
    digest = batch.sha256[:32]
    before, _ = imported_here(client, keys, channel, digest)
    command = new_command(channel, "scan_import", timeout_s, payload=batch.to_json(),
                          note=f"owc scan {batch.recording}")
    reply = CommandClient(client, keys).send(command)
    if reply is None:
        raise ImportFailed(f"the state service did not answer within {timeout_s:g} s (is `owc state` or `owc run` "
                           "running against this Redis?); nothing was imported")
    if not reply.ok:
        raise ImportFailed(f"the state service refused the import: {reply.error}")
    after, session = imported_here(client, keys, channel, digest)
    added = after - before
    return {"added": added, "already": len(batch.results) - added, "channel": channel, "session": session,
            "event_id": reply.event_id}
