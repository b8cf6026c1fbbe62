"""Table-driven bad input against every endpoint: no crafted request is a 500, and each class
of bad input gets the status and the one error shape it should.

Endpoints come from the app's URL map, so a new endpoint is covered (or fails the coverage
check below) without editing this file. Cases name the class of input they stand for; the
ones that were 500s before (forged cursors, non-ASCII digits, calendar extremes, NUL in
paths and queries) are the regression cases of the security probe.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from werkzeug.exceptions import MethodNotAllowed

from tests.conftest import make_event
from trailseal.schemas import ReportScheduleIn
from trailseal.services.alerts import record_alert
from trailseal.services.deliveries import delivery_id
from trailseal.services.reports import create_schedule
from trailseal.services.tenancy import Principal
from trailseal.testing import make_tenant


def _cursor(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@dataclass(frozen=True)
class Case:
    name: str
    query: str = ""  # appended to the URL as is (already percent-encoded)
    needs: str | None = None  # only for endpoints that accept this query parameter
    expect: tuple[int, ...] = (400, 422)


# Query-string cases, tried on every endpoint (or on those that accept ``needs``).
QUERY_CASES = [
    Case("unknown parameter", "?bogus=1", expect=(422,)),
    Case("unknown parameter, 10 kB", "?" + "b" * 10_000 + "=1", expect=(422,)),
    Case("NUL in a value", "?x=%00", expect=(400,)),
    Case("NUL in a key", "?%00=1", expect=(400,)),
    Case("other control character", "?x=%1B%5B31m", expect=(400,)),
    Case("invalid UTF-8", "?bogus=%FF%FE", expect=(422,)),
    Case("limit: superscript two", "?limit=%C2%B2", needs="limit", expect=(422,)),
    Case("limit: Arabic-Indic digit", "?limit=%D9%A3", needs="limit", expect=(422,)),
    Case("limit: negative", "?limit=-1", needs="limit", expect=(422,)),
    Case("limit: huge", "?limit=99999999999999999999999", needs="limit", expect=(422,)),
    Case("limit: float", "?limit=1e3", needs="limit", expect=(422,)),
    Case("cursor: [1,2]", "?cursor=" + _cursor([1, 2]), needs="cursor", expect=(400,)),
    Case("cursor: [null,1]", "?cursor=" + _cursor([None, 1]), needs="cursor", expect=(400,)),
    Case("cursor: [{a:1},1]", "?cursor=" + _cursor([{"a": 1}, 1]), needs="cursor",
         expect=(400,)),
    Case("cursor: seq past int8", "?cursor=" + _cursor(["2026-01-01T00:00:00Z", 2**70]),
         needs="cursor", expect=(400,)),
    Case("cursor: seq true", "?cursor=" + _cursor(["2026-01-01T00:00:00Z", True]),
         needs="cursor", expect=(400,)),
    Case("cursor: naive time", "?cursor=" + _cursor(["2026-01-01T00:00:00", 1]),
         needs="cursor", expect=(400,)),
    Case("cursor: three items", "?cursor=" + _cursor(["2026-01-01T00:00:00Z", 1, 2]),
         needs="cursor", expect=(400,)),
    Case("cursor: not base64", "?cursor=%%%%", needs="cursor", expect=(400, 422)),
    Case("cursor: a string", "?cursor=" + _cursor("x"), needs="cursor", expect=(400,)),
    Case("as_of: year 1", "?as_of=0001-01-01T00:00:00Z", needs="as_of", expect=(422,)),
    Case("as_of: year 9999 at -14:00", "?as_of=9999-12-31T23:59:59-14:00", needs="as_of",
         expect=(422,)),
    Case("as_of: no offset", "?as_of=2026-01-01T00:00:00", needs="as_of", expect=(422,)),
    Case("as_of: garbage", "?as_of=yesterday", needs="as_of", expect=(422,)),
    Case("start: Unix time", "?start=1700000000", needs="start", expect=(422,)),
    Case("start: 7 fractional digits", "?start=2026-01-01T00:00:00.1234567Z", needs="start",
         expect=(422,)),
    Case("start: year 1", "?start=0001-01-01T00:00:00%2B14:00", needs="start", expect=(200,)),
    Case("end: unencoded plus", "?end=2026-01-01T00:00:00+01:00", needs="end", expect=(422,)),
    Case("full: maybe", "?full=maybe", needs="full", expect=(422,)),
    Case("status: unknown", "?status=deleted", needs="status", expect=(422,)),
    Case("severity: unknown", "?severity=apocalyptic", needs="severity", expect=(422,)),
    Case("event_type: 10 kB", "?event_type=" + "a" * 10_000, needs="event_type",
         expect=(422,)),
    Case("first_day: Unix time", "?first_day=1700000000", needs="first_day", expect=(422,)),
    Case("first_day: a time", "?first_day=2026-01-01T00:00:00Z", needs="first_day",
         expect=(422,)),
    Case("first_day: 31 February", "?first_day=2026-02-31", needs="first_day", expect=(422,)),
    Case("first_day after last_day", "?first_day=2026-02-01&last_day=2026-01-01",
         needs="first_day", expect=(422,)),
    Case("last_day: two years on", "?first_day=2024-01-01&last_day=2026-01-01",
         needs="last_day", expect=(422,)),
    Case("last_day: year 1", "?last_day=0001-01-01", needs="last_day", expect=(200,)),
    Case("from: not a number", "?from=abc&to=1", needs="from", expect=(422,)),
    Case("from: zero", "?from=0&to=1", needs="from", expect=(422,)),
    Case("from: Arabic-Indic digit", "?from=%D9%A3&to=1", needs="from", expect=(422,)),
    Case("to: past int8", "?from=1&to=99999999999999999999", needs="to", expect=(422,)),
    Case("to: negative", "?from=1&to=-1", needs="to", expect=(422,)),
    Case("to: missing", "?from=1", needs="to", expect=(422,)),
    Case("from after to", "?from=5&to=1", needs="from", expect=(422,)),
    Case("from_seq: float", "?from_seq=1.5", needs="from_seq", expect=(422,)),
    Case("from_seq: zero", "?from_seq=0", needs="from_seq", expect=(422,)),
    Case("to_seq: superscript two", "?to_seq=%C2%B2", needs="to_seq", expect=(422,)),
    Case("to_seq: huge", "?to_seq=" + "9" * 30, needs="to_seq", expect=(422,)),
    Case("from_seq after to_seq", "?from_seq=9&to_seq=2", needs="from_seq", expect=(409, 422)),
]

# Bodies for the endpoints that take one: (name, content type, raw body, expected statuses).
BODY_CASES = [
    ("malformed JSON", "application/json", b'{"events": [', (400,)),
    ("not JSON at all", "application/json", b"\xff\xfe\x00", (400,)),
    ("wrong content type", "text/plain", b"{}", (415,)),
    ("no content type", "", b"{}", (415,)),
    ("empty body", "application/json", b"", (400,)),
    ("a JSON array", "application/json", b"[]", (422,)),
    ("a JSON string", "application/json", b'"x"', (422,)),
    ("null", "application/json", b"null", (422,)),
    ("deep nesting", "application/json", b"[" * 5000 + b"]" * 5000, (400,)),
    ("integer past 64 bits", "application/json", b'{"status": 123456789012345678901234}',
     (422,)),
    ("NUL inside a string", "application/json", json.dumps({"status": "op\u0000en"}).encode(),
     (422,)),
    ("lone surrogate", "application/json", b'{"status": "\\ud800"}', (400, 422)),
    ("over the size limit", "application/json", b'{"x": "' + b"a" * (2 * 1024 * 1024) + b'"}',
     (413,)),
]

# POST routes that read no body (an action on the item the path names).
TAKES_NO_BODY = {"/api/v1/reports/schedules/<schedule_id>/run"}

# Path arguments: (name, value as sent in the URL, expected statuses).
PATH_CASES = [
    ("NUL", "%00", (400,)),
    ("control character", "%1B", (400,)),
    ("not an id", "not-an-id", (404,)),
    ("unknown id", "00000000-0000-4000-8000-000000000000", (404,)),
    ("8 kB", "a" * 8000, (404,)),
    ("unicode", quote("événement"), (404,)),
    ("dot segments", "..%2F..%2Fetc%2Fpasswd", (404,)),
]


@pytest.fixture(scope="module")
def world(trailseal_app, trailseal_services):
    tenant = make_tenant(trailseal_services)
    client = trailseal_app.test_client()
    created = client.post("/api/v1/events", json=make_event(), headers=tenant.headers)
    assert created.status_code == 201
    # A notification channel (nothing listens on port 9; its delivery is never run here).
    integration = client.post("/api/v1/integrations", json=_INTEGRATION, headers=tenant.headers)
    assert integration.status_code == 201, integration.get_json()
    alert = record_alert(trailseal_services, tenant.id, kind="test", severity="low",
                         title="bad input", details={})
    integration_id = integration.get_json()["id"]
    schedule = _report_schedule(trailseal_services, tenant)
    return {"tenant": tenant, "client": client, "event_id": created.get_json()["id"],
            "alert_id": str(alert.id), "integration_id": integration_id,
            "delivery_id": str(delivery_id(alert.id, integration_id)),
            "schedule_id": schedule["id"]}


_INTEGRATION = {"type": "webhook", "name": "bad input", "min_severity": "info",
                "config": {"url": "http://127.0.0.1:9/hook", "secret": "s" * 32}}


def _report_schedule(svc, tenant) -> dict:
    """A report schedule of ``tenant`` (stored while mail looks configured; nothing is sent:
    its first slot is next January)."""
    saved = svc.config["SMTP_HOST"]
    svc.config["SMTP_HOST"] = "127.0.0.1"
    try:
        body = ReportScheduleIn.model_validate(_SCHEDULE)
        return create_schedule(svc, Principal("api_key", "test", tenant.id,
                                              frozenset({"audit:admin"})), body)
    finally:
        svc.config["SMTP_HOST"] = saved


_SCHEDULE = {"name": "Yearly", "cron": "0 0 1 1 *", "timezone": "UTC", "format": "csv",
             "recipients": ["ciso@example.com"]}


def _api_routes(app) -> list[tuple[str, str, object]]:
    """(rule, method, view) for every API route of the app."""
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            routes.append((rule.rule, method, app.view_functions[rule.endpoint]))
    return routes


def _url(rule: str, world, value: str | None = None) -> str:
    url = rule.replace("<event_id>", value or world["event_id"])
    url = url.replace("<format_name>", value or "csv")
    url = url.replace("<subject_id>", value or "u-1")  # the actor of make_event()
    url = url.replace("<job_id>", value or "00000000-0000-4000-8000-000000000000")
    url = url.replace("<integration_id>", value or world["integration_id"])
    url = url.replace("<delivery_id>", value or world["delivery_id"])
    url = url.replace("<schedule_id>", value or world["schedule_id"])
    url = url.replace("<period>", value or "daily")
    if "<hold_id>" in url:
        url = url.replace("<hold_id>", value or _hold_id(world))
    return url.replace("<alert_id>", value or world["alert_id"])


def _hold_id(world) -> str:
    """An active legal hold of the world's tenant (placed on first use)."""
    if "hold_id" not in world:
        resp = world["client"].post("/api/v1/legal-holds", headers=world["tenant"].headers,
                                    json={"scope": "entity", "entity_type": "invoice",
                                          "entity_id": "INV-1", "reason": "bad input"})
        assert resp.status_code == 201, resp.get_json()
        world["hold_id"] = resp.get_json()["id"]
    return world["hold_id"]


def _send(client, method, url, headers, body=None, content_type=None):
    kwargs = {"headers": headers}
    if body is not None:
        kwargs["data"] = body
        if content_type:
            kwargs["content_type"] = content_type
    return client.open(url, method=method, **kwargs)


def _check(resp, expect, what):
    assert resp.status_code < 500, (what, resp.status_code, resp.get_data(as_text=True)[:300])
    assert resp.status_code in expect, (what, resp.status_code, resp.get_data(as_text=True)[:300])
    if resp.status_code >= 400:
        error = resp.get_json()["error"]
        assert set(error) == {"code", "message", "details"} and error["message"], what


def test_every_api_route_is_covered(trailseal_app):
    rules = {rule for rule, _, _ in _api_routes(trailseal_app)}
    known = {"/api/v1/events", "/api/v1/events/batch", "/api/v1/events/<event_id>",
             "/api/v1/timeline", "/api/v1/dashboard/stats", "/api/v1/chain/verify",
             "/api/v1/alerts", "/api/v1/alerts/<alert_id>", "/api/v1/access-log",
             "/api/v1/anomalies", "/api/v1/anomalies/<alert_id>/feedback",
             "/api/v1/anomalies/settings", "/api/v1/models", "/api/v1/bias-metrics",
             "/api/v1/events/<event_id>/insights", "/api/v1/rules/tags",
             "/api/v1/search", "/api/v1/export/<format_name>",
             "/api/v1/subjects/<subject_id>/export", "/api/v1/export/jobs/<job_id>",
             "/api/v1/export/jobs/<job_id>/file", "/api/v1/usage", "/api/v1/openapi.json",
             "/api/v1/integrations", "/api/v1/integrations/<integration_id>",
             "/api/v1/integrations/<integration_id>/test",
             "/api/v1/integrations/<integration_id>/deliveries",
             "/api/v1/integrations/<integration_id>/deliveries/<delivery_id>/redeliver",
             "/api/v1/reports/schedules", "/api/v1/reports/schedules/<schedule_id>",
             "/api/v1/reports/schedules/<schedule_id>/run",
             "/api/v1/settings", "/api/v1/summary/<period>",
             "/api/v1/events/<event_id>/explain",
             "/api/v1/checkpoints", "/api/v1/checkpoints/public-key",
             "/api/v1/checkpoints/consistency", "/api/v1/events/<event_id>/proof",
             "/api/v1/chain/bundle", "/api/v1/retention", "/api/v1/legal-holds",
             "/api/v1/legal-holds/<hold_id>/release", "/api/v1/subjects/<subject_id>/erase",
             "/api/v1/tenant/deletion", "/api/v1/tenant/deletion/confirm",
             "/api/v1/tenant/deletion/cancel"}
    # A new route must get a valid body and path arguments here before it can be fuzzed.
    assert rules == known, rules ^ known


def _valid_body(rule: str, method: str) -> dict | None:
    if method == "POST" and rule == "/api/v1/events":
        return make_event()
    if method == "POST" and rule == "/api/v1/events/batch":
        return {"events": [make_event()]}
    if method == "PATCH" and rule == "/api/v1/events/<event_id>/insights":
        return {"category": "security", "notes": "bad input"}
    if method == "PATCH":
        return {"status": "acknowledged"}
    if method == "PUT" and rule == "/api/v1/rules/tags":
        return {"rules": []}
    if method == "POST" and rule == "/api/v1/anomalies/<alert_id>/feedback":
        return {"is_false_positive": False, "notes": "expected"}
    if method == "PUT" and rule == "/api/v1/anomalies/settings":
        return {"threshold": 0.7}
    if method == "POST" and rule == "/api/v1/search":
        return {"query": "who changed the settings", "answer": True}
    if method == "POST" and rule == "/api/v1/export/<format_name>":
        return {"severity": ["medium"], "tag": ["finance"]}
    if method == "POST" and rule == "/api/v1/integrations":
        return {**_INTEGRATION, "name": "valid body"}
    if method == "POST" and rule == "/api/v1/reports/schedules":
        return dict(_SCHEDULE)
    if method == "PUT" and rule == "/api/v1/settings":
        return {"timezone": "Europe/Berlin"}
    if method == "POST" and rule == "/api/v1/checkpoints":
        return {}
    if method == "PUT" and rule == "/api/v1/retention":
        return {"days": 3650}
    if method == "POST" and rule == "/api/v1/legal-holds":
        return {"scope": "entity", "entity_type": "invoice", "entity_id": "INV-1",
                "reason": "bad input"}
    if method == "POST" and rule in ("/api/v1/legal-holds/<hold_id>/release",
                                     "/api/v1/subjects/<subject_id>/erase"):
        return {"reason": "bad input"}
    if method == "POST" and rule == "/api/v1/tenant/deletion":
        return {"reason": "bad input"}
    if method == "POST" and rule in ("/api/v1/tenant/deletion/confirm",
                                     "/api/v1/tenant/deletion/cancel"):
        return {"deletion_id": "00000000-0000-4000-8000-000000000000", "reason": "bad input"}
    return None


@pytest.mark.parametrize("case", QUERY_CASES, ids=lambda c: c.name)
def test_query_cases_on_every_endpoint(trailseal_app, world, case):
    tried = 0
    for rule, method, view in _api_routes(trailseal_app):
        accepted = getattr(view, "accepted_params", None)
        if accepted is None:  # public document without authentication: must not fail
            resp = world["client"].open(rule + case.query, method=method)
            assert resp.status_code < 500, (rule, resp.status_code)
            continue
        if case.needs and case.needs not in accepted:
            continue
        body = _valid_body(rule, method)
        resp = _send(world["client"], method, _url(rule, world) + case.query,
                     world["tenant"].headers,
                     json.dumps(body).encode() if body is not None else None,
                     "application/json" if body is not None else None)
        _check(resp, case.expect, (case.name, method, rule))
        tried += 1
    assert tried, f"no endpoint takes {case.needs}"


@pytest.mark.parametrize("name,content_type,body,expect", BODY_CASES,
                         ids=[c[0] for c in BODY_CASES])
def test_body_cases_on_every_endpoint_with_a_body(trailseal_app, world, name, content_type,
                                                  body, expect):
    tried = 0
    for rule, method, _ in _api_routes(trailseal_app):
        if method not in ("POST", "PATCH", "PUT") or rule in TAKES_NO_BODY:
            continue
        resp = _send(world["client"], method, _url(rule, world), world["tenant"].headers,
                     body, content_type)
        # the events endpoints validate events, the alert endpoint a status: both 422
        _check(resp, expect, (name, method, rule))
        tried += 1
    assert tried >= 3


@pytest.mark.parametrize("name,value,expect", PATH_CASES, ids=[c[0] for c in PATH_CASES])
def test_path_cases_on_every_endpoint_with_an_id(trailseal_app, world, name, value, expect):
    tried = 0
    for rule, method, _ in _api_routes(trailseal_app):
        if "<" not in rule:
            continue
        body = _valid_body(rule, method)
        resp = _send(world["client"], method, _url(rule, world, value), world["tenant"].headers,
                     json.dumps(body).encode() if body is not None else None,
                     "application/json" if body is not None else None)
        # a summary's period is a word of a fixed list, not an id: a bad one is a 422 (a
        # path with slashes matches no route: 404)
        _check(resp, (404, 422) if "<period>" in rule and expect == (404,) else expect,
               (name, method, rule))
        tried += 1
    assert tried >= 2


@pytest.mark.parametrize("header", [
    {"Idempotency-Key": "\xff\xfe"},  # latin-1 text of bytes that are not UTF-8
    {"Idempotency-Key": "x" * 201},
    {"Idempotency-Key": "   "},
    {"Idempotency-Key": "a\u0085b"},  # NEL: not printable
])
def test_bad_idempotency_keys(world, header):
    for url, body in (("/api/v1/events", make_event()),
                      ("/api/v1/events/batch", {"events": [make_event()]})):
        resp = world["client"].post(url, json=body, headers={**world["tenant"].headers, **header})
        _check(resp, (400,), (url, header))


def test_wrong_methods_are_405_with_the_error_shape(trailseal_app, world):
    allowed: dict[str, set[str]] = {}
    for rule in trailseal_app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            allowed.setdefault(rule.rule, set()).update(rule.methods)
    adapter = trailseal_app.url_map.bind("localhost")
    tried = 0
    for rule, methods in allowed.items():
        for method in {"GET", "POST", "PUT", "PATCH", "DELETE"} - methods:
            try:  # "GET /events/batch" is another route's "GET /events/<event_id>"
                adapter.match(_url(rule, world), method)
                continue
            except MethodNotAllowed:
                pass
            resp = world["client"].open(_url(rule, world), method=method,
                                        headers=world["tenant"].headers)
            _check(resp, (405,), (method, rule))
            tried += 1
    assert tried > 10


@pytest.mark.parametrize("path", ["/login?next=%00", "/login?next=%0A%0D", "/?x=%00",
                                  "/healthz?x=%00", "/metrics?%00=1", "/nope%00"])
def test_web_routes_survive_control_characters(world, path):
    resp = world["client"].get(path)
    assert resp.status_code < 500, (path, resp.status_code)


# Bodies of POST /search that are valid JSON but not a valid search: (name, body, statuses).
SEARCH_BODY_CASES = [
    ("no query", {}, (422,)),
    ("empty query", {"query": ""}, (422,)),
    ("white-space query", {"query": " \t "}, (422,)),
    ("query too long", {"query": "a" * 1001}, (422,)),
    ("query not a string", {"query": ["who"]}, (422,)),
    ("NUL in the query", {"query": "who\u0000"}, (422,)),
    ("limit 0", {"query": "x", "limit": 0}, (422,)),
    ("limit 101", {"query": "x", "limit": 101}, (422,)),
    ("limit a float", {"query": "x", "limit": 1.5}, (422,)),
    ("limit a string", {"query": "x", "limit": "ten"}, (422,)),
    ("answer not a boolean", {"query": "x", "answer": "maybe"}, (422,)),
    ("unknown key", {"query": "x", "bogus": 1}, (422,)),
    ("filters not an object", {"query": "x", "filters": "severity=high"}, (422,)),
    ("unknown filter", {"query": "x", "filters": {"bogus": 1}}, (422,)),
    ("filter start: Unix time", {"query": "x", "filters": {"start": 1700000000}}, (422,)),
    ("filter start: year 1", {"query": "x", "filters": {"start": "0001-01-01T00:00:00+14:00"}},
     (200,)),
    ("filter severity unknown", {"query": "x", "filters": {"severity": ["apocalyptic"]}},
     (422,)),
    ("filter event_type 10 kB", {"query": "x", "filters": {"event_type": ["a" * 10_000]}},
     (422,)),
    ("filter limit (not a filter)", {"query": "x", "filters": {"limit": 5}}, (422,)),
    ("filter cursor (not a filter)", {"query": "x", "filters": {"cursor": "abc"}}, (422,)),
    ("only punctuation", {"query": "?!&|:*()'\""}, (200,)),
    ("tsquery operators", {"query": "a & !b | c:* <-> (d"}, (200,)),
    ("every filter", {"query": "x", "limit": 100, "filters": {
        "start": "2020-01-01T00:00:00Z", "end": "2030-01-01T00:00:00Z", "event_type": ["a.b"],
        "actor": "u", "entity_type": "t", "entity_id": "i", "severity": ["high", "low"],
        "category": "c", "risk_level": "r", "tag": ["t1", "t2"]}}, (200,)),
]


@pytest.mark.parametrize("name,body,expect", SEARCH_BODY_CASES,
                         ids=[c[0] for c in SEARCH_BODY_CASES])
def test_search_body_cases(world, name, body, expect):
    resp = world["client"].post("/api/v1/search", json=body, headers=world["tenant"].headers)
    _check(resp, expect, name)


# Bodies of POST /integrations that are valid JSON but not a valid integration.
INTEGRATION_BODY_CASES = [
    ("empty object", {}, (422,)),
    ("type not a string", {**_INTEGRATION, "type": ["webhook"]}, (422,)),
    ("unknown type", {**_INTEGRATION, "type": "carrier-pigeon"}, (422,)),
    ("name not a string", {**_INTEGRATION, "name": 7}, (422,)),
    ("name with NUL", {**_INTEGRATION, "name": "a\u0000b"}, (422,)),
    ("name 10 kB", {**_INTEGRATION, "name": "n" * 10_000}, (422,)),
    ("min_severity null", {**_INTEGRATION, "min_severity": None}, (422,)),
    ("config a string", {**_INTEGRATION, "config": "url=x"}, (422,)),
    ("config url not a string", {**_INTEGRATION, "config": {"url": 5, "secret": "s" * 32}},
     (422,)),
    ("config url with NUL", {**_INTEGRATION, "config": {"url": "https://a\u0000b/",
                                                        "secret": "s" * 32}}, (422,)),
    ("config url 10 kB", {**_INTEGRATION, "config": {"url": "https://" + "a" * 10_000,
                                                     "secret": "s" * 32}}, (422,)),
    ("config url IPv6 garbage", {**_INTEGRATION, "config": {"url": "https://[::1/",
                                                            "secret": "s" * 32}}, (422,)),
    ("config url bad port", {**_INTEGRATION, "config": {"url": "https://a.test:0x50/",
                                                        "secret": "s" * 32}}, (422,)),
    ("config secret with NUL", {**_INTEGRATION, "config": {"url": "http://127.0.0.1:9/",
                                                           "secret": "s" * 32 + "\u0000"}},
     (422,)),
    ("config nested junk", {**_INTEGRATION, "config": {"url": {"a": [1, {"b": None}]},
                                                       "secret": "s" * 32}}, (422,)),
    ("email recipients not a list", {"type": "email", "name": "m",
                                     "config": {"recipients": "a@b.test"}}, (422,)),
]


@pytest.mark.parametrize("name,body,expect", INTEGRATION_BODY_CASES,
                         ids=[c[0] for c in INTEGRATION_BODY_CASES])
def test_integration_body_cases(world, name, body, expect):
    before = world["client"].get("/api/v1/integrations", headers=world["tenant"].headers)
    resp = world["client"].post("/api/v1/integrations", json=body,
                                headers=world["tenant"].headers)
    _check(resp, expect, name)
    after = world["client"].get("/api/v1/integrations", headers=world["tenant"].headers)
    assert after.get_json() == before.get_json(), name  # nothing half-written


# Bodies of POST /reports/schedules that are valid JSON but not a valid schedule.
SCHEDULE_BODY_CASES = [
    ("no name", {"name": None}), ("name of NUL", {"name": "a\u0000b"}),
    ("name 201 characters", {"name": "n" * 201}),
    ("cron missing", {"cron": None}), ("cron a number", {"cron": 5}),
    ("cron empty", {"cron": ""}), ("cron 6 fields", {"cron": "0 0 9 * * 1"}),
    ("cron 10 kB", {"cron": "1," * 5000 + "1 * * * *"}),
    ("cron minute 60", {"cron": "60 * * * *"}), ("cron step 0", {"cron": "*/0 * * * *"}),
    ("cron every minute", {"cron": "* * * * *"}), ("cron Feb 31", {"cron": "0 0 31 2 *"}),
    ("cron unknown alias", {"cron": "@fortnightly"}), ("cron with NUL", {"cron": "0 9 * * \u0000"}),
    ("cron with a newline", {"cron": "0 9 * *\n*"}),
    ("zone unknown", {"timezone": "Atlantis/Capital"}), ("zone path", {"timezone": "/etc/localtime"}),
    ("zone 65 characters", {"timezone": "Z" * 65}), ("zone a list", {"timezone": ["UTC"]}),
    ("format unknown", {"format": "docx"}), ("format empty", {"format": ""}),
    ("recipients none", {"recipients": []}), ("recipients null", {"recipients": None}),
    ("recipients 21", {"recipients": [f"a{n}@example.com" for n in range(21)]}),
    ("recipient CRLF", {"recipients": ["a@example.com\r\nBcc: b@example.com"]}),
    ("recipient 300 characters", {"recipients": ["a" * 290 + "@example.com"]}),
    ("recipient unicode", {"recipients": ["ü@example.com"]}),
    ("filters not an object", {"filters": "tag=finance"}),
    ("filter unknown", {"filters": {"bogus": 1}}),
    ("filter start Unix time", {"filters": {"start": 1700000000}}),
    ("unknown key", {"bogus": 1}),
]


@pytest.mark.parametrize("name,change", SCHEDULE_BODY_CASES,
                         ids=[c[0] for c in SCHEDULE_BODY_CASES])
def test_report_schedule_body_cases(world, trailseal_services, monkeypatch, name, change):
    monkeypatch.setitem(trailseal_services.config, "SMTP_HOST", "127.0.0.1")
    before = world["client"].get("/api/v1/reports/schedules", headers=world["tenant"].headers)
    resp = world["client"].post("/api/v1/reports/schedules", json={**_SCHEDULE, **change},
                                headers=world["tenant"].headers)
    _check(resp, (422,), name)
    after = world["client"].get("/api/v1/reports/schedules", headers=world["tenant"].headers)
    assert after.get_json() == before.get_json(), name  # nothing half-written
# Summaries, explanations and settings: (name, method, URL or (URL, body), statuses).
SUMMARY_CASES = [
    ("period unknown", "GET", "/api/v1/summary/yearly", (422,)),
    ("period upper case", "GET", "/api/v1/summary/DAILY", (422,)),
    ("period 8 kB", "GET", "/api/v1/summary/" + "d" * 8000, (422,)),
    ("date: not a day", "GET", "/api/v1/summary/daily?date=2026-02-30", (422,)),
    ("date: no dashes", "GET", "/api/v1/summary/daily?date=20261120", (422,)),
    ("date: with a time", "GET", "/api/v1/summary/daily?date=2026-11-20T00:00:00Z", (422,)),
    ("date: year 1", "GET", "/api/v1/summary/weekly?date=0001-01-01", (422,)),
    ("date: year 9999", "GET", "/api/v1/summary/monthly?date=9999-12-31", (422,)),
    ("date: Arabic-Indic digits", "GET", "/api/v1/summary/daily?date=%D9%A2%D9%A0%D9%A2%D9%A6"
     "-01-01", (422,)),
    ("date: empty", "GET", "/api/v1/summary/daily?date=", (422,)),
    ("date: far past and future ends", "GET", "/api/v1/summary/monthly?date=1971-01-01",
     (200,)),
    ("date: last year allowed", "GET", "/api/v1/summary/weekly?date=9998-12-31", (200,)),
    ("zone unknown", "PUT", ("/api/v1/settings", {"timezone": "Mars/Olympus"}), (422,)),
    ("zone a path", "PUT", ("/api/v1/settings", {"timezone": "../../../etc/passwd"}), (422,)),
    ("zone lower case", "PUT", ("/api/v1/settings", {"timezone": "europe/berlin"}), (422,)),
    ("zone empty", "PUT", ("/api/v1/settings", {"timezone": ""}), (422,)),
    ("zone too long", "PUT", ("/api/v1/settings", {"timezone": "A/" + "b" * 100}), (422,)),
    ("zone a number", "PUT", ("/api/v1/settings", {"timezone": 1}), (422,)),
    ("zone null", "PUT", ("/api/v1/settings", {"timezone": None}), (422,)),
    ("zone NUL", "PUT", ("/api/v1/settings", {"timezone": "UTC\u0000"}), (422,)),
    ("no setting", "PUT", ("/api/v1/settings", {}), (422,)),
    ("unknown setting", "PUT", ("/api/v1/settings", {"zone": "UTC"}), (422,)),
]


@pytest.mark.parametrize("name,method,target,expect", SUMMARY_CASES,
                         ids=[c[0] for c in SUMMARY_CASES])
def test_summary_and_settings_cases(world, name, method, target, expect):
    url, body = target if isinstance(target, tuple) else (target, None)
    resp = world["client"].open(url, method=method, json=body, headers=world["tenant"].headers)
    _check(resp, expect, name)
    if method == "PUT" and resp.status_code >= 400:  # nothing half-written
        shown = world["client"].get("/api/v1/settings", headers=world["tenant"].headers)
        assert shown.get_json()["timezone"]["value"] in ("UTC", "Europe/Berlin"), name
# Bodies of POST /checkpoints that are valid JSON but not the empty object it takes.
CHECKPOINT_BODY_CASES = [
    ("a key", {"tree_size": 5}),
    ("a nested object", {"x": {"y": 1}}),
]


@pytest.mark.parametrize("name,body", CHECKPOINT_BODY_CASES,
                         ids=[c[0] for c in CHECKPOINT_BODY_CASES])
def test_checkpoint_body_cases(world, name, body):
    resp = world["client"].post("/api/v1/checkpoints", json=body,
                                headers=world["tenant"].headers)
    _check(resp, (422,), name)


# Retention and legal holds: (name, method, URL, body, statuses); nothing is half-written.
RETENTION_CASES = [
    ("days zero", "PUT", "/api/v1/retention", {"days": 0}, (422,)),
    ("days negative", "PUT", "/api/v1/retention", {"days": -1}, (422,)),
    ("days past 100 years", "PUT", "/api/v1/retention", {"days": 36_501}, (422,)),
    ("days a float", "PUT", "/api/v1/retention", {"days": 30.5}, (422,)),
    ("days a string", "PUT", "/api/v1/retention", {"days": "30"}, (422,)),
    ("days true", "PUT", "/api/v1/retention", {"days": True}, (422,)),
    ("days past int8", "PUT", "/api/v1/retention", {"days": 2**70}, (422,)),
    ("days missing", "PUT", "/api/v1/retention", {}, (422,)),
    ("unknown key", "PUT", "/api/v1/retention", {"days": 30, "years": 1}, (422,)),
    ("hold: no scope", "POST", "/api/v1/legal-holds", {"reason": "x"}, (422,)),
    ("hold: unknown scope", "POST", "/api/v1/legal-holds", {"scope": "actor", "reason": "x"},
     (422,)),
    ("hold: no reason", "POST", "/api/v1/legal-holds", {"scope": "tenant"}, (422,)),
    ("hold: empty reason", "POST", "/api/v1/legal-holds", {"scope": "tenant", "reason": ""},
     (422,)),
    ("hold: reason 1001 chars", "POST", "/api/v1/legal-holds",
     {"scope": "tenant", "reason": "r" * 1001}, (422,)),
    ("hold: NUL in reason", "POST", "/api/v1/legal-holds",
     {"scope": "tenant", "reason": "a\u0000b"}, (422,)),
    ("hold: entity without id", "POST", "/api/v1/legal-holds",
     {"scope": "entity", "entity_type": "invoice", "reason": "x"}, (422,)),
    ("hold: tenant with an entity", "POST", "/api/v1/legal-holds",
     {"scope": "tenant", "entity_type": "invoice", "entity_id": "1", "reason": "x"}, (422,)),
    ("hold: entity_id too long", "POST", "/api/v1/legal-holds",
     {"scope": "entity", "entity_type": "invoice", "entity_id": "i" * 257, "reason": "x"},
     (422,)),
    ("hold: entity_type a number", "POST", "/api/v1/legal-holds",
     {"scope": "entity", "entity_type": 7, "entity_id": "1", "reason": "x"}, (422,)),
    ("release: no reason", "POST", "/api/v1/legal-holds/<hold_id>/release", {}, (422,)),
    ("release: unknown key", "POST", "/api/v1/legal-holds/<hold_id>/release",
     {"reason": "x", "by": "me"}, (422,)),
    ("holds: active maybe", "GET", "/api/v1/legal-holds?active=maybe", None, (422,)),
]


@pytest.mark.parametrize("name,method,url,body,expect", RETENTION_CASES,
                         ids=[c[0] for c in RETENTION_CASES])
def test_retention_and_hold_cases(world, name, method, url, body, expect):
    headers = world["tenant"].headers
    before = (world["client"].get("/api/v1/retention", headers=headers).get_json(),
              world["client"].get("/api/v1/legal-holds", headers=headers).get_json())
    resp = world["client"].open(_url(url, world), method=method, json=body, headers=headers)
    _check(resp, expect, name)
    after = (world["client"].get("/api/v1/retention", headers=headers).get_json(),
             world["client"].get("/api/v1/legal-holds", headers=headers).get_json())
    assert after == before, name  # nothing half-written
# Bodies of POST /subjects/{id}/erase that are valid JSON but not a valid erasure request.
ERASE_BODY_CASES = [
    ("empty object", {}, (422,)),
    ("reason empty", {"reason": ""}, (422,)),
    ("reason too long", {"reason": "r" * 1001}, (422,)),
    ("reason not a string", {"reason": ["why"]}, (422,)),
    ("reason with NUL", {"reason": "a\u0000b"}, (422,)),
    ("unknown key", {"reason": "why", "subject": "u-2"}, (422,)),
]


@pytest.mark.parametrize("name,body,expect", ERASE_BODY_CASES,
                         ids=[c[0] for c in ERASE_BODY_CASES])
def test_erase_body_cases(trailseal_services, world, name, body, expect):
    resp = world["client"].post("/api/v1/subjects/u-1/erase", json=body,
                                headers=world["tenant"].headers)
    _check(resp, expect, name)
    with trailseal_services.db.cursor(world["tenant"].id) as cur:
        cur.execute("SELECT count(*) FROM subject_erasures")
        assert cur.fetchone()[0] == 0  # nothing half-written


# Tenant deletion bodies that are valid JSON but not a valid request: nothing is recorded,
# and the chain stays open.
TENANT_DELETION_CASES = [
    ("request: no reason", "/api/v1/tenant/deletion", {}, (422,)),
    ("request: empty reason", "/api/v1/tenant/deletion", {"reason": ""}, (422,)),
    ("request: reason 1001 chars", "/api/v1/tenant/deletion", {"reason": "r" * 1001}, (422,)),
    ("request: reason a list", "/api/v1/tenant/deletion", {"reason": ["why"]}, (422,)),
    ("request: NUL in reason", "/api/v1/tenant/deletion", {"reason": "a\u0000b"}, (422,)),
    ("request: unknown key", "/api/v1/tenant/deletion", {"reason": "x", "now": True}, (422,)),
    ("confirm: no id", "/api/v1/tenant/deletion/confirm", {}, (422,)),
    ("confirm: id a number", "/api/v1/tenant/deletion/confirm", {"deletion_id": 7}, (422,)),
    ("confirm: id too long", "/api/v1/tenant/deletion/confirm", {"deletion_id": "d" * 65},
     (422,)),
    ("confirm: id not a uuid", "/api/v1/tenant/deletion/confirm", {"deletion_id": "x"}, (404,)),
    ("confirm: unknown id", "/api/v1/tenant/deletion/confirm",
     {"deletion_id": "00000000-0000-4000-8000-000000000000"}, (404,)),
    ("confirm: unknown key", "/api/v1/tenant/deletion/confirm",
     {"deletion_id": "x", "force": True}, (422,)),
    ("cancel: no reason", "/api/v1/tenant/deletion/cancel",
     {"deletion_id": "00000000-0000-4000-8000-000000000000"}, (422,)),
    ("cancel: unknown id", "/api/v1/tenant/deletion/cancel",
     {"deletion_id": "00000000-0000-4000-8000-000000000000", "reason": "x"}, (404,)),
]


@pytest.mark.parametrize("name,url,body,expect", TENANT_DELETION_CASES,
                         ids=[c[0] for c in TENANT_DELETION_CASES])
def test_tenant_deletion_cases(trailseal_services, world, name, url, body, expect):
    headers = world["tenant"].headers
    with trailseal_services.db.cursor(world["tenant"].id) as cur:
        cur.execute("SELECT count(*) FROM tenant_deletion_steps")
        before = cur.fetchone()[0]
    resp = world["client"].post(url, json=body, headers=headers)
    _check(resp, expect, name)
    with trailseal_services.db.cursor(world["tenant"].id) as cur:
        cur.execute("SELECT count(*) FROM tenant_deletion_steps")
        assert cur.fetchone()[0] == before, name  # nothing recorded
        cur.execute("SELECT closed_at FROM chain_heads")
        assert cur.fetchone()[0] is None, name
