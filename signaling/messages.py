"""The wire messages of docs/protocol.md: parsing client messages, building server ones.

Parsing is strict about what the protocol needs (types, lengths, enums) and
lenient about extra fields, so a newer client keeps working with an older
server. No I/O here: ``parse`` takes the text of one frame.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from .errors import RequestRefused

__all__ = [
    "MAX_FRAME_BYTES",
    "PROTOCOL_VERSION",
    "ClientMessage",
    "dumps",
    "parse",
]

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 256 * 1024

RequestId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
ParticipantRef = Annotated[str, StringConstraints(min_length=1, max_length=64)]
ShortText = Annotated[str, StringConstraints(max_length=100)]
Sdp = Annotated[str, StringConstraints(min_length=1, max_length=250_000)]


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)
    id: RequestId | None = None


class ClientInfo(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)
    ua: Annotated[str, StringConstraints(max_length=300)] | None = None
    app: ShortText | None = None
    version: ShortText | None = None
    bandwidth: Literal["full", "low", "audio"] = "full"


class Join(_Message):
    type: Literal["join"]
    token: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    protocol: int
    display_name: ShortText | None = None
    client: ClientInfo = ClientInfo()


class Resume(_Message):
    type: Literal["resume"]
    resume_token: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    protocol: int


class Leave(_Message):
    type: Literal["leave"]


class Publish(_Message):
    type: Literal["publish"]
    sdp: Sdp
    source: Literal["camera", "screen"] = "camera"


class Unpublish(_Message):
    type: Literal["unpublish"]
    source: Literal["camera", "screen"] = "camera"


class Answer(_Message):
    type: Literal["answer"]
    offer_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    sdp: Sdp


class Resubscribe(_Message):
    type: Literal["resubscribe"]


class Ice(_Message):
    type: Literal["ice"]
    target: Literal["publish", "subscribe"]
    source: Literal["camera", "screen"] = "camera"
    candidate: Annotated[str, StringConstraints(max_length=1000)]
    sdp_mid: ShortText | None = None
    sdp_mline_index: Annotated[int, Field(ge=0, le=1000)] | None = None


class Mute(_Message):
    type: Literal["mute"]
    audio: bool | None = None
    video: bool | None = None


class Hand(_Message):
    type: Literal["hand"]
    raised: bool


class Chat(_Message):
    type: Literal["chat"]
    text: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    to: Literal["all", "chair"] = "all"


class RollCallAnswer(_Message):
    type: Literal["roll_call_answer"]
    present: bool
    headcount: Annotated[int, Field(ge=0, le=1000)] | None = None
    delegates: list[ShortText] = Field(default_factory=list, max_length=50)


class Ping(_Message):
    type: Literal["ping"]


class Admit(_Message):
    type: Literal["admit"]
    participant: ParticipantRef


class Deny(_Message):
    type: Literal["deny"]
    participant: ParticipantRef


class MuteParticipant(_Message):
    type: Literal["mute_participant"]
    participant: ParticipantRef  # or "all"


class Remove(_Message):
    type: Literal["remove"]
    participant: ParticipantRef


class Lock(_Message):
    type: Literal["lock"]
    locked: bool


class Floor(_Message):
    type: Literal["floor"]
    participant: ParticipantRef | None


class Presenter(_Message):
    type: Literal["presenter"]
    participant: ParticipantRef | None


class Recording(_Message):
    type: Literal["recording"]
    on: bool


class RollCallStart(_Message):
    type: Literal["roll_call_start"]
    title: ShortText | None = None


class RollCallClose(_Message):
    type: Literal["roll_call_close"]


class End(_Message):
    type: Literal["end"]
    reason: ShortText | None = None


ClientMessage = Annotated[
    Join
    | Resume
    | Leave
    | Publish
    | Unpublish
    | Answer
    | Resubscribe
    | Ice
    | Mute
    | Hand
    | Chat
    | RollCallAnswer
    | Ping
    | Admit
    | Deny
    | MuteParticipant
    | Remove
    | Lock
    | Floor
    | Presenter
    | Recording
    | RollCallStart
    | RollCallClose
    | End,
    Field(discriminator="type"),
]
_ADAPTER: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)
KNOWN_TYPES = frozenset(
    m.model_fields["type"].annotation.__args__[0]  # type: ignore[union-attr]
    for m in (
        Join,
        Resume,
        Leave,
        Publish,
        Unpublish,
        Answer,
        Resubscribe,
        Ice,
        Mute,
        Hand,
        Chat,
        RollCallAnswer,
        Ping,
        Admit,
        Deny,
        MuteParticipant,
        Remove,
        Lock,
        Floor,
        Presenter,
        Recording,
        RollCallStart,
        RollCallClose,
        End,
    )
)
MODERATION_TYPES = frozenset(
    {
        "admit",
        "deny",
        "mute_participant",
        "remove",
        "lock",
        "floor",
        "presenter",
        "recording",
        "roll_call_start",
        "roll_call_close",
        "end",
    }
)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def request_id_of(data: Any) -> str | None:
    """The ``id`` of a message that failed to parse, if it had a usable one."""
    if isinstance(data, dict):
        rid = data.get("id")
        if isinstance(rid, str) and 0 < len(rid) <= 64 and _encodable(rid):
            return rid
    return None


def parse(text: str) -> ClientMessage:
    """Parse one text frame.

    Raises:
        RequestRefused: ``bad_message`` with what is wrong; its ``request_id``
            attribute carries the ``id`` when one could be read.
    """
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise _bad("the frame is not valid JSON", None) from e
    except ValueError as e:  # e.g. an integer of more digits than Python converts
        raise _bad(f"the frame is not acceptable JSON: {str(e)[:80]}", None) from e
    if not isinstance(data, dict):
        raise _bad("a message must be a JSON object", None)
    rid = request_id_of(data)
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in KNOWN_TYPES:
        raise _bad(f"unknown message type {str(kind)[:40]!r}", rid)
    try:
        message = _ADAPTER.validate_python(data)
    except ValidationError as e:
        err = e.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in err["loc"][1:]) or "message"
        raise _bad(f"{kind}: {where}: {err['msg']}", rid) from e
    try:
        # JSON escapes can carry lone surrogates ("\ud800"), which no UTF-8 frame can
        # repeat: refuse them in the fields we keep, before anyone echoes or broadcasts.
        json.dumps(message.model_dump(), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as e:
        raise _bad(f"{kind}: text that is not valid Unicode", rid) from e
    return message


class BadMessage(RequestRefused):
    def __init__(self, message: str, request_id: str | None) -> None:
        super().__init__("bad_message", message)
        self.request_id = request_id


def _bad(message: str, rid: str | None) -> BadMessage:
    return BadMessage(message, rid)


def dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))
