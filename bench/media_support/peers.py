"""aiortc peers of the media bench: publishers that replay the pre-encoded clip, and
subscribers that either count frames from RTP headers (cheap) or decode and read the
frame index drawn in each picture (glass-to-glass latency, lost frames).

All peers run in the bench's own process (on uvloop when available), announce only
the namespace address, and use no STUN server.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import re
import statistics
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aioice.ice
import av
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)

from .clip import AUDIO_PACKETS, AUDIO_RATE, AUDIO_SAMPLES, FPS, FRAMES, Clip, read_index

VIDEO_TB = fractions.Fraction(1, FPS)
AUDIO_TB = fractions.Fraction(1, AUDIO_RATE)
AUDIO_TICK = AUDIO_SAMPLES / AUDIO_RATE


def announce_only(address: str) -> None:
    """aioice gathers host candidates on ``address`` only (it skips loopback otherwise)."""

    def get_host_addresses(use_ipv4: bool = True, use_ipv6: bool = False) -> list[str]:
        return [address]

    aioice.ice.get_host_addresses = get_host_addresses


def rtc_config() -> RTCConfiguration:
    return RTCConfiguration(iceServers=[])  # no STUN: nothing leaves the namespace


def prefer(transceiver: Any, kind: str) -> None:
    want = ("video/vp8", "video/rtx") if kind == "video" else ("audio/opus",)
    transceiver.setCodecPreferences(
        [c for c in RTCRtpSender.getCapabilities(kind).codecs if c.mimeType.lower() in want]
    )


class Schedule:
    """One clock for every publisher: frame ``tick`` is captured at ``t0 + tick / FPS``.

    All publishers send clip frame ``tick % FRAMES`` at the same moment, so a
    decoded index maps back to its capture time without knowing the publisher.
    """

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def video_time(self, tick: int) -> float:
        return self.t0 + tick / FPS

    def video_tick(self, now: float) -> int:
        return int((now - self.t0) * FPS)

    def audio_time(self, tick: int) -> float:
        return self.t0 + tick * AUDIO_TICK

    def audio_tick(self, now: float) -> int:
        return int((now - self.t0) / AUDIO_TICK)

    def capture_time(self, index: int, now: float) -> float:
        """Capture time of the most recent frame showing clip ``index`` at ``now``."""
        cur = self.video_tick(now)
        tick = cur - ((cur - index) % FRAMES)
        return self.video_time(tick)


class VideoReplay(MediaStreamTrack):
    """Returns the clip's VP8 packets (``av.Packet``: aiortc packs, never encodes), live-paced.

    Starts, and resumes after a pause, at the next keyframe of the clip (a camera
    that resumes sends a keyframe; this one can only wait for the next one).
    """

    kind = "video"

    def __init__(self, clip: Clip, schedule: Schedule) -> None:
        super().__init__()
        self.clip = clip
        self.schedule = schedule
        self.next_tick: int | None = None
        self.resumed = asyncio.Event()
        self.resumed.set()
        self.sent = 0

    def set_paused(self, paused: bool) -> None:
        if paused:
            self.resumed.clear()
        else:
            self.resumed.set()
        self.next_tick = None

    async def recv(self) -> av.Packet:  # type: ignore[override]
        while True:
            await self.resumed.wait()
            if self.next_tick is None:
                now = self.schedule.video_tick(time.monotonic()) + 1
                self.next_tick = now + self.clip.next_keyframe(now % FRAMES)
            tick = self.next_tick
            delay = self.schedule.video_time(tick) - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if not self.resumed.is_set():
                continue
            self.next_tick = tick + 1
            packet = av.Packet(self.clip.video[tick % FRAMES])
            packet.pts = tick
            packet.time_base = VIDEO_TB
            self.sent += 1
            return packet


class AudioReplay(MediaStreamTrack):
    """The clip's Opus packets, live-paced; a muted one sends nothing at all."""

    kind = "audio"

    def __init__(self, clip: Clip, schedule: Schedule, offset: int = 0, muted: bool = False):
        super().__init__()
        self.clip = clip
        self.schedule = schedule
        self.offset = offset
        self.muted = muted
        self.next_tick: int | None = None
        self.level = 127
        self.sent = 0

    async def recv(self) -> av.Packet:  # type: ignore[override]
        if self.muted:
            await asyncio.get_running_loop().create_future()  # never: no packets at all
        if self.next_tick is None:
            self.next_tick = self.schedule.audio_tick(time.monotonic()) + 1
        tick = self.next_tick
        self.next_tick = tick + 1
        delay = self.schedule.audio_time(tick) - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        i = (tick + self.offset) % AUDIO_PACKETS
        packet = av.Packet(self.clip.audio[i])
        packet.pts = tick * AUDIO_SAMPLES
        packet.time_base = AUDIO_TB
        self.level = self.clip.levels[i]
        self.sent += 1
        return packet


def add_audio_levels(sender: Any, track: AudioReplay) -> None:
    """Write RFC 6464 levels for pre-encoded audio (aiortc computes them only when it encodes)."""
    orig = sender._next_encoded_frame

    async def next_encoded_frame(codec: Any) -> Any:
        frame = await orig(codec)
        if frame is not None:
            frame.audio_level = -track.level
        return frame

    sender._next_encoded_frame = next_encoded_frame


class Publisher:
    """One site's camera connection: VP8 + Opus replayed from the clip."""

    def __init__(
        self,
        name: str,
        clip: Clip,
        schedule: Schedule,
        *,
        audio_offset: int = 0,
        muted: bool = False,
    ) -> None:
        self.name = name
        self.pc = RTCPeerConnection(rtc_config())
        self.video = VideoReplay(clip, schedule)
        self.audio = AudioReplay(clip, schedule, audio_offset, muted)
        vt = self.pc.addTransceiver(self.video, direction="sendonly")
        prefer(vt, "video")
        at = self.pc.addTransceiver(self.audio, direction="sendonly")
        prefer(at, "audio")
        add_audio_levels(at.sender, self.audio)
        self.mids: dict[str, str] = {}

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        sdp = self.pc.localDescription.sdp
        self.mids = sdp_mids(sdp)
        return sdp

    async def accept(self, answer: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))

    async def close(self) -> None:
        await self.pc.close()


def sdp_mids(sdp: str) -> dict[str, str]:
    """kind -> mid of the first m-line of that kind."""
    mids: dict[str, str] = {}
    kind = None
    for line in sdp.splitlines():
        if line.startswith("m="):
            kind = line[2:].split()[0]
        elif line.startswith("a=mid:") and kind is not None and kind not in mids:
            mids[kind] = line[6:].strip()
    return mids


VP8_RTPMAP = re.compile(r"^a=rtpmap:(\d+) VP8/90000", re.IGNORECASE)
OPUS_RTPMAP = re.compile(r"^a=rtpmap:(\d+) opus/48000", re.IGNORECASE)


def payload_types(sdp: str, pattern: re.Pattern[str]) -> set[int]:
    return {int(m.group(1)) for line in sdp.splitlines() if (m := pattern.match(line))}


class DecodeErrors(logging.Filter):
    """Counts aiortc's "failed to decode" warnings (decoder errors are only logged) and
    keeps them off the console: the bench reports the count in the measured window."""

    count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if "failed to decode" in record.getMessage():
            DecodeErrors.count += 1
            return False
        return True


@dataclass
class SsrcCount:
    packets: int = 0
    frames: int = 0
    first_seq: int = -1
    max_seq: int = 0  # extended
    kind: str = ""


@dataclass
class TrackDecode:
    frames: int = 0
    unreadable: int = 0
    missing: int = 0  # frame indices skipped between consecutive decoded frames
    last: int | None = None
    latencies: list[float] = field(default_factory=list)


class Subscriber:
    """A receiving connection. ``decode=False``: counts video frames (marker bits of
    VP8 packets, read from the clear SRTP header) and drops every RTP packet before
    aiortc sees it; ``decode=True``: aiortc decodes, the picture gives the frame index.
    """

    def __init__(self, name: str, decode: bool, schedule: Schedule) -> None:
        self.name = name
        self.decode = decode
        self.schedule = schedule
        self.pc = RTCPeerConnection(rtc_config())
        self.video_pts: set[int] = set()
        self.audio_pts: set[int] = set()
        self.ssrcs: dict[int, SsrcCount] = {}
        self.audio_packets = 0
        self.tracks: dict[str, TrackDecode] = {}  # by mid
        self.measuring = False
        self.first_frame: float | None = None
        self.created = time.monotonic()
        self.hooked: set[int] = set()
        self.tasks: list[asyncio.Task[None]] = []
        self.offers = 0
        self.pc.on("track", self._on_track)

    # --- signalling
    async def on_offer(self, sdp: str) -> str:
        self.offers += 1
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        self.video_pts = payload_types(sdp, VP8_RTPMAP)
        self.audio_pts = payload_types(sdp, OPUS_RTPMAP)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        if not self.decode:
            self._hook()
        return self.pc.localDescription.sdp

    # --- counting
    def _hook(self) -> None:
        for t in self.pc.getTransceivers():
            conn = t.receiver.transport.transport._connection
            for proto in conn._protocols:
                if id(proto) in self.hooked:
                    continue
                self.hooked.add(id(proto))
                proto.datagram_received = self._counter(proto.datagram_received)

    def _counter(self, orig: Callable[[bytes, Any], None]) -> Callable[[bytes, Any], None]:
        ssrcs = self.ssrcs
        unpack = struct.Struct("!HII").unpack_from

        def datagram_received(data: bytes, addr: Any) -> None:
            if len(data) >= 12 and 127 < data[0] < 192 and not 191 < data[1] < 224:
                seq, _ts, ssrc = unpack(data, 2)
                c = ssrcs.get(ssrc)
                if c is None:
                    c = ssrcs[ssrc] = SsrcCount()
                c.packets += 1
                pt = data[1] & 0x7F
                if pt in self.video_pts:
                    c.kind = "video"
                    if data[1] & 0x80:
                        c.frames += 1
                        if self.first_frame is None:
                            self.first_frame = time.monotonic()
                elif pt in self.audio_pts:
                    c.kind = "audio"
                    self.audio_packets += 1
                else:
                    c.kind = c.kind or "other"
                if c.first_seq < 0:
                    c.first_seq = c.max_seq = seq
                else:
                    ext = c.max_seq + ((seq - c.max_seq + 0x8000) & 0xFFFF) - 0x8000
                    c.max_seq = max(c.max_seq, ext)
                return  # SRTP (RTP) never reaches aiortc: no decrypt, no jitter buffer
            orig(data, addr)

        return datagram_received

    # --- decoding
    def _on_track(self, track: MediaStreamTrack) -> None:
        mid = next((t.mid for t in self.pc.getTransceivers() if t.receiver.track is track), "?")
        self.tasks.append(asyncio.ensure_future(self._consume(track, str(mid))))

    async def _consume(self, track: MediaStreamTrack, mid: str) -> None:
        stats = self.tracks.setdefault(mid, TrackDecode()) if track.kind == "video" else None
        while True:
            try:
                frame = await track.recv()
            except Exception:
                return
            if stats is None:
                continue
            now = time.monotonic()
            if self.first_frame is None:
                self.first_frame = now
            index = read_index(frame)  # type: ignore[arg-type]
            if not self.measuring:
                stats.last = index
                continue
            stats.frames += 1
            if index is None:
                stats.unreadable += 1
                continue
            if stats.last is not None:
                stats.missing += (index - stats.last - 1) % FRAMES
            stats.last = index
            stats.latencies.append(now - self.schedule.capture_time(index, now))

    # --- measurement
    def start_window(self) -> None:
        for c in self.ssrcs.values():
            c.packets = c.frames = 0
            c.first_seq = -1
        self.audio_packets = 0
        for t in self.tracks.values():
            t.frames = t.unreadable = t.missing = 0
            t.latencies.clear()
        self.measuring = True

    def window(self, seconds: float) -> dict[str, Any]:
        self.measuring = False
        if self.decode:
            videos = {m: t for m, t in self.tracks.items() if t.frames}
            return {
                "decode": True,
                "video_fps": sorted(round(t.frames / seconds, 1) for t in videos.values()),
                "missing_frames": sum(t.missing for t in videos.values()),
                "unreadable_frames": sum(t.unreadable for t in videos.values()),
                "latencies": [x for t in videos.values() for x in t.latencies],
            }
        videos = [c for c in self.ssrcs.values() if c.kind == "video" and c.packets]
        lost = sum(
            max(0, c.max_seq - c.first_seq + 1 - c.packets)
            for c in self.ssrcs.values()
            if c.kind in ("video", "audio") and c.packets
        )
        return {
            "decode": False,
            "video_fps": sorted(round(c.frames / seconds, 1) for c in videos),
            "audio_pps": round(self.audio_packets / seconds, 1),
            "audio_streams": sum(
                1 for c in self.ssrcs.values() if c.kind == "audio" and c.packets > seconds
            ),
            "lost_packets": lost,
        }

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await self.pc.close()


OfferHandler = Callable[[str], Awaitable[str]]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def latency_summary(values: list[float]) -> dict[str, float | None]:
    ms = [1000 * v for v in values]
    return {
        "p50": round(statistics.median(ms), 1) if ms else None,
        "p95": round(p, 1) if (p := percentile(ms, 0.95)) is not None else None,
        "n": len(ms),
    }
