"""Login, logout, token refresh, and the caller's own account; admins manage accounts."""

from __future__ import annotations

from aiohttp import web

from conference.accounts import (
    account_public,
    authenticate,
    create_account,
    list_accounts,
    reset_password,
    update_account,
)
from conference.errors import AuthenticationFailed, NotFound, PermissionDenied
from conference.models import AccountCreate, AccountPublic, AccountUpdate, PasswordReset, Role
from conference.revocation import revoke
from conference.throttle import LoginThrottle
from conference.timezone import utcnow
from conference.tokens import AUD_SESSION

from .api import PUBLIC, SIGNED_IN, Api, Call, QueryParam, json_ok, roles
from .appkeys import CONFIG, DATABASE, TOKENS
from .auth import SESSION_COOKIE, presented_tokens, same_origin
from .errors import ApiError, error_response
from .params import enum_list_param, row_id
from .schemas import AccountListOut, LoginOut, LoginRequest

__all__ = ["add_auth_routes"]


def add_auth_routes(api: Api, throttle: LoginThrottle) -> None:
    @api.route(
        "POST",
        "/api/auth/login",
        summary="Log in with a password",
        tag="auth",
        roles=PUBLIC,
        body=LoginRequest,
        response=LoginOut,
        errors=(401, 403, 429),
    )
    async def login(request: web.Request, call: Call) -> web.StreamResponse:
        # Login CSRF: another site must not sign a browser in (to an account of its
        # choosing). API clients send no Origin and pass.
        if not same_origin(request):
            raise PermissionDenied("cross-site request refused", code="cross_site")
        data: LoginRequest = call.body
        config, tokens = request.app[CONFIG], request.app[TOKENS]
        keys = (f"user:{data.username.lower()}", f"addr:{request.remote}")
        wait = throttle.retry_after(*keys)
        if wait > 0:
            response = error_response(
                429, "too_many_attempts", "too many wrong passwords; try again later"
            )
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        try:
            async with request.app[DATABASE].write() as session:
                actor, account = await authenticate(session, data.username, data.password)
        except AuthenticationFailed:
            throttle.failed(*keys)
            raise
        throttle.succeeded(keys[0])
        assert actor.account_id is not None
        role_names = sorted(r.value for r in actor.roles)
        access = tokens.issue_access(
            account_id=actor.account_id,
            username=actor.username,
            roles=role_names,
            ttl_seconds=config.api_token_seconds,
        )
        session_token = tokens.issue_access(
            account_id=actor.account_id,
            username=actor.username,
            roles=role_names,
            ttl_seconds=config.session_seconds,
            audience=AUD_SESSION,
        )
        response = json_ok(
            LoginOut(access_token=access, expires_in=config.api_token_seconds, account=account)
        )
        response.set_cookie(
            SESSION_COOKIE,
            session_token,
            max_age=config.session_seconds,
            httponly=True,
            samesite="Lax",
            secure=request.secure,
            path="/",
        )
        return response

    @api.route(
        "POST",
        "/api/auth/logout",
        summary="Log out (clears the session cookie)",
        tag="auth",
        roles=PUBLIC,
        status=204,
        errors=(403,),
    )
    async def logout(request: web.Request, call: Call) -> web.StreamResponse:
        # End the session cookie and the bearer token this request carries, on the
        # server too: a copied cookie must not outlive the logout. Another site may
        # not sign a browser out.
        if not same_origin(request):
            raise PermissionDenied("cross-site request refused", code="cross_site")
        presented = presented_tokens(request)
        if presented:
            async with request.app[DATABASE].write() as session:
                for claims in presented:
                    await revoke(session, claims, utcnow())
        response = web.Response(status=204)
        response.del_cookie(SESSION_COOKIE, path="/")
        return response

    @api.route(
        "POST",
        "/api/auth/token",
        summary="A fresh short-lived API token",
        tag="auth",
        roles=SIGNED_IN,
        response=LoginOut,
    )
    async def refresh(request: web.Request, call: Call) -> web.StreamResponse:
        config, tokens, actor = request.app[CONFIG], request.app[TOKENS], call.who
        assert actor.account_id is not None
        access = tokens.issue_access(
            account_id=actor.account_id,
            username=actor.username,
            roles=sorted(r.value for r in actor.roles),
            ttl_seconds=config.api_token_seconds,
        )
        async with request.app[DATABASE].read() as session:
            account = await account_public(session, actor.account_id)
        return json_ok(
            LoginOut(access_token=access, expires_in=config.api_token_seconds, account=account)
        )

    @api.route(
        "GET",
        "/api/me",
        summary="The account behind this request",
        tag="auth",
        roles=SIGNED_IN,
        response=AccountPublic,
    )
    async def me(request: web.Request, call: Call) -> web.StreamResponse:
        async with request.app[DATABASE].read() as session:
            assert call.who.account_id is not None
            account = await account_public(session, call.who.account_id)
        return json_ok(account)

    add_account_routes(api)


def _account_id(request: web.Request) -> int:
    """The path's account id; one no row can have is an unknown account (404)."""
    account_id = row_id(request.match_info["account_id"])
    if account_id is None:
        raise NotFound("no such account", code="unknown_account")
    return account_id


def add_account_routes(api: Api) -> None:
    """Admins manage accounts: list, create, change (roles, unit, name, active), reset
    a password. Every change is audited in the same transaction."""

    @api.route(
        "GET",
        "/api/accounts",
        summary="List accounts",
        tag="accounts",
        roles=roles(Role.ADMIN),
        response=AccountListOut,
        query=[QueryParam("role", "only accounts holding this role")],
    )
    async def accounts(request: web.Request, call: Call) -> web.StreamResponse:
        wanted = enum_list_param(request, "role", Role)
        if len(wanted) > 1:
            raise ApiError(422, "invalid_field", "role: give one role", field="role")
        async with request.app[DATABASE].read() as session:
            items = await list_accounts(session, role=wanted[0] if wanted else None)
        return json_ok(AccountListOut(items=items))

    @api.route(
        "POST",
        "/api/accounts",
        summary="Create an account",
        tag="accounts",
        roles=roles(Role.ADMIN),
        body=AccountCreate,
        response=AccountPublic,
        status=201,
        errors=(404, 409, 422),
    )
    async def add_account(request: web.Request, call: Call) -> web.StreamResponse:
        async with request.app[DATABASE].write() as session:
            account = await create_account(session, call.who, call.body)
        return json_ok(account, status=201)

    @api.route(
        "PATCH",
        "/api/accounts/{account_id}",
        summary="Change an account's display name, roles, unit or active flag",
        tag="accounts",
        roles=roles(Role.ADMIN),
        body=AccountUpdate,
        response=AccountPublic,
        errors=(404, 409, 422),
    )
    async def change_account(request: web.Request, call: Call) -> web.StreamResponse:
        account_id = _account_id(request)
        async with request.app[DATABASE].write() as session:
            account = await update_account(session, call.who, account_id, call.body)
        return json_ok(account)

    @api.route(
        "POST",
        "/api/accounts/{account_id}/password",
        summary="Set a new password for an account",
        tag="accounts",
        roles=roles(Role.ADMIN),
        body=PasswordReset,
        status=204,
        errors=(404, 422),
    )
    async def account_password(request: web.Request, call: Call) -> web.StreamResponse:
        account_id = _account_id(request)
        data: PasswordReset = call.body
        async with request.app[DATABASE].write() as session:
            await reset_password(session, call.who, account_id, data.password)
        return web.Response(status=204)
