"""Build the anomaly baseline shipped with the anomaly plugin
(``plugins/trailseal_plugins/anomaly/baseline_features.csv.gz``).

The baseline scores tenants that do not have a model of their own yet (1,000 events or
fewer). It is data, not a model: feature rows of benign trails, each replayed from its first
event through the plugin's featuriser, so it has seen young trails as well as settled ones:

- SaaS application trails: the demo generator's three company profiles, run with other
  seeds than ``trailseal demo`` uses and with their planted incidents removed;
- an AWS account's CloudTrail: ``bench/cloudtrail_background.py`` (benign activity in the
  shape of real CloudTrail records, mapped by the CloudTrail importer), when present.

Run: ``python bench/build_baseline.py`` (deterministic; prints what it wrote).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from trailseal.types import Event  # noqa: E402
from trailseal_plugins.anomaly.baseline import DATA, write_rows  # noqa: E402
from trailseal_plugins.anomaly.features import Profile, featurize  # noqa: E402

ROWS_PER_TRAIL = 3000
SEED = 20261127
END = datetime(2026, 6, 1, tzinfo=UTC)


def to_event(body: dict, seq: int) -> Event:
    """An event body (as ``POST /events`` takes it) as plugins see a stored event."""
    actor, entity = body["actor"], body["entity"]
    return Event(
        id=f"baseline-{seq}", tenant_id="baseline", seq=seq, occurred_at=body["occurred_at"],
        event_type=body["event_type"], actor_id=actor["id"], actor_type=actor.get("type", "user"),
        actor_role=actor.get("role"), actor_department=actor.get("department"),
        entity_type=entity["type"], entity_id=entity["id"],
        severity=body.get("severity", "info"), source=body.get("source"),
        tags=tuple(body.get("tags", ())), ip_address=body.get("ip_address"),
        user_agent=body.get("user_agent"), action_details=body.get("action_details"))


def saas_trails() -> list[tuple[str, list[dict]]]:
    """(time zone, events) of each SaaS trail: hours are read in the tenant's zone, as the
    detector reads them for a tenant with that ``timezone`` setting."""
    from trailseal_plugins.demo.data import demo_tenants, generate_events, planted_incidents
    from trailseal_plugins.demo.profiles import tenant_profile

    trails = []
    for n, tenant in enumerate(demo_tenants()):
        bodies = generate_events(tenant.slug, days=28, end=END, seed=SEED + n)
        planted = {i for inc in planted_incidents(tenant.slug, bodies) for i in inc.event_indices}
        trails.append((tenant_profile(tenant.slug).tz,
                       [b for i, b in enumerate(bodies) if i not in planted]))
    return trails


def cloudtrail_trails() -> list[tuple[str, list[dict]]]:
    try:
        from cloudtrail_background import generate
    except ImportError:
        return []
    from trailseal_plugins.import_cloudtrail import map_record

    bodies = [map_record(r) for r in generate(days=28, seed=SEED)]
    bodies.sort(key=lambda b: b["occurred_at"])
    return [("UTC", bodies)]


def main() -> None:
    rng = np.random.default_rng(SEED)
    parts = []
    trails = saas_trails() + cloudtrail_trails()
    for zone, trail in trails:
        X, _ = featurize((to_event(b, i + 1) for i, b in enumerate(trail)), Profile(zone))
        # keep the young trail whole (its first 300 events), sample the rest
        head, rest = X[:300], X[300:]
        take = min(len(rest), ROWS_PER_TRAIL - len(head))
        parts.append(np.vstack([head, rest[np.sort(rng.choice(len(rest), take, replace=False))]]))
    X = np.vstack(parts)
    write_rows(X, DATA)
    print(f"wrote {len(X)} rows from {len(trails)} benign trails to {DATA} "
          f"({DATA.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
