"""The whole story of one meeting, in real Chromium against a real ``hoinghi demo``
server with its media engine (issue 6's acceptance test):

1. the secretariat signs in, schedules a meeting (recording on) that starts at
   the next minute, inviting three units, and copies their links with the Copy
   button (read back from the clipboard);
2. the chair signs in, checks its devices on the device-check page and joins from
   its "today" page;
3. three operator browsers open the copied links, pass the device check and
   wait in the lobby, which counts down to the start;
4. the chair admits them and runs a roll call that each site answers with its
   headcount and delegates' names (Vietnamese, byte-exact);
5. the meeting goes live at its start and is recorded; the administrator's status
   page shows the live room; the chair ends the meeting;
6. the clerk finds it in the archive, downloads the XLSX (read back with
   openpyxl: the three units present, minutes above zero, their roll-call
   answers), has the composite video made and plays it.

Each main page is photographed into the shots dir (tests/media/browser_support.py
SHOTS_DIR), kept as a CI artifact. Nothing sleeps a fixed time to decide a result:
every wait polls with a deadline.
"""

from __future__ import annotations

import io
import re
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl

from conference.demo import DEMO_TITLE

from .browser_support import (
    Browsers,
    DemoServer,
    Site,
    browsers,  # noqa: F401  (fixture)
    demo_server,  # noqa: F401  (fixture)
    diagnostics,
    playwright_driver,  # noqa: F401  (fixture)
    poll,
    shot,
    sign_in,
)

LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")
TITLE = "Hội nghị trực tuyến triển khai nhiệm vụ chuyển đổi số năm 2027 — tỉnh Quảng Bình"
AGENDA = ["Báo cáo của Sở Thông tin và Truyền thông", "Ý kiến các đơn vị; kết luận của Chủ tịch"]
ROLL_CALL = "Điểm danh đầu giờ"
# (search text, unit code, headcount, delegates): the three invited units' answers.
SITES = [
    ("nội vụ", "QB-SNV", 3, ["Nguyễn Thị Hường", "Trần Văn Đức"]),
    ("Y TẾ", "QB-SYT", 2, ["Lê Quang Vũ"]),
    ("đồng hới", "QB-DONGHOI", 4, ["Phạm Thị Thuỷ", "Hoàng Văn Lợi", "Võ Đình Ngữ"]),
]
CHAIR = "QB"


def next_start() -> datetime:
    """The next whole minute at least 50 s away (the form takes hours and minutes):
    time for everyone to wait in the lobby, and a start this test then waits for."""
    now = datetime.now(LOCAL)
    start = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    if (start - now).total_seconds() < 50:
        start += timedelta(minutes=1)
    return start


def schedule(sec: Site, server: DemoServer, tmp_path: Path) -> tuple[datetime, dict[str, str]]:
    """The secretariat's part: the meeting and the three units' copied links."""
    page = sec.page
    # The demo's own meeting holds the chair unit now: the Office cancels it first.
    sign_in(sec, server, "thuky", "/meetings")
    page.click(f"table.meetings a:has-text({DEMO_TITLE!r})")
    page.wait_for_url(re.compile(r".*/meetings/\d+/invitations$"))
    sec.js("() => { window.confirm = () => true; }")
    page.fill("#cancel-reason", "Dời sang hội nghị chuyển đổi số")
    page.click("#cancel-form button[type=submit]")
    sec.wait_js("() => !document.getElementById('cancel-form')", what="the demo meeting cancelled")
    sec.open(f"{server.base_url}/meetings/new")
    start = next_start()
    page.fill("#title", TITLE)
    page.fill(".agenda-row textarea", AGENDA[0])
    page.click("#add-agenda")
    page.locator(".agenda-row textarea").nth(1).fill(AGENDA[1])
    page.fill("#date", start.date().isoformat())
    page.fill("#starts", start.strftime("%H:%M"))
    page.fill("#ends", (start + timedelta(hours=1)).strftime("%H:%M"))
    page.select_option("#chair_unit", CHAIR)
    for query, code, _, _ in SITES:
        page.fill("#unit-search", query)
        page.check(f'#unit-list .unit[data-code="{code}"] input')
    page.fill("#unit-search", "")
    page.check("#recording")
    shot(sec, "story-01-secretariat-form.png", tmp_path)
    page.click("#save")
    page.wait_for_url(re.compile(r".*/meetings/\d+/invitations\?created=1$"))
    links: dict[str, str] = {}
    for _, code, _, _ in SITES:
        page.click(f'button.copy-link[data-unit="{code}"]')
        sec.wait_js(
            "() => document.getElementById('inv-message').textContent === 'Đã sao chép đường dẫn.'",
            what="the copied notice",
        )
        links[code] = str(sec.js("() => navigator.clipboard.readText()"))
        assert links[code] == page.input_value(f"#link-{code}")
        sec.js("() => { document.getElementById('inv-message').textContent = ''; }")
    shot(sec, "story-02-secretariat-invitations.png", tmp_path)
    return start, links


def enter(site: Site, url: str, expected_state: str) -> None:
    """Open a join link, pass the device check (camera and microphone found, the
    meter moving), then join."""
    site.open(url)
    site.wait_js(
        "() => !document.getElementById('join-button').disabled",
        timeout=20,
        what="the device check",
    )
    site.page.click("#join-button")
    site.wait_state(expected_state, timeout=20)


def test_the_whole_story(
    demo_server: DemoServer,  # noqa: F811
    browsers: Browsers,  # noqa: F811
    tmp_path: Path,
) -> None:
    server = demo_server
    assert server.media, "the story needs the media engine (recording)"
    sec = browsers.launch("thuky")
    sec.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.base_url)
    with diagnostics([sec]):
        start, links = schedule(sec, server, tmp_path)
    browsers.close(sec)

    # The chair: its "today" page lists the meeting, counting down; it joins from there.
    chair = browsers.launch("chutri")
    operators = {code: browsers.launch(f"op-{code}") for _, code, _, _ in SITES}
    everyone = [chair, *operators.values()]
    with diagnostics(everyone):
        sign_in(chair, server, "chutri", "/today")
        card = chair.page.locator(".today-meeting", has_text=TITLE)
        assert card.count() == 1
        assert card.locator(".countdown").text_content().startswith("Bắt đầu sau")
        shot(chair, "story-03-chair-today.png", tmp_path)
        # The device check on its own page, any day: save the devices, come back.
        card.locator("a.device-check").click()
        chair.page.wait_for_url(f"{server.base_url}/devicecheck")
        chair.wait_js(
            "() => !document.getElementById('join-button').disabled", what="devices opened"
        )
        chair.wait_js(
            "() => Number(document.getElementById('dc-meter').getAttribute('aria-valuenow')) > 0",
            what="the microphone level moving",
        )
        chair.page.click("#join-button")
        chair.wait_js("() => !document.getElementById('dc-saved').hidden", what="saved")
        assert chair.js("() => localStorage.getItem('hoinghi.devices')")
        shot(chair, "story-03b-device-check.png", tmp_path)
        chair.page.go_back()
        chair.page.wait_for_url(f"{server.base_url}/today")
        chair_link = card.locator("a.join").get_attribute("href")
        assert chair_link is not None
        assert "/join/" in chair_link
        enter(chair, chair_link, "active")  # the chair enters directly

        # The operators: device check, then the lobby with its countdown.
        for code, site in operators.items():
            enter(site, links[code], "lobby")
        site = operators["QB-SNV"]
        countdown = site.wait_js(
            "() => { const e = document.getElementById('lobby-countdown');"
            " return e && !e.hidden && e.textContent; }",
            what="the lobby's countdown",
        )
        assert str(countdown).startswith("Bắt đầu sau"), countdown
        shot(site, "story-04-operator-lobby.png", tmp_path)

        # The chair admits the three, in the order they came.
        chair.page.click("#tab-lobby")
        chair.wait_js(
            "() => document.querySelectorAll('#lobby-list [data-action=admit]').length === 3",
            what="three sites waiting",
        )
        shot(chair, "story-05-chair-lobby.png", tmp_path)
        # The first one by its own button, the others with "admit everyone".
        chair.page.click("#lobby-list [data-action=admit] >> nth=0")
        chair.wait_js(
            "() => document.querySelectorAll('#lobby-list [data-action=admit]').length === 2",
            what="two sites left waiting",
        )
        chair.page.click("#lobby-admit-all")
        for site in operators.values():
            site.wait_state("active")
        units = {CHAIR, *operators}
        for site in everyone:
            poll(site.roster_units, lambda got: set(got) == units, timeout=15, what="rosters")

        # The roll call: each site answers with its headcount and delegates.
        chair.page.click("#tab-rollcall")
        chair.page.fill("#rollcall-title", ROLL_CALL)
        chair.page.click("#rollcall-start")
        for _, code, headcount, delegates in SITES:
            site = operators[code]
            site.wait_js("() => document.getElementById('rollcall-dialog').open", what="dialog")
            site.page.fill("#rollcall-headcount", str(headcount))
            site.page.fill("#rollcall-delegates", "\n".join(delegates))
            if code == "QB-SNV":
                shot(site, "story-06-operator-rollcall.png", tmp_path)
            site.page.click("#rollcall-submit")
            site.wait_js("() => !document.getElementById('rollcall-dialog').open", what="sent")
            if code == "QB-SNV":
                # The chair's browser reloads mid roll call (it happens): back in the
                # room, its panel shows the answer already given.
                chair.open(f"{chair_link}?autojoin=1")
                chair.wait_state("active", timeout=20)
                chair.page.click("#tab-rollcall")
                chair.wait_js(
                    "() => document.querySelectorAll('#rollcall-answers tr.answered').length === 1",
                    what="the answer given before the reload",
                )
        chair.wait_js(
            "() => document.querySelectorAll('#rollcall-answers tr.answered').length === 3",
            what="three answers at the chair",
        )
        table = str(chair.page.text_content("#rollcall-answers"))
        for _, _, _, delegates in SITES:
            for name in delegates:
                assert name in table, (name, table)
        shot(chair, "story-07-chair-rollcall.png", tmp_path)
        chair.page.click("#rollcall-close")

        # The start: the room goes live and records; the admin sees it on the status page.
        wait = (start - datetime.now(LOCAL)).total_seconds() + 20
        chair.wait_js(
            "() => !document.getElementById('badge-recording').hidden",
            timeout=max(wait, 20),
            what="recording at the start",
        )
        admin = browsers.launch("admin")
        with diagnostics([admin]):
            sign_in(admin, server, "admin", "/admin/status")
            admin.wait_js(
                f"() => document.querySelector('main').textContent.includes({TITLE!r})",
                what="the live room on the status page",
            )
            shot(admin, "story-08-admin-status.png", tmp_path)
        browsers.close(admin)
        shot(chair, "story-09-chair-live.png", tmp_path)
        # Some seconds of all four sites' media in the recording.
        recording_from = datetime.now(LOCAL)
        poll(
            lambda: (datetime.now(LOCAL) - recording_from).total_seconds(),
            lambda s: s >= 8,
            timeout=20,
            interval=0.5,
            what="8 s of recording",
        )
        chair.page.click("#btn-end")
        chair.page.click("#confirm-yes")
        for site in operators.values():
            site.wait_state("ended", timeout=20)
    for site in everyone:
        browsers.close(site)

    clerk = browsers.launch("vanthu")
    with diagnostics([clerk]):
        page = clerk.page
        sign_in(clerk, server, "vanthu", "/archive")
        page.fill("#q", "chuyen doi so nam 2027")
        page.click("form.filters button[type=submit]")
        page.wait_for_load_state()
        shot(clerk, "story-10-clerk-archive.png", tmp_path)
        page.click(f"table.archive a:has-text({TITLE!r})")
        page.wait_for_url(re.compile(r".*/archive/meetings/\d+$"))
        shot(clerk, "story-11-clerk-meeting.png", tmp_path)
        with page.expect_download() as download:
            page.click("#download-xlsx")
        book = openpyxl.load_workbook(io.BytesIO(Path(download.value.path()).read_bytes()))
        check_workbook(book)

        # The recording: make the composite video, then play it.
        page.click("table.recordings tbody a >> nth=0")
        page.wait_for_url(re.compile(r".*/recordings/\d+$"))
        page.click("#compose button[type=submit]")
        # The page follows the job's progress and reloads itself, with the player, when done.
        clerk.wait_js(
            "() => document.getElementById('composite-progress').value > 0",
            timeout=60,
            what="the composite's progress",
        )
        page.wait_for_selector("#player", timeout=120_000)
        page.wait_for_load_state()
        clerk.wait_js(
            "() => { const v = document.getElementById('player'); return v && v.readyState >= 1; }",
            timeout=120,
            what="the composite video to be made",
        )
        duration = float(clerk.js("() => document.getElementById('player').duration"))
        assert duration >= 6, duration
        clerk.js("() => { const v = document.getElementById('player'); v.muted = true; v.play(); }")
        clerk.wait_js(
            "() => document.getElementById('player').currentTime > 1.5",
            timeout=15,
            what="the video playing",
        )
        # Near the end the picture is the sites' cameras (Chromium's fake camera is
        # green), not the title card shown until the recorder's first frames (it joins
        # at the start, so its first frames come a few seconds in).
        red, green, blue = clerk.js(
            """async () => {
              const v = document.getElementById('player');
              v.pause();
              v.currentTime = v.duration - 1.5;
              await new Promise((done) => v.addEventListener('seeked', done, { once: true }));
              const canvas = document.createElement('canvas');
              canvas.width = 160;
              canvas.height = 90;
              const g = canvas.getContext('2d');
              g.drawImage(v, 0, 0, 160, 90);
              const d = g.getImageData(0, 0, 160, 90).data;
              const sum = [0, 0, 0];
              for (let i = 0; i < d.length; i += 4) for (let k = 0; k < 3; k++) sum[k] += d[i + k];
              return sum.map((x) => x / (d.length / 4));
            }"""
        )
        shot(clerk, "story-12-clerk-recording.png", tmp_path)
        assert green > 60, (red, green, blue)
        assert green > 1.5 * max(red, blue), (red, green, blue)
        shot(clerk, "story-12-clerk-recording.png", tmp_path)
        assert not [line for line in clerk.console if line.startswith("pageerror")]


def check_workbook(book: openpyxl.Workbook) -> None:
    """The three invited units present with minutes above zero, and their answers."""
    sheet = book["Điểm danh"]
    header_row = next(r for r in range(1, 10) if sheet.cell(row=r, column=1).value == "STT")
    headers = [c.value for c in sheet[header_row]]
    rows = [
        dict(zip(headers, (c.value for c in row), strict=False))
        for row in sheet.iter_rows(min_row=header_row + 1)
        if row[0].value is not None
    ]
    by_unit = {r["Mã đơn vị"]: r for r in rows}
    assert set(by_unit) == {CHAIR, *(code for _, code, _, _ in SITES)}, by_unit
    for _, code, _, _ in SITES:
        unit = by_unit[code]
        assert unit["Có mặt"] == "Có", unit
        assert float(unit["Số phút kết nối"]) > 0, unit
        assert unit["Vắng mặt"] != "Có", unit
    calls = book["Điểm danh nhanh"]
    call_headers = [c.value for c in calls[1]]
    answers = {
        r["Mã đơn vị"]: r
        for r in (
            dict(zip(call_headers, (c.value for c in row), strict=False))
            for row in calls.iter_rows(min_row=2)
        )
    }
    for _, code, headcount, delegates in SITES:
        answer = answers[code]
        assert answer["Tiêu đề"] == ROLL_CALL
        assert answer["Có mặt"] == "Có"
        assert answer["Số người"] == headcount
        assert answer["Đại biểu"] == "; ".join(delegates)
