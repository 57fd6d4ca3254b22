"""The seam between rooms and media engines.

The room manager speaks to one ``MediaEngine``; the embedded aiortc SFU and
the Janus engine implement it. Until an engine is configured, ``NoMedia``
refuses media requests with ``media_unavailable`` and rooms still run
(signaling, lobby, moderation, attendance, chat).
"""

from __future__ import annotations

from typing import Protocol

from .errors import RequestRefused

__all__ = ["MediaEngine", "NoMedia"]


class MediaEngine(Protocol):
    async def publish(self, meeting_id: int, participant: str, source: str, offer_sdp: str) -> str:
        """Accept a client's offer for ``source``; return the SDP answer."""
        ...

    async def unpublish(self, meeting_id: int, participant: str, source: str) -> None: ...

    async def subscriber_answer(
        self, meeting_id: int, participant: str, offer_id: str, answer_sdp: str
    ) -> None: ...

    async def add_ice_candidate(
        self,
        meeting_id: int,
        participant: str,
        target: str,
        candidate: str,
        sdp_mid: str | None,
        sdp_mline_index: int | None,
    ) -> None: ...

    async def remove_participant(self, meeting_id: int, participant: str) -> None: ...

    async def close_room(self, meeting_id: int) -> None: ...


class NoMedia:
    """No engine: every media request is refused; leaving and closing are no-ops."""

    async def publish(self, meeting_id: int, participant: str, source: str, offer_sdp: str) -> str:
        raise RequestRefused("media_unavailable", "no media engine is configured")

    async def unpublish(self, meeting_id: int, participant: str, source: str) -> None:
        raise RequestRefused("media_unavailable", "no media engine is configured")

    async def subscriber_answer(
        self, meeting_id: int, participant: str, offer_id: str, answer_sdp: str
    ) -> None:
        raise RequestRefused("media_unavailable", "no media engine is configured")

    async def add_ice_candidate(
        self,
        meeting_id: int,
        participant: str,
        target: str,
        candidate: str,
        sdp_mid: str | None,
        sdp_mline_index: int | None,
    ) -> None:
        raise RequestRefused("media_unavailable", "no media engine is configured")

    async def remove_participant(self, meeting_id: int, participant: str) -> None:
        return None

    async def close_room(self, meeting_id: int) -> None:
        return None
