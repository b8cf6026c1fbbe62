"""Tenant deletion's rules hold for any sequence of requests, confirmations and cancellations
by any of a tenant's admin keys: a deletion is confirmed only by a key other than the one
that requested it, only while it awaits confirmation; at most one request is open; the chain
is closed exactly when a deletion is confirmed (appends then answer 409); and every accepted
action is a recorded step and an event of the trail."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import make_event
from tests.property.strategies import PROPERTY
from trailseal.services.tenancy import create_api_key
from trailseal.testing import make_tenant

ACTIONS = st.lists(st.tuples(st.sampled_from(["request", "confirm", "cancel", "append"]),
                             st.integers(0, 2)), min_size=1, max_size=8)


@PROPERTY
@given(actions=ACTIONS)
def test_deletion_rules_hold_for_any_sequence(trailseal_client, trailseal_services, actions):
    client, svc = trailseal_client, trailseal_services
    tenant = make_tenant(svc)
    keys = [tenant.headers] + [
        {"Authorization": "Bearer " + create_api_key(svc, tenant.id, ["audit:admin"])["token"]}
        for _ in range(2)]
    # The model: the open request (its id and requester) and whether it is confirmed.
    open_id, requester, confirmed = None, None, False
    steps = events = 0
    for action, k in actions:
        headers = keys[k]
        if action == "request":
            resp = client.post("/api/v1/tenant/deletion", json={"reason": "r"}, headers=headers)
            if open_id is None:
                assert resp.status_code == 201, resp.get_json()
                open_id, requester, confirmed = resp.get_json()["id"], k, False
                steps, events = steps + 1, events + 1
            else:
                assert resp.status_code == 409
        elif action in ("confirm", "cancel"):
            body = {"deletion_id": open_id or "00000000-0000-4000-8000-000000000000"}
            if action == "cancel":
                body["reason"] = "no"
            resp = client.post(f"/api/v1/tenant/deletion/{action}", json=body, headers=headers)
            if open_id is None:
                assert resp.status_code == 404
            elif confirmed:
                assert resp.status_code == 409
            elif action == "confirm" and k == requester:
                assert resp.status_code == 403
            else:
                assert resp.status_code == 200, resp.get_json()
                steps, events = steps + 1, events + 1
                if action == "confirm":
                    confirmed = True
                else:
                    open_id = None
        else:
            resp = client.post("/api/v1/events", json=make_event(), headers=headers)
            if confirmed:
                assert resp.status_code == 409
                assert resp.get_json()["error"]["code"] == "tenant_closed"
            else:
                assert resp.status_code == 201
                events += 1
    with svc.db.cursor(tenant.id) as cur:
        cur.execute("SELECT closed_at IS NOT NULL FROM chain_heads")
        assert cur.fetchone()[0] == confirmed
        cur.execute("SELECT count(*) FROM tenant_deletion_steps")
        assert cur.fetchone()[0] == steps
        cur.execute("SELECT count(*) FROM audit_logs")
        assert cur.fetchone()[0] == events
        cur.execute("SELECT count(*) FROM tenant_deletions WHERE confirmed_at IS NOT NULL "
                    "AND confirmed_by = requested_by")
        assert cur.fetchone()[0] == 0
