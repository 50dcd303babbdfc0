"""Configuration of the reports: the site's time zone, trace presence rules, retention.

Sections of the collector's TOML file (collector/settings.py registers them): `[site]`, `[trace]`,
`[retention]`. They forbid unknown keys like every other section.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_SHIFT = re.compile(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteSettings(_Section):
    # Local days of the compliance report and local times of every report.
    timezone: str = "Asia/Ho_Chi_Minh"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r} (an IANA name such as Asia/Ho_Chi_Minh)") from None
        return name

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class Rule(_Section):
    """How long a scan puts a person at a location, for the trace.

    trip: the scans on one location (a bus plate) split wherever `gap_min` passes without a scan; a rider
      is present from their first scan of the trip to the trip's last scan plus `tail_min`.
    dwell: a person is present from each scan for `dwell_min` (the Corona-Warn-App's default 120).
    shift: a person is present for the whole shift (local `HH:MM-HH:MM`, may cross midnight) holding
      the scan.
    """

    method: Literal["trip", "dwell", "shift"]
    gap_min: float = Field(30, gt=0)
    tail_min: float = Field(20, ge=0)
    dwell_min: float = Field(120, gt=0)
    shifts: tuple[str, ...] = ()
    # Contacts overlapping less than this are left out (0: any overlap).
    min_overlap_min: float = Field(0, ge=0)

    @field_validator("shifts")
    @classmethod
    def _shift_form(cls, shifts: tuple[str, ...]) -> tuple[str, ...]:
        for shift in shifts:
            m = _SHIFT.fullmatch(shift)
            if m is None or shift[:5] == shift[6:]:
                raise ValueError(f"shift {shift!r} is not HH:MM-HH:MM (local time, start != end)")
        return shifts

    @model_validator(mode="after")
    def _shift_needs_shifts(self) -> Rule:
        if self.method == "shift" and not self.shifts:
            raise ValueError('a shift rule needs shifts, e.g. shifts = ["06:00-14:00", "14:00-22:00"]')
        return self

    def shift_bounds(self) -> list[tuple[dt.time, dt.time]]:
        return [(dt.time(int(s[0:2]), int(s[3:5])), dt.time(int(s[6:8]), int(s[9:11]))) for s in self.shifts]


DEFAULT_RULES: dict[str, Rule] = {
    "bus": Rule(method="trip"),
    "door": Rule(method="dwell"),
    "workshop": Rule(method="shift", shifts=("06:00-14:00", "14:00-22:00", "22:00-06:00")),
    "default": Rule(method="dwell"),
}


class TraceSettings(_Section):
    # Per location kind (bus, door, workshop, gate, other); kinds without a rule use "default", which
    # must exist (a configuration without it is refused, like Cléa's validators do).
    rules: dict[str, Rule] = Field(default_factory=lambda: dict(DEFAULT_RULES))

    @field_validator("rules")
    @classmethod
    def _default_required(cls, rules: dict[str, Rule]) -> dict[str, Rule]:
        if "default" not in rules:
            raise ValueError("trace.rules needs a 'default' rule for the location kinds it does not name")
        return rules

    def rule(self, kind: str | None) -> Rule:
        return self.rules.get(kind or "", self.rules["default"])


class RetentionSettings(_Section):
    # Raw events (and invalid messages) are removed this many local days after their day.
    retention_days: int = Field(21, ge=1)
    # The half-hour counts per location that outlive them.
    counts_days: int = Field(366, ge=1)
