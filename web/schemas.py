"""Request and response shapes that exist only at the HTTP edge (envelopes)."""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from conference.fields import Name
from conference.models import (
    AccountPublic,
    AuditPublic,
    InvitationPublic,
    MeetingPublic,
    UnitPublic,
)

__all__ = [
    "CancelRequest",
    "HealthOut",
    "ImportOut",
    "InvitationsOut",
    "LoginOut",
    "LoginRequest",
    "MeetingPageOut",
    "RescheduleRequest",
    "ScheduledOut",
    "WarningOut",
]

_FORBID = ConfigDict(extra="forbid")


class LoginRequest(BaseModel):
    model_config = _FORBID
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class LoginOut(BaseModel):
    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_in: int
    account: AccountPublic


class WarningOut(BaseModel):
    code: str
    message: str
    unit: str | None = None
    meeting_id: int | None = None


class ScheduledOut(BaseModel):
    meeting: MeetingPublic
    warnings: list[WarningOut]


class MeetingPageOut(BaseModel):
    items: list[MeetingPublic]
    total: int
    limit: int
    offset: int


class RescheduleRequest(BaseModel):
    model_config = _FORBID
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    reason: Name | None = None  # shown to the invited units and sent in the webhook


class CancelRequest(BaseModel):
    model_config = _FORBID
    reason: Name | None = None


class InvitationsOut(BaseModel):
    invitations: list[InvitationPublic]
    warnings: list[WarningOut] = Field(default_factory=list)


class UnitListOut(BaseModel):
    items: list[UnitPublic]


class UnitTreeOut(BaseModel):
    roots: list[dict[str, Any]]


class AccountListOut(BaseModel):
    items: list[AccountPublic]


class AuditListOut(BaseModel):
    items: list[AuditPublic]


class ImportOut(BaseModel):
    created: list[str]
    updated: list[str]
    unchanged: list[str]


class HealthOut(BaseModel):
    status: str
    version: str
