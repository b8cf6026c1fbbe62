"""``trailseal import --format cloudtrail``: every shape CloudTrail arrives in, real records
(tests/data/cloudtrail and the shared Stratus detonation logs), skipped records reported by
file and position while the valid ones are appended, and the importers hook in the CLI."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.conftest import make_event
from trailseal.services.integrity import verify_chain

DATA = Path(__file__).resolve().parents[1] / "data" / "cloudtrail"
# shared/ lies beside the repository (in CI too, beside the clone)
DETONATIONS = (Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
               / "stratus-cloudtrail" / "detonation-logs")


def _cli(services, *args, stdin: bytes | None = None):
    env = dict(os.environ, TRAILSEAL_INSTANCE_PATH=services.config["INSTANCE_PATH"])
    return subprocess.run([sys.executable, "-m", "trailseal", *args], env=env, input=stdin,
                          capture_output=True, timeout=180)


def _count(services, tenant_id) -> int:
    with services.db.cursor(tenant_id) as cur:
        cur.execute("SELECT count(*) FROM audit_logs WHERE tenant_id = %s", (tenant_id,))
        return cur.fetchone()[0]


def _array(name: str) -> list[dict]:
    return orjson.loads((DATA / name).read_bytes())


def _flatten(value: dict, prefix: str = "") -> dict:
    """A record as a Logstash pipeline with a flattening filter writes it: nested keys
    joined with dots, ``eventTime`` moved to ``@timestamp`` (the cloudtrail codec)."""
    out: dict = {}
    for key, item in value.items():
        if isinstance(item, dict) and item and key != "requestParameters":
            out.update(_flatten(item, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = item
    return out


def _snake(key: str) -> str:
    return {"eventID": "event_id", "sourceIPAddress": "source_ip_address"}.get(
        key, re.sub(r"(?<=[a-z])([A-Z])", lambda m: "_" + m.group(1).lower(), key))


def _snake_flat(record: dict) -> dict:
    return {".".join(_snake(p) for p in k.split(".")): v for k, v in _flatten(record).items()}


def _shapes(tmp_path: Path) -> tuple[list[Path], list[dict]]:
    """One file per accepted shape, and every record they hold."""
    create_admin = _array("array-iam-create-admin-user.json")  # 3 records
    stop = _array("array-cloudtrail-stop.json")  # 1
    delete = orjson.loads((DATA / "records-cloudtrail-delete.json").read_bytes())["Records"]
    files = {
        "array.json": (DATA / "array-iam-create-admin-user.json").read_bytes(),
        "records.json": (DATA / "records-cloudtrail-delete.json").read_bytes(),
        "records.json.gz": gzip.compress(orjson.dumps({"Records": stop})),
        # NDJSON, gzipped, without a .gz suffix: detected by its magic bytes
        "ndjson.log": gzip.compress(b"\n".join(orjson.dumps(r) for r in create_admin[:2])),
    }
    logstash = dict(_flatten(create_admin[2]), **{"@version": "1"})
    logstash["@timestamp"] = logstash.pop("eventTime")
    files["logstash-flat.jsonl"] = b"\n".join([
        orjson.dumps(logstash),
        orjson.dumps(_snake_flat(stop[0])),
        # a record serialised into "message", as a json filter without target leaves it
        orjson.dumps({"@timestamp": "2024-01-01T00:00:00.000Z", "@version": "1",
                      "message": orjson.dumps(delete[0]).decode()}),
        # the split filter keeps one record under "Records"
        orjson.dumps({"@version": "1", "Records": create_admin[0]}),
    ])
    paths = []
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        paths.append(tmp_path / name)
    records = create_admin + delete + stop + create_admin[:2] + [
        create_admin[2], stop[0], delete[0], create_admin[0]]
    return paths, records


def test_every_shape_in_one_run_keeps_the_record_and_finds_it_by_event_id(
        trailseal_services, trailseal_client, tenant, tmp_path):
    paths, records = _shapes(tmp_path)
    run = _cli(trailseal_services, "import", "--tenant", tenant.slug, "--format", "cloudtrail",
               *map(str, paths))
    assert run.returncode == 0, run.stderr
    assert f"appended {len(records)} events".encode() in run.stdout
    assert run.stderr == b""
    assert _count(trailseal_services, tenant.id) == len(records) == 11
    assert verify_chain(trailseal_services, tenant.id).intact

    create_user = next(r for r in records if r["eventName"] == "CreateUser")
    page = trailseal_client.get(f"/api/v1/events?tag=eventid:{create_user['eventID']}",
                                headers=tenant.headers).get_json()["events"]
    assert len(page) == 2  # the plain array and the Logstash-flattened copy
    from_array = next(e for e in page if e["action_details"]["cloudtrail"] == create_user)
    assert from_array["event_type"] == "iam.CreateUser"
    assert from_array["occurred_at"] == create_user["eventTime"].replace("Z", ".000000Z")
    assert from_array["severity"] == "high"
    assert from_array["actor"]["id"] == create_user["userIdentity"]["arn"]
    assert from_array["actor"]["type"] == create_user["userIdentity"]["type"]
    assert from_array["entity"] == {"type": "iam:userName",
                                    "id": create_user["requestParameters"]["userName"]}
    assert from_array["user_agent"] == create_user["userAgent"]
    assert set(from_array["tags"]) >= {"cloudtrail", f"eventid:{create_user['eventID']}"}
    flat = next(e for e in page if e is not from_array)
    for field in ("event_type", "occurred_at", "severity", "actor", "entity", "source"):
        assert flat[field] == from_array[field], field
    assert "userIdentity.arn" in flat["action_details"]["cloudtrail"]  # kept as it came

    stopped = trailseal_client.get("/api/v1/events?event_type=cloudtrail.StopLogging",
                                   headers=tenant.headers).get_json()["events"]
    assert len(stopped) == 2 and {e["severity"] for e in stopped} == {"critical"}


def test_bad_records_are_named_by_file_and_position_and_the_rest_is_appended(
        trailseal_services, tenant, tmp_path):
    good = _array("array-iam-create-admin-user.json")
    deep: dict = {}
    for _ in range(20):
        deep = {"d": deep}
    too_deep = dict(good[0], requestParameters=deep)  # maps, but fails validation
    ndjson = tmp_path / "mixed.ndjson"
    ndjson.write_bytes(b"\n".join([
        orjson.dumps(good[0]),
        b'{"eventName": "CreateUser", ',        # line 2: not JSON
        b"",
        orjson.dumps([1, 2]),                    # line 4: an array of non-records
        orjson.dumps(dict(good[1], eventTime="yesterday")),  # line 5
        orjson.dumps(too_deep),                  # line 6
        orjson.dumps(good[2]),
    ]))
    array = tmp_path / "array.json"
    array.write_bytes(orjson.dumps([good[1], "not a record", {"eventTime": "2024-01-01T00:00:00Z"}]))
    malformed = DATA / "records-ec2-user-data-malformed.json"
    panther = DATA / "panther-log-wrapped.jsonl"

    args = ["import", "--tenant", tenant.slug, "--format", "cloudtrail", "--batch-size", "4",
            str(ndjson), str(array), str(malformed), str(panther)]
    dry = _cli(trailseal_services, *args, "--dry-run")
    assert dry.returncode == 3, dry.stderr
    assert b"validated 18 events" in dry.stdout and _count(trailseal_services, tenant.id) == 0

    run = _cli(trailseal_services, *args)
    assert run.returncode == 3, run.stderr
    assert b"appended 18 events" in run.stdout and b"skipped 13 record(s)" in run.stdout
    err = run.stderr.decode()
    for expected in (
        f"skipped {ndjson}: line 2: not valid JSON",
        f"skipped {ndjson}: line 4 record 1: not a JSON object but a number",
        f"skipped {ndjson}: line 5: eventTime 'yesterday' is not a timestamp",
        f"skipped {ndjson}: line 6: Value error, nested deeper than 16 levels at action_details",
        f"skipped {array}: record 2: not a JSON object but a string",
        f"skipped {array}: record 3: no eventName",
        f"skipped {malformed}: file: not valid JSON (unexpected character, expected ',' or "
        "']' at line 112 column 1); nothing of this file was imported",
        f"skipped {panther}: line 1: no eventTime",
        f"skipped {panther}: line 9: no eventName",
        "13 record(s) skipped",
    ):
        assert expected in err, (expected, err)
    # skipped: 5 in mixed.ndjson (line 4 holds two non-records), 2 in array.json, the
    # malformed file, 5 Panther rows; appended: 2 + 1 + the 15 other Panther rows
    assert err.count("skipped /") == 13
    assert _count(trailseal_services, tenant.id) == 18
    assert verify_chain(trailseal_services, tenant.id).intact

    accepted = _cli(trailseal_services, *args, "--dry-run", "--allow-skipped")
    assert accepted.returncode == 0 and b"validated 18 events" in accepted.stdout


def test_unknown_format_lists_the_choices(trailseal_services, tenant, tmp_path):
    path = tmp_path / "e.json"
    path.write_bytes(b"[]")
    run = _cli(trailseal_services, "import", "--tenant", tenant.slug, "--format", "syslog",
               str(path))
    assert run.returncode == 2
    assert b"unknown format 'syslog'; choose from: jsonl, cloudtrail" in run.stderr


def test_cloudtrail_from_stdin_and_dry_run_writes_nothing(trailseal_services, tenant):
    data = gzip.compress((DATA / "records-cloudtrail-delete.json").read_bytes())
    dry = _cli(trailseal_services, "import", "--tenant", tenant.slug, "--format", "cloudtrail",
               "--dry-run", "-", stdin=data)
    assert dry.returncode == 0, dry.stderr
    assert b"validated 1 events" in dry.stdout and _count(trailseal_services, tenant.id) == 0
    run = _cli(trailseal_services, "import", "--tenant", tenant.slug, "--format", "cloudtrail",
               "-", stdin=data)
    assert run.returncode == 0 and b"appended 1 events" in run.stdout
    assert _count(trailseal_services, tenant.id) == 1


def test_jsonl_takes_several_files_and_names_the_file_of_a_bad_line(trailseal_services,
                                                                     tenant, tmp_path):
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_bytes(b"\n".join(orjson.dumps(make_event()) for _ in range(3)))
    second.write_bytes(b"\n".join([orjson.dumps(make_event()), b"{"]))
    run = _cli(trailseal_services, "import", "--tenant", tenant.slug, "--batch-size", "2",
               str(first), str(second))
    assert run.returncode == 1
    assert f"{second} line 2: not valid JSON".encode() in run.stderr
    assert b"4 event(s) before it were committed (up to seq 4)" in run.stderr
    assert b"re-run with --skip 4" in run.stderr  # --skip counts across the files
    assert _count(trailseal_services, tenant.id) == 4
    second.write_bytes(b"\n".join(orjson.dumps(make_event()) for _ in range(2)))
    ok = _cli(trailseal_services, "import", "--tenant", tenant.slug, "--skip", "4",
              str(first), str(second))
    assert ok.returncode == 0 and b"appended 1 events" in ok.stdout and b"head seq 5" in ok.stdout


def test_plugins_lists_the_cloudtrail_importer(trailseal_services):
    run = _cli(trailseal_services, "plugins")
    assert run.returncode == 0
    assert re.search(rb"^cloudtrail \[trailseal [^]]+\]: importers$", run.stdout, re.M)


@pytest.mark.skipif(not DETONATIONS.is_dir(), reason="shared Stratus dataset not present")
def test_all_stratus_detonations_import(trailseal_services, trailseal_client, tenant):
    files = sorted(DETONATIONS.glob("*.json"))
    assert len(files) == 35
    run = _cli(trailseal_services, "import", "--tenant", tenant.slug, "--format", "cloudtrail",
               *map(str, files))
    assert run.returncode == 0, run.stderr
    assert b"appended 310 events" in run.stdout, run.stdout
    print(run.stdout.decode())  # the measured rate, for the record (pytest -s)
    assert _count(trailseal_services, tenant.id) == 310
    assert verify_chain(trailseal_services, tenant.id).intact
    # anonymised addresses (255.090.254.5) are no ip_address; the record keeps them
    events = trailseal_client.get("/api/v1/events?limit=500",
                                  headers=tenant.headers).get_json()["events"]
    assert len(events) == 310
    for event in events:
        ip = event["action_details"]["cloudtrail"]["sourceIPAddress"]
        assert event["ip_address"] in (ip, None)
        if re.search(r"(^|\.)0\d", ip) or not ip[0].isdigit():
            assert event["ip_address"] is None
