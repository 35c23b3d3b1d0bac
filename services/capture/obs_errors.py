"""What each OBS failure means: one row per obs-websocket close/status code (or failure without one).

A row gives the error kind (the ``owc_capture_errors_total`` label and the
health hash's ``last_error_kind``), the log level, the message (a
``str.format`` template), what happens next, the health ``state`` for a
lost connection, and which :class:`Backoffs` wait applies. The exceptions
in :mod:`services.capture.obsclient` name their row (``problem``); the OBS
source looks the row up and acts on it, so adding a code is one line here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

# obs-websocket 5 WebSocketCloseCode values we react to
CLOSE_AUTH_FAILED = 4009
CLOSE_SESSION_INVALIDATED = 4011  # kicked by the user
# RequestStatus codes
STATUS_NOT_READY = 207
STATUS_RESOURCE_NOT_FOUND = 600
STATUS_INVALID_RESOURCE_TYPE = 602
STATUS_REQUEST_PROCESSING_FAILED = 702

# "doubling": connect_initial, doubled per consecutive failure up to connect_max;
# "restart": connect_initial, and the doubling starts over; "next_slot": no wait
Backoff = Literal["doubling", "restart", "next_slot", "auth", "kicked", "config_error", "not_ready"]
ProblemKey = int | Literal["connect", "closed", "timeout", "exiting", "request", "decode"]


@dataclass(frozen=True)
class Backoffs:
    """Waits after a failure, by what went wrong (seconds)."""

    connect_initial: float = 0.25
    connect_max: float = 2.0  # keeps "resume within 5 s of OBS being back"
    auth: float = 15.0  # wrong password: someone has to fix the setting
    kicked: float = 30.0  # the user kicked us: do not hammer
    config_error: float = 2.0  # 600/602: retry the screenshot this often, not every interval
    not_ready: float = 0.5  # 207: OBS is still starting

    def delay(self, backoff: Backoff, failures: int = 0) -> float:
        """The wait for a row's ``backoff`` after ``failures`` consecutive connection failures."""
        if backoff == "doubling":
            return min(self.connect_initial * 2.0**failures, self.connect_max)
        if backoff == "restart":
            return self.connect_initial
        if backoff == "next_slot":
            return 0.0
        return float(getattr(self, backoff))


@dataclass(frozen=True)
class Problem:
    kind: str
    level: int
    text: str  # fields: where, error, source, code, comment, sources, or_empty
    then: str = ""  # appended to the log line only; fields: wait, max
    backoff: Backoff = "config_error"
    state: str | None = None  # a lost connection: the health state meanwhile
    no_comment: str = ""  # {comment} when OBS sent none

    def message(self, **values: object) -> str:
        if not values.get("comment"):
            values["comment"] = self.no_comment
        return self.text.format(**values)


_LOST = "lost the connection to OBS at {where} ({error})"

PROBLEMS: dict[ProblemKey, Problem] = {
    # -- the connection (the source reconnects after the wait) ----------
    "connect": Problem(
        "connect", logging.WARNING,
        "OBS is not reachable at {where} ({error}); is OBS running with its WebSocket server enabled?",
        " Retrying every {max:.1f}s at most", "doubling", "reconnecting",
    ),
    "closed": Problem("closed", logging.WARNING, _LOST, "; reconnecting", "doubling", "reconnecting"),
    "timeout": Problem("timeout", logging.WARNING, _LOST, "; reconnecting", "doubling", "reconnecting"),
    "exiting": Problem(
        "closed", logging.WARNING, "OBS at {where} is closing (ExitStarted)",
        "; reconnecting when it is back", "restart", "reconnecting",
    ),
    CLOSE_AUTH_FAILED: Problem(  # also: OBS wants a password and obs.password is empty
        "auth", logging.ERROR,
        "OBS at {where} refused the password (obs.password / OWC_OBS__PASSWORD is wrong{or_empty}; "
        "see OBS → Tools → WebSocket Server Settings)",
        "; retrying every {wait:.0f}s", "auth", "auth_failed",
    ),
    CLOSE_SESSION_INVALIDATED: Problem(
        "kicked", logging.WARNING, "OBS at {where} ended this session (kicked, close code 4011)",
        "; reconnecting in {wait:.0f}s", "kicked", "kicked",
    ),
    # -- one screenshot (the source stays connected) ---------------------
    STATUS_NOT_READY: Problem("request", logging.INFO, "OBS is not ready yet (207)", "; retrying", "not_ready"),
    STATUS_RESOURCE_NOT_FOUND: Problem(
        "source_missing", logging.ERROR,
        "OBS has no source named {source!r} (600); the sources that exist are {sources}. "
        "Set obs.source (OWC_OBS__SOURCE) to one of them, or leave it empty to capture the program scene",
    ),
    STATUS_INVALID_RESOURCE_TYPE: Problem(
        "not_video", logging.ERROR,
        "OBS source {source!r} is not a video source (602: {comment}); point obs.source at a scene or a video input",
        no_comment="e.g. an audio input",
    ),
    STATUS_REQUEST_PROCESSING_FAILED: Problem(
        "render_failed", logging.WARNING,
        "OBS could not render {source!r} (702: {comment}); e.g. a game capture that is not hooked yet. "
        "Counting and retrying",
        backoff="next_slot", no_comment="render failed",
    ),
    "request": Problem(
        "request", logging.ERROR, "GetSourceScreenshot of {source!r} failed: code {code} ({comment})"
    ),
    "decode": Problem(
        "decode", logging.WARNING, "OBS sent a screenshot of {source!r} that cannot be read ({error})",
        backoff="next_slot",
    ),
}
