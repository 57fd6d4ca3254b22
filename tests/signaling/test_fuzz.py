"""Property-based tests: parse() on hostile input, and the Room under random traffic.

Deterministic (derandomize) and quick: the whole file runs in a few seconds.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import string
import typing
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from conference.attendance import CLOSING, intervals, unit_presence
from signaling import messages as m
from signaling.errors import RequestRefused
from signaling.participant import ParticipantState, Role
from signaling.room import Effects, MeetingInfo, Room, RoomState

FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

# --- (1) parse() never fails with anything but BadMessage ---------------------------------

# Every code point, lone surrogates included (json.dumps escapes them as \udxxx).
any_char = st.characters(exclude_categories=())
TRICKY = ["", "\ud800", "x\udfff", "\x00", "ệ", "🇻🇳", "i" * 64, "i" * 65, "all", "chair", "1"]
any_text = st.text(any_char, max_size=40) | st.sampled_from(TRICKY)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    any_text,
    st.sampled_from(sorted(m.KNOWN_TYPES)),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)
MODELS = typing.get_args(typing.get_args(m.ClientMessage)[0])
FIELD_NAMES = sorted({name for model in MODELS for name in model.model_fields})
message_like = st.fixed_dictionaries(
    {"type": st.sampled_from(sorted(m.KNOWN_TYPES)) | any_text},
    optional={
        "id": st.sampled_from(TRICKY)
        | st.text(string.ascii_letters, min_size=1, max_size=70)
        | json_values,
    },
).flatmap(
    lambda base: st.dictionaries(st.sampled_from(FIELD_NAMES), json_values, max_size=6).map(
        lambda extra: {**extra, **base}
    )
)
FRAGMENTS = [
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    '"type"',
    '"join"',
    '"chat"',
    '"text"',
    '"id"',
    "true",
    "null",
    "-",
    "1e999",
    "0",
    "9" * 50,
    "9" * 4400,  # more digits than Python converts to an int (4300)
    '"\\ud800"',
    '"\\u0000"',
    "\\",
    '"',
    "ệ",
    "🇻🇳",
]
json_fragments = st.lists(st.sampled_from(FRAGMENTS), max_size=30).map("".join)


def parse_or_refuse(text: str) -> m.BadMessage | None:
    """parse() either returns a message or refuses it with BadMessage; nothing else."""
    error: m.BadMessage | None = None
    try:
        m.parse(text)
    except m.BadMessage as e:
        error = e
    if error is not None:
        assert error.code == "bad_message"
        assert isinstance(error, RequestRefused)
        rid = error.request_id
        assert rid is None or (isinstance(rid, str) and 0 < len(rid) <= 64)
    return error


@FUZZ
@given(
    st.one_of(
        any_text,
        st.binary(max_size=80).map(lambda b: b.decode("utf-8", errors="replace")),
        st.binary(max_size=80).map(lambda b: b.decode("latin-1")),
        json_fragments,
        message_like.map(json.dumps),
        message_like.map(lambda d: json.dumps(d, ensure_ascii=False)),
    )
)
def test_parse_raises_nothing_but_bad_message(text):
    parse_or_refuse(text)


@FUZZ
@given(message_like)
def test_the_answer_to_any_frame_can_be_sent_as_utf8(data):
    """Whatever parse() returns or refuses with can go back out as a UTF-8 text frame."""
    error = parse_or_refuse(json.dumps(data))
    if error is None:
        return
    reply: dict[str, Any] = {"type": "error", "code": error.code, "message": error.message}
    if error.request_id is not None:
        reply["request_id"] = error.request_id
    m.dumps(reply).encode("utf-8")


# --- (2) the Room under random traffic -------------------------------------------------------

T0 = datetime(2025, 3, 10, 8, 0, tzinfo=UTC)
CHAIR = "QB"
ICE: list[dict[str, Any]] = [{"urls": ["stun:stun.hoinghi.test:3478"]}]

# name -> (unit code, unit id, unit name, role); each join makes a new endpoint,
# so "snv" twice is one unit with two screens.
ENDPOINTS: dict[str, tuple[str, int | None, str, Role]] = {
    "chair": (CHAIR, 1, "UBND tỉnh Quảng Bình", Role.CHAIR),
    "snv": ("QB-SNV", 2, "Sở Nội vụ", Role.PARTICIPANT),
    "stttt": ("QB-STTTT", 3, "Sở Thông tin và Truyền thông", Role.PARTICIPANT),
    "tantrach": ("QB-BOTRACH-TANTRACH", 4, "UBND xã Tân Trạch", Role.OBSERVER),
    "recorder": ("", None, "Máy ghi hình", Role.RECORDER),
    "impostor": ("QB-SNV", 2, "Sở Nội vụ", Role.CHAIR),  # refused: not the chair unit
}
LIVE_SOCKET = (ParticipantState.ACTIVE, ParticipantState.LOBBY)


def meeting(auto_admit: bool, recording: bool) -> MeetingInfo:
    return MeetingInfo(
        meeting_id=7,
        title="Hội nghị trực tuyến",
        starts_at=T0,
        ends_at=T0 + timedelta(hours=2),
        chair_unit=CHAIR,
        auto_admit=auto_admit,
        recording=recording,
    )


def state_of(room: Room) -> dict[str, Any]:
    """Everything a room step may change, copied (cheaply: this runs on every step)."""

    def person(p: Any) -> tuple[Any, ...]:
        return tuple(copy.copy(getattr(p, f.name)) for f in dataclasses.fields(p))

    call = room.roll_call
    return {
        "state": room.state,
        "participants": {pid: person(p) for pid, p in room.participants.items()},
        "lobby": tuple(room.lobby),
        "hands": tuple(room.hands),
        "floor": room.floor,
        "locked": room.locked,
        "recording": room.recording,
        "roll_call": None
        if call is None
        else (call.title, call.opened_at, call.closed, copy.deepcopy(call.answers)),
    }


def as_events(records: list[Any]) -> list[SimpleNamespace]:
    return [
        SimpleNamespace(participant_session=r.participant, unit_id=r.unit_id, kind=r.kind, at=r.at)
        for r in records
    ]


RID = st.none() | st.sampled_from(["r1", "yêu-cầu-2"])


def build(model: Any, kind: str, **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.builds(model, type=st.just(kind), id=RID, **fields)


def moderation_messages(refs: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """Valid chair-only messages (but `end`), built from the message classes."""
    return st.one_of(
        build(m.Admit, "admit", participant=refs),
        build(m.Deny, "deny", participant=refs),
        build(m.MuteParticipant, "mute_participant", participant=refs | st.just("all")),
        build(m.Remove, "remove", participant=refs),
        build(m.Lock, "lock", locked=st.booleans()),
        build(m.Floor, "floor", participant=st.none() | refs),
        build(m.Recording, "recording", on=st.booleans()),
        build(m.RollCallStart, "roll_call_start", title=st.none() | st.just("Điểm danh lần 2")),
        build(m.RollCallClose, "roll_call_close"),
    )


def client_messages(refs: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """Valid client messages of every kind but `end` (a rule of its own, rarer)."""
    text = st.text(st.characters(codec="utf-8"), min_size=1, max_size=30)
    return st.one_of(
        build(m.Ping, "ping"),
        build(m.Leave, "leave"),
        build(
            m.Publish,
            "publish",
            sdp=st.just("v=0\r\n"),
            source=st.sampled_from(["camera", "screen"]),
        ),
        build(m.Unpublish, "unpublish", source=st.sampled_from(["camera", "screen"])),
        build(m.Answer, "answer", offer_id=st.just("o1"), sdp=st.just("v=0\r\n")),
        build(
            m.Ice, "ice", target=st.sampled_from(["publish", "subscribe"]), candidate=st.just("")
        ),
        build(m.Mute, "mute", audio=st.none() | st.booleans(), video=st.none() | st.booleans()),
        build(m.Hand, "hand", raised=st.booleans()),
        build(m.Chat, "chat", text=text, to=st.sampled_from(["all", "chair"])),
        build(
            m.RollCallAnswer,
            "roll_call_answer",
            present=st.booleans(),
            headcount=st.none() | st.integers(0, 1000),
            delegates=st.lists(st.text(st.characters(codec="utf-8"), max_size=10), max_size=3),
        ),
        moderation_messages(refs),
    )


# Participant references are drawn as placeholders ("#7") and resolved against the
# room of the moment (RoomMachine.resolve), so the strategies are built only once.
REF = st.integers(0, 60).map(lambda i: f"#{i}")
CLIENT_MESSAGES = client_messages(REF)
MODERATION_MESSAGES = moderation_messages(REF)
EVERYDAY_MESSAGES = st.one_of(
    build(m.Hand, "hand", raised=st.booleans()),
    build(m.Chat, "chat", text=st.just("Xin phát biểu 🙋"), to=st.sampled_from(["all", "chair"])),
    build(m.RollCallAnswer, "roll_call_answer", present=st.booleans()),
    build(m.Mute, "mute", audio=st.booleans(), video=st.none() | st.booleans()),
)
END_MESSAGES = build(m.End, "end", reason=st.none() | st.just("Hết giờ"))
STALE_TOKENS = st.text(string.ascii_letters + string.digits + "-_", min_size=1, max_size=40)
VALID_MESSAGES = st.one_of(
    CLIENT_MESSAGES,
    EVERYDAY_MESSAGES,
    END_MESSAGES,
    build(
        m.Join,
        "join",
        token=st.text(st.characters(codec="utf-8"), min_size=1, max_size=50),
        protocol=st.integers(),
        display_name=st.none() | st.text(st.characters(codec="utf-8"), max_size=100),
        client=st.builds(
            m.ClientInfo,
            ua=st.none() | st.text(max_size=20),
            bandwidth=st.sampled_from(["full", "low", "audio"]),
        ),
    ),
    build(m.Resume, "resume", resume_token=STALE_TOKENS, protocol=st.just(1)),
)


@FUZZ
@given(VALID_MESSAGES, st.dictionaries(st.text(max_size=10), json_values, max_size=3))
def test_a_valid_message_parses_back_to_itself_whatever_else_it_carries(msg, extra):
    data = {**extra, **msg.model_dump()}
    for text in (json.dumps(data), json.dumps(data, ensure_ascii=False)):
        assert m.parse(text) == msg


@FUZZ
@given(message_like | VALID_MESSAGES.map(lambda x: x.model_dump()))
def test_what_parse_accepts_it_accepts_again_from_its_own_dump(data):
    try:
        msg = m.parse(json.dumps(data))
    except m.BadMessage:
        return
    again = m.parse(msg.model_dump_json())
    assert again == msg


def walk(value: Any) -> list[dict[str, Any]]:
    """Every dict inside a message."""
    found: list[dict[str, Any]] = []
    if isinstance(value, dict):
        found.append(value)
        for item in value.values():
            found += walk(item)
    elif isinstance(value, list):
        for item in value:
            found += walk(item)
    return found


class RoomMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.room: Room | None = None
        self.now = T0
        self.records: list[Any] = []
        self.spent_tokens: list[str] = []
        # A participant of another room, whose id this room must not know.
        other = Room(meeting(True, False), id_factory=lambda: "elsewhere-1")
        stranger, _ = other.join(
            unit_code="QB-SNV",
            unit_name="Sở Nội vụ",
            unit_id=2,
            display_name="",
            role=Role.PARTICIPANT,
            client_info={},
            bandwidth="full",
            now=T0,
            ice_servers=ICE,
        )
        self.stranger = stranger.id
        self.stranger_token = stranger.resume_token

    # --- plumbing --------------------------------------------------------------------

    @property
    def r(self) -> Room:
        assert self.room is not None
        return self.room

    def pids(self) -> list[str]:
        return list(self.r.participants)

    def refs(self) -> list[str]:
        return [*self.pids(), "nobody", self.stranger]

    def apply(self, action: Any, subject: str | None = None) -> Any:
        """Run one room step; check what it did, or that a refusal did nothing."""
        room = self.r
        before = state_of(room)
        states = {pid: p.state for pid, p in room.participants.items()}
        try:
            out = action()
        except RequestRefused as e:
            refused: RequestRefused | None = e
        else:
            refused = None
        if refused is not None:
            event(f"refused: {refused.code}")
            assert state_of(room) == before, f"refused ({refused.code}) yet the room changed"
            return None
        fx: Effects = out[1] if isinstance(out, tuple) else out
        if isinstance(out, tuple):
            subject = out[0].id
        self.check_effects(fx, states, subject)
        self.records.extend(fx.attendance)
        return out

    def check_effects(
        self, fx: Effects, states: dict[str, ParticipantState], subject: str | None
    ) -> None:
        room = self.r
        people = room.participants
        for recipients, message in fx.messages:
            assert recipients, "a message to nobody"
            assert len(set(recipients)) == len(recipients), f"sent twice: {message}"
            for pid in recipients:
                assert pid in people, f"{message['type']} to a stranger {pid}"
                assert pid == subject or states.get(pid) in LIVE_SOCKET, (
                    f"{message['type']} to {pid}, which had no connection ({states.get(pid)})"
                )
            m.dumps(message).encode("utf-8")
            for part in walk(message):
                if part.get("type") in ("participant_joined", "participant_updated"):
                    assert not people[part["participant"]["id"]].hidden, "the recorder announced"
                if part.get("type") == "participant_left":
                    assert not people[part["participant"]].hidden, "the recorder announced"
                for key in ("roster", "lobby"):
                    if isinstance(part.get(key), list):
                        assert all(not people[e["id"]].hidden for e in part[key]), (
                            f"the recorder in a {key}"
                        )
        for pid, code, _reason in fx.closes:
            assert pid in people
            assert states.get(pid) in LIVE_SOCKET, f"close {code} of {pid} without a connection"
        for record in fx.attendance:
            p = people[record.participant]
            assert not p.hidden, "attendance of the recorder"
            assert record.at == self.now
            assert record.unit_id == p.unit_id

    # --- rules -------------------------------------------------------------------------

    @initialize(
        auto_admit=st.booleans(),
        recording=st.booleans(),
        live=st.booleans(),
        first=st.lists(st.sampled_from(sorted(ENDPOINTS)), max_size=4),
    )
    def open_room(self, auto_admit: bool, recording: bool, live: bool, first: list[str]) -> None:
        counter = itertools.count(1)
        self.room = Room(meeting(auto_admit, recording), id_factory=lambda: f"p{next(counter)}")
        if live:
            self.apply(lambda: self.r.go_live(self.now))
        for endpoint in ["chair", *first]:
            self.enter(endpoint, "")

    @rule(seconds=st.sampled_from([0, 0.5, 1, 3, 10, 31, 120]))
    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    @precondition(lambda self: len(self.r.participants) < 12)
    @rule(endpoint=st.sampled_from(sorted(ENDPOINTS)), name=st.sampled_from(["", "Màn hình 2 📺"]))
    def join(self, endpoint: str, name: str) -> None:
        self.enter(endpoint, name)

    def enter(self, endpoint: str, name: str) -> None:
        unit_code, unit_id, unit_name, role = ENDPOINTS[endpoint]
        self.apply(
            lambda: self.r.join(
                unit_code=unit_code,
                unit_name=unit_name,
                unit_id=unit_id,
                display_name=name,
                role=role,
                client_info={"ua": "hypothesis"},
                bandwidth="full",
                now=self.now,
                ice_servers=ICE,
                request_id="j",
            )
        )

    def connected(self) -> list[str]:
        return [p.id for p in self.r.participants.values() if p.state in LIVE_SOCKET]

    def resolve(self, msg: Any) -> Any:
        """Turn a "#k" placeholder into a participant id: mostly someone waiting or
        still here, sometimes someone gone, an id never seen, or another room's."""
        ref = getattr(msg, "participant", None)
        if not (isinstance(ref, str) and ref.startswith("#")):
            return msg
        here = [p.id for p in self.r.participants.values() if p.state is not ParticipantState.LEFT]
        pool = [*self.r.lobby * 3, *here * 2, *self.refs()]
        return msg.model_copy(update={"participant": pool[int(ref[1:]) % len(pool)]})

    def send(self, sender: str, msg: Any) -> None:
        msg = self.resolve(msg)
        if self.apply(lambda: self.r.handle(sender, msg, self.now)) is not None:
            event(f"done: {msg.type}")

    @rule(who=st.sampled_from(["site", "site", "site", "chair", "chair", "nobody"]), data=st.data())
    def message(self, who: str, data: st.DataObject) -> None:
        """A client message: from someone connected (often the everyday actions), from
        a chair (moderation), or from someone gone, unknown, or of another room."""
        people = self.r.participants.values()
        chairs = [p.id for p in people if p.is_chair and p.state is ParticipantState.ACTIVE]
        connected = self.connected()
        if who == "chair" and chairs:
            sender = data.draw(st.sampled_from(chairs), label="chair")
            msg = data.draw(MODERATION_MESSAGES, label="moderation")
        elif who == "site" and connected:
            sender = data.draw(st.sampled_from(connected), label="sender")
            everyday = data.draw(st.booleans(), label="everyday")
            msg = data.draw(EVERYDAY_MESSAGES if everyday else CLIENT_MESSAGES, label="message")
        else:
            gone = [p.id for p in people if p.state is ParticipantState.LEFT]
            sender = data.draw(st.sampled_from([*gone, "nobody", self.stranger]), label="sender")
            msg = data.draw(CLIENT_MESSAGES, label="message")
        self.send(sender, msg)

    @rule(
        action=st.sampled_from(["disconnect", "disconnect", "expire", "resume", "stale"]),
        data=st.data(),
    )
    def connection(self, action: str, data: st.DataObject) -> None:
        """A socket drops, the grace window passes, or someone resumes (or tries to)."""
        if action == "disconnect":
            pool = st.sampled_from(self.refs())
            if self.connected():
                pool = st.sampled_from(self.connected()) | pool
            pid = data.draw(pool, label="who")
            self.apply(lambda: self.r.disconnect(pid, self.now))
        elif action == "expire":
            pid = data.draw(st.sampled_from(self.refs()), label="who")
            self.apply(lambda: self.r.expire(pid, self.now))
        elif action == "resume":
            p = self.r.participants[data.draw(st.sampled_from(self.pids()), label="who")]
            token = p.resume_token
            if self.apply(lambda: self.r.resume(token, self.now, ICE, "res")) is not None:
                self.spent_tokens.append(token)
                assert p.resume_token != token
        else:
            # ASCII only: a non-ASCII token crashes compare_digest, a bug test_room.py
            # shows on its own (test_resume_with_a_non_ascii_token_is_resume_expired).
            known = st.sampled_from([*self.spent_tokens, self.stranger_token, "x"])
            token = data.draw(known | STALE_TOKENS, label="token")
            result = self.apply(lambda: self.r.resume(token, self.now, ICE))
            assert result is None, "a stale token resumed someone"

    @rule(roll=st.integers(0, 39), data=st.data())
    def schedule(self, roll: int, data: st.DataObject) -> None:
        """The scheduled start; rarely the end (after it nothing else happens): by the
        clock, or by an `end` from anyone (only a chair's is obeyed)."""
        if roll == 0:
            self.apply(lambda: self.r.end(self.now, "scheduled end"))
        elif roll == 1:
            sender = data.draw(st.sampled_from(self.refs()), label="sender")
            self.send(sender, data.draw(END_MESSAGES, label="end"))
        elif roll <= 15:
            self.apply(lambda: self.r.go_live(self.now))

    # --- invariants ----------------------------------------------------------------------

    @invariant()
    def room_invariants(self) -> None:
        if self.room is not None:
            self.room.check_invariants()

    @invariant()
    def attendance_intervals_are_sound(self) -> None:
        if self.room is None:
            return
        spans = intervals(as_events(self.records))
        by_endpoint: dict[str, list[Any]] = defaultdict(list)
        for span in spans:
            assert span.end is None or span.end >= span.start, span
            assert span.end is None or span.closed_by in CLOSING
            by_endpoint[span.participant_session].append(span)
        for pid, own in by_endpoint.items():
            own.sort(key=lambda s: s.start)
            for earlier, later in itertools.pairwise(own):
                assert earlier.end is not None, f"{pid}: an open interval before another"
                assert earlier.end <= later.start, f"{pid}: overlapping intervals"
        present = {
            p.id
            for p in self.room.participants.values()
            if p.state is ParticipantState.ACTIVE and not p.hidden
        }
        open_now = {s.participant_session for s in spans if s.end is None}
        assert open_now == present, "open intervals differ from the endpoints in the room"
        if self.room.state is RoomState.ENDED:
            assert not open_now
        for unit_spans in unit_presence(spans, until=self.now).values():
            for earlier, later in itertools.pairwise(unit_spans):
                assert earlier[1] < later[0], "a unit counted twice"


RoomMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestRoomUnderRandomTraffic = RoomMachine.TestCase
