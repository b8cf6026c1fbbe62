"""The SSRF catalogue: every URL a tenant could use to reach inside the network is refused
with the reason, in every spelling; public destinations and allowed hosts pass. DNS answers
come from a resolver given to the check (no network), including one that changes its answer
between the check at creation and the one at send time."""

from __future__ import annotations

import pytest

from trailseal.infra.outbound import DestinationRefused, check_url, literal_address, post

PUBLIC = "93.184.216.34"


def resolver_of(table: dict[str, list[str]]):
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError(f"[Errno -2] Name or service not known: {host}")
        return table[host]

    return resolve


DNS = resolver_of({
    "example.com": [PUBLIC],
    "internal.example.com": ["10.0.0.5"],
    "mixed.example.com": [PUBLIC, "127.0.0.1"],  # one bad answer is enough to refuse
    "v6.example.com": ["2606:4700::6810:85e5"],
    "v6-loopback.example.com": ["::1"],
    "metadata.example.com": ["169.254.169.254"],
    "localhost": ["127.0.0.1", "::1"],
})

REFUSED = [
    # (url, words the reason holds)
    ("https://127.0.0.1/", "loopback"),
    ("https://127.1/", "loopback"),  # short form
    ("https://2130706433/", "loopback"),  # decimal
    ("https://0x7f000001/", "loopback"),  # hex
    ("https://0x7f.0.0.1/", "loopback"),  # hex octet
    ("https://0177.0.0.1/", "loopback"),  # octal
    ("https://017700000001/", "loopback"),  # octal, one number
    ("https://[::1]/", "loopback"),
    ("https://[::ffff:127.0.0.1]/", "loopback"),  # IPv6-mapped
    ("https://[::ffff:7f00:1]/", "loopback"),  # IPv6-mapped, hex
    ("https://[64:ff9b::7f00:1]/", "loopback"),  # NAT64
    ("https://[2002:7f00:1::]/", "loopback"),  # 6to4
    ("https://localhost/", "loopback"),
    ("https://0.0.0.0/", "unspecified"),
    ("https://0/", "unspecified"),
    ("https://[::]/", "unspecified"),
    ("https://10.0.0.1/", "private"),
    ("https://172.16.5.4/", "private"),
    ("https://192.168.1.1/", "private"),
    ("https://0xc0a80101/", "private"),  # 192.168.1.1 in hex
    ("https://[fd12:3456::1]/", "private"),
    ("https://[::ffff:10.0.0.1]/", "private"),
    ("https://169.254.169.254/latest/meta-data/", "metadata"),
    ("https://2852039166/", "metadata"),  # 169.254.169.254 in decimal
    ("https://[fd00:ec2::254]/", "metadata"),
    ("https://[::ffff:169.254.169.254]/", "metadata"),
    ("https://169.254.10.10/", "link-local"),
    ("https://[fe80::1]/", "link-local"),
    ("https://100.64.0.1/", "carrier-grade NAT"),
    ("https://100.127.255.254/", "carrier-grade NAT"),
    ("https://224.0.0.1/", "multicast"),
    ("https://[ff02::1]/", "multicast"),
    ("https://240.0.0.1/", "reserved"),
    ("https://255.255.255.255/", "reserved"),
    ("https://198.18.0.1/", "private"),  # benchmarking
    ("https://internal.example.com/", "private"),
    ("https://mixed.example.com/", "loopback"),
    ("https://v6-loopback.example.com/", "loopback"),
    ("https://metadata.example.com/", "metadata"),
    ("https://nowhere.example.com/", "does not resolve"),
    ("http://example.com/", "must use https"),
    ("ftp://example.com/", "must use https"),
    ("file:///etc/passwd", "must use https"),
    ("gopher://example.com/", "must use https"),
    ("https:///path", "no host"),
    ("https://user:pw@example.com/", "user name or password"),
    ("https://example.com@127.0.0.1/", "user name or password"),
    ("https://example.com\\@127.0.0.1/", "backslash"),
    ("https://exa mple.com/", "whitespace"),
    ("https://example.com/\r\nX: y", "control character"),
    ("https://example.com:99999/", "does not parse"),
    ("", "1–2048"),
    ("https://example.com/" + "a" * 2100, "1–2048"),
]


@pytest.mark.parametrize("url,reason", REFUSED, ids=[u[:60] or "empty" for u, _ in REFUSED])
def test_refused_destinations(url, reason):
    with pytest.raises(DestinationRefused) as caught:
        check_url(url, allow_hosts=(), resolver=DNS)
    assert reason in str(caught.value), str(caught.value)


ACCEPTED = [
    ("https://example.com/hook", PUBLIC, 443),
    ("https://example.com:8443/a?b=c", PUBLIC, 8443),
    ("https://EXAMPLE.com./x", PUBLIC, 443),
    ("https://v6.example.com/", "2606:4700::6810:85e5", 443),
    ("https://93.184.216.34/", PUBLIC, 443),
    ("https://1572395042/", PUBLIC, 443),  # decimal spelling of a public address
]


@pytest.mark.parametrize("url,address,port", ACCEPTED, ids=[u for u, _, _ in ACCEPTED])
def test_public_destinations_pass(url, address, port):
    dest = check_url(url, allow_hosts=(), resolver=DNS)
    assert (dest.address, dest.port, dest.scheme) == (address, port, "https")
    assert not dest.allowed


@pytest.mark.parametrize("url,allow", [
    ("http://127.0.0.1:8080/hook", "127.0.0.1"),
    ("https://internal.example.com/", "internal.example.com"),
    ("http://relay.internal/", " Relay.Internal , other"),
    ("https://[::1]/", "::1"),
])
def test_allowed_hosts_skip_the_address_rules_and_may_use_http(url, allow):
    dest = check_url(url, allow_hosts=allow.split(","),
                     resolver=resolver_of({"relay.internal": ["10.1.1.1"],
                                           "internal.example.com": ["10.0.0.5"]}))
    assert dest.allowed


@pytest.mark.parametrize("url", ["http://2130706433/", "http://127.1/", "http://localhost/",
                                 "http://[::ffff:127.0.0.1]/"])
def test_allowing_one_spelling_allows_no_other(url):
    with pytest.raises(DestinationRefused):
        check_url(url, allow_hosts=["127.0.0.1"], resolver=DNS)


@pytest.mark.parametrize("host,expected", [
    ("2130706433", "127.0.0.1"), ("0x7f000001", "127.0.0.1"), ("0177.0.0.1", "127.0.0.1"),
    ("127.1", "127.0.0.1"), ("[::ffff:127.0.0.1]", "::ffff:7f00:1"), ("example.com", None),
])
def test_literal_addresses_are_read_like_the_resolver_reads_them(host, expected):
    found = literal_address(host)
    assert (str(found) if found else None) == expected


def test_send_time_check_uses_the_answer_of_that_moment():
    """DNS rebinding: a host public when the integration was created resolves to loopback
    when the alert is sent. The send checks again and never connects."""
    answers = iter([[PUBLIC], ["127.0.0.1"]])

    def rebinding(host, port):
        return next(answers)

    assert check_url("https://rebind.example.com/", resolver=rebinding).address == PUBLIC
    with pytest.raises(DestinationRefused, match="loopback"):
        post("https://rebind.example.com/", b"{}", {}, resolver=rebinding)
