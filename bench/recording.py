"""What recording costs: hoinghi's recorder beside ``ffmpeg -c copy`` on the same packets.

For N = 1, 4, 8 sites, each publishing the bench clip (640x360 30 fps VP8 at
~1.5 Mbit/s plus Opus, encoded once and replayed: ``bench/media_support``),
hoinghi's server (one media worker) runs a meeting with recording on: its
recorder process receives every track from the SFU (SRTP over ICE, jitter
buffer, depacketizing) and writes WebM segments (PyAV, no decoding). Its CPU
over the measured window, divided by N, is the cost per recorded stream (one
stream = one site's video + audio).

The baseline, in the same run and right after: N ``ffmpeg -c copy`` processes,
each receiving the same clip's packets as plain RTP over UDP (packetized like
aiortc does) and remuxing them into WebM. ffmpeg does less (no SRTP, no ICE,
no RTCP), so the ratio is an upper bound of what the recorder's own work costs.

Then the composite job on the N=4 recording: speed as a multiple of real time.

Everything runs in a network namespace of its own with only loopback
(``unshare -n``; root), so no packet leaves the machine.

    .venv/bin/python -m bench.recording [--sizes 1,4,8] [--seconds 10] [--warmup 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
NS_ENV = "HOINGHI_BENCH_RECORDING_NS"
ADDRESS = "127.0.0.1"
TARGET_PER_STREAM = 2.0  # % of one core (issue 5)
FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"

log = logging.getLogger("bench.recording")


def reexec_in_namespace() -> int:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        print("bench.recording runs in a network namespace of its own: root and unshare",
              file=sys.stderr)  # fmt: skip
        return 2
    unshare = shutil.which("unshare") or "unshare"
    cmd = [unshare, "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
           sys.executable, "-m", "bench.recording", *sys.argv[1:]]  # fmt: skip
    os.chdir(PROJECT_ROOT)
    os.execve(unshare, cmd, os.environ | {NS_ENV: "1"})  # noqa: S606
    return 0  # not reached


# --- the baseline: ffmpeg -c copy fed plain RTP -------------------------------------


def _sdp(video_port: int, audio_port: int) -> str:
    return (
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=bench\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=video {video_port} RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n"
        f"m=audio {audio_port} RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n"
    )


class _Sender(asyncio.DatagramProtocol):
    pass


async def feed_rtp(clip: Any, schedule: Any, ports: tuple[int, int], stop: asyncio.Event) -> int:
    """Send the clip's frames as RTP (aiortc's VP8 packetizer), live-paced; packets sent."""
    from aiortc.codecs.vpx import Vp8Encoder
    from aiortc.rtp import RtpPacket

    from bench.media_support.clip import FRAMES
    from bench.media_support.peers import AUDIO_TICK

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(_Sender, local_addr=(ADDRESS, 0))
    video_addr, audio_addr = (ADDRESS, ports[0]), (ADDRESS, ports[1])
    seq = {"v": 0, "a": 0}
    sent = 0
    vtick = schedule.video_tick(time.monotonic()) + 1
    vtick += clip.next_keyframe(vtick % FRAMES)
    atick = schedule.audio_tick(time.monotonic()) + 1
    try:
        while not stop.is_set():
            now = time.monotonic()
            next_v, next_a = schedule.video_time(vtick), schedule.audio_time(atick)
            due = min(next_v, next_a)
            if due > now:
                await asyncio.sleep(due - now)
            if next_v <= next_a:
                payloads = Vp8Encoder._packetize(clip.video[vtick % FRAMES], vtick & 0x7FFF)
                for i, payload in enumerate(payloads):
                    packet = RtpPacket(
                        payload_type=96,
                        marker=int(i == len(payloads) - 1),
                        sequence_number=seq["v"] & 0xFFFF,
                        timestamp=(vtick * 3000) & 0xFFFFFFFF,
                        ssrc=0x1111,
                        payload=payload,
                    )
                    seq["v"] += 1
                    transport.sendto(packet.serialize(), video_addr)
                    sent += 1
                vtick += 1
            else:
                audio = clip.audio[atick % len(clip.audio)]
                packet = RtpPacket(
                    payload_type=111,
                    sequence_number=seq["a"] & 0xFFFF,
                    timestamp=(atick * round(AUDIO_TICK * 48000)) & 0xFFFFFFFF,
                    ssrc=0x2222,
                    payload=audio,
                )
                seq["a"] += 1
                transport.sendto(packet.serialize(), audio_addr)
                sent += 1
                atick += 1
    finally:
        transport.close()
    return sent


async def run_ffmpeg(clip: Any, schedule: Any, n: int, args: argparse.Namespace) -> dict[str, Any]:
    from bench.media_support.systems import CpuMeter

    work = Path(tempfile.mkdtemp(prefix="bench-ffmpeg-"))
    procs: list[subprocess.Popen[bytes]] = []
    stop = asyncio.Event()
    feeders = []
    try:
        for i in range(n):
            ports = (20000 + 4 * i, 20002 + 4 * i)
            sdp = work / f"s{i}.sdp"
            sdp.write_text(_sdp(*ports))
            procs.append(
                subprocess.Popen(
                    [
                        FFMPEG,
                        "-hide_banner",
                        "-loglevel",
                        "error",
                        "-protocol_whitelist",
                        "file,udp,rtp",
                        "-i",
                        str(sdp),
                        "-c",
                        "copy",
                        "-f",
                        "webm",
                        str(work / f"s{i}.webm"),
                    ],
                    stdin=subprocess.DEVNULL,
                )
            )
        await _bound([port for i in range(n) for port in (20000 + 4 * i, 20002 + 4 * i)])
        feeders = [
            asyncio.create_task(feed_rtp(clip, schedule, (20000 + 4 * i, 20002 + 4 * i), stop))
            for i in range(n)
        ]
        await asyncio.sleep(args.warmup)
        meter = CpuMeter({"ffmpeg": [p.pid for p in procs]})
        await asyncio.sleep(args.seconds)
        cpu = meter.stop()
        running = sum(1 for p in procs if p.poll() is None)
    finally:
        stop.set()
        sent = [await f for f in feeders]
        for p in procs:
            p.terminate()  # ffmpeg finishes the file on SIGTERM
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
    sizes = [(work / f"s{i}.webm").stat().st_size for i in range(n)]
    shutil.rmtree(work, ignore_errors=True)
    return {
        "cpu": cpu,
        "running": running,
        "packets_sent": sum(sent),
        "bytes_written": sum(sizes),
    }


async def _bound(ports: list[int], within: float = 10.0) -> None:
    """Wait until something listens on each UDP port (ffmpeg has opened its input)."""
    deadline = time.monotonic() + within
    while True:
        lines = Path("/proc/net/udp").read_text().splitlines()[1:]  # noqa: ASYNC240 - procfs
        bound = {int(line.split()[1].split(":")[1], 16) for line in lines}
        if all(p in bound for p in ports):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"ffmpeg did not open UDP ports {sorted(set(ports) - bound)}")
        await asyncio.sleep(0.05)


# --- hoinghi's recorder ---------------------------------------------------------------


def recorder_pids(server_pid: int) -> list[int]:
    from bench.media_support.systems import descendants

    out = []
    for pid in descendants(server_pid):
        with contextlib.suppress(OSError):
            if b"recordings.recorder" in Path(f"/proc/{pid}/cmdline").read_bytes():
                out.append(pid)
    return out


async def run_hoinghi(
    system: Any, clip: Any, schedule: Any, n: int, args: argparse.Namespace
) -> dict[str, Any]:
    from bench.media_support.peers import Publisher
    from bench.media_support.systems import CpuMeter, descendants

    sites = [f"s{i}" for i in range(n)]
    await system.new_room(sites)
    before = set(recorder_pids(system.proc.pid))
    pubs = []
    for site in sites:
        pub = Publisher(site, clip, schedule)
        offer = await pub.offer()
        answer = await system.publish(site, offer, pub.mids, False, lambda *_: None)
        await pub.accept(answer)
        pubs.append(pub)
    deadline = time.monotonic() + 20
    while not (recorders := [p for p in recorder_pids(system.proc.pid) if p not in before]):
        if time.monotonic() > deadline:
            raise RuntimeError("no recorder process started")
        await asyncio.sleep(0.2)
    await asyncio.sleep(args.warmup)
    workers = [p for p in descendants(system.proc.pid) if p not in recorders and p not in before]
    meter = CpuMeter({"recorder": recorders, "engine": workers, "signaling": [system.proc.pid]})
    await asyncio.sleep(args.seconds)
    cpu = meter.stop()
    await system.close_room()  # the chair ends the meeting: the recording is finalised
    for pub in pubs:
        await pub.close()
    return {"cpu": cpu, "recorder_pid": recorders[0]}


def newest_recording(data_dir: Path, after: float) -> Path | None:
    found = [
        p.parent
        for p in (data_dir / "recordings").rglob("manifest.json")
        if p.stat().st_mtime >= after
    ]
    return max(found, key=lambda d: d.stat().st_mtime) if found else None


def check_recording(directory: Path, n: int) -> dict[str, Any]:
    """What the recorder wrote: tracks, packets, duration (the bench is honest only if
    everything sent was recorded)."""
    from recordings.manifest import read_manifest

    manifest = read_manifest(directory)
    video = [t for t in manifest.tracks if t.kind == "video"]
    audio = [t for t in manifest.tracks if t.kind == "audio"]
    return {
        "tracks": f"{len(video)} video + {len(audio)} audio (expected {n} + {n})",
        "video_fps": [round(t.packets / t.duration, 1) for t in video if t.duration],
        "audio_pps": [round(t.packets / t.duration, 1) for t in audio if t.duration],
        "duration_s": round(manifest.duration_seconds, 1),
        "bytes": sum(t.bytes for t in manifest.tracks),
    }


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    from bench.media_support.clip import load_clip
    from bench.media_support.hoinghi import Hoinghi
    from bench.media_support.peers import Schedule, announce_only

    announce_only(ADDRESS)
    clip = load_clip(PROJECT_ROOT / "var" / "bench")
    schedule = Schedule()
    log_dir = Path(tempfile.mkdtemp(prefix="bench-recording-"))
    system = Hoinghi(ADDRESS, log_dir, media_workers=1, rooms=args.sizes, recording=True)
    report: dict[str, Any] = {
        "started": datetime.now().isoformat(timespec="seconds"),
        "clip": f"640x360 30 fps VP8 {clip.video_kbps:.0f} kbit/s + Opus {clip.audio_kbps:.0f}"
        " kbit/s",
        "window": f"{args.warmup:g} s warm-up, {args.seconds:g} s measured",
        "rows": [],
        "composite": None,
        "logs": str(log_dir),
    }
    await system.start()
    composite_dir: Path | None = None
    try:
        for n in args.sizes:
            log.warning("recording %d streams ...", n)
            t_start = time.time()
            ours = await run_hoinghi(system, clip, schedule, n, args)
            await asyncio.sleep(2.0)  # finalising
            directory = newest_recording(system.data_dir, t_start)
            written = check_recording(directory, n) if directory else {"error": "no manifest"}
            log.warning("ffmpeg -c copy, %d streams ...", n)
            base = await run_ffmpeg(clip, schedule, n, args)
            rec_cpu, ff_cpu = ours["cpu"]["recorder"], base["cpu"]["ffmpeg"]
            row = {
                "streams": n,
                "recorder_cpu": rec_cpu,
                "recorder_per_stream": round(rec_cpu / n, 2),
                "ffmpeg_cpu": ff_cpu,
                "ffmpeg_per_stream": round(ff_cpu / n, 2),
                "ratio": round(rec_cpu / ff_cpu, 2) if ff_cpu else None,
                "ffmpeg_running": f"{base['running']}/{n}",
                "engine_cpu": ours["cpu"]["engine"],
                "machine": [ours["cpu"]["machine"], base["cpu"]["machine"]],
                "written": written,
            }
            log.warning("%s", row)
            report["rows"].append(row)
            if n == args.composite_size and directory is not None:
                composite_dir = directory
    finally:
        await system.stop()
    if composite_dir is not None:
        report["composite"] = compose_speed(composite_dir)
    return report


def compose_speed(directory: Path) -> dict[str, Any]:
    from recordings.composite import compose
    from recordings.manifest import read_manifest

    media = read_manifest(directory).duration_seconds
    out: dict[str, Any] = {"media_seconds": round(media, 1), "sites": None}
    out["sites"] = sum(1 for t in read_manifest(directory).tracks if t.kind == "video")
    for layout in ("speaker", "grid"):
        t0 = time.monotonic()
        cpu0 = os.times()
        compose(directory, layout=layout)  # type: ignore[arg-type]
        wall = time.monotonic() - t0
        cpu1 = os.times()
        out[layout] = {
            "wall_s": round(wall, 1),
            "x_real_time": round(media / wall, 2),
            "cpu_s": round((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system), 1),
        }
    return out


def print_report(report: dict[str, Any]) -> None:
    print(f"\nrecording bench {report['started']}  ({report['window']})")
    print(f"clip: {report['clip']}; one stream = one site's video + audio\n")
    header = ("streams", "recorder %", "per stream %", "ffmpeg -c copy %", "per stream %",
              "recorder/ffmpeg", "SFU worker %", "machine % (ours, ffmpeg)", "written")  # fmt: skip
    print("  ".join(header))
    for r in report["rows"]:
        w = r["written"]
        written = (
            f"{w.get('tracks')}, video fps {w.get('video_fps')}, {w.get('duration_s')} s"
            if "tracks" in w
            else w
        )
        print(
            f"{r['streams']:>7}  {r['recorder_cpu']:>10}  {r['recorder_per_stream']:>12}  "
            f"{r['ffmpeg_cpu']:>16}  {r['ffmpeg_per_stream']:>12}  {r['ratio']!s:>15}  "
            f"{r['engine_cpu']:>12}  {r['machine']!s:>24}  {written}"
        )
    worst = max((r["recorder_per_stream"] for r in report["rows"]), default=None)
    if worst is not None:
        verdict = "MET" if worst <= TARGET_PER_STREAM else "NOT MET"
        print(f"\ntarget: recording <= {TARGET_PER_STREAM} % of a core per stream: "
              f"worst {worst} %  {verdict}")  # fmt: skip
    c = report.get("composite")
    if c:
        print(f"\ncomposite of the {c['sites']}-site recording ({c['media_seconds']} s of media, "
              "1280x720 15 fps H.264 + AAC):")  # fmt: skip
        for layout in ("speaker", "grid"):
            print(f"  {layout:8} {c[layout]['x_real_time']}x real time "
                  f"({c[layout]['wall_s']} s wall, {c[layout]['cpu_s']} s CPU)")  # fmt: skip
    print("\nnote: CPU in % of one core (utime+stime from /proc over the window); the "
          "machine has 2 cores and other work may share them ('machine' is all of it, of 200 %).")  # fmt: skip
    print(f"JSON: {report.get('json')}")


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.recording")
    ap.add_argument("--sizes", default="1,4,8", help="streams recorded at once")
    ap.add_argument("--seconds", type=float, default=10.0, help="measurement window")
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--composite-size", type=int, default=4, help="compose this size's file")
    args = ap.parse_args()
    args.sizes = [int(x) for x in args.sizes.split(",")]
    if os.environ.get(NS_ENV) != "1":
        return reexec_in_namespace()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    report = asyncio.run(amain(args))
    out = PROJECT_ROOT / "var" / "bench" / f"recording-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    report["json"] = str(out)
    out.write_text(json.dumps(report, ensure_ascii=False, indent=2))
    print_report(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
