"""`seqwatch demo`: simulated provider APIs, the real pipeline, console and a signed webhook."""

from __future__ import annotations

import asyncio
import base64
import secrets
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import TextIO

from config.settings import (
    DestinationSettings,
    DestinationType,
    RedisSettings,
    Secret,
    Settings,
    SourceSettings,
)  # fmt: skip
from notifiers.signing import parse_secret, verify
from worker import demo_world
from worker.demo_accounts import DemoAccount, build_accounts
from worker.deps import Deps, open_deps
from worker.embedded_redis import EmbeddedRedis
from worker.errors import SourceError
from worker.fakes.receiver import WebhookReceiver
from worker.service import run_deliver, run_poll

POLL_EVERY = 1.0
DEMO_RATE = 6000.0  # the simulated APIs have no quota to respect


def _settings(
    *, data_dir: Path, accounts: list[DemoAccount], hook_url: str, secret: str
) -> Settings:
    sources = tuple(
        SourceSettings(
            name=a.source,
            provider=a.provider,
            api_key=Secret(a.api_key),
            base_url=a.server.base_url,
            poll_interval=POLL_EVERY,
            requests_per_minute=DEMO_RATE,
        )
        for a in accounts
    )
    destinations = (
        DestinationSettings(name="console", type=DestinationType.CONSOLE),
        DestinationSettings(name="local-webhook", type=DestinationType.WEBHOOK,
                            url=Secret(hook_url), secrets=(Secret(secret),),
                            allow_private_network=True),
    )  # fmt: skip
    return Settings(
        redis=RedisSettings(url=None, data_dir=data_dir),
        sources=sources,
        destinations=destinations,
        config_path=data_dir / "demo.toml",
    )


async def run_demo(*, duration: float, out: TextIO) -> int:
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    key = parse_secret(secret)
    receiver = WebhookReceiver(
        verify=lambda headers, body: verify(
            key=key, headers=headers, body=body, now=int(time.time())
        )
    )
    accounts, changes = build_accounts()
    for account in accounts:
        account.server.start()
    with tempfile.TemporaryDirectory(prefix="seqwatch-demo-") as tmp:
        redis_server = EmbeddedRedis(data_dir=Path(tmp) / "redis", persistent=False)
        settings = _settings(
            data_dir=Path(tmp), accounts=accounts, hook_url=receiver.start() + "/seqwatch",
            secret=secret,
        )  # fmt: skip
        names = ", ".join(a.provider for a in accounts)
        print(f"seqwatch demo: simulated {names} accounts, embedded Redis,", file=out)
        print(f"console output and a signed webhook receiver; running {duration:.0f} s\n", file=out)
        deps = open_deps(settings, redis_url=redis_server.start(), stream=out)
        try:
            summary = await _tour(deps, changes, duration=duration, out=out)
        finally:
            await deps.aclose()
            redis_server.stop()
            for account in accounts:
                account.server.stop()
            receiver.stop()
    verified = sum(1 for d in receiver.deliveries if d.verified)
    print("\nsummary:", file=out)
    for event_type, count in sorted(summary.items()):
        print(f"  {event_type}: {count}", file=out)
    print(f"  webhook deliveries received: {len(receiver.deliveries)}, "
          f"signature verified: {verified}", file=out)  # fmt: skip
    return 0


async def _cycle(deps: Deps, counts: Counter[str], out: TextIO) -> None:
    """Poll every source once, then deliver what that produced."""
    for name in deps.sources:
        try:
            result = await run_poll(deps, name)
        except SourceError as exc:
            print(f"[{name}] poll failed: {exc}", file=out)
            continue
        counts.update(result.by_type)
        if result.baseline:
            print(f"[{name}] baseline: {result.enrollments} enrollments, no events", file=out)
    for name in deps.destinations:
        await run_deliver(deps, name)


async def _tour(
    deps: Deps, changes: list[demo_world.Change], *, duration: float, out: TextIO
) -> Counter[str]:
    counts: Counter[str] = Counter()
    started = time.monotonic()
    spacing = max(0.5, (duration - 3 * POLL_EVERY) / max(1, len(changes)))
    next_change = started + 2 * POLL_EVERY
    while time.monotonic() - started < duration:
        await _cycle(deps, counts, out)
        while changes and time.monotonic() >= next_change:
            change = changes.pop(0)
            print(f"\n  ~ {change.says}", file=out)
            change.apply()
            next_change += spacing
        await asyncio.sleep(POLL_EVERY)
    await _cycle(deps, counts, out)  # the last change is seen before the summary
    return counts
