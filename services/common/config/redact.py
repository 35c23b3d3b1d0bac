"""Keep credentials out of what is printed: URLs can carry a password (``redis://:pw@host``)."""

from __future__ import annotations

import re

MASK = "***"
# scheme://userinfo@ — greedy up to the last "@" of the authority (a raw "@" in a password too)
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#\s]*)@")


def _mask(match: re.Match[str]) -> str:
    user, sep, _password = match["userinfo"].partition(":")
    # "user:password" keeps the user name; a lone userinfo may be a token (redis://token@host)
    shown = f"{user}:{MASK}" if sep else MASK
    return f"{match['scheme']}{shown}@"


def mask_credentials(text: str) -> str:
    """``redis://:pw@host:6379/0`` -> ``redis://:***@host:6379/0``, in any text (log lines, values)."""
    if "@" not in text:  # the common case, cheaply
        return text
    return _URL_USERINFO.sub(_mask, text)
