"""Demo data: the province's units, one account per role, and a meeting that starts now."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources

from sqlmodel import col, select

from .accounts import create_account, set_password
from .actors import SYSTEM
from .db import Database
from .invitations import list_invitations
from .links import JoinLinks
from .meetings import ACTIVE_STATUSES, create_meeting, meeting_public
from .models import (
    Account,
    AccountCreate,
    Meeting,
    MeetingCreate,
    MeetingKind,
    MeetingPublic,
    Role,
)
from .timezone import utcnow
from .units import get_unit, import_units_csv

__all__ = ["DEMO_UNITS", "DemoAccount", "DemoInfo", "DemoLink", "bundled_units_csv", "seed_demo"]

CHAIR_UNIT = "QB"
# Two departments, a district, and the two commune centres without broadband.
DEMO_UNITS = (
    "QB-STTTT",
    "QB-SNV",
    "QB-BOTRACH",
    "QB-BOTRACH-TANTRACH",
    "QB-BOTRACH-THUONGTRACH",
)
DEMO_TITLE = "Họp trực tuyến Ban Chỉ đạo xây dựng chính quyền điện tử tỉnh"
_ACCOUNTS = (
    ("admin", "Quản trị hệ thống", Role.ADMIN, "QB-STTTT"),
    ("thuky", "Thư ký Văn phòng UBND tỉnh", Role.SECRETARIAT, "QB-VP"),
    ("vanthu", "Văn thư", Role.CLERK, "QB-VP"),
    ("chutri", "Chủ trì UBND tỉnh", Role.CHAIR, "QB"),
    ("vanhanh", "Cán bộ vận hành Sở TT&TT", Role.OPERATOR, "QB-STTTT"),
)


@dataclass(frozen=True, slots=True)
class DemoAccount:
    username: str
    password: str
    role: Role
    unit: str


@dataclass(frozen=True, slots=True)
class DemoLink:
    role: str
    unit: str
    unit_name: str
    url: str


@dataclass(frozen=True, slots=True)
class DemoInfo:
    accounts: list[DemoAccount]
    meeting: MeetingPublic
    links: list[DemoLink]


def bundled_units_csv() -> str:
    return (resources.files("conference") / "data" / "units-quang-binh.csv").read_text("utf-8")


async def seed_demo(db: Database, links: JoinLinks, *, now: datetime | None = None) -> DemoInfo:
    """Seed (idempotently) and return what the demo prints.

    Units are imported from the bundled CSV; demo accounts get fresh random
    passwords on every run; a running demo meeting chaired by the province is
    reused, otherwise one is scheduled from now for two hours.
    """
    now = (now or utcnow()).replace(second=0, microsecond=0)
    accounts: list[DemoAccount] = []
    async with db.write() as session:
        await import_units_csv(session, SYSTEM, bundled_units_csv())
        for username, display, role, unit in _ACCOUNTS:
            password = secrets.token_urlsafe(9)
            exists = (
                await session.exec(select(Account.id).where(Account.username == username))
            ).first()
            if exists is None:
                await create_account(
                    session,
                    SYSTEM,
                    AccountCreate(
                        username=username,
                        display_name=display,
                        password=password,
                        roles=[role],
                        unit=unit,
                    ),
                )
            else:
                await set_password(session, SYSTEM, username, password)
            accounts.append(DemoAccount(username, password, role, unit))

        chair = await get_unit(session, CHAIR_UNIT)
        meeting = (
            await session.exec(
                select(Meeting).where(
                    Meeting.chair_unit_id == chair.id,
                    Meeting.title == DEMO_TITLE,
                    col(Meeting.status).in_(ACTIVE_STATUSES),
                    col(Meeting.starts_at) <= now + timedelta(minutes=5),
                    col(Meeting.ends_at) > now + timedelta(minutes=30),
                )
            )
        ).first()
        if meeting is None:
            scheduled = await create_meeting(
                session,
                SYSTEM,
                MeetingCreate(
                    title=DEMO_TITLE,
                    agenda=[
                        "Tình hình triển khai chính quyền điện tử",
                        "Hạ tầng viễn thông tại xã Tân Trạch và Thượng Trạch",
                        "Bảo đảm an toàn, an ninh mạng",
                    ],
                    starts_at=now,
                    ends_at=now + timedelta(hours=2),
                    chair_unit=CHAIR_UNIT,
                    kind=MeetingKind.REGULAR,
                    recording=True,
                    auto_admit=True,
                    invited_units=list(DEMO_UNITS),
                ),
                now=now,
            )
            public = scheduled.meeting
        else:
            public = await meeting_public(session, meeting)
        invitations = await list_invitations(session, public.id, links)
    return DemoInfo(
        accounts=accounts,
        meeting=public,
        links=[
            DemoLink(inv.role.value, inv.unit, inv.unit_name, inv.join_url or "")
            for inv in invitations
            if inv.join_url
        ],
    )
