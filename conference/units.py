"""Organisational units: the central offices, the province, its departments,
districts and communes. Units are referred to by their ``code`` everywhere
outside the database.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from .actors import Actor
from .audit import record_audit
from .errors import Conflict, InvalidInput, NotFound
from .models import (
    Account,
    Invitation,
    Meeting,
    Unit,
    UnitCreate,
    UnitKind,
    UnitPublic,
    UnitUpdate,
)

__all__ = [
    "CSV_COLUMNS",
    "FORMULA_PREFIXES",
    "CsvRejected",
    "ImportResult",
    "RowError",
    "create_unit",
    "delete_unit",
    "get_unit",
    "import_units_csv",
    "list_units",
    "resolve_units",
    "unit_tree",
    "units_csv",
    "update_unit",
]

CSV_COLUMNS = ("code", "name", "kind", "parent")


async def get_unit(session: AsyncSession, code: str) -> Unit:
    unit = (await session.exec(select(Unit).where(Unit.code == code))).first()
    if unit is None:
        raise NotFound(f"no unit with code {code!r}", code="unknown_unit")
    return unit


async def resolve_units(
    session: AsyncSession, codes: Iterable[str], *, field_name: str
) -> dict[str, Unit]:
    """Map codes to units; refuse the whole set if any code is unknown."""
    wanted = list(dict.fromkeys(codes))
    if not wanted:
        return {}
    rows = (await session.exec(select(Unit).where(col(Unit.code).in_(wanted)))).all()
    found = {u.code: u for u in rows}
    missing = [c for c in wanted if c not in found]
    if missing:
        raise InvalidInput(
            f"unknown unit code(s): {', '.join(missing)}", code="unknown_unit", field=field_name
        )
    return found


async def _codes_by_id(session: AsyncSession, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = (await session.exec(select(Unit.id, Unit.code).where(col(Unit.id).in_(wanted)))).all()
    return {uid: code for uid, code in rows if uid is not None}


def _public(unit: Unit, parent_code: str | None) -> UnitPublic:
    assert unit.id is not None
    return UnitPublic(
        id=unit.id, code=unit.code, name=unit.name, kind=unit.kind, parent=parent_code
    )


async def to_public(session: AsyncSession, unit: Unit) -> UnitPublic:
    codes = await _codes_by_id(session, [unit.parent_id])
    return _public(unit, codes.get(unit.parent_id) if unit.parent_id else None)


async def list_units(
    session: AsyncSession, *, kinds: Sequence[UnitKind] = (), q: str | None = None
) -> list[UnitPublic]:
    """Units, optionally of some kinds, whose code or name contains ``q``.

    The text match is done here, not in SQL: SQLite's ``lower()`` folds only
    ASCII (so "ĐỒNG HỚI" would not find "Đồng Hới"), and ``LIKE`` would treat
    ``%`` and ``_`` as wildcards. A province has hundreds of units, not millions.
    """
    query = select(Unit).order_by(col(Unit.code))
    if kinds:
        query = query.where(col(Unit.kind).in_(list(kinds)))
    units = list((await session.exec(query)).all())
    if q:
        needle = q.casefold()
        units = [u for u in units if needle in u.code.casefold() or needle in u.name.casefold()]
    codes = await _codes_by_id(session, [u.parent_id for u in units])
    return [_public(u, codes.get(u.parent_id) if u.parent_id else None) for u in units]


async def unit_tree(session: AsyncSession) -> list[dict[str, Any]]:
    """All units as a forest: ``[{code, name, kind, children: [...]}, ...]``."""
    units = (await session.exec(select(Unit).order_by(col(Unit.code)))).all()
    nodes: dict[int, dict[str, Any]] = {}
    for u in units:
        assert u.id is not None
        nodes[u.id] = {"code": u.code, "name": u.name, "kind": u.kind.value, "children": []}
    roots: list[dict[str, Any]] = []
    for u in units:
        assert u.id is not None
        parent = nodes.get(u.parent_id) if u.parent_id is not None else None
        (parent["children"] if parent is not None else roots).append(nodes[u.id])
    return roots


async def _check_parent(session: AsyncSession, unit: Unit | None, parent_code: str) -> int:
    parent = (await session.exec(select(Unit).where(Unit.code == parent_code))).first()
    if parent is None:
        raise InvalidInput(
            f"unknown parent unit {parent_code!r}", code="unknown_unit", field="parent"
        )
    assert parent.id is not None
    if unit is not None and unit.id is not None:
        # Walk up from the new parent: meeting ``unit`` on the way would make a cycle.
        cursor: Unit | None = parent
        while cursor is not None:
            if cursor.id == unit.id:
                raise InvalidInput(
                    "a unit cannot be its own ancestor", code="unit_cycle", field="parent"
                )
            cursor = await session.get(Unit, cursor.parent_id) if cursor.parent_id else None
    return parent.id


async def create_unit(session: AsyncSession, actor: Actor, data: UnitCreate) -> UnitPublic:
    existing = (await session.exec(select(Unit.id).where(Unit.code == data.code))).first()
    if existing is not None:
        raise Conflict(f"unit {data.code!r} exists already", code="unit_exists", field="code")
    _refuse_formula_name(data.name)
    parent_id = await _check_parent(session, None, data.parent) if data.parent else None
    unit = Unit(code=data.code, name=data.name, kind=data.kind, parent_id=parent_id)
    session.add(unit)
    await session.flush()
    record_audit(session, actor, "unit.create", "unit", unit.code, name=unit.name)
    return _public(unit, data.parent)


async def update_unit(
    session: AsyncSession, actor: Actor, code: str, data: UnitUpdate
) -> UnitPublic:
    unit = await get_unit(session, code)
    changes = data.model_dump(exclude_unset=True)
    for name in ("name", "kind"):
        if name in changes and changes[name] is None:
            raise InvalidInput(f"{name} cannot be null", field=name)
    _refuse_formula_name(data.name)
    if "name" in changes and data.name is not None:
        unit.name = data.name
    if "kind" in changes and data.kind is not None:
        unit.kind = data.kind
    if "parent" in changes:
        unit.parent_id = await _check_parent(session, unit, data.parent) if data.parent else None
    session.add(unit)
    await session.flush()
    record_audit(session, actor, "unit.update", "unit", code, changes=_jsonable(changes))
    return await to_public(session, unit)


async def delete_unit(session: AsyncSession, actor: Actor, code: str) -> None:
    unit = await get_unit(session, code)
    uses = [
        (select(func.count()).select_from(Unit).where(Unit.parent_id == unit.id), "child units"),
        (
            select(func.count()).select_from(Invitation).where(Invitation.unit_id == unit.id),
            "invitations",
        ),
        (
            select(func.count()).select_from(Meeting).where(Meeting.chair_unit_id == unit.id),
            "meetings it chairs",
        ),
        (select(func.count()).select_from(Account).where(Account.unit_id == unit.id), "accounts"),
    ]
    for query, what in uses:
        if (await session.exec(query)).one():
            raise Conflict(f"unit {code!r} still has {what}", code="unit_in_use")
    await session.delete(unit)
    record_audit(session, actor, "unit.delete", "unit", code, name=unit.name)


@dataclass(slots=True)
class ImportResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RowError:
    """One thing wrong with a CSV file: its line (1 is the header), a stable code,
    the column at fault when there is one, and a message for people."""

    line: int
    code: str
    message: str
    field: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"line": self.line, "code": self.code, "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        return out


class CsvRejected(InvalidInput):
    """A CSV file refused as a whole, with every bad row found (up to MAX_ROW_ERRORS),
    so whoever fixes the file can fix it in one go instead of one error per upload.

    ``code`` is ``unknown_unit`` when the only fault is parents that do not exist,
    else ``invalid_csv``; each row's own code is in :attr:`errors`.
    """

    def __init__(self, errors: Sequence[RowError]) -> None:
        first = errors[0]
        only_parents = all(e.code == "unknown_unit" for e in errors)
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(
            f"row {first.line}: {first.message}{more}",
            code="unknown_unit" if only_parents else "invalid_csv",
            field="parent" if only_parents else None,
        )
        self.errors = list(errors)


# A cell a spreadsheet would run as a formula (CSV injection): a unit name is
# shown in the attendance exports that clerks open in Excel, so none may start so.
FORMULA_PREFIXES = ("=", "+", "-", "@")
MAX_ROW_ERRORS = 100


def formula_like(text: str) -> bool:
    return text.startswith(FORMULA_PREFIXES)


def _refuse_formula_name(name: str | None) -> None:
    if name is not None and formula_like(name):
        raise InvalidInput(
            "a unit name cannot start with = + - or @ (a spreadsheet would run it as a formula)",
            code="formula_like_name",
            field="name",
        )


async def import_units_csv(session: AsyncSession, actor: Actor, text: str) -> ImportResult:
    """Create or update units from CSV text (columns ``code,name,kind,parent``).

    The whole file is checked before anything is written; a bad file is refused
    with :class:`CsvRejected`, naming every bad row by its line. Parents may appear
    after their children in the file.
    """
    rows, errors = _parse_csv(text)
    file_codes = {row.code for _, row in rows}
    existing = {u.code: u for u in (await session.exec(select(Unit))).all()}
    for line, row in rows:
        if row.parent and row.parent not in file_codes and row.parent not in existing:
            errors.append(
                RowError(line, "unknown_unit", f"unknown parent unit {row.parent!r}", "parent")
            )
    if errors:
        raise CsvRejected(sorted(errors, key=lambda e: e.line)[:MAX_ROW_ERRORS])
    result = ImportResult()
    for _, row in rows:
        unit = existing.get(row.code)
        if unit is None:
            unit = Unit(code=row.code, name=row.name, kind=row.kind)
            session.add(unit)
            existing[row.code] = unit
            result.created.append(row.code)
        elif unit.name != row.name or unit.kind != row.kind:
            unit.name, unit.kind = row.name, row.kind
            session.add(unit)
            result.updated.append(row.code)
        else:
            result.unchanged.append(row.code)
    await session.flush()
    for _, row in rows:
        unit = existing[row.code]
        parent_id = existing[row.parent].id if row.parent else None
        if unit.parent_id != parent_id:
            unit.parent_id = parent_id
            session.add(unit)
            if row.code not in result.created and row.code not in result.updated:
                result.unchanged.remove(row.code)
                result.updated.append(row.code)
    await session.flush()
    await _refuse_cycles(session)
    record_audit(
        session,
        actor,
        "unit.import",
        "unit",
        "*",
        created=len(result.created),
        updated=len(result.updated),
    )
    return result


async def units_csv(session: AsyncSession) -> str:
    """Every unit as CSV in the import's columns, parents before their children, so
    the file imports back unchanged; a BOM first so Excel reads it as UTF-8."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)

    def walk(nodes: list[dict[str, Any]], parent: str) -> None:
        for node in nodes:
            writer.writerow([node["code"], _cell(node["name"]), node["kind"], parent])
            walk(node["children"], node["code"])

    walk(await unit_tree(session), "")
    return "\ufeff" + out.getvalue()


def _cell(text: str) -> str:
    """A name as a spreadsheet shows it and never runs: a leading quote defuses a
    formula (names from before :data:`FORMULA_PREFIXES` was enforced)."""
    return "'" + text if formula_like(text) else text


async def _refuse_cycles(session: AsyncSession) -> None:
    parents = {uid: pid for uid, pid in (await session.exec(select(Unit.id, Unit.parent_id))).all()}
    for start in parents:
        seen: set[int | None] = set()
        cursor: int | None = start
        while cursor is not None:
            if cursor in seen:
                raise InvalidInput(
                    "the file makes a unit its own ancestor", code="unit_cycle", field="parent"
                )
            seen.add(cursor)
            cursor = parents.get(cursor)


def _parse_csv(text: str) -> tuple[list[tuple[int, UnitCreate]], list[RowError]]:
    """The file's valid rows with their line numbers, and every fault found."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = tuple(reader.fieldnames or ())
    except csv.Error as e:
        raise CsvRejected([RowError(1, "invalid_csv", f"unreadable CSV: {e}")]) from e
    if header[: len(CSV_COLUMNS)] != CSV_COLUMNS:
        got = ",".join(header) or "nothing"
        raise CsvRejected(
            [
                RowError(
                    1, "invalid_header", f"the header must be {','.join(CSV_COLUMNS)}; got {got}"
                )
            ]
        )
    rows: list[tuple[int, UnitCreate]] = []
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    while len(errors) < MAX_ROW_ERRORS:
        try:
            raw = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            errors.append(RowError(reader.line_num, "invalid_csv", f"unreadable CSV: {e}"))
            break
        line = reader.line_num
        row = _parse_row(line, raw, errors)
        if row is None:
            continue
        if row.code in seen:
            errors.append(
                RowError(
                    line,
                    "duplicate_code",
                    f"code {row.code!r} appears on line {seen[row.code]} already",
                    "code",
                )
            )
            continue
        seen[row.code] = line
        rows.append((line, row))
    if not rows and not errors:
        errors.append(RowError(1, "no_rows", "the CSV file has no rows"))
    return rows, errors


def _parse_row(line: int, raw: dict[str | Any, Any], errors: list[RowError]) -> UnitCreate | None:
    """One record as a unit, or None with its faults added to ``errors``."""
    if None in raw:
        errors.append(RowError(line, "too_many_columns", "too many columns"))
        return None
    values = {k: (v if v is not None else "") for k, v in raw.items() if k in CSV_COLUMNS}
    try:
        row = UnitCreate.model_validate(
            {
                "code": values["code"],
                "name": values["name"],
                "kind": values["kind"],
                "parent": values["parent"] or None,
            }
        )
    except ValidationError as e:
        for err in e.errors(include_url=False, include_input=False):
            where = str(err["loc"][0]) if err["loc"] else None
            code = "unknown_kind" if where == "kind" else "invalid_field"
            errors.append(RowError(line, code, f"{where}: {err['msg']}", where))
        return None
    if formula_like(row.name):
        errors.append(
            RowError(line, "formula_like_name", "the name cannot start with = + - or @", "name")
        )
        return None
    return row


def _jsonable(changes: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.value if hasattr(v, "value") else v) for k, v in changes.items()}
