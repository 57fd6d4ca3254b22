"""Retention: recordings older than the period and not kept are deleted, files and row,
with an audit entry; kept ones, ones still recording and young ones stay. On SQLite
and PostgreSQL, with real recording directories."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, func, select

from conference.models import AuditEntry, Recording, RecordingStatus
from conference.recordings import expired_recordings
from conference.timezone import LOCAL_ZONE, utcnow
from recordings.service import RecorderSettings, RecordingService
from signaling.bus import InProcessBus

from .recording_fixtures import Made, add_meeting, add_recording, get_row, storage_for

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
DAYS = 30


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def service(database: Any, data_dir: Path, days: int) -> RecordingService:
    # purge_expired needs the database, the storage and the settings; no rooms.
    return RecordingService(
        database,
        storage_for(data_dir),
        None,  # type: ignore[arg-type]
        InProcessBus(),
        RecorderSettings(enabled=False, retention_days=days),
    )


def digest(directory: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.iterdir())
        if p.is_file()
    }


async def purges(database: Any) -> list[AuditEntry]:
    async with database.read() as s:
        return list(
            (
                await s.exec(
                    select(AuditEntry)
                    .where(col(AuditEntry.action) == "recording.purge")
                    .order_by(col(AuditEntry.object_id))
                )
            ).all()
        )


async def rows(database: Any) -> int:
    async with database.read() as s:
        return int((await s.exec(select(func.count()).select_from(Recording))).one())


async def make(database: Any, data_dir: Path, now: datetime = NOW) -> dict[str, Made]:
    """Recordings of every kind the rule tells apart (files on disk for all), as of ``now``."""
    m1 = await add_meeting(database)
    m2 = await add_meeting(database, title="Hội nghị khác", chair="QB-SNV")
    cutoff = now - timedelta(days=DAYS)
    specs: dict[str, tuple[int, datetime, RecordingStatus, bool]] = {
        "old": (m1, cutoff - timedelta(days=1), RecordingStatus.FINISHED, False),
        "old_failed": (m1, cutoff - timedelta(days=5), RecordingStatus.FAILED, False),
        "old_interrupted": (m2, cutoff - timedelta(seconds=1), RecordingStatus.INTERRUPTED, False),
        "old_kept": (m1, cutoff - timedelta(days=200), RecordingStatus.FINISHED, True),
        "old_recording": (m1, cutoff - timedelta(days=2), RecordingStatus.RECORDING, False),
        "at_cutoff": (m2, cutoff, RecordingStatus.FINISHED, False),
        "young": (m1, now - timedelta(days=1), RecordingStatus.FINISHED, False),
    }
    made = {}
    for n, (name, (mid, started, status, keep)) in enumerate(specs.items(), start=1):
        made[name] = await add_recording(
            database, data_dir, mid, number=n, started_at=started, status=status, keep=keep
        )
    return made


PURGED = {"old", "old_failed", "old_interrupted"}


async def test_old_recordings_not_kept_are_purged_with_their_files(database, seeded, data_dir):
    made = await make(database, data_dir)
    before = {name: digest(m.directory) for name, m in made.items()}
    assert all("manifest.json" in files for files in before.values())

    # "now" given in Hà Nội time: the same instant.
    purged = await service(database, data_dir, DAYS).purge_expired(NOW.astimezone(LOCAL_ZONE))

    assert sorted(purged) == sorted(made[name].id for name in PURGED)
    for name, m in made.items():
        row = await get_row(database, m.id)
        if name in PURGED:
            assert row is None, name
            assert not m.directory.exists(), name
        else:
            assert row is not None, name
            assert digest(m.directory) == before[name], name
    # The purged recordings' date directories went with them, once empty; the root stays.
    root = data_dir / "recordings"
    assert root.is_dir()
    for name in PURGED:
        key_parts = made[name].key.split("/")
        day = root.joinpath(*key_parts[:3])
        others = [m for n, m in made.items() if n not in PURGED]
        if not any(m.directory.is_relative_to(day) for m in others):
            assert not day.exists(), day

    entries = await purges(database)
    assert sorted(int(e.object_id) for e in entries) == sorted(purged)
    by_id = {m.id: m for m in made.values()}
    for entry in entries:
        assert (entry.actor, entry.object_type) == ("system", "recording")
        assert entry.detail["retention_days"] == DAYS
        assert entry.detail["meeting_id"] == (await _meeting_of(by_id[int(entry.object_id)]))

    # A second sweep finds nothing more.
    assert await service(database, data_dir, DAYS).purge_expired(NOW) == []
    assert len(await purges(database)) == len(PURGED)


async def _meeting_of(made: Made) -> int:
    assert made.manifest is not None
    return made.manifest.meeting_id


async def test_zero_days_keeps_everything(database, seeded, data_dir):
    made = await make(database, data_dir)
    count = await rows(database)
    far_future = NOW + timedelta(days=10_000)
    assert await service(database, data_dir, 0).purge_expired(far_future) == []
    async with database.read() as s:
        assert await expired_recordings(s, far_future, 0) == []
    assert await rows(database) == count
    assert all(m.directory.is_dir() for m in made.values())
    assert await purges(database) == []


async def test_the_expired_query_is_the_rule(database, seeded, data_dir):
    made = await make(database, data_dir)
    async with database.read() as s:
        found = await expired_recordings(s, NOW, DAYS)
        longer = await expired_recordings(s, NOW, 365)
        shorter = await expired_recordings(s, NOW + timedelta(days=DAYS), DAYS)
    assert sorted(r.id for r in found) == sorted(made[n].id for n in PURGED)
    assert longer == []
    assert sorted(r.id for r in shorter) == sorted(
        made[n].id for n in (*PURGED, "at_cutoff", "young")
    )


async def test_a_recording_whose_files_cannot_be_deleted_stays_and_the_rest_go(
    database, seeded, data_dir
):
    made = await make(database, data_dir)
    async with database.write() as s:
        row = await s.get(Recording, made["old"].id)
        assert row is not None
        row.path = "../../outside"  # not a key: storage refuses it
        s.add(row)
    purged = await service(database, data_dir, DAYS).purge_expired(NOW)
    assert sorted(purged) == sorted(made[n].id for n in PURGED - {"old"})
    assert await get_row(database, made["old"].id) is not None
    assert made["old"].directory.is_dir()
    assert sorted(int(e.object_id) for e in await purges(database)) == sorted(purged)


async def test_files_that_cannot_be_deleted_keep_the_row_for_the_next_sweep(
    database, seeded, data_dir, monkeypatch
):
    """A file the server may not remove (say, written by another account): the recording
    is not reported purged, its row and files stay, and the next sweep tries again."""
    made = await make(database, data_dir)
    stuck = made["old"].directory
    real_unlink = os.unlink

    def unlink(path: Any, *args: Any, dir_fd: int | None = None, **kw: Any) -> None:
        where = Path(os.readlink(f"/proc/self/fd/{dir_fd}")) if dir_fd is not None else None
        if (where or Path(path).parent) == stuck:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        real_unlink(path, *args, dir_fd=dir_fd, **kw)

    monkeypatch.setattr(os, "unlink", unlink)
    purged = await service(database, data_dir, DAYS).purge_expired(NOW)
    assert sorted(purged) == sorted(made[n].id for n in PURGED - {"old"})
    assert await get_row(database, made["old"].id) is not None
    assert (stuck / "manifest.json").is_file()
    assert made["old"].id not in [int(e.object_id) for e in await purges(database)]

    monkeypatch.setattr(os, "unlink", real_unlink)
    assert await service(database, data_dir, DAYS).purge_expired(NOW) == [made["old"].id]
    assert not stuck.exists()


async def test_a_recording_whose_directory_is_already_gone_is_purged(database, seeded, data_dir):
    made = await make(database, data_dir)
    shutil.rmtree(made["old"].directory)
    purged = await service(database, data_dir, DAYS).purge_expired(NOW)
    assert made["old"].id in purged
    assert await get_row(database, made["old"].id) is None


async def test_the_service_sweeps_when_it_starts(database, seeded, data_dir):
    made = await make(database, data_dir, utcnow())  # the sweep's "now" is the clock's
    gone, stay = ("old", "old_failed"), ("old_kept", "young")  # not those at the cutoff
    recordings = service(database, data_dir, DAYS)
    await recordings.start()
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while any([await get_row(database, made[n].id) for n in gone]):
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
    finally:
        await recordings.close()
    for name in stay:
        assert await get_row(database, made[name].id) is not None
        assert made[name].directory.is_dir()
    assert {int(e.object_id) for e in await purges(database)} >= {made[n].id for n in gone}
