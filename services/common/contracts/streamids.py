"""Redis stream ids (``<milliseconds>-<sequence>``): parsed in one place.

Pure (no Redis import), so rules modules can order ids without I/O.
"""

from __future__ import annotations

from services.common.contracts.codec import text

MAX_ID_TEXT = 41  # two unsigned 64-bit numbers and the dash


def parse_id(eid: bytes | str) -> tuple[int, int]:
    """``"1700000000000-3"`` -> ``(1700000000000, 3)``; ``"5"`` -> ``(5, 0)``.

    Raises ValueError on anything else (each part must be digits below 2^64).
    """
    value = text(eid)
    ms, sep, seq = value.partition("-")
    if not ms.isdigit() or (sep and not seq.isdigit()) or len(value) > MAX_ID_TEXT:
        raise ValueError(f"{value!r} is not an event id (expected <milliseconds>-<sequence>)")
    parsed = int(ms), int(seq) if sep else 0
    if max(parsed) >= 2**64:  # Redis stream ids are two unsigned 64-bit numbers
        raise ValueError(f"{value!r} is not an event id (each part must be below 2^64)")
    return parsed


def parse_id_or(eid: bytes | str, default: tuple[int, int]) -> tuple[int, int]:
    """:func:`parse_id`, or ``default`` for text that is not a stream id."""
    try:
        return parse_id(eid)
    except ValueError:
        return default


def id_after(eid: bytes | str) -> str:
    """The smallest id after ``eid`` (an exclusive start for ``XRANGE``)."""
    ms, seq = parse_id(eid)
    return f"{ms}-{seq + 1}"
