"""Dashboard pages with 1,000,000 events stored: how long the server takes to build each
page for a signed-in analyst of the tenant ``bench-1m`` (loaded by ``bench_query.py``).

Each page is requested as the browser requests it: Dash's callback request
(``POST /dash/_dash-update-component``) for the page's address, with the analyst's session
cookie, through the Flask app (sign-in, the tenant's data, the access log), five times; the
median and the worst are printed. The overview is also timed with its statistics cache
cold (the first request) and warm.

Run: ``.venv/bin/python bench/bench_dashboards.py [--quick]``
"""

from __future__ import annotations

import re
import statistics
import time
import uuid

from benchlib import base_parser, ensure_tenant, event_count, open_app, print_header

PAGES = [("overview", ""), ("timeline", ""), ("timeline", "?actor=ana.silva%40acme.example"),
         ("timeline", "?severity=critical&category=security"), ("anomalies", ""),
         ("integrity", "")]
ROUTE = {"output": "page.children", "outputs": {"id": "page", "property": "children"},
         "changedPropIds": ["url.pathname"], "state": []}


def sign_in(app, svc, tenant_id) -> object:
    from trailseal.services.tenancy import create_user

    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    create_user(svc, tenant_id, email, "bench password 123", "analyst")
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = client.post("/login", data={"email": email, "password": "bench password 123",
                                       "csrf_token": token, "next": "/dash/"})
    assert resp.status_code == 302, resp.status_code
    return client


def request_page(client, path: str, search: str) -> tuple[float, int]:
    body = {**ROUTE, "inputs": [
        {"id": "url", "property": "pathname", "value": f"/dash/{path}"},
        {"id": "url", "property": "search", "value": search}]}
    t = time.perf_counter()
    resp = client.post("/dash/_dash-update-component", json=body)
    elapsed = time.perf_counter() - t
    assert resp.status_code == 200, (path, resp.status_code, resp.get_data(as_text=True)[:300])
    return elapsed, len(resp.get_data())


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    args = parser.parse_args()
    slug = "bench-1m"
    app = open_app(args.instance)
    svc = app.extensions["trailseal"]
    tid, _ = ensure_tenant(svc, slug)
    total = event_count(svc, tid)
    print_header("bench_dashboards: dashboard pages", svc, tenant=slug, events=f"{total:,}")
    if total < 1_000_000 and not args.quick:
        print("load the tenant first: .venv/bin/python bench/bench_query.py")
    svc.redis.delete(f"trailseal:stats:{tid}")  # the overview's first request computes
    client = sign_in(app, svc, tid)
    first, size = request_page(client, "overview", "")
    print(f"overview, statistics computed: {first * 1000:,.0f} ms ({size:,} bytes)")
    runs = 2 if args.quick else 5
    for path, search in PAGES:
        times = [request_page(client, path, search)[0] for _ in range(runs)]
        print(f"{path + search:55} median {statistics.median(times) * 1000:7,.0f} ms   "
              f"worst {max(times) * 1000:7,.0f} ms")


if __name__ == "__main__":
    main()
