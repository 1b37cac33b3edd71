"""`seqwatch demo`: simulated provider APIs, the real pipeline, console and a signed webhook."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import signal
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
from worker.app.deps import Deps, open_deps
from worker.app.service import run_deliver, run_poll
from worker.demo import world as demo_world
from worker.demo.accounts import DemoAccount, build_accounts
from worker.demo.fakes.receiver import WebhookReceiver
from worker.errors import SourceError
from worker.store.embedded_redis import EmbeddedRedis

POLL_EVERY = 1.0  # the sources' configured poll_interval (the tour polls on its own pace)
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
    """0 after the full tour; 130 when Ctrl-C ended it early (with the summary so far)."""
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    key = parse_secret(secret)
    receiver = WebhookReceiver(
        verify=lambda headers, body: verify(
            key=key, headers=headers, body=body, now=int(time.time())
        )
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    accounts, changes = build_accounts()
    counts: Counter[str] = Counter()
    for account in accounts:
        account.server.start()
    try:
        with tempfile.TemporaryDirectory(prefix="seqwatch-demo-") as tmp:
            redis_server = EmbeddedRedis(data_dir=Path(tmp) / "redis", persistent=False)
            settings = _settings(
                data_dir=Path(tmp), accounts=accounts, hook_url=receiver.start() + "/seqwatch",
                secret=secret,
            )  # fmt: skip
            names = ", ".join(a.provider for a in accounts)
            print(f"seqwatch demo: simulated {names} accounts, embedded Redis,", file=out)
            print(f"console output and a signed webhook receiver; about {duration:.0f} s "
                  "(Ctrl-C ends it early)\n", file=out)  # fmt: skip
            deps = open_deps(settings, redis_url=redis_server.start(), stream=out)
            try:
                await _tour(deps, changes, counts, duration=duration, out=out, stop=stop)
            finally:
                await deps.aclose()
                redis_server.stop()
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        for account in accounts:
            account.server.stop()
        receiver.stop()
    verified = sum(1 for d in receiver.deliveries if d.verified)
    print("\nsummary" + (" (interrupted)" if stop.is_set() else "") + ":", file=out)
    for event_type, count in sorted(counts.items()):
        print(f"  {event_type}: {count}", file=out)
    print(f"  webhook deliveries received: {len(receiver.deliveries)}, "
          f"signature verified: {verified}", file=out)  # fmt: skip
    return 130 if stop.is_set() else 0


async def _cycle(deps: Deps, counts: Counter[str], out: TextIO) -> int:
    """Poll every source once, then deliver what that produced; returns how many events."""
    events = 0
    for name in deps.sources:
        try:
            result = await run_poll(deps, name)
        except SourceError as exc:
            print(f"[{name}] poll failed: {exc}", file=out)
            continue
        counts.update(result.by_type)
        events += result.events
        if result.baseline:
            print(f"[{name}] baseline: {result.enrollments} enrollments, no events", file=out)
    for name in deps.destinations:
        await run_deliver(deps, name)
    return events


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))


async def _tour(
    deps: Deps,
    changes: list[demo_world.Change],
    counts: Counter[str],
    *,
    duration: float,
    out: TextIO,
    stop: asyncio.Event,
) -> None:
    """Baseline, then each change: narrated, applied, and polled until its events are out,
    so what is said and what is seen stay in step."""
    started = time.monotonic()
    await _cycle(deps, counts, out)
    spacing = max(0.2, (duration - (time.monotonic() - started)) / max(1, len(changes)))
    for n, change in enumerate(changes, start=1):
        if stop.is_set() or time.monotonic() - started >= duration:
            break
        print(f"\n  ~ {change.says}", file=out)
        change.apply()
        # A removal by absence needs two complete listings; anything else shows in one.
        for _ in range(CYCLES_PER_CHANGE):
            if await _cycle(deps, counts, out) or stop.is_set():
                break
        await _pause(stop, started + n * spacing - time.monotonic())


CYCLES_PER_CHANGE = 3
