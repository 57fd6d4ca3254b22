"""A headless media participant: a signaling `Client` plus aiortc peer connections.

It publishes its tracks (``publish``), answers the server's ``subscribe_offer``
s, obeys ``video_pause`` (stops sending that video) and ``media_reset``
(publishes again), and counts what it receives per participant. `hoinghi join
--media test-pattern` uses it; so do the tests and the media benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from .client import Client

__all__ = ["MediaSession", "Received"]

log = logging.getLogger(__name__)


def _prefer(transceiver: Any, kind: str) -> None:
    want = ("video/vp8", "video/rtx") if kind == "video" else ("audio/opus",)
    caps = RTCRtpSender.getCapabilities(kind).codecs
    transceiver.setCodecPreferences([c for c in caps if c.mimeType.lower() in want])


class Received:
    """What arrived, per m-line of the receiving connection."""

    def __init__(self, inspect: Callable[[Any], None] | None = None) -> None:
        self.tracks: dict[str, dict[str, Any]] = {}  # mid -> {participant, source, kind}
        self.frames: dict[str, int] = defaultdict(int)
        self.first_frame_at: dict[str, float] = {}
        self.inspect = inspect  # called with each decoded video frame

    def count(self, participant: str, kind: str = "video", source: str = "camera") -> int:
        return sum(
            n
            for mid, n in self.frames.items()
            if (t := self.tracks.get(mid)) is not None
            and t["participant"] == participant
            and t["kind"] == kind
            and t["source"] == source
        )


class MediaSession:
    def __init__(
        self,
        client: Client,
        *,
        video: Callable[[], MediaStreamTrack] | None = None,
        audio: Callable[[], MediaStreamTrack] | None = None,
        received: Received | None = None,
        on_event: Callable[[dict[str, Any] | None], None] | None = None,
    ) -> None:
        # Factories, not tracks: aiortc ends a track when its connection closes, so
        # publishing again (after media_reset) needs new ones.
        self.client = client
        self.make_video = video
        self.make_audio = audio
        self.video: MediaStreamTrack | None = None
        self.audio: MediaStreamTrack | None = None
        self.received = received or Received()
        self.on_event = on_event  # each server message once handled; None when the socket ends
        self.publisher: RTCPeerConnection | None = None
        self.subscriber: RTCPeerConnection | None = None
        self.events: list[dict[str, Any]] = []
        self.video_paused = False
        self._changed = asyncio.Condition()
        self._tasks: set[asyncio.Task[None]] = set()
        self._pump: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Publish (if there is anything to send) and start answering the server."""
        self._pump = asyncio.create_task(self._run())
        if self.make_video is not None or self.make_audio is not None:
            await self.publish()

    async def publish(self) -> None:
        if self.publisher is not None:
            await self.publisher.close()
        pc = self.publisher = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.audio = self.make_audio() if self.make_audio is not None else None
        self.video = self.make_video() if self.make_video is not None else None
        if self.audio is not None:
            _prefer(pc.addTransceiver(self.audio, direction="sendonly"), "audio")
        if self.video is not None:
            _prefer(pc.addTransceiver(self.video, direction="sendonly"), "video")
        await pc.setLocalDescription(await pc.createOffer())
        answer = await self.client.request(
            "publish", within=20.0, sdp=pc.localDescription.sdp, source="camera"
        )
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))

    async def wait_for(self, type_: str, within: float = 10.0, **match: Any) -> dict[str, Any]:
        """The first event (seen already or to come) of ``type_`` with these fields."""

        def found() -> dict[str, Any] | None:
            return next(
                (
                    e
                    for e in self.events
                    if e.get("type") == type_ and all(e.get(k) == v for k, v in match.items())
                ),
                None,
            )

        async with asyncio.timeout(within), self._changed:
            while (event := found()) is None:
                await self._changed.wait()
            return event

    async def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
        for task in list(self._tasks):
            task.cancel()
        for pc in (self.publisher, self.subscriber):
            if pc is not None:
                await pc.close()

    # --- the server's messages ------------------------------------------------------

    async def _run(self) -> None:
        async for event in self.client.events():
            try:
                await self._handle(event)
            except Exception:
                log.exception("media: could not handle %s", event.get("type"))
            async with self._changed:
                self.events.append(event)
                self._changed.notify_all()
            if self.on_event is not None:
                self.on_event(event)
        if self.on_event is not None:
            self.on_event(None)

    async def _handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "subscribe_offer":
            await self._answer(event)
        elif kind == "video_pause":
            self.video_paused = bool(event["paused"])
            await self._send_video(not self.video_paused)
        elif kind == "media_reset":
            if self.subscriber is not None:
                await self.subscriber.close()
                self.subscriber = None
            if self.make_video is not None or self.make_audio is not None:
                await self.publish()

    async def _send_video(self, on: bool) -> None:
        if self.publisher is None or self.video is None:
            return
        for t in self.publisher.getTransceivers():
            if t.kind == "video":
                t.sender.replaceTrack(self.video if on else None)

    async def _answer(self, offer: dict[str, Any]) -> None:
        if self.subscriber is None:
            pc = self.subscriber = RTCPeerConnection(RTCConfiguration(iceServers=[]))

            @pc.on("track")
            def on_track(track: MediaStreamTrack) -> None:
                mid = next(t.mid or "" for t in pc.getTransceivers() if t.receiver.track is track)
                task = asyncio.create_task(self._read(mid, track))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

        for t in offer.get("tracks", []):
            self.received.tracks[t["mid"]] = t
        pc = self.subscriber
        await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        await self.client.request(
            "answer", within=20.0, offer_id=offer["offer_id"], sdp=pc.localDescription.sdp
        )

    async def _read(self, mid: str, track: MediaStreamTrack) -> None:
        received = self.received
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                received.frames[mid] += 1
                received.first_frame_at.setdefault(mid, time.monotonic())
                if track.kind == "video" and received.inspect is not None:
                    received.inspect(frame)
