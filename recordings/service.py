"""The recording service: starts and stops recorders as rooms ask, finalises, tells.

It follows the event bus. ``recording.state`` on (a meeting with recording on
goes live, or the chair starts recording) starts a recorder process and joins
it to the room with the hidden ``recorder`` role; off, or ``room.ended``, stops
it, finalises the files (``segments.finalize_recording``: per-track WebM and a
manifest), updates the row and publishes ``recording.finished``, then runs the
configured command. A recorder that cannot write (disk full) marks the
recording failed with the reason and publishes ``recording.failed``; the room
turns recording off, so everyone sees it, and the meeting goes on.

On start, rows a crash left in ``recording`` are finalised from what is on disk
and marked ``interrupted`` (their duration kept).

Retention: every hour (and when an administrator asks) a sweep deletes the
recordings older than the period in force and not marked keep. The period is
the one an administrator stored (``conference.settings_store``), else the
configuration's ``recording_retention_days``; it is read at each sweep, so a
change holds from the next one, and 0 keeps everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlmodel import col, func, select

from conference.actors import SYSTEM, Actor
from conference.audit import record_audit
from conference.db import Database
from conference.models import Invitation, Meeting, Recording, RecordingStatus, Unit
from conference.recordings import expired_recordings
from conference.settings_store import RETENTION_DAYS, RetentionPolicy, retention_policy
from conference.timezone import utcnow
from signaling import messages as m
from signaling.bus import Bus, BusEvent
from signaling.errors import RequestRefused
from signaling.participant import Role
from signaling.rooms import Arrival, RoomManager, RoomRunner
from signaling.sfu.ipc import encode, read_frame

from .hooks import record_command, recording_env, run_command
from .manifest import MANIFEST_NAME
from .segments import finalize_recording
from .storage import Storage, recording_key

__all__ = ["RecorderSettings", "RecordingService", "RetentionPreview", "RetentionSweep"]

log = logging.getLogger(__name__)

RECORDER_NAME = "Máy ghi hình"
STOP_TIMEOUT = 15.0  # seconds a recorder has to close its files


@dataclass(frozen=True, slots=True)
class RecorderSettings:
    enabled: bool = True  # False without a media engine: nothing to record from
    media_address: str = ""
    command: str = ""
    command_timeout: float = 600.0
    retention_days: int = 0  # the default until an administrator stores one; 0: forever
    log_level: str = "INFO"


RETENTION_EVERY = 3600.0  # seconds between retention sweeps


@dataclass(frozen=True, slots=True)
class RetentionPreview:
    days: int  # the period in force (0: nothing is ever deleted)
    recordings: int  # what a sweep now would delete
    size_bytes: int


@dataclass(frozen=True, slots=True)
class RetentionSweep:
    days: int
    purged: list[int]  # recording ids deleted
    size_bytes: int
    failed: int  # expired, but their files could not be deleted (tried again next time)


class _RecorderPeer:
    """The room's view of the recorder: protocol messages go down the socket."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.closed = False

    def deliver(self, text: str) -> None:
        if not self.writer.is_closing():
            self.writer.write(encode({"op": "deliver", "text": text}))

    def close(self, code: int, reason: str) -> None:
        self.closed = True
        log.info("room closed the recorder: %s %s", code, reason)


@dataclass(slots=True)
class _Active:
    recording_id: int
    meeting_id: int
    number: int
    title: str
    key: str
    directory: Path
    started_at: datetime
    process: asyncio.subprocess.Process
    writer: asyncio.StreamWriter
    peer: _RecorderPeer
    runner: RoomRunner | None = None
    participant: str | None = None
    reader_task: asyncio.Task[None] | None = None
    failure: str = ""
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    units: set[int] = field(default_factory=set)


class RecordingService:
    def __init__(
        self,
        db: Database,
        storage: Storage,
        rooms: RoomManager,
        bus: Bus,
        settings: RecorderSettings,
    ) -> None:
        self.db = db
        self.storage = storage
        self.rooms = rooms
        self.bus = bus
        self.settings = settings
        self.active: dict[int, _Active] = {}  # meeting id -> its running recorder
        self._follow: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._locks: dict[int, asyncio.Lock] = {}
        self._background: set[asyncio.Task[Any]] = set()

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        await self.recover()
        events = self.bus.subscribe()
        self._follow = asyncio.create_task(self._run(events), name="recordings")
        # Always running: each sweep reads the period in force (an administrator may
        # change it at any time), and does nothing while it is 0.
        self._sweeper = asyncio.create_task(self._sweep(), name="recordings-retention")

    async def close(self) -> None:
        for task in (self._follow, self._sweeper):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await asyncio.gather(*(self.stop(mid) for mid in list(self.active)))
        for task in list(self._background):
            with contextlib.suppress(Exception):
                await task

    async def _run(self, events: Any) -> None:
        async for event in events:
            try:
                await self._on_event(event)
            except Exception:
                log.exception("recordings: could not handle %s", event.name)

    async def _on_event(self, event: BusEvent) -> None:
        meeting_id = event.data.get("meeting_id")
        if not isinstance(meeting_id, int):
            return
        if event.name == "recording.state":
            if not self.settings.enabled:
                log.warning("meeting %s: recording asked for, but media is off", meeting_id)
                return
            if event.data.get("on"):
                self._spawn(self.begin(meeting_id))
            else:
                self._spawn(self.stop(meeting_id))
        elif event.name == "room.ended":
            self._spawn(self.stop(meeting_id))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _lock(self, meeting_id: int) -> asyncio.Lock:
        return self._locks.setdefault(meeting_id, asyncio.Lock())

    # --- start ------------------------------------------------------------------------

    async def begin(self, meeting_id: int) -> int | None:
        """Start recording ``meeting_id``; the recording's id, None if it could not start."""
        async with self._lock(meeting_id):
            if meeting_id in self.active:
                return self.active[meeting_id].recording_id
            runner = self.rooms.runners.get(meeting_id)
            if runner is None or runner.ended:
                return None
            now = utcnow()
            async with self.db.write() as session:
                meeting = await session.get(Meeting, meeting_id)
                if meeting is None:
                    return None
                count = await session.scalar(
                    select(func.count()).where(col(Recording.meeting_id) == meeting_id)
                )
                number = int(count or 0) + 1
                row = Recording(
                    meeting_id=meeting_id,
                    number=number,
                    status=RecordingStatus.RECORDING,
                    started_at=now,
                    path=recording_key(meeting.title, meeting_id, number, now),
                )
                session.add(row)
                await session.flush()
                assert row.id is not None
                recording_id, title, key = row.id, meeting.title, row.path
                units = await self._unit_ids(session, meeting_id)
            try:
                directory = self.storage.workdir(key)
                active = await self._launch(
                    recording_id, meeting_id, number, title, key, directory, now
                )
            except OSError as e:
                await self._failed_to_start(recording_id, meeting_id, runner, f"{e.strerror or e}")
                return None
            self.active[meeting_id] = active
            active.writer.write(encode({"op": "units", "units": units}))
            try:
                active.participant = await runner.join(
                    active.peer,
                    Arrival(
                        unit_code="",
                        unit_name=RECORDER_NAME,
                        unit_id=None,
                        role=Role.RECORDER,
                        display_name=RECORDER_NAME,
                        client_info={"app": "hoinghi-recorder"},
                        bandwidth="full",
                    ),
                    None,
                )
            except RequestRefused as e:
                log.warning("recording %s: the room refused the recorder: %s", recording_id, e)
                self.active.pop(meeting_id, None)
                await self._halt(active)
                await self._finish(active, utcnow(), RecordingStatus.FAILED, e.message)
                return None
            active.runner = runner
        self.bus.publish(
            BusEvent(
                "recording.started",
                {"meeting_id": meeting_id, "recording_id": recording_id, "number": number},
            )
        )
        log.info("recording %s of meeting %s started in %s", recording_id, meeting_id, key)
        return recording_id

    async def _unit_ids(self, session: Any, meeting_id: int) -> dict[str, int]:
        rows = await session.exec(
            select(Unit.code, Unit.id)
            .join(Invitation, col(Invitation.unit_id) == col(Unit.id))
            .where(col(Invitation.meeting_id) == meeting_id)
        )
        return {code: uid for code, uid in rows.all()}

    async def _launch(
        self,
        recording_id: int,
        meeting_id: int,
        number: int,
        title: str,
        key: str,
        directory: Path,
        started_at: datetime,
    ) -> _Active:
        ours, theirs = socket.socketpair()
        try:
            args = [
                sys.executable, "-m", "recordings.recorder",
                "--fd", str(theirs.fileno()),
                "--dir", str(directory),
                "--started", repr(started_at.timestamp()),
                "--log-level", self.settings.log_level,
            ]  # fmt: skip
            if self.settings.media_address:
                args += ["--announce", self.settings.media_address]
            process = await asyncio.create_subprocess_exec(*args, pass_fds=(theirs.fileno(),))
        finally:
            theirs.close()
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        active = _Active(
            recording_id=recording_id,
            meeting_id=meeting_id,
            number=number,
            title=title,
            key=key,
            directory=directory,
            started_at=started_at,
            process=process,
            writer=writer,
            peer=_RecorderPeer(writer),
        )
        active.reader_task = asyncio.create_task(self._read(active, reader))
        return active

    async def _read(self, active: _Active, reader: asyncio.StreamReader) -> None:
        """What the recorder process says: answers for the room, tracks, failures."""
        try:
            while (frame := await read_frame(reader)) is not None:
                op = frame.get("op")
                if op == "send" and active.runner is not None and active.participant:
                    try:
                        message = m.parse(json.dumps(frame["message"], ensure_ascii=False))
                    except RequestRefused:
                        log.warning("recorder sent a bad message: %s", frame["message"])
                        continue
                    active.runner.message(active.peer, active.participant, message)
                elif op == "track":
                    if isinstance(frame.get("unit_id"), int):
                        active.units.add(frame["unit_id"])
                elif op == "failed":
                    active.failure = str(frame.get("reason", "the recorder failed"))[:500]
                    self._spawn(self.fail(active.meeting_id, active.failure))
                elif op == "stopped":
                    break
        except (ConnectionError, ValueError) as e:
            log.warning("recording %s: recorder link: %s", active.recording_id, e)
        finally:
            active.stopped.set()

    # --- stop ---------------------------------------------------------------------------

    async def stop(self, meeting_id: int) -> None:
        """Stop recording ``meeting_id`` (chair, end of the room, shutdown) and finalise."""
        async with self._lock(meeting_id):
            active = self.active.pop(meeting_id, None)
            if active is None:
                return
            ended = utcnow()  # the recording ends when asked to, not when files are closed
            await self._halt(active)
            if active.failure:
                await self._finish(active, ended, RecordingStatus.FAILED, active.failure)
            elif active.process.returncode not in (0, None):
                await self._finish(
                    active,
                    ended,
                    RecordingStatus.FAILED,
                    f"the recorder process ended with status {active.process.returncode}",
                )
            else:
                await self._finish(active, ended, RecordingStatus.FINISHED, "")

    async def fail(self, meeting_id: int, reason: str) -> None:
        """The recorder cannot write: stop it, turn the room's recording off."""
        runner = self.rooms.runners.get(meeting_id)
        if runner is not None and not runner.ended:
            runner.call(lambda now: runner.room.recording_failed(reason, now), "recording_failed")
        await self.stop(meeting_id)

    async def _halt(self, active: _Active) -> None:
        if active.runner is not None and active.participant and not active.runner.ended:
            active.runner.message(active.peer, active.participant, m.Leave(type="leave"))
        if not active.writer.is_closing():
            active.writer.write(encode({"op": "stop"}))
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await active.stopped.wait()
                await active.process.wait()
        except TimeoutError:
            log.error("recording %s: the recorder did not stop; killed", active.recording_id)
            with contextlib.suppress(ProcessLookupError):
                active.process.kill()
            await active.process.wait()
        active.writer.close()

    async def _failed_to_start(
        self, recording_id: int, meeting_id: int, runner: RoomRunner, reason: str
    ) -> None:
        log.error("recording %s could not start: %s", recording_id, reason)
        async with self.db.write() as session:
            row = await session.get(Recording, recording_id)
            if row is not None:
                row.status = RecordingStatus.FAILED
                row.failure = reason[:500]
                row.ended_at = utcnow()
                session.add(row)
        self.bus.publish(
            BusEvent(
                "recording.failed",
                {"meeting_id": meeting_id, "recording_id": recording_id, "reason": reason},
            )
        )
        runner.call(lambda now: runner.room.recording_failed(reason, now), "recording_failed")

    async def _finish(
        self, active: _Active, ended: datetime, status: RecordingStatus, failure: str
    ) -> None:
        await self._finalise(
            active.recording_id,
            active.meeting_id,
            active.number,
            active.title,
            active.key,
            active.started_at,
            ended,
            status,
            failure,
        )

    async def _finalise(
        self,
        recording_id: int,
        meeting_id: int,
        number: int,
        title: str,
        key: str,
        started_at: datetime,
        ended_at: datetime,
        status: RecordingStatus,
        failure: str,
    ) -> None:
        directory = self.storage.workdir(key)
        manifest_status = "interrupted" if status is RecordingStatus.INTERRUPTED else "finished"
        duration = 0.0
        units: list[int] = []
        try:
            manifest = await asyncio.to_thread(
                finalize_recording,
                directory,
                recording_id=recording_id,
                meeting_id=meeting_id,
                number=number,
                title=title,
                started_at=started_at.isoformat(),
                ended_at=ended_at.isoformat(),
                status=manifest_status,
            )
            duration = manifest.duration_seconds
            units = sorted({t.unit_id for t in manifest.tracks if t.unit_id is not None})
            if not manifest.tracks and status is not RecordingStatus.FAILED:
                status, failure = RecordingStatus.FAILED, failure or "nothing was recorded"
        except Exception as e:
            log.exception("recording %s: could not finalise", recording_id)
            status, failure = RecordingStatus.FAILED, failure or f"could not finalise: {e}"
        size = 0
        with contextlib.suppress(OSError):
            size = self.storage.size(key)
        self.storage.commit(key)
        async with self.db.write() as session:
            row = await session.get(Recording, recording_id)
            if row is None:
                return
            row.status = status
            row.failure = failure[:500]
            row.ended_at = ended_at
            row.duration_seconds = duration
            row.size_bytes = size
            row.unit_ids = units
            session.add(row)
            record_audit(
                session,
                SYSTEM,
                f"recording.{status.value}",
                "recording",
                recording_id,
                meeting_id=meeting_id,
                duration_seconds=round(duration, 1),
                failure=failure,
            )
        data = {
            "meeting_id": meeting_id,
            "recording_id": recording_id,
            "number": number,
            "status": status.value,
            "duration_seconds": round(duration, 1),
            "size_bytes": size,
        }
        if status is RecordingStatus.FAILED:
            self.bus.publish(BusEvent("recording.failed", data | {"reason": failure}))
        else:
            self.bus.publish(BusEvent("recording.finished", data))
            # In the background: a slow command must not hold up the next recording.
            self._spawn(self._run_command(recording_id, meeting_id, directory, status))
        log.info("recording %s: %s, %.1f s, %d bytes", recording_id, status.value, duration, size)

    async def _run_command(
        self, recording_id: int, meeting_id: int, directory: Path, status: RecordingStatus
    ) -> None:
        if not self.settings.command:
            return
        env = recording_env(
            recording_id=recording_id,
            recording_dir=directory,
            meeting_id=meeting_id,
            manifest=directory / MANIFEST_NAME,
            status=status.value,
        )
        result = await run_command(self.settings.command, env, self.settings.command_timeout)
        log.info("recording %s: command exited %s", recording_id, result.exit_status)
        async with self.db.write() as session:
            record_command(session, result, recording_id=recording_id)

    # --- retention ------------------------------------------------------------------------

    async def retention(self) -> RetentionPolicy:
        """The retention period in force: the one an administrator stored, else the
        configuration's (``settings.retention_days``)."""
        async with self.db.read() as session:
            return await retention_policy(session, self.settings.retention_days)

    async def _sweep(self) -> None:
        while True:
            try:
                await self.sweep(utcnow())
            except Exception:
                log.exception("recordings: retention sweep failed")
            await asyncio.sleep(RETENTION_EVERY)

    async def retention_preview(self, now: datetime) -> RetentionPreview:
        """What a sweep at ``now`` would delete, without deleting anything."""
        async with self.db.read() as session:
            policy = await retention_policy(session, self.settings.retention_days)
            rows = await expired_recordings(session, now, policy.days)
        return RetentionPreview(
            days=policy.days,
            recordings=len(rows),
            size_bytes=sum(r.size_bytes for r in rows),
        )

    async def purge_expired(self, now: datetime) -> list[int]:
        """Delete recordings past the retention period (not marked keep): files and row."""
        return (await self.sweep(now)).purged

    async def sweep(self, now: datetime, actor: Actor = SYSTEM) -> RetentionSweep:
        """Delete recordings past the retention period in force (not marked keep, not
        recording): files and row, an audit entry each. A sweep that deleted something,
        or that ``actor`` asked for, also leaves a ``retention.sweep`` entry."""
        async with self.db.write() as session:
            policy = await retention_policy(session, self.settings.retention_days)
            rows = await expired_recordings(session, now, policy.days)
            purged: list[int] = []
            size = 0
            for row in rows:
                assert row.id is not None
                try:
                    self.storage.delete(row.path)
                except (OSError, ValueError) as e:
                    log.error("recording %s: could not delete %s: %s", row.id, row.path, e)
                    continue
                purged.append(row.id)
                size += row.size_bytes
                record_audit(
                    session,
                    SYSTEM,
                    "recording.purge",
                    "recording",
                    row.id,
                    meeting_id=row.meeting_id,
                    started_at=row.started_at.isoformat(),
                    retention_days=policy.days,
                )
                await session.delete(row)
            if purged or actor is not SYSTEM:
                record_audit(
                    session,
                    actor,
                    "retention.sweep",
                    "setting",
                    RETENTION_DAYS,
                    days=policy.days,
                    recordings=len(purged),
                    size_bytes=size,
                    failed=len(rows) - len(purged),
                )
        if purged:
            log.info("retention: deleted recordings %s", purged)
        return RetentionSweep(
            days=policy.days, purged=purged, size_bytes=size, failed=len(rows) - len(purged)
        )

    # --- after a crash -------------------------------------------------------------------

    async def recover(self) -> int:
        """Finalise recordings a crash left open; mark them interrupted."""
        async with self.db.read() as session:
            rows = (
                await session.exec(
                    select(Recording, Meeting.title)
                    .join(Meeting, col(Meeting.id) == col(Recording.meeting_id))
                    .where(col(Recording.status) == RecordingStatus.RECORDING)
                )
            ).all()
        for row, title in rows:
            assert row.id is not None
            log.warning("recording %s was open at start: finalising from disk", row.id)
            ended = self._last_write(row.path) or utcnow()
            await self._finalise(
                row.id,
                row.meeting_id,
                row.number,
                title,
                row.path,
                row.started_at,
                ended,
                RecordingStatus.INTERRUPTED,
                "the server stopped while recording",
            )
        return len(rows)

    def _last_write(self, key: str) -> datetime | None:
        """When the recorder last wrote (the latest file time), as the recording's end."""
        try:
            directory = self.storage.workdir(key)
        except (OSError, ValueError):
            return None
        latest = 0.0
        for dirpath, _dirs, files in os.walk(directory):
            for name in files:
                with contextlib.suppress(OSError):
                    latest = max(latest, (Path(dirpath) / name).stat().st_mtime)
        if not latest:
            return None
        return datetime.fromtimestamp(min(latest, time.time()), UTC)
