async def test_healthz_and_readyz_answer(api):
    body = await api.call("GET", "/healthz", as_user=None, expect=200)
    assert body["status"] == "ok"
    body = await api.call("GET", "/readyz", as_user=None, expect=200)
    assert body["status"] == "ready"
