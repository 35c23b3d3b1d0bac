"""The ``scan_import`` command's payload: results found in a recording by ``owc scan``, for a session.

``owc scan RECORDING --import SESSION`` sends one ``scan_import`` command
(``Command.payload`` is :meth:`ScanImport.to_json`); the state service adds
each result the channel does not have yet as an ``adjusted`` event with
``source = "import"`` (``docs/rules.md``, "Imported results"). A result's
identity is the recording's content hash plus its position in the recording
(:func:`result_key`, stored in the event's ``request_id``), so importing the
same file twice adds nothing, whatever it was called.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from services.common.messages import OUTCOMES, MessageError, Outcome

KEY_PREFIX = "scan:"
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# the session a scan is added to: the channel's current one (by id, or "current"), or a new one
CURRENT, NEW = "current", "new"
MAX_RESULTS = 10_000  # a 24 h recording holds a few hundred matches at most


def result_key(sha256: str, at_ms: int) -> str:
    """``scan:<first 32 hex of the file's sha256>:<position in ms>``: one result of one recording."""
    return f"{KEY_PREFIX}{sha256[:32]}:{at_ms}"


def parse_key(key: str) -> tuple[str, int] | None:
    """``(hash prefix, position ms)`` of a :func:`result_key`, or ``None`` for any other request id."""
    if not key.startswith(KEY_PREFIX):
        return None
    digest, _, at = key[len(KEY_PREFIX):].partition(":")
    return (digest, int(at)) if at.isdigit() and len(digest) == 32 else None


def clock(ms: int) -> str:
    """``hh:mm:ss.mmm``: a position in a recording."""
    seconds, milli = divmod(max(0, int(ms)), 1000)
    minutes, sec = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours:02d}:{minute:02d}:{sec:02d}.{milli:03d}"


@dataclass(frozen=True, slots=True)
class ScanResult:
    outcome: Outcome
    at_ms: int  # position in the recording of the frame that made it count
    confidence: float


@dataclass(frozen=True, slots=True)
class ScanImport:
    session: str  # CURRENT, NEW or the id of the channel's current session
    recording: str  # the file's name, for the events' note
    sha256: str  # of the file's bytes (a folder: of its frames' names and bytes, in order)
    results: tuple[ScanResult, ...]

    def key(self, result: ScanResult) -> str:
        return result_key(self.sha256, result.at_ms)

    def to_json(self) -> str:
        return json.dumps({
            "session": self.session, "recording": self.recording, "sha256": self.sha256,
            "results": [{"outcome": r.outcome, "at_ms": r.at_ms, "confidence": r.confidence} for r in self.results],
        }, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> ScanImport:
        try:
            raw = json.loads(text)
            sha = str(raw["sha256"])
            results = tuple(_result(r) for r in raw["results"])
            out = cls(str(raw["session"]), str(raw["recording"])[:200], sha, results)
        except MessageError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise MessageError(f"scan import: not valid ({exc!r})") from None
        if not SHA256_RE.fullmatch(sha):
            raise MessageError("scan import: sha256 must be 64 lowercase hex digits")
        if not out.session:
            raise MessageError("scan import: no session given")
        if len(results) > MAX_RESULTS:
            raise MessageError(f"scan import: more than {MAX_RESULTS} results")
        return out


def _result(raw: Any) -> ScanResult:
    outcome = raw["outcome"]
    if outcome not in OUTCOMES:
        raise MessageError(f"scan import: {outcome!r} is not an outcome")
    at_ms, confidence = int(raw["at_ms"]), float(raw["confidence"])
    if at_ms < 0 or not 0.0 <= confidence <= 1.0:
        raise MessageError(f"scan import: a result at {at_ms} ms with confidence {confidence}")
    return ScanResult(outcome, at_ms, confidence)


__all__ = ["CURRENT", "NEW", "ScanImport", "ScanResult", "clock", "parse_key", "result_key"]
