"""Media tests: real aiortc peers, the SFU, Chromium. They send media over loopback
only, so they run in a network namespace that has nothing else: scripts/test runs
this directory under ``unshare -n``. Outside one they skip, and say so."""

from __future__ import annotations

import os
import socket

import pytest


def only_loopback() -> bool:
    """True inside a network namespace whose only interface is ``lo``."""
    return [name for _, name in socket.if_nameindex()] == ["lo"]


@pytest.fixture(autouse=True)
def loopback_media() -> None:
    """The test's own aiortc peers announce 127.0.0.1, like the server (aioice skips
    loopback by default, and the namespace has nothing else)."""
    from signaling.sfu import aiortc_glue as glue

    glue.configure_network(glue.Network(announce="127.0.0.1"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if only_loopback():
        return
    if os.environ.get("CI") == "true":
        raise pytest.UsageError(
            "tests/media must run in a loopback-only network namespace in CI "
            "(scripts/test runs them under `unshare -n`)"
        )
    skip = pytest.mark.skip(
        reason="media tests send real media: run them in a loopback-only network namespace "
        "(scripts/test does: unshare -n sh -c 'ip link set lo up && .venv/bin/pytest tests/media')"
    )
    for item in items:
        if "tests/media" in str(item.fspath):
            item.add_marker(skip)
