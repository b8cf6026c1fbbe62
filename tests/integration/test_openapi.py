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
    documented = {re.sub(r"\{(\w+)\}", r"<\1>", p) for p in spec["paths"]}
    routes = {r.rule for r in trailseal_app.url_map.iter_rules()
              if r.rule.startswith("/api/v1") and r.rule != "/api/v1/openapi.json"}
    assert routes == documented
    for path, ops in spec["paths"].items():
        for op in ops.values():
            assert "401" in op["responses"], path
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
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
