"""Ending access and session tokens before they expire (logout).

A token names itself by ``jti``; a revoked ``jti`` is kept until the token
would have expired anyway, then purged.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from .models import RevokedToken
from .tokens import AccessClaims

__all__ = ["is_revoked", "revoke"]


async def revoke(session: AsyncSession, claims: AccessClaims, now: datetime) -> None:
    """Revoke one token (idempotent) and drop revocations that no longer matter."""
    await session.exec(sa.delete(RevokedToken).where(col(RevokedToken.expires_at) < now))
    if await session.get(RevokedToken, claims.jti) is None:
        session.add(
            RevokedToken(jti=claims.jti, expires_at=datetime.fromtimestamp(claims.expires, UTC))
        )


async def is_revoked(session: AsyncSession, jti: str) -> bool:
    found = await session.exec(select(RevokedToken.jti).where(RevokedToken.jti == jti))
    return found.first() is not None
