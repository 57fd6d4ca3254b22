"""Invitations: one per invited unit and meeting, each with a revocable join token."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from .actors import Actor
from .audit import record_audit
from .errors import Conflict, NotFound, TokenRejected
from .links import JoinLinks
from .meetings import ACTIVE_STATUSES, ScheduleWarning, double_bookings, get_meeting
from .models import (
    Invitation,
    InvitationPublic,
    InvitationRole,
    Meeting,
    Unit,
)
from .timezone import utcnow
from .tokens import JoinClaims, new_token_id
from .units import get_unit, resolve_units

__all__ = [
    "InvitationResult",
    "JoinGrant",
    "get_invitation",
    "invite_units",
    "list_invitations",
    "reissue_invitation",
    "revoke_invitation",
    "verify_join_token",
]


@dataclass(slots=True)
class InvitationResult:
    invitations: list[InvitationPublic]
    warnings: list[ScheduleWarning] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class JoinGrant:
    """What a verified join token lets its holder do."""

    claims: JoinClaims
    meeting: Meeting
    unit: Unit
    invitation: Invitation


def _public(
    inv: Invitation, unit: Unit, links: JoinLinks | None, meeting: Meeting
) -> InvitationPublic:
    assert inv.id is not None
    return InvitationPublic(
        id=inv.id,
        meeting_id=inv.meeting_id,
        unit=unit.code,
        unit_name=unit.name,
        role=inv.role,
        revoked=inv.revoked_at is not None,
        issued_at=inv.issued_at,
        join_url=links.url(meeting, inv, unit.code) if links and inv.revoked_at is None else None,
    )


def _require_editable(meeting: Meeting) -> None:
    if meeting.status not in ACTIVE_STATUSES:
        raise Conflict(
            f"the meeting is {meeting.status.value}; its invitations cannot change",
            code="meeting_not_editable",
        )


async def list_invitations(
    session: AsyncSession, meeting_id: int, links: JoinLinks | None, *, actor: Actor | None = None
) -> list[InvitationPublic]:
    meeting = await get_meeting(session, meeting_id, actor=actor)
    rows = (
        await session.exec(
            select(Invitation, Unit)
            .join(Unit, col(Unit.id) == col(Invitation.unit_id))
            .where(Invitation.meeting_id == meeting_id)
            .order_by(col(Invitation.role), col(Unit.code))
        )
    ).all()
    return [_public(inv, unit, links, meeting) for inv, unit in rows]


async def get_invitation(
    session: AsyncSession, meeting_id: int, unit_code: str
) -> tuple[Meeting, Invitation, Unit]:
    meeting = await get_meeting(session, meeting_id)
    unit = await get_unit(session, unit_code)
    inv = (
        await session.exec(
            select(Invitation).where(
                Invitation.meeting_id == meeting_id, Invitation.unit_id == unit.id
            )
        )
    ).first()
    if inv is None:
        raise NotFound(
            f"unit {unit_code!r} is not invited to meeting {meeting_id}", code="not_invited"
        )
    return meeting, inv, unit


async def invite_units(
    session: AsyncSession,
    actor: Actor,
    meeting_id: int,
    codes: Sequence[str],
    role: InvitationRole,
    links: JoinLinks | None,
) -> InvitationResult:
    """Invite units to a meeting. Invited units are kept; revoked ones get a new token."""
    if role is InvitationRole.CHAIR:
        raise Conflict(
            "the chair is set on the meeting, not by invitation",
            code="chair_by_meeting",
            field="role",
        )
    meeting = await get_meeting(session, meeting_id)
    _require_editable(meeting)
    units = await resolve_units(session, codes, field_name="units")
    existing = {
        inv.unit_id: inv
        for inv in (
            await session.exec(select(Invitation).where(Invitation.meeting_id == meeting_id))
        ).all()
    }
    touched: list[tuple[Invitation, Unit]] = []
    new_ids: list[int] = []
    for unit in units.values():
        assert unit.id is not None
        inv = existing.get(unit.id)
        if inv is None:
            inv = Invitation(
                meeting_id=meeting_id, unit_id=unit.id, role=role, token_id=new_token_id()
            )
            new_ids.append(unit.id)
        elif inv.revoked_at is not None:
            inv.revoked_at, inv.token_id, inv.issued_at = None, new_token_id(), utcnow()
            if inv.role is not InvitationRole.CHAIR:
                inv.role = role
            new_ids.append(unit.id)
        session.add(inv)
        touched.append((inv, unit))
    await session.flush()
    warnings = await double_bookings(
        session, new_ids, meeting.starts_at, meeting.ends_at, exclude=meeting.id
    )
    record_audit(
        session,
        actor,
        "invitation.create",
        "meeting",
        meeting_id,
        units=[u.code for u in units.values()],
        role=role.value,
    )
    return InvitationResult([_public(inv, unit, links, meeting) for inv, unit in touched], warnings)


async def revoke_invitation(
    session: AsyncSession, actor: Actor, meeting_id: int, unit_code: str
) -> InvitationPublic:
    meeting, inv, unit = await get_invitation(session, meeting_id, unit_code)
    _require_editable(meeting)
    if inv.revoked_at is None:
        inv.revoked_at = utcnow()
        session.add(inv)
        await session.flush()
        record_audit(session, actor, "invitation.revoke", "meeting", meeting_id, unit=unit_code)
    return _public(inv, unit, None, meeting)


async def reissue_invitation(
    session: AsyncSession, actor: Actor, meeting_id: int, unit_code: str, links: JoinLinks
) -> InvitationPublic:
    """Give the invitation a new token id: links sent before stop working."""
    meeting, inv, unit = await get_invitation(session, meeting_id, unit_code)
    _require_editable(meeting)
    inv.token_id, inv.revoked_at, inv.issued_at = new_token_id(), None, utcnow()
    session.add(inv)
    await session.flush()
    record_audit(session, actor, "invitation.reissue", "meeting", meeting_id, unit=unit_code)
    return _public(inv, unit, links, meeting)


async def verify_join_token(
    session: AsyncSession, links: JoinLinks, token: str, *, meeting_id: int | None = None
) -> JoinGrant:
    """Verify a join token fully: signature and window, then revocation and meeting state.

    Raises:
        TokenRejected: with one of the codes of ``tokens.REJECTION_CODES``, or
            ``meeting_cancelled`` / ``meeting_ended`` for a meeting that is over.
    """
    claims = links.tokens.verify_join(token, meeting_id=meeting_id)
    inv = (await session.exec(select(Invitation).where(Invitation.token_id == claims.jti))).first()
    if inv is None or inv.revoked_at is not None or inv.meeting_id != claims.meeting_id:
        raise TokenRejected("this invitation was revoked or re-issued", code="token_revoked")
    meeting = await session.get(Meeting, inv.meeting_id)
    unit = await session.get(Unit, inv.unit_id)
    assert meeting is not None
    assert unit is not None
    if unit.code != claims.unit_code:
        raise TokenRejected("the token names another unit", code="token_revoked")
    if meeting.status not in ACTIVE_STATUSES:
        raise TokenRejected(
            f"the meeting is {meeting.status.value}", code=f"meeting_{meeting.status.value}"
        )
    return JoinGrant(claims=claims, meeting=meeting, unit=unit, invitation=inv)
