"""The tables of hoinghi and the shapes that cross the API.

Pattern (SQLModel tutorial): ``XBase`` holds the fields people set,
``X(table=True)`` the row, ``XCreate``/``XUpdate`` the accepted input (unknown
fields refused), ``XPublic`` what handlers return. Handlers never return rows.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import AwareDatetime, ConfigDict, StrictBool, field_serializer
from sqlmodel import JSON, Column, Field, SQLModel

from .columns import UTCDateTime, enum_column
from .fields import AgendaItem, Code, Name, Password, Title, Username
from .slugs import fold
from .timezone import to_local, utcnow

__all__ = [
    "Account",
    "AccountCreate",
    "AccountPublic",
    "AccountUpdate",
    "AttendanceEvent",
    "AttendanceKind",
    "AuditEntry",
    "ChatMessage",
    "CompositeStatus",
    "DeliveryStatus",
    "Invitation",
    "InvitationRole",
    "Meeting",
    "MeetingCreate",
    "MeetingKind",
    "MeetingPublic",
    "MeetingStatus",
    "MeetingUpdate",
    "PasswordReset",
    "PresenceHeartbeat",
    "Recording",
    "RecordingPublic",
    "RecordingStatus",
    "RecordingUpdate",
    "RevokedToken",
    "Role",
    "Setting",
    "Unit",
    "UnitCreate",
    "UnitKind",
    "UnitPublic",
    "UnitUpdate",
    "WebhookDelivery",
    "WebhookSubscription",
]


# Typed Any: SQLModel declares model_config as its own TypedDict subclass.
_FORBID: Any = ConfigDict(extra="forbid")


class UnitKind(enum.StrEnum):
    CENTRAL = "central"
    PROVINCE = "province"
    DEPARTMENT = "department"
    DISTRICT = "district"
    COMMUNE = "commune"


class Role(enum.StrEnum):
    ADMIN = "admin"
    SECRETARIAT = "secretariat"
    CLERK = "clerk"
    OPERATOR = "operator"
    CHAIR = "chair"


class MeetingKind(enum.StrEnum):
    REGULAR = "regular"
    EXTRAORDINARY = "extraordinary"


class MeetingStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    OPEN = "open"
    LIVE = "live"
    ENDED = "ended"
    CANCELLED = "cancelled"


class InvitationRole(enum.StrEnum):
    CHAIR = "chair"
    PARTICIPANT = "participant"
    OBSERVER = "observer"


class AttendanceKind(enum.StrEnum):
    LOBBY = "lobby"
    JOIN = "join"
    ADMIT = "admit"
    DENY = "deny"
    LEAVE = "leave"
    DISCONNECT = "disconnect"
    RECONNECT = "reconnect"
    REMOVE = "remove"
    HEARTBEAT = "heartbeat"
    CRASH_CLOSE = "crash_close"
    ROLL_CALL = "roll_call"


class RecordingStatus(enum.StrEnum):
    RECORDING = "recording"
    FINISHED = "finished"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # the server stopped mid-recording; finalised from disk


class CompositeStatus(enum.StrEnum):
    NONE = "none"
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for its next attempt
    DELIVERED = "delivered"
    GIVEN_UP = "given_up"  # every attempt failed


def _local(value: datetime) -> str:
    return to_local(value).isoformat()


# --- units -----------------------------------------------------------------


class UnitBase(SQLModel):
    code: Code = Field(max_length=32, sa_column_kwargs={"unique": True}, index=False)
    name: Name = Field(max_length=200)
    kind: UnitKind = Field(sa_type=enum_column(UnitKind))


class Unit(UnitBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    parent_id: int | None = Field(default=None, foreign_key="unit.id", index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class UnitCreate(UnitBase):
    model_config = _FORBID
    parent: Code | None = None


class UnitUpdate(SQLModel):
    model_config = _FORBID
    name: Name | None = None
    kind: UnitKind | None = None
    parent: Code | None = None


class UnitPublic(UnitBase):
    id: int
    parent: str | None = None


# --- accounts --------------------------------------------------------------


class Account(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, sa_column_kwargs={"unique": True})
    display_name: str = Field(max_length=200)
    password_hash: str = Field(max_length=255)
    roles: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    unit_id: int | None = Field(default=None, foreign_key="unit.id")
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # Set with a new password: sessions and API tokens issued before it are refused.
    tokens_valid_after: datetime | None = Field(default=None, sa_type=UTCDateTime)


class AccountCreate(SQLModel):
    model_config = _FORBID
    username: Username
    display_name: Name
    password: Password
    roles: list[Role] = Field(min_length=1, max_length=5)
    unit: Code | None = None


class AccountUpdate(SQLModel):
    """What an admin may change on an account; an absent field is left as it is.

    ``unit: null`` detaches the account from its unit; ``display_name``, ``roles``
    and ``active`` cannot be null (an account always has a name and a role).
    """

    model_config = _FORBID
    display_name: Name | None = None
    roles: list[Role] | None = Field(default=None, min_length=1, max_length=5)
    unit: Code | None = None
    # Strict: lax pydantic reads "no" or "off" as False, and deactivating an account
    # by a typo is not a change to guess at.
    active: StrictBool | None = None


class PasswordReset(SQLModel):
    """A new password an admin sets for an account (the old one is not asked)."""

    model_config = _FORBID
    password: Password


class AccountPublic(SQLModel):
    id: int
    username: str
    display_name: str
    roles: list[Role]
    unit: str | None = None
    active: bool


# --- meetings --------------------------------------------------------------


class Meeting(SQLModel, table=True):
    __table_args__ = (
        sa.Index("ix_meeting_window", "starts_at", "ends_at"),
        sa.Index("ix_meeting_chair_window", "chair_unit_id", "starts_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=300)
    # The title without case and tone marks (slugs.fold), kept by the ORM on every
    # write (_fold_title): searches match it with LIKE on any database.
    title_search: str = Field(default="", max_length=1200)
    agenda: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    starts_at: datetime = Field(sa_type=UTCDateTime)
    ends_at: datetime = Field(sa_type=UTCDateTime)
    chair_unit_id: int = Field(foreign_key="unit.id")
    kind: MeetingKind = Field(sa_type=enum_column(MeetingKind))
    status: MeetingStatus = Field(
        default=MeetingStatus.SCHEDULED,
        sa_type=enum_column(MeetingStatus),
        index=True,
    )
    recording: bool = False
    auto_admit: bool = False
    # Bumped on every change people see; it is the SEQUENCE of the ICS event.
    revision: int = 0
    created_by_id: int | None = Field(default=None, foreign_key="account.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


@sa.event.listens_for(Meeting, "before_insert")
@sa.event.listens_for(Meeting, "before_update")
def _fold_title(_mapper: Any, _connection: Any, meeting: Meeting) -> None:
    meeting.title_search = fold(meeting.title)


class MeetingCreate(SQLModel):
    model_config = _FORBID
    title: Title
    agenda: list[AgendaItem] = Field(default_factory=list, max_length=100)
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    chair_unit: Code
    kind: MeetingKind = MeetingKind.REGULAR
    recording: bool = False
    auto_admit: bool = False
    invited_units: list[Code] = Field(default_factory=list, max_length=500)


class MeetingUpdate(SQLModel):
    """A partial update. Changing times is a reschedule (same checks as create)."""

    model_config = _FORBID
    title: Title | None = None
    agenda: list[AgendaItem] | None = Field(default=None, max_length=100)
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    chair_unit: Code | None = None
    kind: MeetingKind | None = None
    recording: bool | None = None
    auto_admit: bool | None = None


class MeetingPublic(SQLModel):
    id: int
    title: str
    agenda: list[str]
    starts_at: datetime
    ends_at: datetime
    chair_unit: str
    kind: MeetingKind
    status: MeetingStatus
    recording: bool
    auto_admit: bool
    revision: int
    invited_count: int = 0
    timezone: str = "Asia/Ho_Chi_Minh"

    @field_serializer("starts_at", "ends_at")
    def _show_local(self, value: datetime) -> str:
        return _local(value)


# --- invitations -----------------------------------------------------------


class Invitation(SQLModel, table=True):
    __table_args__ = (
        sa.UniqueConstraint("meeting_id", "unit_id", name="uq_invitation_meeting_unit"),
        sa.Index("ix_invitation_unit_meeting", "unit_id", "meeting_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    meeting_id: int = Field(foreign_key="meeting.id")
    unit_id: int = Field(foreign_key="unit.id")
    role: InvitationRole = Field(sa_type=enum_column(InvitationRole))
    # The ``jti`` of the current join token; re-issuing replaces it, so old links die.
    token_id: str = Field(max_length=64, sa_column_kwargs={"unique": True})
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    issued_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class InvitationCreate(SQLModel):
    model_config = _FORBID
    units: list[Code] = Field(min_length=1, max_length=500)
    role: InvitationRole = InvitationRole.PARTICIPANT


class InvitationPublic(SQLModel):
    id: int
    meeting_id: int
    unit: str
    unit_name: str
    role: InvitationRole
    revoked: bool
    issued_at: datetime
    join_url: str | None = None

    @field_serializer("issued_at")
    def _show_local(self, value: datetime) -> str:
        return _local(value)


# --- attendance, recordings, webhooks, audit --------------------------------


class AttendanceEvent(SQLModel, table=True):
    """Append-only: rows are inserted, never updated or deleted."""

    __tablename__ = "attendance_event"
    __table_args__ = (sa.Index("ix_attendance_meeting_at", "meeting_id", "at"),)
    id: int | None = Field(default=None, primary_key=True)
    meeting_id: int = Field(foreign_key="meeting.id")
    unit_id: int | None = Field(default=None, foreign_key="unit.id")
    participant_session: str = Field(max_length=64, index=True)
    kind: AttendanceKind = Field(sa_type=enum_column(AttendanceKind))
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    client_info: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )


class PresenceHeartbeat(SQLModel, table=True):
    """The last time the server saw an endpoint alive; one row per endpoint, upserted
    at most every 30 s. After a crash, open intervals are closed at this time."""

    __tablename__ = "presence_heartbeat"
    participant_session: str = Field(max_length=64, primary_key=True)
    meeting_id: int = Field(foreign_key="meeting.id", index=True)
    unit_id: int | None = Field(default=None, foreign_key="unit.id")
    at: datetime = Field(sa_type=UTCDateTime)


class ChatMessage(SQLModel, table=True):
    """Chat kept for the record."""

    __tablename__ = "chat_message"
    __table_args__ = (sa.Index("ix_chat_meeting_at", "meeting_id", "at"),)
    id: int | None = Field(default=None, primary_key=True)
    meeting_id: int = Field(foreign_key="meeting.id")
    participant_session: str = Field(max_length=64)
    unit_id: int | None = Field(default=None, foreign_key="unit.id")
    display_name: str = Field(max_length=200)
    recipients: str = Field(max_length=16)
    text: str = Field(sa_type=sa.Text)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class RevokedToken(SQLModel, table=True):
    """Access and session tokens ended before their expiry (logout). Rows are
    useless once ``expires_at`` passes and are purged then."""

    __tablename__ = "revoked_token"
    jti: str = Field(max_length=64, primary_key=True)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)


class Recording(SQLModel, table=True):
    """One recording of a meeting (a meeting may have several: the chair stops and
    starts again). ``path`` is the recording's directory relative to the storage
    root; its ``manifest.json`` lists the track files."""

    id: int | None = Field(default=None, primary_key=True)
    meeting_id: int = Field(foreign_key="meeting.id", index=True)
    number: int = 1  # 1, 2, ... within the meeting
    status: RecordingStatus = Field(sa_type=enum_column(RecordingStatus))
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    path: str = Field(default="", max_length=1000)
    size_bytes: int = Field(default=0, sa_type=sa.BigInteger)
    duration_seconds: float = 0.0
    keep: bool = False
    failure: str = Field(default="", max_length=500)  # why it failed or was interrupted
    # Unit ids whose tracks the recording holds (for "recordings of unit X").
    unit_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    composite_status: CompositeStatus = Field(
        default=CompositeStatus.NONE, sa_type=enum_column(CompositeStatus)
    )
    composite_progress: float = 0.0  # 0..1
    composite_layout: str = Field(default="speaker", max_length=16)  # speaker or grid
    composite_path: str = Field(default="", max_length=1000)
    composite_error: str = Field(default="", max_length=500)


class RecordingPublic(SQLModel):
    id: int
    meeting_id: int
    meeting_title: str
    number: int
    status: RecordingStatus
    started_at: datetime
    ended_at: datetime | None
    duration_seconds: float
    size_bytes: int
    keep: bool
    failure: str
    unit_ids: list[int]
    composite_status: CompositeStatus
    composite_progress: float
    timezone: str = "Asia/Ho_Chi_Minh"

    @field_serializer("started_at", "ended_at")
    def _show_local(self, value: datetime | None) -> str | None:
        return None if value is None else _local(value)


class RecordingUpdate(SQLModel):
    model_config = _FORBID
    keep: bool


class WebhookSubscription(SQLModel, table=True):
    __tablename__ = "webhook_subscription"
    id: int | None = Field(default=None, primary_key=True)
    url: str = Field(max_length=2000)
    # HMAC key for the signature header; shown once at creation.
    secret: str = Field(max_length=128)
    events: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class WebhookDelivery(SQLModel, table=True):
    """One event for one subscription: written when the event happens, so a
    restart resumes pending deliveries (at least once). ``event_id`` is the
    idempotency key the receiver sees in every attempt."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        sa.UniqueConstraint("subscription_id", "event_id", name="uq_delivery_event"),
        sa.Index("ix_delivery_due", "status", "next_attempt_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    subscription_id: int = Field(foreign_key="webhook_subscription.id", index=True)
    event_id: str = Field(max_length=64)
    event: str = Field(max_length=64)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: DeliveryStatus = Field(
        default=DeliveryStatus.PENDING, sa_type=enum_column(DeliveryStatus)
    )
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_status: int | None = None  # the receiver's HTTP status of the last attempt
    last_error: str = Field(default="", max_length=500)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Setting(SQLModel, table=True):
    """A setting an administrator changes in the pages, by key (the configuration
    gives the default until one is stored); ``value`` is its JSON text."""

    key: str = Field(max_length=64, primary_key=True)
    value: str = Field(max_length=1000)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_entry"
    __table_args__ = (sa.Index("ix_audit_object", "object_type", "object_id"),)
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    actor_id: int | None = Field(default=None, foreign_key="account.id")
    actor: str = Field(max_length=64)
    action: str = Field(max_length=64)
    object_type: str = Field(max_length=32)
    object_id: str = Field(max_length=64)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class AuditPublic(SQLModel):
    id: int
    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    detail: dict[str, Any]

    @field_serializer("at")
    def _show_local(self, value: datetime) -> str:
        return _local(value)
