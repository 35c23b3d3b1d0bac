"""The Helix calls these actions make (predictions, markers), with Twitch's errors as our errors.

Twitch answers an error with ``{"error": "Bad Request", "status": 400, "message": "…"}``. What
each status means here:

- 401: the token expired or was revoked: refresh once and try again, then :class:`TokenError`;
- 403: the token lacks a scope (or the user is not the broadcaster): :class:`TokenError` (``scopes``);
- 429: rate limited: :class:`RetryableError`, waiting until ``Ratelimit-Reset`` (epoch seconds);
- 5xx, timeouts, connection errors: :class:`RetryableError`;
- other 4xx: :class:`HelixError` with Twitch's message (the caller decides: "already active",
  "not live", …).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from services.actions.delivery import RetryableError
from services.actions.twitch.tokens import LOGIN_HINT, TokenError, TokenManager
from services.common.config.sections_twitch import TwitchSettings

MAX_RATELIMIT_WAIT_S = 60.0
MAX_ANSWER_BYTES = 1 << 20  # Helix's answers here are a few KiB


class HelixError(Exception):
    """Twitch refused the request (a 4xx other than 401/403/429)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Twitch answered {status}: {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Prediction:
    id: str
    title: str
    status: str  # ACTIVE | LOCKED | RESOLVED | CANCELED
    outcomes: dict[str, str]  # title -> outcome id
    created_at: str
    winning_outcome_id: str | None

    @classmethod
    def from_data(cls, d: dict[str, Any]) -> Prediction:
        return cls(str(d["id"]), str(d.get("title", "")), str(d.get("status", "")),
                   {str(o["title"]): str(o["id"]) for o in d.get("outcomes", [])},
                   str(d.get("created_at", "")), d.get("winning_outcome_id") or None)


def _message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.reason_phrase or f"HTTP {response.status_code}"
    if isinstance(data, dict):
        return str(data.get("message") or data.get("error") or response.status_code)
    return str(response.status_code)


def _plain_sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return False


class Helix:
    def __init__(self, settings: TwitchSettings, tokens: TokenManager, http: httpx.Client,
                 sleep: Callable[[float], bool] | None = None) -> None:
        self.settings = settings
        self.tokens = tokens
        self.http = http
        # waits out a Ratelimit-Reset; returns True when the service is stopping
        self.sleep = sleep or _plain_sleep

    def broadcaster_id(self) -> str:
        try:
            return self.tokens.current().user_id
        except ConnectionError as exc:
            raise RetryableError(str(exc)) from None

    def request(self, method: str, path: str, params: dict[str, str] | None = None,
                body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            token = self.tokens.current()
        except ConnectionError as exc:
            raise RetryableError(str(exc)) from None
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {token.access_token}", "Client-Id": token.client_id}
            try:
                r = self._send(method, f"{self.settings.helix_url}{path}", params, body, headers)
            except httpx.TimeoutException:
                raise RetryableError(f"Twitch did not answer within {self.settings.timeout_s:g} s") from None
            except httpx.HTTPError as exc:
                raise RetryableError(f"Twitch: {type(exc).__name__}") from None
            if r.status_code == 401 and attempt == 1:
                try:
                    token = self.tokens.refused()
                except ConnectionError as exc:
                    raise RetryableError(str(exc)) from None
                continue
            return self._answer(r)
        raise AssertionError("unreachable")

    def _send(self, method: str, url: str, params: dict[str, str] | None, body: dict[str, Any] | None,
              headers: dict[str, str]) -> httpx.Response:
        """One request with a total deadline (``timeout_s``, not per read) and an answer of at most
        :data:`MAX_ANSWER_BYTES`: a server that trickles or floods cannot hold or bloat the service."""
        deadline = time.monotonic() + self.settings.timeout_s
        with self.http.stream(method, url, params=params, json=body, headers=headers,
                              timeout=self.settings.timeout_s) as r:
            data = bytearray()
            for chunk in r.iter_bytes():
                data += chunk
                if len(data) > MAX_ANSWER_BYTES:
                    raise RetryableError(f"Twitch's answer is larger than {MAX_ANSWER_BYTES // 1024} KiB; not read")
                if time.monotonic() > deadline:
                    raise RetryableError(f"Twitch's answer took longer than {self.settings.timeout_s:g} s")
            return httpx.Response(r.status_code, headers=r.headers, content=bytes(data))

    def _answer(self, r: httpx.Response) -> dict[str, Any]:
        if r.is_success:
            if r.status_code == 204 or not r.content:
                return {}
            data = r.json()
            return data if isinstance(data, dict) else {}
        message = _message(r)
        if r.status_code == 401:
            raise self.tokens.fail("refused", f"Twitch refused the token ({message}): {LOGIN_HINT}")
        if r.status_code == 403:
            raise self.tokens.fail("scopes", f"Twitch says the token may not do this ({message}): "
                                              f"{LOGIN_HINT} (it asks for every scope needed)")
        if r.status_code == 429:
            reset = r.headers.get("Ratelimit-Reset")
            wait = 1.0
            if reset and reset.isdigit():
                wait = min(MAX_RATELIMIT_WAIT_S, max(0.0, int(reset) - time.time()))
            self.sleep(wait)
            raise RetryableError(f"Twitch rate limit (429); waited {wait:.0f} s for Ratelimit-Reset")
        if r.status_code >= 500 or r.status_code == 408:
            raise RetryableError(f"Twitch answered {r.status_code}: {message}")
        raise HelixError(r.status_code, message)

    # ------------------------------------------------------------------ predictions

    def create_prediction(self, title: str, outcomes: list[str], window_s: int) -> Prediction:
        data = self.request("POST", "/predictions", body={
            "broadcaster_id": self.broadcaster_id(), "title": title,
            "outcomes": [{"title": t} for t in outcomes], "prediction_window": window_s})
        return Prediction.from_data(data["data"][0])

    def predictions(self, ids: list[str] | None = None, first: int = 5) -> list[Prediction]:
        params: dict[str, str] = {"broadcaster_id": self.broadcaster_id()}
        if ids:
            params["id"] = ids[0]
        else:
            params["first"] = str(first)
        data = self.request("GET", "/predictions", params=params)
        return [Prediction.from_data(d) for d in data.get("data", [])]

    def end_prediction(self, prediction_id: str, status: str, winning_outcome_id: str | None = None) -> Prediction:
        body: dict[str, Any] = {"broadcaster_id": self.broadcaster_id(), "id": prediction_id, "status": status}
        if winning_outcome_id:
            body["winning_outcome_id"] = winning_outcome_id
        data = self.request("PATCH", "/predictions", body=body)
        return Prediction.from_data(data["data"][0])

    # ------------------------------------------------------------------ markers

    def create_marker(self, description: str) -> dict[str, Any]:
        data = self.request("POST", "/streams/markers",
                            body={"user_id": self.broadcaster_id(), "description": description[:140]})
        rows = data.get("data") or [{}]
        return dict(rows[0])


__all__ = ["Helix", "HelixError", "Prediction", "TokenError"]
