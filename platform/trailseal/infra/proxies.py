"""Which ``X-Forwarded-*`` headers the app believes: those of ``TRAILSEAL_PROXY_COUNT``
proxies, read in one place whatever WSGI server runs the app.

With a count of 0 they are removed before the app sees them, so nothing (the access log,
the sign-in throttle, a plugin reading ``request.access_route``) can take a client's word
for its address, scheme or host. With N > 0, werkzeug's ``ProxyFix`` takes the client's
address from the N-th ``X-Forwarded-For`` entry counted from the right (the one the
outermost of the N proxies appended), and trusts nothing when there are fewer entries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

FORWARDED_HEADERS = ("HTTP_FORWARDED", "HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO",
                     "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_PORT",
                     "HTTP_X_FORWARDED_PREFIX", "HTTP_X_FORWARDED_BY")

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]


class DropForwardedHeaders:
    """WSGI middleware removing every forwarding header (no proxy is trusted)."""

    def __init__(self, app: WSGIApp):
        self.app = app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        for name in FORWARDED_HEADERS:
            environ.pop(name, None)
        return self.app(environ, start_response)


def trust_proxies(app: WSGIApp, proxy_count: int) -> WSGIApp:
    """Wrap a WSGI app so it believes the forwarding headers of ``proxy_count`` proxies."""
    if proxy_count <= 0:
        return DropForwardedHeaders(app)
    from werkzeug.middleware.proxy_fix import ProxyFix

    return ProxyFix(app, x_for=proxy_count, x_proto=proxy_count, x_host=proxy_count)


OUTBUF_HIGH_WATERMARK = 2 * 1024 * 1024  # bytes of one response buffered, at most


def waitress_options() -> dict[str, Any]:
    """Options for waitress under ``trailseal serve``: it passes forwarding headers through
    untouched, so that the app alone decides (waitress's own reading differs from
    ``ProxyFix``'s when a request carries fewer entries than there are proxies).

    A response's output waits in memory up to ``OUTBUF_HIGH_WATERMARK`` bytes before the
    thread writing it waits for the client (waitress's default is 16 MB): a large export
    to a slower client then holds a few pages' text, not 16 MB of it."""
    return {"clear_untrusted_proxy_headers": False,
            "outbuf_high_watermark": OUTBUF_HIGH_WATERMARK}
