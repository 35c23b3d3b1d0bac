"""The Twitch user token: the file it lives in (0600), the device code flow, refresh and validation.

One token for the whole service, obtained by ``owc actions twitch-login``. It
is refreshed a few minutes before it expires (and once more when Twitch
answers 401), and checked with ``/oauth2/validate``: a revoked token or one
without the scopes needed is one clear log line and a red row on the admin
page (``owc:twitch:status``). The token never reaches a log line.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from services.common.config.sections_twitch import TWITCH_SCOPES, TwitchSettings

log = logging.getLogger("owc.actions.twitch")

REFRESH_BEFORE_S = 300  # refresh when the token expires within this many seconds
LOGIN_HINT = "run `owc actions twitch-login`"


class TokenError(Exception):
    """No usable token (missing, revoked, refresh refused, scopes missing): retrying will not help.

    ``state`` is what the admin page shows: ``missing``, ``refused`` or ``scopes``.
    """

    def __init__(self, state: str, message: str) -> None:
        super().__init__(message)
        self.state = state


@dataclass(frozen=True)
class Token:
    access_token: str
    refresh_token: str
    expires_at: float  # epoch seconds
    scopes: tuple[str, ...]
    client_id: str
    user_id: str = ""
    login: str = ""

    def missing_scopes(self, needed: Sequence[str]) -> list[str]:
        return [s for s in needed if s not in self.scopes]

    def to_json(self) -> str:
        data = asdict(self)
        data["scopes"] = list(self.scopes)
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> Token:
        data = json.loads(text)
        return cls(str(data["access_token"]), str(data.get("refresh_token", "")), float(data["expires_at"]),
                   tuple(str(s) for s in data.get("scopes", [])), str(data.get("client_id", "")),
                   str(data.get("user_id", "")), str(data.get("login", "")))

    def __repr__(self) -> str:  # never the secrets
        return f"Token(login={self.login!r}, scopes={self.scopes}, expires_at={self.expires_at:.0f})"


def save_token(path: Path, token: Token) -> None:
    """Write the token file atomically, readable by its owner only (0600 from its creation)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token.to_json())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def load_token(path: Path) -> Token | None:
    try:
        return Token.from_json(path.read_text())
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise TokenError("missing", f"the Twitch token file {path} is unreadable ({type(exc).__name__}): "
                         f"{LOGIN_HINT}") from None


def _message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(data, dict):
        return str(data.get("message") or data.get("error") or f"HTTP {response.status_code}")
    return f"HTTP {response.status_code}"


def _token_from_answer(data: dict[str, Any], client_id: str, now: float, old: Token | None = None) -> Token:
    scopes = data.get("scope") or (list(old.scopes) if old else [])
    return Token(str(data["access_token"]), str(data.get("refresh_token") or (old.refresh_token if old else "")),
                 now + float(data.get("expires_in", 3600)), tuple(str(s) for s in scopes), client_id,
                 old.user_id if old else "", old.login if old else "")


# ---------------------------------------------------------------- device code flow (owc actions twitch-login)


@dataclass(frozen=True)
class DeviceCode:
    device_code: str
    user_code: str
    verification_uri: str
    interval: float
    expires_in: float


def start_device_flow(client: httpx.Client, s: TwitchSettings, scopes: Sequence[str] = TWITCH_SCOPES) -> DeviceCode:
    r = client.post(f"{s.oauth_url}/device", data={"client_id": s.client_id, "scopes": " ".join(scopes)})
    if r.status_code != 200:
        raise TokenError("missing", f"Twitch refused the sign-in request: {_message(r)} (check actions.twitch."
                         "client_id: a public client of your Twitch application)")
    d = r.json()
    return DeviceCode(str(d["device_code"]), str(d["user_code"]), str(d["verification_uri"]),
                      float(d.get("interval", 5)), float(d.get("expires_in", 1800)))


def poll_device_flow(
    client: httpx.Client, s: TwitchSettings, code: DeviceCode, scopes: Sequence[str] = TWITCH_SCOPES,
    sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time,
) -> Token:
    """Wait until the streamer approved the code (``authorization_pending`` until then)."""
    deadline = clock() + code.expires_in
    interval = code.interval
    while clock() < deadline:
        r = client.post(f"{s.oauth_url}/token", data={
            "client_id": s.client_id, "scopes": " ".join(scopes), "device_code": code.device_code,
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code"})
        if r.status_code == 200:
            return _token_from_answer(r.json(), s.client_id, clock())
        message = _message(r)
        if message == "authorization_pending":
            sleep(interval)
            continue
        if message == "slow_down":
            interval += 5
            sleep(interval)
            continue
        raise TokenError("refused", f"the sign-in did not complete: {message}")
    raise TokenError("refused", "the code expired before it was entered: run `owc actions twitch-login` again")


# ---------------------------------------------------------------- the service's token


class TokenManager:
    """The service's token: loaded from the file, refreshed before expiry, validated once per hour.

    Thread-safe: the prediction loop and the actions share it.
    """

    def __init__(self, settings: TwitchSettings, path: Path, http: httpx.Client,
                 needed: Sequence[str] = ("channel:manage:predictions", "channel:manage:broadcast"),
                 clock: Callable[[], float] = time.time,
                 on_state: Callable[[str, str, str], None] | None = None) -> None:
        self.settings = settings
        self.path = path
        self.http = http
        self.needed = tuple(needed)
        self.clock = clock
        self.on_state = on_state or (lambda state, login, message: None)
        self._token: Token | None = None
        self._validated_at = 0.0
        self._lock = threading.Lock()
        self._said = ""  # the last problem logged (each one once)
        self._bad: TokenError | None = None  # this token is refused: no more requests until the file changes
        self._file_mtime = 0.0

    def fail(self, state: str, message: str) -> TokenError:
        if message != self._said:
            log.error("twitch: %s", message)
            self._said = message
        self.on_state(state, self._token.login if self._token else "", message)
        self._bad = TokenError(state, message)
        return self._bad

    def _file_changed(self) -> bool:
        try:
            mtime = self.path.stat().st_mtime
        except OSError:
            return False
        changed = mtime != self._file_mtime
        self._file_mtime = mtime
        return changed

    def current(self) -> Token:
        """A valid token (refreshed or validated as needed) or :class:`TokenError`."""
        with self._lock:
            if self._file_changed() and self._token is not None and self._bad is not None:
                self._token, self._bad = None, None  # a new login: try it
            if self._bad is not None:
                raise self._bad
            if self._token is None:
                self._token = load_token(self.path)
                if self._token is None:
                    raise self.fail("missing", f"no Twitch token in {self.path}: {LOGIN_HINT}")
            if self._token.expires_at - self.clock() < REFRESH_BEFORE_S:
                self._refresh()
            if not self._token.user_id or self.clock() - self._validated_at > 3600:
                self._validate()
            return self._token

    def refused(self) -> Token:
        """Twitch answered 401 to a request: refresh once and hand back the new token."""
        with self._lock:
            if self._token is None:
                raise self.fail("missing", f"no Twitch token: {LOGIN_HINT}")
            self._refresh()
            self._validate()
            return self._token

    def _refresh(self) -> None:
        token = self._token
        assert token is not None
        if not token.refresh_token:
            raise self.fail("refused", f"the Twitch token expired and has no refresh token: {LOGIN_HINT}")
        try:
            r = self.http.post(f"{self.settings.oauth_url}/token", data={
                "client_id": token.client_id or self.settings.client_id, "grant_type": "refresh_token",
                "refresh_token": token.refresh_token}, timeout=self.settings.timeout_s)
        except httpx.HTTPError as exc:
            raise ConnectionError(f"Twitch's OAuth server did not answer the refresh ({type(exc).__name__})") from None
        if r.status_code != 200:
            if r.status_code >= 500 or r.status_code == 429:
                raise ConnectionError(f"Twitch's OAuth server answered {r.status_code} to the refresh")
            raise self.fail("refused", f"Twitch refused to refresh the token ({_message(r)}): the sign-in "
                                        f"was revoked or expired; {LOGIN_HINT}")
        self._token = _token_from_answer(r.json(), token.client_id or self.settings.client_id, self.clock(), token)
        save_token(self.path, self._token)
        log.info("twitch: token refreshed (valid for %.0f min)", (self._token.expires_at - self.clock()) / 60)

    def _tok(self) -> Token:
        assert self._token is not None, "loaded first"
        return self._token

    def _validate(self) -> None:
        token = self._tok()
        try:
            r = self.http.get(f"{self.settings.oauth_url}/validate",
                              headers={"Authorization": f"OAuth {token.access_token}"}, timeout=self.settings.timeout_s)
        except httpx.HTTPError as exc:
            raise ConnectionError(f"Twitch's OAuth server did not answer ({type(exc).__name__})") from None
        if r.status_code == 401:
            # maybe only expired early: one refresh, then the verdict
            self._refresh()
            r = self.http.get(f"{self.settings.oauth_url}/validate",
                              headers={"Authorization": f"OAuth {self._tok().access_token}"},
                              timeout=self.settings.timeout_s)
        if r.status_code != 200:
            if r.status_code >= 500 or r.status_code == 429:
                raise ConnectionError(f"Twitch's OAuth server answered {r.status_code}")
            raise self.fail("refused", f"Twitch refused the token ({_message(r)}): {LOGIN_HINT}")
        d = r.json()
        scopes = tuple(str(s) for s in d.get("scopes") or ())
        checked = replace(self._tok(), scopes=scopes, user_id=str(d.get("user_id", "")),
                              login=str(d.get("login", "")),
                              expires_at=self.clock() + float(d.get("expires_in", 3600)))
        if (checked.user_id, checked.login, checked.scopes) != (token.user_id, token.login, token.scopes):
            save_token(self.path, checked)
        self._token = checked
        self._validated_at = self.clock()
        missing = checked.missing_scopes(self.needed)
        if missing:
            raise self.fail("scopes", f"the Twitch token of {checked.login} lacks the scopes "
                                       f"{' '.join(missing)}: {LOGIN_HINT}")
        if self._said:
            log.info("twitch: signed in as %s again", checked.login)
            self._said = ""
        self.on_state("ok", checked.login, f"signed in as {checked.login}")
