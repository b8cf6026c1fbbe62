"""The analyst dashboards in a real headless Chromium: the sign-in guards them, the overview
shows the tenant's own figures, the anomalies page lists its alerts, a viewer sees only
what their permissions allow, and Dash's own requests refuse a visitor who is not signed
in. Screenshots land in ``$TRAILSEAL_SCREENSHOTS`` (a temporary folder otherwise)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from tests.conftest import ingest, make_event, ts
from trailseal.services.alerts import record_alert
from trailseal.services.tenancy import create_user
from trailseal.testing import make_tenant
from trailseal.types import DashboardPage


def _sign_in(page, url, email, password, target="/dash/"):
    page.goto(f"{url}{target}")
    assert "/login?next=" in page.url  # the sign-in guards the dashboards
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}{target}")


def _shots(tmp_path) -> Path:
    shots = Path(os.environ.get("TRAILSEAL_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    return shots


def test_overview_and_anomalies(server_url, browser, trailseal_client,
                                trailseal_services, tenant, tmp_path):
    svc = trailseal_services
    email = f"analyst-{tenant.slug}@example.com"
    create_user(svc, tenant.id, email, "correct horse battery", "analyst")
    ingest(trailseal_client, tenant, [
        make_event(occurred_at=ts(hours / 24), severity=severity,
                   actor={"id": actor, "type": "user"})
        for hours, severity, actor in [(1, "low", "ana"), (2, "critical", "ana"),
                                       (30, "medium", "ben"), (200, "high", "ana"),
                                       (40 * 24, "low", "old")]])
    record_alert(svc, tenant.id, kind="anomaly", severity="critical",
                 title="Anomalous invoice.deleted by ana",
                 details={"anomaly_score": 0.91, "model_version": "if-test",
                          "explanation": {"summary": "First invoice.deleted by ana at 03:00.",
                                          "contributions": [
                                              {"feature": "hours_from_usual", "value": 9.0,
                                               "label": "Hours from usual hours",
                                               "contribution": 0.42},
                                              {"feature": "actor_type_rarity", "value": 1.0,
                                               "label": "First time for this actor",
                                               "contribution": 0.2}]},
                          "affected_entities": [{"type": "actor", "id": "ana"},
                                                {"type": "invoice", "id": "INV-7"}],
                          "suggested_actions": ["Confirm with ana that this was intended."]})
    other = make_tenant(svc)  # another tenant's events never show
    ingest(trailseal_client, other, [make_event(actor={"id": "mallory", "type": "user"})] * 5)

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    _sign_in(page, server_url, email, "correct horse battery")
    page.wait_for_selector("#count-24h")
    assert page.inner_text("#count-24h") == "2"
    assert page.inner_text("#count-7d") == "3"
    assert page.inner_text("#count-30d") == "4"
    assert page.inner_text("#open-anomalies") == "1"
    body = page.inner_text("body")
    assert "ana" in body and "mallory" not in body
    assert page.inner_text("#tenant-name").strip()
    shots = _shots(tmp_path)
    page.screenshot(path=str(shots / "dash-overview.png"), full_page=True)
    # the overview exports its own period, the last 30 days, through the export API
    with page.expect_download() as download:
        page.click("#export-csv")
    rows = [r for r in Path(download.value.path()).read_text().splitlines() if r.strip()]
    assert len(rows) == 5 and not any(",old," in r for r in rows)  # header + 4 events
    page.wait_for_selector("text=Downloaded")
    page.click("#nav-anomalies")
    page.wait_for_selector(".anomaly-card")
    card = page.inner_text(".anomaly-card")
    assert "Anomalous invoice.deleted by ana" in card and "0.91" in card
    assert "Confirm with ana" in card
    assert "Affected: actor ana, invoice INV-7" in card
    page.wait_for_selector(".shap-chart .bars path")
    assert "Hours from usual hours" in page.inner_text(".shap-chart")
    page.screenshot(path=str(shots / "dash-anomalies.png"), full_page=True)
    assert (shots / "dash-anomalies.png").stat().st_size > 5000
    # mark it as a false positive, with notes: recorded with who, the alert resolved
    page.fill("input[placeholder='Why is this expected?']", "month-end close")
    page.click("text=Mark as false positive")
    page.wait_for_selector(".fp-done")
    with svc.db.transaction(tenant.id) as conn:
        status, notes, given_by = conn.exec_driver_sql(
            "SELECT a.status, f.notes, f.given_by FROM audit_anomalies a JOIN anomaly_feedback f "
            "ON f.alert_id = a.id").one()
    assert (status, notes) == ("resolved", "month-end close")
    assert given_by.startswith("user:")
    # a new critical anomaly is announced on the open page within 5 s
    page.wait_for_timeout(3500)  # the page has looked once and remembered the newest
    record_alert(svc, tenant.id, kind="anomaly", severity="critical",
                 title="Anomalous export.downloaded by ana", details={"anomaly_score": 0.97})
    page.wait_for_selector(".critical-toast", timeout=5000)
    assert "Anomalous export.downloaded by ana" in page.inner_text(".critical-toast")
    # integrity: verify the chain from the page
    page.click("#nav-integrity")
    page.click("#verify-button")
    page.wait_for_selector("#verify-status")
    assert "Intact" in page.inner_text("#verify-status")
    assert "5 events checked" in page.inner_text("#verify-status")
    # the page remembers it, and shows the latest signed checkpoint
    svc.make_checkpoint(tenant.id)
    page.reload()
    page.wait_for_selector("#last-verified")
    assert "intact, 5 events" in page.inner_text("#last-verified")
    assert "5 events" in page.inner_text("#latest-checkpoint")
    page.screenshot(path=str(shots / "dash-integrity.png"), full_page=True)
    # every page an analyst has, at the two sizes analysts use, for a look
    for width, height in ((1440, 900), (1024, 768)):
        page.set_viewport_size({"width": width, "height": height})
        for path, title in (("overview", "Overview"), ("timeline", "Timeline"),
                            ("anomalies", "Anomalies"), ("search", "Search"),
                            ("integrity", "Integrity & models")):
            page.goto(f"{server_url}/dash/{path}")
            page.wait_for_selector(f"h2:has-text('{title}')")
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(shots / f"dash-{path}-{width}x{height}.png"),
                            full_page=True)
    page.close()


def test_timeline_filters_drill_down_and_search(server_url, browser, trailseal_client,
                                                trailseal_services, tenant, run_jobs, tmp_path):
    svc = trailseal_services
    email = f"analyst2-{tenant.slug}@example.com"
    create_user(svc, tenant.id, email, "correct horse battery", "analyst")
    ids = ingest(trailseal_client, tenant, [
        make_event(event_type="invoice.deleted", occurred_at=ts(0.1), severity="high",
                   actor={"id": "ana", "type": "user"}, action_details={"invoice": "INV-9"}),
        make_event(event_type="user.login", occurred_at=ts(0.2), severity="low",
                   actor={"id": "ben", "type": "user"}, entity={"type": "user", "id": "ben"},
                   action_details={"outcome": "success"}),
        make_event(event_type="role.granted", occurred_at=ts(0.3), severity="medium",
                   actor={"id": "ana", "type": "user"}, entity={"type": "user", "id": "cy"},
                   action_details={"role": "admin"}),
    ])["ids"]
    run_jobs()  # classified, scored, embedded
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    _sign_in(page, server_url, email, "correct horse battery", "/dash/timeline")
    page.wait_for_selector("#timeline-count")
    assert "3 events" in page.inner_text("#timeline-count")
    # filter by actor: the URL carries it, and the page shows only ana's events
    page.fill("#f-actor", "ana")
    page.click("#f-apply")
    page.wait_for_url(re.compile(r".*actor=ana.*"))
    page.wait_for_function("document.querySelector('#timeline-count') && "
                           "document.querySelector('#timeline-count').innerText.includes('2 ')")
    assert "ben" not in page.inner_text("#timeline-results")
    # export what the filters select, as CSV, through the export API with the session
    with page.expect_download() as download:
        page.click("#export-csv")
    path = download.value.path()
    text = Path(path).read_text()
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 3 and "ana" in lines[1] and "ben" not in text  # header + 2 events
    page.wait_for_selector("text=Downloaded")
    # a shared link opens the same view
    shared = page.url
    other = browser.new_page()
    other.context.add_cookies(page.context.cookies())
    other.goto(shared)
    other.wait_for_selector("#timeline-count")
    assert "2 events" in other.inner_text("#timeline-count")
    other.close()
    # drill down: every field, the action details and the insights
    page.click("a.event-link:has-text('role.granted')")
    page.wait_for_selector("#detail-card")
    detail = page.inner_text("#detail-card")
    assert "role.granted by ana" in detail and '"role": "admin"' in detail
    assert "privilege-change" in detail and "Category" in detail
    page.screenshot(path=str(_shots(tmp_path) / "dash-timeline.png"), full_page=True)
    page.click("text=This actor's events")
    page.wait_for_url(re.compile(r".*actor=ana$"))
    # search: an example question runs on click and cites events of this tenant
    page.click("#nav-search")
    page.click("text=Who deleted invoices?")
    page.wait_for_selector("#search-answer")
    assert page.input_value("#q") == "Who deleted invoices?"
    first = page.inner_text("#search-list .list-group-item")
    assert "invoice.deleted" in first
    links = page.eval_on_selector_all(".source-link", "els => els.map(e => e.href)")
    assert links and all(any(i in link for i in ids) for link in links)
    page.screenshot(path=str(_shots(tmp_path) / "dash-search.png"), full_page=True)
    page.close()


def test_timeline_pages_through_older_events(server_url, browser, trailseal_client,
                                             trailseal_services, tmp_path):
    t = make_tenant(trailseal_services)
    email = f"pager-{t.slug}@example.com"
    create_user(trailseal_services, t.id, email, "correct horse battery", "analyst")
    ingest(trailseal_client, t, [make_event(occurred_at=ts(minutes / 1440), severity="low",
                                            action_details={"n": minutes})
                                 for minutes in range(130)])
    page = browser.new_page(viewport={"width": 1024, "height": 768})
    _sign_in(page, server_url, email, "correct horse battery", "/dash/timeline?severity=low")
    page.wait_for_selector("#timeline-count")
    assert "100 events shown (1–100)" in page.inner_text("#timeline-count")
    assert page.locator("#page-newest").count() == 0
    page.click("#page-older")
    page.wait_for_url(re.compile(r".*cursor=.*page=2"))
    page.wait_for_function("document.querySelector('#timeline-count') && document"
                           ".querySelector('#timeline-count').innerText.includes('101')")
    assert "30 events shown (101–130)" in page.inner_text("#timeline-count")
    assert "severity=low" in page.url  # the filters stay with the page
    assert page.locator("#page-older").count() == 0
    page.screenshot(path=str(_shots(tmp_path) / "dash-timeline-page2.png"), full_page=True)
    page.click("#page-newest")
    page.wait_for_function("document.querySelector('#timeline-count') && document"
                           ".querySelector('#timeline-count').innerText.includes('(1–100)')")
    # a cursor that belongs to other filters is explained, not a traceback
    page.goto(page.url + "&cursor=bogus&page=3")
    page.wait_for_selector("text=Back to the newest events")
    # the anomalies page pages too: 25 alerts, then the 5 older ones
    for n in range(30):
        record_alert(trailseal_services, t.id, kind="anomaly", severity="low",
                     title=f"Anomaly number {n}", details={"anomaly_score": 0.6})
    page.goto(f"{server_url}/dash/anomalies")
    page.wait_for_selector("#anomalies-count")
    assert page.locator(".anomaly-card").count() == 25
    assert "Anomaly number 29" in page.inner_text(".anomaly-card >> nth=0")
    page.click("#anomalies-older")
    page.wait_for_function("document.querySelector('#anomalies-count') && document"
                           ".querySelector('#anomalies-count').innerText.includes('26')")
    assert page.locator(".anomaly-card").count() == 5
    assert "Alerts 26–30" in page.inner_text("#anomalies-count")
    assert page.locator("#anomalies-older").count() == 0
    page.close()


def test_an_empty_trail_says_what_to_do(server_url, browser, trailseal_services,
                                        tmp_path):
    t = make_tenant(trailseal_services)
    create_user(trailseal_services, t.id, f"v-{t.slug}@example.com", "correct horse battery",
                "viewer")
    page = browser.new_page()
    _sign_in(page, server_url, f"v-{t.slug}@example.com", "correct horse battery",
             "/dash/overview")
    record_alert(trailseal_services, t.id, kind="anomaly", severity="low", title="A viewer's view",
                 details={"anomaly_score": 0.6})
    page.wait_for_selector("text=No events yet")
    assert "POST /api/v1/events" in page.inner_text("body")
    page.screenshot(path=str(_shots(tmp_path) / "dash-empty.png"))
    page.goto(f"{server_url}/dash/anomalies")
    page.wait_for_selector(".anomaly-card")
    assert page.locator("text=Mark as false positive").count() == 0  # a viewer cannot judge
    page.goto(f"{server_url}/dash/timeline")
    page.wait_for_selector("#f-apply")
    assert page.locator("#export-csv").count() == 0  # nor export
    page.goto(f"{server_url}/dash/nowhere")
    page.wait_for_selector("text=No such page")
    page.close()


def test_dash_requests_need_a_session(trailseal_client):
    resp = trailseal_client.get("/dash/overview")
    assert resp.status_code == 302
    assert re.search(r"/login\?next=/dash/overview$", resp.headers["Location"])
    resp = trailseal_client.post("/dash/_dash-update-component", json={})
    assert resp.status_code == 401
    assert trailseal_client.get("/dash-static/bootstrap.min.css").status_code == 200


def test_pages_come_from_the_hook(trailseal_app):
    pages = trailseal_app.extensions["trailseal_pages"]
    assert [p.path for p in pages][:6] == ["overview", "timeline", "anomalies", "search",
                                          "reports", "integrity"]
    assert all(isinstance(p, DashboardPage) for p in pages)


def test_reports_and_integrations_for_admins(server_url, browser, trailseal_services,
                                             run_jobs, http_receiver, smtp_receiver,
                                             monkeypatch, tmp_path):
    svc = trailseal_services
    t = make_tenant(svc)
    admin, analyst = f"admin-{t.slug}@example.com", f"analyst-{t.slug}@example.com"
    create_user(svc, t.id, admin, "correct horse battery", "admin")
    create_user(svc, t.id, analyst, "correct horse battery", "analyst")
    for key, value in smtp_receiver.config().items():
        monkeypatch.setitem(svc.config, key, value)
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    _sign_in(page, server_url, admin, "correct horse battery", "/dash/reports")
    page.wait_for_selector("#channels-empty")
    page.wait_for_selector("#schedules-empty")
    # a signed webhook: added, tested (the receiver gets a signed message), listed
    page.select_option("#channel-kind", "webhook")
    page.wait_for_selector("input.cfg-secret")
    page.fill("#channel-name", "SOC webhook")
    page.fill("input.cfg-url", f"{http_receiver.url}/hook")
    page.fill("input.cfg-secret", "s" * 40)
    page.click("#channel-add")
    page.wait_for_selector("#channel-done")
    assert "Added SOC webhook" in page.inner_text("#channel-done")
    assert "s" * 40 not in page.inner_text("body")  # the secret is never shown again
    page.click(".channel-row >> text=Test")
    page.wait_for_selector("text=Test message delivered")
    [sent] = http_receiver.requests
    assert sent.headers["trailseal-signature"].startswith("t=") and sent.path == "/hook"
    # a bad channel is refused with the reason, in the page
    page.fill("#channel-name", "Broken")
    page.fill("input.cfg-url", "https://169.254.169.254/latest")
    page.fill("input.cfg-secret", "s" * 40)
    page.click("#channel-add")
    page.wait_for_selector("#channel-error")
    assert "Not done" in page.inner_text("#channel-error")
    # a weekly PDF report: scheduled, run now by a worker, mailed with the PDF attached
    page.fill("#sched-name", "Weekly for the CISO")
    page.fill("#sched-recipients", "ciso@example.com")
    page.click("#sched-add")
    page.wait_for_selector("#sched-done")
    assert "Scheduled Weekly for the CISO" in page.inner_text("#sched-done")
    shots = _shots(tmp_path)
    page.screenshot(path=str(shots / "dash-reports.png"), full_page=True)
    page.set_viewport_size({"width": 1024, "height": 768})
    page.screenshot(path=str(shots / "dash-reports-1024.png"), full_page=True)
    page.click(".schedule-row >> text=Run now")
    page.wait_for_selector("text=A worker is writing")
    run_jobs()
    [mail] = smtp_receiver.wait_for(1)
    assert mail.recipients == ["ciso@example.com"]
    [(name, content)] = mail.attachments()
    assert name.endswith(".pdf") and content.startswith(b"%PDF")
    # deleted, both
    page.click(".schedule-row >> text=Delete")
    page.wait_for_selector("#schedules-empty")
    page.click(".channel-row >> text=Delete")
    page.wait_for_selector("#channels-empty")
    page.close()
    # an analyst has no such page
    other = browser.new_page()
    _sign_in(other, server_url, analyst, "correct horse battery", "/dash/overview")
    other.wait_for_selector("#nav-overview")
    assert other.locator("#nav-reports").count() == 0
    other.goto(f"{server_url}/dash/reports")
    other.wait_for_selector("text=Not available to you")
    other.close()
