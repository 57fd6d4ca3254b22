"""The re-encoding baseline: an aiortc server that decodes each publisher's tracks and
re-sends them to every subscriber through aiortc's ``MediaRelay`` (decoded frames,
one VP8 encoder per subscriber at 1.5 Mbit/s, as aiortc does out of the box).

Run by ``bench.media`` in its own process (so its CPU is its own)::

    python -m bench.media_support.relay_server --host 10.77.0.1 --port 8099

JSON over HTTP on ``--host``:

- ``POST /publish`` ``{"site", "sdp"}`` -> ``{"sdp"}`` (the answer)
- ``POST /subscribe`` ``{"site", "feeds": [{"site", "kind"}]}`` -> ``{"sdp"}`` (an offer)
- ``POST /answer`` ``{"site", "sdp"}``
- ``POST /reset``: close every connection
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from aiohttp import web
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.codecs import vpx
from aiortc.contrib.media import MediaRelay

from .peers import announce_only, prefer, rtc_config

BITRATE = 1_500_000


class RelayServer:
    def __init__(self) -> None:
        self.relay = MediaRelay()
        self.tracks: dict[str, dict[str, MediaStreamTrack]] = {}
        self.publishers: dict[str, RTCPeerConnection] = {}
        self.subscribers: dict[str, RTCPeerConnection] = {}
        self.sinks: list[asyncio.Task[None]] = []

    async def publish(self, request: web.Request) -> web.Response:
        body = await request.json()
        site = body["site"]
        pc = RTCPeerConnection(rtc_config())
        self.publishers[site] = pc
        tracks = self.tracks.setdefault(site, {})
        # recvonly transceivers with codec preferences first, so the answer has VP8 only
        for kind in ("video", "audio"):
            prefer(pc.addTransceiver(kind, direction="recvonly"), kind)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            tracks[track.kind] = track

        await pc.setRemoteDescription(RTCSessionDescription(body["sdp"], "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return web.json_response({"sdp": pc.localDescription.sdp})

    async def subscribe(self, request: web.Request) -> web.Response:
        body = await request.json()
        pc = RTCPeerConnection(rtc_config())
        self.subscribers[body["site"]] = pc
        for feed in body["feeds"]:
            source = self.tracks[feed["site"]][feed["kind"]]
            # buffered=False: a subscriber that falls behind gets the latest frame, not a
            # growing queue (with a queue, memory and delay grow without bound)
            t = pc.addTransceiver(self.relay.subscribe(source, buffered=False), "sendonly")
            prefer(t, feed["kind"])
        await pc.setLocalDescription(await pc.createOffer())
        return web.json_response({"sdp": pc.localDescription.sdp})

    async def answer(self, request: web.Request) -> web.Response:
        body = await request.json()
        await self.subscribers[body["site"]].setRemoteDescription(
            RTCSessionDescription(body["sdp"], "answer")
        )
        return web.json_response({})

    async def reset(self, request: web.Request) -> web.Response:
        pcs = list(self.subscribers.values()) + list(self.publishers.values())
        self.subscribers.clear()
        self.publishers.clear()
        self.tracks.clear()
        for pc in pcs:
            with contextlib.suppress(Exception):
                await pc.close()
        self.relay = MediaRelay()
        return web.json_response({})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--media-address", default="127.0.0.1")
    args = ap.parse_args()
    announce_only(args.media_address)
    vpx.DEFAULT_BITRATE = vpx.MIN_BITRATE = vpx.MAX_BITRATE = BITRATE
    server = RelayServer()
    app = web.Application()
    app.router.add_post("/publish", server.publish)
    app.router.add_post("/subscribe", server.subscribe)
    app.router.add_post("/answer", server.answer)
    app.router.add_post("/reset", server.reset)

    async def ready(request: web.Request) -> web.Response:
        return web.json_response({"status": "ready"})

    app.router.add_get("/readyz", ready)
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
