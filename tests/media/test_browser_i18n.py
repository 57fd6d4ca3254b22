"""The browser client in English, in real Chromium against a real server.

The chair opens its link with ``?lang=en`` from a Vietnamese browser
(Accept-Language vi-VN): the device check, the room and the status screen read
in English, including the text the client writes itself (roster tags, actions,
toolbar, dialogs), while Sở Nội vụ, in the same meeting with no choice made,
stays Vietnamese. The ``lang`` cookie keeps English when the link is opened
again without ``?lang=``.
"""

from __future__ import annotations

from pathlib import Path

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

SNV = "QB-SNV"


def enter(site: Site, url: str) -> None:
    site.open(url)
    site.wait_js("() => !document.getElementById('join-button').disabled", what="device check")
    site.page.click("#join-button")
    site.wait_state("active")


def texts(site: Site, selector: str) -> list[str]:
    found: list[str] = site.js(
        "(s) => [...document.querySelectorAll(s)].map(e => e.textContent.trim())", selector
    )
    return found


def person(participant: str, part: str) -> str:
    return f'#roster .person[data-participant="{participant}"] {part}'


def test_room_in_english_beside_a_vietnamese_site(
    demo_server: DemoServer,  # noqa: F811
    browsers: Browsers,  # noqa: F811
    tmp_path: Path,
) -> None:
    chair_unit = demo_server.chair_unit
    chair = browsers.launch("chair-en")
    snv = browsers.launch("snv-vi")
    with diagnostics([chair, snv]):
        # The device check, from the page and from devicecheck.js.
        chair.open(demo_server.link(chair_unit, lang="en"))
        assert chair.js("() => document.documentElement.lang") == "en"
        chair.wait_js("() => !document.getElementById('join-button').disabled", what="devices")
        assert chair.page.text_content("#join-button") == "Join the meeting"
        labels = chair.js(
            "() => [...document.querySelectorAll('input[name=bandwidth]')]"
            ".map(i => i.parentElement.textContent.trim())"
        )
        assert labels == ["Full", "Low bandwidth (3G/4G)", "Audio only"]
        chair.page.click("#join-button")
        chair.wait_state("active")

        enter(snv, demo_server.link(SNV))
        snv_id = snv.participant_id
        chair_id = chair.participant_id

        # The toolbar and tabs (rendered by room.js) in English.
        assert chair.page.text_content("#btn-mic") == "Mute microphone"
        assert chair.page.text_content("#btn-camera") == "Turn camera off"
        assert chair.page.text_content("#btn-lock") == "Lock the room"
        assert chair.page.text_content("#btn-leave") == "Leave"
        assert texts(chair, "#tab-people")[0].startswith("Sites")
        assert chair.page.text_content(person(chair_id, ".person-name")).endswith("(this site)")
        assert "Chair" in texts(chair, person(chair_id, ".tag"))
        actions = poll(
            lambda: texts(chair, person(snv_id, ".person-actions button")),
            lambda got: len(got) == 4,
            timeout=10,
            what="the chair's actions on Sở Nội vụ",
        )
        assert actions == ["Mute", "Give the floor", "Let present", "Remove"]

        # The Vietnamese site in the same meeting keeps Vietnamese.
        assert snv.js("() => document.documentElement.lang") == "vi"
        assert snv.page.text_content("#btn-mic") == "Tắt micrô"
        poll(
            lambda: texts(snv, person(chair_id, ".tag")),
            lambda got: "Chủ trì" in got,
            timeout=10,
            what="Sở Nội vụ to tag the chair in Vietnamese",
        )

        # A change the client renders: the chair lets Sở Nội vụ present.
        chair.page.click(person(snv_id, '[data-action="presenter"]'))
        poll(
            lambda: texts(chair, person(snv_id, ".tag")),
            lambda got: "Presenting" in got,
            timeout=10,
            what="the English presenter tag",
        )
        poll(
            lambda: texts(snv, person(snv_id, ".tag")),
            lambda got: "Trình chiếu" in got,
            timeout=10,
            what="the Vietnamese presenter tag",
        )
        assert chair.page.text_content(person(snv_id, '[data-action="presenter"]')) == (
            "Stop the presentation"
        )
        chair.screenshot(tmp_path / "room-english.png")

        # The confirmation and the status screen.
        chair.page.click("#btn-leave")
        assert chair.page.text_content("#confirm-text") == "Leave the meeting room?"
        assert chair.page.text_content("#confirm-yes") == "OK"
        chair.page.click("#confirm-yes")
        chair.wait_state("left", timeout=5)
        assert chair.page.text_content("#status-title") == "You have left the meeting"

        # The cookie keeps English without ?lang= (the browser still asks for Vietnamese).
        chair.open(demo_server.link(chair_unit))
        assert chair.js("() => document.documentElement.lang") == "en"
        assert chair.page.text_content("#join-button") == "Join the meeting"
        assert chair.page.text_content("header.site a.language") == "Tiếng Việt"

        snv.page.click("#btn-leave")
        snv.page.click("#confirm-yes")
        snv.wait_state("left", timeout=5)
        assert snv.page.text_content("#status-title") == "Đã rời phòng họp"
    browsers.close(chair)
    browsers.close(snv)
