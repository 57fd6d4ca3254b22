"""Server-rendered pages (jinja2): login, the join link's page, a recording's page.

Every page is in Vietnamese (the default) or English, chosen per request
(web/i18n.py); templates mark their text for gettext (``jinja2.ext.i18n``) and
the page embeds the client's text in its language as JSON (``#i18n-messages``).

The join page is the browser client's entry: it shows the meeting and the
unit, runs the device check and then the room on the same page (no reload).
The client is plain ES modules under ``web/static`` (no build step); the page
hands it what it needs in a JSON ``<script type="application/json">`` block,
since the Content-Security-Policy allows no inline script.

The frame every page shares (rendering, the signed-in check, the navigation bar,
and why pages take no POST) is web/pages_frame.py; the secretariat's meeting
pages are web/pages_meetings.py.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from babel.numbers import format_decimal

from conference import recordings as recording_service
from conference.errors import DomainError, NotFound, PermissionDenied
from conference.invitations import verify_join_token
from conference.models import CompositeStatus, RecordingStatus, Role
from recordings.jobs import COMPOSITE_NAME
from recordings.manifest import MANIFEST_NAME, read_manifest

from .appkeys import DATABASE, LINKS, RECORDING_STORAGE
from .i18n import N_, Language, load_languages
from .pages_frame import (
    CONTENT_SECURITY_POLICY,
    LANGUAGES,
    STATIC_DIR,
    TEMPLATES,
    duration_text,
    home_for,
    json_for_script,
    local_path,
    page_actor,
    page_language,
    render,
    templates,
)
from .pages_meetings import ROLE_TEXT, add_meeting_pages
from .params import row_id

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "LANGUAGES",
    "REFUSAL_TEXT",
    "ROLE_TEXT",
    "STATIC_DIR",
    "add_page_routes",
]

# What an operator reads when a join link is refused (codes from conference.tokens).
# Msgids: translated when the page is rendered, in the request's language.
REFUSAL_TEXT = {
    "token_expired": N_("The link has expired: the meeting is over."),
    "token_not_yet_valid": N_("Too early: the lobby opens shortly before the meeting."),
    "token_revoked": N_("This invitation has been revoked or issued again."),
    "meeting_cancelled": N_("The meeting has been cancelled."),
    "meeting_ended": N_("The meeting has ended."),
}
_DEFAULT_REFUSAL = N_("The link is not valid. Please ask the Office for a new one.")


# Kept under their old names: tests and other modules import them from here.
_templates = templates
_json_for_script = json_for_script
_language = page_language
_render = render


async def index(request: web.Request) -> web.StreamResponse:
    # The query goes along: `/?lang=en` opens the login page in English.
    raise web.HTTPFound(request.rel_url.with_path("/login").with_query(request.query))


async def login_page(request: web.Request) -> web.StreamResponse:
    """The sign-in form; afterwards login.js goes to ``next`` (a local path only) or home."""
    homes = {role.value: home_for(frozenset({role})) for role in Role}
    data = {"next": local_path(request.query.get("next")), "homes": homes}
    return _render(request, _language(request), "login.html", login_json=_json_for_script(data))


async def join_page(request: web.Request) -> web.StreamResponse:
    token = request.match_info["token"]
    language = _language(request)
    try:
        async with request.app[DATABASE].read() as session:
            grant = await verify_join_token(session, request.app[LINKS], token)
    except DomainError as e:
        return _render(
            request,
            language,
            "join_refused.html",
            status=403,
            code=e.code,
            reason=language.gettext(REFUSAL_TEXT.get(e.code, _DEFAULT_REFUSAL)),
        )
    meeting = grant.meeting
    role = grant.invitation.role.value
    client = {
        "token": token,
        "role": role,
        "meeting": {
            "id": meeting.id,
            "title": meeting.title,
            "starts_at": meeting.starts_at.isoformat(),
        },
        "unit": {"code": grant.unit.code, "name": grant.unit.name},
        # Unattended room PCs open the link with ?autojoin=1: join with default devices.
        "autojoin": request.query.get("autojoin") == "1",
        "ws_path": "/ws",
    }
    return _render(
        request,
        language,
        "join.html",
        meeting=meeting,
        unit=grant.unit,
        role=role,
        role_text=language.gettext(ROLE_TEXT[role]) if role in ROLE_TEXT else role,
        starts=language.format_datetime(meeting.starts_at),
        ends=language.format_datetime(meeting.ends_at),
        client_json=_json_for_script(client),
    )


RECORDING_STATUS_TEXT = {
    RecordingStatus.RECORDING: N_("recording now"),
    RecordingStatus.FINISHED: N_("finished"),
    RecordingStatus.FAILED: N_("failed"),
    RecordingStatus.INTERRUPTED: N_("interrupted (the server stopped)"),
}
COMPOSITE_TEXT = {
    CompositeStatus.NONE: N_("Not made yet."),
    CompositeStatus.QUEUED: N_("Waiting to start."),
    CompositeStatus.RUNNING: N_("Being made."),
    CompositeStatus.DONE: N_("Ready."),
    CompositeStatus.FAILED: N_("Could not be made."),
}
KIND_TEXT = {"audio": N_("sound"), "video": N_("picture")}


def _size(language: Language, size: int) -> str:
    return f"{format_decimal(size / 1e6, '#,##0.0', locale=language.code)} MB"


async def recording_page(request: web.Request) -> web.StreamResponse:
    """One recording for clerks, admins and the chair unit: the composite's player and
    progress (a button makes it), and every file with its unit and SHA-256."""
    language = _language(request)
    actor = await page_actor(request, Role.CLERK, Role.ADMIN, Role.CHAIR)
    recording_id = row_id(request.match_info["recording_id"])
    try:
        if recording_id is None:
            raise NotFound("no such recording", code="recording_not_found")
        async with request.app[DATABASE].read() as session:
            row, meeting = await recording_service.get_recording(session, actor, recording_id)
    except (NotFound, PermissionDenied) as e:
        status = 404 if isinstance(e, NotFound) else 403
        return _render(
            request,
            language,
            "join_refused.html",
            status=status,
            actor=actor,
            code=e.code,
            reason=language.gettext(
                N_("No such recording.") if status == 404 else N_("You may not read recordings.")
            ),
        )
    storage = request.app[RECORDING_STORAGE]
    base = f"/api/recordings/{row.id}/files/"
    files: list[dict[str, Any]] = []
    manifest_path = storage.file(row.path, MANIFEST_NAME)
    if manifest_path is not None:
        try:
            manifest = read_manifest(manifest_path.parent)
        except (OSError, ValueError):
            manifest = None
        for track in manifest.tracks if manifest is not None else []:
            files.append(
                {
                    "name": track.file,
                    "url": base + track.file,
                    "unit_name": track.unit_name,
                    "kind_text": language.gettext(KIND_TEXT.get(track.kind, track.kind)),
                    "start": duration_text(track.start_offset),
                    "length": duration_text(track.duration),
                    "size": _size(language, track.bytes),
                    "sha256": track.sha256,
                }
            )
    composite = storage.file(row.path, COMPOSITE_NAME)
    page = {"id": row.id, "composite_status": row.composite_status.value}
    return _render(
        request,
        language,
        "recording.html",
        actor=actor,
        rec=row,
        meeting_title=meeting.title,
        status_text=language.gettext(RECORDING_STATUS_TEXT[row.status]),
        started=language.format_datetime(row.started_at),
        duration=duration_text(row.duration_seconds) if row.duration_seconds else "",
        composite_url=base + COMPOSITE_NAME
        if composite is not None and row.composite_status is CompositeStatus.DONE
        else "",
        composite_text=language.gettext(COMPOSITE_TEXT[row.composite_status]),
        can_compose=row.status in (RecordingStatus.FINISHED, RecordingStatus.INTERRUPTED),
        files=files,
        page_json=_json_for_script(page),
    )


def add_page_routes(app: web.Application) -> None:
    app[TEMPLATES] = templates()
    app[LANGUAGES] = load_languages()
    app.router.add_get("/", index)
    app.router.add_get("/login", login_page)
    app.router.add_get("/join/{token}", join_page)
    app.router.add_get("/recordings/{recording_id}", recording_page)
    add_meeting_pages(app)
    # Imported here: the archive pages reuse this module's recording texts.
    from .pages_archive import add_archive_pages

    add_archive_pages(app)
    from .pages_today import add_today_pages

    add_today_pages(app)
    from .pages_admin_directory import add_directory_pages
    from .pages_admin_system import add_system_pages

    add_directory_pages(app)
    add_system_pages(app)
    app.router.add_static("/static/", STATIC_DIR, name="static", append_version=True)
