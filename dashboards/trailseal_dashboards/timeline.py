"""Timeline (events over time with filters kept in the URL, and an event's full detail) and
Search (questions in plain language, ranked results, a cited answer)."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlencode

import dash_bootstrap_components as dbc
import plotly.graph_objects as go
from dash import (
    ALL,
    Input,
    Output,
    State,
    callback,
    clientside_callback,
    ctx,
    dcc,
    html,
    no_update,
)
from pydantic import ValidationError

from trailseal.errors import TrailsealError
from trailseal.types import CATEGORIES, RISK_LEVELS, Viewer

from . import data

SEVERITIES = ["info", "low", "medium", "high", "critical"]
COLOURS = {"info": "#95a5a6", "low": "#3498db", "medium": "#f39c12", "high": "#e67e22",
           "critical": "#e74c3c"}
FILTERS = ("start", "end", "event_type", "actor", "entity_type", "entity_id", "severity",
           "category", "risk_level", "tag")
MULTI = ("event_type", "severity", "tag")
PAGE = 100  # events per page of the timeline (graph and table); older pages by cursor


def parse_filters(query: str) -> dict:
    """Filters from the page's query string (unknown names ignored)."""
    raw = parse_qs((query or "").lstrip("?"))
    out: dict = {}
    for name in FILTERS:
        values = [v for v in raw.get(name, []) if v]
        if values:
            out[name] = values if name in MULTI else values[0]
    return out


def _link(**filters) -> str:
    return "/dash/timeline?" + urlencode(filters, doseq=True)


def timeline(viewer: Viewer):
    f = parse_filters(viewer.query)
    raw = parse_qs((viewer.query or "").lstrip("?"))
    selected = raw.get("event")
    cursor = (raw.get("cursor") or [None])[0]
    try:
        page_no = max(1, int((raw.get("page") or ["1"])[0])) if cursor else 1
    except ValueError:
        page_no = 1
    stats = data.stats()
    types = [r["name"] for r in stats["top_event_types"] if r["name"]]
    actors = [r["name"] for r in stats["top_actors"] if r["name"]]
    return [
        html.H2("Timeline", className="mb-1"),
        html.P("Events over time, newest first. Filters stay in the address, so a view can "
               "be shared.", className="text-muted"),
        dbc.Card(dbc.CardBody(dbc.Row([
            dbc.Col([dbc.Label("From"), dbc.Input(id="f-start", type="date",
                                                  value=(f.get("start") or "")[:10])], md=2),
            dbc.Col([dbc.Label("To"), dbc.Input(id="f-end", type="date",
                                                value=(f.get("end") or "")[:10])], md=2),
            dbc.Col([dbc.Label("Event types"), dcc.Dropdown(
                id="f-event-type", options=sorted(set(types) | set(f.get("event_type", []))),
                value=f.get("event_type", []), multi=True, placeholder="any")], md=3),
            dbc.Col([dbc.Label("Actor"), dbc.Input(id="f-actor", value=f.get("actor", ""),
                                                   list="actors", placeholder="any"),
                     html.Datalist(id="actors", children=[html.Option(value=a)
                                                          for a in actors])], md=2),
            dbc.Col([dbc.Label("Entity type"), dbc.Input(id="f-entity-type",
                                                         value=f.get("entity_type", ""),
                                                         placeholder="any")], md=3),
            dbc.Col([dbc.Label("Severity"), dcc.Dropdown(
                id="f-severity", options=SEVERITIES, value=f.get("severity", []), multi=True,
                placeholder="any")], md=3),
            dbc.Col([dbc.Label("Category"), dcc.Dropdown(
                id="f-category", options=list(CATEGORIES), value=f.get("category"),
                placeholder="any")], md=3),
            dbc.Col([dbc.Label("Risk level"), dcc.Dropdown(
                id="f-risk", options=list(RISK_LEVELS), value=f.get("risk_level"),
                placeholder="any")], md=2),
            dbc.Col([dbc.Label("\u00a0"), html.Div([
                dbc.Button("Apply", id="f-apply", color="primary", className="me-2"),
                dbc.Button("Reset", id="f-reset", color="secondary", outline=True,
                           href="/dash/timeline", external_link=True, className="me-3"),
                *export_buttons(viewer, f)])], md=4),
        ], className="g-2")), className="mb-3 shadow-sm"),
        dcc.Loading(html.Div(id="export-status", className="small mb-2")),
        html.Div(_detail(selected[0]) if selected else None, id="event-detail",
                 className="mb-3"),
        dcc.Loading(html.Div(_results(f, cursor, page_no), id="timeline-results")),
    ]


def _results(f: dict, cursor: str | None = None, page_no: int = 1):
    try:
        page = data.events_page(f, limit=PAGE, cursor=cursor)
    except ValidationError as exc:
        first = exc.errors()[0]
        return dbc.Alert(f"Filter {'.'.join(str(x) for x in first['loc'])}: {first['msg']}",
                         color="warning")
    except TrailsealError as exc:  # a cursor that is not this view's: say so, start over
        return dbc.Alert([f"{exc.message} ", dcc.Link("Back to the newest events",
                                                     href=_link(**f))], color="warning")
    events = page["events"]
    if not events:
        return dbc.Alert("No events match these filters. Widen the dates or reset the "
                         "filters.", color="info", id="timeline-empty")
    fig = go.Figure()
    for sev in SEVERITIES:
        rows = [e for e in events if e["severity"] == sev]
        if not rows:
            continue
        fig.add_trace(go.Scatter(
            x=[e["occurred_at"] for e in rows], y=[e["event_type"] for e in rows],
            mode="markers", name=sev, customdata=[e["id"] for e in rows],
            marker=dict(color=COLOURS[sev], size=[14 if _flagged(e) else 8 for e in rows],
                        symbol=["diamond" if _flagged(e) else "circle" for e in rows],
                        line=dict(width=[2 if _flagged(e) else 0 for e in rows],
                                  color="#111")),
            hovertext=[_hover(e) for e in rows], hoverinfo="text"))
    fig.update_layout(height=max(320, 60 + 22 * len({e["event_type"] for e in events})),
                      margin=dict(l=10, r=10, t=10, b=10), plot_bgcolor="white",
                      legend=dict(orientation="h", y=1.08), clickmode="event")
    first = (page_no - 1) * PAGE + 1
    more = (f"{len(events)} events shown ({first:,}–{first + len(events) - 1:,}), newest first"
            + ("; older ones on the next pages." if page.get("next_cursor") else "."))
    pager = html.Div([
        dcc.Link("« Newest", href=_link(**f), id="page-newest",
                 className="btn btn-outline-secondary btn-sm me-2") if cursor else None,
        dcc.Link("Older »", href=_link(**f, cursor=page["next_cursor"], page=page_no + 1),
                 id="page-older", className="btn btn-outline-secondary btn-sm")
        if page.get("next_cursor") else None,
    ], className="mt-2")
    table = dbc.Table([html.Thead(html.Tr([html.Th(h) for h in (
        "When", "Event", "Actor", "Entity", "Severity", "Category", "Risk", "Score")])),
        html.Tbody([html.Tr([
            html.Td(e["occurred_at"][:19].replace("T", " ")),
            html.Td(dcc.Link(e["event_type"], href=_link(event=e["id"]),
                             className="event-link")),
            html.Td(e["actor"]["id"]), html.Td(f"{e['entity']['type']} {e['entity']['id']}"),
            html.Td(dbc.Badge(e["severity"], color="light", text_color="dark")),
            html.Td((e.get("insights") or {}).get("category") or "—"),
            html.Td((e.get("insights") or {}).get("risk_level") or "—"),
            html.Td(_score(e))]) for e in events])],
        size="sm", hover=True, responsive=True, className="small")
    return [dbc.Card(dbc.CardBody([html.Div(more, className="text-muted small mb-2",
                                            id="timeline-count"),
                                   dcc.Graph(id="timeline-graph", figure=fig,
                                             config={"displayModeBar": False})]),
                     className="mb-3 shadow-sm"),
            dbc.Card(dbc.CardBody([table, pager]), className="shadow-sm")]


def _flagged(e) -> bool:
    return bool((e.get("insights") or {}).get("is_anomaly"))


def _score(e) -> str:
    s = (e.get("insights") or {}).get("anomaly_score")
    return "—" if s is None else f"{s:.2f}"


def _hover(e) -> str:
    i = e.get("insights") or {}
    tags = ", ".join(sorted(set(e.get("tags") or []) | set(i.get("tags") or []))) or "none"
    return (f"<b>{e['event_type']}</b><br>{e['occurred_at']}<br>actor {e['actor']['id']}<br>"
            f"{e['entity']['type']} {e['entity']['id']}<br>severity {e['severity']} · "
            f"{i.get('category') or 'uncategorised'} · risk {i.get('risk_level') or '—'}<br>"
            f"anomaly score {_score(e)}<br>tags: {tags}")


def _detail(event_id: str):
    try:
        e = data.event(event_id)
    except Exception as exc:  # noqa: BLE001 - shown in the page
        return dbc.Alert(f"Event not shown: {getattr(exc, 'message', None) or exc}",
                         color="warning")
    i = e.get("insights") or {}
    anomaly = next(iter((i.get("ai_insights") or {}).get("anomaly", {}).values()), {})
    explanation = anomaly.get("explanation") or {}
    fields = [("When", e["occurred_at"]), ("Received", e["received_at"]),
              ("Event type", e["event_type"]), ("Actor", f"{e['actor']['id']} "
                                                         f"({e['actor']['type']})"),
              ("Role / department", f"{e['actor'].get('role') or '—'} / "
                                    f"{e['actor'].get('department') or '—'}"),
              ("Entity", f"{e['entity']['type']} {e['entity']['id']}"),
              ("Severity", e["severity"]), ("Source", e.get("source") or "—"),
              ("Address", e.get("ip_address") or "—"), ("User agent", e.get("user_agent") or "—"),
              ("Tags", ", ".join(e.get("tags") or []) or "—"), ("Seq", str(e["seq"])),
              ("Hash", e["hash"])]
    insight_rows = [("Category", i.get("category") or "—"), ("Risk", i.get("risk_level") or "—"),
                    ("Rule tags", ", ".join(i.get("tags") or []) or "—"),
                    ("Anomaly score", _score(e)),
                    ("Review required", "yes" if i.get("review_required") else "no")]
    return dbc.Card([
        dbc.CardHeader(html.Strong(f"{e['event_type']} by {e['actor']['id']}")),
        dbc.CardBody(dbc.Row([
            dbc.Col([html.H6("Event"), dbc.Table(html.Tbody([
                html.Tr([html.Th(k, className="text-muted fw-normal"), html.Td(v)])
                for k, v in fields]), size="sm", className="small"),
                html.H6("Action details"),
                html.Pre(json.dumps(e.get("action_details"), indent=2, ensure_ascii=False),
                         className="bg-light p-2 small", id="detail-json")], md=7),
            dbc.Col([html.H6("AI insights"), dbc.Table(html.Tbody([
                html.Tr([html.Th(k, className="text-muted fw-normal"), html.Td(v)])
                for k, v in insight_rows]), size="sm", className="small"),
                html.H6("Why it was flagged") if explanation.get("summary") else None,
                html.P(explanation.get("summary")) if explanation.get("summary") else None,
                html.Ul([html.Li(f"{c.get('label', c.get('feature'))}: {c.get('value')}")
                         for c in (explanation.get("contributions") or [])[:5]],
                        className="small"),
                html.Div([
                    dcc.Link("Same entity's events", href=_link(
                        entity_type=e["entity"]["type"], entity_id=e["entity"]["id"]),
                        className="btn btn-outline-primary btn-sm me-2"),
                    dcc.Link("This actor's events", href=_link(actor=e["actor"]["id"]),
                             className="btn btn-outline-primary btn-sm")])], md=5),
        ])),
    ], className="shadow-sm border-primary", id="detail-card")


@callback(Output("url", "search", allow_duplicate=True),
          Input("f-apply", "n_clicks"),
          State("f-start", "value"), State("f-end", "value"), State("f-event-type", "value"),
          State("f-actor", "value"), State("f-entity-type", "value"),
          State("f-severity", "value"), State("f-category", "value"), State("f-risk", "value"),
          prevent_initial_call=True)
def _apply(clicks, start, end, types, actor, entity_type, severity, category, risk):
    if not clicks:  # the button was just drawn, not pressed
        return no_update
    filters = {"start": f"{start}T00:00:00Z" if start else None,
               "end": f"{end}T23:59:59.999999Z" if end else None,
               "event_type": types or [], "actor": actor, "entity_type": entity_type,
               "severity": severity or [], "category": category, "risk_level": risk}
    return "?" + urlencode({k: v for k, v in filters.items() if v}, doseq=True)


@callback(Output("url", "search", allow_duplicate=True), Input("timeline-graph", "clickData"),
          State("url", "search"), prevent_initial_call=True)
def _open(click, search):
    if not click or not click.get("points"):
        return no_update
    raw = parse_qs((search or "").lstrip("?"))
    raw["event"] = [click["points"][0]["customdata"]]
    return "?" + urlencode(raw, doseq=True)


def export_buttons(viewer: Viewer, filters: dict) -> list:
    """CSV and PDF of the events ``filters`` select (the events API's filters), through the
    export API (so the export is permission-checked and recorded like any other); none
    without ``audit:export``. A page shows them once."""
    if not viewer.can("audit:export"):
        return []
    return [dcc.Store(id="export-filters", data=filters),
            dbc.Button("Export CSV", id="export-csv", color="success", outline=True,
                       className="me-2"),
            dbc.Button("Export PDF", id="export-pdf", color="success", outline=True)]


# Runs in the browser: POST the page's filters to the export API with the session, then
# save the file it answers (or say what happened).
clientside_callback(
    """
    async function(csv, pdf, body) {
        if (!csv && !pdf) { return window.dash_clientside.no_update; }
        const ctx = window.dash_clientside.callback_context;
        const fmt = ctx.triggered[0].prop_id.startsWith('export-pdf') ? 'pdf' : 'csv';
        const r = await fetch('/api/v1/export/' + fmt, {method: 'POST',
            credentials: 'same-origin', headers: {'Content-Type': 'application/json'},
            body: JSON.stringify(body || {})});
        if (r.status === 202) {
            const job = await r.json();
            return 'A worker is writing the ' + fmt.toUpperCase() + ' (' + job.event_count +
                ' events); it will be at ' + job.download_url;
        }
        if (!r.ok) {
            let message = r.statusText;
            try { message = (await r.json()).error.message; } catch (e) {}
            return 'Export failed: ' + message;
        }
        const blob = await r.blob();
        const found = /filename="?([^";]+)"?/.exec(r.headers.get('Content-Disposition') || '');
        const a = document.createElement('a');
        a.href = URL.createObjectURL(blob);
        a.download = found ? found[1] : 'trailseal-export.' + fmt;
        document.body.appendChild(a); a.click(); a.remove();
        return 'Downloaded ' + a.download + '.';
    }
    """,
    Output("export-status", "children"), Input("export-csv", "n_clicks"),
    Input("export-pdf", "n_clicks"), State("export-filters", "data"),
    prevent_initial_call=True)


EXAMPLES = ["Who deleted invoices?", "Which roles were granted?", "Exports of customer data",
            "Failed sign-ins"]


def search_page(viewer: Viewer):
    return [
        html.H2("Search", className="mb-1"),
        html.P("Ask the trail in plain language. Answers cite the events they come from.",
               className="text-muted"),
        dbc.InputGroup([dbc.Input(id="q", placeholder="e.g. who exported customer data?",
                                  maxlength=1000, debounce=True),
                        dbc.Button("Search", id="q-go", color="primary")], className="mb-2"),
        html.Div([html.Span("Try: ", className="text-muted small me-1")] + [
            dbc.Button(q, id={"type": "example", "q": q}, color="link", size="sm",
                       className="example-question") for q in EXAMPLES], className="mb-3"),
        dcc.Loading(html.Div(id="search-results")),
    ]


@callback(Output("search-results", "children"), Output("q", "value"),
          Input("q-go", "n_clicks"), Input("q", "n_submit"),
          Input({"type": "example", "q": ALL}, "n_clicks"), State("q", "value"),
          prevent_initial_call=True)
def _search(go, submit, examples, value):
    trigger = ctx.triggered_id
    if not (go or submit or any(examples or [])):
        return no_update, no_update
    if isinstance(trigger, dict):
        if not any(examples):
            return no_update, no_update
        question = trigger["q"]
    else:
        question = value
    if not question or not question.strip():
        return dbc.Alert("Type a question first, or pick an example.", color="info"), no_update
    try:
        out = data.search(question.strip())
    except ValidationError as exc:
        return dbc.Alert(exc.errors()[0]["msg"], color="warning"), no_update
    results = out["results"]
    numbers = {src["id"]: n for n, src in enumerate(out.get("sources") or [], 1)}
    text = re.sub(r"\[([0-9a-f-]{36})\]",
                  lambda m: f"[{numbers[m.group(1)]}]" if m.group(1) in numbers else "",
                  out.get("answer", ""))
    answer = dbc.Card(dbc.CardBody([
        html.H5("Answer"), dcc.Markdown(text, id="search-answer"),
        html.Div([html.Span("Sources: ", className="text-muted small")] + [
            dcc.Link(f"[{n}] {s.get('event_type', '')}", href=_link(event=s["id"]),
                     className="me-3 small source-link")
            for n, s in enumerate(out.get("sources") or [], 1)])]),
        className="mb-3 shadow-sm border-primary")
    if not results:
        return [answer, dbc.Alert("No events match. Try other words.", color="info")], question
    items = [dbc.ListGroupItem([
        html.Div([html.Strong(r["event_type"]), html.Span(f"  {r['occurred_at'][:19]}",
                                                         className="text-muted small")]),
        html.Div(f"{r['actor']['id']} · {r['entity']['type']} {r['entity']['id']} · "
                 f"severity {r['severity']}", className="small"),
        dbc.Progress(value=min(100, round(r["score"] * 3000)), className="my-1",
                     style={"height": "0.4rem"}),
        dcc.Link("Open", href=_link(event=r["id"]), className="small result-link"),
    ]) for r in results]
    return [answer, html.H6(f"{len(results)} results, best first"),
            dbc.ListGroup(items, id="search-list")], question
