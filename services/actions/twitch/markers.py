"""A stream marker at every result (``VICTORY · Competitive · 12–8``), through Helix.

Twitch refuses a marker when the channel is not live (404). That is said once (log and the
admin page), not once per result, and is not a failure: the result is recorded as
``not live: no marker`` and the next live result marks again.

A correction (an undo, a −1 by hand) makes no marker, but the marker action takes it too: inside the
stream delay it takes the waiting marker of the result it corrects back, so a result taken back before
viewers saw it leaves no marker (one already made stays: Twitch has no way to delete one).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from services.actions.delivery import PermanentError
from services.actions.formatting import EventContext
from services.actions.schedule import may_correct
from services.actions.twitch import rules
from services.actions.twitch.helix import Helix, HelixError
from services.actions.twitch.tokens import TokenError

log = logging.getLogger("owc.actions.twitch")


class MarkerAction:
    name = "twitch-marker"
    delayed = True  # a marker is public: held for the stream delay like chat

    def __init__(self, helix: Helix, channel: str,
                 on_state: Callable[[str, str], None] | None = None) -> None:
        self.helix = helix
        self.channel = channel
        self.on_state = on_state or (lambda state, message: None)
        self.offline = False  # said once until a marker succeeds again

    def describe(self) -> str:
        return f"twitch-marker (counter {self.channel})"

    def wants(self, ctx: EventContext) -> bool:
        return ctx.channel == self.channel and (rules.is_result(ctx.event) or may_correct(ctx.event))

    def perform(self, ctx: EventContext) -> str:
        if not rules.is_result(ctx.event):
            return "a correction: no marker"
        text = rules.marker_description(ctx.event)
        if ctx.test:
            text = f"[test] {text}"
        try:
            marker = self.helix.create_marker(text)
        except TokenError as exc:
            raise PermanentError(str(exc)) from None
        except HelixError as exc:
            if exc.status == 404:
                if not self.offline:
                    self.offline = True
                    log.warning("twitch: no stream markers while the channel is not live (%s); said once", exc.message)
                    self.on_state("offline", f"not live since {time.strftime('%H:%M:%S')}: no markers")
                return "not live: no marker"
            raise PermanentError(f"Twitch refused the marker: {exc.message}") from None
        if self.offline:
            log.info("twitch: live again: markers resume")
            self.offline = False
        self.on_state("ok", f"last marker “{text}”")
        return f"marker at {marker.get('position_seconds', '?')} s: {text}"
