"""A media worker process: ``python -m signaling.sfu.worker --connect SOCKET ...``.

It connects to the signaling process's Unix socket, says hello, and serves
requests for the rooms it is given until that socket closes (then it exits:
a worker never outlives the server). Its event loop does nothing but media,
so a busy room never stalls signaling; uvloop runs it where installed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import resource
import time
from typing import Any

from ..errors import RequestRefused
from ..media import MediaEvent
from . import aiortc_glue as glue
from .hub import MediaHub
from .ipc import encode, read_frame

log = logging.getLogger("hoinghi.sfu.worker")

LOAD_INTERVAL = 2.0


def parse_ports(text: str) -> tuple[int, int]:
    """``"40000-40999"`` -> (40000, 40999); ``""`` -> (0, 0): any port."""
    if not text:
        return 0, 0
    low, _, high = text.partition("-")
    a, b = int(low), int(high or low)
    if not 1024 <= a <= b <= 65535:
        raise ValueError(f"a UDP port range within 1024-65535, low-high, not {text!r}")
    return a, b


async def serve(socket_path: str, index: int, last_n: int) -> None:
    reader, writer = await asyncio.open_unix_connection(socket_path)
    tasks: set[asyncio.Task[None]] = set()

    def send(message: dict[str, Any]) -> None:
        if not writer.is_closing():
            writer.write(encode(message))

    def emit(meeting_id: int, event: MediaEvent) -> None:
        send(
            {
                "event": {"type": event.type, "participant": event.participant, "data": event.data},
                "meeting": meeting_id,
            }
        )

    hub = MediaHub(emit, last_n=last_n)
    send({"hello": index, "pid": os.getpid()})

    async def handle(request: dict[str, Any]) -> None:
        rid = request.get("id")
        try:
            result = await hub.call(int(request["meeting"]), str(request["op"]), request["args"])
        except RequestRefused as refused:
            send({"id": rid, "error": {"code": refused.code, "message": refused.message}})
        except Exception:
            log.exception("media request %s failed", request.get("op"))
            send(
                {
                    "id": rid,
                    "error": {"code": "internal_error", "message": "the media worker failed"},
                }
            )
        else:
            send({"id": rid, "ok": result})

    async def report_load() -> None:
        last_cpu, last_at = time.process_time(), time.monotonic()
        while True:
            await asyncio.sleep(LOAD_INTERVAL)
            cpu, at = time.process_time(), time.monotonic()
            usage = resource.getrusage(resource.RUSAGE_SELF)
            send(
                {
                    "load": hub.stats()
                    | {
                        "cpu": round((cpu - last_cpu) / (at - last_at), 4),
                        "rss_kib": usage.ru_maxrss,
                    }
                }
            )
            last_cpu, last_at = cpu, at

    reporter = asyncio.create_task(report_load())
    try:
        while True:
            request = await read_frame(reader)
            if request is None:
                break
            task = asyncio.create_task(handle(request))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    finally:
        reporter.cancel()
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await hub.close()
        writer.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m signaling.sfu.worker")
    parser.add_argument("--connect", required=True, help="the signaling process's Unix socket")
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--announce", default="", help="the address ICE candidates carry")
    parser.add_argument("--ports", default="", help="UDP port range, e.g. 40000-40999")
    parser.add_argument("--last-n", type=int, default=4)
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format=f"%(asctime)s media-{args.index} %(levelname)s %(message)s",
    )
    low, high = parse_ports(args.ports)
    glue.configure_network(
        glue.Network(announce=args.announce or None, port_min=low, port_max=high)
    )
    glue.self_check()
    coroutine = serve(args.connect, args.index, args.last_n)
    try:
        import uvloop
    except ImportError:
        asyncio.run(coroutine)
    else:
        uvloop.run(coroutine)


if __name__ == "__main__":
    main()
