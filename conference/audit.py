"""The audit trail: who did what to which object, written in the same transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from .actors import Actor
from .models import AuditEntry, AuditPublic

__all__ = ["list_audit", "record_audit"]


def record_audit(
    session: AsyncSession,
    actor: Actor,
    action: str,
    object_type: str,
    object_id: object,
    **detail: Any,
) -> None:
    """Add an audit entry to ``session``; it commits or rolls back with the change."""
    session.add(
        AuditEntry(
            actor_id=actor.account_id,
            actor=actor.username,
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            detail=detail,
        )
    )


async def list_audit(
    session: AsyncSession,
    *,
    object_type: str | None = None,
    object_id: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[AuditPublic]:
    query = select(AuditEntry).order_by(col(AuditEntry.id).desc()).limit(limit)
    if object_type is not None:
        query = query.where(AuditEntry.object_type == object_type)
    if object_id is not None:
        query = query.where(AuditEntry.object_id == object_id)
    if since is not None:
        query = query.where(col(AuditEntry.at) >= since)
    rows = (await session.exec(query)).all()
    return [AuditPublic.model_validate(row, from_attributes=True) for row in rows]
