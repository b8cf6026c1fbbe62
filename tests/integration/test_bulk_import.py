"""Bulk append (``append_stream``) and ``trailseal import``: pipelined batches, each atomic,
chained like any other append; bad input stops cleanly with everything before it kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import orjson
import pytest

from tests.conftest import make_event
from trailseal.errors import ValidationFailed
from trailseal.services.bulk import append_stream
from trailseal.services.ingest import append_events, validate_events
from trailseal.services.integrity import verify_chain


def _events(n: int, prefix: str = "E") -> list[dict]:
    return [make_event(entity={"type": "doc", "id": f"{prefix}-{i}"},
                       tags=["bulk", f"t{i % 3}"] if i % 4 else [],
                       source=None if i % 5 == 0 else "api",
                       actor={"id": f"u-{i % 7}", "type": "user"})
            for i in range(n)]


def _records(services, tenant_id) -> list[tuple[int, bytes, str]]:
    with services.db.cursor(tenant_id) as cur:
        cur.execute("SELECT seq, record, hash FROM audit_logs WHERE tenant_id = %s ORDER BY seq",
                    (tenant_id,))
        return cur.fetchall()


@pytest.mark.parametrize("workers", [0, 1, None])
def test_stream_appends_linked_canonical_batches(trailseal_client, trailseal_services, tenant,
                                                 workers):
    raw = _events(2345)
    batches = [raw[i:i + 500] for i in range(0, len(raw), 500)]
    result = append_stream(trailseal_services, tenant.id, iter(batches), workers=workers)
    assert (result.batches, result.events, result.first_seq, result.last_seq) == (5, 2345, 1, 2345)
    rows = _records(trailseal_services, tenant.id)
    assert [r[0] for r in rows] == list(range(1, 2346))
    for seq, record, _ in rows[:50] + rows[-50:]:
        # stored bytes are exactly the canonical (sorted-key) form
        decoded = orjson.loads(record)
        assert bytes(record) == orjson.dumps(decoded, option=orjson.OPT_SORT_KEYS)
        assert decoded["seq"] == seq
    report = verify_chain(trailseal_services, tenant.id)
    assert report.intact and report.events_checked == 2345
    # the columns are what the API filters on, and reads decrypt the sensitive fields
    page = trailseal_client.get("/api/v1/events?entity_type=doc&entity_id=E-2001",
                                headers=tenant.headers).get_json()["events"]
    assert len(page) == 1 and page[0]["seq"] == 2002
    assert page[0]["ip_address"] == "203.0.113.7"
    assert page[0]["action_details"] == {"amount": 120.5, "reason": "duplicate"}
    assert page[0]["tags"] == ["bulk", "t0"] and page[0]["source"] == "api"
    first = trailseal_client.get("/api/v1/events?entity_id=E-0&entity_type=doc",
                                 headers=tenant.headers).get_json()["events"][0]
    assert first["tags"] == [] and first["source"] is None and first["actor"]["role"] is None


@pytest.mark.parametrize("workers", [0, 1, None])
def test_invalid_batch_stops_the_stream_and_keeps_what_came_before(trailseal_services, tenant,
                                                                    workers):
    good = _events(300)
    bad = _events(300, "B")
    bad[123]["severity"] = "urgent"
    with pytest.raises(ValidationFailed) as info:
        append_stream(trailseal_services, tenant.id, [good, bad, _events(10, "C")],
                      workers=workers)
    details = info.value.details
    assert (details["batch"], details["index"]) == (1, 123)
    assert details["committed_events"] == 300 and details["last_seq"] == 300
    assert "batch 1" in info.value.message and "event 123" in info.value.message
    rows = _records(trailseal_services, tenant.id)
    assert len(rows) == 300
    assert verify_chain(trailseal_services, tenant.id).intact


def test_concurrent_writers_never_fork_a_streamed_chain(trailseal_services, tenant):
    errors: list[BaseException] = []

    def single_appends():
        try:
            for i in range(40):
                append_events(trailseal_services, tenant.id,
                              validate_events([make_event(entity={"type": "x", "id": str(i)})]))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    other = threading.Thread(target=single_appends)
    other.start()
    raw = _events(3000)
    result = append_stream(trailseal_services, tenant.id,
                           (raw[i:i + 100] for i in range(0, 3000, 100)), workers=1)
    other.join()
    assert not errors
    assert result.events == 3000
    rows = _records(trailseal_services, tenant.id)
    assert [r[0] for r in rows] == list(range(1, 3041))
    report = verify_chain(trailseal_services, tenant.id)
    assert report.intact and report.events_checked == 3040


def _cli(services, *args, stdin: bytes | None = None):
    env = dict(os.environ, TRAILSEAL_INSTANCE_PATH=services.config["INSTANCE_PATH"])
    return subprocess.run([sys.executable, "-m", "trailseal", *args], env=env, input=stdin,
                          capture_output=True, timeout=180)


def test_cli_import_reports_bad_lines_and_resumes_with_skip(trailseal_services, tenant, tmp_path):
    lines = [orjson.dumps(e) for e in _events(25)]
    lines.insert(3, b"")  # blank lines are ignored
    lines[17] = b'{"event_type": "x.y", '  # the 17th event (line 18) is not JSON
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")

    dry = _cli(trailseal_services, "import", "--tenant", tenant.slug, "--dry-run", str(path))
    assert dry.returncode == 1 and b"line 18: not valid JSON" in dry.stderr
    assert _records(trailseal_services, tenant.id) == []

    run = _cli(trailseal_services, "import", "--tenant", tenant.slug, "--batch-size", "5",
               str(path))
    assert run.returncode == 1
    message = run.stderr.decode()
    assert "line 18: not valid JSON" in message
    assert "15 event(s) before it were committed (up to seq 15)" in message
    assert "--skip 15" in message
    assert len(_records(trailseal_services, tenant.id)) == 15

    lines[17] = orjson.dumps(make_event(severity="urgent"))
    path.write_bytes(b"\n".join(lines) + b"\n")
    bad = _cli(trailseal_services, "import", "--tenant", tenant.slug, "--skip", "15",
               "--batch-size", "5", str(path))
    assert bad.returncode == 1
    assert "line 18: Input should be 'info', 'low', 'medium', 'high' or 'critical' at severity" \
        in bad.stderr.decode()
    assert len(_records(trailseal_services, tenant.id)) == 15  # the bad batch wrote nothing

    lines[17] = orjson.dumps(make_event())
    ok = _cli(trailseal_services, "import", "--tenant", tenant.slug, "--skip", "15", "-",
              stdin=b"\n".join(lines))
    assert ok.returncode == 0, ok.stderr
    assert b"appended 10 events" in ok.stdout and b"head seq 25" in ok.stdout
    assert len(_records(trailseal_services, tenant.id)) == 25
    assert verify_chain(trailseal_services, tenant.id).intact


def test_cli_import_unknown_tenant(trailseal_services, tmp_path):
    path = tmp_path / "e.jsonl"
    path.write_bytes(orjson.dumps(make_event()))
    run = _cli(trailseal_services, "import", "--tenant", "no-such-tenant", str(path))
    assert run.returncode == 1 and b"no tenant" in run.stderr


def test_a_helper_that_dies_loses_nothing(trailseal_services, tenant):
    from trailseal.infra import helpers

    raw = _events(1000)

    def batches():
        for i in range(10):
            if i == 5:  # kill the helper while batches are in flight
                for pid in helpers.helper_pids(helpers.shared_pool()):
                    os.kill(pid, signal.SIGKILL)
            yield raw[i * 100:(i + 1) * 100]

    result = append_stream(trailseal_services, tenant.id, batches())
    assert (result.events, result.first_seq, result.last_seq) == (1000, 1, 1000)
    rows = _records(trailseal_services, tenant.id)
    assert [r[0] for r in rows] == list(range(1, 1001))
    assert verify_chain(trailseal_services, tenant.id).intact
    # and the next call gets a working pool again
    again = append_stream(trailseal_services, tenant.id, [_events(10, "N")])
    assert again.last_seq == 1010


@pytest.mark.parametrize("workers", [0, None])
def test_stream_takes_json_documents(trailseal_services, tenant, workers):
    lines = [orjson.dumps(e) for e in _events(250)]
    lines[10] = lines[10].decode()  # str works as well as bytes
    result = append_stream(trailseal_services, tenant.id, [lines[:200], lines[200:]],
                           workers=workers)
    assert (result.events, result.last_seq) == (250, 250)
    bad = [orjson.dumps(e) for e in _events(20, "X")]
    bad[7] = b'{"event_type": '
    with pytest.raises(ValidationFailed) as info:
        append_stream(trailseal_services, tenant.id, [bad[:5], bad[5:]], workers=workers)
    assert (info.value.details["batch"], info.value.details["index"]) == (1, 2)
    assert "not valid JSON" in info.value.message
    assert len(_records(trailseal_services, tenant.id)) == 255
