"""Record one received track to disk as it arrives, then join the pieces into one file.

The recorder is a hidden subscriber whose receivers do not decode: for each track
it gets whole encoded frames (VP8) or packets (Opus) with their RTP timestamps.
:class:`TrackWriter` muxes them, as they are, into short WebM segments (PyAV,
codec copy: nothing is decoded or re-encoded), so a crash of the process loses
little: every segment but the open one is a complete, closed file, and the open
one is written out a cluster (at most a second) at a time, so the part of it
that reached the kernel survives a SIGKILL. A segment holds at most
``segment_seconds`` (≤ 10 s) of media: a crash loses at most that much.

:func:`finalize_recording` runs once the recording is over (or after a crash):
for each track it joins the segments into ``<track_id>.webm`` (remux, codec
copy), reading a cut-short last segment up to where it stops, and writes the
manifest (``recordings/manifest.py``). Every step writes a temporary file and
renames it, so running it again after a crash part-way picks up where it stopped,
and running it on a finished directory only reads the manifest back.

Layout of a recording's directory while it records::

    t01/track.json        sidecar: kind, codec, clock rate, start offset, identity
    t01/000000.webm       closed segments
    t01/000001.webm.part  the open segment (renamed to .webm when it is closed)

and once finalized: ``t01.webm``, ``t02.webm``, …, ``manifest.json``.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import math
import os
import re
import struct
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av

from recordings.manifest import MANIFEST_NAME, Manifest, TrackEntry, read_manifest, write_manifest

__all__ = [
    "MAX_SEGMENT_SECONDS",
    "SIDECAR_NAME",
    "TrackWriter",
    "finalize_recording",
    "vp8_keyframe_size",
]

log = logging.getLogger(__name__)

Kind = Literal["audio", "video"]

SIDECAR_NAME = "track.json"
SIDECAR_VERSION = 1
MAX_SEGMENT_SECONDS = 10.0  # the most a crash may lose
CLOCK_RATES: dict[Kind, int] = {"video": 90_000, "audio": 48_000}
CODECS: dict[Kind, str] = {"video": "vp8", "audio": "opus"}
# A discontinuity (a sender restarted with a new random timestamp, a source was
# switched): the RTP timestamp leaps forward by more than this, or back by more than
# BACKWARD_SECONDS, and disagrees with the arrival times by more than a second. The
# track then goes on from the arrival time instead of jumping by hours. Smaller steps
# back are clamped (1 ms after the last frame); a wall-clock step alone (small RTP
# step, big arrival step) changes nothing.
DISCONTINUITY_SECONDS = 10.0
BACKWARD_SECONDS = 1.0

_TIME_BASE = Fraction(1, 1000)  # Matroska's default timestamp scale: milliseconds
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_SEGMENT = re.compile(r"(\d{6})\.webm(\.part)?")
_SOURCES = ("camera", "screen")
_HASH_CHUNK = 1 << 20

# Segment muxer options. `live`: no SeekHead, Cues or Duration to patch when the
# file is closed, so a segment is a valid stream at every cluster boundary. Clusters
# end every second (or 256 KiB, or at a video keyframe past 4 KiB), and
# `flush_packets` hands each finished cluster to the kernel at once: a SIGKILL
# loses the cluster being built, not the segment.
_SEGMENT_OPTIONS = {
    "live": "1",
    "cluster_time_limit": "1000",
    "cluster_size_limit": str(256 * 1024),
    "flush_packets": "1",
}

# The joined file: an ordinary seekable WebM (Cues, Duration), and bit-exact (no
# random UIDs, no library version) so joining the same segments again gives the
# same bytes and the same SHA-256.
_OUTPUT_OPTIONS = {"fflags": "+bitexact"}


def _check_track_id(track_id: str) -> str:
    if not _SAFE_ID.fullmatch(track_id):
        raise ValueError(f"track id {track_id!r}: letters, digits, '-' and '_' only")
    return track_id


def _check_identity(identity: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``identity`` (extra keys kept, for the sidecar), checked for what the
    manifest takes from it."""
    participant = identity.get("participant")
    unit_id = identity.get("unit_id")
    unit_name = identity.get("unit_name")
    source = identity.get("source")
    if not isinstance(participant, str) or not isinstance(unit_name, str):
        raise ValueError("identity needs participant and unit_name (strings)")
    if unit_id is not None and (not isinstance(unit_id, int) or isinstance(unit_id, bool)):
        raise ValueError("identity unit_id is an int or None")
    if source not in _SOURCES:
        raise ValueError(f"identity source is one of {_SOURCES}, not {source!r}")
    try:
        json.dumps(identity)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"identity is not JSON: {exc}") from None
    return dict(identity)


def vp8_keyframe_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) if ``data`` is a VP8 keyframe (RFC 6386 9.1), else None."""
    if len(data) < 10 or data[0] & 1 or data[3:6] != b"\x9d\x01\x2a":
        return None
    width, height = struct.unpack_from("<HH", data, 6)
    return width & 0x3FFF, height & 0x3FFF


# --- stream templates ------------------------------------------------------------------
# `add_stream` would open an encoder per segment; `add_mux_stream` opens none but
# cannot carry the OpusHead that Matroska needs as an Opus track's CodecPrivate
# (RFC 7845 5.1). A stream made from a template (`add_stream_from_template`, opaque)
# copies all parameters, extradata included, and opens nothing. The template is a
# WebM header built here (EBML, a hundred bytes) and opened as an input (~0.1 ms).


def _ebml(element_id: bytes, payload: bytes) -> bytes:
    return element_id + (0x01 << 56 | len(payload)).to_bytes(8, "big") + payload


def _ebml_uint(element_id: bytes, value: int) -> bytes:
    return _ebml(element_id, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def _opus_head(channels: int = 2, pre_skip: int = 0, sample_rate: int = 48_000) -> bytes:
    """An OpusHead (RFC 7845 5.1), channel mapping family 0.

    WebRTC negotiates opus/48000/2 and a browser's decoder skips nothing, so: two
    channels (a mono packet decodes to both), pre-skip 0.
    """
    return struct.pack("<8sBBHIhB", b"OpusHead", 1, channels, pre_skip, sample_rate, 0, 0)


def _template_header(kind: Kind, width: int, height: int) -> bytes:
    header = _ebml(
        b"\x1a\x45\xdf\xa3",
        _ebml_uint(b"\x42\x86", 1)  # EBMLVersion
        + _ebml_uint(b"\x42\xf7", 1)  # EBMLReadVersion
        + _ebml_uint(b"\x42\xf2", 4)  # EBMLMaxIDLength
        + _ebml_uint(b"\x42\xf3", 8)  # EBMLMaxSizeLength
        + _ebml(b"\x42\x82", b"webm")  # DocType
        + _ebml_uint(b"\x42\x87", 4)  # DocTypeVersion
        + _ebml_uint(b"\x42\x85", 2),  # DocTypeReadVersion
    )
    info = _ebml(b"\x15\x49\xa9\x66", _ebml_uint(b"\x2a\xd7\xb1", 1_000_000))  # ms
    track = _ebml_uint(b"\xd7", 1) + _ebml_uint(b"\x73\xc5", 1)  # TrackNumber, TrackUID
    if kind == "video":
        track += (
            _ebml_uint(b"\x83", 1)  # TrackType: video
            + _ebml(b"\x86", b"V_VP8")
            + _ebml(b"\xe0", _ebml_uint(b"\xb0", width) + _ebml_uint(b"\xba", height))
        )
    else:
        track += (
            _ebml_uint(b"\x83", 2)  # TrackType: audio
            + _ebml(b"\x86", b"A_OPUS")
            + _ebml(b"\x63\xa2", _opus_head())  # CodecPrivate
            + _ebml(
                b"\xe1",
                _ebml(b"\xb5", struct.pack(">d", float(CLOCK_RATES["audio"])))
                + _ebml_uint(b"\x9f", 2),
            )
        )
    tracks = _ebml(b"\x16\x54\xae\x6b", _ebml(b"\xae", track))
    cluster = _ebml(b"\x1f\x43\xb6\x75", _ebml_uint(b"\xe7", 0))  # an empty one
    return header + _ebml(b"\x18\x53\x80\x67", info + tracks + cluster)


# --- writing ---------------------------------------------------------------------------


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _as_os_error(exc: Exception, what: str) -> OSError:
    if isinstance(exc, OSError):
        return exc
    code = getattr(exc, "errno", None)
    return OSError(code if isinstance(code, int) and code > 0 else errno.EIO, f"{what}: {exc}")


class _Syncer:
    """fsync closed files on a helper thread, so a slow disk does not stall the event
    loop every few seconds; a failure is raised by the next :meth:`start` or :meth:`wait`."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._thread: threading.Thread | None = None
        self._error: OSError | None = None

    def start(self, paths: list[Path]) -> None:
        self.wait()
        self._thread = threading.Thread(
            target=self._run, args=(paths,), name=f"fsync-{self._name}", daemon=True
        )
        self._thread.start()

    def _run(self, paths: list[Path]) -> None:
        try:
            for path in paths:
                _fsync(path)
        except OSError as exc:
            self._error = exc

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error


class TrackWriter:
    """Mux one track's encoded frames into WebM segments under ``directory / track_id``.

    ``write`` is cheap (no file opened, no fsync per frame: about one segment file
    per ``segment_seconds``); errors writing to disk are raised as :class:`OSError`.
    Not thread-safe: one writer is fed from one place (the recorder's event loop).
    """

    def __init__(
        self,
        directory: Path,
        track_id: str,
        kind: Kind,
        *,
        identity: dict[str, Any],
        segment_seconds: float = 5.0,
    ) -> None:
        if kind not in CLOCK_RATES:
            raise ValueError(f"kind is 'audio' or 'video', not {kind!r}")
        if not 0 < segment_seconds <= MAX_SEGMENT_SECONDS:
            raise ValueError(f"segment_seconds is in (0, {MAX_SEGMENT_SECONDS}]")
        self.track_id = _check_track_id(track_id)
        self.kind: Kind = kind
        self.identity = _check_identity(identity)
        self.track_dir = Path(directory) / track_id
        self._clock = CLOCK_RATES[kind]
        self._segment_ms = max(1, round(segment_seconds * 1000))
        try:
            self.track_dir.mkdir()
        except FileExistsError:
            if any(self.track_dir.iterdir()):
                raise FileExistsError(
                    errno.EEXIST, "track directory already holds files", str(self.track_dir)
                ) from None
        self._syncer = _Syncer(track_id)
        self._container: Any = None  # av.container.OutputContainer of the open segment
        self._stream: Any = None
        self._segment_path: Path | None = None
        self._segment_index = -1
        self._segment_start = 0
        self._template: bytes | None = None
        self._closed = False
        self._failure: OSError | None = None
        # timing
        self._start_offset: float | None = None
        self._last_rtp = 0
        self._ticks = 0  # unwrapped RTP ticks since the first frame (before clamping)
        self._last_at = 0.0
        self._last_pts = -1  # ms
        # counters
        self._packets = 0
        self._bytes = 0
        self._dropped = 0
        self._clamped = 0
        self._discontinuities = 0
        self._after_close = 0

    # -- properties

    @property
    def packets(self) -> int:
        return self._packets

    @property
    def bytes_written(self) -> int:
        """Payload bytes handed to the muxer (container overhead not counted)."""
        return self._bytes

    @property
    def dropped_before_keyframe(self) -> int:
        return self._dropped

    @property
    def start_offset(self) -> float | None:
        """Seconds from the recording's start to the first written frame."""
        return self._start_offset

    @property
    def clamped(self) -> int:
        """Frames whose timestamp did not advance and was moved to 1 ms after the last."""
        return self._clamped

    @property
    def discontinuities(self) -> int:
        """RTP timestamp jumps that disagreed with the arrival times (timeline re-anchored)."""
        return self._discontinuities

    @property
    def segments(self) -> int:
        """Segment files started so far."""
        return self._segment_index + 1

    # -- writing

    def write(self, data: bytes, rtp_timestamp: int, at: float) -> None:
        """Mux one encoded frame; ``at`` is its arrival, in seconds since the recording began."""
        if self._closed:
            # A frame the receiver had in flight when the recorder closed the track.
            self._after_close += 1
            if self._after_close == 1:
                log.warning("track %s: frame after close, ignored", self.track_id)
            return
        if self._failure is not None:
            raise OSError(
                self._failure.errno, f"track {self.track_id} failed earlier: {self._failure}"
            )
        if not data:
            return
        rtp_timestamp &= 0xFFFFFFFF
        if self._start_offset is None:
            size = (0, 0)
            if self.kind == "video":
                keyframe = vp8_keyframe_size(data)
                if keyframe is None:
                    self._dropped += 1  # undecodable until a keyframe comes
                    return
                size = keyframe
            self._start(rtp_timestamp, at, *size)
            pts = 0
        else:
            pts = self._next_pts(rtp_timestamp, at)
        try:
            if self._container is None or pts - self._segment_start >= self._segment_ms:
                self._roll(pts)
            packet = av.Packet(data)
            packet.stream = self._stream
            packet.time_base = _TIME_BASE
            packet.pts = packet.dts = pts
            # every Opus packet decodes on its own: marked so, they get Cues too
            packet.is_keyframe = self.kind == "audio" or not data[0] & 1
            self._container.mux(packet)
        except (OSError, av.FFmpegError) as exc:
            self._failure = _as_os_error(exc, f"track {self.track_id}: writing a segment")
            log.error("track %s: writing failed: %s", self.track_id, self._failure)
            raise self._failure from exc
        self._last_pts = pts
        self._packets += 1
        self._bytes += len(data)

    def _start(self, rtp_timestamp: int, at: float, width: int, height: int) -> None:
        """The first frame: write the sidecar, so that after a crash the directory
        holds all that finalizing needs."""
        sidecar = {
            "version": SIDECAR_VERSION,
            "track_id": self.track_id,
            "kind": self.kind,
            "codec": CODECS[self.kind],
            "clock_rate": self._clock,
            "start_offset": at,
            "first_rtp_timestamp": rtp_timestamp,
            "width": width,
            "height": height,
            "segment_ms": self._segment_ms,
            "identity": self.identity,
        }
        path = self.track_dir / SIDECAR_NAME
        tmp = self.track_dir / f".{SIDECAR_NAME}.tmp"
        try:
            tmp.write_text(json.dumps(sidecar, ensure_ascii=False, indent=2), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            self._failure = exc
            raise
        self._template = _template_header(self.kind, width, height)
        self._start_offset = at
        self._last_rtp = rtp_timestamp
        self._last_at = at
        log.info(
            "track %s (%s of %s): first frame at %.3f s",
            self.track_id,
            self.kind,
            self.identity["participant"],
            at,
        )

    def _next_pts(self, rtp_timestamp: int, at: float) -> int:
        delta = (rtp_timestamp - self._last_rtp) & 0xFFFFFFFF
        if delta >= 1 << 31:
            delta -= 1 << 32  # went backwards
        elapsed = (at - self._last_at) * self._clock
        leap = (
            delta > DISCONTINUITY_SECONDS * self._clock or delta < -BACKWARD_SECONDS * self._clock
        )
        if leap and abs(delta - elapsed) > self._clock:
            self._discontinuities += 1
            log.warning(
                "track %s: RTP timestamp jumped %.1f s in %.3f s; following the arrival time",
                self.track_id,
                delta / self._clock,
                elapsed / self._clock,
            )
            delta = max(1, round(elapsed))
        self._last_rtp = rtp_timestamp
        self._last_at = at
        self._ticks += delta
        pts = self._ticks * 1000 // self._clock
        if pts <= self._last_pts:
            self._clamped += 1
            pts = self._last_pts + 1
        return pts

    def _roll(self, pts: int) -> None:
        """Close the open segment (if any) and open the next, starting at ``pts``."""
        self._close_segment()
        self._segment_index += 1
        path = self.track_dir / f"{self._segment_index:06d}.webm.part"
        assert self._template is not None
        with av.open(io.BytesIO(self._template), format="matroska") as template:
            container = av.open(str(path), "w", format="webm", container_options=_SEGMENT_OPTIONS)
            self._stream = container.add_stream_from_template(template.streams[0], opaque=True)
        self._container = container
        self._segment_path = path
        self._segment_start = pts

    def _close_segment(self) -> None:
        container, path = self._container, self._segment_path
        self._container = self._stream = self._segment_path = None
        if container is None or path is None:
            return
        container.close()  # writes the last cluster
        if not path.exists():  # nothing was ever muxed into it
            return
        done = path.with_name(path.name.removesuffix(".part"))
        os.replace(path, done)
        first = self._segment_index == 0
        # the first time also the sidecar and the directory entries leading to them
        extra = [self.track_dir / SIDECAR_NAME, self.track_dir.parent] if first else []
        self._syncer.start([done, *extra, self.track_dir])

    def close(self) -> None:
        """Close the open segment (fsynced, like every closed one). Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._close_segment()
            self._syncer.wait()
        except (OSError, av.FFmpegError) as exc:
            error = _as_os_error(exc, f"track {self.track_id}: closing a segment")
            log.error("track %s: closing failed: %s", self.track_id, error)
            raise error from exc
        if self._start_offset is not None:
            log.info(
                "track %s: closed, %d packets, %d bytes, %d segments, %d dropped before "
                "the first keyframe, %d clamped, %d discontinuities",
                self.track_id,
                self._packets,
                self._bytes,
                self.segments,
                self._dropped,
                self._clamped,
                self._discontinuities,
            )

    def __enter__(self) -> TrackWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- finalizing ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Sidecar:
    track_id: str
    kind: Kind
    codec: str
    start_offset: float
    identity: dict[str, Any]


def _read_sidecar(track_dir: Path) -> _Sidecar | None:
    path = track_dir / SIDECAR_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") != SIDECAR_VERSION or data.get("track_id") != track_dir.name:
            raise ValueError("not a version 1 sidecar of this directory")
        kind = data["kind"]
        if kind not in CODECS or data.get("codec") != CODECS[kind]:
            raise ValueError(f"kind {kind!r}, codec {data.get('codec')!r}")
        start = float(data["start_offset"])
        if not math.isfinite(start):
            raise ValueError("start_offset is not finite")
        return _Sidecar(
            track_dir.name, kind, data["codec"], start, _check_identity(data["identity"])
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        log.error("%s: unreadable sidecar, track skipped: %s", path, exc)
        return None


def _track_dirs(directory: Path) -> list[tuple[Path, _Sidecar]]:
    found = []
    for entry in sorted(directory.iterdir()):
        if entry.is_dir() and _SAFE_ID.fullmatch(entry.name):
            sidecar = _read_sidecar(entry)
            if sidecar is not None:
                found.append((entry, sidecar))
    return found


def _segments(track_dir: Path) -> list[Path]:
    """The segment files in order; a closed and an open one of the same number cannot
    both exist, but if they do (a crash between close and rename) the closed one wins."""
    by_index: dict[int, Path] = {}
    for entry in track_dir.iterdir():
        match = _SEGMENT.fullmatch(entry.name)
        if match and entry.is_file():
            index = int(match.group(1))
            if index not in by_index or not match.group(2):
                by_index[index] = entry
    return [by_index[i] for i in sorted(by_index)]


def _join_segments(track_dir: Path, sidecar: _Sidecar, target: Path) -> int:
    """Remux every segment of a track into ``target`` (via a temporary file); the number
    of packets written (0: no file made)."""
    tmp = target.with_name(f".{target.name}.tmp")
    out: Any = None
    ostream: Any = None
    written = 0
    last_dts = -1
    try:
        for segment in _segments(track_dir):
            if segment.suffix == ".part":
                log.warning("%s: never closed (a crash), read up to where it stops", segment)
            try:
                source = av.open(str(segment), format="matroska")
            except (av.FFmpegError, OSError) as exc:
                log.warning("%s: unreadable, skipped: %s", segment, exc)
                continue
            with source:
                streams = [s for s in source.streams if s.type == sidecar.kind]
                if not streams or streams[0].codec_context.name != sidecar.codec:
                    log.warning("%s: no %s stream, skipped", segment, sidecar.codec)
                    continue
                stream = streams[0]
                if out is None:
                    out = av.open(str(tmp), "w", format="webm", container_options=_OUTPUT_OPTIONS)
                    ostream = out.add_stream_from_template(stream, opaque=True)
                    ostream.disposition = av.stream.Disposition.default
                read = 0
                packets = source.demux(stream)
                while True:
                    try:
                        packet = next(packets)
                    except StopIteration:
                        break
                    except av.FFmpegError as exc:  # a damaged segment: keep what was read
                        log.warning("%s: read %d packets, then: %s", segment, read, exc)
                        break
                    if packet.size == 0 or packet.dts is None:
                        continue  # the demuxer's end-of-stream marker
                    dts = max(packet.dts, last_dts + 1)
                    packet.pts = packet.dts = dts
                    packet.stream = ostream
                    out.mux(packet)  # a write error here is raised
                    last_dts = dts
                    read += 1
                written += read
        log.info("track %s: %d packets joined into %s", sidecar.track_id, written, target.name)
        if out is not None:
            out.close()
            out = None
            if written:
                _fsync(tmp)
                os.replace(tmp, target)
                _fsync(target.parent)
    finally:
        if out is not None:
            out.close()
        if tmp.exists():
            tmp.unlink()
    return written


@dataclass(frozen=True, slots=True)
class _FileFacts:
    duration: float
    packets: int
    bytes: int
    sha256: str
    width: int
    height: int


def _describe(path: Path) -> _FileFacts:
    first: int | None = None
    last = 0
    packets = 0
    with av.open(str(path), format="matroska") as source:
        stream = source.streams[0]
        time_base = stream.time_base or _TIME_BASE
        width = height = 0
        if isinstance(stream, av.VideoStream):
            width, height = stream.codec_context.width, stream.codec_context.height
        for packet in source.demux(stream):
            if packet.size == 0 or packet.pts is None:
                continue
            packets += 1
            first = packet.pts if first is None else first
            last = packet.pts
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    duration = float((last - (first or 0)) * time_base)
    return _FileFacts(round(duration, 3), packets, size, digest.hexdigest(), width, height)


def _remove_track_dir(track_dir: Path) -> None:
    """Segments first, the sidecar last: a crash part-way leaves a directory that is
    still recognised (and removed) by the next run."""
    for entry in track_dir.iterdir():
        if entry.name != SIDECAR_NAME:
            entry.unlink()
    (track_dir / SIDECAR_NAME).unlink(missing_ok=True)
    track_dir.rmdir()


def _clean_up(directory: Path) -> None:
    for track_dir, _ in _track_dirs(directory):
        _remove_track_dir(track_dir)
    # Left without a sidecar: a writer that never got a frame (or was killed while
    # writing its sidecar), or a run of this that stopped before its rmdir.
    leftover = {f".{SIDECAR_NAME}.tmp"}
    for entry in directory.iterdir():
        if entry.is_dir() and _SAFE_ID.fullmatch(entry.name):
            names = {child.name for child in entry.iterdir()}
            if names <= leftover:
                for name in names:
                    (entry / name).unlink()
                entry.rmdir()


def finalize_recording(
    directory: Path,
    *,
    recording_id: int,
    meeting_id: int,
    number: int,
    title: str,
    started_at: str,
    ended_at: str,
    status: str,
) -> Manifest:
    """Join each track's segments into ``<track_id>.webm``, write the manifest, and
    remove the segments. Returns the manifest.

    A track whose segments hold no readable frame is left out. ``duration_seconds``
    is the end of the longest track (``start_offset + duration``), not
    ``ended_at - started_at``: it is what the files hold, and after a crash
    ``ended_at`` may be long after the last frame (the wall times stay in the
    manifest for whoever wants them).

    Idempotent: on a directory that has a manifest it only removes what a run that
    stopped part-way left behind and returns the manifest as written. A track file
    already made by such a run is kept (it was renamed into place whole).
    """
    directory = Path(directory)
    if (directory / MANIFEST_NAME).exists():
        _clean_up(directory)
        return read_manifest(directory)
    entries: list[TrackEntry] = []
    for track_dir, sidecar in _track_dirs(directory):
        target = directory / f"{sidecar.track_id}.webm"
        if not target.exists() and not _join_segments(track_dir, sidecar, target):
            log.warning("track %s: no frames, left out of the recording", sidecar.track_id)
            continue
        facts = _describe(target)
        identity = sidecar.identity
        entries.append(
            TrackEntry(
                id=sidecar.track_id,
                file=target.name,
                kind=sidecar.kind,
                codec=sidecar.codec,
                participant=identity["participant"],
                unit_id=identity["unit_id"],
                unit_name=identity["unit_name"],
                source=identity["source"],
                start_offset=sidecar.start_offset,
                duration=facts.duration,
                packets=facts.packets,
                bytes=facts.bytes,
                sha256=facts.sha256,
                width=facts.width,
                height=facts.height,
            )
        )
    duration = max((t.start_offset + t.duration for t in entries), default=0.0)
    manifest = Manifest(
        recording_id=recording_id,
        meeting_id=meeting_id,
        number=number,
        title=title,
        started_at=started_at,
        ended_at=ended_at,
        status=status,
        duration_seconds=round(duration, 3),
        tracks=entries,
    )
    write_manifest(directory, manifest)
    _fsync(directory)
    _clean_up(directory)
    log.info("recording %d finalized: %d tracks, %.1f s", recording_id, len(entries), duration)
    return manifest
