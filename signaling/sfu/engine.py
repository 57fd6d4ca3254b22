"""The embedded SFU as the rooms see it: a ``MediaEngine`` over media workers.

With ``workers=0`` every room's media runs in this process (tests, tiny
deployments). Otherwise each room is placed, when it first needs media, on the
worker process with the fewest rooms, and stays there. A worker that dies ends
only its rooms' media: their participants get ``media_reset`` and publish
again, the room re-sends its policy, and a new worker takes the slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import RequestRefused
from ..media import EventSink, MediaEvent, RoomPolicy
from .ipc import encode, read_frame

__all__ = ["EngineSettings", "SfuEngine"]

log = logging.getLogger(__name__)

CALL_TIMEOUT = 20.0
START_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class EngineSettings:
    workers: int = 1  # 0: in this process
    announce: str | None = None
    ports: str = ""  # "40000-40999", or any port
    last_n: int = 4
    log_level: str = "WARNING"


@dataclass(slots=True)
class _Worker:
    index: int
    process: asyncio.subprocess.Process | None = None
    writer: asyncio.StreamWriter | None = None
    pid: int | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    pending: dict[int, asyncio.Future[Any]] = field(default_factory=dict)
    meetings: set[int] = field(default_factory=set)
    load: dict[str, Any] = field(default_factory=dict)
    restarts: int = 0
    lost: asyncio.subprocess.Process | None = None  # the process whose loss was handled


class SfuEngine:
    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self._sink: EventSink | None = None
        self._hub: Any = None
        self._workers: list[_Worker] = []
        self._placement: dict[int, _Worker] = {}
        self._ids = itertools.count(1)
        self._server: asyncio.AbstractServer | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._socket = ""
        self._closing = False
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- lifecycle --------------------------------------------------------------------

    def attach(self, sink: EventSink) -> None:
        self._sink = sink

    def _emit(self, meeting_id: int, event: MediaEvent) -> None:
        if self._sink is not None:
            self._sink(meeting_id, event)

    async def start(self) -> None:
        if self.settings.workers == 0:
            from . import aiortc_glue as glue
            from .hub import MediaHub
            from .worker import parse_ports

            low, high = parse_ports(self.settings.ports)
            glue.configure_network(
                glue.Network(announce=self.settings.announce, port_min=low, port_max=high)
            )
            self._hub = MediaHub(self._emit, last_n=self.settings.last_n)
            return
        self._dir = tempfile.TemporaryDirectory(prefix="hoinghi-sfu-")
        self._socket = str(Path(self._dir.name) / "sfu.sock")
        self._server = await asyncio.start_unix_server(self._accept, path=self._socket)
        os.chmod(self._socket, 0o600)
        self._workers = [_Worker(i) for i in range(self.settings.workers)]
        for worker in self._workers:
            await self._spawn(worker)
        async with asyncio.timeout(START_TIMEOUT):
            await asyncio.gather(*(w.ready.wait() for w in self._workers))
        log.info("media: %d worker processes ready", len(self._workers))

    async def close(self) -> None:
        self._closing = True
        if self._hub is not None:
            await self._hub.close()
            return
        for worker in self._workers:
            if worker.writer is not None:
                worker.writer.close()
        for worker in self._workers:
            if worker.process is not None and worker.process.returncode is None:
                try:
                    async with asyncio.timeout(5):
                        await worker.process.wait()
                except TimeoutError:
                    worker.process.kill()
                    await worker.process.wait()
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._dir is not None:
            self._dir.cleanup()

    async def _spawn(self, worker: _Worker) -> None:
        s = self.settings
        worker.ready.clear()
        worker.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "signaling.sfu.worker",
            "--connect",
            self._socket,
            "--index",
            str(worker.index),
            "--announce",
            s.announce or "",
            "--ports",
            s.ports,
            "--last-n",
            str(s.last_n),
            "--log-level",
            s.log_level,
            stdin=asyncio.subprocess.DEVNULL,
        )
        self._spawn_task(self._watch(worker, worker.process))

    def _spawn_task(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hello = await read_frame(reader)
        if hello is None or "hello" not in hello:
            writer.close()
            return
        worker = self._workers[int(hello["hello"])]
        worker.writer = writer
        worker.pid = int(hello["pid"])
        worker.ready.set()
        try:
            while True:
                message = await read_frame(reader)
                if message is None:
                    break
                self._on_message(worker, message)
        except (ConnectionError, ValueError):
            log.warning("media worker %d: connection broken", worker.index)
        finally:
            if worker.writer is writer:
                worker.writer = None
                self._lost(worker, "the media worker's connection closed")
                if worker.process is not None and worker.process.returncode is None:
                    worker.process.kill()

    def _on_message(self, worker: _Worker, message: dict[str, Any]) -> None:
        if "event" in message:
            e = message["event"]
            self._emit(
                int(message["meeting"]),
                MediaEvent(e["type"], e.get("participant"), e.get("data") or {}),
            )
        elif "load" in message:
            worker.load = message["load"]
        elif "id" in message:
            future = worker.pending.pop(int(message["id"]), None)
            if future is None or future.done():
                return
            if "error" in message:
                err = message["error"]
                future.set_exception(RequestRefused(err["code"], err["message"]))
            else:
                future.set_result(message.get("ok"))

    async def _watch(self, worker: _Worker, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        if self._closing or worker.process is not process:
            return
        log.error("media worker %d (pid %s) exited with %s", worker.index, process.pid, code)
        self._lost(worker, f"the media worker exited ({code})")
        worker.restarts += 1
        await asyncio.sleep(min(0.2 * worker.restarts, 5.0))
        if not self._closing:
            await self._spawn(worker)

    def _lost(self, worker: _Worker, reason: str) -> None:
        """Fail what waited on a worker and tell its rooms their media is gone
        (once per process: its socket closing and its exit both report it)."""
        if worker.lost is worker.process:
            return
        worker.lost = worker.process
        failure = RequestRefused("media_unavailable", "the media server restarted; publish again")
        worker.ready.clear()  # calls wait for the new process (see _call)
        for future in worker.pending.values():
            if not future.done():
                future.set_exception(failure)
        worker.pending.clear()
        meetings, worker.meetings = worker.meetings, set()
        for meeting_id in meetings:
            if self._placement.get(meeting_id) is worker:
                del self._placement[meeting_id]
            self._emit(meeting_id, MediaEvent("media_reset", None, {"reason": reason}))

    # --- calls ------------------------------------------------------------------------

    def _place(self, meeting_id: int) -> _Worker:
        worker = self._placement.get(meeting_id)
        if worker is None:
            worker = min(self._workers, key=lambda w: (len(w.meetings), w.index))
            self._placement[meeting_id] = worker
            worker.meetings.add(meeting_id)
        return worker

    async def _call(self, meeting_id: int, op: str, args: dict[str, Any]) -> Any:
        if self._hub is not None:
            return await self._hub.call(meeting_id, op, args)
        if not self._workers:
            raise RequestRefused("media_unavailable", "the media engine is not running")
        worker = self._place(meeting_id)
        if not worker.ready.is_set():
            try:
                async with asyncio.timeout(START_TIMEOUT):
                    await worker.ready.wait()
            except TimeoutError:
                raise RequestRefused("media_unavailable", "the media worker is not up") from None
        writer = worker.writer
        if writer is None:
            raise RequestRefused("media_unavailable", "the media worker is restarting")
        rid = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        worker.pending[rid] = future
        writer.write(encode({"id": rid, "meeting": meeting_id, "op": op, "args": args}))
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                return await future
        except TimeoutError:
            worker.pending.pop(rid, None)
            raise RequestRefused("media_unavailable", "the media worker did not answer") from None

    async def set_policy(self, meeting_id: int, policy: RoomPolicy) -> None:
        await self._call(meeting_id, "set_policy", {"policy": policy.to_json()})

    async def publish(self, meeting_id: int, participant: str, source: str, offer_sdp: str) -> str:
        sdp: str = await self._call(
            meeting_id, "publish", {"participant": participant, "source": source, "sdp": offer_sdp}
        )
        return sdp

    async def unpublish(self, meeting_id: int, participant: str, source: str) -> None:
        await self._call(meeting_id, "unpublish", {"participant": participant, "source": source})

    async def subscriber_answer(
        self, meeting_id: int, participant: str, offer_id: str, answer_sdp: str
    ) -> None:
        await self._call(
            meeting_id,
            "answer",
            {"participant": participant, "offer_id": offer_id, "sdp": answer_sdp},
        )

    async def resubscribe(self, meeting_id: int, participant: str) -> None:
        await self._call(meeting_id, "resubscribe", {"participant": participant})

    async def refresh(self, meeting_id: int, participant: str) -> None:
        await self._call(meeting_id, "refresh", {"participant": participant})

    async def add_ice_candidate(
        self,
        meeting_id: int,
        participant: str,
        target: str,
        source: str,
        candidate: str,
        sdp_mid: str | None,
        sdp_mline_index: int | None,
    ) -> None:
        await self._call(
            meeting_id,
            "ice",
            {
                "participant": participant,
                "target": target,
                "source": source,
                "candidate": candidate,
                "sdp_mid": sdp_mid,
                "sdp_mline_index": sdp_mline_index,
            },
        )

    async def close_room(self, meeting_id: int) -> None:
        if self._hub is None and meeting_id not in self._placement:
            return
        with contextlib.suppress(RequestRefused):
            await self._call(meeting_id, "close_room", {})
        worker = self._placement.pop(meeting_id, None)
        if worker is not None:
            worker.meetings.discard(meeting_id)

    def stats(self) -> dict[str, Any]:
        if self._hub is not None:
            stats: dict[str, Any] = {"engine": "embedded", "workers": 0} | self._hub.stats()
            return stats
        return {
            "engine": "embedded",
            "workers": [
                {
                    "index": w.index,
                    "pid": w.pid,
                    "up": w.writer is not None,
                    "rooms": len(w.meetings),
                    "meetings": sorted(w.meetings),
                    "restarts": w.restarts,
                    "load": w.load,
                }
                for w in self._workers
            ],
        }

    def worker_pids(self) -> list[int | None]:
        return [w.pid for w in self._workers]
