"""The ``hoinghi`` command: serve, demo, join, db upgrade, user add, units import, keys rotate."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from conference import __version__
from conference.accounts import create_account
from conference.actors import SYSTEM
from conference.config import Config, load_config
from conference.db import Database
from conference.demo import DemoInfo, seed_demo
from conference.errors import DomainError
from conference.keys import load_or_create_keyring
from conference.links import JoinLinks
from conference.migrate import upgrade
from conference.models import AccountCreate, Role
from conference.timezone import to_local
from conference.tokens import TokenService
from conference.units import import_units_csv
from signaling.join_command import EXIT_LOST, media_source, run_join

from .app import SchemaOutOfDate, create_app, prepare_database
from .tls import server_ssl_context

__all__ = ["main"]

log = logging.getLogger("hoinghi")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", dest="config_file", type=Path, help="a TOML settings file")
    parser.add_argument(
        "--data-dir", type=Path, help="database, recordings and keys (default ./var)"
    )
    parser.add_argument("--database-url", help="e.g. postgresql://user@host/db (default SQLite)")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING")


def _server(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 8080)")
    parser.add_argument("--public-url", help="the address people reach this server at")
    parser.add_argument("--tls-cert", type=Path, help="certificate (PEM) for HTTPS")
    parser.add_argument("--tls-key", type=Path, help="private key (PEM) for HTTPS")
    parser.add_argument(
        "--self-signed",
        action="store_const",
        const=True,
        help="serve HTTPS with a certificate made once under the data dir",
    )
    parser.add_argument("--media", choices=["embedded", "none"], help="the media engine")
    parser.add_argument(
        "--media-workers", type=int, help="media processes (default one per core; 0: in-process)"
    )
    parser.add_argument(
        "--media-address",
        help="address announced in ICE candidates (public address behind NAT; 127.0.0.1 in tests)",
    )
    parser.add_argument("--media-ports", help="UDP port range for media, e.g. 40000-40999")
    parser.add_argument("--last-n", type=int, help="videos per site besides chair and floor (4)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hoinghi",
        description="Hội nghị trực tuyến: the province's video-conference orchestrator",
    )
    parser.add_argument("--version", action="version", version=f"hoinghi {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server")
    _common(serve)
    _server(serve)
    demo = sub.add_parser(
        "demo", help="serve with demo units, accounts and a meeting that starts now"
    )
    _common(demo)
    _server(demo)

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    _common(db_sub.add_parser("upgrade", help="bring the schema to the newest revision"))

    user = sub.add_parser("user", help="accounts")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    add = user_sub.add_parser("add", help="create an account")
    _common(add)
    add.add_argument("username")
    add.add_argument(
        "--role",
        action="append",
        required=True,
        choices=[r.value for r in Role],
        help="repeat for several roles",
    )
    add.add_argument("--display-name", help="shown in pages (default: the username)")
    add.add_argument("--unit", help="the unit code the account acts for")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")

    units = sub.add_parser("units", help="organisational units")
    units_sub = units.add_subparsers(dest="units_command", required=True)
    imp = units_sub.add_parser("import", help="create or update units from a CSV file")
    _common(imp)
    imp.add_argument("file", type=Path)

    join = sub.add_parser("join", help="join a meeting from its link as a headless participant")
    join.add_argument("link", help="the join link, https://host/join/<token>")
    join.add_argument(
        "--media",
        default="none",
        help="none, test-pattern (a checkable pattern and a tone) or a media FILE to loop",
    )
    join.add_argument(
        "--bandwidth",
        choices=["full", "low", "audio"],
        default="full",
        help="what this site can take (audio: no video either way)",
    )
    join.add_argument(
        "--media-address",
        help="the address this participant's media announces (default: every address "
        "but loopback; 127.0.0.1 to meet a server on this machine)",
    )
    join.add_argument("--duration", type=float, help="leave after this many seconds")
    join.add_argument("--display-name", help="the name others see (default: the unit's)")

    recs = sub.add_parser("recordings", help="recorded meetings")
    recs_sub = recs.add_subparsers(dest="recordings_command", required=True)
    rec_list = recs_sub.add_parser("list", help="list recordings")
    _common(rec_list)
    rec_list.add_argument("--meeting", type=int, help="only this meeting's")
    rec_compose = recs_sub.add_parser(
        "compose", help="make a recording's composite MP4 here, with a progress bar"
    )
    _common(rec_compose)
    rec_compose.add_argument("recording", type=int, help="the recording's id")
    rec_compose.add_argument("--layout", choices=["speaker", "grid"], default="speaker")
    rec_compose.add_argument(
        "--force",
        action="store_true",
        help="even if the composite is marked queued or running (a killed command left it)",
    )

    keys = sub.add_parser("keys", help="token signing keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    _common(
        keys_sub.add_parser("rotate", help="sign new tokens with a new key; old ones stay valid")
    )
    return parser


def _config(args: argparse.Namespace) -> Config:
    return load_config(vars(args), os.environ)


def _run_server(config: Config, banner: str | None = None) -> None:
    ssl_context = server_ssl_context(config)
    app = create_app(config)

    def announce(_: str) -> None:
        print(
            banner or f"hoinghi {__version__} serving on {config.effective_public_url}", flush=True
        )

    web.run_app(
        app,
        host=config.host,
        port=config.port,
        ssl_context=ssl_context,
        print=announce,
        access_log=None,
    )


def _demo_banner(config: Config, info: DemoInfo) -> str:
    url = config.effective_public_url
    m = info.meeting
    lines = [
        f"hoinghi {__version__} demo serving on {url}",
        f"Health: {url}/healthz   API: {url}/api/openapi.json",
        f"Login: {url}/login",
        "Accounts (passwords are new on every start):",
        *[f"  {a.username:8} {a.password}  ({a.role.value}, {a.unit})" for a in info.accounts],
        f"Meeting {m.id}: {m.title}",
        f"  {to_local(m.starts_at):%H:%M} - {to_local(m.ends_at):%H:%M %d/%m/%Y} "
        "(Asia/Ho_Chi_Minh), "
        f"recording {'on' if m.recording else 'off'}, invited units admitted without the lobby",
        "Join links (one per unit):",
        *[f"  {link.role:11} {link.unit:24} {link.url}" for link in info.links],
        "Press Ctrl+C to stop.",
    ]
    return "\n".join(lines)


async def _seed(config: Config) -> DemoInfo:
    db = Database(config.effective_database_url)
    try:
        await prepare_database(db)
        tokens = TokenService(load_or_create_keyring(config.data_dir), config.issuer)
        links = JoinLinks(
            tokens, config.effective_public_url, config.lobby_minutes, config.grace_minutes
        )
        return await seed_demo(db, links)
    finally:
        await db.close()


async def _db_upgrade(config: Config) -> None:
    db = Database(config.effective_database_url)
    try:
        await upgrade(db)
    finally:
        await db.close()


async def _with_db(config: Config, action: Any) -> Any:
    db = Database(config.effective_database_url)
    try:
        await prepare_database(db)
        async with db.write() as session:
            return await action(session)
    finally:
        await db.close()


async def _recordings(config: Config, args: argparse.Namespace) -> int:
    from recordings.commands import compose_recording, list_recordings
    from recordings.storage import LocalStorage

    db = Database(config.effective_database_url)
    try:
        await prepare_database(db)
        if args.recordings_command == "list":
            return await list_recordings(db, sys.stdout, args.meeting)
        storage = LocalStorage(config.data_dir / "recordings")
        return await compose_recording(
            db, storage, args.recording, layout=args.layout, force=args.force
        )
    finally:
        await db.close()


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Again: "):
        raise DomainError("the passwords differ", code="password_mismatch")
    return first


def _join(args: argparse.Namespace) -> int:
    try:
        media = media_source(args.media, bandwidth=args.bandwidth)
        if media is not None and args.media_address:
            from signaling.sfu import aiortc_glue

            aiortc_glue.configure_network(aiortc_glue.Network(announce=args.media_address))
        return asyncio.run(
            run_join(
                args.link,
                duration=args.duration,
                display_name=args.display_name,
                media=media,
                bandwidth=args.bandwidth,
            )
        )
    except ValueError as e:
        print(f"hoinghi: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"hoinghi: cannot reach the server: {e}", file=sys.stderr)
        return EXIT_LOST


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "join":
        return _join(args)
    config = _config(args)
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
    if args.command == "serve":
        _run_server(config)
    elif args.command == "demo":
        info = asyncio.run(_seed(config))
        _run_server(config, _demo_banner(config, info))
    elif args.command == "db":
        asyncio.run(_db_upgrade(config))
        print("database schema is up to date")
    elif args.command == "user":
        data = AccountCreate(
            username=args.username,
            display_name=args.display_name or args.username,
            password=_read_password(args),
            roles=[Role(r) for r in args.role],
            unit=args.unit,
        )
        account = asyncio.run(_with_db(config, lambda s: create_account(s, SYSTEM, data)))
        print(f"created account {account.username} ({', '.join(account.roles)})")
    elif args.command == "units":
        text = args.file.read_text(encoding="utf-8")
        result = asyncio.run(_with_db(config, lambda s: import_units_csv(s, SYSTEM, text)))
        print(
            f"units: {len(result.created)} created, {len(result.updated)} updated, "
            f"{len(result.unchanged)} unchanged"
        )
    elif args.command == "recordings":
        return asyncio.run(_recordings(config, args))
    elif args.command == "keys":
        ring = load_or_create_keyring(config.data_dir)
        key = ring.rotate()
        print(f"new signing key {key.kid}; {len(ring.keys)} keys verify")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except DomainError as e:
        where = f" ({e.field})" if e.field else ""
        print(f"hoinghi: {e.message}{where} [{e.code}]", file=sys.stderr)
        return 2
    except ValidationError as e:
        err = e.errors()[0]
        print(f"hoinghi: {'.'.join(map(str, err['loc']))}: {err['msg']}", file=sys.stderr)
        return 2
    except (SchemaOutOfDate, OSError) as e:
        print(f"hoinghi: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
