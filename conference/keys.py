"""Signing keys for tokens: generated on first start, stored 0600, rotatable by ``kid``.

The key ring is a JSON file under ``<data-dir>/keys/``. Tokens carry the ``kid`` of
the key that signed them; old keys stay in the ring for verification after a
rotation until they are retired. Secrets are never logged: ``repr`` hides them.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["KeyRing", "SigningKey", "load_or_create_keyring", "write_private"]

log = logging.getLogger(__name__)

KEYRING_FILE = "signing-keys.json"


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    secret: bytes = field(repr=False)
    created: datetime


@dataclass(slots=True)
class KeyRing:
    """All keys that verify; ``current`` signs."""

    keys: dict[str, SigningKey]
    current_kid: str
    path: Path | None = None

    @property
    def current(self) -> SigningKey:
        return self.keys[self.current_kid]

    def get(self, kid: str) -> SigningKey | None:
        return self.keys.get(kid)

    @classmethod
    def generate(cls, path: Path | None = None) -> KeyRing:
        key = _new_key()
        return cls(keys={key.kid: key}, current_kid=key.kid, path=path)

    def rotate(self) -> SigningKey:
        """Add a new signing key and make it current; old keys keep verifying."""
        key = _new_key()
        self.keys[key.kid] = key
        self.current_kid = key.kid
        self.save()
        log.info("signing key rotated, new kid %s", key.kid)
        return key

    def retire(self, kid: str) -> None:
        """Remove a key: tokens it signed stop verifying."""
        if kid == self.current_kid:
            raise ValueError("cannot retire the current signing key; rotate first")
        del self.keys[kid]
        self.save()

    def save(self) -> None:
        if self.path is None:
            return
        data = {
            "current": self.current_kid,
            "keys": [
                {
                    "kid": k.kid,
                    "secret": base64.urlsafe_b64encode(k.secret).decode("ascii"),
                    "created": k.created.isoformat(),
                }
                for k in self.keys.values()
            ],
        }
        write_private(self.path, json.dumps(data, indent=2).encode("utf-8"))


def _new_key() -> SigningKey:
    return SigningKey(
        kid=secrets.token_hex(6), secret=secrets.token_bytes(32), created=datetime.now(UTC)
    )


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` atomically to ``path`` with mode 0600 from the first byte."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def load_or_create_keyring(data_dir: Path) -> KeyRing:
    """Load the key ring of ``data_dir``, creating it (0600) on first start."""
    path = data_dir / "keys" / KEYRING_FILE
    if not path.exists():
        ring = KeyRing.generate(path)
        ring.save()
        log.info("created signing key ring at %s (kid %s)", path, ring.current_kid)
        return ring
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("%s had mode %o; tightening to 600", path, mode)
        os.chmod(path, 0o600)
    data = json.loads(path.read_text(encoding="utf-8"))
    keys = {
        item["kid"]: SigningKey(
            kid=item["kid"],
            secret=base64.urlsafe_b64decode(item["secret"]),
            created=datetime.fromisoformat(item["created"]),
        )
        for item in data["keys"]
    }
    return KeyRing(keys=keys, current_kid=data["current"], path=path)
