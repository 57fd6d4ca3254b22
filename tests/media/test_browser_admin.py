"""The administrator's pages in real Chromium against a real ``hoinghi demo`` server.

The demo's administrator signs in and lands on the status page; imports a new
commune from a CSV file (after a refused file whose bad rows are listed and
which changes nothing); creates an operator account for that commune, which
then signs in and lands on its own "today" page; subscribes a webhook (the
secret shown once); and sets the recording retention. Each page is photographed
into the shots dir.
"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Error as PlaywrightError

from .browser_support import (
    Browsers,
    DemoServer,
    Site,
    browsers,  # noqa: F401  (fixture)
    demo_server,  # noqa: F401  (fixture)
    diagnostics,
    playwright_driver,  # noqa: F401  (fixture)
    poll,
    shot,
    sign_in,
)

COMMUNE = ("QB-BOTRACH-PHUCTRACH", "Xã Phúc Trạch")
OPERATOR = ("vanhanh-phuctrach", "Cán bộ vận hành xã Phúc Trạch", "mật-khẩu-xã-Phúc-Trạch-2027")


def status_text(site: Site, element_id: str, what: str) -> str:
    """The text of a message the page shows, maybe after reloading itself (the admin
    pages reload to show what is stored, the message kept over the reload)."""

    def read() -> str:
        try:
            return str(
                site.js(
                    f"() => {{ const e = document.getElementById({element_id!r});"
                    " return e ? e.textContent.trim() : ''; }"
                )
            )
        except PlaywrightError:  # the page is reloading
            return ""

    return str(poll(read, bool, timeout=10, interval=0.1, what=f"{site.name}: {what}"))


def test_the_administrator_runs_the_directory_and_the_system(
    demo_server: DemoServer,  # noqa: F811
    browsers: Browsers,  # noqa: F811
    tmp_path: Path,
) -> None:
    server = demo_server
    admin = browsers.launch("admin")
    page = admin.page
    with diagnostics([admin]):
        sign_in(admin, server, "admin")
        assert page.url == f"{server.base_url}/admin/status"
        admin.wait_js(
            "() => document.querySelector('main').textContent.includes('sqlite')",
            what="the status page",
        )
        shot(admin, "admin-1-status.png", tmp_path)

        # Units: a file with a bad row is refused whole, its rows listed; then the good one.
        admin.open(f"{server.base_url}/admin/units")
        code, name = COMMUNE
        bad = tmp_path / "don-vi-loi.csv"
        bad.write_text(
            f"code,name,kind,parent\n{code},{name},commune,QB-BOTRACH\n"
            'QB-X,=HYPERLINK("x"),commune,QB-BOTRACH\n',
            encoding="utf-8",
        )
        page.set_input_files("#import-file", str(bad))
        page.click("#import-units button[type=submit]")
        summary = status_text(admin, "import-summary", "the refusal")
        assert "1" in summary, summary
        assert page.locator("#import-errors tbody tr").count() == 1
        shot(admin, "admin-2-units-refused.png", tmp_path)
        assert page.locator(f'#unit-tree [data-code="{code}"]').count() == 0
        good = tmp_path / "don-vi.csv"
        good.write_bytes(
            (f"\ufeffcode,name,kind,parent\n{code},{name},commune,QB-BOTRACH\n").encode()
        )
        page.set_input_files("#import-file", str(good))
        page.click("#import-units button[type=submit]")
        done = status_text(admin, "units-status", "the import's result")
        assert "1" in done, done
        page.fill("#q", "phuc trach")
        page.click("form[role=search] button[type=submit]")
        page.wait_for_load_state()
        assert name in str(page.text_content("#unit-tree"))
        shot(admin, "admin-3-units.png", tmp_path)

        # Accounts: an operator for the new commune.
        admin.open(f"{server.base_url}/admin/accounts")
        username, display, password = OPERATOR
        page.fill("#create-username", username)
        page.fill("#create-display_name", display)
        page.fill("#create-password", password)
        page.check("#create-role-operator")
        page.select_option("#create-unit", code)
        page.click("#create-account button[type=submit]")
        created = status_text(admin, "accounts-status", "the account created")
        assert username in created, created
        assert display in str(page.text_content("#accounts-table"))
        shot(admin, "admin-4-accounts.png", tmp_path)

        # Webhooks: the secret is shown once.
        admin.open(f"{server.base_url}/admin/webhooks")
        page.fill("#new-url", "http://127.0.0.1:9/hoinghi")
        page.click("#create-webhook button[type=submit]")
        secret = admin.wait_js(
            "() => !document.getElementById('secret-panel').hidden"
            " && document.getElementById('secret-value').value",
            what="the secret",
        )
        assert len(str(secret)) >= 32
        shot(admin, "admin-5-webhooks.png", tmp_path)

        # Retention: 30 days.
        admin.open(f"{server.base_url}/admin/retention")
        # Shortening the period asks first (recordings will go): say yes.
        admin.js("() => { window.confirm = () => true; }")
        page.fill("#retention-days", "30")
        page.click("#retention-form button[type=submit]")
        admin.wait_js(
            "() => document.getElementById('policy-text').textContent.includes('30')",
            what="the new policy",
        )
        shot(admin, "admin-6-retention.png", tmp_path)
        assert not [line for line in admin.console if line.startswith("pageerror")]
    browsers.close(admin)

    # The new operator signs in and lands on its commune's "today".
    operator = browsers.launch("operator")
    with diagnostics([operator]):
        sign_in(operator, server, OPERATOR[0], password=OPERATOR[2])
        assert operator.page.url == f"{server.base_url}/today"
        assert COMMUNE[1] in str(operator.page.text_content("main"))
        shot(operator, "admin-7-new-operator-today.png", tmp_path)
