"""Accounts of people who use hoinghi, and password login."""

from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from .actors import Actor
from .audit import record_audit
from .errors import AuthenticationFailed, Conflict, InvalidInput, NotFound, TokenRejected
from .models import Account, AccountCreate, AccountPublic, AccountUpdate, Role, Unit
from .passwords import hash_password, needs_rehash, verify_password
from .timezone import utcnow
from .units import get_unit

__all__ = [
    "account_public",
    "actor_for",
    "authenticate",
    "create_account",
    "get_account",
    "list_accounts",
    "reset_password",
    "set_password",
    "update_account",
]


def _actor(account: Account) -> Actor:
    return Actor(
        account_id=account.id,
        username=account.username,
        roles=frozenset(Role(r) for r in account.roles if r in set(Role)),
        unit_id=account.unit_id,
    )


async def _public(session: AsyncSession, account: Account) -> AccountPublic:
    unit = await session.get(Unit, account.unit_id) if account.unit_id else None
    assert account.id is not None
    return AccountPublic(
        id=account.id,
        username=account.username,
        display_name=account.display_name,
        roles=[Role(r) for r in account.roles],
        unit=unit.code if unit else None,
        active=account.active,
    )


async def create_account(session: AsyncSession, actor: Actor, data: AccountCreate) -> AccountPublic:
    taken = (
        await session.exec(select(Account.id).where(Account.username == data.username))
    ).first()
    if taken is not None:
        raise Conflict(
            f"username {data.username!r} is taken", code="username_taken", field="username"
        )
    unit_id = (await get_unit(session, data.unit)).id if data.unit else None
    account = Account(
        username=data.username,
        display_name=data.display_name,
        password_hash=hash_password(data.password),
        roles=sorted({r.value for r in data.roles}),
        unit_id=unit_id,
    )
    session.add(account)
    await session.flush()
    record_audit(session, actor, "account.create", "account", account.username, roles=account.roles)
    return await _public(session, account)


async def set_password(session: AsyncSession, actor: Actor, username: str, password: str) -> None:
    account = (await session.exec(select(Account).where(Account.username == username))).first()
    if account is None:
        raise NotFound(f"no account {username!r}")
    _new_password(session, actor, account, password)


def _new_password(session: AsyncSession, actor: Actor, account: Account, password: str) -> None:
    account.password_hash = hash_password(password)
    # Whoever knew the old password may hold a session: every earlier one ends.
    account.tokens_valid_after = utcnow()
    session.add(account)
    record_audit(session, actor, "account.password", "account", account.username)


async def list_accounts(session: AsyncSession, *, role: Role | None = None) -> list[AccountPublic]:
    """Accounts by username, optionally only those holding ``role``.

    The role filter runs here, not in SQL: roles are a JSON list, queried
    differently on SQLite and PostgreSQL, and a province has hundreds of accounts.
    """
    rows = (await session.exec(select(Account).order_by(col(Account.username)))).all()
    if role is not None:
        rows = [a for a in rows if role.value in a.roles]
    return [await _public(session, a) for a in rows]


async def get_account(session: AsyncSession, account_id: int) -> Account:
    account = await session.get(Account, account_id)
    if account is None:
        raise NotFound(f"no account {account_id}", code="unknown_account")
    return account


def _refuse_self_lockout(actor: Actor, account: Account, data: AccountUpdate) -> None:
    """An admin may not take away their own admin role nor disable themselves:
    a province whose only admin did so could not undo it from the pages."""
    if account.id != actor.account_id:
        return
    if (
        data.roles is not None
        and Role.ADMIN not in data.roles
        and Role.ADMIN.value in account.roles
    ):
        raise Conflict("you cannot remove your own admin role", code="self_demotion", field="roles")
    if data.active is False:
        raise Conflict(
            "you cannot deactivate your own account", code="self_deactivation", field="active"
        )


async def update_account(
    session: AsyncSession, actor: Actor, account_id: int, data: AccountUpdate
) -> AccountPublic:
    """Change an account's display name, roles, unit or active flag.

    Sessions and tokens carry no roles that matter: every request reads the
    account again (:func:`actor_for`), so a change, a deactivation above all,
    takes effect on the account's next request.
    """
    account = await get_account(session, account_id)
    changes = data.model_dump(exclude_unset=True)
    for name in ("display_name", "roles", "active"):
        if name in changes and changes[name] is None:
            raise InvalidInput(f"{name} cannot be null", field=name)
    _refuse_self_lockout(actor, account, data)
    if data.display_name is not None:
        account.display_name = data.display_name
    if data.roles is not None:
        account.roles = sorted({r.value for r in data.roles})
    if "unit" in changes:
        account.unit_id = (await get_unit(session, data.unit)).id if data.unit else None
    if data.active is not None:
        account.active = data.active
    session.add(account)
    await session.flush()
    detail = {k: v for k, v in changes.items() if k != "roles"}
    if "roles" in changes:
        detail["roles"] = account.roles
    record_audit(session, actor, "account.update", "account", account.username, changes=detail)
    return await _public(session, account)


async def reset_password(
    session: AsyncSession, actor: Actor, account_id: int, password: str
) -> None:
    """Set a new password for an account (an admin's reset: the old one is not asked);
    the account's sessions and tokens issued before it end."""
    _new_password(session, actor, await get_account(session, account_id), password)


async def account_public(session: AsyncSession, account_id: int) -> AccountPublic:
    account = await session.get(Account, account_id)
    if account is None:
        raise NotFound(f"no account {account_id}")
    return await _public(session, account)


async def authenticate(
    session: AsyncSession, username: str, password: str
) -> tuple[Actor, AccountPublic]:
    """Check a password; the same message for an unknown user and a wrong password."""
    account = (await session.exec(select(Account).where(Account.username == username))).first()
    ok = verify_password(account.password_hash if account else None, password)
    if account is None or not ok or not account.active:
        raise AuthenticationFailed("wrong username or password", code="bad_credentials")
    if needs_rehash(account.password_hash):
        account.password_hash = hash_password(password)
        session.add(account)
    return _actor(account), await _public(session, account)


async def actor_for(
    session: AsyncSession, account_id: int, *, issued_at: float | None = None
) -> Actor:
    """The current roles of an account, so a deactivated account loses access at once.

    ``issued_at`` is the presented token's ``iat``: a token issued before the
    account's password was last set is refused (``token_revoked``).
    """
    account = await session.get(Account, account_id)
    if account is None or not account.active:
        raise AuthenticationFailed(
            "the account no longer exists or is disabled", code="account_disabled"
        )
    valid_after = account.tokens_valid_after
    if valid_after is not None and issued_at is not None and issued_at < valid_after.timestamp():
        raise TokenRejected(
            "this session ended when the account's password was changed",
            code="token_revoked",
        )
    return _actor(account)
