"""Outgoing HTTP for notifications, guarded against server-side request forgery.

A URL a tenant configures must be ``https`` and its host must resolve only to public
addresses: loopback, private, link-local, carrier-grade NAT, multicast, reserved,
unspecified and cloud metadata addresses are refused, in every spelling of an IPv4 address
the resolver accepts (``2130706433``, ``0x7f000001``, ``0177.0.0.1``, ``127.1``) and inside
IPv6 (``::ffff:127.0.0.1``, NAT64 ``64:ff9b::/96``). Hosts named in the allow list
(``TRAILSEAL_WEBHOOK_ALLOW_HOSTS``) skip the address rules and may use ``http``.

``post`` checks the URL again when it sends and connects to the address it checked (the
TLS handshake still names and verifies the host), so a DNS answer that changes between
check and connection cannot redirect the request. Redirects are never followed.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"),
            ipaddress.ip_address("100.100.100.200")}
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
RESPONSE_KEEP = 300  # characters of a refusing answer kept as the delivery's last error


class DestinationRefused(Exception):
    """A URL notifications may not reach; the message says why."""


class DeliveryFailed(Exception):
    """The receiver did not accept the request (network error, timeout, non-2xx answer)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Destination:
    """A checked URL: where to connect (``address``) and what to ask for."""

    scheme: str
    host: str
    port: int
    target: str  # path and query
    address: str
    allowed: bool  # on the allow list (address rules skipped)


def allow_list(spec: str | Iterable[str] | None) -> frozenset[str]:
    """The allow list from its configuration (comma-separated text or a list)."""
    items = spec.split(",") if isinstance(spec, str) else list(spec or [])
    return frozenset(_norm_host(item) for item in items if str(item).strip())


def _norm_host(host: str) -> str:
    return str(host).strip().lower().strip("[]").rstrip(".")


def literal_address(host: str) -> Address | None:
    """The address a host names literally, in any form the C resolver reads as one (IPv6,
    dotted quad, and the decimal, hex, octal and short IPv4 forms), else None."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    try:
        # inet_aton reads exactly the legacy forms getaddrinfo would resolve.
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def refusal(address: Address) -> str | None:
    """Why notifications may not reach ``address`` (None for a public address)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            reason = refusal(embedded)
            return f"{reason} (inside IPv6 {address})" if reason else None
    if address in METADATA:
        return f"{address} is a cloud metadata address"
    for test, what in ((address.is_loopback, "loopback"),
                       (address.is_unspecified, "unspecified"),
                       (address.is_link_local, "link-local"),
                       (address.is_multicast, "multicast"),
                       (isinstance(address, ipaddress.IPv4Address) and address in CGNAT,
                        "carrier-grade NAT"),
                       (address.is_reserved, "reserved"),
                       (address.is_private, "private")):
        if test:
            return f"{address} is a {what} address"
    if not address.is_global:
        return f"{address} is not a public address"
    return None


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to now (IPv4 and IPv6)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


def check_url(url: str, allow_hosts: Iterable[str] = (), *, resolve: bool = True,
              resolver: Resolver = system_resolver) -> Destination:
    """The destination of ``url`` if notifications may reach it; ``DestinationRefused``
    with the reason otherwise. Every address the host resolves to must be public (unless
    the host is allowed); the first is the one to connect to."""
    if not isinstance(url, str) or not url or len(url) > 2048:
        raise DestinationRefused("the URL must be text of 1–2048 characters")
    if any(c.isspace() or ord(c) < 32 or c == "\\" for c in url):
        raise DestinationRefused("the URL contains whitespace, a control character or a "
                                 "backslash")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise DestinationRefused(f"the URL does not parse: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise DestinationRefused(f"the URL must use https (got {scheme or 'no scheme'!r})")
    if parts.username is not None or parts.password is not None:
        raise DestinationRefused("the URL must not hold a user name or password before the "
                                 "host")
    host = _norm_host(parts.hostname or "")
    if not host:
        raise DestinationRefused("the URL has no host")
    allowed = host in allow_list(allow_hosts)
    if scheme == "http" and not allowed:
        raise DestinationRefused(f"the URL must use https ({host} is not in "
                                 "TRAILSEAL_WEBHOOK_ALLOW_HOSTS, so http is refused)")
    port = port or (443 if scheme == "https" else 80)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    literal = literal_address(host)
    if literal is not None:
        addresses = [str(literal)]
    elif not resolve:
        addresses = []
    else:
        try:
            addresses = list(dict.fromkeys(resolver(host, port)))
        except (OSError, UnicodeError) as exc:
            raise DestinationRefused(f"{host} does not resolve: {exc}") from None
        if not addresses:
            raise DestinationRefused(f"{host} does not resolve")
    if not allowed:
        for text in addresses:
            reason = refusal(ipaddress.ip_address(text.split("%", 1)[0]))
            if reason:
                shown = host if literal is None else parts.hostname
                raise DestinationRefused(
                    f"{shown} is refused: {reason}; notifications reach public addresses "
                    "only (an operator may list the host in TRAILSEAL_WEBHOOK_ALLOW_HOSTS)")
    return Destination(scheme, host, port, target, addresses[0] if addresses else "", allowed)


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, dest: Destination, timeout: float):
        super().__init__(dest.host, dest.port, timeout=timeout)
        self._address = dest.address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, dest: Destination, timeout: float):
        super().__init__(dest.host, dest.port, timeout=timeout,
                         context=ssl.create_default_context())
        self._address = dest.address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        # Connected to the checked address; the certificate must still name the host.
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post(url: str, body: bytes, headers: Mapping[str, str], *,
         allow_hosts: Iterable[str] = (), timeout: float = 10.0,
         resolver: Resolver = system_resolver) -> int:
    """POST ``body`` to ``url`` after checking it again (``check_url``), connected to the
    checked address, without following redirects. The answer's status when it is 2xx;
    ``DestinationRefused`` or ``DeliveryFailed`` otherwise."""
    dest = check_url(url, allow_hosts, resolver=resolver)
    conn_type = _PinnedHTTPS if dest.scheme == "https" else _PinnedHTTP
    conn = conn_type(dest, timeout)
    try:
        conn.request("POST", dest.target, body=body, headers=dict(headers))
        resp = conn.getresponse()
        answer = resp.read(4096)
        status = resp.status
    except (OSError, http.client.HTTPException) as exc:
        raise DeliveryFailed(f"{dest.host}:{dest.port}: {type(exc).__name__}: {exc}") from None
    finally:
        conn.close()
    if 300 <= status < 400:
        raise DeliveryFailed(f"answered {status} (a redirect, not followed)", status)
    if not 200 <= status < 300:
        text = answer.decode("utf-8", "replace").strip()[:RESPONSE_KEEP]
        raise DeliveryFailed(f"answered {status}" + (f": {text}" if text else ""), status)
    return status
