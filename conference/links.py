"""Join links: the signed invitation token of one unit for one meeting, as a URL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from .models import Invitation, Meeting
from .tokens import TokenService

__all__ = ["JoinLinks"]


@dataclass(frozen=True, slots=True)
class JoinLinks:
    tokens: TokenService
    public_url: str
    lobby_minutes: int
    grace_minutes: int

    def window(self, meeting: Meeting) -> tuple[datetime, datetime]:
        """When a join token is valid: from the lobby opening to the end plus grace."""
        return (
            meeting.starts_at - timedelta(minutes=self.lobby_minutes),
            meeting.ends_at + timedelta(minutes=self.grace_minutes),
        )

    def token(self, meeting: Meeting, invitation: Invitation, unit_code: str) -> str:
        assert meeting.id is not None
        not_before, expires = self.window(meeting)
        return self.tokens.issue_join(
            meeting_id=meeting.id,
            unit_code=unit_code,
            role=invitation.role.value,
            jti=invitation.token_id,
            not_before=not_before,
            expires=expires,
        )

    def url(self, meeting: Meeting, invitation: Invitation, unit_code: str) -> str:
        return f"{self.public_url}/join/{self.token(meeting, invitation, unit_code)}"
