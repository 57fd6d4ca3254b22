"""The manifest of one recording: what its directory holds, written last.

A recording's directory (``recordings/storage.py`` decides where) holds one
file per track (WebM: VP8 or Opus exactly as forwarded, no re-encoding),
``manifest.json`` (this), and, once the composite job has run,
``composite.mp4``. The manifest is what clerks' tools and the composite job
read: which unit each track belongs to, where it starts in the recording, how
long it lasts, and the SHA-256 of each file so a copy can be checked.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["MANIFEST_NAME", "Manifest", "TrackEntry", "read_manifest", "write_manifest"]

MANIFEST_NAME = "manifest.json"
VERSION = 1

Kind = Literal["audio", "video"]
Source = Literal["camera", "screen"]


@dataclass(slots=True)
class TrackEntry:
    id: str  # "t01", "t02", ...: unique in the recording, safe in file names
    file: str  # the track's file, relative to the recording's directory
    kind: Kind
    codec: str  # "vp8" or "opus"
    participant: str  # the signaling participant id
    unit_id: int | None
    unit_name: str  # as the room showed it, Vietnamese diacritics kept
    source: Source
    start_offset: float  # seconds from the recording's start to the track's first frame
    duration: float  # seconds from the track's first to its last frame
    packets: int
    bytes: int
    sha256: str
    width: int = 0  # video only
    height: int = 0


@dataclass(slots=True)
class Manifest:
    recording_id: int
    meeting_id: int
    number: int  # the recording's number within the meeting
    title: str
    started_at: str  # ISO 8601, UTC
    ended_at: str
    status: str  # "finished" or "interrupted"
    duration_seconds: float
    tracks: list[TrackEntry] = field(default_factory=list)
    version: int = VERSION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        tracks = [TrackEntry(**t) for t in data.get("tracks", [])]
        fields = {k: v for k, v in data.items() if k != "tracks"}
        return cls(**fields, tracks=tracks)


def write_manifest(directory: Path, manifest: Manifest) -> Path:
    """Write atomically (temp file, fsync, rename): a reader never sees half a manifest."""
    path = directory / MANIFEST_NAME
    tmp = directory / f".{MANIFEST_NAME}.tmp"
    text = json.dumps(manifest.to_json(), ensure_ascii=False, indent=2)
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def read_manifest(directory: Path) -> Manifest:
    data = json.loads((directory / MANIFEST_NAME).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("version") != VERSION:
        raise ValueError(f"{directory / MANIFEST_NAME}: not a version {VERSION} manifest")
    return Manifest.from_json(data)
