"""Scheduling API at size: create N meetings with K invitations each through the
HTTP API, then time the list endpoints.

Usage::

    .venv/bin/python -m bench.api                      # SQLite and PostgreSQL, 10,000 x 30
    .venv/bin/python -m bench.api --db sqlite --meetings 2000

The server is the real application (``create_app``) on a loopback port; the
client is aiohttp. Creation runs with a few requests in flight; the timed
requests run one at a time after warm-up, and the figures are server round
trips as a client sees them (p50, p95, max over ``--repeat`` requests).
PostgreSQL: a database of its own is created on ``--postgres-url`` and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web
from sqlalchemy.engine import make_url

from conference.config import Config
from conference.db import Database
from conference.migrate import upgrade
from conference.models import Account, Role
from conference.passwords import hash_password
from web.app import create_app
from web.appkeys import DATABASE, TOKENS

BASE = datetime(2027, 1, 1, 0, 0, tzinfo=UTC)
SPACING = timedelta(minutes=50)
DURATION = timedelta(minutes=90)
EXTRA_UNITS = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def units_csv() -> str:
    lines = ["code,name,kind,parent", "QB,Ủy ban nhân dân tỉnh Quảng Bình,province,"]
    lines += [f"BX-{i:03d},Xã Thử Nghiệm Số {i},commune,QB" for i in range(EXTRA_UNITS)]
    return "\n".join(lines) + "\n"


async def serve(config: Config) -> tuple[web.AppRunner, str, str]:
    app = create_app(config)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    db: Database = app[DATABASE]
    async with db.write() as session:
        account = Account(
            username="bench",
            display_name="Bench",
            password_hash=hash_password("bench-bench"),
            roles=[Role.ADMIN.value, Role.SECRETARIAT.value],
        )
        session.add(account)
        await session.flush()
        assert account.id is not None
        token = app[TOKENS].issue_access(
            account_id=account.id,
            username="bench",
            roles=[Role.ADMIN.value, Role.SECRETARIAT.value],
            ttl_seconds=6 * 3600,
        )
    return runner, f"http://127.0.0.1:{port}", token


async def create_meetings(
    http: aiohttp.ClientSession, base_url: str, count: int, invites: int, concurrency: int
) -> float:
    codes = [f"BX-{i:03d}" for i in range(EXTRA_UNITS)]
    rng = random.Random(2019)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)
    done = 0
    started = time.perf_counter()

    async def worker() -> None:
        nonlocal done
        while not queue.empty():
            i = queue.get_nowait()
            chair = codes[i % EXTRA_UNITS]
            others = rng.sample([c for c in codes if c != chair], invites - 1)
            start = BASE + i * SPACING
            body = {
                "title": f"Họp giao ban số {i} — Ủy ban nhân dân tỉnh",
                "starts_at": start.isoformat(),
                "ends_at": (start + DURATION).isoformat(),
                "chair_unit": chair,
                "invited_units": others,
            }
            async with http.post(f"{base_url}/api/meetings", json=body) as r:
                if r.status != 201:
                    raise RuntimeError(f"create {i}: {r.status} {await r.text()}")
                await r.read()
            done += 1
            if done % 1000 == 0:
                rate = done / (time.perf_counter() - started)
                print(f"    {done} meetings created ({rate:.0f}/s)", flush=True)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def time_get(
    http: aiohttp.ClientSession, url: str, params: dict[str, str], repeat: int
) -> tuple[list[float], int, int]:
    for _ in range(5):
        async with http.get(url, params=params) as r:
            await r.read()
    samples: list[float] = []
    items = size = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        async with http.get(url, params=params) as r:
            raw = await r.read()
            if r.status != 200:
                raise RuntimeError(f"{url} {params}: {r.status} {raw[:200]!r}")
        samples.append((time.perf_counter() - t0) * 1000)
        size = len(raw)
    async with http.get(url, params=params) as r:
        items = len((await r.json())["items"])
    return samples, items, size


def report(name: str, samples: list[float], items: int, size: int) -> dict[str, Any]:
    q = statistics.quantiles(samples, n=20)
    row = {
        "name": name,
        "p50": statistics.median(samples),
        "p95": q[18],
        "max": max(samples),
        "items": items,
        "kib": size / 1024,
    }
    print(
        f"  {name:44} p50 {row['p50']:7.1f} ms  p95 {row['p95']:7.1f} ms  max {row['max']:7.1f} ms"
        f"  {items:5d} items {row['kib']:7.1f} KiB",
        flush=True,
    )
    return row


async def run(db_kind: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    tmp = Path(tempfile.mkdtemp(prefix="hoinghi-bench-"))
    dropper = None
    if db_kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    else:
        name = f"hoinghi_bench_{uuid.uuid4().hex[:8]}"
        admin_dsn = make_url(args.postgres_url).set(drivername="postgresql")
        admin = await asyncpg.connect(admin_dsn.render_as_string(hide_password=False))
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = make_url(args.postgres_url).set(database=name).render_as_string(hide_password=False)
        db = Database(url)
        await upgrade(db)
        await db.close()

        async def drop() -> None:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()

        dropper = drop
    config = Config(data_dir=tmp, database_url=url, public_url="http://127.0.0.1")
    runner, base_url, token = await serve(config)
    rows: list[dict[str, Any]] = []
    try:
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            async with http.post(
                f"{base_url}/api/units/import",
                data=units_csv().encode(),
                headers={"Content-Type": "text/csv"},
            ) as r:
                assert r.status == 200, await r.text()
            print(
                f"[{db_kind}] creating {args.meetings} meetings x {args.invites} invitations",
                flush=True,
            )
            seconds = await create_meetings(
                http, base_url, args.meetings, args.invites, args.concurrency
            )
            print(
                f"  created in {seconds:.1f} s ({args.meetings / seconds:.0f} meetings/s, "
                f"{seconds / args.meetings * 1000:.1f} ms each with {args.concurrency} in flight)"
            )
            if db_kind == "postgresql":
                async with runner.app[DATABASE].engine.begin() as conn:
                    await conn.exec_driver_sql("ANALYZE")
            month = BASE + timedelta(days=120)
            month_params = {
                "from": month.isoformat(),
                "to": (month + timedelta(days=30)).isoformat(),
            }
            url_list = f"{base_url}/api/meetings"
            cases = [
                ("month, first page (limit 100)", month_params),
                ("month, all (limit 1000)", month_params | {"limit": "1000"}),
                ("one unit, first page (limit 100)", {"unit": "BX-123"}),
                (
                    "one unit, a month (limit 1000)",
                    month_params | {"unit": "BX-123", "limit": "1000"},
                ),
                ("one unit, page 5 (offset 400)", {"unit": "BX-123", "offset": "400"}),
                # A LIKE on the folded title (meeting.title_search): no index can
                # serve "%...%", so this is a scan of one narrow column.
                ("title search, all meetings", {"q": "hop giao ban so 123"}),
                ("title search, a month", month_params | {"q": "giao ban so 34"}),
            ]
            for name, params in cases:
                samples, items, size = await time_get(http, url_list, params, args.repeat)
                rows.append({"db": db_kind} | report(name, samples, items, size))
    finally:
        await runner.cleanup()
        if dropper is not None:
            await dropper()
    return rows


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--meetings", type=int, default=10_000)
    parser.add_argument("--invites", type=int, default=30)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    all_rows = []
    for kind in kinds:
        all_rows += await run(kind, args)
    print("\nsummary (target: list endpoints under 50 ms)")
    for row in all_rows:
        verdict = "ok" if row["p95"] < 50 else "OVER"
        print(
            f"  {row['db']:10} {row['name']:44} p50 {row['p50']:6.1f} ms  p95 {row['p95']:6.1f} ms  {verdict}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
