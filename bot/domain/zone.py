"""The time zone deadline dates are reckoned in: a date in a deadline is a Shanghai calendar day."""

from __future__ import annotations

from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
