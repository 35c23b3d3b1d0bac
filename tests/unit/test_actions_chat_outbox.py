"""The chat bot's outbox: a line that timed out is never sent later (its retry would send it twice)."""

from __future__ import annotations

from typing import Any

import pytest

from services.actions.chat import ChatBot, irc_password
from services.actions.delivery import RetryableError
from services.common.config.settings import ChatSettings
from services.common.contracts.keys import Keys


class FakeConn:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def privmsg(self, target: str, text: str) -> None:
        self.sent.append((target, text))


def bot() -> ChatBot:
    settings = ChatSettings(enabled=True, nick="OwcBot", token="t", twitch_channel="Streamer")  # type: ignore[arg-type]
    b = ChatBot(settings, client=None, keys=Keys("x"))  # type: ignore[arg-type]
    b.conn = FakeConn()
    return b


def test_not_connected_is_a_retryable_error() -> None:
    with pytest.raises(RetryableError, match="not connected"):
        bot().say("hello")


def test_a_timed_out_line_is_dropped_not_sent_late() -> None:
    b = bot()
    b._joined.set()
    conn: Any = b.conn
    with pytest.raises(RetryableError, match="did not send the line within"):
        b.say("VICTORY! today 1W 0L 0D, 100%", timeout=0.01)  # nobody flushes: the reactor is "stuck"
    b._reply("@viewer today 1W 0L 0D, 100%")
    b._flush_outbox()
    assert conn.sent == [("#streamer", "@viewer today 1W 0L 0D, 100%")]


@pytest.mark.parametrize(("token", "password"), [("abc", "oauth:abc"), ("oauth:abc", "oauth:abc")])
def test_irc_password(token: str, password: str) -> None:
    assert irc_password(token) == password
