"""The streamed export's fast read path (``services.export_rows``) against the reference
rendering: the API's event objects (``row_to_event``) and the CSV written from them, for a
mixed set of events (every field, nulls, unicode, formula-looking cells, tags, insights
present and absent), across page boundaries."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy import insert

from tests.conftest import ingest, make_event
from trailseal.schemas import ExportFilters
from trailseal.services.export_rows import _Decoder, _read_page, iter_event_rows
from trailseal.services.exports import export_scope, iter_events
from trailseal.tables import event_insights
from trailseal.types import EVENT_ROW_FIELDS
from trailseal_plugins.exports.csv_format import CsvExporter

BASE = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)


def _at(minutes: int) -> str:
    return (BASE + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _mixed_events() -> list[dict]:
    """Events that exercise every kind of value a row can hold."""
    events = [
        make_event(occurred_at=_at(0)),  # every field set
        make_event(occurred_at=_at(1), actor={"id": "u-2", "type": "service"},
                   source=None, ip_address=None, user_agent=None, action_details=None,
                   tags=[]),  # every optional field null or empty
        make_event(occurred_at=_at(2), actor={"id": "Zoë Ωmega 🚀", "type": "user",
                                             "role": "高级", "department": "Ré, \"q\""},
                   entity={"type": "doc", "id": "naïve, \"quoted\"\nline"},
                   user_agent="agent \"x\", y", ip_address="2001:db8::1",
                   action_details={"note": "multi\nline, \"quoted\"", "ü": [1, 2.5, None],
                                   "nested": {"z": True, "a": -1e-07}},
                   tags=["ünïcode", "a,b"]),
        make_event(occurred_at=_at(3), actor={"id": "=1+1", "type": "user"},
                   entity={"type": "+cmd", "id": "-2+3"}, user_agent="@SUM(A1)",
                   action_details={"f": "=HYPERLINK(\"x\")"}, source="  =x",
                   tags=["-x"]),  # formula-looking cells
        # the same moment twice: ordered by seq, and a page may end between them
        make_event(occurred_at=_at(4), entity={"type": "invoice", "id": "TIE-1"}),
        make_event(occurred_at=_at(4), entity={"type": "invoice", "id": "TIE-2"},
                   severity="critical"),
    ]
    events += [make_event(occurred_at=_at(10 + n), entity={"type": "doc", "id": f"P-{n}"},
                          action_details={"n": n, "pad": "p" * (n * 37)})
               for n in range(9)]
    return events


def _ingest_all(client, tenant) -> list[str]:
    """The mixed events, and one more sent alone with an Idempotency-Key."""
    ids = ingest(client, tenant, _mixed_events())["ids"]
    resp = client.post("/api/v1/events", json=make_event(occurred_at=_at(5), source="api"),
                       headers={**tenant.headers, "Idempotency-Key": "idem-1"})
    assert resp.status_code == 201, resp.get_json()
    return [*ids, resp.get_json()["id"]]


def _add_insights(svc, tenant_id, ids: list[str]) -> None:
    """Insights for some events: scores positive, negative and null; flags null; tags and
    AI insights empty and full; the other events keep none."""
    values = [
        dict(anomaly_score=0.93, is_anomaly=True, category="security", risk_level="high",
             tags=["after-hours", "ünï"], ai_insights={"summary": "deleted late", "n": 2},
             review_required=True),
        dict(anomaly_score=-0.25, is_anomaly=False, category=None, risk_level=None,
             tags=[], ai_insights={}, review_required=False),
        dict(anomaly_score=None, is_anomaly=None, category="=formula", risk_level="low",
             tags=["@x", "a,\"b\""], ai_insights={"z": [1, {"b": None}], "a": "é"},
             review_required=False),
        dict(anomaly_score=1e-05, is_anomaly=True, category="data access",
             risk_level="medium", tags=["x"], ai_insights={"long": "x" * 300},
             review_required=True),
    ]
    with svc.db.transaction(tenant_id) as conn:
        for n, event_id in enumerate(ids):
            if n % 3 == 2:
                continue  # no insights
            conn.execute(insert(event_insights).values(
                event_id=uuid.UUID(event_id), tenant_id=tenant_id, model_versions={},
                enriched_at=datetime.now(UTC), **values[n % len(values)]))


def _reference_row(event: dict) -> dict:
    """What each field of an event row must hold, from the API's event object."""
    insights = event["insights"]

    def js(value):
        return None if value is None else orjson.dumps(value).decode()

    return {
        "id": event["id"], "seq": event["seq"], "occurred_at": event["occurred_at"],
        "received_at": event["received_at"], "event_type": event["event_type"],
        "actor_id": event["actor"]["id"], "actor_type": event["actor"]["type"],
        "actor_role": event["actor"]["role"],
        "actor_department": event["actor"]["department"],
        "entity_type": event["entity"]["type"], "entity_id": event["entity"]["id"],
        "severity": event["severity"], "source": event["source"], "tags": js(event["tags"]),
        "ip_address": event["ip_address"], "user_agent": event["user_agent"],
        "action_details": js(event["action_details"]),
        "idempotency_key": event["idempotency_key"],
        "previous_hash": event["previous_hash"], "hash": event["hash"],
        "category": insights and insights["category"],
        "risk_level": insights and insights["risk_level"],
        "insight_tags": insights and js(insights["tags"]),
        "anomaly_score": insights and insights["anomaly_score"],
        "is_anomaly": insights and insights["is_anomaly"],
        "review_required": insights and insights["review_required"],
        "ai_insights": insights and js(insights["ai_insights"]),
    }


def _scope(svc, tenant_id, filters: ExportFilters | None = None):
    with svc.db.cursor(tenant_id) as cur:
        cur.execute("SELECT last_seq FROM chain_heads WHERE tenant_id = %s", (tenant_id,))
        head = cur.fetchone()[0]
    return export_scope(svc, tenant_id, filters or ExportFilters(), head, "test")


def test_fast_rows_equal_the_event_objects_field_by_field(trailseal_client,
                                                          trailseal_services, tenant,
                                                          monkeypatch):
    svc = trailseal_services
    ids = _ingest_all(trailseal_client, tenant)
    _add_insights(svc, tenant.id, ids)
    monkeypatch.setitem(svc.config, "EXPORT_STREAM_PAGE_SIZE", 4)  # pages end mid-tie too
    scope = _scope(svc, tenant.id)
    fell_back = []
    reference = _Decoder._reference_row
    monkeypatch.setattr(_Decoder, "_reference_row",
                        lambda self, *args: fell_back.append(args[0]) or reference(self, *args))
    batches = list(iter_event_rows(svc, scope))
    # every event here has per-subject keys (key_id "<tenant key>:a"/":ae"): the fast path
    # decrypts them itself rather than handing them to the reference path
    assert fell_back == []
    rows = [row for batch in batches for row in batch]
    assert max(len(b) for b in batches) == 4 and len(batches) >= 4
    events = list(iter_events(svc, scope))  # the reference read path (row_to_event)
    assert len(rows) == len(events) == len(ids)
    for row, event in zip(rows, events, strict=True):
        assert len(row) == len(EVENT_ROW_FIELDS)
        got = dict(zip(EVENT_ROW_FIELDS, row, strict=True))
        expected = _reference_row(event)
        for name in EVENT_ROW_FIELDS:
            assert got[name] == expected[name], (name, got[name], expected[name])
            assert type(got[name]) is type(expected[name]), name
    # the events the API serves one by one are those objects
    one = trailseal_client.get(f"/api/v1/events/{ids[2]}", headers=tenant.headers).get_json()
    assert one == events[2]
    assert json.loads(rows[2][EVENT_ROW_FIELDS.index("action_details")]) == one[
        "action_details"]
    assert "idem-1" in [r[EVENT_ROW_FIELDS.index("idempotency_key")] for r in rows]
    # insights present and absent both occur, and every kind of value was compared
    with_insights = [r for r in rows if r[EVENT_ROW_FIELDS.index("insight_tags")] is not None]
    assert 0 < len(with_insights) < len(rows)


def test_fast_csv_has_the_bytes_of_the_reference_csv(trailseal_client, trailseal_services,
                                                     tenant, monkeypatch):
    """The endpoint (fast path) writes the bytes the reference writer writes from the
    API's event objects, filtered or not, whatever the page size."""
    svc = trailseal_services
    ids = _ingest_all(trailseal_client, tenant)
    _add_insights(svc, tenant.id, ids)
    exporter = CsvExporter()
    for page_size, body in ((3, {}), (2000, {}), (5, {"start": _at(2), "end": _at(14)}),
                            (7, {"severity": ["critical"]})):
        monkeypatch.setitem(svc.config, "EXPORT_STREAM_PAGE_SIZE", page_size)
        resp = trailseal_client.post("/api/v1/export/csv", json=body, headers=tenant.headers)
        assert resp.status_code == 200
        fast = resp.get_data()
        scope = _scope(svc, tenant.id, ExportFilters.model_validate(body))
        reference = b"".join(exporter.stream(iter_events(svc, scope), {}))
        assert fast == reference, (page_size, body)
        assert fast.count(b"\r\n") > 1
    assert b"'=1+1" in fast or b"TIE-2" in fast


def test_records_of_another_shape_go_through_the_reference_path(trailseal_client,
                                                                trailseal_services, tenant):
    """A record this path does not know (here: one more field) is read by ``row_to_event``:
    its row is still the API's view of it."""
    svc = trailseal_services
    ingest(trailseal_client, tenant, [make_event(occurred_at=_at(0)),
                                      make_event(occurred_at=_at(1), user_agent="ua-2")])
    scope = _scope(svc, tenant.id)
    page = _read_page(svc, scope, None, 10)
    record = page[1][2]
    other = record[:-1] + b',"zz_future":1}'
    decoder = _Decoder(svc, tenant.id)
    fast, fallback = decoder.rows([page[0], (*page[1][:2], other, *page[1][3:])])
    plain = decoder.rows(page)
    assert fast == plain[0]
    expected = list(plain[1])
    expected[EVENT_ROW_FIELDS.index("hash")] = hashlib.sha256(other).hexdigest()
    assert list(fallback) == expected  # decrypted the same, hash of the bytes it read
    assert fallback[EVENT_ROW_FIELDS.index("user_agent")] == "ua-2"


def test_a_download_stopped_half_way_stops_the_page_reader(trailseal_client,
                                                           trailseal_services, tenant,
                                                           monkeypatch):
    """A client that goes away closes the stream: the thread reading pages ahead stops and
    its connection goes back to the pool; the next export still works."""
    import threading

    svc = trailseal_services
    ingest(trailseal_client, tenant, [make_event(occurred_at=_at(n)) for n in range(60)])
    monkeypatch.setitem(svc.config, "EXPORT_STREAM_PAGE_SIZE", 5)
    resp = trailseal_client.post("/api/v1/export/csv", json={}, headers=tenant.headers)
    chunks = iter(resp.response)
    first = next(chunks) + next(chunks)
    assert first.startswith(b"id,seq,")
    assert any(t.name == "trailseal-export-pages" for t in threading.enumerate())
    resp.close()
    assert not any(t.name == "trailseal-export-pages" and t.is_alive()
                   for t in threading.enumerate())
    again = trailseal_client.post("/api/v1/export/csv", json={}, headers=tenant.headers)
    assert again.get_data().count(b"\r\n") == 61


def test_a_failure_while_the_next_page_is_read_leaves_the_connection_usable(
        trailseal_services, trailseal_client, tenant, monkeypatch):
    """The reader takes a page's rows while the server reads the next page. When taking
    them fails, the reader still collects the page in flight before the transaction ends:
    the error reaches the export and the connection goes back to the pool fit for use."""
    import trailseal.services.export_rows as export_rows

    svc = trailseal_services
    ingest(trailseal_client, tenant, [make_event(occurred_at=_at(n)) for n in range(20)])
    monkeypatch.setitem(svc.config, "EXPORT_STREAM_PAGE_SIZE", 4)
    real_rows, calls = export_rows._page_rows, []

    def failing_rows(res):
        calls.append(res.ntuples)
        if len(calls) == 2:
            res.clear()
            raise RuntimeError("taking the rows failed")
        return real_rows(res)

    monkeypatch.setattr(export_rows, "_page_rows", failing_rows)
    batches = iter_event_rows(svc, _scope(svc, tenant.id))
    assert len(next(batches)) == 4
    try:
        list(batches)
    except RuntimeError as exc:
        assert "taking the rows failed" in str(exc)
    else:
        raise AssertionError("the failure did not reach the export")
    monkeypatch.setattr(export_rows, "_page_rows", real_rows)
    for _ in range(3):  # every pooled connection answers, none is left mid-query
        rows = [r for batch in iter_event_rows(svc, _scope(svc, tenant.id)) for r in batch]
        assert [r[1] for r in rows] == list(range(1, 21))


def test_an_erasure_during_an_export_reaches_its_later_pages(trailseal_client,
                                                              trailseal_services, tenant,
                                                              monkeypatch):
    """The fast path keeps the per-subject event keys it derived from page to page; an
    erasure while the export runs (the tenant's erasure counter moves) drops them, so
    the pages decoded after it show ``[erased]``, as any read after an erasure does."""
    svc = trailseal_services
    ingest(trailseal_client, tenant, [
        make_event(occurred_at=_at(n), actor={"id": "erin", "type": "user"},
                   user_agent=f"ua-{n}") for n in range(12)])
    monkeypatch.setitem(svc.config, "EXPORT_STREAM_PAGE_SIZE", 4)
    batches = iter_event_rows(svc, _scope(svc, tenant.id))
    ua = EVENT_ROW_FIELDS.index("user_agent")
    first = next(batches)
    assert [r[ua] for r in first] == [f"ua-{n}" for n in range(4)]
    resp = trailseal_client.post("/api/v1/subjects/erin/erase", json={"reason": "GDPR 7"},
                                 headers=tenant.headers)
    assert resp.status_code == 200, resp.get_json()
    later = [r[ua] for batch in batches for r in batch]
    assert later == ["[erased]"] * 8


def _write_or_die(rows):
    """A row writer that works in the exporting process and kills any helper process
    that runs it (as a crash would)."""
    import multiprocessing
    import os

    if multiprocessing.parent_process() is not None:
        os._exit(1)
    return CsvExporter.row_writer(rows)


def _helper_pages(monkeypatch) -> list[int]:
    """Counts the pages handed to helper processes, from the first page on."""
    import trailseal.services.export_rows as export_rows

    sent = []
    real = export_rows._send_to_helper

    def counting(svc, decoder, page, write, use_helpers):
        call = real(svc, decoder, page, write, use_helpers)
        if call is not None:
            sent.append(len(page))
        return call

    monkeypatch.setattr(export_rows, "_send_to_helper", counting)
    monkeypatch.setattr(export_rows, "HELPER_AFTER_PAGES", 0)
    return sent


def test_pages_written_by_helper_processes_are_the_reference_bytes(
        trailseal_client, trailseal_services, tenant, monkeypatch):
    """On two cores the CSV endpoint shares pages with a helper process: the file is
    still byte for byte the reference writer's, with erased subjects (rows the helper
    hands back) and every kind of value, whatever the page size."""
    from trailseal.infra import helpers

    svc = trailseal_services
    ids = _ingest_all(trailseal_client, tenant)
    _add_insights(svc, tenant.id, ids)
    ingest(trailseal_client, tenant, [
        make_event(occurred_at=_at(30 + n), actor={"id": "ivy", "type": "user"},
                   user_agent=f"ivy-{n}") for n in range(6)])
    resp = trailseal_client.post("/api/v1/subjects/ivy/erase", json={"reason": "GDPR 9"},
                                 headers=tenant.headers)
    assert resp.status_code == 200, resp.get_json()
    sent = _helper_pages(monkeypatch)
    exporter = CsvExporter()
    for page_size, body in ((3, {}), (4, {"start": _at(2)}), (2000, {})):
        monkeypatch.setitem(svc.config, "EXPORT_STREAM_PAGE_SIZE", page_size)
        sent.clear()
        resp = trailseal_client.post("/api/v1/export/csv", json=body, headers=tenant.headers)
        assert resp.status_code == 200
        fast = resp.get_data()
        scope = _scope(svc, tenant.id, ExportFilters.model_validate(body))
        assert fast == b"".join(exporter.stream(iter_events(svc, scope), {})), page_size
        assert fast.count(b"[erased]") == 6 * 3  # address, agent and details
        if helpers.multi_core():
            assert sent, "no page went to a helper process"


def test_an_export_outlives_a_helper_that_dies(trailseal_client, trailseal_services, tenant,
                                               monkeypatch):
    """A helper process that dies with pages in hand (here: killed by its row writer)
    breaks its pool; the exporting process writes those pages itself and the file is
    whole."""
    import trailseal.services.export_rows as export_rows
    from trailseal.infra import helpers
    from trailseal.services.export_rows import iter_event_text

    svc = trailseal_services
    ingest(trailseal_client, tenant, [make_event(occurred_at=_at(n)) for n in range(20)])
    monkeypatch.setitem(svc.config, "EXPORT_STREAM_PAGE_SIZE", 3)
    sent = _helper_pages(monkeypatch)
    scope = _scope(svc, tenant.id)
    text = "".join(iter_event_text(svc, scope, _write_or_die))
    expected = b"".join(CsvExporter().stream(iter_events(svc, scope), {}))
    header = expected.split(b"\r\n", 1)[0] + b"\r\n"
    assert header + text.encode() == expected
    if helpers.multi_core():
        # the pages in the helper's hands when it died; then the export goes on alone
        assert 1 <= len(sent) <= export_rows._HELPER_DEPTH


def test_helpers_switched_off_keep_the_export_in_one_process(trailseal_client,
                                                             trailseal_services, tenant,
                                                             monkeypatch):
    """``TRAILSEAL_EXPORT_HELPERS=false``: no page leaves the exporting process, and the
    file is the same."""
    from trailseal.infra import helpers

    svc = trailseal_services
    ingest(trailseal_client, tenant, [make_event(occurred_at=_at(n)) for n in range(12)])
    monkeypatch.setitem(svc.config, "EXPORT_STREAM_PAGE_SIZE", 2)
    sent = _helper_pages(monkeypatch)
    on = trailseal_client.post("/api/v1/export/csv", json={},
                               headers=tenant.headers).get_data()
    if helpers.multi_core():
        assert sent  # with helpers on, some pages went to one
    monkeypatch.setitem(svc.config, "EXPORT_HELPERS", False)
    sent.clear()
    off = trailseal_client.post("/api/v1/export/csv", json={},
                                headers=tenant.headers).get_data()
    assert off == on and off.count(b"\r\n") == 13
    assert sent == []  # none with helpers off


def test_a_writer_that_cannot_reach_a_helper_is_run_here(trailseal_client,
                                                         trailseal_services, tenant,
                                                         monkeypatch):
    """A third-party row writer that is not importable by name (a lambda) cannot be sent
    to a helper process: the exporting process writes every page itself."""
    from trailseal.services.export_rows import iter_event_text

    svc = trailseal_services
    ingest(trailseal_client, tenant, [make_event(occurred_at=_at(n)) for n in range(9)])
    monkeypatch.setitem(svc.config, "EXPORT_STREAM_PAGE_SIZE", 2)
    _helper_pages(monkeypatch)
    scope = _scope(svc, tenant.id)
    text = "".join(iter_event_text(svc, scope, lambda rows: CsvExporter.row_writer(rows)))
    expected = b"".join(CsvExporter().stream(iter_events(svc, scope), {}))
    assert expected.split(b"\r\n", 1)[1] == text.encode()
