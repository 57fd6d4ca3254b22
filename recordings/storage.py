"""Where recordings live: a directory per recording, by date and meeting.

``2026/11/27/hop-giao-ban-quy-iv-m12/r1/``: the local date the recording
started (Asia/Ho_Chi_Minh), the meeting's title slugged to ASCII (readable,
safe on any filesystem) with its id, and the recording's number in the meeting.
Paths stored in the database are relative to the storage root, so the root can
move. Everything that touches files goes through :class:`Storage`, so an
S3-compatible store can be added behind the same interface: the recorder and
the composite job need a local working directory (``workdir``), and a remote
store would upload from it on ``commit``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Protocol

from conference.slugs import ascii_slug
from conference.timezone import to_local

__all__ = ["LocalStorage", "Storage", "recording_key"]


def recording_key(title: str, meeting_id: int, number: int, started_at: datetime) -> str:
    """The relative path of a recording's directory (POSIX separators)."""
    day = to_local(started_at)
    slug = ascii_slug(title, max_length=48)
    return f"{day:%Y/%m/%d}/{slug}-m{meeting_id}/r{number}"


class Storage(Protocol):
    def workdir(self, key: str) -> Path:
        """A local directory for the recording ``key``, created if needed."""
        ...

    def commit(self, key: str) -> None:
        """The recording ``key`` is final (a remote store uploads it here)."""
        ...

    def file(self, key: str, name: str) -> Path | None:
        """The local path of file ``name`` of recording ``key``, None if it is not there."""
        ...

    def delete(self, key: str) -> None:
        """Remove the recording ``key``; OSError if it could not all be removed."""
        ...

    def size(self, key: str) -> int: ...


class LocalStorage:
    """Recordings under one local directory (the data dir's ``recordings/``)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _dir(self, key: str) -> Path:
        parts = key.split("/")
        if any(p in ("", ".", "..") or "\\" in p or "\0" in p for p in parts):
            raise ValueError(f"not a recording key: {key!r}")
        path = (self.root / Path(*parts)).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"not a recording key: {key!r}")
        return path

    def workdir(self, key: str) -> Path:
        path = self._dir(key)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def commit(self, key: str) -> None:
        return None  # already where it stays

    def file(self, key: str, name: str) -> Path | None:
        """Only a plain file directly in the recording's directory: no separators,
        no dot files, no links out of it."""
        if not name or "/" in name or "\\" in name or name.startswith(".") or "\0" in name:
            return None
        try:
            directory = self._dir(key)
        except ValueError:
            return None
        path = directory / name
        if path.is_symlink() or not path.is_file():
            return None
        return path

    def delete(self, key: str) -> None:
        """Remove the recording's directory (gone already is fine). OSError if anything
        in it could not be removed: the caller must not count it deleted."""
        path = self._dir(key)
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(path)
        # Remove the meeting and date directories once empty.
        for parent in path.parents:
            if parent == self.root or not parent.is_relative_to(self.root):
                break
            try:
                parent.rmdir()
            except OSError:
                break

    def size(self, key: str) -> int:
        total = 0
        for dirpath, _dirs, files in os.walk(self._dir(key)):
            for name in files:
                total += (Path(dirpath) / name).stat().st_size
        return total
