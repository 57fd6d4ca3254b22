"""Fixtures for signaling over real loopback WebSockets: a meeting that is live
now, its join tokens, and headless clients (signaling.client on websockets)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from signaling.client import Client

CHAIR, SNV, STTTT, TANTRACH = "QB", "QB-SNV", "QB-STTTT", "QB-BOTRACH-TANTRACH"


@dataclass
class Meeting:
    id: int
    tokens: dict[str, str]
    ws_url: str
    api: Any

    @contextlib.asynccontextmanager
    async def client(
        self, unit: str | None = None, *, join: bool = True, **kw: Any
    ) -> AsyncIterator[Client]:
        async with Client.connect(self.ws_url) as client:
            if join and unit is not None:
                await client.join(self.tokens[unit], **kw)
            yield client


async def schedule(
    api: Any, *, starts_in: timedelta = timedelta(0), hours: float = 1, **kw: Any
) -> Meeting:
    start = datetime.now(UTC) + starts_in
    body = {
        "title": "Họp trực tuyến thử nghiệm",
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=hours)).isoformat(),
        "chair_unit": CHAIR,
        "invited_units": [SNV, STTTT, TANTRACH],
        "auto_admit": True,
    } | kw
    created = await api.call("POST", "/api/meetings", json=body, expect=201)
    mid = created["meeting"]["id"]
    invitations = await api.call("GET", f"/api/meetings/{mid}/invitations", expect=200)
    tokens = {i["unit"]: i["join_url"].rsplit("/", 1)[1] for i in invitations["invitations"]}
    server = api.client.server
    return Meeting(mid, tokens, f"ws://{server.host}:{server.port}/ws", api)


@pytest.fixture
async def meeting(api: Any) -> Meeting:
    """Live now, auto-admit on: invited units enter without the lobby."""
    return await schedule(api)


@pytest.fixture
async def lobby_meeting(api: Any) -> Meeting:
    """Live now, auto-admit off: invited units wait for the chair."""
    return await schedule(api, auto_admit=False)
