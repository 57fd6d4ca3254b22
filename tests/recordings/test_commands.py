"""``hoinghi recordings list`` and ``hoinghi recordings compose ID`` as real
subprocesses against a data dir and the test database (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from conference.models import AuditEntry, CompositeStatus, Recording, RecordingStatus

from .recording_fixtures import TITLE, add_meeting, add_recording, get_row

HOINGHI = str(Path(sys.executable).with_name("hoinghi"))
FFPROBE = shutil.which("ffprobe")
OTHER = "Hội nghị sơ kết 6 tháng — Ủy ban nhân dân tỉnh"
STARTED = datetime(2026, 11, 27, 17, 30, tzinfo=UTC)  # 00:30 on 28/11 in Hà Nội


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


async def hoinghi(
    *args: str | int, data_dir: Path, database_url: str, within: float = 120
) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOINGHI_")}
    process = await asyncio.create_subprocess_exec(
        HOINGHI,
        *map(str, args),
        "--data-dir",
        str(data_dir),
        "--database-url",
        database_url,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(process.communicate(), within)
    assert process.returncode is not None
    return process.returncode, out.decode("utf-8"), err.decode("utf-8")


async def test_list_prints_every_recording_with_local_times(
    database, seeded, database_url, data_dir
):
    code, out, err = await hoinghi(
        "recordings", "list", data_dir=data_dir, database_url=database_url
    )
    assert (code, out) == (0, "no recordings\n"), err

    m1 = await add_meeting(database)
    m2 = await add_meeting(database, title=OTHER, chair="QB-SNV")
    first = await add_recording(database, data_dir, m1, started_at=STARTED, files=False)
    second = await add_recording(
        database,
        data_dir,
        m2,
        title=OTHER,
        started_at=STARTED.replace(hour=20),
        status=RecordingStatus.INTERRUPTED,
        files=False,
        composite_status=CompositeStatus.DONE,
        seconds=750,
    )
    async with database.write() as s:
        row = await s.get(Recording, second.id)
        row.duration_seconds = 750.0
        s.add(row)

    code, out, err = await hoinghi(
        "recordings", "list", data_dir=data_dir, database_url=database_url
    )
    assert code == 0, err
    assert out.splitlines() == [
        f"{first.id:>5}  28/11/2026 00:30  finished       0.0 min  composite none    m{m1} #1 {TITLE}",
        f"{second.id:>5}  28/11/2026 03:30  interrupted   12.5 min  composite done    m{m2} #1 {OTHER}",
    ]
    code, out, _ = await hoinghi(
        "recordings", "list", "--meeting", m2, data_dir=data_dir, database_url=database_url
    )
    assert (code, [line.split()[0] for line in out.splitlines()]) == (0, [str(second.id)])


def bar_values(err: str) -> list[int]:
    """The percentages the progress bar showed, in order."""
    return [int(p) for p in re.findall(r"\r\[[#.]{30}\]\s+(\d+) %  \d+:\d\d", err)]


async def test_compose_draws_a_bar_and_records_the_composite(
    database, seeded, database_url, data_dir
):
    made = await add_recording(database, data_dir, await add_meeting(database), seconds=3.0)
    code, _out, err = await hoinghi(
        "recordings",
        "compose",
        made.id,
        "--layout",
        "grid",
        data_dir=data_dir,
        database_url=database_url,
    )
    assert code == 0, err
    shown = bar_values(err)
    assert len(shown) >= 2, err
    assert shown == sorted(shown)
    assert (shown[0], shown[-1]) == (0, 100)
    assert f"\r[{'#' * 30}] 100 %" in err
    output = made.directory / "composite.mp4"
    assert err.rstrip("\n").splitlines()[-1] == str(output)
    assert output.is_file()
    assert not (made.directory / ".composite.mp4.tmp").exists()
    if FFPROBE is not None:
        probe = await asyncio.create_subprocess_exec(
            FFPROBE, "-v", "error", "-show_streams", "-of", "json", str(output),
            stdout=subprocess.PIPE,
        )  # fmt: skip
        shown_by_probe, _ = await probe.communicate()
        codecs = sorted(s["codec_name"] for s in json.loads(shown_by_probe)["streams"])
        assert codecs == ["aac", "h264"]

    row = await get_row(database, made.id)
    assert (row.composite_status, row.composite_progress) == (CompositeStatus.DONE, 1.0)
    assert (row.composite_path, row.composite_error) == ("composite.mp4", "")
    entry = await _audit(database, "recording.composite_done")
    assert (entry.object_id, entry.detail["by"]) == (str(made.id), "cli")


async def _audit(database: Any, action: str) -> AuditEntry:
    async with database.read() as s:
        return (await s.exec(select(AuditEntry).where(col(AuditEntry.action) == action))).one()


async def test_compose_of_an_unknown_recording_exits_1_with_a_message(
    database, seeded, database_url, data_dir
):
    code, out, err = await hoinghi(
        "recordings", "compose", 4242, data_dir=data_dir, database_url=database_url
    )
    assert (code, out) == (1, "")
    assert err.strip().splitlines()[-1] == "hoinghi: no recording 4242"


@pytest.mark.parametrize("status", [RecordingStatus.RECORDING, RecordingStatus.FAILED])
async def test_compose_of_an_unfinished_recording_exits_1_and_changes_nothing(
    database, seeded, database_url, data_dir, status
):
    made = await add_recording(
        database, data_dir, await add_meeting(database), status=status, files=False
    )
    code, _out, err = await hoinghi(
        "recordings", "compose", made.id, data_dir=data_dir, database_url=database_url
    )
    assert code == 1
    assert f"hoinghi: recording {made.id} is {status.value}, not finished" in err
    row = await get_row(database, made.id)
    assert (row.composite_status, row.composite_progress) == (CompositeStatus.NONE, 0.0)


async def test_compose_of_a_broken_recording_exits_1_and_records_the_failure(
    database, seeded, database_url, data_dir
):
    made = await add_recording(database, data_dir, await add_meeting(database))
    (made.directory / "manifest.json").write_text("{broken", encoding="utf-8")
    code, _out, err = await hoinghi(
        "recordings", "compose", made.id, data_dir=data_dir, database_url=database_url
    )
    assert code == 1
    assert "hoinghi: the composite failed:" in err
    assert "invalid manifest" in err
    row = await get_row(database, made.id)
    assert row.composite_status is CompositeStatus.FAILED
    assert "invalid manifest" in row.composite_error
    assert not (made.directory / "composite.mp4").exists()
    entry = await _audit(database, "recording.composite_failed")
    assert entry.object_id == str(made.id)


async def test_compose_shows_running_in_the_row_while_it_works(
    database, seeded, database_url, data_dir
):
    made = await add_recording(database, data_dir, await add_meeting(database), seconds=8.0)
    seen: list[tuple[CompositeStatus, float]] = []
    job = asyncio.ensure_future(
        hoinghi("recordings", "compose", made.id, data_dir=data_dir, database_url=database_url)
    )
    while not job.done():
        row = await get_row(database, made.id)
        seen.append((row.composite_status, row.composite_progress))
        await asyncio.wait({job}, timeout=0.02)
    code, _out, err = job.result()
    assert code == 0, err
    states = [s for s, _ in seen]
    assert CompositeStatus.RUNNING in states
    assert states == sorted(
        states, key=[CompositeStatus.NONE, CompositeStatus.RUNNING, CompositeStatus.DONE].index
    )
    progress = [p for s, p in seen if s is CompositeStatus.RUNNING]
    assert progress == sorted(progress)
    assert (await get_row(database, made.id)).composite_status is CompositeStatus.DONE


async def test_ctrl_c_stops_the_compose_and_the_row_says_so(
    database, seeded, database_url, data_dir
):
    made = await add_recording(database, data_dir, await add_meeting(database), seconds=30.0)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOINGHI_")}
    process = await asyncio.create_subprocess_exec(
        HOINGHI, "recordings", "compose", str(made.id),
        "--data-dir", str(data_dir), "--database-url", database_url,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    assert process.stderr is not None
    err = b""
    while b"\r[" not in err:  # the bar is drawn: the composite is being made
        chunk = await asyncio.wait_for(process.stderr.read(100), 60)
        assert chunk, err
        err += chunk
    process.send_signal(signal.SIGINT)
    rest, _ = await asyncio.gather(process.stderr.read(), process.wait())
    err += rest
    assert process.returncode == 130, err
    assert not (made.directory / "composite.mp4").exists()  # it did not go on to the end
    assert not (made.directory / ".composite.mp4.tmp").exists()
    row = await get_row(database, made.id)
    assert row.composite_status is CompositeStatus.FAILED  # not "running" for ever
    assert "stopped" in row.composite_error


@pytest.mark.parametrize("busy", [CompositeStatus.QUEUED, CompositeStatus.RUNNING])
async def test_compose_is_not_started_twice_unless_forced(
    database, seeded, database_url, data_dir, busy
):
    # The server's job (or another command) is making it: both would write one file.
    made = await add_recording(
        database, data_dir, await add_meeting(database), composite_status=busy
    )
    code, _out, err = await hoinghi(
        "recordings", "compose", made.id, data_dir=data_dir, database_url=database_url
    )
    assert code == 1
    assert f"composite is {busy.value} already; --force" in err
    row = await get_row(database, made.id)
    assert row.composite_status is busy
    assert not (made.directory / "composite.mp4").exists()
    # A row a killed command left behind: --force makes it.
    code, _out, err = await hoinghi(
        "recordings", "compose", made.id, "--force", data_dir=data_dir, database_url=database_url
    )
    assert code == 0, err
    row = await get_row(database, made.id)
    assert (row.composite_status, row.composite_progress) == (CompositeStatus.DONE, 1.0)
    assert (made.directory / "composite.mp4").exists()
