"""A crash mid-recording: SIGKILL the whole server (``hoinghi demo``) while it
records, start it again on the same data directory, and find the recording
finalised from disk, marked interrupted, playable, missing at most 10 s."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import av

from signaling.client import Client, join_link_parts
from signaling.media_client import MediaSession
from signaling.testmedia import PatternVideo, ToneAudio

from .browser_support import DemoServer, run_demo_server
from .peers import until

RECORD_SECONDS = 14.0
MAX_LOSS = 10.0  # the bound; the segment writer flushes every second


def _password(server: DemoServer, username: str) -> str:
    for line in server.output:
        m = re.match(rf"^\s+{username}\s+(\S+)\s+\(", line)
        if m:
            return m.group(1)
    raise AssertionError(f"no password for {username} in the banner")


def _http(server: DemoServer, path: str, *, token: str | None = None, body: Any = None) -> Any:
    request = urllib.request.Request(server.base_url + path)  # noqa: S310 - loopback
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, data=data, timeout=10) as response:  # noqa: S310
        raw = response.read()
        return json.loads(raw) if response.headers.get_content_type() == "application/json" else raw


def _login(server: DemoServer, username: str) -> str:
    body = {"username": username, "password": _password(server, username)}
    return str(_http(server, "/api/auth/login", body=body)["access_token"])


async def _record_then_kill(server: DemoServer) -> float:
    """Two sites send media while the demo meeting records; SIGKILL; the kill's time."""
    sites = []
    units = [server.chair_unit, next(u for u, r in server.roles.items() if r == "participant")]
    for unit in units:
        link = server.link(unit)
        context = Client.connect(join_link_parts(link).ws_url)
        client = await context.__aenter__()
        await client.join(join_link_parts(link).token, client={"app": "test"})
        session = MediaSession(client, video=lambda: PatternVideo(320, 180), audio=ToneAudio)
        await session.start()
        sites.append((context, client, session))
    chair_session = sites[0][2]
    other = sites[1][1].participant
    await until(lambda: chair_session.received.count(other) >= 30, 30, "media flowing")
    await asyncio.sleep(RECORD_SECONDS)
    killed_at = time.time()
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(10)
    for context, _client, session in sites:
        await session.close()
        await context.__aexit__(None, None, None)
    return killed_at


def test_a_server_killed_mid_recording_leaves_a_playable_interrupted_recording(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    with run_demo_server(data_dir) as server:
        assert server.media, "the demo must run the media engine"
        killed_at = asyncio.run(_record_then_kill(server))
    # The server's children (media worker, recorder) go when their sockets close.
    with run_demo_server(data_dir) as server:
        token = _login(server, "vanthu")
        deadline = time.monotonic() + 30
        while True:
            items = _http(server, "/api/recordings", token=token)["items"]
            if items and items[0]["status"] != "recording":
                break
            assert time.monotonic() < deadline, items
            time.sleep(0.2)
        (rec,) = items
        assert rec["status"] == "interrupted"
        assert rec["failure"] == "the server stopped while recording"
        recorded = killed_at - datetime.fromisoformat(rec["started_at"]).timestamp()
        lost = recorded - rec["duration_seconds"]
        print(f"recorded {recorded:.1f} s before the kill, kept {rec['duration_seconds']:.1f} s")
        assert -0.5 <= lost <= MAX_LOSS, (recorded, rec)  # clocks differ by a few ms
        detail = _http(server, f"/api/recordings/{rec['id']}", token=token)
        videos = [f for f in detail["files"] if f["kind"] == "video"]
        audios = [f for f in detail["files"] if f["kind"] == "audio"]
        assert len(videos) == 2
        assert len(audios) == 2
        for f in videos:
            path = tmp_path / f["name"]
            path.write_bytes(_http(server, f["url"], token=token))
            frames = sum(1 for _ in av.open(str(path)).decode(video=0))  # plays to the end
            assert frames >= 30 * (f["duration"] - 1), (frames, f)
            assert f["duration"] >= RECORD_SECONDS - MAX_LOSS
