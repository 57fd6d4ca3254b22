"""``hoinghi join LINK``: join a meeting from the command line as a headless participant.

Prints one line per room event (``HH:MM:SS type {fields}``) and exits:
0 after ``--duration`` seconds (it leaves cleanly) or when the meeting ends,
3 when the join is refused (the line says why), 1 when the connection is lost.

With ``--media test-pattern`` it publishes a test pattern and a tone (what a
receiver decodes can be checked frame by frame, `signaling.testmedia`); with
``--media FILE`` it publishes that file, looped; either way it receives what the
SFU sends and prints, before leaving, a ``media`` line of frames received per
participant. ``--bandwidth audio`` publishes and receives no video.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from .client import Client, JoinRefused, join_link_parts

__all__ = ["EXIT_LOST", "EXIT_REFUSED", "MediaSource", "media_source", "run_join"]

EXIT_REFUSED = 3
EXIT_LOST = 1
TERMINAL = {"ended", "removed", "denied"}


def _line(out: TextIO, kind: str, fields: dict[str, Any]) -> None:
    stamp = datetime.now().strftime("%H:%M:%S")
    out.write(f"{stamp} {kind} {json.dumps(fields, ensure_ascii=False, separators=(',', ':'))}\n")
    out.flush()


def _event_line(out: TextIO, event: dict[str, Any]) -> None:
    hidden = {"type", "resume_token", "ice_servers", "sdp"}
    _line(out, event.get("type", "?"), {k: v for k, v in event.items() if k not in hidden})


class MediaSource:
    """Track factories for `MediaSession`: new tracks each time it publishes."""

    def __init__(self, spec: str, *, video: bool) -> None:
        self.spec = spec
        self.with_video = video
        self._player: Any = None

    def audio(self) -> Any:
        if self.spec == "test-pattern":
            from .testmedia import ToneAudio

            return ToneAudio()
        from aiortc.contrib.media import MediaPlayer

        # A new player per publish: aiortc ends a track when its connection closes.
        self._player = MediaPlayer(self.spec, loop=True)
        return self._player.audio

    def video(self) -> Any:
        if self.spec == "test-pattern":
            from .testmedia import PatternVideo

            return PatternVideo(640, 360)
        if self._player is None:
            from aiortc.contrib.media import MediaPlayer

            self._player = MediaPlayer(self.spec, loop=True)
        return self._player.video

    def video_factory(self) -> Callable[[], Any] | None:
        return self.video if self.with_video else None


def media_source(spec: str, *, bandwidth: str) -> MediaSource | None:
    """``none``, ``test-pattern`` or a media file; ValueError for a file that is not there."""
    if spec == "none":
        return None
    if spec != "test-pattern" and not Path(spec).is_file():
        raise ValueError(f"--media {spec}: no such file (or use test-pattern or none)")
    return MediaSource(spec, video=bandwidth != "audio")


async def _queued(queue: asyncio.Queue[dict[str, Any] | None]) -> AsyncIterator[dict[str, Any]]:
    while (event := await queue.get()) is not None:
        yield event


async def run_join(
    link: str,
    *,
    duration: float | None,
    display_name: str | None,
    media: MediaSource | None = None,
    bandwidth: str = "full",
    out: TextIO = sys.stdout,
) -> int:
    parts = join_link_parts(link)
    async with Client.connect(parts.ws_url) as client:
        try:
            welcome = await client.join(
                parts.token,
                display_name=display_name,
                client={"app": "hoinghi-join", "bandwidth": bandwidth},
            )
        except JoinRefused as e:
            out.write(f"refused {e.code}: {e.message}\n")
            return EXIT_REFUSED
        _event_line(out, welcome)

        session: Any = None
        if media is None:
            events = client.events()
        else:
            from .media_client import MediaSession

            queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
            session = MediaSession(
                client, video=media.video_factory(), audio=media.audio, on_event=queue.put_nowait
            )
            await session.start()
            events = _queued(queue)

        async def follow() -> int:
            async for event in events:
                _event_line(out, event)
                if event.get("type") in TERMINAL:
                    return 0 if event["type"] == "ended" else EXIT_REFUSED
            return EXIT_LOST

        follower = asyncio.create_task(follow())
        try:
            if duration is None:
                return await follower
            done, _ = await asyncio.wait({follower}, timeout=duration)
            if done:
                return follower.result()
            if session is not None:
                _line(out, "media", _received(session))
            with contextlib.suppress(Exception):
                await client.request("leave", within=5)
            out.write("left\n")
            return 0
        finally:
            follower.cancel()
            if session is not None:
                await session.close()


def _received(session: Any) -> dict[str, Any]:
    """Frames received per participant and kind, e.g. ``{"p1": {"video": 290, ...}}``."""
    counts: dict[str, dict[str, int]] = {}
    for mid, n in session.received.frames.items():
        track = session.received.tracks.get(mid)
        if track is None:
            continue
        name = (
            track["participant"]
            if track["source"] == "camera"
            else f"{track['participant']} screen"
        )
        per = counts.setdefault(name, {})
        per[track["kind"]] = per.get(track["kind"], 0) + n
    return {"received": counts, "sent_video_paused": session.video_paused}
