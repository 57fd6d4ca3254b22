"""Signed tokens (JWT, HS256, ``kid`` header): invitation links, API bearers, sessions.

Every refusal has its own code so an operator reading a log, or a browser
showing a message, can tell an expired link from a revoked one:

=========================  ==================================================
code                       meaning
=========================  ==================================================
``token_malformed``        not a JWT, or a claim has the wrong shape
``token_bad_algorithm``    ``alg`` is not HS256 (``none`` included)
``token_unknown_key``      no ``kid``, or a ``kid`` this server does not hold
``token_bad_signature``    the signature does not match (tampered)
``token_expired``          past ``exp``
``token_not_yet_valid``    before ``nbf`` (the lobby is not open yet)
``token_wrong_audience``   a token made for another use
``token_wrong_issuer``     a token made by another issuer
``token_missing_claim``    a required claim is absent
``token_wrong_meeting``    a join token for another meeting
``token_revoked``          the invitation was revoked or re-issued
=========================  ==================================================
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jwt

from .errors import TokenRejected
from .keys import KeyRing

__all__ = [
    "ALGORITHM",
    "AUD_API",
    "AUD_JOIN",
    "AUD_SESSION",
    "REJECTION_CODES",
    "AccessClaims",
    "JoinClaims",
    "TokenService",
    "new_token_id",
]

ALGORITHM = "HS256"
AUD_JOIN = "hoinghi-join"
AUD_API = "hoinghi-api"
AUD_SESSION = "hoinghi-session"
# Clocks of room PCs drift; a few seconds of leeway avoids refusing honest clients.
LEEWAY_SECONDS = 5

REJECTION_CODES = frozenset(
    {
        "token_malformed",
        "token_bad_algorithm",
        "token_unknown_key",
        "token_bad_signature",
        "token_expired",
        "token_not_yet_valid",
        "token_wrong_audience",
        "token_wrong_issuer",
        "token_missing_claim",
        "token_wrong_meeting",
        "token_revoked",
    }
)

_COMMON_CLAIMS = ["iss", "aud", "sub", "exp", "iat", "jti"]
_JOIN_CLAIMS = ["iss", "aud", "sub", "exp", "nbf", "iat", "jti", "meeting_id", "role"]
_ACCESS_CLAIMS = ["iss", "aud", "sub", "exp", "iat", "jti", "name", "roles"]


def new_token_id() -> str:
    return secrets.token_urlsafe(16)


@dataclass(frozen=True, slots=True)
class JoinClaims:
    meeting_id: int
    unit_code: str
    role: str
    jti: str
    not_before: int
    expires: int


@dataclass(frozen=True, slots=True)
class AccessClaims:
    account_id: int
    username: str
    roles: tuple[str, ...]
    jti: str
    expires: int
    issued_at: float = 0.0  # when it was issued ("ts", else "iat"), seconds since the epoch


def _reject(code: str, message: str) -> TokenRejected:
    return TokenRejected(message, code=code)


class TokenService:
    """Issues and verifies tokens with the keys of a :class:`KeyRing`."""

    def __init__(self, keyring: KeyRing, issuer: str) -> None:
        self.keyring = keyring
        self.issuer = issuer

    def _encode(self, claims: dict[str, Any]) -> str:
        key = self.keyring.current
        return jwt.encode(claims, key.secret, algorithm=ALGORITHM, headers={"kid": key.kid})

    def issue_join(
        self,
        *,
        meeting_id: int,
        unit_code: str,
        role: str,
        jti: str,
        not_before: datetime,
        expires: datetime,
    ) -> str:
        return self._encode(
            {
                "iss": self.issuer,
                "aud": AUD_JOIN,
                "sub": unit_code,
                "meeting_id": meeting_id,
                "role": role,
                "jti": jti,
                "iat": int(time.time()),
                "nbf": int(not_before.timestamp()),
                "exp": int(expires.timestamp()),
            }
        )

    def issue_access(
        self,
        *,
        account_id: int,
        username: str,
        roles: list[str],
        ttl_seconds: int,
        audience: str = AUD_API,
    ) -> str:
        moment = time.time()
        now = int(moment)
        return self._encode(
            {
                "iss": self.issuer,
                "aud": audience,
                "sub": str(account_id),
                "name": username,
                "roles": list(roles),
                "jti": new_token_id(),
                "iat": now,
                # iat to the microsecond: a password set in the same second as a
                # login must still end the session issued just before it.
                "ts": round(moment, 6),
                "exp": now + ttl_seconds,
            }
        )

    def csrf_token(self, session_id: str) -> str:
        """The CSRF token of the session whose ``jti`` is ``session_id``.

        Pages render it and their scripts send it back (``X-CSRF-Token``); a page of
        another site can neither read it nor compute it. An HMAC of the id under the
        current signing key, so nothing is stored and it ends with its session.
        """
        return _csrf_mac(self.keyring.current.secret, session_id)

    def verify_csrf(self, session_id: str, presented: str) -> bool:
        """Whether ``presented`` is the CSRF token of ``session_id`` under any key
        that still verifies (a page loaded before a key rotation keeps working)."""
        if not presented or len(presented) > 100:
            return False
        return any(
            hmac.compare_digest(_csrf_mac(key.secret, session_id), presented)
            for key in self.keyring.keys.values()
        )

    def _decode(self, token: str, audience: str, required: list[str]) -> dict[str, Any]:
        header = _unverified_header(token)
        alg = header.get("alg")
        if alg != ALGORITHM:
            raise _reject("token_bad_algorithm", f"algorithm {alg!r} is not accepted")
        kid = header.get("kid")
        key = self.keyring.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise _reject("token_unknown_key", "the token was signed with an unknown key")
        try:
            # Audience and issuer are checked before the claims of one token kind,
            # so a token of another kind is refused as such, not as incomplete.
            claims: dict[str, Any] = jwt.decode(
                token,
                key.secret,
                algorithms=[ALGORITHM],
                audience=audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": _COMMON_CLAIMS},
            )
        except jwt.ExpiredSignatureError as e:
            raise _reject("token_expired", "the token has expired") from e
        except jwt.ImmatureSignatureError as e:
            raise _reject("token_not_yet_valid", "the token is not valid yet") from e
        except jwt.InvalidAudienceError as e:
            raise _reject("token_wrong_audience", "the token is not meant for this use") from e
        except jwt.InvalidIssuerError as e:
            raise _reject("token_wrong_issuer", "the token was issued by someone else") from e
        except jwt.InvalidSignatureError as e:
            raise _reject("token_bad_signature", "the token signature does not match") from e
        except jwt.MissingRequiredClaimError as e:
            raise _reject("token_missing_claim", f"the token lacks the {e.claim!r} claim") from e
        except jwt.InvalidTokenError as e:
            raise _reject("token_malformed", f"the token is malformed: {e}") from e
        for claim in required:
            if claim not in claims:
                raise _reject("token_missing_claim", f"the token lacks the {claim!r} claim")
        return claims

    def verify_join(self, token: str, *, meeting_id: int | None = None) -> JoinClaims:
        """Check signature, audience, issuer and the time window of a join token.

        Revocation needs the database; ``invitations.verify_join_token`` adds it.
        """
        claims = self._decode(token, AUD_JOIN, _JOIN_CLAIMS)
        try:
            parsed = JoinClaims(
                meeting_id=_int(claims["meeting_id"]),
                unit_code=_str(claims["sub"]),
                role=_str(claims["role"]),
                jti=_str(claims["jti"]),
                not_before=_int(claims["nbf"]),
                expires=_int(claims["exp"]),
            )
        except (TypeError, ValueError) as e:
            raise _reject("token_malformed", "a claim of the token has the wrong type") from e
        if meeting_id is not None and parsed.meeting_id != meeting_id:
            raise _reject("token_wrong_meeting", "the token is for another meeting")
        return parsed

    def verify_access(self, token: str, *, audience: str = AUD_API) -> AccessClaims:
        claims = self._decode(token, audience, _ACCESS_CLAIMS)
        try:
            roles = claims["roles"]
            if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
                raise TypeError("roles")
            return AccessClaims(
                account_id=int(_str(claims["sub"])),
                username=_str(claims["name"]),
                roles=tuple(roles),
                jti=_str(claims["jti"]),
                expires=_int(claims["exp"]),
                issued_at=_issued_at(claims),
            )
        except (TypeError, ValueError) as e:
            raise _reject("token_malformed", "a claim of the token has the wrong type") from e


def _csrf_mac(secret: bytes, session_id: str) -> str:
    digest = hmac.new(secret, b"csrf\x00" + session_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header (RFC 7515 §4), read without trusting it, to pick the key."""
    if not isinstance(token, str) or token.count(".") != 2:
        raise _reject("token_malformed", "the token is not a well-formed JWT")
    segment = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, UnicodeDecodeError) as e:
        raise _reject("token_malformed", "the token header is not valid") from e
    if not isinstance(header, dict):
        raise _reject("token_malformed", "the token header is not an object")
    return header


def _issued_at(claims: dict[str, Any]) -> float:
    """The precise issue time ("ts") of tokens issued since it exists, else "iat"."""
    ts = claims.get("ts")
    if isinstance(ts, int | float) and not isinstance(ts, bool):
        return float(ts)
    return float(_int(claims["iat"]))


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(value)
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(value)
    return value
