"""Dashboard pages with 1,000,000 events stored: how long the server takes to build each
page for a signed-in analyst of the tenant ``bench-1m`` (loaded by ``bench_query.py``).

Each page is requested as the browser requests it: Dash's callback request
(``POST /dash/_dash-update-component``) for the page's address, with the analyst's session
cookie, through the Flask app (sign-in, the tenant's data, the access log), five times; the
median and the worst are printed. The overview is also timed with its statistics cache
cold (the first request) and warm.

Then the same pages in a real headless Chromium (``/usr/bin/chromium`` through Playwright)
against the app under waitress, with the browser's own timings (``performance``): the
overview's first contentful paint and the moment its figures are on screen, and the
timeline's 100 newest events drawn (graph and table). Targets: timeline with 100 events
rendered <= 1 s, overview first paint <= 1.5 s.

Run: ``.venv/bin/python bench/bench_dashboards.py [--quick] [--no-browser]``
"""

from __future__ import annotations

import re
import statistics
import time
import uuid

from benchlib import (
    Server,
    base_parser,
    ensure_tenant,
    event_count,
    open_app,
    print_header,
    verdict,
)

TARGET_TIMELINE_S = 1.0
TARGET_FIRST_PAINT_S = 1.5
PASSWORD = "bench password 123"

PAGES = [("overview", ""), ("timeline", ""), ("timeline", "?actor=ana.silva%40acme.example"),
         ("timeline", "?severity=critical&category=security"), ("anomalies", ""),
         ("integrity", "")]
ROUTE = {"output": "page.children", "outputs": {"id": "page", "property": "children"},
         "changedPropIds": ["url.pathname"], "state": []}


def new_analyst(svc, tenant_id) -> str:
    from trailseal.services.tenancy import create_user

    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    create_user(svc, tenant_id, email, PASSWORD, "analyst")
    return email


def sign_in(app, svc, tenant_id) -> object:
    email = new_analyst(svc, tenant_id)
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = client.post("/login", data={"email": email, "password": PASSWORD,
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


# Milliseconds since navigation start (the browser's clock) and the first contentful paint.
NOW_AND_PAINT = """() => [performance.now(),
    (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime || null]"""


def browser_timings(instance: str, email: str, runs: int) -> None:
    from playwright.sync_api import sync_playwright

    with Server(instance) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        base = f"http://127.0.0.1:{server.port}"
        page.goto(f"{base}/login?next=/dash/overview")
        page.fill("#email", email)
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("#count-24h", timeout=120_000)  # warms the statistics cache
        shown, painted, drawn, switched = [], [], [], []
        drawn_js = ("document.querySelectorAll('#timeline-results tbody tr').length >= 100 && "
                    "document.querySelector('#timeline-graph .scatterlayer .point')")
        for _ in range(runs):
            page.goto(f"{base}/dash/overview")
            page.wait_for_selector("#count-24h", timeout=60_000)
            now, fcp = page.evaluate(NOW_AND_PAINT)
            shown.append(now / 1000)
            painted.append((fcp or now) / 1000)
        for _ in range(runs):  # a fresh load: scripts (Plotly's included) parsed each time
            page.goto(f"{base}/dash/timeline")
            page.wait_for_function(drawn_js, timeout=60_000)
            drawn.append(page.evaluate(NOW_AND_PAINT)[0] / 1000)
        for _ in range(runs):  # from the overview through the navigation, as analysts do
            page.goto(f"{base}/dash/overview")
            page.wait_for_selector("#count-24h", timeout=60_000)
            start = page.evaluate("performance.now()")
            page.click("#nav-timeline")
            page.wait_for_function(drawn_js, timeout=60_000)
            switched.append((page.evaluate("performance.now()") - start) / 1000)
        browser.close()
    fp, sh, tl, sw = (statistics.median(x) for x in (painted, shown, drawn, switched))
    print(f"browser: overview first contentful paint median {fp * 1000:,.0f} ms (worst "
          f"{max(painted) * 1000:,.0f}), figures on screen {sh * 1000:,.0f} ms (worst "
          f"{max(shown) * 1000:,.0f})  target <= {TARGET_FIRST_PAINT_S} s "
          f"{verdict(fp <= TARGET_FIRST_PAINT_S)}")
    print(f"browser: timeline, 100 newest events drawn (graph and table): fresh load median "
          f"{tl * 1000:,.0f} ms (worst {max(drawn) * 1000:,.0f}); from the overview's "
          f"navigation median {sw * 1000:,.0f} ms (worst {max(switched) * 1000:,.0f})  "
          f"target <= {TARGET_TIMELINE_S} s {verdict(sw <= TARGET_TIMELINE_S)}")


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--no-browser", action="store_true",
                        help="only the server's callback times")
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
    if not args.no_browser:
        browser_timings(args.instance, new_analyst(svc, tid), runs)


if __name__ == "__main__":
    main()
