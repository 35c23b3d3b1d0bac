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

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field

from services.common.contracts.codec import JsonRecord
from services.common.contracts.messages import Outcome

KEY_PREFIX = "scan:"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
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
    at_ms: Annotated[int, Field(ge=0)]  # position in the recording of the frame that made it count
    confidence: Annotated[float, Field(ge=0.0, le=1.0)]


@dataclass(frozen=True, slots=True)
class ScanImport:
    session: Annotated[str, Field(min_length=1)]  # CURRENT, NEW or the id of the channel's current session
    recording: str  # the file's name, for the events' note (at most 200 characters are kept)
    sha256: Annotated[str, Field(pattern=SHA256_PATTERN)]  # of the file's bytes (a folder: its frames' names, bytes)
    results: Annotated[tuple[ScanResult, ...], Field(max_length=MAX_RESULTS)]

    def key(self, result: ScanResult) -> str:
        return result_key(self.sha256, result.at_ms)

    def to_json(self) -> str:
        return SCAN_IMPORT_JSON.dumps(self)

    @classmethod
    def from_json(cls, text: str) -> ScanImport:
        """The payload, or :class:`MessageError` naming what is wrong."""
        return SCAN_IMPORT_JSON.loads(text)


def _cut_recording(raw: dict[str, Any]) -> dict[str, Any]:
    return {**raw, "recording": str(raw["recording"])[:200]}


SCAN_IMPORT_JSON = JsonRecord(ScanImport, "scan import", upgrade=_cut_recording, versioned=False)


__all__ = ["CURRENT", "NEW", "ScanImport", "ScanResult", "clock", "parse_key", "result_key"]
