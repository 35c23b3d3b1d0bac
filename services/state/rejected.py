"""A command the state service refuses (raised by the rules and by the commands they hand on)."""

from __future__ import annotations


class Rejected(Exception):
    """A command that is refused; ``message`` is a sentence for the streamer."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
