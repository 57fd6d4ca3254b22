"""A test pattern and a tone: media whose every frame can be checked at the far end.

`hoinghi join --media test-pattern` publishes these, and the tests compare what
subscribers decode with what was sent. Each video frame carries its index as a
row of black and white blocks (robust to VP8 compression) over a gradient, so
a receiver can rebuild the exact frame it should have got.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import time

import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import AUDIO_PTIME, VIDEO_CLOCK_RATE, MediaStreamError
from av import AudioFrame, VideoFrame

__all__ = ["PatternVideo", "ToneAudio", "frame_error", "read_index"]

BITS = 16
BLOCK = 16  # pixels per bit, square, along the top edge


def _pattern(width: int, height: int, index: int) -> np.ndarray:
    """The luma plane of frame ``index``: a moving gradient and the index in blocks."""
    x = np.arange(width, dtype=np.uint16)[None, :]
    y = np.arange(height, dtype=np.uint16)[:, None]
    luma = ((x + y + 2 * index) % 200 + 28).astype(np.uint8)
    for bit in range(BITS):
        on = (index >> bit) & 1
        luma[0:BLOCK, bit * BLOCK : (bit + 1) * BLOCK] = 235 if on else 16
    return luma


def read_index(frame: VideoFrame) -> int:
    """The index a `PatternVideo` frame carries (block centres, thresholded)."""
    luma = frame.to_ndarray(format="gray")
    half = BLOCK // 2
    value = 0
    for bit in range(BITS):
        if luma[half, bit * BLOCK + half] > 128:
            value |= 1 << bit
    return value


def frame_error(frame: VideoFrame) -> float:
    """Mean absolute luma difference between a decoded frame and the one sent."""
    luma = frame.to_ndarray(format="gray").astype(np.int16)
    expected = _pattern(frame.width, frame.height, read_index(frame)).astype(np.int16)
    return float(np.abs(luma - expected).mean())


class PatternVideo(MediaStreamTrack):
    """``width`` x ``height`` at ``fps``: frame i shows `_pattern(i)`; ``sent[i]`` is
    when frame i was handed to the encoder (for glass-to-glass latency)."""

    kind = "video"

    def __init__(self, width: int = 640, height: int = 360, fps: int = 30) -> None:
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self.index = 0
        self.sent: dict[int, float] = {}
        self._start: float | None = None
        # U and V planes (each height/2 x width/2), stacked as yuv420p rows.
        self._chroma = np.full((height // 2, width), 128, dtype=np.uint8)

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self.index / self.fps
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        i = self.index
        self.index += 1
        luma = _pattern(self.width, self.height, i & 0xFFFF)
        frame = VideoFrame.from_ndarray(
            np.concatenate([luma, self._chroma], axis=0),
            format="yuv420p",
        )
        frame.pts = round(i * VIDEO_CLOCK_RATE / self.fps)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK_RATE)
        self.sent[i & 0xFFFF] = time.monotonic()
        if len(self.sent) > 600:
            self.sent.pop(next(iter(self.sent)))
        return frame


class ToneAudio(MediaStreamTrack):
    """48 kHz mono 20 ms frames: a 440 Hz tone, ``on`` seconds on and ``off`` seconds off."""

    kind = "audio"

    def __init__(self, on: float = 1.0, off: float = 1.0, amplitude: float = 0.2) -> None:
        super().__init__()
        # Not ``self.on``: a track is an event emitter, and ``on`` registers handlers.
        self.tone_seconds, self.pause_seconds, self.amplitude = on, off, amplitude
        self.rate = 48000
        self.samples = int(AUDIO_PTIME * self.rate)
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._pts / self.rate
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        t = self._pts / self.rate
        period = self.tone_seconds + self.pause_seconds
        loud = self.pause_seconds == 0 or (t % period) < self.tone_seconds
        n = np.arange(self._pts, self._pts + self.samples)
        wave = np.sin(2 * math.pi * 440 * n / self.rate) * (self.amplitude * 32767 if loud else 0)
        frame = AudioFrame.from_ndarray(
            wave.astype(np.int16).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = self.rate
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, self.rate)
        self._pts += self.samples
        return frame
