"""One typed configuration object, built from defaults < TOML file < environment < CLI flags.

Every setting has a field here; the environment variable is ``HOINGHI_`` plus the
field name in upper case (``HOINGHI_DATA_DIR``), the TOML key is the field name,
and the CLI flag is the field name with dashes (``--data-dir``).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from .errors import InvalidInput

__all__ = ["ENV_PREFIX", "Config", "load_config"]

ENV_PREFIX = "HOINGHI_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True, slots=True)
class Config:
    """Settings of one hoinghi process. Secrets never live here; see ``keys.py``."""

    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("var")
    # Empty means SQLite in the data dir.
    database_url: str = ""
    # The address people reach this server at; join links are built from it.
    public_url: str = ""
    tls_cert: Path | None = None
    tls_key: Path | None = None
    self_signed: bool = False
    # The lobby opens this many minutes before a meeting starts (token ``nbf``).
    lobby_minutes: int = 30
    # A join link stays valid this many minutes after the scheduled end (``exp``).
    grace_minutes: int = 60
    api_token_seconds: int = 900
    session_seconds: int = 12 * 3600
    max_body_bytes: int = 1024 * 1024
    issuer: str = "hoinghi"
    # A dropped participant may resume its place within this many seconds.
    reconnect_grace_seconds: int = 30
    # How often the server records that connected participants are alive.
    heartbeat_seconds: int = 30
    # ICE servers handed to clients: comma-separated URLs (stun:host:3478, turn:host:3478).
    stun_urls: str = ""
    turn_urls: str = ""
    # Shared with coturn (use-auth-secret); clients get credentials that expire.
    turn_secret: str = field(default="", repr=False)
    turn_ttl_seconds: int = 24 * 3600
    # Media: "embedded" (the SFU in worker processes) or "none" (signaling only).
    media: str = "embedded"
    # Media worker processes; 0 runs media in the server process. -1: one per core.
    media_workers: int = -1
    # The address the SFU announces in its ICE candidates: a public address in
    # front of a NAT, or 127.0.0.1 for tests. Empty: every address of the host.
    media_address: str = ""
    # UDP ports for media, "40000-40999" (one per peer connection); empty: any.
    media_ports: str = ""
    # Camera videos each full-bandwidth site receives besides the chair and the floor.
    last_n: int = 4
    # Recordings: a meeting with recording on is recorded when it goes live (needs
    # the embedded media engine). Kept for this many days unless marked keep (0:
    # forever); a command run after each recording finishes (its ids and paths in
    # HOINGHI_RECORDING_* environment variables), like Jibri's finalize script.
    recording_retention_days: int = 0
    recording_command: str = ""
    recording_command_timeout_seconds: int = 600
    # Webhooks: attempts per delivery before giving up (the first retry after
    # webhook_retry_seconds, doubling each time, at most an hour apart) and the
    # time a receiver has to answer.
    webhook_max_attempts: int = 8
    webhook_retry_seconds: int = 2
    webhook_timeout_seconds: int = 10
    log_level: str = "INFO"
    config_file: Path | None = field(default=None, compare=False)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'hoinghi.db').resolve()}"

    @property
    def tls_enabled(self) -> bool:
        return self.self_signed or (self.tls_cert is not None and self.tls_key is not None)

    @property
    def effective_public_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        scheme = "https" if self.tls_enabled else "http"
        host = "localhost" if self.host in {"0.0.0.0", "::", ""} else self.host  # noqa: S104
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{self.port}"

    def validate(self) -> None:
        if not 0 < self.port < 65536:
            raise InvalidInput(f"port {self.port} is out of range", field="port")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise InvalidInput("--tls-cert and --tls-key go together", field="tls_cert")
        for name in ("lobby_minutes", "grace_minutes"):
            if getattr(self, name) < 0:
                raise InvalidInput(f"{name} must not be negative", field=name)
        for name in (
            "api_token_seconds",
            "session_seconds",
            "max_body_bytes",
            "reconnect_grace_seconds",
            "heartbeat_seconds",
            "turn_ttl_seconds",
            "recording_command_timeout_seconds",
            "webhook_max_attempts",
            "webhook_retry_seconds",
            "webhook_timeout_seconds",
        ):
            if getattr(self, name) <= 0:
                raise InvalidInput(f"{name} must be positive", field=name)
        if self.media not in ("embedded", "none"):
            raise InvalidInput("media is 'embedded' or 'none'", field="media")
        if self.media_workers < -1 or self.media_workers > 64:
            raise InvalidInput(
                "media_workers is -1 (one per core), 0, or up to 64", field="media_workers"
            )
        if self.media_ports:
            low, _, high = self.media_ports.partition("-")
            if not (low.isdigit() and high.isdigit() and 1024 <= int(low) <= int(high) <= 65535):
                raise InvalidInput(
                    "media_ports is a range like 40000-40999 within 1024-65535", field="media_ports"
                )
        if self.recording_retention_days < 0:
            raise InvalidInput(
                "recording_retention_days is 0 (keep forever) or more",
                field="recording_retention_days",
            )
        if self.last_n < -1:
            raise InvalidInput("last_n is -1 (everyone) or more", field="last_n")

    @property
    def effective_media_workers(self) -> int:
        return (os.cpu_count() or 1) if self.media_workers == -1 else self.media_workers


_HINTS = get_type_hints(Config)
_FIELDS = {f.name for f in fields(Config)}


def _coerce(name: str, value: Any) -> Any:
    """Convert a TOML or environment value to the type of field ``name``."""
    hint = _HINTS[name]
    if value is None:
        return None
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError(value)
        if hint is int:
            if isinstance(value, bool | float):
                raise ValueError(value)
            return int(value)
        if hint in (Path, Path | None):
            if isinstance(value, Path):
                return value
            if not isinstance(value, str):
                raise ValueError(value)
            if value == "":
                if hint is Path:
                    raise ValueError(value)
                return None
            return Path(value)
        if hint is str:
            if not isinstance(value, str):
                raise ValueError(value)
            return value
    except (TypeError, ValueError) as e:
        raise InvalidInput(f"{name}: cannot use {value!r}", field=name) from e
    raise InvalidInput(f"{name}: unsupported type", field=name)  # pragma: no cover


def load_config(
    cli: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Config:
    """Build a :class:`Config`. Precedence: ``cli`` > ``environ`` > TOML file > defaults.

    Args:
        cli: values given on the command line; ``None`` values mean "not given".
        environ: the process environment (``HOINGHI_*`` keys are read).
        config_file: a TOML file; ``HOINGHI_CONFIG`` or ``cli["config_file"]`` also name one.

    Raises:
        InvalidInput: an unknown key in the file, or a value of the wrong type.
    """
    cli = {k: v for k, v in (cli or {}).items() if v is not None}
    environ = environ or {}
    path = cli.get("config_file") or environ.get(f"{ENV_PREFIX}CONFIG") or config_file
    values: dict[str, Any] = {}
    if path:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise InvalidInput(f"cannot read config file {path}: {e}", field="config_file") from e
        section = data.get("hoinghi", data)
        for key, value in section.items():
            name = key.replace("-", "_")
            if name not in _FIELDS or name == "config_file":
                raise InvalidInput(f"unknown setting {key!r} in {path}", field=key)
            values[name] = _coerce(name, value)
        values["config_file"] = path
    for name in _FIELDS - {"config_file"}:
        env_key = ENV_PREFIX + name.upper()
        if env_key in environ:
            values[name] = _coerce(name, environ[env_key])
    for name, value in cli.items():
        if name in _FIELDS and name != "config_file":
            values[name] = _coerce(name, value)
    config = dataclasses.replace(Config(), **values)
    config.validate()
    return config
