"""Signaling at size: N headless clients (no media) join one room over loopback.

For each N (default 50, 200, 1000) and each server, in one run:

- ``hoinghi``: the real server (``hoinghi serve``, SQLite) in its own process;
- ``bare``: a bare aiohttp WebSocket server in its own process that answers a
  join and relays a chat or a mute to every connection — the least any server
  can do.

It prints the join rate, the fan-out latency of two room broadcasts — a chat
(hoinghi stores it before sending) and a mute's ``participant_updated`` (nothing
stored) — from one participant until each of the N receives it (p50/p99/max
over all deliveries of ``--rounds`` broadcasts), the server's memory per idle
connection (RSS growth from the first participant to the N-th, over N-1), and
the ratio hoinghi/bare of each fan-out p99. Both servers are measured with the
same client process and code.

Usage::

    .venv/bin/python -m bench.signaling [--sizes 50,200,1000] [--rounds 20]

(Run as a module from the project root: as a script, bench/signaling.py would
shadow the signaling package.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import websockets
from aiohttp import WSMsgType, web

HOINGHI = str(Path(sys.executable).with_name("hoinghi"))
PROJECT_ROOT = Path(__file__).resolve().parent.parent
UNITS = [
    "QB-STTTT",
    "QB-SNV",
    "QB-STP",
    "QB-SKHDT",
    "QB-STC",
    "QB-SCT",
    "QB-SXD",
    "QB-DONGHOI",
    "QB-BADON",
    "QB-BOTRACH",
]


def raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


# --- the bare baseline server ------------------------------------------------------


def bare_server(port: int) -> None:
    """Answer ``join`` with ``welcome``; relay each ``chat`` and ``mute`` to every connection."""
    raise_fd_limit()
    sockets: set[web.WebSocketResponse] = set()

    async def handle(request: web.Request) -> web.WebSocketResponse:
        # The same transport settings as hoinghi's /ws: no permessage-deflate, pings every 20 s.
        ws = web.WebSocketResponse(compress=False, heartbeat=20.0, max_msg_size=64 * 1024)
        await ws.prepare(request)
        sockets.add(ws)
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    break
                data = json.loads(msg.data)
                if data.get("type") == "join":
                    await ws.send_str(
                        json.dumps(
                            {"type": "welcome", "id": data.get("id"), "participant": str(id(ws))}
                        )
                    )
                    continue
                if data.get("type") == "chat":
                    out = {"type": "chat", "text": data["text"]}
                elif data.get("type") == "mute":
                    out = {"type": "participant_updated", "participant": {"id": str(id(ws))}}
                else:
                    continue
                text = json.dumps(out, ensure_ascii=False)
                for other in list(sockets):
                    await other.send_str(text)
        finally:
            sockets.discard(ws)
        return ws

    app = web.Application()
    app.router.add_get("/ws", handle)
    app.router.add_get("/readyz", lambda r: web.json_response({"status": "ready"}))
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# --- servers under test --------------------------------------------------------------


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    ws_url: str
    tokens: list[str] = field(default_factory=list)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
            try:
                async with http.get(f"http://127.0.0.1:{port}/readyz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError("server not ready")


async def start_hoinghi(tmp: Path) -> Server:
    from conference.actors import SYSTEM
    from conference.db import Database
    from conference.demo import bundled_units_csv
    from conference.invitations import list_invitations
    from conference.keys import load_or_create_keyring
    from conference.links import JoinLinks
    from conference.meetings import create_meeting
    from conference.migrate import upgrade
    from conference.models import MeetingCreate
    from conference.tokens import TokenService
    from conference.units import import_units_csv

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    db = Database(f"sqlite+aiosqlite:///{tmp / 'hoinghi.db'}")
    await upgrade(db)
    links = JoinLinks(TokenService(load_or_create_keyring(tmp), "hoinghi"), base, 30, 60)
    now = datetime.now(UTC)
    async with db.write() as s:
        await import_units_csv(s, SYSTEM, bundled_units_csv())
        scheduled = await create_meeting(
            s,
            SYSTEM,
            MeetingCreate.model_validate(
                {
                    "title": "Họp giao ban toàn tỉnh (bench)",
                    "starts_at": now.isoformat(),
                    "ends_at": (now + timedelta(hours=2)).isoformat(),
                    "chair_unit": "QB",
                    "invited_units": UNITS,
                    "auto_admit": True,
                }
            ),
        )
        invitations = await list_invitations(s, scheduled.meeting.id, links)
    await db.close()
    tokens = [i.join_url.rsplit("/", 1)[1] for i in invitations if i.unit != "QB" and i.join_url]
    env = os.environ | {"HOINGHI_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen(
        [HOINGHI, "serve", "--data-dir", str(tmp), "--port", str(port), "--public-url", base],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    await wait_ready(port, proc)
    return Server("hoinghi", proc, f"ws://127.0.0.1:{port}/ws", tokens)


async def start_bare() -> Server:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.signaling", "--bare-server", str(port)],
        stdout=subprocess.DEVNULL,
        cwd=PROJECT_ROOT,
    )
    await wait_ready(port, proc)
    return Server("bare", proc, f"ws://127.0.0.1:{port}/ws", ["-"])


# --- the clients ---------------------------------------------------------------------


class Peer:
    """A lean client: it parses only what the measurement needs."""

    def __init__(self, ws: websockets.ClientConnection, results: dict[str, list[float]]) -> None:
        self.ws = ws
        self.results = results
        self.last_message = time.perf_counter()
        self.welcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.task = asyncio.create_task(self.read())

    async def read(self) -> None:
        try:
            async for raw in self.ws:
                now = time.perf_counter()
                self.last_message = now
                if not self.welcome.done() and '"welcome"' in raw:
                    self.welcome.set_result(json.loads(raw)["participant"])
                elif '"chat"' in raw and "bench-round-" in raw:
                    marker = json.loads(raw)["text"]
                    self.results.setdefault(marker, []).append(now)
                elif '"participant_updated"' in raw:
                    marker = json.loads(raw)["participant"]["id"]
                    self.results.setdefault(marker, []).append(now)
        except websockets.ConnectionClosed:
            pass


async def fan_out(
    peers: list[Peer], results: dict[str, list[float]], rounds: int, broadcast: str
) -> dict[str, float]:
    """``rounds`` broadcasts, each from another participant; latency to every receiver."""
    n = len(peers)
    latencies: list[float] = []
    completions: list[float] = []
    missing = 0
    for r in range(rounds):
        sender = peers[(r * 7 + (1 if broadcast == "mute" else 0)) % n]
        if broadcast == "chat":  # kept for the record: committed before it is sent
            marker = f"bench-round-{r}"
            message = {"type": "chat", "text": marker, "to": "all"}
        else:  # a roster change: nothing to store
            marker = sender.welcome.result()
            message = {"type": "mute", "audio": True}
        sent = time.perf_counter()
        await sender.ws.send(json.dumps(message))
        deadline = sent + 10
        while len(results.get(marker, [])) < n and time.perf_counter() < deadline:
            await asyncio.sleep(0.005)
        got = results.get(marker, [])
        missing += n - len(got)
        latencies += [(t - sent) * 1000 for t in got]
        if got:
            completions.append((max(got) - sent) * 1000)
        await asyncio.sleep(0.3)
    q = statistics.quantiles(latencies, n=100)
    return {
        "p50": statistics.median(latencies),
        "p99": q[98],
        "max": max(latencies),
        "complete_p50": statistics.median(completions),
        "missing": missing,
    }


async def run_size(server: Server, n: int, rounds: int) -> dict[str, Any]:
    results: dict[str, list[float]] = {}
    peers: list[Peer] = []
    sem = asyncio.Semaphore(50)

    async def join(i: int) -> None:
        async with sem:
            ws = await websockets.connect(server.ws_url, max_size=16 << 20, ping_interval=None)
            peer = Peer(ws, results)
            token = server.tokens[i % len(server.tokens)]
            await ws.send(json.dumps({"type": "join", "id": "j", "token": token, "protocol": 1}))
            await asyncio.wait_for(peer.welcome, 60)
            peers.append(peer)

    # The first participant opens the room (its owner, database connections, caches);
    # memory per connection is counted from there, so it is not that fixed cost over N.
    await join(0)
    await asyncio.sleep(0.5)
    rss_before = rss_kib(server.proc.pid)
    t0 = time.perf_counter()
    await asyncio.gather(*(join(i) for i in range(1, n)))
    join_seconds = time.perf_counter() - t0
    # Let the roster updates of the joins drain before measuring anything else.
    while time.perf_counter() - max(p.last_message for p in peers) < 1.0:
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)
    rss_after = rss_kib(server.proc.pid)
    chat = await fan_out(peers, results, rounds, "chat")
    mute = await fan_out(peers, results, rounds, "mute")
    for peer in peers:
        await peer.ws.close()
    for peer in peers:
        peer.task.cancel()
    return {
        "n": n,
        "join_rate": (n - 1) / join_seconds,
        "kib_per_conn": (rss_after - rss_before) / (n - 1),
        "chat": chat,
        "mute": mute,
    }


async def main(args: argparse.Namespace) -> int:
    raise_fd_limit()
    sizes = [int(s) for s in args.sizes.split(",")]
    table: dict[tuple[str, int], dict[str, Any]] = {}
    for n in sizes:
        for kind in ("hoinghi", "bare"):
            tmp = Path(tempfile.mkdtemp(prefix="hoinghi-bench-sig-"))
            server = await (start_hoinghi(tmp) if kind == "hoinghi" else start_bare())
            try:
                row = await run_size(server, n, args.rounds)
            finally:
                server.stop()
            table[(kind, n)] = row
            print(
                f"{kind:8} N={n:5d}  join {row['join_rate']:7.0f}/s  {row['kib_per_conn']:6.1f} KiB/conn",
                flush=True,
            )
            for name in ("chat", "mute"):
                f = row[name]
                print(
                    f"         {name:5} fan-out p50 {f['p50']:6.1f} ms  p99 {f['p99']:6.1f} ms"
                    f"  max {f['max']:6.1f} ms  (all delivered p50 {f['complete_p50']:6.1f} ms,"
                    f" missing {f['missing']:.0f})",
                    flush=True,
                )
    print(
        "\nchat: a chat message (hoinghi commits it to the database, then broadcasts);"
        "\nmute: a participant_updated broadcast (nothing stored)."
        "\ntargets: p99 < 50 ms at N = 1000, ratio to bare <= 1.5, < 100 KiB per connection"
    )
    print("N      kind   hoinghi p99   bare p99   ratio    KiB/conn")
    for n in sizes:
        h, b = table[("hoinghi", n)], table[("bare", n)]
        for name in ("chat", "mute"):
            hp, bp = h[name]["p99"], b[name]["p99"]
            print(
                f"{n:<6d} {name:5} {hp:9.1f} ms {bp:8.1f} ms  {hp / bp:5.2f}  {h['kib_per_conn']:9.1f}"
            )
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="50,200,1000")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--bare-server", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.bare_server:
        bare_server(arguments.bare_server)
        sys.exit(0)
    sys.exit(asyncio.run(main(arguments)))
