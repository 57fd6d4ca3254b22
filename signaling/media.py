"""The seam between rooms and media engines.

The room manager speaks to one ``MediaEngine``; the embedded SFU
(``signaling.sfu.engine``) implements it, and a Janus engine can. The room
owner tells the engine who is in the room and what they may receive
(``set_policy``, after every change), passes on the clients' SDP and ICE, and
turns the engine's events (``MediaEvent``) into protocol messages. Until an
engine is configured, ``NoMedia`` refuses media requests with
``media_unavailable`` and rooms still run (signaling, lobby, moderation,
attendance, chat).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from .errors import RequestRefused

__all__ = [
    "Bandwidth",
    "EventSink",
    "MediaEngine",
    "MediaEvent",
    "MemberPolicy",
    "NoMedia",
    "RoomPolicy",
]

Bandwidth = Literal["full", "low", "audio"]


@dataclass(frozen=True, slots=True)
class MemberPolicy:
    """One participant as the media engine must treat it."""

    id: str
    is_chair: bool = False
    bandwidth: Bandwidth = "full"
    publishes: bool = True  # False for observers and the recorder
    audio_muted: bool = False  # by itself or by the chair: not forwarded
    video_muted: bool = False
    everything: bool = False  # the recorder: receives every track


@dataclass(frozen=True, slots=True)
class RoomPolicy:
    """Who is in a room's media and what decides what they receive (Last-N)."""

    members: tuple[MemberPolicy, ...] = ()
    floor: str | None = None
    presenter: str | None = None
    last_n: int = 4

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RoomPolicy:
        return cls(
            members=tuple(MemberPolicy(**m) for m in data.get("members", ())),
            floor=data.get("floor"),
            presenter=data.get("presenter"),
            last_n=int(data.get("last_n", 4)),
        )


@dataclass(frozen=True, slots=True)
class MediaEvent:
    """Something the engine tells a room.

    ``type`` is ``subscribe_offer``, ``video_pause`` (to ``participant``),
    ``active_speaker`` (to everyone) or ``media_reset`` (``participant`` None:
    everyone's media was lost).
    """

    type: str
    participant: str | None
    data: dict[str, Any] = field(default_factory=dict)


EventSink = Callable[[int, MediaEvent], None]


class MediaEngine(Protocol):
    def attach(self, sink: EventSink) -> None:
        """Where events go: ``sink(meeting_id, event)``, called on the event loop."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def set_policy(self, meeting_id: int, policy: RoomPolicy) -> None:
        """The room's members and Last-N inputs; members not listed lose their media."""

    async def publish(self, meeting_id: int, participant: str, source: str, offer_sdp: str) -> str:
        """Accept a client's offer for ``source``; return the SDP answer."""
        ...

    async def unpublish(self, meeting_id: int, participant: str, source: str) -> None: ...

    async def subscriber_answer(
        self, meeting_id: int, participant: str, offer_id: str, answer_sdp: str
    ) -> None: ...

    async def resubscribe(self, meeting_id: int, participant: str) -> None:
        """Replace the participant's receiving connection (a new ``subscribe_offer``)."""

    async def refresh(self, meeting_id: int, participant: str) -> None:
        """Send again an offer the participant has not answered (it reconnected)."""

    async def add_ice_candidate(
        self,
        meeting_id: int,
        participant: str,
        target: str,
        source: str,
        candidate: str,
        sdp_mid: str | None,
        sdp_mline_index: int | None,
    ) -> None: ...

    async def close_room(self, meeting_id: int) -> None: ...

    def stats(self) -> dict[str, Any]:
        """Load figures for the admin pages: rooms and streams per worker."""
        ...


def _refuse() -> RequestRefused:
    return RequestRefused("media_unavailable", "no media engine is configured")


class NoMedia:
    """No engine: every media request is refused; policies and closing are no-ops."""

    def attach(self, sink: EventSink) -> None:
        return None

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def set_policy(self, meeting_id: int, policy: RoomPolicy) -> None:
        return None

    async def publish(self, meeting_id: int, participant: str, source: str, offer_sdp: str) -> str:
        raise _refuse()

    async def unpublish(self, meeting_id: int, participant: str, source: str) -> None:
        raise _refuse()

    async def subscriber_answer(
        self, meeting_id: int, participant: str, offer_id: str, answer_sdp: str
    ) -> None:
        raise _refuse()

    async def resubscribe(self, meeting_id: int, participant: str) -> None:
        raise _refuse()

    async def refresh(self, meeting_id: int, participant: str) -> None:
        return None

    async def add_ice_candidate(
        self,
        meeting_id: int,
        participant: str,
        target: str,
        source: str,
        candidate: str,
        sdp_mid: str | None,
        sdp_mline_index: int | None,
    ) -> None:
        raise _refuse()

    async def close_room(self, meeting_id: int) -> None:
        return None

    def stats(self) -> dict[str, Any]:
        return {"engine": "none"}
