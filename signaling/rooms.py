"""Room owners and the room manager.

Each live room has one owner task (:class:`RoomRunner`). Sessions never touch
a room; they put actions on its queue. The owner applies a batch of actions
to the sans-I/O :class:`~signaling.room.Room`, commits the attendance and chat
those actions produced in one transaction, and only then sends the answers and
broadcasts: what a client sees acknowledged is on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa

from conference.attendance import close_after_crash, record_heartbeats
from conference.db import Database
from conference.meetings import set_status
from conference.models import AttendanceEvent, ChatMessage, Meeting, MeetingStatus, Unit
from conference.timezone import utcnow

from . import messages as m
from .bus import Bus, BusEvent
from .errors import RequestRefused
from .ice import IceServers
from .media import MediaEngine, MediaEvent, RoomPolicy
from .participant import ParticipantState, Role
from .room import Effects, MeetingInfo, Room, RoomState

__all__ = [
    "Arrival",
    "ParticipantOverview",
    "Peer",
    "RoomManager",
    "RoomOverview",
    "RoomRunner",
    "RoomSettings",
]

log = logging.getLogger(__name__)

BATCH = 64
MEDIA_TYPES = frozenset({"publish", "unpublish", "answer", "resubscribe", "ice"})


class Peer(Protocol):
    """What a room needs of a connection. Both calls return at once."""

    def deliver(self, text: str) -> None: ...
    def close(self, code: int, reason: str) -> None: ...


@dataclass(frozen=True, slots=True)
class RoomSettings:
    reconnect_grace: float = 30.0
    heartbeat_interval: float = 30.0
    # The room ends by itself this long after the scheduled end.
    end_grace: float = 3600.0
    ice: IceServers = field(default_factory=IceServers)
    # Camera videos each full-bandwidth site receives, besides the chair and the floor.
    last_n: int = 4


@dataclass(frozen=True, slots=True)
class Arrival:
    """Who is joining, from a verified invitation token."""

    unit_code: str
    unit_name: str
    unit_id: int | None
    role: Role
    display_name: str
    client_info: dict[str, Any]
    bandwidth: str


@dataclass(frozen=True, slots=True)
class ParticipantOverview:
    """One site in a room, as the administrators' status page shows it."""

    unit_code: str
    unit_name: str
    role: str  # chair, participant, observer
    state: str  # lobby, active, disconnected (waiting to resume)


@dataclass(frozen=True, slots=True)
class RoomOverview:
    """A snapshot of one open room (read-only; the recorder is not a participant)."""

    meeting_id: int
    title: str
    state: str  # open (before the start), live
    starts_at: datetime
    ends_at: datetime
    opened_at: datetime | None  # when this process opened the room
    live_since: datetime | None  # when it went live here
    recording: bool
    connected: int
    lobby: int
    participants: tuple[ParticipantOverview, ...]


# --- actions a room's owner applies ---------------------------------------------


@dataclass(slots=True)
class _Join:
    peer: Peer
    arrival: Arrival
    request_id: str | None
    done: asyncio.Future[str]


@dataclass(slots=True)
class _Resume:
    peer: Peer
    resume_token: str
    request_id: str | None
    done: asyncio.Future[str]


@dataclass(slots=True)
class _Message:
    peer: Peer
    participant: str
    message: m.ClientMessage


@dataclass(slots=True)
class _Disconnect:
    peer: Peer
    participant: str


@dataclass(slots=True)
class _Call:
    """Run ``step(now)`` on the owner task (timers, shutdown)."""

    step: Callable[[datetime], Effects]
    name: str = ""


_Action = _Join | _Resume | _Message | _Disconnect | _Call


@dataclass(slots=True)
class _Pending:
    effects: Effects = field(default_factory=Effects)
    # Each joining session learns its participant id, or the refusal it was sent.
    futures: list[tuple[asyncio.Future[str], str | RequestRefused]] = field(default_factory=list)
    errors: list[tuple[Peer, RequestRefused, str | None]] = field(default_factory=list)


class RoomRunner:
    """The owner task of one room."""

    def __init__(
        self,
        room: Room,
        *,
        db: Database,
        bus: Bus,
        media: MediaEngine,
        settings: RoomSettings,
        on_closed: Callable[[RoomRunner], None],
    ) -> None:
        self.room = room
        self.db = db
        self.bus = bus
        self.media = media
        self.settings = settings
        self.peers: dict[str, Peer] = {}
        self._queue: asyncio.Queue[_Action] = asyncio.Queue()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._grace: dict[str, asyncio.TimerHandle] = {}
        self._on_closed = on_closed
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        # Media calls run one at a time, in order (a policy before the publish that
        # follows it, a publish before its ICE candidates), off the owner task.
        self._media_calls: asyncio.Queue[tuple[Callable[[], Awaitable[None]], str]] = (
            asyncio.Queue()
        )
        self._media_task: asyncio.Task[None] | None = None
        self._sent_policy: RoomPolicy | None = None
        self.opened_at: datetime | None = None
        self.live_since: datetime | None = None

    @property
    def meeting_id(self) -> int:
        return self.room.info.meeting_id

    @property
    def ended(self) -> bool:
        return self.room.state is RoomState.ENDED

    def start(self, now: datetime) -> None:
        loop = asyncio.get_running_loop()
        self.opened_at = now
        self._task = asyncio.create_task(self._run(), name=f"room-{self.meeting_id}")
        self._task.add_done_callback(self._finished)
        info = self.room.info
        until_live = (info.starts_at - now).total_seconds()
        if until_live <= 0:
            self._queue.put_nowait(_Call(self.room.go_live, "live"))
        else:
            self._timers["live"] = loop.call_later(
                until_live, self._queue.put_nowait, _Call(self.room.go_live, "live")
            )
        until_end = (info.ends_at - now).total_seconds() + self.settings.end_grace
        self._timers["end"] = loop.call_later(
            max(until_end, 0),
            self._queue.put_nowait,
            _Call(lambda t: self.room.end(t, "scheduled end"), "end"),
        )
        self._schedule_heartbeat()

    def _schedule_heartbeat(self) -> None:
        loop = asyncio.get_running_loop()
        self._timers["heartbeat"] = loop.call_later(
            self.settings.heartbeat_interval,
            self._queue.put_nowait,
            _Call(self._heartbeat, "heartbeat"),
        )

    # --- the session side (any task) -------------------------------------------

    async def join(self, peer: Peer, arrival: Arrival, request_id: str | None) -> str:
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Join(peer, arrival, request_id, done))
        return await done

    async def resume(self, peer: Peer, resume_token: str, request_id: str | None) -> str:
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Resume(peer, resume_token, request_id, done))
        return await done

    def message(self, peer: Peer, participant: str, message: m.ClientMessage) -> None:
        self._queue.put_nowait(_Message(peer, participant, message))

    def disconnected(self, peer: Peer, participant: str) -> None:
        self._queue.put_nowait(_Disconnect(peer, participant))

    def call(self, step: Callable[[datetime], Effects], name: str = "") -> None:
        self._queue.put_nowait(_Call(step, name))

    def has_resume_token(self, token: str) -> bool:
        return self.room.holder_of(token) is not None

    def overview(self) -> RoomOverview:
        """The room as it is now (read-only): state, recording, who is in it."""
        room = self.room
        shown = (ParticipantState.ACTIVE, ParticipantState.LOBBY, ParticipantState.DISCONNECTED)
        people = tuple(
            ParticipantOverview(p.unit_code, p.unit_name, p.role.value, p.state.value)
            for p in room.participants.values()
            if not p.hidden and p.state in shown
        )
        return RoomOverview(
            meeting_id=self.meeting_id,
            title=room.info.title,
            state=room.state.value,
            starts_at=room.info.starts_at,
            ends_at=room.info.ends_at,
            opened_at=self.opened_at,
            live_since=self.live_since,
            recording=room.recording,
            connected=sum(p.state == ParticipantState.ACTIVE for p in people),
            lobby=sum(p.state == ParticipantState.LOBBY for p in people),
            participants=people,
        )

    # --- the owner ---------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            now = utcnow()
            pending = _Pending()
            for action in batch:
                self._step(action, now, pending)
            try:
                await self._persist(pending.effects, now)
            except Exception as e:
                log.exception("room %s: could not record attendance", self.meeting_id)
                for future, _ in pending.futures:
                    if not future.done():
                        future.set_exception(
                            RequestRefused("internal_error", "could not record attendance")
                        )
                raise RuntimeError("room owner stopped: the database refused a write") from e
            self._dispatch(pending)
            if self.live_since is None and self.room.state is RoomState.LIVE:
                self.live_since = now
            if self.ended:
                await self._shutdown()
                return
            self._sync_media()

    def _step(self, action: _Action, now: datetime, pending: _Pending) -> None:
        room = self.room
        try:
            if isinstance(action, _Join):
                a = action.arrival
                participant, fx = room.join(
                    unit_code=a.unit_code,
                    unit_name=a.unit_name,
                    unit_id=a.unit_id,
                    display_name=a.display_name,
                    role=a.role,
                    client_info=a.client_info,
                    bandwidth=a.bandwidth,
                    now=now,
                    ice_servers=self.settings.ice.for_user(a.unit_code),
                    request_id=action.request_id,
                )
                self.peers[participant.id] = action.peer
                pending.futures.append((action.done, participant.id))
            elif isinstance(action, _Resume):
                known = room.holder_of(action.resume_token)
                ice = self.settings.ice.for_user(known.unit_code) if known is not None else []
                participant, fx = room.resume(action.resume_token, now, ice, action.request_id)
                replaced = [c for c in fx.closes if c[0] == participant.id and c[1] == 4009]
                old = self.peers.get(participant.id)
                if replaced and old is not None and old is not action.peer:
                    old.close(4009, replaced[0][2])
                fx.closes = [c for c in fx.closes if c not in replaced]
                self.peers[participant.id] = action.peer
                pid = participant.id
                self._media_call(lambda: self.media.refresh(self.meeting_id, pid), "refresh")
                timer = self._grace.pop(participant.id, None)
                if timer is not None:
                    timer.cancel()
                pending.futures.append((action.done, participant.id))
            elif isinstance(action, _Message):
                if self.peers.get(action.participant) is not action.peer:
                    return  # a message from a replaced connection
                if action.message.type in MEDIA_TYPES:
                    self._media(action, pending)
                    return
                fx = room.handle(action.participant, action.message, now)
            elif isinstance(action, _Disconnect):
                if self.peers.get(action.participant) is not action.peer:
                    return  # the participant resumed on another connection already
                del self.peers[action.participant]
                fx = room.disconnect(action.participant, now)
                gone = room.participants.get(action.participant)
                if gone is not None and gone.state is ParticipantState.DISCONNECTED:
                    pid = gone.id
                    self._grace[pid] = asyncio.get_running_loop().call_later(
                        self.settings.reconnect_grace,
                        self.call,
                        lambda t, pid=pid: self._expire(pid, t),
                        "expire",
                    )
            else:
                fx = action.step(now)
        except RequestRefused as refused:
            if isinstance(action, (_Join, _Resume)):
                pending.errors.append((action.peer, refused, action.request_id))
                pending.futures.append((action.done, refused))
            elif isinstance(action, _Message):
                pending.errors.append((action.peer, refused, action.message.id))
            else:
                log.warning("room %s: %s refused: %s", self.meeting_id, action, refused.message)
            return
        pending.effects.extend(fx)

    def _expire(self, pid: str, now: datetime) -> Effects:
        self._grace.pop(pid, None)
        return self.room.expire(pid, now)

    def _heartbeat(self, now: datetime) -> Effects:
        endpoints = [
            (p.id, p.unit_id)
            for p in self.room.participants.values()
            if p.state is ParticipantState.ACTIVE and not p.hidden
        ]
        if endpoints:
            task = asyncio.create_task(self._write_heartbeats(endpoints, now))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        self._schedule_heartbeat()
        return Effects()

    async def _write_heartbeats(
        self, endpoints: list[tuple[str, int | None]], now: datetime
    ) -> None:
        try:
            async with self.db.write() as session:
                await record_heartbeats(session, self.meeting_id, endpoints, now)
        except Exception:
            log.exception("room %s: heartbeat not recorded", self.meeting_id)

    def _media(self, action: _Message, pending: _Pending) -> None:
        """Media requests go to the engine off the owner task, so SDP work never stalls the room."""
        participant = self.room.participants.get(action.participant)
        msg = action.message
        if participant is None or participant.state is not ParticipantState.ACTIVE:
            pending.errors.append(
                (action.peer, RequestRefused("forbidden", "wait until you are admitted"), msg.id)
            )
            return
        refusal = None
        if msg.type == "publish" and participant.role is Role.OBSERVER:
            refusal = RequestRefused("forbidden", "observers do not publish")
        elif (
            isinstance(msg, m.Publish)
            and msg.source == "screen"
            and self.room.presenter != participant.id
        ):
            refusal = RequestRefused("forbidden", "the chair has not made you the presenter")
        if refusal is not None:
            pending.errors.append((action.peer, refusal, msg.id))
            return
        peer, pid = action.peer, participant.id
        self._media_call(lambda: self._run_media(peer, pid, msg), msg.type)

    def _media_call(self, call: Callable[[], Awaitable[None]], name: str) -> None:
        self._media_calls.put_nowait((call, name))
        if self._media_task is None or self._media_task.done():
            self._media_task = asyncio.create_task(
                self._media_loop(), name=f"room-{self.meeting_id}-media"
            )

    async def _media_loop(self) -> None:
        while True:
            call, name = await self._media_calls.get()
            try:
                await call()
            except RequestRefused as refused:
                log.warning("room %s: media %s refused: %s", self.meeting_id, name, refused.message)
            except Exception:
                log.exception("room %s: media %s failed", self.meeting_id, name)

    def _sync_media(self) -> None:
        """Tell the engine who is in the room's media, when that changed."""
        policy = self.room.media_policy(self.settings.last_n)
        if policy == self._sent_policy:
            return
        self._sent_policy = policy
        self._media_call(lambda: self.media.set_policy(self.meeting_id, policy), "policy")

    def media_event(self, event: MediaEvent, now: datetime) -> Effects:
        """An engine event, on the owner task: protocol messages for the room."""
        fx = Effects()
        everyone = [
            p.id for p in self.room.participants.values() if p.state is ParticipantState.ACTIVE
        ]
        if event.type in ("subscribe_offer", "video_pause") and event.participant is not None:
            fx.send([event.participant], {"type": event.type, **event.data})
        elif event.type == "active_speaker":
            fx.send(everyone, {"type": "active_speaker", "participant": event.data["participant"]})
        elif event.type == "media_reset":
            # A new worker knows nothing of this room: send it everything again.
            self._sent_policy = None
            fx.send(everyone, {"type": "media_reset", "reason": event.data.get("reason", "")})
        return fx

    async def _run_media(self, peer: Peer, pid: str, msg: m.ClientMessage) -> None:
        reply: dict[str, Any] | None
        try:
            if isinstance(msg, m.Publish):
                sdp = await self.media.publish(self.meeting_id, pid, msg.source, msg.sdp)
                reply = {"type": "publish_answer", "sdp": sdp, "source": msg.source}
            elif isinstance(msg, m.Unpublish):
                await self.media.unpublish(self.meeting_id, pid, msg.source)
                reply = {"type": "ack"}
            elif isinstance(msg, m.Answer):
                await self.media.subscriber_answer(self.meeting_id, pid, msg.offer_id, msg.sdp)
                reply = {"type": "ack"}
            elif isinstance(msg, m.Resubscribe):
                await self.media.resubscribe(self.meeting_id, pid)
                reply = {"type": "ack"}
            elif isinstance(msg, m.Ice):
                await self.media.add_ice_candidate(
                    self.meeting_id,
                    pid,
                    msg.target,
                    msg.source,
                    msg.candidate,
                    msg.sdp_mid,
                    msg.sdp_mline_index,
                )
                reply = None
            else:  # pragma: no cover - routed here only for the media types
                return
        except RequestRefused as refused:
            peer.deliver(_error(refused, msg.id))
            return
        except Exception:
            log.exception("room %s: media request %s failed", self.meeting_id, msg.type)
            peer.deliver(
                _error(RequestRefused("internal_error", "the media engine failed"), msg.id)
            )
            return
        if reply is not None:
            if msg.id is not None:
                reply["id"] = msg.id
            peer.deliver(m.dumps(reply))

    async def _persist(self, fx: Effects, now: datetime) -> None:
        if not (fx.attendance or fx.chats or fx.status):
            return
        meeting_id = self.meeting_id
        async with self.db.write() as session:
            # Core inserts (executemany), not ORM objects: this write sits between a
            # chat and its broadcast, and the unit-of-work flush costs more than it.
            connection = await session.connection()
            if fx.attendance:
                await connection.execute(
                    sa.insert(AttendanceEvent),
                    [
                        {
                            "meeting_id": meeting_id,
                            "unit_id": r.unit_id,
                            "participant_session": r.participant,
                            "kind": r.kind,
                            "at": r.at,
                            "client_info": r.info,
                        }
                        for r in fx.attendance
                    ],
                )
            if fx.chats:
                await connection.execute(
                    sa.insert(ChatMessage),
                    [
                        {
                            "meeting_id": meeting_id,
                            "participant_session": c.participant,
                            "unit_id": c.unit_id,
                            "display_name": c.display_name,
                            "recipients": c.to,
                            "text": c.text,
                            "at": c.at,
                        }
                        for c in fx.chats
                    ],
                )
            if fx.status is not None:
                meeting = await session.get(Meeting, meeting_id)
                if meeting is not None:
                    target = (
                        MeetingStatus.LIVE if fx.status is RoomState.LIVE else MeetingStatus.ENDED
                    )
                    if meeting.status not in (target, MeetingStatus.ENDED, MeetingStatus.CANCELLED):
                        set_status(meeting, target)
                        session.add(meeting)

    def _dispatch(self, pending: _Pending) -> None:
        fx = pending.effects
        for recipients, message in fx.messages:
            text = m.dumps(message)
            for pid in recipients:
                peer = self.peers.get(pid)
                if peer is not None:
                    peer.deliver(text)
        for peer, refused, request_id in pending.errors:
            peer.deliver(_error(refused, request_id))
            if refused.close_code is not None:
                peer.close(refused.close_code, refused.message[:120])
        for pid, code, reason in fx.closes:
            peer = self.peers.pop(pid, None)
            if peer is not None:
                peer.close(code, reason)
            timer = self._grace.pop(pid, None)
            if timer is not None:
                timer.cancel()
        for future, outcome in pending.futures:
            if future.done():
                continue
            if isinstance(outcome, RequestRefused):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        for name, data in fx.events:
            self.bus.publish(BusEvent(name, data))

    def _finished(self, task: asyncio.Task[None]) -> None:
        """If the owner died, fail whoever waits and close every socket (1011): clients
        reconnect and the manager makes a new owner from the stored state."""
        if task.cancelled() or task.exception() is None:
            return
        log.error("room %s: owner task died", self.meeting_id, exc_info=task.exception())
        failure = RequestRefused("internal_error", "the room failed; reconnect")
        while not self._queue.empty():
            action = self._queue.get_nowait()
            if isinstance(action, (_Join, _Resume)) and not action.done.done():
                action.done.set_exception(failure)
                action.peer.close(1011, "room failed")
        for peer in self.peers.values():
            peer.close(1011, "room failed")
        self.peers.clear()
        for handle in [*self._timers.values(), *self._grace.values()]:
            handle.cancel()
        self._on_closed(self)

    async def _shutdown(self) -> None:
        for handle in [*self._timers.values(), *self._grace.values()]:
            handle.cancel()
        self._timers.clear()
        self._grace.clear()
        if self._media_task is not None:
            self._media_task.cancel()
        with contextlib.suppress(Exception):
            await self.media.close_room(self.meeting_id)
        self._on_closed(self)

    async def stop(self, code: int = 1012, reason: str = "server restarting") -> None:
        """Server shutdown: record every connected participant as disconnected, close sockets.

        The meeting is not ended; its participants reconnect when the server is back.
        """
        if self._task is None or self._task.done():
            return
        now = utcnow()
        fx = Effects()
        for pid, p in list(self.room.participants.items()):
            if p.state in (ParticipantState.ACTIVE, ParticipantState.LOBBY):
                fx.extend(self.room.disconnect(pid, now))
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        try:
            await self._persist(fx, now)
        except Exception:
            log.exception("room %s: disconnects not recorded at shutdown", self.meeting_id)
        for peer in self.peers.values():
            peer.close(code, reason)
        self.peers.clear()
        for handle in [*self._timers.values(), *self._grace.values()]:
            handle.cancel()
        for task in list(self._background):
            task.cancel()
        if self._media_task is not None:
            self._media_task.cancel()


def _error(refused: RequestRefused, request_id: str | None) -> str:
    message: dict[str, Any] = {"type": "error", "code": refused.code, "message": refused.message}
    if request_id is not None:
        message["request_id"] = request_id
    return m.dumps(message)


class RoomManager:
    """Creates a room's owner on first arrival and forgets it when the room ends."""

    def __init__(self, db: Database, bus: Bus, media: MediaEngine, settings: RoomSettings) -> None:
        self.db = db
        self.bus = bus
        self.media = media
        self.settings = settings
        self.runners: dict[int, RoomRunner] = {}
        self._lock = asyncio.Lock()
        media.attach(self._media_event)

    def _media_event(self, meeting_id: int, event: MediaEvent) -> None:
        runner = self.runners.get(meeting_id)
        if runner is not None and not runner.ended:
            runner.call(lambda now: runner.media_event(event, now), "media")

    async def recover(self) -> int:
        """Close what a crash left open. Call once at start, before any room opens."""
        async with self.db.write() as session:
            closed = await close_after_crash(session, utcnow())
        if closed:
            log.warning("closed %d attendance intervals left open by a crash", len(closed))
        return len(closed)

    async def runner_for(self, meeting: Meeting) -> RoomRunner:
        assert meeting.id is not None
        async with self._lock:
            runner = self.runners.get(meeting.id)
            if runner is not None and not runner.ended:
                return runner
            async with self.db.write() as session:
                row = await session.get(Meeting, meeting.id)
                assert row is not None
                chair = await session.get(Unit, row.chair_unit_id)
                assert chair is not None
                if row.status is MeetingStatus.SCHEDULED:
                    set_status(row, MeetingStatus.OPEN)
                    session.add(row)
                info = MeetingInfo(
                    meeting_id=meeting.id,
                    title=row.title,
                    starts_at=row.starts_at,
                    ends_at=row.ends_at,
                    chair_unit=chair.code,
                    auto_admit=row.auto_admit,
                    recording=row.recording,
                )
            runner = RoomRunner(
                Room(info),
                db=self.db,
                bus=self.bus,
                media=self.media,
                settings=self.settings,
                on_closed=self._closed,
            )
            self.runners[meeting.id] = runner
            runner.start(utcnow())
            return runner

    def end_room(self, meeting_id: int, reason: str) -> bool:
        """End a room that is open (its meeting was cancelled or ended from outside)."""
        runner = self.runners.get(meeting_id)
        if runner is None or runner.ended:
            return False
        runner.call(lambda now: runner.room.end(now, reason), "end")
        return True

    def overview(self) -> list[RoomOverview]:
        """Every open room of this process, by meeting id (read-only)."""
        return [
            self.runners[mid].overview()
            for mid in sorted(self.runners)
            if not self.runners[mid].ended
        ]

    def find_resume(self, resume_token: str) -> RoomRunner | None:
        return next((r for r in self.runners.values() if r.has_resume_token(resume_token)), None)

    def _closed(self, runner: RoomRunner) -> None:
        if self.runners.get(runner.meeting_id) is runner:
            del self.runners[runner.meeting_id]

    async def close(self) -> None:
        await asyncio.gather(*(r.stop() for r in list(self.runners.values())))
        self.runners.clear()
