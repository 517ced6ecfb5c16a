"""Policy profiles: a certification body's rules as validated data (bot/profiles/*.toml)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Unit = Literal["days", "working_days", "months", "years"]
Kind = Literal["appeal", "complaint", "dispute"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeRule(Strict):
    """One period: `count` `unit` after (or before) the event named in `from`.

    Case rules use `applies_to` appeal|complaint|dispute and `from` received|decided;
    certificate rules use `applies_to` certificate|nonconformity|suspension|change_report.
    """

    id: str = ""  # filled from the table key on load
    applies_to: str
    count: int = Field(gt=0)
    unit: Unit
    from_: str = Field(alias="from")
    direction: Literal["after", "before"] = "after"
    clause: str = Field(min_length=1)
    closed_by: str | None = None  # the milestone that meets this deadline
