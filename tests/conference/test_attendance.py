"""Presence intervals from attendance events, per endpoint and per unit, and crash closing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlmodel import col, select

from conference.actors import SYSTEM
from conference.attendance import close_after_crash, intervals, record_heartbeats, unit_presence
from conference.meetings import create_meeting
from conference.models import AttendanceEvent, MeetingCreate
from conference.models import AttendanceKind as K
from tests.conftest import seed

T0 = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)


@dataclass
class E:
    participant_session: str
    kind: K
    minute: int
    unit_id: int | None = 1

    @property
    def at(self) -> datetime:
        return T0 + timedelta(minutes=self.minute)


def t(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def test_lobby_time_is_not_presence_and_reconnect_opens_a_new_interval():
    spans = intervals(
        [
            E("a", K.LOBBY, 0),
            E("a", K.ADMIT, 5),
            E("a", K.DISCONNECT, 20),
            E("a", K.RECONNECT, 21),
            E("a", K.LEAVE, 60),
        ]
    )
    assert [(s.start, s.end, s.closed_by) for s in spans] == [
        (t(5), t(20), K.DISCONNECT),
        (t(21), t(60), K.LEAVE),
    ]


def test_denied_or_left_from_the_lobby_has_no_interval():
    assert (
        intervals([E("a", K.LOBBY, 0), E("a", K.DENY, 3), E("b", K.LOBBY, 1), E("b", K.LEAVE, 2)])
        == []
    )


def test_duplicate_opening_or_closing_events_do_not_invent_time():
    spans = intervals(
        [
            E("a", K.JOIN, 0),
            E("a", K.RECONNECT, 5),
            E("a", K.LEAVE, 10),
            E("a", K.DISCONNECT, 12),
        ]
    )
    assert [(s.start, s.end) for s in spans] == [(t(0), t(10))]


def test_open_interval_stays_open():
    (span,) = intervals([E("a", K.JOIN, 0), E("a", K.ROLL_CALL, 3)])
    assert span.end is None
    assert span.closed_by is None


def test_a_unit_with_two_screens_counts_once():
    spans = intervals(
        [
            E("screen1", K.JOIN, 0, unit_id=7),
            E("screen2", K.JOIN, 10, unit_id=7),
            E("screen1", K.LEAVE, 30, unit_id=7),
            E("screen2", K.LEAVE, 40, unit_id=7),
            E("screen2", K.RECONNECT, 50, unit_id=7),
            E("other", K.JOIN, 0, unit_id=8),
        ]
    )
    presence = unit_presence(spans, until=t(55))
    assert presence[7] == [(t(0), t(40)), (t(50), t(55))]
    assert presence[8] == [(t(0), t(55))]


async def test_crash_close_uses_the_heartbeat_and_leaves_closed_intervals_alone(database):
    await seed(database)
    now = datetime.now(UTC)
    async with database.write() as s:
        m = await create_meeting(
            s,
            SYSTEM,
            MeetingCreate.model_validate(
                {
                    "title": "Họp",
                    "starts_at": now.isoformat(),
                    "ends_at": (now + timedelta(hours=1)).isoformat(),
                    "chair_unit": "QB",
                }
            ),
        )
        mid = m.meeting.id

        def event(ps: str, kind: K, minute: int) -> AttendanceEvent:
            return AttendanceEvent(
                meeting_id=mid,
                participant_session=ps,
                kind=kind,
                at=now + timedelta(minutes=minute),
            )

        s.add_all(
            [
                event("beat", K.JOIN, 0),  # open, heartbeat at +7
                event("nobeat", K.LOBBY, 0),
                event("nobeat", K.ADMIT, 2),  # open, never beat
                event("done", K.JOIN, 0),
                event("done", K.LEAVE, 4),  # closed: untouched
                event("lobby", K.LOBBY, 1),  # waiting only: no interval to close
                event("stale", K.JOIN, 0),
                event("stale", K.DISCONNECT, 3),
                event("stale", K.RECONNECT, 9),
            ]
        )
        await s.flush()
        await record_heartbeats(
            s, mid, [("beat", None), ("stale", None)], now + timedelta(minutes=5)
        )
        await record_heartbeats(s, mid, [("beat", None)], now + timedelta(minutes=7))

    async with database.write() as s:
        written = await close_after_crash(s, now + timedelta(minutes=20))
    closed = {e.participant_session: e.at for e in written}
    assert closed == {
        "beat": now + timedelta(minutes=7),
        "nobeat": now + timedelta(minutes=2),
        # Its heartbeat predates the reconnect: never close before the interval opened.
        "stale": now + timedelta(minutes=9),
    }
    async with database.write() as s:
        assert await close_after_crash(s, now + timedelta(minutes=30)) == []  # idempotent
    async with database.read() as s:
        events = (await s.exec(select(AttendanceEvent).order_by(col(AttendanceEvent.id)))).all()
    assert all(span.end is not None for span in intervals(events))
