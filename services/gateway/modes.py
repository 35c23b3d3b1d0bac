"""HTTP models of per-mode records (the `mode` route and the status's ``mode``/``by_mode``).

Kept apart from ``models.py`` so the mode feature is one module to move;
the names themselves are checked by ``services/common/contracts/modes.py``, the same
rule the state service applies.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from services.common.contracts.messages import Counts, ModeRun, Outcome
from services.common.contracts.modes import MAX_MODE_LEN, InvalidModeError, normalize_mode

# A mode name as a request carries it: surrounding spaces are dropped first, then the limit the
# schema shows (maxLength 32) is the one the code applies.
ModeName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_MODE_LEN)]


class ModeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: ModeName = Field(
        description="The new current mode: `competitive`, `quickplay`, `arcade` (any case or spacing) or a custom "
        f"name of 1-{MAX_MODE_LEN} letters, digits, spaces, `-`, `_`; `\"\"` = no mode.",
        examples=["competitive", "Mystery Heroes", ""],
    )
    note: str = Field("", max_length=200)

    @field_validator("mode")
    @classmethod
    def _valid(cls, v: str) -> str:
        try:
            return normalize_mode(v)
        except InvalidModeError as exc:
            raise ValueError(str(exc)) from None


class Streak(BaseModel):
    """(Here rather than in ``models.py``, which imports this module: a mode has its own streak.)"""

    outcome: Outcome | None = Field(description="Outcome of the current run of equal results.")
    length: int


class ModeCounts(BaseModel):
    victories: int
    defeats: int
    draws: int
    total: int
    win_rate: float | None = Field(description="Victories / total in this mode, None before its first match.")
    streak: Streak = Field(
        default_factory=lambda: Streak(outcome=None, length=0),
        description="The current run of equal results among this mode's matches of the session.",
    )
    recent: list[Outcome] = Field(default_factory=list, description="This mode's last results, oldest first.")


def mode_counts_out(by_mode: dict[str, Counts], runs: dict[str, ModeRun] | None = None) -> dict[str, ModeCounts]:
    out = {}
    for mode, c in sorted(by_mode.items()):
        run = (runs or {}).get(mode, ModeRun())
        out[mode] = ModeCounts(**c.as_dict(), total=c.total, win_rate=c.win_rate,
                               streak=Streak(outcome=run.streak_outcome, length=run.streak), recent=list(run.recent))
    return out
