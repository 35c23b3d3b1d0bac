"""A real IRC server for the chat-bot tests: Debian's ngIRCd, plus Twitch's tags.

ngIRCd 26 has no IRCv3 message-tags: a client line starting with ``@…`` is
refused (``421 Unknown command``) and nothing is relayed with tags. On
Twitch the *server* adds ``badges=…`` to each message, and users cannot set
them; :class:`TagProxy` does the same here: it sits between the bot and
ngIRCd and prefixes each ``PRIVMSG`` from a known test user with that user's
Twitch-format tags (``@badges=moderator/1;display-name=…;mod=1``), so the bot
parses exactly what Twitch would send it.
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

from tests.support.ports import free_port
from tests.support.waiting import wait_until

NGIRCD = "/usr/sbin/ngircd"


def _can_connect(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class IrcServer:
    """``ngircd -n`` on a random loopback port with a temporary config (optionally a server password)."""

    def __init__(self, workdir: Path, port: int | None = None, password: str | None = None) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.password = password
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> IrcServer:
        if not Path(NGIRCD).exists():
            raise RuntimeError("ngircd is not installed: `make setup-dev` (scripts/system-deps.sh test) installs it")
        conf = self.workdir / "ngircd.conf"
        conf.write_text(
            "[Global]\n"
            "Name = irc.owc.test\nInfo = owc test server\nListen = 127.0.0.1\n"
            f"Ports = {self.port}\nMotdPhrase = \"test\"\nServerUID = 0\nServerGID = 0\n"
            + (f"Password = {self.password}\n" if self.password else "")
            + "[Limits]\nMaxNickLength = 30\nPingTimeout = 120\nPongTimeout = 20\n"
            "[Options]\nDNS = no\nIdent = no\nPAM = no\n"
        )
        self._log = (self.workdir / "ngircd.log").open("ab")
        self.proc = subprocess.Popen([NGIRCD, "-n", "-f", str(conf)], stdout=self._log, stderr=subprocess.STDOUT)
        wait_until(lambda: _can_connect(self.port) or self.proc is None or self.proc.poll() is not None,
                   timeout=15, message="ngircd to listen")
        assert self.proc.poll() is None, f"ngircd exited: {(self.workdir / 'ngircd.log').read_text()[-2000:]}"
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        self._log.close()


_PRIVMSG = re.compile(rb"^:([^!\s]+)!\S+ PRIVMSG ")


class TagProxy:
    """Forwards a client to the IRC server, adding Twitch's tags to the PRIVMSGs of known users."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.tags_by_nick: dict[str, str] = {}
        self.port = free_port()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", self.port))
        self._sock.listen(8)
        self.connections = 0
        self._closed = False
        threading.Thread(target=self._accept, name="tag-proxy", daemon=True).start()

    def set_badges(self, nick: str, badges: str, display_name: str | None = None) -> None:
        mod = "1" if "moderator/" in badges else "0"
        self.tags_by_nick[nick.lower()] = (
            f"badge-info=;badges={badges};color=#1E90FF;display-name={display_name or nick};emotes=;"
            f"first-msg=0;flags=;id=00000000-0000-0000-0000-000000000000;mod={mod};room-id=1;subscriber=0;"
            f"tmi-sent-ts=1700000000000;turbo=0;user-id=2;user-type={'mod' if mod == '1' else ''}"
        )

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            self.connections += 1
            threading.Thread(target=self._pump_up, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump_down, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pump_up(client: socket.socket, upstream: socket.socket) -> None:
        try:
            while data := client.recv(4096):
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            _hang_up(client, upstream)

    def _pump_down(self, upstream: socket.socket, client: socket.socket) -> None:
        buffer = b""
        try:
            while data := upstream.recv(4096):
                buffer += data
                *lines, buffer = buffer.split(b"\r\n")
                out = b""
                for line in lines:
                    m = _PRIVMSG.match(line)
                    tags = self.tags_by_nick.get(m.group(1).decode().lower()) if m else None
                    out += (b"@" + tags.encode() + b" " if tags else b"") + line + b"\r\n"
                client.sendall(out)
        except OSError:
            pass
        finally:
            _hang_up(client, upstream, close=True)

    def close(self) -> None:
        self._closed = True
        self._sock.close()


class IrcUser:
    """A raw IRC client for the tests: joins, talks, records every line it receives."""

    def __init__(self, port: int, nick: str, password: str | None = None) -> None:
        self.nick = nick
        self.lines: list[str] = []
        self.times: list[float] = []  # time.time() each line arrived
        self._lock = threading.Lock()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.settimeout(None)
        threading.Thread(target=self._read, name=f"irc-{nick}", daemon=True).start()
        if password:
            self.send(f"PASS {password}")
        self.send(f"NICK {nick}")
        self.send(f"USER {nick} 0 * :{nick}")
        wait_until(lambda: self.has(f" 001 {nick} "), timeout=10, message=f"{nick} registered")

    def _read(self) -> None:
        buffer = b""
        try:
            while data := self.sock.recv(4096):
                buffer += data
                *lines, buffer = buffer.split(b"\r\n")
                for raw in lines:
                    line = raw.decode("utf-8", "replace")
                    if line.startswith("PING"):
                        self.send("PONG" + line[4:])
                    with self._lock:
                        self.lines.append(line)
                        self.times.append(time.time())
        except OSError:
            pass

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\r\n")

    def has(self, text: str) -> bool:
        with self._lock:
            return any(text in line for line in self.lines)

    def join(self, channel: str) -> None:
        self.send(f"JOIN {channel}")
        wait_until(lambda: self.has(f":{self.nick}!") and self.has(f"JOIN :{channel}"), timeout=10,
                   message=f"{self.nick} in {channel}")

    def say(self, channel: str, text: str) -> None:
        self.send(f"PRIVMSG {channel} :{text}")

    def messages_from(self, nick: str, channel: str) -> list[str]:
        """Texts ``nick`` said in ``channel``, in order."""
        prefix = f":{nick}!"
        marker = f" PRIVMSG {channel} :"
        with self._lock:
            return [line.split(marker, 1)[1] for line in self.lines if line.startswith(prefix) and marker in line]

    def timed_messages_from(self, nick: str, channel: str) -> list[tuple[float, str]]:
        """``(arrival time, text)`` of what ``nick`` said in ``channel``, in order."""
        prefix = f":{nick}!"
        marker = f" PRIVMSG {channel} :"
        with self._lock:
            return [(at, line.split(marker, 1)[1]) for at, line in zip(self.times, self.lines, strict=True)
                    if line.startswith(prefix) and marker in line]

    def close(self) -> None:
        try:
            self.send("QUIT :bye")
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def _hang_up(*socks: socket.socket, close: bool = False) -> None:
    """End both directions of a proxied connection (the other pump then sees EOF)."""
    for s in socks:
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
        if close:
            s.close()
