"""Brute-force protection on POST /api/auth/login, over a real server."""

from tests.conftest import PASSWORD


async def test_repeated_wrong_passwords_are_throttled(api):
    for _ in range(5):
        err = await api.call(
            "POST",
            "/api/auth/login",
            as_user=None,
            json={"username": "thuky", "password": "sai-mat-khau"},
            expect=401,
        )
        assert err["error"]["code"] == "bad_credentials"
    response = await api.client.post(
        "/api/auth/login", json={"username": "thuky", "password": "sai-mat-khau"}
    )
    assert response.status == 429
    assert int(response.headers["Retry-After"]) > 0
    assert (await response.json())["error"]["code"] == "too_many_attempts"
    # Even the right password waits: that is what stops guessing.
    response = await api.client.post(
        "/api/auth/login", json={"username": "thuky", "password": PASSWORD}
    )
    assert response.status == 429
