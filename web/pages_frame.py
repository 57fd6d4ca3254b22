"""The frame every server-rendered page shares: templates, languages, rendering with
the Content-Security-Policy, the signed-in check of a page, and the navigation bar.

A page that needs an account calls :func:`page_actor` with the roles it admits:
not signed in (or a session that ended) -> 302 to ``/login?next=<this path>``;
signed in with another role -> a 403 page in the request's language. ``next``
is only ever followed when :func:`local_path` accepts it (a path of this site,
never ``//host`` or ``https://host``), so the login page cannot send anyone away.

Forms and CSRF: pages never take a POST. Every page that changes something does
it with a little JavaScript calling the JSON API (web/static/api.js, with the
session cookie). A signed-in page carries its session's CSRF token in
``<meta name="csrf-token">`` and in a hidden ``csrf_token`` field of each form
(``{{ csrf_token }}`` in every template); api.js sends it as ``X-CSRF-Token``,
and web/auth.py refuses a cookie-authenticated change without it or from
another origin. The pages themselves only read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import jinja2
from aiohttp import web
from jinja2.runtime import Context

from conference.actors import Actor
from conference.errors import AuthenticationFailed, DomainError
from conference.models import Role

from .auth import authenticate, csrf_token_for
from .i18n import N_, Language, language_links, remember_locale, request_locale

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "LANGUAGES",
    "NAVIGATION",
    "ROLE_HOME",
    "STATIC_DIR",
    "TEMPLATES",
    "NavItem",
    "duration_text",
    "home_for",
    "json_for_script",
    "local_path",
    "page_actor",
    "page_language",
    "render",
    "templates",
]

TEMPLATES = web.AppKey("templates", jinja2.Environment)
LANGUAGES = web.AppKey("languages", dict[str, Language])
STATIC_DIR = Path(__file__).parent / "static"

# Scripts and styles only from files of this origin: user text (unit names, chat)
# that slipped into markup could not run. `connect-src 'self'` covers the
# same-origin WebSocket (CSP Level 3); `mediastream:`/`blob:` the <video> sources.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "media-src 'self' blob: mediastream:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


@dataclass(frozen=True, slots=True)
class NavItem:
    path: str
    label: str  # a msgid
    roles: frozenset[Role]


# The navigation bar: each account sees the entries of its roles, in this order.
NAVIGATION = (
    NavItem("/meetings", N_("Meetings"), frozenset({Role.SECRETARIAT, Role.ADMIN})),
    NavItem("/today", N_("Today"), frozenset({Role.OPERATOR, Role.CHAIR})),
    NavItem("/archive", N_("Archive"), frozenset({Role.CLERK, Role.ADMIN, Role.CHAIR})),
    NavItem("/admin", N_("Administration"), frozenset({Role.ADMIN})),
)

# Where a role lands after signing in (the first role of the account found here);
# a role without a start page yet stays on the sign-in page, greeted.
ROLE_HOME = {
    Role.SECRETARIAT: "/meetings",
    Role.ADMIN: "/admin/status",
    Role.CLERK: "/archive",
    Role.OPERATOR: "/today",
    Role.CHAIR: "/today",
}


def duration_text(seconds: float) -> str:
    """A length as a clock shows it: "4:05", "1:02:03"."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def home_for(roles: frozenset[Role]) -> str:
    return next((path for role, path in ROLE_HOME.items() if role in roles), "")


def local_path(value: str | None) -> str | None:
    """``value`` if it is a path on this site ("/meetings?x=1"), else None.

    Refused: absolute and scheme-relative URLs (``https://x``, ``//x``, ``/\\x``,
    which browsers read as ``//x``), anything with control characters or spaces.
    """
    if not value or len(value) > 2000 or not value.startswith("/"):
        return None
    if value.startswith(("//", "/\\")) or any(ch <= " " or ch == "\x7f" for ch in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    return value


@jinja2.pass_context
def _gettext(context: Context, message: str) -> str:
    language: Language = context["language"]
    return language.gettext(message)


@jinja2.pass_context
def _ngettext(context: Context, singular: str, plural: str, n: int) -> str:
    language: Language = context["language"]
    return language.ngettext(singular, plural, n)


def templates() -> jinja2.Environment:
    """Templates whose gettext calls translate into the ``language`` they are rendered with."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("web", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n"],
    )
    # `{% trans %}` blocks lose their line breaks and indentation (babel.cfg: trimmed).
    env.policies["ext.i18n.trimmed"] = True
    # Newstyle: `_("%(n)s items", n=3)` formats and escapes its variables itself.
    env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=_gettext, ngettext=_ngettext, newstyle=True
    )
    return env


def json_for_script(data: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``</script>``, no ``<!--``."""
    text = json.dumps(data, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def page_language(request: web.Request) -> Language:
    return request.app[LANGUAGES][request_locale(request)]


def _navigation(language: Language, actor: Actor | None, path: str) -> list[dict[str, Any]]:
    if actor is None:
        return []
    return [
        {
            "path": item.path,
            "label": language.gettext(item.label),
            "current": path == item.path or path.startswith(item.path + "/"),
        }
        for item in NAVIGATION
        if actor.roles & item.roles
    ]


def render(
    request: web.Request,
    language: Language,
    name: str,
    status: int = 200,
    *,
    actor: Actor | None = None,
    **context: Any,
) -> web.Response:
    """``name`` rendered in ``language``, with the navigation bar when ``actor`` is given."""
    client_i18n = {"locale": language.code, "messages": language.js_messages}
    template = request.app[TEMPLATES].get_template(name)
    html = template.render(
        language=language,
        language_links=language_links(request, language.code, request.app[LANGUAGES].values()),
        i18n_json=json_for_script(client_i18n),
        nav=_navigation(language, actor, request.path),
        account=actor,
        csrf_token=csrf_token_for(request) if actor is not None else "",
        **context,
    )
    response = web.Response(text=html, content_type="text/html", charset="utf-8", status=status)
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    # The join page carries a token in its address and the room's state: never cache it.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Language"] = language.code
    response.headers["Vary"] = "Accept-Language, Cookie"
    remember_locale(request, response)
    return response


def _as_exception(response: web.Response) -> web.HTTPException:
    headers = {
        k: v for k, v in response.headers.items() if k not in ("Content-Type", "Content-Length")
    }
    return web.HTTPForbidden(text=response.text, content_type="text/html", headers=headers)


async def page_actor(request: web.Request, *roles: Role) -> Actor:
    """The signed-in account of a page that admits ``roles``.

    Raises:
        web.HTTPFound: not signed in -> ``/login?next=<this path and query>``.
        web.HTTPForbidden: signed in without one of ``roles`` (a page saying so).
    """
    try:
        actor = await authenticate(request)
    except (AuthenticationFailed, DomainError):
        target = local_path(str(request.rel_url)) or "/"
        raise web.HTTPFound("/login?" + urlencode({"next": target})) from None
    if not actor.has(*roles):
        language = page_language(request)
        response = render(
            request,
            language,
            "forbidden.html",
            status=403,
            actor=actor,
            home=home_for(actor.roles),
        )
        raise _as_exception(response)
    return actor
