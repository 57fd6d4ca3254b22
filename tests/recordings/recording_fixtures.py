"""Finished recordings on disk and in the database, as the recording service leaves
them: real VP8 and Opus frames fed to ``segments.TrackWriter`` (one camera and one
microphone of one site), joined by ``finalize_recording`` into ``t01.webm`` /
``t02.webm`` and ``manifest.json``, in the directory ``recording_key`` names under
the app's ``data_dir/recordings``; and the ``Recording`` row whose ``path`` is
that key.

Encoding is done once per process (a second of 320x180 VP8 and of Opus, repeated),
so a recording costs a few tens of milliseconds.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import select

from conference.db import Database
from conference.models import (
    CompositeStatus,
    Meeting,
    MeetingKind,
    Recording,
    RecordingStatus,
    Unit,
)
from recordings.manifest import Manifest
from recordings.segments import TrackWriter, finalize_recording
from recordings.storage import LocalStorage, recording_key

from .media_fixtures import AUDIO_PER_SECOND, FPS, OPUS_SAMPLES, VIDEO_TICKS, encode_opus
from .media_fixtures import encode_vp8 as _encode_vp8

SITE = "Ủy ban nhân dân huyện Lệ Thủy"
TITLE = "Họp giao ban quý IV — Sở Thông tin và Truyền thông"


@functools.cache
def _frames() -> tuple[list[bytes], list[bytes]]:
    """One second of VP8 (starting with a keyframe) and one of Opus."""
    return _encode_vp8(FPS, 320, 180, gop=FPS), encode_opus(AUDIO_PER_SECOND)


def storage_for(data_dir: Path) -> LocalStorage:
    """The storage the app and the CLI use for ``data_dir``."""
    return LocalStorage(data_dir / "recordings")


def write_tracks(
    directory: Path,
    *,
    seconds: float = 2.0,
    recording_id: int = 1,
    meeting_id: int = 1,
    number: int = 1,
    title: str = TITLE,
    started_at: datetime | None = None,
    unit_id: int | None = None,
    unit_name: str = SITE,
    status: str = "finished",
) -> Manifest:
    """A camera and a microphone track, ``seconds`` long, finalized into ``directory``."""
    video, audio = _frames()
    start = started_at or datetime.now(UTC)
    identity = {"participant": "p-site1", "unit_id": unit_id, "unit_name": unit_name}
    cam = TrackWriter(directory, "t01", "video", identity=identity | {"source": "camera"})
    mic = TrackWriter(directory, "t02", "audio", identity=identity | {"source": "camera"})
    for i in range(round(seconds * FPS)):
        cam.write(video[i % len(video)], 1000 + i * VIDEO_TICKS, 0.1 + i / FPS)
    for i in range(round(seconds * AUDIO_PER_SECOND)):
        mic.write(audio[i % len(audio)], 7000 + i * OPUS_SAMPLES, 0.1 + i / AUDIO_PER_SECOND)
    cam.close()
    mic.close()
    return finalize_recording(
        directory,
        recording_id=recording_id,
        meeting_id=meeting_id,
        number=number,
        title=title,
        started_at=start.isoformat(),
        ended_at=(start + timedelta(seconds=seconds)).isoformat(),
        status=status,
    )


async def unit_id(db: Database, code: str) -> int:
    async with db.read() as session:
        unit = (await session.exec(select(Unit).where(Unit.code == code))).one()
    assert unit.id is not None
    return unit.id


async def add_meeting(
    db: Database,
    *,
    title: str = TITLE,
    chair: str = "QB",
    starts_at: datetime | None = None,
) -> int:
    """A meeting row (units must be seeded), without the scheduling rules of the API."""
    start = starts_at or datetime.now(UTC)
    chair_id = await unit_id(db, chair)
    async with db.write() as session:
        meeting = Meeting(
            title=title,
            starts_at=start,
            ends_at=start + timedelta(hours=1),
            chair_unit_id=chair_id,
            kind=MeetingKind.REGULAR,
        )
        session.add(meeting)
        await session.flush()
        assert meeting.id is not None
        return meeting.id


@dataclass
class Made:
    id: int
    key: str
    directory: Path
    manifest: Manifest | None


async def add_recording(
    db: Database,
    data_dir: Path,
    meeting_id: int,
    *,
    title: str = TITLE,
    number: int = 1,
    started_at: datetime | None = None,
    status: RecordingStatus = RecordingStatus.FINISHED,
    unit_ids: list[int] | None = None,
    keep: bool = False,
    files: bool = True,
    seconds: float = 2.0,
    composite_status: CompositeStatus = CompositeStatus.NONE,
) -> Made:
    """A recording row of ``meeting_id`` and (``files``) its finished directory."""
    start = started_at or datetime.now(UTC)
    key = recording_key(title, meeting_id, number, start)
    async with db.write() as session:
        row = Recording(
            meeting_id=meeting_id,
            number=number,
            status=status,
            started_at=start,
            ended_at=None
            if status is RecordingStatus.RECORDING
            else start + timedelta(seconds=seconds),
            path=key,
            unit_ids=list(unit_ids or []),
            keep=keep,
            composite_status=composite_status,
        )
        session.add(row)
        await session.flush()
        assert row.id is not None
        recording_id = row.id
    directory = storage_for(data_dir).workdir(key)
    manifest = None
    if files:
        manifest = write_tracks(
            directory,
            seconds=seconds,
            recording_id=recording_id,
            meeting_id=meeting_id,
            number=number,
            title=title,
            started_at=start,
            unit_id=(unit_ids or [None])[0],
        )
        async with db.write() as session:
            stored = await session.get(Recording, recording_id)
            assert stored is not None
            stored.duration_seconds = manifest.duration_seconds
            stored.size_bytes = storage_for(data_dir).size(key)
            session.add(stored)
    return Made(recording_id, key, directory, manifest)


async def get_row(db: Database, recording_id: int) -> Recording | None:
    async with db.read() as session:
        return await session.get(Recording, recording_id)
