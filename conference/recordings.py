"""Who may see which recordings, and finding them: by meeting, date range and unit.

Clerks and admins see every recording; a chair account sees the recordings of
meetings its unit chaired; nobody else sees any. A recording someone may not
see is "not found", the same answer as one that does not exist, so ids cannot
be probed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from .actors import Actor
from .errors import NotFound
from .models import Meeting, Recording, RecordingPublic, RecordingStatus, Role, Unit
from .timezone import to_utc

__all__ = [
    "RecordingPage",
    "expired_recordings",
    "get_recording",
    "list_recordings",
    "public",
]


@dataclass(frozen=True, slots=True)
class RecordingPage:
    items: list[RecordingPublic]
    total: int
    limit: int
    offset: int


def public(row: Recording, title: str) -> RecordingPublic:
    assert row.id is not None
    return RecordingPublic(
        id=row.id,
        meeting_id=row.meeting_id,
        meeting_title=title,
        number=row.number,
        status=row.status,
        started_at=row.started_at,
        ended_at=row.ended_at,
        duration_seconds=round(row.duration_seconds, 1),
        size_bytes=row.size_bytes,
        keep=row.keep,
        failure=row.failure,
        unit_ids=list(row.unit_ids),
        composite_status=row.composite_status,
        composite_progress=round(row.composite_progress, 3),
    )


def _visible(actor: Actor) -> list[Any]:
    """Filters that keep only what ``actor`` may see (none for clerks and admins)."""
    if actor.has(Role.CLERK, Role.ADMIN):
        return []
    if actor.has(Role.CHAIR) and actor.unit_id is not None:
        return [col(Meeting.chair_unit_id) == actor.unit_id]
    return [col(Recording.id).is_(None)]  # nothing


async def get_recording(
    session: AsyncSession, actor: Actor, recording_id: int
) -> tuple[Recording, Meeting]:
    query = (
        select(Recording, Meeting)
        .join(Meeting, col(Meeting.id) == col(Recording.meeting_id))
        .where(col(Recording.id) == recording_id, *_visible(actor))
    )
    found = (await session.exec(query)).first()
    if found is None:
        raise NotFound("no such recording", code="recording_not_found")
    return found[0], found[1]


async def list_recordings(
    session: AsyncSession,
    actor: Actor,
    *,
    meeting_id: int | None = None,
    started_from: datetime | None = None,
    started_to: datetime | None = None,
    unit_code: str | None = None,
    statuses: list[RecordingStatus] | None = None,
    limit: int = 100,
    offset: int = 0,
) -> RecordingPage:
    filters: list[Any] = list(_visible(actor))
    if meeting_id is not None:
        filters.append(col(Recording.meeting_id) == meeting_id)
    if started_from is not None:
        filters.append(col(Recording.started_at) >= to_utc(started_from))
    if started_to is not None:
        filters.append(col(Recording.started_at) < to_utc(started_to))
    if statuses:
        filters.append(col(Recording.status).in_(statuses))
    rows_query = select(Recording, Meeting.title).join(
        Meeting, col(Meeting.id) == col(Recording.meeting_id)
    )
    count_query = (
        select(func.count())
        .select_from(Recording)
        .join(Meeting, col(Meeting.id) == col(Recording.meeting_id))
    )
    if unit_code is not None:
        unit = (await session.exec(select(Unit).where(col(Unit.code) == unit_code))).first()
        if unit is None or unit.id is None:
            return RecordingPage(items=[], total=0, limit=limit, offset=offset)
        # unit_ids is a JSON list: filter in Python over the (small) candidate set.
        candidates = (await session.exec(rows_query.where(*filters))).all()
        matching = [(r, t) for r, t in candidates if unit.id in r.unit_ids]
        matching.sort(key=lambda rt: (rt[0].started_at, rt[0].id or 0), reverse=True)
        page = matching[offset : offset + limit]
        return RecordingPage(
            items=[public(r, t) for r, t in page], total=len(matching), limit=limit, offset=offset
        )
    total = (await session.exec(count_query.where(*filters))).one()
    rows = (
        await session.exec(
            rows_query.where(*filters)
            .order_by(col(Recording.started_at).desc(), col(Recording.id).desc())
            .limit(limit)
            .offset(offset)
        )
    ).all()
    return RecordingPage(
        items=[public(r, t) for r, t in rows], total=int(total), limit=limit, offset=offset
    )


async def expired_recordings(
    session: AsyncSession, now: datetime, retention_days: int
) -> list[Recording]:
    """Recordings older than the retention period, not marked keep, not in progress."""
    if retention_days <= 0:
        return []
    cutoff = to_utc(now) - timedelta(days=retention_days)
    query = select(Recording).where(
        col(Recording.started_at) < cutoff,
        col(Recording.keep).is_(False),
        col(Recording.status) != RecordingStatus.RECORDING,
    )
    return list((await session.exec(query)).all())
