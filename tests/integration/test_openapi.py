"""The OpenAPI document is generated from the validating schemas and covers every route."""

from __future__ import annotations

import re

from trailseal.schemas import EventIn


def test_openapi_document(trailseal_client, trailseal_app):
    resp = trailseal_client.get("/api/v1/openapi.json")
    assert resp.status_code == 200
    spec = resp.get_json()
    assert spec["openapi"].startswith("3.1")
    # the request schema is the one that validates requests
    generated = EventIn.model_json_schema(ref_template="#/components/schemas/{model}")
    generated.pop("$defs", None)
    assert spec["components"]["schemas"]["EventIn"] == generated
    # every API rule on the app is documented, and nothing that is not there
    documented = {re.sub(r"\{(\w+)\}", r"<\1>", p) for p in spec["paths"]
                  if p.startswith("/api/v1")}
    routes = {r.rule for r in trailseal_app.url_map.iter_rules()
              if r.rule.startswith("/api/v1")}
    assert routes == documented
    assert {"/healthz", "/metrics"} <= set(spec["paths"])
    for path, ops in spec["paths"].items():
        for op in ops.values():
            # every authenticated operation documents 401; open ones (health, metrics, this
            # document, the 405s) say they need no credentials
            assert "401" in op["responses"] or op["security"] == [], path
            assert op["tags"], path
    params = {p["name"] for p in spec["paths"]["/api/v1/events"]["get"]["parameters"]}
    assert {"start", "end", "event_type", "actor", "entity_type", "entity_id", "severity",
            "category", "risk_level", "tag", "limit", "cursor"} <= params


def test_refs_resolve(trailseal_client):
    spec = trailseal_client.get("/api/v1/openapi.json").get_json()
    schemas = spec["components"]["schemas"]
    refs = []

    def walk(node):
        if isinstance(node, dict):
            if "$ref" in node:
                refs.append(node["$ref"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(spec)
    assert refs
    for ref in refs:
        section, _, name = ref.removeprefix("#/components/").partition("/")
        assert ref.startswith("#/components/") and section in ("schemas", "headers"), ref
        assert name in spec["components"][section], ref
    assert any(ref.startswith("#/components/schemas/") for ref in refs)
    assert set(schemas) >= {"AlertPage", "AccessLogPage", "DashboardStats", "AlertOut"}


def test_document_is_valid_openapi_3_1(trailseal_client):
    from openapi_spec_validator import validate

    validate(trailseal_client.get("/api/v1/openapi.json").get_json())


def test_every_method_a_path_lacks_is_a_documented_405(trailseal_client, tenant):
    spec = trailseal_client.get("/api/v1/openapi.json").get_json()
    checked = 0
    for path, ops in spec["paths"].items():
        if not path.startswith("/api/v1/") or path.endswith("openapi.json"):
            continue
        url = path.replace("{event_id}", "00000000-0000-4000-8000-000000000000").replace(
            "{alert_id}", "00000000-0000-4000-8000-000000000000")
        for method, op in ops.items():
            if "405" not in op["responses"]:
                continue
            resp = trailseal_client.open(url, method=method.upper(), headers=tenant.headers)
            assert resp.status_code == 405, (method, path)
            assert resp.headers["Allow"], (method, path)
            checked += 1
    assert checked >= 15


def _read(resp):
    resp.get_data()
    return resp


def test_real_responses_of_every_operation_match_the_document(trailseal_client,
                                                              trailseal_services, tenant,
                                                              run_jobs, http_receiver):
    """Each documented operation called with valid input; its status, body and documented
    headers checked against the document (JSON Schema 2020-12, as OpenAPI 3.1 says)."""
    from jsonschema import Draft202012Validator

    from tests.conftest import make_event
    from trailseal.services.alerts import record_alert
    from trailseal.services.tenancy import create_api_key
    from trailseal.testing import make_tenant

    spec = trailseal_client.get("/api/v1/openapi.json").get_json()
    old_limit = trailseal_services.config["RATE_LIMIT"]
    trailseal_services.config["RATE_LIMIT"] = "1000/60"  # so the rate headers are sent
    try:
        key = {**tenant.headers, "Idempotency-Key": "openapi-check"}
        created = trailseal_client.post("/api/v1/events", json=make_event(), headers=key)
        replay = trailseal_client.post("/api/v1/events", json=make_event(), headers=key)
        assert replay.headers["Idempotent-Replayed"] == "true"
        event_id = created.get_json()["id"]
        alert = record_alert(trailseal_services, tenant.id, kind="test", severity="low",
                             title="t", details={}, event_id=event_id)
        anomaly = record_alert(trailseal_services, tenant.id, kind="anomaly", severity="high",
                               title="a", details={"anomaly_score": 0.9}, event_id=event_id,
                               dedupe_key=f"event:{event_id}")
        old_sync = trailseal_services.config["EXPORT_SYNC_MAX_EVENTS"]
        trailseal_services.config["EXPORT_SYNC_MAX_EVENTS"] = 0  # a PDF written by a worker
        try:
            queued = trailseal_client.post("/api/v1/export/pdf", json={},
                                           headers=tenant.headers)
        finally:
            trailseal_services.config["EXPORT_SYNC_MAX_EVENTS"] = old_sync
        assert queued.status_code == 202, queued.get_data(as_text=True)[:300]
        # A channel that is down until redelivered: a dead delivery to list and redeliver.
        old_schedule = trailseal_services.config["NOTIFY_RETRY_SCHEDULE"]
        trailseal_services.config["NOTIFY_RETRY_SCHEDULE"] = ""
        try:
            http_receiver.fail_first = 1
            integration = trailseal_client.post("/api/v1/integrations", json={
                "type": "webhook", "name": "openapi", "min_severity": "info",
                "config": {"url": http_receiver.url, "secret": "s" * 32}},
                headers=tenant.headers)
            assert integration.status_code == 201, integration.get_json()
            iid = integration.get_json()["id"]
            record_alert(trailseal_services, tenant.id, kind="test", severity="low",
                         title="for the channel", details={})
            run_jobs()
        finally:
            trailseal_services.config["NOTIFY_RETRY_SCHEDULE"] = old_schedule
        run_jobs()
        job_id = queued.get_json()["id"]
        deliveries = trailseal_client.get(f"/api/v1/integrations/{iid}/deliveries?status=dead",
                                          headers=tenant.headers)
        dead_id = deliveries.get_json()["deliveries"][0]["id"]
        doomed = trailseal_client.post("/api/v1/integrations", json={
            "type": "slack", "name": "to delete",
            "config": {"webhook_url": http_receiver.url}}, headers=tenant.headers)
        trailseal_services.config["SMTP_HOST"] = "127.0.0.1"  # scheduling needs mail
        try:
            scheduled = trailseal_client.post("/api/v1/reports/schedules", json={
                "name": "Weekly", "cron": "0 9 * * 1", "timezone": "Europe/Berlin",
                "filters": {"severity": ["high"]}, "format": "pdf",
                "recipients": ["ciso@example.com"]}, headers=tenant.headers)
            schedule_url = f"/api/v1/reports/schedules/{scheduled.get_json()['id']}"
            run_now = trailseal_client.post(f"{schedule_url}/run", headers=tenant.headers)
        finally:
            trailseal_services.config["SMTP_HOST"] = ""
        calls = {
            ("post", "/api/v1/events"): (created, None),
            ("post", "/api/v1/events/batch"): (trailseal_client.post(
                "/api/v1/events/batch", json={"events": [make_event()]},
                headers=tenant.headers), None),
            ("get", "/api/v1/events"): (trailseal_client.get("/api/v1/events?limit=1",
                                                             headers=tenant.headers), None),
            ("get", "/api/v1/events/{event_id}"): (trailseal_client.get(
                f"/api/v1/events/{event_id}", headers=tenant.headers), None),
            ("get", "/api/v1/timeline"): (trailseal_client.get("/api/v1/timeline",
                                                               headers=tenant.headers), None),
            ("get", "/api/v1/dashboard/stats"): (trailseal_client.get(
                "/api/v1/dashboard/stats", headers=tenant.headers), None),
            ("get", "/api/v1/chain/verify"): (trailseal_client.get(
                "/api/v1/chain/verify?full=true", headers=tenant.headers), None),
            ("get", "/api/v1/alerts"): (trailseal_client.get("/api/v1/alerts?limit=1",
                                                             headers=tenant.headers), None),
            ("patch", "/api/v1/alerts/{alert_id}"): (trailseal_client.patch(
                f"/api/v1/alerts/{alert.id}", json={"status": "acknowledged"},
                headers=tenant.headers), None),
            ("get", "/api/v1/anomalies"): (trailseal_client.get(
                "/api/v1/anomalies?min_score=0.5", headers=tenant.headers), None),
            ("post", "/api/v1/anomalies/{alert_id}/feedback"): (trailseal_client.post(
                f"/api/v1/anomalies/{anomaly.id}/feedback", json={"is_false_positive": True},
                headers=tenant.headers), None),
            ("get", "/api/v1/anomalies/settings"): (trailseal_client.get(
                "/api/v1/anomalies/settings", headers=tenant.headers), None),
            ("put", "/api/v1/anomalies/settings"): (trailseal_client.put(
                "/api/v1/anomalies/settings", json={"threshold": 0.7},
                headers=tenant.headers), None),
            ("patch", "/api/v1/events/{event_id}/insights"): (trailseal_client.patch(
                f"/api/v1/events/{event_id}/insights",
                json={"category": "security", "risk_level": "high", "notes": "checked"},
                headers=tenant.headers), None),
            ("get", "/api/v1/rules/tags"): (trailseal_client.get(
                "/api/v1/rules/tags", headers=tenant.headers), None),
            ("put", "/api/v1/rules/tags"): (trailseal_client.put(
                "/api/v1/rules/tags", json={"rules": [{"tag": "night", "when": {
                    "field": "hour", "op": "lt", "value": 6}}]}, headers=tenant.headers), None),
            ("get", "/api/v1/models"): (trailseal_client.get("/api/v1/models",
                                                             headers=tenant.headers), None),
            ("get", "/api/v1/usage"): (trailseal_client.get(
                "/api/v1/usage?first_day=2026-11-01", headers=tenant.headers), None),
            ("get", "/api/v1/bias-metrics"): (trailseal_client.get(
                "/api/v1/bias-metrics", headers=tenant.headers), None),
            ("post", "/api/v1/search"): (trailseal_client.post(
                "/api/v1/search", json={"query": "who signed in", "answer": True},
                headers=tenant.headers), None),
            ("post", "/api/v1/export/{format_name}"): (trailseal_client.post(
                "/api/v1/export/csv", json={"severity": ["medium"]},
                headers=tenant.headers), None),
            ("get", "/api/v1/export/jobs/{job_id}"): (trailseal_client.get(
                f"/api/v1/export/jobs/{job_id}", headers=tenant.headers), None),
            ("get", "/api/v1/export/jobs/{job_id}/file"): (trailseal_client.get(
                f"/api/v1/export/jobs/{job_id}/file", headers=tenant.headers), None),
            ("get", "/api/v1/subjects/{subject_id}/export"): (trailseal_client.get(
                "/api/v1/subjects/u-1/export", headers=tenant.headers), None),
            ("get", "/api/v1/access-log"): (trailseal_client.get("/api/v1/access-log?limit=2",
                                                                 headers=tenant.headers), None),
            ("post", "/api/v1/integrations"): (integration, None),
            ("get", "/api/v1/integrations"): (trailseal_client.get(
                "/api/v1/integrations", headers=tenant.headers), None),
            ("delete", "/api/v1/integrations/{integration_id}"): (trailseal_client.delete(
                f"/api/v1/integrations/{doomed.get_json()['id']}", headers=tenant.headers),
                None),
            ("post", "/api/v1/integrations/{integration_id}/test"): (trailseal_client.post(
                f"/api/v1/integrations/{iid}/test", headers=tenant.headers), None),
            ("get", "/api/v1/integrations/{integration_id}/deliveries"): (deliveries, None),
            ("post", "/api/v1/integrations/{integration_id}/deliveries/{delivery_id}/"
                     "redeliver"): (trailseal_client.post(
                f"/api/v1/integrations/{iid}/deliveries/{dead_id}/redeliver",
                headers=tenant.headers), None),
            ("post", "/api/v1/reports/schedules"): (scheduled, None),
            ("get", "/api/v1/reports/schedules"): (trailseal_client.get(
                "/api/v1/reports/schedules", headers=tenant.headers), None),
            ("get", "/api/v1/reports/schedules/{schedule_id}"): (trailseal_client.get(
                schedule_url, headers=tenant.headers), None),
            ("post", "/api/v1/reports/schedules/{schedule_id}/run"): (run_now, None),
            ("delete", "/api/v1/reports/schedules/{schedule_id}"): (trailseal_client.delete(
                schedule_url, headers=tenant.headers), None),
            ("put", "/api/v1/settings"): (trailseal_client.put(
                "/api/v1/settings", json={"timezone": "Europe/Berlin"},
                headers=tenant.headers), None),
            ("get", "/api/v1/settings"): (trailseal_client.get(
                "/api/v1/settings", headers=tenant.headers), None),
            ("get", "/api/v1/summary/{period}"): (trailseal_client.get(
                "/api/v1/summary/daily?date=2026-11-20", headers=tenant.headers), None),
            ("get", "/api/v1/events/{event_id}/explain"): (trailseal_client.get(
                f"/api/v1/events/{event_id}/explain", headers=tenant.headers), None),
            ("post", "/api/v1/checkpoints"): ((made := trailseal_client.post(
                "/api/v1/checkpoints", headers=tenant.headers)), None),
            ("get", "/api/v1/checkpoints"): (trailseal_client.get(
                "/api/v1/checkpoints", headers=tenant.headers), None),
            ("get", "/api/v1/checkpoints/public-key"): (trailseal_client.get(
                "/api/v1/checkpoints/public-key", headers=tenant.headers), None),
            ("get", "/api/v1/checkpoints/consistency"): (trailseal_client.get(
                "/api/v1/checkpoints/consistency?from={0}&to={0}".format(
                    made.get_json()["checkpoint"]["tree_size"]), headers=tenant.headers), None),
            ("get", "/api/v1/events/{event_id}/proof"): (trailseal_client.get(
                f"/api/v1/events/{event_id}/proof", headers=tenant.headers), None),
            # read at once: a streamed body left unread holds its request context open
            ("get", "/api/v1/chain/bundle"): (_read(trailseal_client.get(
                "/api/v1/chain/bundle", headers=tenant.headers)), None),
            ("put", "/api/v1/retention"): (trailseal_client.put(
                "/api/v1/retention", json={"days": 3650}, headers=tenant.headers), None),
            ("get", "/api/v1/retention"): (trailseal_client.get(
                "/api/v1/retention", headers=tenant.headers), None),
            ("post", "/api/v1/legal-holds"): ((hold := trailseal_client.post(
                "/api/v1/legal-holds", json={"scope": "entity", "entity_type": "invoice",
                                             "entity_id": "INV-1", "reason": "audit"},
                headers=tenant.headers)), None),
            ("post", "/api/v1/legal-holds/{hold_id}/release"): (trailseal_client.post(
                f"/api/v1/legal-holds/{hold.get_json()['id']}/release",
                json={"reason": "done"}, headers=tenant.headers), None),
            ("get", "/api/v1/legal-holds"): (trailseal_client.get(
                "/api/v1/legal-holds?active=false", headers=tenant.headers), None),
            # last of the event readers: every event of u-1 reads [erased] from here on
            ("post", "/api/v1/subjects/{subject_id}/erase"): (trailseal_client.post(
                "/api/v1/subjects/u-1/erase", json={"reason": "contract"},
                headers=tenant.headers), None),
            # deletion on a tenant of its own (the confirmation closes its chain)
            ("post", "/api/v1/tenant/deletion"): ((asked := trailseal_client.post(
                "/api/v1/tenant/deletion", json={"reason": "contract ended"},
                headers=(leaving := make_tenant(trailseal_services)).headers)), None),
            ("post", "/api/v1/tenant/deletion/cancel"): (trailseal_client.post(
                "/api/v1/tenant/deletion/cancel", json={"deletion_id": asked.get_json()["id"],
                                                        "reason": "not yet"},
                headers=leaving.headers), None),
            ("post", "/api/v1/tenant/deletion/confirm"): (trailseal_client.post(
                "/api/v1/tenant/deletion/confirm", json={"deletion_id": trailseal_client.post(
                    "/api/v1/tenant/deletion", json={"reason": "now"},
                    headers=leaving.headers).get_json()["id"]},
                headers={"Authorization": "Bearer " + create_api_key(
                    trailseal_services, leaving.id, ["audit:admin"])["token"]}), None),
            ("get", "/api/v1/tenant/deletion"): (trailseal_client.get(
                "/api/v1/tenant/deletion", headers=leaving.headers), None),
            ("get", "/healthz"): (trailseal_client.get("/healthz"), None),
            ("get", "/metrics"): (trailseal_client.get("/metrics"), None),
            ("get", "/api/v1/openapi.json"): (trailseal_client.get("/api/v1/openapi.json"),
                                              None),
        }
    finally:
        trailseal_services.config["RATE_LIMIT"] = old_limit
    operations = {(m, p) for p, ops in spec["paths"].items() for m, op in ops.items()
                  if "405" not in op["responses"]}
    assert operations == set(calls), operations ^ set(calls)
    for (method, path), (resp, _) in calls.items():
        documented = spec["paths"][path][method]["responses"]
        status = str(resp.status_code)
        assert status in documented, (method, path, status, resp.get_data(as_text=True)[:200])
        response = documented[status]
        content = response.get("content", {})
        if resp.status_code == 204:
            assert not content and not resp.get_data(), (method, path)
        elif "application/json" in content:
            schema = {**content["application/json"]["schema"], "components": spec["components"]}
            errors = list(Draft202012Validator(schema).iter_errors(resp.get_json()))
            assert not errors, (method, path, [e.message for e in errors[:3]])
        elif content:
            assert resp.mimetype in content, (method, path, resp.mimetype)
        else:  # a 204
            assert not resp.get_data(), (method, path)
        for name in response.get("headers", {}):
            if name == "Idempotent-Replayed":
                continue  # only on replays (checked above)
            assert name in resp.headers, (method, path, name)
