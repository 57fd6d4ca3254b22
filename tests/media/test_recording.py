"""Recording through the real path: the server with a media worker, aiortc sites,
the recorder process joined as a hidden participant, files checked with ffprobe
and PyAV, retrieval over the API with HTTP Range."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import av
import pytest
from sqlmodel import col, select

from conference.config import Config
from conference.models import AuditEntry
from signaling.bus import BusEvent
from signaling.client import Client
from signaling.media_client import MediaSession
from signaling.testmedia import PatternVideo, ToneAudio, read_index
from web.appkeys import BUS

from ..signaling.conftest import CHAIR, SNV, schedule
from .peers import until


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'hoinghi.db'}"  # no PostgreSQL in the namespace


HOOK = """import json, os, sys
keys = [k for k in os.environ if k.startswith("HOINGHI_")]
with open(sys.argv[1], "a", encoding="utf-8") as f:
    f.write(json.dumps({k: os.environ[k] for k in keys}) + "\\n")
"""


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> Config:
    hook = tmp_path / "hook.py"
    hook.write_text(HOOK)
    return Config(
        data_dir=tmp_path / "data",
        database_url=database_url,
        public_url="https://hoinghi.test",
        media="embedded",
        media_workers=1,
        media_address="127.0.0.1",
        # Like Jibri's finalize script: runs after each recording, told where it is.
        recording_command=f"{sys.executable} {hook} {tmp_path / 'hook-runs.jsonl'}",
    )


class Site:
    def __init__(self, client: Client, session: MediaSession, welcome: dict[str, Any]) -> None:
        self.client = client
        self.session = session
        self.welcome = welcome


@pytest.fixture
async def room(api: Any) -> AsyncIterator[Any]:
    """A meeting with recording on and a function joining a site with media."""
    opened: list[tuple[Any, Site]] = []
    events: list[BusEvent] = []
    bus = api.client.server.app[BUS]

    async def follow() -> None:
        async for event in bus.subscribe():
            events.append(event)

    follower = asyncio.create_task(follow())
    await asyncio.sleep(0)
    meeting = await schedule(api, recording=True)

    async def join(unit: str) -> Site:
        context = Client.connect(meeting.ws_url)
        client = await context.__aenter__()
        welcome = await client.join(meeting.tokens[unit], client={"app": "test"})
        session = MediaSession(client, video=lambda: PatternVideo(320, 180), audio=ToneAudio)
        await session.start()
        site = Site(client, session, welcome)
        opened.append((context, site))
        return site

    join.meeting = meeting  # type: ignore[attr-defined]
    join.events = events  # type: ignore[attr-defined]
    yield join
    for context, site in opened:
        await site.session.close()
        await context.__aexit__(None, None, None)
    follower.cancel()


def probe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["/usr/bin/ffprobe", "-v", "error", "-count_packets", "-show_streams", "-show_format",
         "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return dict(json.loads(out))


async def recordings_of(api: Any, meeting_id: int) -> list[dict[str, Any]]:
    page = await api.call("GET", f"/api/recordings?meeting={meeting_id}", as_user="vanthu")
    return list(page["items"])


async def wait_status(api: Any, meeting_id: int, status: str, within: float) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        items = await recordings_of(api, meeting_id)
        done = [r for r in items if r["status"] == status]
        if done:
            return done[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no recording became {status} in {within} s: {items}")
        await asyncio.sleep(0.2)


async def test_a_meeting_with_recording_on_records_what_is_forwarded(
    room: Any, api: Any, tmp_path: Path
) -> None:
    chair = await room(CHAIR)
    snv = await room(SNV)
    meeting = room.meeting
    assert chair.welcome["room"]["recording"] is True  # everyone sees recording is on
    await wait_status(api, meeting.id, "recording", 15)
    await until(lambda: snv.session.received.count(chair.client.participant) >= 30, 20, "video")
    await asyncio.sleep(6)
    await chair.client.request("recording", on=False)
    rec = await wait_status(api, meeting.id, "finished", 30)
    assert rec["failure"] == ""
    names = [e.name for e in room.events]
    assert names.index("recording.started") < names.index("recording.finished")

    # The recording lasts from its start to the chair's stop (within 5 %).
    from datetime import datetime

    wall = (
        datetime.fromisoformat(rec["ended_at"]) - datetime.fromisoformat(rec["started_at"])
    ).total_seconds()
    assert abs(rec["duration_seconds"] - wall) <= 0.05 * wall, (rec["duration_seconds"], wall)

    detail = await api.call("GET", f"/api/recordings/{rec['id']}", as_user="vanthu")
    tracks = [f for f in detail["files"] if f["kind"] in ("audio", "video")]
    assert sorted(f["kind"] for f in tracks) == ["audio", "audio", "video", "video"]
    assert {f["unit_name"] for f in tracks} == {"Ủy ban nhân dân tỉnh Quảng Bình", "Sở Nội vụ"}
    assert set(rec["unit_ids"]) == {u for f in tracks if (u := f["unit_id"]) is not None}
    assert len(rec["unit_ids"]) == 2
    for f in tracks:
        response = await api.client.get(f["url"], headers=api.auth("vanthu"))
        assert response.status == 200
        assert response.headers["Content-Type"] == "video/webm"
        content = await response.read()
        assert len(content) == f["bytes"]
        assert hashlib.sha256(content).hexdigest() == f["sha256"]
        path = tmp_path / f["name"]
        path.write_bytes(content)
        (stream,) = probe(path)["streams"]
        packets = int(stream["nb_read_packets"])
        if f["kind"] == "video":
            assert stream["codec_name"] == "vp8"
            # Forwarded, not re-encoded: every frame the site sent, ~30 per second.
            assert abs(packets - 30 * f["duration"]) <= 0.1 * 30 * f["duration"], (packets, f)
            indexes = [read_index(frame) for frame in av.open(str(path)).decode(video=0)]
            assert len(indexes) == packets
            assert indexes == sorted(indexes)  # the pattern's frames, in order
        else:
            assert stream["codec_name"] == "opus"
            assert abs(packets - 50 * f["duration"]) <= 0.1 * 50 * f["duration"], (packets, f)

    # HTTP Range: the player seeks; the bytes are the file's.
    video = next(f for f in tracks if f["kind"] == "video")
    whole = (tmp_path / video["name"]).read_bytes()
    part = await api.client.get(
        video["url"], headers={**api.auth("vanthu"), "Range": "bytes=100-1123"}
    )
    assert part.status == 206
    assert await part.read() == whole[100:1124]
    assert part.headers["Content-Range"] == f"bytes 100-1123/{len(whole)}"
    # Each download from the first byte left an audit entry; the seek did not.
    async with api.database.read() as session:
        audits = (
            await session.exec(
                select(AuditEntry).where(col(AuditEntry.action) == "recording.download")
            )
        ).all()
    assert len(audits) == 4
    assert {a.actor for a in audits} == {"vanthu"}

    # The finalize command ran once, with the recording's ids and paths.
    runs_file = tmp_path / "hook-runs.jsonl"
    await until(runs_file.exists, 10, "the finalize command")
    (run,) = [json.loads(line) for line in runs_file.read_text().splitlines()]
    assert run["HOINGHI_RECORDING_ID"] == str(rec["id"])
    assert run["HOINGHI_MEETING_ID"] == str(meeting.id)
    assert run["HOINGHI_RECORDING_STATUS"] == "finished"
    manifest = json.loads(Path(run["HOINGHI_MANIFEST"]).read_text("utf-8"))  # noqa: ASYNC240
    assert manifest["recording_id"] == rec["id"]
    assert Path(run["HOINGHI_RECORDING_DIR"]) == Path(run["HOINGHI_MANIFEST"]).parent
    async with api.database.read() as session:
        commands = (
            await session.exec(
                select(AuditEntry).where(col(AuditEntry.action) == "recording.command")
            )
        ).all()
    assert [c.detail["exit_status"] for c in commands] == [0]


async def test_the_chair_stops_and_starts_again_making_a_second_recording(
    room: Any, api: Any
) -> None:
    chair = await room(CHAIR)
    await room(SNV)
    meeting = room.meeting
    await wait_status(api, meeting.id, "recording", 15)
    await asyncio.sleep(3)
    await chair.client.request("recording", on=False)
    await wait_status(api, meeting.id, "finished", 30)
    await chair.client.request("recording", on=True)
    await until(lambda: len([e for e in room.events if e.name == "recording.started"]) == 2, 15,
                "a second recording")  # fmt: skip
    await asyncio.sleep(3)
    await chair.client.request("recording", on=False)
    deadline = time.monotonic() + 30
    while True:
        items = await recordings_of(api, meeting.id)
        if len(items) == 2 and all(r["status"] == "finished" for r in items):
            break
        assert time.monotonic() < deadline, items
        await asyncio.sleep(0.2)
    assert sorted(r["number"] for r in items) == [1, 2]
    assert all(r["duration_seconds"] > 1.5 for r in items), items


async def test_an_unwritable_recordings_directory_fails_the_recording_not_the_meeting(
    api: Any, config: Config
) -> None:
    config.data_dir.mkdir(parents=True, exist_ok=True)
    (config.data_dir / "recordings").write_text("a file where the directory should be")
    meeting = await schedule(api, recording=True)
    async with Client.connect(meeting.ws_url) as client:
        await client.join(meeting.tokens[CHAIR], client={"app": "test"})
        off = await client.wait_for("recording", within=15)
        assert off["on"] is False
        assert off["reason"]
        items = await recordings_of(api, meeting.id)
        assert [r["status"] for r in items] == ["failed"]
        assert items[0]["failure"]
        # The meeting goes on.
        assert (await client.request("chat", text="Vẫn họp tiếp", to="all"))["type"] == "ack"


@pytest.fixture
def full_disk(config: Config) -> Iterator[Path]:
    """The recordings directory on a 256 KiB tmpfs: full after a few seconds of video."""
    recordings = config.data_dir / "recordings"
    recordings.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["/usr/bin/mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(recordings)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"a small tmpfs is needed to fill the disk (root): {mounted.stderr.strip()}")
    try:
        yield recordings
    finally:
        subprocess.run(["/usr/bin/umount", "-l", str(recordings)], check=False)


async def test_a_full_disk_mid_recording_fails_it_with_the_reason_and_the_meeting_goes_on(
    room: Any, api: Any, full_disk: Path
) -> None:
    chair = await room(CHAIR)
    snv = await room(SNV)
    meeting = room.meeting
    rec = await wait_status(api, meeting.id, "failed", 60)
    assert "No space left on device" in rec["failure"], rec
    assert [e.name for e in room.events].count("recording.failed") == 1
    off = await snv.session.wait_for("recording", within=10, on=False)
    assert off["reason"] == rec["failure"]
    # The meeting goes on: media still flows, chat still works.
    before = snv.session.received.count(chair.client.participant)
    await until(
        lambda: snv.session.received.count(chair.client.participant) > before + 30, 15, "video"
    )
    assert (await chair.client.request("chat", text="Vẫn họp", to="all"))["type"] == "ack"


async def test_a_site_that_publishes_again_keeps_one_file_per_track(room: Any, api: Any) -> None:
    # A browser whose network dropped publishes on a new connection; the SFU keeps
    # the subscriber's m-line (and continues its sequence and timestamps), so the
    # recording goes on in the same file instead of starting a new one.
    chair = await room(CHAIR)
    snv = await room(SNV)
    meeting = room.meeting
    await wait_status(api, meeting.id, "recording", 15)
    snv_id = snv.client.participant
    await until(lambda: chair.session.received.count(snv_id) >= 30, 20, "video before")
    await asyncio.sleep(2)
    await snv.session.publish()  # a new publishing connection, new tracks
    before = chair.session.received.count(snv_id)
    await until(lambda: chair.session.received.count(snv_id) >= before + 60, 20, "video after")
    await chair.client.request("recording", on=False)
    rec = await wait_status(api, meeting.id, "finished", 30)
    detail = await api.call("GET", f"/api/recordings/{rec['id']}", as_user="vanthu")
    tracks = [f for f in detail["files"] if f["kind"] in ("audio", "video")]
    snv_tracks = [f for f in tracks if f["unit_name"] == "Sở Nội vụ"]
    assert sorted(f["kind"] for f in snv_tracks) == ["audio", "video"], tracks
    video = next(f for f in snv_tracks if f["kind"] == "video")
    # One file spanning before and after the re-publish (about the whole recording).
    assert video["start_offset"] + video["duration"] >= rec["duration_seconds"] - 1.5, (video, rec)
    assert video["duration"] >= 4.0, video
