"""Durable attendance across a crash: SIGKILL the server with three participants in a
meeting, start it again, and find every join recorded and every interval closed at
the last heartbeat."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlmodel import col, select

from conference.actors import SYSTEM
from conference.attendance import intervals
from conference.config import Config
from conference.invitations import list_invitations
from conference.keys import load_or_create_keyring
from conference.links import JoinLinks
from conference.meetings import create_meeting
from conference.models import AttendanceEvent, AttendanceKind, MeetingCreate, PresenceHeartbeat
from conference.tokens import TokenService
from signaling.client import Client
from tests.conftest import seed

HOINGHI = str(Path(sys.executable).with_name("hoinghi"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_ready(base: str, proc: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(150):
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
            try:
                async with http.get(f"{base}/readyz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError("server did not become ready")


def start_server(data_dir: Path, database_url: str, port: int) -> subprocess.Popen[bytes]:
    env = os.environ | {"HOINGHI_HEARTBEAT_SECONDS": "1", "HOINGHI_LOG_LEVEL": "WARNING"}
    return subprocess.Popen(
        [
            HOINGHI,
            "serve",
            "--data-dir",
            str(data_dir),
            "--database-url",
            database_url,
            "--port",
            str(port),
            "--public-url",
            f"http://127.0.0.1:{port}",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def test_sigkill_then_restart_closes_every_interval_at_the_last_heartbeat(
    database, database_url, tmp_path
):
    await seed(database)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = Config(data_dir=tmp_path, database_url=database_url, public_url=base)
    links = JoinLinks(TokenService(load_or_create_keyring(tmp_path), config.issuer), base, 30, 60)
    now = datetime.now(UTC)
    async with database.write() as s:
        scheduled = await create_meeting(
            s,
            SYSTEM,
            MeetingCreate.model_validate(
                {
                    "title": "Họp giao ban — thử mất điện",
                    "starts_at": now.isoformat(),
                    "ends_at": (now + timedelta(hours=1)).isoformat(),
                    "chair_unit": "QB",
                    "invited_units": ["QB-SNV", "QB-BOTRACH-TANTRACH"],
                    "auto_admit": True,
                }
            ),
        )
        invitations = await list_invitations(s, scheduled.meeting.id, links)
    tokens = [i.join_url.rsplit("/", 1)[1] for i in invitations]
    assert len(tokens) == 3

    server = start_server(tmp_path, database_url, port)
    restarted = None
    try:
        await wait_ready(base, server)
        clients = []
        for token in tokens:
            cm = Client.connect(f"ws://127.0.0.1:{port}/ws")
            client = await cm.__aenter__()
            clients.append((cm, client))
            await client.join(token)
        participants = {c.participant for _, c in clients}

        # Let at least two heartbeats land, then kill without any chance to clean up.
        await asyncio.sleep(2.5)
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
        killed_at = datetime.now(UTC)
        for cm, _ in clients:
            await cm.__aexit__(None, None, None)

        async with database.read() as s:
            events = (await s.exec(select(AttendanceEvent).order_by(col(AttendanceEvent.id)))).all()
            beats = {
                b.participant_session: b.at for b in (await s.exec(select(PresenceHeartbeat))).all()
            }
        assert {
            e.participant_session for e in events if e.kind is AttendanceKind.JOIN
        } == participants
        assert all(i.end is None for i in intervals(events))  # the crash left them open
        assert set(beats) == participants

        restarted = start_server(tmp_path, database_url, port)
        await wait_ready(base, restarted)

        async with database.read() as s:
            events = (await s.exec(select(AttendanceEvent).order_by(col(AttendanceEvent.id)))).all()
        closes = {e.participant_session: e for e in events if e.kind is AttendanceKind.CRASH_CLOSE}
        assert set(closes) == participants
        for pid, close in closes.items():
            assert close.at == beats[pid]
            assert close.client_info["crash"] is True
            assert close.at <= killed_at
        spans = intervals(events)
        assert len(spans) == 3
        assert all(span.end is not None and span.end >= span.start for span in spans)
        assert {span.closed_by for span in spans} == {AttendanceKind.CRASH_CLOSE}
        # Every join is still there exactly once: the restart wrote no second join.
        assert sum(e.kind is AttendanceKind.JOIN for e in events) == 3
    finally:
        for proc in (server, restarted):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    if restarted is not None and restarted.returncode not in (0, -signal.SIGTERM):
        pytest.fail(
            f"the restarted server exited with {restarted.returncode}: {restarted.stderr.read()!r}"
        )
