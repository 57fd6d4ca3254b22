"""The systems under test, behind one small interface, and process helpers.

A system takes a publisher's offer and answers it; for a subscriber it makes an
offer (the server offers, as in hoinghi's protocol) and calls the subscriber's
handler for the answer, again on every renegotiation. ``engine_pids`` names the
processes whose CPU is the engine's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from .peers import sdp_mids

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Feed:
    site: str
    kind: str  # "video" | "audio"


OfferHandler = Callable[[str], Awaitable[str]]
PauseHandler = Callable[[bool], None]


# --- processes ---------------------------------------------------------------------


def _die_with_parent() -> None:
    """preexec_fn: the child gets SIGKILL when the bench dies, whatever the way."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def spawn(cmd: list[str], log: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent, **kwargs
        )


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 5.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU seconds used by everything on the machine (all cores; /proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(raw[raw.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        for c in children.get(p, []):
            out.append(c)
            todo.append(c)
    return out


class CpuMeter:
    """CPU % of one core of the given processes (summed per label) over a window."""

    def __init__(self, pids: dict[str, int | list[int]]) -> None:
        self.pids = {k: [p] if isinstance(p, int) else list(p) for k, p in pids.items()}
        self.t0 = time.monotonic()
        self.c0 = {k: [self._read(p) for p in ps] for k, ps in self.pids.items()}
        self.self0 = os.times()
        self.machine0 = machine_busy_seconds()

    @staticmethod
    def _read(pid: int) -> float:
        try:
            return cpu_seconds(pid)
        except OSError:
            return float("nan")

    def stop(self) -> dict[str, float]:
        wall = time.monotonic() - self.t0
        out: dict[str, float] = {}
        for k, ps in self.pids.items():
            used = sum(self._read(p) - c for p, c in zip(ps, self.c0[k], strict=True))
            out[k] = round(100 * used / wall, 2)
        t = os.times()
        out["harness"] = round(
            100 * ((t.user - self.self0.user) + (t.system - self.self0.system)) / wall, 1
        )
        out["machine"] = round(100 * (machine_busy_seconds() - self.machine0) / wall, 1)
        return out


async def wait_http(url: str, proc: subprocess.Popen[bytes], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
            try:
                async with http.get(url) as r:
                    if r.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{url} not ready")


# --- the interface -------------------------------------------------------------------


class System:
    name = "?"
    offers_on_join = False  # the server offers a receiving connection to every site that joins
    log_dir: Path

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    def engine_pids(self) -> dict[str, int | list[int]]:
        raise NotImplementedError

    async def new_room(self, sites: list[str]) -> None:
        """A fresh room for the next scenario (``sites`` may join it)."""

    async def publish(
        self, site: str, offer: str, mids: dict[str, str], muted: bool, on_pause: PauseHandler
    ) -> str:
        raise NotImplementedError

    async def subscribe(
        self, site: str, feeds: list[Feed], on_offer: OfferHandler, publishes: bool = False
    ) -> None:
        raise NotImplementedError

    async def set_roles(self, chair: str, floor: str) -> None:
        """Meeting roles, where the system has them."""

    async def settle(self, within: float) -> float:
        """Wait until the system stopped renegotiating; the seconds it took."""
        return 0.0

    async def close_room(self) -> None:
        raise NotImplementedError

    def diagnostics(self) -> dict[str, Any]:
        """Anything worth reporting about the current room besides media."""
        return {}


# --- the re-encoding baseline ----------------------------------------------------------


class Reencode(System):
    name = "reencode"

    def __init__(self, host: str, media_address: str, log_dir: Path) -> None:
        self.host = host
        self.media_address = media_address
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.http: aiohttp.ClientSession | None = None
        self.base = ""

    async def start(self) -> None:
        port = free_port(self.host)
        self.base = f"http://{self.host}:{port}"
        self.proc = spawn(
            [
                sys.executable,
                "-m",
                "bench.media_support.relay_server",
                "--host",
                self.host,
                "--port",
                str(port),
                "--media-address",
                self.media_address,
            ],
            self.log_dir / "reencode.log",
            cwd=PROJECT_ROOT,
        )
        await wait_http(self.base + "/readyz", self.proc)
        self.http = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.close()
        stop_process(self.proc)

    def engine_pids(self) -> dict[str, int | list[int]]:
        assert self.proc is not None
        return {"engine": self.proc.pid}

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        assert self.http is not None
        async with self.http.post(self.base + path, json=body) as r:
            r.raise_for_status()
            data: dict[str, Any] = await r.json()
            return data

    async def publish(
        self, site: str, offer: str, mids: dict[str, str], muted: bool, on_pause: PauseHandler
    ) -> str:
        return str((await self._post("/publish", {"site": site, "sdp": offer}))["sdp"])

    async def subscribe(
        self, site: str, feeds: list[Feed], on_offer: OfferHandler, publishes: bool = False
    ) -> None:
        body = {"site": site, "feeds": [{"site": f.site, "kind": f.kind} for f in feeds]}
        offer = (await self._post("/subscribe", body))["sdp"]
        answer = await on_offer(offer)
        await self._post("/answer", {"site": site, "sdp": answer})

    async def close_room(self) -> None:
        await self._post("/reset", {})


# --- Janus -------------------------------------------------------------------------

JANUS_LIBS = Path("/usr/lib/x86_64-linux-gnu/janus")
ADMIN_KEY = "bench-admin-key"


def janus_config(folder: Path, address: str, interface: str, port: int, event_loops: int) -> Path:
    """A config folder with the core, the HTTP transport and VideoRoom only (no demo rooms)."""
    folder.mkdir(parents=True, exist_ok=True)
    plugins = sorted(
        p.name
        for p in (JANUS_LIBS / "plugins").glob("libjanus_*.so")
        if p.name != "libjanus_videoroom.so"
    )
    transports = sorted(
        p.name
        for p in (JANUS_LIBS / "transports").glob("libjanus_*.so")
        if p.name != "libjanus_http.so"
    )
    loggers = sorted(p.name for p in (JANUS_LIBS / "loggers").glob("libjanus_*.so"))
    events = sorted(p.name for p in (JANUS_LIBS / "events").glob("libjanus_*.so"))
    loops = f"\n\tevent_loops = {event_loops}" if event_loops else ""
    (folder / "janus.jcfg").write_text(
        f"""general: {{
\tconfigs_folder = "{folder}"
\tplugins_folder = "{JANUS_LIBS / "plugins"}"
\ttransports_folder = "{JANUS_LIBS / "transports"}"
\tevents_folder = "{JANUS_LIBS / "events"}"
\tloggers_folder = "{JANUS_LIBS / "loggers"}"
\tdebug_level = 3
\tinterface = "{address}"
\tsession_timeout = 120{loops}
}}
certificates: {{
}}
media: {{
\tipv6 = false
\trtp_port_range = "20000-40000"
}}
nat: {{
\tnice_debug = false
\tice_enforce_list = "{interface}"
}}
plugins: {{
\tdisable = "{",".join(plugins)}"
}}
transports: {{
\tdisable = "{",".join(transports)}"
}}
loggers: {{
\tdisable = "{",".join(loggers)}"
}}
events: {{
\tbroadcast = false
\tdisable = "{",".join(events)}"
}}
"""
    )
    (folder / "janus.transport.http.jcfg").write_text(
        f"""general: {{
\tjson = "plain"
\tbase_path = "/janus"
\thttp = true
\tport = {port}
\tip = "{address}"
\thttps = false
}}
admin: {{
\tadmin_http = false
\tadmin_https = false
}}
cors: {{
}}
"""
    )
    (folder / "janus.plugin.videoroom.jcfg").write_text(
        f"""general: {{
\tadmin_key = "{ADMIN_KEY}"
\tlock_rtp_forward = true
}}
"""
    )
    return folder / "janus.jcfg"


class JanusError(RuntimeError):
    pass


class Janus(System):
    """Debian's Janus VideoRoom over its HTTP API (one session, long-polled events)."""

    name = "janus"

    def __init__(self, address: str, interface: str, log_dir: Path, event_loops: int = 0) -> None:
        self.address = address
        self.interface = interface
        self.log_dir = log_dir
        self.event_loops = event_loops
        self.proc: subprocess.Popen[bytes] | None = None
        self.http: aiohttp.ClientSession | None = None
        self.base = ""
        self.session = 0
        self.poller: asyncio.Task[None] | None = None
        self.waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.tx = itertools.count(1)
        self.rooms = itertools.count(1000)
        self.room = 0
        self.feeds: dict[str, int] = {}
        self.mids: dict[str, dict[str, str]] = {}
        self.handles: list[int] = []
        self.conf_dir = Path(tempfile.mkdtemp(prefix="bench-janus-"))

    async def start(self) -> None:
        if shutil.which("janus") is None:
            raise RuntimeError("janus is not installed (apt-get install -y janus)")
        port = free_port(self.address)
        conf = janus_config(self.conf_dir, self.address, self.interface, port, self.event_loops)
        self.base = f"http://{self.address}:{port}/janus"
        self.proc = spawn(
            ["janus", "-C", str(conf), "-F", str(self.conf_dir), "-N", "-o",
             "-L", str(self.log_dir / "janus.log")],
            self.log_dir / "janus.stdout",
        )  # fmt: skip
        await wait_http(self.base + "/info", self.proc)
        self.http = aiohttp.ClientSession()
        created = await self._request("", {"janus": "create"})
        self.session = int(created["data"]["id"])
        self.poller = asyncio.create_task(self._poll())

    async def stop(self) -> None:
        if self.poller is not None:
            self.poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.poller
        if self.http is not None:
            with contextlib.suppress(Exception):
                await self._request(f"/{self.session}", {"janus": "destroy"})
            await self.http.close()
        stop_process(self.proc)
        shutil.rmtree(self.conf_dir, ignore_errors=True)

    def engine_pids(self) -> dict[str, int | list[int]]:
        assert self.proc is not None
        return {"engine": self.proc.pid}

    async def _request(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        assert self.http is not None
        body = {**body, "transaction": f"t{next(self.tx)}"}
        async with self.http.post(self.base + path, json=body) as r:
            data: dict[str, Any] = await r.json(content_type=None)
        if data.get("janus") == "error":
            raise JanusError(str(data.get("error")))
        return data

    async def _poll(self) -> None:
        assert self.http is not None
        url = f"{self.base}/{self.session}?maxev=50"
        while True:
            try:
                async with self.http.get(url, timeout=aiohttp.ClientTimeout(total=40)) as r:
                    data = await r.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError):
                await asyncio.sleep(0.2)
                continue
            for event in data if isinstance(data, list) else [data]:
                waiter = self.waiters.pop(str(event.get("transaction")), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(event)

    async def _message(
        self, handle: int, body: dict[str, Any], jsep: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """A plugin request whose answer comes as an event (join, publish, start)."""
        assert self.http is not None
        tx = f"m{next(self.tx)}"
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiters[tx] = waiter
        msg: dict[str, Any] = {"janus": "message", "body": body, "transaction": tx}
        if jsep is not None:
            msg["jsep"] = jsep
        async with self.http.post(f"{self.base}/{self.session}/{handle}", json=msg) as r:
            ack = await r.json(content_type=None)
        if ack.get("janus") == "error":
            self.waiters.pop(tx, None)
            raise JanusError(str(ack.get("error")))
        if ack.get("janus") == "success":  # answered synchronously
            self.waiters.pop(tx, None)
            return ack
        event = await asyncio.wait_for(waiter, 20)
        data = event.get("plugindata", {}).get("data", {})
        if "error" in data:
            raise JanusError(f"{data.get('error_code')}: {data['error']}")
        return event

    async def _attach(self) -> int:
        data = await self._request(
            f"/{self.session}", {"janus": "attach", "plugin": "janus.plugin.videoroom"}
        )
        handle = int(data["data"]["id"])
        self.handles.append(handle)
        return handle

    async def new_room(self, sites: list[str]) -> None:
        self.room = next(self.rooms)
        self.feeds = {s: i + 1 for i, s in enumerate(sites)}
        self.mids = {}
        handle = await self._attach()
        await self._message(
            handle,
            {
                "request": "create",
                "room": self.room,
                "admin_key": ADMIN_KEY,
                "publishers": max(64, len(sites) + 1),
                "bitrate": 0,
                "fir_freq": 0,
                "videocodec": "vp8",
                "audiocodec": "opus",
                "audiolevel_ext": True,
                "notify_joining": False,
            },
        )
        self.room_handle = handle

    async def publish(
        self, site: str, offer: str, mids: dict[str, str], muted: bool, on_pause: PauseHandler
    ) -> str:
        handle = await self._attach()
        await self._message(
            handle,
            {"request": "join", "ptype": "publisher", "room": self.room, "id": self.feeds[site]},
        )
        event = await self._message(
            handle,
            {"request": "publish", "audio": True, "video": True},
            {"type": "offer", "sdp": offer},
        )
        self.mids[site] = mids or sdp_mids(offer)
        return str(event["jsep"]["sdp"])

    async def subscribe(
        self, site: str, feeds: list[Feed], on_offer: OfferHandler, publishes: bool = False
    ) -> None:
        handle = await self._attach()
        streams = [{"feed": self.feeds[f.site], "mid": self.mids[f.site][f.kind]} for f in feeds]
        event = await self._message(
            handle,
            {"request": "join", "ptype": "subscriber", "room": self.room, "streams": streams},
        )
        answer = await on_offer(str(event["jsep"]["sdp"]))
        await self._message(
            handle, {"request": "start", "room": self.room}, {"type": "answer", "sdp": answer}
        )

    async def close_room(self) -> None:
        handles, self.handles = self.handles, []
        for handle in handles:
            with contextlib.suppress(Exception):
                await self._request(f"/{self.session}/{handle}", {"janus": "detach"})
