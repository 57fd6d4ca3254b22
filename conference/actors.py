"""Who is acting: the authenticated account behind a request, and role checks."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .errors import PermissionDenied
from .models import Role

__all__ = ["SYSTEM", "Actor", "require_role"]


@dataclass(frozen=True, slots=True)
class Actor:
    account_id: int | None
    username: str
    roles: frozenset[Role]
    unit_id: int | None = None

    def has(self, *roles: Role) -> bool:
        return bool(self.roles.intersection(roles))

    @property
    def sees_all_meetings(self) -> bool:
        return self.has(Role.ADMIN, Role.SECRETARIAT, Role.CLERK)


# Changes made by the server itself (migrations, demo seeding, the CLI).
SYSTEM = Actor(account_id=None, username="system", roles=frozenset(Role))


def require_role(actor: Actor, roles: Iterable[Role]) -> None:
    """Raise :class:`PermissionDenied` unless ``actor`` holds one of ``roles``."""
    wanted = frozenset(roles)
    if not actor.roles & wanted:
        names = ", ".join(sorted(r.value for r in wanted))
        raise PermissionDenied(f"this needs one of the roles: {names}")
