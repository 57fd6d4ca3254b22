"""Server-rendered pages (jinja2, Vietnamese): login and the join-link landing page.

The full browser client (device check, room) arrives with the media issue; the
landing page already tells an operator whether the link is good and why not.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import jinja2
from aiohttp import web

from conference.errors import DomainError
from conference.invitations import verify_join_token
from conference.timezone import to_local

from .appkeys import DATABASE, LINKS

__all__ = ["REFUSAL_TEXT", "add_page_routes"]

TEMPLATES = web.AppKey("templates", jinja2.Environment)

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


def _render(request: web.Request, name: str, status: int = 200, **context: Any) -> web.Response:
    html = request.app[TEMPLATES].get_template(name).render(**context)
    return web.Response(text=html, content_type="text/html", charset="utf-8", status=status)


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
    return _render(
        request,
        "join.html",
        meeting=meeting,
        unit=grant.unit,
        role=grant.invitation.role.value,
        starts=_local_time(meeting.starts_at),
        ends=_local_time(meeting.ends_at),
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
