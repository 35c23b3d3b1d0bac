"""The chat bot against a real IRC server (Debian's ngIRCd) with Twitch's tags added by a proxy.

See tests/support/irc.py for why the tags come from a proxy: ngIRCd has no
IRCv3 message-tags, and on Twitch it is the server that adds them too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from services.actions.chat import ChatAction, ChatBot
from services.common.config.settings import Settings
from services.common.contracts.keys import Keys
from services.common.contracts.messages import StateSnapshot
from tests.support.actions import WorkerThread, start_worker
from tests.support.gateway import ServiceProcess, start_state
from tests.support.irc import IrcServer, IrcUser, TagProxy
from tests.support.redis_proc import RedisServer
from tests.support.waiting import wait_until

CHANNEL = "#streamer"
BOT = "owcbot"


@dataclass
class Chat:
    server: IrcServer
    proxy: TagProxy
    bot: ChatBot
    stop: threading.Event
    worker: WorkerThread
    state: ServiceProcess

    def user(self, nick: str) -> IrcUser:
        return IrcUser(self.server.port, nick, self.server.password)

    def bot_lines(self, user: IrcUser) -> list[str]:
        return user.messages_from(BOT, CHANNEL)


def chat_settings(
    settings_factory: Callable[..., Settings], port: int, token: str = "tok", **extra: object
) -> Settings:
    return settings_factory(
        actions__chat__enabled=True, actions__chat__server="127.0.0.1", actions__chat__port=port,
        actions__chat__tls=False, actions__chat__nick=BOT, actions__chat__token=token,
        actions__chat__twitch_channel="streamer", actions__chat__reconnect_max_s=1,
        actions__retry_initial_s=0.2, actions__retry_max_s=1, **extra,
    )


@pytest.fixture
def chat(
    tmp_path: Path, redis_server: RedisServer, redis_client: redis.Redis, keys: Keys, prefix: str,
    settings_factory: Callable[..., Settings],
) -> Iterator[Chat]:
    server = IrcServer(tmp_path / "irc", password="oauth:tok").start()  # ngIRCd checks PASS like Twitch
    proxy = TagProxy(server.port)
    state = start_state(tmp_path, redis_server.url, prefix)
    settings = chat_settings(settings_factory, proxy.port, actions__chat__command_cooldown_s=600)
    stop = threading.Event()
    bot = ChatBot(settings.actions.chat, redis_client, keys)
    bot.start(stop)
    worker = start_worker(redis_client, keys, settings, [ChatAction(bot)])
    c = Chat(server, proxy, bot, stop, worker, state)
    try:
        wait_until(lambda: bot.joined, timeout=20, message="the bot in the channel")
        yield c
    finally:
        stop.set()
        c.worker.close()  # the test may have replaced it
        bot.join(10)
        state.stop()
        proxy.close()
        c.server.stop()  # the test may have restarted it


def counts(client: redis.Redis, keys: Keys) -> tuple[int, int, int]:
    c = StateSnapshot.from_fields(client.hgetall(keys.state("default"))).counts
    return c.victories, c.defeats, c.draws


def test_results_record_and_moderator_commands(chat: Chat, redis_client: redis.Redis, keys: Keys) -> None:
    chat.proxy.set_badges("viewer", "subscriber/3")
    chat.proxy.set_badges("mod", "moderator/1,subscriber/12", display_name="TheMod")
    chat.proxy.set_badges("streamer", "broadcaster/1")
    viewer, mod, streamer = chat.user("viewer"), chat.user("mod"), chat.user("streamer")
    try:
        for user in (viewer, mod, streamer):
            user.join(CHANNEL)
        viewer.say(CHANNEL, "!wl")
        wait_until(lambda: chat.bot_lines(viewer) == ["@viewer today 0W 0L 0D"], message="the record answered")

        viewer.say(CHANNEL, "!record")  # within the cooldown: not answered
        viewer.say(CHANNEL, "!win")  # not a moderator: ignored, silently
        # the mod sees the viewer's lines relayed, so the bot has them before the mod's command
        wait_until(lambda: mod.has("PRIVMSG #streamer :!win"), message="the viewer's lines relayed")
        mod.say(CHANNEL, "!win")
        wait_until(lambda: "VICTORY! today 1W 0L 0D, 100%" in chat.bot_lines(viewer), timeout=20,
                   message="the moderator's win posted")
        mod.say(CHANNEL, "!undo")
        wait_until(lambda: "correction: that was not a victory. today 0W 0L 0D" in chat.bot_lines(viewer),
                   timeout=20, message="the undo's correction posted")
        streamer.say(CHANNEL, "!loss")
        wait_until(lambda: "DEFEAT. today 0W 1L 0D, 0%" in chat.bot_lines(viewer), timeout=20,
                   message="the broadcaster's loss posted")
        assert counts(redis_client, keys) == (0, 1, 0)
        lines = chat.bot_lines(viewer)
    finally:
        for user in (viewer, mod, streamer):
            user.close()
    assert lines == [
        "@viewer today 0W 0L 0D",
        "new session: today 0W 0L 0D",  # the channel's first command opens its first session
        "VICTORY! today 1W 0L 0D, 100%",
        "correction: that was not a victory. today 0W 0L 0D",
        "DEFEAT. today 0W 1L 0D, 0%",
    ]
    done = redis_client.hgetall(keys.action_done("chat"))
    assert len(done) == 4  # one record per posted event


def test_the_bot_reconnects_after_the_server_restarts(chat: Chat, redis_client: redis.Redis, keys: Keys) -> None:
    assert chat.bot.logins == 1
    port = chat.server.port
    chat.server.stop()
    wait_until(lambda: not chat.bot.joined, timeout=10, message="the bot to notice")
    chat.server = IrcServer(chat.server.workdir, port=port, password="oauth:tok").start()
    wait_until(lambda: chat.bot.logins == 2 and chat.bot.joined, timeout=30, message="the bot back in")
    chat.proxy.set_badges("mod", "moderator/1")
    mod = chat.user("mod")
    try:
        mod.join(CHANNEL)
        mod.say(CHANNEL, "!draw")
        wait_until(lambda: any(line.startswith("DRAW.") for line in chat.bot_lines(mod)), timeout=20,
                   message="a result posted after the reconnect")
    finally:
        mod.close()
    assert counts(redis_client, keys) == (0, 0, 1)


def test_a_wrong_token_gets_one_readable_log_line(
    tmp_path: Path, redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = IrcServer(tmp_path / "irc", password="oauth:the-right-token").start()
    settings = chat_settings(settings_factory, server.port, token="a-wrong-token")
    stop = threading.Event()
    bot = ChatBot(settings.actions.chat, redis_client, keys)
    caplog.set_level(logging.DEBUG)
    bot.start(stop)
    try:
        wait_until(lambda: bot.auth_failures >= 3, timeout=30, message="three refused logins")
        assert bot.state == "auth_failed" and not bot.joined
    finally:
        stop.set()
        bot.join(10)
        server.stop()
    refused = [r.getMessage() for r in caplog.records if "refused the login" in r.getMessage()]
    assert len(refused) == 1, refused
    assert "actions.chat.token" in refused[0] and "'owcbot'" in refused[0]
    assert all("a-wrong-token" not in r.getMessage() for r in caplog.records)


def test_the_right_token_logs_in(
    tmp_path: Path, redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings],
) -> None:
    """The same server as above accepts the token with or without Twitch's ``oauth:`` prefix."""
    server = IrcServer(tmp_path / "irc", password="oauth:the-right-token").start()
    stop = threading.Event()
    bot = ChatBot(chat_settings(settings_factory, server.port, token="the-right-token").actions.chat,
                  redis_client, keys)
    bot.start(stop)
    try:
        wait_until(lambda: bot.joined, timeout=20, message="logged in and joined")
        started = time.monotonic()
        bot.say("hello")
        assert time.monotonic() - started < 5
    finally:
        stop.set()
        bot.join(10)
        server.stop()


def test_a_posted_result_is_not_posted_again_after_a_lost_ack(
    chat: Chat, redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings],
) -> None:
    """Chat cannot dedupe: the record written before the ack is what keeps a redelivery silent."""
    chat.proxy.set_badges("mod", "moderator/1")
    mod = chat.user("mod")
    try:
        mod.join(CHANNEL)
        mod.say(CHANNEL, "!win")
        wait_until(lambda: "VICTORY! today 1W 0L 0D, 100%" in chat.bot_lines(mod), timeout=20, message="posted")
        wait_until(lambda: redis_client.xpending(keys.events("default"), "actions")["pending"] == 0,
                   message="acked")
        chat.worker.close()
        # as after a kill -9 between the record and the ack: the group hands every event out again
        redis_client.xgroup_setid(keys.events("default"), "actions", "0")
        settings = chat_settings(settings_factory, chat.proxy.port)
        chat.worker = start_worker(redis_client, keys, settings, [ChatAction(chat.bot)])
        wait_until(lambda: chat.worker.worker.processed >= 2, message="the events handed out again")
        mod.say(CHANNEL, "!loss")
        wait_until(lambda: "DEFEAT. today 1W 1L 0D, 50%" in chat.bot_lines(mod), timeout=20, message="next one")
        lines = chat.bot_lines(mod)
    finally:
        mod.close()
    assert lines == ["new session: today 0W 0L 0D", "VICTORY! today 1W 0L 0D, 100%", "DEFEAT. today 1W 1L 0D, 50%"]
