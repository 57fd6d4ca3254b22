"""Media forwarding, side by side: hoinghi's embedded SFU, a re-encoding baseline
(aiortc ``MediaRelay`` over decoded frames) and Debian's Janus VideoRoom, with the
same aiortc publishers and subscribers, in one run.

Scenarios, each system in turn:

- 1 publisher (640x360 30 fps VP8 ~1.5 Mbit/s + Opus) to N subscribers
  (default N = 1, 4, 8, 16, 32): engine CPU per process, fitted per outgoing
  stream (slope over N) and per incoming stream (intercept), subscriber frame
  rate, glass-to-glass latency;
- a province meeting of 30 sites: every site publishes video; chair, floor and one
  more are unmuted, 27 muted sites send no audio packets; every site receives the
  unmuted audio and 4 videos (Last-N). hoinghi decides Last-N itself and tells
  publishers nobody watches to pause (``video_pause``); Janus gets the same plan
  from the bench (each site subscribes to chair, floor, the third speaker and one
  more site; publishers nobody watches stop sending).

So that the harness fits on a 2-core machine: publishers replay media encoded once
(aiortc packs pre-encoded packets, see ``media_support/clip.py``), most subscribers
count frames from RTP headers without decrypting (``--decoders`` per scenario
decode). Glass-to-glass is from the moment a frame is due at the publisher (its
capture tick) to the moment a decoding subscriber's track returns it; each
picture carries its own frame index. A ``direct`` reference (publisher straight to
a decoding subscriber, no server) gives the harness's own share, so
"SFU-added" = system - direct.

The clip has a keyframe every second: an SFU cannot get a keyframe on demand from
a publisher that replays pre-encoded media, so new subscribers wait up to 1 s.

Everything runs inside a network namespace the bench makes (it re-executes itself
under ``unshare -n``; root needed) with a local-only interface (``ifb``)
``10.77.0.1/24``: Janus never puts media on loopback, and nothing leaves the
namespace.

Usage (from the project root)::

    .venv/bin/python -m bench.media [--quick] [--sizes 1,4,8,16,32] [--systems direct,reencode,janus,hoinghi]

Results: a table on stdout, JSON in var/bench/media-<date>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
NS_ENV = "HOINGHI_BENCH_MEDIA_NS"
SYSTEMS = ("direct", "reencode", "janus", "hoinghi")

log = logging.getLogger("bench.media")


# --- the namespace -------------------------------------------------------------------


def reexec_in_namespace(args: argparse.Namespace) -> int:
    """Run this bench again inside ``unshare -n`` with a local-only interface."""
    if os.geteuid() != 0:
        print(
            "bench.media needs root: it runs inside a network namespace of its own "
            "(unshare -n) so that Janus and the peers have an address that is not loopback "
            "and nothing leaves the machine.",
            file=sys.stderr,
        )
        return 2
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            print(f"bench.media needs `{tool}` (util-linux / iproute2)", file=sys.stderr)
            return 2
    iface, addr = args.interface, args.address
    script = (
        "set -e; ip link set lo up; "
        f"ip link add {iface} type dummy 2>/dev/null || ip link add {iface} type ifb; "
        f"ip addr add {addr}/24 dev {iface}; ip link set {iface} up; "
        'exec "$@"'
    )
    unshare = shutil.which("unshare") or "unshare"
    cmd = [unshare, "-n", "sh", "-c", script, "sh", sys.executable, "-m", "bench.media"]
    env = os.environ | {NS_ENV: "1"}
    os.chdir(PROJECT_ROOT)
    os.execve(unshare, [*cmd, *sys.argv[1:]], env)  # noqa: S606
    return 0  # not reached


# --- scenarios -----------------------------------------------------------------------


class Context:
    def __init__(self, args: argparse.Namespace, clip: Any, schedule: Any) -> None:
        self.args = args
        self.clip = clip
        self.schedule = schedule


async def wait_connected(pcs: list[Any], within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if all(pc.connectionState == "connected" for pc in pcs):
            return True
        await asyncio.sleep(0.05)
    return False


async def in_chunks(calls: list[Callable[[], Awaitable[None]]], size: int) -> None:
    for i in range(0, len(calls), size):
        await asyncio.gather(*(c() for c in calls[i : i + size]))


async def wait_first_frames(subs: list[Any], within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and any(s.first_frame is None for s in subs):
        await asyncio.sleep(0.05)


async def idle_cpu(system: Any, seconds: float = 1.0) -> float:
    """The engine's CPU with no peers (rooms left over from earlier scenarios show here)."""
    from bench.media_support.systems import CpuMeter

    meter = CpuMeter(system.engine_pids())
    await asyncio.sleep(seconds)
    return meter.stop().get("engine", float("nan"))


async def measure(ctx: Context, system: Any, subs: list[Any]) -> dict[str, Any]:
    from bench.media_support.peers import DecodeErrors
    from bench.media_support.systems import CpuMeter

    await asyncio.sleep(ctx.args.warmup)
    meter = CpuMeter(system.engine_pids() if system is not None else {})
    errors0 = DecodeErrors.count
    for s in subs:
        s.start_window()
    t0 = time.monotonic()
    await asyncio.sleep(ctx.args.seconds)
    cpu = meter.stop()
    seconds = time.monotonic() - t0
    windows = {s.name: s.window(seconds) for s in subs}
    return {"cpu": cpu, "windows": windows, "decode_errors": DecodeErrors.count - errors0}


def summarize_subs(windows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from bench.media_support.peers import latency_summary

    fps = [f for w in windows.values() for f in w["video_fps"]]
    lat = [x for w in windows.values() if w["decode"] for x in w["latencies"]]
    return {
        "fps_min": min(fps) if fps else 0.0,
        "fps_mean": round(statistics.mean(fps), 2) if fps else 0.0,
        "video_streams": len(fps),
        "g2g_ms": latency_summary(lat),
        "missing_frames": sum(w.get("missing_frames", 0) for w in windows.values()),
        "unreadable_frames": sum(w.get("unreadable_frames", 0) for w in windows.values()),
        "lost_packets": sum(w.get("lost_packets", 0) for w in windows.values()),
    }


async def run_direct(ctx: Context) -> dict[str, Any]:
    """Publisher straight to a decoding subscriber (no server): the harness's own latency."""
    from bench.media_support.peers import Publisher, Subscriber

    pairs = []
    try:
        for i in range(max(1, ctx.args.decoders)):
            pub = Publisher(f"direct-pub{i}", ctx.clip, ctx.schedule)
            sub = Subscriber(f"direct-sub{i}", True, ctx.schedule)
            pairs.append((pub, sub))
            await pub.accept(await sub.on_offer(await pub.offer()))
        await wait_first_frames([s for _, s in pairs], 15)
        m = await measure(ctx, None, [s for _, s in pairs])
    finally:
        for pub, sub in pairs:
            await sub.close()
            await pub.close()
    return {"system": "direct", "n": len(pairs), **summarize_subs(m["windows"]),
            "decode_errors": m["decode_errors"], "harness_cpu": m["cpu"]["harness"]}  # fmt: skip


async def run_one_to_n(ctx: Context, system: Any, n: int) -> dict[str, Any]:
    from bench.media_support.peers import Publisher, Subscriber
    from bench.media_support.systems import Feed

    names = [f"sub{i:02d}" for i in range(n)]
    await system.new_room(["pub", *names])
    idle = await idle_cpu(system)
    pub = Publisher("pub", ctx.clip, ctx.schedule)
    subs = [Subscriber(name, i < ctx.args.decoders, ctx.schedule) for i, name in enumerate(names)]
    extra: list[Any] = []
    try:
        offer = await pub.offer()
        await pub.accept(await system.publish("pub", offer, pub.mids, False, pub.video.set_paused))
        if system.offers_on_join:  # the publisher's own receiving connection (nothing on it)
            own = Subscriber("pub-recv", False, ctx.schedule)
            extra.append(own)
            await system.subscribe("pub", [], own.on_offer)
        if not await wait_connected([pub.pc], 15):
            raise RuntimeError(f"{system.name}: publisher not connected")
        feeds = [Feed("pub", "video"), Feed("pub", "audio")]
        t_sub = time.monotonic()
        await in_chunks([lambda s=s: system.subscribe(s.name, feeds, s.on_offer) for s in subs], 8)
        await wait_first_frames(subs, 20)
        first = [round(s.first_frame - t_sub, 2) if s.first_frame else None for s in subs]
        m = await measure(ctx, system, subs)
        diag = system.diagnostics()
    finally:
        for s in subs + extra:
            await s.close()
        await pub.close()
        with contextlib.suppress(Exception):
            await system.close_room()
    return {
        "system": system.name,
        "n": n,
        "cpu": m["cpu"],
        "engine_cpu": m["cpu"].get("engine", float("nan")),
        **summarize_subs(m["windows"]),
        "decode_errors": m["decode_errors"],
        "first_frame_s_max": max((f for f in first if f is not None), default=None),
        "subscribers_without_video": sum(1 for f in first if f is None),
        "publisher_frames_sent": pub.video.sent,
        "engine_idle_before": idle,
        "diagnostics": diag,
    }


MEETING_SITES = 30
LAST_N = 4


def meeting_plan(sites: list[str]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """The static Last-N plan for systems without their own: site -> videos, site -> audios."""
    chair, floor, third = sites[0], sites[1], sites[2]
    priority = [chair, floor, third, *sites[3:]]
    videos = {s: [p for p in priority if p != s][:LAST_N] for s in sites}
    audios = {s: [p for p in (chair, floor, third) if p != s] for s in sites}
    return videos, audios


async def run_meeting(ctx: Context, system: Any) -> dict[str, Any]:
    from bench.media_support.peers import Publisher, Subscriber
    from bench.media_support.systems import Feed

    sites = [f"site{i:02d}" for i in range(MEETING_SITES)]
    unmuted = set(sites[:3])
    videos, audios = meeting_plan(sites)
    watched = {v for vs in videos.values() for v in vs}
    decoding = set(sites[-ctx.args.decoders :]) if ctx.args.decoders else set()
    await system.new_room(sites)
    idle = await idle_cpu(system)
    # different phases of the 1 s on / 1 s off tone for the three speakers
    pubs = {
        s: Publisher(s, ctx.clip, ctx.schedule, audio_offset=17 * i, muted=s not in unmuted)
        for i, s in enumerate(sites)
    }
    subs = {s: Subscriber(s, s in decoding, ctx.schedule) for s in sites}
    own_last_n = system.name == "hoinghi"
    try:
        if not own_last_n:  # the bench plays the part of video_pause
            for s, p in pubs.items():
                if s not in watched:
                    p.video.set_paused(True)

        async def publish(s: str) -> None:
            p = pubs[s]
            answer = await system.publish(
                s, await p.offer(), p.mids, s not in unmuted, p.video.set_paused
            )
            await p.accept(answer)

        async def subscribe(s: str) -> None:
            feeds = [Feed(v, "video") for v in videos[s]] + [Feed(a, "audio") for a in audios[s]]
            await system.subscribe(s, feeds, subs[s].on_offer, publishes=True)

        t_sub = time.monotonic()
        if system.offers_on_join:  # hoinghi: each site publishes and answers as it joins

            async def join(s: str) -> None:
                await publish(s)
                await subscribe(s)

            await in_chunks([lambda s=s: join(s) for s in sites], 6)
            await system.set_roles(sites[0], sites[1])
        else:  # Janus: every publisher first, then the subscriptions to them
            await in_chunks([lambda s=s: publish(s) for s in sites], 6)
            await wait_connected([p.pc for p in pubs.values()], 20)
            t_sub = time.monotonic()
            await in_chunks([lambda s=s: subscribe(s) for s in sites], 6)
        await wait_first_frames(list(subs.values()), 60)
        first = [x.first_frame - t_sub for x in subs.values() if x.first_frame]
        settle_s = await system.settle(60)
        settled_after = time.monotonic() - t_sub
        sent0 = {s: p.video.sent for s, p in pubs.items()}
        m = await measure(ctx, system, list(subs.values()))
        sending = sum(1 for s, p in pubs.items() if p.video.sent - sent0[s] > 0)
        diag = system.diagnostics()
    finally:
        for x in subs.values():
            await x.close()
        for p in pubs.values():
            await p.close()
        with contextlib.suppress(Exception):
            await system.close_room()
    w = m["windows"]
    per_site_videos = [sum(1 for f in x["video_fps"] if f > 0) for x in w.values()]
    per_site_audio = [x.get("audio_streams") for x in w.values() if not x["decode"]]
    return {
        "system": system.name,
        "sites": len(sites),
        "cpu": m["cpu"],
        "engine_cpu": m["cpu"].get("engine", float("nan")),
        **summarize_subs(w),
        "decode_errors": m["decode_errors"],
        "publishers_sending_video": sending,
        "videos_per_site": [min(per_site_videos), max(per_site_videos)],
        "audio_streams_per_site": [min(per_site_audio), max(per_site_audio)]
        if per_site_audio
        else None,
        "audio_pps_per_site": [x.get("audio_pps") for x in w.values() if not x["decode"]][:3],
        "fps_min_watched": min((f for x in w.values() for f in x["video_fps"] if f > 0), default=0),
        "first_frame_s_max": round(max(first), 2) if first else None,
        "settled_s": round(settled_after, 1),
        "engine_idle_before": idle,
        "settle_wait_s": round(settle_s, 1),
        "sites_without_video": sum(1 for x in subs.values() if x.first_frame is None),
        "decoders": sorted(decoding),
        "diagnostics": diag,
    }


# --- analysis ------------------------------------------------------------------------


def fit(points: list[tuple[int, float]]) -> tuple[float, float] | None:
    """Least squares cpu = a + b*N -> (a, b)."""
    if len(points) < 2:
        return None
    xs = [float(n) for n, _ in points]
    ys = [c for _, c in points]
    mx, my = statistics.mean(xs), statistics.mean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return my - b * mx, b


def fits(results: list[dict[str, Any]], fps_ok: float) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in sorted({r["system"] for r in results}):
        rows = [r for r in results if r["system"] == name]
        held = [r for r in rows if r["fps_min"] >= fps_ok and not r["subscribers_without_video"]]
        use = held if len(held) >= 2 else rows
        f = fit([(r["n"], r["engine_cpu"]) for r in use])
        out[name] = {
            "per_incoming_pct": round(f[0], 2) if f else None,
            "per_outgoing_pct": round(f[1], 3) if f else None,
            "sizes_used": [r["n"] for r in use],
            "only_sizes_that_held_fps": len(held) >= 2,
        }
    return out


def g2g_by_n(results: list[dict[str, Any]], system: str) -> dict[int, float]:
    return {
        r["n"]: r["g2g_ms"]["p50"]
        for r in results
        if r["system"] == system and r["g2g_ms"]["p50"] is not None
    }


def targets(report: dict[str, Any], subject: str) -> list[dict[str, Any]]:
    f = report["fits"]
    rows: list[dict[str, Any]] = []

    def add(name: str, value: Any, bar: Any, met: bool | None) -> None:
        rows.append({"target": name, "value": value, "bar": bar, "met": met})

    me, janus, reenc = f.get(subject), f.get("janus"), f.get("reencode")
    if me and janus and me["per_outgoing_pct"] is not None and janus["per_outgoing_pct"]:
        add("per outgoing stream <= Janus", me["per_outgoing_pct"], janus["per_outgoing_pct"],
            me["per_outgoing_pct"] <= janus["per_outgoing_pct"])  # fmt: skip
    if me and janus and me["per_incoming_pct"] is not None and janus["per_incoming_pct"]:
        bar = round(1.5 * janus["per_incoming_pct"], 2)
        add("per incoming stream <= 1.5x Janus", me["per_incoming_pct"], bar,
            me["per_incoming_pct"] <= bar)  # fmt: skip
    mine, theirs = g2g_by_n(report["one_to_n"], subject), g2g_by_n(report["one_to_n"], "janus")
    common = sorted(set(mine) & set(theirs))
    if common:
        worst = max(mine[n] - theirs[n] for n in common)
        add("glass-to-glass within 10 ms of Janus (worst N, p50)", round(worst, 1), 10.0,
            worst <= 10.0)  # fmt: skip
    if me and reenc and me["per_outgoing_pct"] and reenc["per_outgoing_pct"]:
        ratio = reenc["per_outgoing_pct"] / me["per_outgoing_pct"]
        add("forwarding >= 20x cheaper per outgoing than re-encoding", round(ratio, 1), 20,
            ratio >= 20)  # fmt: skip
    at32 = [r for r in report["one_to_n"] if r["system"] == subject and r["n"] == 32]
    if at32:
        r = at32[0]
        add("30 fps held at 32 subscribers (min over subscribers)", r["fps_min"], 29.0,
            r["fps_min"] >= 29.0 and not r["subscribers_without_video"])  # fmt: skip
    meet = [m for m in report["meeting"] if m["system"] == subject]
    if meet:
        m = meet[0]
        add("30-site meeting engine CPU <= 150 %", m["engine_cpu"], 150.0, m["engine_cpu"] <= 150.0)
        lost = m["missing_frames"] + m["unreadable_frames"] + m["decode_errors"]
        add("30-site meeting: no frame loss at decoding subscribers", lost, 0, lost == 0)
    return rows


# --- output --------------------------------------------------------------------------


def fmt(v: Any, nd: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def print_report(report: dict[str, Any]) -> None:
    direct = report.get("direct") or {}
    base = direct.get("g2g_ms", {}).get("p50")
    print()
    print(f"media bench {report['started']}  ({report['window']})")
    print(f"clip: {report['clip']}")
    if direct:
        g = direct["g2g_ms"]
        print(
            f"direct (no server, {direct['n']} decoding pairs): glass-to-glass p50 {fmt(g['p50'])}"
            f" / p95 {fmt(g['p95'])} ms, {fmt(direct['fps_mean'])} fps -- the harness's own share"
        )
    print()
    head = ("N", "system", "engine CPU %", "fps min/mean", "g2g p50/p95 ms", "SFU-added p50",
            "missing/unreadable/decode-err", "lost pkts", "1st frame s", "harness %",
            "signaling %", "machine %")  # fmt: skip
    rows = []
    for r in report["one_to_n"]:
        g = r["g2g_ms"]
        added = None if base is None or g["p50"] is None else g["p50"] - base
        rows.append((
            str(r["n"]), r["system"], fmt(r["engine_cpu"], 2),
            f"{fmt(r['fps_min'])}/{fmt(r['fps_mean'])}", f"{fmt(g['p50'])}/{fmt(g['p95'])}",
            fmt(added), f"{r['missing_frames']}/{r['unreadable_frames']}/{r['decode_errors']}",
            str(r["lost_packets"]), fmt(r["first_frame_s_max"], 2), fmt(r["cpu"]["harness"]),
            fmt(r["cpu"].get("signaling")), fmt(r["cpu"].get("machine")),
        ))  # fmt: skip
    print_table(head, rows)
    print()
    print("fit over N (engine CPU = per_incoming + N x per_outgoing; % of one core):")
    frows = []
    janus = report["fits"].get("janus", {})
    reenc = report["fits"].get("reencode", {})
    for name, f in report["fits"].items():
        out, inc = f["per_outgoing_pct"], f["per_incoming_pct"]
        frows.append((
            name, fmt(out, 3), fmt(inc, 2), ",".join(map(str, f["sizes_used"])),
            "yes" if f["only_sizes_that_held_fps"] else "no (all sizes)",
            fmt(ratio(out, janus.get("per_outgoing_pct")), 2),
            fmt(ratio(inc, janus.get("per_incoming_pct")), 2),
            fmt(ratio(reenc.get("per_outgoing_pct"), out), 1),
        ))  # fmt: skip
    print_table(("system", "per outgoing %", "per incoming %", "sizes", "only sizes at 30 fps",
                 "out / Janus", "in / Janus", "re-encode out / this out"), frows)  # fmt: skip
    if report["meeting"]:
        print()
        print(
            f"{MEETING_SITES}-site meeting (3 unmuted, 27 muted sending no audio, Last-N {LAST_N}):"
        )
        mrows = []
        for m in report["meeting"]:
            g = m["g2g_ms"]
            mrows.append((
                m["system"], fmt(m["engine_cpu"], 1), str(m["publishers_sending_video"]),
                f"{m['videos_per_site'][0]}-{m['videos_per_site'][1]}",
                "-" if not m["audio_streams_per_site"] else f"{m['audio_streams_per_site'][0]}-{m['audio_streams_per_site'][1]}",
                f"{fmt(m['fps_min_watched'])}/{fmt(m['fps_mean'])}", f"{fmt(g['p50'])}/{fmt(g['p95'])}",
                f"{m['missing_frames']}/{m['unreadable_frames']}/{m['decode_errors']}",
                str(m["lost_packets"]), fmt(m["cpu"]["harness"]), fmt(m["cpu"].get("signaling")),
                fmt(m["cpu"].get("machine")), fmt(m["settled_s"]),
            ))  # fmt: skip
        print_table(("system", "engine CPU %", "pubs sending video", "videos/site", "audios/site",
                     "fps min/mean", "g2g p50/p95", "missing/unread/dec-err", "lost pkts",
                     "harness %", "signaling %", "machine %", "settled s"), mrows)  # fmt: skip
    for subject, rows_t in report["targets"].items():
        print()
        if subject == "janus":
            print("targets applied to Janus itself (a check of the bars; hoinghi not in this run):")
        else:
            print(f"targets for {subject}:")
        print_table(
            ("target", "value", "bar", "met"),
            [(t["target"], fmt(t["value"], 2), fmt(t["bar"], 2),
              {True: "MET", False: "NOT MET", None: "-"}[t["met"]]) for t in rows_t],
        )  # fmt: skip
    for note in report["notes"]:
        print(f"note: {note}")


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def print_table(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)
    ]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


# --- main ----------------------------------------------------------------------------


def make_system(name: str, args: argparse.Namespace, log_dir: Path) -> Any:
    from bench.media_support import systems

    if name == "reencode":
        return systems.Reencode(args.address, args.address, log_dir)
    if name == "janus":
        return systems.Janus(args.address, args.interface, log_dir, args.janus_event_loops)
    if name == "hoinghi":
        from bench.media_support.hoinghi import Hoinghi

        rooms = [n + 1 for n in args.sizes] + ([MEETING_SITES] if args.meeting else [])
        return Hoinghi(args.address, log_dir, args.media_workers, rooms)
    raise ValueError(name)


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    from bench.media_support.clip import KEYFRAME_INTERVAL, check_clip, load_clip
    from bench.media_support.peers import DecodeErrors, Schedule, announce_only

    announce_only(args.address)
    logging.getLogger("aiortc.rtcrtpreceiver").addFilter(DecodeErrors())
    clip = load_clip(PROJECT_ROOT / "var" / "bench")
    problems = check_clip(clip)
    if problems:
        raise RuntimeError(f"the cached clip is damaged: {problems[:5]}")
    ctx = Context(args, clip, Schedule())
    log_dir = Path(tempfile.mkdtemp(prefix="bench-media-"))
    report: dict[str, Any] = {
        "started": datetime.now().isoformat(timespec="seconds"),
        "window": f"{args.warmup:g} s warm-up, {args.seconds:g} s measured, "
        f"{args.decoders} decoding subscribers per scenario",
        "clip": f"640x360 {30} fps VP8 {clip.video_kbps:.0f} kbit/s, keyframe every "
        f"{KEYFRAME_INTERVAL} frames; Opus {clip.audio_kbps:.0f} kbit/s (20 ms)",
        "args": vars(args),
        "direct": None,
        "one_to_n": [],
        "meeting": [],
        "notes": [
            "CPU in % of one core, utime+stime of the engine's processes over the window "
            "(/proc/<pid>/stat); for hoinghi the engine is its media worker processes, and "
            "'signaling' its main process; 'harness' is the bench process (all peers); "
            "'machine' is everything on the machine (of 200 %): other work shares these cores.",
            "per incoming = fit intercept at N=0 (one publisher: A+V), per outgoing = slope "
            "over N (one subscriber's A+V); fits use only sizes that held the frame rate.",
            "publishers replay a pre-encoded clip: they cannot answer PLI, so new or resumed "
            f"video waits for the next periodic keyframe (every {KEYFRAME_INTERVAL} frames).",
            "counting subscribers read RTP headers and drop packets before aiortc (no RTCP "
            "feedback from them: no NACK, PLI, REMB, and empty receiver reports).",
        ],
        "logs": str(log_dir),
    }
    if "direct" in args.systems:
        report["direct"] = await run_direct(ctx)
        log.warning("direct: %s", report["direct"]["g2g_ms"])
    for name in args.systems:
        if name == "direct":
            continue
        system = make_system(name, args, log_dir)
        try:
            await system.start()
            sizes = [n for n in args.sizes if name != "reencode" or n <= args.reencode_max]
            for n in sizes:
                log.warning("%s: 1 -> %d ...", name, n)
                try:
                    r = await run_one_to_n(ctx, system, n)
                except Exception as e:
                    log.exception("%s N=%d failed", name, n)
                    report["notes"].append(f"{name} N={n} failed: {e!r}")
                    continue
                log.warning("%s N=%d: cpu %s fps %s/%s g2g %s", name, n, r["cpu"], r["fps_min"],
                            r["fps_mean"], r["g2g_ms"])  # fmt: skip
                report["one_to_n"].append(r)
            if args.meeting and name in ("janus", "hoinghi"):
                log.warning("%s: %d-site meeting ...", name, MEETING_SITES)
                try:
                    m = await run_meeting(ctx, system)
                    log.warning("%s meeting: cpu %s fps %s g2g %s", name, m["cpu"],
                                m["fps_mean"], m["g2g_ms"])  # fmt: skip
                    report["meeting"].append(m)
                except Exception as e:
                    log.exception("%s meeting failed", name)
                    report["notes"].append(f"{name} meeting failed: {e!r}")
        finally:
            await system.stop()
    if "reencode" in args.systems:
        report["notes"].append(
            f"re-encoding runs only up to N={args.reencode_max} (it saturates a core at a few "
            "subscribers) and has no meeting run; MediaRelay with buffered=False."
        )
    report["fits"] = fits(report["one_to_n"], args.fps_ok)
    subject = "hoinghi" if "hoinghi" in report["fits"] else "janus"
    report["targets"] = {subject: targets(report, subject)} if subject in report["fits"] else {}
    return report


def hoinghi_has_engine() -> bool:
    from bench.media_support.hoinghi import HOINGHI

    try:
        out = subprocess.run(
            [HOINGHI, "serve", "--help"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--media-address" in out.stdout


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--sizes", default="1,4,8,16,32", help="subscriber counts of 1 -> N")
    ap.add_argument("--systems", default=",".join(SYSTEMS), help="of " + ",".join(SYSTEMS))
    ap.add_argument("--seconds", type=float, default=10.0, help="measurement window")
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--decoders", type=int, default=2, help="decoding subscribers per scenario")
    ap.add_argument("--no-meeting", dest="meeting", action="store_false")
    ap.add_argument("--reencode-max", type=int, default=8, help="largest N for re-encoding")
    ap.add_argument("--janus-event-loops", type=int, default=0, help="0 = Janus's default")
    ap.add_argument("--media-workers", type=int, default=1, help="hoinghi media workers")
    ap.add_argument("--fps-ok", type=float, default=28.0, help="a size 'held' at this min fps")
    ap.add_argument("--quick", action="store_true", help="smoke run: N=1,4, 5 s, no meeting")
    ap.add_argument("--address", default="10.77.0.1")
    ap.add_argument("--interface", default="d0")
    ap.add_argument("--no-uvloop", dest="uvloop", action="store_false", help="harness loop")
    ap.add_argument("--out", type=Path, default=None, help="JSON file (default var/bench/...)")
    args = ap.parse_args(argv)
    args.sizes = [int(x) for x in str(args.sizes).split(",") if x]
    args.systems = [s for s in str(args.systems).split(",") if s]
    for s in args.systems:
        if s not in SYSTEMS:
            ap.error(f"unknown system {s}")
    if args.quick:
        args.sizes = [n for n in args.sizes if n <= 4] or [1, 4]
        args.seconds, args.warmup, args.meeting = 5.0, 2.0, False
    return args


def main() -> int:
    args = parse_args()
    if os.environ.get(NS_ENV) != "1":
        return reexec_in_namespace(args)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("aioice").setLevel(logging.ERROR)
    if "hoinghi" in args.systems and not hoinghi_has_engine():
        log.warning("`hoinghi serve` has no --media-address (no media engine yet): skipping it")
        args.systems = [s for s in args.systems if s != "hoinghi"]
    # SIGTERM ends the run like Ctrl-C: finally blocks stop every server it started
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    runner: Any
    if args.uvloop:
        try:
            import uvloop

            runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
        except ImportError:
            runner = asyncio.Runner()
    else:
        runner = asyncio.Runner()
    try:
        with runner:
            report = runner.run(amain(args))
    except KeyboardInterrupt:
        print("bench.media: interrupted; every server it started is stopped", file=sys.stderr)
        return 130
    print_report(report)
    out = args.out or PROJECT_ROOT / "var" / "bench" / f"media-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    for r in [*report["one_to_n"], *report["meeting"], report["direct"] or {}]:
        r.pop("windows", None)
    out.write_text(json.dumps(report, indent=1, default=str))
    print(f"\nJSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
