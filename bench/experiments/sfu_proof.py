"""Proof: RTP-level forwarding with aiortc 1.16.0 (publisher -> SFU -> N subscribers).

The SFU peer never depacketizes, reassembles, decodes or encodes: it takes the
decrypted RTP packet from the publisher's DTLS transport, rewrites the header
(SSRC, PT, seq, ts, header extensions) per subscriber, SRTP-protects it with the
subscriber's session and sends it on the subscriber's nominated ICE pair. NACKs
from subscribers are answered (RTX) from a per-publisher packet cache; PLI/FIR
go upstream rate-limited; a new subscriber gets video from the next keyframe.

Loopback only: aioice is told the host has only 127.0.0.1 and no STUN server is
configured. Run inside a fresh network namespace:

  unshare -n sh -c 'ip link set lo up; python sfu_proof.py --subs 8'

--inproc runs all three kinds of peers in one process (the plain proof);
by default the SFU runs in a child process so its CPU can be measured alone.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import logging
import math
import multiprocessing as mp
import os
import random
import resource
import statistics
import struct
import sys
import time

import aioice.ice

# Loopback only: aioice skips 127.0.0.1 by default (aioice/ice.py get_host_addresses).
aioice.ice.get_host_addresses = lambda use_ipv4=True, use_ipv6=False: ["127.0.0.1"]

from av import AudioFrame, VideoFrame  # noqa: E402

from aiortc import (  # noqa: E402
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
    clock,
)
from aiortc.codecs import is_rtx, vpx  # noqa: E402
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack  # noqa: E402
from aiortc.rtcrtpreceiver import NackGenerator, StreamStatistics  # noqa: E402
from aiortc.rtp import (  # noqa: E402
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpPsfbPacket,
    RtcpRtpfbPacket,
    RtpPacket,
    pack_remb_fci,
    unwrap_rtx,
)

log = logging.getLogger("sfu-proof")
PACK = struct.Struct("!BHII")  # byte 1 (M|PT), seq, ts, ssrc at offset 1
CACHE = 1024  # packets kept per publisher track for NACK
PLI_MIN_INTERVAL = 0.5


def config() -> RTCConfiguration:
    return RTCConfiguration(iceServers=[])  # no STUN: nothing leaves loopback


# --------------------------------------------------------------------------- VP8


def vp8_keyframe_start(payload: bytes) -> bool:
    """True if this RTP payload starts a VP8 key frame (RFC 7741 4.2 + RFC 6386 9.1)."""
    n = len(payload)
    if n < 2:
        return False
    b0 = payload[0]
    if not (b0 & 0x10) or (b0 & 0x0F):  # S=1 and PID=0: first packet of the frame
        return False
    i = 1
    if b0 & 0x80:  # X: extended control bits
        x = payload[1]
        i = 2
        if x & 0x80:  # I: PictureID, 7 or 15 bits (M bit)
            if i >= n:
                return False
            i += 2 if payload[i] & 0x80 else 1
        if x & 0x40:  # L: TL0PICIDX
            i += 1
        if x & 0x30:  # T or K: TID/Y/KEYIDX byte
            i += 1
    if i + 6 > n:
        return False
    # VP8 payload header: bit 0 of the first byte is P (inverse key frame flag);
    # key frames then carry the start code 9d 01 2a after the 3-byte frame tag.
    return (payload[i] & 0x01) == 0 and payload[i + 3 : i + 6] == b"\x9d\x01\x2a"


# --------------------------------------------------------------------------- SFU


class NeverTrack(MediaStreamTrack):
    """Keeps RTCRtpSender._run_rtp parked (no track = a 20 ms polling loop)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    async def recv(self):  # type: ignore[override]
        await asyncio.get_running_loop().create_future()


class OutStream:
    """One forwarded stream: one publisher track to one subscriber's sender."""

    def __init__(self, sfu: "Sfu", src: "InTrack", transceiver, fast: bool) -> None:
        self.sfu = sfu
        self.src = src
        self.sender = transceiver.sender
        self.fast = fast
        codecs = transceiver._codecs
        self.pt = codecs[0].payloadType
        self.rtx_pt = next(
            (c.payloadType for c in codecs if is_rtx(c) and c.parameters.get("apt") == self.pt),
            None,
        )
        self.ssrc = self.sender._ssrc
        self.rtx_ssrc = self.sender._rtx_ssrc
        self.rtx_seq = random.randint(0, 32767)
        self.next_seq = random.randint(0, 32767)
        self.seq_off = 0
        self.ts_off = 0
        self.waiting = src.kind == "video"  # hold video until a keyframe
        self.started = False
        self.dtls = None
        self.srtp = None
        self.pair = None
        self.rtx_sent = 0
        self.sent = 0
        orig = self.sender._handle_rtcp_packet

        async def handle_rtcp(packet) -> None:  # RTCP from the subscriber about this stream
            if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
                self.on_nack(packet.lost)
            elif isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
                sfu.counters["pli_from_subs"] += 1
                await self.src.request_keyframe()
            else:  # RR (stats, RTT), REMB: aiortc's own handling
                await orig(packet)

        self.sender._handle_rtcp_packet = handle_rtcp

    def connect(self) -> None:
        self.dtls = self.sender.transport
        self.srtp = self.dtls._tx_srtp
        self.pair = self.dtls.transport._connection._nominated[1]

    def start(self, seq: int, ts: int) -> None:
        self.seq_off = (self.next_seq - seq) & 0xFFFF
        self.ts_off = 0  # fresh stream: keep the publisher's ts (lets the test measure transit)
        self.waiting = False
        self.started = True

    def send(self, data: bytes, ntp: int, out_ts: int, size: int) -> None:
        if self.fast:
            self.pair.protocol.transport.sendto(self.srtp.protect(data), self.pair.remote_addr)
        else:
            asyncio.ensure_future(self.dtls._send_rtp(data))
        s = self.sender  # keep aiortc's SR (ntp/rtp/packets/octets) true to what we send
        s._RTCRtpSender__ntp_timestamp = ntp
        s._RTCRtpSender__rtp_timestamp = out_ts
        s._RTCRtpSender__packet_count += 1
        s._RTCRtpSender__octet_count += size
        self.sent += 1

    def on_nack(self, lost: list[int]) -> None:
        src = self.src
        for out_seq in lost:
            in_seq = (out_seq - self.seq_off) & 0xFFFF
            entry = src.cache[in_seq % CACHE]
            if entry is None or entry[0] != in_seq:
                self.sfu.counters["nack_miss"] += 1
                continue
            _, tmpl, hdr_len = entry
            ts = struct.unpack_from("!I", tmpl, 4)[0]
            out_ts = (ts + self.ts_off) & 0xFFFFFFFF
            if self.rtx_pt is None:  # plain retransmission on the media SSRC
                buf = bytearray(tmpl)
                PACK.pack_into(buf, 1, (tmpl[1] & 0x80) | self.pt, out_seq, out_ts, self.ssrc)
            else:  # RFC 4588: OSN + original payload on the RTX SSRC/PT
                buf = bytearray(tmpl[:hdr_len]) + struct.pack("!H", out_seq) + tmpl[hdr_len:]
                PACK.pack_into(buf, 1, (tmpl[1] & 0x80) | self.rtx_pt, self.rtx_seq, out_ts, self.rtx_ssrc)
                self.rtx_seq = (self.rtx_seq + 1) & 0xFFFF
            data = bytes(buf)
            self.pair.protocol.transport.sendto(self.srtp.protect(data), self.pair.remote_addr)
            self.rtx_sent += 1
            self.sfu.counters["rtx_sent"] += 1


class InTrack:
    """One publisher track, fed raw decrypted RTP by the transport hook."""

    def __init__(self, sfu: "Sfu", receiver, kind: str) -> None:
        self.sfu = sfu
        self.receiver = receiver
        self.kind = kind
        self.outs: list[OutStream] = []
        self.cache: list = [None] * CACHE
        self.nack = NackGenerator() if kind == "video" else None
        self.last_pli = 0.0
        self.retry_pending = False
        self.media_ssrc: int | None = None
        self.levels: list[int] = []
        self.ready = False

    def _setup(self) -> None:
        r = self.receiver
        self.codecs = dict(r._RTCRtpReceiver__codecs)
        self.rtx_ssrc = dict(r._RTCRtpReceiver__rtx_ssrc)
        self.stats = r._RTCRtpReceiver__remote_streams  # read by aiortc's RR loop
        self.remb = r._RTCRtpReceiver__remote_bitrate_estimator
        self.ready = True

    async def request_keyframe(self) -> None:
        now = time.monotonic()
        if self.kind != "video" or self.media_ssrc is None:
            return
        wait = self.last_pli + PLI_MIN_INTERVAL - now
        if wait > 0:  # rate-limited: ask once more when the window ends, if still needed
            if not self.retry_pending:
                self.retry_pending = True
                asyncio.get_running_loop().call_later(wait, self._retry)
            return
        self.last_pli = now
        self.sfu.counters["pli_upstream"] += 1
        await self.receiver._send_rtcp_pli(self.media_ssrc)

    def _retry(self) -> None:
        self.retry_pending = False
        if any(o.waiting for o in self.outs):
            asyncio.ensure_future(self.request_keyframe())

    def on_rtp(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        if not self.ready:
            self._setup()
        r = self.receiver
        c = self.sfu.counters
        c["in_packets"] += 1
        c["in_kbit"] += len(packet.payload) * 8 / 1000
        # REMB towards the publisher, as RTCRtpReceiver._handle_rtp_packet does
        if self.remb is not None and self.sfu.remb and packet.extensions.abs_send_time is not None:
            remb = self.remb.add(
                abs_send_time=packet.extensions.abs_send_time,
                arrival_time_ms=arrival_time_ms,
                payload_size=len(packet.payload) + packet.padding_size,
                ssrc=packet.ssrc,
            )
            rtcp_ssrc = r._RTCRtpReceiver__rtcp_ssrc
            if remb is not None and rtcp_ssrc is not None:
                asyncio.ensure_future(r._send_rtcp(
                    RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(*remb))
                ))
        codec = self.codecs.get(packet.payload_type)
        if codec is None:
            return
        st = self.stats.get(packet.ssrc)
        if st is None:
            st = self.stats[packet.ssrc] = StreamStatistics(codec.clockRate)
        st.add(packet)  # receiver reports keep working
        if is_rtx(codec):
            orig = self.rtx_ssrc.get(packet.ssrc)
            apt = codec.parameters.get("apt")
            if orig is None or len(packet.payload) < 2 or apt not in self.codecs:
                return  # padding-only probe or unknown
            packet = unwrap_rtx(packet, payload_type=apt, ssrc=orig)
            c["rtx_in"] += 1
        self.media_ssrc = packet.ssrc
        if self.nack is not None and self.nack.add(packet):
            c["nack_upstream"] += 1
            asyncio.ensure_future(r._send_rtcp_nack(packet.ssrc, sorted(self.nack.missing)))
        payload = packet.payload
        if not payload:
            return
        self.forward(packet, payload)

    def forward(self, packet: RtpPacket, payload: bytes) -> None:
        t0 = time.perf_counter()
        sfu = self.sfu
        seq, ts = packet.sequence_number, packet.timestamp
        ntp = clock.current_ntp_time()
        if self.kind == "video":
            key = vp8_keyframe_start(payload)
            if key:
                sfu.counters["keyframes"] += 1
            # one-byte header extensions with the subscribers' ids: abs-send-time
            ext = struct.pack("!HHB", 0xBEDE, 1, (sfu.ext_abs << 4) | 2) + ((ntp >> 14) & 0xFFFFFF).to_bytes(3, "big")
        else:
            key = True
            lvl = packet.extensions.audio_level  # (vad, level) or None: RFC 6464
            if lvl is not None:
                self.levels.append(lvl[1])
                ext = struct.pack("!HHBBBB", 0xBEDE, 1, (sfu.ext_level << 4), (0x80 if lvl[0] else 0) | lvl[1], 0, 0)
            else:
                ext = b""
        hdr_len = 12 + len(ext)
        buf = bytearray(hdr_len + len(payload))
        buf[0] = 0x90 if ext else 0x80
        buf[1] = packet.marker << 7
        struct.pack_into("!HI", buf, 2, seq, ts)
        buf[12:hdr_len] = ext
        buf[hdr_len:] = payload
        self.cache[seq % CACHE] = (seq, bytes(buf), hdr_len)
        mark = packet.marker << 7
        size = len(payload)
        drop = sfu.drop
        for o in self.outs:
            if o.pair is None:
                continue
            if o.waiting:
                if not key:
                    continue
                o.start(seq, ts)
            out_ts = (ts + o.ts_off) & 0xFFFFFFFF
            PACK.pack_into(buf, 1, mark | o.pt, (seq + o.seq_off) & 0xFFFF, out_ts, o.ssrc)
            if drop and self.kind == "video" and random.random() < drop:
                sfu.counters["dropped"] += 1
                continue
            o.send(bytes(buf), ntp, out_ts, size)
        sfu.counters["out_packets"] += len(self.outs)
        sfu.fwd_time += time.perf_counter() - t0


class Sfu:
    def __init__(self, fast: bool = True, drop: float = 0.0, remb: bool = True, sync_ingest: bool = False) -> None:
        self.fast = fast
        self.remb = remb
        self.sync_ingest = sync_ingest
        self.drop = drop
        self.pcs: list[RTCPeerConnection] = []
        self.tracks: dict[object, InTrack] = {}  # receiver -> InTrack
        self.by_kind: dict[str, InTrack] = {}
        self.subs: dict[int, RTCPeerConnection] = {}
        self.ext_abs = 3
        self.ext_level = 2
        self.fwd_time = 0.0
        self.counters: dict[str, int] = dict.fromkeys(
            "in_packets in_kbit out_packets keyframes pli_upstream pli_from_subs nack_upstream rtx_in "
            "rtx_sent nack_miss dropped".split(),
            0,
        )

    async def publish(self, offer_sdp: str) -> str:
        pc = RTCPeerConnection(config())
        self.pcs.append(pc)
        await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        for t in pc.getTransceivers():
            track = InTrack(self, t.receiver, t.kind)
            self.tracks[t.receiver] = track
            self.by_kind[t.kind] = track
            orig_receive = t.receiver.receive

            async def receive(params, _orig=orig_receive, _r=t.receiver) -> None:
                await _orig(params)  # registers with the router, starts RR loop
                _r._RTCRtpReceiver__stop_decoder()  # never decode

            t.receiver.receive = receive
        dtls = pc.getTransceivers()[0].receiver.transport  # BUNDLE: one transport
        tracks = self.tracks

        async def handle_rtp_data(data: bytes, arrival_time_ms: int) -> None:
            # replaces RTCDtlsTransport._handle_rtp_data for this transport only
            try:
                packet = RtpPacket.parse(data, dtls._rtp_header_extensions_map)
            except ValueError:
                return
            receiver = dtls._rtp_router.route_rtp(packet)
            track = tracks.get(receiver)
            if track is not None:
                track.on_rtp(packet, arrival_time_ms)

        dtls._handle_rtp_data = handle_rtp_data

        if self.sync_ingest:
            # Skip aioice's queue and the DTLS task: decrypt and forward SRTP inside
            # the datagram callback; DTLS, STUN and SRTCP still take the normal path.
            conn = dtls.transport._connection
            queue_it = conn.data_received
            ext_map, router = dtls._rtp_header_extensions_map, dtls._rtp_router

            def data_received(data: bytes, component: int) -> None:
                srtp = dtls._rx_srtp
                if srtp is None or not 127 < data[0] < 192 or 192 <= data[1] <= 208:
                    return queue_it(data, component)
                try:
                    packet = RtpPacket.parse(srtp.unprotect(data), ext_map)
                except Exception:
                    return
                track = tracks.get(router.route_rtp(packet))
                if track is not None:
                    track.on_rtp(packet, clock.current_ms())

            conn.data_received = data_received
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
        return pc.localDescription.sdp

    async def subscribe(self, sub_id: int) -> str:
        pc = RTCPeerConnection(config())
        self.subs[sub_id] = pc
        outs = []
        for kind in ("video", "audio"):
            src = self.by_kind[kind]
            t = pc.addTransceiver(NeverTrack(kind), direction="sendonly")
            want = ("video/vp8", "video/rtx") if kind == "video" else ("audio/opus",)
            t.setCodecPreferences(
                [c for c in RTCRtpSender.getCapabilities(kind).codecs if c.mimeType.lower() in want]
            )
            outs.append((t, src))
        offer = await pc.createOffer()
        await pc.setLocalDescription(offer)
        pending = []
        for t, src in outs:
            ids = {e.uri: e.id for e in t._headerExtensions}
            self.ext_abs = ids.get("http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time", self.ext_abs)
            self.ext_level = ids.get("urn:ietf:params:rtp-hdrext:ssrc-audio-level", self.ext_level)
            pending.append(OutStream(self, src, t, self.fast))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState == "connected":
                for o in pending:
                    o.connect()
                    o.src.outs.append(o)
                    await o.src.request_keyframe()
            elif pc.connectionState in ("closed", "failed"):
                for o in pending:  # detach before the transport goes away
                    if o in o.src.outs:
                        o.src.outs.remove(o)

        return pc.localDescription.sdp

    async def answer(self, sub_id: int, sdp: str) -> bool:
        await self.subs[sub_id].setRemoteDescription(RTCSessionDescription(sdp, "answer"))
        return True

    async def measure(self, seconds: float) -> dict:
        c0 = dict(self.counters)
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        p0, w0, f0 = time.process_time(), time.perf_counter(), self.fwd_time
        prof = None
        if os.environ.get("SFU_PROFILE"):
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        await asyncio.sleep(seconds)
        if prof is not None:
            prof.disable()
            prof.dump_stats(os.environ["SFU_PROFILE"])
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        p1, w1, f1 = time.process_time(), time.perf_counter(), self.fwd_time
        wall = w1 - w0
        out = {k: (self.counters[k] - c0[k]) / wall for k in c0}
        out["cpu_pct"] = 100 * (p1 - p0) / wall
        out["user_pct"] = 100 * (r1.ru_utime - r0.ru_utime) / wall
        out["sys_pct"] = 100 * (r1.ru_stime - r0.ru_stime) / wall
        out["forward_us_per_in_packet"] = 1e6 * (f1 - f0) / max(1, self.counters["in_packets"] - c0["in_packets"])
        lv = self.by_kind["audio"].levels[-250:] or [0]
        out["audio_levels_last5s"] = {
            "loud(<=30)": sum(1 for x in lv if x <= 30),
            "silent(>=100)": sum(1 for x in lv if x >= 100),
            "min": min(lv) if lv else None,
            "max": max(lv) if lv else None,
        }
        return out

    async def close(self) -> bool:
        for t in self.by_kind.values():
            t.outs.clear()
        for pc in self.pcs + list(self.subs.values()):
            await pc.close()
        return True


def sfu_child(conn, fast: bool, drop: float, remb: bool, sync_ingest: bool, uvloop: bool = False) -> None:
    async def serve() -> None:
        sfu = Sfu(fast, drop, remb, sync_ingest)
        loop = asyncio.get_running_loop()
        while True:
            msg = await loop.run_in_executor(None, conn.recv)
            result = await getattr(sfu, msg[0])(*msg[1:])
            conn.send(result)
            if msg[0] == "close":
                return

    if uvloop:
        import uvloop as uv

        uv.run(serve())
    else:
        asyncio.run(serve())


class SfuProxy:
    def __init__(self, conn) -> None:
        self.conn = conn

    def __getattr__(self, name: str):
        async def call(*args):
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self.conn.send, (name, *args))
            return await loop.run_in_executor(None, self.conn.recv)

        return call


# --------------------------------------------------------------------------- peers


class NoiseVideo(VideoStreamTrack):
    """640x360: a static random texture with a band of fresh noise moving down it.

    The band height sets the bitrate (VP8 codes static areas almost for free);
    the default gives roughly a camera's 1-1.5 Mbps.
    """

    def __init__(self, w: int = 640, h: int = 360, band: int = 12) -> None:
        super().__init__()
        self.w, self.h, self.band = w, h, band
        probe = VideoFrame(width=w, height=h, format="yuv420p")
        self.sizes = [p.buffer_size for p in probe.planes]
        self.line = probe.planes[0].line_size
        self.base = [bytearray(os.urandom(n)) for n in self.sizes]
        self.i = 0

    async def recv(self):  # type: ignore[override]
        pts, tb = await self.next_timestamp()
        f = VideoFrame(width=self.w, height=self.h, format="yuv420p")
        y = bytearray(self.base[0])
        row = (self.i * self.band) % (self.h - self.band)
        self.i += 1
        y[row * self.line : (row + self.band) * self.line] = os.urandom(self.band * self.line)
        f.planes[0].update(bytes(y))
        f.planes[1].update(bytes(self.base[1]))
        f.planes[2].update(bytes(self.base[2]))
        f.pts, f.time_base = pts, tb
        return f


class ToneAudio(AudioStreamTrack):
    """48 kHz mono: 1 s of a 440 Hz tone (about -15 dBov), 1 s of silence, repeat."""

    def __init__(self) -> None:
        super().__init__()
        probe = AudioFrame(format="s16", layout="mono", samples=960)
        n = probe.planes[0].buffer_size // 2
        self.tone = struct.pack(f"<{n}h", *(int(8000 * math.sin(2 * math.pi * 440 * i / 48000)) for i in range(n)))
        self.silence = bytes(2 * n)

    async def recv(self):  # type: ignore[override]
        sr, samples = 48000, 960
        if hasattr(self, "_timestamp"):
            self._timestamp += samples
            await asyncio.sleep(self._start + self._timestamp / sr - time.time())
        else:
            self._start, self._timestamp = time.time(), 0
        f = AudioFrame(format="s16", layout="mono", samples=samples)
        f.planes[0].update(self.tone if (self._timestamp // sr) % 2 == 0 else self.silence)
        f.pts, f.sample_rate, f.time_base = self._timestamp, sr, fractions.Fraction(1, sr)
        return f


class DecodeErrors(logging.Handler):
    count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "failed to decode" in record.getMessage():
            DecodeErrors.count += 1


async def run(args, sfu) -> dict:
    # the publisher: aiortc's own VP8 encoder at 1.5 Mbps (Opus for audio)
    vpx.DEFAULT_BITRATE = vpx.MIN_BITRATE = vpx.MAX_BITRATE = args.bitrate
    pub = RTCPeerConnection(config())
    vt = pub.addTransceiver(NeverTrack("video") if args.idle else NoiseVideo(band=args.band), direction="sendonly")
    vt.setCodecPreferences(
        [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType.lower() in ("video/vp8", "video/rtx")]
    )
    pub.addTransceiver(NeverTrack("audio") if args.idle else ToneAudio(), direction="sendonly")
    await pub.setLocalDescription(await pub.createOffer())
    answer = await sfu.publish(pub.localDescription.sdp)
    await pub.setRemoteDescription(RTCSessionDescription(answer, "answer"))

    sent_at: dict[int, float] = {}
    vssrc = vt.sender._ssrc
    pdtls = vt.sender.transport
    orig_send = pdtls._send_rtp

    async def pub_send_rtp(data: bytes) -> None:  # note when each video frame's last packet leaves
        if data[1] & 0x80 and not 192 <= data[1] <= 208 and struct.unpack_from("!I", data, 8)[0] == vssrc:
            sent_at[struct.unpack_from("!I", data, 4)[0]] = time.perf_counter()
        await orig_send(data)

    pdtls._send_rtp = pub_send_rtp
    await asyncio.sleep(2.0)  # publisher connected, media flowing before anyone subscribes

    frames = [0] * args.subs
    sizes: set = set()
    transit: list[float] = []
    first_frame = [None] * args.subs
    subs = []
    t_sub = time.perf_counter()
    for i in range(args.subs):
        offer = await sfu.subscribe(i)
        pc = RTCPeerConnection(config())
        subs.append(pc)

        @pc.on("track")
        def on_track(track, i=i) -> None:
            async def consume() -> None:
                while True:
                    try:
                        f = await track.recv()
                    except Exception:
                        return
                    if track.kind == "video":
                        if first_frame[i] is None:
                            first_frame[i] = time.perf_counter() - t_sub
                        frames[i] += 1
                        sizes.add((f.width, f.height))

            asyncio.ensure_future(consume())

        await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        await sfu.answer(i, pc.localDescription.sdp)
        sdtls = pc.getTransceivers()[0].receiver.transport
        orig = sdtls._handle_rtp_data

        async def sub_rtp(data: bytes, arrival_time_ms: int, _orig=orig) -> None:
            if data[1] == 0x80 | 97:  # marker + VP8 PT (the SFU's offer): last packet of a frame
                t = sent_at.get(struct.unpack_from("!I", data, 4)[0])
                if t is not None:
                    transit.append(time.perf_counter() - t)
            await _orig(data, arrival_time_ms)

        sdtls._handle_rtp_data = sub_rtp

    deadline = time.perf_counter() + (3 if args.idle else 20)
    while min(frames) == 0 and time.perf_counter() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(args.warmup)
    transit.clear()
    f0 = list(frames)
    e0 = DecodeErrors.count
    stats = await sfu.measure(args.seconds)
    fps = [(b - a) / args.seconds for a, b in zip(f0, frames)]
    result = {
        "subscribers": args.subs,
        "path": ("fast(sync sendto)" if args.fast else "aiortc _send_rtp") + (" +sync-ingest" if args.sync else "") + ("" if args.remb else " -remb") + (" uvloop" if args.uvloop else ""),
        "first_frame_s": [round(x, 2) if x else None for x in first_frame],
        "fps_min": round(min(fps), 1),
        "fps_mean": round(sum(fps) / len(fps), 1),
        "decoded_sizes": sorted(sizes),
        "decode_errors_in_window": DecodeErrors.count - e0,
        "idle_publisher": args.idle,
        "transit_ms_p50": round(1000 * statistics.median(transit), 1) if transit else None,
        "transit_ms_p95": round(1000 * sorted(transit)[int(0.95 * len(transit))], 1) if transit else None,
        "sfu": {k: (round(v, 2) if isinstance(v, float) else v) for k, v in stats.items()},
    }
    for pc in subs + [pub]:
        await pc.close()
    await sfu.close()
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subs", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--bitrate", type=int, default=1_500_000)
    ap.add_argument("--band", type=int, default=12, help="rows of fresh noise per frame (sets the bitrate)")
    ap.add_argument("--slow", dest="fast", action="store_false", help="send through RTCDtlsTransport._send_rtp")
    ap.add_argument("--drop", type=float, default=0.0, help="drop this share of forwarded video (tests NACK/RTX)")
    ap.add_argument("--no-remb", dest="remb", action="store_false", help="skip the REMB estimator")
    ap.add_argument("--sync", action="store_true", help="decrypt+forward in aioice's datagram callback")
    ap.add_argument("--uvloop", action="store_true", help="run the SFU process on uvloop (needs it on sys.path)")
    ap.add_argument("--idle", action="store_true", help="publisher sends no media (baseline)")
    ap.add_argument("--inproc", action="store_true", help="all peers in one process")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aiortc.rtcrtpreceiver").addHandler(DecodeErrors())

    if args.inproc:
        result = asyncio.run(run(args, Sfu(args.fast, args.drop, args.remb, args.sync)))
    else:
        ctx = mp.get_context("fork")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=sfu_child, args=(child, args.fast, args.drop, args.remb, args.sync, args.uvloop), daemon=True)
        proc.start()
        result = asyncio.run(run(args, SfuProxy(parent)))
        proc.join(5)
    import json

    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    sys.exit(main())
