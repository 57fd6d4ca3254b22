"""The administrators' directory pages: ``/admin/units`` (the tree, its search, the
counts, the CSV download) and ``/admin/accounts`` (the list and its role filter),
and the API calls those pages make with the session cookie and the page's CSRF
token: unit changes, the CSV import with hostile files, account changes.

Who: accounts with the admin role. Every other role gets the 403 page; nobody
signed in is sent to the login page and brought back. Both databases (the ``api``
fixture is parametrized).
"""

from __future__ import annotations

import csv
import io
import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlmodel import func, select

from conference.demo import bundled_units_csv
from conference.models import Account, AuditEntry, Unit, UnitKind
from tests.conftest import cookie_for
from web.appkeys import CONFIG
from web.pages_frame import CONTENT_SECURITY_POLICY

PAGES = ["/admin/units", "/admin/accounts", "/admin/units.csv"]
NON_ADMINS = ["vanhanh", "vanthu", "thuky", "chutri"]
PROVINCE = "Ủy ban nhân dân tỉnh Quảng Bình"
NEW_NAME = "Xã Phúc Trạch – “Phong Nha” 🏞️"
_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


# --- helpers ----------------------------------------------------------------------------


async def get(api: Any, path: str, headers: dict[str, str] | None = None) -> tuple[int, str, Any]:
    response = await api.client.get(path, headers=headers or {}, allow_redirects=False)
    return response.status, await response.text(), response


async def page_session(api: Any, page: str = "/admin/units") -> dict[str, str]:
    """Headers the page's script sends: the admin's session cookie and the CSRF token
    read from the page's ``<meta name="csrf-token">``, as web/static/api.js does."""
    headers = await cookie_for(api, "admin")
    status, html, _ = await get(api, page, headers)
    assert status == 200
    found = _CSRF_META.search(html)
    assert found is not None, "the page carries its CSRF token"
    hidden = re.findall(r'<input type="hidden" name="csrf_token" value="([^"]*)">', html)
    assert hidden, "every form carries the token"
    assert set(hidden) == {found.group(1)}
    return {**headers, "X-CSRF-Token": found.group(1)}


async def page_call(
    api: Any,
    method: str,
    path: str,
    session: dict[str, str],
    *,
    content_type: str | None = None,
    **kwargs: Any,
) -> tuple[int, Any]:
    """``method path`` with the page's ``session`` headers, as api.js sends it."""
    headers = {**session, "Content-Type": content_type} if content_type else session
    response = await api.client.request(method, path, headers=headers, **kwargs)
    body = await response.json() if response.content_type == "application/json" else None
    return response.status, body


async def snapshot(api: Any) -> tuple[list[tuple[str, str, str, int | None]], int]:
    """The units as stored and the number of audit entries: what a refused change keeps."""
    async with api.database.read() as session:
        units = (await session.exec(select(Unit).order_by(Unit.code))).all()
        audits = (await session.exec(select(func.count()).select_from(AuditEntry))).one()
    return [(u.code, u.name, u.kind.value, u.parent_id) for u in units], int(audits)


def bundled_rows() -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(bundled_units_csv().lstrip("\ufeff"))))


class TreeParser(HTMLParser):
    """(code, parent code) of every ``li.tree-node`` of the page, by nesting."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str | None] = []
        self.pairs: list[tuple[str, str | None]] = []
        self.matches: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "li":
            if tag == "span" and "match" in (dict(attrs).get("class") or "").split():
                self.matches.append(self._current() or "")
            return
        values = dict(attrs)
        code = values.get("data-code") if "tree-node" in (values.get("class") or "") else None
        if code is not None:
            self.pairs.append((code, self._current()))
        self.stack.append(code)

    def handle_endtag(self, tag: str) -> None:
        if tag == "li" and self.stack:
            self.stack.pop()

    def _current(self) -> str | None:
        return next((c for c in reversed(self.stack) if c is not None), None)


def tree_of(html: str) -> TreeParser:
    parser = TreeParser()
    parser.feed(html)
    return parser


def account_rows(html: str) -> dict[str, str]:
    """Each account row's HTML by username."""
    rows = re.findall(r'<tr data-account="\d+".*?</tr>', html, flags=re.S)
    out = {}
    for row in rows:
        name = re.search(r'<th scope="row"[^>]*>([^<\s]+)', row)
        assert name is not None
        out[name.group(1)] = row
    return out


# --- who may open the pages -----------------------------------------------------------------


@pytest.mark.parametrize("username", NON_ADMINS)
async def test_other_roles_get_the_403_page(api: Any, username: str) -> None:
    headers = await cookie_for(api, username)
    for path in PAGES:
        status, html, _ = await get(api, path, headers)
        assert status == 403, (username, path)
        assert "Không được phép" in html
        assert PROVINCE not in html
        assert "Tài khoản vanthu" not in html


async def test_not_signed_in_goes_to_login_and_comes_back(api: Any) -> None:
    for path in [*PAGES, "/admin/units?q=dong+hoi", "/admin/accounts?role=clerk"]:
        status, _, response = await get(api, path)
        assert status == 302, path
        location = urlsplit(response.headers["Location"])
        assert location.path == "/login"
        assert parse_qs(location.query)["next"] == [path]


async def test_a_deactivated_session_is_sent_to_login(api: Any) -> None:
    headers = await cookie_for(api, "vanthu")
    async with api.database.write() as session:
        row = await session.get(Account, api.accounts["vanthu"])
        assert row is not None
        row.active = False
        session.add(row)
    status, _, response = await get(api, "/archive", headers)
    assert status == 302
    assert urlsplit(response.headers["Location"]).path == "/login"


# --- /admin/units --------------------------------------------------------------------------------


@pytest.mark.parametrize("locale", ["vi", "en"])
async def test_the_units_page_shows_the_tree_as_stored(api: Any, locale: str) -> None:
    status, html, response = await get(
        api, f"/admin/units?lang={locale}", await cookie_for(api, "admin")
    )
    assert status == 200, html[:500]
    assert f'<html lang="{locale}">' in html
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "<script>" not in html
    assert "style=" not in html
    assert '<link rel="stylesheet" href="/static/admin.css">' in html
    assert '<script type="module" src="/static/admin_units.js"></script>' in html
    assert '<a href="/admin/units" aria-current="page">' in html  # the tab
    rows = bundled_rows()
    pairs = tree_of(html).pairs
    assert sorted(pairs, key=lambda p: p[0]) == sorted(
        ((r["code"], r["parent"] or None) for r in rows), key=lambda p: p[0]
    )
    for row in rows:
        assert row["name"] in html  # Vietnamese names byte for byte
    # Every unit is in the selects of the forms, and in the script's data.
    assert html.count('<option value="QB-BOTRACH-TANTRACH"') == 3
    assert '"name": "Xã Tân Trạch"' in html


async def test_the_counts_per_kind_are_the_database_s(api: Any) -> None:
    async with api.database.write() as session:
        session.add(Unit(code="QB-THEM", name="Xã Thêm", kind=UnitKind.COMMUNE))
    _, html, _ = await get(api, "/admin/units?lang=en", await cookie_for(api, "admin"))
    rows = bundled_rows()
    counts = re.findall(
        r'<li class="kind kind-(\w+)"><span class="kind-name">[^<]*</span> '
        r'<span class="count">(\d+)</span>',
        html,
    )
    expected = {k.value: sum(r["kind"] == k.value for r in rows) for k in UnitKind}
    expected["commune"] += 1
    assert {kind: int(n) for kind, n in counts} == expected
    total = re.search(r'<li class="kind-total">.*?<span class="count">(\d+)</span>', html)
    assert total is not None
    assert int(total.group(1)) == len(rows) + 1


@pytest.mark.parametrize("q", ["dong hoi", "ĐỒNG HỚI", "Dong Hoi", "thành phố đồng hới"])
async def test_the_search_ignores_case_and_tone_marks(api: Any, q: str) -> None:
    _, html, _ = await get(api, f"/admin/units?q={q}", await cookie_for(api, "admin"))
    tree = tree_of(html)
    codes = {code for code, _ in tree.pairs}
    below = {r["code"] for r in bundled_rows() if r["parent"] == "QB-DONGHOI"}
    assert below, "Đồng Hới has wards in the bundled file"
    # The hit, the units above it and those below it; nothing else (no other district).
    assert codes == {"QB", "QB-DONGHOI", *below}
    assert tree.matches == ["QB-DONGHOI"]
    assert ("QB-DONGHOI", "QB") in tree.pairs


async def test_a_search_without_hits_shows_no_tree(api: Any) -> None:
    _, html, _ = await get(api, "/admin/units?q=Hà+Nội", await cookie_for(api, "admin"))
    assert tree_of(html).pairs == []
    assert 'value="Hà Nội"' in html


async def test_a_unit_added_through_the_api_is_on_the_page(api: Any) -> None:
    headers = await page_session(api)
    status, body = await page_call(
        api,
        "POST",
        "/api/units",
        headers,
        json={
            "code": "QB-BOTRACH-PHUCTRACH",
            "name": NEW_NAME,
            "kind": "commune",
            "parent": "QB-BOTRACH",
        },
    )
    assert status == 201, body
    _, html, _ = await get(api, "/admin/units", headers)
    assert NEW_NAME in html
    assert ("QB-BOTRACH-PHUCTRACH", "QB-BOTRACH") in tree_of(html).pairs


async def test_page_changes_need_the_csrf_token(api: Any) -> None:
    headers = await page_session(api)
    before = await snapshot(api)
    no_token = {k: v for k, v in headers.items() if k != "X-CSRF-Token"}
    for token_headers in (no_token, {**no_token, "X-CSRF-Token": "sai"}):
        status, body = await page_call(
            api, "PATCH", "/api/units/QB-SYT", token_headers, json={"name": "Đổi tên"}
        )
        assert status == 403
        assert body["error"]["code"] == "csrf_failed"
    assert await snapshot(api) == before


async def test_editing_and_deleting_a_unit_from_the_page(api: Any) -> None:
    headers = await page_session(api)
    status, body = await page_call(
        api,
        "PATCH",
        "/api/units/QB-DONGHOI-HAITHANH",
        headers,
        json={"name": "Phường Hải Thành (mới)", "kind": "commune", "parent": "QB-BOTRACH"},
    )
    assert status == 200, body
    _, html, _ = await get(api, "/admin/units", headers)
    assert ("QB-DONGHOI-HAITHANH", "QB-BOTRACH") in tree_of(html).pairs
    assert "Phường Hải Thành (mới)" in html
    # In use (an account's unit): the API refuses and says why; nothing changes.
    before = await snapshot(api)
    status, body = await page_call(api, "DELETE", "/api/units/QB-SNV", headers)
    assert status == 409
    assert body["error"]["code"] == "unit_in_use"
    assert await snapshot(api) == before
    status, _ = await page_call(api, "DELETE", "/api/units/QB-DONGHOI-HAITHANH", headers)
    assert status == 204
    _, html, _ = await get(api, "/admin/units", headers)
    assert "QB-DONGHOI-HAITHANH" not in html


# --- the CSV download ------------------------------------------------------------------------------


async def test_the_csv_download_is_every_unit_with_a_bom_and_imports_back_unchanged(
    api: Any,
) -> None:
    headers = await page_session(api)
    response = await api.client.get("/admin/units.csv", headers=headers)
    assert response.status == 200
    assert response.content_type == "text/csv"
    assert response.charset == "utf-8"
    assert "attachment" in response.headers["Content-Disposition"]
    raw = await response.read()
    assert raw.startswith(b"\xef\xbb\xbfcode,name,kind,parent\r\n")
    text = raw.decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    expected = {(r["code"], r["name"], r["kind"], r["parent"]) for r in bundled_rows()}
    assert {(r["code"], r["name"], r["kind"], r["parent"]) for r in rows} == expected
    seen: set[str] = set()
    for row in rows:  # parents first
        assert not row["parent"] or row["parent"] in seen, row
        seen.add(row["code"])
    before = await snapshot(api)
    status, body = await page_call(
        api, "POST", "/api/units/import", headers, data=raw, content_type="text/csv"
    )
    assert status == 200, body
    assert body["created"] == body["updated"] == []
    assert (await snapshot(api))[0] == before[0]


async def test_the_csv_download_defuses_a_formula_stored_before(api: Any) -> None:
    async with api.database.write() as session:
        session.add(Unit(code="QB-CU", name='=HYPERLINK("http://x","Bấm")', kind=UnitKind.COMMUNE))
    response = await api.client.get("/admin/units.csv", headers=await cookie_for(api, "admin"))
    rows = list(csv.DictReader(io.StringIO((await response.text()).lstrip("\ufeff"))))
    (row,) = [r for r in rows if r["code"] == "QB-CU"]
    assert row["name"] == '\'=HYPERLINK("http://x","Bấm")'


# --- the CSV import, as the page sends it ------------------------------------------------------------

GOOD = "QB-MINHHOA-HOAHOP,Xã Hóa Hợp,commune,QB-MINHHOA\n"


async def upload(api: Any, headers: dict[str, str], data: bytes) -> tuple[int, Any]:
    return await page_call(
        api, "POST", "/api/units/import", headers, data=data, content_type="text/csv"
    )


async def test_the_import_creates_and_updates_with_a_bom(api: Any) -> None:
    headers = await page_session(api)
    text = (
        "\ufeffcode,name,kind,parent\r\n"
        + GOOD
        + "QB-BOTRACH-TANTRACH,Xã Tân Trạch (sáp nhập),commune,QB-BOTRACH\r\n"
    )
    status, body = await upload(api, headers, text.encode("utf-8"))
    assert status == 200, body
    assert body == {
        "created": ["QB-MINHHOA-HOAHOP"],
        "updated": ["QB-BOTRACH-TANTRACH"],
        "unchanged": [],
    }
    _, html, _ = await get(api, "/admin/units", headers)
    assert "Xã Hóa Hợp" in html
    assert "Xã Tân Trạch (sáp nhập)" in html
    assert ("QB-MINHHOA-HOAHOP", "QB-MINHHOA") in tree_of(html).pairs


HOSTILE: list[tuple[str, str, str, list[tuple[int, str, str | None]]]] = [
    (
        "bad-kind",
        "code,name,kind,parent\n" + GOOD + "QB-X,Xã X,village,QB\n",
        "invalid_csv",
        [(3, "unknown_kind", "kind")],
    ),
    (
        "unknown-parent",
        "code,name,kind,parent\n" + GOOD + "QB-X,Xã X,commune,QB-KHONGCO\n",
        "unknown_unit",
        [(3, "unknown_unit", "parent")],
    ),
    (
        "duplicate-codes",
        "code,name,kind,parent\n" + GOOD + "QB-Y,Xã Y,commune,QB\n" + GOOD,
        "invalid_csv",
        [(4, "duplicate_code", "code")],
    ),
    (
        "formula-names",
        "code,name,kind,parent\n"
        + GOOD
        + 'QB-F1,"=HYPERLINK(""http://evil"",""Bấm"")",commune,QB\n'
        + "QB-F2,+1+2,commune,QB\n"
        + "QB-F3,-2+3,commune,QB\n"
        + "QB-F4,@SUM(A1),commune,QB\n",
        "invalid_csv",
        [(n, "formula_like_name", "name") for n in (3, 4, 5, 6)],
    ),
    (
        "every-fault-at-once",
        "code,name,kind,parent\n"
        + "bad code,Xã A,commune,QB\n"
        + "QB-B,Xã B,village,QB\n"
        + "QB-C,Xã C,commune,QB-KHONGCO\n"
        + "QB-D,Xã D,commune,QB,extra\n"
        + GOOD,
        "invalid_csv",
        [
            (2, "invalid_field", "code"),
            (3, "unknown_kind", "kind"),
            (4, "unknown_unit", "parent"),
            (5, "too_many_columns", None),
        ],
    ),
    (
        "wrong-header",
        "ma,ten,loai,cha\n" + GOOD,
        "invalid_csv",
        [(1, "invalid_header", None)],
    ),
    ("no-rows", "\ufeffcode,name,kind,parent\r\n", "invalid_csv", [(1, "no_rows", None)]),
]


@pytest.mark.parametrize(
    ("text", "code", "rows"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE]
)
async def test_a_hostile_file_is_refused_whole_with_its_lines(
    api: Any, text: str, code: str, rows: list[tuple[int, str, str | None]]
) -> None:
    headers = await page_session(api)
    before = await snapshot(api)
    status, body = await upload(api, headers, text.encode("utf-8"))
    assert status == 422, body
    error = body["error"]
    assert error["code"] == code
    assert error["message"].startswith(f"row {rows[0][0]}: ")
    got = [(d["line"], d["code"], d.get("field")) for d in error["details"]]
    assert got == rows
    assert all(d["message"] for d in error["details"])
    assert await snapshot(api) == before  # not even the good row


async def test_an_oversized_file_is_413_and_writes_nothing(api: Any) -> None:
    headers = await page_session(api)
    limit = api.client.app[CONFIG].max_body_bytes
    text = "code,name,kind,parent\n" + GOOD * (limit // len(GOOD.encode()) + 10)
    before = await snapshot(api)
    status, body = await upload(api, headers, text.encode("utf-8"))
    assert status == 413
    assert body["error"]["code"] == "body_too_large"
    assert await snapshot(api) == before


async def test_a_file_saved_in_a_legacy_encoding_is_refused(api: Any) -> None:
    headers = await page_session(api)
    before = await snapshot(api)
    status, body = await upload(api, headers, ("code,name,kind,parent\n" + GOOD).encode("utf-16"))
    assert status == 400
    assert body["error"]["code"] == "invalid_encoding"
    assert await snapshot(api) == before


async def test_the_import_needs_the_csrf_token(api: Any) -> None:
    headers = await page_session(api)
    del headers["X-CSRF-Token"]
    before = await snapshot(api)
    status, body = await upload(api, headers, ("code,name,kind,parent\n" + GOOD).encode())
    assert status == 403
    assert body["error"]["code"] == "csrf_failed"
    assert await snapshot(api) == before


# --- /admin/accounts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("locale", ["vi", "en"])
async def test_the_accounts_page_lists_the_database_s_accounts(api: Any, locale: str) -> None:
    async with api.database.write() as session:
        row = await session.get(Account, api.accounts["vanthu"])
        assert row is not None
        row.display_name = "Nguyễn Thị Hồng Nhung — Văn thư"
        session.add(row)
    status, html, response = await get(
        api, f"/admin/accounts?lang={locale}", await cookie_for(api, "admin")
    )
    assert status == 200, html[:500]
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "<script>" not in html
    assert "style=" not in html
    assert '<script type="module" src="/static/admin_accounts.js"></script>' in html
    assert '<a href="/admin/accounts" aria-current="page">' in html
    rows = account_rows(html)
    assert set(rows) == {"admin", "thuky", "vanthu", "chutri", "vanhanh"}
    assert "Nguyễn Thị Hồng Nhung — Văn thư" in rows["vanthu"]
    assert "Văn phòng UBND tỉnh" in rows["vanthu"]  # its unit's name
    assert "<code>QB-VP</code>" in rows["vanthu"]
    # One's own account cannot be deactivated from the list; the others can.
    assert "toggle-active" not in rows["admin"]
    assert 'data-active="false"' in rows["thuky"]


async def test_the_role_filter(api: Any) -> None:
    headers = await cookie_for(api, "admin")
    _, html, _ = await get(api, "/admin/accounts?role=clerk", headers)
    assert set(account_rows(html)) == {"vanthu"}
    assert '<option value="clerk" selected>' in html
    _, html, _ = await get(api, "/admin/accounts?role=king", headers)
    assert len(account_rows(html)) == 5  # an unknown role filters nothing


async def test_account_changes_from_the_page_show_on_the_page(api: Any) -> None:
    headers = await page_session(api, "/admin/accounts")
    vanthu = api.accounts["vanthu"]
    status, body = await page_call(
        api,
        "PATCH",
        f"/api/accounts/{vanthu}",
        headers,
        json={
            "display_name": "Trần Văn Đức",
            "roles": ["clerk", "chair"],
            "unit": "QB-SYT",
            "active": False,
        },
    )
    assert status == 200, body
    _, html, _ = await get(api, "/admin/accounts?lang=en", headers)
    row = account_rows(html)["vanthu"]
    assert "Trần Văn Đức" in row
    assert "<code>QB-SYT</code>" in row
    assert 'class="inactive"' in row
    assert 'data-active="true"' in row  # now offered to reactivate
    _, html, _ = await get(api, "/admin/accounts?role=chair", headers)
    assert set(account_rows(html)) == {"vanthu", "chutri"}


async def test_self_demotion_from_the_page_is_refused(api: Any) -> None:
    headers = await page_session(api, "/admin/accounts")
    me = api.accounts["admin"]
    for change, code in (
        ({"roles": ["clerk"]}, "self_demotion"),
        ({"active": False}, "self_deactivation"),
    ):
        status, body = await page_call(api, "PATCH", f"/api/accounts/{me}", headers, json=change)
        assert status == 409, body
        assert body["error"]["code"] == code
    status, html, _ = await get(api, "/admin/accounts", headers)
    assert status == 200  # still an admin, still signed in
    assert "toggle-active" not in account_rows(html)["admin"]
