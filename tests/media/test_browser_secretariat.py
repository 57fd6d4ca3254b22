"""The secretariat's pages in real Chromium against a real ``hoinghi demo`` server.

The demo's secretariat account (``thuky``, its password read from the demo's
banner) signs in, lands on the meetings page, opens the form, types a
Vietnamese title and agenda, picks three units with the search box, saves,
lands on the invitations page and copies one unit's link with the Copy button
(read back from the clipboard). Each page is photographed into the shots dir.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

from .browser_support import (
    Browsers,
    DemoServer,
    browsers,  # noqa: F401  (fixture)
    demo_server,  # noqa: F401  (fixture)
    diagnostics,
    playwright_driver,  # noqa: F401  (fixture)
    shot,
)

TITLE = "Hội nghị sơ kết công tác chuyển đổi số quý IV — tỉnh Quảng Bình"
AGENDA = ["Báo cáo kết quả triển khai", "Ý kiến của các sở, ngành và địa phương"]
PICKS = [("nội vụ", "QB-SNV"), ("Y TẾ", "QB-SYT"), ("đồng hới", "QB-DONGHOI")]


def test_secretariat_schedules_a_meeting_and_copies_a_link(
    demo_server: DemoServer,  # noqa: F811
    browsers: Browsers,  # noqa: F811
    tmp_path: Path,
) -> None:
    site = browsers.launch("thuky")
    site.context.grant_permissions(
        ["clipboard-read", "clipboard-write"], origin=demo_server.base_url
    )
    page = site.page
    with diagnostics([site]):
        # Not signed in: the form sends us to the login page, and back after it.
        site.open(f"{demo_server.base_url}/meetings/new")
        assert page.url.startswith(f"{demo_server.base_url}/login?next=")
        page.fill("#username", "thuky")
        page.fill("#password", demo_server.password("thuky"))
        shot(site, "secretariat-1-login.png", tmp_path)
        page.click("button[type=submit]")
        page.wait_for_url(f"{demo_server.base_url}/meetings/new")
        assert page.text_content("h1") == "Tạo cuộc họp"
        assert page.text_content("nav.site-nav a[aria-current=page]") == "Lịch họp"

        # The form: title, agenda rows, a day ten days ahead, the chair unit.
        day = (datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")) + timedelta(days=10)).date()
        page.fill("#title", TITLE)
        page.fill(".agenda-row textarea", AGENDA[0])
        page.click("#add-agenda")
        page.locator(".agenda-row textarea").nth(1).fill(AGENDA[1])
        page.click("#add-agenda")  # an empty third row is left out
        page.fill("#date", day.isoformat())
        page.fill("#starts", "14:00")
        page.fill("#ends", "16:30")
        page.select_option("#chair_unit", "QB-STTTT")
        for query, code in PICKS:
            page.fill("#unit-search", query)
            visible = site.js(
                "() => [...document.querySelectorAll('#unit-list .unit')]"
                ".filter(li => !li.hidden).map(li => li.dataset.code)"
            )
            assert code in visible, (query, visible)
            assert len(visible) < 5, (query, visible)
            page.check(f'#unit-list .unit[data-code="{code}"] input')
        page.fill("#unit-search", "")
        assert page.text_content("#unit-count") == "Đã chọn 3 đơn vị"
        shot(site, "secretariat-2-form.png", tmp_path)

        # Errors next to their fields: a missing title (checked here), then a day
        # in the past (refused by the API, shown under the end time).
        page.fill("#title", "")
        page.click("#save")
        site.wait_js("() => document.getElementById('title-error').textContent", what="title error")
        assert page.text_content("#title-error") == "Vui lòng nhập mục này."
        assert page.get_attribute("#title", "aria-invalid") == "true"
        page.fill("#title", TITLE)
        page.fill("#date", (day - timedelta(days=30)).isoformat())
        page.click("#save")
        site.wait_js("() => document.getElementById('ends_at-error').textContent", what="API error")
        assert page.text_content("#ends_at-error") == "Thời gian kết thúc đã qua."
        assert page.text_content("#title-error") == ""
        shot(site, "secretariat-2b-form-error.png", tmp_path)
        page.fill("#date", day.isoformat())

        page.click("#save")
        page.wait_for_url(re.compile(r".*/meetings/\d+/invitations\?created=1$"))
        assert page.text_content("h1") == TITLE
        units = site.js(
            "() => [...document.querySelectorAll('table.invitations tbody tr')]"
            ".map(tr => tr.dataset.unit)"
        )
        assert sorted(units) == ["QB-DONGHOI", "QB-SNV", "QB-STTTT", "QB-SYT"]

        # Copy one unit's link; the clipboard holds exactly the link on the page.
        link = page.input_value("#link-QB-SNV")
        assert "/join/" in link
        page.click('button.copy-link[data-unit="QB-SNV"]')
        site.wait_js(
            "() => document.getElementById('inv-message').textContent === 'Đã sao chép đường dẫn.'",
            what="the copied notice",
        )
        assert site.js("() => navigator.clipboard.readText()") == link
        shot(site, "secretariat-3-invitations.png", tmp_path)

        # Edit: one unit out (its invitation revoked), another in, a new end time.
        meeting_path = page.url.split("?")[0].removesuffix("/invitations")
        site.open(f"{meeting_path}/edit")
        assert page.input_value("#title") == TITLE
        assert page.input_value(".agenda-row textarea >> nth=1") == AGENDA[1]
        page.uncheck('#unit-list .unit[data-code="QB-SYT"] input')
        page.fill("#unit-search", "ba đồn")
        page.keyboard.press("Enter")  # the only unit found is ticked
        assert page.is_checked('#unit-list .unit[data-code="QB-BADON"] input')
        page.fill("#ends", "17:00")
        page.click("#save")
        page.wait_for_url(f"{meeting_path}/invitations")
        assert "14:00–17:00" in page.text_content("main")
        revoked = site.js(
            "() => [...document.querySelectorAll('tr.revoked')].map(tr => tr.dataset.unit)"
        )
        assert revoked == ["QB-SYT"]
        assert page.input_value("#link-QB-BADON").count("/join/") == 1
        # The token's expiry follows the new end time, so the shown link is a new one.
        assert page.input_value("#link-QB-SNV").count("/join/") == 1

        # Re-issue one link (the page asks first: say yes), then it differs.
        before = page.input_value("#link-QB-SNV")
        site.js("() => { window.confirm = () => true; }")
        page.click('button.reissue[data-unit="QB-SNV"]')
        site.wait_js(
            f"() => document.getElementById('link-QB-SNV') && "
            f"document.getElementById('link-QB-SNV').value !== {before!r}",
            what="a new link",
        )

        # The meeting is in the list and on its day of the week.
        site.open(f"{demo_server.base_url}/meetings?q=chuy%E1%BB%83n+%C4%91%E1%BB%95i+s%E1%BB%91")
        assert TITLE in page.text_content("table.meetings")
        site.open(f"{demo_server.base_url}/meetings?view=week&week={day.isoformat()}")
        assert TITLE in page.text_content(f'section.day[data-day="{day.isoformat()}"]')
        shot(site, "secretariat-4-week.png", tmp_path)

        # Move it with a reason, running past midnight: the page shows the new times.
        site.open(f"{meeting_path}/invitations")
        page.fill("#new-date", day.isoformat())
        page.fill("#new-starts", "23:30")
        page.fill("#new-ends", "00:30")
        page.fill("#reschedule-reason", "Trùng lịch họp với Bộ Nội vụ")
        page.click("#reschedule-form button[type=submit]")
        site.wait_js(
            "() => document.querySelector('main').textContent.includes('23:30–00:30')",
            what="the new times",
        )

        # Cancel it with a reason: the page shows it cancelled, with no actions left.
        site.open(f"{meeting_path}/invitations")
        site.js("() => { window.confirm = () => true; }")
        page.fill("#cancel-reason", "Lùi lịch do mưa bão")
        page.click("#cancel-form button[type=submit]")
        site.wait_js(
            "() => document.querySelector('.status-cancelled') && !document.getElementById('cancel-form')",
            what="the cancelled meeting",
        )
        assert page.text_content(".status-cancelled") == "Đã hủy"
        assert page.locator("button.revoke").count() == 0

        # A phone: one column.
        page.set_viewport_size({"width": 390, "height": 844})
        site.open(f"{demo_server.base_url}/meetings/new")
        shot(site, "secretariat-5-phone-form.png", tmp_path)
        # Sign out: the session ends, the pages ask to sign in again.
        page.set_viewport_size({"width": 1366, "height": 768})
        page.click("#sign-out")
        page.wait_for_url(f"{demo_server.base_url}/login")
        site.open(f"{demo_server.base_url}/meetings")
        assert urlsplit(page.url).path == "/login"
        assert parse_qs(urlsplit(page.url).query)["next"] == ["/meetings"]
        # (The console also logs the 422 of the refused date above: that one was wanted.)
        assert not [line for line in site.console if line.startswith("pageerror")]
