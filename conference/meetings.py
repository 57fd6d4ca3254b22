"""Meetings: scheduling, rescheduling, cancelling, listing, and their states.

States (``MeetingStatus``) change only through :func:`set_status`, which
refuses moves the table below does not allow::

    scheduled -> open -> live -> ended
        |         |
        +---------+-> cancelled
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from .actors import Actor
from .audit import record_audit
from .errors import Conflict, InvalidInput, NotFound, PermissionDenied
from .models import (
    AuditEntry,
    Invitation,
    InvitationRole,
    Meeting,
    MeetingCreate,
    MeetingPublic,
    MeetingStatus,
    MeetingUpdate,
    Unit,
)
from .slugs import fold
from .timezone import to_utc, utcnow
from .tokens import new_token_id
from .units import get_unit, resolve_units

__all__ = [
    "ACTIVE_STATUSES",
    "MAX_DURATION",
    "MeetingNotice",
    "MeetingPage",
    "ScheduleWarning",
    "cancel_meeting",
    "create_meeting",
    "get_meeting",
    "invited_unit_codes",
    "list_meetings",
    "meeting_notices",
    "meeting_public",
    "set_status",
    "update_meeting",
]

log = logging.getLogger(__name__)

MAX_DURATION = timedelta(hours=24)
ACTIVE_STATUSES = (MeetingStatus.SCHEDULED, MeetingStatus.OPEN, MeetingStatus.LIVE)
_EDITABLE = (MeetingStatus.SCHEDULED, MeetingStatus.OPEN)
_TRANSITIONS: dict[MeetingStatus, frozenset[MeetingStatus]] = {
    MeetingStatus.SCHEDULED: frozenset(
        {MeetingStatus.OPEN, MeetingStatus.LIVE, MeetingStatus.ENDED, MeetingStatus.CANCELLED}
    ),
    MeetingStatus.OPEN: frozenset(
        {MeetingStatus.LIVE, MeetingStatus.ENDED, MeetingStatus.CANCELLED}
    ),
    MeetingStatus.LIVE: frozenset({MeetingStatus.ENDED}),
    MeetingStatus.ENDED: frozenset(),
    MeetingStatus.CANCELLED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class ScheduleWarning:
    code: str
    message: str
    unit: str | None = None
    meeting_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in {
                "code": self.code,
                "message": self.message,
                "unit": self.unit,
                "meeting_id": self.meeting_id,
            }.items()
            if v is not None
        }


@dataclass(slots=True)
class MeetingPage:
    items: list[MeetingPublic]
    total: int
    limit: int
    offset: int


@dataclass(slots=True)
class Scheduled:
    meeting: MeetingPublic
    warnings: list[ScheduleWarning] = field(default_factory=list)
    # A reschedule: the (starts_at, ends_at) the meeting had before, in UTC.
    previous: tuple[datetime, datetime] | None = None


def set_status(meeting: Meeting, new: MeetingStatus) -> None:
    """Move ``meeting`` to ``new``, refusing moves the state table forbids."""
    old = meeting.status
    if new == old:
        return
    if new not in _TRANSITIONS[old]:
        raise Conflict(
            f"a meeting that is {old.value} cannot become {new.value}", code="illegal_transition"
        )
    log.info("meeting %s: %s -> %s", meeting.id, old.value, new.value)
    meeting.status = new
    meeting.updated_at = utcnow()


def overlapping(starts_at: datetime, ends_at: datetime) -> list[Any]:
    """Filters for meetings overlapping ``[starts_at, ends_at)``.

    The third bound is implied by the first two (no meeting lasts longer than
    ``MAX_DURATION``) and lets the database use the index on ``starts_at`` for
    a narrow range instead of every meeting that started earlier.
    """
    return [
        col(Meeting.starts_at) < ends_at,
        col(Meeting.ends_at) > starts_at,
        col(Meeting.starts_at) > starts_at - MAX_DURATION,
    ]


def _check_window(starts_at: datetime, ends_at: datetime, *, now: datetime) -> None:
    if ends_at <= starts_at:
        raise InvalidInput(
            "the meeting must end after it starts", code="invalid_time_range", field="ends_at"
        )
    if ends_at - starts_at > MAX_DURATION:
        raise InvalidInput(
            "a meeting lasts at most 24 hours", code="meeting_too_long", field="ends_at"
        )
    if ends_at <= now:
        raise InvalidInput(
            "the meeting would end in the past", code="ends_in_past", field="ends_at"
        )


async def _chair_conflict(
    session: AsyncSession,
    chair_unit: Unit,
    starts_at: datetime,
    ends_at: datetime,
    exclude: int | None,
) -> None:
    query = select(Meeting.id).where(
        Meeting.chair_unit_id == chair_unit.id,
        col(Meeting.status).in_(ACTIVE_STATUSES),
        *overlapping(starts_at, ends_at),
    )
    if exclude is not None:
        query = query.where(Meeting.id != exclude)
    other = (await session.exec(query.limit(1))).first()
    if other is not None:
        raise Conflict(
            f"unit {chair_unit.code!r} already chairs meeting {other} at that time",
            code="chair_conflict",
            field="chair_unit",
        )


async def double_bookings(
    session: AsyncSession,
    unit_ids: Sequence[int],
    starts_at: datetime,
    ends_at: datetime,
    exclude: int | None,
) -> list[ScheduleWarning]:
    """Warnings for units already invited to an overlapping active meeting.

    Two narrow queries rather than one join: the overlapping meetings come from
    the time index (a handful), then their invitations from the (meeting, unit)
    index. Joined in one query, SQLite drove it from each unit's invitations,
    which grow with every meeting the unit was ever invited to.
    """
    if not unit_ids:
        return []
    window = select(Meeting.id).where(
        col(Meeting.status).in_(ACTIVE_STATUSES), *overlapping(starts_at, ends_at)
    )
    if exclude is not None:
        window = window.where(Meeting.id != exclude)
    meeting_ids = list((await session.exec(window)).all())
    if not meeting_ids:
        return []
    query = (
        select(Unit.code, Invitation.meeting_id)
        .join(Unit, col(Unit.id) == col(Invitation.unit_id))
        .where(
            col(Invitation.meeting_id).in_(meeting_ids),
            col(Invitation.unit_id).in_(unit_ids),
            col(Invitation.revoked_at).is_(None),
        )
        .order_by(col(Unit.code), col(Invitation.meeting_id))
    )
    return [
        ScheduleWarning(
            code="unit_double_booked",
            message=f"unit {code} is also invited to meeting {mid} at an overlapping time",
            unit=code,
            meeting_id=mid,
        )
        for code, mid in (await session.exec(query)).all()
    ]


async def meeting_public(session: AsyncSession, meeting: Meeting) -> MeetingPublic:
    chair = await session.get(Unit, meeting.chair_unit_id)
    assert chair is not None
    count = (
        await session.exec(
            select(func.count())
            .select_from(Invitation)
            .where(Invitation.meeting_id == meeting.id, col(Invitation.revoked_at).is_(None))
        )
    ).one()
    return _public(meeting, chair.code, count)


_LIST_FIELDS = (
    "id",
    "title",
    "agenda",
    "starts_at",
    "ends_at",
    "kind",
    "status",
    "recording",
    "auto_admit",
    "revision",
)
_LIST_COLUMNS = [col(getattr(Meeting, name)) for name in _LIST_FIELDS]


def _public(meeting: Meeting, chair_code: str, invited: int) -> MeetingPublic:
    assert meeting.id is not None
    return MeetingPublic(
        id=meeting.id,
        title=meeting.title,
        agenda=list(meeting.agenda),
        starts_at=meeting.starts_at,
        ends_at=meeting.ends_at,
        chair_unit=chair_code,
        kind=meeting.kind,
        status=meeting.status,
        recording=meeting.recording,
        auto_admit=meeting.auto_admit,
        revision=meeting.revision,
        invited_count=invited,
    )


async def get_meeting(
    session: AsyncSession, meeting_id: int, *, actor: Actor | None = None
) -> Meeting:
    meeting = await session.get(Meeting, meeting_id)
    if meeting is None:
        raise NotFound(f"no meeting {meeting_id}", code="unknown_meeting")
    if actor is not None and not actor.sees_all_meetings:
        await _require_invited(session, actor, meeting)
    return meeting


async def _require_invited(session: AsyncSession, actor: Actor, meeting: Meeting) -> None:
    if actor.unit_id is None:
        raise PermissionDenied("this account belongs to no unit")
    if meeting.chair_unit_id == actor.unit_id:
        return
    invited = (
        await session.exec(
            select(Invitation.id).where(
                Invitation.meeting_id == meeting.id, Invitation.unit_id == actor.unit_id
            )
        )
    ).first()
    if invited is None:
        # Same answer as a missing meeting: do not reveal what other units attend.
        raise NotFound(f"no meeting {meeting.id}", code="unknown_meeting")


async def create_meeting(
    session: AsyncSession, actor: Actor, data: MeetingCreate, *, now: datetime | None = None
) -> Scheduled:
    """Schedule a meeting and invite its units (the chair unit with the chair role).

    Raises:
        InvalidInput: times out of order, unknown units.
        Conflict: the chair unit already chairs an overlapping meeting.
    """
    starts_at, ends_at = to_utc(data.starts_at), to_utc(data.ends_at)
    _check_window(starts_at, ends_at, now=now or utcnow())
    chair = await get_unit_or_invalid(session, data.chair_unit, "chair_unit")
    invited = await resolve_units(session, data.invited_units, field_name="invited_units")
    await _chair_conflict(session, chair, starts_at, ends_at, exclude=None)
    participants = [u for code, u in invited.items() if code != chair.code]
    unit_ids = [u.id for u in [chair, *participants] if u.id is not None]
    warnings = await double_bookings(session, unit_ids, starts_at, ends_at, exclude=None)

    meeting = Meeting(
        title=data.title,
        agenda=list(data.agenda),
        starts_at=starts_at,
        ends_at=ends_at,
        chair_unit_id=chair.id,  # type: ignore[arg-type]
        kind=data.kind,
        recording=data.recording,
        auto_admit=data.auto_admit,
        created_by_id=actor.account_id,
    )
    session.add(meeting)
    await session.flush()
    assert meeting.id is not None
    session.add_all(
        [
            Invitation(
                meeting_id=meeting.id,
                unit_id=unit.id,  # type: ignore[arg-type]
                role=InvitationRole.CHAIR if unit is chair else InvitationRole.PARTICIPANT,
                token_id=new_token_id(),
            )
            for unit in [chair, *participants]
        ]
    )
    await session.flush()
    record_audit(
        session,
        actor,
        "meeting.create",
        "meeting",
        meeting.id,
        title=meeting.title,
        starts_at=starts_at.isoformat(),
        ends_at=ends_at.isoformat(),
        chair_unit=chair.code,
        invited=[u.code for u in participants],
    )
    return Scheduled(_public(meeting, chair.code, 1 + len(participants)), warnings)


async def get_unit_or_invalid(session: AsyncSession, code: str, field_name: str) -> Unit:
    units = await resolve_units(session, [code], field_name=field_name)
    return units[code]


async def update_meeting(
    session: AsyncSession,
    actor: Actor,
    meeting_id: int,
    data: MeetingUpdate,
    *,
    now: datetime | None = None,
    reason: str | None = None,
) -> Scheduled:
    """Change a scheduled or open meeting. New times are a reschedule: checked like a
    create, and its audit entry keeps the old times and ``reason`` for the notice the
    invited units see (:func:`meeting_notices`)."""
    meeting = await get_meeting(session, meeting_id)
    if meeting.status not in _EDITABLE:
        raise Conflict(
            f"a meeting that is {meeting.status.value} cannot be changed",
            code="meeting_not_editable",
        )
    changes = data.model_dump(exclude_unset=True)
    for name in ("title", "kind", "recording", "auto_admit", "agenda"):
        if name in changes and changes[name] is None:
            raise InvalidInput(f"{name} cannot be null", field=name)
    starts_at = to_utc(data.starts_at) if data.starts_at is not None else meeting.starts_at
    ends_at = to_utc(data.ends_at) if data.ends_at is not None else meeting.ends_at
    rescheduled = (starts_at, ends_at) != (meeting.starts_at, meeting.ends_at)
    previous = (meeting.starts_at, meeting.ends_at)
    chair = await session.get(Unit, meeting.chair_unit_id)
    assert chair is not None
    if data.chair_unit is not None and data.chair_unit != chair.code:
        chair = await get_unit_or_invalid(session, data.chair_unit, "chair_unit")
        await _move_chair(session, meeting, chair)
    if rescheduled:
        _check_window(starts_at, ends_at, now=now or utcnow())
    await _chair_conflict(session, chair, starts_at, ends_at, exclude=meeting.id)

    if data.title is not None:
        meeting.title = data.title
    if data.agenda is not None:
        meeting.agenda = list(data.agenda)
    if data.kind is not None:
        meeting.kind = data.kind
    if data.recording is not None:
        meeting.recording = data.recording
    if data.auto_admit is not None:
        meeting.auto_admit = data.auto_admit
    meeting.starts_at, meeting.ends_at = starts_at, ends_at
    meeting.revision += 1
    meeting.updated_at = utcnow()
    session.add(meeting)
    await session.flush()

    warnings: list[ScheduleWarning] = []
    if rescheduled:
        unit_ids = (
            await session.exec(
                select(Invitation.unit_id).where(
                    Invitation.meeting_id == meeting.id, col(Invitation.revoked_at).is_(None)
                )
            )
        ).all()
        warnings = await double_bookings(
            session, list(unit_ids), starts_at, ends_at, exclude=meeting.id
        )
    if rescheduled:
        record_audit(
            session,
            actor,
            "meeting.reschedule",
            "meeting",
            meeting.id,
            changes=_jsonable(changes),
            reason=reason,
            from_starts_at=previous[0].isoformat(),
            from_ends_at=previous[1].isoformat(),
        )
    else:
        record_audit(
            session, actor, "meeting.update", "meeting", meeting.id, changes=_jsonable(changes)
        )
    return Scheduled(
        await meeting_public(session, meeting),
        warnings,
        previous=previous if rescheduled else None,
    )


async def invited_unit_codes(session: AsyncSession, meeting_id: int) -> list[str]:
    """The codes of the units a meeting's live invitations are for (chair included)."""
    rows = await session.exec(
        select(Unit.code)
        .join(Invitation, col(Invitation.unit_id) == col(Unit.id))
        .where(Invitation.meeting_id == meeting_id, col(Invitation.revoked_at).is_(None))
        .order_by(col(Unit.code))
    )
    return list(rows.all())


async def _move_chair(session: AsyncSession, meeting: Meeting, chair: Unit) -> None:
    """Give the chair role to ``chair``'s invitation (inviting it if needed)."""
    invitations = (
        await session.exec(select(Invitation).where(Invitation.meeting_id == meeting.id))
    ).all()
    found = False
    for inv in invitations:
        if inv.unit_id == chair.id:
            inv.role, inv.revoked_at, found = InvitationRole.CHAIR, None, True
        elif inv.role is InvitationRole.CHAIR:
            inv.role = InvitationRole.PARTICIPANT
        session.add(inv)
    if not found:
        session.add(
            Invitation(
                meeting_id=meeting.id,  # type: ignore[arg-type]
                unit_id=chair.id,  # type: ignore[arg-type]
                role=InvitationRole.CHAIR,
                token_id=new_token_id(),
            )
        )
    meeting.chair_unit_id = chair.id  # type: ignore[assignment]


async def cancel_meeting(
    session: AsyncSession, actor: Actor, meeting_id: int, reason: str | None = None
) -> MeetingPublic:
    meeting = await get_meeting(session, meeting_id)
    if meeting.status is MeetingStatus.CANCELLED:
        # Idempotent: a second click changes nothing and writes no audit entry.
        return await meeting_public(session, meeting)
    set_status(meeting, MeetingStatus.CANCELLED)
    meeting.revision += 1
    session.add(meeting)
    await session.flush()
    record_audit(session, actor, "meeting.cancel", "meeting", meeting.id, reason=reason)
    return await meeting_public(session, meeting)


@dataclass(frozen=True, slots=True)
class MeetingNotice:
    """What the invited units are told of a meeting the Office cancelled or moved."""

    kind: str  # "cancelled" | "rescheduled"
    at: datetime
    reason: str | None
    from_starts_at: datetime | None = None  # a reschedule: the times it had before
    from_ends_at: datetime | None = None


async def meeting_notices(
    session: AsyncSession, meeting_ids: Sequence[int]
) -> dict[int, MeetingNotice]:
    """The latest cancel or reschedule of each of ``meeting_ids`` (from the audit
    log, written in the same transaction as the change), by meeting id."""
    if not meeting_ids:
        return {}
    rows = (
        await session.exec(
            select(AuditEntry)
            .where(
                AuditEntry.object_type == "meeting",
                col(AuditEntry.object_id).in_([str(i) for i in meeting_ids]),
                col(AuditEntry.action).in_(["meeting.cancel", "meeting.reschedule"]),
            )
            .order_by(col(AuditEntry.at), col(AuditEntry.id))
        )
    ).all()
    notices: dict[int, MeetingNotice] = {}
    for row in rows:
        detail = row.detail
        reason = detail.get("reason")
        if row.action == "meeting.cancel":
            notices[int(row.object_id)] = MeetingNotice("cancelled", row.at, reason)
            continue
        notices[int(row.object_id)] = MeetingNotice(
            "rescheduled",
            row.at,
            reason,
            _when(detail.get("from_starts_at")),
            _when(detail.get("from_ends_at")),
        )
    return notices


def _when(value: Any) -> datetime | None:
    return to_utc(datetime.fromisoformat(value)) if isinstance(value, str) else None


async def list_meetings(
    session: AsyncSession,
    actor: Actor,
    *,
    starts_from: datetime | None = None,
    starts_to: datetime | None = None,
    unit_code: str | None = None,
    statuses: Sequence[MeetingStatus] = (),
    title: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> MeetingPage:
    """Meetings overlapping ``[starts_from, starts_to)``, ordered by start time.

    Accounts that do not see every meeting (operators, chairs) see only the
    meetings their unit is invited to or chairs. ``title`` keeps the meetings whose
    title contains it, ignoring case and tone marks ("hop giao ban" finds "Họp giao
    ban"): neither SQLite nor PostgreSQL without ``unaccent`` folds Vietnamese, so
    each meeting keeps its folded title (``title_search``) and the search is a LIKE
    on it.
    """
    # Columns, not ORM entities: a month is ~900 rows, and the identity map and
    # per-row validation cost more than the query (profiled on the bench data).
    invited_count = (
        sa.select(func.count())
        .where(col(Invitation.meeting_id) == col(Meeting.id), col(Invitation.revoked_at).is_(None))
        .correlate(Meeting)
        .scalar_subquery()
    )
    query = sa.select(*_LIST_COLUMNS, col(Unit.code), invited_count).join(
        Unit, col(Unit.id) == col(Meeting.chair_unit_id)
    )
    count_query = select(func.count()).select_from(Meeting)
    filters: list[Any] = []
    if starts_from is not None:
        since = to_utc(starts_from)
        filters += [col(Meeting.ends_at) > since, col(Meeting.starts_at) > since - MAX_DURATION]
    if starts_to is not None:
        filters.append(col(Meeting.starts_at) < to_utc(starts_to))
    if statuses:
        filters.append(col(Meeting.status).in_(list(statuses)))
    unit_ids: list[int] = []
    if unit_code is not None:
        unit = await get_unit(session, unit_code)
        assert unit.id is not None
        unit_ids.append(unit.id)
    if not actor.sees_all_meetings:
        if actor.unit_id is None:
            return MeetingPage(items=[], total=0, limit=limit, offset=offset)
        if unit_ids and unit_ids[0] != actor.unit_id:
            raise PermissionDenied("you may list only your own unit's meetings")
        unit_ids = [actor.unit_id]
    if unit_ids:
        invited = select(Invitation.meeting_id).where(
            Invitation.unit_id == unit_ids[0], col(Invitation.revoked_at).is_(None)
        )
        filters.append(col(Meeting.id).in_(invited))
    if title is not None and title.strip():
        filters.append(col(Meeting.title_search).contains(fold(title.strip()), autoescape=True))
    if filters:
        query = query.where(*filters)
        count_query = count_query.where(*filters)
    query = query.order_by(col(Meeting.starts_at), col(Meeting.id)).limit(limit).offset(offset)
    # A Core select: run it on the session's connection (SQLModel's exec() wants ORM selects).
    rows = (await (await session.connection()).execute(query)).all()
    total = (await session.exec(count_query)).one()
    items = [
        MeetingPublic.model_construct(
            **dict(zip(_LIST_FIELDS, row[: len(_LIST_FIELDS)], strict=True)),
            chair_unit=row[-2],
            invited_count=row[-1],
        )
        for row in rows
    ]
    return MeetingPage(items=items, total=total, limit=limit, offset=offset)


def _jsonable(changes: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in changes.items():
        if isinstance(value, datetime):
            out[key] = value.isoformat()
        elif hasattr(value, "value"):
            out[key] = value.value
        else:
            out[key] = value
    return out
