"""SSRF guard: outbound HTTP that refuses loopback, private, link-local and metadata targets.

The check runs at connect time, on the addresses we resolved ourselves and then connect to,
so a hostname that re-resolves to 127.0.0.1 after validation (DNS rebinding) cannot slip past.
TLS still verifies the hostname: httpcore passes it to `start_tls` separately.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from importlib import metadata

import httpcore
import httpx
from httpcore import AsyncNetworkBackend, AsyncNetworkStream

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# httpcore's SOCKET_OPTION, which it does not export.
_SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)

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


async def _resolve(host: str, port: int) -> list[str]:
    """Addresses of `host` in resolver order, without duplicates."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise httpcore.ConnectError(f"name resolution failed ({type(exc).__name__})") from None
    found: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in found:
            found.append(address)
    return found


class GuardedBackend(AsyncNetworkBackend):
    """Resolves hosts itself, vets every address, then connects to a vetted IP."""

    def __init__(self, *, allow_private_network: bool, inner: AsyncNetworkBackend) -> None:
        self._allow_private = allow_private_network
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[_SocketOption] | None = None,
    ) -> AsyncNetworkStream:
        if self._allow_private:
            return await self._inner.connect_tcp(
                host, port, timeout, local_address=local_address, socket_options=socket_options
            )
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                addresses = await _resolve(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout("name resolution timed out") from None
        # Refuse when ANY address is forbidden: a mixed answer is a rebinding attempt.
        if not addresses or any(
            is_forbidden_ip(ipaddress.ip_address(a.split("%", 1)[0])) for a in addresses
        ):
            raise TargetRefused()
        last_error: Exception | None = None
        for index, address in enumerate(addresses):
            # One connect timeout overall, shared by the addresses still to try.
            budget = None
            if deadline is not None:
                budget = max(deadline - loop.time(), 0.0) / (len(addresses) - index)
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    budget,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[_SocketOption] | None = None,
    ) -> AsyncNetworkStream:
        if not self._allow_private:
            raise TargetRefused()
        return await self._inner.connect_unix_socket(path, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (request building, error mapping) over a guarded pool."""

    def __init__(self, *, allow_private_network: bool, max_connections: int = 100) -> None:
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=20)
        # No proxies: a proxy would make the connect-time check meaningless.
        ssl_context = httpx.create_ssl_context()
        super().__init__(verify=ssl_context, limits=limits, trust_env=False)
        # Same settings as httpx's own pool, plus the guarded network backend.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(
                allow_private_network=allow_private_network, inner=httpcore.AnyIOBackend()
            ),
        )


def guarded_transport(
    *, allow_private_network: bool, max_connections: int = 100
) -> httpx.AsyncBaseTransport:
    return GuardedTransport(
        allow_private_network=allow_private_network, max_connections=max_connections
    )


def user_agent() -> str:
    try:
        version = metadata.version("seqwatch")
    except metadata.PackageNotFoundError:
        version = "0"
    return f"seqwatch/{version}"


def guarded_client(*, allow_private_network: bool, timeout: float) -> httpx.AsyncClient:
    """The client every HTTP notifier owns: guarded, no redirects, no proxies from the env."""
    return httpx.AsyncClient(
        transport=guarded_transport(allow_private_network=allow_private_network),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": user_agent()},
    )
