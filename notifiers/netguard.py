"""SSRF guard: outbound HTTP that refuses loopback, private, link-local and metadata targets.

Built on aiohttp (httpx/httpcore slows down with requests in flight, encode/httpx#3215; the
delivery target is thousands of signed POSTs a second). Two checks, both below aiohttp's URL
handling: the resolver refuses a whole answer when ANY address is forbidden (a mixed answer
is a rebinding attempt), and the socket factory vets the exact address each socket is about
to connect to (IP literals skip the resolver). aiohttp connects to the addresses the resolver
returned, so a hostname that re-resolves to 127.0.0.1 after validation (DNS rebinding) cannot
slip past. TLS still verifies the URL's hostname.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from importlib import metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # aiohttp is imported on first use: commands that send nothing skip it
    import aiohttp

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# aiohappyeyeballs' AddrInfoType: (family, type, proto, canonname, sockaddr).
AddrInfo = tuple[int, int, int, str, tuple[Any, ...]]
MAX_CONNECTIONS = 100

# Spelled out rather than trusting `is_private`, whose tables changed across Python releases.
_FORBIDDEN_V4 = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata 169.254.169.254
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
    )
)
_FORBIDDEN_V6 = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "::/128",
        "::1/128",
        "::/96",  # deprecated IPv4-compatible
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard
        "2001:db8::/32",  # documentation
        "fc00::/7",  # unique local, incl. AWS metadata fd00:ec2::254
        "fe80::/10",
        "fec0::/10",  # deprecated site-local
        "ff00::/8",
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class TargetRefused(Exception):
    """The destination resolves to an address we do not connect to."""

    def __init__(self) -> None:
        super().__init__("target address refused (private network)")


def is_forbidden_ip(ip: IPAddress) -> bool:
    """True for any address a public webhook must not reach (see the tables above)."""
    if isinstance(ip, ipaddress.IPv4Address):
        return (
            any(ip in net for net in _FORBIDDEN_V4)
            or ip.is_private
            or ip.is_loopback
            or ip.is_link_local
            or ip.is_multicast
            or ip.is_reserved
            or ip.is_unspecified
        )
    # IPv6 forms that carry an IPv4 address are judged by that address.
    if ip.ipv4_mapped is not None:
        return is_forbidden_ip(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        return is_forbidden_ip(ip.sixtofour)
    if ip in _NAT64:
        return is_forbidden_ip(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return (
        any(ip in net for net in _FORBIDDEN_V6)
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_site_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def forbidden_text(address: str) -> bool:
    """is_forbidden_ip for a textual address, ignoring an IPv6 zone ("fe80::1%eth0")."""
    try:
        return is_forbidden_ip(ipaddress.ip_address(address.split("%", 1)[0]))
    except ValueError:
        return True  # not an address we can judge: refuse


def vetted_socket(addr_info: AddrInfo) -> socket.socket:
    """aiohttp's socket factory: the last check, on the very address about to be dialled."""
    family, type_, proto, _, sockaddr = addr_info
    if forbidden_text(str(sockaddr[0])):
        raise TargetRefused()
    return socket.socket(family=family, type=type_, proto=proto)


def user_agent() -> str:
    try:
        version = metadata.version("seqwatch")
    except metadata.PackageNotFoundError:
        version = "0"
    return f"seqwatch/{version}"


class GuardedClient:
    """The HTTP client every HTTP notifier owns: guarded, no redirects, no proxies, no cookies.

    The aiohttp session is opened on first use, inside the running event loop.
    """

    def __init__(
        self,
        *,
        allow_private_network: bool,
        timeout: float,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self._allow_private = allow_private_network
        self._timeout = timeout
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _connector(self) -> aiohttp.TCPConnector:
        from notifiers.aiohttp_guard import guarded_connector

        return guarded_connector(
            allow_private_network=self._allow_private, max_connections=self._max_connections
        )

    def post(
        self, url: str, *, data: bytes, headers: Mapping[str, str]
    ) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        """`async with client.post(...) as response:`; a redirect is returned, never followed."""
        return self._open().post(url, data=data, headers=headers, allow_redirects=False)

    def _open(self) -> aiohttp.ClientSession:
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=self._connector(),
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                headers={"User-Agent": user_agent()},
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,  # no proxy from the environment: it would bypass the guard
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> GuardedClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def guarded_client(
    *, allow_private_network: bool, timeout: float, max_connections: int = MAX_CONNECTIONS
) -> GuardedClient:
    return GuardedClient(
        allow_private_network=allow_private_network,
        timeout=timeout,
        max_connections=max_connections,
    )
