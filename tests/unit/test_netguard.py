"""SSRF guard: the address table, and the connect-time check against a real local server."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import httpcore
import httpx
import pytest

from notifiers.netguard import (
    GuardedBackend,
    TargetRefused,
    guarded_client,
    guarded_transport,
    is_forbidden_ip,
)
from tests.integration._http_receiver import Canned, Receiver, running_receiver

FORBIDDEN = [
    "127.0.0.1",
    "127.255.255.254",
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "169.254.0.1",
    "100.64.0.1",  # CGNAT
    "100.127.255.254",
    "0.0.0.0",  # noqa: S104 (an address under test, not a bind)
    "0.1.2.3",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.0.8",
    "192.0.2.10",
    "198.18.0.1",
    "::",
    "::1",
    "fe80::1",
    "fc00::1",
    "fd12:3456:789a::1",
    "fd00:ec2::254",  # AWS metadata over IPv6
    "fec0::1",
    "ff02::1",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::127.0.0.1",  # IPv4-compatible (deprecated)
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "64:ff9b:1::1",  # local-use NAT64
    "2001:db8::1",
]
ALLOWED = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "172.15.255.255",  # just below 172.16/12
    "172.32.0.1",  # just above
    "100.63.255.255",  # just below CGNAT
    "100.128.0.1",
    "169.253.255.255",
    "11.0.0.1",
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200e",
    "::ffff:8.8.8.8",
    "2002:808:808::1",  # 6to4 of 8.8.8.8
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8
]


@pytest.mark.parametrize("address", FORBIDDEN)
def test_forbidden_addresses(address: str) -> None:
    assert is_forbidden_ip(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address: str) -> None:
    assert not is_forbidden_ip(ipaddress.ip_address(address))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


async def _get(url: str, *, allow_private_network: bool) -> httpx.Response:
    transport = guarded_transport(allow_private_network=allow_private_network)
    async with httpx.AsyncClient(transport=transport, timeout=5) as client:
        return await client.get(url)


async def test_loopback_target_refused_unless_allowed(receiver: Receiver) -> None:
    with pytest.raises(TargetRefused, match="private network"):
        await _get(receiver.url + "/x", allow_private_network=False)
    assert receiver.requests == []

    response = await _get(receiver.url + "/x", allow_private_network=True)
    assert response.status_code == 200
    assert [r.path for r in receiver.requests] == ["/x"]


async def test_hostname_resolving_to_loopback_is_refused(receiver: Receiver) -> None:
    with pytest.raises(TargetRefused):
        await _get(f"http://localhost:{receiver.port}/", allow_private_network=False)
    assert receiver.requests == []


async def test_hostname_allowed_when_private_network_is_allowed(receiver: Receiver) -> None:
    response = await _get(f"http://localhost:{receiver.port}/ok", allow_private_network=True)
    assert response.status_code == 200
    assert receiver.requests[-1].path == "/ok"


@pytest.mark.parametrize("host", ["[::ffff:127.0.0.1]", "[::1]", "0.0.0.0", "169.254.169.254"])  # noqa: S104
async def test_literal_private_addresses_refused_before_connecting(
    receiver: Receiver, host: str
) -> None:
    with pytest.raises(TargetRefused):
        await _get(f"http://{host}:{receiver.port}/", allow_private_network=False)
    assert receiver.requests == []


async def test_https_target_is_checked_before_tls(receiver: Receiver) -> None:
    with pytest.raises(TargetRefused):
        await _get(f"https://localhost:{receiver.port}/", allow_private_network=False)


async def test_unresolvable_host_is_a_connect_error_without_the_host() -> None:
    with pytest.raises(httpx.ConnectError) as info:
        await _get("http://no-such-host.invalid/", allow_private_network=False)
    assert "no-such-host" not in str(info.value)


async def test_guarded_client_sends_user_agent_and_does_not_follow_redirects(
    receiver: Receiver,
) -> None:

    receiver.reply(Canned(status=302, headers=(("Location", receiver.url + "/next"),)))
    async with guarded_client(allow_private_network=True, timeout=5) as client:
        response = await client.get(receiver.url + "/start")
    assert response.status_code == 302
    assert [r.path for r in receiver.requests] == ["/start"]
    assert receiver.requests[0].headers["user-agent"].startswith("seqwatch/")


class _RecordingBackend(httpcore.AsyncNetworkBackend):
    """Stands in for the real backend to show which host the guard connects to."""

    def __init__(self) -> None:
        self.hosts: list[str] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: object = None,
    ) -> httpcore.AsyncNetworkStream:
        self.hosts.append(host)
        return httpcore.AsyncNetworkStream()


async def test_guard_connects_to_the_vetted_address_only() -> None:
    inner = _RecordingBackend()
    guard = GuardedBackend(allow_private_network=False, inner=inner)
    await guard.connect_tcp("93.184.216.34", 443, timeout=1)
    with pytest.raises(TargetRefused):
        await guard.connect_tcp("10.1.2.3", 443, timeout=1)
    with pytest.raises(TargetRefused):
        await guard.connect_unix_socket("/var/run/docker.sock")
    assert inner.hosts == ["93.184.216.34"]


async def test_allowed_guard_passes_the_host_through() -> None:
    inner = _RecordingBackend()
    guard = GuardedBackend(allow_private_network=True, inner=inner)
    await guard.connect_tcp("localhost", 80, timeout=1)
    assert inner.hosts == ["localhost"]
