"""Game modes: the names a channel's matches are counted under (Competitive, Quick Play, custom ones).

One rule for every service: the gateway validates a name with it (a clear
422), the state service again (a command may come from elsewhere), the
import checks the names it restores. No Redis, nothing built at import time.
"""

from __future__ import annotations

BUILTIN_MODES = ("competitive", "quickplay", "arcade")
MAX_MODE_LEN = 32
_PUNCTUATION = " -_"
_DIGITS = "0123456789"


class InvalidModeError(ValueError):
    """A mode name that cannot be used; the message is a sentence for the streamer."""


def normalize_mode(name: str) -> str:
    """The stored form of ``name``: ``""`` (no mode), a built-in in lower case, or the custom name as typed.

    Surrounding spaces are dropped. A built-in is recognised whatever its case
    and spacing ("Quick Play", "QUICK_PLAY" -> "quickplay"), so one mode is
    never counted under two spellings. Raises :class:`InvalidModeError`.
    """
    name = name.strip()
    if not name:
        return ""
    if len(name) > MAX_MODE_LEN:
        raise InvalidModeError(f"a mode name has at most {MAX_MODE_LEN} characters (got {len(name)})")
    bad = sorted({c for c in name if not (c.isalpha() or c in _DIGITS or c in _PUNCTUATION)})
    if bad:
        raise InvalidModeError(
            f"a mode name may only hold letters, digits, spaces, '-' and '_' (not {' '.join(map(repr, bad))})"
        )
    squashed = "".join(c for c in name if c not in _PUNCTUATION).casefold()
    return squashed if squashed in BUILTIN_MODES else name


_LABELS = {"competitive": "Competitive", "quickplay": "Quick Play", "arcade": "Arcade"}


def mode_label(mode: str) -> str:
    """How a sentence names a stored mode: "Quick Play", "my 6v6", "no mode"."""
    return "no mode" if not mode else _LABELS.get(mode, mode)


def is_stored_mode(name: str) -> bool:
    """True when ``name`` is already in its stored form (what an event may carry)."""
    try:
        return normalize_mode(name) == name
    except InvalidModeError:
        return False


__all__ = ["BUILTIN_MODES", "MAX_MODE_LEN", "InvalidModeError", "is_stored_mode", "mode_label", "normalize_mode"]
