"""The pages in Vietnamese (the default) and English: negotiation, the cookie, the
catalogs (complete, placeholders intact, in step with the sources), the client's
messages embedded per language, and Vietnamese text byte-exact.

Pages are fetched from the real app over a real loopback socket (SQLite only:
the language does not depend on the database).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from conference.models import Meeting
from web.i18n import (
    COOKIE_MAX_AGE,
    JS_KEYWORDS,
    LOCALE_DIR,
    SUPPORTED_LOCALES,
    js_msgids,
    load_languages,
    negotiate,
    parse_accept_language,
)
from web.pages import _templates

ROOT = Path(__file__).resolve().parents[2]
TITLE = "Hội nghị giao ban trực tuyến — Sở Thông tin và Truyền thông"
AGENDA = ["Báo cáo tình hình", "Thảo luận và kết luận"]

# A string each page shows, per language.
KNOWN = {
    "vi": {
        "login": "Tên đăng nhập",
        "join": "Vào phòng họp",
        "refused": "Không thể tham gia",
    },
    "en": {
        "login": "Username",
        "join": "Join the meeting",
        "refused": "Cannot join",
    },
}


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'hoinghi.db'}"


@pytest.fixture
async def pages(api: Any) -> dict[str, str]:
    """The path of each page: login, a valid join link, a refused (cancelled) one."""
    soon = datetime.now(UTC) + timedelta(minutes=10)
    meetings = []
    for chair in ("QB", "QB-STTTT"):
        created = await api.call(
            "POST",
            "/api/meetings",
            json={
                "title": TITLE,
                "agenda": AGENDA,
                "starts_at": soon.isoformat(),
                "ends_at": (soon + timedelta(hours=1)).isoformat(),
                "chair_unit": chair,
                "invited_units": ["QB-SNV"],
                "recording": True,
            },
            expect=201,
        )
        meetings.append(created["meeting"]["id"])
    links = []
    for mid in meetings:
        listed = await api.call("GET", f"/api/meetings/{mid}/invitations", expect=200)
        url = next(i["join_url"] for i in listed["invitations"] if i["unit"] == "QB-SNV")
        links.append("/join/" + url.split("/join/", 1)[1])
    await api.call("POST", f"/api/meetings/{meetings[1]}/cancel", json={}, expect=200)
    return {"login": "/login", "join": links[0], "refused": links[1]}


async def fetch(api: Any, path: str, **kwargs: Any) -> tuple[int, str, Any]:
    response = await api.client.get(path, **kwargs)
    return response.status, await response.text(), response


def html_lang(html: str) -> str:
    m = re.search(r'<html lang="([^"]*)">', html)
    assert m, html[:200]
    return m.group(1)


def embedded(html: str, element_id: str) -> Any:
    m = re.search(
        rf'<script type="application/json" id="{element_id}">(.*?)</script>', html, re.DOTALL
    )
    assert m, f"no #{element_id}"
    return json.loads(m.group(1))


class _Visible(HTMLParser):
    """Text a reader sees or hears: text outside <script>, and labelling attributes."""

    ATTRIBUTES = ("title", "aria-label", "placeholder", "alt")

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_script = tag == "script"
        self.parts += [v for k, v in attrs if k in self.ATTRIBUTES and v]
        # An input's value is shown, unless it is a choice's code (radio, checkbox).
        named = dict(attrs)
        if tag == "input" and named.get("type", "text") not in ("radio", "checkbox"):
            self.parts += [named["value"] or ""] if "value" in named else []

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if not self._in_script and data.strip():
            self.parts.append(data.strip())


def visible_text(html: str) -> str:
    parser = _Visible()
    parser.feed(html)
    return "\n".join(parser.parts)


def read_catalog(locale: str | None) -> Catalog:
    path = (
        LOCALE_DIR / "messages.pot"
        if locale is None
        else LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po"
    )
    with path.open("rb") as f:
        return read_po(f, locale=locale)


def entries(catalog: Catalog) -> list[Message]:
    return [m for m in catalog if m.id]


_PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|\{\w+\}")


def placeholders(text: str) -> list[str]:
    return sorted(_PLACEHOLDER.findall(text))


# --- every page in both languages ------------------------------------------------------


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
@pytest.mark.parametrize("page", ["login", "join", "refused"])
async def test_every_page_renders_in_each_language(api, pages, page, locale):
    status, html, response = await fetch(api, pages[page], params={"lang": locale})
    assert status == (403 if page == "refused" else 200)
    assert html_lang(html) == locale
    assert response.headers["Content-Language"] == locale
    assert KNOWN[locale][page] in visible_text(html)
    other = next(code for code in SUPPORTED_LOCALES if code != locale)
    assert KNOWN[other][page] not in visible_text(html)


async def test_join_page_in_english_reads_english(api, pages):
    _, html, _ = await fetch(api, pages["join"], params={"lang": "en"})
    text = visible_text(html)
    assert "Unit: <strong>Sở Nội vụ</strong> (QB-SNV) — role: participating site" in html
    assert "Agenda (2 items)" in text
    assert "This meeting is recorded." in text
    assert re.search(r"Time: \d{1,2}:\d\d\u202f[AP]M on \d{1,2}/\d{1,2}/\d{4} to ", text), text
    assert "Provincial online meeting system" in text
    # Vietnamese content (titles, unit names) stays as it was written.
    assert TITLE in text


async def test_vietnamese_output_is_byte_exact(api, pages):
    response = await api.client.get(pages["join"])
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    raw = await response.read()
    for text in (
        "Hệ thống hội nghị trực tuyến tỉnh",
        "Đơn vị: <strong>Sở Nội vụ</strong> (QB-SNV) — vai trò: điểm cầu tham dự",
        "Nội dung (2 mục)",
        "(giờ Việt Nam)",
        "Mất kết nối, đang kết nối lại…",
        TITLE,
        *AGENDA,
    ):
        assert text.encode("utf-8") in raw, text
    # Times as "14:30 ngày 27/11/2026" (Babel's numeric date for vi).
    when = re.compile(r"Thời gian: \d\d:\d\d ngày \d{1,2}/\d{1,2}/\d{4} đến ".encode())
    assert when.search(raw)
    # The embedded client text is real UTF-8 too, not \u escapes.
    assert '"Cho trình chiếu"'.encode() in raw


async def test_vietnamese_pages_leave_no_msgid_untranslated(api, pages):
    vi = read_catalog("vi")
    fragments = set()
    for message in entries(vi):
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if set(ids) & set(strings):
            continue  # the same in both languages ("Camera")
        for msgid in ids:
            # Literal pieces of the msgid between placeholders and markup, with a word in them.
            for piece in re.split(r"%\(\w+\)s|\{\w+\}|<[^>]+>", msgid):
                if len(re.findall(r"[A-Za-z]", piece)) >= 3:
                    fragments.add(piece.strip())
    for page, path in pages.items():
        _, html, _ = await fetch(api, path)
        assert html_lang(html) == "vi"
        text = visible_text(html)
        # Whole words only: the code "meeting_cancelled" shown for support is no
        # untranslated "meeting".
        left = sorted(f for f in fragments if re.search(rf"(?<!\w){re.escape(f)}(?!\w)", text))
        assert left == [], f"{page}: English left in the Vietnamese page: {left}"


async def test_client_messages_are_embedded_for_the_page_language(api, pages):
    expected = set(js_msgids())
    for locale, action in (("vi", "Cho trình chiếu"), ("en", "Let present")):
        for page in ("join", "login"):
            _, html, _ = await fetch(api, pages[page], params={"lang": locale})
            data = embedded(html, "i18n-messages")
            assert data["locale"] == locale
            assert set(data["messages"]) == expected
            assert data["messages"]["Let present"] == action
            assert all(data["messages"].values())
    # The join page's own config block is unchanged beside it.
    _, html, _ = await fetch(api, pages["join"])
    config = embedded(html, "client-config")
    assert config["meeting"]["title"] == TITLE
    # The lobby counts down to this start (static/lobby.js): an aware ISO time.
    async with api.database.read() as session:
        meeting = await session.get(Meeting, config["meeting"]["id"])
    assert datetime.fromisoformat(config["meeting"]["starts_at"]) == meeting.starts_at


async def test_language_switch_keeps_the_path_and_query(api, pages):
    _, html, _ = await fetch(api, pages["join"], params={"autojoin": "1"})
    m = re.search(r'<a class="language" href="([^"]+)" hreflang="en" lang="en">English</a>', html)
    assert m, html[:1500]
    assert m.group(1).replace("&amp;", "&") == f"{pages['join']}?autojoin=1&lang=en"
    _, html, _ = await fetch(api, pages["login"], params={"lang": "en"})
    assert 'href="/login?lang=vi" hreflang="vi" lang="vi">Tiếng Việt</a>' in html


# --- choosing the language --------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "cookie", "accept", "expected"),
    [
        (None, None, None, "vi"),
        ("en", None, None, "en"),
        ("en", "vi", "vi", "en"),
        ("vi", "en", "en", "vi"),
        (None, "en", "vi", "en"),
        (None, "vi", "en", "vi"),
        (None, None, "en-US,en;q=0.9", "en"),
        (None, None, "fr-FR, en;q=0.5, vi;q=0.8", "vi"),
        (None, None, "fr, de", "vi"),
        (None, None, "en;q=0, vi;q=0.1", "vi"),
        ("xx", None, None, "vi"),
        ("xx", "bogus", "en", "en"),
        ("EN", None, None, "en"),
        ("vi-VN", None, "en", "vi"),
        ("", "", "", "vi"),
    ],
)
def test_negotiation_order(query, cookie, accept, expected):
    assert negotiate(query, cookie, accept) == expected


def test_accept_language_parsing():
    assert parse_accept_language("vi-VN,vi;q=0.9,en-US;q=0.8,en;q=0.7") == [
        "vi-VN",
        "vi",
        "en-US",
        "en",
    ]
    assert parse_accept_language("en;q=0.5, vi, *;q=0.1, fr;q=bad") == ["vi", "en"]
    assert parse_accept_language(None) == []


async def test_query_beats_cookie_beats_accept_language_over_http(api, pages):
    login = pages["login"]
    assert html_lang((await fetch(api, login))[1]) == "vi"
    assert html_lang((await fetch(api, login, headers={"Accept-Language": "en"}))[1]) == "en"
    # Cookie over Accept-Language.
    headers = {"Accept-Language": "en", "Cookie": "lang=vi"}
    assert html_lang((await fetch(api, login, headers=headers))[1]) == "vi"
    # Query over the cookie.
    headers = {"Accept-Language": "vi", "Cookie": "lang=vi"}
    _, html, _ = await fetch(api, login, headers=headers, params={"lang": "en"})
    assert html_lang(html) == "en"


async def test_lang_query_sets_the_cookie_and_it_is_kept(api, pages):
    status, html, response = await fetch(api, pages["login"], params={"lang": "en"})
    assert status == 200
    assert html_lang(html) == "en"
    cookie = response.cookies["lang"]
    assert cookie.value == "en"
    assert cookie["path"] == "/"
    assert cookie["samesite"] == "Lax"
    assert cookie["httponly"]
    assert int(cookie["max-age"]) == COOKIE_MAX_AGE == 365 * 24 * 3600
    # The next page, with no ?lang= and a Vietnamese browser, stays English.
    status, html, response = await fetch(api, pages["join"], headers={"Accept-Language": "vi"})
    assert html_lang(html) == "en"
    assert "lang" not in response.cookies  # only ?lang= sets it


async def test_the_root_keeps_the_language_choice(api):
    response = await api.client.get("/", params={"lang": "en"}, allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == "/login?lang=en"
    response = await api.client.get("/", allow_redirects=False)
    assert response.headers["Location"] == "/login"


async def test_unknown_lang_falls_back_to_vietnamese(api, pages):
    for page, path in pages.items():
        status, html, response = await fetch(api, path, params={"lang": "xx"})
        assert status == (403 if page == "refused" else 200)
        assert html_lang(html) == "vi"
        assert KNOWN["vi"][page] in visible_text(html)
        assert "lang" not in response.cookies


# --- the catalogs ---------------------------------------------------------------------


def test_vietnamese_catalog_is_complete():
    vi = read_catalog("vi")
    assert vi.num_plurals == 1
    missing = []
    for message in entries(vi):
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if message.fuzzy or not all(s.strip() for s in strings):
            missing.append(message.id)
    assert missing == []
    assert len(entries(vi)) > 100


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_placeholders_match_between_msgid_and_msgstr(locale):
    catalog = read_catalog(locale)
    wrong = []
    for message in entries(catalog):
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        # Every form of a plural (Vietnamese has one for every count) has the msgid's names.
        expected = placeholders(ids[-1])
        if any(placeholders(msgid) != expected for msgid in ids):
            wrong.append((ids, "msgid forms differ"))
        wrong += [(ids, text) for text in strings if text and placeholders(text) != expected]
    assert wrong == []


def test_catalogs_are_in_step_with_the_sources():
    """What ``pybabel extract`` finds now is what the template and both catalogs hold."""
    with (ROOT / "babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f)
    keywords = {**DEFAULT_KEYWORDS, **JS_KEYWORDS}
    found = {
        message
        for _file, _line, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=keywords
        )
    }
    for locale in (None, *SUPPORTED_LOCALES):
        held = {m.id for m in entries(read_catalog(locale))}
        assert found - held == set(), f"{locale or 'pot'}: not extracted yet (README)"
        assert held - found == set(), f"{locale or 'pot'}: no longer in the sources"
    assert set(js_msgids()) <= found


def test_every_client_call_is_extractable():
    """A ``t(variable)`` or ``t(`...`)`` would never reach the catalogs."""
    for path in sorted((ROOT / "web" / "static").glob("*.js")):
        if path.name == "i18n.js":
            continue  # where t() is defined
        source = path.read_text(encoding="utf-8")
        calls = re.findall(r"(?<![\w.$])t\(\s*(.)", source)
        assert all(first == '"' for first in calls), (path.name, calls)


def test_no_client_module_hides_t_behind_a_local_name():
    """A parameter or variable named ``t`` would make ``t("...")`` below it fail at run time."""
    binding = re.compile(r"(?:\b(?:const|let|var)\s+t\b|\(\s*t\s*[,)]|,\s*t\s*\)|\bt\s*=>)")
    for path in sorted((ROOT / "web" / "static").glob("*.js")):
        source = path.read_text(encoding="utf-8")
        if 'from "./i18n.js"' in source:
            assert not binding.findall(source), path.name


def test_languages_load_and_the_client_gets_its_messages():
    languages = load_languages()
    assert set(languages) == set(SUPPORTED_LOCALES)
    for language in languages.values():
        assert set(language.js_messages) == set(js_msgids())
    assert languages["vi"].js_messages["Speaking: {name}"] == "Đang phát biểu: {name}"
    assert languages["en"].js_messages["Speaking: {name}"] == "Speaking: {name}"
    assert languages["vi"].name == "Tiếng Việt"
    assert languages["en"].name == "English"


# --- formats ----------------------------------------------------------------------------


def test_dates_and_times_in_the_province_zone():
    languages = load_languages()
    value = datetime(2026, 11, 27, 7, 30, tzinfo=UTC)  # 14:30 in Hà Nội
    assert languages["vi"].format_datetime(value) == "14:30 ngày 27/11/2026"
    assert languages["en"].format_datetime(value) == "2:30\u202fPM on 11/27/2026"
    late = datetime(2026, 12, 31, 18, 0, tzinfo=UTC)  # already 1 January there
    # CLDR's numeric dates (skeleton yMd): no leading zeros, four-digit year.
    assert languages["vi"].format_date(late) == "1/1/2027"
    assert languages["en"].format_date(late) == "1/1/2027"
    assert languages["vi"].format_date(date(2026, 3, 5)) == "5/3/2026"
    assert languages["en"].format_date(date(2026, 3, 5)) == "3/5/2026"
    assert languages["vi"].format_datetime(late) == "01:00 ngày 1/1/2027"


def test_translated_markup_still_escapes_its_variables():
    env = _templates()
    template = env.from_string(
        "{% trans name=name %}Unit: <strong>{{ name }}</strong> ({{ code }}) — role: {{ role }}"
        "{% endtrans %}"
    )
    html = template.render(
        language=load_languages()["vi"], name="<script>x</script>", code="A&B", role="r"
    )
    assert html == (
        "Đơn vị: <strong>&lt;script&gt;x&lt;/script&gt;</strong> (A&amp;B) — vai trò: r"
    )
