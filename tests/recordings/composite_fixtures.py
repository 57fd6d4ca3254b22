"""Recordings for the composite's tests, made of real media: VP8 and Opus WebM files
encoded with PyAV (as the SFU forwards them: a size change mid-stream, gaps without
packets, a late start) and a manifest written by ``write_manifest``.

Each site's camera is one solid colour so a test can tell sites apart in the
composite; each site's microphone is a tone (or silence) at a loudness of its own.
Times are seconds of the recording, not of the track.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.frame import PictureType

from recordings.manifest import Manifest, TrackEntry, write_manifest

VIDEO_FPS = 15
AUDIO_RATE = 48_000
OPUS_FRAME = 960  # 20 ms
MS = Fraction(1, 1000)

Span = tuple[float, float]


@dataclass
class Tone:
    start: float
    end: float
    amplitude: float  # of a full-scale sine: 0..1
    hz: float = 440.0


@dataclass
class Site:
    participant: str
    unit_name: str
    colour: tuple[int, int, int] | None  # None: no camera track
    tones: list[Tone] = field(default_factory=list)  # silence (still packets) elsewhere
    audio: bool = True
    start: float = 0.0  # the tracks' start_offset
    size: tuple[int, int] = (320, 180)
    resize: tuple[float, tuple[int, int]] | None = None  # (from when, new size)
    video_gaps: list[Span] = field(default_factory=list)  # camera paused: no frames
    audio_gaps: list[Span] = field(default_factory=list)  # muted: no packets
    screen: bool = False  # the video track is a screen share (and the site has no audio)


@dataclass
class _Written:
    packets: int
    bytes: int
    first: float
    last: float
    width: int = 0
    height: int = 0


def _in(t: float, spans: list[Span]) -> bool:
    return any(a <= t < b for a, b in spans)


def _solid(colour: tuple[int, int, int], size: tuple[int, int]) -> av.VideoFrame:
    rgb = np.empty((size[1], size[0], 3), dtype=np.uint8)
    rgb[:] = colour
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")


def _vp8(size: tuple[int, int]) -> av.VideoCodecContext:
    ctx = av.CodecContext.create("libvpx", "w")
    ctx.width, ctx.height, ctx.pix_fmt = size[0], size[1], "yuv420p"
    ctx.time_base = MS
    ctx.framerate = Fraction(VIDEO_FPS, 1)
    ctx.bit_rate = 300_000
    ctx.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    return ctx


def write_video(path: Path, site: Site, end: float) -> _Written:
    """Frames at VIDEO_FPS from ``site.start`` to ``end``; a new encoder (and a keyframe)
    after a resize or a pause, packets muxed into one VP8 track like the SFU's."""
    assert site.colour is not None
    out = av.open(str(path), "w", format="webm")
    stream = out.add_stream("libvpx", rate=VIDEO_FPS)
    stream.width, stream.height = site.size
    stream.time_base = MS
    size = site.size
    ctx = _vp8(size)
    frame = _solid(site.colour, size)
    written = _Written(0, 0, math.inf, -math.inf, *site.size)
    paused = False
    for k in range(math.ceil((end - site.start) * VIDEO_FPS)):
        t = site.start + k / VIDEO_FPS
        if _in(t, site.video_gaps):
            paused = True
            continue
        key = paused or k == 0
        if site.resize is not None and t >= site.resize[0] and size != site.resize[1]:
            for packet in ctx.encode(None):
                _mux(out, stream, packet, written)
            size = site.resize[1]
            ctx, frame, key = _vp8(size), _solid(site.colour, size), True
        paused = False
        frame.pts, frame.time_base = round((t - site.start) * 1000), MS
        frame.pict_type = PictureType.I if key else PictureType.NONE
        for packet in ctx.encode(frame):
            _mux(out, stream, packet, written)
        written.first, written.last = min(written.first, t), max(written.last, t)
    for packet in ctx.encode(None):
        _mux(out, stream, packet, written)
    out.close()
    return written


def _mux(
    out: av.container.OutputContainer,
    stream: av.stream.Stream,
    packet: av.Packet[Any],
    written: _Written,
) -> None:
    packet.stream = stream
    packet.time_base = MS
    written.packets += 1
    written.bytes += packet.size
    out.mux(packet)


def write_audio(path: Path, site: Site, end: float) -> _Written:
    """20 ms Opus packets from ``site.start`` to ``end``: tones, silence, and no packets
    at all in ``site.audio_gaps``."""
    out = av.open(str(path), "w", format="webm")
    stream = out.add_stream("libopus", rate=AUDIO_RATE)
    stream.layout = "mono"
    stream.bit_rate = 48_000
    written = _Written(0, 0, math.inf, -math.inf)
    n = math.ceil((end - site.start) * AUDIO_RATE / OPUS_FRAME)
    tb = Fraction(1, AUDIO_RATE)
    for k in range(n):
        first = k * OPUS_FRAME
        t = site.start + first / AUDIO_RATE
        times = site.start + (first + np.arange(OPUS_FRAME)) / AUDIO_RATE
        signal = np.zeros(OPUS_FRAME, dtype=np.float64)
        for tone in site.tones:
            on = (times >= tone.start) & (times < tone.end)
            signal += on * tone.amplitude * np.sin(2 * np.pi * tone.hz * times)
        samples = np.clip(signal * 32767, -32767, 32767).astype(np.int16)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = AUDIO_RATE, first, tb
        packets = stream.encode(frame)
        if _in(t, site.audio_gaps):
            continue  # encoded (the encoder's clock runs on) but never sent
        for packet in packets:
            written.packets += 1
            written.bytes += packet.size
            out.mux(packet)
        written.first, written.last = min(written.first, t), max(written.last, t)
    for packet in stream.encode(None):
        out.mux(packet)
    out.close()
    return written


def make_recording(
    directory: Path, sites: list[Site], seconds: float, title: str = "Họp thử"
) -> Manifest:
    """Every site's tracks in ``directory``, and the manifest (written last, as the recorder does)."""
    directory.mkdir(parents=True, exist_ok=True)
    tracks: list[TrackEntry] = []
    for site in sites:
        if site.colour is not None:
            tracks.append(_entry(directory, site, "video", seconds, len(tracks)))
        if site.audio and not site.screen:
            tracks.append(_entry(directory, site, "audio", seconds, len(tracks)))
    manifest = Manifest(
        recording_id=1,
        meeting_id=1,
        number=1,
        title=title,
        started_at="2025-03-01T01:00:00Z",
        ended_at="2025-03-01T01:00:10Z",
        status="finished",
        duration_seconds=seconds,
        tracks=tracks,
    )
    write_manifest(directory, manifest)
    return manifest


def _entry(directory: Path, site: Site, kind: str, seconds: float, index: int) -> TrackEntry:
    track_id = f"t{index + 1:02d}"
    name = f"{track_id}-{kind}.webm"
    path = directory / name
    written = (
        write_video(path, site, seconds) if kind == "video" else write_audio(path, site, seconds)
    )
    return TrackEntry(
        id=track_id,
        file=name,
        kind="video" if kind == "video" else "audio",
        codec="vp8" if kind == "video" else "opus",
        participant=site.participant,
        unit_id=None,
        unit_name=site.unit_name,
        source="screen" if site.screen else "camera",
        start_offset=site.start,
        duration=round(written.last - written.first, 3),
        packets=written.packets,
        bytes=written.bytes,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        width=written.width,
        height=written.height,
    )
