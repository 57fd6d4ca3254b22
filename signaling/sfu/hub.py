"""All the rooms of one media process, behind one call: ``call(meeting, op, args)``.

The same hub serves in-process (``--media-workers 0``, tests) and inside each
worker process (behind the IPC of ``worker.py``). Calls for one room run one at
a time, in the order they arrive; rooms do not wait for each other.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..errors import RequestRefused
from ..media import MediaEvent, RoomPolicy
from .room_media import MediaRoom

__all__ = ["OPS", "MediaHub"]

OPS = frozenset(
    {"set_policy", "publish", "unpublish", "answer", "resubscribe", "refresh", "ice", "close_room"}
)


class MediaHub:
    def __init__(self, emit: Callable[[int, MediaEvent], None], *, last_n: int = 4) -> None:
        self.emit = emit
        self.last_n = last_n
        self.rooms: dict[int, MediaRoom] = {}
        self.started = time.monotonic()

    def _room(self, meeting_id: int) -> MediaRoom:
        room = self.rooms.get(meeting_id)
        if room is None:

            def emit(event: MediaEvent) -> None:
                self.emit(meeting_id, event)

            room = self.rooms[meeting_id] = MediaRoom(meeting_id, emit, last_n=self.last_n)
        return room

    async def call(self, meeting_id: int, op: str, args: dict[str, Any]) -> Any:
        if op not in OPS:
            raise RequestRefused("internal_error", f"unknown media operation {op!r}")
        if op == "close_room":
            room = self.rooms.pop(meeting_id, None)
            if room is not None:
                async with room.lock:
                    await room.close()
            return None
        room = self._room(meeting_id)
        async with room.lock:
            if op == "set_policy":
                await room.set_policy(RoomPolicy.from_json(args["policy"]))
                return None
            if op == "publish":
                return await room.publish(args["participant"], args["source"], args["sdp"])
            if op == "unpublish":
                await room.unpublish(args["participant"], args["source"])
                return None
            if op == "answer":
                await room.answer(args["participant"], args["offer_id"], args["sdp"])
                return None
            if op == "resubscribe":
                await room.resubscribe(args["participant"])
                return None
            if op == "refresh":
                await room.refresh(args["participant"])
                return None
            await room.add_ice(
                args["participant"],
                args["target"],
                args["source"],
                args["candidate"],
                args.get("sdp_mid"),
                args.get("sdp_mline_index"),
            )
            return None

    def stats(self) -> dict[str, Any]:
        return {
            "rooms": len(self.rooms),
            "participants": sum(len(r.subscriptions) for r in self.rooms.values()),
            "streams_out": sum(r.stats()["streams_out"] for r in self.rooms.values()),
            "packets_in": sum(r.stats()["packets_in"] for r in self.rooms.values()),
        }

    async def close(self) -> None:
        for meeting_id in list(self.rooms):
            await self.call(meeting_id, "close_room", {})
