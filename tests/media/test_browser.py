"""The browser client in real Chromium against a real server: join links, the
device check, media through the SFU (read back with getStats), mute, a late
joiner, a dropped network, chair moderation, chat with hostile text.

Runs in a loopback-only network namespace (tests/media/conftest.py). One
meeting (module-scoped) is shared by the tests in file order: three sites —
the chair (QB) and Sở Nội vụ clicking through the device check, Bố Trạch with
``?autojoin=1`` — and tests that need more sites open and close their own.
"""

from __future__ import annotations

import statistics
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

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
SNV = "QB-SNV"
BOTRACH = "QB-BOTRACH"
LATE = "QB-STTTT"
REMOVED = "QB-BOTRACH-THUONGTRACH"
LOBBY = "QB-BOTRACH-TANTRACH"

VIETNAMESE = "Xin chào Bố Trạch — kiểm tra âm thanh"
HOSTILE = "<img src=x onerror=alert(1)>"

MEDIA_TIMEOUT = 15.0


@dataclass
class Meeting:
    server: DemoServer
    browsers: Browsers
    sites: dict[str, Site]
    # Click (or autojoin) to first remote frame, ms, for joins made while others published.
    first_frame_ms: dict[str, float] = field(default_factory=dict)
    timed_joins: list[str] = field(default_factory=list)

    def others(self, unit: str) -> list[str]:
        return [u for u in self.sites if u != unit]

    def pid(self, unit: str) -> str:
        return self.sites[unit].participant_id


def join(site: Site, server: DemoServer, unit: str, *, click: bool) -> None:
    """Open ``unit``'s link; click "Vào phòng họp" after the device check, or autojoin."""
    if click:
        site.open(server.link(unit))
        site.wait_js(
            "() => !document.getElementById('join-button').disabled", what="the device check"
        )
        site.page.click("#join-button")
    else:
        site.open(server.link(unit, autojoin="1"))
    site.wait_state("active")


def leave_and_close(meeting: Meeting, site: Site) -> None:
    """Leave through the UI (so rosters drop the site at once), then close the browser."""
    try:
        if site.state in ("active", "lobby"):
            if site.state == "active":
                site.page.click("#btn-leave")
                site.page.click("#confirm-yes")
            else:
                site.page.click("#status-leave")
            site.wait_state("left", timeout=5)
    finally:
        meeting.browsers.close(site)


def wait_rosters(meeting: Meeting, units: set[str], timeout: float = 10.0) -> None:
    for unit, site in meeting.sites.items():
        poll(
            site.roster_units,
            lambda got: set(got) == units,
            timeout=timeout,
            what=f"{unit}'s roster to list {sorted(units)}",
        )


def counter(site: Site, participant: str, kind: str, key: str) -> float:
    return float(site.inbound(participant, kind)[key])


def assert_rising(
    site: Site, participant: str, kind: str, key: str, *, timeout: float = MEDIA_TIMEOUT
) -> None:
    """``key`` of ``site``'s inbound ``kind`` from ``participant`` is > 0 and then grows."""
    what = f"{site.name}: {kind} {key} from {participant}"
    first = poll(
        lambda: counter(site, participant, kind, key), lambda v: v > 0, timeout=timeout, what=what
    )
    poll(
        lambda: counter(site, participant, kind, key),
        lambda v: v > first,
        timeout=timeout,
        what=f"{what} to rise above {first}",
    )


def assert_stalled(
    site: Site, participant: str, kind: str, key: str, *, window: float, timeout: float
) -> None:
    """Within ``timeout``, ``key`` stays unchanged for a whole ``window`` of seconds."""
    deadline = time.monotonic() + timeout
    last = counter(site, participant, kind, key)
    since = time.monotonic()
    while True:
        time.sleep(0.2)
        now_value = counter(site, participant, kind, key)
        if now_value != last:
            last, since = now_value, time.monotonic()
        elif time.monotonic() - since >= window:
            return
        if time.monotonic() > deadline:
            pytest.fail(
                f"{site.name}: {kind} {key} from {participant} kept rising "
                f"(last {last}) for {timeout} s"
            )


def first_frame(site: Site, timeout: float = MEDIA_TIMEOUT) -> float:
    value = poll(
        lambda: site.js("() => window.hoinghi.firstFrameDelay"),
        lambda v: v is not None,
        timeout=timeout,
        what=f"{site.name}: a first remote video frame",
    )
    return float(value)


def screenshot(site: Site, tmp_path: Path, name: str) -> Path:
    path = site.screenshot(tmp_path / name)
    print(f"screenshot: {path} (copied to /tmp/hoinghi-shots/{name})")
    return path


@pytest.fixture(scope="module")
def meeting(demo_server: DemoServer, browsers: Browsers) -> Meeting:  # noqa: F811
    sites = {
        CHAIR: browsers.launch("chair-QB"),
        SNV: browsers.launch("SNV"),
        BOTRACH: browsers.launch("BOTRACH"),
    }
    m = Meeting(demo_server, browsers, sites)
    join(sites[CHAIR], demo_server, CHAIR, click=True)
    join(sites[SNV], demo_server, SNV, click=True)
    join(sites[BOTRACH], demo_server, BOTRACH, click=False)
    # The chair was alone when it joined: its first frame waited for the others.
    m.timed_joins += [SNV, BOTRACH]
    return m


# --- the device check ----------------------------------------------------------------


def test_device_check_shows_preview_and_moving_level_meter(
    demo_server: DemoServer,  # noqa: F811
    browsers: Browsers,  # noqa: F811
    tmp_path: Path,
) -> None:
    site = browsers.launch("devicecheck")
    try:
        response = site.page.goto(demo_server.link(LATE), wait_until="load")
        assert response is not None
        assert response.status == 200
        csp = response.headers.get("content-security-policy", "")
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        site.wait_js(
            "() => { const v = document.getElementById('dc-preview');"
            " return v.readyState >= 2 && v.videoWidth > 0 && !v.paused; }",
            what="the camera preview to play",
        )
        # The fake microphone beeps: the meter must move, not sit at one value.
        levels: set[float] = set()

        def sample() -> set[float]:
            levels.add(float(site.js("() => document.getElementById('dc-meter').dataset.level")))
            return levels

        poll(
            sample,
            lambda seen: len(seen) >= 4 and max(seen) > 0.1,
            timeout=10,
            what="the level meter to move",
        )
        assert site.js("() => document.getElementById('dc-camera').options.length") >= 1
        assert site.js("() => document.getElementById('dc-mic').options.length") >= 1
        labels = site.js(
            "() => [...document.querySelectorAll('input[name=bandwidth]')]"
            ".map(i => i.parentElement.textContent.trim())"
        )
        assert labels == ["Đầy đủ", "Băng thông thấp (3G/4G)", "Chỉ âm thanh"]
        assert site.page.is_visible("#join-button")
        assert site.page.text_content("#join-button") == "Vào phòng họp"
        assert site.state == "devicecheck"
        screenshot(site, tmp_path, "device-check.png")
    finally:
        browsers.close(site)


# --- the shared meeting --------------------------------------------------------------


def test_three_sites_join_and_see_each_other_in_the_roster(
    meeting: Meeting, tmp_path: Path
) -> None:
    wait_rosters(meeting, {CHAIR, SNV, BOTRACH})
    chair = meeting.sites[CHAIR]
    names = chair.js(
        "() => [...document.querySelectorAll('#tiles .tile .tile-name')].map(e => e.textContent)"
    )
    assert any("Sở Nội vụ" in n for n in names), names
    assert len(names) == 3, names
    assert chair.page.is_visible("#btn-end"), "the chair has its controls"
    assert not meeting.sites[SNV].page.is_visible("#btn-end"), "a participant has none"
    screenshot(chair, tmp_path, "room-3-sites.png")


def test_each_site_decodes_the_others_video_and_audio(meeting: Meeting, tmp_path: Path) -> None:
    for unit, site in meeting.sites.items():
        for other in meeting.others(unit):
            pid = meeting.pid(other)
            assert_rising(site, pid, "video", "framesDecoded")
            assert_rising(site, pid, "audio", "totalSamplesReceived")
    for unit in meeting.timed_joins:
        meeting.first_frame_ms[unit] = first_frame(meeting.sites[unit])
    chair = meeting.sites[CHAIR]
    chair.wait_js(
        "() => document.querySelectorAll('#tiles .tile.has-video').length === 3",
        what="three tiles with video",
    )
    screenshot(chair, tmp_path, "room-3-sites-video.png")


def test_chat_shows_vietnamese_and_hostile_text_as_text(meeting: Meeting) -> None:
    for unit, text in ((SNV, VIETNAMESE), (BOTRACH, HOSTILE)):
        page = meeting.sites[unit].page
        page.click("#tab-chat")
        page.fill("#chat-text", text)
        page.click("#chat-send")
    for unit, site in meeting.sites.items():
        site.page.click("#tab-chat")
        texts = poll(
            lambda site=site: site.js(
                "() => [...document.querySelectorAll('#chat-log .chat-text')].map(e => e.textContent)"
            ),
            lambda got: VIETNAMESE in got and HOSTILE in got,
            timeout=10,
            what=f"{unit} to show both chat lines",
        )
        assert texts.count(HOSTILE) == 1
        assert site.js("() => document.querySelectorAll('#chat-log img').length") == 0
        senders = site.js(
            "() => [...document.querySelectorAll('#chat-log .chat-from')].map(e => e.textContent)"
        )
        assert "Sở Nội vụ" in senders
        assert site.dialogs == [], f"{unit}: a script ran: {site.dialogs}"
        site.page.click("#tab-people")


def test_mute_stops_that_sites_audio_at_the_others(meeting: Meeting) -> None:
    muted = meeting.sites[SNV]
    pid = meeting.pid(SNV)
    listeners = [meeting.sites[u] for u in meeting.others(SNV)]
    for site in listeners:
        assert_rising(site, pid, "audio", "packetsReceived")
    muted.page.click("#btn-mic")
    muted.wait_js(
        "async () => (await window.hoinghi.publishStats())"
        ".some(s => s.kind === 'audio' && s.active === false)",
        what="the audio sender to be inactive",
    )
    for site in listeners:
        assert_stalled(site, pid, "audio", "packetsReceived", window=1.5, timeout=8)
        site.wait_js(
            f"() => document.querySelector('#roster [data-participant=\"{pid}\"] .tag.muted')",
            what="the muted tag in the roster",
        )
    muted.page.click("#btn-mic")
    for site in listeners:
        assert_rising(site, pid, "audio", "packetsReceived")


def test_late_fourth_site_shows_video_within_2s(meeting: Meeting) -> None:
    site = meeting.browsers.launch("late-STTTT")
    try:
        join(site, meeting.server, LATE, click=False)
        delay = first_frame(site)
        meeting.first_frame_ms[LATE] = delay
        print(f"late joiner: first remote frame {delay:.0f} ms after autojoin")
        assert delay < 2000, f"the late site's first remote frame came after {delay:.0f} ms"
        for other in meeting.sites.values():
            assert_rising(site, other.participant_id, "video", "framesDecoded")
    finally:
        leave_and_close(meeting, site)
    wait_rosters(meeting, {CHAIR, SNV, BOTRACH})


def test_dropped_network_reconnects_and_decodes_again(meeting: Meeting) -> None:
    site = meeting.sites[BOTRACH]
    pid = site.participant_id
    chair = meeting.sites[CHAIR]
    chair_pid = chair.participant_id
    with diagnostics([site, chair]):
        # Every connection is gone at once (read in the same turn as the drop: the
        # client may be back before a second evaluate); then it comes back by itself.
        status, connections = site.js(
            """() => {
              window.hoinghi.dropNetwork();
              return [window.hoinghi.signalingStatus, Object.values(window.hoinghi.connections())];
            }"""
        )
        assert status != "open"
        assert "connected" not in connections
        site.wait_js("() => window.hoinghi.signalingStatus === 'open'", timeout=20, what="resume")
        assert site.state == "active"
        assert site.participant_id == pid, "resumed as the same participant"
        assert_rising(site, chair_pid, "video", "framesDecoded", timeout=20)
        assert_rising(site, chair_pid, "audio", "totalSamplesReceived", timeout=20)
        # ... and the others receive it again (it published anew).
        assert_rising(chair, pid, "video", "framesDecoded", timeout=20)
        assert_rising(chair, pid, "audio", "packetsReceived", timeout=20)
    wait_rosters(meeting, {CHAIR, SNV, BOTRACH})


def test_roll_call_dialog_answer_reaches_the_chair(meeting: Meeting) -> None:
    chair = meeting.sites[CHAIR]
    chair.page.click("#tab-rollcall")
    chair.page.click("#rollcall-start")
    answering = meeting.sites[SNV]
    answering.wait_js(
        "() => document.getElementById('rollcall-dialog').open", what="the roll call dialog"
    )
    answering.page.fill("#rollcall-headcount", "12")
    answering.page.click("#rollcall-submit")
    answering.wait_js(
        "() => !document.getElementById('rollcall-dialog').open", what="the dialog to close"
    )
    pid = meeting.pid(SNV)
    row = chair.wait_js(
        f"() => document.querySelector('#rollcall-answers tr[data-participant=\"{pid}\"]')"
        "?.textContent",
        what="the answer in the chair's table",
    )
    assert "Sở Nội vụ" in row
    assert "Có mặt" in row
    assert "12" in row
    chair.page.click("#rollcall-close")
    for site in meeting.sites.values():
        site.wait_js(
            "() => !document.getElementById('rollcall-dialog').open",
            what="no roll call dialog after closing",
        )
    chair.page.click("#tab-people")


def test_locked_room_sends_a_newcomer_to_the_lobby_and_the_chair_admits_it(
    meeting: Meeting,
) -> None:
    chair = meeting.sites[CHAIR]
    chair.page.click("#btn-lock")
    chair.wait_js("() => !document.getElementById('badge-locked').hidden", what="the locked badge")
    site = meeting.browsers.launch("lobby-TANTRACH")
    try:
        site.open(meeting.server.link(LOBBY, autojoin="1"))
        site.wait_state("lobby")
        detail = site.wait_js(
            "() => document.getElementById('status-detail').textContent",
            what="the lobby position",
        )
        assert detail == "Vị trí trong hàng chờ: 1"
        chair.page.click("#tab-lobby")
        chair.page.click("#lobby-list [data-action=admit]")
        site.wait_state("active")
        poll(
            chair.roster_units,
            lambda units: LOBBY in units,
            timeout=10,
            what="the admitted site in the chair's roster",
        )
    finally:
        leave_and_close(meeting, site)
        chair.page.click("#tab-people")
        chair.page.click("#btn-lock")
    wait_rosters(meeting, {CHAIR, SNV, BOTRACH})


def test_chair_removes_a_site(meeting: Meeting) -> None:
    site = meeting.browsers.launch("removed-THUONGTRACH")
    try:
        join(site, meeting.server, REMOVED, click=False)
        wait_rosters(meeting, {CHAIR, SNV, BOTRACH, REMOVED})
        chair = meeting.sites[CHAIR]
        pid = site.participant_id
        chair.page.click(f'#roster [data-participant="{pid}"] [data-action=remove]')
        chair.page.click("#confirm-yes")
        site.wait_state("removed")
        assert site.page.is_visible("#status")
        assert site.page.text_content("#status-title") == "Điểm cầu đã bị mời ra khỏi cuộc họp"
        assert not site.page.is_visible("#room")
        for unit, other in meeting.sites.items():
            poll(
                other.roster_units,
                lambda units: REMOVED not in units,
                timeout=10,
                what=f"{unit}'s roster to drop the removed site",
            )
    finally:
        meeting.browsers.close(site)


def test_click_to_first_remote_frame_p50(meeting: Meeting) -> None:
    # Joins from earlier tests; any not measured yet (the media test failed) are read now.
    for unit in meeting.timed_joins:
        if unit not in meeting.first_frame_ms:
            meeting.first_frame_ms[unit] = first_frame(meeting.sites[unit])
    figures = meeting.first_frame_ms
    p50 = statistics.median(figures.values())
    print(
        "click-to-first-remote-frame (ms): "
        + ", ".join(f"{u} {v:.0f}" for u, v in figures.items())
        + f"; p50 {p50:.0f}"
    )
    assert p50 < 1500, f"p50 click-to-first-frame {p50:.0f} ms (target < 1500 ms)"


def test_static_files_are_served_with_a_javascript_type(demo_server: DemoServer) -> None:  # noqa: F811
    for name in ("main.js", "signaling.js", "media.js", "room.js", "client.css"):
        with urllib.request.urlopen(f"{demo_server.base_url}/static/{name}") as r:  # noqa: S310
            ctype = r.headers.get("Content-Type", "")
            assert r.status == 200
            assert ("javascript" in ctype) if name.endswith(".js") else ("css" in ctype), ctype
