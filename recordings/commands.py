"""``hoinghi recordings list`` and ``hoinghi recordings compose ID``: the clerk's
and the administrator's command line for recordings.

``compose`` makes the composite in this process with a progress bar on the
terminal, and records its state in the recording's row like the server's
background job does (so the API and pages show it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

from sqlmodel import col, select

from conference.db import Database
from conference.models import CompositeStatus, Meeting, Recording, RecordingStatus
from conference.timezone import to_local

from .composite import Layout, compose
from .jobs import COMPOSITE_NAME, set_composite
from .storage import Storage

__all__ = ["compose_recording", "list_recordings", "progress_bar"]

BAR = 30


def progress_bar(out: TextIO, fraction: float, started: float) -> None:
    """``[#########.....................]  31 %  0:12`` on one line, redrawn in place."""
    fraction = max(0.0, min(1.0, fraction))
    filled = round(fraction * BAR)
    elapsed = int(time.monotonic() - started)
    line = f"\r[{'#' * filled}{'.' * (BAR - filled)}] {fraction * 100:3.0f} %  {elapsed // 60}:{elapsed % 60:02d}"
    out.write(line)
    out.flush()


async def list_recordings(db: Database, out: TextIO, meeting_id: int | None = None) -> int:
    query = select(Recording, Meeting.title).join(
        Meeting, col(Meeting.id) == col(Recording.meeting_id)
    )
    if meeting_id is not None:
        query = query.where(col(Recording.meeting_id) == meeting_id)
    async with db.read() as session:
        rows = (await session.exec(query.order_by(col(Recording.started_at)))).all()
    for row, title in rows:
        out.write(
            f"{row.id:>5}  {to_local(row.started_at):%d/%m/%Y %H:%M}  {row.status.value:<11} "
            f"{row.duration_seconds / 60:6.1f} min  composite {row.composite_status.value:<7} "
            f"m{row.meeting_id} #{row.number} {title}\n"
        )
    if not rows:
        out.write("no recordings\n")
    return 0


async def compose_recording(
    db: Database,
    storage: Storage,
    recording_id: int,
    *,
    layout: Layout = "speaker",
    force: bool = False,
    out: TextIO = sys.stderr,
) -> int:
    """Make recording ``recording_id``'s composite here; 0 when done, 1 when it failed.

    A composite queued or being made (by the server's job, or another command) is
    not started twice: both would write the same file. ``force`` overrides that,
    for a row a killed command left ``running``.
    """
    async with db.write() as session:
        row = await session.get(Recording, recording_id)
        if row is None:
            out.write(f"hoinghi: no recording {recording_id}\n")
            return 1
        if row.status not in (RecordingStatus.FINISHED, RecordingStatus.INTERRUPTED):
            out.write(f"hoinghi: recording {recording_id} is {row.status.value}, not finished\n")
            return 1
        busy = (CompositeStatus.QUEUED, CompositeStatus.RUNNING)
        if row.composite_status in busy and not force:
            out.write(
                f"hoinghi: recording {recording_id}'s composite is "
                f"{row.composite_status.value} already; --force if nothing is making it\n"
            )
            return 1
        row.composite_status = CompositeStatus.RUNNING
        row.composite_progress = 0.0
        session.add(row)
        key = row.path
    directory = storage.workdir(key)
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    last_write = [0.0]
    writes: list[concurrent.futures.Future[None]] = []  # progress rows, written on the loop

    stop = threading.Event()

    def progress(fraction: float) -> None:
        if stop.is_set() and fraction < 1.0:
            raise _Stopped  # compose() removes its temporary file on the way out
        progress_bar(out, fraction, started)
        now = time.monotonic()
        if now - last_write[0] >= 1.0:
            last_write[0] = now
            writes.append(
                asyncio.run_coroutine_threadsafe(_progress(db, recording_id, fraction), loop)
            )

    async def run() -> Path:
        try:
            return await asyncio.to_thread(compose, directory, layout=layout, progress=progress)
        finally:
            # The last state is written after every progress row, never under one.
            for write in writes:
                with contextlib.suppress(Exception):
                    await asyncio.wrap_future(write)

    work = asyncio.ensure_future(run())
    try:
        await asyncio.shield(work)
    except asyncio.CancelledError:
        # Ctrl+C. A thread cannot be cancelled: it is told to stop at its next progress
        # call (a fraction of a second), and the row must not say "running" for ever.
        stop.set()
        try:
            await work
        except Exception:
            out.write("\nhoinghi: stopped, no composite made\n")
            await _done(db, recording_id, CompositeStatus.FAILED, "stopped before it was done")
        else:
            await _done(db, recording_id, CompositeStatus.DONE, "")
        raise
    except Exception as e:
        out.write(f"\nhoinghi: the composite failed: {e}\n")
        await _done(db, recording_id, CompositeStatus.FAILED, str(e)[:500])
        return 1
    progress_bar(out, 1.0, started)
    out.write(f"\n{directory / COMPOSITE_NAME}\n")
    await _done(db, recording_id, CompositeStatus.DONE, "")
    return 0


class _Stopped(Exception):
    """Raised in the composite's thread, by its progress callback, to end it early."""


async def _progress(db: Database, recording_id: int, fraction: float) -> None:
    async with db.write() as session:
        row = await session.get(Recording, recording_id)
        if row is not None and row.composite_status is CompositeStatus.RUNNING:
            row.composite_progress = max(0.0, min(1.0, fraction))
            session.add(row)


async def _done(db: Database, recording_id: int, status: CompositeStatus, error: str) -> None:
    done = status is CompositeStatus.DONE
    await set_composite(
        db,
        recording_id,
        status,
        progress=1.0 if done else None,
        error=error,
        path=COMPOSITE_NAME if done else None,
        by="cli",
    )
