"""A recording's page: who may open it, what it shows (files, the player, the
composite's progress), in Vietnamese and English."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlmodel import col, func, select

from conference.models import AuditEntry, CompositeStatus, Recording
from tests.conftest import cookie_for
from tests.recordings.recording_fixtures import add_meeting, add_recording
from web.appkeys import CONFIG

TITLE = "Họp giao ban tháng 11 — Ủy ban nhân dân tỉnh Quảng Bình"


async def made(api: Any, **kw: Any) -> Any:
    meeting_id = await add_meeting(api.database, title=TITLE)
    return await add_recording(
        api.database, api.client.app[CONFIG].data_dir, meeting_id, title=TITLE, **kw
    )


async def page(api: Any, path: str, headers: dict[str, str]) -> tuple[int, str]:
    response = await api.client.get(path, headers=headers, allow_redirects=False)
    return response.status, await response.text()


async def test_a_clerk_sees_the_files_and_the_progress_of_the_composite(api: Any) -> None:
    rec = await made(api)
    async with api.database.write() as session:
        row = await session.get(Recording, rec.id)
        assert row is not None
        row.composite_status = CompositeStatus.RUNNING
        row.composite_progress = 0.42
        session.add(row)
    status, html = await page(api, f"/recordings/{rec.id}", await cookie_for(api, "vanthu"))
    assert status == 200
    assert TITLE in html  # Vietnamese unchanged
    assert 'value="0.42"' in html
    assert "42 %" in html
    assert "Đang làm." in html  # the composite's state, in Vietnamese by default
    assert rec.manifest is not None
    for track in rec.manifest.tracks:
        assert f'href="/api/recordings/{rec.id}/files/{track.file}"' in html
        assert track.sha256[:16] in html
    assert "<video" not in html  # no player before the composite is done
    assert 'id="compose"' in html


async def test_the_player_appears_once_the_composite_is_done_in_english_too(api: Any) -> None:
    rec = await made(api, composite_status=CompositeStatus.DONE)
    (rec.directory / "composite.mp4").write_bytes(b"\x00" * 64)
    headers = await cookie_for(api, "admin")
    status, html = await page(api, f"/recordings/{rec.id}?lang=en", headers)
    assert status == 200
    assert f'src="/api/recordings/{rec.id}/files/composite.mp4"' in html
    assert "The meeting as one video" in html
    assert "Make it again" in html


async def test_only_clerks_admins_and_the_chair_unit_open_it(api: Any) -> None:
    rec = await made(api)  # chaired by QB: chutri's unit
    path = f"/recordings/{rec.id}"
    assert (await page(api, path, await cookie_for(api, "chutri")))[0] == 200
    for username in ("thuky", "vanhanh"):
        status, html = await page(api, path, await cookie_for(api, username))
        assert status == 403, username
        assert TITLE not in html
    # Not signed in: to the login page, which brings the clerk back here.
    response = await api.client.get(path, allow_redirects=False)
    assert response.status == 302
    location = urlsplit(response.headers["Location"])
    assert (location.path, parse_qs(location.query)) == ("/login", {"next": [path]})


@pytest.mark.parametrize("rid", ["999999", str(2**31), "12a", "-1", "١٢"])
async def test_an_unknown_or_odd_id_is_404_without_a_trace(api: Any, rid: str) -> None:
    headers = await cookie_for(api, "vanthu")
    async with api.database.read() as session:
        before = (await session.exec(select(func.count()).select_from(AuditEntry))).one()
    status, _ = await page(api, f"/recordings/{rid}", headers)
    assert status == 404
    async with api.database.read() as session:
        after = (await session.exec(select(func.count()).select_from(AuditEntry))).one()
        downloads = (
            await session.exec(
                select(func.count())
                .select_from(AuditEntry)
                .where(col(AuditEntry.action) == "recording.download")
            )
        ).one()
    assert downloads == 0
    assert after - before <= 1  # the login's own entry, if any
