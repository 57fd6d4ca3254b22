"""The local command run after a recording finishes, like Jibri's finalize script.

The command (``recording_command`` in the configuration) is split with
``shlex`` and started without a shell; the recording's ids and paths reach it
as ``HOINGHI_RECORDING_*`` environment variables added to the server's own.
It gets ``recording_command_timeout_seconds``; then its whole process group is
terminated (SIGTERM, then SIGKILL a few seconds later), so a script's children
die with it. A failing command never raises: the caller gets a
:class:`CommandResult` and writes it to the audit trail with
:func:`record_command`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlmodel.ext.asyncio.session import AsyncSession

from conference.actors import SYSTEM, Actor
from conference.audit import record_audit

__all__ = [
    "CANNOT_START",
    "COMMAND_ACTION",
    "CommandResult",
    "record_command",
    "recording_env",
    "run_command",
]

# The shell's status for "command not found"; used for anything that cannot start.
CANNOT_START = 127
COMMAND_ACTION = "recording.command"
# Output kept: the last lines, each cut to a sane length, from a bounded tail.
TAIL_LINES = 20
_TAIL_BYTES = 16 * 1024
_LINE_CHARS = 500
_CHUNK = 4096
# Between SIGTERM and SIGKILL of a command that ran out of time.
_KILL_GRACE_SECONDS = 3.0


@dataclass(frozen=True, slots=True)
class CommandResult:
    command: str
    # The exit status; negative: killed by that signal; 127: it could not start.
    exit_status: int
    duration: float  # seconds
    output: tuple[str, ...]  # the last lines of stdout and stderr, interleaved
    timed_out: bool = False
    error: str = ""  # why it could not start, or that it ran out of time

    @property
    def ok(self) -> bool:
        return self.exit_status == 0 and not self.timed_out


def recording_env(
    *,
    recording_id: int,
    recording_dir: Path,
    meeting_id: int,
    manifest: Path,
    status: str,
) -> dict[str, str]:
    """The variables the command gets about the recording it follows."""
    return {
        "HOINGHI_RECORDING_ID": str(recording_id),
        "HOINGHI_RECORDING_DIR": str(recording_dir),
        "HOINGHI_MEETING_ID": str(meeting_id),
        "HOINGHI_MANIFEST": str(manifest),
        "HOINGHI_RECORDING_STATUS": status,
    }


# The timeout is a parameter (not the caller's asyncio.timeout) because on expiry
# the command must be killed and its result still returned.
async def run_command(
    command: str,
    env: Mapping[str, str],
    timeout: float,  # noqa: ASYNC109
) -> CommandResult:
    """Run ``command`` (no shell) with ``env`` added to this process's environment.

    Args:
        command: a command line, split like a POSIX shell would split it.
        env: variables added to (and overriding) the server's environment.
        timeout: seconds before the command's process group is killed.

    Returns:
        What happened; never raises for a command that fails or cannot start.
    """
    started = time.monotonic()

    def cannot_start(error: str) -> CommandResult:
        return CommandResult(
            command=command,
            exit_status=CANNOT_START,
            duration=time.monotonic() - started,
            output=(),
            error=error,
        )

    try:
        argv = shlex.split(command)
    except ValueError as e:
        return cannot_start(f"cannot parse the command: {e}")
    if not argv:
        return cannot_start("the command is empty")
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, **env},
            # Its own process group, so a timeout kills what it started too.
            start_new_session=True,
        )
    except OSError as e:
        return cannot_start(f"{type(e).__name__}: {e.strerror or e}")

    tail = bytearray()
    timed_out = False
    try:
        async with asyncio.timeout(timeout):
            assert process.stdout is not None
            while chunk := await process.stdout.read(_CHUNK):
                tail += chunk
                del tail[:-_TAIL_BYTES]
            await process.wait()
    except TimeoutError:
        timed_out = True
        await _kill_group(process)
    except asyncio.CancelledError:
        await _kill_group(process)
        raise
    # None only if even SIGKILL did not end it (a zombie in uninterruptible sleep).
    exit_status = process.returncode if process.returncode is not None else -signal.SIGKILL
    return CommandResult(
        command=command,
        exit_status=exit_status,
        duration=time.monotonic() - started,
        output=_last_lines(bytes(tail)),
        timed_out=timed_out,
        error=f"killed after {timeout:g} s" if timed_out else "",
    )


async def _kill_group(process: asyncio.subprocess.Process) -> None:
    """SIGTERM the command's process group, then SIGKILL it if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        try:
            async with asyncio.timeout(_KILL_GRACE_SECONDS):
                await process.wait()
            return
        except TimeoutError:
            continue


def _last_lines(raw: bytes) -> tuple[str, ...]:
    lines = raw.decode("utf-8", errors="replace").splitlines()
    return tuple(line[:_LINE_CHARS] for line in lines[-TAIL_LINES:])


def record_command(
    session: AsyncSession,
    result: CommandResult,
    *,
    recording_id: int,
    actor: Actor = SYSTEM,
) -> None:
    """Add the command's outcome to the audit trail (action ``recording.command``).

    Only the program's name is kept, not its arguments: a command line may carry
    a token for the upload it does.
    """
    argv0 = result.command.split(maxsplit=1)[0] if result.command.strip() else ""
    record_audit(
        session,
        actor,
        COMMAND_ACTION,
        "recording",
        recording_id,
        program=argv0,
        exit_status=result.exit_status,
        duration_seconds=round(result.duration, 3),
        timed_out=result.timed_out,
        error=result.error,
        output=list(result.output),
    )
