"""hoinghi as a system under test: ``hoinghi serve`` with its embedded SFU in media
worker processes, driven through the WebSocket protocol (docs/protocol.md, Media)
with ``signaling.client.Client``.

Meetings are written to a fresh SQLite database before the server starts (as
bench/signaling.py does): one meeting per scenario, each with its own chair unit
(a unit cannot chair two overlapping meetings), auto-admit, starting now. Bench
units ``BENCH-000``.. are imported as a CSV beside the bundled ones.

A site joins with its invitation, publishes its camera (``publish``), answers
every ``subscribe_offer`` on its receiving connection and obeys ``video_pause``.
Muted sites send ``mute`` (audio) and no audio packets. The engine decides what
each site receives (Last-N); the ``feeds`` the bench passes are ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from signaling.client import Client

from .systems import (
    Feed,
    OfferHandler,
    PauseHandler,
    System,
    descendants,
    free_port,
    spawn,
    stop_process,
    wait_http,
)

HOINGHI = str(Path(sys.executable).with_name("hoinghi"))
BENCH_UNITS = 200


def bench_units_csv() -> str:
    rows = ["code,name,kind,parent"]
    rows += [f"BENCH-{i:03d},Điểm cầu thử {i:03d},district,QB" for i in range(BENCH_UNITS)]
    return "\n".join(rows) + "\n"


ANSWER_WAIT = 60.0  # the engine may take long to apply answers in a join storm; reported


@dataclass
class Site:
    name: str
    client: Client
    participant: str
    on_offer: OfferHandler | None = None
    on_pause: PauseHandler | None = None
    pending_offer: dict[str, Any] | None = None
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    offers: int = 0
    last_offer_done: float = 0.0
    pauses: list[tuple[float, bool]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    cm: Any = None


class Hoinghi(System):
    name = "hoinghi"
    offers_on_join = True

    def __init__(
        self,
        media_address: str,
        log_dir: Path,
        media_workers: int = 1,
        rooms: list[int] | None = None,
        extra_args: list[str] | None = None,
        recording: bool = False,
    ) -> None:
        self.media_address = media_address
        self.recording = recording  # meetings record (bench.recording)
        self.log_dir = log_dir
        self.media_workers = media_workers
        self.rooms_wanted = rooms or [1, 4, 8, 16, 32, 30]
        self.extra_args = extra_args or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.data_dir = log_dir / "hoinghi-data"
        self.port = 0
        self.ws_url = ""
        # room key (number of sites) -> list of (unit, token), chair first; used rooms are popped
        self.meetings: dict[int, list[list[tuple[str, str]]]] = {}
        self.sites: dict[str, Site] = {}
        self.tokens: dict[str, str] = {}
        self.chair_site = ""
        self.largest_answer = 0
        self.answer_acks: list[float] = []
        self.speaker_changes = 0

    # --- server
    async def _seed(self) -> None:
        from conference.actors import SYSTEM
        from conference.db import Database
        from conference.demo import bundled_units_csv
        from conference.invitations import list_invitations
        from conference.keys import load_or_create_keyring
        from conference.links import JoinLinks
        from conference.meetings import create_meeting
        from conference.migrate import upgrade
        from conference.models import MeetingCreate
        from conference.tokens import TokenService
        from conference.units import import_units_csv

        base = f"http://127.0.0.1:{self.port}"
        db = Database(f"sqlite+aiosqlite:///{self.data_dir / 'hoinghi.db'}")
        await upgrade(db)
        links = JoinLinks(
            TokenService(load_or_create_keyring(self.data_dir), "hoinghi"), base, 30, 60
        )
        now = datetime.now(UTC)
        next_unit = 0
        try:
            async with db.write() as s:
                await import_units_csv(s, SYSTEM, bundled_units_csv())
                await import_units_csv(s, SYSTEM, bench_units_csv())
            for k, size in enumerate(self.rooms_wanted):
                # sites = size subscribers + 1 publisher for 1->N; the meeting key is its site count
                count = size
                units = [f"BENCH-{(next_unit + i) % BENCH_UNITS:03d}" for i in range(count)]
                next_unit += count
                async with db.write() as s:
                    scheduled = await create_meeting(
                        s,
                        SYSTEM,
                        MeetingCreate.model_validate(
                            {
                                "title": f"Bench media {k}: {count} sites",
                                "starts_at": now.isoformat(),
                                "ends_at": (now + timedelta(hours=3)).isoformat(),
                                "chair_unit": units[0],
                                "invited_units": units[1:],
                                "auto_admit": True,
                                "recording": self.recording,
                            }
                        ),
                    )
                    invitations = await list_invitations(s, scheduled.meeting.id, links)
                by_unit = {i.unit: i.join_url.rsplit("/", 1)[1] for i in invitations if i.join_url}
                self.meetings.setdefault(count, []).append([(u, by_unit[u]) for u in units])
        finally:
            await db.close()

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port("127.0.0.1")
        await self._seed()
        base = f"http://127.0.0.1:{self.port}"
        env = os.environ | {"HOINGHI_LOG_LEVEL": "WARNING"}
        cmd = [HOINGHI, "serve", "--data-dir", str(self.data_dir), "--port", str(self.port),
               "--public-url", base, "--media", "embedded", "--media-address", self.media_address,
               "--media-workers", str(self.media_workers), *self.extra_args]  # fmt: skip
        self.proc = spawn(cmd, self.log_dir / "hoinghi.log", env=env)
        await wait_http(base + "/readyz", self.proc, within=30)
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"

    async def stop(self) -> None:
        await self.close_room()
        stop_process(self.proc, timeout=10)

    def engine_pids(self) -> dict[str, int | list[int]]:
        assert self.proc is not None
        workers = descendants(self.proc.pid)
        return {"engine": workers, "signaling": [self.proc.pid]}

    # --- rooms and sites
    async def new_room(self, sites: list[str]) -> None:
        await self.close_room()
        pool = self.meetings.get(len(sites))
        if not pool:
            raise RuntimeError(f"no prepared meeting of {len(sites)} sites")
        units = pool.pop(0)
        self.answer_acks, self.speaker_changes = [], 0
        self.largest_answer = 0
        self.tokens = {site: token for site, (_unit, token) in zip(sites, units, strict=True)}
        self.chair_site = sites[0]

    async def _site(self, name: str) -> Site:
        site = self.sites.get(name)
        if site is not None:
            return site
        cm = Client.connect(self.ws_url)
        client = await cm.__aenter__()
        welcome = await client.join(self.tokens[name], display_name=name)
        if welcome.get("state") != "active":
            await client.wait_for("admitted", within=20)
        site = Site(name, client, welcome["participant"], cm=cm)
        site.task = asyncio.create_task(self._events(site))
        self.sites[name] = site
        return site

    async def _events(self, site: Site) -> None:
        loop = asyncio.get_running_loop()
        async for event in site.client.events():
            kind = event.get("type")
            if kind == "subscribe_offer":
                site.offers += 1
                site.pending_offer = event
                await self._answer(site)
            elif kind == "active_speaker":
                self.speaker_changes += 1
            elif kind == "video_pause" and event.get("source", "camera") == "camera":
                paused = bool(event.get("paused"))
                site.pauses.append((loop.time(), paused))
                if site.on_pause is not None:
                    site.on_pause(paused)
            elif kind == "error":
                site.errors.append(f"{event.get('code')}: {event.get('message')}")
            elif kind == "media_reset":
                site.errors.append(f"media_reset: {event.get('reason')}")

    async def _answer(self, site: Site) -> None:
        offer, handler = site.pending_offer, site.on_offer
        if offer is None or handler is None:
            return
        loop = asyncio.get_running_loop()
        site.pending_offer = None
        try:
            answer = await handler(str(offer["sdp"]))
            self.largest_answer = max(self.largest_answer, len(answer))
            t0 = loop.time()
            await site.client.request(
                "answer", offer_id=offer["offer_id"], sdp=answer, within=ANSWER_WAIT
            )
            self.answer_acks.append(loop.time() - t0)
            site.last_offer_done = loop.time()
            site.answered.set()
        except Exception as e:
            site.errors.append(f"answer: {e!r}")

    async def publish(
        self, site: str, offer: str, mids: dict[str, str], muted: bool, on_pause: PauseHandler
    ) -> str:
        s = await self._site(site)
        s.on_pause = on_pause
        if muted:
            await s.client.request("mute", audio=True)
        answer = await s.client.request("publish", sdp=offer, source="camera", within=20)
        return str(answer["sdp"])

    async def subscribe(
        self, site: str, feeds: list[Feed], on_offer: OfferHandler, publishes: bool = False
    ) -> None:
        s = await self._site(site)
        s.on_offer = on_offer
        await self._answer(s)
        if feeds and not publishes:
            # a receive-only site waits for its first offer; the engine sends none while
            # there is nothing to receive, so publishing sites and empty subscriptions don't
            await asyncio.wait_for(s.answered.wait(), 20)

    async def settle(self, within: float) -> float:
        """Wait until every offer is answered and none came for 2 s; the seconds it took."""
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        while loop.time() - t0 < within:
            busy = any(s.pending_offer is not None for s in self.sites.values())
            last = max((s.last_offer_done for s in self.sites.values()), default=0.0)
            if not busy and loop.time() - last > 2.0:
                break
            await asyncio.sleep(0.1)
        return loop.time() - t0

    async def set_roles(self, chair: str, floor: str) -> None:
        c, f = await self._site(chair), await self._site(floor)
        await c.client.request("floor", participant=f.participant)

    async def close_room(self) -> None:
        sites, self.sites = self.sites, {}
        chair = sites.get(self.chair_site)
        if chair is not None:
            with contextlib.suppress(Exception):
                await chair.client.request("end", within=5)
        for s in sites.values():
            if s.task is not None:
                s.task.cancel()
            with contextlib.suppress(Exception):
                await s.cm.__aexit__(None, None, None)

    def diagnostics(self) -> dict[str, Any]:
        """What the sites saw besides media: protocol errors, offers, pauses."""
        sites = list(self.sites.values())
        if not sites:
            return {}
        offers = [s.offers for s in sites]
        return {
            "errors": [f"{s.name}: {e}" for s in sites for e in s.errors][:20],
            "subscribe_offers_per_site": [min(offers), max(offers)],
            "video_pause_messages": sum(len(s.pauses) for s in sites),
            "sites_paused_at_end": sum(1 for s in sites if s.pauses and s.pauses[-1][1]),
            "answer_ack_s_p50_max": [
                round(statistics.median(self.answer_acks), 3),
                round(max(self.answer_acks), 3),
            ]
            if self.answer_acks
            else None,
            "active_speaker_messages": self.speaker_changes,
            "largest_answer_sdp": self.largest_answer,
        }
