"""The composite: one MP4 of a whole recording, for clerks who want "the meeting as one video".

A recording's directory holds one WebM file per track, exactly as the SFU forwarded it
(``recordings/manifest.py``). No clerk's player can show thirty synchronised files, so a
background job, after the meeting and never on the live path, decodes every track and
encodes ``composite.mp4`` (H.264 via libx264 + AAC):

* audio: every audio track placed at its ``start_offset`` and by its own timestamps (a gap,
  a muted site, stays silent), summed with a soft limiter; AAC 48 kHz stereo 96 kbit/s;
* video: a canvas at a fixed frame rate, either ``"grid"`` (every site) or ``"speaker"``
  (the loudest site large, chosen from audio levels over ~1.5 s with hysteresis, and up to
  four others as thumbnails). A screen share takes the main area (the first tile of a
  grid). A site without a picture (camera off or paused) gets a tile with its name. Names
  are drawn with Pillow in DejaVu Sans (Vietnamese diacritics), rendered once per name and
  size; all per-frame work is numpy and swscale.

It is one streaming pass over all tracks at once, so memory does not grow with the
meeting's length. Audio runs half a second ahead of video so the speaker choice can look
a little ahead, which a live switcher cannot. The file is written under a temporary name
and renamed at the end. ``python -m recordings.composite DIR`` is how the server runs it
(a subprocess at low priority): one JSON line per progress update on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import signal
import sys
import time
import unicodedata
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, NamedTuple

import av
import av.error
import numpy as np
import numpy.typing as npt
from av.audio.frame import AudioFrame
from av.audio.resampler import AudioResampler
from av.container import InputContainer
from av.video.frame import VideoFrame
from PIL import Image, ImageDraw, ImageFont

from recordings.manifest import MANIFEST_NAME, Manifest, TrackEntry, read_manifest

__all__ = ["COMPOSITE_NAME", "Layout", "Rect", "compose", "grid_rects", "main", "speaker_rects"]

log = logging.getLogger(__name__)

COMPOSITE_NAME = "composite.mp4"
TEMP_NAME = ".composite.mp4.tmp"  # hidden; a crashed run's leftover is replaced by the next

Layout = Literal["speaker", "grid"]
Image8 = npt.NDArray[np.uint8]
Samples = npt.NDArray[np.float32]  # (2, n): stereo, planar

# --- output ------------------------------------------------------------------------------
AUDIO_RATE = 48_000
AUDIO_BITRATE = 96_000
AAC_FRAME = 1024
X264_PRESET = "veryfast"
X264_CRF = 23
ENCODER_THREADS = 2  # the job shares a 2-core server: never more
KEYFRAME_SECONDS = 4  # seeking in a long meeting

# --- media handling ----------------------------------------------------------------------
AUDIO_SNAP = AUDIO_RATE // 100  # timestamps this close to the previous chunk's end: contiguous
CAMERA_HOLD = 2.0  # seconds a camera's last frame stays up; longer without one: "no video"
LIMITER_KNEE = 0.8  # the mix is linear up to here, then bends smoothly towards 1.0

# --- speaker choice ----------------------------------------------------------------------
WINDOW_BEFORE = 1.0  # seconds of level history behind the frame...
WINDOW_AHEAD = 0.5  # ...and ahead of it (audio is decoded that far ahead of video)
SPEECH_ENERGY = 10 ** (-45 / 10)  # mean square of -45 dBFS: quieter is nobody speaking
SWITCH_RATIO = 2.0  # a new speaker must be 3 dB louder than the one shown...
MIN_DWELL = 2.0  # ...who stays at least this long
MAX_THUMBNAILS = 4

# --- drawing -----------------------------------------------------------------------------
GAP = 4
BACKGROUND = (18, 20, 24)
TILE_BACKGROUND = (0, 0, 0)
PLACEHOLDER_BACKGROUND = (44, 52, 64)
BAND_RGB = (0, 0, 0)
BAND_ALPHA = 150  # of 256
TEXT_RGB = (255, 255, 255)
MIN_FONT = 9
FONT_PATHS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
)
PROGRESS_INTERVAL = 0.25  # seconds of wall time between progress calls


class Rect(NamedTuple):
    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True, slots=True)
class _Result:
    path: Path
    media_seconds: float
    wall_seconds: float


# --- manifest ----------------------------------------------------------------------------


def _load_manifest(directory: Path) -> Manifest:
    """The manifest, or FileNotFoundError / ValueError saying clearly what is wrong."""
    path = directory / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no manifest (not a recording directory?)")
    try:
        manifest = read_manifest(directory)
    except ValueError as exc:  # JSONDecodeError, wrong version
        raise ValueError(f"{path}: invalid manifest: {exc}") from exc
    except (TypeError, KeyError, AttributeError) as exc:  # missing or unknown fields
        raise ValueError(f"{path}: invalid manifest: {exc!r}") from exc
    for track in manifest.tracks:
        _check_track(path, track)
    return manifest


def _check_track(path: Path, track: TrackEntry) -> None:
    if track.kind not in ("audio", "video") or track.source not in ("camera", "screen"):
        raise ValueError(f"{path}: track {track.id!r}: bad kind/source")
    if not isinstance(track.start_offset, int | float) or not isinstance(
        track.duration, int | float
    ):
        raise ValueError(f"{path}: track {track.id!r}: start_offset/duration not numbers")
    file = Path(track.file)
    if file.is_absolute() or ".." in file.parts or not track.file:
        raise ValueError(f"{path}: track {track.id!r}: file {track.file!r} outside the directory")


def _recording_seconds(manifest: Manifest) -> float:
    if manifest.duration_seconds > 0:
        return float(manifest.duration_seconds)
    ends = [max(0.0, t.start_offset) + max(0.0, t.duration) for t in manifest.tracks]
    return max(ends, default=0.0)


# --- reading tracks ----------------------------------------------------------------------


class _Track:
    """A track's file, demuxed and decoded lazily; times in seconds of the recording."""

    def __init__(self, entry: TrackEntry, path: Path, index: int) -> None:
        self.entry = entry
        self.index = index  # in the manifest: sites keep the order they joined in
        self.start = max(0.0, float(entry.start_offset))
        self.end = self.start + max(0.0, float(entry.duration))
        self._container: InputContainer = av.open(str(path))
        if not any(stream.type == entry.kind for stream in self._container.streams):
            self._container.close()
            raise ValueError(f"no {entry.kind} stream in {entry.file}")
        self._first_pts: int | None = None
        self.errors = 0

    def spans(self, t: float) -> bool:
        """Whether the recording's time ``t`` lies within the track (first to last frame)."""
        return self.start - 0.05 <= t <= self.end + 0.05

    def close(self) -> None:
        self._container.close()

    def _seconds(self, pts: int, time_base: Fraction) -> float:
        assert self._first_pts is not None
        return self.start + float((pts - self._first_pts) * time_base)

    def _note_first(self, pts: int | None) -> None:
        if self._first_pts is None and pts is not None:
            self._first_pts = pts

    def _timed_frames(self, stream: Any) -> Iterator[tuple[float | None, Any]]:
        """Every decoded frame of ``stream`` with its time in the recording (None while
        no timestamp is known). A truncated file ends the frames where it breaks (what
        came before stands); a packet that does not decode is counted and skipped."""
        packets = self._container.demux(stream)
        time_base = stream.time_base or Fraction(1, 1000)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.error.FFmpegError as exc:
                log.warning("%s: demuxing stopped: %s", self.entry.file, exc)
                return
            self._note_first(packet.pts)
            try:
                frames = packet.decode()
            except av.error.FFmpegError as exc:
                self._decode_error(exc)
                continue
            for frame in frames:
                pts = frame.pts if frame.pts is not None else packet.pts
                known = pts is not None and self._first_pts is not None
                yield (self._seconds(pts, time_base) if known else None), frame

    def _decode_error(self, exc: av.error.FFmpegError) -> None:
        self.errors += 1
        if self.errors in (1, 10, 100, 1000):
            log.warning("%s: decoding error %d: %s", self.entry.file, self.errors, exc)


class _VideoTrack(_Track):
    """The latest frame at or before a time, converted to RGB only when shown."""

    def __init__(self, entry: TrackEntry, path: Path, index: int) -> None:
        super().__init__(entry, path, index)
        self._stream = self._container.streams.video[0]
        self._stream.codec_context.thread_count = 1  # many decoders, 2 cores: no pools
        self._frames = self._decode()
        self._next: tuple[float, VideoFrame] | None = None
        self._done = False
        self.current: tuple[float, VideoFrame] | None = None
        self._pictures: dict[tuple[int, int], Image8] = {}

    def _decode(self) -> Iterator[tuple[float, VideoFrame]]:
        for seconds, frame in self._timed_frames(self._stream):
            if seconds is not None:
                yield seconds, frame

    def advance(self, t: float) -> None:
        """Make ``current`` the last frame at or before ``t`` (frames in between are skipped)."""
        while not self._done:
            if self._next is None:
                self._next = next(self._frames, None)
                if self._next is None:
                    self._done = True
                    return
            if self._next[0] > t:
                return
            self.current, self._next = self._next, None
            self._pictures.clear()

    def frame_at(self, t: float, hold: float) -> VideoFrame | None:
        """The frame to show at ``t``: None outside the track or after ``hold`` s without one."""
        if self.current is None or not self.spans(t) or t - self.current[0] > hold:
            return None
        return self.current[1]

    def picture(self, width: int, height: int) -> Image8:
        """The current frame scaled to ``width`` x ``height``, RGB (cached until the next frame)."""
        assert self.current is not None
        key = (width, height)
        picture = self._pictures.get(key)
        if picture is None:
            # Scaling in YUV, then converting at the final size, is several times faster
            # in swscale than scaling straight to RGB.
            scaled = self.current[1].reformat(
                width=width, height=height, format="yuv420p", interpolation="AREA"
            )
            picture = np.asarray(scaled.to_ndarray(format="rgb24"), dtype=np.uint8)
            self._pictures[key] = picture
        return picture


class _AudioTrack(_Track):
    """Decoded audio as blocks of the recording's timeline: stereo float, 48 kHz."""

    def __init__(self, entry: TrackEntry, path: Path, index: int) -> None:
        super().__init__(entry, path, index)
        self._stream = self._container.streams.audio[0]
        self._resampler = AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE)
        self._chunks = self._decode()
        self._pending: deque[tuple[int, Samples]] = deque()  # (first sample, samples)
        self._end: int | None = None  # one past the last sample placed
        self._done = False

    def _decode(self) -> Iterator[tuple[int | None, Samples]]:
        for seconds, frame in self._timed_frames(self._stream):
            position = None if seconds is None else round(seconds * AUDIO_RATE)
            samples = self._resample(frame)
            if samples.shape[1]:
                yield position, samples
        tail = self._resample(None)
        if tail.shape[1]:
            yield None, tail

    def _resample(self, frame: AudioFrame | None) -> Samples:
        out = [
            np.asarray(f.to_ndarray(), dtype=np.float32) for f in self._resampler.resample(frame)
        ]
        if not out:
            return np.zeros((2, 0), dtype=np.float32)
        return out[0] if len(out) == 1 else np.concatenate(out, axis=1)

    def _place(self, position: int | None, samples: Samples) -> None:
        """Queue a decoded chunk at its timestamp; jitter snaps, a real gap stays silent."""
        end = self._end
        if position is None or (end is not None and abs(position - end) <= AUDIO_SNAP):
            position = end if end is not None else round(self.start * AUDIO_RATE)
        elif end is not None and position < end:  # overlaps what is placed: keep the new part
            samples = samples[:, end - position :]
            position = end
        if samples.shape[1]:
            self._pending.append((position, samples))
            self._end = position + samples.shape[1]

    def read(self, start: int, count: int) -> Samples | None:
        """Samples ``start`` .. ``start + count`` of the recording; None if all silent."""
        stop = start + count
        while not self._done and (self._end is None or self._end < stop):
            chunk = next(self._chunks, None)
            if chunk is None:
                self._done = True
            else:
                self._place(*chunk)
        out: Samples | None = None
        while self._pending:
            position, samples = self._pending[0]
            if position >= stop:
                break
            length = samples.shape[1]
            lo, hi = max(start, position), min(stop, position + length)
            if hi > lo:
                if out is None:
                    out = np.zeros((2, count), dtype=np.float32)
                out[:, lo - start : hi - start] = samples[:, lo - position : hi - position]
            if position + length <= stop:
                self._pending.popleft()
            else:
                break
        return out


def _open_tracks(
    directory: Path, manifest: Manifest
) -> tuple[list[_VideoTrack], list[_AudioTrack]]:
    """Every track that can be opened; a missing or unreadable file is logged and left out."""
    videos: list[_VideoTrack] = []
    audios: list[_AudioTrack] = []
    for index, entry in enumerate(manifest.tracks):
        path = directory / entry.file
        try:
            if entry.kind == "video":
                videos.append(_VideoTrack(entry, path, index))
            else:
                audios.append(_AudioTrack(entry, path, index))
        except (OSError, ValueError, av.error.FFmpegError) as exc:
            log.warning("%s: track %s left out: %s", directory, entry.id, exc)
    return videos, audios


# --- who is in the meeting ---------------------------------------------------------------


@dataclass(slots=True)
class _Participant:
    """One site's endpoint: its cameras and microphones (a screen share is apart)."""

    key: str
    name: str
    order: int
    cameras: list[_VideoTrack] = field(default_factory=list)
    audio: list[_AudioTrack] = field(default_factory=list)

    def present(self, t: float) -> bool:
        return any(track.spans(t) for track in (*self.cameras, *self.audio))

    def camera_at(self, t: float) -> _VideoTrack | None:
        """The camera with the freshest frame at ``t``, None if the site shows no picture."""
        live = [c for c in self.cameras if c.frame_at(t, CAMERA_HOLD) is not None]
        return max(live, key=lambda c: c.current[0] if c.current else 0.0, default=None)


def _participants(videos: list[_VideoTrack], audios: list[_AudioTrack]) -> list[_Participant]:
    by_key: dict[str, _Participant] = {}
    tracks: list[_Track] = [*videos, *audios]
    for track in sorted(tracks, key=lambda track: track.index):
        entry = track.entry
        if entry.source == "screen":
            continue
        participant = by_key.get(entry.participant)
        if participant is None:
            name = entry.unit_name or entry.participant
            participant = by_key[entry.participant] = _Participant(
                entry.participant, name, len(by_key)
            )
        if isinstance(track, _VideoTrack):
            participant.cameras.append(track)
        elif isinstance(track, _AudioTrack):
            participant.audio.append(track)
    return list(by_key.values())


# --- speaker choice ----------------------------------------------------------------------


class _SpeakerChooser:
    """The participant to show large: the loudest over a window, with hysteresis.

    Levels are mean squares per frame interval, pushed by the audio side up to
    ``WINDOW_AHEAD`` before the frame being drawn. A newcomer takes over once the window
    says it is ``SWITCH_RATIO`` louder than the one shown, who keeps the place at least
    ``MIN_DWELL``; silence changes nothing.
    """

    def __init__(self, count: int, fps: int) -> None:
        self._before = round(WINDOW_BEFORE * fps)
        self._ahead = round(WINDOW_AHEAD * fps)
        self._min_dwell = round(MIN_DWELL * fps)
        self._levels: deque[tuple[int, npt.NDArray[np.float64]]] = deque()
        self.current: int | None = None
        self._since = 0
        self.last_active = np.full(count, -1, dtype=np.int64)  # the tick each last spoke

    @property
    def lookahead(self) -> int:
        return self._ahead

    def push(self, tick: int, energies: npt.NDArray[np.float64]) -> None:
        self._levels.append((tick, energies))

    def choose(self, tick: int, present: Sequence[bool]) -> int | None:
        while self._levels and self._levels[0][0] < tick - self._before:
            self._levels.popleft()
        window = [e for k, e in self._levels if k <= tick + self._ahead]
        if not window or not len(present):
            return self.current
        level = np.mean(window, axis=0) * np.asarray(present, dtype=np.float64)
        speaking = level >= SPEECH_ENERGY
        self.last_active[speaking] = tick
        loudest = int(np.argmax(level))
        current = self.current
        if current is not None and not present[current]:
            current = None
        if not speaking[loudest]:
            self.current = current
        elif current is None or (
            loudest != current
            and tick - self._since >= self._min_dwell
            and level[loudest] >= SWITCH_RATIO * level[current]
        ):
            if loudest != current:
                self._since = tick
            self.current = loudest
        else:
            self.current = current
        return self.current


# --- geometry ----------------------------------------------------------------------------


def grid_rects(count: int, width: int, height: int) -> list[Rect]:
    """Tiles for ``count`` sites: 1, 2x1, 2x2, 3x2, 3x3...; a short last row is centred."""
    if count <= 0:
        return []
    cols = math.ceil(math.sqrt(count))
    rows = math.ceil(count / cols)
    cell_w = (width - GAP * (cols + 1)) // cols
    cell_h = (height - GAP * (rows + 1)) // rows
    top = (height - rows * cell_h - (rows - 1) * GAP) // 2
    rects = []
    for i in range(count):
        row, col = divmod(i, cols)
        in_row = min(cols, count - row * cols)
        left = (width - in_row * cell_w - (in_row - 1) * GAP) // 2
        rects.append(Rect(left + col * (cell_w + GAP), top + row * (cell_h + GAP), cell_w, cell_h))
    return rects


def speaker_rects(thumbnails: int, width: int, height: int) -> tuple[Rect, list[Rect]]:
    """The main area over a centred strip of 16:9 thumbnails (a fifth of the height)."""
    if thumbnails <= 0:
        return Rect(0, 0, width, height), []
    strip = height // 5
    thumb_h = strip - GAP
    thumb_w = min(thumb_h * 16 // 9, (width - GAP * (MAX_THUMBNAILS + 1)) // MAX_THUMBNAILS)
    main = Rect(0, 0, width, height - strip - GAP)
    left = (width - thumbnails * thumb_w - (thumbnails - 1) * GAP) // 2
    y = height - strip
    return main, [Rect(left + i * (thumb_w + GAP), y, thumb_w, thumb_h) for i in range(thumbnails)]


def _fit(src_w: int, src_h: int, rect: Rect) -> Rect:
    """The largest ``src_w`` : ``src_h`` rectangle centred in ``rect`` (letterbox)."""
    scale = min(rect.w / max(1, src_w), rect.h / max(1, src_h))
    w = max(2, min(rect.w, round(src_w * scale)))
    h = max(2, min(rect.h, round(src_h * scale)))
    return Rect(rect.x + (rect.w - w) // 2, rect.y + (rect.h - h) // 2, w, h)


# --- drawing -----------------------------------------------------------------------------

_Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@dataclass(frozen=True, slots=True)
class _Label:
    """A name on a dark band, premultiplied: ``out = (under * keep + ink) >> 8``."""

    ink: npt.NDArray[np.uint16]  # (h, w, 3)
    keep: npt.NDArray[np.uint16]  # (h, w, 1): 256 - alpha


class _Painter:
    """The canvas, and the names drawn once per name and size (Pillow), pasted with numpy."""

    def __init__(self, width: int, height: int) -> None:
        self.canvas: Image8 = np.zeros((height, width, 3), dtype=np.uint8)
        self._background: Image8 = np.empty_like(self.canvas)
        self._background[:] = BACKGROUND
        self._tile: Image8 = np.empty_like(self.canvas)
        self._tile[:] = TILE_BACKGROUND
        self._fonts: dict[int, _Font] = {}
        self._labels: dict[tuple[str, int, int], _Label] = {}
        self._placeholders: dict[tuple[str, int, int], Image8] = {}
        self._font_path = next((p for p in FONT_PATHS if Path(p).is_file()), None)
        if self._font_path is None:
            log.warning(
                "DejaVu Sans not found (%s): names drawn in Pillow's default font", FONT_PATHS
            )

    def clear(self) -> None:
        np.copyto(self.canvas, self._background)  # far faster than broadcasting a tuple

    def video(self, rect: Rect, track: _VideoTrack, name: str) -> None:
        """The track's current frame letterboxed in ``rect``, its name on a band at the
        bottom of the picture (across the whole tile if the picture is narrow)."""
        assert track.current is not None
        frame = track.current[1]
        tile = self.canvas[rect.y : rect.y + rect.h, rect.x : rect.x + rect.w]
        tile[:] = self._tile[: rect.h, : rect.w]
        box = _fit(frame.width, frame.height, rect)
        self.canvas[box.y : box.y + box.h, box.x : box.x + box.w] = track.picture(box.w, box.h)
        band = max(18, min(40, round(rect.h * 0.14)))
        left, width = (box.x, box.w) if box.w >= 0.6 * rect.w else (rect.x, rect.w)
        self._band(Rect(left, box.y + box.h - min(band, box.h), width, min(band, box.h)), name)

    def _band(self, area: Rect, name: str) -> None:
        label = self._label(name, area.w, area.h)
        region = self.canvas[area.y : area.y + area.h, area.x : area.x + area.w]
        region[:] = ((region * label.keep + label.ink) >> 8).astype(np.uint8)

    def placeholder(self, rect: Rect, name: str) -> None:
        """A site with no picture: its name, centred on a plain background."""
        key = (name, rect.w, rect.h)
        tile = self._placeholders.get(key)
        if tile is None:
            tile = self._placeholders[key] = self._render_placeholder(name, rect.w, rect.h)
        self.canvas[rect.y : rect.y + rect.h, rect.x : rect.x + rect.w] = tile

    def _font(self, size: int) -> _Font:
        font = self._fonts.get(size)
        if font is None:
            if self._font_path is not None:
                font = ImageFont.truetype(self._font_path, size)
            else:
                font = ImageFont.load_default(size)
            self._fonts[size] = font
        return font

    def _fitted(self, text: str, width: float, size: int) -> tuple[_Font, str]:
        """The largest font from ``size`` down that fits; at the smallest, text cut with '…'."""
        for s in range(size, MIN_FONT - 1, -1):
            font = self._font(s)
            if font.getlength(text) <= width:
                return font, text
        font = self._font(MIN_FONT)
        while text and font.getlength(text + "…") > width:
            text = text[:-1]
        return font, (text.rstrip() + "…") if text else ""

    def _label(self, name: str, width: int, height: int) -> _Label:
        key = (name, width, height)
        label = self._labels.get(key)
        if label is None:
            if len(self._labels) > 512:  # sizes change with the number of sites
                self._labels.clear()
            label = self._labels[key] = self._render_label(name, width, height)
        return label

    def _render_label(self, name: str, width: int, height: int) -> _Label:
        pad = max(4, height // 3)
        font, text = self._fitted(_nfc(name), width - 2 * pad, round(height * 0.6))
        mask = Image.new("L", (width, height), 0)
        ImageDraw.Draw(mask).text((pad, height / 2), text, font=font, fill=255, anchor="lm")
        m = np.asarray(mask, dtype=np.uint16)[:, :, None]
        alpha = BAND_ALPHA + ((256 - BAND_ALPHA) * m) // 255
        colour = (
            np.array(BAND_RGB, np.uint16) * (255 - m) + np.array(TEXT_RGB, np.uint16) * m
        ) // 255
        return _Label(ink=(colour * alpha).astype(np.uint16), keep=(256 - alpha).astype(np.uint16))

    def _render_placeholder(self, name: str, width: int, height: int) -> Image8:
        image = Image.new("RGB", (width, height), PLACEHOLDER_BACKGROUND)
        size = max(MIN_FONT, min(40, round(height * 0.1)))
        lines, font = self._wrap(_nfc(name), width * 0.86, size)
        draw = ImageDraw.Draw(image)
        step = round(size * 1.3)
        y = height / 2 - step * (len(lines) - 1) / 2
        for line in lines:
            draw.text((width / 2, y), line, font=font, fill=TEXT_RGB, anchor="mm")
            y += step
        return np.asarray(image, dtype=np.uint8)

    def _wrap(self, text: str, width: float, size: int) -> tuple[list[str], _Font]:
        """Greedy word wrap into at most 3 lines, shrinking the font if a word is too long."""
        words = text.split() or [""]
        for s in range(size, MIN_FONT - 1, -1):
            font = self._font(s)
            lines: list[str] = []
            for word in words:
                if lines and font.getlength(f"{lines[-1]} {word}") <= width:
                    lines[-1] = f"{lines[-1]} {word}"
                else:
                    lines.append(word)
            if len(lines) <= 3 and all(font.getlength(line) <= width for line in lines):
                return lines, font
        font, last = self._fitted(" ".join(lines[2:]), width, MIN_FONT)
        return [*lines[:2], last], font


def _nfc(text: str) -> str:
    """Precomposed letters: DejaVu has a glyph for each Vietnamese letter, Pillow stacks
    combining marks badly without a shaping library."""
    return unicodedata.normalize("NFC", text)


# --- encoding ----------------------------------------------------------------------------


class _Encoder:
    """The MP4: H.264 (libx264, ``X264_PRESET``, ≤ 2 threads) and AAC, muxed as they come."""

    def __init__(self, path: Path, width: int, height: int, fps: int) -> None:
        self._container = av.open(
            str(path), "w", format="mp4", container_options={"movflags": "+faststart"}
        )
        self._video = self._container.add_stream("libx264", rate=fps)
        self._video.width, self._video.height, self._video.pix_fmt = width, height, "yuv420p"
        context = self._video.codec_context
        context.time_base = Fraction(1, fps)
        context.thread_type = "FRAME"
        context.thread_count = ENCODER_THREADS
        context.gop_size = KEYFRAME_SECONDS * fps
        context.options = {"preset": X264_PRESET, "crf": str(X264_CRF)}
        self._audio = self._container.add_stream("aac", rate=AUDIO_RATE)
        self._audio.layout = "stereo"
        self._audio.bit_rate = AUDIO_BITRATE
        self._fps_base = Fraction(1, fps)
        self._frames = 0
        self._samples = 0
        self._fifo: Samples = np.zeros((2, 0), dtype=np.float32)

    def video(self, rgb: Image8) -> None:
        frame = VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
            format="yuv420p", interpolation="BILINEAR"
        )
        frame.pts, frame.time_base = self._frames, self._fps_base
        self._frames += 1
        self._container.mux(self._video.encode(frame))

    def audio(self, samples: Samples) -> None:
        fifo = np.concatenate((self._fifo, samples), axis=1) if self._fifo.shape[1] else samples
        whole = fifo.shape[1] // AAC_FRAME * AAC_FRAME
        for start in range(0, whole, AAC_FRAME):
            self._encode_audio(fifo[:, start : start + AAC_FRAME])
        self._fifo = fifo[:, whole:]

    def _encode_audio(self, samples: Samples) -> None:
        frame = AudioFrame.from_ndarray(
            np.ascontiguousarray(samples), format="fltp", layout="stereo"
        )
        frame.sample_rate = AUDIO_RATE
        frame.pts, frame.time_base = self._samples, Fraction(1, AUDIO_RATE)
        self._samples += samples.shape[1]
        self._container.mux(self._audio.encode(frame))

    def finish(self) -> None:
        if self._fifo.shape[1]:
            self._encode_audio(self._fifo)
        self._container.mux(self._audio.encode(None))
        self._container.mux(self._video.encode(None))
        self._container.close()

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._container.close()


def _soft_clip(mix: Samples) -> Samples:
    """Linear up to ``LIMITER_KNEE``, then a tanh bend: the sum of loud sites never clips."""
    magnitude = np.abs(mix)
    over = magnitude > LIMITER_KNEE
    if over.any():
        room = 1.0 - LIMITER_KNEE
        bent = LIMITER_KNEE + room * np.tanh((magnitude[over] - LIMITER_KNEE) / room)
        mix[over] = np.copysign(bent, mix[over]).astype(np.float32)
    return mix


# --- the job -----------------------------------------------------------------------------


class _Progress:
    """``progress(fraction)``: monotonic, at most every ``PROGRESS_INTERVAL``, 1.0 only at the end."""

    def __init__(self, callback: Callable[[float], None] | None) -> None:
        self._callback = callback
        self._last_call = -math.inf
        self._last_value = -1.0

    def update(self, fraction: float, *, final: bool = False) -> None:
        if self._callback is None:
            return
        value = 1.0 if final else min(0.99, max(0.0, fraction))
        now = time.monotonic()
        if value <= self._last_value or (not final and now - self._last_call < PROGRESS_INTERVAL):
            return
        self._last_call, self._last_value = now, value
        self._callback(value)


class _Job:
    """One pass over the timeline: audio ticks ``lookahead`` ahead of video ticks."""

    def __init__(
        self,
        manifest: Manifest,
        videos: list[_VideoTrack],
        audios: list[_AudioTrack],
        layout: Layout,
        width: int,
        height: int,
        fps: int,
        seconds: float,
    ) -> None:
        self.title = manifest.title
        self.layout = layout
        self.width, self.height, self.fps = width, height, fps
        self.seconds = seconds
        self.ticks = max(1, math.ceil(seconds * fps - 1e-9))
        self.total_samples = round(seconds * AUDIO_RATE)
        self.videos = videos
        self.audios = audios
        self.screens = [v for v in videos if v.entry.source == "screen"]
        self.people = _participants(videos, audios)
        self._owner = {id(a): p.order for p in self.people for a in p.audio}
        self.chooser = _SpeakerChooser(len(self.people), fps)
        self.painter = _Painter(width, height)

    def run(self, encoder: _Encoder, progress: _Progress) -> None:
        lookahead = self.chooser.lookahead
        for tick in range(self.ticks + lookahead):
            if tick < self.ticks:
                encoder.audio(self._audio_tick(tick))
            shown = tick - lookahead
            if shown >= 0:
                encoder.video(self._video_tick(shown))
                progress.update((shown + 1) / self.ticks)

    def _audio_tick(self, tick: int) -> Samples:
        start = min(self.total_samples, round(tick * AUDIO_RATE / self.fps))
        last = tick == self.ticks - 1
        stop = min(self.total_samples, round((tick + 1) * AUDIO_RATE / self.fps))
        stop = self.total_samples if last else stop
        count = max(0, stop - start)
        mix = np.zeros((2, count), dtype=np.float32)
        energies = np.zeros(len(self.people), dtype=np.float64)
        for track in self.audios:
            block = track.read(start, count)
            if block is None:
                continue
            mix += block
            owner = self._owner.get(id(track))
            if owner is not None and count:
                flat = block.ravel()
                energies[owner] += float(np.dot(flat, flat)) / flat.size
        self.chooser.push(tick, energies)
        return _soft_clip(mix)

    def _video_tick(self, tick: int) -> Image8:
        t = tick / self.fps
        for track in self.videos:
            track.advance(t)
        present = [p.present(t) for p in self.people]
        speaker = self.chooser.choose(tick, present)
        people = [p for p in self.people if present[p.order]]
        screens = [s for s in self.screens if s.spans(t)]
        self.painter.clear()
        if self.layout == "grid":
            self._draw_grid(t, screens, people)
        else:
            self._draw_speaker(t, screens, people, speaker)
        return self.painter.canvas

    def _draw_grid(self, t: float, screens: list[_VideoTrack], people: list[_Participant]) -> None:
        rects = grid_rects(len(screens) + len(people), self.width, self.height)
        for rect, screen in zip(rects, screens, strict=False):
            self._draw_screen(rect, screen, t)
        for rect, person in zip(rects[len(screens) :], people, strict=True):
            self._draw_person(rect, person, t)
        if not rects:
            self.painter.placeholder(Rect(0, 0, self.width, self.height), self.title)

    def _draw_speaker(
        self, t: float, screens: list[_VideoTrack], people: list[_Participant], speaker: int | None
    ) -> None:
        main_person = None
        if not screens:
            main_person = next((p for p in people if p.order == speaker), None)
            if main_person is None:  # nobody has spoken yet: the first site with a picture
                main_person = next(
                    (p for p in people if p.camera_at(t)), people[0] if people else None
                )
        others = [p for p in people if p is not main_person]
        if len(others) > MAX_THUMBNAILS:  # the latest to speak, shown in a stable order
            last = self.chooser.last_active
            others = sorted(others, key=lambda p: (-last[p.order], p.order))[:MAX_THUMBNAILS]
            others.sort(key=lambda p: p.order)
        main, thumbs = speaker_rects(len(others), self.width, self.height)
        if screens:
            self._draw_screen(main, max(screens, key=lambda s: s.start), t)
        elif main_person is not None:
            self._draw_person(main, main_person, t)
        else:
            self.painter.placeholder(main, self.title)
        for rect, person in zip(thumbs, others, strict=True):
            self._draw_person(rect, person, t)

    def _draw_person(self, rect: Rect, person: _Participant, t: float) -> None:
        camera = person.camera_at(t)
        if camera is None:
            self.painter.placeholder(rect, person.name)
        else:
            self.painter.video(rect, camera, person.name)

    def _draw_screen(self, rect: Rect, screen: _VideoTrack, t: float) -> None:
        # A shared screen may send a frame only when it changes: its last one stands.
        name = screen.entry.unit_name or screen.entry.participant
        if screen.frame_at(t, math.inf) is None:
            self.painter.placeholder(rect, name)
        else:
            self.painter.video(rect, screen, name)


def _compose(
    directory: Path,
    layout: Layout,
    width: int,
    height: int,
    fps: int,
    progress: Callable[[float], None] | None,
) -> _Result:
    began = time.monotonic()
    if layout not in ("speaker", "grid"):
        raise ValueError(f"layout must be 'speaker' or 'grid', not {layout!r}")
    if width < 16 or height < 16 or width % 2 or height % 2:
        raise ValueError(f"canvas {width}x{height}: width and height must be even, at least 16")
    if not 1 <= fps <= 60:
        raise ValueError(f"fps {fps}: must be 1..60")
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such recording directory")
    manifest = _load_manifest(directory)
    seconds = _recording_seconds(manifest)
    if seconds <= 0:
        raise ValueError(f"{directory / MANIFEST_NAME}: the recording has no duration")
    reporter = _Progress(progress)
    reporter.update(0.0)
    final, temp = directory / COMPOSITE_NAME, directory / TEMP_NAME
    videos, audios = _open_tracks(directory, manifest)
    log.info(
        "composite of %s: %.1f s, %d video and %d audio tracks, %s %dx%d@%d",
        directory,
        seconds,
        len(videos),
        len(audios),
        layout,
        width,
        height,
        fps,
    )
    encoder: _Encoder | None = None
    try:
        job = _Job(manifest, videos, audios, layout, width, height, fps, seconds)
        encoder = _Encoder(temp, width, height, fps)
        job.run(encoder, reporter)
        encoder.finish()
        encoder = None
        _fsync(temp)
        os.replace(temp, final)
    except BaseException:
        if encoder is not None:
            encoder.abort()
        temp.unlink(missing_ok=True)
        raise
    finally:
        for track in (*videos, *audios):
            track.close()
    wall = time.monotonic() - began
    log.info("composite of %s done in %.1f s (%.2fx real time)", directory, wall, seconds / wall)
    reporter.update(1.0, final=True)
    return _Result(final, seconds, wall)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def compose(
    directory: Path,
    *,
    layout: Layout = "speaker",
    width: int = 1280,
    height: int = 720,
    fps: int = 15,
    progress: Callable[[float], None] | None = None,
) -> Path:
    """Write ``directory / "composite.mp4"`` (replacing one from an earlier run); return it.

    ``progress`` gets fractions 0..1, increasing, a few times a second at most, 1.0 last.
    FileNotFoundError / ValueError: no directory, no or an invalid manifest, bad arguments.
    A track whose file is missing or unreadable is left out (logged), not fatal.
    """
    return _compose(Path(directory), layout, width, height, fps, progress).path


# --- command line ------------------------------------------------------------------------


def _emit(line: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m recordings.composite DIR``: JSON lines on stdout, exit 1 on a bad input."""
    parser = argparse.ArgumentParser(
        prog="python -m recordings.composite", description="Write a recording's composite.mp4."
    )
    parser.add_argument("directory", type=Path, help="the recording's directory")
    parser.add_argument("--layout", choices=("speaker", "grid"), default="speaker")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=int, default=15)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # The server stops a job with SIGTERM: unwind, so the temporary file is removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    layout: Layout = "grid" if args.layout == "grid" else "speaker"
    try:
        result = _compose(
            args.directory,
            layout,
            args.width,
            args.height,
            args.fps,
            lambda fraction: _emit({"progress": round(fraction, 3)}),
        )
    except (FileNotFoundError, NotADirectoryError, ValueError) as exc:
        sys.stderr.write(f"composite: {exc}".replace("\n", " ") + "\n")
        return 1
    _emit(
        {
            "done": str(result.path),
            "seconds": round(result.wall_seconds, 3),
            "media_seconds": round(result.media_seconds, 3),
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
