"""SSRF guard: the address table, and the connect-time check against a real local server."""

from __future__ import annotations

import ipaddress
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from notifiers.aiohttp_guard import GuardedResolver
from notifiers.netguard import TargetRefused, guarded_client, is_forbidden_ip, vetted_socket
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


async def _get(url: str, *, allow_private_network: bool) -> int:
    """POST through the notifiers' guarded client (its only request method)."""
    client = guarded_client(allow_private_network=allow_private_network, timeout=5)
    async with client, client.post(url, data=b"{}", headers={}) as response:
        await response.read()
        return response.status


async def test_loopback_target_refused_unless_allowed(receiver: Receiver) -> None:
    with pytest.raises(TargetRefused, match="private network"):
        await _get(receiver.url + "/x", allow_private_network=False)
    assert receiver.requests == []

    assert await _get(receiver.url + "/x", allow_private_network=True) == 200
    assert [r.path for r in receiver.requests] == ["/x"]


async def test_hostname_resolving_to_loopback_is_refused(receiver: Receiver) -> None:
    with pytest.raises(TargetRefused):
        await _get(f"http://localhost:{receiver.port}/", allow_private_network=False)
    assert receiver.requests == []


async def test_hostname_allowed_when_private_network_is_allowed(receiver: Receiver) -> None:
    assert await _get(f"http://localhost:{receiver.port}/ok", allow_private_network=True) == 200
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
    with pytest.raises(aiohttp.ClientConnectorError):
        await _get("http://no-such-host.invalid/", allow_private_network=False)


async def test_guarded_client_sends_user_agent_and_does_not_follow_redirects(
    receiver: Receiver,
) -> None:
    receiver.reply(Canned(status=302, headers=(("Location", receiver.url + "/next"),)))
    assert await _get(receiver.url + "/start", allow_private_network=True) == 302
    assert [r.path for r in receiver.requests] == ["/start"]
    assert receiver.requests[0].headers["user-agent"].startswith("seqwatch/")


class _StubResolver(AbstractResolver):
    """Stands in for the system resolver: answers with fixed addresses, as a rebinder would."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=a, port=port, family=family, proto=0, flags=0)
            for a in self.addresses
        ]

    async def close(self) -> None:
        return None


async def test_resolver_refuses_an_answer_with_any_forbidden_address() -> None:
    public = await GuardedResolver(_StubResolver("93.184.216.34")).resolve("hooks.example", 443)
    assert [r["host"] for r in public] == ["93.184.216.34"]
    for answer in (("10.1.2.3",), ("93.184.216.34", "127.0.0.1"), ("fe80::1%eth0",), ()):
        with pytest.raises(TargetRefused):
            await GuardedResolver(_StubResolver(*answer)).resolve("hooks.example", 443)


async def test_rebinding_hostname_is_refused_at_connect_time(receiver: Receiver) -> None:
    """A name that resolved to a public address earlier and to loopback now never connects."""
    resolver = _StubResolver("93.184.216.34")
    guard = GuardedResolver(resolver)
    await guard.resolve("rebind.example", receiver.port)
    resolver.addresses = ("127.0.0.1",)
    connector = aiohttp.TCPConnector(
        resolver=guard, socket_factory=vetted_socket, happy_eyeballs_delay=None,
        use_dns_cache=False,
    )  # fmt: skip
    async with aiohttp.ClientSession(connector=connector) as session:
        with pytest.raises(TargetRefused):
            await session.get(f"http://rebind.example:{receiver.port}/")
    assert receiver.requests == []


def test_socket_factory_vets_the_address_it_dials() -> None:
    with vetted_socket((socket.AF_INET, socket.SOCK_STREAM, 0, "", ("93.184.216.34", 443))):
        pass
    for sockaddr in (("10.1.2.3", 443), ("::ffff:127.0.0.1", 443, 0, 0)):
        family = socket.AF_INET6 if ":" in sockaddr[0] else socket.AF_INET
        with pytest.raises(TargetRefused):
            vetted_socket((family, socket.SOCK_STREAM, 0, "", sockaddr))


def test_building_a_notifier_does_not_load_aiohttp() -> None:
    """Commands that send nothing (status, check) do not pay for importing the HTTP client."""
    secret = "whsec_" + "c2Vxd2F0Y2gtdGVzdC1zZWNyZXQtMzJieXRlcyE="
    code = (
        "import sys\n"
        "from notifiers.registry import NotifierParams, build_notifier\n"
        f"build_notifier(NotifierParams(name='x', type='webhook', url='https://a.example/x', "
        f"secrets=({secret!r},)))\n"
        "build_notifier(NotifierParams(name='s', type='slack', url='https://a.example/s'))\n"
        "print('aiohttp' in sys.modules)\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    assert done.stdout.strip() == "False"
