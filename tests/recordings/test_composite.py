"""The composite: recordings made of real VP8/Opus WebM files (``composite_fixtures``),
composed, and the MP4 checked with ffprobe and by decoding it with PyAV.

Each site's camera is a solid colour, so where a site shows up in the picture is a
matter of sampling a patch; the audio is tones, so "sound" and "silence" are RMS
levels and "a mix" is two tones' frequencies in one spectrum. Outputs are small
(640x360 at 10 fps) where a check allows, to keep the file fast.
"""

from __future__ import annotations

import itertools
import json
import logging
import shutil
import subprocess
import sys
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
import pytest

from recordings import composite
from recordings.composite import (
    BAND_ALPHA,
    _Painter,
    _soft_clip,
    _SpeakerChooser,
    compose,
)
from recordings.manifest import MANIFEST_NAME
from tests.recordings.composite_fixtures import Site, Tone, make_recording

ROOT = Path(__file__).resolve().parents[2]
FFPROBE = shutil.which("ffprobe")
W, H, FPS = 640, 360, 10

RED = (220, 40, 40)
GREEN = (40, 200, 60)
BLUE = (40, 70, 220)
YELLOW = (230, 210, 40)
MAGENTA = (200, 60, 200)
LONG_NAME = "Ủy ban nhân dân huyện Lệ Thủy"

Colour = tuple[int, int, int]
Picture = npt.NDArray[np.uint8]


# --- reading the output --------------------------------------------------------------


def _probe(path: Path) -> dict[str, Any]:
    if FFPROBE is None:
        pytest.skip("ffprobe is not installed")
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def _frames(path: Path, times: Sequence[float]) -> dict[float, Picture]:
    """The decoded RGB frame nearest each of ``times``."""
    best: dict[float, tuple[float, Picture]] = {}
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            assert frame.time is not None
            for t in times:
                distance = abs(frame.time - t)
                if t not in best or distance < best[t][0]:
                    best[t] = (distance, np.asarray(frame.to_ndarray(format="rgb24"), np.uint8))
    assert set(best) == set(times)
    assert all(d < 0.11 for d, _ in best.values()), "no frame near a time asked for"
    return {t: picture for t, (_, picture) in best.items()}


def _audio(path: Path) -> tuple[npt.NDArray[np.float64], int]:
    """The decoded audio, channels averaged, and its rate."""
    chunks = []
    rate = 0
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            rate = frame.sample_rate
            chunks.append(np.asarray(frame.to_ndarray(), np.float64).mean(axis=0))
    return np.concatenate(chunks), rate


def _rms(samples: npt.NDArray[np.float64], rate: int, start: float, end: float) -> float:
    part = samples[round(start * rate) : round(end * rate)]
    return float(np.sqrt(np.mean(part**2)))


def _tones(samples: npt.NDArray[np.float64], rate: int, start: float, end: float) -> set[int]:
    """The frequencies (Hz, rounded to 10) holding at least a tenth of the loudest's power."""
    part = samples[round(start * rate) : round(end * rate)]
    power = np.abs(np.fft.rfft(part * np.hanning(len(part)))) ** 2
    freqs = np.fft.rfftfreq(len(part), 1 / rate)
    peaks = freqs[power >= power.max() / 10]
    return {int(round(f, -1)) for f in peaks}


def _patch(picture: Picture, x: int, y: int, r: int = 8) -> Colour:
    """The mean colour of a square around (x, y)."""
    mean = picture[y - r : y + r, x - r : x + r].reshape(-1, 3).mean(axis=0)
    return (int(mean[0]), int(mean[1]), int(mean[2]))


def _near(colour: Sequence[int], expected: Colour, tolerance: int = 40) -> bool:
    return all(abs(int(a) - b) <= tolerance for a, b in zip(colour, expected, strict=True))


def _share(picture: Picture, colour: Colour, tolerance: int = 40) -> float:
    """The share of the picture's pixels that are ``colour``."""
    diff = np.abs(picture.astype(np.int16) - np.array(colour, np.int16))
    return float(np.mean(np.all(diff <= tolerance, axis=2)))


# --- the four-site grid recording ----------------------------------------------------

# A: red, a 440 Hz tone at 1..3 s, the camera switches from 16:9 to 4:3 at 4 s.
# B: green, 660 Hz at 2..2.5 s (over A's) and 5..6.5 s; no packets at 2.5..4 s (muted).
# C: blue, joins at 3 s (both tracks), 550 Hz at 7.2..7.8 s (4.2..4.8 s of its own tracks).
# D: yellow, silent microphone, camera paused (no frames) at 5.5..8.5 s.
GRID_SECONDS = 9.0
GRID_SITES = [
    Site("pA", LONG_NAME, RED, [Tone(1, 3, 0.3)], resize=(4.0, (240, 180))),
    Site(
        "pB",
        "Sở Thông tin và Truyền thông",
        GREEN,
        [Tone(2.0, 2.5, 0.1, 660), Tone(5, 6.5, 0.1, 660)],
        audio_gaps=[(2.5, 4.0)],
    ),
    Site("pC", "UBND thành phố Đồng Hới", BLUE, [Tone(7.2, 7.8, 0.2, 550)], start=3.0),
    Site("pD", "Huyện Quảng Trạch", YELLOW, [], video_gaps=[(5.5, 8.5)]),
]
# Quadrant centres of a 2x2 grid on the 640x360 canvas, a little above the name band.
TOP_LEFT, TOP_RIGHT, BOTTOM_LEFT, BOTTOM_RIGHT = (160, 80), (480, 80), (160, 260), (480, 260)


@dataclass
class Composed:
    directory: Path
    path: Path
    progress: list[tuple[float, float]]  # (monotonic time, fraction)
    wall: float


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Composed:
    directory = tmp_path_factory.mktemp("grid")
    make_recording(directory, GRID_SITES, GRID_SECONDS)
    calls: list[tuple[float, float]] = []
    began = time.monotonic()
    path = compose(
        directory,
        layout="grid",
        width=W,
        height=H,
        fps=FPS,
        progress=lambda f: calls.append((time.monotonic(), f)),
    )
    return Composed(directory, path, calls, time.monotonic() - began)


def test_the_mp4_has_one_h264_and_one_aac_stream_as_long_as_the_recording(grid: Composed) -> None:
    assert grid.path == grid.directory / "composite.mp4"
    info = _probe(grid.path)
    codecs = sorted((s["codec_type"], s["codec_name"]) for s in info["streams"])
    assert codecs == [("audio", "aac"), ("video", "h264")]
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    audio = next(s for s in info["streams"] if s["codec_type"] == "audio")
    assert (video["width"], video["height"]) == (W, H)
    assert audio["sample_rate"] == "48000"
    assert float(info["format"]["duration"]) == pytest.approx(GRID_SECONDS, rel=0.05)
    assert float(video["duration"]) == pytest.approx(GRID_SECONDS, rel=0.05)
    assert float(audio["duration"]) == pytest.approx(GRID_SECONDS, rel=0.05)


def test_the_audio_is_a_mix_of_every_track_at_its_place_in_time(grid: Composed) -> None:
    samples, rate = _audio(grid.path)
    assert rate == 48_000
    # Sound wherever a site had sound: A, A + B, B after its gap, C after its late start.
    for start, end in [(1.2, 1.9), (2.1, 2.4), (5.2, 6.3), (7.3, 7.7)]:
        assert _rms(samples, rate, start, end) > 0.03, (start, end)
    # Silence where none had: before anyone spoke, in B's gap (no packets; were it closed
    # up, B's tone would come 1.5 s early), before C's tone (were C's start_offset
    # ignored, its tone would be at 4.2 s), and after.
    for start, end in [(0.1, 0.9), (3.2, 4.8), (6.7, 7.1), (8.0, 8.9)]:
        assert _rms(samples, rate, start, end) < 0.005, (start, end)
    # A mix: while A and B both spoke, both tones are there; each site keeps its level.
    assert _tones(samples, rate, 1.3, 1.9) == {440}
    assert _tones(samples, rate, 2.05, 2.45) == {440, 660}
    assert _tones(samples, rate, 7.3, 7.7) == {550}
    assert _rms(samples, rate, 1.2, 1.9) > 2 * _rms(samples, rate, 5.2, 6.3)


def test_grid_tiles_show_each_site_in_its_place(grid: Composed) -> None:
    picture = _frames(grid.path, [5.0])[5.0]
    assert _near(_patch(picture, *TOP_LEFT), RED)
    assert _near(_patch(picture, *TOP_RIGHT), GREEN)
    assert _near(_patch(picture, *BOTTOM_LEFT), BLUE)
    assert _near(_patch(picture, *BOTTOM_RIGHT), YELLOW)


def test_grid_names_are_drawn_on_a_dark_band_at_the_bottom_of_each_tile(grid: Composed) -> None:
    picture = _frames(grid.path, [5.0])[5.0]
    for x0, colour in ((8, RED), (328, GREEN)):
        band = picture[162:176, x0 + 4 : x0 + 300]
        above = picture[120:134, x0 + 4 : x0 + 300]
        # the band darkens the picture...
        assert band.mean() < 0.8 * above.mean()
        assert not _near(_patch(picture, x0 + 280, 169, 4), colour, 30)
        # ...and holds text: light pixels that the picture itself does not have
        assert np.sum(band.min(axis=2) > 180) > 40
        assert np.sum(above.min(axis=2) > 180) == 0


def test_a_late_track_appears_only_after_its_start_offset(grid: Composed) -> None:
    frames = _frames(grid.path, [1.5, 2.9, 3.2, 5.0])
    for t in (1.5, 2.9):  # three sites: A and B on top, D centred below; no blue at all
        assert _share(frames[t], BLUE) < 0.001, t
        assert _near(_patch(frames[t], 320, 260), YELLOW), t
    for t in (3.2, 5.0):
        assert _near(_patch(frames[t], *BOTTOM_LEFT), BLUE), t
        assert _share(frames[t], BLUE) > 0.15, t


def test_a_camera_that_changes_size_mid_stream_is_letterboxed_anew(grid: Composed) -> None:
    frames = _frames(grid.path, [2.0, 5.0])
    # 16:9 in a 314x174 tile: red to its left edge; 4:3 after 4 s: black bars at the sides
    assert _near(_patch(frames[2.0], 14, 80, 4), RED)
    assert _near(_patch(frames[5.0], 14, 80, 4), (0, 0, 0), 20)
    assert _near(_patch(frames[5.0], *TOP_LEFT), RED)


def test_a_paused_camera_shows_the_site_name_on_a_plain_tile(grid: Composed) -> None:
    frames = _frames(grid.path, [6.5, 8.0, 8.9])
    # a second without frames: the last frame stays; more than two: a name tile
    assert _near(_patch(frames[6.5], *BOTTOM_RIGHT), YELLOW)
    tile = frames[8.0][186:356, 330:630]
    assert _share(tile, YELLOW) < 0.001
    assert _near(_patch(frames[8.0], 340, 200), (44, 52, 64), 20)
    assert np.sum(tile.min(axis=2) > 180) > 40  # the name
    assert _near(_patch(frames[8.9], *BOTTOM_RIGHT), YELLOW)  # back after the pause


def test_progress_rises_a_few_times_a_second_and_ends_at_one(grid: Composed) -> None:
    fractions = [f for _, f in grid.progress]
    assert len(fractions) >= 2
    assert fractions[-1] == 1.0
    assert all(0.0 <= f <= 1.0 for f in fractions)
    assert all(b > a for a, b in itertools.pairwise(fractions))
    assert 1.0 not in fractions[:-1]
    times = [t for t, _ in grid.progress[:-1]]
    assert all(b - a >= 0.2 for a, b in itertools.pairwise(times))  # 5 a second at most
    assert len(fractions) <= grid.wall / 0.2 + 3
    assert not (grid.directory / ".composite.mp4.tmp").exists()


# --- the speaker layout --------------------------------------------------------------

# B speaks for 4 s while A murmurs, then A speaks; C is silent. From 7.5 s C shares
# its screen (magenta).
SPEAKER_SECONDS = 10.0
SPEAKER_SITES = [
    Site("pA", LONG_NAME, RED, [Tone(0, 4, 0.02), Tone(4, 10, 0.3)]),
    Site("pB", "Sở Nội vụ", GREEN, [Tone(0, 4, 0.3, 660), Tone(4, 10, 0.02, 660)]),
    Site("pC", "Huyện Bố Trạch", BLUE, []),
    Site("pC", "Huyện Bố Trạch", MAGENTA, audio=False, screen=True, start=7.5),
]
MAIN = (320, 140)  # the middle of the main area (640 x 284 above a 72 px strip)
STRIP = slice(290, 354)


@pytest.fixture(scope="module")
def speaker_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("speaker")
    make_recording(directory, SPEAKER_SITES, SPEAKER_SECONDS)
    return directory


def test_speaker_layout_shows_the_loudest_site_large(speaker_recording: Path) -> None:
    path = compose(speaker_recording, layout="speaker", width=W, height=H, fps=FPS)
    frames = _frames(path, [1.0, 3.5, 5.5, 7.0, 9.0])
    for t in (1.0, 3.5):  # B is the loudest
        assert _near(_patch(frames[t], *MAIN, 20), GREEN), t
        strip = frames[t][STRIP]
        assert _share(strip, RED) > 0.05, t
        assert _share(strip, BLUE) > 0.05, t
        assert _share(strip, GREEN) < 0.001, t
    for t in (5.5, 7.0):  # then A
        assert _near(_patch(frames[t], *MAIN, 20), RED), t
        assert _share(frames[t][STRIP], GREEN) > 0.05, t
    # a screen share takes the main area; the speaker joins the thumbnails
    assert _near(_patch(frames[9.0], *MAIN, 20), MAGENTA)
    strip = frames[9.0][STRIP]
    assert all(_share(strip, c) > 0.05 for c in (RED, GREEN, BLUE))
    assert _share(frames[7.0], MAGENTA) < 0.001  # not before it starts


def test_grid_layout_gives_a_screen_share_the_first_tile(speaker_recording: Path) -> None:
    path = compose(speaker_recording, layout="grid", width=W, height=H, fps=FPS)
    frames = _frames(path, [5.0, 9.0])
    assert _near(_patch(frames[5.0], *TOP_LEFT), RED)
    assert _near(_patch(frames[9.0], *TOP_LEFT), MAGENTA)
    assert _near(_patch(frames[9.0], *TOP_RIGHT), RED)
    assert _near(_patch(frames[9.0], *BOTTOM_LEFT), GREEN)
    assert _near(_patch(frames[9.0], *BOTTOM_RIGHT), BLUE)


def _choices(energies: list[tuple[float, float]]) -> list[int | None]:
    chooser = _SpeakerChooser(2, fps=10)
    for tick, levels in enumerate(energies):
        chooser.push(tick, np.array(levels))
    return [chooser.choose(tick, [True, True]) for tick in range(len(energies))]


def test_the_speaker_does_not_flicker_between_sites_taking_turns() -> None:
    loud, quiet = 1e-2, 1e-6
    alone = [(loud, quiet)] * 30
    turns = [(loud, quiet) if (k // 3) % 2 else (quiet, loud) for k in range(60)]
    then_b = [(quiet, loud)] * 60
    choices = _choices(alone + turns + then_b)
    assert choices[:90] == [0] * 90  # short turns at the same level change nothing
    switches = [k for k in range(1, len(choices)) if choices[k] != choices[k - 1]]
    assert len(switches) == 1
    assert 85 <= switches[0] <= 100
    assert choices[-1] == 1


def test_a_new_speaker_waits_until_the_shown_one_has_had_its_dwell() -> None:
    loud, quiet = 1e-2, 1e-6
    choices = _choices([(loud, quiet)] * 3 + [(quiet, loud)] * 57)
    assert choices[0] == 0
    first_b = choices.index(1)
    assert first_b >= 15  # 1.5 s at least


def test_silence_keeps_the_speaker() -> None:
    choices = _choices([(1e-2, 0.0)] * 30 + [(0.0, 1e-6)] * 60)
    assert set(choices) == {0}


# --- pieces --------------------------------------------------------------------------


def test_the_mix_never_clips_and_is_untouched_below_the_knee() -> None:
    x = np.linspace(-4, 4, 8001, dtype=np.float32)[None, :].repeat(2, axis=0)
    y = _soft_clip(x.copy())
    assert np.all(np.abs(y) <= 1.0)
    assert np.all(np.diff(y[0]) >= 0)
    small = np.abs(x) <= 0.8
    assert np.array_equal(y[small], x[small])


def _ink_rows(name: str) -> npt.NDArray[np.intp]:
    label = _Painter(64, 64)._render_label(name, 420, 40)
    text = label.keep[:, :, 0] < 256 - BAND_ALPHA - 20
    return np.flatnonzero(text.any(axis=1))


def test_names_keep_their_vietnamese_diacritics() -> None:
    plain = _ink_rows("Uy ban nhan dan huyen Le Thuy")
    marked = _ink_rows(LONG_NAME)
    assert marked.size
    assert plain.size
    assert marked.min() < plain.min() - 1  # the hook of Ủ stands above the capitals
    assert marked.max() >= plain.max()  # the dot under ệ (and y's tail) below
    painter = _Painter(64, 64)
    decomposed = unicodedata.normalize("NFD", LONG_NAME)
    a = painter._render_label(LONG_NAME, 420, 40)
    b = painter._render_label(decomposed, 420, 40)
    assert np.array_equal(a.keep, b.keep)  # combining marks drawn as precomposed letters


# --- files, errors and the command line ----------------------------------------------


def _small(directory: Path, seconds: float = 2.0) -> Path:
    sites = [
        Site("pA", "Xã Quảng Phú", RED, [Tone(0.5, 1.5, 0.2)]),
        Site("pB", "Xã Quảng Hợp", GREEN, []),
    ]
    make_recording(directory, sites, seconds)
    return directory


def test_a_rerun_replaces_the_composite_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    directory = _small(tmp_path / "r")
    (directory / "composite.mp4").write_bytes(b"an old, broken composite")
    (directory / ".composite.mp4.tmp").write_bytes(b"left by a killed run")
    before = set(directory.iterdir())
    path = compose(directory, layout="grid", width=W, height=H, fps=FPS)
    assert float(_probe(path)["format"]["duration"]) == pytest.approx(2.0, rel=0.05)
    assert set(directory.iterdir()) == before - {directory / ".composite.mp4.tmp"}
    first = path.read_bytes()
    compose(directory, layout="speaker", width=W, height=H, fps=FPS)
    assert path.read_bytes() != first
    assert not (directory / ".composite.mp4.tmp").exists()


def test_a_failed_run_keeps_the_previous_composite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = _small(tmp_path / "r")
    path = compose(directory, width=W, height=H, fps=FPS)
    good = path.read_bytes()
    encode = composite._Encoder.video
    written: list[Path] = []

    def fail_midway(self: composite._Encoder, rgb: Any) -> None:
        encode(self, rgb)
        written.extend(directory.glob(".composite*"))
        if len(written) >= 10:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(composite._Encoder, "video", fail_midway)
    with pytest.raises(OSError, match="No space"):
        compose(directory, width=W, height=H, fps=FPS)
    assert written  # it did write a temporary file...
    assert not (directory / ".composite.mp4.tmp").exists()  # ...and removed it
    assert path.read_bytes() == good


def test_a_missing_track_file_is_left_out(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    directory = _small(tmp_path / "r")
    (directory / "t03-video.webm").unlink()  # B's camera
    with caplog.at_level(logging.WARNING, logger="recordings.composite"):
        path = compose(directory, layout="grid", width=W, height=H, fps=FPS)
    assert "t03" in caplog.text
    picture = _frames(path, [1.0])[1.0]
    assert _share(picture, RED) > 0.1
    assert _share(picture, GREEN) < 0.001


def test_no_manifest_is_a_file_not_found_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="manifest"):
        compose(tmp_path)
    with pytest.raises(FileNotFoundError):
        compose(tmp_path / "nowhere")


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "[]",
        '{"version": 99}',
        '{"version": 1, "recording_id": 1}',
        '{"version": 1, "recording_id": 1, "meeting_id": 1, "number": 1, "title": "",'
        ' "started_at": "", "ended_at": "", "status": "finished", "duration_seconds": 5,'
        ' "tracks": [{"id": "t01"}]}',
        '{"version": 1, "recording_id": 1, "meeting_id": 1, "number": 1, "title": "",'
        ' "started_at": "", "ended_at": "", "status": "finished", "duration_seconds": 0,'
        ' "tracks": []}',
    ],
    ids=["garbage", "list", "version", "fields", "track", "empty"],
)
def test_an_invalid_manifest_is_a_value_error(tmp_path: Path, text: str) -> None:
    (tmp_path / MANIFEST_NAME).write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match="manifest"):
        compose(tmp_path)
    assert not (tmp_path / "composite.mp4").exists()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recordings.composite", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_command_prints_json_progress_then_done(tmp_path: Path) -> None:
    directory = _small(tmp_path / "r")
    run = _cli(str(directory), "--layout", "grid", "--width", "640", "--height", "360")
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    progress = [line["progress"] for line in lines[:-1]]
    assert progress
    assert all(set(line) == {"progress"} for line in lines[:-1])
    assert progress == sorted(progress)
    assert progress[-1] == 1.0
    done = lines[-1]
    assert done["done"] == str(directory / "composite.mp4")
    assert done["media_seconds"] == pytest.approx(2.0)
    assert done["seconds"] > 0
    assert (directory / "composite.mp4").stat().st_size > 0


@pytest.mark.parametrize("manifest", [None, "{bad"])
def test_the_command_exits_1_with_one_line_on_a_bad_recording(
    tmp_path: Path, manifest: str | None
) -> None:
    if manifest is not None:
        (tmp_path / MANIFEST_NAME).write_text(manifest, encoding="utf-8")
    run = _cli(str(tmp_path))
    assert run.returncode == 1
    assert run.stdout == ""
    assert len(run.stderr.strip().splitlines()) == 1
    assert "manifest" in run.stderr
