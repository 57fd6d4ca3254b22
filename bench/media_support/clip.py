"""Media encoded once: 10 s of 640x360 30 fps VP8 (~1.5 Mbit/s) and Opus, cached on disk.

Every video frame shows its own index (0..299) as a row of 16 black/white blocks
(40x40 px each) across the top of the picture, so a decoding subscriber can read
which frame it shows. Below that a static random texture with a band of fresh
noise moving down it keeps the encoder at its bitrate (VP8 codes static areas
almost for free). A keyframe every ``KEYFRAME_INTERVAL`` frames: a forwarding SFU
cannot get a keyframe on demand from a publisher that replays pre-encoded media,
so a new subscriber waits for the next periodic one.

The audio is a 440 Hz tone for 1 s, silence for 1 s, in turn (20 ms Opus
packets); ``levels`` holds the RFC 6464 level of each packet (15 = -15 dBov,
127 = silence), which the publisher writes into the header extension because
aiortc computes levels only when it encodes.
"""

from __future__ import annotations

import fractions
import math
import random
import struct
from dataclasses import dataclass
from pathlib import Path

import av

WIDTH, HEIGHT, FPS = 640, 360, 30
SECONDS = 10
FRAMES = FPS * SECONDS
KEYFRAME_INTERVAL = FPS  # one keyframe per second
BITRATE = 1_500_000
BLOCK = 40  # 16 blocks of 40 px = 640 px: one bit each
BITS = 16
BLACK, WHITE = 16, 235
NOISE_BAND = 12
AUDIO_RATE = 48000
AUDIO_SAMPLES = 960  # 20 ms
AUDIO_PACKETS = SECONDS * AUDIO_RATE // AUDIO_SAMPLES
TONE_LEVEL = 15  # -dBov of the tone (amplitude 8000 of 32767, sine)
VERSION = 1


@dataclass(frozen=True)
class Clip:
    video: list[bytes]
    keyframes: list[bool]
    audio: list[bytes]
    levels: list[int]

    @property
    def video_kbps(self) -> float:
        return sum(len(p) for p in self.video) * 8 / SECONDS / 1000

    @property
    def audio_kbps(self) -> float:
        return sum(len(p) for p in self.audio) * 8 / SECONDS / 1000

    def next_keyframe(self, index: int) -> int:
        """The first clip index >= ``index`` (mod FRAMES) that is a keyframe, as an offset."""
        for k in range(FRAMES):
            if self.keyframes[(index + k) % FRAMES]:
                return k
        raise ValueError("no keyframe in the clip")


def _write_records(path: Path, records: list[bytes], flags: list[int]) -> None:
    with path.open("wb") as f:
        for data, flag in zip(records, flags, strict=True):
            f.write(struct.pack("!IB", len(data), flag))
            f.write(data)


def _read_records(path: Path) -> tuple[list[bytes], list[int]]:
    raw = path.read_bytes()
    records: list[bytes] = []
    flags: list[int] = []
    pos = 0
    while pos < len(raw):
        n, flag = struct.unpack_from("!IB", raw, pos)
        pos += 5
        records.append(raw[pos : pos + n])
        flags.append(flag)
        pos += n
    return records, flags


def _stamp(y: bytearray, line: int, index: int) -> None:
    """Write ``index`` as 16 blocks (MSB first) over the top BLOCK rows of a Y plane."""
    for bit in range(BITS):
        value = WHITE if (index >> (BITS - 1 - bit)) & 1 else BLACK
        row = bytes([value]) * BLOCK
        x = bit * BLOCK
        for r in range(BLOCK):
            y[r * line + x : r * line + x + BLOCK] = row


def read_index(frame: av.VideoFrame) -> int | None:
    """The frame index drawn by :func:`_stamp`, from a decoded frame (None if unreadable)."""
    if frame.width != WIDTH or frame.height != HEIGHT:
        return None
    plane = frame.planes[0]
    line = plane.line_size
    data = memoryview(plane)
    index = 0
    for bit in range(BITS):
        x0 = bit * BLOCK + BLOCK // 2 - 4
        total = 0
        for r in (BLOCK // 2 - 4, BLOCK // 2, BLOCK // 2 + 4):
            total += sum(data[r * line + x0 : r * line + x0 + 8])
        mean = total / 24
        if 70 < mean < 180:  # neither black nor white: a damaged picture
            return None
        index = (index << 1) | (mean >= 128)
    return index if index < FRAMES else None


def _encode_video() -> tuple[list[bytes], list[bool]]:
    rnd = random.Random(1234)
    probe = av.VideoFrame(width=WIDTH, height=HEIGHT, format="yuv420p")
    line = probe.planes[0].line_size
    sizes = [p.buffer_size for p in probe.planes]
    # a background of flat 20x20 tiles (cheap in a keyframe), neutral chroma
    tiles = [[rnd.randrange(40, 216) for _ in range(WIDTH // 20)] for _ in range(HEIGHT // 20)]
    luma = bytearray(sizes[0])
    for r in range(HEIGHT):
        row = tiles[r // 20]
        luma[r * line : r * line + WIDTH] = b"".join(bytes([v]) * 20 for v in row)
    base = [luma, bytearray([128]) * sizes[1], bytearray([128]) * sizes[2]]
    ctx = av.CodecContext.create("libvpx", "w")
    ctx.width, ctx.height, ctx.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    ctx.time_base = fractions.Fraction(1, FPS)
    ctx.framerate = fractions.Fraction(FPS, 1)
    ctx.bit_rate = BITRATE
    ctx.gop_size = KEYFRAME_INTERVAL
    ctx.qmin, ctx.qmax = 2, 56
    ctx.options = {
        "bufsize": str(BITRATE),
        "cpu-used": "4",
        "deadline": "realtime",
        "lag-in-frames": "0",
        "minrate": str(BITRATE),
        "maxrate": str(BITRATE),
        "static-thresh": "1",
        "undershoot-pct": "100",
        "overshoot-pct": "15",
        "keyint_min": str(KEYFRAME_INTERVAL),
    }
    packets: list[bytes] = []
    keys: list[bool] = []
    for i in range(FRAMES):
        y = bytearray(base[0])
        top = BLOCK + 4
        span = HEIGHT - top - NOISE_BAND
        row = top + (i * NOISE_BAND) % span
        y[row * line : (row + NOISE_BAND) * line] = rnd.randbytes(NOISE_BAND * line)
        _stamp(y, line, i)
        frame = av.VideoFrame(width=WIDTH, height=HEIGHT, format="yuv420p")
        frame.planes[0].update(bytes(y))
        frame.planes[1].update(bytes(base[1]))
        frame.planes[2].update(bytes(base[2]))
        frame.pts = i
        frame.time_base = ctx.time_base
        if i % KEYFRAME_INTERVAL == 0:
            frame.pict_type = av.video.frame.PictureType.I
        for p in ctx.encode(frame):
            packets.append(bytes(p))
            keys.append(bool(p.is_keyframe))
    for p in ctx.encode(None):
        packets.append(bytes(p))
        keys.append(bool(p.is_keyframe))
    if len(packets) != FRAMES:
        raise RuntimeError(f"encoder gave {len(packets)} packets for {FRAMES} frames")
    return packets, keys


def _encode_audio() -> tuple[list[bytes], list[int]]:
    ctx = av.CodecContext.create("libopus", "w")
    ctx.sample_rate = AUDIO_RATE
    ctx.format = "s16"
    ctx.layout = "mono"
    ctx.bit_rate = 48000
    ctx.time_base = fractions.Fraction(1, AUDIO_RATE)
    ctx.options = {"application": "voip", "frame_duration": "20"}
    tone = struct.pack(
        f"<{AUDIO_SAMPLES}h",
        *(int(8000 * math.sin(2 * math.pi * 440 * i / AUDIO_RATE)) for i in range(AUDIO_SAMPLES)),
    )
    silence = bytes(2 * AUDIO_SAMPLES)
    packets: list[bytes] = []
    for i in range(AUDIO_PACKETS + 2):
        frame = av.AudioFrame(format="s16", layout="mono", samples=AUDIO_SAMPLES)
        on = (i * AUDIO_SAMPLES // AUDIO_RATE) % 2 == 0
        frame.planes[0].update(tone if on else silence)
        frame.sample_rate = AUDIO_RATE
        frame.pts = i * AUDIO_SAMPLES
        frame.time_base = ctx.time_base
        packets.extend(bytes(p) for p in ctx.encode(frame))
    packets.extend(bytes(p) for p in ctx.encode(None))
    packets = packets[:AUDIO_PACKETS]
    levels = [
        TONE_LEVEL if (i * AUDIO_SAMPLES // AUDIO_RATE) % 2 == 0 else 127
        for i in range(len(packets))
    ]
    return packets, levels


def load_clip(cache_dir: Path) -> Clip:
    """The cached clip, encoding it first if needed (a few seconds, once)."""
    folder = cache_dir / f"media-clip-v{VERSION}"
    vpath, apath = folder / "video.bin", folder / "audio.bin"
    if not (vpath.exists() and apath.exists()):
        folder.mkdir(parents=True, exist_ok=True)
        video, keys = _encode_video()
        audio, levels = _encode_audio()
        _write_records(vpath.with_suffix(".tmp"), video, [int(k) for k in keys])
        _write_records(apath.with_suffix(".tmp"), audio, levels)
        vpath.with_suffix(".tmp").rename(vpath)
        apath.with_suffix(".tmp").rename(apath)
    video, vflags = _read_records(vpath)
    audio, aflags = _read_records(apath)
    return Clip(video, [bool(f) for f in vflags], audio, aflags)


def check_clip(clip: Clip) -> list[str]:
    """Decode the clip and read every index back; a list of problems (empty: fine)."""
    problems: list[str] = []
    ctx = av.CodecContext.create("libvpx", "r")
    for i, data in enumerate(clip.video):
        frames = ctx.decode(av.Packet(data))
        if len(frames) != 1:
            problems.append(f"frame {i}: {len(frames)} decoded")
            continue
        got = read_index(frames[0])  # type: ignore[arg-type]
        if got != i:
            problems.append(f"frame {i}: read {got}")
    keys = [i for i, k in enumerate(clip.keyframes) if k]
    if keys[:SECONDS] != list(range(0, FRAMES, KEYFRAME_INTERVAL))[:SECONDS]:
        problems.append(f"keyframes at {keys[:12]}")
    return problems
