"""The recorder: a hidden participant that writes what the SFU forwards to it.

It runs in a process of its own (``python -m recordings.recorder --fd N --dir
DIR --started T``), so its receive path never competes with signaling. The
server's recording service joins the room on its behalf with the ``recorder``
role (not a unit, not in attendance, receives every track) and relays the
protocol over a socket pair, framed like the media workers' IPC:

- parent -> recorder: ``{"op": "deliver", "text": <a server message>}``,
  ``{"op": "units", "units": {code: id}}``, ``{"op": "stop"}``;
- recorder -> parent: ``{"op": "send", "message": <a client message>}``
  (answers), ``{"op": "track", ...}`` when a track's first frame is written,
  ``{"op": "failed", "reason": ...}`` when the disk refuses a write,
  ``{"op": "stopped", "tracks": n}`` before it exits.

Packets are taken decrypted in the datagram callback (the SFU's ingest path:
receiver reports, NACK, RTX), put back into whole frames by aiortc's jitter
buffer (depacketized, never decoded) and go to a
:class:`~recordings.segments.TrackWriter` each. When the
socket closes without ``stop`` (the server died), the writers are closed, so
only what the muxer had not flushed is lost; the server finalises on start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.codecs import depayload
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket

from signaling.sfu import aiortc_glue as glue
from signaling.sfu import rtp_bytes as rb
from signaling.sfu.ingest import Ingest, spawn
from signaling.sfu.ipc import encode, read_frame

from .segments import TrackWriter

__all__ = ["Recorder", "main"]

log = logging.getLogger("hoinghi.recorder")


@dataclass(slots=True)
class _Track:
    id: str
    mid: str
    writer: TrackWriter


class _Frames:
    """Packets back into whole frames: depayload, then aiortc's jitter buffer (which
    asks for a keyframe when it gives up on a lost one). Never decoded."""

    def __init__(self, receiver: Any, sink: Callable[[bytes, int], None]) -> None:
        self.receiver = receiver
        self.sink = sink
        self.video = receiver.track.kind == "video"
        self.jitter = (
            JitterBuffer(capacity=512, is_video=True) if self.video else JitterBuffer(capacity=16)
        )
        self.codecs: dict[int, Any] = {}

    def deliver(self, data: bytes, view: rb.RtpView) -> None:
        codec = self.codecs.get(view.payload_type)
        if codec is None:
            codec = glue.receiver_state(self.receiver).codecs.get(view.payload_type)
            if codec is None:
                return
            self.codecs[view.payload_type] = codec
        packet = RtpPacket.parse(data)
        try:
            packet._data = depayload(codec, packet.payload) if packet.payload else b""  # type: ignore[attr-defined]
        except ValueError:
            return
        pli, frame = self.jitter.add(packet)
        if pli:
            spawn(self.receiver._send_rtcp_pli(packet.ssrc))
        if frame is not None:
            self.sink(frame.data, frame.timestamp & 0xFFFFFFFF)


class Recorder:
    def __init__(self, directory: Path, started: float, send: Any) -> None:
        self.directory = directory
        # Arrival times on the monotonic clock (a wall-clock step must not shift tracks),
        # anchored to the recording's start, which the server gives in wall-clock time.
        self._zero = time.monotonic() - (time.time() - started)
        self.send = send
        self.units: dict[str, int] = {}
        self.people: dict[str, dict[str, Any]] = {}  # participant id -> roster entry
        self.offered: dict[str, dict[str, Any]] = {}  # mid -> {participant, source, kind}
        self.tracks: list[_Track] = []
        self.pc: RTCPeerConnection | None = None
        self.failed = False
        self.ingests: dict[Any, Ingest] = {}  # receiver -> its receive path
        self.sinks: dict[Any, Any] = {}  # receiver -> on_frame, once negotiated
        self._undo: Any = None

    # --- the protocol ----------------------------------------------------------------

    async def on_message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "welcome":
            for entry in message.get("room", {}).get("roster", []):
                self.people[entry["id"]] = entry
        elif kind == "participant_joined":
            entry = message["participant"]
            self.people[entry["id"]] = entry
        elif kind == "subscribe_offer":
            await self._answer(message)
        elif kind == "media_reset":
            await self._close_pc()  # new offers follow; their tracks get new files

    async def _answer(self, offer: dict[str, Any]) -> None:
        if self.pc is None:
            self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        for t in offer.get("tracks", []):
            self.offered[t["mid"]] = t
        pc = self.pc
        await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        for transceiver in pc.getTransceivers():
            if transceiver.receiver not in self.sinks:
                glue.stop_decoding(transceiver.receiver)
                self.sinks[transceiver.receiver] = self._sink(transceiver)
        await pc.setLocalDescription(await pc.createAnswer())
        if self._undo is None:
            self._undo = glue.install_sync_ingest(pc, self._on_rtp)
        self.send(
            {
                "op": "send",
                "message": {
                    "type": "answer",
                    "offer_id": offer["offer_id"],
                    "sdp": pc.localDescription.sdp,
                },
            }
        )

    def _on_rtp(self, data: bytes, dtls: Any) -> None:
        """Each decrypted RTP packet, in the datagram callback (no queue, no task)."""
        try:
            view = rb.parse(data)
        except ValueError:
            return
        receiver = dtls._rtp_router.route_rtp(view)
        ingest = self.ingests.get(receiver)
        if ingest is None:
            sink = self.sinks.get(receiver)
            if sink is None:
                return
            # No REMB from the recorder: it must never hold a publisher's bitrate down.
            frames = _Frames(receiver, sink)
            ingest = self.ingests[receiver] = Ingest(receiver, frames.deliver, frames.video, None)
        try:
            ingest.on_rtp(data, view)
        except ValueError:
            return  # a malformed RTX packet

    def _sink(self, transceiver: Any) -> Any:
        track: _Track | None = None

        def on_frame(data: bytes, timestamp: int) -> None:
            nonlocal track
            if self.failed:
                return
            if track is None:
                track = self._open(transceiver)
                if track is None:
                    return
            try:
                track.writer.write(data, timestamp, time.monotonic() - self._zero)
            except OSError as e:
                self._fail(f"cannot write {track.id}: {e.strerror or e}")

        return on_frame

    def _open(self, transceiver: Any) -> _Track | None:
        mid = transceiver.mid or ""
        offered = self.offered.get(mid)
        if offered is None:
            return None
        person = self.people.get(offered["participant"], {})
        unit_code = person.get("unit", "")
        identity = {
            "participant": offered["participant"],
            "unit_id": self.units.get(unit_code),
            "unit_code": unit_code,
            "unit_name": person.get("unit_name") or person.get("display_name", ""),
            "source": offered["source"],
        }
        track_id = f"t{len(self.tracks) + 1:02d}"
        try:
            writer = TrackWriter(self.directory, track_id, offered["kind"], identity=identity)
        except OSError as e:
            self._fail(f"cannot create {track_id}: {e.strerror or e}")
            return None
        track = _Track(track_id, mid, writer)
        self.tracks.append(track)
        self.send({"op": "track", "id": track_id, "kind": offered["kind"], **identity})
        return track

    def _fail(self, reason: str) -> None:
        if not self.failed:
            self.failed = True
            log.error("recording in %s failed: %s", self.directory, reason)
            self.send({"op": "failed", "reason": reason})

    async def _close_pc(self) -> None:
        pc, self.pc = self.pc, None
        if self._undo is not None:
            self._undo()
            self._undo = None
        self.ingests.clear()
        self.sinks.clear()
        if pc is not None:
            await pc.close()
        self.close_writers()

    def close_writers(self) -> None:
        for track in self.tracks:
            try:
                track.writer.close()
            except OSError as e:
                self._fail(f"cannot close {track.id}: {e.strerror or e}")

    async def stop(self) -> None:
        await self._close_pc()


async def serve(fd: int, directory: Path, started: float) -> int:
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_unix_connection(sock=sock)

    def send(message: dict[str, Any]) -> None:
        if not writer.is_closing():
            writer.write(encode(message))

    recorder = Recorder(directory, started, send)
    stopped = False
    try:
        while (frame := await read_frame(reader)) is not None:
            op = frame.get("op")
            if op == "deliver":
                try:
                    await recorder.on_message(json.loads(frame["text"]))
                except Exception:
                    log.exception("recorder: could not handle a message")
            elif op == "units":
                recorder.units = {str(k): int(v) for k, v in frame["units"].items()}
            elif op == "stop":
                stopped = True
                break
    finally:
        await recorder.stop()
        send({"op": "stopped", "tracks": len(recorder.tracks), "failed": recorder.failed})
        with contextlib.suppress(Exception):
            await writer.drain()
            writer.close()
    return 0 if stopped else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recordings.recorder")
    parser.add_argument("--fd", type=int, required=True, help="the socket to the server")
    parser.add_argument("--dir", type=Path, required=True, help="the recording's directory")
    parser.add_argument("--started", type=float, required=True, help="start, epoch seconds")
    parser.add_argument("--announce", default="", help="the address media announces")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s recorder %(levelname)s %(name)s: %(message)s"
    )
    if args.announce:
        glue.configure_network(glue.Network(announce=args.announce))
    glue.self_check()
    coroutine = serve(args.fd, args.dir, args.started)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


if __name__ == "__main__":
    raise SystemExit(main())
