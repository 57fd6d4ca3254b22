"""The forwarding path: one publisher track in, one rewritten copy per subscriber out.

Works on bytes and callables only (``send(bytes)``, ``request_keyframe()``), so
it is tested without aiortc. Per incoming packet: one header parse, one template
(docs/media-engine.md 2.2), then per subscriber one 11-byte stamp, one SRTP
protect and one ``sendto``. Video for a new or resumed subscriber waits for a
keyframe (section 3); sequence numbers stay contiguous across pauses and
timestamps never jump back across a publisher restart (section 2.3). A NACK is
answered from a cache of the last 1024 packets, as RTX when negotiated.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import rtp_bytes as rb

__all__ = ["CACHE_SIZE", "InTrack", "OutState", "OutStream", "Stats"]

CACHE_SIZE = 1024
PLI_INTERVAL = 0.5  # seconds between keyframe requests to one publisher track
RTX_PER_SECOND = 300  # retransmissions one subscriber may ask for, per second


class OutState(enum.Enum):
    WAITING = "waiting"  # for a keyframe (video) or the first packet
    FORWARDING = "forwarding"
    PAUSED = "paused"  # Last-N, or muted by the chair


@dataclass(slots=True)
class Stats:
    packets_in: int = 0
    bytes_in: int = 0
    packets_out: int = 0
    bytes_out: int = 0
    keyframes: int = 0
    rtx_sent: int = 0
    rtx_missed: int = 0
    pli_sent: int = 0
    dropped: int = 0


class OutStream:
    """One publisher track forwarded to one subscriber (one sender of its PC)."""

    __slots__ = (
        "_rtx_budget",
        "_rtx_window",
        "clock_rate",
        "last_in_ssrc",
        "last_out_seq",
        "last_out_ts",
        "last_sent_at",
        "payload_type",
        "rtx_payload_type",
        "rtx_seq",
        "rtx_ssrc",
        "send",
        "seq_off",
        "source",
        "ssrc",
        "started",
        "state",
        "stats",
        "ts_off",
    )

    def __init__(
        self,
        source: InTrack,
        *,
        ssrc: int,
        payload_type: int,
        rtx_ssrc: int | None = None,
        rtx_payload_type: int | None = None,
        send: Callable[[bytes], None] | None = None,
        first_sequence: int = 0,
    ) -> None:
        self.source = source
        self.ssrc = ssrc
        self.payload_type = payload_type
        self.rtx_ssrc = rtx_ssrc
        self.rtx_payload_type = rtx_payload_type
        self.rtx_seq = first_sequence ^ 0x5A5A
        self.send = send  # None until the subscriber's transport is connected
        self.clock_rate = source.clock_rate
        self.state = OutState.WAITING
        self.started = False
        self.seq_off = 0
        self.ts_off = 0
        self.last_out_seq = (first_sequence - 1) & 0xFFFF
        self.last_out_ts = 0
        self.last_sent_at = 0.0
        self.last_in_ssrc: int | None = None
        self.stats = Stats()
        self._rtx_window = 0.0
        self._rtx_budget = RTX_PER_SECOND

    # --- control (owner: the room) ---

    def continue_from(self, previous: OutStream) -> None:
        """Carry on an outgoing stream a re-publication replaces (same SSRC out):
        the next packet follows the last one sent, and the timestamp moves on by
        the time that passed (docs/media-engine.md 2.3)."""
        self.started = previous.started
        self.last_out_seq = previous.last_out_seq
        self.last_out_ts = previous.last_out_ts
        self.last_sent_at = previous.last_sent_at
        self.last_in_ssrc = previous.last_in_ssrc
        self.rtx_seq = previous.rtx_seq
        self.stats.packets_out = previous.stats.packets_out
        self.stats.bytes_out = previous.stats.bytes_out

    def pause(self) -> None:
        self.state = OutState.PAUSED

    def resume(self) -> None:
        """Forward again from the next keyframe (video) or packet (audio)."""
        if self.state is OutState.PAUSED:
            self.state = OutState.WAITING
            if self.source.is_video:
                self.source.request_keyframe()

    def connect(self, send: Callable[[bytes], None]) -> None:
        self.send = send
        if self.state is OutState.WAITING and self.source.is_video:
            self.source.request_keyframe()

    # --- the hot path ---

    def _start(self, sequence: int, timestamp: int, ssrc: int, now: float) -> None:
        """Offsets for the first packet after a wait (docs/media-engine.md 2.3)."""
        self.seq_off = (self.last_out_seq + 1 - sequence) & 0xFFFF
        if not self.started:
            self.ts_off = 0  # a fresh stream keeps the publisher's clock
        elif ssrc != self.last_in_ssrc:
            # A new source (the publisher restarted): continue from where we were.
            elapsed = max(now - self.last_sent_at, 0.0)
            self.ts_off = (self.last_out_ts + round(elapsed * self.clock_rate) + 1) - timestamp
        self.last_in_ssrc = ssrc
        self.started = True
        self.state = OutState.FORWARDING

    def nack(self, lost: list[int], now: float) -> None:
        """Retransmit what the subscriber lost, from the source's cache, within a budget."""
        send = self.send
        if send is None:
            return
        if now - self._rtx_window >= 1.0:
            self._rtx_window = now
            self._rtx_budget = RTX_PER_SECOND
        cache = self.source.cache
        for out_seq in lost:
            if self._rtx_budget <= 0:
                return
            in_seq = (out_seq - self.seq_off) & 0xFFFF
            entry = cache[in_seq % CACHE_SIZE]
            if entry is None or entry.sequence != in_seq:
                self.stats.rtx_missed += 1
                continue
            self._rtx_budget -= 1
            out_ts = entry.timestamp + self.ts_off
            if self.rtx_payload_type is None or self.rtx_ssrc is None:
                data = rb.stamp(
                    bytearray(entry.buf),
                    entry.marker,
                    self.payload_type,
                    out_seq,
                    out_ts,
                    self.ssrc,
                )
            else:
                data = rb.rtx_packet(
                    entry,
                    payload_type=self.rtx_payload_type,
                    sequence=self.rtx_seq,
                    timestamp=out_ts,
                    ssrc=self.rtx_ssrc,
                    original_sequence=out_seq,
                )
                self.rtx_seq = (self.rtx_seq + 1) & 0xFFFF
            try:
                send(data)
            except (OSError, AttributeError):
                return  # the transport is going away; the room detaches it
            self.stats.rtx_sent += 1


class InTrack:
    """One published track (audio or video of one source) and its subscribers."""

    __slots__ = (
        "_clock",
        "_ext_block",
        "_keyframe_wanted_at",
        "_last_pli",
        "cache",
        "clock_rate",
        "is_video",
        "kind",
        "level_id",
        "media_ssrc",
        "on_level",
        "outs",
        "send_pli",
        "stats",
    )

    def __init__(
        self,
        kind: str,
        *,
        clock_rate: int,
        out_ext_id: int | None,
        send_pli: Callable[[int], None],
        on_level: Callable[[int], None] | None = None,
        level_id: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kind = kind
        self.is_video = kind == "video"
        self.clock_rate = clock_rate
        self.outs: list[OutStream] = []
        self.cache: list[rb.HeaderTemplate | None] = [None] * CACHE_SIZE
        self.send_pli = send_pli
        self.on_level = on_level
        self.level_id = level_id  # the publisher's id for ssrc-audio-level
        # The subscribers' id for the one extension the SFU writes (abs-send-time on
        # video, the audio level on audio); every subscriber PC is offered by the SFU,
        # so they all share it.
        self._ext_block = out_ext_id
        self.media_ssrc: int | None = None
        self._last_pli = -PLI_INTERVAL
        self._keyframe_wanted_at: float | None = None
        self.stats = Stats()
        self._clock = clock

    # --- keyframes ---

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe, at most every 500 ms; a request made
        inside the window is remembered and sent when it ends (see `tick`)."""
        if not self.is_video:
            return
        now = self._clock()
        if self.media_ssrc is None or now - self._last_pli < PLI_INTERVAL:
            if self._keyframe_wanted_at is None:
                self._keyframe_wanted_at = now
            return
        self._last_pli = now
        self._keyframe_wanted_at = None
        self.stats.pli_sent += 1
        self.send_pli(self.media_ssrc)

    def tick(self) -> None:
        """Send a deferred keyframe request if someone still waits (call every ~100 ms)."""
        if self._keyframe_wanted_at is not None and any(
            o.state is OutState.WAITING and o.send is not None for o in self.outs
        ):
            self.request_keyframe()
        elif self._keyframe_wanted_at is not None and not self.outs:
            self._keyframe_wanted_at = None

    # --- the hot path ---

    def forward(self, data: bytes, view: rb.RtpView, ntp: int | None = None) -> None:
        """Forward one (decrypted, RTX-unwrapped) RTP packet of this track."""
        self.stats.packets_in += 1
        self.stats.bytes_in += len(data)
        self.media_ssrc = view.ssrc
        if view.payload_end <= view.payload_offset:
            return  # padding only (bandwidth probes)
        ext_id = self._ext_block
        if self.is_video:
            key = rb.vp8_keyframe_start(memoryview(data)[view.payload_offset : view.payload_end])
            if key:
                self.stats.keyframes += 1
                self._keyframe_wanted_at = None
            block = (
                rb.one_byte_extension_block([(ext_id, rb.abs_send_time(time.time()))])
                if ext_id
                else b""
            )
        else:
            key = True
            level = rb.find_extension(data, view, self.level_id) if self.level_id else None
            if level:
                if self.on_level is not None:
                    self.on_level(level[0] & 0x7F)
                block = rb.one_byte_extension_block([(ext_id, level[:1])]) if ext_id else b""
            else:
                block = b""
        template = rb.rewrite_header(data, view, block)
        seq, ts = view.sequence, view.timestamp
        self.cache[seq % CACHE_SIZE] = template
        buf, marker = template.buf, template.marker
        size = view.payload_end - view.payload_offset
        now = self._clock()
        for out in self.outs:
            state = out.state
            if state is OutState.PAUSED or out.send is None:
                continue
            if state is OutState.WAITING:
                if not key:
                    continue
                out._start(seq, ts, view.ssrc, now)
            out_seq = (seq + out.seq_off) & 0xFFFF
            out_ts = (ts + out.ts_off) & 0xFFFFFFFF
            try:
                out.send(rb.stamp(buf, marker, out.payload_type, out_seq, out_ts, out.ssrc))
            except (OSError, AttributeError):
                out.stats.dropped += 1
                continue
            if rb.seq_newer(out_seq, out.last_out_seq):
                out.last_out_seq = out_seq
                out.last_out_ts = out_ts
                out.last_sent_at = now
            out.stats.packets_out += 1
            out.stats.bytes_out += size


@dataclass(slots=True)
class Seen:
    """What aiortc's StreamStatistics and NackGenerator read of a packet."""

    sequence_number: int
    timestamp: int
