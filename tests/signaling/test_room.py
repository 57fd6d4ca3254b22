"""The sans-I/O Room state machine (signaling/room.py), without sockets or a database."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from conference.attendance import intervals, unit_presence
from conference.models import AttendanceKind
from signaling import messages as m
from signaling.errors import RequestRefused
from signaling.participant import Participant, ParticipantState, Role
from signaling.room import ChatRecord, Effects, MeetingInfo, Room, RoomState

T0 = datetime(2025, 3, 10, 8, 0, tzinfo=UTC)
ICE = [{"urls": ["stun:stun.hoinghi.test:3478"]}]

CHAIR, SNV, STTTT, TANTRACH = "QB", "QB-SNV", "QB-STTTT", "QB-BOTRACH-TANTRACH"
UNITS = {
    CHAIR: (1, "UBND tỉnh Quảng Bình"),
    SNV: (2, "Sở Nội vụ"),
    STTTT: (3, "Sở Thông tin và Truyền thông"),
    TANTRACH: (4, "UBND xã Tân Trạch"),
}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def info(*, auto_admit: bool = True, recording: bool = False) -> MeetingInfo:
    return MeetingInfo(
        meeting_id=42,
        title="Hội nghị giao ban trực tuyến quý I",
        starts_at=T0,
        ends_at=T0 + timedelta(hours=2),
        chair_unit=CHAIR,
        auto_admit=auto_admit,
        recording=recording,
    )


class Harness:
    """A room, a clock, and everything the room asked its owner to record."""

    def __init__(
        self,
        *,
        auto_admit: bool = True,
        recording: bool = False,
        live: bool = True,
        prefix: str = "p",
    ) -> None:
        counter = itertools.count(1)
        self.room = Room(
            info(auto_admit=auto_admit, recording=recording),
            id_factory=lambda: f"{prefix}{next(counter)}",
        )
        self.t = 0.0
        self.records: list[Any] = []
        self.chats: list[ChatRecord] = []
        if live:
            self.go_live()

    @property
    def now(self) -> datetime:
        return at(self.t)

    def tick(self, seconds: float = 1.0) -> datetime:
        self.t += seconds
        return self.now

    def keep(self, fx: Effects) -> Effects:
        self.records += fx.attendance
        self.chats += fx.chats
        self.room.check_invariants()
        return fx

    def go_live(self) -> Effects:
        return self.keep(self.room.go_live(self.tick()))

    def join(
        self,
        unit: str,
        role: Role = Role.PARTICIPANT,
        display_name: str = "",
        request_id: str | None = None,
    ) -> tuple[Participant, Effects]:
        unit_id, unit_name = UNITS.get(unit, (None, "Máy ghi hình"))
        p, fx = self.room.join(
            unit_code=unit,
            unit_name=unit_name,
            unit_id=unit_id,
            display_name=display_name,
            role=role,
            client_info={"ua": "pytest"},
            bandwidth="full",
            now=self.tick(),
            ice_servers=ICE,
            request_id=request_id,
        )
        self.keep(fx)
        return p, fx

    def chair(self) -> Participant:
        return self.join(CHAIR, Role.CHAIR)[0]

    def recorder(self) -> Participant:
        return self.join("recorder", Role.RECORDER)[0]

    def send(self, p: Participant | str, kind: str, **fields: Any) -> Effects:
        pid = p if isinstance(p, str) else p.id
        msg = m.parse(json.dumps({"type": kind, **fields}))
        return self.keep(self.room.handle(pid, msg, self.tick()))

    def refused(self, code: str, p: Participant | str, kind: str, **fields: Any) -> None:
        before = state_of(self.room)
        with pytest.raises(RequestRefused) as err:
            self.send(p, kind, **fields)
        assert err.value.code == code
        assert state_of(self.room) == before, "a refused request changed the room"

    def disconnect(self, p: Participant) -> Effects:
        return self.keep(self.room.disconnect(p.id, self.tick()))

    def resume(self, token: str, request_id: str | None = None) -> tuple[Participant, Effects]:
        p, fx = self.room.resume(token, self.tick(), ICE, request_id)
        self.keep(fx)
        return p, fx

    def expire(self, p: Participant) -> Effects:
        return self.keep(self.room.expire(p.id, self.tick()))

    def end(self, reason: str = "scheduled end") -> Effects:
        return self.keep(self.room.end(self.tick(), reason))


def state_of(room: Room) -> dict[str, Any]:
    """Everything a room step may change, as plain data."""
    return copy.deepcopy(
        {
            "state": room.state,
            "participants": {pid: dataclasses.asdict(p) for pid, p in room.participants.items()},
            "lobby": list(room.lobby),
            "hands": list(room.hands),
            "floor": room.floor,
            "locked": room.locked,
            "recording": room.recording,
            "roll_call": dataclasses.asdict(room.roll_call) if room.roll_call else None,
        }
    )


def to(fx: Effects, pid: str) -> list[dict[str, Any]]:
    return [msg for recipients, msg in fx.messages if pid in recipients]


def types_to(fx: Effects, pid: str) -> list[str]:
    return [msg["type"] for msg in to(fx, pid)]


def one(fx: Effects, pid: str, kind: str) -> dict[str, Any]:
    found = [msg for msg in to(fx, pid) if msg["type"] == kind]
    assert len(found) == 1, (kind, pid, fx.messages)
    return found[0]


def kinds(fx: Effects) -> list[tuple[AttendanceKind, str]]:
    return [(r.kind, r.participant) for r in fx.attendance]


def roster_ids(snapshot: dict[str, Any]) -> list[str]:
    return [e["id"] for e in snapshot["roster"]]


def as_events(records: list[Any]) -> list[SimpleNamespace]:
    return [
        SimpleNamespace(participant_session=r.participant, unit_id=r.unit_id, kind=r.kind, at=r.at)
        for r in records
    ]


# --- entering -------------------------------------------------------------------------


def test_the_chair_enters_directly_even_before_the_room_is_live():
    h = Harness(auto_admit=False, live=False)
    chair, fx = h.join(CHAIR, Role.CHAIR, request_id="j1")
    assert chair.state is ParticipantState.ACTIVE
    welcome = one(fx, chair.id, "welcome")
    assert welcome["id"] == "j1"
    assert welcome["state"] == "active"
    assert welcome["role"] == "chair"
    assert welcome["resumed"] is False
    assert welcome["participant"] == chair.id
    assert welcome["resume_token"] == chair.resume_token
    assert welcome["ice_servers"] == ICE
    assert welcome["room"]["lobby"] == []
    assert welcome["room"]["meeting"]["title"] == "Hội nghị giao ban trực tuyến quý I"
    assert roster_ids(welcome["room"]) == [chair.id]
    assert kinds(fx) == [(AttendanceKind.JOIN, chair.id)]
    assert h.room.lobby == []


def test_only_the_chair_unit_joins_as_chair():
    h = Harness()
    before = state_of(h.room)
    with pytest.raises(RequestRefused) as err:
        h.join(SNV, Role.CHAIR)
    assert err.value.code == "forbidden"
    assert err.value.close_code == 4001
    assert state_of(h.room) == before


def test_with_auto_admit_a_live_room_lets_participants_in_directly():
    h = Harness(auto_admit=True)
    chair = h.chair()
    snv, fx = h.join(SNV, display_name="Phòng họp Sở Nội vụ")
    assert snv.state is ParticipantState.ACTIVE
    welcome = one(fx, snv.id, "welcome")
    assert welcome["state"] == "active"
    assert "lobby" not in welcome["room"]
    assert roster_ids(welcome["room"]) == [chair.id, snv.id]
    joined = one(fx, chair.id, "participant_joined")["participant"]
    assert joined["id"] == snv.id
    assert joined["unit"] == SNV
    assert joined["unit_name"] == "Sở Nội vụ"
    assert joined["display_name"] == "Phòng họp Sở Nội vụ"
    assert joined["connected"] is True
    assert "participant_joined" not in types_to(fx, snv.id)
    assert kinds(fx) == [(AttendanceKind.JOIN, snv.id)]
    assert (
        "participant.joined",
        {
            "meeting_id": 42,
            "participant": snv.id,
            "unit": SNV,
            "display_name": "Phòng họp Sở Nội vụ",
        },
    ) in fx.events


def test_the_display_name_defaults_to_the_unit_name():
    h = Harness()
    snv, _ = h.join(SNV)
    assert snv.display_name == "Sở Nội vụ"


def test_before_the_room_is_live_participants_wait_in_the_lobby():
    h = Harness(auto_admit=True, live=False)
    chair = h.chair()
    snv, fx = h.join(SNV)
    assert snv.state is ParticipantState.LOBBY
    assert one(fx, snv.id, "welcome")["state"] == "lobby"
    assert one(fx, snv.id, "lobby") == {"type": "lobby", "position": 1}
    changed = one(fx, chair.id, "lobby_changed")
    assert [e["id"] for e in changed["lobby"]] == [snv.id]
    assert "participant_joined" not in types_to(fx, chair.id)
    assert kinds(fx) == [(AttendanceKind.LOBBY, snv.id)]

    stttt, fx = h.join(STTTT)
    assert one(fx, stttt.id, "lobby") == {"type": "lobby", "position": 2}
    assert one(fx, snv.id, "lobby") == {"type": "lobby", "position": 1}
    assert [e["id"] for e in one(fx, chair.id, "lobby_changed")["lobby"]] == [snv.id, stttt.id]
    assert h.room.lobby == [snv.id, stttt.id]


def test_without_auto_admit_participants_wait_even_when_live():
    h = Harness(auto_admit=False)
    chair = h.chair()
    snv, fx = h.join(SNV)
    assert snv.state is ParticipantState.LOBBY
    assert [e["id"] for e in one(fx, chair.id, "lobby_changed")["lobby"]] == [snv.id]
    # The chair's snapshot shows the lobby; a participant's does not.
    second_chair, fx = h.join(CHAIR, Role.CHAIR)
    assert [e["id"] for e in one(fx, second_chair.id, "welcome")["room"]["lobby"]] == [snv.id]


def test_go_live_admits_the_lobby_with_auto_admit_and_starts_recording():
    h = Harness(auto_admit=True, recording=True, live=False)
    chair = h.chair()
    snv, _ = h.join(SNV)
    tantrach, _ = h.join(TANTRACH, Role.OBSERVER)
    fx = h.go_live()
    assert h.room.state is RoomState.LIVE
    assert fx.status is RoomState.LIVE
    assert h.room.recording is True
    assert h.room.lobby == []
    assert snv.state is tantrach.state is ParticipantState.ACTIVE
    for p in (snv, tantrach):
        assert "room" in one(fx, p.id, "admitted")
    assert one(fx, chair.id, "recording") == {"type": "recording", "on": True}
    assert one(fx, chair.id, "room_state")["state"] == "live"
    assert [(k, pid) for k, pid in kinds(fx)] == [
        (AttendanceKind.ADMIT, snv.id),
        (AttendanceKind.ADMIT, tantrach.id),
    ]
    assert all(r.info == {"by": "auto"} for r in fx.attendance)
    joined = [
        msg["participant"]["id"] for msg in to(fx, chair.id) if msg["type"] == "participant_joined"
    ]
    assert joined == [snv.id, tantrach.id]
    assert ("room.started", {"meeting_id": 42}) in fx.events
    # Going live again changes nothing.
    assert h.go_live() == Effects()


def test_go_live_keeps_the_lobby_without_auto_admit_and_without_recording():
    h = Harness(auto_admit=False, recording=False, live=False)
    h.chair()
    snv, _ = h.join(SNV)
    fx = h.go_live()
    assert h.room.state is RoomState.LIVE
    assert h.room.recording is False
    assert snv.state is ParticipantState.LOBBY
    assert h.room.lobby == [snv.id]
    assert "admitted" not in types_to(fx, snv.id)
    assert fx.attendance == []


def test_go_live_keeps_the_lobby_of_a_locked_room():
    h = Harness(auto_admit=True, live=False)
    chair = h.chair()
    h.send(chair, "lock", locked=True)
    snv, _ = h.join(SNV)
    h.go_live()
    assert snv.state is ParticipantState.LOBBY
    assert h.room.lobby == [snv.id]


# --- the chair: admit, deny, lock ------------------------------------------------------


def test_the_chair_admits_from_the_lobby():
    h = Harness(auto_admit=False)
    chair = h.chair()
    snv, _ = h.join(SNV)
    stttt, _ = h.join(STTTT)
    fx = h.send(chair, "admit", participant=snv.id, id="a1")
    assert one(fx, chair.id, "ack") == {"type": "ack", "id": "a1"}
    admitted = one(fx, snv.id, "admitted")
    assert roster_ids(admitted["room"]) == [chair.id, snv.id]
    assert one(fx, chair.id, "participant_joined")["participant"]["id"] == snv.id
    assert one(fx, chair.id, "lobby_changed")["lobby"][0]["id"] == stttt.id
    assert one(fx, stttt.id, "lobby") == {"type": "lobby", "position": 1}
    assert kinds(fx) == [(AttendanceKind.ADMIT, snv.id)]
    assert fx.attendance[0].info == {"by": chair.id}
    assert snv.state is ParticipantState.ACTIVE
    assert h.room.lobby == [stttt.id]


def test_the_chair_denies_from_the_lobby():
    h = Harness(auto_admit=False)
    chair = h.chair()
    snv, _ = h.join(SNV)
    stttt, _ = h.join(STTTT)
    fx = h.send(chair, "deny", participant=snv.id)
    assert one(fx, snv.id, "denied")["reason"]
    assert (snv.id, 4003, "denied") in fx.closes
    assert kinds(fx) == [(AttendanceKind.DENY, snv.id)]
    assert snv.state is ParticipantState.LEFT
    assert h.room.lobby == [stttt.id]
    assert one(fx, stttt.id, "lobby") == {"type": "lobby", "position": 1}
    assert [e["id"] for e in one(fx, chair.id, "lobby_changed")["lobby"]] == [stttt.id]
    # Someone the room never admitted does not "leave" the roster.
    assert "participant_left" not in types_to(fx, chair.id)
    h.refused("unknown_participant", chair, "admit", participant=snv.id)


def test_admit_or_deny_of_someone_not_in_the_lobby_is_not_in_lobby():
    h = Harness(auto_admit=True)
    chair = h.chair()
    snv, _ = h.join(SNV)
    h.refused("not_in_lobby", chair, "admit", participant=snv.id)
    h.refused("not_in_lobby", chair, "deny", participant=snv.id)
    h.refused("not_in_lobby", chair, "admit", participant=chair.id)
    h.refused("unknown_participant", chair, "admit", participant="nobody")
    h.refused("unknown_participant", chair, "deny", participant="nobody")


def test_lock_sends_new_joins_to_the_lobby_even_with_auto_admit():
    h = Harness(auto_admit=True)
    chair = h.chair()
    snv, _ = h.join(SNV)
    fx = h.send(chair, "lock", locked=True, id="l1")
    assert h.room.locked is True
    assert one(fx, chair.id, "ack")["id"] == "l1"
    assert one(fx, snv.id, "room_state")["locked"] is True
    stttt, fx = h.join(STTTT)
    assert stttt.state is ParticipantState.LOBBY
    assert one(fx, stttt.id, "lobby")["position"] == 1
    # The chair's own endpoints still enter.
    chair2, _ = h.join(CHAIR, Role.CHAIR)
    assert chair2.state is ParticipantState.ACTIVE
    # Locking twice is acknowledged but announces nothing.
    fx = h.send(chair, "lock", locked=True)
    assert types_to(fx, snv.id) == []
    h.send(chair, "lock", locked=False)
    assert h.room.locked is False
    tantrach, _ = h.join(TANTRACH, Role.OBSERVER)
    assert tantrach.state is ParticipantState.ACTIVE


def lobby_room() -> tuple[Harness, dict[str, Participant]]:
    """A live room with the chair, two participants, an observer, the recorder,
    one waiting endpoint, a raised hand and an open roll call."""
    h = Harness(auto_admit=True)
    people = {
        "chair": h.chair(),
        "snv": h.join(SNV)[0],
        "stttt": h.join(STTTT)[0],
        "observer": h.join(TANTRACH, Role.OBSERVER)[0],
        "recorder": h.recorder(),
    }
    h.send(people["chair"], "lock", locked=True)
    people["waiting"] = h.join(SNV, display_name="Màn hình phụ")[0]
    h.send(people["snv"], "hand", raised=True)
    h.send(people["chair"], "roll_call_start", title="Điểm danh")
    return h, people


MODERATION: list[tuple[str, dict[str, Any]]] = [
    ("admit", {"participant": "waiting"}),
    ("deny", {"participant": "waiting"}),
    ("mute_participant", {"participant": "stttt"}),
    ("mute_participant", {"participant": "all"}),
    ("remove", {"participant": "stttt"}),
    ("lock", {"locked": False}),
    ("floor", {"participant": "snv"}),
    ("floor", {"participant": None}),
    ("presenter", {"participant": "snv"}),
    ("presenter", {"participant": None}),
    ("recording", {"on": True}),
    ("roll_call_start", {"title": "Lần hai"}),
    ("roll_call_close", {}),
    ("end", {"reason": "hết giờ"}),
]


@pytest.mark.parametrize("who", ["snv", "observer", "recorder", "waiting"])
@pytest.mark.parametrize(
    ("kind", "fields"), MODERATION, ids=[f"{k}-{i}" for i, (k, _) in enumerate(MODERATION)]
)
def test_moderation_by_anyone_but_the_chair_is_forbidden_and_changes_nothing(who, kind, fields):
    h, people = lobby_room()
    assert {k for k, _ in MODERATION} == set(m.MODERATION_TYPES)
    named = {
        k: (people[v].id if isinstance(v, str) and v in people else v) for k, v in fields.items()
    }
    h.refused("forbidden", people[who], kind, **named)
    # The same request from the chair goes through.
    h.send(people["chair"], kind, **named)


def test_a_waiting_participant_can_only_ping_or_leave():
    h = Harness(auto_admit=False)
    h.chair()
    snv, _ = h.join(SNV)
    h.refused("forbidden", snv, "chat", text="cho vào với", to="chair")
    h.refused("forbidden", snv, "hand", raised=True)
    h.refused("forbidden", snv, "mute", audio=True)
    assert one(h.send(snv, "ping", id="pp"), snv.id, "pong") == {"type": "pong", "id": "pp"}
    fx = h.send(snv, "leave")
    assert kinds(fx) == [(AttendanceKind.LEAVE, snv.id)]
    assert (snv.id, 1000, "left") in fx.closes
    assert h.room.lobby == []


def test_media_messages_are_not_the_rooms():
    h = Harness()
    snv, _ = h.join(SNV)
    h.refused("media_unavailable", snv, "publish", sdp="v=0\r\n", source="camera")
    h.refused("media_unavailable", snv, "ice", target="publish", candidate="")


# --- mute -------------------------------------------------------------------------------


def test_mute_participant_mutes_that_site_and_tells_everyone():
    h = Harness()
    chair = h.chair()
    snv, _ = h.join(SNV)
    stttt, _ = h.join(STTTT)
    fx = h.send(chair, "mute_participant", participant=snv.id, id="m1")
    assert one(fx, chair.id, "ack")["id"] == "m1"
    assert snv.audio_muted is True
    assert snv.muted_by_chair is True
    assert stttt.muted_by_chair is False
    for pid in (chair.id, snv.id, stttt.id):
        entry = one(fx, pid, "participant_updated")["participant"]
        assert entry["id"] == snv.id
        assert entry["audio_muted"] is True
        assert entry["muted_by_chair"] is True
    h.refused("unknown_participant", chair, "mute_participant", participant="nobody")


def test_mute_all_spares_the_chair_and_the_recorder():
    h = Harness()
    chair = h.chair()
    chair2, _ = h.join(CHAIR, Role.CHAIR)
    snv, _ = h.join(SNV)
    snv2, _ = h.join(SNV)
    observer, _ = h.join(TANTRACH, Role.OBSERVER)
    recorder = h.recorder()
    fx = h.send(chair, "mute_participant", participant="all")
    for p in (snv, snv2, observer):
        assert (p.audio_muted, p.muted_by_chair) == (True, True)
    for p in (chair, chair2, recorder):
        assert (p.audio_muted, p.muted_by_chair) == (False, False)
    updated = {
        msg["participant"]["id"] for msg in to(fx, chair.id) if msg["type"] == "participant_updated"
    }
    assert updated == {snv.id, snv2.id, observer.id}
    h.refused("unknown_participant", chair, "mute_participant", participant=recorder.id)


def test_muted_by_the_chair_a_site_unmutes_only_when_given_the_floor():
    h = Harness()
    chair = h.chair()
    snv, _ = h.join(SNV)
    h.send(chair, "mute_participant", participant=snv.id)
    h.refused("forbidden", snv, "mute", audio=False)
    h.refused("forbidden", snv, "mute", audio=False, video=False)
    # Muting, or the camera alone, stays allowed.
    h.send(snv, "mute", video=True)
    assert snv.video_muted is True
    h.send(snv, "mute", audio=True)
    assert snv.muted_by_chair is True

    fx = h.send(chair, "floor", participant=snv.id)
    assert snv.muted_by_chair is False
    assert one(fx, snv.id, "participant_updated")["participant"]["muted_by_chair"] is False
    fx = h.send(snv, "mute", audio=False, id="u1")
    assert one(fx, snv.id, "ack")["id"] == "u1"
    assert snv.audio_muted is False
    entry = one(fx, chair.id, "participant_updated")["participant"]
    assert (entry["audio_muted"], entry["muted_by_chair"]) == (False, False)


def test_a_site_mutes_and_unmutes_itself():
    h = Harness()
    chair = h.chair()
    snv, _ = h.join(SNV)
    fx = h.send(snv, "mute", audio=True, video=True)
    entry = one(fx, chair.id, "participant_updated")["participant"]
    assert (entry["audio_muted"], entry["video_muted"]) == (True, True)
    h.send(snv, "mute", audio=False)
    assert (snv.audio_muted, snv.video_muted) == (False, True)


# --- remove, leave ----------------------------------------------------------------------


def test_remove_closes_4004_records_it_and_tells_the_others():
    h = Harness()
    chair = h.chair()
    snv, _ = h.join(SNV)
    stttt, _ = h.join(STTTT)
    h.send(snv, "hand", raised=True)
    fx = h.send(chair, "remove", participant=snv.id, id="r1")
    assert one(fx, chair.id, "ack")["id"] == "r1"
    assert one(fx, snv.id, "removed")["reason"]
    assert (snv.id, 4004, "removed by the chair") in fx.closes
    assert kinds(fx) == [(AttendanceKind.REMOVE, snv.id)]
    for pid in (chair.id, stttt.id):
        assert one(fx, pid, "participant_left") == {
            "type": "participant_left",
            "participant": snv.id,
            "reason": "removed",
        }
        assert one(fx, pid, "hands")["queue"] == []
    assert "participant_left" not in types_to(fx, snv.id)
    assert snv.state is ParticipantState.LEFT
    assert h.room.hands == []
    h.refused("unknown_participant", chair, "remove", participant=snv.id)


def test_the_chair_cannot_remove_itself_or_the_recorder():
    h = Harness()
    chair = h.chair()
    recorder = h.recorder()
    h.refused("forbidden", chair, "remove", participant=chair.id)
    h.refused("forbidden", chair, "remove", participant=recorder.id)


def test_removing_a_disconnected_site_sends_and_closes_nothing_to_it():
    h = Harness()
    chair = h.chair()
    snv, _ = h.join(SNV)
    h.disconnect(snv)
    fx = h.send(chair, "remove", participant=snv.id)
    assert to(fx, snv.id) == []
    assert [c for c in fx.closes if c[0] == snv.id] == []
    # Its interval was closed by the disconnect already.
    assert fx.attendance == []
    assert one(fx, chair.id, "participant_left")["reason"] == "removed"


def test_leave_acks_closes_1000_and_tells_the_others():
    h = Harness()
    chair = h.chair()
    snv, _ = h.join(SNV)
    fx = h.send(snv, "leave", id="bye")
    assert one(fx, snv.id, "ack")["id"] == "bye"
    assert (snv.id, 1000, "left") in fx.closes
    assert kinds(fx) == [(AttendanceKind.LEAVE, snv.id)]
    assert one(fx, chair.id, "participant_left")["reason"] == "left"
    assert snv.state is ParticipantState.LEFT
    h.refused("unknown_participant", snv, "ping")


# --- hands and floor ---------------------------------------------------------------------


def test_the_hands_queue_is_ordered_by_time_and_hands_can_be_lowered():
    h = Harness()
    chair = h.chair()
    snv, _ = h.join(SNV)
    stttt, _ = h.join(STTTT)
    snv2, _ = h.join(SNV)
    fx = h.send(stttt, "hand", raised=True, id="h1")
    t_stttt = h.now
    assert one(fx, stttt.id, "ack")["id"] == "h1"
    h.send(snv, "hand", raised=True)
    t_snv = h.now
    fx = h.send(snv2, "hand", raised=True)
    t_snv2 = h.now
    assert one(fx, chair.id, "hands")["queue"] == [
        {"participant": stttt.id, "at": t_stttt.isoformat()},
        {"participant": snv.id, "at": t_snv.isoformat()},
        {"participant": snv2.id, "at": t_snv2.isoformat()},
    ]
    assert one(fx, chair.id, "participant_updated")["participant"]["hand_raised"] is True
    # Raising again keeps the place in the queue and announces nothing.
    fx = h.send(stttt, "hand", raised=True)
    assert types_to(fx, chair.id) == []
    assert [pid for pid, _ in h.room.hands] == [stttt.id, snv.id, snv2.id]
    fx = h.send(snv, "hand", raised=False)
    assert [q["participant"] for q in one(fx, chair.id, "hands")["queue"]] == [stttt.id, snv2.id]
    assert one(fx, chair.id, "participant_updated")["participant"]["hand_raised"] is False
    # Lowering a hand that is down is acknowledged, nothing else.
    fx = h.send(snv, "hand", raised=False)
    assert types_to(fx, chair.id) == []


def test_giving_the_floor_drops_the_hand_and_tells_everyone():
    h = Harness()
    chair = h.chair()
    snv, _ = h.join(SNV)
    stttt, _ = h.join(STTTT)
    h.send(snv, "hand", raised=True)
    h.send(stttt, "hand", raised=True)
    fx = h.send(chair, "floor", participant=snv.id)
    assert h.room.floor == snv.id
    for pid in (chair.id, snv.id, stttt.id):
        assert one(fx, pid, "floor") == {"type": "floor", "participant": snv.id}
        assert [q["participant"] for q in one(fx, pid, "hands")["queue"]] == [stttt.id]
    fx = h.send(chair, "floor", participant=None)
    assert h.room.floor is None
    assert one(fx, stttt.id, "floor") == {"type": "floor", "participant": None}
    h.refused("unknown_participant", chair, "floor", participant="nobody")


def test_the_floor_lowers_only_the_speakers_hand_and_says_so_in_the_roster():
    """The speaker queue's "Next speaker": the first hand gets the floor and leaves the
    queue; its roster entry shows the hand down; the others keep their places. The
    floor to a site whose hand is down leaves the queue as it is (no `hands`)."""
    h = Harness()
    chair = h.chair()
    snv, _ = h.join(SNV)
    stttt, _ = h.join(STTTT)
    tantrach, _ = h.join(TANTRACH)
    for p in (snv, stttt, tantrach):
        h.send(p, "hand", raised=True)
    first = h.room.hands[0][0]
    fx = h.send(chair, "floor", participant=first)
    assert first == snv.id
    for pid in (chair.id, snv.id, stttt.id, tantrach.id):
        assert [q["participant"] for q in one(fx, pid, "hands")["queue"]] == [
            stttt.id,
            tantrach.id,
        ]
        updated = one(fx, pid, "participant_updated")["participant"]
        assert (updated["id"], updated["hand_raised"]) == (snv.id, False)
    # Taking the floor back gives no hand back.
    fx = h.send(chair, "floor", participant=None)
    assert "hands" not in types_to(fx, chair.id)
    assert [pid for pid, _ in h.room.hands] == [stttt.id, tantrach.id]
    # The floor to a site with its hand down: the queue is untouched, nobody told of it.
    fx = h.send(chair, "floor", participant=snv.id)
    assert "hands" not in types_to(fx, chair.id)
    assert [pid for pid, _ in h.room.hands] == [stttt.id, tantrach.id]
    h.room.check_invariants()


def test_the_floor_is_released_when_its_holder_leaves():
    h = Harness()
    chair = h.chair()
    snv, _ = h.join(SNV)
    h.send(chair, "floor", participant=snv.id)
    fx = h.send(snv, "leave")
    assert h.room.floor is None
    assert one(fx, chair.id, "floor") == {"type": "floor", "participant": None}


def test_the_chair_gives_and_takes_the_presenter_role():
    h = Harness()
    chair = h.chair()
    snv, _ = h.join(SNV)
    stttt, _ = h.join(STTTT)
    fx = h.send(chair, "presenter", participant=snv.id)
    assert h.room.presenter == snv.id
    for pid in (chair.id, snv.id, stttt.id):
        assert one(fx, pid, "presenter") == {"type": "presenter", "participant": snv.id}
    assert h.room.snapshot(stttt)["presenter"] == snv.id
    assert h.room.media_policy(4).presenter == snv.id
    fx = h.send(chair, "presenter", participant=None)
    assert h.room.presenter is None
    assert one(fx, snv.id, "presenter") == {"type": "presenter", "participant": None}
    h.refused("unknown_participant", chair, "presenter", participant="nobody")


def test_the_presenter_role_ends_when_its_holder_leaves():
    h = Harness()
    chair = h.chair()
    snv, _ = h.join(SNV)
    h.send(chair, "presenter", participant=snv.id)
    fx = h.send(snv, "leave")
    assert h.room.presenter is None
    assert one(fx, chair.id, "presenter") == {"type": "presenter", "participant": None}


def test_observers_and_the_recorder_cannot_present():
    h = Harness()
    chair = h.chair()
    observer, _ = h.join(TANTRACH, Role.OBSERVER)
    recorder = h.recorder()
    h.refused("forbidden", chair, "presenter", participant=observer.id)
    h.refused("forbidden", chair, "presenter", participant=recorder.id)
    assert h.room.presenter is None


def test_the_media_policy_lists_admitted_participants_and_what_they_may_send():
    h = Harness()
    chair = h.chair()
    snv, _ = h.join(SNV)
    observer, _ = h.join(TANTRACH, Role.OBSERVER)
    recorder = h.recorder()
    h.send(chair, "mute_participant", participant=snv.id)
    h.send(chair, "floor", participant=chair.id)
    policy = h.room.media_policy(3)
    by_id = {m.id: m for m in policy.members}
    assert set(by_id) == {chair.id, snv.id, observer.id, recorder.id}
    assert by_id[chair.id].is_chair
    assert not by_id[snv.id].is_chair
    assert by_id[snv.id].audio_muted, "muted by the chair: not forwarded"
    assert not by_id[observer.id].publishes
    assert not by_id[recorder.id].publishes
    assert by_id[recorder.id].everything
    assert (policy.floor, policy.last_n) == (chair.id, 3)
    # A disconnected site keeps its media through the grace window; a departed one not.
    h.room.disconnect(snv.id, h.now)
    assert snv.id in {m.id for m in h.room.media_policy(3).members}
    h.send(observer, "leave")
    assert observer.id not in {m.id for m in h.room.media_policy(3).members}


def test_an_observer_cannot_raise_a_hand_or_take_the_floor():
    h = Harness()
    chair = h.chair()
    observer, _ = h.join(TANTRACH, Role.OBSERVER)
    recorder = h.recorder()
    h.refused("forbidden", observer, "hand", raised=True)
    h.refused("forbidden", chair, "floor", participant=observer.id)
    h.refused("forbidden", recorder, "hand", raised=True)
    h.refused("forbidden", chair, "floor", participant=recorder.id)


# --- chat --------------------------------------------------------------------------------


def test_chat_to_all_reaches_everyone_in_the_room():
    h = Harness(auto_admit=False)
    chair = h.chair()
    waiting, _ = h.join(TANTRACH)
    snv, _ = h.join(SNV)
    h.send(chair, "admit", participant=snv.id)
    recorder = h.recorder()
    text = "Đề nghị các đơn vị báo cáo tiến độ giải ngân vốn đầu tư công 📈"
    fx = h.send(snv, "chat", text=text, to="all", id="c1")
    assert one(fx, snv.id, "ack")["id"] == "c1"
    message = {
        "type": "chat",
        "from": snv.id,
        "from_unit": SNV,
        "from_name": "Sở Nội vụ",
        "text": text,
        "to": "all",
        "at": h.now.isoformat(),
    }
    for pid in (chair.id, snv.id, recorder.id):
        assert one(fx, pid, "chat") == message
    assert to(fx, waiting.id) == []
    assert fx.chats == [ChatRecord(snv.id, 2, "Sở Nội vụ", "all", text, h.now)]


def test_chat_to_the_chair_reaches_only_the_chair_and_the_sender():
    h = Harness()
    chair = h.chair()
    chair2, _ = h.join(CHAIR, Role.CHAIR)
    snv, _ = h.join(SNV)
    stttt, _ = h.join(STTTT)
    recorder = h.recorder()
    fx = h.send(snv, "chat", text="Xin phát biểu ạ", to="chair")
    for pid in (chair.id, chair2.id, snv.id):
        assert one(fx, pid, "chat")["to"] == "chair"
    assert "chat" not in types_to(fx, stttt.id)
    assert "chat" not in types_to(fx, recorder.id)
    assert [r.to for r in fx.chats] == ["chair"]
    # The chair writing to the chair gets it once.
    fx = h.send(chair, "chat", text="Ghi nhận", to="chair")
    assert types_to(fx, chair.id).count("chat") == 1


# --- roll call ---------------------------------------------------------------------------


def test_roll_call_answers_go_to_the_chair_and_each_sees_its_own():
    h = Harness()
    chair = h.chair()
    snv, _ = h.join(SNV)
    stttt, _ = h.join(STTTT)
    h.refused("roll_call_closed", snv, "roll_call_answer", present=True)
    h.refused("roll_call_closed", chair, "roll_call_close")

    fx = h.send(chair, "roll_call_start", title="Điểm danh đầu giờ")
    for pid in (chair.id, snv.id, stttt.id):
        assert one(fx, pid, "roll_call") == {
            "type": "roll_call",
            "state": "open",
            "title": "Điểm danh đầu giờ",
            "answers": [],
        }

    fx = h.send(
        snv, "roll_call_answer", present=True, headcount=7, delegates=["Lê Văn Tám"], id="ra"
    )
    assert one(fx, snv.id, "ack")["id"] == "ra"
    chair_view = one(fx, chair.id, "roll_call")
    assert chair_view["state"] == "open"
    assert [
        (a["participant"], a["unit"], a["present"], a["headcount"], a["delegates"])
        for a in chair_view["answers"]
    ] == [(snv.id, SNV, True, 7, ["Lê Văn Tám"])]
    assert [a["participant"] for a in one(fx, snv.id, "roll_call")["answers"]] == [snv.id]
    assert to(fx, stttt.id) == []
    assert kinds(fx) == [(AttendanceKind.ROLL_CALL, snv.id)]
    record = fx.attendance[0]
    assert record.info["title"] == "Điểm danh đầu giờ"
    assert (record.info["present"], record.info["headcount"]) == (True, 7)

    h.send(stttt, "roll_call_answer", present=False)
    fx = h.send(chair, "roll_call_close")
    closed = one(fx, chair.id, "roll_call")
    assert closed["state"] == "closed"
    assert [a["participant"] for a in closed["answers"]] == [snv.id, stttt.id]
    assert [a["participant"] for a in one(fx, snv.id, "roll_call")["answers"]] == [snv.id]
    assert [a["present"] for a in one(fx, stttt.id, "roll_call")["answers"]] == [False]
    h.refused("roll_call_closed", snv, "roll_call_answer", present=True)
    h.refused("roll_call_closed", chair, "roll_call_close")


def test_the_snapshot_carries_the_roll_call_for_whoever_arrives_during_it():
    h = Harness()
    chair = h.chair()
    snv, _ = h.join(SNV)
    assert "roll_call" not in h.room.snapshot(snv)
    h.send(chair, "roll_call_start", title="Điểm danh đầu giờ")
    h.send(snv, "roll_call_answer", present=True, headcount=2, delegates=["Trần Thị Ngọc Ánh"])
    # A site that arrives now sees the open roll call, without the others' answers.
    late, fx = h.join(STTTT)
    welcome = one(fx, late.id, "welcome")
    assert welcome["room"]["roll_call"] == {
        "state": "open",
        "title": "Điểm danh đầu giờ",
        "answers": [],
    }
    # A site that answered sees its own answer; the chair (a reload) sees them all.
    own = h.room.snapshot(snv)["roll_call"]["answers"]
    assert [(a["participant"], a["delegates"]) for a in own] == [(snv.id, ["Trần Thị Ngọc Ánh"])]
    assert [a["participant"] for a in h.room.snapshot(chair)["roll_call"]["answers"]] == [snv.id]
    h.send(chair, "roll_call_close")
    assert h.room.snapshot(late)["roll_call"]["state"] == "closed"


def test_the_recorder_does_not_answer_a_roll_call():
    h = Harness()
    chair = h.chair()
    recorder = h.recorder()
    h.send(chair, "roll_call_start")
    assert h.room.roll_call is not None
    assert h.room.roll_call.title == "Điểm danh"
    h.refused("forbidden", recorder, "roll_call_answer", present=True)


# --- end ---------------------------------------------------------------------------------


def test_end_tells_everyone_closes_and_records_leaving():
    h = Harness(auto_admit=False)
    chair = h.chair()
    waiting, _ = h.join(TANTRACH)
    snv, _ = h.join(SNV)
    h.send(chair, "admit", participant=snv.id)
    stttt, _ = h.join(STTTT)
    h.send(chair, "admit", participant=stttt.id)
    h.disconnect(stttt)
    recorder = h.recorder()
    h.send(snv, "hand", raised=True)
    h.send(chair, "floor", participant=snv.id)
    fx = h.send(chair, "end", reason="Hội nghị kết thúc", id="e1")
    assert one(fx, chair.id, "ack")["id"] == "e1"
    connected = (chair.id, waiting.id, snv.id, recorder.id)
    for pid in connected:
        assert one(fx, pid, "ended") == {"type": "ended", "reason": "Hội nghị kết thúc"}
        assert (pid, 1000, "meeting ended") in fx.closes
    assert to(fx, stttt.id) == []
    assert sorted(kinds(fx)) == sorted(
        (AttendanceKind.LEAVE, pid) for pid in (chair.id, waiting.id, snv.id)
    )
    assert fx.status is RoomState.ENDED
    assert h.room.state is RoomState.ENDED
    assert all(p.state is ParticipantState.LEFT for p in h.room.participants.values())
    assert (h.room.lobby, h.room.hands, h.room.floor) == ([], [], None)

    before = state_of(h.room)
    with pytest.raises(RequestRefused) as err:
        h.join(SNV)
    assert err.value.code == "meeting_ended"
    with pytest.raises(RequestRefused) as err:
        h.resume(stttt.resume_token)
    assert err.value.code == "resume_expired"
    assert state_of(h.room) == before
    assert h.end() == Effects()
    assert h.go_live() == Effects()


# --- disconnect, resume, expire ---------------------------------------------------------


def test_disconnect_keeps_the_place_and_records_it():
    h = Harness()
    chair = h.chair()
    snv, _ = h.join(SNV)
    fx = h.disconnect(snv)
    assert kinds(fx) == [(AttendanceKind.DISCONNECT, snv.id)]
    entry = one(fx, chair.id, "participant_updated")["participant"]
    assert (entry["id"], entry["connected"]) == (snv.id, False)
    assert snv.state is ParticipantState.DISCONNECTED
    assert snv.id in [e["id"] for e in h.room.roster()]
    # A second disconnect is nothing.
    assert h.disconnect(snv) == Effects()


def test_resume_within_the_grace_window_reconnects_the_same_participant():
    h = Harness()
    chair = h.chair()
    snv, _ = h.join(SNV)
    h.send(snv, "hand", raised=True)
    old_token = snv.resume_token
    h.disconnect(snv)
    back, fx = h.resume(old_token, request_id="res")
    assert back is snv
    assert back.state is ParticipantState.ACTIVE
    welcome = one(fx, snv.id, "welcome")
    assert welcome["id"] == "res"
    assert welcome["resumed"] is True
    assert welcome["participant"] == snv.id
    assert welcome["state"] == "active"
    assert welcome["resume_token"] == snv.resume_token != old_token
    assert [q["participant"] for q in welcome["room"]["hands"]] == [snv.id]
    assert kinds(fx) == [(AttendanceKind.RECONNECT, snv.id)]
    entry = one(fx, chair.id, "participant_updated")["participant"]
    assert (entry["id"], entry["connected"]) == (snv.id, True)
    # The old token is spent.
    before = state_of(h.room)
    with pytest.raises(RequestRefused) as err:
        h.resume(old_token)
    assert err.value.code == "resume_expired"
    assert state_of(h.room) == before


def test_resume_while_the_old_socket_lives_replaces_it():
    h = Harness()
    h.chair()
    snv, _ = h.join(SNV)
    _, fx = h.resume(snv.resume_token)
    assert (snv.id, 4009, "replaced by a new connection") in fx.closes
    assert kinds(fx) == [(AttendanceKind.DISCONNECT, snv.id), (AttendanceKind.RECONNECT, snv.id)]
    assert snv.state is ParticipantState.ACTIVE


def test_a_waiting_participant_resumes_into_the_lobby():
    h = Harness(auto_admit=False)
    chair = h.chair()
    snv, _ = h.join(SNV)
    fx = h.disconnect(snv)
    assert kinds(fx) == [(AttendanceKind.LEAVE, snv.id)]
    assert h.room.lobby == []
    assert one(fx, chair.id, "lobby_changed")["lobby"] == []
    _, fx = h.resume(snv.resume_token)
    assert snv.state is ParticipantState.LOBBY
    assert one(fx, snv.id, "welcome")["state"] == "lobby"
    assert one(fx, snv.id, "lobby")["position"] == 1
    assert kinds(fx) == [(AttendanceKind.LOBBY, snv.id)]


def test_a_waiting_participant_resuming_into_a_live_auto_admit_room_enters():
    """Waiting before the start, dropped, back after the start: a live, unlocked
    auto-admit room lets participants in directly (a fresh join would enter), so
    the resumed endpoint must not wait in the lobby for a chair to admit it."""
    h = Harness(auto_admit=True, live=False)
    chair = h.chair()
    snv, _ = h.join(SNV)
    h.disconnect(snv)
    h.go_live()
    fresh, _ = h.join(STTTT)
    assert fresh.state is ParticipantState.ACTIVE
    _, fx = h.resume(snv.resume_token)
    assert snv.state is ParticipantState.ACTIVE
    assert h.room.lobby == []
    assert one(fx, snv.id, "welcome")["state"] == "active"
    assert one(fx, chair.id, "participant_joined")["participant"]["id"] == snv.id
    # Present again: its interval is open.
    spans = intervals(as_events(h.records))
    assert snv.id in {i.participant_session for i in spans if i.end is None}


def test_resume_with_an_unknown_token_is_resume_expired():
    h = Harness()
    h.chair()
    before = state_of(h.room)
    for token in ("not-a-token", "x" * 128):
        with pytest.raises(RequestRefused) as err:
            h.resume(token)
        assert err.value.code == "resume_expired"
    assert state_of(h.room) == before


def test_resume_with_a_non_ascii_token_is_resume_expired():
    """parse() accepts any string as `resume_token`; the room must refuse it, not crash."""
    h = Harness()
    h.chair()
    before = state_of(h.room)
    with pytest.raises(RequestRefused) as err:
        h.resume("mã-tiếp-tục-không-hợp-lệ")
    assert err.value.code == "resume_expired"
    assert state_of(h.room) == before


def test_expire_after_disconnect_is_leaving_by_timeout():
    h = Harness()
    chair = h.chair()
    snv, _ = h.join(SNV)
    h.send(chair, "floor", participant=snv.id)
    token = snv.resume_token
    h.disconnect(snv)
    fx = h.expire(snv)
    assert one(fx, chair.id, "participant_left") == {
        "type": "participant_left",
        "participant": snv.id,
        "reason": "timeout",
    }
    assert one(fx, chair.id, "floor")["participant"] is None
    assert fx.attendance == []  # the disconnect closed the interval
    assert snv.state is ParticipantState.LEFT
    assert snv.id not in [e["id"] for e in h.room.roster()]
    with pytest.raises(RequestRefused) as err:
        h.resume(token)
    assert err.value.code == "resume_expired"
    # Expiring someone connected (or gone) does nothing.
    assert h.expire(chair) == Effects()
    assert h.expire(snv) == Effects()


def test_a_waiting_participant_that_times_out_leaves_quietly():
    h = Harness(auto_admit=False)
    chair = h.chair()
    snv, _ = h.join(SNV)
    h.disconnect(snv)
    fx = h.expire(snv)
    assert to(fx, chair.id) == []
    assert fx.attendance == []
    assert snv.state is ParticipantState.LEFT


# --- ids of another room -------------------------------------------------------------------


def test_a_participant_id_of_another_room_is_unknown_participant():
    other = Harness(auto_admit=False, prefix="other-")
    other.chair()
    stranger, _ = other.join(SNV)
    h = Harness(auto_admit=False)
    chair = h.chair()
    h.join(SNV)
    assert stranger.id not in h.room.participants
    for kind in ("admit", "deny", "mute_participant", "remove", "floor"):
        h.refused("unknown_participant", chair, kind, participant=stranger.id)
    with pytest.raises(RequestRefused) as err:
        h.room.handle(stranger.id, m.parse('{"type": "ping"}'), h.tick())
    assert err.value.code == "unknown_participant"
    assert h.room.disconnect(stranger.id, h.now) == Effects()
    assert h.room.expire(stranger.id, h.now) == Effects()
    with pytest.raises(RequestRefused) as err:
        h.resume(stranger.resume_token)
    assert err.value.code == "resume_expired"


# --- the hidden recorder ----------------------------------------------------------------------


def test_the_recorder_is_hidden_yet_receives_the_room():
    h = Harness(auto_admit=False)
    chair = h.chair()
    h.send(chair, "lock", locked=True)
    snv, _ = h.join(SNV)
    recorder, fx = h.join("recorder", Role.RECORDER)
    assert recorder.state is ParticipantState.ACTIVE  # never waits, even locked
    assert fx.attendance == []
    assert to(fx, chair.id) == []
    assert fx.events == []
    welcome = one(fx, recorder.id, "welcome")
    assert welcome["role"] == "recorder"
    assert recorder.id not in roster_ids(welcome["room"])
    assert "lobby" not in welcome["room"]
    assert recorder.id not in [e["id"] for e in h.room.roster()]
    assert recorder.id not in h.room.lobby

    fx = h.send(chair, "admit", participant=snv.id)
    assert recorder.id not in roster_ids(one(fx, snv.id, "admitted")["room"])
    assert one(fx, recorder.id, "participant_joined")["participant"]["id"] == snv.id
    fx = h.send(snv, "hand", raised=True)
    assert "hands" in types_to(fx, recorder.id)
    fx = h.send(chair, "recording", on=True)
    assert one(fx, recorder.id, "recording") == {"type": "recording", "on": True}
    fx = h.send(chair, "roll_call_start")
    assert one(fx, recorder.id, "roll_call")["answers"] == []

    fx = h.send(recorder, "mute", audio=True)
    assert types_to(fx, chair.id) == []
    fx = h.disconnect(recorder)
    assert fx.attendance == []
    assert to(fx, chair.id) == []
    _, fx = h.resume(recorder.resume_token)
    assert fx.attendance == []
    assert to(fx, chair.id) == []
    fx = h.end()
    assert recorder.id not in [pid for _, pid in kinds(fx)]
    assert one(fx, recorder.id, "ended")["reason"] == "scheduled end"
    assert all(r.participant != recorder.id for r in h.records)


def test_the_recorder_leaving_is_not_announced():
    h = Harness()
    chair = h.chair()
    recorder = h.recorder()
    fx = h.send(recorder, "leave")
    assert fx.attendance == []
    assert to(fx, chair.id) == []
    assert (recorder.id, 1000, "left") in fx.closes


# --- attendance ---------------------------------------------------------------------------


def test_attendance_intervals_follow_the_room():
    h = Harness(auto_admit=False, live=False)  # t=0
    chair = h.chair()  # t=1: JOIN
    snv_a, _ = h.join(SNV)  # t=2: LOBBY
    h.go_live()  # t=3
    h.send(chair, "admit", participant=snv_a.id)  # t=4: ADMIT
    snv_b, _ = h.join(SNV, display_name="Màn hình phụ")  # t=5: LOBBY
    h.send(chair, "admit", participant=snv_b.id)  # t=6: ADMIT
    stttt, _ = h.join(STTTT)  # t=7: LOBBY
    h.send(chair, "deny", participant=stttt.id)  # t=8: DENY
    tantrach, _ = h.join(TANTRACH, Role.OBSERVER)  # t=9
    h.send(chair, "admit", participant=tantrach.id)  # t=10
    h.recorder()  # t=11: nothing
    h.disconnect(snv_a)  # t=12: DISCONNECT
    h.resume(snv_a.resume_token)  # t=13: RECONNECT
    h.send(chair, "roll_call_start")  # t=14
    h.send(snv_a, "roll_call_answer", present=True, headcount=3)  # t=15: ROLL_CALL
    h.send(chair, "remove", participant=tantrach.id)  # t=16: REMOVE
    h.send(snv_a, "leave")  # t=17: LEAVE
    h.disconnect(snv_b)  # t=18: DISCONNECT
    h.expire(snv_b)  # t=19: nothing
    h.end()  # t=20: LEAVE (chair)

    spans = intervals(as_events(h.records))
    assert [(i.participant_session, i.unit_id, i.start, i.end, i.closed_by) for i in spans] == [
        (chair.id, 1, at(1), at(20), AttendanceKind.LEAVE),
        (snv_a.id, 2, at(4), at(12), AttendanceKind.DISCONNECT),
        (snv_b.id, 2, at(6), at(18), AttendanceKind.DISCONNECT),
        (tantrach.id, 4, at(10), at(16), AttendanceKind.REMOVE),
        (snv_a.id, 2, at(13), at(17), AttendanceKind.LEAVE),
    ]
    # The unit with two screens counts once; the denied one was never present.
    presence = unit_presence(spans, until=at(30))
    assert presence == {
        1: [(at(1), at(20))],
        2: [(at(4), at(18))],
        4: [(at(10), at(16))],
    }


def test_open_intervals_are_exactly_the_connected_endpoints():
    h = Harness()
    chair = h.chair()
    snv, _ = h.join(SNV)
    h.recorder()
    h.disconnect(snv)
    spans = intervals(as_events(h.records))
    assert {i.participant_session for i in spans if i.end is None} == {chair.id}
    h.resume(snv.resume_token)
    spans = intervals(as_events(h.records))
    assert {i.participant_session for i in spans if i.end is None} == {chair.id, snv.id}
    h.end()
    assert all(i.end is not None for i in intervals(as_events(h.records)))
