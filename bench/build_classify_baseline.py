"""Build the classification baseline (``plugins/trailseal_plugins/classify/
baseline_events.csv.gz``): labelled example events the shared models are fitted from.

- A SaaS application's events, as the demo generates them (three tenants, two weeks),
  labelled by hand per event type (``SAAS_LABELS`` below; the risk rises for large refunds
  and exports and for administrator roles, as an analyst would rate them).
- The real public audit events of ``bench/classify_dataset.py`` with their hand labels
  (``bench/data/classify_labels.csv``).

Each event type is kept to at most ``PER_TYPE`` examples, so frequent types do not drown
rare ones. Deterministic: the same inputs give the same bytes.

    python bench/build_classify_baseline.py
"""

from __future__ import annotations

import random
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from classify_dataset import labelled_events  # noqa: E402
from eval_classify import as_event  # noqa: E402

from trailseal_plugins.classify.baseline import DATA, write_rows  # noqa: E402
from trailseal_plugins.demo.activity import generate_events  # noqa: E402

PER_TYPE = 40
SEED = 20261127

# event type -> (category, usual risk), by hand
SAAS_LABELS = {
    "alert.acknowledged": ("security", "low"),
    "api_key.created": ("integration_system", "medium"),
    "api_key.revoked": ("integration_system", "medium"),
    "customer.created": ("data_modification", "low"),
    "customer.updated": ("data_modification", "low"),
    "customer.viewed": ("data_access", "low"),
    "deployment.created": ("configuration_change", "medium"),
    "export.downloaded": ("data_export", "high"),
    "integration.updated": ("integration_system", "medium"),
    "invoice.created": ("financial", "low"),
    "invoice.deleted": ("financial", "high"),
    "invoice.sent": ("financial", "low"),
    "invoice.updated": ("financial", "medium"),
    "mfa.disabled": ("security", "critical"),
    "mfa.reset": ("authentication", "high"),
    "opportunity.updated": ("data_modification", "low"),
    "order.created": ("financial", "low"),
    "payment.captured": ("financial", "low"),
    "payment.failed": ("financial", "medium"),
    "payment.refunded": ("financial", "medium"),
    "rate_limit.exceeded": ("integration_system", "medium"),
    "report.generated": ("data_access", "low"),
    "report.shared": ("data_export", "high"),
    "report.viewed": ("data_access", "low"),
    "role.granted": ("access_control", "high"),
    "role.revoked": ("access_control", "medium"),
    "settings.changed": ("configuration_change", "medium"),
    "subscription.renewed": ("financial", "low"),
    "ticket.closed": ("data_modification", "low"),
    "ticket.updated": ("data_modification", "low"),
    "user.deactivated": ("user_management", "medium"),
    "user.invited": ("user_management", "medium"),
    "user.login": ("authentication", "low"),
    "user.login_failed": ("authentication", "medium"),
    "user.logout": ("authentication", "low"),
    "user.password_changed": ("authentication", "medium"),
    "user.password_reset": ("authentication", "medium"),
    "user.updated": ("user_management", "low"),
    "webhook.deleted": ("integration_system", "medium"),
    "webhook.updated": ("integration_system", "medium"),
}


def saas_risk(d: dict, risk: str) -> str:
    """The hand rule for one event: large amounts, big exports and admin roles rate higher."""
    details = d.get("action_details") or {}
    amount = details.get("amount")
    rows = details.get("rows")
    role = str(details.get("role", ""))
    if d["event_type"] == "payment.refunded" and isinstance(amount, (int, float)) \
            and amount >= 1000:
        return "high"
    if d["event_type"] == "export.downloaded" and isinstance(rows, int) and rows >= 10_000:
        return "critical"
    if d["event_type"] == "role.granted" and "admin" in role:
        return "critical"
    return risk


def saas_events() -> list[dict]:
    out = []
    for slug in ("acme", "globex", "initech"):
        for e in generate_events(slug, days=14, events_per_day=200,
                                 end=datetime(2026, 11, 20, tzinfo=UTC), seed=3):
            if e["event_type"] not in SAAS_LABELS:
                continue
            category, risk = SAAS_LABELS[e["event_type"]]
            out.append({
                "event_type": e["event_type"], "actor_id": e["actor"]["id"],
                "actor_type": e["actor"]["type"], "actor_role": e["actor"].get("role"),
                "entity_type": e["entity"]["type"], "entity_id": e["entity"]["id"],
                "severity": e["severity"], "source": e.get("source"),
                "occurred_at": e["occurred_at"], "action_details": e.get("action_details"),
                "category": category, "risk_level": saas_risk(e, risk)})
    return out


def main() -> None:
    rng = random.Random(SEED)
    by_type: dict[tuple, list[dict]] = defaultdict(list)
    for d in [*saas_events(), *labelled_events()]:
        by_type[(d.get("source"), d["event_type"], d["risk_level"])].append(d)
    chosen = []
    for key in sorted(by_type, key=lambda k: tuple(str(x) for x in k)):
        items = by_type[key]
        chosen.extend(items if len(items) <= PER_TYPE else rng.sample(items, PER_TYPE))
    events = [as_event(i, d) for i, d in enumerate(chosen)]
    write_rows(events, [d["category"] for d in chosen], [d["risk_level"] for d in chosen])
    print(f"wrote {len(chosen)} labelled events ({len(by_type)} type/risk pairs) to "
          f"{DATA} ({DATA.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
