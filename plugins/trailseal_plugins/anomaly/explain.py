"""What an analyst reads on an anomaly alert: the strongest SHAP contributions with their
values, one plain-language sentence, the alert severity, the affected entities and what to
do next."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

from trailseal.types import Event

from .features import FEATURES, INDEX, asn_of, local_seconds, parse_time, zone_info

TOP = 5  # contributions kept per alert


def alert_severity(score: float, threshold: float) -> str:
    """low/medium/high/critical by how far the score is beyond the threshold, as a share of
    the way from the threshold to 1: ≥ 50 % critical, ≥ 30 % high, ≥ 12 % medium. (The
    core never puts an alert below the event's own severity.)"""
    margin = (score - threshold) / max(1e-9, 1.0 - threshold)
    if margin >= 0.5:
        return "critical"
    if margin >= 0.3:
        return "high"
    if margin >= 0.12:
        return "medium"
    return "low"


def _clock(event: Event, zone: str = "UTC") -> str:
    """The event's wall-clock time in the tenant's zone, with the zone's abbreviation."""
    ts = parse_time(event.occurred_at)
    tz = zone_info(zone)
    if tz is not None:
        return datetime.fromtimestamp(ts, UTC).astimezone(tz).strftime("%H:%M %Z")
    return f"{int(ts // 3600) % 24:02d}:{int(ts // 60) % 60:02d} UTC"


def _phrase(name: str, x: np.ndarray, e: Event, zone: str = "UTC") -> str | None:
    """The sentence fragment for a feature that pushed an event towards anomalous."""
    v = float(x[INDEX[name]])
    days = float(x[INDEX["days_since_actor_did_this"]])
    if name in ("new_action_for_actor", "days_since_actor_did_this"):
        if x[INDEX["actor_history"]] == 0:
            return f"first activity ever seen from {e.actor_id}"
        if days >= 1:
            return f"first {e.event_type} by {e.actor_id} in {days:.0f} days"
        return f"{e.event_type} is unusual for {e.actor_id}"
    if name == "new_entity_type_for_actor":
        return f"first time {e.actor_id} touches a {e.entity_type}"
    if name in ("hours_from_usual", "hour_sin", "hour_cos"):
        away = float(x[INDEX["hours_from_usual"]])
        if away >= 1:
            return f"at {_clock(e, zone)}, {away:.0f} h from their usual hours"
        return f"at {_clock(e, zone)}"
    if name in ("weekday_sin", "weekday_cos"):
        day = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
               "Sunday")[(int(local_seconds(parse_time(e.occurred_at), zone) // 86400) + 3) % 7]
        return f"on a {day}"
    if name in ("actor_events_1h", "actor_rate_ratio"):
        ratio = 2 ** float(x[INDEX["actor_rate_ratio"]])
        count = int(x[INDEX["actor_events_1h"]])
        if ratio >= 2:
            return f"{ratio:.0f}× their usual volume ({count} events in an hour)"
        return f"{count} events by {e.actor_id} in an hour"
    if name == "actor_history":
        return f"{e.actor_id} has little history here"
    # (the address and user agent are encrypted at rest: explanations, which are stored in
    # the clear, only say that they are new; the event shows them to whoever may read it)
    if name == "new_source_ip_for_actor":
        return "from an address new for them" if e.ip_address else None
    if name == "new_network_for_actor":
        return ("from a network new for them"
                if e.ip_address or asn_of(e.action_details) else None)
    if name == "new_user_agent_for_actor":
        return "with a client new for them" if e.user_agent else None
    if name == "rare_event_type":
        return f"{e.event_type} is rare in this trail"
    if name == "exports_1h":
        return f"{v:.0f} exports in an hour" if v >= 2 else "an export"
    if name == "deletions_1h":
        return f"{v:.0f} deletions in an hour" if v >= 2 else "a deletion"
    if name == "permission_changes_1h":
        return f"{v:.0f} permission changes in an hour" if v >= 2 else "a permission change"
    if name == "failure_ratio_1h":
        failures = int(x[INDEX["failures_1h"]]) + 1
        events = int(x[INDEX["actor_events_1h"]])
        return f"{failures} of their {events} events in the last hour failed" if v else None
    if name == "failures_1h":  # failures beyond the first one
        return f"{v + 1:.0f} failed or denied attempts in an hour" if v >= 1 else None
    if name == "days_since_actor_last_seen":
        return f"{e.actor_id} was inactive for {v:.0f} days" if v >= 1 else None
    if name == "new_country_for_actor":
        return "from a country new for them"
    if name == "amount_deviation":
        return f"an amount {v:.1f} standard deviations above the usual for {e.event_type}"
    if name == "privileged":
        return "a privilege-sensitive action" if v else None
    if name == "severity_level":
        return f"recorded with severity {e.severity}"
    if name in ("new_habits_1h", "new_habit_share_1h"):
        count = int(x[INDEX["new_habits_1h"]])
        events = int(x[INDEX["actor_events_1h"]])
        if count >= 2:
            return (f"{count} of their {events} events in the last hour were calls or "
                    "clients new to them")
        return None
    return None


ACTIONS = {
    "privileged": "Review the permission or credential change and revert it if nobody "
                  "approved it.",
    "permission_changes_1h": "Review the permission changes of the last hour; revert any "
                             "that were not approved.",
    "exports_1h": "Check what was exported or shared and with whom; revoke access to the "
                  "copies if it was not authorised.",
    "deletions_1h": "Confirm the deletions were approved; restore from backup if not.",
    "new_source_ip_for_actor": "Verify the source address with the actor; if it is not "
                               "theirs, rotate their credentials and end their sessions.",
    "new_network_for_actor": "Verify the network with the actor; if it is not theirs, rotate "
                             "their credentials and end their sessions.",
    "new_user_agent_for_actor": "Check which tool made the call; an unfamiliar client on a "
                                "known account can mean stolen keys.",
    "failure_ratio_1h": "Look for guessing or probing: lock the credential if failures "
                        "continue.",
    "failures_1h": "Find out why the attempts were refused and whether they succeeded "
                   "elsewhere.",
    "days_since_actor_last_seen": "Check that the dormant account's owner is really back; "
                                  "disable it if not.",
    "new_country_for_actor": "Confirm the location with the actor; an impossible journey "
                             "means a stolen session or password.",
    "amount_deviation": "Check the amount with the approver; hold the payment or refund "
                        "until it is confirmed.",
    "hours_from_usual": "Confirm with the actor that they were working at that time.",
    "new_action_for_actor": "Confirm with the actor (or their manager) that this action is "
                            "part of their job.",
    "rare_event_type": "Check why this rarely used operation was called.",
    "new_habits_1h": "A burst of new behaviour on a known account can mean stolen keys: "
                     "confirm with the actor, and rotate their credentials if it was not them.",
    "new_habit_share_1h": "A burst of new behaviour on a known account can mean stolen keys: "
                          "confirm with the actor, and rotate their credentials if it was not "
                          "them.",
}


def explain_event(e: Event, x: np.ndarray, contributions: np.ndarray, score: float,
                  threshold: float, zone: str = "UTC") -> dict[str, Any]:
    """The explanation of a flagged event (``Finding.explanation``): ``summary``,
    ``contributions`` (strongest first), ``affected_entities``, ``suggested_actions``."""
    # (contributions are shown to 4 decimals: smaller ones would read as 0)
    order = [int(i) for i in np.argsort(-contributions) if contributions[i] >= 1e-4][:TOP]
    top = [{"feature": FEATURES[i].name, "label": FEATURES[i].label,
            "value": round(float(x[i]), 4), "contribution": round(float(contributions[i]), 4),
            "meaning": FEATURES[i].meaning} for i in order]
    phrases: list[str] = []
    for item in top:
        phrase = _phrase(item["feature"], x, e, zone)
        if phrase and phrase not in phrases:
            phrases.append(phrase)
        if len(phrases) == 3:
            break
    if not phrases:
        phrases.append(f"{e.event_type} by {e.actor_id} stands out from this trail")
    summary = ", ".join(phrases)
    summary = summary[0].upper() + summary[1:] + "."
    actions = []
    for item in top:
        action = ACTIONS.get(item["feature"])
        if action and action not in actions:
            actions.append(action)
    actions.append("If this was expected, mark the alert as a false positive: the next "
                   "model learns it.")
    affected = [{"type": "actor", "id": e.actor_id},
                {"type": e.entity_type, "id": e.entity_id}]
    return {"summary": summary, "score": round(score, 4), "threshold": threshold,
            "contributions": top, "affected_entities": affected,
            "suggested_actions": actions[:4]}
