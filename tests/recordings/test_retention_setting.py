"""The retention period an administrator stores (``conference.settings_store``) wins
over the configured default, and the running sweeper reads it at every sweep: set
to a period, the next sweep deletes; set back to 0, nothing more is deleted. On
SQLite and PostgreSQL, with real recording directories."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from conference.actors import SYSTEM
from conference.errors import InvalidInput
from conference.models import Setting
from conference.settings_store import (
    MAX_RETENTION_DAYS,
    RETENTION_DAYS,
    check_retention_days,
    get_setting,
    retention_policy,
    set_retention_days,
)
from conference.timezone import utcnow
from recordings import service as service_module

from .recording_fixtures import add_meeting, add_recording, get_row
from .test_retention import service


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


async def store(database: Any, days: int) -> None:
    async with database.write() as session:
        await set_retention_days(session, SYSTEM, days, default_days=0)


async def test_check_accepts_whole_days_within_the_range_only() -> None:
    assert check_retention_days(0) == 0
    assert check_retention_days(MAX_RETENTION_DAYS) == MAX_RETENTION_DAYS
    for value, code in [
        (-1, "retention_days_negative"),
        (MAX_RETENTION_DAYS + 1, "retention_days_too_large"),
        (2.0, "retention_days_not_integer"),
        ("7", "retention_days_not_integer"),
        (False, "retention_days_not_integer"),
        (None, "retention_days_not_integer"),
    ]:
        with pytest.raises(InvalidInput) as refused:
            check_retention_days(value)
        assert refused.value.code == code


async def test_the_stored_period_wins_and_a_broken_one_is_ignored(database, seeded) -> None:
    async with database.read() as session:
        assert (await retention_policy(session, 14)).days == 14
        assert await get_setting(session, RETENTION_DAYS) is None
    await store(database, 90)
    async with database.read() as session:
        policy = await retention_policy(session, 14)
    assert (policy.days, policy.default_days, policy.stored) == (90, 14, True)
    await store(database, 0)
    async with database.read() as session:
        assert (await retention_policy(session, 14)).days == 0  # 0 stored: forever
    async with database.write() as session:
        row = await session.get(Setting, RETENTION_DAYS)
        assert row is not None
        row.value = '"ba mươi"'  # edited by hand
        session.add(row)
    async with database.read() as session:
        policy = await retention_policy(session, 14)
    assert (policy.days, policy.stored) == (14, False)


async def test_the_running_sweeper_follows_the_stored_period(
    database, seeded, data_dir, monkeypatch
) -> None:
    monkeypatch.setattr(service_module, "RETENTION_EVERY", 0.05)
    mid = await add_meeting(database)
    now = utcnow()
    old = await add_recording(
        database, data_dir, mid, number=1, started_at=now - timedelta(days=40)
    )
    older = await add_recording(
        database, data_dir, mid, number=2, started_at=now - timedelta(days=400)
    )
    young = await add_recording(
        database, data_dir, mid, number=3, started_at=now - timedelta(days=5)
    )
    recordings = service(database, data_dir, 0)  # the configuration: keep forever
    await recordings.start()
    try:
        await asyncio.sleep(0.3)  # several sweeps: nothing goes
        assert all([await get_row(database, m.id) for m in (old, older, young)])
        preview = await recordings.retention_preview(utcnow())
        assert (preview.days, preview.recordings, preview.size_bytes) == (0, 0, 0)

        await store(database, 365)
        preview = await recordings.retention_preview(utcnow())
        assert (preview.days, preview.recordings) == (365, 1)
        await wait_gone(database, older.id)
        assert older.directory.exists() is False
        assert await get_row(database, old.id) is not None

        await store(database, 0)  # back to forever before "old" would go at 30
        await asyncio.sleep(0.3)
        assert await get_row(database, old.id) is not None

        await store(database, 30)
        await wait_gone(database, old.id)
        assert await get_row(database, young.id) is not None
        assert young.directory.is_dir()
    finally:
        await recordings.close()


async def wait_gone(database: Any, recording_id: int) -> None:
    """Until the sweeper (another task) has deleted the recording's row."""
    deadline = asyncio.get_running_loop().time() + 10
    while await get_row(database, recording_id) is not None:
        assert asyncio.get_running_loop().time() < deadline, "the sweeper did not delete it"
        await asyncio.sleep(0.02)
