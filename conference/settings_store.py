"""Settings an administrator changes at run time, stored in the ``setting`` table.

The configuration (``conference.config``) gives each setting's default; a stored
value wins over it, so a change made in the pages survives a restart and holds
on every node sharing the database. Each change writes an audit entry in the
same transaction.

Today there is one: the recording retention period, in days (0: keep forever).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from .actors import Actor
from .audit import record_audit
from .errors import InvalidInput
from .models import Setting
from .timezone import utcnow

__all__ = [
    "MAX_RETENTION_DAYS",
    "RETENTION_DAYS",
    "RetentionPolicy",
    "check_retention_days",
    "get_setting",
    "retention_policy",
    "set_retention_days",
    "set_setting",
]

RETENTION_DAYS = "recording_retention_days"
# A hundred years: longer is "keep forever" (0), and a cutoff that far back must
# still be a date the database can hold.
MAX_RETENTION_DAYS = 36_500


async def get_setting(session: AsyncSession, key: str) -> Any | None:
    """The stored value of ``key`` (decoded JSON), None when none is stored."""
    row = await session.get(Setting, key)
    if row is None:
        return None
    try:
        return json.loads(row.value)
    except ValueError:
        return None


async def set_setting(session: AsyncSession, key: str, value: Any) -> None:
    """Store ``value`` (JSON) for ``key``, replacing what was there."""
    text = json.dumps(value, ensure_ascii=False)
    row = await session.get(Setting, key)
    if row is None:
        row = Setting(key=key, value=text)
    else:
        row.value = text
        row.updated_at = utcnow()
    session.add(row)
    await session.flush()


def check_retention_days(value: Any) -> int:
    """``value`` as a retention period: a whole number of days, 0 to ``MAX_RETENTION_DAYS``.

    Raises:
        InvalidInput: with a stable code — ``retention_days_not_integer``,
            ``retention_days_negative`` or ``retention_days_too_large``.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(
            "days is a whole number of days (0: keep forever)",
            code="retention_days_not_integer",
            field="days",
        )
    if value < 0:
        raise InvalidInput(
            "days must not be negative (0: keep forever)",
            code="retention_days_negative",
            field="days",
        )
    if value > MAX_RETENTION_DAYS:
        raise InvalidInput(
            f"days is at most {MAX_RETENTION_DAYS} (use 0 to keep forever)",
            code="retention_days_too_large",
            field="days",
        )
    return value


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    days: int  # the period in force; 0 keeps forever
    default_days: int  # the configuration's
    stored: bool  # an administrator set it (else the default applies)


async def retention_policy(session: AsyncSession, default_days: int) -> RetentionPolicy:
    """The retention period in force: the stored one, else ``default_days``.

    A stored value that is no longer valid (edited by hand) is ignored.
    """
    value = await get_setting(session, RETENTION_DAYS)
    try:
        days = check_retention_days(value)
    except InvalidInput:
        return RetentionPolicy(days=default_days, default_days=default_days, stored=False)
    return RetentionPolicy(days=days, default_days=default_days, stored=True)


async def set_retention_days(
    session: AsyncSession, actor: Actor, days: Any, default_days: int
) -> RetentionPolicy:
    """Store the retention period (checked as :func:`check_retention_days`), audited."""
    checked = check_retention_days(days)
    before = await retention_policy(session, default_days)
    await set_setting(session, RETENTION_DAYS, checked)
    record_audit(
        session,
        actor,
        "retention.update",
        "setting",
        RETENTION_DAYS,
        days=checked,
        previous_days=before.days,
    )
    return RetentionPolicy(days=checked, default_days=default_days, stored=True)
