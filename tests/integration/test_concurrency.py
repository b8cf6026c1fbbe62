"""Many concurrent writers on one tenant never fork the chain."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.conftest import make_event
from trailseal.services.ingest import append_events, validate_events
from trailseal.services.integrity import verify_chain


def test_concurrent_writers_keep_seq_gapless(trailseal_services, tenant):
    writers, per_writer = 8, 25

    def write(w: int) -> list[int]:
        seqs = []
        for i in range(per_writer):
            batch = validate_events([make_event(entity={"type": "doc", "id": f"{w}-{i}-{j}"})
                                     for j in range(1 + (i % 3))])
            seqs += append_events(trailseal_services, tenant.id, batch).seqs
        return seqs

    with ThreadPoolExecutor(writers) as pool:
        results = list(pool.map(write, range(writers)))
    all_seqs = sorted(s for r in results for s in r)
    assert all_seqs == list(range(1, len(all_seqs) + 1))
    report = verify_chain(trailseal_services, tenant.id)
    assert report.intact and report.events_checked == len(all_seqs) == report.head_seq


def test_concurrent_http_writers(trailseal_app, tenant):
    def write(i: int) -> int:
        client = trailseal_app.test_client()
        resp = client.post("/api/v1/events", json=make_event(entity={"type": "x", "id": str(i)}),
                           headers=tenant.headers)
        assert resp.status_code == 201
        return resp.get_json()["seq"]

    with ThreadPoolExecutor(8) as pool:
        seqs = sorted(pool.map(write, range(80)))
    assert seqs == list(range(1, 81))
    client = trailseal_app.test_client()
    assert client.get("/api/v1/chain/verify", headers=tenant.headers).get_json()["intact"]
