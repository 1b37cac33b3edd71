"""The SSRF guard inside aiohttp: a resolver that vets whole answers, and the connector that
uses it with the vetting socket factory (notifiers.netguard has the address policy)."""

from __future__ import annotations

import socket

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from notifiers.netguard import MAX_CONNECTIONS, TargetRefused, forbidden_text, vetted_socket


class GuardedResolver(AbstractResolver):
    """The system resolver, refusing an answer that holds any forbidden address."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._inner is None:
            self._inner = ThreadedResolver()  # needs the running loop: made on first use
        found = await self._inner.resolve(host, port, family)
        if not found or any(forbidden_text(r["host"]) for r in found):
            raise TargetRefused()
        return found

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()


def guarded_connector(
    *, allow_private_network: bool, max_connections: int = MAX_CONNECTIONS
) -> aiohttp.TCPConnector:
    """Keep-alive pool; guarded unless private targets are allowed. Call inside the loop."""
    if allow_private_network:
        return aiohttp.TCPConnector(limit=max_connections)
    return aiohttp.TCPConnector(
        limit=max_connections,
        resolver=GuardedResolver(),
        socket_factory=vetted_socket,
        # Addresses are tried one after the other, so a refusal is never lost in a race.
        happy_eyeballs_delay=None,
    )
