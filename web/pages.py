"""Server-rendered pages (jinja2, Vietnamese): login, and the join link's page.

The join page is the browser client's entry: it shows the meeting and the
unit, runs the device check and then the room on the same page (no reload).
The client is plain ES modules under ``web/static`` (no build step); the page
hands it what it needs in a JSON ``<script type="application/json">`` block,
since the Content-Security-Policy allows no inline script.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from conference.errors import DomainError
from conference.invitations import verify_join_token
from conference.timezone import to_local

from .appkeys import DATABASE, LINKS

__all__ = ["CONTENT_SECURITY_POLICY", "REFUSAL_TEXT", "STATIC_DIR", "add_page_routes"]

TEMPLATES = web.AppKey("templates", jinja2.Environment)
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

# What an operator reads when a join link is refused (codes from conference.tokens).
REFUSAL_TEXT = {
    "token_expired": "Đường dẫn đã hết hạn: cuộc họp đã kết thúc.",
    "token_not_yet_valid": "Chưa đến giờ: phòng chờ mở trước giờ họp.",
    "token_revoked": "Lời mời này đã bị thu hồi hoặc đã được cấp lại.",
    "meeting_cancelled": "Cuộc họp đã bị hủy.",
    "meeting_ended": "Cuộc họp đã kết thúc.",
}
_DEFAULT_REFUSAL = "Đường dẫn không hợp lệ. Vui lòng liên hệ Văn phòng để được cấp lại."


def _local_time(value: datetime) -> str:
    return to_local(value).strftime("%H:%M ngày %d/%m/%Y")


def _json_for_script(data: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``</script>``, no ``<!--``."""
    text = json.dumps(data, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _render(request: web.Request, name: str, status: int = 200, **context: Any) -> web.Response:
    html = request.app[TEMPLATES].get_template(name).render(**context)
    response = web.Response(text=html, content_type="text/html", charset="utf-8", status=status)
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    # The join page carries a token in its address and the room's state: never cache it.
    response.headers["Cache-Control"] = "no-store"
    return response


async def index(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/login")


async def login_page(request: web.Request) -> web.StreamResponse:
    return _render(request, "login.html")


async def join_page(request: web.Request) -> web.StreamResponse:
    token = request.match_info["token"]
    try:
        async with request.app[DATABASE].read() as session:
            grant = await verify_join_token(session, request.app[LINKS], token)
    except DomainError as e:
        return _render(
            request,
            "join_refused.html",
            status=403,
            code=e.code,
            reason=REFUSAL_TEXT.get(e.code, _DEFAULT_REFUSAL),
        )
    meeting = grant.meeting
    role = grant.invitation.role.value
    client = {
        "token": token,
        "role": role,
        "meeting": {"id": meeting.id, "title": meeting.title},
        "unit": {"code": grant.unit.code, "name": grant.unit.name},
        # Unattended room PCs open the link with ?autojoin=1: join with default devices.
        "autojoin": request.query.get("autojoin") == "1",
        "ws_path": "/ws",
    }
    return _render(
        request,
        "join.html",
        meeting=meeting,
        unit=grant.unit,
        role=role,
        starts=_local_time(meeting.starts_at),
        ends=_local_time(meeting.ends_at),
        client_json=_json_for_script(client),
    )


def add_page_routes(app: web.Application) -> None:
    app[TEMPLATES] = jinja2.Environment(
        loader=jinja2.PackageLoader("web", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
    )
    app.router.add_get("/", index)
    app.router.add_get("/login", login_page)
    app.router.add_get("/join/{token}", join_page)
    app.router.add_static("/static/", STATIC_DIR, name="static", append_version=True)
