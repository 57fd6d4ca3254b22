"""The room state machine: participants, lobby, moderation, hands, floor, chat, roll call.

No I/O and no asyncio: every method takes the current time, changes the room,
and returns :class:`Effects` — messages to send, attendance to record, chat to
keep, sockets to close, events to publish. The room's owner task
(``rooms.py``) records attendance and chat *before* it sends anything, so an
acknowledged action is always on disk.

A method either raises :class:`RequestRefused` before it changes anything, or
succeeds completely.

Room states::

    open (lobby open, before the start) -> live -> ended
"""

from __future__ import annotations

import enum
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from conference.models import AttendanceKind

from . import messages as m
from .errors import RequestRefused
from .media import Bandwidth, MemberPolicy, RoomPolicy
from .participant import Participant, ParticipantState, Role

__all__ = [
    "AttendanceRecord",
    "ChatRecord",
    "Effects",
    "MeetingInfo",
    "Room",
    "RoomState",
]

log = logging.getLogger(__name__)


class RoomState(enum.StrEnum):
    OPEN = "open"
    LIVE = "live"
    ENDED = "ended"


_ROOM_TRANSITIONS = {
    RoomState.OPEN: frozenset({RoomState.LIVE, RoomState.ENDED}),
    RoomState.LIVE: frozenset({RoomState.ENDED}),
    RoomState.ENDED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class MeetingInfo:
    meeting_id: int
    title: str
    starts_at: datetime
    ends_at: datetime
    chair_unit: str
    auto_admit: bool
    recording: bool


@dataclass(frozen=True, slots=True)
class AttendanceRecord:
    kind: AttendanceKind
    participant: str
    unit_id: int | None
    at: datetime
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ChatRecord:
    participant: str
    unit_id: int | None
    display_name: str
    to: str
    text: str
    at: datetime


@dataclass(slots=True)
class Effects:
    """What one step of the room asks its owner to do, in order."""

    messages: list[tuple[tuple[str, ...], dict[str, Any]]] = field(default_factory=list)
    attendance: list[AttendanceRecord] = field(default_factory=list)
    chats: list[ChatRecord] = field(default_factory=list)
    closes: list[tuple[str, int, str]] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # Set when the meeting's stored status must follow the room (live, ended).
    status: RoomState | None = None

    def send(self, to: Iterable[str], message: dict[str, Any]) -> None:
        recipients = tuple(to)
        if recipients:
            self.messages.append((recipients, message))

    def reply(self, to: str, request_id: str | None, message: dict[str, Any]) -> None:
        if request_id is not None:
            message = {**message, "id": request_id}
        self.send((to,), message)

    def extend(self, other: Effects) -> None:
        self.messages += other.messages
        self.attendance += other.attendance
        self.chats += other.chats
        self.closes += other.closes
        self.events += other.events
        self.status = other.status or self.status


@dataclass(slots=True)
class RollCall:
    title: str
    opened_at: datetime
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    closed: bool = False


def new_id() -> str:
    return secrets.token_hex(6)


def _bandwidth(value: str) -> Bandwidth:
    return "low" if value == "low" else "audio" if value == "audio" else "full"


class Room:
    """One meeting's live state. Only its owner task calls these methods."""

    def __init__(self, info: MeetingInfo, *, id_factory: Callable[[], str] = new_id) -> None:
        self.info = info
        self.state = RoomState.OPEN
        self.participants: dict[str, Participant] = {}
        self.lobby: list[str] = []
        self.hands: list[tuple[str, datetime]] = []
        self.floor: str | None = None
        self.presenter: str | None = None  # may share a screen (given by the chair)
        self.locked = False
        self.recording = False
        self.roll_call: RollCall | None = None
        self._new_id = id_factory

    # --- queries -------------------------------------------------------------

    def _in_room(self) -> list[Participant]:
        """Participants that receive room traffic (active, including hidden ones)."""
        return [p for p in self.participants.values() if p.state is ParticipantState.ACTIVE]

    def _ids(self, people: Iterable[Participant], exclude: str | None = None) -> list[str]:
        return [p.id for p in people if p.id != exclude]

    def _chairs(self) -> list[Participant]:
        return [p for p in self._in_room() if p.is_chair]

    def _hand_raised(self, pid: str) -> bool:
        return any(h == pid for h, _ in self.hands)

    def entry(self, p: Participant) -> dict[str, Any]:
        return p.roster_entry(hand_raised=self._hand_raised(p.id))

    def roster(self) -> list[dict[str, Any]]:
        return [
            self.entry(p)
            for p in self.participants.values()
            if not p.hidden
            and (
                p.state is ParticipantState.ACTIVE
                or (p.state is ParticipantState.DISCONNECTED and p.admitted)
            )
        ]

    def lobby_entries(self) -> list[dict[str, Any]]:
        return [self.entry(self.participants[pid]) for pid in self.lobby]

    def hands_message(self) -> dict[str, Any]:
        return {
            "type": "hands",
            "queue": [{"participant": pid, "at": at.isoformat()} for pid, at in self.hands],
        }

    def snapshot(self, for_participant: Participant) -> dict[str, Any]:
        info = self.info
        snap: dict[str, Any] = {
            "meeting": {
                "id": info.meeting_id,
                "title": info.title,
                "starts_at": info.starts_at.isoformat(),
                "ends_at": info.ends_at.isoformat(),
                "chair_unit": info.chair_unit,
            },
            "state": self.state.value,
            "locked": self.locked,
            "recording": self.recording,
            "floor": self.floor,
            "presenter": self.presenter,
            "hands": self.hands_message()["queue"],
            "roster": self.roster(),
        }
        if for_participant.is_chair:
            snap["lobby"] = self.lobby_entries()
        if self.roll_call is not None:
            # The roll call under way or the last one, as its `roll_call` message says
            # it to this participant: whoever arrives or returns during it can answer.
            call = self._roll_call_message(
                for_chair=for_participant.is_chair, own=for_participant.id
            )
            del call["type"]
            snap["roll_call"] = call
        return snap

    def get(self, pid: str) -> Participant:
        p = self.participants.get(pid)
        if p is None or p.state is ParticipantState.LEFT:
            raise RequestRefused("unknown_participant", f"no participant {pid!r} in this room")
        return p

    # --- room lifecycle --------------------------------------------------------

    def _set_state(self, new: RoomState) -> None:
        if new not in _ROOM_TRANSITIONS[self.state]:
            raise RequestRefused(
                "forbidden", f"the room is {self.state.value}, cannot become {new.value}"
            )
        log.info("room %s: %s -> %s", self.info.meeting_id, self.state.value, new.value)
        self.state = new

    def go_live(self, now: datetime) -> Effects:
        """The scheduled start: admit the lobby if the meeting auto-admits, start recording."""
        fx = Effects()
        if self.state is not RoomState.OPEN:
            return fx
        self._set_state(RoomState.LIVE)
        fx.status = RoomState.LIVE
        fx.send(self._ids(self._in_room()), {"type": "room_state", "state": "live"})
        fx.events.append(("room.started", {"meeting_id": self.info.meeting_id}))
        if self.info.recording:
            fx.extend(self._set_recording(True, now))
        if self.info.auto_admit and not self.locked:
            fx.extend(self._admit_lobby(now))
        return fx

    def end(self, now: datetime, reason: str) -> Effects:
        fx = Effects()
        if self.state is RoomState.ENDED:
            return fx
        self._set_state(RoomState.ENDED)
        fx.status = RoomState.ENDED
        for p in self.participants.values():
            if p.state in (ParticipantState.ACTIVE, ParticipantState.LOBBY):
                if not p.hidden:
                    fx.attendance.append(
                        AttendanceRecord(
                            AttendanceKind.LEAVE, p.id, p.unit_id, now, {"reason": "ended"}
                        )
                    )
                fx.send((p.id,), {"type": "ended", "reason": reason})
                fx.closes.append((p.id, 1000, "meeting ended"))
            if p.state is not ParticipantState.LEFT:
                p.state = ParticipantState.LEFT
        self.lobby.clear()
        self.hands.clear()
        self.floor = None
        fx.events.append(("room.ended", {"meeting_id": self.info.meeting_id, "reason": reason}))
        return fx

    # --- arriving and leaving --------------------------------------------------

    def join(
        self,
        *,
        unit_code: str,
        unit_name: str,
        unit_id: int | None,
        display_name: str,
        role: Role,
        client_info: dict[str, Any],
        bandwidth: str,
        now: datetime,
        ice_servers: list[dict[str, Any]],
        request_id: str | None = None,
    ) -> tuple[Participant, Effects]:
        """A new endpoint arrives with a verified token: into the room or the lobby."""
        if self.state is RoomState.ENDED:
            raise RequestRefused("meeting_ended", "the meeting has ended", close_code=4001)
        if role is Role.CHAIR and unit_code != self.info.chair_unit:
            raise RequestRefused("forbidden", "only the chair unit joins as chair", close_code=4001)
        p = Participant(
            id=self._new_id(),
            unit_code=unit_code,
            unit_name=unit_name,
            unit_id=unit_id,
            display_name=display_name or unit_name,
            role=role,
            resume_token=secrets.token_urlsafe(24),
            joined_at=now,
            client_info=client_info,
            bandwidth=bandwidth,
        )
        self.participants[p.id] = p
        direct = role in (Role.CHAIR, Role.RECORDER) or self._admits_directly()
        fx = Effects()
        if direct:
            p.set_state(ParticipantState.ACTIVE)
            if not p.hidden:
                fx.attendance.append(
                    AttendanceRecord(AttendanceKind.JOIN, p.id, unit_id, now, client_info)
                )
            fx.reply(p.id, request_id, self._welcome(p, ice_servers, resumed=False))
            fx.extend(self._announce_arrival(p))
        else:
            self.lobby.append(p.id)
            fx.attendance.append(
                AttendanceRecord(AttendanceKind.LOBBY, p.id, unit_id, now, client_info)
            )
            fx.reply(p.id, request_id, self._welcome(p, ice_servers, resumed=False))
            fx.extend(self._lobby_changed())
        return p, fx

    def _welcome(
        self, p: Participant, ice_servers: list[dict[str, Any]], *, resumed: bool
    ) -> dict[str, Any]:
        return {
            "type": "welcome",
            "protocol": m.PROTOCOL_VERSION,
            "participant": p.id,
            "resume_token": p.resume_token,
            "resumed": resumed,
            "role": p.role.value,
            "state": "active" if p.state is ParticipantState.ACTIVE else "lobby",
            "ice_servers": ice_servers,
            "room": self.snapshot(p),
        }

    def _announce_arrival(self, p: Participant) -> Effects:
        fx = Effects()
        if not p.hidden:
            fx.send(
                self._ids(self._in_room(), exclude=p.id),
                {"type": "participant_joined", "participant": self.entry(p)},
            )
            fx.events.append(("participant.joined", self._event_data(p)))
        return fx

    def _event_data(self, p: Participant) -> dict[str, Any]:
        return {
            "meeting_id": self.info.meeting_id,
            "participant": p.id,
            "unit": p.unit_code,
            "display_name": p.display_name,
        }

    def _lobby_changed(self) -> Effects:
        fx = Effects()
        for position, pid in enumerate(self.lobby, start=1):
            fx.send((pid,), {"type": "lobby", "position": position})
        fx.send(self._ids(self._chairs()), {"type": "lobby_changed", "lobby": self.lobby_entries()})
        return fx

    def _depart(self, p: Participant, now: datetime, kind: AttendanceKind, reason: str) -> Effects:
        """``p`` leaves for good (left, removed, denied): tell the room, free its places."""
        fx = Effects()
        was_in_room = p.state is ParticipantState.ACTIVE or (
            p.state is ParticipantState.DISCONNECTED and p.admitted
        )
        if p.state is not ParticipantState.DISCONNECTED and not p.hidden:
            fx.attendance.append(AttendanceRecord(kind, p.id, p.unit_id, now, {"reason": reason}))
        if p.id in self.lobby:
            self.lobby.remove(p.id)
            fx.extend(self._lobby_changed())
        p.set_state(ParticipantState.LEFT)
        fx.extend(self._release(p))
        if was_in_room and not p.hidden:
            fx.send(
                self._ids(self._in_room()),
                {"type": "participant_left", "participant": p.id, "reason": reason},
            )
            fx.events.append(("participant.left", self._event_data(p) | {"reason": reason}))
        return fx

    def _release(self, p: Participant) -> Effects:
        """Drop ``p``'s hand and floor."""
        fx = Effects()
        if self._hand_raised(p.id):
            self.hands = [(h, at) for h, at in self.hands if h != p.id]
            fx.send(self._ids(self._in_room()), self.hands_message())
        if self.floor == p.id:
            self.floor = None
            fx.send(self._ids(self._in_room()), {"type": "floor", "participant": None})
        if self.presenter == p.id:
            self.presenter = None
            fx.send(self._ids(self._in_room()), {"type": "presenter", "participant": None})
        return fx

    def leave(self, pid: str, now: datetime, request_id: str | None = None) -> Effects:
        p = self.get(pid)
        fx = Effects()
        fx.reply(p.id, request_id, {"type": "ack"})
        fx.extend(self._depart(p, now, AttendanceKind.LEAVE, "left"))
        fx.closes.append((p.id, 1000, "left"))
        return fx

    def disconnect(self, pid: str, now: datetime) -> Effects:
        """The socket dropped without ``leave``: keep the place for the grace window."""
        p = self.participants.get(pid)
        fx = Effects()
        if p is None or p.state not in (ParticipantState.ACTIVE, ParticipantState.LOBBY):
            return fx
        in_lobby = p.state is ParticipantState.LOBBY
        if not p.hidden:
            kind = AttendanceKind.DISCONNECT if not in_lobby else AttendanceKind.LEAVE
            fx.attendance.append(
                AttendanceRecord(kind, p.id, p.unit_id, now, {"reason": "connection lost"})
            )
        if in_lobby:
            self.lobby.remove(p.id)
            fx.extend(self._lobby_changed())
        p.set_state(ParticipantState.DISCONNECTED)
        if not in_lobby and not p.hidden:
            fx.send(
                self._ids(self._in_room()),
                {"type": "participant_updated", "participant": self.entry(p)},
            )
        return fx

    def expire(self, pid: str, now: datetime) -> Effects:
        """The grace window passed without a resume: the participant has left."""
        p = self.participants.get(pid)
        if p is None or p.state is not ParticipantState.DISCONNECTED:
            return Effects()
        return self._depart(p, now, AttendanceKind.LEAVE, "timeout")

    def resume(
        self,
        resume_token: str,
        now: datetime,
        ice_servers: list[dict[str, Any]],
        request_id: str | None = None,
    ) -> tuple[Participant, Effects]:
        """A dropped participant is back within the grace window: same id, fresh snapshot."""
        p = self.holder_of(resume_token)
        if p is None or p.state is ParticipantState.LEFT or self.state is RoomState.ENDED:
            raise RequestRefused("resume_expired", "too late to resume; join again")
        fx = Effects()
        if p.state in (ParticipantState.ACTIVE, ParticipantState.LOBBY):
            # Its old socket is not dead yet (a network switch): the new one replaces it.
            fx.closes.append((p.id, 4009, "replaced by a new connection"))
            fx.extend(self.disconnect(p.id, now))
        p.resume_token = secrets.token_urlsafe(24)
        if p.admitted:
            p.set_state(ParticipantState.ACTIVE)
            if not p.hidden:
                fx.attendance.append(
                    AttendanceRecord(AttendanceKind.RECONNECT, p.id, p.unit_id, now)
                )
            fx.reply(p.id, request_id, self._welcome(p, ice_servers, resumed=True))
            if not p.hidden:
                fx.send(
                    self._ids(self._in_room(), exclude=p.id),
                    {"type": "participant_updated", "participant": self.entry(p)},
                )
        else:
            if self._admits_directly():
                # The room went live while it was away: it enters as a new join would.
                p.set_state(ParticipantState.ACTIVE)
                fx.attendance.append(
                    AttendanceRecord(AttendanceKind.ADMIT, p.id, p.unit_id, now, {"by": "auto"})
                )
                fx.reply(p.id, request_id, self._welcome(p, ice_servers, resumed=True))
                fx.extend(self._announce_arrival(p))
            else:
                p.set_state(ParticipantState.LOBBY)
                self.lobby.append(p.id)
                fx.attendance.append(AttendanceRecord(AttendanceKind.LOBBY, p.id, p.unit_id, now))
                fx.reply(p.id, request_id, self._welcome(p, ice_servers, resumed=True))
                fx.extend(self._lobby_changed())
        return p, fx

    def holder_of(self, resume_token: str) -> Participant | None:
        """The participant a resume token belongs to (compared in constant time)."""
        offered = resume_token.encode("utf-8", "surrogatepass")
        return next(
            (
                q
                for q in self.participants.values()
                if secrets.compare_digest(q.resume_token.encode(), offered)
            ),
            None,
        )

    def _admit_lobby(self, now: datetime) -> Effects:
        """Admit everyone waiting, in the order they arrived (auto-admit)."""
        fx = Effects()
        for pid in list(self.lobby):
            fx.extend(self._admit(self.participants[pid], now, by=None))
        return fx

    def _admits_directly(self) -> bool:
        return self.state is RoomState.LIVE and self.info.auto_admit and not self.locked

    # --- messages from a joined participant ------------------------------------

    def handle(self, pid: str, msg: m.ClientMessage, now: datetime) -> Effects:
        """Apply one message from participant ``pid``.

        Raises:
            RequestRefused: the message is not allowed now; nothing changed.
        """
        p = self.get(pid)
        kind = msg.type
        if kind == "leave":
            return self.leave(pid, now, msg.id)
        if kind == "ping":
            pong = Effects()
            pong.reply(pid, msg.id, {"type": "pong"})
            return pong
        if p.state is not ParticipantState.ACTIVE:
            raise RequestRefused("forbidden", "wait until you are admitted")
        if kind in m.MODERATION_TYPES and not p.is_chair:
            raise RequestRefused("forbidden", "only the chair may do this")
        handler = getattr(self, f"_on_{kind}", None)
        if handler is None:  # publish, answer, ice: the media layer's, routed by the owner
            raise RequestRefused("media_unavailable", "no media engine serves this room")
        fx: Effects = handler(p, msg, now)
        return fx

    def _ack(self, p: Participant, msg: m.ClientMessage) -> Effects:
        fx = Effects()
        fx.reply(p.id, msg.id, {"type": "ack"})
        return fx

    def _updated(self, p: Participant, fx: Effects) -> None:
        if not p.hidden:
            fx.send(
                self._ids(self._in_room()),
                {"type": "participant_updated", "participant": self.entry(p)},
            )

    def _on_mute(self, p: Participant, msg: m.Mute, now: datetime) -> Effects:
        if msg.audio is False and p.muted_by_chair and self.floor != p.id:
            raise RequestRefused("forbidden", "the chair muted you; ask for the floor")
        fx = self._ack(p, msg)
        if msg.audio is not None:
            p.audio_muted = msg.audio
            if not msg.audio:
                p.muted_by_chair = False
        if msg.video is not None:
            p.video_muted = msg.video
        self._updated(p, fx)
        return fx

    def _on_hand(self, p: Participant, msg: m.Hand, now: datetime) -> Effects:
        if p.role is Role.OBSERVER or p.hidden:
            raise RequestRefused("forbidden", "observers do not take the floor")
        fx = self._ack(p, msg)
        raised = self._hand_raised(p.id)
        if msg.raised and not raised:
            self.hands.append((p.id, now))
        elif not msg.raised and raised:
            self.hands = [(h, at) for h, at in self.hands if h != p.id]
        else:
            return fx
        fx.send(self._ids(self._in_room()), self.hands_message())
        self._updated(p, fx)
        return fx

    def _on_chat(self, p: Participant, msg: m.Chat, now: datetime) -> Effects:
        fx = self._ack(p, msg)
        recipients = self._in_room() if msg.to == "all" else [*self._chairs(), p]
        fx.chats.append(ChatRecord(p.id, p.unit_id, p.display_name, msg.to, msg.text, now))
        fx.send(
            dict.fromkeys(self._ids(recipients)),
            {
                "type": "chat",
                "from": p.id,
                "from_unit": p.unit_code,
                "from_name": p.display_name,
                "text": msg.text,
                "to": msg.to,
                "at": now.isoformat(),
            },
        )
        return fx

    def _on_roll_call_answer(self, p: Participant, msg: m.RollCallAnswer, now: datetime) -> Effects:
        call = self.roll_call
        if call is None or call.closed:
            raise RequestRefused("roll_call_closed", "no roll call is open")
        if p.hidden:
            raise RequestRefused("forbidden", "the recorder does not answer roll calls")
        fx = self._ack(p, msg)
        answer = {
            "participant": p.id,
            "unit": p.unit_code,
            "present": msg.present,
            "headcount": msg.headcount,
            "delegates": list(msg.delegates),
            "at": now.isoformat(),
        }
        call.answers[p.id] = answer
        fx.attendance.append(
            AttendanceRecord(
                AttendanceKind.ROLL_CALL, p.id, p.unit_id, now, {"title": call.title} | answer
            )
        )
        fx.send(self._ids(self._chairs()), self._roll_call_message(for_chair=True))
        fx.send((p.id,), self._roll_call_message(for_chair=False, own=p.id))
        return fx

    def _roll_call_message(self, *, for_chair: bool, own: str | None = None) -> dict[str, Any]:
        call = self.roll_call
        assert call is not None
        answers = (
            list(call.answers.values())
            if for_chair
            else [a for pid, a in call.answers.items() if pid == own]
        )
        return {
            "type": "roll_call",
            "state": "closed" if call.closed else "open",
            "title": call.title,
            "answers": answers,
        }

    # --- chair ------------------------------------------------------------------

    def _lobby_member(self, pid: str) -> Participant:
        target = self.get(pid)
        if target.id not in self.lobby:
            raise RequestRefused("not_in_lobby", f"participant {pid} is not waiting in the lobby")
        return target

    def _admit(self, target: Participant, now: datetime, by: Participant | None) -> Effects:
        fx = Effects()
        self.lobby.remove(target.id)
        target.set_state(ParticipantState.ACTIVE)
        fx.attendance.append(
            AttendanceRecord(
                AttendanceKind.ADMIT,
                target.id,
                target.unit_id,
                now,
                {"by": by.id if by else "auto"},
            )
        )
        fx.send((target.id,), {"type": "admitted", "room": self.snapshot(target)})
        fx.extend(self._announce_arrival(target))
        fx.extend(self._lobby_changed())
        return fx

    def _on_admit(self, p: Participant, msg: m.Admit, now: datetime) -> Effects:
        target = self._lobby_member(msg.participant)
        fx = self._ack(p, msg)
        fx.extend(self._admit(target, now, by=p))
        return fx

    def _on_deny(self, p: Participant, msg: m.Deny, now: datetime) -> Effects:
        target = self._lobby_member(msg.participant)
        fx = self._ack(p, msg)
        fx.send((target.id,), {"type": "denied", "reason": "the chair did not admit you"})
        fx.extend(self._depart(target, now, AttendanceKind.DENY, "denied"))
        fx.closes.append((target.id, 4003, "denied"))
        return fx

    def _on_mute_participant(
        self, p: Participant, msg: m.MuteParticipant, now: datetime
    ) -> Effects:
        if msg.participant == "all":
            targets = [q for q in self._in_room() if not q.hidden and not q.is_chair]
        else:
            target = self.get(msg.participant)
            if target.hidden:
                raise RequestRefused("unknown_participant", f"no participant {msg.participant!r}")
            targets = [target]
        fx = self._ack(p, msg)
        for target in targets:
            target.audio_muted = True
            target.muted_by_chair = True
            self._updated(target, fx)
        return fx

    def _on_remove(self, p: Participant, msg: m.Remove, now: datetime) -> Effects:
        target = self.get(msg.participant)
        if target.hidden or target.id == p.id:
            raise RequestRefused("forbidden", "this participant cannot be removed")
        fx = self._ack(p, msg)
        connected = target.state is not ParticipantState.DISCONNECTED
        if connected:
            fx.send((target.id,), {"type": "removed", "reason": "removed by the chair"})
        fx.extend(self._depart(target, now, AttendanceKind.REMOVE, "removed"))
        if connected:
            fx.closes.append((target.id, 4004, "removed by the chair"))
        return fx

    def _on_lock(self, p: Participant, msg: m.Lock, now: datetime) -> Effects:
        fx = self._ack(p, msg)
        if self.locked != msg.locked:
            self.locked = msg.locked
            fx.send(
                self._ids(self._in_room()),
                {"type": "room_state", "state": self.state.value, "locked": self.locked},
            )
            if self._admits_directly():
                # Unlocked: those who waited only because of the lock go in, in order.
                fx.extend(self._admit_lobby(now))
        return fx

    def _on_floor(self, p: Participant, msg: m.Floor, now: datetime) -> Effects:
        target = self.get(msg.participant) if msg.participant is not None else None
        if target is not None and (target.hidden or target.role is Role.OBSERVER):
            raise RequestRefused("forbidden", "observers and the recorder do not take the floor")
        if target is not None and not target.admitted:
            raise RequestRefused("forbidden", "admit this participant before giving the floor")
        fx = self._ack(p, msg)
        self.floor = target.id if target is not None else None
        fx.send(self._ids(self._in_room()), {"type": "floor", "participant": self.floor})
        if target is not None:
            if self._hand_raised(target.id):
                self.hands = [(h, at) for h, at in self.hands if h != target.id]
                fx.send(self._ids(self._in_room()), self.hands_message())
            if target.muted_by_chair:
                target.muted_by_chair = False
            self._updated(target, fx)
        return fx

    def _on_presenter(self, p: Participant, msg: m.Presenter, now: datetime) -> Effects:
        target = self.get(msg.participant) if msg.participant is not None else None
        if target is not None and (target.hidden or target.role is Role.OBSERVER):
            raise RequestRefused("forbidden", "observers and the recorder do not present")
        if target is not None and target.state is not ParticipantState.ACTIVE:
            raise RequestRefused("forbidden", "only a participant in the room can present")
        fx = self._ack(p, msg)
        self.presenter = target.id if target is not None else None
        fx.send(self._ids(self._in_room()), {"type": "presenter", "participant": self.presenter})
        return fx

    def media_policy(self, last_n: int) -> RoomPolicy:
        """Who is in the room's media and what Last-N needs to know.

        Disconnected participants keep their media through the grace window: a
        WebSocket that drops often leaves the WebRTC connections working.
        """
        members = tuple(
            MemberPolicy(
                id=p.id,
                is_chair=p.is_chair,
                bandwidth=_bandwidth(p.bandwidth),
                publishes=not p.hidden and p.role is not Role.OBSERVER,
                audio_muted=p.audio_muted or p.muted_by_chair,
                video_muted=p.video_muted,
                everything=p.hidden,
            )
            for p in self.participants.values()
            if p.admitted and p.state in (ParticipantState.ACTIVE, ParticipantState.DISCONNECTED)
        )
        return RoomPolicy(members, floor=self.floor, presenter=self.presenter, last_n=last_n)

    def _set_recording(self, on: bool, now: datetime) -> Effects:
        fx = Effects()
        if self.recording == on:
            return fx
        self.recording = on
        fx.send(self._ids(self._in_room()), {"type": "recording", "on": on})
        fx.events.append(("recording.state", {"meeting_id": self.info.meeting_id, "on": on}))
        return fx

    def recording_failed(self, reason: str, now: datetime) -> Effects:
        """The recorder could not go on (disk full, unwritable): recording is off, and
        everyone sees it (participants must know whether they are recorded)."""
        fx = Effects()
        if not self.recording:
            return fx
        self.recording = False
        fx.send(self._ids(self._in_room()), {"type": "recording", "on": False, "reason": reason})
        return fx

    def _on_recording(self, p: Participant, msg: m.Recording, now: datetime) -> Effects:
        fx = self._ack(p, msg)
        fx.extend(self._set_recording(msg.on, now))
        return fx

    def _on_roll_call_start(self, p: Participant, msg: m.RollCallStart, now: datetime) -> Effects:
        fx = self._ack(p, msg)
        self.roll_call = RollCall(title=msg.title or "Điểm danh", opened_at=now)
        for q in self._in_room():
            fx.send((q.id,), self._roll_call_message(for_chair=q.is_chair, own=q.id))
        return fx

    def _on_roll_call_close(self, p: Participant, msg: m.RollCallClose, now: datetime) -> Effects:
        if self.roll_call is None or self.roll_call.closed:
            raise RequestRefused("roll_call_closed", "no roll call is open")
        fx = self._ack(p, msg)
        self.roll_call.closed = True
        for q in self._in_room():
            fx.send((q.id,), self._roll_call_message(for_chair=q.is_chair, own=q.id))
        return fx

    def _on_end(self, p: Participant, msg: m.End, now: datetime) -> Effects:
        fx = self._ack(p, msg)
        fx.extend(self.end(now, msg.reason or "ended by the chair"))
        return fx

    # --- invariants (checked by the property tests) ------------------------------

    def check_invariants(self) -> None:
        for p in self.participants.values():
            if p.is_chair:
                assert p.unit_code == self.info.chair_unit, "a chair endpoint of another unit"
        assert len(set(self.lobby)) == len(self.lobby), "someone twice in the lobby"
        for pid in self.lobby:
            assert self.participants[pid].state is ParticipantState.LOBBY, (
                "lobby holds a non-waiting participant"
            )
        for p in self.participants.values():
            if p.state is ParticipantState.LOBBY:
                assert p.id in self.lobby, "a waiting participant missing from the lobby list"
        hand_ids = [h for h, _ in self.hands]
        assert len(set(hand_ids)) == len(hand_ids), "a hand raised twice"
        for pid in hand_ids:
            assert self.participants[pid].state in (
                ParticipantState.ACTIVE,
                ParticipantState.DISCONNECTED,
            )
        times = [at for _, at in self.hands]
        assert times == sorted(times), "the hands queue is out of order"
        if self.floor is not None:
            assert self.participants[self.floor].state is not ParticipantState.LEFT
        if self.presenter is not None:
            assert self.participants[self.presenter].state is not ParticipantState.LEFT
        if self.state is RoomState.ENDED:
            assert all(p.state is ParticipantState.LEFT for p in self.participants.values())
