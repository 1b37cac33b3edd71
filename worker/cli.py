"""The `seqwatch` command: the only place that reads the environment, loads config and sets up logs.

Exit status: 0 success, 1 a run-time failure, 2 bad configuration or usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TextIO
from urllib.parse import urlsplit

import structlog
from redis.exceptions import RedisError

from config.settings import Settings, load_settings, resolve_config_path
from worker import commands, logs
from worker.deps import Deps, open_deps
from worker.embedded_redis import EmbeddedRedis
from worker.errors import ConfigError, SeqwatchError
from worker.sources.registry import PROVIDERS

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seqwatch", description="Watch sales-engagement sequences and emit change events."
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="config file (default: $SEQWATCH_CONFIG or ./seqwatch.toml)",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="self-contained tour with simulated providers")
    demo.add_argument("--duration", type=float, default=20.0, help="seconds to run (default 20)")
    sub.add_parser("run", help="run the daemon (arq worker: schedules polls and deliveries)")
    poll = sub.add_parser("poll", help="poll sources now, then deliver once")
    poll.add_argument("--source", action="append", default=[], metavar="NAME")
    sub.add_parser("deliver", help="attempt every delivery that is due now, once")
    check = sub.add_parser("check", help="validate config; check Redis, sources, destinations")
    check.add_argument(
        "--send-test", action="store_true", help="post a test event to each destination"
    )
    status = sub.add_parser("status", help="per source and destination health")
    status.add_argument("--json", action="store_true")
    dead = sub.add_parser("dead-letters", help="inspect, replay or drop dead-lettered deliveries")
    dead.add_argument("action", choices=["list", "replay", "drop"])
    dead.add_argument("ids", nargs="*", metavar="EVENT_ID", help="only these event ids")
    dead.add_argument("--destination")
    dead.add_argument("--source")
    dead.add_argument("--type", dest="event_type")
    dead.add_argument("--all", action="store_true", help="replay/drop every matching dead letter")
    reset = sub.add_parser("reset", help="forget a source's stored state (next poll is a baseline)")
    reset.add_argument("--source", required=True, metavar="NAME")
    return parser


SUPERVISE_EVERY_S = 5.0


def _supervise(server: EmbeddedRedis, stop: threading.Event) -> None:
    """Restart the embedded server if it dies (on the same port when it is free)."""
    log = structlog.get_logger("seqwatch.redis")
    while not stop.wait(SUPERVISE_EVERY_S):
        try:
            server.ensure_running()
        except SeqwatchError as exc:
            log.error("embedded_redis_down", error=str(exc))


@contextlib.contextmanager
def redis_url_for(settings: Settings, *, supervise: bool = False) -> Iterator[str]:
    """The configured Redis, else the embedded one under the data dir (shared by processes)."""
    if settings.redis.url is not None:
        yield settings.redis.url.reveal()
        return
    server = EmbeddedRedis(data_dir=settings.redis.data_dir)
    url = server.start()
    stop = threading.Event()
    if supervise:
        threading.Thread(target=_supervise, args=(server, stop), daemon=True).start()
    try:
        yield url
    finally:
        stop.set()
        server.stop()


def _secrets(settings: Settings) -> list[str]:
    found = [s.api_key.reveal() for s in settings.sources]
    for d in settings.destinations:
        found += [x.reveal() for x in d.secrets]
        if d.url is not None:
            found.append(d.url.reveal())
    if settings.redis.url is not None:
        url = settings.redis.url.reveal()
        found.append(url)
        password = urlsplit(url).password
        if password:
            found.append(password)
    return found


def _redis_where(settings: Settings) -> str:
    """host:port (or socket path) of the Redis in use; never its credentials."""
    if settings.redis.url is None:
        return f"the embedded server ({settings.redis.data_dir})"
    parts = urlsplit(settings.redis.url.reveal())
    if parts.scheme == "unix":
        return parts.path
    return f"{parts.hostname}:{parts.port or 6379}"


def _command(
    args: argparse.Namespace, settings: Settings, out: TextIO
) -> Callable[[Deps], Awaitable[int]]:
    match args.command:
        case "poll":
            names = args.source or [s.name for s in settings.sources]
            for name in names:
                settings.source(name)  # unknown name: ConfigError, exit 2
            return lambda deps: commands.poll(deps, names, out)
        case "deliver":
            return lambda deps: commands.deliver(deps, out)
        case "check":
            return lambda deps: commands.check(deps, out, send_test=args.send_test)
        case "status":
            return lambda deps: commands.status(deps, out, as_json=args.json)
        case "reset":
            settings.source(args.source)
            return lambda deps: commands.reset(deps, args.source, out)
        case "dead-letters":
            if args.action != "list" and not (args.ids or args.all):
                raise ConfigError(f"dead-letters {args.action}: name event ids or pass --all")
            return lambda deps: commands.dead_letters(
                deps, out, action=args.action, destination=args.destination,
                source=args.source, event_type=args.event_type, ids=args.ids,
            )  # fmt: skip
    raise ConfigError(f"unknown command {args.command!r}")


async def _with_deps(
    settings: Settings, redis_url: str, body: Callable[[Deps], Awaitable[int]]
) -> int:
    deps = open_deps(settings, redis_url=redis_url)
    try:
        return await body(deps)
    finally:
        await deps.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out, err = sys.stdout, sys.stderr
    if args.command == "demo":
        from worker.demo import run_demo

        logs.configure(level="WARNING")
        return asyncio.run(run_demo(duration=args.duration, out=out))
    settings: Settings | None = None
    try:
        settings = load_settings(
            resolve_config_path(args.config, os.environ), environ=os.environ, providers=PROVIDERS
        )
        logs.configure(secrets=_secrets(settings), level=args.log_level)
        if args.command == "run":
            from worker.daemon import run_daemon

            with redis_url_for(settings, supervise=True) as url:
                asyncio.run(run_daemon(settings, redis_url=url))
            return EXIT_OK
        body = _command(args, settings, out)
        with redis_url_for(settings) as url:
            return asyncio.run(_with_deps(settings, url, body))
    except ConfigError as exc:
        print(f"seqwatch: config error: {exc}", file=err)
        return EXIT_USAGE
    except RedisError as exc:
        where = f" at {_redis_where(settings)}" if settings is not None else ""
        print(f"seqwatch: redis unavailable{where} ({type(exc).__name__})", file=err)
        return EXIT_FAILED
    except SeqwatchError as exc:
        print(f"seqwatch: {exc}", file=err)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def entrypoint() -> None:
    raise SystemExit(main())


if __name__ == "__main__":
    entrypoint()
