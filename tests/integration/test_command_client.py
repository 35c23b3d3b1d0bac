"""The one command client (services/common/infra/command_client.py) against a real redis-server."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import redis
import redis.asyncio as aioredis

from services.common.contracts.keys import Keys
from services.common.contracts.messages import Command, Counts, MessageError, Reply
from services.common.infra.command_client import AsyncCommandClient, CommandClient, new_command
from tests.support.redis_proc import RedisServer


def answer_when_it_arrives(client: redis.Redis, keys: Keys, reply: bytes | None = None) -> threading.Thread:
    """Play the state service: read the next command, push a reply (ok, or ``reply`` as given)."""

    def run() -> None:
        entries = client.xread({keys.commands: "0"}, count=1, block=5000)
        command = Command.from_fields(entries[0][1][0][1])
        body = reply if reply is not None else Reply(command.request_id, True, event_id="1-1").to_json()
        client.rpush(keys.reply(command.request_id), body)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_command_gets_its_reply_and_carries_its_deadline(redis_client: redis.Redis, keys: Keys) -> None:
    helper = answer_when_it_arrives(redis_client, keys)
    command = new_command("default", "set", 5.0, counts=Counts(1, 2, 3), note="n")
    reply = CommandClient(redis_client, keys).send(command)
    helper.join(5)
    assert reply == Reply(command.request_id, True, event_id="1-1")
    assert command.deadline - command.issued_at == 5000
    sent = Command.from_fields(redis_client.xrange(keys.commands)[0][1])  # type: ignore[index,arg-type]
    assert (sent.type, sent.counts, sent.deadline) == ("set", Counts(1, 2, 3), command.deadline)


def test_no_reply_by_the_deadline_is_none_and_a_passed_deadline_never_blocks(
    redis_client: redis.Redis, keys: Keys
) -> None:
    client = CommandClient(redis_client, keys)
    started = time.monotonic()
    assert client.send(new_command("default", "undo", 0.3)) is None
    assert 0.25 <= time.monotonic() - started < 2.0
    started = time.monotonic()
    assert client.send(new_command("default", "undo", -1.0)) is None  # (BLPOP 0 would block forever)
    assert time.monotonic() - started < 0.5


def test_an_unreadable_reply_is_a_message_error(redis_client: redis.Redis, keys: Keys) -> None:
    helper = answer_when_it_arrives(redis_client, keys, reply=b"{not json")
    with pytest.raises(MessageError):
        CommandClient(redis_client, keys).send(new_command("default", "undo", 5.0))
    helper.join(5)


def test_the_async_face_is_the_same_client(redis_server: RedisServer, redis_client: redis.Redis, keys: Keys) -> None:
    async def main() -> tuple[Reply | None, Reply | None, str]:
        client = aioredis.Redis.from_url(redis_server.url)
        try:
            sender = AsyncCommandClient(client, keys)
            command = new_command("default", "adjust", 5.0, outcome="victory", delta=1)
            helper = answer_when_it_arrives(redis_client, keys)
            got = await sender.send(command)
            helper.join(5)
            return got, await sender.send(new_command("default", "undo", 0.2)), command.request_id
        finally:
            await client.aclose()

    got, late, request_id = asyncio.run(main())
    assert got == Reply(request_id, True, event_id="1-1") and late is None
