"""Attendance: append-only events, presence intervals derived from them, heartbeats,
and closing what a crash left open.

An endpoint (``participant_session``) is present from ``join`` (entering the
room directly), ``admit`` (from the lobby) or ``reconnect``, until ``leave``,
``disconnect``, ``remove`` or ``crash_close``. A unit is present while any of
its endpoints is: a second screen does not count the unit twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from .models import AttendanceEvent, AttendanceKind, PresenceHeartbeat

__all__ = [
    "CLOSING",
    "OPENING",
    "Interval",
    "close_after_crash",
    "intervals",
    "meeting_events",
    "record_heartbeats",
    "unit_presence",
]

OPENING = frozenset({AttendanceKind.JOIN, AttendanceKind.ADMIT, AttendanceKind.RECONNECT})
CLOSING = frozenset(
    {
        AttendanceKind.LEAVE,
        AttendanceKind.DISCONNECT,
        AttendanceKind.REMOVE,
        AttendanceKind.CRASH_CLOSE,
    }
)


class EventLike(Protocol):
    @property
    def participant_session(self) -> str: ...
    @property
    def unit_id(self) -> int | None: ...
    @property
    def kind(self) -> AttendanceKind: ...
    @property
    def at(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class Interval:
    participant_session: str
    unit_id: int | None
    start: datetime
    end: datetime | None
    closed_by: AttendanceKind | None


def intervals(events: Iterable[EventLike]) -> list[Interval]:
    """Presence intervals per endpoint, from events in the order they were recorded.

    An opening event while already open, or a closing one while closed, changes
    nothing: the room never emits them, and a replayed log must not invent time.
    """
    open_at: dict[str, tuple[datetime, int | None]] = {}
    out: list[Interval] = []
    for event in events:
        key = event.participant_session
        if event.kind in OPENING and key not in open_at:
            open_at[key] = (event.at, event.unit_id)
        elif event.kind in CLOSING and key in open_at:
            start, unit_id = open_at.pop(key)
            out.append(Interval(key, unit_id, start, event.at, event.kind))
    for key, (start, unit_id) in open_at.items():
        out.append(Interval(key, unit_id, start, None, None))
    out.sort(key=lambda i: (i.start, i.participant_session))
    return out


def unit_presence(
    spans: Iterable[Interval], *, until: datetime
) -> dict[int | None, list[tuple[datetime, datetime]]]:
    """Per unit, the union of its endpoints' intervals (open ones end at ``until``)."""
    by_unit: dict[int | None, list[tuple[datetime, datetime]]] = defaultdict(list)
    for span in spans:
        by_unit[span.unit_id].append((span.start, span.end or until))
    merged: dict[int | None, list[tuple[datetime, datetime]]] = {}
    for unit_id, items in by_unit.items():
        items.sort()
        union: list[tuple[datetime, datetime]] = []
        for start, end in items:
            if union and start <= union[-1][1]:
                union[-1] = (union[-1][0], max(union[-1][1], end))
            else:
                union.append((start, end))
        merged[unit_id] = union
    return merged


async def meeting_events(session: AsyncSession, meeting_id: int) -> Sequence[AttendanceEvent]:
    query = (
        select(AttendanceEvent)
        .where(AttendanceEvent.meeting_id == meeting_id)
        .order_by(col(AttendanceEvent.id))
    )
    return (await session.exec(query)).all()


async def record_heartbeats(
    session: AsyncSession,
    meeting_id: int,
    endpoints: Sequence[tuple[str, int | None]],
    at: datetime,
) -> None:
    """Upsert the last-seen time of each ``(participant_session, unit_id)``."""
    if not endpoints:
        return
    rows: list[dict[str, Any]] = [
        {"participant_session": ps, "meeting_id": meeting_id, "unit_id": unit_id, "at": at}
        for ps, unit_id in endpoints
    ]
    table = PresenceHeartbeat.__table__  # type: ignore[attr-defined]
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=["participant_session"], set_={"at": statement.excluded.at}
    )
    connection = await session.connection()
    await connection.execute(statement)


async def close_after_crash(session: AsyncSession, now: datetime) -> list[AttendanceEvent]:
    """Close every interval a crash left open, at its endpoint's last heartbeat.

    Run once at start, before any room opens. Returns the ``crash_close``
    events written; each carries ``{"crash": true}`` and the time it used.
    """
    last = (
        select(
            AttendanceEvent.participant_session,
            sa.func.max(AttendanceEvent.id).label("last_id"),
        )
        .where(col(AttendanceEvent.kind).in_(list(OPENING | CLOSING)))
        .group_by(col(AttendanceEvent.participant_session))
        .subquery()
    )
    open_events = (
        await session.exec(
            select(AttendanceEvent)
            .join(last, col(AttendanceEvent.id) == last.c.last_id)
            .where(col(AttendanceEvent.kind).in_(list(OPENING)))
        )
    ).all()
    written: list[AttendanceEvent] = []
    for event in open_events:
        beat = await session.get(PresenceHeartbeat, event.participant_session)
        # The heartbeat can predate a reconnect; never close before the interval opened.
        at = max(beat.at, event.at) if beat is not None else event.at
        at = min(at, now)
        closing = AttendanceEvent(
            meeting_id=event.meeting_id,
            unit_id=event.unit_id,
            participant_session=event.participant_session,
            kind=AttendanceKind.CRASH_CLOSE,
            at=at,
            client_info={"crash": True, "heartbeat": beat.at.isoformat() if beat else None},
        )
        session.add(closing)
        written.append(closing)
    await session.flush()
    return written
