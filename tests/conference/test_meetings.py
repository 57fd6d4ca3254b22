"""Scheduling rules of conference/meetings.py and invitations.py, on a real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import func, select

from conference.actors import SYSTEM
from conference.errors import Conflict, InvalidInput, TokenRejected
from conference.invitations import (
    invite_units,
    reissue_invitation,
    revoke_invitation,
    verify_join_token,
)
from conference.keys import KeyRing
from conference.links import JoinLinks
from conference.meetings import cancel_meeting, create_meeting, set_status, update_meeting
from conference.models import (
    AuditEntry,
    Invitation,
    InvitationRole,
    Meeting,
    MeetingCreate,
    MeetingStatus,
    MeetingUpdate,
)
from conference.tokens import TokenService
from tests.conftest import seed

NOW = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # 08:00 in Đồng Hới


def _meeting(start_h: float, hours: float = 2, chair: str = "QB", **kw: object) -> MeetingCreate:
    start = NOW + timedelta(hours=start_h)
    return MeetingCreate.model_validate(
        {
            "title": kw.pop("title", "Họp giao ban"),
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(hours=hours)).isoformat(),
            "chair_unit": chair,
            **kw,
        }
    )


@pytest.fixture
async def db(database):
    await seed(database)
    return database


@pytest.fixture
def links() -> JoinLinks:
    return JoinLinks(TokenService(KeyRing.generate(), "hoinghi"), "https://h.test", 30, 60)


async def _count(db, model) -> int:
    async with db.read() as s:
        return (await s.exec(select(func.count()).select_from(model))).one()


async def test_create_invites_chair_and_units_and_stores_utc(db):
    data = _meeting(1, invited_units=["QB-STTTT", "QB-SNV", "QB", "QB-STTTT"])
    async with db.write() as s:
        result = await create_meeting(s, SYSTEM, data, now=NOW)
    assert result.meeting.invited_count == 3  # chair once, duplicates collapsed
    async with db.read() as s:
        meeting = await s.get(Meeting, result.meeting.id)
        invs = (await s.exec(select(Invitation).where(Invitation.meeting_id == meeting.id))).all()
    assert meeting.starts_at == NOW + timedelta(hours=1)
    assert meeting.starts_at.tzinfo is UTC
    roles = sorted(i.role.value for i in invs)
    assert roles == ["chair", "participant", "participant"]
    assert len({i.token_id for i in invs}) == 3


async def test_local_offset_input_is_the_same_instant(db):
    data = MeetingCreate.model_validate(
        {
            "title": "Họp",
            "starts_at": "2026-12-01T14:00:00+07:00",
            "ends_at": "2026-12-01T15:00:00+07:00",
            "chair_unit": "QB",
        }
    )
    async with db.write() as s:
        result = await create_meeting(s, SYSTEM, data, now=NOW)
    async with db.read() as s:
        meeting = await s.get(Meeting, result.meeting.id)
    assert meeting.starts_at == datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
    assert result.meeting.model_dump(mode="json")["starts_at"] == "2026-12-01T14:00:00+07:00"


async def test_chair_cannot_chair_two_overlapping_meetings(db):
    async with db.write() as s:
        await create_meeting(s, SYSTEM, _meeting(1), now=NOW)
    before = await _count(db, Meeting)
    with pytest.raises(Conflict) as err:
        async with db.write() as s:
            await create_meeting(s, SYSTEM, _meeting(2, invited_units=["QB-SNV"]), now=NOW)
    assert err.value.code == "chair_conflict"
    assert await _count(db, Meeting) == before
    # Back to back is not an overlap.
    async with db.write() as s:
        await create_meeting(s, SYSTEM, _meeting(3), now=NOW)


async def test_cancelled_meeting_frees_the_chair(db):
    async with db.write() as s:
        first = await create_meeting(s, SYSTEM, _meeting(1), now=NOW)
    async with db.write() as s:
        await cancel_meeting(s, SYSTEM, first.meeting.id, "Hoãn")
    async with db.write() as s:
        await create_meeting(s, SYSTEM, _meeting(1), now=NOW)


async def test_double_booked_unit_gets_a_warning_not_a_refusal(db):
    async with db.write() as s:
        first = await create_meeting(s, SYSTEM, _meeting(1, invited_units=["QB-SNV"]), now=NOW)
    async with db.write() as s:
        second = await create_meeting(
            s, SYSTEM, _meeting(2, chair="QB-STTTT", invited_units=["QB-SNV", "QB-STP"]), now=NOW
        )
    assert [(w.code, w.unit, w.meeting_id) for w in second.warnings] == [
        ("unit_double_booked", "QB-SNV", first.meeting.id)
    ]


async def test_times_are_checked(db):
    cases = [
        (_meeting(2, hours=-1), "invalid_time_range"),
        (_meeting(2, hours=25), "meeting_too_long"),
        (_meeting(-5, hours=2), "ends_in_past"),
    ]
    for data, code in cases:
        with pytest.raises(InvalidInput) as err:
            async with db.write() as s:
                await create_meeting(s, SYSTEM, data, now=NOW)
        assert err.value.code == code
        assert err.value.field == "ends_at"
    assert await _count(db, Meeting) == 0


async def test_unknown_invited_unit_refuses_the_whole_meeting(db):
    with pytest.raises(InvalidInput) as err:
        async with db.write() as s:
            await create_meeting(s, SYSTEM, _meeting(1, invited_units=["QB-SNV", "NOPE"]), now=NOW)
    assert err.value.code == "unknown_unit"
    assert err.value.field == "invited_units"
    assert await _count(db, Meeting) == 0
    assert await _count(db, Invitation) == 0
    assert await _count(db, AuditEntry) == 1  # only the seeding import


async def test_reschedule_bumps_revision_and_rechecks_chair(db):
    async with db.write() as s:
        a = await create_meeting(s, SYSTEM, _meeting(1), now=NOW)
        b = await create_meeting(s, SYSTEM, _meeting(5), now=NOW)
    with pytest.raises(Conflict):
        async with db.write() as s:
            await update_meeting(
                s,
                SYSTEM,
                b.meeting.id,
                MeetingUpdate(starts_at=NOW + timedelta(hours=2), ends_at=NOW + timedelta(hours=4)),
                now=NOW,
            )
    async with db.write() as s:
        moved = await update_meeting(
            s,
            SYSTEM,
            a.meeting.id,
            MeetingUpdate(starts_at=NOW + timedelta(hours=8), ends_at=NOW + timedelta(hours=9)),
            now=NOW,
        )
    assert moved.meeting.revision == 1
    assert moved.meeting.starts_at == NOW + timedelta(hours=8)
    async with db.read() as s:
        actions = (await s.exec(select(AuditEntry.action).order_by(AuditEntry.id))).all()
    assert actions[-1] == "meeting.reschedule"


async def test_changing_the_chair_moves_the_chair_role(db):
    async with db.write() as s:
        m = await create_meeting(s, SYSTEM, _meeting(1, invited_units=["QB-SNV"]), now=NOW)
    async with db.write() as s:
        await update_meeting(s, SYSTEM, m.meeting.id, MeetingUpdate(chair_unit="QB-SNV"), now=NOW)
    async with db.read() as s:
        invs = (await s.exec(select(Invitation).where(Invitation.meeting_id == m.meeting.id))).all()
        chairs = [i for i in invs if i.role is InvitationRole.CHAIR]
        meeting = await s.get(Meeting, m.meeting.id)
    assert len(chairs) == 1
    assert chairs[0].unit_id == meeting.chair_unit_id


async def test_status_transitions_follow_the_table():
    meeting = Meeting(id=1, title="x", starts_at=NOW, ends_at=NOW, chair_unit_id=1, kind="regular")
    set_status(meeting, MeetingStatus.OPEN)
    set_status(meeting, MeetingStatus.LIVE)
    with pytest.raises(Conflict) as err:
        set_status(meeting, MeetingStatus.CANCELLED)
    assert err.value.code == "illegal_transition"
    set_status(meeting, MeetingStatus.ENDED)
    with pytest.raises(Conflict):
        set_status(meeting, MeetingStatus.LIVE)


async def test_ended_meeting_cannot_be_edited_or_cancelled(db):
    async with db.write() as s:
        m = await create_meeting(s, SYSTEM, _meeting(1), now=NOW)
        row = await s.get(Meeting, m.meeting.id)
        set_status(row, MeetingStatus.ENDED)
        s.add(row)
    with pytest.raises(Conflict) as err:
        async with db.write() as s:
            await update_meeting(s, SYSTEM, m.meeting.id, MeetingUpdate(title="Mới"), now=NOW)
    assert err.value.code == "meeting_not_editable"
    with pytest.raises(Conflict):
        async with db.write() as s:
            await cancel_meeting(s, SYSTEM, m.meeting.id)


async def test_join_token_lifecycle_revoke_and_reissue(db, links):
    now = datetime.now(UTC)
    data = MeetingCreate.model_validate(
        {
            "title": "Họp khẩn",
            "starts_at": now.isoformat(),
            "ends_at": (now + timedelta(hours=1)).isoformat(),
            "chair_unit": "QB",
            "invited_units": ["QB-SNV"],
        }
    )
    async with db.write() as s:
        m = await create_meeting(s, SYSTEM, data)
        result = await invite_units(
            s, SYSTEM, m.meeting.id, ["QB-STP"], InvitationRole.OBSERVER, links
        )
    url = result.invitations[0].join_url
    token = url.rsplit("/", 1)[1]
    async with db.read() as s:
        grant = await verify_join_token(s, links, token, meeting_id=m.meeting.id)
    assert grant.unit.code == "QB-STP"
    assert grant.claims.role == "observer"

    async with db.write() as s:
        await revoke_invitation(s, SYSTEM, m.meeting.id, "QB-STP")
    with pytest.raises(TokenRejected) as err:
        async with db.read() as s:
            await verify_join_token(s, links, token)
    assert err.value.code == "token_revoked"

    async with db.write() as s:
        fresh = await reissue_invitation(s, SYSTEM, m.meeting.id, "QB-STP", links)
    new_token = fresh.join_url.rsplit("/", 1)[1]
    async with db.read() as s:
        assert (await verify_join_token(s, links, new_token)).unit.code == "QB-STP"
    with pytest.raises(TokenRejected):
        async with db.read() as s:
            await verify_join_token(s, links, token)  # the old link stays dead

    async with db.write() as s:
        await cancel_meeting(s, SYSTEM, m.meeting.id)
    with pytest.raises(TokenRejected) as err:
        async with db.read() as s:
            await verify_join_token(s, links, new_token)
    assert err.value.code == "meeting_cancelled"


async def test_join_token_window_is_lobby_to_end_plus_grace(db, links):
    async with db.write() as s:
        m = await create_meeting(s, SYSTEM, _meeting(1), now=NOW)
        row = await s.get(Meeting, m.meeting.id)
    not_before, expires = links.window(row)
    assert not_before == row.starts_at - timedelta(minutes=30)
    assert expires == row.ends_at + timedelta(minutes=60)


async def test_a_long_meeting_that_started_long_before_still_overlaps(db):
    # 23 hours long, started 22 hours before the new one: the chair is still busy.
    async with db.write() as s:
        await create_meeting(s, SYSTEM, _meeting(1, hours=23), now=NOW)
    with pytest.raises(Conflict):
        async with db.write() as s:
            await create_meeting(s, SYSTEM, _meeting(23, hours=1), now=NOW)
    # Ending exactly when the next starts is not an overlap.
    async with db.write() as s:
        await create_meeting(s, SYSTEM, _meeting(24, hours=1), now=NOW)
