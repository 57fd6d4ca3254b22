"""Time in hoinghi: stored in UTC, shown in the province's zone (Asia/Ho_Chi_Minh)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

__all__ = ["LOCAL_ZONE", "LOCAL_ZONE_NAME", "to_local", "to_utc", "utcnow"]

LOCAL_ZONE_NAME = "Asia/Ho_Chi_Minh"
LOCAL_ZONE = ZoneInfo(LOCAL_ZONE_NAME)


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_utc(value: datetime) -> datetime:
    """An aware datetime in UTC. Naive values are refused: their zone is a guess."""
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError("datetime without a time zone")
    return value.astimezone(UTC)


def to_local(value: datetime) -> datetime:
    return to_utc(value).astimezone(LOCAL_ZONE)
