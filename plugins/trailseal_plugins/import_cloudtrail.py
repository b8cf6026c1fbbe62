"""AWS CloudTrail importer (``trailseal import --format cloudtrail``): reads CloudTrail
records as S3 delivers them, as JSON arrays, as NDJSON, gzipped or not, and as Logstash
and other shippers pass them on, and maps each to a Trailseal event body.

The mapping (documented in docs/admin-guide.md, "Bulk import"):

- ``event_type``: ``<service>.<eventName>``, the service being ``eventSource`` without
  ``.amazonaws.com`` (``iam.CreateUser``, ``signin.ConsoleLogin``); characters an event type
  cannot hold become ``_``.
- ``entity``: the first of ``resources[]`` (its ``type``, or ``aws:resource``, and ARN);
  else the first identifying request parameter (``iam:userName`` …); else the account.
- ``severity``: first rule that matches in ``severity_of``.
- the original record is kept whole in ``action_details["cloudtrail"]`` and its ``eventID``
  becomes the tag ``eventid:<eventID>``.
"""

from __future__ import annotations

import gzip
import io
import ipaddress
import re
from collections.abc import Iterable, Iterator
from typing import IO, Any

import orjson

from trailseal import hookimpl
from trailseal.types import ImportedEvent, ImportProblem

__all__ = ["CloudTrailImporter", "importers", "map_record", "severity_of"]

# Keys under which shippers nest a record (Logstash ``message``, Panther ``log``,
# EventBridge ``detail``, …), tried in this order when an object is not a record itself.
WRAPPER_KEYS = ("cloudtrail", "message", "log", "detail", "raw", "json", "Records")

# Calls that turn off or blind audit logging: defence evasion, always critical.
AUDIT_TAMPERING = {
    "cloudtrail": {"StopLogging", "DeleteTrail", "UpdateTrail", "PutEventSelectors",
                   "DeleteEventDataStore", "StopEventDataStoreIngestion"},
    "guardduty": {"DeleteDetector", "DisassociateFromMasterAccount", "UpdateDetector"},
    "config": {"StopConfigurationRecorder", "DeleteConfigurationRecorder",
               "DeleteDeliveryChannel"},
    "organizations": {"LeaveOrganization"},
    "ec2": {"DeleteFlowLogs"},
    "route53resolver": {"DeleteResolverQueryLogConfig",
                        "DisassociateResolverQueryLogConfig"},
    "logs": {"DeleteLogGroup", "DeleteLogStream"},
}
# Services whose write calls change who may do what, or the audit trail itself.
SENSITIVE_SERVICES = {"iam", "kms", "cloudtrail", "organizations", "signin", "sso",
                      "identitystore", "sts", "guardduty", "config", "securityhub",
                      "access-analyzer", "rolesanywhere"}
READ_PREFIXES = ("Get", "List", "Describe", "Head", "Lookup", "Search", "BatchGet", "Check")
DENIED = re.compile(r"AccessDenied|Unauthorized|Forbidden|NotAuthorized", re.I)
# Request parameters that name what a call acts on, preferred in this order; otherwise the
# first string parameter whose name ends like an identifier.
ENTITY_KEYS = ("userName", "roleName", "groupName", "policyArn", "bucketName", "functionName",
               "trailName", "name", "secretId", "keyId", "instanceId", "snapshotId", "imageId",
               "dBSnapshotIdentifier", "dBInstanceIdentifier", "logGroupName", "detectorId",
               "roleArn", "resourceArn")
IDENTIFIER = re.compile(r"(Name|Id|Arn|ARN|Identifier)$")
TIME = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?"
                  r"([Zz]|[+-]\d{2}:?\d{2})?")
SNAKE_SPECIAL = {"event_id": "eventID", "request_id": "requestID",
                 "source_ip_address": "sourceIPAddress", "shared_event_id": "sharedEventID"}


class CloudTrailImporter:
    """Reads CloudTrail files; see the module docstring for the shapes and the mapping."""

    name = "cloudtrail"

    def parse(self, stream: IO[bytes], source: str
              ) -> Iterator[ImportedEvent | ImportProblem]:
        """Event bodies for the records of ``stream``; a problem for each skipped record."""
        data = stream.read()
        if data[:2] == b"\x1f\x8b":
            try:
                data = gzip.GzipFile(fileobj=io.BytesIO(data)).read()
            except (OSError, EOFError) as exc:
                yield ImportProblem(source, "file", f"not a readable gzip file ({exc})")
                return
        for position, record in _records(data, source):
            if isinstance(record, ImportProblem):
                yield record
                continue
            try:
                body = map_record(record)
            except ValueError as exc:
                yield ImportProblem(source, position, str(exc))
                continue
            yield ImportedEvent(body, position)


def _records(data: bytes, source: str) -> Iterator[tuple[str, Any]]:
    """``(position, record)`` for each record of a file; ``(position, ImportProblem)`` for
    what cannot be read. A whole JSON document is tried first, then NDJSON."""
    if not data.strip():
        return
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as whole:
        lines = data.splitlines()
        first = next((i for i, line in enumerate(lines) if line.strip()), 0)
        try:
            orjson.loads(lines[first])
        except orjson.JSONDecodeError:
            # not NDJSON either: one malformed document (e.g. a pretty-printed file)
            yield "file", ImportProblem(
                source, "file",
                f"not valid JSON ({whole.msg} at line {whole.lineno} column {whole.colno}); "
                "nothing of this file was imported")
            return
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                yield f"line {lineno}", ImportProblem(
                    source, f"line {lineno}", f"not valid JSON ({exc.msg} at column {exc.colno})")
                continue
            yield from _numbered(_unwrap(value), f"line {lineno}", source)
        return
    yield from _numbered(_unwrap(document), "", source)


def _numbered(records: list[Any], prefix: str, source: str) -> Iterator[tuple[str, Any]]:
    if len(records) == 1 and prefix:
        yield prefix, records[0]
        return
    for index, record in enumerate(records, 1):
        position = f"{prefix} record {index}" if prefix else f"record {index}"
        yield position, record


def _unwrap(value: Any, depth: int = 0) -> list[Any]:
    """The records in a decoded JSON value: an array of records, ``{"Records": [...]}``, a
    record, or a record nested under a shipper's key (a JSON string there is decoded)."""
    if isinstance(value, list):
        return [item for element in value for item in
                (_unwrap(element, depth + 1) if _is_envelope(element) else [element])]
    if not isinstance(value, dict) or depth > 4 or _looks_like_record(value):
        return [value]
    for key in WRAPPER_KEYS:
        inner = value.get(key)
        if isinstance(inner, str | bytes) and inner.lstrip()[:1] in ("{", "[", b"{", b"["):
            try:
                inner = orjson.loads(inner)
            except orjson.JSONDecodeError:
                continue
        if isinstance(inner, list) and key == "Records":
            return inner
        if isinstance(inner, dict | list) and (key == "Records" or _contains_record(inner)):
            return _unwrap(inner, depth + 1)
    return [value]


def _is_envelope(value: Any) -> bool:
    return isinstance(value, dict) and not _looks_like_record(value) and "Records" in value


def _contains_record(value: Any) -> bool:
    if isinstance(value, list):
        return any(_contains_record(v) for v in value[:3])
    return isinstance(value, dict) and (_looks_like_record(value) or "Records" in value
                                        or any(k in value for k in WRAPPER_KEYS))


def _looks_like_record(value: dict) -> bool:
    return any(k in value for k in ("eventName", "eventTime", "eventSource", "event_name",
                                    "eventVersion", "userIdentity", "userIdentity.arn",
                                    "user_identity.arn", "userIdentity.type"))


# --- normalising shippers' spellings -------------------------------------------------


def normalise(record: dict[str, Any]) -> dict[str, Any]:
    """The record with Logstash-style flattened keys (``userIdentity.arn``), snake_case keys
    (``user_identity``) and ``@timestamp`` (Logstash's cloudtrail codec moves ``eventTime``
    there) turned back into CloudTrail's own shape."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key.startswith("@"):
            continue
        path = [_camel(part) for part in key.split(".")]
        target = out
        for part in path[:-1]:
            nested = target.get(part)
            if not isinstance(nested, dict):
                nested = target[part] = {}
            target = nested
        value = _camel_keys(value)
        if isinstance(value, dict) and isinstance(target.get(path[-1]), dict):
            target[path[-1]].update(value)
        else:
            target[path[-1]] = value
    if "eventTime" not in out and isinstance(record.get("@timestamp"), str):
        out["eventTime"] = record["@timestamp"]
    return out


def _camel(key: str) -> str:
    if "_" not in key or key.startswith("_"):
        return key
    if key in SNAKE_SPECIAL:
        return SNAKE_SPECIAL[key]
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _camel_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {_camel(k): _camel_keys(v) for k, v in value.items()}
    return value


# --- the mapping -----------------------------------------------------------------------


def map_record(record: Any) -> dict[str, Any]:
    """The Trailseal event body for one CloudTrail record; ``ValueError`` says why a record
    cannot be mapped (not an object, no ``eventTime`` or ``eventName``, bad ``eventTime``)."""
    if not isinstance(record, dict):
        raise ValueError(f"not a JSON object but {_json_kind(record)}")
    r = normalise(record)
    name = r.get("eventName")
    if not isinstance(name, str) or not name.strip():
        raise ValueError("no eventName")
    when = r.get("eventTime")
    if when is None or when == "":
        raise ValueError("no eventTime")
    occurred_at = _timestamp(when)
    service = _service(r.get("eventSource"))
    identity = r.get("userIdentity") if isinstance(r.get("userIdentity"), dict) else {}
    error = r.get("errorCode")
    read_only = _read_only(r, name)
    body: dict[str, Any] = {
        "event_type": _event_type(service, name),
        "occurred_at": occurred_at,
        "actor": _actor(identity),
        "entity": _entity(r, service),
        "severity": severity_of(service, name, identity.get("type"), error, read_only),
        "source": _clip(f"aws:{r['awsRegion']}" if _text(r.get("awsRegion"))
                        else _text(r.get("eventSource")) or "aws", 128),
        "action_details": {"cloudtrail": record},
        "tags": _tags(r, error, read_only),
    }
    ip = _ip(r.get("sourceIPAddress"))
    if ip:
        body["ip_address"] = ip
    agent = _text(r.get("userAgent"))
    if agent:
        body["user_agent"] = agent[:1024]
    return body


def severity_of(service: str, name: str, identity_type: Any, error: Any,
                read_only: bool) -> str:
    """Severity by the first rule that matches:

    1. failed with an access error (``AccessDenied``, ``*Unauthorized*``…) → ``medium``;
    2. failed otherwise → ``low``;
    3. turns off or blinds audit logging (``AUDIT_TAMPERING``) → ``critical``;
    4. a write to a sensitive service (IAM, KMS, CloudTrail, Organizations, console sign-in,
       STS, SSO, …), or any write by the root user → ``high``;
    5. a read by the root user → ``medium``;
    6. any other write → ``low``;
    7. a read → ``info``.
    """
    if _text(error):
        return "medium" if DENIED.search(str(error)) else "low"
    if name in AUDIT_TAMPERING.get(service, ()):
        return "critical"
    root = identity_type == "Root"
    if not read_only and (service in SENSITIVE_SERVICES or root):
        return "high"
    if root:
        return "medium"
    return "info" if read_only else "low"


def _service(event_source: Any) -> str:
    text = _text(event_source) or "aws"
    return text.removesuffix(".amazonaws.com")


def _event_type(service: str, name: str) -> str:
    segments = [re.sub(r"[^A-Za-z0-9_\-]", "_", s) or "_" for s in (*service.split("."), name)]
    text = ".".join(segments)
    return text[:128].rstrip(".")


def _timestamp(value: Any) -> str:
    """RFC 3339 with an offset and at most microseconds; CloudTrail times without an offset
    are UTC (some shippers drop the ``Z``), digits beyond microseconds are cut."""
    m = TIME.fullmatch(value.strip()) if isinstance(value, str) else None
    if not m:
        raise ValueError(f"eventTime {str(value)[:40]!r} is not a timestamp")
    date, clock, fraction, offset = m.groups()
    if not offset or offset in "Zz":
        offset = "Z"
    elif ":" not in offset:
        offset = f"{offset[:3]}:{offset[3:]}"
    return f"{date}T{clock}" + (f".{fraction[:6]}" if fraction else "") + offset


def _actor(identity: dict[str, Any]) -> dict[str, Any]:
    ident = next((_text(identity.get(k)) for k in ("arn", "userName", "principalId",
                                                   "invokedBy", "accountId")
                  if _text(identity.get(k))), None)
    actor: dict[str, Any] = {"id": _clip(ident or "unknown", 256),
                             "type": _clip(_text(identity.get("type")) or "Unknown", 64)}
    if identity.get("type") == "AssumedRole":
        context = identity.get("sessionContext")
        issuer = context.get("sessionIssuer") if isinstance(context, dict) else None
        if isinstance(issuer, dict):
            role = _text(issuer.get("userName")) or _text(issuer.get("arn"))
            if role:
                actor["role"] = _clip(role, 128)
    return actor


def _entity(r: dict[str, Any], service: str) -> dict[str, str]:
    for resource in r.get("resources") or []:
        if isinstance(resource, dict):
            arn = _text(resource.get("ARN")) or _text(resource.get("arn"))
            if arn:
                return {"type": _clip(_text(resource.get("type")) or "aws:resource", 128),
                        "id": _clip(arn, 256)}
    params = r.get("requestParameters")
    if isinstance(params, dict):
        keys = [k for k in ENTITY_KEYS if _text(params.get(k))]
        keys += [k for k, v in params.items() if IDENTIFIER.search(k) and _text(v)]
        if keys:
            return {"type": _clip(f"{service}:{keys[0]}", 128),
                    "id": _clip(_text(params[keys[0]]), 256)}
    account = _text(r.get("recipientAccountId")) or _text(
        (r.get("userIdentity") or {}).get("accountId") if isinstance(r.get("userIdentity"), dict)
        else None)
    return {"type": "aws:account", "id": _clip(account or "unknown", 256)}


def _read_only(r: dict[str, Any], name: str) -> bool:
    value = r.get("readOnly")
    if isinstance(value, str):
        value = {"true": True, "false": False}.get(value.lower())
    if isinstance(value, bool):
        return value
    return name.startswith(READ_PREFIXES)


def _tags(r: dict[str, Any], error: Any, read_only: bool) -> list[str]:
    tags = ["cloudtrail"]
    if _text(error):
        tags.append("failed")
    if read_only:
        tags.append("readonly")
    event_id = _text(r.get("eventID"))
    if event_id and len(event_id) <= 56 and not re.search(r"[\x00-\x1f]", event_id):
        tags.append(f"eventid:{event_id}")
    return tags


def _ip(value: Any) -> str | None:
    """``sourceIPAddress`` when it is an IP address (not ``ec2.amazonaws.com``, ``AWS
    Internal`` or an anonymised ``255.090.254.5``)."""
    text = _text(value)
    if not text or "%" in text:
        return None
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return None
    return text


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        value = value.replace("\x00", "").strip()
        return value or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _clip(text: str, limit: int) -> str:
    return text[:limit]


def _json_kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


@hookimpl
def importers() -> Iterable[CloudTrailImporter]:
    """The ``cloudtrail`` format of ``trailseal import``."""
    return [CloudTrailImporter()]
