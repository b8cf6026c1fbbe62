"""The public API plugins build on: ``trailseal.require_permission`` for routes and
``raise_alert`` on the service facade."""

from __future__ import annotations

import re
import uuid

import pytest
from flask import Blueprint, g, jsonify

from tests.conftest import make_event
from trailseal import create_app, hookimpl, require_permission
from trailseal.errors import NotFound, ValidationFailed
from trailseal.services.tenancy import create_api_key, create_user

bp = Blueprint("plugin_api_test", __name__)


@bp.get("/plugin-test/read")
@require_permission("audit:read", params=("n",))
def plugin_read(tenant_id):
    return jsonify({"tenant_id": tenant_id, "kind": g.principal.kind})


@bp.post("/plugin-test/write")
@require_permission("audit:write")
def plugin_write(tenant_id):
    return jsonify({"tenant_id": tenant_id}), 201


class RoutePlugin:
    @hookimpl
    def register_routes(self, app):
        return [bp]


class AlertListener:
    def __init__(self):
        self.alerts = []

    @hookimpl
    def anomaly_detected(self, alert):
        self.alerts.append(alert)


@pytest.fixture
def plugin_app(trailseal_services, register_plugin):
    """An app built with a plugin that adds routes (blueprints are registered at start-up)."""
    register_plugin(RoutePlugin())
    app = create_app(services=trailseal_services)
    app.config["TESTING"] = True
    return app


def test_routes_authenticate_and_get_their_tenant(plugin_app, trailseal_services, tenant):
    client = plugin_app.test_client()
    assert client.get("/plugin-test/read").status_code == 401
    assert client.get("/plugin-test/read").get_json()["error"]["code"] == "unauthorized"
    resp = client.get("/plugin-test/read?n=1", headers=tenant.headers)
    assert resp.status_code == 200
    assert resp.get_json() == {"tenant_id": str(tenant.id), "kind": "api_key"}
    assert client.get("/plugin-test/read?bogus=1", headers=tenant.headers).status_code == 422
    assert client.get("/plugin-test/read?n=%00", headers=tenant.headers).status_code == 400
    writer = {"Authorization": "Bearer " + create_api_key(trailseal_services, tenant.id,
                                                          ["audit:write"])["token"]}
    denied = client.get("/plugin-test/read", headers=writer)
    assert denied.status_code == 403
    assert denied.get_json()["error"]["details"] == {"required": "audit:read"}
    assert client.post("/plugin-test/write", headers=writer).status_code == 201


def test_sessions_read_but_never_write(plugin_app, trailseal_services, tenant):
    email = f"p-{uuid.uuid4().hex[:8]}@example.com"
    create_user(trailseal_services, tenant.id, email, "correct horse battery", "admin")
    client = plugin_app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"',
                      client.get("/login").get_data(as_text=True)).group(1)
    client.post("/login", data={"email": email, "password": "correct horse battery",
                                "csrf_token": token})
    read = client.get("/plugin-test/read")
    assert read.status_code == 200 and read.get_json()["kind"] == "user"
    assert client.post("/plugin-test/write").status_code == 401


def test_plugin_reads_are_in_the_access_log(plugin_app, tenant):
    client = plugin_app.test_client()
    client.get("/plugin-test/read?n=7", headers=tenant.headers)
    client.post("/plugin-test/write", headers=tenant.headers)
    entries = client.get("/api/v1/access-log?limit=3", headers=tenant.headers).get_json()
    logged = [(e["endpoint"], e["method"], e["query"]) for e in entries["entries"]]
    assert ("/plugin-test/read", "GET", {"n": "7"}) in logged
    assert not any(endpoint == "/plugin-test/write" for endpoint, _, _ in logged)


def test_rate_limits_apply_to_plugin_routes(plugin_app, trailseal_services, tenant):
    old = trailseal_services.config["RATE_LIMIT"]
    trailseal_services.config["RATE_LIMIT"] = "2/60"
    try:
        client = plugin_app.test_client()
        codes = [client.get("/plugin-test/read", headers=tenant.headers).status_code
                 for _ in range(3)]
    finally:
        trailseal_services.config["RATE_LIMIT"] = old
    assert codes[:2] == [200, 200] and codes[2] == 429


def test_raise_alert_dedupes_fires_the_hook_and_is_listed(trailseal_client, trailseal_services,
                                                          tenant, register_plugin):
    listener = register_plugin(AlertListener())
    event_id = trailseal_client.post("/api/v1/events", json=make_event(),
                                     headers=tenant.headers).get_json()["id"]
    first = trailseal_services.raise_alert(tenant.id, kind="vendor.suspicious", title="Odd",
                                           severity="high", event_id=event_id,
                                           details={"why": "test"})
    again = trailseal_services.raise_alert(tenant.id, kind="vendor.suspicious", title="Odd",
                                           severity="high", event_id=event_id)
    assert first is not None and again is None
    assert [a.id for a in listener.alerts] == [first.id]
    listed = trailseal_client.get("/api/v1/alerts", headers=tenant.headers).get_json()["alerts"]
    mine = [a for a in listed if a["kind"] == "vendor.suspicious"]
    assert len(mine) == 1 and mine[0]["event_id"] == event_id and mine[0]["severity"] == "high"
    # without an event and dedupe key every call raises a new alert
    loose = [trailseal_services.raise_alert(tenant.id, kind="vendor.note", title="n",
                                            severity="low") for _ in range(2)]
    assert all(loose) and loose[0].id != loose[1].id


@pytest.mark.parametrize("fields,error", [
    ({"kind": "chain_broken"}, ValidationFailed), ({"kind": "Bad Kind"}, ValidationFailed),
    ({"kind": ""}, ValidationFailed), ({"severity": "apocalyptic"}, ValidationFailed),
    ({"title": ""}, ValidationFailed), ({"title": "x" * 301}, ValidationFailed),
    ({"details": ["not", "a", "dict"]}, ValidationFailed),
    ({"details": {"when": object()}}, ValidationFailed),
    ({"event_id": "not-an-id"}, NotFound), ({"event_id": str(uuid.uuid4())}, NotFound),
])
def test_raise_alert_refuses_bad_input(trailseal_services, tenant, fields, error):
    args = {"kind": "vendor.x", "title": "t", "severity": "low", **fields}
    with pytest.raises(error):
        trailseal_services.raise_alert(tenant.id, **args)


def test_another_tenant_s_event_is_not_found(trailseal_client, trailseal_services, tenant):
    from trailseal.testing import make_tenant

    other = make_tenant(trailseal_services)
    theirs = trailseal_client.post("/api/v1/events", json=make_event(),
                                   headers=other.headers).get_json()["id"]
    with pytest.raises(NotFound):
        trailseal_services.raise_alert(tenant.id, kind="vendor.x", title="t", severity="low",
                                       event_id=theirs)
