"""Every touch of aiortc's and aioice's internals, in one place.

The SFU uses aiortc for what it does well (SDP, ICE, DTLS, SRTP keys, RTCP
reports) and bypasses its media path: packets are taken decrypted from the
publisher's transport and sent encrypted on the subscriber's ICE pair, never
depacketized, decoded or encoded. That needs private attributes of exact
releases (docs/media-engine.md, section 9), so this module checks the versions
at import and ``self_check()`` verifies each attribute is where it is expected.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import aioice.ice
import aiortc
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCRtpSender
from aiortc.rtcrtpreceiver import NackGenerator, StreamStatistics

__all__ = [
    "PINNED",
    "Network",
    "NeverTrack",
    "ReceiverState",
    "SenderPath",
    "codec_preferences",
    "configure_network",
    "header_extension_ids",
    "install_sync_ingest",
    "new_peer_connection",
    "receiver_state",
    "self_check",
    "sender_path",
    "stop_decoding",
]

PINNED = {"aiortc": "1.16.0", "aioice": "0.13.0", "pylibsrtp": "1.0.0"}


class UnsupportedAiortc(RuntimeError):
    pass


def _check_versions() -> None:
    found = {name: version(name) for name in PINNED}
    if found != PINNED:
        raise UnsupportedAiortc(
            f"the embedded SFU needs exactly {PINNED}, found {found}: "
            "its aiortc internals are checked for these releases only"
        )


_check_versions()

AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"


# --- network: which address is announced, which ports are used -------------------


@dataclass(frozen=True, slots=True)
class Network:
    """Where media sockets bind and what the ICE candidates say.

    ``announce`` None keeps aioice's default (every non-loopback address of the
    host). Otherwise each peer connection gets one host candidate with that
    address; the socket binds to it when it is local, else to all addresses
    (a public address in front of a NAT, like Janus's ``nat_1_1_mapping``).
    """

    announce: str | None = None
    port_min: int = 0
    port_max: int = 0

    @property
    def has_range(self) -> bool:
        return self.port_min > 0


ANY = "0.0.0.0"  # noqa: S104 - only when the announced address is not local (NAT)
_network = Network()
_ports: Iterator[int] = iter(())


def configure_network(network: Network) -> None:
    """Apply ``network`` to every peer connection this process creates next."""
    global _network, _ports
    _network = network
    if network.has_range:
        _ports = itertools.cycle(range(network.port_min, network.port_max + 1))


_original_component_candidates = aioice.ice.Connection.get_component_candidates


async def _component_candidates(
    self: aioice.ice.Connection,
    component: int,
    addresses: list[str],
    timeout: int = 5,  # noqa: ASYNC109 - aioice's signature
) -> list[Candidate]:
    net = _network
    if net.announce is None and not net.has_range:
        return await _original_component_candidates(self, component, addresses, timeout)
    loop = asyncio.get_running_loop()
    binds = [net.announce] if net.announce is not None else addresses
    candidates: list[Candidate] = []
    for address in binds:
        transport: asyncio.DatagramTransport | None = None
        protocol: Any = None
        tries = (net.port_max - net.port_min + 1) if net.has_range else 1
        for _ in range(tries):
            port = next(_ports) if net.has_range else 0
            for host in (address, ANY):
                try:
                    transport, protocol = await loop.create_datagram_endpoint(
                        lambda: aioice.ice.StunProtocol(self), local_addr=(host, port)
                    )
                    break
                except OSError as e:
                    if e.errno == errno.EADDRNOTAVAIL and host != ANY:
                        continue  # a public address in front of a NAT: bind everywhere
                    transport = None
                    break
            if transport is not None:
                break
        if transport is None or protocol is None:
            raise OSError(errno.EADDRINUSE, f"no free UDP port for media on {address}")
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024 * 1024)
        bound = transport.get_extra_info("sockname")
        candidate = Candidate(
            foundation=candidate_foundation("host", "udp", address),
            component=component,
            transport="udp",
            priority=candidate_priority(component, "host"),
            host=address,
            port=bound[1],
            type="host",
        )
        protocol.local_candidate = candidate
        self._protocols.append(protocol)
        candidates.append(candidate)
    return candidates


aioice.ice.Connection.get_component_candidates = _component_candidates  # type: ignore[method-assign]


def new_peer_connection() -> RTCPeerConnection:
    """A peer connection with no STUN server: the SFU announces its own address."""
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


# --- tracks and codecs ------------------------------------------------------------


class NeverTrack(MediaStreamTrack):
    """A send track that never yields: aiortc's sender loop parks on it for good.

    With no track at all, ``RTCRtpSender._run_rtp`` polls every 20 ms.
    """

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    async def recv(self) -> Any:
        await asyncio.get_running_loop().create_future()


def codec_preferences(kind: str) -> list[Any]:
    """VP8 (with RTX) for video, Opus for audio: the codecs the SFU forwards."""
    want = ("video/vp8", "video/rtx") if kind == "video" else ("audio/opus",)
    caps = RTCRtpSender.getCapabilities(kind)
    return [c for c in caps.codecs if c.mimeType.lower() in want]


def header_extension_ids(transceiver: Any) -> dict[str, int]:
    """Negotiated header-extension ids of a transceiver, by URI."""
    return {e.uri: e.id for e in transceiver._headerExtensions}


# --- the publisher side -------------------------------------------------------------


@dataclass(slots=True)
class ReceiverState:
    """A receiver's state the SFU feeds, so aiortc's RTCP keeps telling the truth."""

    codecs: dict[int, Any]
    rtx_ssrc: dict[int, int]  # rtx ssrc -> media ssrc
    remote_streams: dict[int, StreamStatistics]
    remb: Any
    receiver: Any

    def rtcp_ssrc(self) -> int | None:
        ssrc: int | None = self.receiver._RTCRtpReceiver__rtcp_ssrc
        return ssrc


def receiver_state(receiver: Any) -> ReceiverState:
    return ReceiverState(
        codecs=receiver._RTCRtpReceiver__codecs,
        rtx_ssrc=receiver._RTCRtpReceiver__rtx_ssrc,
        remote_streams=receiver._RTCRtpReceiver__remote_streams,
        remb=receiver._RTCRtpReceiver__remote_bitrate_estimator,
        receiver=receiver,
    )


def stop_decoding(receiver: Any) -> None:
    """Keep ``receive()`` (router registration, RR loop) but never start decoding."""
    original = receiver.receive

    async def receive(parameters: Any) -> None:
        await original(parameters)
        receiver._RTCRtpReceiver__stop_decoder()

    receiver.receive = receive


def install_sync_ingest(
    pc: RTCPeerConnection, on_rtp: Callable[[bytes, Any], None]
) -> Callable[[], None]:
    """Take the publisher's decrypted RTP inside the datagram callback.

    ``on_rtp(data, dtls)`` gets each decrypted RTP packet; DTLS, STUN, SRTCP and
    anything before the SRTP keys exist go the usual way. This skips aioice's
    queue and one task wake-up per packet (docs/media-engine.md, 2.1). Returns
    a function that undoes the hook.
    """
    dtls = pc.getTransceivers()[0].receiver.transport
    connection = dtls.transport._connection
    queue_it = connection.data_received

    def data_received(data: bytes, component: int) -> None:
        srtp = dtls._rx_srtp
        # RTP: version 2 and not RTCP (payload types 192-223 are RTCP packet types).
        if srtp is None or not 127 < data[0] < 192 or 192 <= data[1] <= 223:
            queue_it(data, component)
            return
        try:
            clear = srtp.unprotect(data)
        except Exception:  # pylibsrtp.Error: replayed, forged or garbled
            return
        on_rtp(clear, dtls)

    connection.data_received = data_received  # type: ignore[method-assign]

    def undo() -> None:
        connection.data_received = queue_it  # type: ignore[method-assign]

    return undo


# --- the subscriber side -------------------------------------------------------------


@dataclass(slots=True)
class SenderPath:
    """What sending a forwarded packet to one subscriber needs; re-read on ICE changes."""

    srtp: Any
    pair: Any

    def send(self, data: bytes) -> None:
        self.pair.protocol.transport.sendto(self.srtp.protect(data), self.pair.remote_addr)


def sender_path(pc: RTCPeerConnection) -> SenderPath | None:
    """The SRTP session and nominated ICE pair of a connected subscriber PC."""
    transceivers = pc.getTransceivers()
    if not transceivers:
        return None
    dtls = transceivers[0].sender.transport
    srtp = dtls._tx_srtp
    nominated = dtls.transport._connection._nominated.get(1)
    if srtp is None or nominated is None or nominated.protocol.transport is None:
        return None
    return SenderPath(srtp, nominated)


def sender_ids(transceiver: Any) -> tuple[int, int | None, int, int | None]:
    """(ssrc, rtx ssrc, payload type, rtx payload type) of an SFU-offered sender."""
    codecs = transceiver._codecs
    pt = codecs[0].payloadType
    rtx_pt = next(
        (
            c.payloadType
            for c in codecs
            if c.mimeType.lower().endswith("/rtx") and c.parameters.get("apt") == pt
        ),
        None,
    )
    sender = transceiver.sender
    return sender._ssrc, sender._rtx_ssrc if rtx_pt is not None else None, pt, rtx_pt


def hook_sender_rtcp(sender: Any, handle: Callable[[Any], bool]) -> None:
    """Route RTCP about a forwarded stream to ``handle``; it returns True when it
    consumed the packet (NACK, PLI, FIR), otherwise aiortc handles it (RR, REMB)."""
    original = sender._handle_rtcp_packet

    async def handle_rtcp(packet: Any) -> None:
        if not handle(packet):
            await original(packet)

    sender._handle_rtcp_packet = handle_rtcp


def self_check() -> None:
    """Fail loudly if an internal the SFU relies on has moved (run at worker start)."""
    from aiortc.rtcdtlstransport import RTCDtlsTransport
    from aiortc.rtcrtpreceiver import RTCRtpReceiver

    missing = [
        name
        for owner, name in [
            (RTCDtlsTransport, "_handle_rtp_data"),
            (RTCDtlsTransport, "_send_rtp"),
            (RTCRtpReceiver, "_send_rtcp_pli"),
            (RTCRtpReceiver, "_send_rtcp_nack"),
            (RTCRtpReceiver, "_send_rtcp"),
            (RTCRtpReceiver, "_RTCRtpReceiver__stop_decoder"),
            (RTCRtpSender, "_handle_rtcp_packet"),
            (aioice.ice.Connection, "data_received"),
            (aioice.ice.Connection, "_nominated"),
        ]
        if not hasattr(owner, name) and not _instance_attribute(owner, name)
    ]
    if missing:
        raise UnsupportedAiortc(f"aiortc {aiortc.__version__} lacks {missing}")
    NackGenerator()


def _instance_attribute(owner: type, name: str) -> bool:
    # Attributes set in __init__ (``_nominated``) are checked on the source.
    import inspect

    return f"self.{name}" in inspect.getsource(vars(owner)["__init__"])
