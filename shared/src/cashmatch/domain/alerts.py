"""What an alert says, independent of where it is sent."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

AlertKind = Literal["failure", "dead_letter", "rejection", "deployment", "drift", "breach"]


class Alert(BaseModel):
    """One thing a person should know about: what happened, for which month and versions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: AlertKind
    title: str = Field(description="one line, shown first")
    month: str | None = Field(None, description="the month concerned, YYYY-MM")
    versions: dict[str, str] = Field(
        default_factory=dict, description="role -> model version, e.g. candidate, champion"
    )
    link: str | None = Field(None, description="a report or endpoint to open")
    details: list[str] = Field(default_factory=list, description="further lines, plain text")
