"""CompositeJobs: a real recording (TrackWriter + finalize_recording) composed by the
``python -m recordings.composite`` child, its state in the row as it goes, the bus
event, failures, and jobs a restart interrupted. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from conference.models import AuditEntry, CompositeStatus, RecordingStatus
from recordings import jobs as jobs_module
from recordings.jobs import CompositeJobs
from signaling.bus import BusEvent

from .recording_fixtures import (
    Made,
    add_meeting,
    add_recording,
    get_row,
    storage_for,
    write_tracks,
)

FFPROBE = shutil.which("ffprobe")
WITHIN = 30.0  # seconds a small job may take on a slow machine


class ListBus:
    def __init__(self) -> None:
        self.events: list[BusEvent] = []

    def publish(self, event: BusEvent) -> None:
        self.events.append(event)

    def subscribe(self, max_backlog: int = 1000) -> Any:  # pragma: no cover - unused
        raise NotImplementedError


class Watched(CompositeJobs):
    """CompositeJobs that notes the row as stored after every state write."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.writes: list[tuple[int, CompositeStatus, float, str, float]] = []
        self.nice: list[int] = []
        self.over: dict[int, asyncio.Event] = {}

    def finished(self, recording_id: int) -> asyncio.Event:
        return self.over.setdefault(recording_id, asyncio.Event())

    async def _set(self, recording_id: int, status: CompositeStatus, **kw: Any) -> None:
        await super()._set(recording_id, status, **kw)
        row = await get_row(self.db, recording_id)
        assert row is not None
        self.writes.append(
            (
                recording_id,
                row.composite_status,
                row.composite_progress,
                row.composite_error,
                time.monotonic(),
            )
        )
        if status is CompositeStatus.RUNNING and self.current is not None:
            self.nice.append(os.getpriority(os.PRIO_PROCESS, self.current.pid))
        if status in (CompositeStatus.DONE, CompositeStatus.FAILED):
            self.finished(recording_id).set()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def bus() -> ListBus:
    return ListBus()


@pytest.fixture
async def jobs(database, seeded, data_dir, bus) -> Any:
    made = Watched(database, storage_for(data_dir), bus)
    yield made
    await asyncio.wait_for(made.close(), WITHIN)  # a stuck child fails the test, not the run


async def finished(jobs: Watched, recording_id: int) -> None:
    await asyncio.wait_for(jobs.finished(recording_id).wait(), WITHIN)


def probe(path: Path) -> dict[str, Any]:
    assert FFPROBE is not None, "ffprobe is needed"
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    data: dict[str, Any] = json.loads(out.stdout)
    return data


async def a_recording(database: Any, data_dir: Path, seconds: float = 2.0, **kw: Any) -> Made:
    meeting_id = await add_meeting(database)
    return await add_recording(database, data_dir, meeting_id, seconds=seconds, **kw)


async def test_a_recording_is_composed_end_to_end(database, data_dir, jobs, bus):
    made = await a_recording(database, data_dir, seconds=4.0)
    await jobs.start()
    assert await jobs.queue(made.id, "grid") is True
    row = await get_row(database, made.id)
    assert (row.composite_status, row.composite_progress) == (CompositeStatus.QUEUED, 0.0)
    await finished(jobs, made.id)

    states = [(s, p) for rid, s, p, _e, _t in jobs.writes if rid == made.id]
    assert states[0] == (CompositeStatus.RUNNING, 0.0)
    assert states[-1] == (CompositeStatus.DONE, 1.0)
    assert {s for s, _ in states[:-1]} == {CompositeStatus.RUNNING}
    progress = [p for _, p in states]
    assert progress == sorted(progress)
    # Progress reaches the row at most once a second (the child reports 4 times a second).
    times = [t for rid, s, _p, _e, t in jobs.writes if s is CompositeStatus.RUNNING][1:]
    assert all(b - a >= 0.95 for a, b in itertools.pairwise(times)), times
    assert jobs.nice
    assert all(n >= jobs_module.NICE for n in jobs.nice), jobs.nice

    row = await get_row(database, made.id)
    assert (row.composite_status, row.composite_progress) == (CompositeStatus.DONE, 1.0)
    assert (row.composite_path, row.composite_error) == ("composite.mp4", "")
    output = made.directory / "composite.mp4"
    assert output.is_file()
    assert not (made.directory / ".composite.mp4.tmp").exists()
    streams = probe(output)["streams"]
    assert sorted(s["codec_name"] for s in streams) == ["aac", "h264"]
    video = next(s for s in streams if s["codec_type"] == "video")
    assert float(video["duration"]) == pytest.approx(4.0, abs=0.5)

    (event,) = bus.events
    assert event.name == "recording.composed"
    assert event.data["recording_id"] == made.id
    assert event.data["meeting_id"] == row.meeting_id
    assert event.data["layout"] == "grid"
    assert event.data["seconds"] > 0
    async with database.read() as s:
        actions = (
            await s.exec(
                select(AuditEntry.action).where(col(AuditEntry.object_type) == "recording")
            )
        ).all()
    assert list(actions) == ["recording.composite_done"]


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ("{not json", "invalid manifest"),
        ('{"version": 99}', "not a version 1 manifest"),
        (None, "no manifest"),
    ],
)
async def test_a_broken_recording_fails_with_the_error(
    database, data_dir, jobs, bus, manifest, message
):
    made = await a_recording(database, data_dir)
    path = made.directory / "manifest.json"
    if manifest is None:
        path.unlink()
    else:
        path.write_text(manifest, encoding="utf-8")
    await jobs.start()
    await jobs.queue(made.id)
    await finished(jobs, made.id)
    row = await get_row(database, made.id)
    assert row.composite_status is CompositeStatus.FAILED
    assert message in row.composite_error
    assert row.composite_error.startswith("composite: ")
    assert row.composite_path == ""
    assert not (made.directory / "composite.mp4").exists()
    assert bus.events == []
    async with database.read() as s:
        entry = (
            await s.exec(
                select(AuditEntry).where(col(AuditEntry.action) == "recording.composite_failed")
            )
        ).one()
    assert message in entry.detail["error"]

    # Mended, the job runs again and the error goes.
    shutil.rmtree(made.directory)
    made.directory.mkdir()
    write_tracks(made.directory, recording_id=made.id)
    jobs.finished(made.id).clear()
    assert await jobs.queue(made.id) is True
    assert (await get_row(database, made.id)).composite_error == ""
    await finished(jobs, made.id)
    row = await get_row(database, made.id)
    assert (row.composite_status, row.composite_error) == (CompositeStatus.DONE, "")


async def test_only_finished_or_interrupted_recordings_are_queued(database, data_dir, jobs):
    meeting_id = await add_meeting(database)
    rows = {}
    for n, status in enumerate(RecordingStatus, start=1):
        rows[status] = await add_recording(
            database, data_dir, meeting_id, number=n, status=status, files=False
        )
    for status in (RecordingStatus.RECORDING, RecordingStatus.FAILED):
        with pytest.raises(ValueError, match="finished or interrupted"):
            await jobs.queue(rows[status].id)
        assert (await get_row(database, rows[status].id)).composite_status is CompositeStatus.NONE
    with pytest.raises(ValueError, match="finished or interrupted"):
        await jobs.queue(99_999)
    with pytest.raises(ValueError, match="layout"):
        await jobs.queue(rows[RecordingStatus.FINISHED].id, "mosaic")
    # Not started: the jobs wait on the queue, and asking twice is a no-op.
    for status in (RecordingStatus.FINISHED, RecordingStatus.INTERRUPTED):
        assert await jobs.queue(rows[status].id) is True
        assert await jobs.queue(rows[status].id) is False
        row = await get_row(database, rows[status].id)
        assert row.composite_status is CompositeStatus.QUEUED


async def test_jobs_queued_or_running_at_a_restart_are_run_at_start(
    database, data_dir, seeded, bus
):
    meeting_id = await add_meeting(database)
    made = {}
    for n, state in enumerate(
        [
            CompositeStatus.QUEUED,
            CompositeStatus.RUNNING,
            CompositeStatus.NONE,
            CompositeStatus.FAILED,
        ],
        start=1,
    ):
        made[state] = await add_recording(
            database, data_dir, meeting_id, number=n, composite_status=state
        )
    jobs = Watched(database, storage_for(data_dir), bus)
    try:
        await jobs.start()
        await finished(jobs, made[CompositeStatus.QUEUED].id)
        await finished(jobs, made[CompositeStatus.RUNNING].id)
    finally:
        await jobs.close()
    for state in (CompositeStatus.QUEUED, CompositeStatus.RUNNING):
        row = await get_row(database, made[state].id)
        assert row.composite_status is CompositeStatus.DONE
        assert (made[state].directory / "composite.mp4").is_file()
    for state in (CompositeStatus.NONE, CompositeStatus.FAILED):
        assert (await get_row(database, made[state].id)).composite_status is state
        assert not (made[state].directory / "composite.mp4").exists()
    assert sorted(e.data["recording_id"] for e in bus.events) == sorted(
        made[s].id for s in (CompositeStatus.QUEUED, CompositeStatus.RUNNING)
    )


async def test_a_job_stopped_by_a_shutdown_is_run_again_at_the_next_start(
    database, data_dir, seeded, bus
):
    made = await a_recording(database, data_dir, seconds=4.0)
    first = Watched(database, storage_for(data_dir), bus)
    await first.start()
    running = asyncio.Event()
    original = first._set

    async def note(recording_id: int, status: CompositeStatus, **kw: Any) -> None:
        await original(recording_id, status, **kw)
        if status is CompositeStatus.RUNNING and first.current is not None:
            running.set()

    first._set = note  # type: ignore[method-assign]
    await first.queue(made.id, "grid")
    await asyncio.wait_for(running.wait(), WITHIN)
    child = first.current
    assert child is not None
    await first.close()
    assert child.returncode is not None  # stopped with the server
    row = await get_row(database, made.id)
    assert row.composite_status is CompositeStatus.RUNNING
    assert bus.events == []

    second = Watched(database, storage_for(data_dir), bus)
    try:
        await second.start()
        await finished(second, made.id)
    finally:
        await second.close()
    # Run again with the layout it was asked for, not the default.
    assert [e.data["layout"] for e in bus.events] == ["grid"]
    row = await get_row(database, made.id)
    assert (row.composite_status, row.composite_progress) == (CompositeStatus.DONE, 1.0)
    assert [e.name for e in bus.events] == ["recording.composed"]


async def test_a_child_that_writes_much_to_stderr_is_not_stuck(database, data_dir, jobs, bus):
    """Hundreds of tracks whose files are gone: the child logs a warning for each (far
    more than a pipe holds) before its first progress line, and the job still ends."""
    made = await a_recording(database, data_dir)
    manifest_path = made.directory / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    real = manifest["tracks"]
    gone = [
        real[1] | {"id": f"x{i:04d}", "file": f"x{i:04d}-{'lost' * 10}.webm"} for i in range(800)
    ]
    manifest["tracks"] = real + gone
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    await jobs.start()
    await jobs.queue(made.id)
    await finished(jobs, made.id)
    row = await get_row(database, made.id)
    assert (row.composite_status, row.composite_error) == (CompositeStatus.DONE, "")
    assert [e.name for e in bus.events] == ["recording.composed"]
