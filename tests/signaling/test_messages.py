"""signaling.messages.parse: the client side of docs/protocol.md, frame by frame."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from signaling import messages as m
from signaling.errors import RequestRefused

PROTOCOL_MD = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"

VIETNAMESE = "Kính gửi Ủy ban nhân dân tỉnh Quảng Bình: đề nghị phát biểu ý kiến 🇻🇳🙏"

# One valid frame per client message type, every documented field set.
VALID: dict[str, dict[str, Any]] = {
    "join": {
        "type": "join",
        "token": "eyJhbGciOiJIUzI1NiJ9.eyJ1bml0IjoiUUItU05WIn0.c2lnbmF0dXJl",
        "protocol": 1,
        "display_name": "Sở Nội vụ — phòng họp 2 📺",
        "client": {"ua": "Mozilla/5.0", "app": "web", "version": "1.2.3", "bandwidth": "low"},
    },
    "resume": {"type": "resume", "resume_token": "dGhlLXJlc3VtZS10b2tlbg", "protocol": 1},
    "leave": {"type": "leave"},
    "publish": {
        "type": "publish",
        "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n",
        "source": "screen",
    },
    "unpublish": {"type": "unpublish", "source": "screen"},
    "answer": {"type": "answer", "offer_id": "offer-7", "sdp": "v=0\r\n"},
    "resubscribe": {"type": "resubscribe"},
    "presenter": {"type": "presenter", "participant": "p-1"},
    "ice": {
        "type": "ice",
        "target": "subscribe",
        "candidate": "candidate:1 1 udp 2122260223 10.0.0.2 49152 typ host",
        "sdp_mid": "0",
        "sdp_mline_index": 0,
    },
    "mute": {"type": "mute", "audio": True, "video": False},
    "hand": {"type": "hand", "raised": True},
    "chat": {"type": "chat", "text": VIETNAMESE, "to": "chair"},
    "roll_call_answer": {
        "type": "roll_call_answer",
        "present": True,
        "headcount": 12,
        "delegates": ["Nguyễn Văn An", "Trần Thị Bích Ngọc"],
    },
    "ping": {"type": "ping"},
    "admit": {"type": "admit", "participant": "a1b2c3d4e5f6"},
    "deny": {"type": "deny", "participant": "a1b2c3d4e5f6"},
    "mute_participant": {"type": "mute_participant", "participant": "all"},
    "remove": {"type": "remove", "participant": "a1b2c3d4e5f6"},
    "lock": {"type": "lock", "locked": True},
    "floor": {"type": "floor", "participant": "a1b2c3d4e5f6"},
    "recording": {"type": "recording", "on": False},
    "roll_call_start": {"type": "roll_call_start", "title": "Điểm danh đầu giờ"},
    "roll_call_close": {"type": "roll_call_close"},
    "end": {"type": "end", "reason": "Kết thúc hội nghị"},
}


def frame(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False)


def refused(text: str) -> m.BadMessage:
    with pytest.raises(m.BadMessage) as info:
        m.parse(text)
    error = info.value
    assert isinstance(error, RequestRefused)
    assert error.code == "bad_message"
    assert error.message
    return error


def documented_client_types() -> set[str]:
    """The `type` column of the two client-to-server tables of docs/protocol.md."""
    text = PROTOCOL_MD.read_text(encoding="utf-8")
    section = text.split("## Client to server", 1)[1].split("## Server to client", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.MULTILINE))


def as_plain(value: Any) -> Any:
    if isinstance(value, m.ClientInfo):
        return value.model_dump()
    if isinstance(value, tuple):
        return list(value)
    return value


# --- valid messages -------------------------------------------------------------------


def test_every_documented_client_type_is_parsed_and_nothing_else():
    documented = documented_client_types()
    assert len(documented) == 24
    assert documented == set(m.KNOWN_TYPES)
    assert documented == set(VALID)


@pytest.mark.parametrize("kind", sorted(VALID))
def test_each_client_message_parses_with_its_fields(kind):
    data = VALID[kind]
    msg = m.parse(frame(data))
    assert msg.type == kind
    assert msg.id is None
    for name, value in data.items():
        assert as_plain(getattr(msg, name)) == value, name


@pytest.mark.parametrize("kind", sorted(VALID))
def test_each_client_message_carries_its_request_id(kind):
    msg = m.parse(frame({**VALID[kind], "id": "yêu-cầu-1"}))
    assert msg.id == "yêu-cầu-1"


def test_moderation_types_are_the_chair_only_table():
    text = PROTOCOL_MD.read_text(encoding="utf-8")
    chair_table = text.split("Chair only", 1)[1].split("## Server to client", 1)[0]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", chair_table, flags=re.MULTILINE))
    assert documented == set(m.MODERATION_TYPES)


def test_vietnamese_and_emoji_text_is_unchanged():
    msg = m.parse(frame({"type": "chat", "text": VIETNAMESE, "to": "all"}))
    assert msg.text == VIETNAMESE
    # The same text sent with \u escapes (ensure_ascii) arrives identical too.
    msg = m.parse(json.dumps({"type": "chat", "text": VIETNAMESE}))
    assert msg.text == VIETNAMESE
    join = m.parse(frame({**VALID["join"], "display_name": "Xã Tân Trạch 🌾"}))
    assert join.display_name == "Xã Tân Trạch 🌾"
    answer = m.parse(frame(VALID["roll_call_answer"]))
    assert list(answer.delegates) == ["Nguyễn Văn An", "Trần Thị Bích Ngọc"]


def test_optional_fields_take_their_defaults():
    join = m.parse(frame({"type": "join", "token": "t", "protocol": 1}))
    assert join.display_name is None
    assert join.client.bandwidth == "full"
    mute = m.parse(frame({"type": "mute"}))
    assert (mute.audio, mute.video) == (None, None)
    answer = m.parse(frame({"type": "roll_call_answer", "present": False}))
    assert answer.headcount is None
    assert list(answer.delegates) == []
    assert m.parse(frame({"type": "roll_call_start"})).title is None
    assert m.parse(frame({"type": "end"})).reason is None


def test_floor_accepts_null_to_take_the_floor_back():
    assert m.parse(frame({"type": "floor", "participant": None})).participant is None


def test_an_empty_candidate_marks_the_end_of_candidates():
    msg = m.parse(frame({"type": "ice", "target": "publish", "candidate": ""}))
    assert msg.candidate == ""
    assert msg.sdp_mid is None
    assert msg.sdp_mline_index is None


def test_length_limits_are_inclusive():
    assert m.parse(frame({"type": "chat", "text": "ệ" * 2000})).text == "ệ" * 2000
    join = m.parse(frame({**VALID["join"], "display_name": "ộ" * 100}))
    assert join.display_name == "ộ" * 100
    assert m.parse(frame({"type": "roll_call_answer", "present": True, "headcount": 0}))
    assert m.parse(frame({"type": "roll_call_answer", "present": True, "headcount": 1000}))
    assert m.parse(frame({"type": "chat", "text": "x", "id": "i" * 64})).id == "i" * 64
    big_answer = frame({**VALID["answer"], "sdp": "a" * 250_000})
    assert len(big_answer.encode()) <= m.MAX_FRAME_BYTES  # the largest SDP fits one frame
    assert len(m.parse(big_answer).sdp) == 250_000


def test_extra_unknown_fields_are_ignored():
    msg = m.parse(
        frame(
            {
                "type": "chat",
                "text": "xin chào",
                "to": "all",
                "priority": "high",
                "v2": {"nested": [1, 2, {"x": None}]},
            }
        )
    )
    assert msg.text == "xin chào"
    assert not hasattr(msg, "priority")
    join = m.parse(
        frame({**VALID["join"], "client": {**VALID["join"]["client"], "gpu": "none", "cores": 8}})
    )
    assert join.client.bandwidth == "low"
    assert "gpu" not in join.client.model_dump()


def test_parsed_messages_are_frozen():
    msg = m.parse(frame(VALID["hand"]))
    with pytest.raises(ValueError, match="frozen"):
        msg.raised = False


# --- refused frames -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["", " ", "{", '{"type": "ping"', "{'type': 'ping'}", "ping", '{"type": "ping",}', "\x00"],
)
def test_invalid_json_is_bad_message_without_request_id(text):
    assert refused(text).request_id is None


@pytest.mark.parametrize("text", ["[]", "[1, 2]", "1", '"join"', "null", "true", "NaN", "1e999"])
def test_a_frame_that_is_not_an_object_is_bad_message(text):
    assert refused(text).request_id is None


@pytest.mark.parametrize(
    "data",
    [
        {"id": "r1"},
        {"type": "dance", "id": "r1"},
        {"type": "JOIN", "id": "r1"},
        {"type": "", "id": "r1"},
        {"type": 5, "id": "r1"},
        {"type": None, "id": "r1"},
        {"type": ["join"], "id": "r1"},
        {"type": {"join": 1}, "id": "r1"},
        {"type": "welcome", "id": "r1"},  # a server message is not a client one
        {"type": "error", "id": "r1"},
    ],
)
def test_an_unknown_type_is_bad_message_with_the_request_id(data):
    assert refused(frame(data)).request_id == "r1"


MISSING = [
    ("join", "token"),
    ("join", "protocol"),
    ("resume", "resume_token"),
    ("resume", "protocol"),
    ("publish", "sdp"),
    ("answer", "offer_id"),
    ("answer", "sdp"),
    ("ice", "target"),
    ("ice", "candidate"),
    ("hand", "raised"),
    ("chat", "text"),
    ("roll_call_answer", "present"),
    ("admit", "participant"),
    ("deny", "participant"),
    ("mute_participant", "participant"),
    ("remove", "participant"),
    ("lock", "locked"),
    ("floor", "participant"),
    ("recording", "on"),
]


@pytest.mark.parametrize(("kind", "field"), MISSING)
def test_a_missing_field_is_bad_message(kind, field):
    data = {k: v for k, v in VALID[kind].items() if k != field} | {"id": "q-1"}
    error = refused(frame(data))
    assert error.request_id == "q-1"
    assert field in error.message


WRONG_TYPE = [
    ("hand", "raised", "yes"),
    ("hand", "raised", "true"),
    ("hand", "raised", 1),
    ("hand", "raised", None),
    ("lock", "locked", "false"),
    ("lock", "locked", 0),
    ("recording", "on", "on"),
    ("mute", "audio", "false"),
    ("mute", "video", 1),
    ("roll_call_answer", "present", "có"),
    ("roll_call_answer", "headcount", "1"),
    ("roll_call_answer", "headcount", 1.5),
    ("roll_call_answer", "headcount", True),
    ("roll_call_answer", "delegates", "Nguyễn Văn An"),
    ("roll_call_answer", "delegates", [1, 2]),
    ("join", "protocol", "1"),
    ("join", "protocol", 1.0),
    ("join", "protocol", True),
    ("join", "token", 12345),
    ("join", "client", "Mozilla/5.0"),
    ("join", "display_name", ["Sở Nội vụ"]),
    ("resume", "protocol", "1"),
    ("chat", "text", 42),
    ("chat", "text", ["xin", "chào"]),
    ("admit", "participant", 7),
    ("floor", "participant", 7),
    ("remove", "participant", {"id": "a"}),
    ("ice", "sdp_mline_index", "0"),
    ("ice", "candidate", None),
    ("publish", "sdp", {"type": "offer"}),
    ("end", "reason", 3),
    ("roll_call_start", "title", False),
]


@pytest.mark.parametrize(("kind", "field", "value"), WRONG_TYPE)
def test_a_wrongly_typed_field_is_bad_message(kind, field, value):
    error = refused(frame({**VALID[kind], field: value, "id": "q-2"}))
    assert error.request_id == "q-2"
    assert field in error.message


OUT_OF_RANGE = [
    ("chat", "text", "ệ" * 2001),
    ("chat", "text", ""),
    ("join", "display_name", "ộ" * 101),
    ("join", "token", ""),
    ("resume", "resume_token", ""),
    ("resume", "resume_token", "r" * 129),
    ("roll_call_answer", "headcount", -1),
    ("roll_call_answer", "headcount", 1001),
    ("roll_call_answer", "delegates", ["x" * 101]),
    ("roll_call_answer", "delegates", ["Đại biểu"] * 51),
    ("ice", "sdp_mline_index", -1),
    ("ice", "candidate", "c" * 1001),
    ("admit", "participant", ""),
    ("remove", "participant", "p" * 65),
    ("publish", "sdp", ""),
    ("answer", "sdp", "a" * 250_001),
    ("publish", "sdp", "a" * 250_001),
    ("end", "reason", "r" * 101),
    ("roll_call_start", "title", "t" * 101),
]


@pytest.mark.parametrize(("kind", "field", "value"), OUT_OF_RANGE)
def test_an_over_long_or_out_of_range_field_is_bad_message(kind, field, value):
    error = refused(frame({**VALID[kind], field: value, "id": "q-3"}))
    assert error.request_id == "q-3"
    assert field in error.message


BAD_ENUM = [
    ("chat", "to", "everyone"),
    ("chat", "to", "Chair"),
    ("chat", "to", None),
    ("publish", "source", "window"),
    ("unpublish", "source", "microphone"),
    ("ice", "target", "both"),
]


@pytest.mark.parametrize(("kind", "field", "value"), BAD_ENUM)
def test_a_value_outside_its_enum_is_bad_message(kind, field, value):
    error = refused(frame({**VALID[kind], field: value, "id": "q-4"}))
    assert error.request_id == "q-4"
    assert field in error.message


def test_a_bad_bandwidth_in_the_client_object_is_bad_message():
    data = {**VALID["join"], "client": {"bandwidth": "high"}, "id": "q-5"}
    error = refused(frame(data))
    assert error.request_id == "q-5"
    assert "bandwidth" in error.message


@pytest.mark.parametrize(
    "rid",
    [5, 1.5, True, "", "i" * 65, ["r1"], {"id": "r1"}],
    ids=["int", "float", "bool", "empty", "too-long", "list", "object"],
)
def test_an_unusable_request_id_is_not_carried(rid):
    # A known type with a bad field: the frame is refused, with no id to answer to.
    assert refused(frame({"type": "hand", "raised": "yes", "id": rid})).request_id is None
    # An unusable id on an otherwise valid message makes it a bad message itself.
    assert refused(frame({"type": "ping", "id": rid})).request_id is None


def test_the_request_id_is_carried_from_a_frame_refused_for_its_content():
    error = refused(frame({"type": "chat", "text": "ệ" * 2001, "to": "all", "id": "chat-9"}))
    assert error.request_id == "chat-9"


def test_a_lone_surrogate_in_text_is_bad_message():
    # Valid JSON (an escape), but not Unicode text that could be relayed as UTF-8.
    error = refused('{"type": "chat", "text": "xin ch\\ud83d", "id": "s-1"}')
    assert error.request_id == "s-1"


def test_the_error_reply_to_a_refused_frame_can_be_sent_as_utf8():
    """Text frames are UTF-8: the `error` answering a frame must be encodable.

    An `id` made of a lone surrogate escape is valid JSON, and is echoed as
    `request_id`; the reply must not carry something that cannot be encoded.
    """
    for text in (
        '{"type": "dance", "id": "\\ud800"}',
        '{"type": "hand", "raised": "yes", "id": "x\\udfff"}',
        '{"type": "\\ud800", "id": "r1"}',
    ):
        error = refused(text)
        reply = {"type": "error", "code": error.code, "message": error.message}
        if error.request_id is not None:
            reply["request_id"] = error.request_id
        m.dumps(reply).encode("utf-8")


# --- hostile frames ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000,
        "{" * 100_000,
        '{"a":' * 100_000,
        '{"type": "ping", "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
        '{"type": "roll_call_answer", "present": true, "delegates": '
        + "[" * 50_000
        + "]" * 50_000
        + "}",
    ],
    ids=["brackets", "braces", "objects", "nested-extra", "nested-field"],
)
def test_deep_nesting_is_bad_message_not_a_crash(text):
    # json gives up (RecursionError) before Python's stack does: refused, not crashed.
    assert refused(text).request_id is None


def test_moderately_deep_nesting_in_an_ignored_field_is_ignored():
    msg = m.parse('{"type": "ping", "id": "p", "x": ' + "[" * 500 + "]" * 500 + "}")
    assert msg.type == "ping"


def test_a_huge_integer_is_bad_message_not_a_crash():
    """A 5 kB frame (well under the 256 KiB limit) with a 5000-digit number.

    Python refuses to convert integers of more than 4300 digits with ValueError,
    which must not escape parse (the session would close with 1011).
    """
    for text in (
        '{"type": "join", "token": "t", "protocol": ' + "1" * 5000 + "}",
        '{"type": "ping", "id": "big", "extra": ' + "9" * 5000 + "}",
        "1" * 5000,
    ):
        refused(text)


def test_a_huge_but_convertible_integer_is_just_an_out_of_range_value():
    text = '{"type": "roll_call_answer", "present": true, "headcount": ' + "1" * 4000
    error = refused(text + ', "id": "n"}')
    assert error.request_id == "n"
    assert "headcount" in error.message


def test_a_frame_without_type_is_bad_message():
    assert refused("{}").request_id is None
    assert refused('{"token": "t", "protocol": 1, "id": "r"}').request_id == "r"


def test_a_null_id_is_the_same_as_no_id():
    assert m.parse(frame({"type": "ping", "id": None})).id is None
