"""Signaling sessions over real loopback WebSockets (docs/protocol.md).

Every test talks to the real app (aiohttp on a loopback socket) with the real
headless client (``websockets``); nothing is mocked. Each runs on SQLite and
PostgreSQL through the ``api`` fixture.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import websockets
from sqlmodel import select

from conference.models import AttendanceEvent, AttendanceKind, ChatMessage, Invitation, Unit
from conference.tokens import LEEWAY_SECONDS
from signaling.client import Client, JoinRefused, ServerError
from signaling.session import SessionSettings
from tests.conftest import Api
from tests.signaling.conftest import CHAIR, SNV, STTTT, TANTRACH, Meeting, schedule
from web.app import create_app
from web.appkeys import SESSIONS, TOKENS

QUICK = 3.0  # seconds: a wait for something that should already be on its way
MODERATION = (
    "admit",
    "deny",
    "mute_participant",
    "remove",
    "lock",
    "floor",
    "recording",
    "roll_call_start",
    "roll_call_close",
    "end",
)


# --- helpers --------------------------------------------------------------------


async def closed_with(client: Client, within: float = QUICK) -> int | None:
    """Wait until the server closed ``client``'s socket; the close code it sent."""
    await asyncio.wait_for(client.ws.wait_closed(), within)
    return client.ws.close_code


async def raw(client: Client, frame: str | bytes) -> None:
    await client.ws.send(frame)


async def no_event(client: Client, type_: str, within: float = 0.3) -> None:
    """Nothing of ``type_`` arrives within ``within`` seconds.

    Other events stay queued, in order, for later waits (the client has no peek,
    so this reads its event queue and puts back what it saw).
    """
    queue = client._events
    seen: list[dict[str, Any] | None] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    try:
        while (remaining := deadline - loop.time()) > 0:
            try:
                event = await asyncio.wait_for(queue.get(), remaining)
            except TimeoutError:
                break
            seen.append(event)
            if event is not None and event.get("type") == type_:
                pytest.fail(f"unexpected {type_}: {event}")
    finally:
        while not queue.empty():
            seen.append(queue.get_nowait())
        for event in seen:
            queue.put_nowait(event)


async def still_open(client: Client) -> None:
    pong = await client.request("ping", within=QUICK)
    assert pong["type"] == "pong"


async def attendance(api: Api, meeting_id: int) -> list[tuple[str, str]]:
    """(participant, kind) of the meeting's attendance events, in the order written."""
    async with api.database.read() as session:
        rows = (
            await session.exec(
                select(AttendanceEvent)
                .where(AttendanceEvent.meeting_id == meeting_id)
                .order_by(AttendanceEvent.id)  # type: ignore[arg-type]
            )
        ).all()
    return [
        (r.participant_session, AttendanceKind(r.kind).value)
        for r in rows
        if AttendanceKind(r.kind) is not AttendanceKind.HEARTBEAT
    ]


def kinds_of(events: list[tuple[str, str]], participant: str) -> list[str]:
    return [kind for pid, kind in events if pid == participant]


async def roster_seen_by_newcomer(meeting: Meeting, unit: str) -> list[dict[str, Any]]:
    """The roster in the welcome snapshot of a fresh join (which then leaves)."""
    async with Client.connect(meeting.ws_url) as fresh:
        welcome = await fresh.join(meeting.tokens[unit])
        await fresh.request("leave", within=QUICK)
    roster: list[dict[str, Any]] = welcome["room"]["roster"]
    return roster


async def join_token_with_window(
    api: Api, meeting_id: int, unit_code: str, *, not_before: float, expires: float
) -> str:
    """A join token of the unit's current invitation (same ``jti``) with another window."""
    async with api.database.read() as session:
        row = (
            await session.exec(
                select(Invitation, Unit)
                .join(Unit, Unit.id == Invitation.unit_id)  # type: ignore[arg-type]
                .where(Invitation.meeting_id == meeting_id, Unit.code == unit_code)
            )
        ).one()
    invitation = row[0]
    return str(
        api.client.app[TOKENS].issue_join(  # type: ignore[index]
            meeting_id=meeting_id,
            unit_code=unit_code,
            role=invitation.role.value,
            jti=invitation.token_id,
            not_before=datetime.fromtimestamp(not_before, UTC),
            expires=datetime.fromtimestamp(expires, UTC),
        )
    )


@pytest.fixture
async def make_api(
    aiohttp_client: Any, config: Any, database: Any, seeded: dict[str, int]
) -> Callable[..., Awaitable[Api]]:
    """Another app on the same database, with changed settings, started on loopback."""

    async def make(*, sessions: SessionSettings | None = None, **config_changes: Any) -> Api:
        app = create_app(dataclasses.replace(config, **config_changes))
        if sessions is not None:
            app[SESSIONS] = sessions
        client = await aiohttp_client(app)
        return Api(client=client, accounts=seeded, database=database)

    return make


@contextlib.asynccontextmanager
async def joined(meeting: Meeting, *units: str) -> AsyncIterator[list[Client]]:
    """Clients of ``units``, joined one after the other."""
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(meeting.client(u)) for u in units]
        yield clients


# --- join refusals: error with the code, then close 4001 -------------------------


async def assert_join_refused(meeting: Meeting, token: str, code: str) -> None:
    async with meeting.client() as client:
        with pytest.raises(JoinRefused) as refused:
            await client.join(token)
        assert refused.value.code == code
        assert await closed_with(client) == 4001


async def test_garbage_token_is_refused_as_malformed_and_closed_4001(meeting):
    await assert_join_refused(meeting, "không-phải-jwt", "token_malformed")
    await assert_join_refused(meeting, "a.b.c", "token_malformed")


async def test_token_before_the_lobby_opens_is_refused_not_yet_valid(api):
    later = await schedule(api, starts_in=timedelta(days=3))
    await assert_join_refused(later, later.tokens[SNV], "token_not_yet_valid")


async def test_expired_token_is_refused_as_expired(api, meeting):
    now = time.time()
    token = await join_token_with_window(
        api, meeting.id, SNV, not_before=now - 7200, expires=now - 3600
    )
    await assert_join_refused(meeting, token, "token_expired")


async def test_revoked_invitation_is_refused(api, meeting):
    await api.call(
        "POST", f"/api/meetings/{meeting.id}/invitations/{SNV}/revoke", json={}, expect=200
    )
    await assert_join_refused(meeting, meeting.tokens[SNV], "token_revoked")


async def test_cancelled_meeting_is_refused(api):
    later = await schedule(api, starts_in=timedelta(minutes=10))
    await api.call(
        "POST", f"/api/meetings/{later.id}/cancel", json={"reason": "Hoãn họp"}, expect=200
    )
    await assert_join_refused(later, later.tokens[SNV], "meeting_cancelled")


async def test_api_bearer_token_is_refused_as_wrong_audience(api, meeting):
    await assert_join_refused(meeting, api.token("thuky"), "token_wrong_audience")


async def test_expired_token_does_not_cut_a_participant_joined_before(api, meeting):
    # Valid for one to two more seconds (the verifier allows LEEWAY_SECONDS of skew).
    exp = int(time.time()) - LEEWAY_SECONDS + 2
    token = await join_token_with_window(
        api, meeting.id, SNV, not_before=time.time() - 60, expires=exp
    )
    async with meeting.client(CHAIR) as chair, meeting.client() as snv:
        await snv.join(token)
        await asyncio.sleep(max(0.0, exp + LEEWAY_SECONDS + 0.5 - time.time()))
        await assert_join_refused(meeting, token, "token_expired")  # it has expired now
        await still_open(snv)
        await snv.request("chat", text="Vẫn đang họp", within=QUICK)
        assert (await chair.wait_for("chat", within=QUICK))["from"] == snv.participant
        await no_event(chair, "participant_left", within=0.2)


# --- protocol errors ----------------------------------------------------------------


async def test_message_before_join_is_not_joined_and_the_socket_stays(meeting):
    async with meeting.client() as client:
        await raw(client, json.dumps({"type": "chat", "id": "c-1", "text": "sớm quá"}))
        error = await client.next_event(within=QUICK)
        assert error is not None
        assert (error["type"], error["code"], error["request_id"]) == ("error", "not_joined", "c-1")
        with pytest.raises(ServerError) as refused:
            await client.request("ping", within=QUICK)
        assert refused.value.code == "not_joined"
        welcome = await client.join(meeting.tokens[SNV])
        assert welcome["state"] == "active"


async def test_second_join_on_one_socket_is_already_joined(meeting):
    async with meeting.client(SNV) as client:
        with pytest.raises(ServerError) as refused:
            await client.request("join", within=QUICK, token=meeting.tokens[STTTT], protocol=1)
        assert refused.value.code == "already_joined"
        with pytest.raises(ServerError) as refused:
            await client.request("resume", within=QUICK, resume_token="x" * 32, protocol=1)
        assert refused.value.code == "already_joined"
        await still_open(client)
        roster = await roster_seen_by_newcomer(meeting, TANTRACH)
        assert sorted(e["unit"] for e in roster) == sorted([SNV, TANTRACH])  # no STTTT
        assert [e["id"] for e in roster if e["unit"] == SNV] == [client.participant]


@pytest.mark.parametrize("version", [0, 2, 99])
async def test_unsupported_protocol_version_is_refused_then_closed_1002(meeting, version):
    async with meeting.client() as client:
        with pytest.raises(ServerError) as refused:
            await client.request("join", within=QUICK, token=meeting.tokens[SNV], protocol=version)
        assert refused.value.code == "unsupported_protocol"
        assert await closed_with(client) == 1002


async def test_binary_frame_closes_1003(meeting):
    async with meeting.client(SNV) as client:
        await raw(client, json.dumps({"type": "ping"}).encode())
        assert await closed_with(client) == 1003


async def test_binary_frame_before_join_closes_1003(meeting):
    async with meeting.client() as client:
        await raw(client, b"\x00\x01\x02")
        assert await closed_with(client) == 1003


def _ping_frame_of(size: int) -> str:
    """A ``ping`` (with an ignored padding field) whose UTF-8 encoding is ``size`` bytes."""
    frame = json.dumps({"type": "ping", "id": "big", "pad": ""})
    frame = frame[:-2] + "x" * (size - len(frame)) + frame[-2:]
    assert len(frame.encode()) == size
    return frame


async def test_frame_over_256_kib_closes_1009(meeting):
    async with meeting.client(SNV) as client:
        await raw(client, _ping_frame_of(256 * 1024 + 1))
        assert await closed_with(client) == 1009


async def test_frame_of_exactly_256_kib_is_accepted(meeting):
    # docs/protocol.md: "A frame is at most 256 KiB"; only larger frames close 1009.
    async with meeting.client(SNV) as client:
        await raw(client, _ping_frame_of(256 * 1024))
        event = await client.next_event(within=QUICK)
        assert event is not None, f"closed {client.ws.close_code} {client.ws.close_reason}"
        assert event == {"type": "pong", "id": "big"}


async def test_frame_just_under_256_kib_is_accepted(meeting):
    async with meeting.client(SNV) as client:
        await raw(client, _ping_frame_of(256 * 1024 - 1))
        assert await client.next_event(within=QUICK) == {"type": "pong", "id": "big"}


@pytest.mark.parametrize(
    ("frame", "request_id"),
    [
        ("{not json", None),
        ("[1, 2, 3]", None),
        ('"chat"', None),
        (json.dumps({"type": "frobnicate", "id": "u-1"}), "u-1"),
        (json.dumps({"id": "u-2", "text": "thiếu type"}), "u-2"),
        (json.dumps({"type": "chat", "id": "t-1", "text": 5}), "t-1"),
        (json.dumps({"type": "chat", "id": "t-2", "text": ""}), "t-2"),
        (json.dumps({"type": "chat", "id": "t-3", "text": "x" * 2001}), "t-3"),
        (json.dumps({"type": "chat", "id": "t-4", "text": "ok", "to": "everyone"}), "t-4"),
        (json.dumps({"type": "hand", "id": "t-5", "raised": "yes"}), "t-5"),
        (json.dumps({"type": "hand", "id": "t-6"}), "t-6"),
        (json.dumps({"type": "mute", "id": "t-7", "audio": 1}), "t-7"),
        (json.dumps({"type": "ping", "id": 7}), None),
    ],
)
async def test_bad_message_is_an_error_with_its_id_and_the_socket_stays(meeting, frame, request_id):
    async with meeting.client(CHAIR) as chair, meeting.client(SNV) as client:
        await raw(client, frame)
        error = await client.next_event(within=QUICK)
        assert error is not None
        assert (error["type"], error["code"]) == ("error", "bad_message"), error
        assert error.get("request_id") == request_id
        await still_open(client)
        await no_event(chair, "chat", within=0.1)


async def test_bad_message_before_join_keeps_the_socket(meeting):
    async with meeting.client() as client:
        await raw(client, "{không phải json")
        error = await client.next_event(within=QUICK)
        assert error is not None
        assert error["code"] == "bad_message"
        welcome = await client.join(meeting.tokens[SNV])
        assert welcome["state"] == "active"


async def test_unknown_fields_are_ignored(meeting):
    async with meeting.client(SNV) as client:
        await raw(client, json.dumps({"type": "ping", "id": "p", "later_field": {"a": 1}}))
        assert await client.next_event(within=QUICK) == {"type": "pong", "id": "p"}


async def test_no_join_within_the_timeout_closes_1008(make_api):
    api = await make_api(sessions=SessionSettings(join_timeout=0.5))
    meeting = await schedule(api)
    async with meeting.client() as client:
        started = time.monotonic()
        assert await closed_with(client, within=QUICK) == 1008
        assert time.monotonic() - started >= 0.4


async def test_non_join_messages_do_not_extend_the_join_timeout(make_api):
    # "The first message must be join or resume and must arrive within 10 s":
    # other messages before it must not keep an unauthenticated socket open.
    api = await make_api(sessions=SessionSettings(join_timeout=0.5))
    meeting = await schedule(api)
    async with meeting.client() as client:

        async def keep_pinging() -> None:
            with contextlib.suppress(websockets.ConnectionClosed):
                while True:
                    await raw(client, json.dumps({"type": "ping"}))
                    await asyncio.sleep(0.2)

        pinger = asyncio.create_task(keep_pinging())
        try:
            try:
                code = await closed_with(client, within=2.5)
            except TimeoutError:
                pytest.fail("never joined, yet still open 2.5 s after a 0.5 s join timeout")
            assert code == 1008
        finally:
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pinger


async def test_join_in_time_is_not_cut_by_the_join_timeout(make_api):
    api = await make_api(sessions=SessionSettings(join_timeout=0.5))
    meeting = await schedule(api)
    async with meeting.client(SNV) as client:
        await asyncio.sleep(1.0)
        await still_open(client)


# --- Origin ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "http://hoinghi.test",  # the public host over another scheme
        "https://hoinghi.test.evil.example",
        "https://hoinghi.test:8443",
        "null",
    ],
)
async def test_foreign_origin_is_refused_403(meeting, origin):
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with Client.connect(meeting.ws_url, origin=origin):
            pass
    assert refused.value.response.status_code == 403


async def test_own_origin_is_accepted(meeting):
    server = meeting.api.client.server
    own = f"http://{server.host}:{server.port}"
    async with Client.connect(meeting.ws_url, origin=own) as client:
        welcome = await client.join(meeting.tokens[SNV])
        assert welcome["state"] == "active"


async def test_public_url_origin_is_accepted(meeting):
    async with Client.connect(meeting.ws_url, origin="https://hoinghi.test") as client:
        welcome = await client.join(meeting.tokens[SNV])
        assert welcome["state"] == "active"


async def test_no_origin_is_accepted(meeting):
    async with Client.connect(meeting.ws_url) as client:
        assert "Origin" not in client.ws.request.headers
        welcome = await client.join(meeting.tokens[SNV])
        assert welcome["state"] == "active"


# --- rate limits ----------------------------------------------------------------------


async def test_chat_burst_is_rate_limited_and_the_socket_stays(meeting):
    async with meeting.client(CHAIR) as chair, meeting.client(SNV) as snv:
        answers = await asyncio.gather(
            *(snv.request("chat", within=QUICK, text=f"Tin nhắn số {i}") for i in range(10)),
            return_exceptions=True,
        )
        acked = [a for a in answers if isinstance(a, dict)]
        limited = [a for a in answers if isinstance(a, ServerError)]
        assert len(acked) + len(limited) == 10, answers
        assert all(e.code == "rate_limited" for e in limited)
        assert 5 <= len(acked) <= 6  # chat: burst 5, 1/s
        assert limited
        await still_open(snv)
        received = []
        for _ in acked:
            received.append((await chair.wait_for("chat", within=QUICK))["text"])
        assert received == [f"Tin nhắn số {i}" for i in range(len(acked))]
        await no_event(chair, "chat", within=0.2)


async def test_flooding_client_is_closed_1008(meeting):
    async with meeting.client(SNV) as snv:
        frame = json.dumps({"type": "ping"})
        with contextlib.suppress(websockets.ConnectionClosed):
            for _ in range(400):
                await raw(snv, frame)
        assert await closed_with(snv) == 1008


# --- moderation refusals ----------------------------------------------------------------


def _moderation_fields(kind: str, target: str) -> dict[str, Any]:
    return {
        "admit": {"participant": target},
        "deny": {"participant": target},
        "mute_participant": {"participant": target},
        "remove": {"participant": target},
        "lock": {"locked": True},
        "floor": {"participant": target},
        "recording": {"on": True},
        "roll_call_start": {"title": "Điểm danh"},
        "roll_call_close": {},
        "end": {"reason": "hết giờ"},
    }[kind]


async def test_moderation_from_a_non_chair_is_forbidden_and_changes_nothing(meeting):
    async with joined(meeting, CHAIR, SNV, STTTT) as (chair, snv, stttt):
        for kind in MODERATION:
            with pytest.raises(ServerError) as refused:
                await snv.request(kind, within=QUICK, **_moderation_fields(kind, stttt.participant))
            assert refused.value.code == "forbidden", kind
        await still_open(snv)
        await still_open(stttt)
        for other in (chair, stttt):
            for kind in ("ended", "recording", "floor", "roll_call", "participant_left"):
                await no_event(other, kind, within=0.05)
        roster = await roster_seen_by_newcomer(meeting, TANTRACH)
        assert sorted(e["unit"] for e in roster) == sorted([CHAIR, SNV, STTTT, TANTRACH])
        for entry in roster:
            assert entry["connected"] is True
            assert entry["muted_by_chair"] is False
            assert entry["audio_muted"] is False


async def test_moderation_naming_an_unknown_participant_is_refused(api, meeting):
    other = await schedule(api, chair_unit="QB-STP", invited_units=[TANTRACH])
    async with (
        joined(meeting, CHAIR, SNV) as (chair, snv),
        other.client("QB-STP") as elsewhere_chair,
        other.client(TANTRACH) as elsewhere,
    ):
        # (10 requests: the moderation burst; more would be rate limited)
        attempts = [
            (kind, target)
            for target in ("khong-co-ai", elsewhere.participant, elsewhere_chair.participant)
            for kind in ("mute_participant", "remove", "floor")
        ] + [("admit", elsewhere.participant)]
        for kind, target in attempts:
            with pytest.raises(ServerError) as refused:
                await chair.request(kind, within=QUICK, participant=target)
            assert refused.value.code == "unknown_participant", (kind, target)
        await still_open(elsewhere)
        await no_event(elsewhere, "removed", within=0.05)
        await no_event(elsewhere, "participant_updated", within=0.05)
        await no_event(snv, "floor", within=0.05)
        roster = await roster_seen_by_newcomer(meeting, STTTT)
        assert sorted(e["unit"] for e in roster) == sorted([CHAIR, SNV, STTTT])
        assert all(not e["muted_by_chair"] for e in roster)
        other_roster = await roster_seen_by_newcomer(other, TANTRACH)
        assert sorted(e["unit"] for e in other_roster) == sorted(["QB-STP", TANTRACH, TANTRACH])
        assert all(not e["muted_by_chair"] for e in other_roster)


async def test_admit_of_someone_not_waiting_is_not_in_lobby(meeting):
    async with joined(meeting, CHAIR, SNV) as (chair, snv):
        for kind in ("admit", "deny"):
            with pytest.raises(ServerError) as refused:
                await chair.request(kind, within=QUICK, participant=snv.participant)
            assert refused.value.code == "not_in_lobby"
        await still_open(snv)


# --- lobby ---------------------------------------------------------------------------------


async def test_lobby_join_waits_and_the_chair_sees_it(lobby_meeting):
    async with lobby_meeting.client(CHAIR) as chair, lobby_meeting.client() as snv:
        welcome = await snv.join(lobby_meeting.tokens[SNV])
        assert welcome["state"] == "lobby"
        assert welcome["role"] == "participant"
        assert (await snv.wait_for("lobby", within=QUICK))["position"] == 1
        changed = await chair.wait_for("lobby_changed", within=QUICK)
        assert [e["id"] for e in changed["lobby"]] == [snv.participant]
        assert changed["lobby"][0]["unit"] == SNV
        # Waiting is not being in the room.
        await no_event(chair, "participant_joined", within=0.1)
        with pytest.raises(ServerError) as refused:
            await snv.request("chat", within=QUICK, text="cho vào với")
        assert refused.value.code == "forbidden"
        await still_open(snv)
        async with lobby_meeting.client(STTTT) as stttt:
            assert (await stttt.wait_for("lobby", within=QUICK))["position"] == 2
            changed = await chair.wait_for("lobby_changed", within=QUICK)
            assert [e["id"] for e in changed["lobby"]] == [snv.participant, stttt.participant]


async def test_admit_sends_admitted_and_announces_the_arrival(lobby_meeting):
    async with lobby_meeting.client(CHAIR) as chair, lobby_meeting.client(SNV) as snv:
        await snv.wait_for("lobby", within=QUICK)
        async with lobby_meeting.client(STTTT) as stttt:
            await stttt.wait_for("lobby", within=QUICK, position=2)
            ack = await chair.request("admit", within=QUICK, participant=snv.participant)
            assert ack["type"] == "ack"
            admitted = await snv.wait_for("admitted", within=QUICK)
            assert snv.participant in [e["id"] for e in admitted["room"]["roster"]]
            joined_event = await chair.wait_for("participant_joined", within=QUICK)
            assert joined_event["participant"]["id"] == snv.participant
            assert joined_event["participant"]["unit"] == SNV
            # The one still waiting moves up.
            assert (await stttt.wait_for("lobby", within=QUICK))["position"] == 1
            while True:
                changed = await chair.wait_for("lobby_changed", within=QUICK)
                if [e["id"] for e in changed["lobby"]] == [stttt.participant]:
                    break
            # Admitted: it may chat now.
            await snv.request("chat", within=QUICK, text="Cảm ơn chủ trì")
            assert (await chair.wait_for("chat", within=QUICK))["from"] == snv.participant
            await no_event(stttt, "chat", within=0.1)


async def test_deny_sends_denied_and_closes_4003(lobby_meeting):
    async with lobby_meeting.client(CHAIR) as chair, lobby_meeting.client(SNV) as snv:
        await snv.wait_for("lobby", within=QUICK)
        await chair.request("deny", within=QUICK, participant=snv.participant)
        denied = await snv.wait_for("denied", within=QUICK)
        assert denied["reason"]
        assert await closed_with(snv) == 4003
        await chair.wait_for("lobby_changed", within=QUICK, lobby=[])
        await no_event(chair, "participant_left", within=0.1)
        with pytest.raises(ServerError) as refused:
            await chair.request("admit", within=QUICK, participant=snv.participant)
        assert refused.value.code == "unknown_participant"


async def test_chair_is_never_sent_to_the_lobby(lobby_meeting):
    async with lobby_meeting.client() as chair, lobby_meeting.client() as second_screen:
        for client in (chair, second_screen):
            welcome = await client.join(lobby_meeting.tokens[CHAIR])
            assert (welcome["state"], welcome["role"]) == ("active", "chair")
            assert welcome["room"]["lobby"] == []
        await no_event(chair, "lobby", within=0.1)
        joined_event = await chair.wait_for("participant_joined", within=QUICK)
        assert joined_event["participant"]["id"] == second_screen.participant


# --- moderation over the wire ---------------------------------------------------------------


async def test_mute_one_participant(meeting):
    async with joined(meeting, CHAIR, SNV, STTTT) as (chair, snv, stttt):
        await chair.request("mute_participant", within=QUICK, participant=snv.participant)
        for client in (chair, snv, stttt):
            updated = await client.wait_for("participant_updated", within=QUICK)
            entry = updated["participant"]
            assert entry["id"] == snv.participant
            assert entry["audio_muted"] is True
            assert entry["muted_by_chair"] is True
        # It may not unmute itself without the floor.
        with pytest.raises(ServerError) as refused:
            await snv.request("mute", within=QUICK, audio=False)
        assert refused.value.code == "forbidden"
        roster = {e["unit"]: e for e in await roster_seen_by_newcomer(meeting, TANTRACH)}
        assert roster[SNV]["muted_by_chair"] is True
        assert roster[STTTT]["muted_by_chair"] is False
        assert roster[CHAIR]["muted_by_chair"] is False


async def test_mute_all_mutes_every_site_but_the_chair(meeting):
    async with joined(meeting, CHAIR, SNV, STTTT) as (chair, snv, stttt):
        await chair.request("mute_participant", within=QUICK, participant="all")
        muted = set()
        for _ in range(2):
            updated = await stttt.wait_for("participant_updated", within=QUICK)
            assert updated["participant"]["muted_by_chair"] is True
            muted.add(updated["participant"]["id"])
        assert muted == {snv.participant, stttt.participant}
        await no_event(stttt, "participant_updated", within=0.1)
        roster = {e["unit"]: e for e in await roster_seen_by_newcomer(meeting, TANTRACH)}
        assert roster[SNV]["muted_by_chair"] is True
        assert roster[SNV]["audio_muted"] is True
        assert roster[STTTT]["muted_by_chair"] is True
        assert roster[STTTT]["audio_muted"] is True
        assert roster[CHAIR]["muted_by_chair"] is False
        assert roster[CHAIR]["audio_muted"] is False


async def test_remove_closes_4004_and_tells_the_others(api, meeting):
    async with joined(meeting, CHAIR, SNV, STTTT) as (chair, snv, stttt):
        await chair.request("remove", within=QUICK, participant=snv.participant)
        removed = await snv.wait_for("removed", within=QUICK)
        assert removed["reason"]
        assert await closed_with(snv) == 4004
        for client in (chair, stttt):
            left = await client.wait_for("participant_left", within=QUICK)
            assert left == {
                "type": "participant_left",
                "participant": snv.participant,
                "reason": "removed",
            }
        events = await attendance(api, meeting.id)
        assert kinds_of(events, snv.participant) == ["join", "remove"]
        roster = await roster_seen_by_newcomer(meeting, TANTRACH)
        assert SNV not in [e["unit"] for e in roster]
        # The invitation stays valid: the unit may come back.
        async with meeting.client(SNV) as back:
            assert back.participant != snv.participant


async def test_chair_cannot_remove_itself(meeting):
    async with joined(meeting, CHAIR) as (chair,):
        with pytest.raises(ServerError) as refused:
            await chair.request("remove", within=QUICK, participant=chair.participant)
        assert refused.value.code == "forbidden"
        await still_open(chair)


async def test_locked_room_sends_new_joins_to_the_lobby_even_with_auto_admit(meeting):
    async with joined(meeting, CHAIR, SNV) as (chair, snv):
        await chair.request("lock", within=QUICK, locked=True)
        async with meeting.client(STTTT) as late:
            assert (await late.wait_for("lobby", within=QUICK))["position"] == 1
            changed = await chair.wait_for("lobby_changed", within=QUICK)
            assert [e["id"] for e in changed["lobby"]] == [late.participant]
            await no_event(snv, "participant_joined", within=0.1)
        roster = await roster_seen_by_newcomer(meeting, CHAIR)
        assert sorted(e["unit"] for e in roster) == sorted([CHAIR, CHAIR, SNV])
        await chair.request("lock", within=QUICK, locked=False)
        async with Client.connect(meeting.ws_url) as later:
            welcome = await later.join(meeting.tokens[TANTRACH])
            assert welcome["state"] == "active"
            assert welcome["room"]["locked"] is False


async def test_lock_shows_in_the_snapshot(meeting):
    async with joined(meeting, CHAIR) as (chair,):
        await chair.request("lock", within=QUICK, locked=True)
        async with Client.connect(meeting.ws_url) as second_screen:
            welcome = await second_screen.join(meeting.tokens[CHAIR])
        assert welcome["state"] == "active"  # the chair is never held in the lobby
        assert welcome["room"]["locked"] is True


async def test_floor_is_given_and_taken(meeting):
    async with joined(meeting, CHAIR, SNV, STTTT) as (chair, snv, stttt):
        await chair.request("floor", within=QUICK, participant=snv.participant)
        for client in (chair, snv, stttt):
            got = await client.wait_for("floor", within=QUICK)
            assert got["participant"] == snv.participant
        roster_room = await _snapshot_of_newcomer(meeting, TANTRACH)
        assert roster_room["floor"] == snv.participant
        await chair.request("floor", within=QUICK, participant=None)
        for client in (chair, snv, stttt):
            got = await client.wait_for("floor", within=QUICK)
            assert got["participant"] is None
        assert (await _snapshot_of_newcomer(meeting, TANTRACH))["floor"] is None


async def test_floor_lets_a_site_muted_by_the_chair_unmute(meeting):
    async with joined(meeting, CHAIR, SNV) as (chair, snv):
        await chair.request("mute_participant", within=QUICK, participant=snv.participant)
        await chair.request("floor", within=QUICK, participant=snv.participant)
        await snv.request("mute", within=QUICK, audio=False)
        roster = {e["unit"]: e for e in await roster_seen_by_newcomer(meeting, STTTT)}
        assert roster[SNV]["audio_muted"] is False


async def _snapshot_of_newcomer(meeting: Meeting, unit: str) -> dict[str, Any]:
    async with Client.connect(meeting.ws_url) as fresh:
        welcome = await fresh.join(meeting.tokens[unit])
        await fresh.request("leave", within=QUICK)
    room: dict[str, Any] = welcome["room"]
    return room


async def test_recording_on_and_off_reaches_everyone(meeting):
    async with joined(meeting, CHAIR, SNV, STTTT) as clients:
        chair = clients[0]
        await chair.request("recording", within=QUICK, on=True)
        for client in clients:
            assert (await client.wait_for("recording", within=QUICK))["on"] is True
        assert (await _snapshot_of_newcomer(meeting, TANTRACH))["recording"] is True
        await chair.request("recording", within=QUICK, on=False)
        for client in clients:
            assert (await client.wait_for("recording", within=QUICK))["on"] is False
        assert (await _snapshot_of_newcomer(meeting, TANTRACH))["recording"] is False


async def test_roll_call_start_answer_close(api, meeting):
    async with joined(meeting, CHAIR, SNV, STTTT) as (chair, snv, stttt):
        await chair.request("roll_call_start", within=QUICK, title="Điểm danh đầu giờ")
        for client in (chair, snv, stttt):
            opened = await client.wait_for("roll_call", within=QUICK)
            assert (opened["state"], opened["title"], opened["answers"]) == (
                "open",
                "Điểm danh đầu giờ",
                [],
            )
        await snv.request(
            "roll_call_answer",
            within=QUICK,
            present=True,
            headcount=3,
            delegates=["Nguyễn Văn Ánh", "Trần Thị Bích"],
        )
        to_chair = await chair.wait_for("roll_call", within=QUICK)
        assert [
            (a["participant"], a["unit"], a["present"], a["headcount"], a["delegates"])
            for a in to_chair["answers"]
        ] == [(snv.participant, SNV, True, 3, ["Nguyễn Văn Ánh", "Trần Thị Bích"])]
        own = await snv.wait_for("roll_call", within=QUICK)
        assert [a["participant"] for a in own["answers"]] == [snv.participant]
        await stttt.request("roll_call_answer", within=QUICK, present=False)
        to_chair = await chair.wait_for("roll_call", within=QUICK)
        assert len(to_chair["answers"]) == 2
        own = await stttt.wait_for("roll_call", within=QUICK)
        assert [a["participant"] for a in own["answers"]] == [stttt.participant]  # not SNV's

        await chair.request("roll_call_close", within=QUICK)
        closed = await chair.wait_for("roll_call", within=QUICK, state="closed")
        assert {a["participant"] for a in closed["answers"]} == {
            snv.participant,
            stttt.participant,
        }
        snv_closed = await snv.wait_for("roll_call", within=QUICK, state="closed")
        assert [a["participant"] for a in snv_closed["answers"]] == [snv.participant]
        await stttt.wait_for("roll_call", within=QUICK, state="closed")

        with pytest.raises(ServerError) as refused:
            await snv.request("roll_call_answer", within=QUICK, present=True)
        assert refused.value.code == "roll_call_closed"
        with pytest.raises(ServerError) as refused:
            await chair.request("roll_call_close", within=QUICK)
        assert refused.value.code == "roll_call_closed"
    events = await attendance(api, meeting.id)
    assert kinds_of(events, snv.participant)[:2] == ["join", "roll_call"]


async def test_end_tells_everyone_closes_1000_and_the_meeting_is_ended(api, meeting):
    async with joined(meeting, CHAIR, SNV, STTTT) as clients:
        chair = clients[0]
        ack = await chair.request("end", within=QUICK, reason="Kết thúc phiên họp")
        assert ack["type"] == "ack"
        for client in clients:
            ended = await client.wait_for("ended", within=QUICK)
            assert ended["reason"] == "Kết thúc phiên họp"
            assert await closed_with(client) == 1000
    shown = await api.call("GET", f"/api/meetings/{meeting.id}", expect=200)
    assert shown["status"] == "ended"
    events = await attendance(api, meeting.id)
    for client in clients:
        assert kinds_of(events, client.participant or "") == ["join", "leave"]
    async with meeting.client() as late:
        with pytest.raises(JoinRefused) as refused:
            await late.join(meeting.tokens[TANTRACH])
        assert refused.value.code == "meeting_ended"
        assert await closed_with(late) == 4001


async def test_end_in_a_lobby_meeting_closes_the_waiting_too(lobby_meeting):
    async with lobby_meeting.client(CHAIR) as chair, lobby_meeting.client(SNV) as snv:
        await snv.wait_for("lobby", within=QUICK)
        await chair.request("end", within=QUICK)
        assert (await snv.wait_for("ended", within=QUICK))["reason"]
        assert await closed_with(snv) == 1000
        assert await closed_with(chair) == 1000


# --- durable attendance and chat ---------------------------------------------------------------


async def test_attendance_is_on_disk_before_the_answer(api, lobby_meeting):
    mid = lobby_meeting.id
    async with lobby_meeting.client(CHAIR) as chair:
        assert await attendance(api, mid) == [(chair.participant, "join")]
        async with lobby_meeting.client(SNV) as snv:
            assert (await attendance(api, mid))[-1] == (snv.participant, "lobby")
            await chair.request("admit", within=QUICK, participant=snv.participant)
            assert (await attendance(api, mid))[-1] == (snv.participant, "admit")
            await snv.request("leave", within=QUICK)
            assert (await attendance(api, mid))[-1] == (snv.participant, "leave")
            assert await closed_with(snv) == 1000
        async with lobby_meeting.client(STTTT) as stttt:
            assert (await attendance(api, mid))[-1] == (stttt.participant, "lobby")
            await chair.request("admit", within=QUICK, participant=stttt.participant)
            await chair.request("remove", within=QUICK, participant=stttt.participant)
            assert (await attendance(api, mid))[-1] == (stttt.participant, "remove")
        async with lobby_meeting.client(TANTRACH) as tantrach:
            await chair.request("deny", within=QUICK, participant=tantrach.participant)
            assert (await attendance(api, mid))[-1] == (tantrach.participant, "deny")
        events = await attendance(api, mid)  # the chair is still in
    assert events == [
        (chair.participant, "join"),
        (snv.participant, "lobby"),
        (snv.participant, "admit"),
        (snv.participant, "leave"),
        (stttt.participant, "lobby"),
        (stttt.participant, "admit"),
        (stttt.participant, "remove"),
        (tantrach.participant, "lobby"),
        (tantrach.participant, "deny"),
    ]


async def test_attendance_rows_name_the_unit_and_client(api, meeting):
    async with meeting.client(SNV, client={"app": "hoinghi-python", "bandwidth": "low"}) as snv:
        async with api.database.read() as session:
            row = (
                await session.exec(
                    select(AttendanceEvent).where(
                        AttendanceEvent.participant_session == snv.participant
                    )
                )
            ).one()
            unit = await session.get(Unit, row.unit_id)
        assert unit is not None
        assert unit.code == SNV
        assert AttendanceKind(row.kind) is AttendanceKind.JOIN
        assert row.client_info["app"] == "hoinghi-python"
        assert row.client_info["bandwidth"] == "low"


async def test_chat_is_on_disk_with_vietnamese_text_unchanged(api, meeting):
    composed = "Kính gửi Ủy ban: Sở Nội vụ đã sẵn sàng — đồng ý 100% ✓ 🇻🇳"
    decomposed = unicodedata.normalize("NFD", "Tiếng Việt dựng sẵn: Quảng Bình, Tân Trạch")
    assert decomposed != unicodedata.normalize("NFC", decomposed)
    async with joined(meeting, CHAIR, SNV) as (chair, snv):
        await snv.request("chat", within=QUICK, text=composed, to="all")
        async with api.database.read() as session:
            rows = (
                await session.exec(select(ChatMessage).where(ChatMessage.meeting_id == meeting.id))
            ).all()
        assert [(r.text, r.recipients, r.participant_session) for r in rows] == [
            (composed, "all", snv.participant)
        ]
        await snv.request("chat", within=QUICK, text=decomposed, to="chair")
        async with api.database.read() as session:
            rows = (
                await session.exec(
                    select(ChatMessage)
                    .where(ChatMessage.meeting_id == meeting.id)
                    .order_by(ChatMessage.id)  # type: ignore[arg-type]
                )
            ).all()
        assert [(r.text, r.recipients) for r in rows] == [(composed, "all"), (decomposed, "chair")]
        got = [await chair.wait_for("chat", within=QUICK) for _ in range(2)]
        assert [g["text"] for g in got] == [composed, decomposed]
        assert got[0]["from_unit"] == SNV


async def test_chat_to_the_chair_reaches_only_the_chair(meeting):
    async with joined(meeting, CHAIR, SNV, STTTT) as (chair, snv, stttt):
        await snv.request("chat", within=QUICK, text="Riêng chủ trì", to="chair")
        assert (await chair.wait_for("chat", within=QUICK))["to"] == "chair"
        assert (await snv.wait_for("chat", within=QUICK))["text"] == "Riêng chủ trì"
        await no_event(stttt, "chat", within=0.2)


# --- reconnect ------------------------------------------------------------------------------------


async def wait_for_entry(client: Client, pid: str | None, **fields: Any) -> dict[str, Any]:
    """The next ``participant_updated`` about ``pid`` whose roster entry has ``fields``."""
    async with asyncio.timeout(QUICK):
        while True:
            updated = await client.wait_for("participant_updated")
            entry: dict[str, Any] = updated["participant"]
            if entry["id"] == pid and all(entry.get(k) == v for k, v in fields.items()):
                return entry


def _drop(client: Client) -> None:
    """Cut the TCP connection without a close frame (no leave is sent)."""
    transport = client.ws.transport
    assert transport is not None
    transport.abort()


async def test_resume_within_the_grace_window_keeps_the_participant(api, meeting):
    async with joined(meeting, CHAIR, SNV, STTTT) as (chair, snv, stttt):
        pid, resume_token = snv.participant, snv.resume_token
        assert resume_token
        await chair.request("floor", within=QUICK, participant=stttt.participant)
        _drop(snv)
        for client in (chair, stttt):
            await wait_for_entry(client, pid, connected=False)
        # Still on the roster, shown as disconnected.
        roster = {e["unit"]: e for e in await roster_seen_by_newcomer(meeting, TANTRACH)}
        assert roster[SNV]["connected"] is False

        async with Client.connect(meeting.ws_url) as again:
            welcome = await again.resume(resume_token)
            assert welcome["resumed"] is True
            assert welcome["participant"] == pid
            assert welcome["state"] == "active"
            assert welcome["resume_token"] != resume_token
            room = welcome["room"]
            assert room["floor"] == stttt.participant  # a fresh snapshot
            entries = {e["id"]: e for e in room["roster"]}
            assert entries[pid]["connected"] is True
            assert {chair.participant, stttt.participant} <= set(entries)
            for client in (chair, stttt):
                await wait_for_entry(client, pid, connected=True)
            # It is in the room again, under the same id.
            await again.request("chat", within=QUICK, text="Đã kết nối lại")
            got = await chair.wait_for("chat", within=QUICK)
            assert got["from"] == pid
            events = await attendance(api, meeting.id)
            assert kinds_of(events, pid) == ["join", "disconnect", "reconnect"]
            assert [kind for _, kind in events].count("join") == 4  # no second join for SNV
            # The old resume token is spent.
            async with Client.connect(meeting.ws_url) as thief:
                with pytest.raises(JoinRefused) as refused:
                    await thief.resume(resume_token)
                assert refused.value.code == "resume_expired"
            await still_open(again)


async def test_resume_on_a_live_socket_replaces_it_4009(meeting):
    async with joined(meeting, CHAIR, SNV) as (chair, snv):
        pid = snv.participant
        assert snv.resume_token
        async with Client.connect(meeting.ws_url) as again:
            welcome = await again.resume(snv.resume_token)
            assert welcome["participant"] == pid
            assert await closed_with(snv) == 4009
            await still_open(again)
            await no_event(chair, "participant_left", within=0.2)


async def test_resume_after_the_grace_window_is_expired(make_api):
    api = await make_api(reconnect_grace_seconds=1)
    meeting = await schedule(api)
    async with joined(meeting, CHAIR, SNV) as (chair, snv):
        pid, resume_token = snv.participant, snv.resume_token
        assert resume_token
        _drop(snv)
        await wait_for_entry(chair, pid, connected=False)
        left = await chair.wait_for("participant_left", within=QUICK)
        assert left == {"type": "participant_left", "participant": pid, "reason": "timeout"}
        await asyncio.sleep(0.5)  # past the window: about 1.5 s after the drop
        async with Client.connect(meeting.ws_url) as late:
            with pytest.raises(JoinRefused) as refused:
                await late.resume(resume_token)
            assert refused.value.code == "resume_expired"
        roster = await roster_seen_by_newcomer(meeting, STTTT)
        assert SNV not in [e["unit"] for e in roster]
        kinds = kinds_of(await attendance(api, meeting.id), pid)
        assert kinds[:2] == ["join", "disconnect"]
        assert "reconnect" not in kinds


async def test_resume_with_an_unknown_token_is_expired_and_the_socket_stays(meeting):
    async with meeting.client() as client:
        with pytest.raises(JoinRefused) as refused:
            await client.resume("không-có-token-này")
        assert refused.value.code == "resume_expired"
        welcome = await client.join(meeting.tokens[SNV])
        assert welcome["resumed"] is False


async def test_cancelling_an_open_meeting_ends_its_room(api):
    # The lobby is open (the start is 10 minutes away): the chair is in, a unit waits.
    meeting = await schedule(api, starts_in=timedelta(minutes=10), auto_admit=False)
    async with meeting.client(CHAIR) as chair, meeting.client(SNV) as snv:
        await snv.wait_for("lobby", within=5)
        await api.call("POST", f"/api/meetings/{meeting.id}/cancel", json={}, expect=200)
        for client in (chair, snv):
            ended = await client.wait_for("ended", within=5)
            assert ended["reason"] == "meeting cancelled"
    shown = await api.call("GET", f"/api/meetings/{meeting.id}", expect=200)
    assert shown["status"] == "cancelled"
