"""``GET /api/status`` (the live state for administrators) and the recording
retention API: ``GET``/``PUT /api/retention`` and ``POST /api/retention/sweep``.

The status is checked against a real room that real signaling clients joined
(one in the room, one waiting in the lobby); retention against real recording
directories, on SQLite and PostgreSQL. The stored period survives a restart of
the app, and the configuration's value is only the default.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from conference import __version__
from conference.models import (
    AuditEntry,
    CompositeStatus,
    DeliveryStatus,
    RecordingStatus,
    Unit,
    WebhookDelivery,
)
from conference.settings_store import MAX_RETENTION_DAYS
from conference.timezone import utcnow
from signaling.client import Client
from tests.conftest import Api
from tests.recordings.recording_fixtures import Made, add_meeting, add_recording, get_row
from tests.signaling.conftest import CHAIR, SNV, STTTT, schedule
from web.app import create_app
from web.appkeys import CONFIG, RECORDINGS

NOT_ADMIN = ["thuky", "vanthu", "chutri", "vanhanh"]
ROUTES = [
    ("GET", "/api/status", None),
    ("GET", "/api/retention", None),
    ("PUT", "/api/retention", {"days": 30}),
    ("POST", "/api/retention/sweep", None),
]
TITLE = "Hội nghị trực tuyến sơ kết quý — Ủy ban nhân dân tỉnh"
QUICK = 5.0


async def test_only_admins_may_call_the_status_and_retention_routes(api: Api) -> None:
    for method, path, body in ROUTES:
        answer = await api.call(method, path, as_user=None, json=body, expect=401)
        assert answer["error"]["code"] == "unauthenticated"
        for username in NOT_ADMIN:
            answer = await api.call(method, path, as_user=username, json=body, expect=403)
            assert answer["error"]["code"] == "forbidden", (username, path)
    async with api.database.read() as session:
        changes = (
            await session.exec(
                select(AuditEntry).where(col(AuditEntry.action).startswith("retention."))
            )
        ).all()
    assert changes == []  # refusals change nothing


async def test_the_routes_are_in_the_openapi_document(api: Api) -> None:
    document = await api.call("GET", "/api/openapi.json", as_user=None, expect=200)
    paths = document["paths"]
    assert "get" in paths["/api/status"]
    assert {"get", "put"} <= set(paths["/api/retention"])
    assert "post" in paths["/api/retention/sweep"]
    assert "admin" in paths["/api/status"]["get"]["description"]
    put = paths["/api/retention"]["put"]
    assert "400" in put["responses"]
    assert put["requestBody"]["required"] is True


# --- /api/status ----------------------------------------------------------------------------


async def unit_name(api: Api, code: str) -> str:
    async with api.database.read() as session:
        unit = (await session.exec(select(Unit).where(col(Unit.code) == code))).one()
    return unit.name


async def wait_status(api: Api, ready: Any) -> dict[str, Any]:
    async with asyncio.timeout(QUICK):
        while True:
            status: dict[str, Any] = await api.call(
                "GET", "/api/status", as_user="admin", expect=200
            )
            if ready(status):
                return status
            await asyncio.sleep(0.05)


async def test_the_status_reflects_a_live_room_its_sites_and_the_stores(api: Api) -> None:
    idle = await api.call("GET", "/api/status", as_user="admin", expect=200)
    assert idle["rooms"] == []
    assert idle["version"] == __version__
    assert idle["uptime_seconds"] > 0
    assert idle["database"] == {
        "dialect": api.database.dialect,
        "reachable": True,
        "latency_ms": idle["database"]["latency_ms"],
    }
    assert idle["database"]["latency_ms"] >= 0
    # Media is off in these tests: NoMedia, no workers.
    assert idle["media"] == {"engine": "none", "in_process": False, "workers": [], "load": {}}
    assert idle["recordings"] == []
    assert idle["composites"] == {"queued": 0, "running": 0}
    assert idle["webhooks"] == {"pending": 0, "given_up": 0}

    meeting = await schedule(api, title=TITLE, recording=True, auto_admit=False)
    async with meeting.client(CHAIR) as chair, meeting.client(SNV):
        status = await wait_status(api, lambda s: s["rooms"] and s["rooms"][0]["lobby"] == 1)
        [room] = status["rooms"]
        assert room["meeting_id"] == meeting.id
        assert room["title"] == TITLE
        assert room["state"] == "live"
        assert room["recording"] is True
        assert room["connected"] == 1
        assert room["lobby"] == 1
        assert room["media_worker"] is None
        assert room["opened_at"].endswith("+07:00")
        assert room["live_since"].endswith("+07:00")
        sites = {
            (p["unit_code"], p["unit_name"], p["role"], p["state"]) for p in room["participants"]
        }
        assert sites == {
            (CHAIR, await unit_name(api, CHAIR), "chair", "active"),
            (SNV, await unit_name(api, SNV), "participant", "lobby"),
        }
        async with Client.connect(meeting.ws_url) as third:
            await third.join(meeting.tokens[STTTT])
            status = await wait_status(api, lambda s: s["rooms"][0]["lobby"] == 2)
            assert len(status["rooms"][0]["participants"]) == 3
        # The chair ends the meeting: the room is no longer listed.
        await chair.request("end", within=QUICK)
        status = await wait_status(api, lambda s: s["rooms"] == [])
        assert status["rooms"] == []


async def test_the_status_counts_recordings_jobs_and_deliveries(api: Api) -> None:
    data_dir = api.client.app[CONFIG].data_dir  # type: ignore[index]
    mid = await add_meeting(api.database, title=TITLE)
    # Added after the app started: the composite runner looks for queued jobs only at start.
    recording = await add_recording(
        api.database, data_dir, mid, number=1, status=RecordingStatus.RECORDING, files=False
    )
    await add_recording(
        api.database, data_dir, mid, number=2, composite_status=CompositeStatus.QUEUED, files=False
    )
    await add_recording(
        api.database, data_dir, mid, number=3, composite_status=CompositeStatus.RUNNING, files=False
    )
    await add_recording(
        api.database, data_dir, mid, number=4, composite_status=CompositeStatus.QUEUED, files=False
    )
    hook = await api.call(
        "POST",
        "/api/webhooks",
        as_user="admin",
        json={"url": "https://nhan.example.vn/hook", "events": ["*"]},
        expect=201,
    )
    async with api.database.write() as session:
        for i, state in enumerate(
            [
                DeliveryStatus.PENDING,
                DeliveryStatus.GIVEN_UP,
                DeliveryStatus.GIVEN_UP,
                DeliveryStatus.DELIVERED,
            ]
        ):
            session.add(
                WebhookDelivery(
                    subscription_id=hook["id"],
                    event_id=f"e{i}",
                    event="room.started",
                    status=state,
                    next_attempt_at=utcnow() + timedelta(days=1),
                )
            )
    status = await api.call("GET", "/api/status", as_user="admin", expect=200)
    assert [(r["id"], r["meeting_title"], r["number"]) for r in status["recordings"]] == [
        (recording.id, TITLE, 1)
    ]
    assert status["recordings"][0]["started_at"].endswith("+07:00")
    assert status["composites"] == {"queued": 2, "running": 1}
    assert status["webhooks"] == {"pending": 1, "given_up": 2}


# --- retention ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "code"),
    [
        (-1, "retention_days_negative"),
        (-365, "retention_days_negative"),
        (MAX_RETENTION_DAYS + 1, "retention_days_too_large"),
        (10**30, "retention_days_too_large"),
        (1.5, "retention_days_not_integer"),
        (30.0, "retention_days_not_integer"),
        ("30", "retention_days_not_integer"),
        (True, "retention_days_not_integer"),
        (None, "retention_days_not_integer"),
        ([30], "retention_days_not_integer"),
    ],
)
async def test_a_wrong_period_is_refused_with_a_stable_code(api: Api, days: Any, code: str) -> None:
    answer = await api.call(
        "PUT", "/api/retention", as_user="admin", json={"days": days}, expect=422
    )
    assert answer["error"]["code"] == code
    assert answer["error"]["field"] == "days"
    current = await api.call("GET", "/api/retention", as_user="admin", expect=200)
    assert (current["days"], current["stored"]) == (0, False)


async def test_a_body_without_days_or_with_more_is_refused(api: Api) -> None:
    missing = await api.call("PUT", "/api/retention", as_user="admin", json={}, expect=422)
    assert missing["error"]["code"] == "missing_field"
    extra = await api.call(
        "PUT", "/api/retention", as_user="admin", json={"days": 3, "keep": 1}, expect=422
    )
    assert extra["error"]["code"] == "unknown_field"


async def make(api: Api) -> dict[str, Made]:
    data_dir = api.client.app[CONFIG].data_dir  # type: ignore[index]
    mid = await add_meeting(api.database, title=TITLE)
    now = utcnow()
    specs = {
        "old": (now - timedelta(days=31), RecordingStatus.FINISHED, False),
        "old_failed": (now - timedelta(days=90), RecordingStatus.FAILED, False),
        "old_kept": (now - timedelta(days=400), RecordingStatus.FINISHED, True),
        "old_recording": (now - timedelta(days=45), RecordingStatus.RECORDING, False),
        "young": (now - timedelta(days=29), RecordingStatus.FINISHED, False),
    }
    made = {}
    for n, (name, (started, status, keep)) in enumerate(specs.items(), start=1):
        made[name] = await add_recording(
            api.database, data_dir, mid, number=n, started_at=started, status=status, keep=keep
        )
    return made


EXPIRED = ("old", "old_failed")


async def sizes(api: Api, made: dict[str, Made], names: tuple[str, ...]) -> int:
    total = 0
    for name in names:
        row = await get_row(api.database, made[name].id)
        assert row is not None
        total += row.size_bytes
    return total


async def test_setting_previewing_and_sweeping_now(api: Api) -> None:
    made = await make(api)
    expired_bytes = await sizes(api, made, EXPIRED)
    assert expired_bytes > 0

    forever = await api.call("GET", "/api/retention", as_user="admin", expect=200)
    assert forever == {
        "days": 0,
        "default_days": 0,
        "stored": False,
        "max_days": MAX_RETENTION_DAYS,
        "expired_recordings": 0,
        "expired_bytes": 0,
    }
    assert await api.call("PUT", "/api/retention", as_user="admin", json={"days": 30}, expect=200)
    policy = await api.call("GET", "/api/retention", as_user="admin", expect=200)
    assert (policy["days"], policy["stored"]) == (30, True)
    assert policy["expired_recordings"] == len(EXPIRED)
    assert policy["expired_bytes"] == expired_bytes
    # A longer period: fewer to delete.
    longer = await api.call("PUT", "/api/retention", as_user="admin", json={"days": 60}, expect=200)
    assert longer["expired_recordings"] == 1
    await api.call("PUT", "/api/retention", as_user="admin", json={"days": 30}, expect=200)
    for m in made.values():
        assert m.directory.is_dir()  # setting deletes nothing

    done = await api.call("POST", "/api/retention/sweep", as_user="admin", expect=200)
    assert sorted(done["purged"]) == sorted(made[n].id for n in EXPIRED)
    assert done["purged_bytes"] == expired_bytes
    assert (done["days"], done["failed"]) == (30, 0)
    for name, m in made.items():
        row = await get_row(api.database, m.id)
        if name in EXPIRED:
            assert row is None, name
            assert not m.directory.exists(), name
        else:
            assert row is not None, name
            assert m.directory.is_dir(), name
    after = await api.call("GET", "/api/retention", as_user="admin", expect=200)
    assert (after["expired_recordings"], after["expired_bytes"]) == (0, 0)
    again = await api.call("POST", "/api/retention/sweep", as_user="admin", expect=200)
    assert again["purged"] == []

    async with api.database.read() as session:
        entries = (
            await session.exec(
                select(AuditEntry)
                .where(col(AuditEntry.action).startswith("retention."))
                .order_by(col(AuditEntry.id))
            )
        ).all()
    assert [(e.action, e.actor) for e in entries] == [
        ("retention.update", "admin"),
        ("retention.update", "admin"),
        ("retention.update", "admin"),
        ("retention.sweep", "admin"),
        ("retention.sweep", "admin"),
    ]
    assert entries[0].detail == {"days": 30, "previous_days": 0}
    assert entries[3].detail["recordings"] == len(EXPIRED)
    assert entries[3].detail["size_bytes"] == expired_bytes
    assert entries[4].detail["recordings"] == 0


async def test_zero_keeps_everything_even_when_the_configuration_says_otherwise(
    aiohttp_client: Any, config: Any, api: Api
) -> None:
    made = await make(api)
    await api.call("PUT", "/api/retention", as_user="admin", json={"days": 0}, expect=200)
    done = await api.call("POST", "/api/retention/sweep", as_user="admin", expect=200)
    assert done["purged"] == []
    assert all(m.directory.is_dir() for m in made.values())


async def test_the_stored_period_survives_a_restart_and_wins_over_the_configuration(
    aiohttp_client: Any, config: Any, api: Api, tmp_path: Path
) -> None:
    await api.call("PUT", "/api/retention", as_user="admin", json={"days": 45}, expect=200)
    await api.client.close()  # the first app stops

    restarted_config = dataclasses.replace(config, recording_retention_days=10)
    client = await aiohttp_client(create_app(restarted_config))
    again = Api(client=client, accounts=api.accounts, database=api.database)
    policy = await again.call("GET", "/api/retention", as_user="admin", expect=200)
    assert (policy["days"], policy["default_days"], policy["stored"]) == (45, 10, True)
    service = client.app[RECORDINGS]
    assert (await service.retention()).days == 45


async def test_without_a_stored_period_the_configuration_applies(
    aiohttp_client: Any, config: Any, api: Api
) -> None:
    # The recordings exist before the app with the 30-day default starts: its
    # sweeper's first sweep, at start, must not race the rows being written. That
    # start also finalises the row still marked recording (its recorder died with
    # the old process) as interrupted, so it is expired like the others of its age.
    made = await make(api)
    await api.client.close()
    client = await aiohttp_client(
        create_app(dataclasses.replace(config, recording_retention_days=30))
    )
    again = Api(client=client, accounts=api.accounts, database=api.database)
    policy = await again.call("GET", "/api/retention", as_user="admin", expect=200)
    assert (policy["days"], policy["stored"]) == (30, False)
    # The app's own sweeper runs when it starts and finds what a sweep finds; either
    # way the expired recordings are gone after a sweep now.
    await again.call("POST", "/api/retention/sweep", as_user="admin", expect=200)
    expired = {*EXPIRED, "old_recording"}
    for name, m in made.items():
        assert (await get_row(again.database, m.id) is None) == (name in expired), name


# --- the media engine's figures ---------------------------------------------------------------


class FakeEngine:
    def __init__(self, stats: dict[str, Any]) -> None:
        self._stats = stats

    def stats(self) -> dict[str, Any]:
        return self._stats


def test_media_figures_of_workers_in_process_and_none() -> None:
    from web.api_status import media_status

    workers = {
        "engine": "embedded",
        "workers": [
            {"index": 0, "pid": 41, "up": True, "rooms": 2, "restarts": 0, "meetings": [7, 9],
             "load": {"rooms": 2, "participants": 5, "streams_out": 12, "packets_in": 900}},
            {"index": 1, "pid": None, "up": False, "rooms": 0, "restarts": 3, "meetings": [],
             "load": {}},
        ],
    }  # fmt: skip
    media, placement = media_status(FakeEngine(workers))  # type: ignore[arg-type]
    assert (media.engine, media.in_process) == ("embedded", False)
    assert [(w.index, w.pid, w.up, w.rooms, w.restarts) for w in media.workers] == [
        (0, 41, True, 2, 0),
        (1, None, False, 0, 3),
    ]
    assert media.workers[0].load["participants"] == 5
    assert placement == {7: 0, 9: 0}

    hub = {"engine": "embedded", "workers": 0, "rooms": 1, "participants": 3, "streams_out": 4}
    media, placement = media_status(FakeEngine(hub))  # type: ignore[arg-type]
    assert (media.in_process, media.workers, placement) == (True, [], {})
    assert media.load == {"rooms": 1, "participants": 3, "streams_out": 4}

    media, placement = media_status(FakeEngine({"engine": "none"}))  # type: ignore[arg-type]
    assert (media.engine, media.in_process, media.workers, media.load) == ("none", False, [], {})


def test_the_engine_names_the_meetings_each_worker_holds() -> None:
    """The embedded SFU's ``stats()`` lists each worker's meetings (the status's
    ``media_worker``), without starting any process."""
    from signaling.sfu.engine import EngineSettings, SfuEngine, _Worker

    engine = SfuEngine(EngineSettings(workers=2))
    engine._workers = [_Worker(0, meetings={3, 1}), _Worker(1)]
    stats = engine.stats()
    assert [w["meetings"] for w in stats["workers"]] == [[1, 3], []]
