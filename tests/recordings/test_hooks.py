"""The command run after a recording: real processes, real environment, real kills."""

from __future__ import annotations

import os
import shlex
import stat
import sys
import time
from pathlib import Path

import pytest
from sqlmodel import select

from conference.db import Database
from conference.models import AuditEntry
from recordings.hooks import (
    CANNOT_START,
    TAIL_LINES,
    CommandResult,
    record_command,
    recording_env,
    run_command,
)
from tests.recordings.webhook_receiver import wait_until

RECORDING_DIR = Path("/srv/hoinghi/recordings/2030/Họp giao ban – quý 1")


def script(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + text, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def env() -> dict[str, str]:
    return recording_env(
        recording_id=42,
        recording_dir=RECORDING_DIR,
        meeting_id=7,
        manifest=RECORDING_DIR / "manifest.json",
        status="finished",
    )


def gone(pid: int) -> bool:
    """True once ``pid`` no longer runs (a zombie waiting for its reaper counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return True
    return fields[0] in {"Z", "X"}


async def test_command_gets_the_recording_env_and_its_exit_status_is_returned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOINGHI_TEST_INHERITED", "có")
    hook = script(
        tmp_path,
        "finalize.sh",
        'echo "id=$HOINGHI_RECORDING_ID meeting=$HOINGHI_MEETING_ID"\n'
        'echo "dir=$HOINGHI_RECORDING_DIR"\n'
        'echo "manifest=$HOINGHI_MANIFEST status=$HOINGHI_RECORDING_STATUS"\n'
        'echo "inherited=$HOINGHI_TEST_INHERITED"\n'
        'echo "args=$#:$1|$2"\n'
        'echo "to stderr" >&2\n'
        "exit 3\n",
    )
    # Quoted like a shell would: one argument with a space, one with a quote.
    result = await run_command(f"{hook} 'hai từ' \"it's\"", env(), timeout=10)
    assert isinstance(result, CommandResult)
    assert result.exit_status == 3
    assert not result.ok
    assert not result.timed_out
    assert result.error == ""
    assert 0 < result.duration < 10
    assert result.output == (
        "id=42 meeting=7",
        f"dir={RECORDING_DIR}",
        f"manifest={RECORDING_DIR / 'manifest.json'} status=finished",
        "inherited=có",
        "args=2:hai từ|it's",
        "to stderr",
    )


async def test_no_shell_is_involved(tmp_path: Path) -> None:
    marker = tmp_path / "injected"
    result = await run_command(f"echo safe; touch {marker}", {}, timeout=10)
    assert result.exit_status == 0
    assert result.ok
    assert result.output == (f"safe; touch {marker}",)
    assert not marker.exists()


async def test_a_command_that_does_not_exist_gives_127(tmp_path: Path) -> None:
    result = await run_command(str(tmp_path / "không-có-lệnh"), env(), timeout=10)
    assert result.exit_status == CANNOT_START == 127
    assert "FileNotFoundError" in result.error
    assert result.output == ()
    assert not result.ok


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("'unbalanced", "cannot parse"),
    ],
)
async def test_a_command_that_cannot_be_parsed_gives_127(command: str, reason: str) -> None:
    result = await run_command(command, {}, timeout=10)
    assert result.exit_status == 127
    assert reason in result.error


async def test_a_file_that_is_not_executable_gives_127(tmp_path: Path) -> None:
    path = tmp_path / "not-executable.sh"
    path.write_text("#!/bin/sh\nexit 0\n")
    result = await run_command(str(path), {}, timeout=10)
    assert result.exit_status == 127
    assert "PermissionError" in result.error


async def test_a_sleeping_command_is_killed_at_the_timeout_with_its_children(
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "child.pid"
    hook = script(
        tmp_path,
        "slow.sh",
        f'echo "started"\nsleep 60 &\necho $! > "{pid_file}"\nwait\necho "never"\n',
    )
    started = time.monotonic()
    result = await run_command(str(hook), env(), timeout=0.5)
    elapsed = time.monotonic() - started
    assert result.timed_out
    assert not result.ok
    assert result.exit_status == -15  # SIGTERM was enough, no SIGKILL needed
    assert "killed after 0.5 s" in result.error
    assert 0.5 <= elapsed < 10.0
    assert result.output == ("started",)
    child = int(pid_file.read_text())
    await wait_until(lambda: gone(child), within=5.0, what="the script's child to die")


async def test_a_command_ignoring_sigterm_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "stubborn.pid"
    hook = script(
        tmp_path, "stubborn.sh", f"trap '' TERM\necho $$ > \"{pid_file}\"\necho waiting\nsleep 60\n"
    )
    started = time.monotonic()
    result = await run_command(str(hook), {}, timeout=0.3)
    assert result.timed_out
    assert result.exit_status == -9  # SIGKILL after the grace period
    assert time.monotonic() - started < 10.0
    assert result.output == ("waiting",)
    assert gone(int(pid_file.read_text()))


async def test_only_the_last_lines_of_a_long_output_are_kept() -> None:
    program = "import sys\nfor i in range(5000): print('dòng', i, 'x' * 100)\nsys.exit(0)"
    command = f"{shlex.quote(sys.executable)} -c {shlex.quote(program)}"
    result = await run_command(command, {}, timeout=30)
    assert result.exit_status == 0
    assert len(result.output) == TAIL_LINES
    assert result.output[-1].startswith("dòng 4999 ")
    assert result.output[0].startswith(f"dòng {5000 - TAIL_LINES} ")


async def test_the_result_is_written_to_the_audit_trail(database: Database) -> None:
    result = CommandResult(
        command="/usr/local/bin/tai-len --token bí-mật",
        exit_status=3,
        duration=1.23456,
        output=("đã tải 2 tệp", "lỗi: hết chỗ"),
    )
    async with database.write() as session:
        record_command(session, result, recording_id=42)
    async with database.read() as session:
        [entry] = (await session.exec(select(AuditEntry))).all()
    assert (entry.action, entry.object_type, entry.object_id) == (
        "recording.command",
        "recording",
        "42",
    )
    assert entry.actor == "system"
    assert entry.detail == {
        "program": "/usr/local/bin/tai-len",
        "exit_status": 3,
        "duration_seconds": 1.235,
        "timed_out": False,
        "error": "",
        "output": ["đã tải 2 tệp", "lỗi: hết chỗ"],
    }
    assert "bí-mật" not in str(entry.detail)  # arguments may hold tokens
