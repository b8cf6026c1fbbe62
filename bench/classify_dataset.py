"""Labelled evaluation set for event classification (category and risk level).

``load_events()`` reads real public audit records from ``/work/shared/datasets`` (or
``$TRAILSEAL_DATASETS``) and maps each to a Trailseal event dict:

- CloudTrail (Stratus Red Team detonations, Panther fixtures): through the product's own
  ``trailseal_plugins.import_cloudtrail.map_record``, so ``event_type`` is exactly what
  ``trailseal import --format cloudtrail`` produces (``iam.AttachUserPolicy``);
- Okta System Log (Panther fixtures): ``eventType`` (``user.session.start``);
- GitHub audit log (Panther fixtures): ``action`` (``repo.destroy``);
- Kubernetes audit (Falco trace files, Panther EKS fixtures):
  ``k8s.<verb>.<resource>[.<subresource>]`` (``k8s.create.clusterrolebindings``,
  ``k8s.create.pods.exec``); a non-resource request is ``k8s.<verb>.nonresource``.

Each dict also has ``_group`` (Stratus technique file, Panther ``rule_id`` or Falco trace
file; for grouped cross-validation) and ``_dataset`` (the dataset folder). Records that
cannot be mapped (no event name, or no timestamp anywhere) are skipped and counted in
``SKIPPED``. Labels are joined from ``bench/data/classify_labels.csv`` by
``(source, event_type)``; see ``bench/data/CLASSIFY_LABELS.md``.

Run ``python bench/classify_dataset.py`` (with ``platform`` and ``plugins`` importable) for
counts per source, event type, group and label.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (ROOT / "platform", ROOT / "plugins"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from trailseal_plugins.import_cloudtrail import map_record  # noqa: E402

DATASETS = Path(os.environ.get("TRAILSEAL_DATASETS", "/work/shared/datasets"))
LABELS = HERE / "data" / "classify_labels.csv"
CATEGORIES = ("authentication", "access_control", "user_management", "data_access",
              "data_modification", "data_export", "configuration_change", "financial",
              "security", "integration_system")
RISKS = ("low", "medium", "high", "critical")
PANTHER_FILES = (("AWS_CloudTrail.jsonl", "cloudtrail"), ("Okta_SystemLog.jsonl", "okta"),
                 ("GitHub_Audit.jsonl", "github"), ("Amazon_EKS_Audit.jsonl", "k8s"),
                 ("GCP_AuditLog.jsonl", "gcp"), ("Slack_AuditLogs.jsonl", "slack"),
                 ("GSuite_ActivityEvent.jsonl", "gsuite"))

# why records were skipped: (dataset, source, reason) -> count; filled by load_events()
SKIPPED: Counter[tuple[str, str, str]] = Counter()

TIME = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?\s*"
                  r"([Zz]|UTC|[+-]\d{2}:?\d{2})?$")
CT_USER_TYPES = {"Root", "IAMUser", "AssumedRole", "SAMLUser", "WebIdentityUser",
                 "IdentityCenterUser", "Unknown"}
K8S_READ = {"get", "list", "watch"}


class Unmappable(ValueError):
    """A record that cannot become an event."""


# --- helpers ---------------------------------------------------------------------------


def rfc3339(value: Any) -> str:
    """``value`` (an RFC 3339-ish string, ``"2024-05-02 18:46:21.121000000"``, or epoch
    seconds/milliseconds) as RFC 3339 UTC with ``Z`` and at most microseconds."""
    if isinstance(value, bool) or value in (None, ""):
        raise Unmappable("no timestamp")
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 10**11 else value
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    m = TIME.match(str(value).strip())
    if not m:
        raise Unmappable(f"bad timestamp {str(value)[:40]!r}")
    date, clock, fraction, offset = m.groups()
    text = f"{date}T{clock}" + (f".{fraction[:6]}" if fraction else "")
    if offset and offset not in ("Z", "z", "UTC"):
        offset = offset if ":" in offset else f"{offset[:3]}:{offset[3:]}"
        moment = datetime.fromisoformat(text + offset).astimezone(UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S") + (
            f".{moment.microsecond:06d}" if fraction else "") + "Z"
    return text + "Z"


def first_time(*values: Any) -> str:
    for value in values:
        if value not in (None, ""):
            return rfc3339(value)
    raise Unmappable("no timestamp")


def text(value: Any, limit: int = 256) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()[:limit]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def event(*, source: str, event_type: str, occurred_at: str, actor_id: str | None,
          actor_type: str, actor_role: str | None, entity_type: str, entity_id: str | None,
          severity: str, details: dict[str, Any], group: str, dataset: str) -> dict[str, Any]:
    return {"event_type": event_type[:128], "actor_id": actor_id or "unknown",
            "actor_type": actor_type, "actor_role": actor_role, "entity_type": entity_type,
            "entity_id": entity_id or "unknown", "severity": severity, "source": source,
            "occurred_at": occurred_at,
            "action_details": {k: v for k, v in details.items() if v not in (None, "", [])},
            "_group": group, "_dataset": dataset}


# --- CloudTrail ------------------------------------------------------------------------


def from_cloudtrail(record: dict[str, Any], group: str, dataset: str) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise Unmappable("not an object")
    if not record.get("eventTime") and record.get("p_event_time"):
        # Panther fixtures trimmed of eventTime keep Panther's parsed event time
        record = {**record, "eventTime": record["p_event_time"]}
    try:
        body = map_record(record)
    except ValueError as exc:
        raise Unmappable(str(exc)) from exc
    identity = record.get("userIdentity") if isinstance(record.get("userIdentity"), dict) else {}
    kind = identity.get("type") or "Unknown"
    actor_type = "service" if kind in ("AWSService", "AWSAccount") or (
        identity.get("invokedBy") and kind not in CT_USER_TYPES) else "user"
    error = text(record.get("errorCode"))
    params = record.get("requestParameters")
    severity = "low" if body["severity"] == "info" else body["severity"]
    details = {
        "event_source": text(record.get("eventSource")),
        "read_only": "readonly" in body["tags"],
        "identity_type": kind,
        "outcome": "failure" if error else "success",
        "error_code": error,
        "error_message": text(record.get("errorMessage"), 200),
        "request_parameter_keys": sorted(params)[:20] if isinstance(params, dict) else None,
    }
    login = (record.get("responseElements") or {}) if isinstance(
        record.get("responseElements"), dict) else {}
    if isinstance(login.get("ConsoleLogin"), str):
        details["outcome"] = "failure" if login["ConsoleLogin"] != "Success" else "success"
    return event(source="cloudtrail", event_type=body["event_type"],
                 occurred_at=rfc3339(body["occurred_at"]), actor_id=body["actor"]["id"],
                 actor_type=actor_type, actor_role=body["actor"].get("role"),
                 entity_type=body["entity"]["type"], entity_id=body["entity"]["id"],
                 severity=severity, details=details, group=group, dataset=dataset)


# --- Okta ------------------------------------------------------------------------------

OKTA_SEVERITY = {"DEBUG": "low", "INFO": "low", "WARN": "medium", "ERROR": "high"}


def from_okta(log: dict[str, Any], group: str, dataset: str) -> dict[str, Any]:
    r = {k.lower(): v for k, v in log.items()}
    name = text(r.get("eventtype"))
    if not name:
        raise Unmappable("no eventType")
    actor = r.get("actor") if isinstance(r.get("actor"), dict) else {}
    actor_kind = str(actor.get("type") or "")
    actor_type = "user" if actor_kind.lower() == "user" else (
        "system" if actor_kind.lower() == "systemprincipal" else "service" if actor_kind
        else "user")
    targets = [t for t in (r.get("target") or []) if isinstance(t, dict)]
    target = targets[0] if targets else {}
    outcome = r.get("outcome") if isinstance(r.get("outcome"), dict) else {}
    result = text(outcome.get("result"))
    return event(
        source="okta", event_type=name,
        occurred_at=first_time(r.get("published"), r.get("p_event_time")),
        actor_id=text(actor.get("alternateId") or actor.get("alternateid"))
        or text(actor.get("id")), actor_type=actor_type, actor_role=None,
        entity_type=text(target.get("type"), 128) or "okta:org",
        entity_id=text(target.get("alternateId") or target.get("alternateid"))
        or text(target.get("id")),
        severity=OKTA_SEVERITY.get(str(r.get("severity") or "").upper(), "low"),
        details={"outcome": ("success" if result in ("SUCCESS", "ALLOW")
                             else "failure" if result in ("FAILURE", "DENY") else
                             (result or "").lower() or None),
                 "reason": text(outcome.get("reason"), 200),
                 "okta_severity": text(r.get("severity")),
                 "display_message": text(r.get("displaymessage"), 200),
                 "target_types": sorted({str(t.get("type")) for t in targets})[:10]},
        group=group, dataset=dataset)


# --- GitHub ----------------------------------------------------------------------------


def from_github(log: dict[str, Any], group: str, dataset: str) -> dict[str, Any]:
    name = text(log.get("action"))
    if not name:
        raise Unmappable("no action")
    bot = log.get("actor_is_bot") is True or str(log.get("actor") or "").endswith("[bot]")
    token = str(log.get("programmatic_access_type") or "")
    actor_type = "service" if bot or "app" in token.lower() else "user"
    repo = text(log.get("repo") or log.get("repository"))
    if repo:
        entity = ("repository", repo)
    elif text(log.get("user")):
        entity = ("user", text(log.get("user")))
    elif text(log.get("org")):
        entity = ("organization", text(log.get("org")))
    else:
        entity = ("enterprise", text(log.get("business")))
    return event(
        source="github", event_type=name,
        occurred_at=first_time(log.get("created_at"), log.get("@timestamp"),
                               log.get("at_sign_timestamp"), log.get("p_event_time")),
        actor_id=text(log.get("actor")), actor_type=actor_type, actor_role=None,
        entity_type=entity[0], entity_id=entity[1],
        severity="low" if name.startswith("git.") else "medium",
        details={"org": text(log.get("org")), "operation_type": text(log.get("operation_type")),
                 "programmatic_access_type": token or None,
                 "public_repo": log.get("public_repo", log.get("repository_public")),
                 "visibility": text(log.get("visibility")),
                 "country": text((log.get("actor_location") or {}).get("country_code"))
                 if isinstance(log.get("actor_location"), dict) else None},
        group=group, dataset=dataset)


# --- Kubernetes audit ------------------------------------------------------------------


def from_k8s(log: dict[str, Any], group: str, dataset: str) -> dict[str, Any]:
    verb = text(log.get("verb"))
    if not verb:
        raise Unmappable("no verb")
    ref = log.get("objectRef") if isinstance(log.get("objectRef"), dict) else {}
    resource = text(ref.get("resource"))
    if resource:
        event_type = f"k8s.{verb}.{resource}" + (
            f".{ref['subresource']}" if text(ref.get("subresource")) else "")
    else:
        event_type = f"k8s.{verb}.nonresource"
    user = log.get("user") if isinstance(log.get("user"), dict) else {}
    name = text(user.get("username")) or "unknown"
    if name.startswith("system:serviceaccount:"):
        actor_type = "service"
    elif name.startswith("system:") and name not in ("system:anonymous",):
        actor_type = "system"
    else:
        actor_type = "user"
    status = log.get("responseStatus") if isinstance(log.get("responseStatus"), dict) else {}
    code = status.get("code") if isinstance(status.get("code"), int) else None
    failed = (code is not None and code >= 400) or status.get("status") == "Failure"
    annotations = log.get("annotations") if isinstance(log.get("annotations"), dict) else {}
    entity_id = "/".join(p for p in (text(ref.get("namespace")), text(ref.get("name"))) if p)
    return event(
        source="k8s", event_type=event_type,
        occurred_at=first_time(log.get("stageTimestamp"), log.get("requestReceivedTimestamp"),
                               log.get("timestamp"), log.get("p_event_time")),
        actor_id=name, actor_type=actor_type, actor_role=None,
        entity_type="k8s:" + (resource or "nonresource"),
        entity_id=entity_id or text(log.get("requestURI")),
        severity="low" if verb in K8S_READ else "medium",
        details={"outcome": "failure" if failed else "success",
                 "error_code": code if failed else None,
                 "response_code": code,
                 "namespace": text(ref.get("namespace")),
                 "user_groups": sorted(user.get("groups") or [])[:10]
                 if isinstance(user.get("groups"), list) else None,
                 "authorization_decision": text(
                     annotations.get("authorization.k8s.io/decision")),
                 "request_kind": text((log.get("requestObject") or {}).get("kind"))
                 if isinstance(log.get("requestObject"), dict) else None},
        group=group, dataset=dataset)


# --- GCP Cloud Audit Logs --------------------------------------------------------------

GCP_SEVERITY = {"DEBUG": "low", "INFO": "low", "NOTICE": "low", "WARNING": "medium",
                "ERROR": "medium", "CRITICAL": "high", "ALERT": "high", "EMERGENCY": "high"}
GCP_READ = re.compile(r"(^|[.])(get|list|search|lookup|query|read|watch|describe|check)"
                      r"[A-Za-z]*$", re.I)


def from_gcp(log: dict[str, Any], group: str, dataset: str) -> dict[str, Any]:
    r = {k.lower(): v for k, v in log.items()}
    payload = r.get("protopayload") if isinstance(r.get("protopayload"), dict) else {}
    method = text(payload.get("methodName"))
    if not method:
        raise Unmappable("no methodName")
    service = (text(payload.get("serviceName")) or "gcp").removesuffix(".googleapis.com")
    auth = payload.get("authenticationInfo") if isinstance(
        payload.get("authenticationInfo"), dict) else {}
    principal = text(auth.get("principalEmail")) or text(auth.get("principalSubject"))
    actor_type = "user"
    if principal and principal.endswith(".gserviceaccount.com"):
        actor_type = "service"
    elif principal and principal.startswith("system:"):
        actor_type = "system"
    status = payload.get("status") if isinstance(payload.get("status"), dict) else {}
    code = status.get("code") if isinstance(status.get("code"), int) else None
    resource = r.get("resource") if isinstance(r.get("resource"), dict) else {}
    severity = GCP_SEVERITY.get(str(r.get("severity") or "").upper())
    if severity is None:
        severity = "low" if GCP_READ.search(method) else "medium"
    return event(
        source="gcp", event_type=f"{service}.{method}",
        occurred_at=first_time(r.get("timestamp"), r.get("receivetimestamp"),
                               r.get("p_event_time")),
        actor_id=principal, actor_type=actor_type, actor_role=None,
        entity_type="gcp:" + (text(resource.get("type"), 120) or service),
        entity_id=text(payload.get("resourceName")),
        severity=severity,
        details={"outcome": "failure" if code else "success",
                 "error_code": code or None,
                 "gcp_severity": text(r.get("severity")),
                 "service": service,
                 "request_keys": sorted(payload["request"])[:20]
                 if isinstance(payload.get("request"), dict) else None},
        group=group, dataset=dataset)


# --- Slack audit logs ------------------------------------------------------------------


def from_slack(log: dict[str, Any], group: str, dataset: str) -> dict[str, Any]:
    name = text(log.get("action"))
    if not name:
        raise Unmappable("no action")
    actor = log.get("actor") if isinstance(log.get("actor"), dict) else {}
    who = actor.get(actor.get("type")) if isinstance(actor.get(actor.get("type")), dict) else {}
    entity = log.get("entity") if isinstance(log.get("entity"), dict) else {}
    kind = text(entity.get("type"))
    target = entity.get(kind) if kind and isinstance(entity.get(kind), dict) else {}
    context = log.get("context") if isinstance(log.get("context"), dict) else {}
    location = context.get("location") if isinstance(context.get("location"), dict) else {}
    details = log.get("details") if isinstance(log.get("details"), dict) else {}
    return event(
        source="slack", event_type=name,
        occurred_at=first_time(log.get("date_create"), log.get("p_event_time")),
        actor_id=text(who.get("email")) or text(who.get("id")),
        actor_type="user" if actor.get("type") == "user" else "service", actor_role=None,
        entity_type=kind or "workspace",
        entity_id=text(target.get("name")) or text(target.get("id"))
        or text(location.get("name")),
        severity="medium",
        details={"location_type": text(location.get("type")),
                 "detail_keys": sorted(details)[:20]},
        group=group, dataset=dataset)


# --- Google Workspace (GSuite) activity ------------------------------------------------


def from_gsuite(log: dict[str, Any], group: str, dataset: str) -> dict[str, Any]:
    ident = log.get("id") if isinstance(log.get("id"), dict) else {}
    app = text(ident.get("applicationName"))
    name = text(log.get("name"))
    if not (app and name):
        raise Unmappable("no applicationName or name")
    actor = log.get("actor") if isinstance(log.get("actor"), dict) else {}
    params = log.get("parameters") if isinstance(log.get("parameters"), dict) else {}
    caller = text(actor.get("callerType"))
    return event(
        source="gsuite", event_type=f"{app}.{name}",
        occurred_at=first_time(ident.get("time"), log.get("p_event_time")),
        actor_id=text(actor.get("email")) or text(actor.get("profileId")),
        actor_type="service" if caller and caller.upper() == "KEY" else "user",
        actor_role=None,
        entity_type=f"gsuite:{app}",
        entity_id=text(params.get("doc_id")) or text(params.get("USER_EMAIL"))
        or text(params.get("user_email")) or text(params.get("doc_title")),
        severity="low" if text(log.get("type")) in ("access", "login") else "medium",
        details={"activity_type": text(log.get("type")),
                 "parameter_keys": sorted(params)[:20],
                 "outcome": "failure" if "fail" in name.lower() else None},
        group=group, dataset=dataset)


MAPPERS = {"cloudtrail": from_cloudtrail, "okta": from_okta, "github": from_github,
           "k8s": from_k8s, "gcp": from_gcp, "slack": from_slack, "gsuite": from_gsuite}


# --- loading ---------------------------------------------------------------------------


def _raw_records() -> list[tuple[str, str, str, Any]]:
    """``(dataset, source, group, record)`` in a fixed order."""
    out: list[tuple[str, str, str, Any]] = []
    for path in sorted((DATASETS / "stratus-cloudtrail" / "detonation-logs").glob("*.json")):
        data = json.loads(path.read_text())
        records = data.get("Records", []) if isinstance(data, dict) else data
        out += [("stratus-cloudtrail", "cloudtrail", path.stem, r) for r in records]
    for name, source in PANTHER_FILES:
        with open(DATASETS / "panther-rule-fixtures" / name) as fh:
            for line in fh:
                if line.strip():
                    row = json.loads(line)
                    out.append(("panther-rule-fixtures", source, row["rule_id"], row["log"]))
    for path in sorted((DATASETS / "falco-k8s-audit" / "trace_files").iterdir()):
        for line in path.read_text().splitlines():
            if line.strip():
                out.append(("falco-k8s-audit", "k8s", path.stem, json.loads(line)))
    return out


def load_events() -> list[dict[str, Any]]:
    """The mapped events of all used datasets, in a fixed order; skipped records are
    counted in ``SKIPPED`` by (dataset, source, reason)."""
    SKIPPED.clear()
    events = []
    for dataset, source, group, record in _raw_records():
        try:
            if not isinstance(record, dict):
                raise Unmappable("not an object")
            events.append(MAPPERS[source](record, group, dataset))
        except Unmappable as exc:
            reason = re.sub(r"'[^']*'", "<value>", str(exc))
            SKIPPED[(dataset, source, reason)] += 1
    return events


def load_labels(path: Path = LABELS) -> dict[tuple[str, str], dict[str, str]]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    labels = {}
    for row in rows:
        key = (row["source"], row["event_type"])
        if key in labels:
            raise ValueError(f"duplicate label row {key}")
        if row["category"] not in CATEGORIES or row["risk_level"] not in RISKS:
            raise ValueError(f"bad label {row}")
        labels[key] = row
    return labels


def labelled_events() -> list[dict[str, Any]]:
    """``load_events()`` with ``category`` and ``risk_level`` joined from the label CSV;
    ``KeyError`` names an event type without a label row."""
    labels = load_labels()
    out = []
    for ev in load_events():
        row = labels[(ev["source"], ev["event_type"])]
        out.append({**ev, "category": row["category"], "risk_level": row["risk_level"]})
    return out


def main() -> int:
    events = load_events()
    print(f"events: {len(events)}  skipped: {sum(SKIPPED.values())}")
    for key, n in sorted(SKIPPED.items()):
        print(f"  skipped {n:4d}  {' / '.join(key)}")
    types = {(e["source"], e["event_type"]) for e in events}
    groups = {(e["_dataset"], e["_group"]) for e in events}
    print(f"distinct (source, event_type): {len(types)}  groups: {len(groups)}")
    print("\nper source            events  types  groups")
    for source in sorted({e["source"] for e in events}):
        evs = [e for e in events if e["source"] == source]
        print(f"  {source:18s} {len(evs):7d} {len({e['event_type'] for e in evs}):6d} "
              f"{len({(e['_dataset'], e['_group']) for e in evs}):7d}")
    print("per dataset:", dict(sorted(Counter(e["_dataset"] for e in events).items())))
    if not LABELS.exists():
        print(f"\nno labels yet ({LABELS})")
        return 0
    labels = load_labels()
    missing = sorted(types - set(labels))
    unused = sorted(set(labels) - types)
    print(f"\nlabel rows: {len(labels)}  missing: {len(missing)}  unused: {len(unused)}")
    for key in missing:
        print("  MISSING", *key)
    for key in unused:
        print("  UNUSED", *key)
    if missing:
        return 1
    joined = [labels[(e["source"], e["event_type"])] for e in events]
    print("\nper category            events  types")
    for cat in CATEGORIES:
        print(f"  {cat:22s} {sum(r['category'] == cat for r in joined):6d} "
              f"{sum(r['category'] == cat for r in labels.values()):6d}")
    print("per risk level           events  types")
    for risk in RISKS:
        print(f"  {risk:22s} {sum(r['risk_level'] == risk for r in joined):6d} "
              f"{sum(r['risk_level'] == risk for r in labels.values()):6d}")
    sev = Counter((e["severity"], r["risk_level"]) for e, r in zip(events, joined, strict=True))
    print("derived severity x labelled risk:",
          {f"{s}->{r}": n for (s, r), n in sorted(sev.items())})
    return 0


if __name__ == "__main__":
    sys.exit(main())
