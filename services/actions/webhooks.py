"""Webhook actions: POST the event (our JSON, a Discord message or a Streamer.bot action) with httpx."""

from __future__ import annotations

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
from services.common.action_records import redacted_url
from services.common.settings import WebhookSettings


class WebhookAction:
    def __init__(self, settings: WebhookSettings, client: httpx.Client | None = None) -> None:
        self.settings = settings
        self.name = settings.name
        self._url = settings.url.get_secret_value()
        self._secret = settings.secret.get_secret_value() if settings.secret else None
        # one pooled client per webhook; redirects are not followed (a moved hook is a config error)
        self.client = client or httpx.Client(timeout=settings.timeout_s, follow_redirects=False)

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
        try:
            response = self.client.post(self._url, content=body, headers=headers, timeout=s.timeout_s)
        except httpx.TimeoutException:
            raise RetryableError(f"no answer within {s.timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise RetryableError(f"{type(exc).__name__}: {exc}") from None
        if response.is_success:
            return f"HTTP {response.status_code}"
        if retryable_status(response.status_code):
            raise RetryableError(f"HTTP {response.status_code}")
        raise PermanentError(f"HTTP {response.status_code} (the receiver refused it; retrying will not help)")

    def close(self) -> None:
        self.client.close()
