"""Properties 19 and 20: authorization enforcement and audit access logging."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import make_event
from tests.property.strategies import PROPERTY
from trailseal.services.tenancy import PERMISSIONS, create_api_key
from trailseal.testing import make_tenant

ENDPOINTS = [
    ("GET", "/api/v1/events", "audit:read"),
    ("GET", "/api/v1/timeline", "audit:read"),
    ("GET", "/api/v1/dashboard/stats", "audit:read"),
    ("GET", "/api/v1/chain/verify", "audit:read"),
    ("GET", "/api/v1/alerts", "audit:read"),
    ("GET", "/api/v1/access-log", "audit:admin"),
    ("POST", "/api/v1/events", "audit:write"),
    ("POST", "/api/v1/events/batch", "audit:write"),
]
_T = {}


def _tenant(services):
    if "t" not in _T:
        _T["t"] = make_tenant(services)
    return _T["t"]


@PROPERTY
@given(perms=st.sets(st.sampled_from(PERMISSIONS), min_size=1), endpoint=st.sampled_from(ENDPOINTS))
def test_property_19_authorization_enforcement(trailseal_app, trailseal_services, perms, endpoint):
    """A request succeeds iff the key holds the endpoint's permission (admin holds all)."""
    tenant = _tenant(trailseal_services)
    key = create_api_key(trailseal_services, tenant.id, sorted(perms))
    headers = {"Authorization": f"Bearer {key['token']}"}
    method, path, needed = endpoint
    client = trailseal_app.test_client()
    if method == "GET":
        resp = client.get(path, headers=headers)
    elif path.endswith("batch"):
        resp = client.post(path, json={"events": [make_event()]}, headers=headers)
    else:
        resp = client.post(path, json=make_event(), headers=headers)
    allowed = needed in perms or "audit:admin" in perms
    assert resp.status_code == ((201 if method == "POST" else 200) if allowed else 403)
    if not allowed:
        assert resp.get_json()["error"]["code"] == "forbidden"


READS = st.sampled_from([
    ("/api/v1/events", {"actor": "alice"}), ("/api/v1/events", {"severity": ["high", "low"]}),
    ("/api/v1/timeline", {"limit": "3"}), ("/api/v1/dashboard/stats", {}),
    ("/api/v1/chain/verify", {}), ("/api/v1/alerts", {}), ("/api/v1/events", {}),
])


@PROPERTY
@given(reads=st.lists(READS, min_size=1, max_size=6))
def test_property_20_audit_access_logging(trailseal_app, trailseal_services, reads):
    """Each successful read appends exactly one access record naming caller, path and query."""
    tenant = make_tenant(trailseal_services)
    client = trailseal_app.test_client()
    for path, query in reads:
        assert client.get(path, query_string=query, headers=tenant.headers).status_code == 200
    with trailseal_services.db.cursor(tenant.id) as cur:
        cur.execute("SELECT principal_type, principal_id, endpoint, query FROM audit_access_log ORDER BY id")
        rows = cur.fetchall()
    assert [r[2] for r in rows] == [p for p, _ in reads]
    assert [r[3] for r in rows] == [q for _, q in reads]
    assert {r[0] for r in rows} == {"api_key"} and len({r[1] for r in rows}) == 1
