"""The attendance report: definitions from event lists (pure), then the query on a
real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conference.actors import SYSTEM, Actor
from conference.attendance_report import (
    AttendanceReport,
    MeetingFacts,
    ReportUnit,
    UnitAttendance,
    attendance_report,
    build_report,
)
from conference.errors import NotFound, PermissionDenied
from conference.invitations import revoke_invitation
from conference.meetings import create_meeting
from conference.models import (
    AttendanceEvent,
    InvitationRole,
    MeetingCreate,
    MeetingStatus,
    Role,
    UnitCreate,
    UnitKind,
)
from conference.models import AttendanceKind as K
from conference.units import create_unit, get_unit
from tests.conftest import seed

T0 = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # 08:00 in Đồng Hới
CHAIR, SNV, XA = 1, 2, 3
UNITS = (
    ReportUnit(CHAIR, "QB", "Ủy ban nhân dân tỉnh Quảng Bình", InvitationRole.CHAIR),
    ReportUnit(SNV, "QB-SNV", "Sở Nội vụ", InvitationRole.PARTICIPANT),
    ReportUnit(XA, "QB-BOTRACH-TANTRACH", "UBND xã Tân Trạch", InvitationRole.OBSERVER),
)


def t(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


@dataclass
class E:
    participant_session: str
    kind: K
    minute: float
    unit_id: int | None = SNV
    client_info: Mapping[str, Any] = field(default_factory=dict)

    @property
    def at(self) -> datetime:
        return t(self.minute)


def answer(ps: str, minute: float, unit_id: int, title: str, **fields: Any) -> E:
    info = {"title": title, "participant": ps, "present": True, "delegates": []} | fields
    return E(ps, K.ROLL_CALL, minute, unit_id, info)


def report(
    events: Sequence[E],
    *,
    status: MeetingStatus = MeetingStatus.ENDED,
    now: float = 120,
    units: Sequence[ReportUnit] = UNITS,
    **kw: Any,
) -> AttendanceReport:
    meeting = MeetingFacts(7, "Họp giao ban tháng 12", t(0), t(120), status)
    return build_report(meeting, units, events, now=t(now), **kw)


def row(built: AttendanceReport, unit_id: int) -> UnitAttendance:
    (found,) = [u for u in built.units if u.unit_id == unit_id]
    return found


# --- presence, minutes, endpoints ------------------------------------------------------


def test_overlapping_endpoints_of_one_unit_count_once():
    built = report(
        [
            E("pc1", K.JOIN, 0),
            E("pc2", K.JOIN, 10),
            E("pc1", K.LEAVE, 30),
            E("pc2", K.LEAVE, 40),
        ]
    )
    snv = row(built, SNV)
    assert snv.present is True
    assert snv.endpoints == 2
    assert snv.minutes_connected == pytest.approx(40)  # not 30 + 30
    assert (snv.first_join, snv.last_leave) == (t(0), t(40))
    assert built.summary.present == 1  # one unit, two PCs


def test_gaps_between_endpoints_are_not_connected_time():
    snv = row(
        report(
            [
                E("pc1", K.JOIN, 0),
                E("pc1", K.LEAVE, 10),
                E("pc2", K.JOIN, 20),
                E("pc2", K.LEAVE, 25),
            ]
        ),
        SNV,
    )
    assert snv.minutes_connected == pytest.approx(15)
    assert snv.last_leave == t(25)
    assert snv.reconnects == 0  # a fresh join from another PC is not a reconnect


def test_reconnects_are_counted_and_the_time_away_is_not_connected():
    snv = row(
        report(
            [
                E("pc1", K.JOIN, 0),
                E("pc1", K.DISCONNECT, 10),
                E("pc1", K.RECONNECT, 12),
                E("pc1", K.DISCONNECT, 20),
                E("pc1", K.RECONNECT, 21),
                E("pc1", K.LEAVE, 30),
            ]
        ),
        SNV,
    )
    assert snv.reconnects == 2
    assert snv.minutes_connected == pytest.approx(10 + 8 + 9)
    assert snv.endpoints == 1
    assert (snv.first_join, snv.last_leave) == (t(0), t(30))


def test_a_drop_without_a_resume_is_not_a_reconnect():
    # After the grace window the room writes nothing more: the drop was the end.
    xa = row(report([E("xa", K.JOIN, 0, XA), E("xa", K.DISCONNECT, 9, XA)]), XA)
    assert xa.reconnects == 0
    assert xa.last_leave == t(9)
    assert xa.minutes_connected == pytest.approx(9)


def test_crash_close_ends_the_interval_at_its_time():
    snv = row(report([E("pc1", K.JOIN, 0), E("pc1", K.CRASH_CLOSE, 15)]), SNV)
    assert snv.present is True
    assert snv.minutes_connected == pytest.approx(15)
    assert snv.last_leave == t(15)
    assert snv.still_connected is False


def test_a_removed_unit_was_present_until_its_removal():
    snv = row(report([E("pc1", K.JOIN, 0), E("pc1", K.REMOVE, 12)]), SNV)
    assert (snv.present, snv.absent) == (True, False)
    assert snv.minutes_connected == pytest.approx(12)
    assert snv.last_leave == t(12)


def test_denied_from_the_lobby_is_not_present_and_is_absent():
    built = report([E("pc1", K.LOBBY, 0), E("pc1", K.DENY, 2)])
    snv = row(built, SNV)
    assert (snv.present, snv.absent) == (False, True)
    assert (snv.first_join, snv.last_leave) == (None, None)
    assert (snv.minutes_connected, snv.endpoints) == (0, 0)
    assert built.summary.absent == 3
    assert built.summary.actual_start is None


def test_lobby_time_is_not_presence_admission_is_the_first_join():
    snv = row(report([E("pc1", K.LOBBY, -10), E("pc1", K.ADMIT, 7), E("pc1", K.LEAVE, 17)]), SNV)
    assert snv.first_join == t(7)
    assert snv.minutes_connected == pytest.approx(10)
    assert snv.late is True  # waiting in the lobby past the grace is arriving late


# --- late ---------------------------------------------------------------------------------


def test_late_is_after_the_start_plus_the_grace():
    built = report(
        [
            E("chair", K.JOIN, -10, CHAIR),  # before the start
            E("snv", K.JOIN, 5, SNV),  # exactly at the grace: on time
            E("xa", K.JOIN, 5.5, XA),  # half a minute past it
        ]
    )
    assert [row(built, u).late for u in (CHAIR, SNV, XA)] == [False, False, True]
    assert built.summary.late == 1
    assert built.summary.late_grace == timedelta(minutes=5)


def test_the_grace_is_a_parameter():
    events = [E("snv", K.JOIN, 3, SNV)]
    assert row(report(events), SNV).late is False
    assert row(report(events, grace=timedelta(0)), SNV).late is True
    assert row(report(events, grace=timedelta(minutes=2)), SNV).late is True


def test_an_absent_unit_is_not_late():
    built = report([E("chair", K.JOIN, 0, CHAIR)])
    assert (row(built, SNV).late, row(built, SNV).absent) == (False, True)


# --- open intervals --------------------------------------------------------------------


def test_an_open_interval_ends_at_now_while_the_meeting_runs():
    built = report(
        [E("chair", K.JOIN, 0, CHAIR), E("snv", K.JOIN, 5, SNV), E("chair", K.LEAVE, 10, CHAIR)],
        status=MeetingStatus.LIVE,
        now=25,
    )
    snv = row(built, SNV)
    assert snv.last_leave == t(25)
    assert snv.minutes_connected == pytest.approx(20)
    assert snv.still_connected is True
    assert row(built, CHAIR).still_connected is False
    assert built.summary.actual_start == t(0)
    assert built.summary.actual_end is None  # still running
    assert built.generated_at == t(25)


def test_an_open_interval_of_an_ended_meeting_ends_at_its_last_event():
    built = report(
        [E("snv", K.JOIN, 5, SNV), E("chair", K.JOIN, 0, CHAIR), E("chair", K.LEAVE, 40, CHAIR)],
        status=MeetingStatus.ENDED,
        now=500,
    )
    snv = row(built, SNV)
    assert snv.last_leave == t(40)
    assert snv.minutes_connected == pytest.approx(35)
    assert snv.still_connected is False
    assert built.summary.actual_end == t(40)


# --- invitations, order, names -------------------------------------------------------------


def test_revoked_invitations_are_listed_marked_and_not_counted_as_absent():
    units = (
        *UNITS[:2],
        ReportUnit(
            XA, "QB-BOTRACH-TANTRACH", "UBND xã Tân Trạch", InvitationRole.PARTICIPANT, True
        ),
    )
    built = report([E("chair", K.JOIN, 0, CHAIR)], units=units)
    xa = row(built, XA)
    assert (xa.invited, xa.revoked, xa.absent, xa.present) == (False, True, False, False)
    assert built.summary.invited == 2
    assert built.summary.absent == 1  # SNV only
    assert [u.code for u in built.units] == ["QB", "QB-SNV", "QB-BOTRACH-TANTRACH"]  # as given


def test_vietnamese_names_and_roll_call_text_are_unchanged():
    composed = "Ủy ban nhân dân xã Tân Trạch"
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    units = (
        ReportUnit(CHAIR, "QB", composed, InvitationRole.CHAIR),
        ReportUnit(SNV, "QB-SNV", decomposed, InvitationRole.PARTICIPANT),
    )
    delegates = ["Nguyễn Thị Ánh", unicodedata.normalize("NFD", "Đặng Văn Ưng")]
    built = report(
        [
            E("snv", K.JOIN, 0),
            answer("snv", 3, SNV, "Điểm danh đầu giờ", headcount=2, delegates=delegates),
        ],
        units=units,
    )
    assert row(built, CHAIR).name == composed
    assert row(built, SNV).name == decomposed
    (given,) = row(built, SNV).roll_call
    assert list(given.delegates) == delegates
    assert given.title == "Điểm danh đầu giờ"


# --- roll calls -----------------------------------------------------------------------------


def test_roll_call_answers_per_call_and_unit_latest_answer_wins():
    built = report(
        [
            E("snv1", K.JOIN, 0, SNV),
            E("snv2", K.JOIN, 0, SNV),
            E("xa", K.JOIN, 0, XA),
            answer("snv1", 2, SNV, "Đầu giờ", headcount=2, delegates=["Lê Văn Tám"]),
            answer("xa", 3, XA, "Đầu giờ", present=False),
            # The unit's other PC corrects the answer within the same roll call.
            answer("snv2", 4, SNV, "Đầu giờ", headcount=3, delegates=["Lê Văn Tám", "Hà Thu"]),
            answer("xa", 60, XA, "Cuối giờ", headcount=1, delegates=["Phạm Thị Hoa"]),
        ]
    )
    assert [(c.number, c.title) for c in built.roll_calls] == [(1, "Đầu giờ"), (2, "Cuối giờ")]
    first = built.roll_calls[0]
    assert first.first_answer_at == t(2)
    answers = {uid: a for uid, a in first.answers}
    assert [uid for uid, _ in first.answers] == [SNV, XA]  # the report's unit order
    assert (answers[SNV].headcount, answers[SNV].delegates) == (3, ("Lê Văn Tám", "Hà Thu"))
    assert (answers[XA].present, answers[XA].headcount, answers[XA].delegates) == (False, None, ())
    xa = row(built, XA)
    assert [(a.call, a.title, a.present, a.headcount) for a in xa.roll_call] == [
        (1, "Đầu giờ", False, None),
        (2, "Cuối giờ", True, 1),
    ]
    assert row(built, CHAIR).roll_call == ()
    # The meeting ended; its last event (the last answer) closes what stayed open.
    assert row(built, SNV).last_leave == t(60)


def test_roll_call_events_change_no_presence():
    built = report([answer("ghost", 3, SNV, "Đầu giờ")])
    snv = row(built, SNV)
    assert (snv.present, snv.absent, snv.minutes_connected) == (False, True, 0)
    assert len(snv.roll_call) == 1


# --- the query, on a real database -----------------------------------------------------------


async def _meeting(database: Any, invited: list[str]) -> int:
    now = datetime.now(UTC)
    async with database.write() as s:
        created = await create_meeting(
            s,
            SYSTEM,
            MeetingCreate.model_validate(
                {
                    "title": "Họp rà soát điểm danh",
                    "starts_at": now.isoformat(),
                    "ends_at": (now + timedelta(hours=1)).isoformat(),
                    "chair_unit": "QB",
                    "invited_units": invited,
                }
            ),
        )
    return created.meeting.id


async def test_the_query_orders_units_as_the_tree_and_marks_revoked_invitations(database):
    await seed(database)
    async with database.write() as s:
        # A code that sorts before every other but sits deep in the tree.
        await create_unit(
            s,
            SYSTEM,
            UnitCreate(
                code="A-PHONG",
                name="Phòng họp trực tuyến Sở TT&TT",
                kind=UnitKind.DEPARTMENT,
                parent="QB-STTTT",
            ),
        )
    mid = await _meeting(database, ["QB-STTTT", "A-PHONG", "QB-SNV", "QB-BOTRACH-TANTRACH"])
    async with database.write() as s:
        await revoke_invitation(s, SYSTEM, mid, "QB-SNV")
        snv = await get_unit(s, "QB-SNV")
        phong = await get_unit(s, "A-PHONG")
        start = datetime.now(UTC)
        s.add_all(
            [
                AttendanceEvent(
                    meeting_id=mid,
                    unit_id=phong.id,
                    participant_session="phong",
                    kind=K.JOIN,
                    at=start,
                ),
                AttendanceEvent(
                    meeting_id=mid,
                    unit_id=snv.id,
                    participant_session="snv",
                    kind=K.JOIN,
                    at=start,
                ),
            ]
        )
    async with database.read() as s:
        built = await attendance_report(s, mid, now=start + timedelta(minutes=3))
    assert [u.code for u in built.units] == [
        "QB",
        "QB-BOTRACH-TANTRACH",
        "QB-SNV",
        "QB-STTTT",
        "A-PHONG",
    ]
    by_code = {u.code: u for u in built.units}
    assert by_code["QB"].role is InvitationRole.CHAIR
    assert by_code["QB"].name == "Ủy ban nhân dân tỉnh Quảng Bình"
    assert (by_code["QB-SNV"].revoked, by_code["QB-SNV"].invited) == (True, False)
    assert by_code["QB-SNV"].present is True  # it came before the revocation
    assert by_code["A-PHONG"].minutes_connected == pytest.approx(3)
    assert built.summary.invited == 4
    assert built.summary.absent == 3  # QB, TANTRACH, STTTT


async def test_the_query_checks_who_may_read(database):
    await seed(database)
    mid = await _meeting(database, ["QB-SNV"])
    async with database.read() as s:
        units = {code: (await get_unit(s, code)).id for code in ("QB", "QB-SNV", "QB-STP")}

    def actor(role: Role, unit: str) -> Actor:
        return Actor(account_id=None, username="x", roles=frozenset({role}), unit_id=units[unit])

    now = datetime.now(UTC)
    async with database.read() as s:
        for allowed in (actor(Role.CLERK, "QB-STP"), actor(Role.CHAIR, "QB"), SYSTEM):
            assert (await attendance_report(s, mid, now=now, actor=allowed)).meeting.id == mid
        with pytest.raises(PermissionDenied):  # invited, but does not chair
            await attendance_report(s, mid, now=now, actor=actor(Role.CHAIR, "QB-SNV"))
        with pytest.raises(PermissionDenied):
            await attendance_report(s, mid, now=now, actor=actor(Role.OPERATOR, "QB-SNV"))
        with pytest.raises(NotFound):  # not invited: the meeting is not revealed
            await attendance_report(s, mid, now=now, actor=actor(Role.CHAIR, "QB-STP"))
        with pytest.raises(NotFound):
            await attendance_report(s, mid + 1000, now=now)
