"""Logging setup: structlog, JSON off a terminal, secrets redacted, tracebacks without locals.

Libraries that log through the standard library (arq, asyncio, httpx) go through the same
processors (level, timestamp, redaction, JSON) via structlog's ProcessorFormatter.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import TYPE_CHECKING, Any, TextIO

import structlog
from structlog.tracebacks import ExceptionDictTransformer

from worker import redaction
from worker.redaction import REDACTED, Scrubber

if TYPE_CHECKING:
    from config.settings import Settings

_SECRET_KEYS = frozenset({"api_key", "secret", "secrets", "password", "token", "authorization"})
_PLAIN = frozenset({int, float, bool, type(None)})  # `scrub` returns these unchanged


class SecretRedactor:
    """Replaces every known secret value (and values under secret-named keys) in an event."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._scrub = Scrubber(secrets)

    def scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._scrub(value)
        if isinstance(value, dict):
            return {k: REDACTED if k in _SECRET_KEYS else self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        if value is None or isinstance(value, int | float):
            return value
        # Either renderer writes any other value (a set, a path, an object) as its repr: scrub
        # that here, after which nothing would.
        return self._scrub(repr(value))

    def __call__(
        self, logger: Any, method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        scrub_text = self._scrub
        for key, value in list(event_dict.items()):
            kind = type(value)
            if key in _SECRET_KEYS:
                event_dict[key] = REDACTED
            elif kind is str:  # most values: straight to the scrubber
                event_dict[key] = scrub_text(value)
            elif kind not in _PLAIN:  # numbers, flags and None hold no secret: left as they are
                event_dict[key] = self.scrub(value)
        return event_dict


def configured_secrets(settings: Settings) -> list[str]:
    """Every secret the config holds: what `configure` is given for a command's logs."""
    from urllib.parse import urlsplit

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


def configure(
    *,
    secrets: Iterable[str] = (),
    level: str = "INFO",
    stream: TextIO | None = None,
    json: bool | None = None,
) -> None:
    stream = stream or sys.stderr
    as_json = not stream.isatty() if json is None else json
    secrets = list(secrets)
    redaction.configure(secrets)
    redactor = SecretRedactor(secrets)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: list[Any]
    if as_json:
        renderer = [
            structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False)),
            redactor,
            structlog.processors.JSONRenderer(),
        ]
    else:
        renderer = [
            structlog.processors.format_exc_info,
            redactor,
            structlog.dev.ConsoleRenderer(colors=False),
        ]
    structlog.configure(
        processors=[*shared, *renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    _route_stdlib(stream, shared=shared, renderer=renderer)
    sys.excepthook = _log_uncaught


def _log_uncaught(kind: type[BaseException], value: BaseException, tb: Any) -> None:
    """An uncaught exception (a bug) is still one structured, redacted log entry."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)
        return
    structlog.get_logger("seqwatch").critical("uncaught_exception", exc_info=(kind, value, tb))


def _route_stdlib(stream: TextIO, *, shared: list[Any], renderer: list[Any]) -> None:
    """arq, asyncio and httpx log through stdlib logging: same stream, same processors."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(old)
    setattr(handler, _OURS, True)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)  # theirs: quiet unless something is wrong


_OURS = "_seqwatch_handler"
