"""recordings.storage: readable, safe directory names and no way out of the root."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from recordings.storage import LocalStorage, recording_key

STARTED = datetime(2026, 11, 27, 17, 30, tzinfo=UTC)  # 00:30 on the 28th in Hà Nội


def test_the_key_is_the_local_date_the_slugged_title_the_meeting_and_the_number():
    key = recording_key("Họp giao ban quý IV — Đảng ủy tỉnh", 12, 2, STARTED)
    assert key == "2026/11/28/hop-giao-ban-quy-iv-dang-uy-tinh-m12/r2"


@pytest.mark.parametrize("title", ["../../etc/passwd", "a/b\\c", "", "....", "🇻🇳🙏", "x" * 500])
def test_any_title_gives_a_key_of_safe_ascii_parts(title: str, tmp_path: Path):
    key = recording_key(title, 7, 1, STARTED)
    parts = key.split("/")
    assert len(parts) == 5
    assert all(p and p not in (".", "..") and p.isascii() for p in parts)
    assert len(parts[3]) <= 48 + len("-m7")
    directory = LocalStorage(tmp_path).workdir(key)
    assert directory.is_relative_to(tmp_path)


@pytest.mark.parametrize(
    "key", ["../outside", "/etc", "2026/../../x", "a//b", "a/./b", "", "a\\..\\b"]
)
def test_a_key_that_would_leave_the_root_is_refused(key: str, tmp_path: Path):
    with pytest.raises(ValueError, match="not a recording key"):
        LocalStorage(tmp_path / "root").workdir(key)
    assert not (tmp_path / "outside").exists()


def test_file_gives_only_plain_files_directly_in_the_recording(tmp_path: Path):
    storage = LocalStorage(tmp_path / "root")
    key = "2026/11/28/hop-m1/r1"
    directory = storage.workdir(key)
    (directory / "t01.webm").write_bytes(b"webm")
    (directory / ".manifest.json.tmp").write_text("{}")
    (directory / "t01").mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    os.symlink(secret, directory / "link.webm")
    assert storage.file(key, "t01.webm") == directory / "t01.webm"
    for name in ["../r1/t01.webm", "t01", ".manifest.json.tmp", "link.webm", "", "a\0b", "x"]:
        assert storage.file(key, name) is None, name
    assert storage.file("../..", "secret.txt") is None


def test_delete_removes_the_recording_and_empty_parents_only(tmp_path: Path):
    storage = LocalStorage(tmp_path)
    first = storage.workdir("2026/11/28/hop-m1/r1")
    second = storage.workdir("2026/11/28/hop-m1/r2")
    (first / "t01.webm").write_bytes(b"1" * 10)
    (second / "t01.webm").write_bytes(b"2" * 20)
    assert storage.size("2026/11/28/hop-m1/r1") == 10
    storage.delete("2026/11/28/hop-m1/r1")
    assert not first.exists()
    assert second.exists()
    storage.delete("2026/11/28/hop-m1/r2")
    assert not (tmp_path / "2026").exists()
    assert tmp_path.exists()
