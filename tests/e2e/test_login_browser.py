"""The sign-in page in a real headless Chromium, against the app served over HTTP."""

from __future__ import annotations

import os
from pathlib import Path

from trailseal.services.tenancy import create_user


def test_sign_in_and_out(server_url, browser, trailseal_services, tenant, tmp_path):
    email = f"analyst-{tenant.slug}@example.com"
    create_user(trailseal_services, tenant.id, email, "correct horse battery", "analyst")
    page = browser.new_page()
    page.goto(f"{server_url}/")
    assert page.url.startswith(f"{server_url}/login")
    page.fill("#email", email)
    page.fill("#password", "wrong password")
    page.click("button[type=submit]")
    assert "incorrect" in page.inner_text("[role=alert]")
    page.fill("#password", "correct horse battery")
    page.click("button[type=submit]")
    page.wait_for_url(f"{server_url}/")
    body = page.inner_text("main")
    assert tenant.slug in body and "audit:export" in body
    shots = Path(os.environ.get("TRAILSEAL_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "home.png"))
    assert (shots / "home.png").stat().st_size > 1000
    response = page.request.get(f"{server_url}/api/v1/events")
    assert response.status == 200 and response.json()["events"] == []
    page.click("text=Sign out")
    page.wait_for_url(f"{server_url}/login")
    assert page.request.get(f"{server_url}/api/v1/events").status == 401
    page.close()


def test_login_page_renders(server_url, browser, tmp_path):
    page = browser.new_page()
    page.goto(f"{server_url}/login")
    assert page.title() == "Sign in · Trailseal"
    assert page.is_visible("#email") and page.is_visible("#password")
    page.screenshot(path=str(tmp_path / "login.png"))
    page.close()
    assert (tmp_path / "login.png").stat().st_size > 1000
