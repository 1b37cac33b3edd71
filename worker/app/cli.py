"""The `seqwatch` command: the only place that reads the environment, loads config and sets up logs.

Exit status: 0 success, 1 a run-time failure, 2 bad configuration or usage.

Imports are made where a command needs them: `--help` loads argparse only, and `status` loads
the config and a small blocking Redis client (worker/store/redis_lite.py) but no asyncio, redis-py,
HTTP client, provider or notifier (SPEC: it starts in <= 0.25 s).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

from worker.errors import ConfigError, SeqwatchError

if TYPE_CHECKING:
    import threading

    from config.settings import Settings
    from worker.app.deps import Deps
    from worker.store.embedded_redis import EmbeddedRedis

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


# The provider slugs config may name (worker.sources.registry.PROVIDERS, whose import pulls in
# every provider and httpx; a unit test keeps the two equal).
PROVIDER_SLUGS = ("replyio", "unify", "zendesk_sell", "whippy")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class UsageError(ConfigError):
    """A command line that names nothing known, or asks for nothing: exit 2."""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("seqwatch")
    except PackageNotFoundError:
        return "unknown"


class _Version(argparse.Action):
    """--version without importing importlib.metadata for every other command."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        print(f"seqwatch {_version()}")
        parser.exit()


def _level(value: str) -> str:
    level = value.upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(
            f"invalid level {value!r} (choose from {', '.join(x.lower() for x in LOG_LEVELS)})"
        )
    return level


def _global_options(parser: argparse.ArgumentParser, *, default: object) -> None:
    """--config and --log-level, accepted before and after the command."""
    parser.add_argument(
        "--config", metavar="PATH", default=default,
        help="config file (default: $SEQWATCH_CONFIG or ./seqwatch.toml)",
    )  # fmt: skip
    parser.add_argument(
        "--log-level", metavar="LEVEL", type=_level, default=default,
        help="debug, info, warning or error (any case; default info)",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seqwatch", description="Watch sales-engagement sequences and emit change events."
    )
    parser.add_argument("--version", action=_Version)
    _global_options(parser, default=None)
    # After the command they must not reset what was given before it: SUPPRESS keeps it.
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, default=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=summary, parents=[common])

    demo = command("demo", "self-contained tour with simulated providers")
    demo.add_argument("--duration", type=float, default=20.0, help="seconds to run (default 20)")
    command("run", "run the daemon (arq worker: schedules polls and deliveries)")
    poll = command("poll", "poll sources now, then deliver once")
    poll.add_argument("--source", action="append", default=[], metavar="NAME")
    command("deliver", "attempt every delivery that is due now, once")
    check = command("check", "validate config; check Redis, sources, destinations")
    check.add_argument(
        "--send-test", action="store_true", help="post a test event to each destination"
    )
    status = command("status", "per source and destination health")
    status.add_argument("--json", action="store_true")
    dead = command("dead-letters", "inspect, replay or drop dead-lettered deliveries")
    dead.add_argument("action", choices=["list", "replay", "drop"])
    dead.add_argument("ids", nargs="*", metavar="EVENT_ID", help="only these event ids")
    dead.add_argument("--destination")
    dead.add_argument("--source")
    dead.add_argument("--type", dest="event_type")
    dead.add_argument("--all", action="store_true", help="replay/drop every matching dead letter")
    reset = command("reset", "forget a source's stored state (next poll is a baseline)")
    reset.add_argument("--source", required=True, metavar="NAME")
    command("schema", "print the JSON Schema of the event document (no config)")
    return parser


SUPERVISE_EVERY_S = 5.0


def _supervise(server: EmbeddedRedis, stop: threading.Event) -> None:
    """Restart the embedded server if it dies (on the same port when it is free)."""
    import structlog

    log = structlog.get_logger("seqwatch.redis")
    while not stop.wait(SUPERVISE_EVERY_S):
        try:
            server.ensure_running()
        except SeqwatchError as exc:
            log.error("embedded_redis_down", error=str(exc))


@contextmanager
def redis_url_for(settings: Settings, *, supervise: bool = False) -> Iterator[str]:
    """The configured Redis, else the embedded one under the data dir (shared by processes)."""
    if settings.redis.url is not None:
        yield settings.redis.url.reveal()
        return
    import threading

    from worker.store.embedded_redis import EmbeddedRedis

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


def _redis_where(settings: Settings) -> str:
    """host:port (or socket path) of the Redis in use; never its credentials."""
    from urllib.parse import urlsplit

    if settings.redis.url is None:
        return f"the embedded server ({settings.redis.data_dir})"
    parts = urlsplit(settings.redis.url.reveal())
    if parts.scheme == "unix":
        return parts.path
    return f"{parts.hostname}:{parts.port or 6379}"


Body = Callable[[str], Coroutine[Any, Any, int]]  # given the Redis URL, runs the command


def _with_deps(settings: Settings, run: Callable[[Deps], Awaitable[int]]) -> Body:
    async def body(redis_url: str) -> int:
        from worker.app.deps import open_deps

        deps = open_deps(settings, redis_url=redis_url)
        try:
            return await run(deps)
        finally:
            await deps.aclose()

    return body


def _status(settings: Settings, out: TextIO, *, as_json: bool) -> int:
    """Redis only: no HTTP client, provider or notifier is built to read the status, and for
    the URLs seqwatch documents no asyncio or redis-py either (worker/store/redis_lite.py)."""
    from worker.ops import status_report
    from worker.store import redis_lite

    sources = [s.name for s in settings.sources]
    destinations = [d.name for d in settings.destinations]
    with redis_url_for(settings) as url:
        if redis_lite.supports(url):
            client = redis_lite.LiteRedis(url)
            try:
                return status_report.status_lite(
                    client, out, as_json=as_json, sources=sources, destinations=destinations
                )
            finally:
                client.close()
        from redis.exceptions import RedisError

        from worker.app import loop
        from worker.store.redis_conn import connect

        async def body() -> int:
            redis = connect(url)
            try:
                return await status_report.status(
                    redis, out, as_json=as_json, sources=sources, destinations=destinations
                )
            finally:
                await redis.aclose()

        try:
            return loop.run(body())
        except RedisError as exc:
            raise redis_lite.RedisUnavailable(type(exc).__name__, str(exc)) from None


def _known(kind: str, name: str | None, names: Sequence[str]) -> None:
    if name is not None and name not in names:
        raise UsageError(f"unknown {kind} {name!r} (expected one of: {', '.join(names)})")


def _command(args: argparse.Namespace, settings: Settings, out: TextIO) -> Body:
    from worker.app import commands

    match args.command:
        case "poll":
            names = args.source or [s.name for s in settings.sources]
            for name in names:
                settings.source(name)  # unknown name: ConfigError, exit 2
            return _with_deps(settings, lambda deps: commands.poll(deps, names, out))
        case "deliver":
            return _with_deps(settings, lambda deps: commands.deliver(deps, out))
        case "check":
            return _with_deps(
                settings, lambda deps: commands.check(deps, out, send_test=args.send_test)
            )
        case "reset":
            settings.source(args.source)
            return _with_deps(settings, lambda deps: commands.reset(deps, args.source, out))
        case "dead-letters":
            if args.action != "list" and not (args.ids or args.all):
                raise UsageError(f"dead-letters {args.action}: name event ids or pass --all")
            _known("destination", args.destination, [d.name for d in settings.destinations])
            _known("source", args.source, [s.name for s in settings.sources])
            return _with_deps(
                settings,
                lambda deps: commands.dead_letters(
                    deps, out, action=args.action, destination=args.destination,
                    source=args.source, event_type=args.event_type, ids=args.ids,
                ),
            )  # fmt: skip
    raise UsageError(f"unknown command {args.command!r}")


def _print_schema(out: TextIO) -> int:
    import json

    from worker.schema import event_schema

    out.write(json.dumps(event_schema(), indent=2) + "\n")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out, err = sys.stdout, sys.stderr
    log_level = args.log_level or "INFO"
    if args.command == "schema":
        return _print_schema(out)
    if args.command == "demo":
        from worker.app import logs, loop
        from worker.demo.runner import run_demo

        logs.configure(level="WARNING")
        try:
            return loop.run(run_demo(duration=args.duration, out=out))
        except KeyboardInterrupt:  # before the tour's own handler is in place
            return 130
    from config.settings import load_settings, resolve_config_path
    from worker.store.redis_lite import RedisUnavailable

    settings: Settings | None = None
    try:
        settings = load_settings(
            resolve_config_path(args.config, os.environ), environ=os.environ,
            providers=PROVIDER_SLUGS,
        )  # fmt: skip
        if args.command == "status":  # logs nothing; structlog costs a tenth of a second
            return _status(settings, out, as_json=args.json)
        return _run(args, settings, out, log_level=log_level)
    except UsageError as exc:
        print(f"seqwatch: {exc}", file=err)
        return EXIT_USAGE
    except ConfigError as exc:
        print(f"seqwatch: config error: {exc}", file=err)
        return EXIT_USAGE
    except RedisUnavailable as exc:
        where = f" at {_redis_where(settings)}" if settings is not None else ""
        print(f"seqwatch: redis unavailable{where} ({exc.kind})", file=err)
        return EXIT_FAILED
    except SeqwatchError as exc:
        print(f"seqwatch: {exc}", file=err)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace, settings: Settings, out: TextIO, *, log_level: str) -> int:
    """Every command but status and schema: logs configured, then asyncio and redis-py."""
    from redis.exceptions import RedisError

    from worker.app import logs, loop
    from worker.store.redis_lite import RedisUnavailable

    logs.configure(secrets=logs.configured_secrets(settings), level=log_level)
    try:
        if args.command == "run":
            from worker.app.daemon import run_daemon

            with redis_url_for(settings, supervise=True) as url:
                loop.run(run_daemon(settings, redis_url=url))
            return EXIT_OK
        body = _command(args, settings, out)
        with redis_url_for(settings) as url:
            return loop.run(body(url))
    except RedisError as exc:
        raise RedisUnavailable(type(exc).__name__, str(exc)) from None


def entrypoint() -> None:
    raise SystemExit(main())


if __name__ == "__main__":
    entrypoint()
