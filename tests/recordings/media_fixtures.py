"""Real encoded media for the recorder's tests: VP8 frames and Opus packets made by
PyAV (libvpx, libopus), as the SFU would forward them, and ways to look at what was
written (packets as stored, ffprobe's view).

Video: a moving gradient with a bright square and a band of noise (so every frame
costs bits), a keyframe every ``gop`` frames; encoding costs ~8 ms a frame here, so
long clips repeat a few encoded groups of pictures (:func:`vp8_clip`), which is still
a valid stream since each group starts with a keyframe. Audio: a 440 Hz tone, 20 ms
packets.
"""

from __future__ import annotations

import json
import math
import shutil
import struct
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.frame import PictureType

FPS = 30
WIDTH, HEIGHT = 640, 360
GOP = 30
VIDEO_TICKS = 90_000 // FPS  # RTP ticks per frame
AUDIO_RATE = 48_000
OPUS_SAMPLES = 960  # 20 ms
AUDIO_PER_SECOND = AUDIO_RATE // OPUS_SAMPLES


def encode_vp8(count: int, width: int = WIDTH, height: int = HEIGHT, gop: int = GOP) -> list[bytes]:
    """``count`` VP8 frames; frame i is a keyframe iff i % gop == 0."""
    ctx = av.CodecContext.create("libvpx", "w")
    assert isinstance(ctx, av.VideoCodecContext)
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base = Fraction(1, FPS)
    ctx.framerate = Fraction(FPS, 1)
    ctx.bit_rate = 600_000
    ctx.gop_size = gop
    ctx.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    rng = np.random.default_rng(7)
    ramp = (np.arange(width + 2 * count, dtype=np.uint32) * 3 % 200 + 16).astype(np.uint8)
    packets: list[bytes] = []
    for i in range(count):
        y = np.broadcast_to(ramp[i * 2 : i * 2 + width], (height, width)).copy()
        x0 = (i * 7) % (width - 64)
        y[100:164, x0 : x0 + 64] = 235
        band = (i * 4) % (height - 8)
        y[band : band + 8] = rng.integers(16, 235, (8, width), dtype=np.uint8)
        yuv = np.concatenate([y, np.full((height // 2, width), 128, np.uint8)])
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = i
        frame.time_base = ctx.time_base
        if i % gop == 0:
            frame.pict_type = PictureType.I
        packets.extend(bytes(p) for p in ctx.encode(frame))
    packets.extend(bytes(p) for p in ctx.encode(None))
    assert len(packets) == count, f"libvpx gave {len(packets)} packets for {count} frames"
    return packets


def vp8_clip(count: int, groups: int = 3) -> list[bytes]:
    """``count`` frames: ``groups`` encoded groups of pictures, repeated."""
    encoded = encode_vp8(min(count, groups * GOP))
    return [encoded[i % len(encoded)] for i in range(count)]


def encode_opus(count: int) -> list[bytes]:
    """``count`` Opus packets of 20 ms (mono tone)."""
    ctx = av.CodecContext.create("libopus", "w")
    assert isinstance(ctx, av.AudioCodecContext)
    ctx.sample_rate = AUDIO_RATE
    ctx.format = "s16"
    ctx.layout = "mono"
    ctx.bit_rate = 32_000
    ctx.time_base = Fraction(1, AUDIO_RATE)
    ctx.options = {"application": "voip", "frame_duration": "20"}
    packets: list[bytes] = []
    i = 0
    while len(packets) < count:
        t = (np.arange(OPUS_SAMPLES) + i * OPUS_SAMPLES) / AUDIO_RATE
        samples = (8000 * np.sin(2 * math.pi * 440 * t)).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = i * OPUS_SAMPLES
        frame.time_base = ctx.time_base
        packets.extend(bytes(p) for p in ctx.encode(frame))
        i += 1
    return packets[:count]


def is_keyframe(frame: bytes) -> bool:
    return not frame[0] & 1


def save_packets(path: Path, packets: list[bytes]) -> None:
    """Length-prefixed, for a child process to read with :func:`load_packets`."""
    path.write_bytes(b"".join(struct.pack("!I", len(p)) + p for p in packets))


def load_packets(path: Path) -> list[bytes]:
    raw = path.read_bytes()
    packets: list[bytes] = []
    pos = 0
    while pos < len(raw):
        (n,) = struct.unpack_from("!I", raw, pos)
        packets.append(raw[pos + 4 : pos + 4 + n])
        pos += 4 + n
    return packets


def stored_packets(path: Path) -> list[tuple[int, bytes, bool]]:
    """(pts in ms, bytes, keyframe flag) of every packet in a one-stream file."""
    out: list[tuple[int, bytes, bool]] = []
    with av.open(str(path)) as container:
        stream = container.streams[0]
        assert stream.time_base == Fraction(1, 1000)
        for packet in container.demux(stream):
            if packet.size and packet.pts is not None:
                out.append((packet.pts, bytes(packet), packet.is_keyframe))
    return out


def decode_all(path: Path) -> list[av.VideoFrame | av.AudioFrame]:
    """Every frame of the file's one stream; a decoding error raises."""
    frames: list[av.VideoFrame | av.AudioFrame] = []
    with av.open(str(path)) as container:
        stream = container.streams[0]
        for frame in container.decode(stream):
            assert isinstance(frame, av.VideoFrame | av.AudioFrame)
            frames.append(frame)
    return frames


def decode_video(path: Path) -> list[av.VideoFrame]:
    frames = decode_all(path)
    assert all(isinstance(f, av.VideoFrame) for f in frames)
    return [f for f in frames if isinstance(f, av.VideoFrame)]


def decode_audio(path: Path) -> list[av.AudioFrame]:
    frames = decode_all(path)
    assert all(isinstance(f, av.AudioFrame) for f in frames)
    return [f for f in frames if isinstance(f, av.AudioFrame)]


def ffprobe(path: Path) -> dict[str, Any]:
    exe = shutil.which("ffprobe")
    assert exe, "ffprobe not installed"
    out = subprocess.run(
        [
            exe,
            "-v",
            "error",
            "-count_packets",
            "-show_streams",
            "-show_format",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result
