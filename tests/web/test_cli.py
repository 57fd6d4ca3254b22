"""The ``hoinghi`` command, run as real subprocesses on a SQLite data dir in tmp_path.

Servers bind to 127.0.0.1 on a free port and are always stopped in ``finally``.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import socket
import sqlite3
import ssl
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conference.passwords import verify_password

HOINGHI = str(Path(sys.executable).with_name("hoinghi"))
STARTUP_SECONDS = 15.0

UNITS_CSV = """code,name,kind,parent
QB,Ủy ban nhân dân tỉnh Quảng Bình,province,
QB-VP,Văn phòng UBND tỉnh,department,QB
QB-DONGHOI,Thành phố Đồng Hới,district,QB
"""
UNIT_NAMES = {
    "QB": "Ủy ban nhân dân tỉnh Quảng Bình",
    "QB-VP": "Văn phòng UBND tỉnh",
    "QB-DONGHOI": "Thành phố Đồng Hới",
}


# --- helpers -----------------------------------------------------------------


def _env() -> dict[str, str]:
    """The process environment without HOINGHI_* settings that would change the outcome."""
    return {k: v for k, v in os.environ.items() if not k.startswith("HOINGHI_")}


def hoinghi(
    *args: str | Path, data_dir: Path, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HOINGHI, *map(str, args), "--data-dir", str(data_dir)],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=_env(),
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def db_path(data_dir: Path) -> Path:
    return data_dir / "hoinghi.db"


def query(data_dir: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db_path(data_dir))
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def write_csv(tmp_path: Path, text: str, name: str = "units.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    stdout: Path
    stderr: Path

    def output(self) -> str:
        return self.stdout.read_text(encoding="utf-8", errors="replace")

    def errors(self) -> str:
        return self.stderr.read_text(encoding="utf-8", errors="replace")

    def wait_for_output(self, marker: str, timeout: float = STARTUP_SECONDS) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.output()
            if marker in text:
                return text
            self.check_alive()
            time.sleep(0.05)
        pytest.fail(f"no {marker!r} within {timeout}s; stdout:\n{self.output()}\n{self.errors()}")

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            pytest.fail(
                f"hoinghi exited with {self.process.returncode}\n"
                f"stdout:\n{self.output()}\nstderr:\n{self.errors()}"
            )


@contextlib.contextmanager
def running(*args: str | Path, data_dir: Path, logs: Path) -> Iterator[Server]:
    """Start ``hoinghi <args> --host 127.0.0.1 --port <free> --data-dir``; stop it afterwards."""
    port = free_port()
    logs.mkdir(parents=True, exist_ok=True)
    out, err = logs / f"stdout-{port}.txt", logs / f"stderr-{port}.txt"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [
                HOINGHI,
                *map(str, args),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
            ],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env=_env(),
        )
    try:
        yield Server(process, port, out, err)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def http(
    method: str, url: str, body: Any = None, timeout: float = 10
) -> tuple[int, str, dict[str, str]]:
    data = json.dumps(body).encode("utf-8") if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - loopback
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, response.read().decode("utf-8"), dict(response.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8"), dict(e.headers)


def wait_for_health(server: Server, timeout: float = STARTUP_SECONDS) -> dict[str, Any]:
    url = f"http://127.0.0.1:{server.port}/healthz"
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        server.check_alive()
        try:
            status, text, _ = http("GET", url, timeout=2)
        except OSError as e:
            last = e
            time.sleep(0.1)
            continue
        assert status == 200, (status, text)
        body: dict[str, Any] = json.loads(text)
        return body
    pytest.fail(f"/healthz did not answer within {timeout}s ({last!r})\n{server.errors()}")


def https_get(
    port: int, path: str, context: ssl.SSLContext, server_hostname: str
) -> tuple[int, str]:
    """One HTTPS GET to 127.0.0.1, verifying the certificate for ``server_hostname``."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=server_hostname) as tls,
    ):
        tls.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {server_hostname}:{port}\r\n"
            "Connection: close\r\n\r\n".encode("ascii")
        )
        chunks = []
        while chunk := tls.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, body.decode("utf-8")


def wait_for_https_health(server: Server, cert: Path) -> tuple[int, str]:
    """Poll /healthz over HTTPS, trusting only ``cert`` and checking the name "localhost"."""
    deadline = time.monotonic() + STARTUP_SECONDS
    last: Exception | None = None
    while time.monotonic() < deadline:
        server.check_alive()
        if cert.exists():
            context = ssl.create_default_context(cafile=str(cert))
            assert context.verify_mode == ssl.CERT_REQUIRED
            assert context.check_hostname
            try:
                return https_get(server.port, "/healthz", context, "localhost")
            except (ConnectionError, TimeoutError) as e:
                last = e
        time.sleep(0.1)
    pytest.fail(f"HTTPS /healthz did not answer within {STARTUP_SECONDS}s ({last!r})")


def error_line(stderr: str) -> str:
    """The one line ``main`` prints for a refused command (log lines may precede it)."""
    lines = [line for line in stderr.splitlines() if line.startswith("hoinghi: ")]
    assert len(lines) == 1, stderr
    return lines[0]


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# --- db upgrade ----------------------------------------------------------------------


def test_db_upgrade_creates_the_database_and_says_so(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    result = hoinghi("db", "upgrade", data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    assert "database schema is up to date" in result.stdout
    assert db_path(data_dir).is_file()
    tables = {name for (name,) in query(data_dir, "SELECT name FROM sqlite_master")}
    assert {"unit", "account", "meeting", "invitation", "alembic_version"} <= tables
    assert len(query(data_dir, "SELECT version_num FROM alembic_version")) == 1


def test_db_upgrade_twice_is_harmless(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert hoinghi("db", "upgrade", data_dir=data_dir).returncode == 0
    version = query(data_dir, "SELECT version_num FROM alembic_version")
    again = hoinghi("db", "upgrade", data_dir=data_dir)
    assert again.returncode == 0, again.stderr
    assert "database schema is up to date" in again.stdout
    assert query(data_dir, "SELECT version_num FROM alembic_version") == version


# --- units import --------------------------------------------------------------------


def test_units_import_prints_counts_and_a_second_import_is_unchanged(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    csv_file = write_csv(tmp_path, UNITS_CSV)

    first = hoinghi("units", "import", csv_file, data_dir=data_dir)
    assert first.returncode == 0, first.stderr
    assert "units: 3 created, 0 updated, 0 unchanged" in first.stdout

    rows = query(
        data_dir,
        "SELECT u.code, u.name, u.kind, p.code FROM unit u LEFT JOIN unit p ON u.parent_id = p.id",
    )
    assert {code: name for code, name, _, _ in rows} == UNIT_NAMES
    for code, name, _, _ in rows:
        assert name.encode("utf-8") == UNIT_NAMES[code].encode("utf-8")
    assert {code: parent for code, _, _, parent in rows} == {
        "QB": None,
        "QB-VP": "QB",
        "QB-DONGHOI": "QB",
    }

    second = hoinghi("units", "import", csv_file, data_dir=data_dir)
    assert second.returncode == 0, second.stderr
    assert "units: 0 created, 0 updated, 3 unchanged" in second.stdout
    assert sorted(query(data_dir, "SELECT code, name FROM unit")) == sorted(
        (code, name) for code, name, _, _ in rows
    )


def test_units_import_reports_a_renamed_unit_as_updated(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert (
        hoinghi("units", "import", write_csv(tmp_path, UNITS_CSV), data_dir=data_dir).returncode
        == 0
    )
    renamed = UNITS_CSV.replace("Thành phố Đồng Hới", "TP. Đồng Hới")
    result = hoinghi("units", "import", write_csv(tmp_path, renamed, "v2.csv"), data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    assert "units: 0 created, 1 updated, 2 unchanged" in result.stdout
    assert query(data_dir, "SELECT name FROM unit WHERE code = 'QB-DONGHOI'") == [("TP. Đồng Hới",)]


def test_units_import_of_a_bad_csv_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert (
        hoinghi("units", "import", write_csv(tmp_path, UNITS_CSV), data_dir=data_dir).returncode
        == 0
    )
    units_before = query(data_dir, "SELECT * FROM unit ORDER BY id")
    audit_before = query(data_dir, "SELECT count(*) FROM audit_entry")

    bad = (
        "code,name,kind,parent\n"
        "QB-SNV,Sở Nội vụ,department,QB\n"  # a good row first: it must not be written either
        "QB-VP,Văn phòng đổi tên,department,QB\n"
        "QB-XA,Xã Thượng Trạch,village,QB\n"
    )
    result = hoinghi("units", "import", write_csv(tmp_path, bad, "bad.csv"), data_dir=data_dir)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    message = error_line(result.stderr)
    assert "row 4" in message
    assert "kind" in message
    assert message.endswith("[invalid_csv]")
    assert "Traceback" not in result.stderr

    assert query(data_dir, "SELECT * FROM unit ORDER BY id") == units_before
    assert query(data_dir, "SELECT count(*) FROM audit_entry") == audit_before


def test_units_import_of_a_bad_csv_into_a_new_data_dir_creates_no_units(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    bad = "code,name,kind,parent\nQB,Quảng Bình,province,\nQB-X,Xã,hamlet,QB\n"
    result = hoinghi("units", "import", write_csv(tmp_path, bad), data_dir=data_dir)
    assert result.returncode == 2
    assert "row 3" in error_line(result.stderr)
    if db_path(data_dir).exists():
        assert query(data_dir, "SELECT count(*) FROM unit") == [(0,)]


def test_units_import_with_an_unknown_parent_exits_2(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    bad = "code,name,kind,parent\nQB-VP,Văn phòng,department,KHONGCO\n"
    result = hoinghi("units", "import", write_csv(tmp_path, bad), data_dir=data_dir)
    assert result.returncode == 2
    message = error_line(result.stderr)
    assert message.endswith("[unknown_unit]")
    assert "KHONGCO" in message


def test_units_import_of_a_missing_file_exits_1(tmp_path: Path) -> None:
    result = hoinghi("units", "import", tmp_path / "absent.csv", data_dir=tmp_path / "data")
    assert result.returncode == 1
    assert "absent.csv" in error_line(result.stderr)


# --- user add ------------------------------------------------------------------------


def test_user_add_with_password_on_stdin_then_duplicate_is_username_taken(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    assert (
        hoinghi("units", "import", write_csv(tmp_path, UNITS_CSV), data_dir=data_dir).returncode
        == 0
    )
    password = "mật-khẩu-Thư-ký-2025"
    args = ("user", "add", "thuky", "--role", "secretariat", "--unit", "QB-VP", "--password-stdin")

    first = hoinghi(*args, data_dir=data_dir, stdin=password + "\n")
    assert first.returncode == 0, first.stderr
    assert "created account thuky (secretariat)" in first.stdout
    assert password not in first.stdout + first.stderr

    rows = query(
        data_dir,
        "SELECT a.display_name, a.password_hash, a.roles, u.code FROM account a "
        "LEFT JOIN unit u ON a.unit_id = u.id WHERE a.username = 'thuky'",
    )
    assert len(rows) == 1
    display_name, password_hash, roles, unit_code = rows[0]
    assert display_name == "thuky"
    assert json.loads(roles) == ["secretariat"]
    assert unit_code == "QB-VP"
    # The newline that ended the line on stdin is not part of the password.
    assert verify_password(password_hash, password)
    assert not verify_password(password_hash, password + "\n")

    second = hoinghi(*args, data_dir=data_dir, stdin="another-password\n")
    assert second.returncode == 2, (second.stdout, second.stderr)
    assert error_line(second.stderr).endswith("[username_taken]")
    assert second.stdout == ""
    assert query(data_dir, "SELECT count(*) FROM account WHERE username = 'thuky'") == [(1,)]
    assert query(data_dir, "SELECT password_hash FROM account WHERE username = 'thuky'") == [
        (password_hash,)
    ]


def test_user_add_with_an_unknown_unit_exits_2(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    result = hoinghi(
        "user", "add", "vanthu", "--role", "clerk", "--unit", "KHONGCO", "--password-stdin",
        data_dir=data_dir, stdin="mật-khẩu-đủ-dài\n",
    )  # fmt: skip
    assert result.returncode == 2
    assert error_line(result.stderr).endswith("[unknown_unit]")
    assert query(data_dir, "SELECT count(*) FROM account") == [(0,)]


def test_user_add_with_a_short_password_exits_2(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    result = hoinghi(
        "user", "add", "vanthu", "--role", "clerk", "--password-stdin",
        data_dir=data_dir, stdin="ngắn\n",
    )  # fmt: skip
    assert result.returncode == 2
    assert "password" in error_line(result.stderr)
    assert "Traceback" not in result.stderr


# --- keys rotate ---------------------------------------------------------------------


def test_keys_rotate_adds_a_key_to_the_0600_key_ring(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    result = hoinghi("keys", "rotate", data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    match = re.search(r"new signing key (\w+); 2 keys verify", result.stdout)
    assert match, result.stdout

    ring_file = data_dir / "keys" / "signing-keys.json"
    assert [p.name for p in (data_dir / "keys").iterdir()] == ["signing-keys.json"]
    assert mode(ring_file) == 0o600
    data = json.loads(ring_file.read_text(encoding="utf-8"))
    assert len(data["keys"]) == 2
    assert data["current"] == match.group(1)
    assert match.group(1) in {k["kid"] for k in data["keys"]}
    assert result.stdout.count(data["keys"][0]["secret"]) == 0
    assert data["keys"][0]["secret"] not in result.stderr

    again = hoinghi("keys", "rotate", data_dir=data_dir)
    assert again.returncode == 0, again.stderr
    assert "3 keys verify" in again.stdout
    assert len(json.loads(ring_file.read_text(encoding="utf-8"))["keys"]) == 3
    assert mode(ring_file) == 0o600


# --- serve ---------------------------------------------------------------------------


def test_serve_answers_healthz(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with running("serve", data_dir=data_dir, logs=tmp_path) as server:
        body = wait_for_health(server)
        assert body["status"] == "ok"
        status, text, headers = http("GET", f"http://127.0.0.1:{server.port}/readyz")
        assert status == 200, text
        assert json.loads(text)["status"] == "ready"
        assert headers.get("X-Content-Type-Options") == "nosniff"
        assert f"http://127.0.0.1:{server.port}" in server.output()
    assert db_path(data_dir).is_file()
    assert mode(data_dir / "keys" / "signing-keys.json") == 0o600


def test_serve_self_signed_serves_verifiable_https_and_reuses_the_certificate(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    cert = data_dir / "tls" / "self-signed.crt"
    key = data_dir / "tls" / "self-signed.key"

    with running("serve", "--self-signed", data_dir=data_dir, logs=tmp_path / "one") as server:
        status, body = wait_for_https_health(server, cert)
        assert status == 200
        assert json.loads(body)["status"] == "ok"
        # The certificate also names the loopback address.
        context = ssl.create_default_context(cafile=str(cert))
        assert https_get(server.port, "/healthz", context, "127.0.0.1")[0] == 200
        # Plain HTTP is not served on the HTTPS port.
        with pytest.raises((OSError, ConnectionError)):
            http("GET", f"http://127.0.0.1:{server.port}/healthz", timeout=3)
        assert f"https://127.0.0.1:{server.port}" in server.output()
    first_cert = cert.read_bytes()
    first_key = key.read_bytes()
    assert mode(key) == 0o600

    with running("serve", "--self-signed", data_dir=data_dir, logs=tmp_path / "two") as server:
        status, _ = wait_for_https_health(server, cert)
        assert status == 200
    assert cert.read_bytes() == first_cert
    assert key.read_bytes() == first_key


def test_serve_refuses_a_verifying_client_without_the_certificate(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    cert = data_dir / "tls" / "self-signed.crt"
    with running("serve", "--self-signed", data_dir=data_dir, logs=tmp_path) as server:
        wait_for_https_health(server, cert)
        with pytest.raises(ssl.SSLCertVerificationError):
            https_get(server.port, "/healthz", ssl.create_default_context(), "localhost")


# --- demo ----------------------------------------------------------------------------


ACCOUNT_LINE = re.compile(
    r"^  (?P<user>\S+)\s+(?P<password>\S+)  \((?P<role>\w+), (?P<unit>\S+)\)$"
)


def test_demo_prints_a_banner_whose_accounts_and_join_links_work(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with running("demo", data_dir=data_dir, logs=tmp_path) as server:
        banner = server.wait_for_output("Press Ctrl+C to stop.", timeout=30)
        base = f"http://127.0.0.1:{server.port}"
        lines = banner.splitlines()

        assert f"Login: {base}/login" in lines

        accounts = [m.groupdict() for line in lines if (m := ACCOUNT_LINE.match(line))]
        assert len(accounts) == 5, banner
        assert {a["user"] for a in accounts} == {"admin", "thuky", "vanthu", "chutri", "vanhanh"}
        assert {a["role"] for a in accounts} == {
            "admin", "secretariat", "clerk", "chair", "operator",
        }  # fmt: skip

        meeting_lines = [line for line in lines if re.match(r"^Meeting \d+: \S", line)]
        assert len(meeting_lines) == 1, banner
        title = meeting_lines[0].split(": ", 1)[1]

        join_lines = [line for line in lines if "/join/" in line]
        assert len(join_lines) >= 4, banner
        assert any(line.split()[0] == "chair" for line in join_lines), join_lines
        links = [line.split()[-1] for line in join_lines]
        assert all(link.startswith(f"{base}/join/") for link in links)
        assert len(set(links)) == len(links)

        status, _, _ = http("GET", f"{base}/login")
        assert status == 200

        thuky = next(a for a in accounts if a["user"] == "thuky")
        status, text, _ = http(
            "POST",
            f"{base}/api/auth/login",
            {"username": thuky["user"], "password": thuky["password"]},
        )
        assert status == 200, text
        login = json.loads(text)
        assert login["access_token"]
        assert login["account"]["username"] == "thuky"

        status, text, _ = http(
            "POST", f"{base}/api/auth/login", {"username": "thuky", "password": "sai-mat-khau"}
        )
        assert status == 401, text

        for link in (links[0], links[-1]):
            status, page, headers = http("GET", link)
            assert status == 200, page
            assert title in html.unescape(page)
            assert headers.get("Referrer-Policy") == "no-referrer"


def test_demo_restart_gives_new_passwords_and_reuses_the_meeting(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"

    def start() -> tuple[dict[str, str], list[str]]:
        with running("demo", data_dir=data_dir, logs=tmp_path / str(time.monotonic_ns())) as s:
            lines = s.wait_for_output("Press Ctrl+C to stop.", timeout=30).splitlines()
        passwords = {m["user"]: m["password"] for line in lines if (m := ACCOUNT_LINE.match(line))}
        return passwords, [line for line in lines if line.startswith("Meeting ")]

    first_passwords, first_meeting = start()
    second_passwords, second_meeting = start()
    assert set(first_passwords) == set(second_passwords)
    assert all(first_passwords[u] != second_passwords[u] for u in first_passwords)
    assert first_meeting == second_meeting
    assert query(data_dir, "SELECT count(*) FROM meeting") == [(1,)]
    assert query(data_dir, "SELECT count(*) FROM account") == [(5,)]
