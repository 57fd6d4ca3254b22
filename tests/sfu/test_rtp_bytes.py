"""signaling.sfu.rtp_bytes: against hand-built packets, aiortc's own RTP code, and real
VP8 from libvpx. aiortc is used here only as a second opinion."""

from __future__ import annotations

import fractions
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass

import av
import pytest
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket, pack_header_extensions
from aiortc.rtp import unwrap_rtx as aiortc_unwrap_rtx
from aiortc.rtp import wrap_rtx as aiortc_wrap_rtx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signaling.sfu import rtp_bytes as rb

PROPS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
pt7 = st.integers(0, 127)


# --- a packet builder that shares no code with the module ---------------------------------


@dataclass
class Built:
    data: bytes
    marker: bool
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    csrcs: list[int]
    profile: int  # 0 without an extension
    elements: dict[int, bytes]
    payload: bytes
    padding: int


@st.composite
def one_byte_body(draw: st.DrawFn) -> tuple[bytes, dict[int, bytes]]:
    ids = draw(st.lists(st.integers(1, 14), unique=True, max_size=6))
    body = b""
    elements = {}
    for ext_id in ids:
        value = draw(st.binary(min_size=1, max_size=16))
        body += bytes(draw(st.integers(0, 2)))  # padding bytes between elements are legal
        body += bytes([ext_id << 4 | (len(value) - 1)]) + value
        elements[ext_id] = value
    return body, elements


@st.composite
def two_byte_body(draw: st.DrawFn) -> tuple[bytes, dict[int, bytes]]:
    ids = draw(st.lists(st.integers(1, 255), unique=True, max_size=5))
    body = b""
    elements = {}
    for ext_id in ids:
        value = draw(st.binary(max_size=40))
        body += bytes(draw(st.integers(0, 2)))
        body += bytes([ext_id, len(value)]) + value
        elements[ext_id] = value
    return body, elements


@st.composite
def packets(draw: st.DrawFn) -> Built:
    marker = draw(st.booleans())
    payload_type = draw(pt7)
    sequence, timestamp, ssrc = draw(u16), draw(u32), draw(u32)
    csrcs = draw(st.lists(u32, max_size=15))
    kind = draw(st.sampled_from(["none", "one", "two", "other"]))
    profile, body = 0, b""
    elements: dict[int, bytes] = {}
    if kind == "one":
        profile = 0xBEDE
        body, elements = draw(one_byte_body())
    elif kind == "two":
        profile = 0x1000 | draw(st.integers(0, 15))  # RFC 8285 4.3: low 4 bits are appbits
        body, elements = draw(two_byte_body())
    elif kind == "other":
        profile = draw(u16.filter(lambda p: p != 0xBEDE and p & 0xFFF0 != 0x1000))
        body = draw(st.binary(max_size=12))
    body += bytes(-len(body) % 4)
    payload = draw(st.binary(max_size=64))
    padding = draw(st.integers(0, 255))
    data = struct.pack(
        "!BBHII",
        0x80 | (0x20 if padding else 0) | (0x10 if kind != "none" else 0) | len(csrcs),
        (0x80 if marker else 0) | payload_type,
        sequence,
        timestamp,
        ssrc,
    )
    data += b"".join(struct.pack("!I", c) for c in csrcs)
    if kind != "none":
        data += struct.pack("!HH", profile, len(body) // 4) + body
    data += payload
    if padding:
        data += draw(st.binary(min_size=padding - 1, max_size=padding - 1)) + bytes([padding])
    return Built(
        data, marker, payload_type, sequence, timestamp, ssrc, csrcs, profile, elements, payload,
        padding,
    )  # fmt: skip


# --- parse --------------------------------------------------------------------------------


@PROPS
@given(packets())
def test_parse_reads_back_every_field_of_a_built_packet(p: Built) -> None:
    view = rb.parse(p.data)
    assert (view.marker, view.payload_type, view.sequence, view.timestamp, view.ssrc) == (
        p.marker,
        p.payload_type,
        p.sequence,
        p.timestamp,
        p.ssrc,
    )
    assert p.data[view.payload_offset : view.payload_end] == p.payload
    assert view.payload_end == len(p.data) - p.padding
    assert view.ext_profile == p.profile
    assert 12 + 4 * len(p.csrcs) <= view.ext_start <= view.ext_end == view.payload_offset


@PROPS
@given(packets())
def test_extension_elements_and_find_extension_read_every_element(p: Built) -> None:
    view = rb.parse(p.data)
    assert rb.extension_elements(p.data, view) == p.elements
    for ext_id, value in p.elements.items():
        assert rb.find_extension(p.data, view, ext_id) == value
    missing = next(i for i in range(1, 256) if i not in p.elements)
    assert rb.find_extension(p.data, view, missing) is None


def _packet_with_block(profile: int, body: bytes) -> bytes:
    body += bytes(-len(body) % 4)
    return bytes([0x90, 96]) + bytes(10) + struct.pack("!HH", profile, len(body) // 4) + body


def test_one_byte_id_15_ends_the_extension_walk() -> None:
    # RFC 8285 4.2: id 15 is reserved; processing of the block stops there.
    data = _packet_with_block(0xBEDE, b"\x10\xaa\xf0\x20\xbb")
    view = rb.parse(data)
    assert rb.extension_elements(data, view) == {1: b"\xaa"}
    assert rb.find_extension(data, view, 2) is None


@pytest.mark.parametrize(
    ("profile", "body"),
    [(0xBEDE, b"\x10\xaa\x10\xbb"), (0x1000, b"\x01\x01\xaa\x01\x01\xbb")],
    ids=["one-byte", "two-byte"],
)
def test_a_repeated_id_keeps_the_first_value_in_both_lookups(profile: int, body: bytes) -> None:
    data = _packet_with_block(profile, body)
    view = rb.parse(data)
    assert rb.extension_elements(data, view) == {1: b"\xaa"}
    assert rb.find_extension(data, view, 1) == b"\xaa"


@pytest.mark.parametrize(
    ("profile", "body"),
    [
        (0xBEDE, b"\x1f\x00\x00"),  # one-byte element claims 16 bytes, the block has 4
        (0x1000, b"\x00\x00\x00\x05"),  # two-byte element header cut by the block end
        (0x1000, b"\x05\x09\x00\x00"),  # two-byte element claims 9 bytes
    ],
)
def test_truncated_extension_elements_raise_value_error(profile: int, body: bytes) -> None:
    data = _packet_with_block(profile, body)
    view = rb.parse(data)
    with pytest.raises(ValueError, match="truncated"):
        rb.extension_elements(data, view)
    with pytest.raises(ValueError, match="truncated"):
        rb.find_extension(data, view, 14)


def _header(b0: int = 0x80) -> bytes:
    return bytes([b0, 96]) + bytes(10)


MALFORMED = {
    "empty": b"",
    "11 bytes": _header()[:11],
    "version 0": _header(0x00),
    "version 1": _header(0x40),
    "version 3": _header(0xC0),
    "CSRC count past the end": _header(0x82) + bytes(4),
    "extension header past the end": _header(0x90) + b"\xbe\xde",
    "extension length past the end": _header(0x90) + b"\xbe\xde\x00\x02" + bytes(7),
    "padding count 0": _header(0xA0) + b"\x01\x02\x00",
    "padding larger than the payload": _header(0xA0) + b"\x01\x02\x04",
    "padding eating into the CSRCs": _header(0xA1) + b"\x00\x00\x00\x02",
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_packets_raise_value_error_as_aiortc_does(data: bytes) -> None:
    with pytest.raises(ValueError, match="RTP"):
        rb.parse(data)
    with pytest.raises(ValueError, match="RTP"):
        RtpPacket.parse(data)


def test_padding_may_take_the_whole_payload() -> None:
    data = _header(0xA0) + b"\x00\x00\x03"
    view = rb.parse(data)
    assert view.payload_offset == view.payload_end == 12


@st.composite
def mangled(draw: st.DrawFn) -> bytes:
    """Built packets cut short, or with bytes overwritten: most reach the deep checks."""
    data = bytearray(draw(packets()).data)
    for _ in range(draw(st.integers(0, 3))):
        data[draw(st.integers(0, len(data) - 1))] = draw(u8)
    return bytes(data[: draw(st.integers(0, len(data)))])


@settings(PROPS, max_examples=1000)
@given(st.binary(max_size=80) | mangled())
def test_any_bytes_raise_nothing_but_value_error(data: bytes) -> None:
    try:
        view = rb.parse(data)
    except ValueError:
        with pytest.raises(ValueError, match="RTP"):
            RtpPacket.parse(data)  # aiortc refuses it too
        return
    assert 12 <= view.ext_start <= view.ext_end <= view.payload_offset
    assert view.payload_offset <= view.payload_end <= len(data)
    try:
        elements = rb.extension_elements(data, view)
    except ValueError:
        return
    for ext_id, value in elements.items():
        assert rb.find_extension(data, view, ext_id) == value
    for data_or_payload in (data, data[view.payload_offset : view.payload_end]):
        assert isinstance(rb.vp8_keyframe_start(data_or_payload), bool)
        rb.vp8_frame_size(data_or_payload)


# --- cross-check against aiortc's RtpPacket ----------------------------------------------

AIORTC_IDS = {"mid": 1, "audio_level": 2, "abs_send_time": 3, "transport_sequence_number": 5}
URIS = {
    "mid": "urn:ietf:params:rtp-hdrext:sdes:mid",
    "audio_level": "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    "abs_send_time": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    "transport_sequence_number": "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
}


def _extensions_map(ids: dict[str, int]) -> HeaderExtensionsMap:
    extensions_map = HeaderExtensionsMap()
    extensions_map.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=ext_id, uri=URIS[name])
                for name, ext_id in ids.items()
            ]
        )
    )
    return extensions_map


@st.composite
def aiortc_packets(draw: st.DrawFn) -> tuple[RtpPacket, HeaderExtensionsMap, dict[str, int]]:
    packet = RtpPacket(
        payload_type=draw(pt7),
        marker=draw(st.integers(0, 1)),
        sequence_number=draw(u16),
        timestamp=draw(u32),
        ssrc=draw(u32),
        payload=draw(st.binary(max_size=64)),
    )
    packet.csrc = draw(st.lists(u32, max_size=15))
    packet.padding_size = draw(st.integers(0, 255))
    if draw(st.booleans()):
        packet.extensions.audio_level = (draw(st.booleans()), draw(st.integers(0, 127)))
    if draw(st.booleans()):
        packet.extensions.abs_send_time = draw(st.integers(0, 0xFFFFFF))
    if draw(st.booleans()):
        packet.extensions.transport_sequence_number = draw(u16)
    if draw(st.booleans()):
        # Longer than 16 bytes forces aiortc into the two-byte form.
        packet.extensions.mid = draw(st.text("abcdef0123", min_size=1, max_size=24))
    # Ids above 14 force the two-byte form as well.
    shift = draw(st.sampled_from([0, 20]))
    ids = {name: ext_id + shift for name, ext_id in AIORTC_IDS.items()}
    return packet, _extensions_map(ids), ids


@PROPS
@given(aiortc_packets())
def test_parse_agrees_with_aiortc_on_its_own_packets(
    case: tuple[RtpPacket, HeaderExtensionsMap, dict[str, int]],
) -> None:
    packet, extensions_map, ids = case
    data = packet.serialize(extensions_map)
    theirs = RtpPacket.parse(data, extensions_map)
    view = rb.parse(data)
    assert view.marker == bool(theirs.marker)
    assert view.payload_type == theirs.payload_type
    assert view.sequence == theirs.sequence_number
    assert view.timestamp == theirs.timestamp
    assert view.ssrc == theirs.ssrc
    assert data[view.payload_offset : view.payload_end] == theirs.payload == packet.payload
    assert len(data) - view.payload_end == theirs.padding_size

    elements = rb.extension_elements(data, view)
    by_name = {name: elements.get(ext_id) for name, ext_id in ids.items()}
    level = by_name["audio_level"]
    assert (rb.audio_level(level) if level else None) == theirs.extensions.audio_level
    send_time = by_name["abs_send_time"]
    assert (
        int.from_bytes(send_time, "big") if send_time else None
    ) == theirs.extensions.abs_send_time
    seq = by_name["transport_sequence_number"]
    assert (
        int.from_bytes(seq, "big") if seq else None
    ) == theirs.extensions.transport_sequence_number
    mid = by_name["mid"]
    assert (mid.decode() if mid else None) == theirs.extensions.mid


# --- RFC 6464 level, abs-send-time, extension blocks --------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"\x80", (True, 0)),
        (b"\x00", (False, 0)),
        (b"\x7f", (False, 127)),
        (b"\x8f", (True, 15)),
        (b"\xff\x00\x00", (True, 127)),  # a padded two-byte-form value: first byte counts
    ],
)
def test_audio_level_reads_the_v_bit_and_level(value: bytes, expected: tuple[bool, int]) -> None:
    assert rb.audio_level(value) == expected


def test_audio_level_of_an_empty_element_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        rb.audio_level(b"")


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0.0, b"\x00\x00\x00"),
        (1.0, b"\x04\x00\x00"),
        (0.5, b"\x02\x00\x00"),
        (2**-18, b"\x00\x00\x01"),
        (0.75 * 2**-18, b"\x00\x00\x00"),  # truncated, not rounded
        (63.0, b"\xfc\x00\x00"),
        (64.0, b"\x00\x00\x00"),
        (64.5, b"\x02\x00\x00"),
        (1000.25, b"\xa1\x00\x00"),  # 1000.25 mod 64 = 40.25
    ],
)
def test_abs_send_time_is_6_18_fixed_point_mod_64(seconds: float, expected: bytes) -> None:
    assert rb.abs_send_time(seconds) == expected


@PROPS
@given(st.floats(0, 1e7, allow_nan=False))
def test_abs_send_time_matches_the_ntp_derivation_aiortc_uses(seconds: float) -> None:
    # aiortc's sender: (ntp_time_32_32 >> 14) & 0xFFFFFF.
    ntp = int(seconds * 2**32)
    value = int.from_bytes(rb.abs_send_time(seconds), "big")
    assert abs(value - ((ntp >> 14) & 0xFFFFFF)) in (0, 1, 0xFFFFFF)


@PROPS
@given(st.lists(st.tuples(st.integers(1, 14), st.binary(min_size=1, max_size=16)), max_size=8))
def test_one_byte_extension_block_is_what_aiortc_would_pack(
    elements: list[tuple[int, bytes]],
) -> None:
    block = rb.one_byte_extension_block(elements)
    if not elements:
        assert block == b""
        return
    profile, body = pack_header_extensions(elements)
    assert profile == 0xBEDE
    assert block == struct.pack("!HH", profile, len(body) // 4) + body
    assert len(block) % 4 == 0


@pytest.mark.parametrize(
    "elements",
    [[(0, b"x")], [(15, b"x")], [(1, b"")], [(1, bytes(17))], [(2, b"a"), (16, b"b")]],
)
def test_one_byte_extension_block_refuses_what_the_form_cannot_carry(
    elements: list[tuple[int, bytes]],
) -> None:
    with pytest.raises(ValueError, match="one-byte extension"):
        rb.one_byte_extension_block(elements)


# --- header rewrite and stamping ----------------------------------------------------------

blocks = st.lists(
    st.tuples(st.integers(1, 14), st.binary(min_size=1, max_size=16)),
    max_size=3,
    unique_by=lambda e: e[0],
)
# marker, payload type, sequence and timestamp with offsets added (not yet wrapped), ssrc
stamps = st.tuples(st.booleans(), pt7, st.integers(0, 2**20), st.integers(0, 2**40), u32)
Stamp = tuple[bool, int, int, int, int]


@PROPS
@given(packets(), blocks, stamps, stamps)
def test_stamped_template_is_a_clean_packet_with_the_subscribers_fields(
    p: Built, block_elements: list[tuple[int, bytes]], first: Stamp, second: Stamp
) -> None:
    view = rb.parse(p.data)
    block = rb.one_byte_extension_block(block_elements)
    template = rb.rewrite_header(p.data, view, block)
    assert template.header_length == 12 + len(block)
    assert (template.marker, template.sequence, template.timestamp) == (
        p.marker,
        p.sequence,
        p.timestamp,
    )
    outs = [rb.stamp(template.buf, *fields) for fields in (first, second)]
    for out, (marker, payload_type, sequence, timestamp, ssrc) in zip(
        outs, (first, second), strict=True
    ):
        assert out[0] == (0x90 if block else 0x80)  # V=2, P=0, X only with a block, CC=0
        got = rb.parse(out)
        assert (got.marker, got.payload_type, got.sequence, got.timestamp, got.ssrc) == (
            marker,
            payload_type,
            sequence & 0xFFFF,
            timestamp & 0xFFFFFFFF,
            ssrc,
        )
        assert got.payload_offset == template.header_length
        assert out[got.payload_offset :] == p.payload  # padding gone
        assert rb.extension_elements(out, got) == dict(block_elements)
        theirs = RtpPacket.parse(out)
        assert theirs.csrc == []
        assert theirs.padding_size == 0
        assert theirs.payload == p.payload


def test_rewrite_header_copies_the_marker_into_the_template() -> None:
    data = bytes([0x80, 0x80 | 96]) + bytes(10) + b"payload"
    template = rb.rewrite_header(data, rb.parse(data))
    assert template.buf[1] == 0x80 | 96
    assert bytes(template.buf) == data


# --- RTX (RFC 4588) -----------------------------------------------------------------------


@PROPS
@given(packets(), blocks, pt7, u16, u32, u32, u16, pt7, u32)
def test_rtx_packet_carries_the_osn_and_unwraps_to_the_stamped_packet(
    p: Built,
    block_elements: list[tuple[int, bytes]],
    rtx_pt: int,
    rtx_seq: int,
    timestamp: int,
    rtx_ssrc: int,
    out_seq: int,
    media_pt: int,
    media_ssrc: int,
) -> None:
    view = rb.parse(p.data)
    template = rb.rewrite_header(p.data, view, rb.one_byte_extension_block(block_elements))
    before = bytes(template.buf)
    rtx = rb.rtx_packet(
        template,
        payload_type=rtx_pt,
        sequence=rtx_seq,
        timestamp=timestamp,
        ssrc=rtx_ssrc,
        original_sequence=out_seq,
    )
    assert bytes(template.buf) == before
    got = rb.parse(rtx)
    assert (got.marker, got.payload_type, got.sequence, got.timestamp, got.ssrc) == (
        p.marker,
        rtx_pt,
        rtx_seq,
        timestamp,
        rtx_ssrc,
    )
    assert rtx[got.payload_offset : got.payload_offset + 2] == struct.pack("!H", out_seq)
    assert rtx[got.payload_offset + 2 :] == p.payload
    assert rb.extension_elements(rtx, got) == dict(block_elements)

    original = rb.unwrap_rtx(rtx, got, media_pt, media_ssrc)
    assert original == rb.stamp(
        bytearray(before), p.marker, media_pt, out_seq, timestamp, media_ssrc
    )


@PROPS
@given(aiortc_packets(), pt7, u16, u32, pt7)
def test_unwrap_rtx_matches_aiortc_on_its_own_rtx_packets(
    case: tuple[RtpPacket, HeaderExtensionsMap, dict[str, int]],
    rtx_pt: int,
    rtx_seq: int,
    rtx_ssrc: int,
    media_pt: int,
) -> None:
    packet, extensions_map, _ = case
    rtx = aiortc_wrap_rtx(packet, payload_type=rtx_pt, sequence_number=rtx_seq, ssrc=rtx_ssrc)
    rtx.padding_size = packet.padding_size
    data = rtx.serialize(extensions_map)
    ours = RtpPacket.parse(
        rb.unwrap_rtx(data, rb.parse(data), media_pt, packet.ssrc), extensions_map
    )
    theirs = aiortc_unwrap_rtx(RtpPacket.parse(data, extensions_map), media_pt, packet.ssrc)
    for field in ("marker", "payload_type", "sequence_number", "timestamp", "ssrc", "csrc"):
        assert getattr(ours, field) == getattr(theirs, field), field
    assert ours.sequence_number == packet.sequence_number
    assert ours.payload == theirs.payload == packet.payload
    assert ours.extensions == theirs.extensions
    assert ours.padding_size == 0


@pytest.mark.parametrize(
    "data",
    [
        _header() + b"",
        _header() + b"\x01",
        _header(0xA0) + b"\x01\x02\x02",  # 3 bytes, but 2 of them are padding
    ],
)
def test_unwrap_rtx_without_an_osn_is_a_value_error(data: bytes) -> None:
    with pytest.raises(ValueError, match="original sequence number"):
        rb.unwrap_rtx(data, rb.parse(data), 96, 1)


# --- VP8 (RFC 7741, RFC 6386) on real libvpx output -------------------------------------


def _noise_frames(width: int, height: int, count: int, seed: int = 7) -> list[av.VideoFrame]:
    rnd = random.Random(seed)  # noqa: S311 - reproducible test noise, not crypto
    frames = []
    for i in range(count):
        frame = av.VideoFrame(width, height, "yuv420p")
        for plane in frame.planes:
            plane.update(rnd.randbytes(plane.buffer_size))
        frame.pts = i
        frame.time_base = fractions.Fraction(1, 30)
        frames.append(frame)
    return frames


@pytest.fixture(scope="module")
def vp8_frames() -> list[tuple[bool, bytes]]:
    """(libvpx says key frame, frame bytes) for 3 frames of 64x64 noise: key, delta, delta."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width = codec.height = 64
    codec.pix_fmt = "yuv420p"
    codec.bit_rate = 500_000
    codec.options = {"deadline": "realtime", "lag-in-frames": "0"}
    encoded = [
        (packet.is_keyframe, bytes(packet))
        for frame in _noise_frames(64, 64, 3)
        for packet in codec.encode(frame)
    ]
    assert [key for key, _ in encoded] == [True, False, False]
    return encoded


# RFC 7741 4.2 payload descriptors, after the first byte (X is set when this is not empty).
DESCRIPTORS = {
    "no extension": b"",
    "7-bit PictureID": bytes([0x80, 0x55]),
    "15-bit PictureID": bytes([0x80, 0x80 | 0x12, 0x34]),
    "PictureID, TL0PICIDX, TID, KEYIDX": bytes([0xF0, 0xFF, 0xFF, 9, 0b0110_0011]),
    "TL0PICIDX only": bytes([0x40, 200]),
    "TID only": bytes([0x20, 0b0100_0000]),
    "KEYIDX only": bytes([0x10, 31]),
}


def _packetize(frame: bytes, size: int, descriptor: bytes) -> list[bytes]:
    """Split a frame into RTP payloads, each with the descriptor; S=1 on the first."""
    return [
        bytes([(0x80 if descriptor else 0) | (0x10 if start == 0 else 0)])
        + descriptor
        + frame[start : start + size]
        for start in range(0, len(frame), size)
    ]


@pytest.mark.parametrize("descriptor", DESCRIPTORS.values(), ids=DESCRIPTORS.keys())
def test_keyframe_start_only_on_the_first_packet_of_a_key_frame(
    vp8_frames: list[tuple[bool, bytes]], descriptor: bytes
) -> None:
    for is_key, frame in vp8_frames:
        payloads = _packetize(frame, 500, descriptor)
        assert len(payloads) > 1
        assert [rb.vp8_keyframe_start(p) for p in payloads] == [is_key] + [False] * (
            len(payloads) - 1
        )
        assert rb.vp8_keyframe_start(memoryview(payloads[0])) == is_key
        assert [rb.vp8_frame_size(p) for p in payloads] == [(64, 64) if is_key else None] + [
            None
        ] * (len(payloads) - 1)


def test_keyframes_from_aiortcs_own_packetizer_are_detected() -> None:
    encoder = Vp8Encoder()
    first, second, third = _noise_frames(160, 120, 3, seed=3)
    key_payloads, _ = encoder.encode(first)
    delta_payloads, _ = encoder.encode(second)
    forced_payloads, _ = encoder.encode(third, force_keyframe=True)
    assert len(key_payloads) > 1
    for payloads, is_key in (
        (key_payloads, True),
        (delta_payloads, False),
        (forced_payloads, True),
    ):
        starts = [rb.vp8_keyframe_start(p) for p in payloads]
        assert starts == [is_key] + [False] * (len(payloads) - 1)
    assert rb.vp8_frame_size(key_payloads[0]) == (160, 120)


def test_truncated_keyframe_packets_are_false_and_never_raise(
    vp8_frames: list[tuple[bool, bytes]],
) -> None:
    first = _packetize(vp8_frames[0][1], 500, DESCRIPTORS["PictureID, TL0PICIDX, TID, KEYIDX"])[0]
    assert len(first) == 500 + 6
    descriptor = 6  # 2 bytes + 2 PictureID + TL0PICIDX + TID/KEYIDX
    for cut in range(len(first)):
        prefix = first[:cut]
        assert rb.vp8_keyframe_start(prefix) is (cut >= descriptor + 6)
        assert rb.vp8_frame_size(prefix) == ((64, 64) if cut >= descriptor + 10 else None)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda p: bytes([p[0] | 0x01]) + p[1:], False),  # PID 1: not partition 0
        (lambda p: bytes([p[0] & ~0x10]) + p[1:], False),  # S=0: a continuation
        (lambda p: bytes([p[0] | 0x08]) + p[1:], True),  # reserved bit: ignored (RFC 7741)
        (lambda p: p[:1] + bytes([p[1] | 0x01]) + p[2:], False),  # frame tag P=1: inter frame
        (lambda p: p[:4] + b"\x9d\x01\x2b" + p[7:], False),  # bad start code
    ],
    ids=["pid", "not start", "reserved bit", "inter", "start code"],
)
def test_keyframe_start_reads_the_descriptor_bits(
    vp8_frames: list[tuple[bool, bytes]], change: Callable[[bytes], bytes], expected: bool
) -> None:
    first = _packetize(vp8_frames[0][1], 500, b"")[0]
    assert first[4:7] == b"\x9d\x01\x2a"
    assert rb.vp8_keyframe_start(first)
    assert rb.vp8_keyframe_start(change(first)) is expected


def test_frame_size_drops_the_scaling_bits(vp8_frames: list[tuple[bool, bytes]]) -> None:
    first = bytearray(_packetize(vp8_frames[0][1], 500, b"")[0])
    assert rb.vp8_frame_size(first) == (64, 64)
    first[8] |= 0xC0  # width's upscaling mode (RFC 6386 9.1): 2 high bits of byte 2
    first[10] |= 0x40
    assert rb.vp8_frame_size(first) == (64, 64)


@PROPS
@given(st.binary(max_size=16))
def test_vp8_functions_never_raise_on_any_bytes(payload: bytes) -> None:
    is_start = rb.vp8_keyframe_start(payload)
    size = rb.vp8_frame_size(payload)
    assert size is None or is_start


# --- sequence arithmetic and Opus ---------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "diff", "newer"),
    [
        (5, 3, 2, True),
        (3, 5, -2, False),
        (1, 65535, 2, True),
        (65535, 1, -2, False),
        (7, 7, 0, False),
        (32767, 0, 32767, True),
        (32768, 0, -32768, False),  # half the range apart: neither is newer
        (0, 32768, -32768, False),
    ],
)
def test_sequence_arithmetic_across_the_wrap(a: int, b: int, diff: int, newer: bool) -> None:
    assert rb.seq_diff(a, b) == diff
    assert rb.seq_newer(a, b) is newer


@PROPS
@given(u16, u16)
def test_seq_diff_is_the_short_way_round(a: int, b: int) -> None:
    d = rb.seq_diff(a, b)
    assert -32768 <= d <= 32767
    assert (b + d) & 0xFFFF == a
    assert rb.seq_newer(a, b) == (d > 0)
    assert not (rb.seq_newer(a, b) and rb.seq_newer(b, a))


@pytest.mark.parametrize(
    ("payload", "silent"),
    [(b"", True), (b"\xf8", True), (b"\xf8\x00", True), (b"\xf8\xff\xfe", False)],
)
def test_opus_silence_hint_is_a_toc_only_packet(payload: bytes, silent: bool) -> None:
    assert rb.opus_silence_hint(payload) is silent
