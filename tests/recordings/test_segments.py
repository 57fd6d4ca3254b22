"""recordings/segments.py on real VP8 and Opus (encoded by PyAV, never decoded by the
writer): segments, finalizing into one WebM per track, timestamps, crashes (a killed
process, a cut file), the manifest, and a disk that refuses writes."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from recordings import segments
from recordings.manifest import MANIFEST_NAME, Manifest, read_manifest
from recordings.segments import SIDECAR_NAME, TrackWriter, finalize_recording, vp8_keyframe_size

from .media_fixtures import (
    AUDIO_PER_SECOND,
    FPS,
    GOP,
    HEIGHT,
    OPUS_SAMPLES,
    VIDEO_TICKS,
    WIDTH,
    decode_all,
    decode_audio,
    decode_video,
    encode_opus,
    ffprobe,
    is_keyframe,
    save_packets,
    stored_packets,
    vp8_clip,
)

ROOT = Path(__file__).resolve().parents[2]
SECONDS = 12
UNIT_NAME = "Ủy ban nhân dân huyện Lệ Thủy"
CAMERA = {"participant": "p-7f3a", "unit_id": 42, "unit_name": UNIT_NAME, "source": "camera"}
MIC = {**CAMERA}


@pytest.fixture(scope="module")
def video() -> list[bytes]:
    return vp8_clip(SECONDS * FPS)


@pytest.fixture(scope="module")
def audio() -> list[bytes]:
    return encode_opus(SECONDS * AUDIO_PER_SECOND)


def feed_video(
    writer: TrackWriter, frames: list[bytes], *, rtp0: int = 0, at0: float = 0.0
) -> None:
    """With RTP timestamps and arrival times 1/30 s apart."""
    for i, frame in enumerate(frames):
        writer.write(frame, (rtp0 + i * VIDEO_TICKS) % 2**32, at0 + i / FPS)


def feed_audio(
    writer: TrackWriter, packets: list[bytes], *, rtp0: int = 0, at0: float = 0.0
) -> None:
    for i, packet in enumerate(packets):
        writer.write(packet, (rtp0 + i * OPUS_SAMPLES) % 2**32, at0 + i / AUDIO_PER_SECOND)


def finalize(directory: Path, status: str = "finished") -> Manifest:
    return finalize_recording(
        directory,
        recording_id=7,
        meeting_id=3,
        number=1,
        title="Họp giao ban tháng 11",
        started_at="2026-11-27T01:00:00+00:00",
        ended_at="2026-11-27T01:00:15+00:00",
        status=status,
    )


def assert_prefix_of(stored: list[tuple[int, bytes, bool]], written: list[bytes]) -> None:
    """Stored packets are the written ones, unchanged and in order, with rising pts."""
    assert [data for _, data, _ in stored] == written[: len(stored)]
    pts = [p for p, _, _ in stored]
    assert pts == sorted(set(pts)), "pts must rise strictly"


# --- a whole recording --------------------------------------------------------------------


def test_twelve_seconds_of_video_and_audio_finalize_into_two_playable_webm_files(
    tmp_path: Path, video: list[bytes], audio: list[bytes]
) -> None:
    cam = TrackWriter(tmp_path, "t01", "video", identity=CAMERA, segment_seconds=5)
    mic = TrackWriter(tmp_path, "t02", "audio", identity=MIC, segment_seconds=5)
    feed_video(cam, video, rtp0=123_456, at0=0.5)
    feed_audio(mic, audio, rtp0=987_654, at0=0.52)
    # 12 s in 5 s segments: two closed, the third still open
    assert sorted(p.name for p in (tmp_path / "t01").iterdir()) == [
        "000000.webm",
        "000001.webm",
        "000002.webm.part",
        SIDECAR_NAME,
    ]
    sidecar = json.loads((tmp_path / "t01" / SIDECAR_NAME).read_text(encoding="utf-8"))
    assert (sidecar["kind"], sidecar["codec"], sidecar["clock_rate"]) == ("video", "vp8", 90_000)
    assert sidecar["start_offset"] == 0.5
    assert (sidecar["width"], sidecar["height"]) == (WIDTH, HEIGHT)
    assert (cam.packets, mic.packets) == (len(video), len(audio))
    assert cam.bytes_written == sum(map(len, video))
    cam.close()
    mic.close()
    assert not list((tmp_path / "t01").glob("*.part"))
    cam.close()  # idempotent
    cam.write(video[0], 0, 99.0)  # a frame still in flight: ignored
    assert cam.packets == len(video)

    manifest = finalize(tmp_path)

    assert sorted(os.listdir(tmp_path)) == [MANIFEST_NAME, "t01.webm", "t02.webm"]
    by_id = {t.id: t for t in manifest.tracks}
    probe_v = ffprobe(tmp_path / "t01.webm")
    probe_a = ffprobe(tmp_path / "t02.webm")
    (sv,) = probe_v["streams"]
    (sa,) = probe_a["streams"]
    assert (sv["codec_name"], sv["width"], sv["height"]) == ("vp8", WIDTH, HEIGHT)
    assert (sa["codec_name"], sa["sample_rate"], sa["channels"]) == ("opus", "48000", 2)
    assert int(sv["nb_read_packets"]) == len(video)
    assert int(sa["nb_read_packets"]) == len(audio)
    for probe in (probe_v, probe_a):
        assert "webm" in probe["format"]["format_name"]
        assert float(probe["format"]["duration"]) == pytest.approx(SECONDS, rel=0.05)
    for track in manifest.tracks:
        assert track.duration == pytest.approx(SECONDS, rel=0.05)

    # codec copy: the very bytes that were written, keyframes marked
    stored_v = stored_packets(tmp_path / "t01.webm")
    assert_prefix_of(stored_v, video)
    assert len(stored_v) == len(video)
    assert [key for _, _, key in stored_v] == [is_keyframe(f) for f in video]
    stored_a = stored_packets(tmp_path / "t02.webm")
    assert_prefix_of(stored_a, audio)
    assert len(stored_a) == len(audio)
    assert stored_a[1][0] - stored_a[0][0] == 20  # ms

    frames = decode_video(tmp_path / "t01.webm")
    assert len(frames) == len(video)
    assert {(f.width, f.height) for f in frames} == {(WIDTH, HEIGHT)}
    sound = decode_audio(tmp_path / "t02.webm")
    assert sum(f.samples for f in sound) == len(audio) * OPUS_SAMPLES
    assert {f.sample_rate for f in sound} == {48_000}

    assert (by_id["t01"].packets, by_id["t02"].packets) == (len(video), len(audio))
    assert (by_id["t01"].width, by_id["t01"].height) == (WIDTH, HEIGHT)
    assert (by_id["t02"].width, by_id["t02"].height) == (0, 0)
    assert (by_id["t01"].codec, by_id["t02"].codec) == ("vp8", "opus")
    assert manifest.duration_seconds == pytest.approx(0.52 + by_id["t02"].duration, abs=0.001)


# --- timestamps ---------------------------------------------------------------------------


def test_frames_before_the_first_keyframe_are_dropped(tmp_path: Path, video: list[bytes]) -> None:
    clip = video[: 3 * GOP]
    cam = TrackWriter(tmp_path, "t01", "video", identity=CAMERA)
    first = 10  # joins mid-group: frames 10..29 cannot be decoded
    for i in range(first, GOP):
        cam.write(clip[i], 5000 + i * VIDEO_TICKS, 2.0 + i / FPS)
        assert cam.start_offset is None
    assert list((tmp_path / "t01").iterdir()) == []  # not even a sidecar
    for i in range(GOP, len(clip)):
        cam.write(clip[i], 5000 + i * VIDEO_TICKS, 2.0 + i / FPS)
    cam.close()
    assert cam.dropped_before_keyframe == GOP - first
    assert cam.packets == len(clip) - GOP
    assert cam.start_offset == pytest.approx(2.0 + GOP / FPS)

    manifest = finalize(tmp_path)
    (track,) = manifest.tracks
    assert track.start_offset == cam.start_offset
    stored = stored_packets(tmp_path / "t01.webm")
    assert_prefix_of(stored, clip[GOP:])
    assert stored[0][:1] + stored[0][2:] == (0, True)  # starts at 0, with the keyframe
    assert len(decode_all(tmp_path / "t01.webm")) == len(clip) - GOP


def test_rtp_timestamp_wraparound_gives_rising_pts_and_the_right_duration(
    tmp_path: Path, video: list[bytes], audio: list[bytes]
) -> None:
    frames, packets = video[: 4 * FPS], audio[: 4 * AUDIO_PER_SECOND]
    cam = TrackWriter(tmp_path, "t01", "video", identity=CAMERA, segment_seconds=1.5)
    mic = TrackWriter(tmp_path, "t02", "audio", identity=MIC, segment_seconds=1.5)
    feed_video(cam, frames, rtp0=2**32 - 45 * VIDEO_TICKS)  # wraps after 1.5 s
    feed_audio(mic, packets, rtp0=2**32 - 77 * OPUS_SAMPLES)
    cam.close()
    mic.close()
    assert (cam.clamped, cam.discontinuities, mic.clamped, mic.discontinuities) == (0, 0, 0, 0)

    manifest = finalize(tmp_path)
    by_id = {t.id: t for t in manifest.tracks}
    assert by_id["t01"].duration == pytest.approx((len(frames) - 1) / FPS, abs=0.002)
    assert by_id["t02"].duration == pytest.approx((len(packets) - 1) * 0.02, abs=0.001)
    stored_v = stored_packets(tmp_path / "t01.webm")
    assert_prefix_of(stored_v, frames)
    assert [p for p, _, _ in stored_v] == [i * 1000 // FPS for i in range(len(frames))]
    stored_a = stored_packets(tmp_path / "t02.webm")
    assert [p for p, _, _ in stored_a] == [i * 20 for i in range(len(packets))]


def test_timestamps_that_stand_still_or_go_back_are_clamped_and_leaps_follow_arrival(
    tmp_path: Path, audio: list[bytes]
) -> None:
    mic = TrackWriter(tmp_path, "t01", "audio", identity=MIC)
    sent: list[tuple[int, float]] = [(0, 0.0), (960, 0.02), (960, 0.04), (480, 0.06)]  # still, back
    sent += [(1920, 0.08), (2880, 0.10)]
    leap = 2880 + 2**31 - 1  # a sender restart: ~6 hours ahead while 20 ms pass...
    sent += [(leap + k * 960, 0.12 + k * 0.02) for k in range(10)]
    back = leap + 10 * 960 - 5 * 48_000  # ...then 5 s back
    sent += [(back + k * 960, 0.32 + k * 0.02) for k in range(5)]
    sent += [(back + 5 * 960, 30.42)]  # the recorder's clock steps 30 s: RTP is believed
    for (ts, at), packet in zip(sent, audio, strict=False):
        mic.write(packet, ts % 2**32, at)
    mic.close()
    assert mic.clamped == 2
    assert mic.discontinuities == 2

    manifest = finalize(tmp_path)
    pts = [p for p, _, _ in stored_packets(tmp_path / "t01.webm")]
    assert pts == [0, 20, 21, 22, 40, 60] + [80 + 20 * k for k in range(16)]
    assert manifest.tracks[0].duration == pytest.approx(0.38)
    assert len(decode_all(tmp_path / "t01.webm")) == len(sent)


def test_vp8_keyframe_size_reads_the_frame_header(video: list[bytes]) -> None:
    assert vp8_keyframe_size(video[0]) == (WIDTH, HEIGHT)
    assert vp8_keyframe_size(video[1]) is None  # an interframe
    assert vp8_keyframe_size(video[0][:9]) is None
    broken = bytearray(video[0])
    broken[3] = 0  # no start code
    assert vp8_keyframe_size(bytes(broken)) is None


# --- crashes ------------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from recordings.segments import TrackWriter
    from tests.recordings.media_fixtures import load_packets

    directory, video_file, audio_file = map(Path, sys.argv[1:4])
    identity = {"participant": "p1", "unit_id": None, "unit_name": "x", "source": "camera"}
    cam = TrackWriter(directory, "t01", "video", identity=identity, segment_seconds=5)
    mic = TrackWriter(directory, "t02", "audio", identity=identity, segment_seconds=5)
    for i, frame in enumerate(load_packets(video_file)):
        cam.write(frame, i * 3000, i / 30)
    for i, packet in enumerate(load_packets(audio_file)):
        mic.write(packet, i * 960, i / 50)
    print("written", flush=True)
    time.sleep(60)
    """
)


def test_a_recorder_killed_mid_segment_loses_only_the_cluster_being_built(
    tmp_path: Path, video: list[bytes], audio: list[bytes]
) -> None:
    written_v, written_a = video[: 8 * FPS + 10], audio[: 8 * AUDIO_PER_SECOND + 17]  # 8.3 s
    save_packets(tmp_path / "video.bin", written_v)
    save_packets(tmp_path / "audio.bin", written_a)
    rec = tmp_path / "rec"
    rec.mkdir()
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            str(rec),
            str(tmp_path / "video.bin"),
            str(tmp_path / "audio.bin"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "written"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    assert (rec / "t01" / "000001.webm.part").exists()  # the crash came mid-segment

    manifest = finalize(rec, status="interrupted")

    by_id = {t.id: t for t in manifest.tracks}
    for track_id, written, per_second in (
        ("t01", written_v, FPS),
        ("t02", written_a, AUDIO_PER_SECOND),
    ):
        path = rec / f"{track_id}.webm"
        stored = stored_packets(path)
        assert_prefix_of(stored, written)
        lost = (len(written) - len(stored)) / per_second
        assert lost <= 10  # the promise
        assert lost <= 1.5, f"{track_id}: lost {lost:.2f} s, more than the open cluster"
        assert len(decode_all(path)) == len(stored)
        assert by_id[track_id].packets == len(stored)
    assert sorted(os.listdir(rec)) == [MANIFEST_NAME, "t01.webm", "t02.webm"]


def test_a_segment_cut_at_any_byte_is_read_up_to_the_cut(
    tmp_path: Path, video: list[bytes], audio: list[bytes]
) -> None:
    frames, packets = video[: 4 * FPS], audio[: 4 * AUDIO_PER_SECOND]
    rec = tmp_path / "rec"
    rec.mkdir()
    with TrackWriter(rec, "t01", "video", identity=CAMERA, segment_seconds=2) as cam:
        feed_video(cam, frames)
    with TrackWriter(rec, "t02", "audio", identity=MIC, segment_seconds=2) as mic:
        feed_audio(mic, packets)
    rnd = random.Random(2026)  # noqa: S311 - reproducible cut points, not crypto
    for track_id, written in (("t01", frames), ("t02", packets)):
        last = rec / track_id / "000001.webm"
        size = last.stat().st_size
        in_first = len(written) // 2  # what the first (whole) segment holds
        for cut in [0, 40, 200, *rnd.sample(range(300, size), 6), size - 1]:
            copy = tmp_path / f"{track_id}-{cut}"
            shutil.copytree(rec, copy)
            target = copy / track_id / "000001.webm"
            target.write_bytes(last.read_bytes()[:cut])
            target.rename(target.with_name("000001.webm.part"))  # as a crash leaves it
            manifest = finalize(copy, status="interrupted")
            track = next(t for t in manifest.tracks if t.id == track_id)
            stored = stored_packets(copy / f"{track_id}.webm")
            assert_prefix_of(stored, written)
            assert in_first <= len(stored) < len(written), cut
            assert track.packets == len(stored)
            assert len(decode_all(copy / f"{track_id}.webm")) == len(stored)
            shutil.rmtree(copy)


# --- the manifest and finalizing ----------------------------------------------------------


def _short_recording(directory: Path, video: list[bytes], audio: list[bytes]) -> None:
    with TrackWriter(directory, "t01", "video", identity=CAMERA, segment_seconds=1) as cam:
        feed_video(cam, video[: 3 * FPS], at0=1.25)
    screen = {
        **CAMERA,
        "participant": "p-9",
        "unit_id": None,
        "unit_name": "Sở Nội vụ",
        "source": "screen",
    }
    with TrackWriter(directory, "t02", "video", identity=screen, segment_seconds=1) as share:
        feed_video(share, video[: 2 * FPS], at0=4.0)
    with TrackWriter(directory, "t03", "audio", identity=MIC, segment_seconds=1) as mic:
        feed_audio(mic, audio[: 3 * AUDIO_PER_SECOND], at0=1.3)


def test_the_manifest_keeps_identity_and_start_offsets_and_hashes_each_file(
    tmp_path: Path, video: list[bytes], audio: list[bytes]
) -> None:
    _short_recording(tmp_path, video, audio)
    manifest = finalize(tmp_path)

    assert manifest == read_manifest(tmp_path)
    assert UNIT_NAME in (tmp_path / MANIFEST_NAME).read_text(encoding="utf-8")  # not \\u-escaped
    assert (manifest.recording_id, manifest.meeting_id, manifest.number) == (7, 3, 1)
    assert (manifest.title, manifest.status) == ("Họp giao ban tháng 11", "finished")
    by_id = {t.id: t for t in manifest.tracks}
    assert sorted(by_id) == ["t01", "t02", "t03"]
    for track in manifest.tracks:
        data = (tmp_path / track.file).read_bytes()
        assert track.file == f"{track.id}.webm"
        assert track.sha256 == hashlib.sha256(data).hexdigest()
        assert track.bytes == len(data)
    cam, share, mic = by_id["t01"], by_id["t02"], by_id["t03"]
    assert (cam.participant, cam.unit_id, cam.unit_name, cam.source) == (
        "p-7f3a",
        42,
        UNIT_NAME,
        "camera",
    )
    assert (share.participant, share.unit_id, share.unit_name, share.source) == (
        "p-9",
        None,
        "Sở Nội vụ",
        "screen",
    )
    assert (mic.kind, mic.unit_name, mic.source) == ("audio", UNIT_NAME, "camera")
    assert (cam.start_offset, share.start_offset, mic.start_offset) == (1.25, 4.0, 1.3)
    # the longest track end, not the wall-clock span (15 s)
    ends = [t.start_offset + t.duration for t in manifest.tracks]
    assert manifest.duration_seconds == pytest.approx(max(ends), abs=0.001)
    assert manifest.duration_seconds == pytest.approx(4.0 + (2 * FPS - 1) / FPS, abs=0.002)


def test_finalize_is_idempotent_and_finishes_what_a_crash_interrupted(
    tmp_path: Path, video: list[bytes], audio: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = tmp_path / "reference"
    rec = tmp_path / "rec"
    for d in (reference, rec):
        d.mkdir()
        _short_recording(d, video, audio)
    expected = finalize(reference)

    # a crash after the track files, before the manifest; and a half-written temp file
    def no_manifest(directory: Path, manifest: Manifest) -> Path:
        raise OSError(errno.EIO, "simulated crash")

    monkeypatch.setattr(segments, "write_manifest", no_manifest)
    with pytest.raises(OSError, match="simulated crash"):
        finalize(rec)
    monkeypatch.undo()
    assert (rec / "t01.webm").is_file()
    assert (rec / "t01").is_dir()
    (rec / "t02.webm").unlink()  # as if killed before its rename...
    (rec / ".t02.webm.tmp").write_bytes(b"\x1a\x45\xdf\xa3 half a file")  # ...mid-write

    # a crash after the manifest, while the segments are being removed
    removed: list[Path] = []
    real_remove = segments._remove_track_dir

    def crash_after_one(track_dir: Path) -> None:
        if removed:
            raise OSError(errno.EIO, "simulated crash")
        removed.append(track_dir)
        real_remove(track_dir)

    monkeypatch.setattr(segments, "_remove_track_dir", crash_after_one)
    with pytest.raises(OSError, match="simulated crash"):
        finalize(rec)
    monkeypatch.undo()
    assert (rec / MANIFEST_NAME).is_file()
    assert (rec / "t02").is_dir()

    manifest = finalize(rec)
    assert manifest == expected  # bit-exact joins: even the hashes agree
    assert sorted(os.listdir(rec)) == sorted(os.listdir(reference))
    files = {p.name: p.read_bytes() for p in rec.iterdir()}
    assert finalize(rec) == manifest  # and again: nothing changes
    assert {p.name: p.read_bytes() for p in rec.iterdir()} == files


def test_a_track_without_frames_is_left_out(
    tmp_path: Path, video: list[bytes], audio: list[bytes]
) -> None:
    with TrackWriter(tmp_path, "t01", "video", identity=CAMERA) as cam:
        for i in range(1, GOP):  # never a keyframe
            cam.write(video[i], i * VIDEO_TICKS, i / FPS)
    TrackWriter(tmp_path, "t02", "audio", identity=MIC).close()  # never written to
    (tmp_path / "t04").mkdir()  # a writer killed while writing its sidecar
    (tmp_path / "t04" / f".{SIDECAR_NAME}.tmp").write_text("{")
    with TrackWriter(tmp_path, "t03", "audio", identity=MIC) as mic:
        feed_audio(mic, audio[:50])
    (tmp_path / "notes").mkdir()  # not a track: left alone
    (tmp_path / "notes" / "x.txt").write_text("giữ lại")

    manifest = finalize(tmp_path)
    assert [t.id for t in manifest.tracks] == ["t03"]
    assert sorted(os.listdir(tmp_path)) == [MANIFEST_NAME, "notes", "t03.webm"]


def test_track_ids_must_be_safe_file_names(tmp_path: Path) -> None:
    for bad in ["../t01", "t/1", "", ".hidden", "t 1", "x" * 65]:
        with pytest.raises(ValueError, match="track id"):
            TrackWriter(tmp_path, bad, "audio", identity=MIC)
    with pytest.raises(ValueError, match="source"):
        TrackWriter(tmp_path, "t01", "video", identity={**CAMERA, "source": "mic"})
    with pytest.raises(ValueError, match="segment_seconds"):
        TrackWriter(tmp_path, "t01", "video", identity=CAMERA, segment_seconds=30)
    assert list(tmp_path.iterdir()) == []


def test_a_sidecar_that_names_another_track_is_not_trusted(
    tmp_path: Path, audio: list[bytes]
) -> None:
    with TrackWriter(tmp_path, "t01", "audio", identity=MIC) as mic:
        feed_audio(mic, audio[:50])
    (tmp_path / "t01").rename(tmp_path / "t09")  # its sidecar still says t01
    manifest = finalize(tmp_path)
    assert manifest.tracks == []
    assert (tmp_path / "t09" / SIDECAR_NAME).exists()


# --- a disk that refuses writes -----------------------------------------------------------


@contextlib.contextmanager
def tmpfs(path: Path, size: str, *, read_only: bool = False) -> Iterator[None]:
    """A small tmpfs at ``path`` (root only); skips the test if it cannot be mounted."""
    mount, umount = shutil.which("mount"), shutil.which("umount")
    if os.geteuid() != 0 or not mount or not umount:
        pytest.skip("a tmpfs needs root and mount(8)")
    path.mkdir(exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    done = subprocess.run(
        [mount, "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True
    )
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run([umount, str(path)], check=False)
        if os.path.ismount(path):
            subprocess.run([umount, "-l", str(path)], check=True)


def remount_read_only(path: Path) -> None:
    mount = shutil.which("mount")
    assert mount
    subprocess.run([mount, "-o", "remount,ro", str(path)], check=True)


def test_an_unwritable_directory_raises_os_error(tmp_path: Path, video: list[bytes]) -> None:
    with pytest.raises(FileNotFoundError):
        TrackWriter(tmp_path / "missing", "t01", "video", identity=CAMERA)
    if os.geteuid() != 0:
        tmp_path.chmod(0o500)
        try:
            with pytest.raises(PermissionError):
                TrackWriter(tmp_path, "t01", "video", identity=CAMERA)
        finally:
            tmp_path.chmod(0o700)
        return
    disk = tmp_path / "ro"
    with tmpfs(disk, "1m", read_only=True):  # root ignores file modes: a read-only mount
        with pytest.raises(OSError, match="Read-only file system") as caught:
            TrackWriter(disk, "t01", "video", identity=CAMERA)
        assert caught.value.errno == errno.EROFS
    disk = tmp_path / "later"
    with tmpfs(disk, "1m"):
        cam = TrackWriter(disk, "t01", "video", identity=CAMERA)
        remount_read_only(disk)  # turns read-only before the first frame
        with pytest.raises(OSError, match="Read-only file system"):
            cam.write(video[0], 0, 0.0)
        with pytest.raises(OSError, match="failed earlier"):  # and stays failed
            cam.write(video[1], VIDEO_TICKS, 1 / FPS)
        cam.close()


def test_a_full_disk_raises_os_error_and_spares_closed_segments(
    tmp_path: Path, video: list[bytes]
) -> None:
    disk = tmp_path / "disk"
    with tmpfs(disk, "400k"):
        cam = TrackWriter(disk, "t01", "video", identity=CAMERA, segment_seconds=1)
        with pytest.raises(OSError, match="No space left") as caught:
            feed_video(cam, video)  # ~75 KB/s: full after ~5 s
        assert caught.value.errno == errno.ENOSPC
        assert cam.packets < len(video)
        with pytest.raises(OSError, match="failed earlier"):
            cam.write(video[0], 0, 99.0)  # stays failed, touches nothing
        with contextlib.suppress(OSError):  # the trailer may not fit either
            cam.close()
        closed = sorted((disk / "t01").glob("*.webm"))
        assert len(closed) >= 2
        rec = tmp_path / "rec"
        shutil.copytree(disk, rec)
    manifest = finalize(rec, status="failed")
    stored = stored_packets(rec / "t01.webm")
    assert_prefix_of(stored, video)
    assert len(stored) >= len(closed) * FPS  # every closed segment is intact
    assert len(decode_all(rec / "t01.webm")) == len(stored) == manifest.tracks[0].packets


FSIZE_CHILD = textwrap.dedent(
    """
    import resource, sys
    from pathlib import Path
    from recordings.segments import TrackWriter
    from tests.recordings.media_fixtures import load_packets

    resource.setrlimit(resource.RLIMIT_FSIZE, (150_000, 150_000))  # < one 5 s segment
    identity = {"participant": "p1", "unit_id": None, "unit_name": "x", "source": "camera"}
    cam = TrackWriter(Path(sys.argv[1]), "t01", "video", identity=identity)
    frames = load_packets(Path(sys.argv[2]))
    try:
        for i, frame in enumerate(frames):
            cam.write(frame, i * 3000, i / 30)
    except OSError as e:
        print("OSError", e.errno, cam.packets, flush=True)
    else:
        print("no error", cam.packets, flush=True)
    try:
        cam.close()
    except OSError:
        pass
    """
)


def test_a_file_size_limit_raises_os_error(tmp_path: Path, video: list[bytes]) -> None:
    """The same refusal without root: RLIMIT_FSIZE in a child (Python ignores SIGXFSZ)."""
    save_packets(tmp_path / "video.bin", video)
    rec = tmp_path / "rec"
    rec.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", FSIZE_CHILD, str(rec), str(tmp_path / "video.bin")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    words = done.stdout.split()
    assert words[:2] == ["OSError", str(errno.EFBIG)], done.stdout + done.stderr
    written = int(words[2])
    assert 0 < written < len(video)
    manifest = finalize(rec, status="failed")
    stored = stored_packets(rec / "t01.webm")
    assert_prefix_of(stored, video)
    assert len(stored) >= written - FPS - 1  # at most the cluster that hit the limit
    assert len(decode_all(rec / "t01.webm")) == len(stored) == manifest.tracks[0].packets
