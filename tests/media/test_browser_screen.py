"""The browser client in real Chromium against a real server: screen sharing (the
chair gives the presenter role, the site shares its screen, the chair takes the
role back) and the bandwidth choices ``audio`` and ``low``.

Runs in a loopback-only network namespace (tests/media/conftest.py). One
meeting (module-scoped) is shared by the tests in file order: the chair (QB),
Sở Nội vụ (the presenter) and Bố Trạch; the bandwidth tests open and close
their own extra site.

Screen capture: ``navigator.mediaDevices.getDisplayMedia`` works in headless
Chromium 156 with the flags browser_support.CHROMIUM_ARGS already has, and needs
both: ``--use-fake-ui-for-media-stream`` accepts the picker (without it the call
never settles) and ``--use-fake-device-for-media-stream`` supplies a synthetic
"screen" as big as the page's screen, 1366x768 with browser_support.VIEWPORT
(without it: NotReadableError "Could not start video source").
``--auto-select-desktop-capture-source``, ``--auto-accept-this-tab-capture`` and
Playwright permissions are not needed. So the client's real getDisplayMedia
path runs here; no test hook stands in for it.

What the client's ``window.hoinghi`` does not expose (outbound-rtp frame sizes,
the raw receivers) the tests read from every RTCPeerConnection the page makes:
an init script records them (``PEER_CONNECTIONS``). It only observes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .browser_support import (
    Browsers,
    DemoServer,
    Site,
    browsers,  # noqa: F401  (fixture)
    demo_server,  # noqa: F401  (fixture)
    diagnostics,
    playwright_driver,  # noqa: F401  (fixture)
    poll,
)

CHAIR = "QB"
PRESENTER = "QB-SNV"
VIEWER = "QB-BOTRACH"
AUDIO_ONLY = "QB-STTTT"
LOW = "QB-BOTRACH-TANTRACH"

MEDIA_TIMEOUT = 15.0
# docs/protocol.md "Bandwidth": low sites publish 320x180 at 15 fps, at most 300 kbit/s.
LOW_SIZE = (320, 180)
LOW_FPS = 15
LOW_MAX_BITRATE = 300_000
# A frame rate measured from counters over a few seconds wobbles a little (more
# at a receiver: the jitter buffer lets frames out in bursts).
SEND_FPS_SLACK = 1.5
RECEIVE_FPS_SLACK = 2.5

# Keeps every RTCPeerConnection the page creates (closed ones too) in a list.
PEER_CONNECTIONS = """
(() => {
  const Native = window.RTCPeerConnection;
  if (!Native || window.__testPeerConnections) return;
  const all = [];
  Object.defineProperty(window, "__testPeerConnections", { value: all });
  window.RTCPeerConnection = new Proxy(Native, {
    construct(target, args, newTarget) {
      const pc = Reflect.construct(target, args, newTarget);
      all.push(pc);
      return pc;
    },
  });
})();
"""

# Every live sender of every open connection, with its outbound-rtp counters.
SENDERS_JS = """async () => {
  const out = [];
  for (const pc of window.__testPeerConnections || []) {
    if (pc.signalingState === "closed") continue;
    for (const sender of pc.getSenders()) {
      const track = sender.track;
      if (!track) continue;
      const enc = sender.getParameters().encodings?.[0] || {};
      const row = {
        kind: track.kind, readyState: track.readyState, settings: track.getSettings(),
        active: enc.active ?? null, maxBitrate: enc.maxBitrate ?? null,
        connection: pc.connectionState,
        packetsSent: 0, bytesSent: 0, framesEncoded: 0, frameWidth: 0, frameHeight: 0,
        framesPerSecond: 0, at: performance.now(),
      };
      (await sender.getStats()).forEach((s) => {
        if (s.type !== "outbound-rtp") return;
        row.at = s.timestamp;
        for (const k of ["packetsSent", "bytesSent", "framesEncoded", "frameWidth",
                         "frameHeight", "framesPerSecond"]) {
          if (typeof s[k] === "number") row[k] = s[k];
        }
      });
      out.push(row);
    }
  }
  return out;
}"""

# Every receiving transceiver of every open connection, with its inbound-rtp counters.
RECEIVERS_JS = """async () => {
  const out = [];
  for (const pc of window.__testPeerConnections || []) {
    if (pc.signalingState === "closed") continue;
    for (const t of pc.getTransceivers()) {
      if (t.mid == null || t.direction === "sendonly") continue;
      const row = {
        mid: t.mid, kind: t.receiver.track.kind, direction: t.currentDirection,
        packetsReceived: 0, bytesReceived: 0, framesDecoded: 0, frameWidth: 0,
        frameHeight: 0, totalSamplesReceived: 0, at: performance.now(),
      };
      (await t.receiver.getStats()).forEach((s) => {
        if (s.type !== "inbound-rtp") return;
        row.at = s.timestamp;
        for (const k of ["packetsReceived", "bytesReceived", "framesDecoded", "frameWidth",
                         "frameHeight", "totalSamplesReceived"]) {
          if (typeof s[k] === "number") row[k] = s[k];
        }
      });
      out.push(row);
    }
  }
  return out;
}"""


@dataclass
class Meeting:
    server: DemoServer
    browsers: Browsers
    sites: dict[str, Site]

    def pid(self, unit: str) -> str:
        return self.sites[unit].participant_id


# --- helpers -----------------------------------------------------------------------


def launch(pool: Browsers, name: str) -> Site:
    """A Chromium whose pages record their RTCPeerConnections (PEER_CONNECTIONS)."""
    site = pool.launch(name)
    site.context.add_init_script(PEER_CONNECTIONS)
    return site


def senders(site: Site) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = site.js(SENDERS_JS)
    return rows


def receivers(site: Site) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = site.js(RECEIVERS_JS)
    return rows


def video_sender(site: Site) -> dict[str, Any]:
    """The camera's video sender (zeros if none)."""
    for row in senders(site):
        if row["kind"] == "video" and "displaySurface" not in row["settings"]:
            return row
    return {"framesEncoded": 0, "frameWidth": 0, "frameHeight": 0, "settings": {}}


def receiver(site: Site, mid: str) -> dict[str, Any]:
    """The raw receiver of ``mid`` on ``site``'s receiving connection (zeros if gone)."""
    for row in receivers(site):
        if row["mid"] == mid:
            return row
    return {"mid": mid, "framesDecoded": 0, "packetsReceived": 0, "frameWidth": 0}


def counter(site: Site, participant: str, kind: str, key: str, source: str = "camera") -> float:
    return float(site.inbound(participant, kind, source)[key])


def assert_rising(
    site: Site,
    participant: str,
    kind: str,
    key: str,
    *,
    source: str = "camera",
    timeout: float = MEDIA_TIMEOUT,
) -> None:
    """``key`` of ``site``'s inbound ``kind`` from ``participant``'s ``source`` is > 0 and grows."""
    what = f"{site.name}: {source} {kind} {key} from {participant}"
    first = poll(
        lambda: counter(site, participant, kind, key, source),
        lambda v: v > 0,
        timeout=timeout,
        what=what,
    )
    poll(
        lambda: counter(site, participant, kind, key, source),
        lambda v: v > first,
        timeout=timeout,
        what=f"{what} to rise above {first}",
    )


def assert_stops(fetch: Callable[[], float], *, window: float, timeout: float, what: str) -> None:
    """Within ``timeout``, ``fetch()`` does not rise for a whole ``window`` of seconds."""
    deadline = time.monotonic() + timeout
    high = fetch()
    since = time.monotonic()
    while True:
        time.sleep(0.2)
        value = fetch()
        if value > high:
            high, since = value, time.monotonic()
        elif time.monotonic() - since >= window:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{what} kept rising (last {high}) for {timeout} s")


def assert_holds(
    fetch: Callable[[], Any], ok: Callable[[Any], bool], *, window: float, what: str
) -> None:
    """``ok(fetch())`` on every sample for ``window`` seconds (a negative that must last)."""
    end = time.monotonic() + window
    while True:
        value = fetch()
        if not ok(value):
            pytest.fail(f"{what}; got: {value!r}")
        if time.monotonic() > end:
            return
        time.sleep(0.2)


def rate(
    fetch: Callable[[], dict[str, Any]], key: str, *, seconds: float
) -> tuple[float, list[dict[str, Any]]]:
    """Per second growth of ``fetch()[key]`` over about ``seconds`` (by the stats' own
    timestamps), and the samples."""
    samples = [fetch()]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.25)
        samples.append(fetch())
    first, last = samples[0], samples[-1]
    elapsed = (last["at"] - first["at"]) / 1000
    assert elapsed > 0, samples
    return (last[key] - first[key]) / elapsed, samples


def screen_tile(site: Site) -> dict[str, Any] | None:
    """The screen tile as ``site`` shows it (None when there is none)."""
    info: dict[str, Any] | None = site.js(
        """() => {
          const area = document.getElementById('screen-area');
          const tile = area.querySelector('.tile.screen');
          if (!tile) return null;
          const v = tile.querySelector('video');
          return {areaHidden: area.hidden, name: tile.querySelector('.tile-name').textContent,
                  readyState: v.readyState, width: v.videoWidth, height: v.videoHeight,
                  hasSource: v.srcObject !== null,
                  frames: v.getVideoPlaybackQuality().totalVideoFrames};
        }"""
    )
    return info


def tile_video_size(site: Site, participant: str) -> tuple[int, int]:
    size: list[int] = site.js(
        """(pid) => {
          const v = document.querySelector(`#tiles .tile[data-participant="${pid}"] video`);
          return v ? [v.videoWidth, v.videoHeight] : [0, 0];
        }""",
        participant,
    )
    return size[0], size[1]


def assert_screen_shown(site: Site, presenter: str, captured: dict[str, Any]) -> None:
    """``site`` decodes ``presenter``'s screen and its screen tile paints it."""
    assert_rising(site, presenter, "video", "framesDecoded", source="screen")
    tile = poll(
        lambda: screen_tile(site),
        lambda t: bool(t and not t["areaHidden"] and t["readyState"] >= 2 and t["width"]),
        timeout=MEDIA_TIMEOUT,
        what=f"{site.name}: the screen tile to show video",
    )
    assert tile is not None
    assert tile["name"] == "Màn hình: Sở Nội vụ", tile
    # The shape of the captured screen (the camera, 16:9 too, has its own tile).
    shape = captured["width"] / captured["height"]
    assert abs(tile["width"] / tile["height"] - shape) < 0.02, (tile, captured)
    first = tile["frames"]
    poll(
        lambda: (screen_tile(site) or {}).get("frames", 0),
        lambda n: n > first,
        timeout=MEDIA_TIMEOUT,
        what=f"{site.name}: the screen tile to paint new frames",
    )
    # The presenter's camera comes too, in its own tile.
    assert_rising(site, presenter, "video", "framesDecoded")


def assert_screen_gone(site: Site, presenter: str, mid: str) -> None:
    """No more frames reach ``site``'s receiver ``mid`` (the screen); its tile goes."""
    assert_stops(
        lambda: float(receiver(site, mid)["framesDecoded"]),
        window=2.0,
        timeout=10,
        what=f"{site.name}: screen frames (mid {mid})",
    )
    poll(
        lambda: screen_tile(site),
        lambda t: t is None,
        timeout=10,
        what=f"{site.name}: the screen tile to go",
    )
    assert site.js("() => document.getElementById('screen-area').hidden")
    # The presenter's camera goes on.
    assert_rising(site, presenter, "video", "framesDecoded")


def wait_roster_tag(site: Site, participant: str, text: str) -> None:
    site.wait_js(
        f"() => [...document.querySelectorAll("
        f"'#roster [data-participant=\"{participant}\"] .tag')].some(t => t.textContent === {text!r})",
        what=f"the {text!r} tag on {participant} in the roster",
    )


def leave_and_close(pool: Browsers, site: Site) -> None:
    try:
        if site.state == "active":
            site.page.click("#btn-leave")
            site.page.click("#confirm-yes")
            site.wait_state("left", timeout=5)
    finally:
        pool.close(site)


def screenshot(site: Site, tmp_path: Path, name: str) -> None:
    path = site.screenshot(tmp_path / name)
    print(f"screenshot: {path} (copied to /tmp/hoinghi-shots/{name})")


@pytest.fixture(scope="module")
def meeting(demo_server: DemoServer, browsers: Browsers) -> Meeting:  # noqa: F811
    sites = {
        CHAIR: launch(browsers, "chair-QB"),
        PRESENTER: launch(browsers, "presenter-SNV"),
        VIEWER: launch(browsers, "viewer-BOTRACH"),
    }
    for unit, site in sites.items():
        site.open(demo_server.link(unit, autojoin="1"))
    for site in sites.values():
        site.wait_state("active")
    m = Meeting(demo_server, browsers, sites)
    for unit, site in sites.items():
        poll(
            site.roster_units,
            lambda got: set(got) == set(sites),
            timeout=10,
            what=f"{unit}'s roster to list the three sites",
        )
    return m


# --- screen sharing ------------------------------------------------------------------


def test_presenter_shares_its_screen_and_the_others_decode_it(
    meeting: Meeting, tmp_path: Path
) -> None:
    chair, presenter = meeting.sites[CHAIR], meeting.sites[PRESENTER]
    viewers = [chair, meeting.sites[VIEWER]]
    pid = meeting.pid(PRESENTER)
    with diagnostics(list(meeting.sites.values())):
        for site in meeting.sites.values():
            assert not site.page.is_visible("#btn-screen"), f"{site.name} may share before"
        # The chair's control in the roster sends `presenter`.
        action = f'#roster [data-participant="{pid}"] [data-action=presenter]'
        assert chair.page.text_content(action) == "Cho trình chiếu"
        chair.page.click(action)
        presenter.wait_js(
            "() => !document.getElementById('btn-screen').hidden", what="the share button"
        )
        for site in meeting.sites.values():
            wait_roster_tag(site, pid, "Trình chiếu")
        for site in viewers:
            assert not site.page.is_visible("#btn-screen"), f"{site.name} is no presenter"
        assert chair.page.text_content(action) == "Thu trình chiếu"

        presenter.page.click("#btn-screen")
        presenter.wait_js(
            "async () => (await window.hoinghi.publishStats())"
            ".some(s => s.source === 'screen' && s.kind === 'video' && s.packetsSent > 0)",
            what="the screen to be sent",
        )
        assert presenter.page.text_content("#btn-screen") == "Dừng chia sẻ"
        # What goes out is a display capture (getDisplayMedia), not the camera.
        screens = [r for r in senders(presenter) if "displaySurface" in r["settings"]]
        assert len(screens) == 1, senders(presenter)
        captured = screens[0]["settings"]
        assert captured["displaySurface"] == "monitor", captured
        assert captured["width"] > 0, captured
        assert captured["height"] > 0, captured

        for site in viewers:
            assert_screen_shown(site, pid, captured)
        assert screen_tile(presenter) is None, "the presenter gets no copy of its own screen"
        screenshot(chair, tmp_path, "screen-share.png")


def test_chair_takes_the_presenter_role_back_and_the_screen_stops(meeting: Meeting) -> None:
    chair, presenter = meeting.sites[CHAIR], meeting.sites[PRESENTER]
    viewers = [chair, meeting.sites[VIEWER]]
    pid = meeting.pid(PRESENTER)
    with diagnostics(list(meeting.sites.values())):
        mids = {}
        for site in viewers:
            assert_rising(site, pid, "video", "framesDecoded", source="screen")
            mids[site.name] = str(site.inbound(pid, "video", "screen")["mid"])
        action = f'#roster [data-participant="{pid}"] [data-action=presenter]'
        assert chair.page.text_content(action) == "Thu trình chiếu"
        chair.page.click(action)

        presenter.wait_js(
            "() => document.getElementById('btn-screen').hidden", what="no share button"
        )
        presenter.wait_js(
            "async () => !(await window.hoinghi.publishStats()).some(s => s.source === 'screen')",
            what="the screen publication to close",
        )
        assert not [r for r in senders(presenter) if "displaySurface" in r["settings"]]
        for site in meeting.sites.values():
            site.wait_js(
                f"() => !document.querySelector('#roster [data-participant=\"{pid}\"] .tag.presenter')",
                what="no presenter tag",
            )

        for site in viewers:
            assert_screen_gone(site, pid, mids[site.name])


# --- bandwidth -----------------------------------------------------------------------


def test_audio_only_site_hears_everyone_and_sends_and_receives_no_video(
    meeting: Meeting,
) -> None:
    site = launch(meeting.browsers, "audio-STTTT")
    chair = meeting.sites[CHAIR]
    try:
        with diagnostics([site, chair]):
            # The device check's bandwidth choice.
            site.open(meeting.server.link(AUDIO_ONLY))
            site.wait_js(
                "() => !document.getElementById('join-button').disabled", what="the device check"
            )
            site.page.check("input[name=bandwidth][value=audio]")
            site.wait_js(
                "() => !document.getElementById('dc-no-video').hidden"
                " && !document.getElementById('join-button').disabled",
                what="the device check without camera",
            )
            site.page.click("#join-button")
            site.wait_state("active")
            pid = site.participant_id
            roster = {p["id"]: p for p in site.js("() => window.hoinghi.roster()")}
            assert roster[pid]["bandwidth"] == "audio"
            wait_roster_tag(chair, pid, "Chỉ âm thanh")

            for unit, other in meeting.sites.items():
                assert_rising(site, other.participant_id, "audio", "totalSamplesReceived")
                assert_rising(other, pid, "audio", "totalSamplesReceived")
                print(f"audio-only site hears {unit}, and {unit} hears it")

            # It sends audio and only audio.
            published = site.js("() => window.hoinghi.publishStats()")
            assert [(p["source"], p["kind"]) for p in published] == [("camera", "audio")], published
            sent = senders(site)
            assert [r["kind"] for r in sent] == ["audio"], sent
            assert not site.page.is_visible("#btn-camera")
            # Nothing of video arrives, and nothing of its video reaches the others.
            assert_holds(
                lambda: (
                    [r for r in site.stats() if r["kind"] == "video"],
                    [r for r in receivers(site) if r["kind"] == "video"],
                    [r for r in chair.stats() if r["participant"] == pid and r["kind"] == "video"],
                ),
                lambda got: got == ([], [], []),
                window=2.0,
                what="the audio-only site receives or sends video",
            )
            assert site.js("() => document.querySelectorAll('#tiles .tile.has-video').length") == 0
            assert not chair.js(
                f"() => document.querySelector('#tiles .tile[data-participant=\"{pid}\"]')"
                ".classList.contains('has-video')"
            )
    finally:
        leave_and_close(meeting.browsers, site)


def test_low_bandwidth_site_sends_at_most_320x180_at_15_fps(meeting: Meeting) -> None:
    site = launch(meeting.browsers, "low-TANTRACH")
    chair = meeting.sites[CHAIR]
    try:
        with diagnostics([site, chair]):
            # The join link's bandwidth parameter (an unattended room PC on 3G/4G).
            site.open(meeting.server.link(LOW, autojoin="1", bandwidth="low"))
            site.wait_state("active")
            pid = site.participant_id
            wait_roster_tag(chair, pid, "3G/4G")

            # At the sender: what the camera gives and what the encoder sends.
            sent = poll(
                lambda: video_sender(site),
                lambda r: r["framesEncoded"] > 0 and r["frameWidth"] > 0,
                timeout=MEDIA_TIMEOUT,
                what="low: video to be encoded",
            )
            settings = sent["settings"]
            assert settings["width"] <= LOW_SIZE[0], settings
            assert settings["height"] <= LOW_SIZE[1], settings
            assert settings["frameRate"] <= LOW_FPS, settings
            assert sent["maxBitrate"] == LOW_MAX_BITRATE, sent
            fps, samples = rate(lambda: video_sender(site), "framesEncoded", seconds=2.5)
            sizes = {(s["frameWidth"], s["frameHeight"]) for s in samples}
            print(f"low sender: {fps:.1f} fps encoded, frame sizes {sorted(sizes)}")
            assert all(0 < w <= LOW_SIZE[0] and 0 < h <= LOW_SIZE[1] for w, h in sizes), sizes
            assert 0 < fps <= LOW_FPS + SEND_FPS_SLACK, f"{fps:.1f} fps encoded"
            # For contrast, a full site's camera is bigger: the cap is the client's doing.
            full = video_sender(chair)["settings"]
            assert full["width"] > LOW_SIZE[0], full

            # At a receiver: decoded at most 320x180, at most 15 fps.
            assert_rising(chair, pid, "video", "framesDecoded")
            mid = str(chair.inbound(pid, "video")["mid"])
            got = poll(
                lambda: receiver(chair, mid),
                lambda r: r["frameWidth"] > 0,
                timeout=MEDIA_TIMEOUT,
                what="chair: the low site's decoded frame size",
            )
            assert got["frameWidth"] <= LOW_SIZE[0], got
            assert got["frameHeight"] <= LOW_SIZE[1], got
            fps, samples = rate(lambda: receiver(chair, mid), "framesDecoded", seconds=3.0)
            print(
                f"chair decodes the low site at {fps:.1f} fps, {got['frameWidth']}x{got['frameHeight']}"
            )
            assert 0 < fps <= LOW_FPS + RECEIVE_FPS_SLACK, f"{fps:.1f} fps decoded"
            width, height = poll(
                lambda: tile_video_size(chair, pid),
                lambda s: s[0] > 0,
                timeout=MEDIA_TIMEOUT,
                what="chair: the low site's tile to show video",
            )
            assert width <= LOW_SIZE[0], (width, height)
            assert height <= LOW_SIZE[1], (width, height)
    finally:
        leave_and_close(meeting.browsers, site)
