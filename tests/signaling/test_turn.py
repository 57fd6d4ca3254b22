"""TURN credentials handed out in ``welcome`` work against a real coturn
(Debian's turnserver on loopback, use-auth-secret), and expire.

``scripts/test`` installs coturn when it is missing; outside CI a machine
without it skips with the reason, in CI the test must run.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from aioice.turn import create_turn_endpoint

from signaling.ice import IceServers, turn_rest_credentials
from tests.signaling.conftest import CHAIR, schedule
from web.app import create_app

SECRET = "bí-mật-chung-với-coturn"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Turn:
    port: int
    url: str


@pytest.fixture
def coturn(tmp_path) -> Iterator[Turn]:
    binary = shutil.which("turnserver")
    if binary is None:
        reason = "coturn (turnserver) is not installed; scripts/test installs it"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    port = free_udp_port()
    proc = subprocess.Popen(
        [
            binary,
            "-n",
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            f"--listening-port={port}",
            "--use-auth-secret",
            f"--static-auth-secret={SECRET}",
            "--realm=hoinghi.test",
            "--no-tls",
            "--no-dtls",
            "--no-cli",
            "--allow-loopback-peers",
            "--min-port=49160",
            "--max-port=49999",
            f"--userdb={tmp_path / 'turndb'}",
            f"--pidfile={tmp_path / 'turn.pid'}",
            "--log-file=stdout",
            "--simple-log",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        yield Turn(port, f"turn:127.0.0.1:{port}?transport=udp")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


class Sink(asyncio.DatagramProtocol):
    pass


async def allocate(port: int, username: str, password: str) -> tuple[str, int]:
    """A real TURN Allocate (RFC 8656) with these credentials; the relayed address."""
    last: Exception | None = None
    for _ in range(30):  # coturn takes a moment to listen
        try:
            transport, _ = await asyncio.wait_for(
                create_turn_endpoint(Sink, ("127.0.0.1", port), username, password), 5
            )
        except ConnectionRefusedError as e:
            last = e
            await asyncio.sleep(0.1)
            continue
        relayed = transport.get_extra_info("sockname")
        transport.close()
        return relayed
    raise AssertionError(f"coturn did not answer: {last}")


async def test_welcome_carries_turn_credentials_that_coturn_accepts(
    aiohttp_client, config, database, seeded, coturn
):
    from dataclasses import replace

    from tests.conftest import Api

    config = replace(
        config, turn_urls=coturn.url, turn_secret=SECRET, stun_urls=f"stun:127.0.0.1:{coturn.port}"
    )
    client = await aiohttp_client(create_app(config))
    meeting = await schedule(Api(client=client, accounts=seeded, database=database))
    async with meeting.client(CHAIR, join=False) as chair:
        welcome = await chair.join(meeting.tokens[CHAIR])
    stun, turn = welcome["ice_servers"]
    assert stun == {"urls": [f"stun:127.0.0.1:{coturn.port}"]}
    assert turn["urls"] == [coturn.url]
    assert turn["username"].endswith(":QB")
    relayed = await allocate(coturn.port, turn["username"], turn["credential"])
    assert relayed[0] == "127.0.0.1"


async def test_coturn_refuses_wrong_and_expired_credentials(coturn):
    soon = int(time.time()) + 3600
    user, _ = turn_rest_credentials(SECRET, "QB", soon)
    _, forged = turn_rest_credentials("another secret", "QB", soon)
    with pytest.raises(Exception, match="401"):
        await allocate(coturn.port, user, forged)
    expired_user, expired_password = turn_rest_credentials(SECRET, "QB", int(time.time()) - 60)
    with pytest.raises(Exception, match="401"):
        await allocate(coturn.port, expired_user, expired_password)
    good_user, good_password = turn_rest_credentials(SECRET, "QB", soon)
    assert (await allocate(coturn.port, good_user, good_password))[0] == "127.0.0.1"


def test_no_turn_without_a_secret_and_the_secret_is_not_in_repr():
    ice = IceServers.from_settings("stun:a:3478", "turn:a:3478", None, 60)
    assert ice.for_user("QB") == [{"urls": ["stun:a:3478"]}]
    ice = IceServers.from_settings("", "turn:a:3478, turns:a:5349", SECRET, 60)
    assert SECRET not in repr(ice)
    (turn,) = ice.for_user("QB")
    assert turn["urls"] == ["turn:a:3478", "turns:a:5349"]
