"""``[actions.twitch]``: predictions and stream markers through Twitch's Helix API (docs/actions.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from services.common.contracts.keys import CHANNEL_RE

# The scopes `owc actions twitch-login` asks for: predictions, markers, and the chat bot's.
TWITCH_SCOPES: tuple[str, ...] = (
    "channel:manage:predictions", "channel:manage:broadcast", "chat:read", "chat:edit",
)


def _channel(v: str) -> str:
    if not CHANNEL_RE.fullmatch(v):
        raise ValueError("use 1-64 letters, digits, '-' or '_'")
    return v


def _http_url(v: str) -> str:
    if not v.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return v.rstrip("/")


HttpUrl = Annotated[str, AfterValidator(_http_url)]


class TwitchSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)

    enabled: bool = Field(False, description="Use Twitch's API: predictions and stream markers.")
    client_id: str = Field(
        "", pattern=r"^[A-Za-z0-9]{0,64}$",
        description="Your Twitch application's Client ID (a public client; `owc actions twitch-login` uses it).",
    )
    token_file: Path = Field(
        Path("data/twitch_token.json"),
        description="Where `owc actions twitch-login` keeps the token and refresh token (mode 0600; "
        "relative to OWC_HOME).",
    )
    counter_channel: Annotated[str, AfterValidator(_channel)] = Field(
        "default", description="Which counter channel opens, resolves and marks."
    )
    oauth_url: HttpUrl = Field("https://id.twitch.tv/oauth2", description="Twitch's OAuth base URL.")
    helix_url: HttpUrl = Field("https://api.twitch.tv/helix", description="Twitch's Helix API base URL.")
    timeout_s: float = Field(
        5.0, gt=0, le=60, description="Deadline of a request to Twitch's API, its whole answer included."
    )
    markers: bool = Field(True, description="A stream marker at every result (`VICTORY · Competitive · 12–8`).")
    predictions: bool = Field(True, description="Run a channel-points prediction per match.")
    auto_open: bool = Field(
        True, description="Open a prediction when the counter re-arms for the next match (else only on demand)."
    )
    title: str = Field("Will we win this match?", min_length=1, max_length=45, description="The question.")
    outcome_victory: str = Field("Victory", min_length=1, max_length=25, description="Outcome for a victory.")
    outcome_defeat: str = Field("Defeat", min_length=1, max_length=25, description="Outcome for a defeat.")
    outcome_draw: str = Field(
        "", max_length=25, description="A third outcome for a draw (empty: two outcomes, a draw cancels)."
    )
    draw: Literal["cancel", "resolve"] = Field(
        "cancel", description="On a draw: `cancel` (refund everyone) or `resolve` (needs outcome_draw)."
    )
    window_s: int = Field(120, ge=30, le=1800, description="How long viewers can predict, then Twitch locks it.")
    result_timeout_s: float = Field(
        3600.0, ge=60, le=86400, description="Cancel (refund) a prediction with no result after this long."
    )
    stale: Literal["end", "leave"] = Field(
        "end", description="Another prediction already running when ours should open: `end` it (refund) or "
        "`leave` it (and open none until it is over).",
    )

    @model_validator(mode="after")
    def _draw(self) -> TwitchSettings:
        if self.draw == "resolve" and not self.outcome_draw:
            raise ValueError("draw = \"resolve\" needs outcome_draw (the draw outcome's title)")
        titles = [t for t in (self.outcome_victory, self.outcome_defeat, self.outcome_draw) if t]
        if len(set(titles)) != len(titles):
            raise ValueError("the outcomes' titles must differ")
        return self
