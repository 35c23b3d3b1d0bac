"""Webhook actions: POST the event (our JSON, a Discord message or a Streamer.bot action) with httpx.

Two bounds keep one receiver from holding the service:

- ``timeout_s`` is a **total deadline** per try (connecting, sending and the whole answer). httpx's
  own timeouts are per network operation, so a receiver sending a byte every 2 s never trips them
  (encode/httpx#1450); the try runs on the action's own event loop under ``asyncio.timeout``,
  whose cancellation closes the connection.
- at most :data:`MAX_ANSWER_BYTES` of the answer's body are read, as they came (never decompressed);
  the status line decides, and a longer body is cut by closing the connection.
"""

from __future__ import annotations

import asyncio
import logging

import httpx

from services.actions.delivery import PermanentError, RetryableError
from services.actions.formatting import (
    EventContext,
    applies,
    encode_body,
    retryable_status,
    webhook_headers,
    webhook_payload,
)
from services.common.config.settings import WebhookSettings
from services.common.contracts.action_records import redacted_url

log = logging.getLogger("owc.actions")

# what we read of an answer's body (we only need its status): past this, the connection is closed. One
# network read is at most 64 KiB (httpcore), so at most MAX_ANSWER_BYTES + 64 KiB are ever held.
MAX_ANSWER_BYTES = 64 * 1024


class WebhookAction:
    delayed = True  # viewers must see the banner before Discord or a bot does

    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings
        self.name = settings.name
        self._url = settings.url.get_secret_value()
        self._secret = settings.secret.get_secret_value() if settings.secret else None
        # the action's own loop, on its lane's thread; one pooled client on it (created lazily, in the loop)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self.last_read = 0  # bytes of the last answer's body read (tests, logs)

    def describe(self) -> str:
        return f"{self.name} ({self.settings.preset} → {redacted_url(self._url)})"

    def wants(self, ctx: EventContext) -> bool:
        s = self.settings
        if not ctx.test and not applies(ctx.event.type, ctx.channel, s.events, s.channels):
            return False
        return webhook_payload(ctx, s.preset, s.streamerbot_action) is not None

    def perform(self, ctx: EventContext) -> str:
        s = self.settings
        payload = webhook_payload(ctx, s.preset, s.streamerbot_action)
        if payload is None:
            return "nothing to send"
        body = encode_body(payload)
        headers = webhook_headers(ctx, body, self._secret)
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        try:
            status, read, cut = self._loop.run_until_complete(self._try(body, headers))
        except TimeoutError:
            raise RetryableError(f"no complete answer within {s.timeout_s:g} s (actions.webhooks timeout_s, "
                                 "a total deadline)") from None
        except httpx.HTTPError as exc:
            raise RetryableError(f"{type(exc).__name__}: {exc}") from None
        self.last_read = read
        tail = f" (answer cut after {MAX_ANSWER_BYTES // 1024} KiB)" if cut else ""
        if 200 <= status < 300:
            return f"HTTP {status}{tail}"
        if retryable_status(status):
            raise RetryableError(f"HTTP {status}{tail}")
        raise PermanentError(f"HTTP {status} (the receiver refused it; retrying will not help){tail}")

    async def _try(self, body: bytes, headers: dict[str, str]) -> tuple[int, int, bool]:
        """One try under the total deadline: ``(status, body bytes read, whether the body was cut)``."""
        if self._client is None:
            # redirects are not followed (a moved hook is a config error); httpx's per-operation timeouts
            # stay as a second bound under the total deadline
            self._client = httpx.AsyncClient(timeout=self.settings.timeout_s, follow_redirects=False)
        client = self._client
        async with asyncio.timeout(self.settings.timeout_s):
            async with client.stream("POST", self._url, content=body, headers=headers) as response:
                read, cut = 0, False
                async for chunk in response.aiter_raw():
                    read += len(chunk)
                    if read > MAX_ANSWER_BYTES:
                        cut = True  # leaving the block closes the response: the connection is dropped
                        break
                return response.status_code, read, cut

    def close(self) -> None:
        if self._loop is None:
            return
        if self._client is not None:
            self._loop.run_until_complete(self._client.aclose())
        self._loop.close()
        self._loop = None
