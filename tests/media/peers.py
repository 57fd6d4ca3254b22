"""aiortc test participants: a publisher of the test pattern and a subscriber that
answers the SFU's offers and counts (or decodes and checks) what arrives."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from signaling.testmedia import PatternVideo, ToneAudio, frame_error, read_index


def prefer(transceiver: Any, kind: str) -> None:
    want = ("video/vp8", "video/rtx") if kind == "video" else ("audio/opus",)
    caps = RTCRtpSender.getCapabilities(kind).codecs
    transceiver.setCodecPreferences([c for c in caps if c.mimeType.lower() in want])


@dataclass
class Publisher:
    pc: RTCPeerConnection
    video: PatternVideo | None
    audio: ToneAudio | None

    async def close(self) -> None:
        await self.pc.close()


async def make_publisher(
    answer: Callable[[str], Awaitable[str]],
    *,
    video: bool = True,
    audio: bool = True,
    tone_off: float = 1.0,
    size: tuple[int, int] = (320, 180),
) -> Publisher:
    """Offer, get the answer through ``answer(offer_sdp)``, and start sending."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    a = ToneAudio(off=tone_off) if audio else None
    v = PatternVideo(*size) if video else None
    if a is not None:
        prefer(pc.addTransceiver(a, direction="sendonly"), "audio")
    if v is not None:
        prefer(pc.addTransceiver(v, direction="sendonly"), "video")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = await answer(pc.localDescription.sdp)
    await pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))
    return Publisher(pc, v, a)


@dataclass
class Subscriber:
    """Answers offers; per m-line (mid), counts decoded frames and checks them."""

    pc: RTCPeerConnection = field(
        default_factory=lambda: RTCPeerConnection(RTCConfiguration(iceServers=[]))
    )
    tracks: dict[str, dict[str, Any]] = field(default_factory=dict)  # mid -> track info
    frames: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # mid -> frames
    first_frame_at: dict[str, float] = field(default_factory=dict)
    errors: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    indexes: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    audio_frames: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    offers: int = 0

    def __post_init__(self) -> None:
        @self.pc.on("track")
        def on_track(track: Any) -> None:
            mid = next(t.mid for t in self.pc.getTransceivers() if t.receiver.track is track)
            self.tasks.append(asyncio.create_task(self._read(mid, track)))

    async def _read(self, mid: str, track: Any) -> None:
        try:
            while True:
                frame = await track.recv()
                now = time.monotonic()
                if track.kind == "video":
                    self.frames[mid] += 1
                    self.first_frame_at.setdefault(mid, now)
                    self.indexes[mid].append(read_index(frame))
                    if self.frames[mid] % 10 == 1:
                        self.errors[mid].append(frame_error(frame))
                else:
                    self.audio_frames[mid] += 1
        except MediaStreamError:
            return

    async def on_offer(self, offer: dict[str, Any]) -> str:
        self.offers += 1
        for t in offer["tracks"]:
            self.tracks[t["mid"]] = t
        await self.pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        sdp: str = self.pc.localDescription.sdp
        return sdp

    def video_from(self, participant: str, source: str = "camera") -> int:
        return sum(
            n
            for mid, n in self.frames.items()
            if self.tracks.get(mid, {}).get("participant") == participant
            and self.tracks[mid]["source"] == source
        )

    def audio_from(self, participant: str) -> int:
        return sum(
            n
            for mid, n in self.audio_frames.items()
            if self.tracks.get(mid, {}).get("participant") == participant
        )

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await self.pc.close()


async def until(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.05)
