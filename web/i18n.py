"""The languages of the pages and of the browser client: Vietnamese (the default) and English.

Catalogs are gettext ``.po`` files under ``web/locale`` with English source
strings (msgids); ``vi`` holds the Vietnamese text, ``en`` is mostly empty (an
empty msgstr shows the msgid). No ``.mo`` file is kept in the tree: each
catalog is compiled in memory when the app is built (Babel's ``read_po`` ->
``write_mo`` -> :class:`babel.support.Translations`).

The browser client (``web/static/*.js``) marks its text with ``t("...")``; the
same Babel extractor that fills the catalogs finds those msgids here, and each
page embeds their translations for its language as JSON (no build step).

One request's language, first match wins: ``?lang=xx`` (remembered in the
``lang`` cookie), the ``lang`` cookie, ``Accept-Language``, then Vietnamese.
Extraction and catalog updates: README.md, "Translations".
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from aiohttp import web
from babel import Locale, negotiate_locale
from babel.dates import format_date as babel_format_date
from babel.dates import format_skeleton, format_time
from babel.messages.extract import extract
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from conference.timezone import LOCAL_ZONE, to_local

__all__ = [
    "COOKIE_MAX_AGE",
    "COOKIE_NAME",
    "DEFAULT_LOCALE",
    "DOMAIN",
    "JS_KEYWORDS",
    "JS_OPTIONS",
    "LOCALE_DIR",
    "N_",
    "SUPPORTED_LOCALES",
    "Language",
    "js_msgids",
    "language_links",
    "load_language",
    "load_languages",
    "negotiate",
    "parse_accept_language",
    "remember_locale",
    "request_locale",
]

SUPPORTED_LOCALES = ("vi", "en")
DEFAULT_LOCALE = "vi"
DOMAIN = "messages"
LOCALE_DIR = Path(__file__).parent / "locale"
STATIC_DIR = Path(__file__).parent / "static"

COOKIE_NAME = "lang"
COOKIE_MAX_AGE = 365 * 24 * 60 * 60

# The client's marker function (`pybabel extract -k t`) and its extractor options (babel.cfg).
JS_KEYWORDS: Mapping[str, None] = {"t": None}
JS_OPTIONS: Mapping[str, str] = {"parse_template_string": "true"}


def N_(message: str) -> str:  # the gettext name Babel extracts by default
    """Mark ``message`` for extraction; it is translated where it is shown."""
    return message


@dataclass(frozen=True)
class Language:
    """One language's translations and formats, shared by every request in it."""

    code: str
    translations: Translations
    js_messages: Mapping[str, str]  # the client's msgids -> their text in this language

    @property
    def name(self) -> str:
        """The language's own name ("Tiếng Việt", "English"), as a switch shows it."""
        name = Locale.parse(self.code).get_display_name(self.code) or self.code
        return name[:1].upper() + name[1:]

    def gettext(self, message: str) -> str:
        return self.translations.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.translations.ngettext(singular, plural, n)

    def format_datetime(self, value: datetime) -> str:
        """A time in the province's zone: "14:30 ngày 27/11/2026", "2:30 PM on 11/27/2026"."""
        local = to_local(value)
        time_text = format_time(local, "short", tzinfo=LOCAL_ZONE, locale=self.code)
        date_text = format_skeleton("yMd", local, tzinfo=LOCAL_ZONE, locale=self.code)
        # TRANSLATORS: a meeting's start or end; time is "14:30", date is "27/11/2026".
        return self.gettext("%(time)s on %(date)s") % {"time": time_text, "date": date_text}

    def format_date(self, value: date | datetime) -> str:
        """A day, in the province's zone when ``value`` is a datetime: "27/11/2026"."""
        day = to_local(value).date() if isinstance(value, datetime) else value
        pattern = Locale.parse(self.code).datetime_skeletons["yMd"]
        return babel_format_date(day, pattern, locale=self.code)


def load_language(code: str, locale_dir: Path = LOCALE_DIR) -> Language:
    """``code``'s catalog compiled in memory (no ``.mo`` on disk); fuzzy entries left out.

    The client's messages are the catalog's entries found in a ``.js`` file (its
    ``#:`` locations, which ``pybabel update`` keeps), so start-up scans no
    source; tests/web/test_i18n.py checks them against :func:`js_msgids`.

    Raises:
        OSError: the catalog is missing.
    """
    path = locale_dir / code / "LC_MESSAGES" / f"{DOMAIN}.po"
    with path.open("rb") as f:
        catalog = read_po(f, locale=code, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    translations = Translations(buffer, domain=DOMAIN)
    js = {
        message.id: translations.gettext(message.id)
        for message in catalog
        if isinstance(message.id, str)
        and message.id
        and any(filename.endswith(".js") for filename, _line in message.locations)
    }
    return Language(code, translations, js)


def load_languages(locale_dir: Path = LOCALE_DIR) -> dict[str, Language]:
    """Every supported language (:func:`load_language`)."""
    return {code: load_language(code, locale_dir) for code in SUPPORTED_LOCALES}


def js_msgids(static_dir: Path = STATIC_DIR) -> list[str]:
    """The msgids of the client's ``t("...")`` calls, found as ``pybabel extract`` finds them."""
    found: dict[str, None] = {}
    for path in sorted(static_dir.glob("*.js")):
        with path.open("rb") as f:
            for _lineno, message, _comments, _context in extract(
                "javascript", f, keywords=JS_KEYWORDS, options=JS_OPTIONS
            ):
                if isinstance(message, str):
                    found.setdefault(message, None)
    return list(found)


# --- choosing a request's language ---------------------------------------------------


def _supported(tag: str | None) -> str | None:
    """``tag`` ("en", "EN", "vi-VN", "en_US") as a supported locale, or None."""
    if not tag:
        return None
    tag = tag.strip().replace("_", "-")
    found = negotiate_locale([tag], SUPPORTED_LOCALES, sep="-", aliases={})
    return found.lower() if found else None


def parse_accept_language(header: str | None) -> list[str]:
    """Language tags of an ``Accept-Language`` header, best first (RFC 9110 §12.5.4).

    Tags with ``q=0`` and the ``*`` wildcard are dropped; equal weights keep
    their order; a malformed weight counts as 0.
    """
    weighted: list[tuple[float, int, str]] = []
    for index, item in enumerate((header or "").split(",")):
        tag, _, params = item.partition(";")
        tag = tag.strip()
        if not tag or tag == "*":
            continue
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        if q > 0:
            weighted.append((-q, index, tag))
    return [tag for _q, _i, tag in sorted(weighted)]


def negotiate(
    query: str | None = None, cookie: str | None = None, accept_language: str | None = None
) -> str:
    """The language for a request: ``?lang=``, the cookie, ``Accept-Language``, then vi.

    An unsupported value at one step is passed over, never an error.
    """
    for choice in (query, cookie):
        found = _supported(choice)
        if found:
            return found
    tags = parse_accept_language(accept_language)
    found = negotiate_locale(tags, SUPPORTED_LOCALES, sep="-", aliases={})
    return found.lower() if found else DEFAULT_LOCALE


def request_locale(request: web.Request) -> str:
    return negotiate(
        request.query.get("lang"),
        request.cookies.get(COOKIE_NAME),
        request.headers.get("Accept-Language"),
    )


def remember_locale(request: web.Request, response: web.StreamResponse) -> None:
    """Keep a language picked with ``?lang=`` for a year; other requests set nothing."""
    chosen = _supported(request.query.get("lang"))
    if chosen is None:
        return
    response.set_cookie(
        COOKIE_NAME,
        chosen,
        max_age=COOKIE_MAX_AGE,
        path="/",
        samesite="Lax",
        httponly=True,
        secure=request.secure,
    )


def language_links(
    request: web.Request, current: str, languages: Iterable[Language]
) -> list[tuple[str, Language]]:
    """``(href, language)`` for every other language: this page with ``?lang=`` set."""
    return [
        (str(request.rel_url.update_query(lang=language.code)), language)
        for language in languages
        if language.code != current
    ]
