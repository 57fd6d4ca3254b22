"""One meeting's media inside the SFU: publishers, subscribers, Last-N, speakers.

A participant publishes one peer connection per source (``camera``: audio and
video; ``screen``: video) and receives everything on one peer connection that
the SFU offers. Each subscriber PC has one sending transceiver per track of
every other participant it may receive; Last-N pauses and resumes those
streams without renegotiating (docs/media-engine.md 2.3), and renegotiates
only when a track appears. All of it runs on the worker's event loop; requests
for one room arrive in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCSessionDescription, clock
from aiortc.codecs import HEADER_EXTENSIONS
from aiortc.rtp import (
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpPsfbPacket,
    RtcpRtpfbPacket,
)
from aiortc.sdp import candidate_from_sdp

from ..errors import RequestRefused
from ..media import MediaEvent, RoomPolicy
from . import aiortc_glue as glue
from . import rtp_bytes as rb
from .forwarder import InTrack, OutState, OutStream
from .ingest import Ingest, spawn
from .lastn import Member, Plan, plan
from .speaker import SpeakerDetector

__all__ = ["MediaRoom"]

log = logging.getLogger(__name__)

Emit = Callable[[MediaEvent], None]
TrackKey = tuple[str, str, str]  # (publisher, source, kind)

_SUB_EXT = {
    kind: {e.uri: e.id for e in exts} for kind, exts in HEADER_EXTENSIONS.items()
}  # the ids every SFU offer carries
_M_LINE = re.compile(r"^m=(audio|video) ", re.MULTILINE)
_offer_ids = itertools.count(1)
CONNECT_SETTLE = 0.25  # seconds between a subscriber connecting and the first packet
# A renegotiation waits this long so that tracks appearing together (a join storm at
# the start of a meeting: one publish after another) go out in one offer.
OFFER_BATCH = 0.3


def _bad_sdp(message: str) -> RequestRefused:
    return RequestRefused("bad_sdp", message)


@dataclass(slots=True)
class _Publication:
    participant: str
    source: str
    pc: Any
    tracks: dict[str, InTrack] = field(default_factory=dict)  # kind -> track
    undo: Callable[[], None] | None = None


@dataclass(slots=True)
class _Out:
    key: TrackKey
    transceiver: Any
    stream: OutStream | None = None
    previous: OutStream | None = None  # the stream this slot carried before a re-publish


@dataclass(slots=True)
class _Subscription:
    participant: str
    pc: Any
    outs: dict[TrackKey, _Out] = field(default_factory=dict)
    offer_id: str | None = None  # the offer waiting for an answer
    offer: dict[str, Any] | None = None
    dirty: bool = False  # tracks changed while an offer was out
    answered: bool = False  # an answer has been applied once
    path: glue.SenderPath | None = None
    closed: bool = False
    offer_task: asyncio.Task[None] | None = None  # a batched renegotiation, waiting
    offered: frozenset[TrackKey] = frozenset()  # the live tracks the last offer listed


class MediaRoom:
    """The media of one meeting. Methods are called in order, one at a time."""

    def __init__(self, meeting_id: int, emit: Emit, *, last_n: int = 4) -> None:
        self.meeting_id = meeting_id
        self.emit = emit
        self.policy = RoomPolicy(last_n=last_n)
        self.publications: dict[tuple[str, str], _Publication] = {}
        self.subscriptions: dict[str, _Subscription] = {}
        self.speakers = SpeakerDetector()
        self.paused: dict[str, bool] = {}  # publisher -> camera paused (as told)
        self.lock = asyncio.Lock()
        self._plan: Plan | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._closed = False

    # --- requests -------------------------------------------------------------------

    async def set_policy(self, policy: RoomPolicy) -> None:
        self.policy = policy
        present = {m.id for m in policy.members}
        for pid in {p for p, _ in self.publications} - present:
            for source in ("camera", "screen"):
                await self._unpublish(pid, source)
        for pid in set(self.subscriptions) - present:
            await self._close_subscription(pid)
            self.speakers.remove(pid)
        for pid, source in list(self.publications):
            if source == "screen" and pid != policy.presenter:
                await self._unpublish(pid, "screen")
        for member in policy.members:
            if member.id not in self.subscriptions:
                await self._subscribe(member.id)
        await self._reconcile()
        self._ensure_ticker()

    async def publish(self, pid: str, source: str, offer_sdp: str) -> str:
        member = self._member(pid)
        if member is None:
            raise RequestRefused("forbidden", "not in this room's media")
        if source == "screen" and self.policy.presenter != pid:
            raise RequestRefused("forbidden", "only the presenter shares a screen")
        kinds = _M_LINE.findall(offer_sdp)
        if not kinds or len(kinds) > 2 or (source == "screen" and kinds != ["video"]):
            raise _bad_sdp("a camera offer has one audio and one video m-line, a screen one video")
        await self._unpublish(pid, source)
        pc = glue.new_peer_connection()
        transceivers = []
        for kind in kinds:
            t = pc.addTransceiver(kind, direction="recvonly")
            t.setCodecPreferences(glue.codec_preferences(kind))
            transceivers.append(t)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
        except Exception as e:
            await pc.close()
            raise _bad_sdp(f"the offer could not be used: {e}") from None
        if any(not t._codecs for t in pc.getTransceivers()):
            await pc.close()
            raise _bad_sdp("the offer has no VP8 video or no Opus audio")
        publication = _Publication(pid, source, pc)
        ingests: dict[Any, Ingest] = {}
        for t in pc.getTransceivers():
            glue.stop_decoding(t.receiver)
            ext = glue.header_extension_ids(t)
            receiver = t.receiver
            track = InTrack(
                t.kind,
                clock_rate=t._codecs[0].clockRate,
                out_ext_id=_SUB_EXT[t.kind].get(
                    glue.ABS_SEND_TIME_URI if t.kind == "video" else glue.AUDIO_LEVEL_URI
                ),
                send_pli=_pli_sender(receiver),
                on_level=self._level_sink(pid) if t.kind == "audio" else None,
                level_id=ext.get(glue.AUDIO_LEVEL_URI),
            )
            publication.tracks[t.kind] = track
            ingests[receiver] = Ingest(
                receiver, track.forward, track.is_video, ext.get(glue.ABS_SEND_TIME_URI)
            )
        router: Any = pc.getTransceivers()[0].receiver.transport._rtp_router

        def on_rtp(data: bytes, dtls: Any) -> None:
            try:
                view = rb.parse(data)
            except ValueError:
                return
            ingest = ingests.get(router.route_rtp(view))
            if ingest is not None:
                try:
                    ingest.on_rtp(data, view)
                except ValueError:
                    return  # a malformed RTX packet

        publication.undo = glue.install_sync_ingest(pc, on_rtp)

        @pc.on("connectionstatechange")
        async def _state() -> None:
            if pc.connectionState == "failed":
                log.info("room %s: %s's %s connection failed", self.meeting_id, pid, source)

        self.publications[(pid, source)] = publication
        await self._reconcile()
        sdp: str = pc.localDescription.sdp
        return sdp

    async def unpublish(self, pid: str, source: str) -> None:
        await self._unpublish(pid, source)
        await self._reconcile()

    async def answer(self, pid: str, offer_id: str, sdp: str) -> None:
        sub = self.subscriptions.get(pid)
        if sub is None or sub.offer_id != offer_id:
            raise _bad_sdp(f"no offer {offer_id!r} is waiting for an answer")
        try:
            await sub.pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))
        except Exception as e:
            raise _bad_sdp(f"the answer could not be used: {e}") from None
        sub.offer_id = None
        sub.offer = None
        sub.answered = True
        self._connect_outs(sub)
        if sub.dirty:
            sub.dirty = False
            self._add_transceivers(sub)
            try:
                await self._offer(sub)
            except Exception:  # a connection closing under us; the next change offers again
                log.exception(
                    "room %s: renegotiation for %s failed", self.meeting_id, sub.participant
                )

    async def resubscribe(self, pid: str) -> None:
        if self._member(pid) is None:
            raise RequestRefused("forbidden", "not in this room's media")
        await self._close_subscription(pid)
        await self._subscribe(pid)
        await self._reconcile()

    async def refresh(self, pid: str) -> None:
        sub = self.subscriptions.get(pid)
        if sub is not None and sub.offer is not None:
            self.emit(MediaEvent("subscribe_offer", pid, dict(sub.offer)))

    async def add_ice(
        self, pid: str, target: str, source: str, candidate: str, mid: str | None, index: int | None
    ) -> None:
        if target == "publish":
            pub = self.publications.get((pid, source))
            pc = pub.pc if pub is not None else None
        else:
            sub = self.subscriptions.get(pid)
            pc = sub.pc if sub is not None else None
        if pc is None:
            return  # a late candidate for a connection that was replaced
        if not candidate:
            return  # end of candidates: nothing to do for aiortc
        text = candidate.removeprefix("candidate:")
        try:
            parsed = candidate_from_sdp(text)
        except (ValueError, IndexError):
            raise RequestRefused("bad_message", "the ICE candidate could not be parsed") from None
        parsed.sdpMid = mid
        parsed.sdpMLineIndex = index
        if parsed.protocol != "udp" or parsed.ip.endswith(".local"):
            return  # TCP and mDNS candidates: aioice has no use for them
        with contextlib.suppress(Exception):
            await pc.addIceCandidate(parsed)

    async def close(self) -> None:
        self._closed = True
        if self._ticker is not None:
            self._ticker.cancel()
        for pid, source in list(self.publications):
            await self._unpublish(pid, source)
        for pid in list(self.subscriptions):
            await self._close_subscription(pid)

    def stats(self) -> dict[str, Any]:
        return {
            "publications": len(self.publications),
            "subscriptions": len(self.subscriptions),
            "streams_out": sum(
                1
                for s in self.subscriptions.values()
                for o in s.outs.values()
                if o.stream is not None and o.stream.state is OutState.FORWARDING
            ),
            "packets_in": sum(
                t.stats.packets_in for p in self.publications.values() for t in p.tracks.values()
            ),
        }

    # --- internals ----------------------------------------------------------------------

    def _level_sink(self, pid: str) -> Callable[[int], None]:
        speakers = self.speakers

        def on_level(level: int) -> None:
            speakers.add(pid, level, time.monotonic())

        return on_level

    def _member(self, pid: str) -> Any:
        return next((m for m in self.policy.members if m.id == pid), None)

    async def _unpublish(self, pid: str, source: str) -> None:
        pub = self.publications.pop((pid, source), None)
        if pub is None:
            return
        for track in pub.tracks.values():
            for out in track.outs:
                out.pause()
            track.outs.clear()
        for sub in self.subscriptions.values():
            for slot in sub.outs.values():
                if slot.key[0] == pid and slot.key[1] == source:
                    slot.previous = slot.stream or slot.previous
                    slot.stream = None
        if pub.undo is not None:
            pub.undo()
        await pub.pc.close()

    async def _close_subscription(self, pid: str) -> None:
        sub = self.subscriptions.pop(pid, None)
        if sub is None:
            return
        sub.closed = True
        if sub.offer_task is not None:
            sub.offer_task.cancel()
        self._detach(sub)
        await sub.pc.close()

    def _detach(self, sub: _Subscription) -> None:
        for out in sub.outs.values():
            if out.stream is not None:
                with contextlib.suppress(ValueError):
                    out.stream.source.outs.remove(out.stream)
                out.stream = None
        sub.path = None

    async def _subscribe(self, pid: str) -> None:
        pc = glue.new_peer_connection()
        sub = _Subscription(pid, pc)
        self.subscriptions[pid] = sub

        @pc.on("connectionstatechange")
        async def _state() -> None:
            if sub.closed:
                return
            if pc.connectionState == "connected":
                # Give the subscriber a moment to register its receivers: aiortc
                # clients register them one by one after DTLS and, meanwhile, bind an
                # unknown SSRC to the only receiver of its payload type for good.
                await asyncio.sleep(CONNECT_SETTLE)
                if not sub.closed:
                    self._connect_outs(sub)
            elif pc.connectionState in ("failed", "closed"):
                self._detach(sub)

        self._add_transceivers(sub)
        await self._offer(sub)

    def _wanted(self, pid: str) -> list[TrackKey]:
        """Every track this subscriber may receive: a transceiver each, Last-N aside."""
        member = self._member(pid)
        if member is None:
            return []
        keys: list[TrackKey] = []
        for (publisher, source), pub in self.publications.items():
            if publisher == pid:
                continue
            for kind in pub.tracks:
                if kind == "video" and member.bandwidth == "audio" and not member.everything:
                    continue
                keys.append((publisher, source, kind))
        return keys

    def _add_transceivers(self, sub: _Subscription) -> bool:
        added = False
        first: str | None = None
        for key in self._wanted(sub.participant):
            if key in sub.outs:
                continue
            if not sub.answered:
                # The first offer carries one publisher; the rest follow in a second
                # offer. aiortc as a receiver (hoinghi join, tests) sometimes never
                # starts a second receiver of one kind offered in its first
                # description, and then mixes two streams into one decoder.
                if first is None:
                    first = key[0]
                elif key[0] != first:
                    sub.dirty = True
                    continue
            kind = key[2]
            t = sub.pc.addTransceiver(glue.NeverTrack(kind), direction="sendonly")
            t.setCodecPreferences(glue.codec_preferences(kind))
            sub.outs[key] = _Out(key, t)
            added = True
        return added

    async def _offer(self, sub: _Subscription) -> None:
        if not sub.outs:
            return  # nothing to receive yet: the first track triggers the offer
        pc = sub.pc
        offer = await pc.createOffer()
        await pc.setLocalDescription(offer)
        offer_id = f"o{next(_offer_ids)}"
        live = self._live(sub)
        tracks = [
            {"mid": o.transceiver.mid, "participant": k[0], "source": k[1], "kind": k[2]}
            for k, o in sub.outs.items()
            if k in live
        ]
        sub.offered = live
        sub.offer_id = offer_id
        sub.offer = {"offer_id": offer_id, "sdp": pc.localDescription.sdp, "tracks": tracks}
        self.emit(MediaEvent("subscribe_offer", sub.participant, dict(sub.offer)))

    def _live(self, sub: _Subscription) -> frozenset[TrackKey]:
        """The subscriber's tracks whose publication exists now."""
        return frozenset(k for k in sub.outs if (k[0], k[1]) in self.publications)

    def _connect_outs(self, sub: _Subscription) -> None:
        """Bind each transceiver to its source track once the subscriber is connected."""
        if sub.pc.connectionState != "connected":
            return
        if sub.path is None:
            sub.path = glue.sender_path(sub.pc)
            if sub.path is None:
                return
        path = sub.path
        for key, out in sub.outs.items():
            if out.stream is not None or out.transceiver.currentDirection != "sendonly":
                continue  # bound already, or not answered yet
            pub = self.publications.get((key[0], key[1]))
            track = pub.tracks.get(key[2]) if pub is not None else None
            if track is None:
                continue
            ssrc, rtx_ssrc, pt, rtx_pt = glue.sender_ids(out.transceiver)
            stream = OutStream(
                track,
                ssrc=ssrc,
                payload_type=pt,
                rtx_ssrc=rtx_ssrc,
                rtx_payload_type=rtx_pt,
            )
            if out.previous is not None:
                # Same SSRC towards the subscriber: sequence numbers and timestamps
                # go on from where the previous publication stopped.
                stream.continue_from(out.previous)
                out.previous = None
            stream.pause()  # _reconcile decides
            glue.hook_sender_rtcp(out.transceiver.sender, _rtcp_handler(stream))
            stream.connect(path.send)
            track.outs.append(stream)
            out.stream = stream
        self._apply_plan()

    async def _reconcile(self) -> None:
        """Make transceivers follow the publications, then apply Last-N."""
        for sub in list(self.subscriptions.values()):
            # Offer again when a track appears, or when one goes or comes back on its old
            # transceiver (unpublish, re-publish): `tracks` tells the client which are live.
            added = self._add_transceivers(sub)
            if added or (sub.answered and self._live(sub) != sub.offered):
                if sub.offer_id is not None:
                    sub.dirty = True  # offered again once this one is answered
                elif not sub.answered:
                    await self._offer(sub)  # a site's first offer goes at once
                elif sub.offer_task is None:
                    sub.offer_task = asyncio.create_task(self._batched_offer(sub))
            self._connect_outs(sub)
        self._apply_plan()

    async def _batched_offer(self, sub: _Subscription) -> None:
        await asyncio.sleep(OFFER_BATCH)
        async with self.lock:
            sub.offer_task = None
            if sub.closed or self._closed:
                return
            if sub.offer_id is not None:
                sub.dirty = True
                return
            self._add_transceivers(sub)
            if self._live(sub) == sub.offered:
                return  # what changed changed back (a quick re-publish)
            try:
                await self._offer(sub)
            except Exception:  # a connection closing under us; the next change offers again
                log.exception(
                    "room %s: renegotiation for %s failed", self.meeting_id, sub.participant
                )

    def _apply_plan(self) -> None:
        policy = self.policy
        members = []
        for p in policy.members:
            camera = self.publications.get((p.id, "camera"))
            members.append(
                Member(
                    id=p.id,
                    is_chair=p.is_chair,
                    bandwidth=p.bandwidth,
                    camera=camera is not None and "video" in camera.tracks and not p.video_muted,
                    audio=camera is not None and "audio" in camera.tracks and not p.audio_muted,
                    screen=(p.id, "screen") in self.publications,
                    everything=p.everything,
                )
            )
        result = plan(
            members, floor=policy.floor, speakers=self.speakers.recent, last_n=policy.last_n
        )
        self._plan = result
        for sub in self.subscriptions.values():
            video = result.video.get(sub.participant, frozenset())
            screen = result.screen.get(sub.participant, frozenset())
            audio = result.audio.get(sub.participant, frozenset())
            for (publisher, source, kind), out in sub.outs.items():
                stream = out.stream
                if stream is None:
                    continue
                if kind == "audio":
                    wanted = publisher in audio
                elif source == "screen":
                    wanted = publisher in screen
                else:
                    wanted = publisher in video
                if wanted:
                    stream.resume()
                else:
                    stream.pause()
        for m in members:
            if not m.camera:
                continue
            paused = m.id in result.paused
            if self.paused.get(m.id) != paused:
                self.paused[m.id] = paused
                self.emit(MediaEvent("video_pause", m.id, {"source": "camera", "paused": paused}))

    def _ensure_ticker(self) -> None:
        if self._ticker is None and not self._closed:
            self._ticker = asyncio.create_task(self._tick(), name=f"media-{self.meeting_id}")

    async def _tick(self) -> None:
        """Every 100 ms: deferred keyframe requests, sender reports; every 300 ms: speakers."""
        n = 0
        while True:
            await asyncio.sleep(0.1)
            n += 1
            for pub in self.publications.values():
                for track in pub.tracks.values():
                    track.tick()
            if n % 3 == 0:
                self._sender_reports()
                speaker = self.speakers.tick(time.monotonic())
                if speaker is not None:
                    self.emit(MediaEvent("active_speaker", None, {"participant": speaker}))
                    self._apply_plan()

    def _sender_reports(self) -> None:
        """Keep each sender's RTCP SR true to what was forwarded (NTP/RTP pair now)."""
        ntp = clock.current_ntp_time()
        now = time.monotonic()
        for sub in self.subscriptions.values():
            for out in sub.outs.values():
                s = out.stream
                if s is None or not s.started:
                    continue
                ts = s.last_out_ts + round(max(now - s.last_sent_at, 0.0) * s.clock_rate)
                sender = out.transceiver.sender
                sender._RTCRtpSender__ntp_timestamp = ntp
                sender._RTCRtpSender__rtp_timestamp = ts & 0xFFFFFFFF
                sender._RTCRtpSender__packet_count = s.stats.packets_out
                sender._RTCRtpSender__octet_count = s.stats.bytes_out


def _pli_sender(receiver: Any) -> Callable[[int], None]:
    def send_pli(ssrc: int) -> None:
        spawn(receiver._send_rtcp_pli(ssrc))

    return send_pli


def _rtcp_handler(stream: OutStream) -> Callable[[Any], bool]:
    def handle(packet: Any) -> bool:
        if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            stream.nack(list(packet.lost), time.monotonic())
            return True
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            stream.source.request_keyframe()
            return True
        return False

    return handle
