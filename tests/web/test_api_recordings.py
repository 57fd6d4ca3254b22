"""The recordings API over a real server, on SQLite and PostgreSQL: finding recordings,
their files (real WebM tracks made by ``segments.TrackWriter``), downloads with HTTP
Range and their audit trail, who may see what, keeping and composing."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, func, select

from conference.models import (
    Account,
    AuditEntry,
    CompositeStatus,
    Recording,
    RecordingStatus,
    Role,
)
from tests.recordings.recording_fixtures import (
    TITLE,
    Made,
    add_recording,
    get_row,
    unit_id,
)
from tests.signaling.conftest import schedule
from web.appkeys import COMPOSITES, CONFIG, TOKENS

# 2026-03-01 16:30 UTC is 23:30 on 1 March in Hà Nội; 17:30 UTC is 00:30 on 2 March.
T0 = datetime(2026, 3, 1, 16, 30, tzinfo=UTC)
OTHER_TITLE = "Hội nghị trực tuyến phòng, chống thiên tai — Sở Nội vụ"


def data_dir(api: Any) -> Path:
    path: Path = api.client.app[CONFIG].data_dir
    return path


async def count(api: Any, model: Any, *where: Any) -> int:
    async with api.database.read() as s:
        return int((await s.exec(select(func.count()).select_from(model).where(*where))).one())


async def downloads(api: Any) -> int:
    return await count(api, AuditEntry, col(AuditEntry.action) == "recording.download")


async def audit_rows(api: Any) -> int:
    return await count(api, AuditEntry)


async def meeting(api: Any, chair: str = "QB", *, hours_from: float = 0, title: str = TITLE) -> int:
    """A meeting scheduled through the API (chair conflicts avoided by ``hours_from``)."""
    made = await schedule(api, starts_in=timedelta(hours=hours_from), title=title, chair_unit=chair)
    return made.id


async def recording(api: Any, meeting_id: int, **kw: Any) -> Made:
    return await add_recording(api.database, data_dir(api), meeting_id, **kw)


async def add_chair(api: Any, username: str, unit_code: str) -> dict[str, str]:
    """Another chair account (of ``unit_code``); returns its Authorization header."""
    uid = await unit_id(api.database, unit_code)
    async with api.database.write() as session:
        account = Account(
            username=username,
            display_name="Chủ trì khác",
            password_hash="x",
            roles=[Role.CHAIR.value],
            unit_id=uid,
        )
        session.add(account)
        await session.flush()
        assert account.id is not None
        account_id = account.id
    token = api.client.app[TOKENS].issue_access(
        account_id=account_id, username=username, roles=["chair"], ttl_seconds=600
    )
    return {"Authorization": f"Bearer {token}"}


async def raw_get(
    api: Any, target: str, user: str = "vanthu", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """GET with this exact request target (no client-side normalising or re-encoding)."""
    server = api.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    lines = [f"GET {target} HTTP/1.1", f"Host: {server.host}:{server.port}", "Connection: close"]
    for name, value in (api.auth(user) | (headers or {})).items():
        lines.append(f"{name}: {value}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    got = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        got[name.strip().lower()] = value.strip()
    if "chunked" in got.get("transfer-encoding", ""):
        body = _unchunk(body)
    return int(status_line.split()[1]), got, body


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, data = out + rest[:size], rest[size + 2 :]
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- finding recordings ------------------------------------------------------------------


async def test_list_filters_by_meeting_local_dates_unit_and_status_newest_first(api):
    snv, stttt = await unit_id(api.database, "QB-SNV"), await unit_id(api.database, "QB-STTTT")
    m1 = await meeting(api, "QB")
    m2 = await meeting(api, "QB-SNV", title=OTHER_TITLE)
    hours = [0, 1, 10.5, 30, 31, 2]  # started T0 + hours
    specs: list[tuple[int, RecordingStatus, list[int]]] = [
        (m1, RecordingStatus.FINISHED, [snv]),
        (m1, RecordingStatus.INTERRUPTED, [snv, stttt]),
        (m1, RecordingStatus.FAILED, []),
        (m2, RecordingStatus.FINISHED, [stttt]),
        (m2, RecordingStatus.RECORDING, [snv]),
        (m2, RecordingStatus.FINISHED, []),
    ]
    ids = []
    for n, ((mid, status, units), h) in enumerate(zip(specs, hours, strict=True)):
        made = await recording(
            api,
            mid,
            number=n + 1,
            started_at=T0 + timedelta(hours=h),
            status=status,
            unit_ids=units,
            files=False,
            title=TITLE if mid == m1 else OTHER_TITLE,
        )
        ids.append(made.id)
    by_time = [ids[i] for i in sorted(range(6), key=lambda i: hours[i], reverse=True)]

    async def listed(**params: str) -> list[int]:
        page = await api.call("GET", "/api/recordings", as_user="vanthu", params=params, expect=200)
        assert page["total"] == len(page["items"])
        return [item["id"] for item in page["items"]]

    assert await listed() == by_time
    assert await listed(meeting=str(m1)) == [i for i in by_time if i in ids[:3]]
    assert await listed(meeting=str(m2)) == [i for i in by_time if i in ids[3:]]
    # Local dates: 2 March in Hà Nội is 1 March 17:00 UTC to 2 March 17:00 UTC.
    day2 = {"from": "2026-03-02T00:00:00+07:00", "to": "2026-03-03T00:00:00+07:00"}
    assert await listed(**day2) == [ids[2], ids[5], ids[1]]
    assert await listed(**{"to": "2026-03-02T00:00:00+07:00"}) == [ids[0]]
    assert await listed(**{"from": "2026-03-03T00:00:00+07:00"}) == [ids[4], ids[3]]
    assert await listed(unit="QB-SNV") == [ids[4], ids[1], ids[0]]
    assert await listed(unit="QB-SNV", **day2) == [ids[1]]
    assert await listed(unit="QB-STTTT", meeting=str(m2)) == [ids[3]]
    assert await listed(unit="KHONG-CO") == []
    assert await listed(status="failed,interrupted") == [ids[2], ids[1]]
    assert await listed(status="recording") == [ids[4]]
    assert await listed(status="finished", meeting=str(m2)) == [ids[3], ids[5]]

    # Pages: the same order, cut; total counts them all.
    pages = []
    for offset in (0, 2, 4, 6):
        page = await api.call(
            "GET", f"/api/recordings?limit=2&offset={offset}", as_user="admin", expect=200
        )
        assert (page["total"], page["limit"], page["offset"]) == (6, 2, offset)
        pages += [item["id"] for item in page["items"]]
    assert pages == by_time
    page = await api.call(
        "GET", "/api/recordings?unit=QB-SNV&limit=1&offset=1", as_user="admin", expect=200
    )
    assert (page["total"], [i["id"] for i in page["items"]]) == (3, [ids[1]])

    item = (
        await api.call("GET", "/api/recordings", params={"meeting": str(m1)}, as_user="vanthu")
    )["items"][-1]
    assert item["started_at"] == "2026-03-01T23:30:00+07:00"
    assert item["ended_at"] == "2026-03-01T23:30:02+07:00"
    assert (item["meeting_id"], item["number"], item["status"]) == (m1, 1, "finished")
    assert item["unit_ids"] == [snv]
    assert (item["keep"], item["composite_status"], item["composite_progress"]) == (
        False,
        "none",
        0.0,
    )


@pytest.mark.parametrize(
    ("query", "code", "field"),
    [
        ("from=2026-03-02T00:00:00", "timezone_required", "from"),
        ("to=hôm-qua", "invalid_field", "to"),
        ("status=finished,lost", "invalid_field", "status"),
        ("limit=0", "invalid_field", "limit"),
        ("limit=501", "invalid_field", "limit"),
        ("offset=-1", "invalid_field", "offset"),
        ("meeting=abc", "invalid_field", "meeting"),
    ],
)
async def test_bad_list_parameters_are_named(api, query, code, field):
    err = await api.call("GET", f"/api/recordings?{query}", as_user="vanthu", expect=422)
    assert (err["error"]["code"], err["error"]["field"]) == (code, field)


async def test_vietnamese_titles_come_back_unchanged(api):
    mid = await meeting(api, "QB", title=OTHER_TITLE)
    made = await recording(api, mid, title=OTHER_TITLE, files=False)
    response = await api.client.get("/api/recordings", headers=api.auth("vanthu"))
    raw = await response.read()
    assert response.status == 200
    assert response.content_type == "application/json"
    assert OTHER_TITLE.encode("utf-8") in raw  # not \u escapes, not normalised
    (item,) = json.loads(raw)["items"]
    assert (item["id"], item["meeting_title"]) == (made.id, OTHER_TITLE)
    detail = await api.call("GET", f"/api/recordings/{made.id}", as_user="admin", expect=200)
    assert detail["recording"]["meeting_title"] == OTHER_TITLE


# --- one recording and its files ---------------------------------------------------------


async def test_detail_lists_the_manifest_files_with_sizes_and_hashes(api):
    snv = await unit_id(api.database, "QB-SNV")
    made = await recording(api, await meeting(api), unit_ids=[snv], seconds=2.0)
    assert made.manifest is not None
    detail = await api.call("GET", f"/api/recordings/{made.id}", as_user="vanthu", expect=200)
    assert detail["recording"]["id"] == made.id
    assert detail["recording"]["duration_seconds"] == pytest.approx(2.0, abs=0.2)
    assert detail["composite_error"] == ""
    files = {f["name"]: f for f in detail["files"]}
    assert list(files) == ["t01.webm", "t02.webm", "manifest.json"]
    for name, kind in [("t01.webm", "video"), ("t02.webm", "audio")]:
        entry, path = files[name], made.directory / name
        assert entry["kind"] == kind
        assert entry["bytes"] == path.stat().st_size
        assert entry["sha256"] == sha256(path)
        assert entry["unit_id"] == snv
        assert entry["unit_name"] == "Ủy ban nhân dân huyện Lệ Thủy"
        assert entry["duration"] == pytest.approx(1.95, abs=0.1)
        assert entry["url"] == f"/api/recordings/{made.id}/files/{name}"
    assert files["manifest.json"]["kind"] == "manifest"
    assert files["manifest.json"]["bytes"] == (made.directory / "manifest.json").stat().st_size

    # Once a composite exists it is listed first.
    (made.directory / "composite.mp4").write_bytes(b"\0\0\0\x18ftypmp42" + b"x" * 100)
    detail = await api.call("GET", f"/api/recordings/{made.id}", as_user="vanthu", expect=200)
    first = detail["files"][0]
    assert (first["name"], first["kind"], first["bytes"]) == ("composite.mp4", "composite", 112)


async def test_download_gives_the_exact_bytes_with_ranges_and_one_audit_entry_each(api):
    made = await recording(api, await meeting(api))
    (made.directory / "composite.mp4").write_bytes(os.urandom(5000))
    base = f"/api/recordings/{made.id}/files"
    audit = await downloads(api)

    for name, ctype in [
        ("t01.webm", "video/webm"),
        ("t02.webm", "video/webm"),
        ("composite.mp4", "video/mp4"),
        ("manifest.json", "application/json"),
    ]:
        response = await api.client.get(f"{base}/{name}", headers=api.auth("vanthu"))
        assert response.status == 200, name
        assert response.content_type == ctype
        assert await response.read() == (made.directory / name).read_bytes()
    assert await downloads(api) == audit + 4

    data = (made.directory / "t01.webm").read_bytes()
    response = await api.client.get(
        f"{base}/t01.webm", headers=api.auth("vanthu") | {"Range": "bytes=100-1099"}
    )
    assert response.status == 206
    assert response.headers["Content-Range"] == f"bytes 100-1099/{len(data)}"
    assert response.content_type == "video/webm"
    assert await response.read() == data[100:1100]
    assert await downloads(api) == audit + 4  # a seek is not a download

    response = await api.client.get(
        f"{base}/t01.webm", headers=api.auth("vanthu") | {"Range": "bytes=0-99"}
    )
    assert response.status == 206
    assert await response.read() == data[:100]
    assert await downloads(api) == audit + 5  # playback starting at byte 0 is one

    response = await api.client.get(
        f"{base}/t01.webm", headers=api.auth("vanthu") | {"Range": f"bytes={len(data) + 10}-"}
    )
    assert response.status == 416
    assert response.headers["Content-Range"] == f"bytes */{len(data)}"
    assert await downloads(api) == audit + 5

    response = await api.client.get(
        f"{base}/t02.webm", headers=api.auth("chutri") | {"Range": "bytes=-10"}
    )
    assert response.status == 206
    assert await response.read() == (made.directory / "t02.webm").read_bytes()[-10:]
    assert await downloads(api) == audit + 5

    async with api.database.read() as s:
        last = (
            await s.exec(
                select(AuditEntry)
                .where(col(AuditEntry.action) == "recording.download")
                .order_by(col(AuditEntry.id).desc())
            )
        ).first()
    assert last is not None
    assert (last.actor, last.object_type, last.object_id) == ("vanthu", "recording", str(made.id))
    assert last.detail["file"] == "t01.webm"
    assert last.detail["range"] == "bytes=0-99"


# --- refusals ----------------------------------------------------------------------------


def every_route(recording_id: int | str) -> list[tuple[str, str, Any]]:
    r = f"/api/recordings/{recording_id}"
    return [
        ("GET", "/api/recordings", None),
        ("GET", r, None),
        ("GET", f"{r}/files/t01.webm", None),
        ("GET", f"{r}/files/manifest.json", None),
        ("PATCH", r, {"keep": True}),
        ("POST", f"{r}/composite", {"layout": "grid"}),
    ]


@pytest.mark.parametrize("user", ["vanhanh", "thuky"])
async def test_operator_and_secretariat_are_refused_everywhere(api, user):
    made = await recording(api, await meeting(api))
    before = await audit_rows(api)
    for method, path, body in every_route(made.id):
        err = await api.call(method, path, as_user=user, json=body, expect=403)
        assert err["error"]["code"] == "forbidden", (method, path)
    for method, path, body in every_route(made.id + 1000):
        await api.call(method, path, as_user=user, json=body, expect=403)
    assert await audit_rows(api) == before
    row = await get_row(api.database, made.id)
    assert row is not None
    assert (row.keep, row.composite_status) == (False, CompositeStatus.NONE)


async def test_unauthenticated_is_401(api):
    made = await recording(api, await meeting(api), files=False)
    for method, path, body in every_route(made.id):
        err = await api.call(method, path, as_user=None, json=body, expect=401)
        assert err["error"]["code"] == "unauthenticated"


async def test_a_chair_sees_only_what_its_unit_chaired_and_the_rest_is_not_found(api):
    ours = await recording(api, await meeting(api, "QB"))
    theirs = await recording(
        api, await meeting(api, "QB-SNV", title=OTHER_TITLE), title=OTHER_TITLE
    )
    snv_chair = await add_chair(api, "chutri_snv", "QB-SNV")
    unknown = theirs.id + 1000

    page = await api.call("GET", "/api/recordings", as_user="chutri", expect=200)
    assert ([i["id"] for i in page["items"]], page["total"]) == ([ours.id], 1)
    page = await api.call(
        "GET", f"/api/recordings?meeting={(await get_row(api.database, theirs.id)).meeting_id}",
        as_user="chutri", expect=200,
    )  # fmt: skip
    assert page["items"] == []
    response = await api.client.get("/api/recordings", headers=snv_chair)
    assert [i["id"] for i in (await response.json())["items"]] == [theirs.id]

    await api.call("GET", f"/api/recordings/{ours.id}", as_user="chutri", expect=200)
    response = await api.client.get(
        f"/api/recordings/{ours.id}/files/t01.webm", headers=api.auth("chutri")
    )
    assert response.status == 200
    assert await response.read() == (ours.directory / "t01.webm").read_bytes()

    before = await audit_rows(api)
    not_found = await api.call("GET", f"/api/recordings/{unknown}", as_user="vanthu", expect=404)
    assert not_found["error"]["code"] == "recording_not_found"
    for path in [
        f"/api/recordings/{theirs.id}",
        f"/api/recordings/{theirs.id}/files/t01.webm",
        f"/api/recordings/{theirs.id}/files/manifest.json",
        f"/api/recordings/{theirs.id}/files/nothing.webm",
    ]:
        err = await api.call("GET", path, as_user="chutri", expect=404)
        assert err == not_found, path  # the same answer as a recording that does not exist
    err = await api.call(
        "POST", f"/api/recordings/{theirs.id}/composite", as_user="chutri", json={}, expect=404
    )
    assert err == not_found
    for path in [f"/api/recordings/{ours.id}", f"/api/recordings/{ours.id}/files/t01.webm"]:
        response = await api.client.get(path, headers=snv_chair)
        assert response.status == 404
        assert await response.json() == not_found
    assert await audit_rows(api) == before
    assert (await get_row(api.database, theirs.id)).composite_status is CompositeStatus.NONE


async def test_unknown_recording_is_404_on_every_route(api):
    # Also ids no database row can have: past PostgreSQL's 32-bit integer, or not digits.
    for rid in (4242, 2**31, 10**12, "٣", "12a"):
        for method, path, body in every_route(rid)[1:]:
            err = await api.call(method, path, as_user="admin", json=body, expect=404)
            assert err["error"]["code"] == "recording_not_found", (rid, method, path)


async def test_file_names_outside_the_manifest_are_404_without_telling_what_exists(api):
    mid = await meeting(api)
    made = await recording(api, mid, number=1)
    other = await recording(api, mid, number=2)
    assert other.directory.parent == made.directory.parent
    directory, root = made.directory, data_dir(api)
    secret = root / "secret.txt"
    secret.write_text("không được xem")
    (directory / ".hidden").write_text("x")
    (directory / ".composite.mp4.tmp").write_bytes(b"partial")
    (directory / "t09").mkdir()  # a track's segments, as the recorder leaves them mid-recording
    (directory / "t09" / "000000.webm").write_bytes(b"segment")
    os.symlink(secret, directory / "link.webm")
    os.symlink(secret, directory / "composite.mp4")  # a name that is allowed, but a link
    depth = len(directory.relative_to(root).parts)
    up = "..%2F" * depth

    names = [
        f"{up}secret.txt",  # exists
        f"{up}absent.txt",  # does not
        "..%2Fr2%2Fmanifest.json",  # the other recording's manifest
        "..%2Fr2%2Ft01.webm",
        "..%252Fr2%252Fmanifest.json",
        "%2E%2E%2Fr2%2Fmanifest.json",
        "%2Fetc%2Fpasswd",
        ".hidden",
        ".composite.mp4.tmp",
        ".manifest.json.tmp",
        "t09",
        "t09%2F000000.webm",
        "link.webm",
        "composite.mp4",
        "manifest.json%00",
        "t01.webm%2F",
        "t01.WEBM",
        "absent.webm",
    ]
    audit = await audit_rows(api)
    answers = []
    for name in names:
        status, _headers, body = await raw_get(api, f"/api/recordings/{made.id}/files/{name}")
        assert status == 404, name
        assert b"kh\xc3\xb4ng" not in body
        answers.append(json.loads(body))
    assert all(a == answers[-1] for a in answers), answers
    assert answers[-1]["error"]["code"] == "file_not_found"
    assert await audit_rows(api) == audit
    # And the route itself works for a listed name, through the same raw request.
    status, headers, body = await raw_get(api, f"/api/recordings/{made.id}/files/t02.webm")
    assert (status, body) == (200, (directory / "t02.webm").read_bytes())
    assert headers["content-type"] == "video/webm"


# --- keep --------------------------------------------------------------------------------


async def test_clerks_and_admins_keep_a_recording_and_it_is_audited(api):
    made = await recording(api, await meeting(api), files=False)
    kept = await api.call(
        "PATCH", f"/api/recordings/{made.id}", as_user="vanthu", json={"keep": True}, expect=200
    )
    assert (kept["id"], kept["keep"], kept["meeting_title"]) == (made.id, True, TITLE)
    assert (await get_row(api.database, made.id)).keep is True
    await api.call(
        "PATCH", f"/api/recordings/{made.id}", as_user="admin", json={"keep": False}, expect=200
    )
    assert (await get_row(api.database, made.id)).keep is False
    async with api.database.read() as s:
        entries = (
            await s.exec(
                select(AuditEntry)
                .where(col(AuditEntry.action) == "recording.keep")
                .order_by(col(AuditEntry.id))
            )
        ).all()
    assert [(e.actor, e.object_id, e.detail["keep"]) for e in entries] == [
        ("vanthu", str(made.id), True),
        ("admin", str(made.id), False),
    ]


async def test_a_chair_may_not_keep(api):
    made = await recording(api, await meeting(api, "QB"), files=False)
    before = await audit_rows(api)
    err = await api.call(
        "PATCH", f"/api/recordings/{made.id}", as_user="chutri", json={"keep": True}, expect=403
    )
    assert err["error"]["code"] == "forbidden"
    assert (await get_row(api.database, made.id)).keep is False
    assert await audit_rows(api) == before


@pytest.mark.parametrize(
    ("method", "suffix", "body", "code", "field"),
    [
        ("PATCH", "", {"keep": True, "forever": True}, "unknown_field", "forever"),
        ("PATCH", "", {"keep": "maybe"}, "invalid_field", "keep"),
        ("PATCH", "", {"keep": [True]}, "invalid_field", "keep"),
        ("PATCH", "", {"keep": None}, "invalid_field", "keep"),
        ("PATCH", "", {}, "missing_field", "keep"),
        ("POST", "/composite", {"layout": "mosaic"}, "invalid_field", "layout"),
        ("POST", "/composite", {"layout": 1}, "invalid_field", "layout"),
        ("POST", "/composite", {"layout": "grid", "fps": 60}, "unknown_field", "fps"),
    ],
)
async def test_bad_bodies_are_422_and_change_nothing(api, method, suffix, body, code, field):
    made = await recording(api, await meeting(api), files=False)
    before = await audit_rows(api)
    err = await api.call(
        method, f"/api/recordings/{made.id}{suffix}", as_user="vanthu", json=body, expect=422
    )
    assert (err["error"]["code"], err["error"]["field"]) == (code, field)
    assert await audit_rows(api) == before
    row = await get_row(api.database, made.id)
    assert (row.keep, row.composite_status) == (False, CompositeStatus.NONE)


# --- the composite -----------------------------------------------------------------------


@pytest.mark.parametrize("status", [RecordingStatus.RECORDING, RecordingStatus.FAILED])
async def test_composite_of_an_unfinished_recording_is_409(api, status):
    made = await recording(api, await meeting(api), status=status, files=False)
    before = await audit_rows(api)
    err = await api.call(
        "POST", f"/api/recordings/{made.id}/composite", as_user="vanthu", json={}, expect=409
    )
    assert err["error"]["code"] == "not_composable"
    row = await get_row(api.database, made.id)
    assert row.composite_status is CompositeStatus.NONE
    assert await audit_rows(api) == before


async def test_composite_asked_twice_while_queued_is_409(api):
    await api.client.app[COMPOSITES].close()  # nothing takes jobs off the queue
    made = await recording(api, await meeting(api), files=False)
    queued = await api.call(
        "POST",
        f"/api/recordings/{made.id}/composite",
        as_user="vanthu",
        json={"layout": "grid"},
        expect=202,
    )
    assert (queued["id"], queued["composite_status"], queued["composite_progress"]) == (
        made.id,
        "queued",
        0.0,
    )
    err = await api.call(
        "POST", f"/api/recordings/{made.id}/composite", as_user="admin", json={}, expect=409
    )
    assert err["error"]["code"] == "composite_running"
    async with api.database.read() as s:
        entries = (
            await s.exec(select(AuditEntry).where(col(AuditEntry.action) == "recording.compose"))
        ).all()
    assert [(e.actor, e.detail["layout"]) for e in entries] == [("vanthu", "grid")]


async def test_composite_is_made_in_the_background_and_then_listed_and_served(api):
    made = await recording(api, await meeting(api, "QB"), seconds=2.0)
    accepted = await api.call(
        "POST", f"/api/recordings/{made.id}/composite", as_user="chutri", json={}, expect=202
    )
    assert accepted["composite_status"] in ("queued", "running", "done")
    detail = await _until_composed(api, made.id)
    assert detail["recording"]["composite_progress"] == 1.0
    (first, *_) = detail["files"]
    assert (first["name"], first["kind"]) == ("composite.mp4", "composite")
    response = await api.client.get(
        f"/api/recordings/{made.id}/files/composite.mp4", headers=api.auth("chutri")
    )
    assert response.status == 200
    assert response.content_type == "video/mp4"
    body = await response.read()
    assert body == (made.directory / "composite.mp4").read_bytes()
    assert body[4:8] == b"ftyp"


async def _until_composed(api: Any, recording_id: int, within: float = 60.0) -> Any:
    """Poll the API until the composite job is over (the job's time is not ours to fix)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        detail = await api.call(
            "GET", f"/api/recordings/{recording_id}", as_user="vanthu", expect=200
        )
        status = detail["recording"]["composite_status"]
        if status == "done":
            return detail
        assert status in ("queued", "running"), detail
        assert asyncio.get_running_loop().time() < deadline, detail
        await asyncio.sleep(0.05)


async def test_composite_is_refused_while_the_runner_still_holds_the_job(api):
    """Between a job's last row write ("done") and the runner letting go of it, asking
    again must not answer 202 for a job that is not queued."""
    jobs = api.client.app[COMPOSITES]
    await jobs.close()
    made = await recording(api, await meeting(api), files=False)
    assert await jobs.queue(made.id) is True
    async with api.database.write() as s:
        row = await s.get(Recording, made.id)
        row.composite_status = CompositeStatus.DONE
        s.add(row)
    before = await audit_rows(api)
    err = await api.call(
        "POST", f"/api/recordings/{made.id}/composite", as_user="vanthu", json={}, expect=409
    )
    assert err["error"]["code"] == "composite_running"
    assert await audit_rows(api) == before
