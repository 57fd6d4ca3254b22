"""The units API: reading, the tree, admin changes, CSV import, and bad input.

Every test runs against a real aiohttp server over loopback, once on SQLite and
once on PostgreSQL (the ``api`` fixture is parametrized).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import func, select

from conference.demo import bundled_units_csv
from conference.models import (
    AuditEntry,
    Invitation,
    InvitationRole,
    Meeting,
    MeetingKind,
    Unit,
    UnitKind,
)
from web.appkeys import CONFIG

NON_ADMINS = ["thuky", "vanthu", "vanhanh", "chutri"]
EVERYONE = ["admin", *NON_ADMINS]

# A name that must come back byte for byte: Vietnamese diacritics, a ZWJ emoji
# sequence, a variation selector, typographic quotes and dash.
VIETNAMESE_NAME = "Xã Phúc Trạch – “Phong Nha” 🏞️ 👨‍👩‍👧 Điểm cầu số 1"


# --- helpers ----------------------------------------------------------------


def bundled_rows() -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(bundled_units_csv().lstrip("\ufeff"))))


def error_of(body: Any) -> dict[str, Any]:
    assert isinstance(body, dict), body
    assert "error" in body, body
    error: dict[str, Any] = body["error"]
    return error


async def count_rows(api: Any, model: Any) -> int:
    async with api.database.read() as session:
        return int((await session.exec(select(func.count()).select_from(model))).one())


async def snapshot(api: Any) -> tuple[int, int, list[tuple[str, str, str, int | None]]]:
    """Everything a unit change could touch: unit rows, audit rows, and unit contents."""
    async with api.database.read() as session:
        units = (await session.exec(select(Unit).order_by(Unit.code))).all()
        audits = (await session.exec(select(func.count()).select_from(AuditEntry))).one()
    rows = [(u.code, u.name, u.kind.value, u.parent_id) for u in units]
    return len(rows), int(audits), rows


async def unit_row(api: Any, code: str) -> Unit | None:
    async with api.database.read() as session:
        return (await session.exec(select(Unit).where(Unit.code == code))).first()


def find(tree: list[dict[str, Any]], code: str) -> dict[str, Any] | None:
    for node in tree:
        if node["code"] == code:
            return node
        found = find(node["children"], code)
        if found is not None:
            return found
    return None


def new_unit(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code": "QB-BOTRACH-PHUCTRACH",
        "name": VIETNAMESE_NAME,
        "kind": "commune",
        "parent": "QB-BOTRACH",
    }
    body.update(overrides)
    return body


async def post_csv(api: Any, text: str | bytes, *, expect: int, as_user: str = "admin") -> Any:
    return await api.call(
        "POST",
        "/api/units/import",
        as_user=as_user,
        data=text.encode("utf-8") if isinstance(text, str) else text,
        headers={"Content-Type": "text/csv"},
        expect=expect,
    )


async def add_meeting(api: Any, chair_code: str) -> int:
    unit = await unit_row(api, chair_code)
    assert unit is not None
    assert unit.id is not None
    starts = datetime(2030, 5, 4, 1, 0, tzinfo=UTC)
    async with api.database.write() as session:
        meeting = Meeting(
            title="Họp giao ban",
            starts_at=starts,
            ends_at=starts + timedelta(hours=2),
            chair_unit_id=unit.id,
            kind=MeetingKind.REGULAR,
        )
        session.add(meeting)
        await session.flush()
        assert meeting.id is not None
        return meeting.id


# --- reading -------------------------------------------------------------------


@pytest.mark.parametrize("username", EVERYONE)
async def test_every_signed_in_role_lists_all_units(api: Any, username: str) -> None:
    body = await api.call("GET", "/api/units", as_user=username, expect=200)
    expected = {
        r["code"]: {"name": r["name"], "kind": r["kind"], "parent": r["parent"] or None}
        for r in bundled_rows()
    }
    got = {
        u["code"]: {"name": u["name"], "kind": u["kind"], "parent": u["parent"]}
        for u in body["items"]
    }
    assert got == expected
    assert [u["code"] for u in body["items"]] == sorted(expected)
    assert all(isinstance(u["id"], int) for u in body["items"])


async def test_units_need_credentials(api: Any) -> None:
    for path in ["/api/units", "/api/units/tree", "/api/units/QB"]:
        body = await api.call("GET", path, as_user=None, expect=401)
        assert error_of(body)["code"] == "unauthenticated"


@pytest.mark.parametrize("kind", [k.value for k in UnitKind])
async def test_units_filtered_by_kind(api: Any, kind: str) -> None:
    body = await api.call("GET", f"/api/units?kind={kind}", expect=200)
    expected = sorted(r["code"] for r in bundled_rows() if r["kind"] == kind)
    assert expected, "the bundled file has every kind"
    assert [u["code"] for u in body["items"]] == expected
    assert {u["kind"] for u in body["items"]} == {kind}


async def test_units_with_unknown_kind_is_refused_naming_the_parameter(api: Any) -> None:
    body = await api.call("GET", "/api/units?kind=village", expect=422)
    assert error_of(body)["field"] == "kind"


async def test_units_kind_filter_with_several_kinds_is_not_silently_truncated(api: Any) -> None:
    # The parameter parser accepts a comma list; the answer must then honour every
    # kind asked for, or refuse the list - never quietly drop all but the first.
    response = await api.client.get(
        "/api/units", params={"kind": "district,commune"}, headers=api.auth("thuky")
    )
    body = await response.json()
    if response.status == 422:
        assert error_of(body)["field"] == "kind"
        return
    assert response.status == 200, body
    expected = sorted(r["code"] for r in bundled_rows() if r["kind"] in {"district", "commune"})
    assert [u["code"] for u in body["items"]] == expected


async def test_units_search_with_vietnamese_text(api: Any) -> None:
    body = await api.call("GET", "/api/units", params={"q": "Trạch"}, expect=200)
    assert [u["code"] for u in body["items"]] == [
        "QB-BOTRACH",
        "QB-BOTRACH-TANTRACH",
        "QB-BOTRACH-THUONGTRACH",
        "QB-QUANGTRACH",
    ]
    assert all("Trạch" in u["name"] for u in body["items"])


async def test_units_search_ignores_case_of_ascii_letters(api: Any) -> None:
    body = await api.call("GET", "/api/units", params={"q": "trạch"}, expect=200)
    assert len(body["items"]) == 4
    body = await api.call("GET", "/api/units", params={"q": "sở y"}, expect=200)
    assert [u["code"] for u in body["items"]] == ["QB-SYT"]


async def test_units_search_matches_code(api: Any) -> None:
    body = await api.call("GET", "/api/units", params={"q": "botrach"}, expect=200)
    assert [u["code"] for u in body["items"]] == [
        "QB-BOTRACH",
        "QB-BOTRACH-HOANLAO",
        "QB-BOTRACH-TANTRACH",
        "QB-BOTRACH-THUONGTRACH",
    ]


async def test_units_search_combined_with_kind(api: Any) -> None:
    body = await api.call("GET", "/api/units", params={"q": "Trạch", "kind": "commune"}, expect=200)
    assert [u["code"] for u in body["items"]] == [
        "QB-BOTRACH-TANTRACH",
        "QB-BOTRACH-THUONGTRACH",
    ]


async def test_units_search_without_match_is_empty(api: Any) -> None:
    body = await api.call("GET", "/api/units", params={"q": "Hà Nội"}, expect=200)
    assert body["items"] == []


@pytest.mark.parametrize("q", ["đồng hới", "ĐỒNG HỚI", "TRẠCH"])
async def test_units_search_ignores_case_of_vietnamese_letters(api: Any, q: str) -> None:
    # Đ/đ, Ạ/ạ ... are letters with case like B/b; the same search must find the
    # same units on every database.
    body = await api.call("GET", "/api/units", params={"q": q}, expect=200)
    expected = (
        ["QB-DONGHOI"]
        if "hới" in q.lower()
        else ["QB-BOTRACH", "QB-BOTRACH-TANTRACH", "QB-BOTRACH-THUONGTRACH", "QB-QUANGTRACH"]
    )
    assert [u["code"] for u in body["items"]] == expected


@pytest.mark.parametrize("q", ["%", "_", "Q_-SYT"])
async def test_units_search_treats_like_wildcards_as_plain_text(api: Any, q: str) -> None:
    # "text to find": no unit has "%" or "_" in its code or name, so nothing matches.
    body = await api.call("GET", "/api/units", params={"q": q}, expect=200)
    assert body["items"] == []


async def test_unit_tree_has_province_departments_and_districts(api: Any) -> None:
    body = await api.call("GET", "/api/units/tree", as_user="vanhanh", expect=200)
    rows = bundled_rows()
    roots = body["roots"]
    assert sorted(n["code"] for n in roots) == sorted(r["code"] for r in rows if not r["parent"])
    qb = next(n for n in roots if n["code"] == "QB")
    assert qb["name"] == "Ủy ban nhân dân tỉnh Quảng Bình"
    assert qb["kind"] == "province"
    children = {c["code"]: c["kind"] for c in qb["children"]}
    assert children == {r["code"]: r["kind"] for r in rows if r["parent"] == "QB"}
    assert set(children.values()) == {"department", "district"}
    assert "QB-VP" in children
    assert "QB-BOTRACH" in children

    botrach = find(roots, "QB-BOTRACH")
    assert botrach is not None
    assert sorted(c["code"] for c in botrach["children"]) == [
        "QB-BOTRACH-HOANLAO",
        "QB-BOTRACH-TANTRACH",
        "QB-BOTRACH-THUONGTRACH",
    ]
    assert {c["kind"] for c in botrach["children"]} == {"commune"}
    assert all(c["children"] == [] for c in botrach["children"])


async def test_unit_tree_holds_every_unit_once(api: Any) -> None:
    body = await api.call("GET", "/api/units/tree", expect=200)
    seen: list[str] = []

    def walk(nodes: list[dict[str, Any]]) -> None:
        for n in nodes:
            seen.append(n["code"])
            walk(n["children"])

    walk(body["roots"])
    assert sorted(seen) == sorted(r["code"] for r in bundled_rows())


async def test_get_one_unit(api: Any) -> None:
    body = await api.call("GET", "/api/units/QB-BOTRACH-TANTRACH", as_user="chutri", expect=200)
    row = await unit_row(api, "QB-BOTRACH-TANTRACH")
    assert row is not None
    assert body == {
        "id": row.id,
        "code": "QB-BOTRACH-TANTRACH",
        "name": "Xã Tân Trạch",
        "kind": "commune",
        "parent": "QB-BOTRACH",
    }
    root = await api.call("GET", "/api/units/QB", expect=200)
    assert root["parent"] is None


async def test_get_unknown_unit_is_404_unknown_unit(api: Any) -> None:
    body = await api.call("GET", "/api/units/QB-KHONGCO", expect=404)
    assert error_of(body)["code"] == "unknown_unit"


# --- who may change units --------------------------------------------------------


@pytest.mark.parametrize("username", NON_ADMINS)
async def test_non_admin_cannot_change_units(api: Any, username: str) -> None:
    before = await snapshot(api)
    attempts: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/api/units", {"json": new_unit()}),
        ("PATCH", "/api/units/QB-BOTRACH", {"json": {"name": "Đổi tên"}}),
        ("DELETE", "/api/units/QB-DONGHOI-HAITHANH", {}),
        (
            "POST",
            "/api/units/import",
            {
                "data": "code,name,kind,parent\nQB-X,Xã X,commune,QB\n".encode(),
                "headers": {"Content-Type": "text/csv"},
            },
        ),
    ]
    for method, path, kwargs in attempts:
        body = await api.call(method, path, as_user=username, expect=403, **kwargs)
        assert error_of(body)["code"] == "forbidden", (method, path)
    assert await snapshot(api) == before


# --- create ----------------------------------------------------------------------


async def test_admin_creates_unit_with_vietnamese_name_and_emoji(api: Any) -> None:
    created = await api.call("POST", "/api/units", as_user="admin", json=new_unit(), expect=201)
    assert created["code"] == "QB-BOTRACH-PHUCTRACH"
    assert created["name"] == VIETNAMESE_NAME
    assert created["kind"] == "commune"
    assert created["parent"] == "QB-BOTRACH"

    read = await api.call("GET", "/api/units/QB-BOTRACH-PHUCTRACH", expect=200)
    assert read == created
    listed = await api.call("GET", "/api/units", params={"q": "Phúc Trạch"}, expect=200)
    assert listed["items"] == [created]
    tree = await api.call("GET", "/api/units/tree", expect=200)
    botrach = find(tree["roots"], "QB-BOTRACH")
    assert botrach is not None
    assert {
        "code": "QB-BOTRACH-PHUCTRACH",
        "name": VIETNAMESE_NAME,
        "kind": "commune",
        "children": [],
    } in botrach["children"]

    row = await unit_row(api, "QB-BOTRACH-PHUCTRACH")
    assert row is not None
    assert row.name.encode("utf-8") == VIETNAMESE_NAME.encode("utf-8")


async def test_unit_creation_is_audited(api: Any) -> None:
    await api.call("POST", "/api/units", as_user="admin", json=new_unit(), expect=201)
    body = await api.call(
        "GET",
        "/api/audit",
        params={"object_type": "unit", "object_id": "QB-BOTRACH-PHUCTRACH"},
        as_user="admin",
        expect=200,
    )
    (entry,) = body["items"]
    assert entry["action"] == "unit.create"
    assert entry["actor"] == "admin"
    assert entry["detail"]["name"] == VIETNAMESE_NAME


async def test_root_unit_without_parent_can_be_created(api: Any) -> None:
    created = await api.call(
        "POST",
        "/api/units",
        as_user="admin",
        json={"code": "BNV", "name": "Bộ Nội vụ", "kind": "central"},
        expect=201,
    )
    assert created["parent"] is None


async def test_duplicate_unit_code_is_409_and_writes_nothing(api: Any) -> None:
    before = await snapshot(api)
    body = await api.call(
        "POST",
        "/api/units",
        as_user="admin",
        json=new_unit(code="QB-BOTRACH-TANTRACH", name="Trùng mã"),
        expect=409,
    )
    assert error_of(body)["code"] == "unit_exists"
    assert error_of(body)["field"] == "code"
    assert await snapshot(api) == before


async def test_unknown_parent_is_422_unknown_unit_and_writes_nothing(api: Any) -> None:
    before = await snapshot(api)
    body = await api.call(
        "POST", "/api/units", as_user="admin", json=new_unit(parent="QB-KHONGCO"), expect=422
    )
    assert error_of(body)["code"] == "unknown_unit"
    assert error_of(body)["field"] == "parent"
    assert await snapshot(api) == before


@pytest.mark.parametrize("code", ["", "-QB", "QB BOTRACH", "QB/1", "Q" * 33, "Trạch"])
async def test_bad_unit_code_is_refused(api: Any, code: str) -> None:
    before = await snapshot(api)
    body = await api.call(
        "POST", "/api/units", as_user="admin", json=new_unit(code=code), expect=422
    )
    assert error_of(body)["field"] == "code"
    assert await snapshot(api) == before


# --- update ----------------------------------------------------------------------


async def test_admin_renames_and_moves_a_unit(api: Any) -> None:
    body = await api.call(
        "PATCH",
        "/api/units/QB-BOTRACH-TANTRACH",
        as_user="admin",
        json={"name": "Xã Tân Trạch (mới) ✅", "parent": "QB-DONGHOI"},
        expect=200,
    )
    assert body["name"] == "Xã Tân Trạch (mới) ✅"
    assert body["parent"] == "QB-DONGHOI"
    assert body["kind"] == "commune"
    assert await api.call("GET", "/api/units/QB-BOTRACH-TANTRACH", expect=200) == body
    audit = await api.call(
        "GET",
        "/api/audit",
        params={"object_type": "unit", "object_id": "QB-BOTRACH-TANTRACH"},
        as_user="admin",
        expect=200,
    )
    (entry,) = audit["items"]
    assert entry["action"] == "unit.update"
    assert entry["detail"]["changes"] == {"name": "Xã Tân Trạch (mới) ✅", "parent": "QB-DONGHOI"}


async def test_patch_parent_null_makes_a_root(api: Any) -> None:
    body = await api.call(
        "PATCH",
        "/api/units/QB-DONGHOI-HAITHANH",
        as_user="admin",
        json={"parent": None},
        expect=200,
    )
    assert body["parent"] is None
    tree = await api.call("GET", "/api/units/tree", expect=200)
    assert "QB-DONGHOI-HAITHANH" in [n["code"] for n in tree["roots"]]


async def test_patch_unknown_unit_is_404(api: Any) -> None:
    before = await snapshot(api)
    body = await api.call(
        "PATCH", "/api/units/QB-KHONGCO", as_user="admin", json={"name": "Không có"}, expect=404
    )
    assert error_of(body)["code"] == "unknown_unit"
    assert await snapshot(api) == before


async def test_patch_to_unknown_parent_is_refused_and_changes_nothing(api: Any) -> None:
    before = await snapshot(api)
    body = await api.call(
        "PATCH",
        "/api/units/QB-BOTRACH",
        as_user="admin",
        json={"name": "Tên mới", "parent": "QB-KHONGCO"},
        expect=422,
    )
    assert error_of(body)["code"] == "unknown_unit"
    assert await snapshot(api) == before


@pytest.mark.parametrize(
    ("code", "parent"),
    [
        ("QB", "QB-BOTRACH"),  # parent below it
        ("QB", "QB-BOTRACH-TANTRACH"),  # two levels below it
        ("QB-BOTRACH", "QB-BOTRACH"),  # itself
    ],
)
async def test_patch_making_a_cycle_is_refused_and_changes_nothing(
    api: Any, code: str, parent: str
) -> None:
    before = await snapshot(api)
    body = await api.call(
        "PATCH",
        f"/api/units/{code}",
        as_user="admin",
        json={"name": "Không được lưu", "parent": parent},
        expect=422,
    )
    assert error_of(body)["code"] == "unit_cycle"
    assert error_of(body)["field"] == "parent"
    assert await snapshot(api) == before
    read = await api.call("GET", f"/api/units/{code}", expect=200)
    assert read["name"] != "Không được lưu"


async def test_patch_with_unknown_field_is_refused(api: Any) -> None:
    before = await snapshot(api)
    body = await api.call(
        "PATCH", "/api/units/QB", as_user="admin", json={"code": "QB2"}, expect=422
    )
    assert error_of(body)["code"] == "unknown_field"
    assert error_of(body)["field"] == "code"
    assert await snapshot(api) == before


# --- delete ----------------------------------------------------------------------


async def test_delete_unit_with_children_is_in_use(api: Any) -> None:
    before = await snapshot(api)
    body = await api.call("DELETE", "/api/units/QB-BOTRACH", as_user="admin", expect=409)
    assert error_of(body)["code"] == "unit_in_use"
    assert await snapshot(api) == before


async def test_delete_unit_with_accounts_is_in_use(api: Any) -> None:
    before = await snapshot(api)
    body = await api.call("DELETE", "/api/units/QB-SNV", as_user="admin", expect=409)
    assert error_of(body)["code"] == "unit_in_use"
    assert await snapshot(api) == before


async def test_delete_unit_that_chairs_a_meeting_is_in_use(api: Any) -> None:
    await add_meeting(api, "QB-LETHUY-KIENGIANG")
    before = await snapshot(api)
    body = await api.call("DELETE", "/api/units/QB-LETHUY-KIENGIANG", as_user="admin", expect=409)
    assert error_of(body)["code"] == "unit_in_use"
    assert await snapshot(api) == before


async def test_delete_unit_invited_to_a_meeting_is_in_use(api: Any) -> None:
    meeting_id = await add_meeting(api, "QB")
    unit = await unit_row(api, "QB-DONGHOI-HAITHANH")
    assert unit is not None
    assert unit.id is not None
    async with api.database.write() as session:
        session.add(
            Invitation(
                meeting_id=meeting_id,
                unit_id=unit.id,
                role=InvitationRole.PARTICIPANT,
                token_id="t1",
            )
        )
    before = await snapshot(api)
    body = await api.call("DELETE", "/api/units/QB-DONGHOI-HAITHANH", as_user="admin", expect=409)
    assert error_of(body)["code"] == "unit_in_use"
    assert await snapshot(api) == before


async def test_delete_fresh_leaf_unit(api: Any) -> None:
    await api.call("POST", "/api/units", as_user="admin", json=new_unit(), expect=201)
    units = await count_rows(api, Unit)
    response = await api.client.delete("/api/units/QB-BOTRACH-PHUCTRACH", headers=api.auth("admin"))
    assert response.status == 204
    assert await response.read() == b""
    assert await count_rows(api, Unit) == units - 1
    body = await api.call("GET", "/api/units/QB-BOTRACH-PHUCTRACH", expect=404)
    assert error_of(body)["code"] == "unknown_unit"
    audit = await api.call(
        "GET",
        "/api/audit",
        params={"object_type": "unit", "object_id": "QB-BOTRACH-PHUCTRACH"},
        as_user="admin",
        expect=200,
    )
    assert [e["action"] for e in audit["items"]] == ["unit.delete", "unit.create"]
    body = await api.call("DELETE", "/api/units/QB-BOTRACH-PHUCTRACH", as_user="admin", expect=404)
    assert error_of(body)["code"] == "unknown_unit"


# --- CSV import ------------------------------------------------------------------

NEW_CSV = (
    "code,name,kind,parent\n"
    "QB-MINHHOA-HOAHOP,Xã Hóa Hợp,commune,QB-MINHHOA\n"
    "QB-MINHHOA-DANHOA,Xã Dân Hóa 🌄,commune,QB-MINHHOA\n"
)


async def test_import_creates_new_units_then_reimport_is_unchanged(api: Any) -> None:
    units = await count_rows(api, Unit)
    body = await post_csv(api, NEW_CSV, expect=200)
    assert sorted(body["created"]) == ["QB-MINHHOA-DANHOA", "QB-MINHHOA-HOAHOP"]
    assert body["updated"] == []
    assert body["unchanged"] == []
    assert await count_rows(api, Unit) == units + 2
    read = await api.call("GET", "/api/units/QB-MINHHOA-DANHOA", expect=200)
    assert read["name"] == "Xã Dân Hóa 🌄"
    assert read["parent"] == "QB-MINHHOA"
    assert read["kind"] == "commune"

    before = await snapshot(api)
    again = await post_csv(api, NEW_CSV, expect=200)
    assert again["created"] == []
    assert again["updated"] == []
    assert sorted(again["unchanged"]) == ["QB-MINHHOA-DANHOA", "QB-MINHHOA-HOAHOP"]
    assert (await snapshot(api))[2] == before[2]


async def test_import_of_the_bundled_file_changes_nothing(api: Any) -> None:
    before = await snapshot(api)
    body = await post_csv(api, bundled_units_csv(), expect=200)
    assert body["created"] == []
    assert body["updated"] == []
    assert sorted(body["unchanged"]) == sorted(r["code"] for r in bundled_rows())
    assert (await snapshot(api))[2] == before[2]


async def test_import_updates_names_and_parents(api: Any) -> None:
    text = (
        "code,name,kind,parent\n"
        "QB-BOTRACH-TANTRACH,Xã Tân Trạch (sáp nhập),commune,QB-BOTRACH\n"
        "QB-DONGHOI-HAITHANH,Phường Hải Thành,commune,QB-BOTRACH\n"
    )
    body = await post_csv(api, text, expect=200)
    assert sorted(body["updated"]) == ["QB-BOTRACH-TANTRACH", "QB-DONGHOI-HAITHANH"]
    assert body["created"] == []
    assert body["unchanged"] == []
    tantrach = await api.call("GET", "/api/units/QB-BOTRACH-TANTRACH", expect=200)
    assert tantrach["name"] == "Xã Tân Trạch (sáp nhập)"
    haithanh = await api.call("GET", "/api/units/QB-DONGHOI-HAITHANH", expect=200)
    assert haithanh["parent"] == "QB-BOTRACH"


async def test_import_accepts_parent_after_child_and_utf8_bom(api: Any) -> None:
    text = (
        "\ufeffcode,name,kind,parent\n"
        "QB-MOI-XA,Xã Mới,commune,QB-MOI\n"
        "QB-MOI,Huyện Mới,district,QB\n"
    )
    body = await post_csv(api, text, expect=200)
    assert sorted(body["created"]) == ["QB-MOI", "QB-MOI-XA"]
    assert (await api.call("GET", "/api/units/QB-MOI-XA", expect=200))["parent"] == "QB-MOI"


async def test_import_is_audited(api: Any) -> None:
    await post_csv(api, NEW_CSV, expect=200)
    audit = await api.call(
        "GET", "/api/audit", params={"object_type": "unit"}, as_user="admin", expect=200
    )
    entry = audit["items"][0]
    assert entry["action"] == "unit.import"
    assert entry["actor"] == "admin"
    assert entry["detail"] == {"created": 2, "updated": 0}


async def test_import_accepts_charset_parameter(api: Any) -> None:
    body = await api.call(
        "POST",
        "/api/units/import",
        as_user="admin",
        data=NEW_CSV.encode(),
        headers={"Content-Type": "text/csv; charset=utf-8"},
        expect=200,
    )
    assert len(body["created"]) == 2


GOOD_ROW = "QB-MINHHOA-HOAHOP,Xã Hóa Hợp,commune,QB-MINHHOA\n"


@pytest.mark.parametrize(
    "text",
    [
        # A good row first: the file is refused as a whole, the good row too.
        "code,name,kind,parent\n" + GOOD_ROW + "QB-MINHHOA-X,Xã X,village,QB-MINHHOA\n",
        "code,name,kind,parent\n" + GOOD_ROW + GOOD_ROW,
        "ma,ten,loai,cha\n" + "QB-MINHHOA-X,Xã X,commune,QB-MINHHOA\n",
        "code,name,kind\n" + "QB-MINHHOA-X,Xã X,commune\n",
        "code,name,kind,parent\n",
        "",
        "code,name,kind,parent\n" + GOOD_ROW + "QB-MINHHOA-X,Xã X,commune,QB-MINHHOA,extra\n",
        "code,name,kind,parent\n" + GOOD_ROW + "QB-MINHHOA-X,Xã \x00X,commune,QB-MINHHOA\n",
        "code,name,kind,parent\n" + GOOD_ROW + "bad code,Xã X,commune,QB-MINHHOA\n",
    ],
    ids=[
        "unknown-kind",
        "duplicated-code",
        "wrong-header",
        "missing-column",
        "no-rows",
        "empty",
        "too-many-columns",
        "nul-in-name",
        "bad-code",
    ],
)
async def test_import_with_a_bad_row_is_invalid_csv_and_writes_nothing(api: Any, text: str) -> None:
    before = await snapshot(api)
    body = await post_csv(api, text, expect=422)
    assert error_of(body)["code"] == "invalid_csv"
    assert await snapshot(api) == before
    assert await unit_row(api, "QB-MINHHOA-HOAHOP") is None


async def test_import_with_unknown_parent_writes_nothing(api: Any) -> None:
    before = await snapshot(api)
    body = await post_csv(
        api, "code,name,kind,parent\n" + GOOD_ROW + "QB-X,Xã X,commune,QB-KHONGCO\n", expect=422
    )
    assert error_of(body)["code"] == "unknown_unit"
    assert await snapshot(api) == before


@pytest.mark.parametrize(
    "text",
    [
        "code,name,kind,parent\nQB-A,Xã A,commune,QB-B\nQB-B,Xã B,commune,QB-A\n",
        # Makes the province a child of one of its own districts.
        "code,name,kind,parent\n" + GOOD_ROW + "QB,Ủy ban nhân dân tỉnh Quảng Bình,province,"
        "QB-BOTRACH\n",
    ],
    ids=["new-units", "existing-units"],
)
async def test_import_making_a_cycle_writes_nothing(api: Any, text: str) -> None:
    before = await snapshot(api)
    body = await post_csv(api, text, expect=422)
    assert error_of(body)["code"] == "unit_cycle"
    assert await snapshot(api) == before
    assert (await api.call("GET", "/api/units/QB", expect=200))["parent"] is None


async def test_import_with_wrong_content_type_is_415(api: Any) -> None:
    before = await snapshot(api)
    for content_type in ["application/json", "text/plain", "application/octet-stream"]:
        body = await api.call(
            "POST",
            "/api/units/import",
            as_user="admin",
            data=NEW_CSV.encode(),
            headers={"Content-Type": content_type},
            expect=415,
        )
        assert error_of(body)["code"] == "unsupported_media_type"
    assert await snapshot(api) == before


async def test_import_not_utf8_is_refused(api: Any) -> None:
    before = await snapshot(api)
    body = await post_csv(api, NEW_CSV.encode("cp1258", errors="replace") + b"\xff", expect=400)
    assert error_of(body)["code"] == "invalid_encoding"
    assert await snapshot(api) == before


async def test_import_over_the_size_limit_is_413(api: Any) -> None:
    limit = api.client.app[CONFIG].max_body_bytes
    row = "QB-MINHHOA-HOAHOP,Xã Hóa Hợp,commune,QB-MINHHOA\n"
    text = "code,name,kind,parent\n" + row * (limit // len(row.encode()) + 100)
    before = await snapshot(api)
    body = await post_csv(api, text, expect=413)
    assert error_of(body)["code"] == "body_too_large"
    assert await snapshot(api) == before


# --- bad input, through POST /api/units ----------------------------------------------


def over_limit_json(limit: int) -> bytes:
    body = json.dumps(new_unit(name="a" * (limit + limit // 10))).encode()
    assert len(body) > limit
    return body


async def chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


BAD_INPUT: list[tuple[str, dict[str, Any], int, str, str | None]] = [
    (
        "malformed-json",
        {"data": b'{"code": "QB-X", "name": ', "headers": {"Content-Type": "application/json"}},
        400,
        "invalid_json",
        None,
    ),
    (
        "not-utf8",
        {
            "data": b'{"code": "QB-X", "name": "\xff"}',
            "headers": {"Content-Type": "application/json"},
        },
        400,
        "invalid_json",
        None,
    ),
    (
        "json-array",
        {"json": [new_unit()]},
        400,
        "invalid_json",
        None,
    ),
    (
        "json-string",
        {"json": "QB-X"},
        400,
        "invalid_json",
        None,
    ),
    (
        "json-null",
        {"data": b"null", "headers": {"Content-Type": "application/json"}},
        400,
        "invalid_json",
        None,
    ),
    (
        "empty-body",
        {"data": b"", "headers": {"Content-Type": "application/json"}},
        400,
        "invalid_json",
        None,
    ),
    (
        "form-encoded",
        {"data": {"code": "QB-X", "name": "X", "kind": "commune"}},
        415,
        "unsupported_media_type",
        None,
    ),
    (
        "kind-is-a-number",
        {"json": new_unit(kind=5)},
        422,
        "invalid_field",
        "kind",
    ),
    (
        "unknown-kind",
        {"json": new_unit(kind="village")},
        422,
        "invalid_field",
        "kind",
    ),
    (
        "name-is-a-list",
        {"json": new_unit(name=["Xã"])},
        422,
        "invalid_field",
        "name",
    ),
    (
        "nul-in-name",
        {"json": new_unit(name="Xã Phúc\x00Trạch")},
        422,
        "invalid_field",
        "name",
    ),
    (
        "control-char-in-name",
        {"json": new_unit(name="Xã Phúc\x1bTrạch")},
        422,
        "invalid_field",
        "name",
    ),
    (
        "newline-in-name",
        {"json": new_unit(name="Xã Phúc\nTrạch")},
        422,
        "invalid_field",
        "name",
    ),
    (
        "blank-name",
        {"json": new_unit(name="   ")},
        422,
        "invalid_field",
        "name",
    ),
    (
        "name-too-long",
        {"json": new_unit(name="Ạ" * 201)},
        422,
        "invalid_field",
        "name",
    ),
    (
        "missing-name",
        {"json": {"code": "QB-X", "kind": "commune"}},
        422,
        "missing_field",
        "name",
    ),
    (
        "unknown-field",
        {"json": {**new_unit(), "id": 1}},
        422,
        "unknown_field",
        "id",
    ),
]


@pytest.mark.parametrize(
    ("kwargs", "status", "code", "field"),
    [case[1:] for case in BAD_INPUT],
    ids=[case[0] for case in BAD_INPUT],
)
async def test_bad_unit_input_is_refused_and_writes_nothing(
    api: Any, kwargs: dict[str, Any], status: int, code: str, field: str | None
) -> None:
    before = await snapshot(api)
    body = await api.call("POST", "/api/units", as_user="admin", expect=status, **kwargs)
    error = error_of(body)
    assert error["code"] == code
    assert isinstance(error["message"], str)
    assert error["message"]
    if field is not None:
        assert error["field"] == field
    assert await snapshot(api) == before


async def test_validation_error_lists_every_bad_field(api: Any) -> None:
    body = await api.call(
        "POST",
        "/api/units",
        as_user="admin",
        json={"code": "bad code", "name": "\x00", "kind": 5},
        expect=422,
    )
    fields = {d["field"] for d in error_of(body)["details"]}
    assert fields == {"code", "name", "kind"}


async def test_body_over_the_limit_is_413_and_writes_nothing(api: Any) -> None:
    limit = api.client.app[CONFIG].max_body_bytes
    assert limit == 1024 * 1024
    before = await snapshot(api)
    body = await api.call(
        "POST",
        "/api/units",
        as_user="admin",
        data=over_limit_json(limit),
        headers={"Content-Type": "application/json"},
        expect=413,
    )
    assert error_of(body)["code"] == "body_too_large"
    assert await snapshot(api) == before


async def test_chunked_body_over_the_limit_is_413_and_writes_nothing(api: Any) -> None:
    # No Content-Length: the limit must hold while reading.
    limit = api.client.app[CONFIG].max_body_bytes
    before = await snapshot(api)
    body = await api.call(
        "POST",
        "/api/units",
        as_user="admin",
        data=chunks(over_limit_json(limit)),
        headers={"Content-Type": "application/json"},
        expect=413,
    )
    assert error_of(body)["code"] == "body_too_large"
    assert await snapshot(api) == before


async def test_gzip_body_expanding_over_the_limit_is_413_and_writes_nothing(api: Any) -> None:
    # A few kilobytes on the wire that expand to more than the limit.
    limit = api.client.app[CONFIG].max_body_bytes
    raw = over_limit_json(limit)
    packed = gzip.compress(raw)
    assert len(packed) < limit // 10
    before = await snapshot(api)
    body = await api.call(
        "POST",
        "/api/units",
        as_user="admin",
        data=packed,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        expect=413,
    )
    assert error_of(body)["code"] == "body_too_large"
    assert await snapshot(api) == before


async def test_body_of_exactly_the_limit_is_read(api: Any) -> None:
    limit = api.client.app[CONFIG].max_body_bytes
    prefix = json.dumps(new_unit(kind=5)).encode()
    exact = prefix + b" " * (limit - len(prefix))
    assert len(exact) == limit
    before = await snapshot(api)
    # Read and parsed (so refused for its content, 422), not refused for size.
    body = await api.call(
        "POST",
        "/api/units",
        as_user="admin",
        data=exact,
        headers={"Content-Type": "application/json"},
        expect=422,
    )
    assert error_of(body)["field"] == "kind"
    body = await api.call(
        "POST",
        "/api/units",
        as_user="admin",
        data=exact + b" ",
        headers={"Content-Type": "application/json"},
        expect=413,
    )
    assert error_of(body)["code"] == "body_too_large"
    assert await snapshot(api) == before


# --- formula-like names, every bad row of a file -------------------------------------------


@pytest.mark.parametrize("name", ["=1+1", "+84 Xã", "-Xã", "@SUM(A1)", '=HYPERLINK("http://x")'])
async def test_unit_name_like_a_spreadsheet_formula_is_refused(api: Any, name: str) -> None:
    # Unit names end up in the attendance CSV/XLSX clerks open in Excel.
    before = await snapshot(api)
    body = await api.call(
        "POST", "/api/units", as_user="admin", json=new_unit(name=name), expect=422
    )
    assert error_of(body)["code"] == "formula_like_name"
    assert error_of(body)["field"] == "name"
    body = await api.call(
        "PATCH", "/api/units/QB-BOTRACH", as_user="admin", json={"name": name}, expect=422
    )
    assert error_of(body)["code"] == "formula_like_name"
    assert await snapshot(api) == before


async def test_a_formula_sign_inside_a_name_is_fine(api: Any) -> None:
    created = await api.call(
        "POST", "/api/units", as_user="admin", json=new_unit(name="Xã A + B = C"), expect=201
    )
    assert created["name"] == "Xã A + B = C"


async def test_import_names_every_bad_row_by_its_physical_line(api: Any) -> None:
    # A quoted name over two lines is one record: the lines after it count it twice.
    text = (
        "code,name,kind,parent\n"
        'QB-A,"Xã\nhai dòng",commune,QB\n'  # lines 2-3: a newline in a name
        + GOOD_ROW  # line 4
        + "QB-B,Xã B,thôn,QB\n"  # line 5
        + "QB-C,=cmd,commune,QB\n"  # line 6
        + GOOD_ROW  # line 7: twice
    )
    before = await snapshot(api)
    body = await post_csv(api, text, expect=422)
    error = error_of(body)
    assert error["code"] == "invalid_csv"
    assert [(d["line"], d["code"], d.get("field")) for d in error["details"]] == [
        (3, "invalid_field", "name"),
        (5, "unknown_kind", "kind"),
        (6, "formula_like_name", "name"),
        (7, "duplicate_code", "code"),
    ]
    assert "line 4" in error["details"][3]["message"]
    assert await snapshot(api) == before


async def test_import_reports_at_most_a_hundred_bad_rows(api: Any) -> None:
    text = "code,name,kind,parent\n" + "".join(f"QB-X{n},Xã {n},village,QB\n" for n in range(250))
    body = await post_csv(api, text, expect=422)
    details = error_of(body)["details"]
    assert len(details) == 100
    assert [d["line"] for d in details] == list(range(2, 102))
    assert "(and 99 more)" in error_of(body)["message"]
