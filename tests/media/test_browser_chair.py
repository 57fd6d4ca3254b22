"""The chair's speaker queue and roll-call panel in real Chromium against a real server.

One demo meeting (module-scoped): the chair (QB) and three sites — Sở Nội vụ,
Sở Thông tin và Truyền thông, Bố Trạch — joined with ``?autojoin=1``. The
sites raise their hands in a known order; the chair sees that queue (oldest
first, with waiting times), gives the floor with "Next speaker" and from an
entry, and takes it back; each site sees its own place in the line. Then the
chair opens a roll call: one site answers present with a headcount and two
Vietnamese delegate names, one answers absent, one puts the dialog off and
never answers; the chair's panel shows exactly that, with the summary
figures, live; closing keeps it readable. The delegates reach the attendance
report and the clerk's archive page unchanged.

Texts added with this panel may still be untranslated (English msgids on a
Vietnamese page) until the catalogs are updated: those are checked through
data attributes, or against either wording.
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .browser_support import (
    VIEWPORT,
    Browsers,
    DemoServer,
    Site,
    browsers,  # noqa: F401  (fixture)
    demo_server,  # noqa: F401  (fixture)
    diagnostics,
    playwright_driver,  # noqa: F401  (fixture)
    poll,
    shot,
)

CHAIR = "QB"
SNV = "QB-SNV"
STTTT = "QB-STTTT"
BOTRACH = "QB-BOTRACH"
SITES = (SNV, STTTT, BOTRACH)
NAMES = {
    SNV: "Sở Nội vụ",
    STTTT: "Sở Thông tin và Truyền thông",
    BOTRACH: "Huyện Bố Trạch",
}
TITLE = "Điểm danh đầu giờ — phiên sáng"
DELEGATES = ["Nguyễn Văn Ánh", "Trần Thị Bích Ngọc"]
# Either wording: the English msgid until the Vietnamese catalog has the string.
PENDING_TEXT = {"Not answered yet", "Chưa trả lời"}
MISSED_TEXT = {"Did not answer", "Không trả lời"}
PHONE = {"width": 390, "height": 844}


@dataclass
class Room:
    server: DemoServer
    browsers: Browsers
    sites: dict[str, Site]

    def pid(self, unit: str) -> str:
        return self.sites[unit].participant_id


@pytest.fixture(scope="module")
def room(demo_server: DemoServer, browsers: Browsers) -> Room:  # noqa: F811
    sites = {unit: browsers.launch(f"chair-test-{unit}") for unit in (CHAIR, *SITES)}
    for unit, site in sites.items():
        site.open(demo_server.link(unit, autojoin="1"))
    for site in sites.values():
        site.wait_state("active", timeout=20)
    everyone = {CHAIR, *SITES}
    for unit, site in sites.items():
        poll(
            site.roster_units,
            lambda got: set(got) == everyone,
            timeout=15,
            what=f"{unit}'s roster to list everyone",
        )
    return Room(demo_server, browsers, sites)


def queue(site: Site) -> list[str]:
    """The participant ids of ``site``'s speaker queue, top to bottom."""
    ids: list[str] = site.js(
        "() => [...document.querySelectorAll('#hands .queue-item')].map(e => e.dataset.participant)"
    )
    return ids


def wait_queue(room: Room, units: list[str], what: str) -> None:
    expected = [room.pid(u) for u in units]
    for name, site in room.sites.items():
        poll(
            lambda site=site: queue(site),
            lambda got: got == expected,
            timeout=10,
            what=f"{name}: {what}",
        )


def hand_badge(site: Site) -> str:
    return str(site.js("() => document.getElementById('badge-hand').textContent"))


def wait_badge(site: Site, ok: Any, what: str) -> str:
    return str(poll(lambda: hand_badge(site), ok, timeout=10, what=f"{site.name}: {what}"))


# --- the speaker queue ------------------------------------------------------------------


def test_the_queue_in_order_next_speaker_and_each_sites_place(room: Room, tmp_path: Path) -> None:
    chair = room.sites[CHAIR]
    with diagnostics(list(room.sites.values())):
        # The chair sees the (empty) queue and its buttons; "Next speaker" is off.
        assert chair.page.is_visible("#hands-box")
        assert chair.page.is_disabled("#queue-next")
        assert not room.sites[SNV].page.is_visible("#hands-box"), "no queue box for a site"
        raised: list[str] = []
        for unit in SITES:
            room.sites[unit].page.click("#btn-hand")
            raised.append(unit)
            wait_queue(room, raised, f"the queue after {unit} raised its hand")

        # Oldest first, each with how long it has waited (m:ss), one floor button each.
        waits = chair.js(
            "() => [...document.querySelectorAll('#hands .queue-wait')].map(e => e.textContent)"
        )
        assert all(re.search(r"\b\d+:\d\d\b", w) for w in waits), waits
        names = chair.js(
            "() => [...document.querySelectorAll('#hands .queue-name')].map(e => e.textContent)"
        )
        assert names == [NAMES[u] for u in SITES]
        assert chair.js("() => document.querySelectorAll('#hands [data-action=floor]').length") == 3
        assert chair.page.is_enabled("#queue-next")
        assert chair.js("() => document.getElementById('hands-summary').textContent").count(
            NAMES[SNV]
        ), "the summary names the next speaker"
        # Each site knows its place; the first is told it is next.
        first = wait_badge(room.sites[SNV], bool, "its place in the queue")
        assert "2" not in first
        assert "3" not in first
        assert "2" in wait_badge(room.sites[STTTT], lambda t: "2" in t, "2nd in line")
        assert "3" in wait_badge(room.sites[BOTRACH], lambda t: "3" in t, "3rd in line")
        assert room.sites[STTTT].page.is_visible("#badge-hand")
        # A site sees the queue too, its own entry marked, and no floor buttons.
        site = room.sites[STTTT]
        own = site.js("() => document.querySelector('#hands .queue-item.own')?.dataset.participant")
        assert own == room.pid(STTTT)
        assert site.js("() => document.querySelectorAll('#hands [data-action=floor]').length") == 0
        shot(chair, "chair-speaker-queue.png", tmp_path)
        # On a phone: the place in line stays in sight, above the videos.
        site.page.set_viewport_size(PHONE)
        try:
            assert site.page.is_visible("#badge-hand")
            box = site.page.locator("#badge-hand").bounding_box()
            assert box is not None
            assert box["x"] >= 0
            assert box["x"] + box["width"] <= PHONE["width"]
            shot(site, "site-queue-phone.png", tmp_path)
        finally:
            site.page.set_viewport_size(VIEWPORT)

        # "Next speaker": the floor to the oldest hand, which leaves the queue.
        chair.page.click("#queue-next")
        wait_queue(room, [STTTT, BOTRACH], "the queue once SNV has the floor")
        chair.wait_js(
            "() => !document.getElementById('floor-line').hidden && "
            f"document.getElementById('floor-line').textContent.includes({json.dumps(NAMES[SNV])})",
            what="SNV on the floor",
        )
        snv = room.sites[SNV]
        wait_badge(snv, lambda t: t == "", "no place in line once speaking")
        assert not snv.page.is_visible("#badge-hand")
        snv.wait_js(
            "() => document.getElementById('btn-hand').getAttribute('aria-pressed') === 'false'",
            what="its hand lowered",
        )
        wait_badge(room.sites[BOTRACH], lambda t: "2" in t, "2nd in line now")
        wait_badge(room.sites[STTTT], lambda t: t != "" and "2" not in t, "first in line now")
        assert chair.page.is_visible("#queue-take-back")

        # The floor from an entry, out of order, with the keyboard; the focus does not
        # vanish with the entry: it lands on "Next speaker".
        entry = f'#hands [data-participant="{room.pid(BOTRACH)}"] [data-action=floor]'
        chair.page.focus(entry)
        chair.page.keyboard.press("Enter")
        wait_queue(room, [STTTT], "the queue once Bố Trạch has the floor")
        chair.wait_js(
            "() => document.activeElement && document.activeElement.id === 'queue-next'",
            what="the focus on Next speaker",
        )
        chair.wait_js(
            "() => document.getElementById('floor-line').textContent"
            f".includes({json.dumps(NAMES[BOTRACH])})",
            what="Bố Trạch on the floor",
        )
        chair.page.click("#queue-take-back")
        for unit, other in room.sites.items():
            other.wait_js(
                "() => document.getElementById('floor-line').hidden",
                what=f"{unit}: nobody on the floor",
            )
        assert not chair.page.is_visible("#queue-take-back")
        # The last hand is lowered by its site: the queue is empty everywhere.
        room.sites[STTTT].page.click("#btn-hand")
        wait_queue(room, [], "an empty queue")
        assert chair.page.is_disabled("#queue-next")
        wait_badge(room.sites[STTTT], lambda t: t == "", "no place in line")


# --- the roll call ---------------------------------------------------------------------


def summary(site: Site) -> dict[str, int]:
    data: dict[str, str] = site.js(
        "() => ({...document.getElementById('rollcall-summary').dataset})"
    )
    return {k: int(v) for k, v in data.items()}


def rows(site: Site) -> dict[str, dict[str, Any]]:
    """The chair's roll-call table by unit code."""
    got: list[dict[str, Any]] = site.js(
        """() => [...document.querySelectorAll('#rollcall-answers tr')].map(tr => ({
             unit: tr.dataset.unit,
             status: tr.dataset.status,
             participant: tr.dataset.participant || null,
             name: tr.querySelector('.rc-name').textContent,
             answer: tr.querySelector('.rc-answer').textContent,
             people: tr.querySelector('.rc-people').textContent,
             delegates: [...tr.querySelectorAll('.rc-delegates li')].map(li => li.textContent),
           }))"""
    )
    return {r["unit"]: r for r in got}


def delegate_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def dialog_open(site: Site) -> bool:
    return bool(site.js("() => document.getElementById('rollcall-dialog').open"))


def clerk_opener(server: DemoServer) -> urllib.request.OpenerDirector:
    """An HTTP client signed in as the demo's clerk (its password from the banner)."""
    password = server.password("vanthu")
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    login = urllib.request.Request(  # noqa: S310  (the test server's http URL)
        f"{server.base_url}/api/auth/login",
        data=json.dumps({"username": "vanthu", "password": password}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with opener.open(login, timeout=10) as r:
        assert r.status == 200
    return opener


def meeting_id(server: DemoServer) -> int:
    for line in server.output:
        m = re.match(r"^Meeting (\d+): ", line)
        if m:
            return int(m.group(1))
    raise AssertionError(f"no meeting in the banner:\n{server.log()}")


def test_roll_call_panel_shows_answers_absences_and_the_sites_yet_to_answer(
    room: Room, tmp_path: Path
) -> None:
    chair = room.sites[CHAIR]
    snv, stttt, botrach = (room.sites[u] for u in SITES)
    with diagnostics(list(room.sites.values())):
        chair.page.click("#tab-rollcall")
        chair.page.fill("#rollcall-title", TITLE)
        chair.page.click("#rollcall-start")
        # Every site is expected (not the chair), none has answered.
        poll(
            lambda: summary(chair),
            lambda s: s.get("expected") == 3 and s.get("pending") == 3,
            timeout=10,
            what="three sites expected, none answered",
        )
        table = rows(chair)
        assert set(table) == set(SITES)
        assert {r["status"] for r in table.values()} == {"pending"}
        assert all(r["answer"] in PENDING_TEXT for r in table.values()), table
        assert chair.page.text_content("#rollcall-results-title") is not None
        assert TITLE in (chair.page.text_content("#rollcall-results-title") or "")
        for site in (snv, stttt, botrach):
            site.wait_js(
                "() => document.getElementById('rollcall-dialog').open", what="the answer dialog"
            )
            assert site.page.text_content("#rollcall-dialog-title") == TITLE

        # Present, 3 people, two names (blank lines and spaces around them are dropped).
        snv.page.fill("#rollcall-headcount", "3")
        snv.page.fill("#rollcall-delegates", f"  {DELEGATES[0]}\n\n{DELEGATES[1]}  \n")
        snv.page.set_viewport_size(PHONE)
        try:
            box = snv.page.locator("#rollcall-submit").bounding_box()
            assert box is not None
            assert box["x"] + box["width"] <= PHONE["width"], "the dialog fits a phone"
            shot(snv, "site-roll-call-dialog-phone.png", tmp_path)
        finally:
            snv.page.set_viewport_size(VIEWPORT)
        snv.page.click("#rollcall-submit")
        snv.wait_js("() => !document.getElementById('rollcall-dialog').open", what="closed")

        # Absent: the headcount and the names are not asked.
        stttt.page.uncheck("#rollcall-present")
        assert stttt.page.is_disabled("#rollcall-headcount")
        assert stttt.page.is_disabled("#rollcall-delegates")
        stttt.page.click("#rollcall-submit")
        stttt.wait_js("() => !document.getElementById('rollcall-dialog').open", what="closed")

        # Bố Trạch types a name longer than the server takes: told so, nothing sent.
        botrach.page.fill("#rollcall-delegates", "Nguyễn " + "A" * 100)
        botrach.page.click("#rollcall-submit")
        error = botrach.wait_js(
            "() => document.getElementById('rollcall-error').textContent", what="the error"
        )
        assert "100" in error
        assert dialog_open(botrach)
        # ... then puts the answer off (Escape): a toolbar button brings it back.
        botrach.page.keyboard.press("Escape")
        botrach.wait_js(
            "() => !document.getElementById('rollcall-dialog').open "
            "&& !document.getElementById('btn-rollcall').hidden",
            what="the dialog put off, the toolbar button shown",
        )

        final = poll(
            lambda: summary(chair),
            lambda s: s.get("answered") == 2,
            timeout=10,
            what="two answers at the chair",
        )
        assert final == {
            "answered": 2,
            "expected": 3,
            "present": 1,
            "absent": 1,
            "pending": 1,
            "people": 3,
        }
        table = rows(chair)
        assert table[SNV] == {
            "unit": SNV,
            "status": "present",
            "participant": room.pid(SNV),
            "name": NAMES[SNV],
            "answer": "Có mặt",
            "people": "3",
            "delegates": DELEGATES,
        }
        assert (table[STTTT]["status"], table[STTTT]["answer"]) == ("absent", "Vắng")
        assert (table[STTTT]["people"], table[STTTT]["delegates"]) == ("", [])
        assert table[BOTRACH]["status"] == "pending"
        assert table[BOTRACH]["answer"] in PENDING_TEXT
        assert table[BOTRACH]["participant"] is None
        answered = chair.js(
            "() => [...document.querySelectorAll('#rollcall-answers tr.answered')]"
            ".map(tr => tr.dataset.unit).sort()"
        )
        assert answered == sorted([SNV, STTTT])
        names = [r["name"] for r in table.values()]
        assert sorted(names) == sorted(NAMES.values())
        assert chair.page.is_visible("#rollcall-close")
        shot(chair, "chair-roll-call.png", tmp_path)

        # The site that put it off can come back to it.
        botrach.page.click("#btn-rollcall")
        botrach.wait_js("() => document.getElementById('rollcall-dialog').open", what="reopened")
        botrach.page.keyboard.press("Escape")

        # Closing: the panel stays readable; the missing site "did not answer".
        chair.page.click("#rollcall-close")
        chair.wait_js(
            "() => document.getElementById('rollcall-close').hidden", what="the close button gone"
        )
        assert summary(chair) == final
        closed = rows(chair)
        assert closed[SNV]["delegates"] == DELEGATES
        assert closed[BOTRACH]["answer"] in MISSED_TEXT
        assert chair.page.is_visible("#rollcall-start"), "a new roll call can start"
        botrach.wait_js(
            "() => document.getElementById('btn-rollcall').hidden && "
            "!document.getElementById('rollcall-dialog').open",
            what="nothing left to answer",
        )
        shot(chair, "chair-roll-call-closed.png", tmp_path)

        # A second roll call: the first stays readable, folded, under "Earlier roll calls";
        # the site's form starts from its last answer.
        assert not chair.page.is_visible("#rollcall-past")
        chair.page.fill("#rollcall-title", "Điểm danh cuối giờ")
        chair.page.click("#rollcall-start")
        poll(
            lambda: summary(chair),
            lambda s: s.get("answered") == 0 and s.get("pending") == 3,
            timeout=10,
            what="the second roll call, nobody answered",
        )
        assert chair.page.is_visible("#rollcall-past")
        past = chair.page.locator("#rollcall-past-list details")
        assert past.count() == 1
        assert TITLE in (past.locator("summary").text_content() or "")
        past.locator("summary").click()
        past_snv = past.locator(f'tr[data-unit="{SNV}"]')
        assert past_snv.locator(".rc-delegates li").all_text_contents() == DELEGATES
        assert past.locator(f'tr[data-unit="{BOTRACH}"] .rc-answer').text_content() in MISSED_TEXT
        shot(chair, "chair-roll-call-earlier.png", tmp_path)
        snv.wait_js("() => document.getElementById('rollcall-dialog').open", what="asked again")
        kept = snv.js("() => document.getElementById('rollcall-delegates').value")
        assert delegate_lines(kept) == DELEGATES
        chair.page.click("#rollcall-close")
        for site in (snv, stttt, botrach):
            site.wait_js(
                "() => !document.getElementById('rollcall-dialog').open", what="no dialog left"
            )
        chair.page.click("#tab-people")

    # The answers are in the record, names unchanged: the report and the clerk's page.
    opener = clerk_opener(room.server)
    mid = meeting_id(room.server)
    with opener.open(f"{room.server.base_url}/api/meetings/{mid}/attendance", timeout=10) as r:
        report = json.load(r)
    (call,) = [c for c in report["roll_calls"] if c["title"] == TITLE]
    answers = {a["unit"]: a for a in call["answers"]}
    assert set(answers) == {SNV, STTTT}
    assert (answers[SNV]["present"], answers[SNV]["headcount"]) == (True, 3)
    assert answers[SNV]["delegates"] == DELEGATES
    assert (answers[STTTT]["present"], answers[STTTT]["delegates"]) == (False, [])
    clerk = room.browsers.launch("chair-test-clerk")
    try:
        login = clerk.context.request.post(
            f"{room.server.base_url}/api/auth/login",
            data={"username": "vanthu", "password": room.server.password("vanthu")},
        )
        assert login.status == 200
        clerk.open(f"{room.server.base_url}/archive/meetings/{mid}")
        table = clerk.page.locator("table.roll-call").last
        snv_row = table.locator(f'tr[data-rc-unit="{SNV}"]')
        assert snv_row.locator('[data-field="headcount"]').text_content() == "3"
        assert snv_row.locator(".delegates li").all_text_contents() == DELEGATES
        stttt_row = table.locator(f'tr[data-rc-unit="{STTTT}"]')
        assert stttt_row.locator('[data-field="answer"]').text_content() == "Vắng"
        table.scroll_into_view_if_needed()
        shot(clerk, "archive-roll-call.png", tmp_path)
    finally:
        room.browsers.close(clerk)


# --- in English -------------------------------------------------------------------------


def test_in_english_a_site_reads_its_place_as_an_ordinal(room: Room) -> None:
    chair = room.sites[CHAIR]
    site = room.browsers.launch("chair-test-english")
    try:
        site.open(room.server.link("QB-BOTRACH-TANTRACH", autojoin="1", lang="en"))
        site.wait_state("active", timeout=20)
        with diagnostics([site, chair]):
            room.sites[SNV].page.click("#btn-hand")
            wait_queue(room, [SNV], "SNV's hand")
            site.page.click("#btn-hand")
            assert wait_badge(site, bool, "its place") == "You are 2nd in line to speak."
            waits = site.js(
                "() => [...document.querySelectorAll('#hands .queue-wait')].map(e => e.textContent)"
            )
            assert all(re.fullmatch(r"waiting \d+:\d\d", w) for w in waits), waits
            chair.page.click("#queue-next")
            assert wait_badge(site, lambda t: "first" in t, "first now") == (
                "You are first in line to speak."
            )
            site.page.click("#btn-hand")
            wait_badge(site, lambda t: t == "", "no place once lowered")
            chair.wait_js("() => document.querySelectorAll('#hands .queue-item').length === 0")
            chair.page.click("#queue-take-back")
    finally:
        if site.state == "active":
            site.page.click("#btn-leave")
            site.page.click("#confirm-yes")
            site.wait_state("left", timeout=5)
        room.browsers.close(site)
