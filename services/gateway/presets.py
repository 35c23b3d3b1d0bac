"""Named overlay presets: a look from the admin page's designer, saved under a short name.

``/overlay?preset=NAME`` loads one (``static/overlay.js``); any parameter also in
the URL wins over the preset's. Presets are the gateway's own data (not a
channel's counting state): one set for the whole gateway, whatever the
channel (a preset never names one; ``?channel=`` stays in the URL), in the
hash ``owc:overlay:presets`` (:meth:`services.common.contracts.keys.Keys.overlay_presets`).

A preset holds only the overlay's known parameters, each checked as strictly
as the overlay reads it (bad input is a 422 and changes nothing). Kept apart
from ``models.py`` so the feature is one module to move, like ``modes.py``.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Annotated, Any, Literal

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from services.common.contracts.codec import text
from services.common.contracts.keys import Keys
from services.common.contracts.modes import InvalidModeError, normalize_mode
from services.gateway.modes import ModeName

log = logging.getLogger("owc.gateway")

PRESET_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"
PRESET_NAME_RE = re.compile(PRESET_NAME_PATTERN)
MAX_PRESETS = 100  # a bound on what the admin page can store (one JSON object of < 1 kB each)
HEX_COLOUR = r"^[0-9a-fA-F]{3}([0-9a-fA-F]{3})?$"
Part = Literal["counts", "rate", "streak", "recent", "goal"]
Colour = Annotated[str, Field(pattern=HEX_COLOUR, description="Without '#': `00e0ff` or `0ef`.")]


class OverlayParams(BaseModel):
    """The overlay's query parameters a preset may hold (all optional: absent = the overlay's default).

    ``channel`` is not one of them: a preset is a look, the URL says which channel it shows.
    """

    model_config = ConfigDict(extra="forbid", strict=True)
    theme: Literal["", "panel", "row", "minimal", "ow"] | None = Field(None, description="`\"\"` = plain text.")
    show: list[Part] | None = Field(
        None, min_length=1, max_length=5, description="What is shown, in any order, each at most once."
    )
    recent: int | None = Field(None, ge=1, le=20, description="How many last results (with `recent` shown).")
    goal: int | None = Field(None, ge=0, le=1000, description="Session goal in wins (0 = none).")
    size: int | None = Field(None, ge=16, le=200, description="Font size of the counts in px.")
    scale: float | None = Field(None, ge=0.25, le=4, description="Scale of the whole overlay.")
    victory: Colour | None = None
    defeat: Colour | None = None
    draw: Colour | None = None
    text: Colour | None = None
    flash: bool | None = Field(None, description="The result moment when a match is counted.")
    sound: bool | None = Field(None, description="A short chime with the flash.")
    volume: float | None = Field(None, ge=0, le=1, description="The chime's volume.")
    mode: ModeName | None = Field(
        None,
        description="Show only this mode's counts, streak and last results (`\"\"` = all: the totals).",
    )

    @field_validator("show")
    @classmethod
    def _once_each(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and len(set(v)) != len(v):
            raise ValueError("each part may be shown once")
        return v

    @field_validator("mode")
    @classmethod
    def _mode(cls, v: str | None) -> str | None:
        if v is None:
            return None
        try:
            return normalize_mode(v)
        except InvalidModeError as exc:
            raise ValueError(str(exc)) from None

    def query(self) -> dict[str, str]:
        """The parameters as the overlay's URL spells them (what the preset stands for)."""
        out: dict[str, str] = {}
        for key, value in self.model_dump(exclude_none=True).items():
            if isinstance(value, bool):
                out[key] = "1" if value else "0"
            elif isinstance(value, list):
                out[key] = ",".join(value)
            else:
                out[key] = str(value)
        return out


class PresetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    params: OverlayParams = Field(
        description="The overlay parameters; absent ones keep the overlay's defaults.",
        examples=[{"theme": "panel", "show": ["counts", "streak", "recent"], "victory": "00e0ff"}],
    )


class PresetOut(BaseModel):
    name: str
    params: OverlayParams
    query: dict[str, str] = Field(description="The same parameters as the overlay URL spells them.")
    updated_at: int = Field(description="Epoch ms of the last save.")


class PresetsOut(BaseModel):
    presets: list[PresetOut] = Field(description="Sorted by name.")


def preset_out(name: str, raw: bytes | str) -> PresetOut | None:
    """A stored preset, None when it does not fit the model (written by hand or by another version)."""
    try:
        stored = json.loads(raw)
        params = OverlayParams.model_validate(stored["params"])
        return PresetOut(name=name, params=params, query=params.query(), updated_at=int(stored["updated_at"]))
    except (ValueError, TypeError, KeyError, ValidationError) as exc:
        log.warning("overlay preset %r is unreadable, skipped: %s", name, exc)
        return None


# Create or replace, unless that would make more than ARGV[3] presets: 1 saved, 0 full.
_PUT = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 or redis.call('HLEN', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0
"""


class PresetStore:
    """The presets in Redis (the one thing the gateway writes there itself)."""

    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self.r: Any = client
        self.key = keys.overlay_presets

    async def all(self) -> list[PresetOut]:
        raw: dict[bytes, bytes] = await self.r.hgetall(self.key)
        found = (preset_out(text(name, "replace"), value) for name, value in sorted(raw.items()))
        return [p for p in found if p is not None]

    async def get(self, name: str) -> PresetOut | None:
        raw = await self.r.hget(self.key, name)
        return None if raw is None else preset_out(name, raw)

    async def put(self, name: str, params: OverlayParams) -> PresetOut | None:
        """The saved preset, or None when there are already :data:`MAX_PRESETS` others."""
        now = int(time.time() * 1000)
        value = json.dumps({"params": params.model_dump(exclude_none=True), "updated_at": now}, separators=(",", ":"))
        if not await self.r.eval(_PUT, 1, self.key, name, value, MAX_PRESETS):
            return None
        return PresetOut(name=name, params=params, query=params.query(), updated_at=now)

    async def delete(self, name: str) -> bool:
        return bool(await self.r.hdel(self.key, name))
