"""The executive summary of a report, written offline from the export's figures.

``summary_facts`` gathers what the summary may say (JSON-safe, grounded in the exported
events only); ``offline_summary`` writes it as short paragraphs. The facts are what a
``narrate(kind="executive_summary", context=facts)`` implementation receives: when the core
passes a narrator's text in the export context (``context["narrative"]``), the report uses it
instead of this one.
"""

from __future__ import annotations

from typing import Any

from .statistics import ExportStatistics


def summary_facts(stats: ExportStatistics, context: dict[str, Any]) -> dict[str, Any]:
    """The figures the summary is written from."""
    days = stats.days()
    counts = [stats.per_day.get(d, 0) for d in days]
    half = len(counts) // 2
    first_half = sum(counts[:half]) / half if half else None
    second_half = sum(counts[half:]) / (len(counts) - half) if half else None
    busiest = max(stats.per_day.items(), key=lambda kv: (kv[1], kv[0])) if stats.per_day else None
    chain = context.get("chain") or {}
    return {
        "tenant": (context.get("tenant") or {}).get("name"),
        "events": stats.total,
        "first": stats.first, "last": stats.last, "days": len(days),
        "daily_mean_first_half": first_half, "daily_mean_second_half": second_half,
        "busiest_day": list(busiest) if busiest else None,
        "severities": dict(stats.severities), "risks": dict(stats.risks),
        "categories": dict(stats.categories.most_common(5)),
        "event_types": dict(stats.event_types.most_common(3)),
        "actors": dict(stats.actors.most_common(3)),
        "anomalies": len(stats.anomalies), "scored": stats.scored,
        "top_anomalies": stats.top_anomalies(3),
        "review_required": stats.review_required,
        "chain_intact": chain.get("intact"), "chain_broken_seq": chain.get("broken_seq"),
    }


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "0%"


def offline_summary(facts: dict[str, Any]) -> dict[str, list[str]]:
    """``{"trends": [...], "findings": [...], "anomalies": [...]}``: sentences stating the
    facts plainly (no figure that is not in ``facts``)."""
    total = facts["events"]
    if not total:
        return {"trends": ["No event matches the export's filters."], "findings": [],
                "anomalies": ["No anomaly: there are no events to score."]}
    trends = [f"{total:,} events over {facts['days']} day(s), from {facts['first'][:10]} to "
              f"{facts['last'][:10]}."]
    a, b = facts["daily_mean_first_half"], facts["daily_mean_second_half"]
    if a is not None and b is not None and a > 0:
        change = (b - a) / a
        if abs(change) < 0.1:
            trends.append(f"Activity was steady: about {b:.1f} events a day in the second half"
                          f" of the period against {a:.1f} in the first.")
        else:
            word = "rose" if change > 0 else "fell"
            trends.append(f"Activity {word} by {abs(change):.0%}: {b:.1f} events a day in the "
                          f"second half of the period against {a:.1f} in the first.")
    if facts["busiest_day"]:
        day, count = facts["busiest_day"]
        trends.append(f"The busiest day was {day} with {count:,} events.")

    findings = []
    severe = facts["severities"].get("high", 0) + facts["severities"].get("critical", 0)
    findings.append(f"{severe:,} events ({_pct(severe, total)}) have high or critical "
                    "severity.")
    risky = facts["risks"].get("high", 0) + facts["risks"].get("critical", 0)
    if facts["risks"]:
        findings.append(f"{risky:,} events ({_pct(risky, total)}) were classified high or "
                        "critical risk.")
    if facts["categories"]:
        top, count = next(iter(facts["categories"].items()))
        findings.append(f"The largest category is {top.replace('_', ' ')} "
                        f"({count:,} events, {_pct(count, total)}).")
    if facts["actors"]:
        actor, count = next(iter(facts["actors"].items()))
        findings.append(f"The most active actor is {actor} ({count:,} events).")
    if facts["review_required"]:
        findings.append(f"{facts['review_required']:,} classifications await an analyst's "
                        "review.")
    if facts["chain_intact"] is True:
        findings.append("The hash chain verified intact: no event was modified, removed or "
                        "reordered.")
    elif facts["chain_intact"] is False:
        findings.append(f"The hash chain is BROKEN at seq {facts['chain_broken_seq']}: the "
                        "trail was tampered with or damaged; investigate before relying on it.")

    anomalies = []
    if not facts["scored"]:
        anomalies.append("No event in the export has been scored for anomalies yet.")
    elif not facts["anomalies"]:
        anomalies.append(f"No anomaly among the {facts['scored']:,} scored events.")
    else:
        anomalies.append(f"{facts['anomalies']:,} of {facts['scored']:,} scored events were "
                         f"flagged as anomalies ({_pct(facts['anomalies'], facts['scored'])}).")
        for item in facts["top_anomalies"]:
            score = f"{item['score']:.2f}" if item["score"] is not None else "n/a"
            line = (f"Seq {item['seq']} ({item['occurred_at'][:16].replace('T', ' ')}): "
                    f"{item['event_type']} by {item['actor']} on {item['entity']}, score {score}")
            if item.get("summary"):
                line += f" — {item['summary']}"
            anomalies.append(line + ".")
    return {"trends": trends, "findings": findings, "anomalies": anomalies}
