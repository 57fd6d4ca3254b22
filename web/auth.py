"""Who is calling: a bearer token (API clients) or the session cookie (pages).

Cross-site request forgery: a cookie-authenticated request that changes things
must pass two checks, either of which alone would stop a forged request:

1. it comes from our own origin (the ``Origin`` header, or
   ``Sec-Fetch-Site: same-origin``), else 403 ``cross_site``;
2. it carries the session's CSRF token in ``X-CSRF-Token`` (a page renders it
   in ``<meta name="csrf-token">`` and in a hidden field of every form;
   ``web/static/api.js`` sends it), else 403 ``csrf_failed``.

The token is an HMAC of the session's id (:meth:`TokenService.csrf_token`), so it
is never stored and ends with its session. Bearer tokens need neither check: a
browser never sends them on its own.
"""

from __future__ import annotations

from aiohttp import web

from conference.accounts import actor_for
from conference.actors import Actor
from conference.errors import AuthenticationFailed, PermissionDenied, TokenRejected
from conference.revocation import is_revoked
from conference.tokens import AUD_API, AUD_SESSION, AccessClaims

from .appkeys import DATABASE, TOKENS

__all__ = [
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "authenticate",
    "csrf_token_for",
    "presented_tokens",
    "same_origin",
]

SESSION_COOKIE = "hoinghi_session"
CSRF_HEADER = "X-CSRF-Token"
# The session an authenticated request came with (set by authenticate), for pages
# that render its CSRF token.
_SESSION_CLAIMS = web.RequestKey("session_claims", AccessClaims)
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return request.headers.get("Sec-Fetch-Site", "same-origin") in {"same-origin", "none"}
    return origin == f"{request.scheme}://{request.host}"


async def authenticate(request: web.Request) -> Actor:
    """The actor behind ``request``; raises :class:`AuthenticationFailed` if none."""
    tokens = request.app[TOKENS]
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationFailed(
                "use 'Authorization: Bearer <token>'", code="bad_authorization"
            )
        claims = tokens.verify_access(token.strip(), audience=AUD_API)
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            raise AuthenticationFailed("log in first")
        claims = tokens.verify_access(cookie, audience=AUD_SESSION)
        if request.method not in _SAFE_METHODS:
            if not same_origin(request):
                raise PermissionDenied("cross-site request refused", code="cross_site")
            if not tokens.verify_csrf(claims.jti, request.headers.get(CSRF_HEADER, "")):
                raise PermissionDenied(
                    "missing or wrong CSRF token; reload the page", code="csrf_failed"
                )
        request[_SESSION_CLAIMS] = claims
    async with request.app[DATABASE].read() as session:
        if await is_revoked(session, claims.jti):
            raise TokenRejected("this token was ended by a logout", code="token_revoked")
        return await actor_for(session, claims.account_id, issued_at=claims.issued_at)


def csrf_token_for(request: web.Request) -> str:
    """The CSRF token of the session :func:`authenticate` found on ``request``; ""
    when it was not cookie-authenticated (a page for nobody signed in)."""
    claims = request.get(_SESSION_CLAIMS)
    return request.app[TOKENS].csrf_token(claims.jti) if claims is not None else ""


def presented_tokens(request: web.Request) -> list[AccessClaims]:
    """The valid access and session tokens a request carries (for logout)."""
    tokens = request.app[TOKENS]
    found: list[AccessClaims] = []
    scheme, _, bearer = request.headers.get("Authorization", "").partition(" ")
    candidates = [(bearer.strip(), AUD_API)] if scheme.lower() == "bearer" else []
    candidates.append((request.cookies.get(SESSION_COOKIE, ""), AUD_SESSION))
    for token, audience in candidates:
        if not token:
            continue
        try:
            found.append(tokens.verify_access(token, audience=audience))
        except TokenRejected:
            continue
    return found
