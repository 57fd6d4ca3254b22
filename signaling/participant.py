"""A participant: one endpoint (browser tab, room PC, recorder) in a room."""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .errors import RequestRefused

__all__ = ["Participant", "ParticipantState", "Role"]

log = logging.getLogger(__name__)


class Role(enum.StrEnum):
    CHAIR = "chair"
    PARTICIPANT = "participant"
    OBSERVER = "observer"
    # Hidden: not a unit, not in the roster, not in attendance (the recorder).
    RECORDER = "recorder"


class ParticipantState(enum.StrEnum):
    LOBBY = "lobby"
    ACTIVE = "active"
    DISCONNECTED = "disconnected"
    LEFT = "left"


_TRANSITIONS: dict[ParticipantState, frozenset[ParticipantState]] = {
    ParticipantState.LOBBY: frozenset(
        {ParticipantState.ACTIVE, ParticipantState.DISCONNECTED, ParticipantState.LEFT}
    ),
    ParticipantState.ACTIVE: frozenset({ParticipantState.DISCONNECTED, ParticipantState.LEFT}),
    ParticipantState.DISCONNECTED: frozenset(
        {ParticipantState.ACTIVE, ParticipantState.LOBBY, ParticipantState.LEFT}
    ),
    ParticipantState.LEFT: frozenset(),
}


@dataclass(slots=True)
class Participant:
    id: str
    unit_code: str
    unit_name: str
    unit_id: int | None
    display_name: str
    role: Role
    resume_token: str
    joined_at: datetime
    client_info: dict[str, Any] = field(default_factory=dict)
    bandwidth: str = "full"
    state: ParticipantState = ParticipantState.LOBBY
    # Where a disconnected participant goes back to on resume.
    admitted: bool = False
    audio_muted: bool = False
    video_muted: bool = False
    muted_by_chair: bool = False

    @property
    def hidden(self) -> bool:
        return self.role is Role.RECORDER

    @property
    def is_chair(self) -> bool:
        return self.role is Role.CHAIR

    def set_state(self, new: ParticipantState) -> None:
        """Move to ``new``; refuses moves the state table does not allow."""
        old = self.state
        if new not in _TRANSITIONS[old]:
            raise RequestRefused(
                "forbidden", f"participant {self.id} is {old.value}, cannot become {new.value}"
            )
        log.debug("participant %s: %s -> %s", self.id, old.value, new.value)
        self.state = new
        if new is ParticipantState.ACTIVE:
            self.admitted = True

    def roster_entry(self, *, hand_raised: bool) -> dict[str, Any]:
        return {
            "id": self.id,
            "unit": self.unit_code,
            "unit_name": self.unit_name,
            "display_name": self.display_name,
            "role": self.role.value,
            "audio_muted": self.audio_muted,
            "video_muted": self.video_muted,
            "muted_by_chair": self.muted_by_chair,
            "hand_raised": hand_raised,
            "connected": self.state is not ParticipantState.DISCONNECTED,
            "bandwidth": self.bandwidth,
        }
