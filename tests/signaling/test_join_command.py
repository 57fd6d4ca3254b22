"""``hoinghi join LINK`` as a real subprocess against the real server."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests.signaling.conftest import CHAIR, SNV

HOINGHI = str(Path(sys.executable).with_name("hoinghi"))


def link(meeting, unit: str) -> str:
    http = meeting.ws_url.replace("ws://", "http://").removesuffix("/ws")
    return f"{http}/join/{meeting.tokens[unit]}"


async def run(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        HOINGHI, "join", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_join_prints_events_and_leaves_after_the_duration(meeting):
    async with meeting.client(CHAIR) as chair:
        command = asyncio.create_task(
            run(link(meeting, SNV), "--duration", "2", "--display-name", "Phòng họp Sở Nội vụ")
        )
        joined = await chair.wait_for("participant_joined", within=15)
        assert joined["participant"]["display_name"] == "Phòng họp Sở Nội vụ"
        await chair.request("chat", text="Chào Sở Nội vụ", to="all")
        code, out, _ = await command
        left = await chair.wait_for("participant_left", within=5)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[1] == "welcome"
    assert any(" chat " in line and "Chào Sở Nội vụ" in line for line in lines)
    assert lines[-1] == "left"
    assert left["reason"] == "left"


async def test_refused_join_exits_non_zero_with_the_reason(meeting):
    await meeting.api.call(
        "POST", f"/api/meetings/{meeting.id}/invitations/{SNV}/revoke", expect=200
    )
    code, out, _ = await run(link(meeting, SNV), "--duration", "1")
    assert code == 3
    assert out.startswith("refused token_revoked")


async def test_a_link_that_is_not_a_join_link_is_a_usage_error():
    code, _, err = await run("https://hop.example/meetings/5", "--duration", "1")
    assert code == 2
    assert "not a join link" in err
