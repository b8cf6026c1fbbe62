"""GDPR erasure that keeps the chain: per-subject keys, ``POST /subjects/{id}/erase`` and
``trailseal erase``; reads give ``[erased]``, the chain and ``trailseal-verify`` still pass,
derived data about the subject is removed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import orjson
import pytest

from tests.conftest import ingest, make_event
from trailseal.services.alerts import record_alert
from trailseal.services.bulk import append_stream
from trailseal.services.ingest import lock_head, write_batch
from trailseal.services.records import link_batch, prepare_batch
from trailseal.services.subject_keys import TenantKeyOnly
from trailseal.testing import make_tenant
from trailseal_verify.cli import main as verify_main

ERASED = "[erased]"
SECRET = {"ip_address": "198.51.100.9", "user_agent": "Secret/1.0",
          "action_details": {"email": "alice@example.com"}}


def _erase(client, tenant, subject: str, reason: str = "GDPR request 42", expect: int = 200):
    resp = client.post(f"/api/v1/subjects/{subject}/erase", json={"reason": reason},
                       headers=tenant.headers)
    assert resp.status_code == expect, resp.get_json()
    return resp.get_json()


def _event(client, tenant, event_id: str) -> dict:
    resp = client.get(f"/api/v1/events/{event_id}", headers=tenant.headers)
    assert resp.status_code == 200
    return resp.get_json()


def _fields(event: dict) -> tuple:
    return event["ip_address"], event["user_agent"], event["action_details"]


def _verify(client, tenant) -> dict:
    return client.get("/api/v1/chain/verify?full=true", headers=tenant.headers).get_json()


def test_erasing_an_actor_shreds_its_events_and_keeps_the_chain(trailseal_client,
                                                                trailseal_services, tenant,
                                                                owner, tmp_path):
    ids = ingest(trailseal_client, tenant, [
        make_event(actor={"id": "alice", "type": "user"}, **SECRET),
        make_event(actor={"id": "bob", "type": "user"}, **SECRET),
        make_event(actor={"id": "alice", "type": "user"}, entity={"type": "doc", "id": "D-1"},
                   ip_address=None, user_agent=None, action_details={"n": 1}),
        make_event(actor={"id": "carol", "type": "user"}, entity={"type": "user", "id": "alice"},
                   **SECRET),
        make_event(actor={"id": "carol", "type": "user"}, entity={"type": "invoice",
                                                                  "id": "alice"}, **SECRET),
    ])["ids"]
    before = [_event(trailseal_client, tenant, i) for i in ids]
    assert all(_fields(e)[2] is not None for e in before)
    with trailseal_services.db.cursor(tenant.id) as cur:
        cur.execute("SELECT subject_id FROM subject_keys ORDER BY 1")
        assert [r[0] for r in cur.fetchall()] == ["alice", "bob", "carol"]
        cur.execute("SELECT key_id FROM audit_logs ORDER BY seq")
        suffixes = [r[0].split(":")[1] for r in cur.fetchall()]
    assert suffixes == ["a", "a", "a", "ae", "a"]  # a user entity is a subject too

    result = _erase(trailseal_client, tenant, "alice")
    assert result["key_destroyed"] is True and result["already_erased"] is False
    assert result["events_erased"] == 3  # by alice twice, about the user alice once
    assert result["events_not_erased"] == {"legacy": 0, "entity_not_person": 1}

    after = [_event(trailseal_client, tenant, i) for i in ids]
    assert _fields(after[0]) == (ERASED, ERASED, ERASED)
    assert _fields(after[1]) == _fields(before[1])  # bob's: unchanged
    assert _fields(after[2]) == (None, None, ERASED)  # absent fields stay absent
    assert _fields(after[3]) == (ERASED, ERASED, ERASED)  # about the person alice
    assert _fields(after[4]) == _fields(before[4])  # an invoice called "alice" is no person
    # identifiers, hashes and the rest of each event are as before
    for b, a in zip(before, after, strict=True):
        assert (a["hash"], a["actor"], a["entity"], a["seq"]) == (
            b["hash"], b["actor"], b["entity"], b["seq"])
    # the list, the subject export and the timeline read the same
    listed = trailseal_client.get("/api/v1/events?actor=alice", headers=tenant.headers)
    assert {_fields(e)[0] for e in listed.get_json()["events"]} == {ERASED, None}
    export = json.loads(trailseal_client.get("/api/v1/subjects/alice/export",
                                             headers=tenant.headers).get_data())
    assert export["count"] == 4
    shown = {e["id"]: e["action_details"] for e in export["events"]}
    assert [shown[i] for i in ids if i in shown] == [ERASED, ERASED, ERASED,
                                                     SECRET["action_details"]]

    # a CSV export shows the same
    csv_text = trailseal_client.post("/api/v1/export/csv", json={},
                                     headers=tenant.headers).get_data(as_text=True)
    assert csv_text.count(ERASED) == 3 + 3 + 1 and "Secret/1.0" in csv_text
    assert csv_text.count("alice@example.com") == 2  # bob's event and the invoice's
    # the wrapped key is gone from the table (a tombstone remains)
    row = owner.execute("SELECT wrapped_key, erased_at FROM subject_keys "
                        "WHERE tenant_id = %s AND subject_id = 'alice'", (tenant.id,)).fetchone()
    assert row[0] is None and row[1] is not None
    # the chain verifies on the server, and a bundle with trailseal-verify
    report = _verify(trailseal_client, tenant)
    assert report["intact"] is True and report["events_checked"] == 5
    assert trailseal_client.post("/api/v1/checkpoints", headers=tenant.headers).status_code == 201
    bundle = trailseal_client.get("/api/v1/chain/bundle", headers=tenant.headers)
    assert bundle.status_code == 200
    (tmp_path / "bundle.json").write_bytes(bundle.get_data())
    vkey = trailseal_client.get("/api/v1/checkpoints/public-key",
                                headers=tenant.headers).get_json()["vkey"]
    assert verify_main([str(tmp_path / "bundle.json"), "--public-key", vkey]) == 0


def test_erasure_is_idempotent_recorded_and_later_events_are_unreadable(
        trailseal_client, trailseal_services, tenant):
    ingest(trailseal_client, tenant, [make_event(actor={"id": "dave", "type": "user"}, **SECRET)])
    first = _erase(trailseal_client, tenant, "dave", reason="ticket 1")
    again = _erase(trailseal_client, tenant, "dave", reason="ticket 1, again")
    assert (again["already_erased"], again["key_destroyed"]) == (True, False)
    assert again["erased_at"] == first["erased_at"] and again["events_erased"] == 1
    with trailseal_services.db.cursor(tenant.id) as cur:
        cur.execute("SELECT reason, requested_by, result->>'key_destroyed' FROM subject_erasures "
                    "ORDER BY created_at")
        rows = cur.fetchall()
        cur.execute("SELECT endpoint, method FROM audit_access_log "
                    "WHERE endpoint LIKE '%%/erase' ORDER BY id")
        logged = cur.fetchall()
    assert [(r[0], r[2]) for r in rows] == [("ticket 1", "true"), ("ticket 1, again", "false")]
    assert all(r[1].startswith("api_key:") for r in rows)
    assert logged == [("/api/v1/subjects/dave/erase", "POST")] * 2
    # an event about the erased subject written afterwards is unreadable from the start
    late = ingest(trailseal_client, tenant,
                  [make_event(actor={"id": "dave", "type": "user"}, **SECRET),
                   make_event(actor={"id": "erin", "type": "user"},
                              entity={"type": "customer", "id": "dave"}, **SECRET)])["ids"]
    assert [_fields(_event(trailseal_client, tenant, i)) for i in late] == \
        [(ERASED, ERASED, ERASED)] * 2
    # the demo's example subject: the customer with most events
    from trailseal_plugins.demo.loader import subject_to_erase

    assert subject_to_erase(trailseal_services, str(tenant.id)) == "dave"
    assert _verify(trailseal_client, tenant)["intact"] is True


def test_unknown_subject_other_tenant_permissions_and_bad_input(trailseal_client,
                                                                trailseal_services, tenant):
    ids = ingest(trailseal_client, tenant, [make_event(actor={"id": "frank", "type": "user"},
                                                       **SECRET)])["ids"]
    assert _erase(trailseal_client, tenant, "nobody", expect=404)["error"]["code"] == "not_found"
    other = make_tenant(trailseal_services)
    _erase(trailseal_client, other, "frank", expect=404)  # frank is not the other tenant's
    assert _fields(_event(trailseal_client, tenant, ids[0]))[1] == "Secret/1.0"
    reader = make_tenant(trailseal_services, permissions=("audit:read", "audit:write",
                                                          "audit:export"))
    ingest(trailseal_client, reader, [make_event(actor={"id": "frank", "type": "user"})])
    assert _erase(trailseal_client, reader, "frank", expect=403)["error"]["code"]
    for body in (None, {}, {"reason": ""}, {"reason": "x" * 1001}, {"reason": 5},
                 {"reason": "ok", "extra": 1}, [], "reason"):
        resp = trailseal_client.post("/api/v1/subjects/frank/erase", json=body,
                                     headers=tenant.headers)
        assert resp.status_code in (400, 415, 422), (body, resp.status_code)
    too_long = "x" * 257
    assert _erase(trailseal_client, tenant, too_long, expect=404)["error"]["message"]
    with trailseal_services.db.cursor(tenant.id) as cur:
        cur.execute("SELECT count(*) FROM subject_erasures")
        assert cur.fetchone()[0] == 0  # nothing half-written
    assert _fields(_event(trailseal_client, tenant, ids[0]))[1] == "Secret/1.0"


def _append_legacy(svc, tenant_id: uuid.UUID, events: list[dict]) -> list[str]:
    """Append events in the format written before per-subject keys: the tenant's data key
    alone, its id as the event's key_id (what a ledger upgraded in place holds)."""
    from trailseal.services.ingest import validate_events

    with svc.db.cursor(tenant_id) as cur:
        keys = TenantKeyOnly(*svc.keyring.active_key(cur, tenant_id))
        batch = prepare_batch(str(tenant_id), keys, validate_events(events))
        link_batch(batch, *lock_head(cur, tenant_id))
        return write_batch(cur, tenant_id, batch).ids


def test_events_written_before_subject_keys_stay_readable_and_are_counted(
        trailseal_client, trailseal_services, tenant):
    old = _append_legacy(trailseal_services, tenant.id,
                         [make_event(actor={"id": "gina", "type": "user"}, **SECRET)])
    new = ingest(trailseal_client, tenant, [make_event(actor={"id": "gina", "type": "user"},
                                                       **SECRET)])["ids"]
    assert _fields(_event(trailseal_client, tenant, old[0]))[1] == "Secret/1.0"
    result = _erase(trailseal_client, tenant, "gina")
    assert result["events_erased"] == 1 and result["events_not_erased"]["legacy"] == 1
    # the hash covers the old ciphertext, so it cannot be re-encrypted: it stays readable
    assert _fields(_event(trailseal_client, tenant, old[0]))[1] == "Secret/1.0"
    assert _fields(_event(trailseal_client, tenant, new[0]))[1] == ERASED
    assert _verify(trailseal_client, tenant)["intact"] is True


def test_bulk_appends_through_a_helper_use_subject_keys(trailseal_client, trailseal_services,
                                                        tenant):
    docs = [orjson.dumps(make_event(actor={"id": f"h-{n % 3}", "type": "user"}, **SECRET))
            for n in range(30)]
    done = append_stream(trailseal_services, tenant.id, [docs[:15], docs[15:]], workers=1)
    assert done.events == 30
    _erase(trailseal_client, tenant, "h-1")
    events = trailseal_client.get("/api/v1/events?limit=100",
                                  headers=tenant.headers).get_json()["events"]
    for e in events:
        assert e["user_agent"] == (ERASED if e["actor"]["id"] == "h-1" else "Secret/1.0")
    assert _verify(trailseal_client, tenant)["intact"] is True


def test_derived_data_about_the_subject_is_removed(trailseal_client, trailseal_services,
                                                   tenant, run_jobs, monkeypatch, owner):
    ids = ingest(trailseal_client, tenant, [
        make_event(actor={"id": "hank", "type": "user"}, event_type="invoice.deleted",
                   occurred_at="2026-11-20T10:00:00Z",
                   action_details={"note": "hankspecialword"}),
        make_event(actor={"id": "ivy", "type": "user"}, event_type="invoice.paid",
                   occurred_at="2026-11-20T11:00:00Z", action_details={"note": "ivyword"}),
    ])["ids"]
    run_jobs()  # enrichment: insights, embeddings, full-text rows
    for event_id, word in zip(ids, ("hankspecialword", "ivyword"), strict=True):
        # what a narrator's insight may quote
        owner.execute("UPDATE event_insights SET ai_insights = jsonb_build_object('quote', "
                      "%s::text) WHERE event_id = %s", (word, event_id))
    alert = record_alert(trailseal_services, tenant.id, kind="anomaly", severity="high",
                         title="unusual deletion", event_id=ids[0],
                         details={"anomaly_score": 0.93, "suggested_actions": ["ask hank"],
                                  "explanation": {"summary": "hankspecialword at night"}})
    # a stored summary, a kept export file, a cached search ranking
    assert trailseal_client.get("/api/v1/summary/daily?date=2026-11-20",
                                headers=tenant.headers).status_code == 200
    monkeypatch.setitem(trailseal_services.config, "EXPORT_SYNC_MAX_EVENTS", 1)
    job = trailseal_client.post("/api/v1/export/pdf", json={}, headers=tenant.headers)
    assert job.status_code == 202
    run_jobs()
    job_url = f"/api/v1/export/jobs/{job.get_json()['id']}"
    assert trailseal_client.get(job_url + "/file", headers=tenant.headers).status_code == 200
    hits = trailseal_client.post("/api/v1/search", json={"query": "hankspecialword"},
                                 headers=tenant.headers).get_json()
    assert [r["id"] for r in hits["results"]][:1] == [ids[0]]

    def counts() -> dict:
        with trailseal_services.db.cursor(tenant.id) as cur:
            out = {}
            for table in ("audit_embeddings", "audit_search_text"):
                cur.execute(f"SELECT event_id::text FROM {table}")
                out[table] = sorted(r[0] for r in cur.fetchall())
            cur.execute("SELECT event_id::text, ai_insights FROM event_insights ORDER BY 1")
            out["insights"] = dict(cur.fetchall())
            cur.execute("SELECT count(*) FROM audit_summaries")
            out["summaries"] = cur.fetchone()[0]
        return out

    before = counts()
    assert ids[0] in before["audit_embeddings"] and ids[0] in before["audit_search_text"]
    assert before["summaries"] >= 1
    result = _erase(trailseal_client, tenant, "hank")
    removed = result["derived_removed"]
    assert removed["embeddings"] == 1 and removed["search_rows"] == 1
    assert removed["insight_texts"] == 1 and removed["summaries"] == before["summaries"]
    assert removed["export_files"] == 1 and removed["search_cache"] >= 1
    after = counts()
    assert after["audit_embeddings"] == [ids[1]] and after["audit_search_text"] == [ids[1]]
    assert after["insights"] == {ids[0]: {}, ids[1]: {"quote": "ivyword"}}
    assert after["summaries"] == 0
    assert removed["alert_details"] == 1
    with trailseal_services.db.cursor(tenant.id) as cur:
        cur.execute("SELECT details FROM audit_anomalies WHERE id = %s", (alert.id,))
        assert cur.fetchone()[0] == {"anomaly_score": 0.93, "erased": True}
    gone = trailseal_client.get(job_url + "/file", headers=tenant.headers)
    assert gone.status_code == 409  # the job says the file was removed
    assert "erasure" in trailseal_client.get(job_url, headers=tenant.headers).get_json()["error"]
    # the backlog rebuilds the index from the events as they now read: the word is gone
    from trailseal.jobs.enrichment import index_backlog

    with trailseal_client.application.app_context():
        assert index_backlog(str(tenant.id)) == 1
    hits = trailseal_client.post("/api/v1/search", json={"query": "hankspecialword"},
                                 headers=tenant.headers).get_json()
    # (the vector ranking may still list it, but only as it now reads)
    assert "hankspecialword" not in json.dumps(hits)
    assert all(r["action_details"] == ERASED for r in hits["results"] if r["id"] == ids[0])
    with trailseal_services.db.cursor(tenant.id) as cur:
        cur.execute("SELECT tsv::text FROM audit_search_text WHERE event_id = %s", (ids[0],))
        assert "hankspecialword" not in cur.fetchone()[0]


@pytest.mark.slow
def test_cli_erase(trailseal_client, trailseal_services, tenant):
    ids = ingest(trailseal_client, tenant, [make_event(actor={"id": "jack", "type": "user"},
                                                       **SECRET)])["ids"]
    assert _fields(_event(trailseal_client, tenant, ids[0]))[1] == "Secret/1.0"  # key cached
    env = dict(os.environ, TRAILSEAL_INSTANCE_PATH=trailseal_services.config["INSTANCE_PATH"])
    cmd = [sys.executable, "-m", "trailseal", "erase", "--tenant", tenant.slug,
           "--subject", "jack", "--reason", "GDPR request 7"]
    out = subprocess.run([*cmd, "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["key_destroyed"] is True and result["events_erased"] == 1
    # this process had jack's key cached: the erasure counter in Redis makes it forget it
    assert _fields(_event(trailseal_client, tenant, ids[0])) == (ERASED, ERASED, ERASED)
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "already erased" in again.stdout
    missing = subprocess.run([*cmd[:-4], "--subject", "nobody", "--reason", "x"], env=env,
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1 and "no subject 'nobody'" in missing.stderr


def test_person_entity_types_are_configurable_and_recorded_per_event(
        trailseal_client, trailseal_services, tenant, monkeypatch):
    monkeypatch.setitem(trailseal_services.config, "PERSON_ENTITY_TYPES", "patient")
    by_then = ingest(trailseal_client, tenant, [
        make_event(actor={"id": "yan", "type": "user"}, entity={"type": "user", "id": "zed"},
                   **SECRET),
        make_event(actor={"id": "yan", "type": "user"}, entity={"type": "patient", "id": "zed"},
                   **SECRET)])["ids"]
    monkeypatch.setitem(trailseal_services.config, "PERSON_ENTITY_TYPES", "user")
    result = _erase(trailseal_client, tenant, "zed")
    # the user entity was no person when written (key_id ":a"); the patient was (":ae")
    assert result["events_erased"] == 1
    assert result["events_not_erased"] == {"legacy": 0, "entity_not_person": 1}
    assert [_fields(_event(trailseal_client, tenant, i))[1] for i in by_then] == [
        "Secret/1.0", ERASED]
