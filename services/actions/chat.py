"""The Twitch chat bot (IRC with IRCv3 tags, on jaraco's ``irc`` library).

The bot has its own thread running the IRC reactor: it logs in with the
user token, asks for Twitch's tags, joins the channel, answers ``!wl`` /
``!record`` (rate-limited) and passes ``!win`` / ``!loss`` / ``!draw`` /
``!undo`` from the broadcaster and moderators to the state service as the
admin page's commands. Results are posted by :class:`ChatAction`, driven
by the event log like every other action, through :meth:`ChatBot.say`.

Who is a moderator is read from the tags Twitch's server puts on each
message (``badges=moderator/1``); a user cannot set them.
"""

from __future__ import annotations

import logging
import queue
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import irc.client
import redis

from services.actions import metrics as M
from services.actions.delivery import RetryableError
from services.actions.formatting import (
    MODERATOR_COMMANDS,
    ChatCommandName,
    Cooldown,
    EventContext,
    event_text,
    may_run,
    parse_chat_command,
    record_text,
    tags_dict,
)
from services.common.config.settings import ChatSettings
from services.common.contracts.keys import Keys
from services.common.contracts.messages import Counts, Event, MessageError, Reply, StateSnapshot
from services.common.infra.command_client import CommandClient, new_command

log = logging.getLogger("owc.actions.chat")

TWITCH_CAPS = "twitch.tv/tags twitch.tv/commands"
AUTH_FAILURE_MARKERS = ("authentication failed", "improperly formatted auth", "bad password", "access denied",
                        "invalid nick")
CONNECT_TIMEOUT_S = 10.0
REGISTER_TIMEOUT_S = 30.0


def check_chat_settings(s: ChatSettings) -> str | None:
    """One line naming what is missing, or ``None``."""
    if not s.nick:
        return "actions.chat.enabled is true but actions.chat.nick (the bot account's login) is empty"
    if s.token is None or not s.token.get_secret_value():
        return "actions.chat.enabled is true but actions.chat.token (the bot account's user token) is empty"
    return None


def irc_password(token: str) -> str:
    """Twitch wants ``PASS oauth:<token>``; accept the token with or without the prefix."""
    return token if token.startswith("oauth:") else f"oauth:{token}"


@dataclass
class _Line:
    text: str
    sent: threading.Event = field(default_factory=threading.Event)
    # queued -> sending (handed to the socket) | cancelled (given up before it was); never held during I/O
    lock: threading.Lock = field(default_factory=threading.Lock)
    sending: bool = False
    cancelled: bool = False


class ChatBot:
    def __init__(
        self, settings: ChatSettings, client: redis.Redis, keys: Keys, clock: Callable[[], float] = time.monotonic,
        delay_s: float = 0.0,
    ) -> None:
        self.settings = settings
        self.delay_s = delay_s  # actions.stream_delay_s: !wl answers with what viewers can see
        self.client = client
        self.keys = keys
        self.clock = clock
        self.nick = settings.nick.lower()
        self.irc_channel = "#" + (settings.twitch_channel or settings.nick).lower().lstrip("#")
        self.cooldown = Cooldown(settings.command_cooldown_s)
        self.state = "starting"  # connecting | connected | auth_failed | disconnected | stopped
        self.auth_failures = 0
        self.logins = 0
        self._auth_reported = False
        self._welcomed = False
        self._joined = threading.Event()
        self._outbox: queue.Queue[_Line] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.predict_hook: Callable[[str], str] | None = None  # set by the Twitch actions: `!predict`
        # the irc library logs every line it sends at DEBUG, the PASS line with the token included
        logging.getLogger("irc").setLevel(max(logging.INFO, logging.getLogger("irc").getEffectiveLevel()))
        self.reactor = irc.client.Reactor()
        self.conn: Any = self.reactor.server()
        # once: it wraps send_raw, and the connection object is reused by every reconnect
        self.conn.set_rate_limit(1.5)  # Twitch: 20 lines per 30 s for an account that is not a moderator
        for event, handler in (
            ("welcome", self._on_welcome), ("join", self._on_join), ("pubmsg", self._on_pubmsg),
            ("privnotice", self._on_notice), ("pubnotice", self._on_notice), ("error", self._on_error),
            ("disconnect", self._on_disconnect), ("reconnect", self._on_reconnect),
        ):
            self.reactor.add_global_handler(event, handler)

    # ------------------------------------------------------------------ public

    @property
    def joined(self) -> bool:
        return self._joined.is_set()

    def health(self) -> dict[str, str | int | float | bool]:
        return {"chat": self.state, "chat_channel": self.irc_channel}

    def start(self, stop: threading.Event) -> None:
        self._thread = threading.Thread(target=self.run, args=(stop,), name="chat-bot", daemon=True)
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def say(self, text: str, timeout: float = 5.0) -> None:
        """Send a line to the channel and wait until it went out; :class:`RetryableError` if it cannot.

        ``timeout`` is a total deadline: a line not handed to the socket by then is cancelled (it will
        never go out, so a retry cannot post it twice); one being handed over counts as sent.
        """
        if not self.joined:
            raise RetryableError(f"chat is not connected ({self.state})")
        line = _Line(text)
        self._outbox.put(line)
        if not line.sent.wait(timeout):
            with line.lock:
                if not line.sending:
                    line.cancelled = True
                    raise RetryableError(f"chat did not send the line within {timeout:g} s")

    # ------------------------------------------------------------------ the loop

    def _connect_factory(self, address: tuple[str, int]) -> socket.socket:
        sock = socket.create_connection(address, timeout=CONNECT_TIMEOUT_S)
        if self.settings.tls:
            context = ssl.create_default_context()
            sock = context.wrap_socket(sock, server_hostname=self.settings.server)
        sock.settimeout(None)
        return sock

    def run(self, stop: threading.Event) -> None:
        s = self.settings
        delay = 1.0
        token = s.token.get_secret_value() if s.token else ""
        while not stop.is_set():
            self.state = "connecting"
            self._welcomed = False
            try:
                self.conn.connect(s.server, s.port, self.nick, password=irc_password(token),
                                  connect_factory=self._connect_factory)
            except irc.client.ServerConnectionError as exc:
                self.state = "disconnected"
                log.warning("chat: cannot reach %s:%d (%s); trying again in %.0f s", s.server, s.port,
                            exc.__cause__ or exc, delay)
            else:
                connected_at = time.monotonic()
                while not stop.is_set() and self.conn.is_connected():
                    self.reactor.process_once(0.2)
                    self._flush_outbox()
                    if not self._welcomed and time.monotonic() - connected_at > REGISTER_TIMEOUT_S:
                        log.warning("chat: %s accepted the connection but never logged us in; reconnecting",
                                    s.server)
                        self.conn.disconnect("timeout")
                if stop.is_set():
                    self.state = "stopped"
                    if self.conn.is_connected():
                        self.conn.disconnect("bye")
                    break
                if self._welcomed:
                    delay = 1.0  # it worked for a while: start the backoff again
            if self.state == "auth_failed":
                delay = s.reconnect_max_s  # a wrong token stays wrong; don't hammer the server
            stop.wait(delay)
            delay = min(delay * 2, s.reconnect_max_s)
        self.state = "stopped"
        M.CHAT_CONNECTED.set(0)

    def _flush_outbox(self) -> None:
        while self.joined:
            try:
                line = self._outbox.get_nowait()
            except queue.Empty:
                return
            with line.lock:
                if line.cancelled:
                    continue
                line.sending = True
            self.conn.privmsg(self.irc_channel, line.text)
            line.sent.set()

    def _reply(self, text: str) -> None:
        """Queue a line without waiting (from the reactor thread or a command thread)."""
        self._outbox.put(_Line(text))

    # ------------------------------------------------------------------ IRC events

    def _on_welcome(self, conn: Any, _event: Any) -> None:
        self._welcomed = True
        conn.cap("REQ", *TWITCH_CAPS.split())
        conn.join(self.irc_channel)

    def _on_join(self, _conn: Any, event: Any) -> None:
        if irc.client.NickMask(event.source).nick.lower() != self.nick:
            return
        self._joined.set()
        self.state = "connected"
        self.logins += 1
        self._auth_reported = False
        M.CHAT_CONNECTED.set(1)
        log.info("chat: joined %s on %s as %s", self.irc_channel, self.settings.server, self.nick)

    def _auth_failed(self, text: str) -> None:
        self.state = "auth_failed"
        self.auth_failures += 1
        if not self._auth_reported:
            self._auth_reported = True
            log.error(
                "chat: %s refused the login of %r (%s): check actions.chat.token, a user access token of that "
                "account with the chat:read and chat:edit scopes; trying again every %.0f s",
                self.settings.server, self.nick, text, self.settings.reconnect_max_s,
            )

    def _on_notice(self, _conn: Any, event: Any) -> None:
        text = " ".join(event.arguments)
        if not self._welcomed and any(m in text.lower() for m in AUTH_FAILURE_MARKERS):
            self._auth_failed(text)

    def _on_error(self, _conn: Any, event: Any) -> None:
        text = " ".join(event.arguments) or str(event.target or "")
        if not self._welcomed and any(m in text.lower() for m in AUTH_FAILURE_MARKERS):
            self._auth_failed(text)
        else:
            log.warning("chat: the server closed the connection: %s", text)

    def _on_disconnect(self, _conn: Any, _event: Any) -> None:
        was_joined = self.joined
        self._joined.clear()
        M.CHAT_CONNECTED.set(0)
        if self.state == "stopped":
            return
        if self.state != "auth_failed":
            self.state = "disconnected"
        if was_joined:
            log.warning("chat: disconnected from %s; reconnecting", self.settings.server)

    def _on_reconnect(self, conn: Any, _event: Any) -> None:
        log.info("chat: the server asked for a reconnect")
        conn.disconnect("reconnect")

    def _on_pubmsg(self, _conn: Any, event: Any) -> None:
        if str(event.target).lower() != self.irc_channel:
            return
        text = event.arguments[0] if event.arguments else ""
        command = parse_chat_command(text)
        if command is None:
            return
        tags = tags_dict(event.tags)
        user = tags.get("display-name") or irc.client.NickMask(event.source).nick
        if not may_run(command, tags):
            M.CHAT_COMMANDS.labels(command, "ignored").inc()  # silently: no reply to non-moderators
            return
        if command == "record":
            if not self.cooldown.allow(self.clock()):
                M.CHAT_COMMANDS.labels(command, "limited").inc()
                return
            self._reply(f"@{user} {self._record()}")
            M.CHAT_COMMANDS.labels(command, "ok").inc()
            return
        if command == "predict":
            hook = self.predict_hook
            self._reply(f"@{user} {hook(user) if hook else 'predictions are not set up (actions.twitch)'}")
            M.CHAT_COMMANDS.labels(command, "ok").inc()
            return
        # a command waits for the state service: not on the reactor thread
        threading.Thread(target=self._run_command, args=(command, user), name="chat-command", daemon=True).start()

    # ------------------------------------------------------------------ counter

    def _record(self) -> str:
        """The record viewers can see: with a stream delay, the counts of the last event older than the
        delay (the result still inside it would be a spoiler); else the current counts."""
        channel = self.settings.counter_channel
        if self.delay_s > 0:
            cutoff = int((time.time() - self.delay_s) * 1000)
            last = self.client.xrevrange(self.keys.events(channel), max=str(cutoff), count=1) or []
            for _eid, fields in last:
                try:
                    return record_text(Event.from_fields(fields or {}).counts)
                except MessageError as exc:
                    log.warning("chat: unreadable event: %s", exc)
            if self.client.xlen(self.keys.events(channel)):
                return record_text(Counts())  # every event of the channel is still inside the delay
        fields = self.client.hgetall(self.keys.state(channel))
        counts = Counts()
        if fields:
            try:
                counts = StateSnapshot.from_fields(fields).counts
            except MessageError as exc:
                log.warning("chat: unreadable state snapshot: %s", exc)
        return record_text(counts)

    def _run_command(self, command: ChatCommandName, user: str) -> None:
        """Append the admin page's command for a moderator and wait for the state service's reply."""
        s = self.settings
        cmd = new_command(
            s.counter_channel, "undo" if command == "undo" else "adjust", s.command_timeout_s,
            outcome=MODERATOR_COMMANDS[command], delta=None if command == "undo" else 1, note=f"chat: {user}",
        )
        try:
            reply = CommandClient(self.client, self.keys).send(cmd)
        except redis.RedisError as exc:
            log.warning("chat: !%s from %s failed: Redis: %s", command, user, exc)
            reply = None
        except MessageError:
            reply = Reply(cmd.request_id, False, error="unreadable reply")
        if reply is None:
            M.CHAT_COMMANDS.labels(command, "failed").inc()
            self._reply(f"@{user} the counter did not answer; nothing was changed")
            return
        if reply.ok:
            # the chat line about the result comes from the event log, like every other action
            M.CHAT_COMMANDS.labels(command, "ok").inc()
            log.info("chat: !%s from %s applied (event %s)", command, user, reply.event_id)
        else:
            M.CHAT_COMMANDS.labels(command, "failed").inc()
            self._reply(f"@{user} !{command} not applied: {reply.error}")


class ChatAction:
    """Posts each result and correction of the bot's counter channel in chat."""

    name = "chat"
    delayed = True  # viewers must see the banner before the chat line

    def __init__(self, bot: ChatBot) -> None:
        self.bot = bot

    def describe(self) -> str:
        return f"chat ({self.bot.irc_channel} on {self.bot.settings.server})"

    def wants(self, ctx: EventContext) -> bool:
        s = self.bot.settings
        return s.post_results and ctx.channel == s.counter_channel and event_text(ctx.event, ctx.test) is not None

    def perform(self, ctx: EventContext) -> str:
        text = event_text(ctx.event, ctx.test)
        if text is None:
            return "nothing to say"
        self.bot.say(text)
        return "posted"
