"""The whole path over real sockets: hoinghi's server with the SFU in a worker
process, participants joining by WebSocket with aiortc media. A killed media
worker resets only media; clients publish again and decode again."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from conference.config import Config
from signaling.client import Client
from signaling.media_client import MediaSession
from signaling.testmedia import PatternVideo, ToneAudio
from web.appkeys import MEDIA

from ..signaling.conftest import CHAIR, SNV, STTTT, schedule
from .peers import until


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    # SQLite only: inside the namespace PostgreSQL is not reachable.
    return f"sqlite+aiosqlite:///{tmp_path / 'hoinghi.db'}"


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> Config:
    return Config(
        data_dir=tmp_path / "data",
        database_url=database_url,
        public_url="https://hoinghi.test",
        media="embedded",
        media_workers=1,
        media_address="127.0.0.1",
    )


class Site:
    def __init__(self, client: Client, session: MediaSession) -> None:
        self.client = client
        self.session = session

    @property
    def id(self) -> str:
        assert self.client.participant is not None
        return self.client.participant


@pytest.fixture
async def sites(api: Any) -> AsyncIterator[Any]:
    opened: list[tuple[Any, Site]] = []
    meeting = await schedule(api)

    async def join(unit: str, *, video: bool = True, bandwidth: str = "full") -> Site:
        context = Client.connect(meeting.ws_url)
        client = await context.__aenter__()
        await client.join(meeting.tokens[unit], client={"app": "test", "bandwidth": bandwidth})
        session = MediaSession(
            client,
            video=(lambda: PatternVideo(320, 180)) if video else None,
            audio=ToneAudio,
        )
        await session.start()
        site = Site(client, session)
        opened.append((context, site))
        return site

    join.meeting = meeting  # type: ignore[attr-defined]
    yield join
    for context, site in opened:
        await site.session.close()
        await context.__aexit__(None, None, None)


async def test_three_sites_see_and_hear_each_other_through_a_media_worker(
    sites: Any, api: Any
) -> None:
    chair = await sites(CHAIR)
    snv = await sites(SNV)
    stttt = await sites(STTTT)
    for a in (chair, snv, stttt):
        for b in (chair, snv, stttt):
            if a is b:
                continue
            await until(lambda a=a, b=b: a.session.received.count(b.id) >= 15, 30, "video")
            await until(lambda a=a, b=b: a.session.received.count(b.id, "audio") >= 25, 10, "audio")
    engine = api.client.server.app[MEDIA]
    workers = engine.stats()["workers"]
    assert len(workers) == 1
    assert workers[0]["rooms"] == 1
    assert workers[0]["pid"] != os.getpid()


async def test_a_killed_media_worker_resets_media_and_clients_come_back(
    sites: Any, api: Any
) -> None:
    chair = await sites(CHAIR)
    snv = await sites(SNV)
    await until(lambda: snv.session.received.count(chair.id) >= 10, 30, "video before")
    engine = api.client.server.app[MEDIA]
    pid = engine.worker_pids()[0]
    os.kill(pid, signal.SIGKILL)
    for site in (chair, snv):
        reset = await site.session.wait_for("media_reset", within=10)
        assert reset["reason"]
    # Signaling never dropped: the same sockets carry on.
    assert chair.client.close_code is None
    await until(lambda: engine.worker_pids()[0] not in (None, pid), 15, "a new worker")
    before = snv.session.received.count(chair.id)
    await until(lambda: snv.session.received.count(chair.id) >= before + 15, 30, "video after")


async def test_publishing_before_admission_or_a_screen_without_the_role_is_refused(
    sites: Any,
) -> None:
    chair = await sites(CHAIR)
    with pytest.raises(Exception, match="forbidden"):
        await chair.client.request("publish", sdp="v=0\r\n", source="screen")
    answer = await chair.client.request("presenter", participant=chair.id)
    assert answer["type"] == "ack"
    with pytest.raises(Exception, match="bad_sdp"):
        await chair.client.request("publish", sdp="v=0\r\nnonsense", source="screen")


HOINGHI = str(Path(sys.executable).with_name("hoinghi"))


def _media_line(out: str) -> dict[str, Any]:
    """The ``HH:MM:SS media {...}`` line `hoinghi join` prints before leaving."""
    lines = [line for line in out.splitlines() if line.split(" ", 2)[1:2] == ["media"]]
    assert len(lines) == 1, out[-2000:]
    return dict(json.loads(lines[0].split(" ", 2)[2]))


async def test_hoinghi_join_publishes_a_test_pattern_and_receives_the_others(
    sites: Any,
) -> None:
    chair = await sites(CHAIR)
    meeting = sites.meeting
    http = meeting.ws_url.replace("ws://", "http://").removesuffix("/ws")

    async def hoinghi_join(unit: str, *extra: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            HOINGHI, "join", f"{http}/join/{meeting.tokens[unit]}", "--duration", "8",
            "--media-address", "127.0.0.1", *extra,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip

    full = await hoinghi_join(SNV, "--media", "test-pattern")
    audio_only = await hoinghi_join(STTTT, "--media", "test-pattern", "--bandwidth", "audio")
    results = await asyncio.wait_for(
        asyncio.gather(full.communicate(), audio_only.communicate()), 40
    )
    (full_out, full_err), (audio_out, audio_err) = ((o.decode(), e.decode()) for o, e in results)
    assert full.returncode == 0, full_err[-2000:]
    assert audio_only.returncode == 0, audio_err[-2000:]
    full_got = _media_line(full_out)["received"]
    audio_got = _media_line(audio_out)["received"]
    # The full site decodes the chair's video and hears both others.
    assert full_got[chair.id]["video"] >= 60, full_got
    assert full_got[chair.id]["audio"] >= 100, full_got
    assert len([p for p, kinds in full_got.items() if kinds.get("audio", 0) >= 100]) == 2
    # The audio-only site gets audio from both and no video from anyone.
    assert audio_got[chair.id]["audio"] >= 100, audio_got
    assert all("video" not in kinds for kinds in audio_got.values()), audio_got
    # The chair received the pattern from the full site, and no video from the other.
    joined = [e for e in chair.session.events if e.get("type") == "participant_joined"]
    by_unit = {e["participant"]["unit"]: e["participant"]["id"] for e in joined}
    assert chair.session.received.count(by_unit[SNV]) >= 60
    assert chair.session.received.count(by_unit[SNV], "audio") >= 100
    assert chair.session.received.count(by_unit[STTTT]) == 0
    assert chair.session.received.count(by_unit[STTTT], "audio") >= 100


async def test_hoinghi_join_with_a_missing_media_file_is_a_usage_error(sites: Any) -> None:
    meeting = sites.meeting
    http = meeting.ws_url.replace("ws://", "http://").removesuffix("/ws")
    proc = await asyncio.create_subprocess_exec(
        HOINGHI, "join", f"{http}/join/{meeting.tokens[SNV]}", "--media", "/nonexistent.webm",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert "no such file" in err.decode()


async def test_hoinghi_join_publishes_a_media_file(sites: Any, tmp_path: Path) -> None:
    chair = await sites(CHAIR)
    clip = tmp_path / "bản tin.webm"  # a Vietnamese file name survives the path
    ffmpeg = await asyncio.create_subprocess_exec(
        "ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x180:rate=15",
        "-f", "lavfi", "-i", "sine=frequency=440", "-t", "2", "-c:v", "libvpx",
        "-c:a", "libopus", str(clip),
    )  # fmt: skip
    assert await ffmpeg.wait() == 0
    meeting = sites.meeting
    http = meeting.ws_url.replace("ws://", "http://").removesuffix("/ws")
    proc = await asyncio.create_subprocess_exec(
        HOINGHI, "join", f"{http}/join/{meeting.tokens[SNV]}", "--duration", "7",
        "--media-address", "127.0.0.1", "--media", str(clip),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()[-2000:]
    joined = [e for e in chair.session.events if e.get("type") == "participant_joined"]
    snv = next(e["participant"]["id"] for e in joined if e["participant"]["unit"] == SNV)
    # The clip is looped: more frames arrive than the 2 s file holds (30 at 15 fps).
    assert chair.session.received.count(snv) >= 40
    assert chair.session.received.count(snv, "audio") >= 100
    assert _media_line(out.decode())["received"][chair.id]["video"] >= 40
