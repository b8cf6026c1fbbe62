"""Exports: CSV (streamed, complete, neutralised), PDF (a report with the summary, figures,
events and chain status), a person's events as JSON; permissions, access log, limits."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import insert

from tests.conftest import ingest, make_event
from tests.property.strategies import PROPERTY
from trailseal.services.exports import registered_exporters
from trailseal.services.tenancy import create_api_key
from trailseal.tables import event_insights
from trailseal_plugins.exports.csv_format import COLUMNS, neutralise

BASE = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def _at(minutes: float) -> str:
    return (BASE + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _insights(svc, tenant_id, event_ids, *, anomalous=(), category="security",
              risk="high", tags=("after-hours",)):
    with svc.db.transaction(tenant_id) as conn:
        for n, event_id in enumerate(event_ids):
            flagged = event_id in anomalous
            conn.execute(insert(event_insights).values(
                event_id=uuid.UUID(event_id), tenant_id=tenant_id,
                anomaly_score=0.93 if flagged else round(0.1 + (n % 5) / 20, 2),
                is_anomaly=flagged, category=category if n % 3 else "authentication",
                risk_level=risk if flagged else "low", tags=list(tags),
                ai_insights={"summary": "deleted at an unusual hour"} if flagged else {},
                model_versions={}, review_required=False, enriched_at=datetime.now(UTC)))


def _csv_rows(resp) -> list[dict[str, str]]:
    text = resp.get_data().decode("utf-8")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader)
    assert header == list(COLUMNS)
    return [dict(zip(header, row, strict=True)) for row in reader]


def _access(client, tenant) -> list[dict]:
    return client.get("/api/v1/access-log?limit=20", headers=tenant.headers).get_json()["entries"]


def test_exports_plugin_registers_csv_and_pdf(trailseal_services):
    assert {"csv", "pdf"} <= set(registered_exporters(trailseal_services.pm))


def test_csv_export_is_complete_filtered_and_logged(trailseal_client, trailseal_services,
                                                   tenant):
    events = [make_event(occurred_at=_at(n), actor={"id": f"u-{n % 3}", "type": "user"},
                         entity={"type": "invoice", "id": f"INV-{n}"},
                         severity="high" if n % 2 else "low")
              for n in range(30)]
    ids = ingest(trailseal_client, tenant, events)["ids"]
    _insights(trailseal_services, tenant.id, ids, anomalous={ids[3]})
    body = {"severity": ["high"], "start": _at(0), "end": _at(25)}
    resp = trailseal_client.post("/api/v1/export/csv", json=body, headers=tenant.headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    assert resp.mimetype == "text/csv"
    assert resp.is_streamed
    assert resp.headers["Content-Disposition"].startswith("attachment; filename=")
    rows = _csv_rows(resp)
    expected = [ids[n] for n in range(25) if n % 2]
    assert [r["id"] for r in rows] == expected  # every matching event, oldest first
    seqs = [int(r["seq"]) for r in rows]
    assert seqs == sorted(seqs)
    one = next(r for r in rows if r["id"] == ids[5])
    full = trailseal_client.get(f"/api/v1/events/{ids[5]}", headers=tenant.headers).get_json()
    # every field of the event and of its insights is in the row
    assert one["hash"] == full["hash"] and one["previous_hash"] == full["previous_hash"]
    assert one["actor_id"] == "u-2" and one["entity_id"] == "INV-5"
    assert one["ip_address"] == "203.0.113.7" and one["user_agent"] == "Mozilla/5.0"
    assert json.loads(one["action_details"]) == full["action_details"]
    assert json.loads(one["tags"]) == ["finance"]
    assert one["category"] == full["insights"]["category"]
    assert one["risk_level"] == "low" and json.loads(one["insight_tags"]) == ["after-hours"]
    assert float(one["anomaly_score"]) == full["insights"]["anomaly_score"]
    assert one["is_anomaly"] == "false"
    flagged = next(r for r in rows if r["id"] == ids[3])
    assert (flagged["is_anomaly"], flagged["anomaly_score"], flagged["risk_level"]) == (
        "true", "0.93", "high")
    assert json.loads(flagged["ai_insights"]) == {"summary": "deleted at an unusual hour"}
    # newest first: this read of the log, the event read above, then the export
    entry = _access(trailseal_client, tenant)[2]
    assert entry["endpoint"] == "/api/v1/export/csv" and entry["method"] == "POST"
    assert entry["query"] == {"severity": ["high"], "start": _at(0), "end": _at(25)}


def test_csv_export_neutralises_stored_formulas(trailseal_client, tenant):
    payloads = ["=1+1", "+cmd", "-2+3", "@SUM(A1)", "\t=1", "\r=1", "   =HYPERLINK(\"x\")"]
    events = [make_event(occurred_at=_at(n), actor={"id": p, "type": "user"},
                         entity={"type": "doc", "id": p}, user_agent=p,
                         action_details={"note": p}, tags=[p.strip() or "t"])
              for n, p in enumerate(payloads)]
    ingest(trailseal_client, tenant, events)
    resp = trailseal_client.post("/api/v1/export/csv", json={}, headers=tenant.headers)
    rows = _csv_rows(resp)
    assert [r["actor_id"] for r in rows] == ["'" + p for p in payloads]
    assert [r["entity_id"] for r in rows] == ["'" + p for p in payloads]
    assert [r["user_agent"] for r in rows] == ["'" + p for p in payloads]
    for row in rows:
        for cell in row.values():
            assert not cell.lstrip(" ").startswith(("=", "+", "-", "@", "\t", "\r")), cell


hostile = st.text(alphabet=st.one_of(st.sampled_from(list("=+-@\t\r ,\"'")),
                                     st.characters(blacklist_categories=("Cs", "Cc"))),
                  min_size=1, max_size=12)


@PROPERTY
@given(actor=hostile, note=hostile)
def test_csv_round_trip_of_any_text_through_the_api(trailseal_app, trailseal_services,
                                                    actor, note):
    """Whatever the stored text, the exported cell read back by ``csv`` is that text,
    neutralised: the stored event through the API, the streamed file and the reader."""
    from trailseal.testing import make_tenant

    tenant = _shared_tenant(trailseal_services, make_tenant)
    client = trailseal_app.test_client()
    entity = uuid.uuid4().hex
    ingest(client, tenant, [make_event(actor={"id": actor, "type": "user"},
                                       entity={"type": "doc", "id": entity},
                                       action_details={"note": note})])
    resp = client.post("/api/v1/export/csv", json={"entity_id": entity},
                       headers=tenant.headers)
    (row,) = _csv_rows(resp)
    assert row["actor_id"] == neutralise(actor)
    details = row["action_details"]
    assert json.loads(details) == {"note": note}  # JSON text never starts with a formula


_tenants: dict = {}


def _shared_tenant(svc, make_tenant):
    if "t" not in _tenants:
        _tenants["t"] = make_tenant(svc)
    return _tenants["t"]


def _export_peak(client, tenant, body) -> tuple[int, int]:
    """(bytes of the CSV, peak of traced memory while it streamed after its first chunk)."""
    resp = client.post("/api/v1/export/csv", json=body, headers=tenant.headers)
    chunks = iter(resp.response)
    size = len(next(chunks))  # the first page warms caches (compiled SQL, data keys)
    tracemalloc.start()
    try:
        for chunk in chunks:
            size += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        resp.close()
    return size, peak


def test_csv_export_pages_with_bounded_memory(trailseal_client, trailseal_services, tenant,
                                              monkeypatch):
    """An export four times larger takes no more memory: events are read in pages of
    ``EXPORT_STREAM_PAGE_SIZE`` (the streamed export's binary COPY pages) and written out
    chunk by chunk, never held whole."""
    import trailseal.services.export_rows as export_rows

    for batch in range(4):
        ingest(trailseal_client, tenant, [
            make_event(occurred_at=_at(batch * 1000 + n), entity={"type": "doc",
                                                                  "id": f"D-{batch}-{n}"},
                       action_details={"note": "x" * 200, "n": n}) for n in range(1000)])
    monkeypatch.setitem(trailseal_services.config, "EXPORT_STREAM_PAGE_SIZE", 100)
    pages = []
    real_page = export_rows._page_rows

    def counting_page(res):
        rows = real_page(res)
        pages.append(len(rows))
        return rows

    monkeypatch.setattr(export_rows, "_page_rows", counting_page)
    small_size, small_peak = _export_peak(trailseal_client, tenant, {"end": _at(1000)})
    pages.clear()
    size, peak = _export_peak(trailseal_client, tenant, {})
    assert size > 3.9 * small_size and size > 2_000_000
    assert max(pages) == 100 and len(pages) == 41  # read page by page
    assert peak < 1.5 * small_peak + 256 * 1024, (peak, small_peak, size)
    assert peak < 4 * 1024 * 1024, (peak, size)  # a few pages' worth, not the file


def test_csv_page_cut_by_record_bytes(trailseal_client, trailseal_services, tenant,
                                      monkeypatch):
    """Large records end a page early (the byte budget); no event is lost or repeated."""
    ingest(trailseal_client, tenant, [make_event(occurred_at=_at(n),
                                                 action_details={"blob": "y" * 3000})
                                      for n in range(12)])
    monkeypatch.setitem(trailseal_services.config, "PAGE_MAX_BYTES", 8000)
    resp = trailseal_client.post("/api/v1/export/csv", json={}, headers=tenant.headers)
    rows = _csv_rows(resp)
    assert [int(r["seq"]) for r in rows] == list(range(1, 13))


def test_export_needs_audit_export(trailseal_client, trailseal_services, tenant):
    ingest(trailseal_client, tenant, [make_event()])
    key = create_api_key(trailseal_services, tenant.id, ["audit:read", "audit:write"])
    headers = {"Authorization": f"Bearer {key['token']}"}
    for method, url, body in (("POST", "/api/v1/export/csv", {}),
                              ("POST", "/api/v1/export/pdf", {}),
                              ("GET", "/api/v1/subjects/u-1/export", None)):
        resp = trailseal_client.open(url, method=method, json=body, headers=headers)
        assert resp.status_code == 403, (url, resp.status_code)
        assert resp.get_json()["error"]["details"] == {"required": "audit:export"}


def test_unknown_format_and_bad_filters(trailseal_client, tenant):
    resp = trailseal_client.post("/api/v1/export/xlsx", json={}, headers=tenant.headers)
    assert resp.status_code == 404
    assert set(resp.get_json()["error"]["details"]["formats"]) >= {"csv", "pdf"}
    for body in ({"limit": 5}, {"severity": ["apocalyptic"]}, {"start": "yesterday"},
                 {"cursor": "x"}):
        resp = trailseal_client.post("/api/v1/export/csv", json=body, headers=tenant.headers)
        assert resp.status_code == 422, body


def test_other_tenants_events_are_not_exported(trailseal_client, trailseal_services, tenant):
    from trailseal.testing import make_tenant

    other = make_tenant(trailseal_services)
    ingest(trailseal_client, other, [make_event(actor={"id": "u-secret", "type": "user"})])
    ingest(trailseal_client, tenant, [make_event()])
    rows = _csv_rows(trailseal_client.post("/api/v1/export/csv", json={},
                                           headers=tenant.headers))
    assert [r["actor_id"] for r in rows] == ["u-1"]
    resp = trailseal_client.get("/api/v1/subjects/u-secret/export", headers=tenant.headers)
    assert resp.status_code == 404


def _pdf_text(data: bytes, tmp_path) -> str:
    path = tmp_path / "export.pdf"
    path.write_bytes(data)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True,
                          check=True, text=True).stdout


def test_pdf_report(trailseal_client, trailseal_services, tenant, tmp_path):
    events = [make_event(occurred_at=_at(n * 180), actor={"id": f"u-{n % 4}", "type": "user"},
                         entity={"type": "invoice", "id": f"INV-{n}"},
                         severity="critical" if n == 7 else "medium")
              for n in range(40)]
    ids = ingest(trailseal_client, tenant, events)["ids"]
    _insights(trailseal_services, tenant.id, ids, anomalous={ids[7], ids[20]})
    body = {"start": _at(0), "end": _at(40 * 180)}
    resp = trailseal_client.post("/api/v1/export/pdf", json=body, headers=tenant.headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    assert resp.mimetype == "application/pdf"
    data = resp.get_data()
    assert data.startswith(b"%PDF")
    text = _pdf_text(data, tmp_path)
    verify = trailseal_client.get("/api/v1/chain/verify", headers=tenant.headers).get_json()
    for expected in ("Audit trail report", tenant.slug, "Executive summary", "Trends",
                     "Key findings", "Anomalies", "Statistics", "Events per day",
                     "Anomalies per day", "Events by category", "Chain verification",
                     "Intact", verify["head_hash"], "2 of 40 scored events were flagged",
                     "Page 1 of"):
        assert expected in text, expected
    # every exported event is in the events table, with its score and risk
    for n in range(40):
        assert f"INV-{n}" in text
    assert "0.93" in text and "high" in text
    pages = int(text.count("\f")) or 1
    assert f"Page {pages} of {pages}" in text or "Page" in text
    entry = _access(trailseal_client, tenant)[2]  # after this, chain verify and the log read
    assert entry["endpoint"] == "/api/v1/export/pdf"
    assert entry["query"] == body


def test_pdf_export_over_the_limit_is_refused(trailseal_client, trailseal_services, tenant,
                                             monkeypatch):
    ingest(trailseal_client, tenant, [make_event(occurred_at=_at(n)) for n in range(6)])
    monkeypatch.setitem(trailseal_services.config, "EXPORT_MAX_EVENTS", 5)
    resp = trailseal_client.post("/api/v1/export/pdf", json={}, headers=tenant.headers)
    assert resp.status_code == 422
    error = resp.get_json()["error"]
    assert error["details"] == {"count": 6, "max": 5, "format": "pdf"}
    assert "Narrow the filters" in error["message"]
    # a narrower export fits; CSV has no limit
    ok = trailseal_client.post("/api/v1/export/pdf", json={"end": _at(5)},
                               headers=tenant.headers)
    assert ok.status_code == 200
    assert len(_csv_rows(trailseal_client.post("/api/v1/export/csv", json={},
                                               headers=tenant.headers))) == 6


def test_pdf_of_no_events(trailseal_client, tenant, tmp_path):
    resp = trailseal_client.post("/api/v1/export/pdf", json={}, headers=tenant.headers)
    assert resp.status_code == 200
    text = _pdf_text(resp.get_data(), tmp_path)
    assert "No event matches the export's filters." in text


def test_subject_export(trailseal_client, trailseal_services, tenant):
    events = [make_event(occurred_at=_at(0), actor={"id": "alice", "type": "user"},
                         entity={"type": "doc", "id": "D1"}),
              make_event(occurred_at=_at(1), actor={"id": "bob", "type": "user"},
                         entity={"type": "user", "id": "alice"}),
              make_event(occurred_at=_at(2), actor={"id": "bob", "type": "user"},
                         entity={"type": "doc", "id": "D2"})]
    ids = ingest(trailseal_client, tenant, events)["ids"]
    resp = trailseal_client.get("/api/v1/subjects/alice/export", headers=tenant.headers)
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    body = resp.get_json()
    assert body["subject_id"] == "alice" and body["count"] == 2
    assert [e["id"] for e in body["events"]] == ids[:2]
    assert body["events"][0]["ip_address"] == "203.0.113.7"  # decrypted, every field
    full = trailseal_client.get(f"/api/v1/events/{ids[0]}", headers=tenant.headers).get_json()
    assert body["events"][0] == full
    entry = _access(trailseal_client, tenant)[2]
    assert entry["endpoint"] == "/api/v1/subjects/alice/export" and entry["method"] == "GET"
    missing = trailseal_client.get("/api/v1/subjects/nobody/export", headers=tenant.headers)
    assert missing.status_code == 404
    assert _access(trailseal_client, tenant)[1]["endpoint"] == "/api/v1/subjects/nobody/export"


def test_subject_export_spans_pages(trailseal_client, trailseal_services, tenant,
                                   monkeypatch):
    monkeypatch.setitem(trailseal_services.config, "EXPORT_PAGE_SIZE", 7)
    ingest(trailseal_client, tenant, [make_event(occurred_at=_at(n),
                                                 actor={"id": "carol", "type": "user"})
                                      for n in range(50)])
    body = trailseal_client.get("/api/v1/subjects/carol/export",
                                headers=tenant.headers).get_json()
    assert body["count"] == 50
    assert [e["seq"] for e in body["events"]] == list(range(1, 51))


@pytest.mark.parametrize("name", ["exports"])
def test_exports_plugin_can_be_disabled(name):
    from trailseal.plugins import make_plugin_manager
    from trailseal.services.exports import registered_exporters as found

    assert found(make_plugin_manager(disable=name)) == {}


def test_large_pdf_is_written_by_a_worker(trailseal_client, trailseal_services, tenant,
                                          run_jobs, monkeypatch, tmp_path):
    ids = ingest(trailseal_client, tenant, [make_event(occurred_at=_at(n),
                                                       entity={"type": "doc", "id": f"J-{n}"})
                                            for n in range(8)])["ids"]
    monkeypatch.setitem(trailseal_services.config, "EXPORT_SYNC_MAX_EVENTS", 5)
    resp = trailseal_client.post("/api/v1/export/pdf", json={"end": _at(7)},
                                 headers=tenant.headers)
    assert resp.status_code == 202, resp.get_data(as_text=True)[:300]
    job = resp.get_json()
    assert resp.headers["Location"] == f"/api/v1/export/jobs/{job['id']}"
    assert (job["status"], job["event_count"], job["format"]) == ("queued", 7, "pdf")
    assert job["filters"] == {"end": _at(7)} and job["download_url"] is None
    # not done yet: the file is a 409 naming the status
    early = trailseal_client.get(f"/api/v1/export/jobs/{job['id']}/file",
                                 headers=tenant.headers)
    assert early.status_code == 409 and early.get_json()["error"]["details"] == {
        "status": "queued"}
    # events appended after the request are not in the file (the head was fixed)
    ingest(trailseal_client, tenant, [make_event(occurred_at=_at(1),
                                                 entity={"type": "doc", "id": "LATE"})])
    run_jobs()
    status = trailseal_client.get(f"/api/v1/export/jobs/{job['id']}",
                                  headers=tenant.headers).get_json()
    assert status["status"] == "done" and status["size"] > 1000
    assert status["download_url"] == f"/api/v1/export/jobs/{job['id']}/file"
    file = trailseal_client.get(status["download_url"], headers=tenant.headers)
    assert file.status_code == 200 and file.mimetype == "application/pdf"
    assert file.headers["Content-Disposition"].endswith('.pdf"')
    text = _pdf_text(file.get_data(), tmp_path)
    assert all(f"J-{n}" in text for n in range(7)) and "J-7" not in text
    assert "LATE" not in text
    assert len(ids) == 8
    endpoints = [e["endpoint"] for e in _access(trailseal_client, tenant)]
    assert endpoints[1:4] == [status["download_url"], f"/api/v1/export/jobs/{job['id']}",
                              f"/api/v1/export/jobs/{job['id']}/file"]
    # another tenant cannot see the job
    from trailseal.testing import make_tenant

    other = make_tenant(trailseal_services)
    for url in (f"/api/v1/export/jobs/{job['id']}", status["download_url"]):
        assert trailseal_client.get(url, headers=other.headers).status_code == 404


def test_exports_carry_the_signed_checkpoint(trailseal_client, trailseal_services, tenant,
                                             tmp_path):
    """CSV: the checkpoint in response headers (none before the first one); PDF: on its
    verification page. The note verifies with the instance's public key."""
    import base64

    from trailseal_verify.note import parse_verifier_key, verify_checkpoint

    ingest(trailseal_client, tenant, [make_event(occurred_at=_at(n)) for n in range(5)])
    before = trailseal_client.post("/api/v1/export/csv", json={}, headers=tenant.headers)
    assert before.status_code == 200 and "Trailseal-Checkpoint" not in before.headers
    assert len(_csv_rows(before)) == 5
    pdf = trailseal_client.post("/api/v1/export/pdf", json={}, headers=tenant.headers)
    assert "No signed checkpoint covers these events yet" in _pdf_text(pdf.get_data(),
                                                                       tmp_path)
    made = trailseal_client.post("/api/v1/checkpoints", headers=tenant.headers)
    assert made.status_code == 201, made.get_json()
    checkpoint = made.get_json()["checkpoint"]
    key = trailseal_client.get("/api/v1/checkpoints/public-key",
                               headers=tenant.headers).get_json()

    resp = trailseal_client.post("/api/v1/export/csv", json={}, headers=tenant.headers)
    note = base64.b64decode(resp.headers["Trailseal-Checkpoint"]).decode()
    assert note == checkpoint["note"]
    assert resp.headers["Trailseal-Checkpoint-Tree-Size"] == "5" == resp.headers[
        "X-Export-Head-Seq"]
    signed = verify_checkpoint(note, parse_verifier_key(key["vkey"]))
    assert signed.size == 5 and signed.root.hex() == checkpoint["root"]
    assert len(_csv_rows(resp)) == 5  # the body is the CSV alone

    # later events: the newest checkpoint covers the export's first five events only
    ingest(trailseal_client, tenant, [make_event(occurred_at=_at(10))])
    partial = trailseal_client.post("/api/v1/export/csv", json={}, headers=tenant.headers)
    assert partial.headers["Trailseal-Checkpoint-Tree-Size"] == "5"
    assert partial.headers["X-Export-Head-Seq"] == "6" and len(_csv_rows(partial)) == 6

    text = _pdf_text(trailseal_client.post("/api/v1/export/pdf", json={},
                                           headers=tenant.headers).get_data(), tmp_path)
    for expected in ("Signed checkpoint", checkpoint["key_name"], checkpoint["root"],
                     "Tree size", "the exported events up to seq 5",
                     note.splitlines()[0], note.splitlines()[2]):
        assert expected in text, expected
    trailseal_client.post("/api/v1/checkpoints", headers=tenant.headers)
    text = _pdf_text(trailseal_client.post("/api/v1/export/pdf", json={},
                                           headers=tenant.headers).get_data(), tmp_path)
    assert "every exported event (seq 1 to 6)" in text
