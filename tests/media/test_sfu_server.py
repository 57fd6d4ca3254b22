"""The whole path over real sockets: hoinghi's server with the SFU in a worker
process, participants joining by WebSocket with aiortc media. A killed media
worker resets only media; clients publish again and decode again."""

from __future__ import annotations

import os
import signal
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
