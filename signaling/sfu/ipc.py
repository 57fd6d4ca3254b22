"""Framing between the signaling process and media workers: length-prefixed JSON.

The message rate is that of signaling (joins, SDP, policies), not of media, so
JSON over a Unix socket is plenty. Frames: a 4-byte big-endian length, then
UTF-8 JSON. Requests ``{"id", "meeting", "op", "args"}`` get ``{"id", "ok"}`` or
``{"id", "error": {"code", "message"}}``; workers also send ``{"event", "meeting"}``
and ``{"load"}`` on their own, and ``{"hello"}`` once.
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

__all__ = ["MAX_FRAME", "FrameTooLarge", "encode", "read_frame"]

MAX_FRAME = 4 * 1024 * 1024
_LENGTH = struct.Struct("!I")


class FrameTooLarge(ValueError):
    pass


def encode(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if len(body) > MAX_FRAME:
        raise FrameTooLarge(f"an IPC frame of {len(body)} bytes is over {MAX_FRAME}")
    return _LENGTH.pack(len(body)) + body


async def read_frame(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next message, or None at the end of the stream."""
    try:
        header = await reader.readexactly(_LENGTH.size)
    except asyncio.IncompleteReadError:
        return None
    (length,) = _LENGTH.unpack(header)
    if length > MAX_FRAME:
        raise FrameTooLarge(f"an IPC frame of {length} bytes is over {MAX_FRAME}")
    body = await reader.readexactly(length)
    message = json.loads(body)
    if not isinstance(message, dict):
        raise ValueError("an IPC frame must hold a JSON object")
    return message
