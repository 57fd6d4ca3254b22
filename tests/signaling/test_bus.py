"""Room events reach the event bus (webhooks will consume them), in order."""

from __future__ import annotations

import asyncio

from signaling.bus import BusEvent, InProcessBus
from tests.signaling.conftest import CHAIR, SNV, schedule
from web.appkeys import BUS


async def collect(bus, into: list[BusEvent], ready: asyncio.Event) -> None:
    stream = bus.subscribe()
    ready.set()
    async for event in stream:
        into.append(event)


async def test_meeting_events_are_published(api):
    meeting = await schedule(api, recording=True)
    bus = api.client.app[BUS]
    events: list[BusEvent] = []
    ready = asyncio.Event()
    task = asyncio.create_task(collect(bus, events, ready))
    await ready.wait()
    await asyncio.sleep(0)
    try:
        async with meeting.client(CHAIR) as chair:
            async with meeting.client(SNV) as snv:
                await chair.wait_for("participant_joined")
                await snv.request("leave")
            await chair.wait_for("participant_left")
            await chair.request("recording", on=False)
            await chair.request("recording", on=True)
            await chair.request("end")
        for _ in range(50):
            if any(e.name == "room.ended" for e in events):
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
    names = [e.name for e in events]
    assert names == [
        "room.started",
        "recording.state",  # the meeting records: on when the room goes live
        "participant.joined",
        "participant.joined",
        "participant.left",
        "recording.state",
        "recording.state",
        "room.ended",
    ]
    joined = [e.data for e in events if e.name == "participant.joined"]
    assert [d["unit"] for d in joined] == [CHAIR, SNV]
    assert all(e.data["meeting_id"] == meeting.id for e in events)
    assert [e.data["on"] for e in events if e.name == "recording.state"] == [True, False, True]


async def test_a_slow_subscriber_loses_the_oldest_events_not_the_room():
    bus = InProcessBus()
    stream = bus.subscribe(max_backlog=3)
    first = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0)
    for i in range(10):
        bus.publish(BusEvent("participant.joined", {"n": i}))
    got = [await first] + [await stream.__anext__() for _ in range(2)]
    assert [e.data["n"] for e in got] == [7, 8, 9]
    await stream.aclose()
