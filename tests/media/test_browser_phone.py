"""Every main page on a phone (390x844, Chromium's touch viewport) and on the office
PC (1366x768): the page fits its width (nothing makes the whole page scroll
sideways; wide tables scroll inside their own box), for each role's pages.

Each page is photographed at phone width into the shots dir.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .browser_support import (
    VIEWPORT,
    Browsers,
    DemoServer,
    browsers,  # noqa: F401  (fixture)
    demo_server,  # noqa: F401  (fixture)
    diagnostics,
    playwright_driver,  # noqa: F401  (fixture)
    shot,
    sign_in,
)

PHONE = {"width": 390, "height": 844}
PAGES = {
    "thuky": ["/meetings", "/meetings?view=day", "/meetings?view=week", "/meetings/new"],
    "chutri": ["/today", "/devicecheck"],
    "vanthu": ["/archive"],
    "admin": [
        "/admin/status",
        "/admin/units",
        "/admin/accounts",
        "/admin/webhooks",
        "/admin/retention",
    ],
}

# How far the page is wider than the window (0 when it fits).
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


@pytest.mark.parametrize("username", sorted(PAGES))
def test_each_roles_pages_fit_a_phone_and_the_office_pc(
    demo_server: DemoServer,  # noqa: F811
    browsers: Browsers,  # noqa: F811
    tmp_path: Path,
    username: str,
) -> None:
    site = browsers.launch(f"phone-{username}")
    with diagnostics([site]):
        sign_in(site, demo_server, username)
        for path in PAGES[username]:
            for size in (PHONE, VIEWPORT):
                site.page.set_viewport_size(size)
                site.open(f"{demo_server.base_url}{path}")
                overflow = site.js(OVERFLOW)
                assert overflow <= 0, f"{path} at {size['width']} px is {overflow} px too wide"
            site.page.set_viewport_size(PHONE)
            name = path.strip("/").replace("/", "-").replace("?view=", "-") or "home"
            shot(site, f"phone-{name}.png", tmp_path)
        assert not [line for line in site.console if line.startswith("pageerror")]
    browsers.close(site)
