"""Recordings: find them, read their manifest, download or stream their files,
keep them past the retention period, and ask for the composite.

Readers are clerks, admins and the chair unit of the recorded meeting; a
recording someone may not read is 404, like one that does not exist. Files are
named by the manifest (never by a path from the URL), served with HTTP Range so
the browser's player can seek, and every download (a request from the first
byte) writes an audit entry.
"""

from __future__ import annotations

import contextlib
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from conference import recordings as recording_service
from conference.audit import record_audit
from conference.errors import NotFound
from conference.models import (
    CompositeStatus,
    RecordingPublic,
    RecordingStatus,
    RecordingUpdate,
    Role,
)
from recordings.jobs import COMPOSITE_NAME
from recordings.manifest import MANIFEST_NAME, read_manifest

from .api import Api, Call, QueryParam, json_ok, roles
from .appkeys import COMPOSITES, DATABASE, RECORDING_STORAGE
from .errors import ApiError
from .params import ROW_ID_LIMIT, datetime_param, enum_list_param, int_param, row_id, str_param

__all__ = ["add_recording_routes"]

_READERS = roles(Role.CLERK, Role.ADMIN, Role.CHAIR)
_KEEPERS = roles(Role.CLERK, Role.ADMIN)
_ID = "{recording_id}"
_TYPES = {".webm": "video/webm", ".mp4": "video/mp4", ".json": "application/json"}


class RecordingPageOut(BaseModel):
    items: list[RecordingPublic]
    total: int
    limit: int
    offset: int


class RecordingFileOut(BaseModel):
    name: str
    kind: str  # audio, video, composite, manifest
    unit_id: int | None = None
    unit_name: str = ""
    source: str = ""
    start_offset: float = 0.0
    duration: float = 0.0
    bytes: int
    sha256: str = ""
    url: str


class RecordingDetailOut(BaseModel):
    recording: RecordingPublic
    files: list[RecordingFileOut]
    composite_error: str = ""


class CompositeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    layout: Literal["speaker", "grid"] = "speaker"


def _recording_id(request: web.Request) -> int:
    value = row_id(request.match_info["recording_id"])
    if value is None:
        raise NotFound("no such recording", code="recording_not_found")
    return value


def add_recording_routes(api: Api) -> None:
    @api.route(
        "GET",
        "/api/recordings",
        summary="List recordings by meeting, date range, unit and status",
        tag="recordings",
        roles=_READERS,
        response=RecordingPageOut,
        query=[
            QueryParam("meeting", "only this meeting's recordings", {"type": "integer"}),
            QueryParam("from", "started at or after (ISO 8601 with offset)", {"type": "string"}),
            QueryParam("to", "started before (ISO 8601 with offset)", {"type": "string"}),
            QueryParam("unit", "only recordings holding this unit's tracks (unit code)"),
            QueryParam("status", "comma-separated: recording,finished,failed,interrupted"),
            QueryParam("limit", "page size, 1 to 500 (default 100)", {"type": "integer"}),
            QueryParam("offset", "rows to skip", {"type": "integer"}),
        ],
    )
    async def list_recordings(request: web.Request, call: Call) -> web.StreamResponse:
        meeting = int_param(request, "meeting", default=0, low=0, high=ROW_ID_LIMIT - 1)
        async with request.app[DATABASE].read() as session:
            page = await recording_service.list_recordings(
                session,
                call.who,
                meeting_id=meeting or None,
                started_from=datetime_param(request, "from"),
                started_to=datetime_param(request, "to"),
                unit_code=str_param(request, "unit", max_length=32),
                statuses=enum_list_param(request, "status", RecordingStatus),
                limit=int_param(request, "limit", default=100, low=1, high=500),
                offset=int_param(request, "offset", default=0, low=0, high=10_000_000),
            )
        return json_ok(
            RecordingPageOut(
                items=page.items, total=page.total, limit=page.limit, offset=page.offset
            )
        )

    @api.route(
        "GET",
        f"/api/recordings/{_ID}",
        summary="One recording: its state, its files (from the manifest), the composite",
        tag="recordings",
        roles=_READERS,
        response=RecordingDetailOut,
        errors=(404,),
    )
    async def get_recording(request: web.Request, call: Call) -> web.StreamResponse:
        async with request.app[DATABASE].read() as session:
            row, meeting = await recording_service.get_recording(
                session, call.who, _recording_id(request)
            )
        return json_ok(
            RecordingDetailOut(
                recording=recording_service.public(row, meeting.title),
                files=_files(request, row.id or 0, row.path),
                composite_error=row.composite_error,
            )
        )

    @api.route(
        "GET",
        f"/api/recordings/{_ID}/files/{{name}}",
        summary="Download or stream one file of a recording (HTTP Range supported)",
        tag="recordings",
        roles=_READERS,
        content_type="application/octet-stream",
        errors=(404, 416),
    )
    async def download(request: web.Request, call: Call) -> web.StreamResponse:
        name = request.match_info["name"]
        db = request.app[DATABASE]
        async with db.read() as session:
            row, _meeting = await recording_service.get_recording(
                session, call.who, _recording_id(request)
            )
        if name not in _allowed_names(request, row.path):
            raise NotFound("no such file in this recording", code="file_not_found")
        path = request.app[RECORDING_STORAGE].file(row.path, name)
        if path is None:
            raise NotFound("no such file in this recording", code="file_not_found")
        range_header = request.headers.get("Range", "")
        if not range_header or range_header.replace(" ", "").startswith("bytes=0-"):
            # A download or the start of playback; a player's seeks are not logged.
            async with db.write() as session:
                record_audit(
                    session,
                    call.who,
                    "recording.download",
                    "recording",
                    row.id,
                    file=name,
                    range=range_header[:100],
                )
        suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
        return web.FileResponse(
            path,
            headers={
                "Content-Type": _TYPES.get(suffix, "application/octet-stream"),
                "Content-Disposition": f'inline; filename="r{row.id}-{name}"',
                "Cache-Control": "private, no-store",
            },
        )

    @api.route(
        "PATCH",
        f"/api/recordings/{_ID}",
        summary="Keep a recording past the retention period (or not)",
        tag="recordings",
        roles=_KEEPERS,
        body=RecordingUpdate,
        response=RecordingPublic,
        errors=(404, 422),
    )
    async def update(request: web.Request, call: Call) -> web.StreamResponse:
        async with request.app[DATABASE].write() as session:
            row, meeting = await recording_service.get_recording(
                session, call.who, _recording_id(request)
            )
            row.keep = call.body.keep
            session.add(row)
            record_audit(session, call.who, "recording.keep", "recording", row.id, keep=row.keep)
        return json_ok(recording_service.public(row, meeting.title))

    @api.route(
        "POST",
        f"/api/recordings/{_ID}/composite",
        summary="Make (or remake) the composite MP4 in the background; progress in the recording",
        tag="recordings",
        roles=_READERS,
        body=CompositeRequest,
        response=RecordingPublic,
        status=202,
        errors=(404, 409),
    )
    async def compose(request: web.Request, call: Call) -> web.StreamResponse:
        db = request.app[DATABASE]
        async with db.read() as session:
            row, meeting = await recording_service.get_recording(
                session, call.who, _recording_id(request)
            )
        if row.composite_status in (CompositeStatus.QUEUED, CompositeStatus.RUNNING):
            raise ApiError(409, "composite_running", "the composite is being made already")
        assert row.id is not None
        try:
            queued = await request.app[COMPOSITES].queue(row.id, call.body.layout)
        except ValueError as e:
            raise ApiError(409, "not_composable", str(e)) from e
        if not queued:  # the runner holds a job for it still (its row may say done already)
            raise ApiError(409, "composite_running", "the composite is being made already")
        async with db.write() as session:
            record_audit(
                session, call.who, "recording.compose", "recording", row.id, layout=call.body.layout
            )
            fresh, meeting = await recording_service.get_recording(session, call.who, row.id)
        return json_ok(recording_service.public(fresh, meeting.title), status=202)


def _allowed_names(request: web.Request, key: str) -> set[str]:
    storage = request.app[RECORDING_STORAGE]
    names = {MANIFEST_NAME, COMPOSITE_NAME}
    manifest_path = storage.file(key, MANIFEST_NAME)
    if manifest_path is not None:
        with contextlib.suppress(OSError, ValueError):
            names |= {t.file for t in read_manifest(manifest_path.parent).tracks}
    return names


def _files(request: web.Request, recording_id: int, key: str) -> list[RecordingFileOut]:
    storage = request.app[RECORDING_STORAGE]
    base = f"/api/recordings/{recording_id}/files/"
    out: list[RecordingFileOut] = []
    manifest_path = storage.file(key, MANIFEST_NAME)
    if manifest_path is None:
        return out
    try:
        manifest = read_manifest(manifest_path.parent)
    except (OSError, ValueError):
        return out
    composite = storage.file(key, COMPOSITE_NAME)
    if composite is not None:
        out.append(
            RecordingFileOut(
                name=COMPOSITE_NAME,
                kind="composite",
                duration=manifest.duration_seconds,
                bytes=composite.stat().st_size,
                url=base + COMPOSITE_NAME,
            )
        )
    for t in manifest.tracks:
        out.append(
            RecordingFileOut(
                name=t.file,
                kind=t.kind,
                unit_id=t.unit_id,
                unit_name=t.unit_name,
                source=t.source,
                start_offset=t.start_offset,
                duration=t.duration,
                bytes=t.bytes,
                sha256=t.sha256,
                url=base + t.file,
            )
        )
    out.append(
        RecordingFileOut(
            name=MANIFEST_NAME,
            kind="manifest",
            bytes=manifest_path.stat().st_size,
            url=base + MANIFEST_NAME,
        )
    )
    return out
