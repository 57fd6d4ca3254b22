"""``hoinghi join LINK``: join a meeting from the command line as a headless participant.

Prints one line per room event (``HH:MM:SS type {fields}``) and exits:
0 after ``--duration`` seconds (it leaves cleanly) or when the meeting ends,
3 when the join is refused (the line says why), 1 when the connection is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from datetime import datetime
from typing import Any, TextIO

from .client import Client, JoinRefused, join_link_parts

__all__ = ["EXIT_LOST", "EXIT_REFUSED", "run_join"]

EXIT_REFUSED = 3
EXIT_LOST = 1


def _line(out: TextIO, event: dict[str, Any]) -> None:
    kind = event.get("type", "?")
    fields = {k: v for k, v in event.items() if k not in {"type", "resume_token", "ice_servers"}}
    stamp = datetime.now().strftime("%H:%M:%S")
    out.write(f"{stamp} {kind} {json.dumps(fields, ensure_ascii=False, separators=(',', ':'))}\n")
    out.flush()


async def run_join(
    link: str, *, duration: float | None, display_name: str | None, out: TextIO = sys.stdout
) -> int:
    parts = join_link_parts(link)
    async with Client.connect(parts.ws_url) as client:
        try:
            welcome = await client.join(
                parts.token, display_name=display_name, client={"app": "hoinghi-join"}
            )
        except JoinRefused as e:
            out.write(f"refused {e.code}: {e.message}\n")
            return EXIT_REFUSED
        _line(out, welcome)

        async def follow() -> int:
            async for event in client.events():
                _line(out, event)
                if event.get("type") in {"ended", "removed", "denied"}:
                    return 0 if event["type"] == "ended" else EXIT_REFUSED
            return EXIT_LOST

        follower = asyncio.create_task(follow())
        try:
            if duration is None:
                return await follower
            done, _ = await asyncio.wait({follower}, timeout=duration)
            if done:
                return follower.result()
            with contextlib.suppress(Exception):
                await client.request("leave", within=5)
            out.write("left\n")
            return 0
        finally:
            follower.cancel()
