"""The shipped pages: Overview (figures, rankings and breakdowns, refreshed every 30 s) and
Anomalies (alerts with their scores, explanations and suggested actions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode

import dash_bootstrap_components as dbc
import plotly.graph_objects as go
from dash import ALL, Input, Output, State, callback, ctx, dcc, html, no_update

from trailseal.errors import TrailsealError
from trailseal.types import DashboardPage, Viewer

from . import data
from .admin import reports_and_integrations
from .timeline import export_buttons, search_page, timeline

SEVERITY_COLOURS = {"info": "#95a5a6", "low": "#3498db", "medium": "#f39c12", "high": "#e67e22",
                    "critical": "#e74c3c"}
REFRESH_MS = 30_000


def _card(title: str, value, note: str = "", ident: str = ""):
    return dbc.Card(dbc.CardBody([
        html.Div(title, className="text-muted small text-uppercase"),
        html.Div(f"{value:,}" if isinstance(value, int) else value, className="fs-2 fw-bold",
                 id=ident or None),
        html.Div(note, className="text-muted small"),
    ]), className="h-100 shadow-sm")


def _bar(counts: dict[str, int], title: str, colours: dict[str, str] | None = None):
    if not counts:
        return html.Div([html.H6(title), html.P("Nothing in the last 30 days yet.",
                                                 className="text-muted")])
    names = list(counts)
    fig = go.Figure(go.Bar(x=[counts[n] for n in names], y=names, orientation="h",
                           marker_color=[(colours or {}).get(n, "#2c3e50") for n in names]))
    fig.update_layout(title=title, height=80 + 28 * len(names), margin=dict(l=10, r=10, t=40, b=10),
                      yaxis=dict(autorange="reversed"), plot_bgcolor="white")
    return dcc.Graph(figure=fig, config={"displayModeBar": False})


def _ranking(title: str, rows: list[dict], empty: str):
    body = [html.Tr([html.Td(r["name"] or "—"), html.Td(f"{r['count']:,}", className="text-end")])
            for r in rows]
    return dbc.Card([dbc.CardHeader(title), dbc.CardBody(
        dbc.Table([html.Tbody(body)], size="sm", hover=True, className="mb-0") if rows
        else html.P(empty, className="text-muted mb-0"))], className="h-100 shadow-sm")


def overview_content():
    s = data.stats()
    open_anomalies = data.anomalies(limit=100, status="open")["anomalies"]
    critical = s["severity_breakdown"].get("critical", 0)
    counts = s["counts"]
    if counts["total"] == 0:
        return dbc.Alert([html.H4("No events yet", className="alert-heading"),
                          html.P("Send events to POST /api/v1/events (or import a CloudTrail "
                                 "export with trailseal import) and they appear here.")],
                         color="info")
    return [
        dbc.Row([
            dbc.Col(_card("Events, 24 h", counts["24h"], ident="count-24h"), md=2),
            dbc.Col(_card("Events, 7 days", counts["7d"], ident="count-7d"), md=2),
            dbc.Col(_card("Events, 30 days", counts["30d"], ident="count-30d"), md=2),
            dbc.Col(_card("Open anomalies", len(open_anomalies),
                          "100 or more" if len(open_anomalies) == 100 else "awaiting review",
                          ident="open-anomalies"), md=3),
            dbc.Col(_card("Critical events, 30 days", critical, ident="critical-events"), md=3),
        ], className="g-3 mb-4"),
        dbc.Row([
            dbc.Col(_ranking("Top actors, 30 days", s["top_actors"], "No actors yet."), md=4),
            dbc.Col(_ranking("Top event types, 30 days", s["top_event_types"],
                             "No event types yet."), md=4),
            dbc.Col(dbc.Card(dbc.CardBody(_bar(
                {k: v for k, v in sorted(s["severity_breakdown"].items(),
                                         key=lambda kv: list(SEVERITY_COLOURS).index(kv[0])
                                         if kv[0] in SEVERITY_COLOURS else 9)},
                "Severity, 30 days", SEVERITY_COLOURS)), className="h-100 shadow-sm"), md=4),
        ], className="g-3 mb-4"),
        dbc.Row([dbc.Col(dbc.Card(dbc.CardBody(_bar(
            dict(sorted(s["category_breakdown"].items(), key=lambda kv: -kv[1])),
            "Categories, 30 days")), className="shadow-sm"), md=12)], className="g-3"),
        html.Div(f"As of {s['as_of']}", className="text-muted small mt-3", id="as-of"),
    ]


def overview(viewer: Viewer):
    since = (datetime.now(UTC) - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    buttons = export_buttons(viewer, {"start": since})
    return [
        dbc.Row([
            dbc.Col([html.H2("Overview", className="mb-1"),
                     html.P(f"What happened in {viewer.tenant_name}'s trail.",
                            className="text-muted")], md=6, xl=8),
            dbc.Col(html.Div([html.Span("Last 30 days: ", className="text-muted small me-2"),
                              *buttons], className="text-md-end text-nowrap pt-2")
                    if buttons else None, md=6, xl=4),
        ]),
        dcc.Loading(html.Div(id="export-status", className="small mb-2")),
        dcc.Interval(id="overview-refresh", interval=REFRESH_MS),
        dcc.Loading(html.Div(overview_content(), id="overview-body")),
    ]


@callback(Output("overview-body", "children"), Input("overview-refresh", "n_intervals"),
          prevent_initial_call=True)
def _refresh(_):
    return overview_content()


ANOMALIES_PAGE = 25


def anomalies(viewer: Viewer):
    raw = parse_qs((viewer.query or "").lstrip("?"))
    cursor = (raw.get("cursor") or [None])[0]
    try:
        page_no = max(1, int((raw.get("page") or ["1"])[0])) if cursor else 1
        page = data.anomalies(limit=ANOMALIES_PAGE, cursor=cursor)
    except (TrailsealError, ValueError) as exc:  # a cursor from elsewhere: say so
        return [html.H2("Anomalies", className="mb-1"), dbc.Alert([
            f"{getattr(exc, 'message', None) or exc} ",
            dcc.Link("Back to the newest anomalies", href="/dash/anomalies")],
            color="warning")]
    rows = page["anomalies"]
    if not rows:
        body = dbc.Alert("No anomalies: every scored event looks like your trail's usual "
                         "activity.", color="success")
    else:
        items = []
        for a in rows:
            score = a.get("score") or 0.0
            explanation = a.get("explanation") or {}
            colour = {"critical": "danger", "high": "warning", "medium": "info"}.get(
                a["severity"], "secondary")
            items.append(dbc.Card(dbc.CardBody([
                html.Div([
                    dbc.Badge(a["severity"], color=colour, className="me-2 text-uppercase"),
                    html.Strong(a["title"]),
                    html.Span(f" · {a['status']}", className="text-muted"),
                ]),
                dbc.Progress(value=round(score * 100), label=f"{score:.2f}", color=colour,
                             className="my-2",
                             style={"height": "1.1rem"}),
                dbc.Row([
                    dbc.Col([
                        html.P(explanation.get("summary") or "No explanation recorded.",
                               className="mb-1"),
                        _affected(a.get("affected_entities") or []),
                        html.Ul([html.Li(s) for s in a.get("suggested_actions", [])[:3]],
                                className="small mb-1"),
                    ], md=7),
                    dbc.Col(_contributions(explanation.get("contributions") or []), md=5),
                ]),
                html.Div(f"Detected {a.get('detected_at') or a['created_at']} · model "
                         f"{a.get('model_version') or '—'}", className="text-muted small"),
                _verdict(viewer, a),
            ]), className="mb-3 shadow-sm anomaly-card"))
        first = (page_no - 1) * ANOMALIES_PAGE + 1
        pager = html.Div([
            html.Span(f"Alerts {first:,}–{first + len(rows) - 1:,}", className="text-muted "
                      "small me-3", id="anomalies-count"),
            dcc.Link("« Newest", href="/dash/anomalies", id="anomalies-newest",
                     className="btn btn-outline-secondary btn-sm me-2") if cursor else None,
            dcc.Link("Older »", href="/dash/anomalies?" + urlencode(
                {"cursor": page["next_cursor"], "page": page_no + 1}), id="anomalies-older",
                className="btn btn-outline-secondary btn-sm") if page.get("next_cursor")
            else None], className="mb-4")
        body = html.Div([*items, pager])
    return [html.H2("Anomalies", className="mb-1"),
            html.P("Newest first. Scores run from 0 to 1; an event is an anomaly at or above "
                   "the tenant's threshold.", className="text-muted"), body]


def _affected(entities: list[dict]):
    if not entities:
        return None
    return html.Div([html.Span("Affected: ", className="text-muted"), ", ".join(
        f"{e.get('type', '?')} {e.get('id', '?')}" for e in entities[:6])],
        className="small mb-1 affected-entities")


def _contributions(contributions: list[dict]):
    """The explanation's SHAP contributions as a bar chart: what pushed the score up (red)
    or down (blue), largest first."""
    rows = [c for c in contributions if isinstance(c.get("contribution"), int | float)][:6]
    if not rows:
        return None
    labels = [str(c.get("label") or c.get("feature"))[:48] for c in rows]
    values = [float(c["contribution"]) for c in rows]
    fig = go.Figure(go.Bar(
        x=values, y=labels, orientation="h",
        marker_color=["#e74c3c" if v > 0 else "#3498db" for v in values],
        hovertext=[f"{label}: value {c.get('value')}, contribution {v:+.3f}"
                   for label, c, v in zip(labels, rows, values, strict=True)],
        hoverinfo="text"))
    fig.update_layout(title=dict(text="What drove the score (SHAP)", font=dict(size=12)),
                      height=60 + 26 * len(rows), margin=dict(l=10, r=10, t=30, b=10),
                      yaxis=dict(autorange="reversed"), plot_bgcolor="white")
    return dcc.Graph(figure=fig, config={"displayModeBar": False}, className="shap-chart")


def _verdict(viewer: Viewer, a: dict):
    if a.get("feedback"):
        f = a["feedback"]
        kind = "false positive" if f["is_false_positive"] else "confirmed"
        return html.Div(f"Marked {kind} by {f['given_by']}" + (f": {f['notes']}" if f["notes"]
                                                                else ""),
                        className="small mt-2 text-success")
    if not viewer.can("audit:review") or a["status"] == "resolved":
        return html.Div()
    return dbc.InputGroup([
        dbc.Input(id={"type": "fp-notes", "alert": a["id"]}, placeholder="Why is this expected?",
                  maxlength=2000, size="sm"),
        dbc.Button("Mark as false positive", id={"type": "fp-button", "alert": a["id"]},
                   color="outline-secondary", size="sm"),
    ], className="mt-2", id={"type": "fp-group", "alert": a["id"]})


@callback(Output({"type": "fp-group", "alert": ALL}, "children"),
          Input({"type": "fp-button", "alert": ALL}, "n_clicks"),
          State({"type": "fp-notes", "alert": ALL}, "value"), prevent_initial_call=True)
def _mark(clicks, notes):
    trigger = ctx.triggered_id
    if not trigger or not any(clicks):
        return [no_update] * len(clicks)
    out = []
    for item, note in zip(ctx.inputs_list[0], notes, strict=True):
        if item["id"]["alert"] != trigger["alert"]:
            out.append(no_update)
            continue
        try:
            data.mark_false_positive(trigger["alert"], note or "")
            out.append(html.Span("Marked as a false positive: the alert is resolved and the "
                                 "next training learns this pattern.",
                                 className="small text-success fp-done"))
        except Exception as exc:  # noqa: BLE001 - shown in the page, never a traceback
            out.append(html.Span(f"Not recorded: {getattr(exc, 'message', None) or exc}",
                                 className="small text-danger"))
    return out


def integrity(viewer: Viewer):
    models = data.models()
    bias = data.bias_metrics()
    alerts = [b for b in bias if b["status"] == "alert"]
    model_rows = [html.Tr([
        html.Td(m["model_type"]), html.Td(m["version"], className="font-monospace small"),
        html.Td("active" if m["is_active"] else ""), html.Td(f"{m['training_events']:,}"),
        html.Td(_metric(m)), html.Td(m["created_by"]), html.Td(m["created_at"][:16])])
        for m in models]
    return [
        html.H2("Integrity & models", className="mb-1"),
        html.P("Check that the trail was not altered, and see the models that enrich it.",
               className="text-muted"),
        dbc.Card(dbc.CardBody([
            html.H5("Hash chain"),
            html.P("Verification walks every event of your tenant's chain and names the first "
                   "broken one.", className="text-muted small"),
            dbc.Button("Verify now", id="verify-button", color="primary"),
            dcc.Loading(html.Div(_last_verification(), id="verify-result", className="mt-3")),
            _checkpoint_line(),
        ]), className="mb-4 shadow-sm"),
        dbc.Card([dbc.CardHeader("Model versions"), dbc.CardBody(
            dbc.Table([html.Thead(html.Tr([html.Th(h) for h in (
                "Type", "Version", "", "Training events", "Metrics", "Created by", "Created")])),
                html.Tbody(model_rows)], size="sm", hover=True, responsive=True)
            if models else html.P("No models trained yet: the shared baselines score and "
                                  "classify until your tenant has enough events.",
                                  className="text-muted mb-0"))], className="mb-4 shadow-sm"),
        dbc.Card([dbc.CardHeader(f"Fairness: {len(alerts)} bias alerts in the latest figures"),
                  dbc.CardBody(_bias_table(bias))], className="shadow-sm"),
    ]


def _last_verification():
    last = data.last_verification()
    if last is None:
        return html.P("Not verified yet: press Verify now (the nightly job also verifies "
                      "every chain).", className="text-muted small mb-0", id="last-verified")
    when = last["verified_at"][:16].replace("T", " ")
    if last["intact"]:
        return html.P([html.Strong("Last verification: "), f"{when} UTC, intact, "
                       f"{last['events_checked']:,} events and "
                       f"{last.get('checkpoints_checked') or 0:,} signed checkpoints checked."],
                      className="small mb-0", id="last-verified")
    return dbc.Alert([html.Strong("Last verification: "), f"{when} UTC, broken at event "
                      f"#{last.get('broken_seq')} ({last.get('reason')})."], color="danger",
                     className="mb-0", id="last-verified")


def _checkpoint_line():
    cp = data.latest_checkpoint()
    if cp is None:
        return html.P("No signed checkpoint yet: the hourly job signs one, so that anyone "
                      "can check this trail with trailseal-verify (docs/auditors.md).",
                      className="text-muted small mt-2 mb-0", id="latest-checkpoint")
    return html.P([html.Strong("Latest signed checkpoint: "),
                   f"{cp['tree_size']:,} events, {cp['created_at'][:16].replace('T', ' ')} "
                   "UTC, root ", html.Span(cp["root"][:16] + "…", className="font-monospace"),
                   " (auditors check it with trailseal-verify)"],
                  className="small mt-2 mb-0", id="latest-checkpoint")


def _metric(m: dict) -> str:
    metrics = m.get("metrics") or {}
    if "category" in metrics:
        return (f"category macro-F1 {metrics['category']['macro_f1']:.2f}, risk macro-F1 "
                f"{metrics.get('risk', {}).get('macro_f1', 0):.2f}")
    if "score_p99" in metrics:
        return f"score p99 {metrics['score_p99']}, flag rate {metrics.get('training_flag_rate')}"
    return ""


def _bias_table(bias: list[dict]):
    if not bias:
        return html.P("No fairness figures yet: they are recorded by each detection run.",
                      className="text-muted mb-0")
    rows = [html.Tr([html.Td(b["dimension"]), html.Td(b["group"]), html.Td(f"{b['events']:,}"),
                     html.Td(f"{b['rate']:.2%}"), html.Td(f"{b['overall_rate']:.2%}"),
                     html.Td(dbc.Badge(b["status"], color={"alert": "danger", "ok": "success"}
                                       .get(b["status"], "secondary")))])
            for b in bias[:30]]
    return dbc.Table([html.Thead(html.Tr([html.Th(h) for h in (
        "Dimension", "Group", "Events", "Flagged", "Overall", "Status")])), html.Tbody(rows)],
        size="sm", hover=True, responsive=True)


@callback(Output("verify-result", "children"), Input("verify-button", "n_clicks"),
          prevent_initial_call=True)
def _verify(_):
    r = data.verify_chain()
    if r["intact"]:
        return dbc.Alert([html.Strong("Intact. "), f"{r['events_checked']:,} events checked; "
                          f"head #{r['head_seq']} ",
                          html.Span(r["head_hash"][:16] + "…", className="font-monospace")],
                         color="success", className="mb-0", id="verify-status")
    return dbc.Alert([html.Strong("Broken. "), f"First broken event: #{r['broken_seq']} "
                      f"({r['reason']}). {r.get('detail') or ''}"], color="danger",
                     className="mb-0", id="verify-status")


PAGES = [
    DashboardPage("overview", "Overview", overview, order=10),
    DashboardPage("timeline", "Timeline", timeline, order=15),
    DashboardPage("anomalies", "Anomalies", anomalies, order=20),
    DashboardPage("search", "Search", search_page, order=30),
    DashboardPage("reports", "Reports & integrations", reports_and_integrations,
                  permission="audit:admin", order=80),
    DashboardPage("integrity", "Integrity & models", integrity, order=90),
]
