"""Regression tests for the findings of the outside security probe: open redirect after
sign-in, unbounded pages, sign-in CPU exhaustion, access-log flooding, input changed
silently and sessions that outlived sign-out. (Crafted input that was a 500 is covered,
with its whole class, by test_bad_input.py.)"""

from __future__ import annotations

import re
import threading
import time
import uuid

import pytest

from tests.conftest import make_event
from trailseal.auth import password_check_slot
from trailseal.services.tenancy import create_user, deactivate_user, set_password

PASSWORD = "correct horse battery"


def _csrf(client, path="/login") -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _sign_in(client, email, next_url=None, password=PASSWORD, **kwargs):
    data = {"email": email, "password": password, "csrf_token": _csrf(client)}
    if next_url is not None:
        data["next"] = next_url
    return client.post("/login", data=data, **kwargs)


@pytest.fixture
def user(trailseal_services, tenant):
    email = f"u-{uuid.uuid4().hex[:10]}@example.com"
    create_user(trailseal_services, tenant.id, email, PASSWORD, "admin")
    return email


@pytest.fixture
def config(trailseal_services):
    """Change service settings for one test."""
    saved = dict(trailseal_services.config)

    def _set(**values):
        trailseal_services.config.update(values)

    yield _set
    trailseal_services.config.clear()
    trailseal_services.config.update(saved)


# --- 1. open redirect ---------------------------------------------------------------------

@pytest.mark.parametrize("target", [
    "/\t/evil.example", "/\n/evil.example", "/\r\n/evil.example", "//evil.example",
    "/\\evil.example", "\\/evil.example", "https://evil.example/", "http:evil.example",
    " //evil.example", "/ /evil.example", "javascript:alert(1)", "evil.example", "/" * 3000,
])
def test_sign_in_never_redirects_off_site(trailseal_app, user, target):
    client = trailseal_app.test_client()
    resp = _sign_in(client, user, target)
    assert resp.status_code == 302
    assert resp.headers["Location"] == "/", (target, resp.headers["Location"])


def test_the_probe_s_redirect_through_the_query_string(trailseal_app, user):
    client = trailseal_app.test_client()
    page = client.get("/login?next=%2F%09%2Fevil.example").get_data(as_text=True)
    sent_next = re.search(r'name="next" value="([^"]*)"', page).group(1)
    resp = _sign_in(client, user, sent_next.replace("&#9;", "\t"))
    assert resp.headers["Location"] == "/"


@pytest.mark.parametrize("target", ["/api/v1/events?limit=5", "/", "/api/v1/alerts#x"])
def test_same_origin_paths_are_followed(trailseal_app, user, target):
    resp = _sign_in(trailseal_app.test_client(), user, target)
    assert resp.headers["Location"] == target


# --- 2. pages bounded by bytes -------------------------------------------------------------

def test_pages_stop_at_the_byte_budget_and_the_cursor_reaches_every_event(
        trailseal_client, tenant, config):
    blob = "x" * 100_000
    sent = []
    for n in range(12):
        resp = trailseal_client.post("/api/v1/events", headers=tenant.headers,
                                     json=make_event(action_details={"n": n, "blob": blob}))
        sent.append(resp.get_json()["id"])
    config(PAGE_MAX_BYTES=350_000)
    seen, pages, cursor = [], 0, None
    while True:
        url = "/api/v1/events?limit=60" + (f"&cursor={cursor}" if cursor else "")
        resp = trailseal_client.get(url, headers=tenant.headers)
        assert resp.status_code == 200
        # each event's record is ~134 kB (base64 of the encrypted details): 3 fit in 350 kB
        assert len(resp.get_data()) < 350_000 + 140_000
        body = resp.get_json()
        assert 1 <= len(body["events"]) <= 3
        seen += [e["id"] for e in body["events"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(sent) and len(seen) == len(set(seen))
    assert pages >= 4
    # the timeline is bounded the same way
    first = trailseal_client.get("/api/v1/timeline?limit=60", headers=tenant.headers).get_json()
    assert len(first["events"]) <= 3 and first["next_cursor"]


def test_one_event_larger_than_the_budget_still_comes_alone(trailseal_client, tenant, config):
    for _ in range(2):
        trailseal_client.post("/api/v1/events", headers=tenant.headers,
                              json=make_event(action_details={"blob": "y" * 50_000}))
    config(PAGE_MAX_BYTES=1_000)
    body = trailseal_client.get("/api/v1/events?limit=10", headers=tenant.headers).get_json()
    assert len(body["events"]) == 1 and body["next_cursor"]


# --- 3. sign-in budgets --------------------------------------------------------------------

def _fresh_window():
    """Budgets count in fixed 60 s windows: start a test's attempts early in one."""
    left = 60 - time.time() % 60
    if left < 20:
        time.sleep(left + 0.2)


def _client_from(app, address):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def test_per_address_budget_across_different_emails(trailseal_app, config):
    config(LOGIN_RATE_PER_ADDRESS="5/60")
    _fresh_window()
    client = _client_from(trailseal_app, "198.51.100.71")
    codes = [_sign_in(client, f"nobody-{n}@example.com").status_code for n in range(6)]
    assert codes == [401] * 5 + [429]
    blocked = _sign_in(client, "someone-else@example.com")
    assert blocked.status_code == 429 and 1 <= int(blocked.headers["Retry-After"]) <= 60
    other = _client_from(trailseal_app, "198.51.100.72")
    assert _sign_in(other, "nobody-0@example.com").status_code == 401


def test_global_budget_across_addresses(trailseal_app, config):
    config(LOGIN_RATE_GLOBAL="3/60")
    _fresh_window()
    codes = []
    for n in range(5):
        client = _client_from(trailseal_app, f"203.0.113.{n + 10}")
        codes.append(_sign_in(client, f"nobody-{n}@example.com").status_code)
    assert codes[:3] == [401] * 3 and codes[3:] == [429, 429]


def test_password_checks_run_a_bounded_number_at_once(trailseal_app, trailseal_services,
                                                      user, config):
    config(PASSWORD_CHECK_WAIT=0.2)
    client = trailseal_app.test_client()
    held, release = threading.Event(), threading.Event()

    def occupy():
        with password_check_slot(trailseal_services):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=occupy)
    thread.start()
    try:
        assert held.wait(5)
        busy = _sign_in(client, user)
        assert busy.status_code == 429 and busy.headers["Retry-After"]
    finally:
        release.set()
        thread.join()
    assert _sign_in(client, user).status_code == 302  # the slot is free again


# --- 6. access-log flooding ----------------------------------------------------------------

def _access_count(client, tenant) -> int:
    entries = client.get("/api/v1/access-log?limit=500", headers=tenant.headers).get_json()
    return len(entries["entries"])


def test_unknown_parameters_are_refused_before_anything_is_logged(trailseal_client, tenant):
    created = trailseal_client.post("/api/v1/events", json=make_event(), headers=tenant.headers)
    event_id = created.get_json()["id"]
    before = _access_count(trailseal_client, tenant)
    resp = trailseal_client.get(f"/api/v1/events/{event_id}?pad={'x' * 240_000}",
                                headers=tenant.headers)
    assert resp.status_code == 422
    assert resp.get_json()["error"]["details"]["unknown"] == ["pad"]
    # only the access-log read itself was recorded, not the refused request
    assert _access_count(trailseal_client, tenant) == before + 1


def test_logged_queries_and_paths_are_capped(trailseal_client, tenant):
    many = "&".join(f"event_type=t{n}" for n in range(100))
    assert trailseal_client.get(f"/api/v1/events?{many}", headers=tenant.headers).status_code == 200
    assert trailseal_client.get("/api/v1/events/" + "z" * 5000,
                                headers=tenant.headers).status_code == 404
    entries = trailseal_client.get("/api/v1/access-log?limit=3",
                                   headers=tenant.headers).get_json()["entries"]
    long_path = next(e for e in entries if e["endpoint"].startswith("/api/v1/events/zz"))
    assert len(long_path["endpoint"]) <= 513
    listed = next(e for e in entries if e["endpoint"] == "/api/v1/events")
    assert len(listed["query"]["event_type"]) == 21
    assert listed["query"]["event_type"][-1] == "… 80 more"


# --- 7. input kept exactly or refused -------------------------------------------------------

def test_utf8_idempotency_key_is_kept_exactly(trailseal_client, tenant):
    wire = "clé-1".encode().decode("latin-1")  # what WSGI hands over for UTF-8 bytes
    headers = {**tenant.headers, "Idempotency-Key": wire}
    body = make_event()
    first = trailseal_client.post("/api/v1/events", json=body, headers=headers)
    assert first.status_code == 201
    again = trailseal_client.post("/api/v1/events", json=body, headers=headers)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_json()["id"] == first.get_json()["id"]
    got = trailseal_client.get(f"/api/v1/events/{first.get_json()['id']}", headers=tenant.headers)
    assert got.get_json()["idempotency_key"] == "clé-1"


@pytest.mark.parametrize("occurred_at", [
    1700000000, 1700000000.5, "1700000000", True, "2026-11-20T10:00:00.1234567Z",
    "2026-11-20T10:00:00", "2026-11-20", "20261120T100000Z",
])
def test_times_that_would_be_reinterpreted_are_refused(trailseal_client, tenant, occurred_at):
    resp = trailseal_client.post("/api/v1/events", json=make_event(occurred_at=occurred_at),
                                 headers=tenant.headers)
    assert resp.status_code == 422, occurred_at
    assert resp.get_json()["error"]["details"]["errors"][0]["loc"][-1] == "occurred_at"


@pytest.mark.parametrize("sent,kept", [
    ("2026-11-20T10:00:00.123456Z", "2026-11-20T10:00:00.123456Z"),
    ("2026-11-20T11:00:00.5+01:00", "2026-11-20T10:00:00.500000Z"),
])
def test_microsecond_times_are_kept(trailseal_client, tenant, sent, kept):
    created = trailseal_client.post("/api/v1/events", json=make_event(occurred_at=sent),
                                    headers=tenant.headers).get_json()
    got = trailseal_client.get(f"/api/v1/events/{created['id']}", headers=tenant.headers)
    assert got.get_json()["occurred_at"] == kept


@pytest.mark.parametrize("address", [
    "::1%<img src=x onerror=alert(1)>", "fe80::1%eth0", "::1%" + "a" * 500_000, "::1%\u0000",
    "1.2.3.4 ", "01.2.3.4",
])
def test_addresses_that_would_be_changed_are_refused(trailseal_client, tenant, address):
    resp = trailseal_client.post("/api/v1/events", json=make_event(ip_address=address),
                                 headers=tenant.headers)
    assert resp.status_code in (413, 422), address


@pytest.mark.parametrize("address", ["2001:DB8::1", "::ffff:192.0.2.1", "0:0:0:0:0:0:0:1"])
def test_addresses_are_kept_as_sent(trailseal_client, tenant, address):
    created = trailseal_client.post("/api/v1/events", json=make_event(ip_address=address),
                                    headers=tenant.headers).get_json()
    got = trailseal_client.get(f"/api/v1/events/{created['id']}", headers=tenant.headers)
    assert got.get_json()["ip_address"] == address


# --- 8. sessions end server-side -----------------------------------------------------------

def _signed_in_cookie(trailseal_app, email):
    client = trailseal_app.test_client()
    assert _sign_in(client, email).status_code == 302
    assert client.get("/api/v1/events").status_code == 200
    return client, client.get_cookie("session").value


def _replay(trailseal_app, cookie):
    thief = trailseal_app.test_client()
    thief.set_cookie("session", cookie)
    return thief.get("/api/v1/events").status_code


def test_a_saved_cookie_stops_working_after_sign_out(trailseal_app, user):
    client, cookie = _signed_in_cookie(trailseal_app, user)
    assert _replay(trailseal_app, cookie) == 200
    token = _csrf(client, "/")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert _replay(trailseal_app, cookie) == 401
    # other sessions of the same user are not affected by this sign-out
    _, second = _signed_in_cookie(trailseal_app, user)
    assert _replay(trailseal_app, second) == 200


def test_deactivation_and_password_change_end_sessions(trailseal_app, trailseal_services,
                                                       tenant, user):
    _, cookie = _signed_in_cookie(trailseal_app, user)
    info = set_password(trailseal_services, tenant.id, user, "a brand new secret")
    assert info["sessions_ended"] >= 1 and _replay(trailseal_app, cookie) == 401
    _, cookie = _signed_in_cookie_with(trailseal_app, user, "a brand new secret")
    deactivate_user(trailseal_services, tenant.id, user)
    assert _replay(trailseal_app, cookie) == 401


def _signed_in_cookie_with(trailseal_app, email, password):
    client = trailseal_app.test_client()
    assert _sign_in(client, email, password=password).status_code == 302
    return client, client.get_cookie("session").value


def test_sessions_expire(trailseal_app, user, config):
    _, cookie = _signed_in_cookie(trailseal_app, user)
    config(SESSION_MAX_HOURS=0.0)
    assert _replay(trailseal_app, cookie) == 401


def test_cli_password_change_ends_sessions(trailseal_app, trailseal_services, tenant, user):
    import os
    import subprocess
    import sys

    _, cookie = _signed_in_cookie(trailseal_app, user)
    env = dict(os.environ, TRAILSEAL_INSTANCE_PATH=trailseal_services.config["INSTANCE_PATH"])
    out = subprocess.run([sys.executable, "-m", "trailseal", "user", "password", "--tenant",
                          tenant.slug, "--email", user, "--password", "another long secret"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"password of {user} changed; 1 session(s) ended" in out.stdout
    assert _replay(trailseal_app, cookie) == 401
    assert _sign_in(trailseal_app.test_client(), user).status_code == 401  # old password
    client = trailseal_app.test_client()
    assert _sign_in(client, user, password="another long secret").status_code == 302
    missing = subprocess.run([sys.executable, "-m", "trailseal", "user", "password", "--tenant",
                              tenant.slug, "--email", "nobody@example.com", "--password",
                              "another long secret"], env=env, capture_output=True, text=True,
                             timeout=120)
    assert missing.returncode == 1 and "no user nobody@example.com" in missing.stderr
