"""OpenAPI 3.1 document generated from the schemas that validate requests."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify
from pydantic import BaseModel

from .. import __version__
from ..schemas import (
    BatchCreated,
    ChainVerification,
    ErrorResponse,
    EventCreated,
    EventIn,
    EventOut,
    EventPage,
    EventQuery,
)

bp = Blueprint("openapi", __name__)
MODELS: list[type[BaseModel]] = [
    EventIn, EventCreated, BatchCreated, EventOut, EventPage, ChainVerification, ErrorResponse,
]


def _components() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in schema.pop("$defs", {}).items():
            schemas[name] = sub
        schemas[model.__name__] = schema
    schemas["EventBatchIn"] = {
        "type": "object", "additionalProperties": False, "required": ["events"],
        "properties": {"events": {"type": "array", "minItems": 1, "maxItems": 1000,
                                  "items": {"$ref": "#/components/schemas/EventIn"}}},
    }
    return schemas


def _query_parameters() -> list[dict[str, Any]]:
    schema = EventQuery.model_json_schema()
    params = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        prop.pop("title", None)
        param = {"name": name, "in": "query", "required": False, "schema": prop}
        if prop.get("type") == "array":
            param["explode"] = True
            param["style"] = "form"
        params.append(param)
    return params


def _ref(name: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}


ERRORS = {str(code): {"description": desc, **_ref("ErrorResponse")} for code, desc in [
    (400, "Malformed request"), (401, "Missing or invalid credentials"),
    (403, "Credential lacks the permission"), (422, "Validation failed"),
    (429, "Rate limited (see Retry-After)"),
]}


def build_spec(app) -> dict[str, Any]:
    """The OpenAPI document for the routes registered on ``app``."""
    query = _query_parameters()
    idem = {"name": "Idempotency-Key", "in": "header", "required": False,
            "schema": {"type": "string", "maxLength": 200}}
    paths: dict[str, Any] = {
        "/api/v1/events": {
            "post": {"summary": "Append one event", "operationId": "createEvent",
                     "parameters": [idem], "requestBody": {"required": True, **_ref("EventIn")},
                     "responses": {"201": {"description": "Appended", **_ref("EventCreated")},
                                   "409": {"description": "Idempotency-Key reused with another body", **_ref("ErrorResponse")},
                                   "413": {"description": "Body over 1 MiB", **_ref("ErrorResponse")},
                                   "415": {"description": "Not application/json", **_ref("ErrorResponse")},
                                   **ERRORS},
                     "x-permission": "audit:write"},
            "get": {"summary": "List events (newest first)", "operationId": "listEvents",
                    "parameters": query,
                    "responses": {"200": {"description": "A page", **_ref("EventPage")}, **ERRORS},
                    "x-permission": "audit:read"},
        },
        "/api/v1/events/batch": {
            "post": {"summary": "Append up to 1000 events atomically", "operationId": "createEventsBatch",
                     "parameters": [idem], "requestBody": {"required": True, **_ref("EventBatchIn")},
                     "responses": {"201": {"description": "Appended", **_ref("BatchCreated")},
                                   "409": {"description": "Idempotency-Key reused with another body", **_ref("ErrorResponse")},
                                   "413": {"description": "Body over 1 MiB", **_ref("ErrorResponse")},
                                   "415": {"description": "Not application/json", **_ref("ErrorResponse")},
                                   **ERRORS},
                     "x-permission": "audit:write"},
        },
        "/api/v1/events/{event_id}": {
            "get": {"summary": "One event", "operationId": "getEvent",
                    "parameters": [{"name": "event_id", "in": "path", "required": True,
                                    "schema": {"type": "string", "format": "uuid"}}],
                    "responses": {"200": {"description": "The event", **_ref("EventOut")},
                                  "404": {"description": "No such event in this tenant", **_ref("ErrorResponse")},
                                  **ERRORS},
                    "x-permission": "audit:read"},
        },
        "/api/v1/timeline": {
            "get": {"summary": "Events oldest first, with insights", "operationId": "timeline",
                    "parameters": query,
                    "responses": {"200": {"description": "A page", **_ref("EventPage")}, **ERRORS},
                    "x-permission": "audit:read"},
        },
        "/api/v1/dashboard/stats": {
            "get": {"summary": "Dashboard statistics (cached 30 s)", "operationId": "dashboardStats",
                    "parameters": [{"name": "as_of", "in": "query", "required": False,
                                    "schema": {"type": "string", "format": "date-time"}}],
                    "responses": {"200": {"description": "Statistics", "content": {"application/json": {"schema": {"type": "object"}}}}, **ERRORS},
                    "x-permission": "audit:read"},
        },
        "/api/v1/chain/verify": {
            "get": {"summary": "Verify the tenant's hash chain", "operationId": "verifyChain",
                    "parameters": [{"name": "full", "in": "query", "required": False,
                                    "description": "Decode every record and compare it with its "
                                                   "columns field by field (slower).",
                                    "schema": {"type": "boolean", "default": False}}],
                    "responses": {"200": {"description": "Verification report", **_ref("ChainVerification")}, **ERRORS},
                    "x-permission": "audit:read"},
        },
        "/api/v1/alerts": {
            "get": {"summary": "Recent alerts", "operationId": "listAlerts",
                    "parameters": [
                        {"name": "limit", "in": "query", "required": False,
                         "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                        {"name": "status", "in": "query", "required": False,
                         "schema": {"enum": ["open", "acknowledged", "resolved"]}}],
                    "responses": {"200": {"description": "Alerts", "content": {"application/json": {"schema": {"type": "object"}}}}, **ERRORS},
                    "x-permission": "audit:read"},
        },
        "/api/v1/alerts/{alert_id}": {
            "patch": {"summary": "Acknowledge or resolve an alert", "operationId": "updateAlert",
                      "parameters": [{"name": "alert_id", "in": "path", "required": True,
                                      "schema": {"type": "string", "format": "uuid"}}],
                      "requestBody": {"required": True, "content": {"application/json": {"schema": {
                          "type": "object", "additionalProperties": False, "required": ["status"],
                          "properties": {"status": {"enum": ["open", "acknowledged", "resolved"]}}}}}},
                      "responses": {"200": {"description": "The alert", "content": {"application/json": {"schema": {"type": "object"}}}},
                                    "404": {"description": "No such alert in this tenant", **_ref("ErrorResponse")},
                                    "415": {"description": "Not application/json", **_ref("ErrorResponse")},
                                    **ERRORS},
                      "x-permission": "audit:admin"},
        },
        "/api/v1/access-log": {
            "get": {"summary": "Access log of the trail", "operationId": "listAccessLog",
                    "parameters": [{"name": "limit", "in": "query", "required": False,
                                    "schema": {"type": "integer", "minimum": 1, "maximum": 500}}],
                    "responses": {"200": {"description": "Entries", "content": {"application/json": {"schema": {"type": "object"}}}}, **ERRORS},
                    "x-permission": "audit:admin"},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Trailseal API", "version": __version__,
                 "description": "Tamper-evident, multi-tenant audit trail. Events are append-only."},
        "servers": [{"url": "/"}],
        "security": [{"apiKey": []}],
        "paths": paths,
        "components": {
            "schemas": _components(),
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer",
                                           "description": "API key: Authorization: Bearer tsk_…"}},
        },
    }


@bp.get("/api/v1/openapi.json")
def openapi_json():
    """The OpenAPI 3.1 document (no authentication needed)."""
    return jsonify(build_spec(current_app))
