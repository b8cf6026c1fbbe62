"""The cloudtrail importer's mapping rules, record by record (no database)."""

from __future__ import annotations

import io

import orjson
import pytest

from trailseal.services.ingest import validate_events
from trailseal.types import ImportedEvent, Importer, ImportProblem
from trailseal_plugins.import_cloudtrail import CloudTrailImporter, map_record, severity_of


def _record(**overrides) -> dict:
    record = {
        "eventTime": "2024-07-30T21:31:21Z", "eventSource": "iam.amazonaws.com",
        "eventName": "CreateUser", "awsRegion": "us-east-1", "readOnly": False,
        "sourceIPAddress": "203.0.113.9", "userAgent": "aws-cli/2",
        "eventID": "3346344c-5a3e-429e-8405-420f98f75d6e", "recipientAccountId": "111122223333",
        "requestParameters": {"userName": "mallory"},
        "userIdentity": {
            "type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/ops/s",
            "accountId": "111122223333",
            "sessionContext": {"sessionIssuer": {"type": "Role", "userName": "ops"}}},
    }
    record.update(overrides)
    return record


def test_a_record_maps_to_a_valid_event_keeping_the_original():
    record = _record()
    body = map_record(record)
    validate_events([body])
    assert body["event_type"] == "iam.CreateUser"
    assert body["actor"] == {"id": record["userIdentity"]["arn"], "type": "AssumedRole",
                             "role": "ops"}
    assert body["entity"] == {"type": "iam:userName", "id": "mallory"}
    assert body["severity"] == "high" and body["source"] == "aws:us-east-1"
    assert body["ip_address"] == "203.0.113.9" and body["user_agent"] == "aws-cli/2"
    assert body["tags"] == ["cloudtrail", f"eventid:{record['eventID']}"]
    assert body["action_details"] == {"cloudtrail": record}


@pytest.mark.parametrize(("value", "expected"), [
    ("2024-07-30T21:31:21Z", "2024-07-30T21:31:21Z"),
    ("2023-05-26 20:14:51", "2023-05-26T20:14:51Z"),                 # no offset: UTC
    ("2023-05-26 20:14:51.123456789", "2023-05-26T20:14:51.123456Z"),  # cut to microseconds
    ("2023-05-26T20:14:51+0200", "2023-05-26T20:14:51+02:00"),
])
def test_event_times(value, expected):
    assert map_record(_record(eventTime=value))["occurred_at"] == expected


@pytest.mark.parametrize("address", ["255.090.254.5", "ec2.amazonaws.com", "AWS Internal",
                                     "fe80::1%eth0", ""])
def test_an_address_that_is_not_an_ip_stays_only_in_the_record(address):
    body = map_record(_record(sourceIPAddress=address))
    assert "ip_address" not in body
    assert body["action_details"]["cloudtrail"]["sourceIPAddress"] == address


@pytest.mark.parametrize(("service", "name", "identity", "error", "read_only", "expected"), [
    ("ec2", "GetPasswordData", "AssumedRole", "Client.UnauthorizedOperation", True, "medium"),
    ("iam", "CreateUser", "IAMUser", "AccessDenied", False, "medium"),
    ("iam", "CreateUser", "IAMUser", "EntityAlreadyExists", False, "low"),
    ("cloudtrail", "StopLogging", "IAMUser", None, False, "critical"),
    ("organizations", "LeaveOrganization", "IAMUser", None, False, "critical"),
    ("iam", "AttachUserPolicy", "IAMUser", None, False, "high"),
    ("signin", "ConsoleLogin", "IAMUser", None, False, "high"),
    ("s3", "PutObject", "Root", None, False, "high"),
    ("s3", "ListBuckets", "Root", None, True, "medium"),
    ("ec2", "RunInstances", "IAMUser", None, False, "low"),
    ("ec2", "DescribeInstances", "IAMUser", None, True, "info"),
])
def test_severity_rules(service, name, identity, error, read_only, expected):
    assert severity_of(service, name, identity, error, read_only) == expected


def test_entity_from_resources_then_parameters_then_account():
    with_resource = _record(resources=[{"ARN": "arn:aws:iam::1:role/r", "type": "AWS::IAM::Role"}])
    assert map_record(with_resource)["entity"] == {"type": "AWS::IAM::Role",
                                                   "id": "arn:aws:iam::1:role/r"}
    assert map_record(_record(requestParameters=None))["entity"] == {
        "type": "aws:account", "id": "111122223333"}


def test_logstash_flattened_and_snake_case_records_map_like_the_original():
    record = _record()
    expected = map_record(record)
    flat = {"@timestamp": record["eventTime"], "@version": "1", "event_source": "iam.amazonaws.com",
            "event_name": "CreateUser", "aws_region": "us-east-1", "read_only": False,
            "source_ip_address": "203.0.113.9", "user_agent": "aws-cli/2",
            "event_id": record["eventID"], "recipient_account_id": "111122223333",
            "request_parameters": {"user_name": "mallory"},
            "user_identity.type": "AssumedRole", "user_identity.arn": record["userIdentity"]["arn"],
            "user_identity.session_context.session_issuer.user_name": "ops"}
    body = map_record(flat)
    for field in ("event_type", "occurred_at", "actor", "entity", "severity", "source",
                  "ip_address", "user_agent", "tags"):
        assert body[field] == expected[field], field
    assert body["action_details"] == {"cloudtrail": flat}


def test_the_importer_fits_the_protocol_and_reports_instead_of_raising():
    importer = CloudTrailImporter()
    assert isinstance(importer, Importer) and importer.name == "cloudtrail"
    items = list(importer.parse(io.BytesIO(b"\x1f\x8bnot gzip"), "x.gz"))
    assert len(items) == 1 and isinstance(items[0], ImportProblem)
    assert str(items[0]).startswith("x.gz: file: not a readable gzip file")
    items = list(importer.parse(io.BytesIO(b'{"Records": [{"eventName": "A"}, 3]}'), "r.json"))
    assert [str(i) for i in items] == ["r.json: record 1: no eventTime",
                                       "r.json: record 2: not a JSON object but a number"]
    items = list(importer.parse(io.BytesIO(b""), "empty.json"))
    assert items == []
    ok = list(importer.parse(io.BytesIO(orjson.dumps([_record()])), "a"))
    assert isinstance(ok[0], ImportedEvent) and ok[0].position == "record 1"
