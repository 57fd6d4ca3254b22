"""The attendance report of one meeting, per invited unit, for clerks.

Two halves: :func:`build_report` is pure (meeting facts, units and the event log
in, report out) so every definition below can be tested from event lists;
:func:`attendance_report` reads those inputs from the database.

Definitions (per unit; a unit may join from several endpoints and counts once):

- **present**: at least one of its endpoints was admitted into the room (a
  ``join`` straight into the room, an ``admit`` from the lobby, or a
  ``reconnect``). Waiting in the lobby, or being denied from it, is not presence.
- **first join**: the first moment one of its endpoints was admitted.
- **last leave**: the end of its last presence interval. An interval still open
  ends at ``now`` while the meeting runs, else at the meeting's last event.
- **minutes connected**: the length of the union of its endpoints' intervals
  (``attendance.unit_presence``): two screens at once count once.
- **reconnects**: ``reconnect`` events of its endpoints (a dropped connection
  resumed within the grace window). A fresh join after leaving is not one.
- **late**: present, and first joined later than the scheduled start plus the
  grace (:data:`LATE_GRACE` unless given).
- **absent**: invited (invitation not revoked) and never present.
- **endpoints**: how many of its endpoints were ever admitted.
- **roll call**: the room records each answer as a ``roll_call`` event carrying
  the roll call's title, not an id. One roll call is a run of consecutive
  answers with the same title (only one roll call is open at a time, so a new
  title means a new call); two calls in a row with the same title read as one.
  Within a call a unit's latest answer, from any of its endpoints, counts.

Summary: ``invited`` counts invitations not revoked; ``present`` every unit
present (a unit whose invitation was revoked after it attended still counts);
``absent`` and ``late`` as above. The actual start is the first admission of
any unit; the actual end, once the meeting is over, the last moment anyone
was present (``None`` while it runs).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from .actors import Actor
from .attendance import intervals, meeting_events, unit_presence
from .errors import PermissionDenied
from .meetings import get_meeting
from .models import (
    AttendanceKind,
    Invitation,
    InvitationRole,
    Meeting,
    MeetingStatus,
    Role,
    Unit,
)

__all__ = [
    "LATE_GRACE",
    "AttendanceReport",
    "MeetingFacts",
    "ReportEvent",
    "ReportSummary",
    "ReportUnit",
    "RollCall",
    "RollCallAnswer",
    "UnitAttendance",
    "attendance_report",
    "build_report",
    "may_read_report",
]

LATE_GRACE = timedelta(minutes=5)
_OVER = frozenset({MeetingStatus.ENDED, MeetingStatus.CANCELLED})


class ReportEvent(Protocol):
    """What the report needs of an attendance event (``AttendanceEvent`` fits)."""

    @property
    def participant_session(self) -> str: ...
    @property
    def unit_id(self) -> int | None: ...
    @property
    def kind(self) -> AttendanceKind: ...
    @property
    def at(self) -> datetime: ...
    @property
    def client_info(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class MeetingFacts:
    id: int
    title: str
    starts_at: datetime
    ends_at: datetime
    status: MeetingStatus

    @property
    def running(self) -> bool:
        return self.status not in _OVER


@dataclass(frozen=True, slots=True)
class ReportUnit:
    """A unit the report has a row for: invited (maybe revoked), or present without
    an invitation row (``role`` is then ``None``)."""

    unit_id: int
    code: str
    name: str
    role: InvitationRole | None
    revoked: bool = False

    @property
    def invited(self) -> bool:
        return self.role is not None and not self.revoked


@dataclass(frozen=True, slots=True)
class RollCallAnswer:
    call: int  # 1, 2, ... in the order the roll calls were answered
    title: str
    present: bool
    headcount: int | None
    delegates: tuple[str, ...]
    at: datetime


@dataclass(frozen=True, slots=True)
class UnitAttendance:
    unit_id: int
    code: str
    name: str
    role: InvitationRole | None
    invited: bool
    revoked: bool
    present: bool
    first_join: datetime | None
    last_leave: datetime | None
    still_connected: bool  # an interval is open and the meeting runs
    seconds_connected: float
    reconnects: int
    late: bool
    absent: bool
    endpoints: int
    roll_call: tuple[RollCallAnswer, ...]

    @property
    def minutes_connected(self) -> float:
        return self.seconds_connected / 60


@dataclass(frozen=True, slots=True)
class RollCall:
    number: int
    title: str
    first_answer_at: datetime
    # (unit_id, answer), in the order of the report's units.
    answers: tuple[tuple[int, RollCallAnswer], ...]


@dataclass(frozen=True, slots=True)
class ReportSummary:
    invited: int
    present: int
    absent: int
    late: int
    scheduled_start: datetime
    scheduled_end: datetime
    actual_start: datetime | None
    actual_end: datetime | None
    late_grace: timedelta


@dataclass(frozen=True, slots=True)
class AttendanceReport:
    meeting: MeetingFacts
    generated_at: datetime
    summary: ReportSummary
    units: tuple[UnitAttendance, ...]
    roll_calls: tuple[RollCall, ...]


# --- the pure part ---------------------------------------------------------------


def _roll_calls(
    events: Sequence[ReportEvent],
) -> list[tuple[str, datetime, dict[int, RollCallAnswer]]]:
    """Roll calls as (title, first answer, latest answer per unit), in order."""
    calls: list[tuple[str, datetime, dict[int, RollCallAnswer]]] = []
    for event in events:
        if event.kind != AttendanceKind.ROLL_CALL or event.unit_id is None:
            continue
        info = event.client_info
        title = str(info.get("title") or "")
        if not calls or calls[-1][0] != title:
            calls.append((title, event.at, {}))
        headcount = info.get("headcount")
        delegates = info.get("delegates")
        calls[-1][2][event.unit_id] = RollCallAnswer(
            call=len(calls),
            title=title,
            present=bool(info.get("present")),
            headcount=headcount if isinstance(headcount, int) else None,
            delegates=tuple(str(d) for d in delegates) if isinstance(delegates, list) else (),
            at=event.at,
        )
    return calls


def build_report(
    meeting: MeetingFacts,
    units: Sequence[ReportUnit],
    events: Iterable[ReportEvent],
    *,
    now: datetime,
    grace: timedelta = LATE_GRACE,
) -> AttendanceReport:
    """The report from the meeting's facts, its units in display order, and its
    attendance events in the order they were recorded.

    Events of units not in ``units`` count only towards the actual start and end.
    """
    log = list(events)
    spans = intervals(log)
    last_event = max((e.at for e in log), default=now)
    until = now if meeting.running else last_event
    # Never let an open interval end before it began (a clock that stepped back).
    presence = unit_presence(spans, until=max([until, *(s.start for s in spans)]))
    endpoints: dict[int | None, set[str]] = defaultdict(set)
    still_open: set[int | None] = set()
    for span in spans:
        endpoints[span.unit_id].add(span.participant_session)
        if span.end is None and meeting.running:
            still_open.add(span.unit_id)
    reconnects: dict[int | None, int] = defaultdict(int)
    for event in log:
        if event.kind == AttendanceKind.RECONNECT:
            reconnects[event.unit_id] += 1
    calls = _roll_calls(log)

    rows: list[UnitAttendance] = []
    for unit in units:
        union = presence.get(unit.unit_id, [])
        present = bool(union)
        first_join = union[0][0] if union else None
        rows.append(
            UnitAttendance(
                unit_id=unit.unit_id,
                code=unit.code,
                name=unit.name,
                role=unit.role,
                invited=unit.invited,
                revoked=unit.revoked,
                present=present,
                first_join=first_join,
                last_leave=union[-1][1] if union else None,
                still_connected=unit.unit_id in still_open,
                seconds_connected=sum((end - start).total_seconds() for start, end in union),
                reconnects=reconnects.get(unit.unit_id, 0),
                late=first_join is not None and first_join > meeting.starts_at + grace,
                absent=unit.invited and not present,
                endpoints=len(endpoints.get(unit.unit_id, ())),
                roll_call=tuple(
                    answers[unit.unit_id] for _, _, answers in calls if unit.unit_id in answers
                ),
            )
        )

    starts = [union[0][0] for union in presence.values() if union]
    ends = [union[-1][1] for union in presence.values() if union]
    summary = ReportSummary(
        invited=sum(r.invited for r in rows),
        present=sum(r.present for r in rows),
        absent=sum(r.absent for r in rows),
        late=sum(r.late for r in rows),
        scheduled_start=meeting.starts_at,
        scheduled_end=meeting.ends_at,
        actual_start=min(starts, default=None),
        actual_end=None if meeting.running else max(ends, default=None),
        late_grace=grace,
    )
    order = [u.unit_id for u in units]
    roll_calls = tuple(
        RollCall(
            number=number,
            title=title,
            first_answer_at=first_at,
            answers=tuple((uid, answers[uid]) for uid in order if uid in answers),
        )
        for number, (title, first_at, answers) in enumerate(calls, start=1)
    )
    return AttendanceReport(meeting, now, summary, tuple(rows), roll_calls)


# --- the query -------------------------------------------------------------------


def may_read_report(actor: Actor, meeting: Meeting) -> bool:
    """Clerks, admins and the secretariat read every report; a chair account only
    the reports of meetings its unit chairs."""
    if actor.has(Role.CLERK, Role.ADMIN, Role.SECRETARIAT):
        return True
    return actor.has(Role.CHAIR) and actor.unit_id == meeting.chair_unit_id


def _tree_keys(units: Sequence[tuple[int, int | None, str]]) -> dict[int, tuple[str, ...]]:
    """Each unit's path of codes from its root: sorting by it is the tree's order
    (depth first, siblings by code)."""
    parent = {uid: pid for uid, pid, _ in units}
    code = {uid: c for uid, _, c in units}
    keys: dict[int, tuple[str, ...]] = {}
    for uid in code:
        path: list[str] = []
        seen: set[int] = set()
        node: int | None = uid
        while node is not None and node in code and node not in seen:
            seen.add(node)
            path.append(code[node])
            node = parent[node]
        keys[uid] = tuple(reversed(path))
    return keys


async def attendance_report(
    session: AsyncSession,
    meeting_id: int,
    *,
    now: datetime,
    actor: Actor | None = None,
    grace: timedelta = LATE_GRACE,
) -> AttendanceReport:
    """The attendance report of ``meeting_id`` as of ``now``.

    Args:
        actor: who asks; ``None`` for the server itself (no check).
        grace: how long after the scheduled start a unit still arrives on time.

    Raises:
        NotFound: no such meeting, or one ``actor`` may not see (same answer).
        PermissionDenied: ``actor`` sees the meeting but may not read its report
            (an operator, or a chair account of an invited unit that does not chair).
    """
    meeting = await get_meeting(session, meeting_id, actor=actor)
    if actor is not None and not may_read_report(actor, meeting):
        raise PermissionDenied("only clerks, admins, the secretariat and the chair unit may")
    assert meeting.id is not None
    invited = (
        await session.exec(
            select(Invitation, Unit)
            .join(Unit, col(Unit.id) == col(Invitation.unit_id))
            .where(Invitation.meeting_id == meeting.id)
        )
    ).all()
    events = await meeting_events(session, meeting.id)
    rows: dict[int, ReportUnit] = {}
    for inv, unit in invited:
        assert unit.id is not None
        rows[unit.id] = ReportUnit(
            unit.id, unit.code, unit.name, inv.role, revoked=inv.revoked_at is not None
        )
    strangers = {e.unit_id for e in events if e.unit_id is not None} - set(rows)
    if strangers:
        for unit in (await session.exec(select(Unit).where(col(Unit.id).in_(strangers)))).all():
            assert unit.id is not None
            rows[unit.id] = ReportUnit(unit.id, unit.code, unit.name, None)
    # A province has hundreds of units: the whole tree is cheaper than walking up.
    tree = (await session.exec(select(Unit.id, Unit.parent_id, Unit.code))).all()
    keys = _tree_keys([(uid, pid, code) for uid, pid, code in tree if uid is not None])
    ordered = sorted(rows.values(), key=lambda u: (keys.get(u.unit_id, (u.code,)), u.code))
    facts = MeetingFacts(
        meeting.id, meeting.title, meeting.starts_at, meeting.ends_at, meeting.status
    )
    return build_report(facts, ordered, events, now=now, grace=grace)
