"""TokenService (conference/tokens.py) and KeyRing (conference/keys.py).

Every refusal is checked by its exact ``code``: a token refused for the wrong
reason is a bug, because operators and browsers act on the code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest

from conference.errors import TokenRejected
from conference.keys import KEYRING_FILE, KeyRing, SigningKey, load_or_create_keyring
from conference.tokens import (
    AUD_API,
    AUD_JOIN,
    AUD_SESSION,
    REJECTION_CODES,
    AccessClaims,
    JoinClaims,
    TokenService,
)

ISSUER = "hoinghi"
OTHER_SECRET = b"another-secret-of-thirty-two-by!"


# --- helpers -------------------------------------------------------------------


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing.generate()


@pytest.fixture
def tokens(ring: KeyRing) -> TokenService:
    return TokenService(ring, ISSUER)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _now() -> int:
    return int(time.time())


def join_claims(**overrides: Any) -> dict[str, Any]:
    """The claims ``issue_join`` would put in a valid join token, for hand-made tokens."""
    now = _now()
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUD_JOIN,
        "sub": "QB-VP",
        "meeting_id": 7,
        "role": "participant",
        "jti": "jti-123",
        "iat": now,
        "nbf": now - 60,
        "exp": now + 3600,
    }
    claims.update(overrides)
    return claims


def access_claims(**overrides: Any) -> dict[str, Any]:
    now = _now()
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUD_API,
        "sub": "42",
        "name": "thuky",
        "roles": ["secretariat"],
        "jti": "jti-456",
        "iat": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return claims


def sign(claims: dict[str, Any], key: SigningKey, **kwargs: Any) -> str:
    """Sign ``claims`` with ``key`` (HS256, its kid) unless told otherwise."""
    algorithm = kwargs.pop("algorithm", "HS256")
    secret = kwargs.pop("secret", key.secret)
    headers = kwargs.pop("headers", {"kid": key.kid})
    assert not kwargs
    return jwt.encode(claims, secret, algorithm=algorithm, headers=headers)


def sign_raw(header: dict[str, Any], payload: bytes, secret: bytes) -> str:
    """HS256 over any header and payload bytes, bypassing PyJWT's own checks."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(payload)}"
    mac = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def issue_join(tokens: TokenService, **overrides: Any) -> str:
    now = datetime.now(UTC)
    args: dict[str, Any] = {
        "meeting_id": 7,
        "unit_code": "QB-VP",
        "role": "participant",
        "jti": "jti-123",
        "not_before": now - timedelta(minutes=30),
        "expires": now + timedelta(hours=2),
    }
    args.update(overrides)
    return tokens.issue_join(**args)


def issue_access(tokens: TokenService, **overrides: Any) -> str:
    args: dict[str, Any] = {
        "account_id": 42,
        "username": "thuky",
        "roles": ["secretariat"],
        "ttl_seconds": 600,
    }
    args.update(overrides)
    return tokens.issue_access(**args)


def refusal(call: Any, *args: Any, **kwargs: Any) -> str:
    """The ``code`` of the TokenRejected that ``call`` raises."""
    with pytest.raises(TokenRejected) as info:
        call(*args, **kwargs)
    code = info.value.code
    assert code in REJECTION_CODES, code
    assert info.value.message
    return code


# --- happy paths -----------------------------------------------------------------


def test_join_token_round_trips_its_claims(tokens: TokenService) -> None:
    not_before = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    expires = not_before + timedelta(hours=3)
    token = tokens.issue_join(
        meeting_id=12,
        unit_code="QB-BOTRACH-TANTRACH",
        role="chair",
        jti="abc-DEF_123",
        not_before=not_before,
        expires=expires,
    )
    claims = tokens.verify_join(token, meeting_id=12)
    assert claims == JoinClaims(
        meeting_id=12,
        unit_code="QB-BOTRACH-TANTRACH",
        role="chair",
        jti="abc-DEF_123",
        not_before=int(not_before.timestamp()),
        expires=int(expires.timestamp()),
    )


def test_join_token_verifies_without_a_meeting_to_compare(tokens: TokenService) -> None:
    assert tokens.verify_join(issue_join(tokens, meeting_id=99)).meeting_id == 99


def test_access_token_round_trips_a_vietnamese_username(tokens: TokenService) -> None:
    username = "Nguyễn Thị Hằng – Đồng Hới 🎥"
    before = _now()
    token = tokens.issue_access(
        account_id=3, username=username, roles=["chair", "clerk"], ttl_seconds=900
    )
    claims = tokens.verify_access(token)
    assert isinstance(claims, AccessClaims)
    assert claims.account_id == 3
    assert claims.username == username
    assert claims.username.encode("utf-8") == username.encode("utf-8")
    assert claims.roles == ("chair", "clerk")
    assert claims.jti
    assert before + 900 <= claims.expires <= _now() + 900


def test_each_access_token_gets_its_own_jti(tokens: TokenService) -> None:
    first = tokens.verify_access(issue_access(tokens))
    second = tokens.verify_access(issue_access(tokens))
    assert first.jti != second.jti


def test_session_token_verifies_only_with_the_session_audience(tokens: TokenService) -> None:
    token = issue_access(tokens, audience=AUD_SESSION)
    assert tokens.verify_access(token, audience=AUD_SESSION).username == "thuky"
    assert refusal(tokens.verify_access, token) == "token_wrong_audience"


def test_api_token_is_refused_as_a_session_token(tokens: TokenService) -> None:
    token = issue_access(tokens)
    assert refusal(tokens.verify_access, token, audience=AUD_SESSION) == "token_wrong_audience"


def test_issued_tokens_are_hs256_with_the_current_kid(ring: KeyRing, tokens: TokenService) -> None:
    for token in (issue_join(tokens), issue_access(tokens)):
        header = jwt.get_unverified_header(token)
        assert header["alg"] == "HS256"
        assert header["kid"] == ring.current_kid


def test_hand_signed_token_with_the_right_key_is_accepted(
    ring: KeyRing, tokens: TokenService
) -> None:
    """The crafted tokens below differ from this one in one thing only."""
    assert tokens.verify_join(sign(join_claims(), ring.current)).meeting_id == 7
    assert tokens.verify_access(sign(access_claims(), ring.current)).account_id == 42


# --- token_malformed -------------------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    ["", "not-a-jwt", "a.b.c", "eyJhbGciOiJIUzI1NiJ9", "....", "Đây không phải là token"],
)
def test_garbage_is_refused_with_token_malformed(tokens: TokenService, garbage: str) -> None:
    assert refusal(tokens.verify_join, garbage) == "token_malformed"
    assert refusal(tokens.verify_access, garbage) == "token_malformed"


def test_header_that_is_not_a_json_object_is_token_malformed(tokens: TokenService) -> None:
    token = f"{_b64(b'[1, 2]')}.{_b64(json.dumps(join_claims()).encode())}.c2ln"
    assert refusal(tokens.verify_join, token) == "token_malformed"


def test_signed_payload_that_is_not_json_is_token_malformed(
    ring: KeyRing, tokens: TokenService
) -> None:
    header = {"alg": "HS256", "typ": "JWT", "kid": ring.current_kid}
    token = sign_raw(header, b"not json at all", ring.current.secret)
    assert refusal(tokens.verify_join, token) == "token_malformed"
    assert refusal(tokens.verify_access, token) == "token_malformed"


def test_signed_payload_that_is_a_json_list_is_token_malformed(
    ring: KeyRing, tokens: TokenService
) -> None:
    header = {"alg": "HS256", "typ": "JWT", "kid": ring.current_kid}
    token = sign_raw(header, b'["meeting_id", 7]', ring.current.secret)
    assert refusal(tokens.verify_join, token) == "token_malformed"


def test_unsupported_crit_header_is_token_malformed(ring: KeyRing, tokens: TokenService) -> None:
    """PyJWT refuses the header itself; that must surface as a refusal, not a raw jwt error."""
    header = {"alg": "HS256", "typ": "JWT", "kid": ring.current_kid, "crit": ["x-unknown"]}
    token = sign_raw(header, json.dumps(join_claims()).encode(), ring.current.secret)
    assert refusal(tokens.verify_join, token) == "token_malformed"


def test_meeting_id_as_a_string_is_token_malformed(ring: KeyRing, tokens: TokenService) -> None:
    token = sign(join_claims(meeting_id="7"), ring.current)
    assert refusal(tokens.verify_join, token) == "token_malformed"
    assert refusal(tokens.verify_join, token, meeting_id=7) == "token_malformed"


def test_meeting_id_as_a_bool_is_token_malformed(ring: KeyRing, tokens: TokenService) -> None:
    token = sign(join_claims(meeting_id=True), ring.current)
    assert refusal(tokens.verify_join, token, meeting_id=1) == "token_malformed"


def test_role_of_wrong_type_is_token_malformed(ring: KeyRing, tokens: TokenService) -> None:
    token = sign(join_claims(role=["chair"]), ring.current)
    assert refusal(tokens.verify_join, token) == "token_malformed"


def test_subject_that_is_not_a_string_is_token_malformed(
    ring: KeyRing, tokens: TokenService
) -> None:
    token = sign(access_claims(sub=42), ring.current)
    assert refusal(tokens.verify_access, token) == "token_malformed"


def test_non_numeric_account_subject_is_token_malformed(
    ring: KeyRing, tokens: TokenService
) -> None:
    token = sign(access_claims(sub="thuky"), ring.current)
    assert refusal(tokens.verify_access, token) == "token_malformed"


@pytest.mark.parametrize("roles", ["secretariat", [1, 2], {"admin": True}])
def test_roles_that_are_not_a_list_of_strings_are_token_malformed(
    ring: KeyRing, tokens: TokenService, roles: Any
) -> None:
    token = sign(access_claims(roles=roles), ring.current)
    assert refusal(tokens.verify_access, token) == "token_malformed"


def test_exp_that_is_not_a_number_is_token_malformed(ring: KeyRing, tokens: TokenService) -> None:
    token = sign(join_claims(exp="tomorrow"), ring.current)
    assert refusal(tokens.verify_join, token) == "token_malformed"


# --- token_bad_algorithm ---------------------------------------------------------


def test_alg_none_token_is_refused_with_token_bad_algorithm(
    ring: KeyRing, tokens: TokenService
) -> None:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": ring.current_kid}).encode())
    payload = _b64(json.dumps(join_claims()).encode())
    token = f"{header}.{payload}."
    assert refusal(tokens.verify_join, token) == "token_bad_algorithm"


def test_alg_none_access_token_is_refused_with_token_bad_algorithm(
    ring: KeyRing, tokens: TokenService
) -> None:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": ring.current_kid}).encode())
    payload = _b64(json.dumps(access_claims(roles=["admin"])).encode())
    assert refusal(tokens.verify_access, f"{header}.{payload}.") == "token_bad_algorithm"


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_hs512_signed_with_the_right_secret_is_token_bad_algorithm(
    ring: KeyRing, tokens: TokenService
) -> None:
    token = sign(join_claims(), ring.current, algorithm="HS512")
    assert jwt.get_unverified_header(token)["kid"] == ring.current_kid
    assert refusal(tokens.verify_join, token) == "token_bad_algorithm"


def test_header_without_alg_is_token_bad_algorithm(ring: KeyRing, tokens: TokenService) -> None:
    good = sign(join_claims(), ring.current)
    _, payload, signature = good.split(".")
    header = _b64(json.dumps({"typ": "JWT", "kid": ring.current_kid}).encode())
    assert refusal(tokens.verify_join, f"{header}.{payload}.{signature}") == "token_bad_algorithm"


# --- token_unknown_key -----------------------------------------------------------


def test_kid_not_in_the_ring_is_token_unknown_key(ring: KeyRing, tokens: TokenService) -> None:
    token = sign(join_claims(), ring.current, headers={"kid": "0badc0ffee00"})
    assert refusal(tokens.verify_join, token) == "token_unknown_key"


def test_token_without_kid_is_token_unknown_key(ring: KeyRing, tokens: TokenService) -> None:
    token = sign(join_claims(), ring.current, headers={})
    assert "kid" not in jwt.get_unverified_header(token)
    assert refusal(tokens.verify_join, token) == "token_unknown_key"
    access = sign(access_claims(), ring.current, headers={})
    assert refusal(tokens.verify_access, access) == "token_unknown_key"


@pytest.mark.parametrize("kid", [12345, None, ["k"]])
def test_kid_that_is_not_a_string_is_token_unknown_key(
    ring: KeyRing, tokens: TokenService, kid: Any
) -> None:
    """tokens.py maps a non-string kid to "no key"; it must not escape as a raw jwt error."""
    header = {"alg": "HS256", "typ": "JWT", "kid": kid}
    token = sign_raw(header, json.dumps(join_claims()).encode(), ring.current.secret)
    assert refusal(tokens.verify_join, token) == "token_unknown_key"


def test_token_of_another_keyring_is_token_unknown_key(tokens: TokenService) -> None:
    other = TokenService(KeyRing.generate(), ISSUER)
    assert refusal(tokens.verify_join, issue_join(other)) == "token_unknown_key"
    assert refusal(tokens.verify_access, issue_access(other)) == "token_unknown_key"


# --- token_bad_signature ---------------------------------------------------------


def test_tampered_payload_is_token_bad_signature(ring: KeyRing, tokens: TokenService) -> None:
    token = issue_join(tokens, meeting_id=7)
    header, payload, signature = token.split(".")
    claims = json.loads(_unb64(payload))
    claims["meeting_id"] = 8
    forged = f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"
    # Still a well-formed token: only the signature gives it away.
    assert jwt.decode(forged, options={"verify_signature": False})["meeting_id"] == 8
    assert refusal(tokens.verify_join, forged) == "token_bad_signature"
    assert refusal(tokens.verify_join, forged, meeting_id=8) == "token_bad_signature"


def test_tampered_roles_in_access_token_is_token_bad_signature(tokens: TokenService) -> None:
    token = issue_access(tokens, roles=["clerk"])
    header, payload, signature = token.split(".")
    claims = json.loads(_unb64(payload))
    claims["roles"] = ["admin"]
    forged = f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"
    assert refusal(tokens.verify_access, forged) == "token_bad_signature"


def test_other_secret_with_the_same_kid_is_token_bad_signature(
    ring: KeyRing, tokens: TokenService
) -> None:
    token = sign(join_claims(), ring.current, secret=OTHER_SECRET)
    assert jwt.get_unverified_header(token)["kid"] == ring.current_kid
    assert refusal(tokens.verify_join, token) == "token_bad_signature"


def test_altered_signature_is_token_bad_signature(tokens: TokenService) -> None:
    token = issue_access(tokens)
    header, payload, signature = token.split(".")
    raw = bytearray(_unb64(signature))
    raw[0] ^= 0x01
    forged = f"{header}.{payload}.{_b64(bytes(raw))}"
    assert refusal(tokens.verify_access, forged) == "token_bad_signature"


def test_stripped_signature_is_token_bad_signature(tokens: TokenService) -> None:
    header, payload, _ = issue_join(tokens).split(".")
    assert refusal(tokens.verify_join, f"{header}.{payload}.") == "token_bad_signature"


# --- token_expired / token_not_yet_valid -----------------------------------------


def test_expired_join_token_is_refused_with_token_expired(tokens: TokenService) -> None:
    now = datetime.now(UTC)
    token = issue_join(
        tokens, not_before=now - timedelta(hours=3), expires=now - timedelta(seconds=60)
    )
    assert refusal(tokens.verify_join, token) == "token_expired"


def test_expired_access_token_is_refused_with_token_expired(
    ring: KeyRing, tokens: TokenService
) -> None:
    now = _now()
    token = sign(access_claims(iat=now - 1000, exp=now - 30), ring.current)
    assert refusal(tokens.verify_access, token) == "token_expired"


def test_join_token_expired_within_the_leeway_is_still_accepted(tokens: TokenService) -> None:
    now = datetime.now(UTC)
    token = issue_join(
        tokens, not_before=now - timedelta(hours=1), expires=now - timedelta(seconds=2)
    )
    assert tokens.verify_join(token).meeting_id == 7


def test_join_token_before_its_lobby_opens_is_token_not_yet_valid(tokens: TokenService) -> None:
    now = datetime.now(UTC)
    token = issue_join(
        tokens, not_before=now + timedelta(seconds=60), expires=now + timedelta(hours=2)
    )
    assert refusal(tokens.verify_join, token) == "token_not_yet_valid"


def test_join_token_not_yet_valid_within_the_leeway_is_accepted(tokens: TokenService) -> None:
    now = datetime.now(UTC)
    token = issue_join(
        tokens, not_before=now + timedelta(seconds=2), expires=now + timedelta(hours=2)
    )
    assert tokens.verify_join(token).meeting_id == 7


# --- token_wrong_audience --------------------------------------------------------


def test_api_access_token_given_to_verify_join_is_token_wrong_audience(
    tokens: TokenService,
) -> None:
    assert refusal(tokens.verify_join, issue_access(tokens)) == "token_wrong_audience"


def test_join_token_given_to_verify_access_is_token_wrong_audience(tokens: TokenService) -> None:
    assert refusal(tokens.verify_access, issue_join(tokens)) == "token_wrong_audience"


def test_join_shaped_token_with_api_audience_is_token_wrong_audience(
    ring: KeyRing, tokens: TokenService
) -> None:
    """All join claims present, only ``aud`` differs."""
    token = sign(join_claims(aud=AUD_API), ring.current)
    assert refusal(tokens.verify_join, token) == "token_wrong_audience"


# --- token_wrong_issuer ----------------------------------------------------------


def test_join_token_of_another_issuer_is_token_wrong_issuer(ring: KeyRing) -> None:
    ours = TokenService(ring, "hoinghi")
    theirs = TokenService(ring, "hoinghi-ha-tinh")
    assert refusal(ours.verify_join, issue_join(theirs)) == "token_wrong_issuer"
    assert refusal(theirs.verify_join, issue_join(ours)) == "token_wrong_issuer"


def test_access_token_of_another_issuer_is_token_wrong_issuer(ring: KeyRing) -> None:
    ours = TokenService(ring, "hoinghi")
    theirs = TokenService(ring, "somebody-else")
    assert refusal(ours.verify_access, issue_access(theirs)) == "token_wrong_issuer"


# --- token_missing_claim ---------------------------------------------------------


@pytest.mark.parametrize(
    "claim", ["iss", "aud", "sub", "exp", "nbf", "iat", "jti", "meeting_id", "role"]
)
def test_join_token_without_a_required_claim_is_token_missing_claim(
    ring: KeyRing, tokens: TokenService, claim: str
) -> None:
    claims = join_claims()
    del claims[claim]
    assert refusal(tokens.verify_join, sign(claims, ring.current)) == "token_missing_claim"


@pytest.mark.parametrize("claim", ["iss", "aud", "sub", "exp", "iat", "jti", "name", "roles"])
def test_access_token_without_a_required_claim_is_token_missing_claim(
    ring: KeyRing, tokens: TokenService, claim: str
) -> None:
    claims = access_claims()
    del claims[claim]
    assert refusal(tokens.verify_access, sign(claims, ring.current)) == "token_missing_claim"


def test_missing_claim_message_names_the_claim(ring: KeyRing, tokens: TokenService) -> None:
    claims = join_claims()
    del claims["role"]
    with pytest.raises(TokenRejected) as info:
        tokens.verify_join(sign(claims, ring.current))
    assert info.value.code == "token_missing_claim"
    assert "role" in info.value.message


# --- token_wrong_meeting ---------------------------------------------------------


def test_join_token_for_another_meeting_is_token_wrong_meeting(tokens: TokenService) -> None:
    token = issue_join(tokens, meeting_id=7)
    assert refusal(tokens.verify_join, token, meeting_id=8) == "token_wrong_meeting"
    assert tokens.verify_join(token, meeting_id=7).meeting_id == 7


# --- key rotation ----------------------------------------------------------------


def test_token_signed_before_rotation_still_verifies_after(
    ring: KeyRing, tokens: TokenService
) -> None:
    old_kid = ring.current_kid
    join = issue_join(tokens)
    access = issue_access(tokens)
    new_key = ring.rotate()
    assert new_key.kid != old_kid
    assert ring.current_kid == new_key.kid
    assert set(ring.keys) == {old_kid, new_key.kid}
    assert tokens.verify_join(join).meeting_id == 7
    assert tokens.verify_access(access).account_id == 42


def test_tokens_issued_after_rotation_carry_the_new_kid(
    ring: KeyRing, tokens: TokenService
) -> None:
    new_key = ring.rotate()
    token = issue_join(tokens)
    assert jwt.get_unverified_header(token)["kid"] == new_key.kid
    # Signed with the new secret: it verifies with it and not with the old one.
    assert jwt.decode(token, new_key.secret, algorithms=["HS256"], audience=AUD_JOIN)
    assert tokens.verify_join(token).meeting_id == 7


def test_retiring_the_old_key_makes_its_tokens_token_unknown_key(
    ring: KeyRing, tokens: TokenService
) -> None:
    old_kid = ring.current_kid
    old_token = issue_join(tokens)
    ring.rotate()
    new_token = issue_join(tokens)
    ring.retire(old_kid)
    assert ring.get(old_kid) is None
    assert refusal(tokens.verify_join, old_token) == "token_unknown_key"
    assert tokens.verify_join(new_token).meeting_id == 7


def test_retiring_the_current_key_raises_value_error(ring: KeyRing, tokens: TokenService) -> None:
    current = ring.current_kid
    with pytest.raises(ValueError, match="current"):
        ring.retire(current)
    assert ring.current_kid == current
    assert current in ring.keys
    assert tokens.verify_join(issue_join(tokens)).meeting_id == 7


# --- the key ring file -------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_load_or_create_keyring_creates_the_file_with_mode_0600(tmp_path: Path) -> None:
    ring = load_or_create_keyring(tmp_path)
    path = tmp_path / "keys" / KEYRING_FILE
    assert ring.path == path
    assert path.is_file()
    assert _mode(path) == 0o600
    assert _mode(path.parent) & 0o077 == 0
    assert len(ring.keys) == 1
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_reloading_the_keyring_gives_the_same_keys(tmp_path: Path) -> None:
    first = load_or_create_keyring(tmp_path)
    token = issue_join(TokenService(first, ISSUER))
    second = load_or_create_keyring(tmp_path)
    assert second.current_kid == first.current_kid
    assert {k: v.secret for k, v in second.keys.items()} == {
        k: v.secret for k, v in first.keys.items()
    }
    assert second.current.created == first.current.created
    assert TokenService(second, ISSUER).verify_join(token).meeting_id == 7


def test_rotation_and_retirement_are_saved_to_the_file(tmp_path: Path) -> None:
    ring = load_or_create_keyring(tmp_path)
    old_kid = ring.current_kid
    old_token = issue_access(TokenService(ring, ISSUER))
    new_key = ring.rotate()
    path = tmp_path / "keys" / KEYRING_FILE
    assert _mode(path) == 0o600

    reloaded = load_or_create_keyring(tmp_path)
    assert reloaded.current_kid == new_key.kid
    assert set(reloaded.keys) == {old_kid, new_key.kid}
    assert TokenService(reloaded, ISSUER).verify_access(old_token).account_id == 42

    reloaded.retire(old_kid)
    again = load_or_create_keyring(tmp_path)
    assert set(again.keys) == {new_key.kid}
    assert refusal(TokenService(again, ISSUER).verify_access, old_token) == "token_unknown_key"


def test_keyring_file_with_mode_0644_is_tightened_to_0600(tmp_path: Path) -> None:
    first = load_or_create_keyring(tmp_path)
    path = tmp_path / "keys" / KEYRING_FILE
    os.chmod(path, 0o644)
    assert _mode(path) == 0o644
    second = load_or_create_keyring(tmp_path)
    assert _mode(path) == 0o600
    assert second.current_kid == first.current_kid


def test_repr_of_a_signing_key_does_not_show_the_secret(tmp_path: Path) -> None:
    ring = load_or_create_keyring(tmp_path)
    key = ring.current
    secret_forms = [
        repr(key.secret),
        key.secret.hex(),
        base64.urlsafe_b64encode(key.secret).decode("ascii"),
        base64.b64encode(key.secret).decode("ascii"),
    ]
    for text in (repr(key), str(key), repr(ring)):
        assert key.kid in text
        for form in secret_forms:
            assert form not in text
