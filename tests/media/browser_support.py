"""Real Chromium against a real ``hoinghi demo`` server: fixtures and helpers for
tests/media/test_browser.py.

The server runs as a subprocess on a free loopback port with its data in a temp
dir (SQLite); each browser is Debian's /usr/bin/chromium driven by Playwright,
with fake camera and microphone and a fresh profile. Everything here polls with
deadlines; nothing sleeps a fixed time to decide a result.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest

CHROMIUM = "/usr/bin/chromium"
HOINGHI = Path(sys.executable).with_name("hoinghi")
SHOTS_DIR = Path("/tmp/hoinghi-shots")
VIEWPORT = {"width": 1366, "height": 768}

# docs/../shared notes: the flags seen working here, plus loopback ICE candidates.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--allow-loopback-in-peer-connection",
    # Background tabs of one headless browser must not be throttled.
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def poll(
    fetch: Callable[[], T],
    ok: Callable[[T], bool],
    *,
    timeout: float,
    interval: float = 0.1,
    what: str = "condition",
) -> T:
    """Call ``fetch`` until ``ok(value)``; fail with the last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.1f} s waiting for {what}; last: {value!r}")
        time.sleep(interval)


# --- the server --------------------------------------------------------------------


@dataclass
class DemoServer:
    base_url: str
    process: subprocess.Popen[str]
    links: dict[str, str]  # unit code -> join link
    roles: dict[str, str]  # unit code -> role
    media: bool  # started with the embedded media engine
    output: list[str] = field(default_factory=list)

    @property
    def chair_unit(self) -> str:
        return next(u for u, r in self.roles.items() if r == "chair")

    def link(self, unit: str, **query: str) -> str:
        url = self.links[unit]
        if query:
            url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
        return url

    def log(self) -> str:
        return "\n".join(self.output[-80:])

    def password(self, username: str) -> str:
        """A demo account's password, read from the banner the server printed."""
        pattern = re.compile(rf"^\s+{re.escape(username)}\s+(\S+)\s+\(")
        for line in self.output:
            m = pattern.match(line)
            if m:
                return m.group(1)
        raise AssertionError(f"no password for {username} in the banner:\n{self.log()}")


def _engine_args() -> list[str]:
    """``--media-address 127.0.0.1`` once the server has an engine; nothing before."""
    help_text = subprocess.run(
        [str(HOINGHI), "demo", "--help"], capture_output=True, text=True, check=True
    ).stdout
    if "--media-address" not in help_text:
        return []
    args = ["--media-address", "127.0.0.1"]
    if "--media-workers" in help_text:
        args += ["--media-workers", "1"]
    return args


_LINK = re.compile(r"^\s+(chair|participant|observer)\s+(\S+)\s+(https?://\S+/join/\S+)\s*$")


@contextlib.contextmanager
def run_demo_server(data_dir: Path, *, timeout: float = 30.0) -> Iterator[DemoServer]:
    """``hoinghi demo`` on a free port; yields once /readyz answers 200."""
    port = free_port()
    media_args = _engine_args()
    process = subprocess.Popen(
        [
            str(HOINGHI),
            "demo",
            "--data-dir",
            str(data_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "WARNING",
            *media_args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
    )
    output: list[str] = []
    banner_done = threading.Event()

    def drain() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line.rstrip("\n"))
            if line.startswith("Press Ctrl+C"):
                banner_done.set()
        banner_done.set()

    threading.Thread(target=drain, daemon=True).start()
    server: DemoServer | None = None
    try:
        if not banner_done.wait(timeout) or process.poll() is not None:
            pytest.fail("hoinghi demo did not start:\n" + "\n".join(output))
        links: dict[str, str] = {}
        roles: dict[str, str] = {}
        for line in output:
            m = _LINK.match(line)
            if m:
                roles[m.group(2)] = m.group(1)
                links[m.group(2)] = m.group(3)
        base = f"http://127.0.0.1:{port}"

        def ready() -> int:
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=2) as r:  # noqa: S310
                    return int(r.status)
            except OSError:
                return 0

        poll(ready, lambda s: s == 200, timeout=timeout, interval=0.2, what="/readyz")
        server = DemoServer(base, process, links, roles, bool(media_args), output)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- browsers ------------------------------------------------------------------------


class Site:
    """One Chromium (its own profile and process) showing one join page."""

    def __init__(self, name: str, context: Any, profile: Path) -> None:
        self.name = name
        self.context = context
        self.profile = profile
        self.page = context.pages[0] if context.pages else context.new_page()
        self.console: list[str] = []
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))
        self.dialogs: list[str] = []
        # A hostile chat string that ran would open an alert: record it, never block.
        self.page.on("dialog", self._on_dialog)

    def _on_dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def js(self, expression: str, arg: Any = None) -> Any:
        return self.page.evaluate(expression, arg)

    def wait_js(self, expression: str, *, timeout: float = 10.0, what: str = "") -> Any:
        """Poll a JS expression (may be async) until truthy; its value."""
        return poll(
            lambda: self.js(expression),
            bool,
            timeout=timeout,
            interval=0.1,
            what=f"{self.name}: {what or expression}",
        )

    @property
    def state(self) -> str:
        return str(self.js("() => window.hoinghi && window.hoinghi.state"))

    @property
    def participant_id(self) -> str:
        return str(self.js("() => window.hoinghi.participantId"))

    def open(self, url: str) -> None:
        self.page.goto(url, wait_until="load")

    def wait_state(self, state: str, timeout: float = 15.0) -> None:
        poll(
            lambda: self.js("() => window.hoinghi && window.hoinghi.state"),
            lambda s: s == state,
            timeout=timeout,
            what=f"{self.name} to reach state {state!r}",
        )

    def stats(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.js("() => window.hoinghi.stats()")
        return rows

    def inbound(self, participant: str, kind: str, source: str = "camera") -> dict[str, Any]:
        """This site's receive counters for ``participant``'s ``kind`` (zeros if none)."""
        for row in self.stats():
            if (row["participant"], row["kind"], row["source"]) == (participant, kind, source):
                return row
        return {"packetsReceived": 0, "framesDecoded": 0, "totalSamplesReceived": 0}

    def roster_units(self) -> list[str]:
        units: list[str] = self.js(
            "() => [...document.querySelectorAll('#roster .person')].map(e => e.dataset.unit)"
        )
        return units

    def diagnose(self) -> str:
        """What this site's client knows: for a failure message."""
        try:
            info = self.js(
                """async () => ({
                  state: window.hoinghi.state,
                  signaling: window.hoinghi.signalingStatus,
                  connections: window.hoinghi.connections(),
                  published: await window.hoinghi.publishStats(),
                  received: await window.hoinghi.stats(),
                  timing: window.hoinghi.timing,
                })"""
            )
        except Exception as e:
            info = {"error": str(e)}
        return f"--- {self.name}\n{dump(info)}\n" + "\n".join(self.console[-15:])

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path))
        SHOTS_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, SHOTS_DIR / path.name)
        return path

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.context.close()
        shutil.rmtree(self.profile, ignore_errors=True)


class Browsers:
    """Launches Chromium processes; closes every one at the end."""

    def __init__(self, playwright: Any) -> None:
        self.playwright = playwright
        self.sites: list[Site] = []

    def launch(self, name: str) -> Site:
        profile = Path(tempfile.mkdtemp(prefix=f"hoinghi-chromium-{name}-"))
        context = self.playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=VIEWPORT,
            locale="vi-VN",
            timezone_id="Asia/Ho_Chi_Minh",
        )
        site = Site(name, context, profile)
        self.sites.append(site)
        return site

    def close(self, site: Site) -> None:
        site.close()
        if site in self.sites:
            self.sites.remove(site)

    def close_all(self) -> None:
        for site in list(self.sites):
            self.close(site)


def require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")


@contextlib.contextmanager
def diagnostics(sites: list[Site]) -> Iterator[None]:
    """On a failure inside, print what each site's client knows (pytest shows it)."""
    try:
        yield
    except BaseException:
        for site in sites:
            print(site.diagnose())
        raise


@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Any]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browsers(playwright_driver: Any) -> Iterator[Browsers]:
    b = Browsers(playwright_driver)
    try:
        yield b
    finally:
        b.close_all()


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    with run_demo_server(tmp_path_factory.mktemp("hoinghi-data")) as server:
        yield server


def dump(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=1)


def shot(site: Site, name: str, tmp_path: Path) -> Path:
    """Photograph ``site`` as ``name`` (a PNG, also copied into SHOTS_DIR)."""
    path = site.screenshot(tmp_path / name)
    assert (SHOTS_DIR / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return path


def sign_in(
    site: Site, server: DemoServer, username: str, path: str = "/login", password: str = ""
) -> None:
    """Open ``path``; the login page (there, or where a page sends a stranger) takes the
    account, a demo one unless ``password`` is given, and the browser goes on."""
    site.open(f"{server.base_url}{path}")
    assert urlsplit(site.page.url).path == "/login", site.page.url
    site.page.fill("#username", username)
    site.page.fill("#password", password or server.password(username))
    site.page.click("button[type=submit]")
    site.page.wait_for_url(lambda url: urlsplit(url).path != "/login")
