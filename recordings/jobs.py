"""The composite job: one MP4 per recording, made in the background, one at a time.

Each job runs ``python -m recordings.composite DIR --layout L`` as a child
process at low priority (``nice``), so decoding and encoding never take CPU a
live meeting needs more; it reads the child's progress lines into the
recording's row (at most once a second) and publishes ``recording.composed``
when done. A job can be run again (the file is replaced). Jobs a restart
interrupted are queued again on start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import tempfile
import time
from typing import Any

from sqlmodel import col, select

from conference.actors import SYSTEM
from conference.audit import record_audit
from conference.db import Database
from conference.models import CompositeStatus, Recording, RecordingStatus
from signaling.bus import Bus, BusEvent

from .storage import Storage

__all__ = ["COMPOSITE_NAME", "LAYOUTS", "CompositeJobs", "set_composite"]

log = logging.getLogger(__name__)

LAYOUTS = ("speaker", "grid")
COMPOSITE_NAME = "composite.mp4"
NICE = 10
PROGRESS_EVERY = 1.0  # seconds between progress writes to the database
ERROR_TAIL = 16_384  # bytes of the child's stderr kept for the error message


class CompositeJobs:
    def __init__(self, db: Database, storage: Storage, bus: Bus) -> None:
        self.db = db
        self.storage = storage
        self.bus = bus
        self._queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
        self._queued: set[int] = set()
        self._task: asyncio.Task[None] | None = None
        self.current: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        async with self.db.read() as session:
            rows = (
                await session.exec(
                    select(Recording.id, Recording.composite_layout).where(
                        col(Recording.composite_status).in_(
                            [CompositeStatus.QUEUED, CompositeStatus.RUNNING]
                        )
                    )
                )
            ).all()
        for recording_id, layout in rows:
            if recording_id is not None:
                # Again with the layout it was asked for.
                self._enqueue(recording_id, layout if layout in LAYOUTS else "speaker")
        self._task = asyncio.create_task(self._run(), name="composite-jobs")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.current is not None and self.current.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.current.kill()
            await self.current.wait()

    async def queue(self, recording_id: int, layout: str = "speaker") -> bool:
        """Queue a composite of a finished (or interrupted) recording; False if it is
        queued or running already."""
        if layout not in LAYOUTS:
            raise ValueError(f"layout is one of {LAYOUTS}")
        if recording_id in self._queued:
            return False
        async with self.db.write() as session:
            row = await session.get(Recording, recording_id)
            if row is None or row.status not in (
                RecordingStatus.FINISHED,
                RecordingStatus.INTERRUPTED,
            ):
                raise ValueError("only a finished or interrupted recording can be composed")
            row.composite_status = CompositeStatus.QUEUED
            row.composite_progress = 0.0
            row.composite_error = ""
            row.composite_layout = layout
            session.add(row)
        self._enqueue(recording_id, layout)
        return True

    def _enqueue(self, recording_id: int, layout: str) -> None:
        self._queued.add(recording_id)
        self._queue.put_nowait((recording_id, layout))

    async def _run(self) -> None:
        while True:
            recording_id, layout = await self._queue.get()
            try:
                await self._compose(recording_id, layout)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.exception("composite of recording %s failed", recording_id)
                await self._set(recording_id, CompositeStatus.FAILED, error=str(e)[:500])
            finally:
                self._queued.discard(recording_id)

    async def _compose(self, recording_id: int, layout: str) -> None:
        async with self.db.read() as session:
            row = await session.get(Recording, recording_id)
        if row is None:
            return
        directory = self.storage.workdir(row.path)
        await self._set(recording_id, CompositeStatus.RUNNING, progress=0.0)
        args = [sys.executable, "-m", "recordings.composite", str(directory), "--layout", layout]
        # The child's stderr goes to a file, not a pipe: unread while we follow stdout, a
        # pipe fills (a child logging a warning per missing track) and blocks the child
        # for good, and then ``wait()`` in close() too.
        with tempfile.TemporaryFile() as errors:
            process = self.current = await asyncio.create_subprocess_exec(
                *args,
                stdout=asyncio.subprocess.PIPE,
                stderr=errors,
                preexec_fn=lambda: os.nice(NICE),
            )
            assert process.stdout is not None
            last_write = 0.0
            done: dict[str, Any] | None = None
            async for raw in process.stdout:
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue
                if "done" in line:
                    done = line
                elif "progress" in line and time.monotonic() - last_write >= PROGRESS_EVERY:
                    last_write = time.monotonic()
                    await self._set(
                        recording_id, CompositeStatus.RUNNING, progress=line["progress"]
                    )
            code = await process.wait()
            errors.seek(max(0, errors.seek(0, os.SEEK_END) - ERROR_TAIL))
            err = errors.read().decode("utf-8", "replace").strip()
        self.current = None
        if code != 0 or done is None:
            message = (err.splitlines() or [f"exit status {code}"])[-1][:500]
            await self._set(recording_id, CompositeStatus.FAILED, error=message)
            return
        await self._set(recording_id, CompositeStatus.DONE, progress=1.0, path=COMPOSITE_NAME)
        self.bus.publish(
            BusEvent(
                "recording.composed",
                {
                    "meeting_id": row.meeting_id,
                    "recording_id": recording_id,
                    "layout": layout,
                    "seconds": done.get("seconds"),
                },
            )
        )

    async def _set(
        self,
        recording_id: int,
        status: CompositeStatus,
        *,
        progress: float | None = None,
        error: str = "",
        path: str | None = None,
    ) -> None:
        await set_composite(
            self.db, recording_id, status, progress=progress, error=error, path=path
        )


async def set_composite(
    db: Database,
    recording_id: int,
    status: CompositeStatus,
    *,
    progress: float | None = None,
    error: str = "",
    path: str | None = None,
    **audit: Any,
) -> None:
    """Record a composite's state in its recording's row; its end (done, failed) is
    audited, with ``audit`` as extra detail. The job and the command both use it."""
    async with db.write() as session:
        row = await session.get(Recording, recording_id)
        if row is None:
            return
        row.composite_status = status
        if progress is not None:
            row.composite_progress = max(0.0, min(1.0, float(progress)))
        row.composite_error = error
        if path is not None:
            row.composite_path = path
        session.add(row)
        if status in (CompositeStatus.DONE, CompositeStatus.FAILED):
            record_audit(
                session,
                SYSTEM,
                f"recording.composite_{status.value}",
                "recording",
                recording_id,
                error=error,
                **audit,
            )
