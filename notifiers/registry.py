"""Destination types by name: a new type is one module and one line in NOTIFIER_TYPES."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TextIO

from notifiers.base import Notifier, Pacer
from notifiers.console import ConsoleNotifier
from notifiers.slack import SlackNotifier, SourceDisplay
from notifiers.webhook import WebhookNotifier
from worker.errors import ConfigError


@dataclass(frozen=True, slots=True, kw_only=True)
class NotifierParams:
    """What a destination's config says; url and secrets are kept out of the repr."""

    name: str
    type: str
    url: str | None = field(default=None, repr=False)
    secrets: tuple[str, ...] = field(default=(), repr=False)
    allow_private_network: bool = False
    stream: TextIO | None = None
    json_lines: bool = False
    pacer: Pacer | None = None  # Slack: one message/second per webhook, across workers
    displays: Mapping[str, SourceDisplay] = field(default_factory=dict)  # Slack: by source


def _url(params: NotifierParams) -> str:
    if not params.url:
        raise ConfigError(f"destination {params.name!r}: url is required for {params.type}")
    return params.url


def _webhook(params: NotifierParams) -> Notifier:
    return WebhookNotifier(
        name=params.name,
        url=_url(params),
        secrets=params.secrets,
        allow_private_network=params.allow_private_network,
    )


def _slack(params: NotifierParams) -> Notifier:
    return SlackNotifier(
        name=params.name,
        url=_url(params),
        allow_private_network=params.allow_private_network,
        pacer=params.pacer,
        displays=params.displays,
    )


def _console(params: NotifierParams) -> Notifier:
    return ConsoleNotifier(
        name=params.name, stream=params.stream or sys.stdout, json_lines=params.json_lines
    )


NOTIFIER_TYPES: dict[str, Callable[[NotifierParams], Notifier]] = {
    "webhook": _webhook,
    "slack": _slack,
    "console": _console,
}


def build_notifier(params: NotifierParams) -> Notifier:
    try:
        factory = NOTIFIER_TYPES[params.type]
    except KeyError:
        known = ", ".join(sorted(NOTIFIER_TYPES))
        raise ConfigError(
            f"destination {params.name!r}: type must be one of {known}, not {params.type!r}"
        ) from None
    return factory(params)
