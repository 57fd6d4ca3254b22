"""RTP read and rewrite on raw bytes, for the forwarding path of the SFU.

The SFU touches every packet, so this module builds no ``RtpPacket`` objects: it reads
the header with precompiled ``struct`` formats (RFC 3550 5.1), walks header extensions
in place (RFC 8285), and rewrites a packet for subscribers by building one template per
incoming packet and stamping 11 bytes into it per subscriber (docs/media-engine.md 2.2).
Everything here is pure: bytes in, bytes or numbers out. Malformed input raises
``ValueError`` and nothing else.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "HEADER_LENGTH",
    "ONE_BYTE_PROFILE",
    "TWO_BYTE_PROFILE",
    "HeaderTemplate",
    "ReadableBuffer",
    "RtpView",
    "abs_send_time",
    "audio_level",
    "extension_elements",
    "find_extension",
    "one_byte_extension_block",
    "opus_silence_hint",
    "parse",
    "rewrite_header",
    "rtx_packet",
    "seq_diff",
    "seq_newer",
    "stamp",
    "unwrap_rtx",
    "vp8_frame_size",
    "vp8_keyframe_start",
]

ReadableBuffer = bytes | bytearray | memoryview
"""What the payload readers take, so a payload can be read in place via memoryview."""

HEADER_LENGTH = 12
ONE_BYTE_PROFILE = 0xBEDE  # RFC 8285 4.2
TWO_BYTE_PROFILE = 0x1000  # RFC 8285 4.3: 0x100 plus 4 "appbits"

_FIXED = struct.Struct("!BBHII")  # V P X CC | M PT | seq | timestamp | ssrc
_STAMP = struct.Struct("!BHII")  # the 11 bytes rewritten per subscriber, from offset 1
_EXT_HEADER = struct.Struct("!HH")  # profile | length in 32-bit words
_U16 = struct.Struct("!H")
_VP8_SIZE = struct.Struct("<HH")  # RFC 6386 9.1: 14-bit width and height, little-endian


@dataclass(slots=True)
class RtpView:
    """Where things are in one RTP packet; offsets index the bytes given to `parse`.

    Read-only by convention (a frozen dataclass costs 4x more to build, per packet).
    ``ext_start``/``ext_end`` bound the extension elements, after the 4-byte
    extension header; both equal ``payload_offset`` when there is no extension.
    """

    marker: bool
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload_offset: int
    payload_end: int
    ext_profile: int
    ext_start: int
    ext_end: int


def parse(data: bytes) -> RtpView:
    """Read the header of one RTP packet (RFC 3550 5.1) without copying anything.

    Raises:
        ValueError: shorter than 12 bytes, version not 2, CSRC list or extension past
            the end, or a padding count of 0 or larger than what follows the header.
    """
    n = len(data)
    if n < HEADER_LENGTH:
        raise ValueError(f"RTP packet of {n} bytes is shorter than its 12-byte header")
    b0, b1, sequence, timestamp, ssrc = _FIXED.unpack_from(data)
    if b0 >> 6 != 2:
        raise ValueError(f"RTP version is {b0 >> 6}, not 2")
    pos = HEADER_LENGTH + 4 * (b0 & 0x0F)
    if pos > n:
        raise ValueError("RTP CSRC list runs past the end of the packet")
    ext_profile = 0
    ext_start = ext_end = pos
    if b0 & 0x10:
        if pos + 4 > n:
            raise ValueError("RTP extension header runs past the end of the packet")
        ext_profile, words = _EXT_HEADER.unpack_from(data, pos)
        ext_start = pos + 4
        ext_end = ext_start + 4 * words
        if ext_end > n:
            raise ValueError("RTP header extension runs past the end of the packet")
        pos = ext_end
    end = n
    if b0 & 0x20:
        # RFC 3550 5.1: the last octet counts the padding, itself included.
        padding = data[-1]
        if padding == 0 or padding > n - pos:
            raise ValueError(f"RTP padding count {padding} is invalid")
        end = n - padding
    return RtpView(
        b1 & 0x80 != 0,
        b1 & 0x7F,
        sequence,
        timestamp,
        ssrc,
        pos,
        end,
        ext_profile,
        ext_start,
        ext_end,
    )


def extension_elements(data: bytes, view: RtpView) -> dict[int, bytes]:
    """All header extension elements by id, one-byte or two-byte form (RFC 8285).

    An unknown profile yields no elements. If an id repeats, the first one counts, as
    in `find_extension`. In the one-byte form, id 15 ends the walk (RFC 8285 4.2).

    Raises:
        ValueError: an element runs past the end of the extension block.
    """
    elements: dict[int, bytes] = {}
    profile = view.ext_profile
    pos = view.ext_start
    end = view.ext_end
    if profile == ONE_BYTE_PROFILE:
        while pos < end:
            b = data[pos]
            if b == 0:  # padding between elements
                pos += 1
                continue
            ext_id = b >> 4
            if ext_id == 15:
                break
            pos += 1
            stop = pos + (b & 0x0F) + 1
            if stop > end:
                raise ValueError(f"RTP extension element {ext_id} is truncated")
            if ext_id not in elements:
                elements[ext_id] = data[pos:stop]
            pos = stop
    elif profile & 0xFFF0 == TWO_BYTE_PROFILE:
        while pos < end:
            ext_id = data[pos]
            if ext_id == 0:
                pos += 1
                continue
            if pos + 2 > end:
                raise ValueError(f"RTP extension element {ext_id} is truncated")
            stop = pos + 2 + data[pos + 1]
            if stop > end:
                raise ValueError(f"RTP extension element {ext_id} is truncated")
            if ext_id not in elements:
                elements[ext_id] = data[pos + 2 : stop]
            pos = stop
    return elements


def find_extension(data: bytes, view: RtpView, ext_id: int) -> bytes | None:
    """The value of one header extension element, or None; builds no dict.

    Raises:
        ValueError: an element before the one looked for is truncated.
    """
    profile = view.ext_profile
    pos = view.ext_start
    end = view.ext_end
    if profile == ONE_BYTE_PROFILE:
        while pos < end:
            b = data[pos]
            if b == 0:
                pos += 1
                continue
            if b >> 4 == 15:
                return None
            pos += 1
            stop = pos + (b & 0x0F) + 1
            if stop > end:
                raise ValueError(f"RTP extension element {b >> 4} is truncated")
            if b >> 4 == ext_id:
                return data[pos:stop]
            pos = stop
    elif profile & 0xFFF0 == TWO_BYTE_PROFILE:
        while pos < end:
            b = data[pos]
            if b == 0:
                pos += 1
                continue
            if pos + 2 > end:
                raise ValueError(f"RTP extension element {b} is truncated")
            stop = pos + 2 + data[pos + 1]
            if stop > end:
                raise ValueError(f"RTP extension element {b} is truncated")
            if b == ext_id:
                return data[pos + 2 : stop]
            pos = stop
    return None


def audio_level(value: bytes) -> tuple[bool, int]:
    """The voice-activity flag and level (0 loud .. 127 silent, in -dBov) of an
    ssrc-audio-level element (RFC 6464 3).

    Raises:
        ValueError: the element is empty.
    """
    if not value:
        raise ValueError("audio level element is empty")
    b = value[0]
    return b & 0x80 != 0, b & 0x7F


def abs_send_time(seconds: float) -> bytes:
    """The 3-byte abs-send-time value for a send time: 6.18 fixed point seconds, mod 64.

    (http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time; the receiver only uses
    differences, so any clock will do.)
    """
    return (math.floor(seconds * 262144.0) & 0xFFFFFF).to_bytes(3, "big")


def one_byte_extension_block(elements: Sequence[tuple[int, bytes]]) -> bytes:
    """A whole one-byte-form extension block: the 0xBEDE header, the elements, and zero
    padding to a 32-bit boundary (RFC 8285 4.2). Empty for no elements.

    Raises:
        ValueError: an id outside 1..14 or a value length outside 1..16.
    """
    if not elements:
        return b""
    body = bytearray()
    for ext_id, value in elements:
        if not 1 <= ext_id <= 14:
            raise ValueError(f"one-byte extension id {ext_id} is not in 1..14")
        if not 1 <= len(value) <= 16:
            raise ValueError(f"one-byte extension {ext_id} has {len(value)} bytes, not 1..16")
        body.append(ext_id << 4 | (len(value) - 1))
        body += value
    body += bytes(-len(body) % 4)
    return _EXT_HEADER.pack(ONE_BYTE_PROFILE, len(body) // 4) + body


@dataclass(slots=True)
class HeaderTemplate:
    """One incoming packet rewritten for subscribers, less the 11 per-subscriber bytes.

    ``buf`` is a fresh 12-byte header (V=2, P=0, X=1 only with an extension block, no
    CSRCs, the publisher's marker, payload type, sequence, timestamp and SSRC), the
    SFU's extension block, and the payload without padding. `stamp` overwrites bytes
    1-11 per subscriber. ``header_length`` is where the payload starts in ``buf``. Keep
    it in the publisher track's cache to answer NACKs (`rtx_packet`).
    """

    buf: bytearray
    header_length: int
    marker: bool
    sequence: int
    timestamp: int


def rewrite_header(data: bytes, view: RtpView, ext_block: bytes = b"") -> HeaderTemplate:
    """Build the template for one incoming packet, once for all its subscribers.

    ``ext_block`` is a whole extension block (`one_byte_extension_block`) written with
    the subscribers' extension ids; the publisher's own extensions, CSRCs and padding
    are dropped (docs/media-engine.md 2.2).
    """
    buf = bytearray(
        _FIXED.pack(
            0x90 if ext_block else 0x80,
            (0x80 if view.marker else 0) | view.payload_type,
            view.sequence,
            view.timestamp,
            view.ssrc,
        )
    )
    buf += ext_block
    buf += memoryview(data)[view.payload_offset : view.payload_end]
    return HeaderTemplate(
        buf, HEADER_LENGTH + len(ext_block), view.marker, view.sequence, view.timestamp
    )


def stamp(
    buf: bytearray, marker: bool, payload_type: int, sequence: int, timestamp: int, ssrc: int
) -> bytes:
    """Write one subscriber's marker, payload type, sequence, timestamp and SSRC into a
    template and return a copy to protect and send: one ``pack_into``, one copy.

    ``sequence`` and ``timestamp`` wrap (mod 2^16 and 2^32), so callers can add their
    offsets without reducing them. ``buf`` is changed in place.
    """
    _STAMP.pack_into(
        buf,
        1,
        (0x80 if marker else 0) | payload_type,
        sequence & 0xFFFF,
        timestamp & 0xFFFFFFFF,
        ssrc,
    )
    return bytes(buf)


def rtx_packet(
    template: HeaderTemplate,
    *,
    payload_type: int,
    sequence: int,
    timestamp: int,
    ssrc: int,
    original_sequence: int,
) -> bytes:
    """An RFC 4588 retransmission of a cached template for one subscriber.

    The header carries the RTX payload type, the RTX stream's own ``sequence``, the
    subscriber's ``timestamp`` for the original packet and the RTX ``ssrc``; the payload
    is the 2-byte original sequence number (the sequence number the subscriber saw, and
    NACKed) followed by the original payload (RFC 4588 4). The template is not changed.
    """
    h = template.header_length
    out = bytearray(template.buf)
    out[h:h] = _U16.pack(original_sequence & 0xFFFF)
    _STAMP.pack_into(
        out,
        1,
        (0x80 if template.marker else 0) | payload_type,
        sequence & 0xFFFF,
        timestamp & 0xFFFFFFFF,
        ssrc,
    )
    return bytes(out)


def unwrap_rtx(data: bytes, view: RtpView, media_pt: int, media_ssrc: int) -> bytes:
    """The original packet inside an RFC 4588 retransmission from a publisher.

    Payload type and SSRC become the media stream's, the sequence number the OSN; the
    timestamp, marker, CSRCs and extensions are kept, the RTX padding is dropped.

    Raises:
        ValueError: the payload is shorter than the 2-byte OSN.
    """
    offset = view.payload_offset
    if view.payload_end - offset < 2:
        raise ValueError("RTX packet has no original sequence number")
    (osn,) = _U16.unpack_from(data, offset)
    out = bytearray(memoryview(data)[:offset])
    out += memoryview(data)[offset + 2 : view.payload_end]
    out[0] &= 0xDF  # P=0: the padding is gone
    _STAMP.pack_into(
        out, 1, (0x80 if view.marker else 0) | media_pt, osn, view.timestamp, media_ssrc
    )
    return bytes(out)


def _vp8_header_offset(p: ReadableBuffer) -> int:
    """Where the VP8 payload header starts if this packet begins partition 0 of a frame
    (RFC 7741 4.2: S=1, PID=0), else -1. Bounds-checked: short input gives -1."""
    n = len(p)
    if n < 1:
        return -1
    b0 = p[0]
    # S is 0x10; PID is the low 3 bits; the reserved bit 0x08 MUST be ignored.
    if b0 & 0x17 != 0x10:
        return -1
    if not b0 & 0x80:
        return 1
    if n < 2:
        return -1
    x = p[1]
    i = 2
    if x & 0x80:  # I: PictureID, 15 bits when its M bit is set
        if n <= i:
            return -1
        i += 2 if p[i] & 0x80 else 1
    if x & 0x40:  # L: TL0PICIDX
        i += 1
    if x & 0x30:  # T or K: one TID|Y|KEYIDX byte
        i += 1
    return i


def vp8_keyframe_start(payload: ReadableBuffer) -> bool:
    """True if this VP8 RTP payload is the first packet of a key frame.

    Reads the payload descriptor (RFC 7741 4.2), then the frame tag: P=0 and the start
    code 9d 01 2a (RFC 6386 9.1). Never raises: short or odd input is simply False.
    """
    i = _vp8_header_offset(payload)
    if i < 0 or len(payload) < i + 6:
        return False
    return (
        payload[i] & 0x01 == 0
        and payload[i + 3] == 0x9D
        and payload[i + 4] == 0x01
        and payload[i + 5] == 0x2A
    )


def vp8_frame_size(payload: ReadableBuffer) -> tuple[int, int] | None:
    """(width, height) from the first packet of a VP8 key frame, else None.

    The 14-bit sizes follow the start code (RFC 6386 9.1); the top 2 bits of each are
    the upscaling mode, dropped here.
    """
    if not vp8_keyframe_start(payload):
        return None
    i = _vp8_header_offset(payload) + 6
    if len(payload) < i + 4:
        return None
    width, height = _VP8_SIZE.unpack_from(payload, i)
    return width & 0x3FFF, height & 0x3FFF


def seq_diff(a: int, b: int) -> int:
    """``a - b`` for 16-bit sequence numbers, in -32768..32767 (RFC 1982 arithmetic)."""
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


def seq_newer(a: int, b: int) -> bool:
    """True if sequence number ``a`` comes after ``b``, across the 16-bit wrap.

    Exactly half the range apart, neither is newer than the other.
    """
    return 0 < (a - b) & 0xFFFF < 0x8000


def opus_silence_hint(payload: ReadableBuffer) -> bool:
    """True for an Opus packet of at most 2 bytes: a TOC byte alone, which DTX sends
    in silence. A fallback for publishers that send no RFC 6464 level
    (docs/media-engine.md 4)."""
    return len(payload) <= 2
