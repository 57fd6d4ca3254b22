"""The event bus: room and participant events for webhooks and other nodes.

One interface (``Bus``), an in-process implementation now; a Redis one later
implements the same Protocol. Publishing never blocks a room: a subscriber
that falls behind loses its oldest events and is told how many.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from conference.timezone import utcnow

__all__ = ["Bus", "BusEvent", "InProcessBus"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BusEvent:
    name: str  # room.started, room.ended, participant.joined, participant.left, recording.state
    data: dict[str, Any]
    at: datetime = field(default_factory=utcnow)


class Bus(Protocol):
    def publish(self, event: BusEvent) -> None: ...
    def subscribe(self, max_backlog: int = 1000) -> AsyncIterator[BusEvent]: ...


class InProcessBus:
    def __init__(self) -> None:
        self._queues: list[asyncio.Queue[BusEvent]] = []
        self.published = 0

    def publish(self, event: BusEvent) -> None:
        self.published += 1
        for queue in self._queues:
            if queue.full():
                dropped = queue.get_nowait()
                log.warning("bus subscriber behind; dropped %s", dropped.name)
            queue.put_nowait(event)

    async def subscribe(self, max_backlog: int = 1000) -> AsyncIterator[BusEvent]:
        queue: asyncio.Queue[BusEvent] = asyncio.Queue(max_backlog)
        self._queues.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._queues.remove(queue)
