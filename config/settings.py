"""seqwatch.toml (SPEC §3) -> frozen, validated values.

Every problem raises one ConfigError whose single line names the key path
("sources[1].api_key: ...") and never a secret's value. Any string may be "env:NAME".
"""

from __future__ import annotations

import math
import re
import string
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from urllib.parse import SplitResult, urlsplit

from worker.errors import ConfigError

CONFIG_ENV_VAR = "SEQWATCH_CONFIG"
DEFAULT_CONFIG_FILE = "seqwatch.toml"
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # names end up inside Redis keys
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOML_WHERE = re.compile(r"^(?P<msg>.*) \(at line (?P<line>\d+), column (?P<col>\d+)\)$")


class Secret:
    """A secret string: masked in repr/str, equal by value, refused by JSON encoders.

    Deliberately not a dataclass: orjson serializes dataclasses natively and would leak it.
    """

    __slots__ = ("_value",)
    _value: str

    def __init__(self, value: str) -> None:
        object.__setattr__(self, "_value", value)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("Secret is immutable")

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        import hmac  # here, not at import: it loads OpenSSL, which `status` never needs

        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __copy__(self) -> Secret:
        return self  # immutable

    def __deepcopy__(self, memo: object) -> Secret:
        return self


DEFAULT_CONCURRENCY = 8
# `seqwatch run`: jobs (polls and delivery rounds) in flight at once. Polls mostly wait on the
# provider and Redis, so one process runs many; each holds at most one HTTP connection.
DEFAULT_MAX_JOBS = 100
MAX_MAX_JOBS = 1000
MAX_CONCURRENCY = 100  # the webhook client's connection pool


class DestinationType(StrEnum):
    SLACK = "slack"
    WEBHOOK = "webhook"
    CONSOLE = "console"


@dataclass(frozen=True, slots=True, kw_only=True)
class RedisSettings:
    url: Secret | None  # None: run the embedded Redis
    data_dir: Path


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceSettings:
    name: str
    provider: str
    api_key: Secret
    base_url: str | None = None
    poll_interval: float = 300.0
    sequences: tuple[str, ...] = ()
    full_sync_interval: float = 86400.0
    requests_per_minute: float | None = None
    timeout: float = 30.0
    failure_threshold: int = 3  # failed polls in a row before the source counts as failing
    label: str | None = None  # display name for humans (Slack); None: the name
    record_url: str | None = None  # link template: {sequence_id} {contact_id} {enrollment_id}
    api_version: str = "auto"  # replyio only: "auto" | "v3" | "v4"


@dataclass(frozen=True, slots=True, kw_only=True)
class DestinationSettings:
    name: str
    type: DestinationType
    url: Secret | None = None
    secrets: tuple[Secret, ...] = ()
    events: tuple[str, ...] = ("*",)
    sources: tuple[str, ...] = ()
    allow_private_network: bool = False
    json_lines: bool = False
    concurrency: int = DEFAULT_CONCURRENCY  # webhook: deliveries in flight at once


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsSettings:
    """Where `seqwatch run` serves /metrics, /healthz and /readyz."""

    host: str
    port: int


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerSettings:
    """How `seqwatch run` schedules its jobs."""

    max_jobs: int = DEFAULT_MAX_JOBS


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    redis: RedisSettings
    sources: tuple[SourceSettings, ...]
    destinations: tuple[DestinationSettings, ...]
    config_path: Path
    metrics: MetricsSettings | None = None
    worker: WorkerSettings = WorkerSettings()

    def source(self, name: str) -> SourceSettings:
        """The source called `name`; ConfigError (exit 2) for an unknown name."""
        for source in self.sources:
            if source.name == name:
                return source
        known = ", ".join(s.name for s in self.sources)
        raise ConfigError(f"unknown source {name!r} (expected one of: {known})")


def resolve_config_path(cli_value: str | None, environ: Mapping[str, str]) -> Path:
    """--config, else $SEQWATCH_CONFIG, else ./seqwatch.toml."""
    chosen = cli_value or environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_FILE
    return Path(chosen).expanduser()


def load_settings(
    path: Path, *, environ: Mapping[str, str], providers: Collection[str]
) -> Settings:
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_toml_problem(str(exc))) from None
    config_path = path.resolve()
    root = _Table("", document, environ)
    root.only(("redis", "sources", "destinations", "metrics", "worker"))
    redis = _redis(root.table("redis"), base=config_path.parent)
    sources = _unique(tuple(_source(t, providers) for t in root.tables("sources")), "sources")
    if not sources:
        raise ConfigError("sources: at least one [[sources]] table is required")
    names = tuple(s.name for s in sources)
    destinations = tuple(_destination(t, names) for t in root.tables("destinations"))
    return Settings(
        redis=redis,
        sources=sources,
        destinations=_unique(destinations, "destinations"),
        config_path=config_path,
        metrics=_metrics(root.table("metrics")),
        worker=_worker(root.table("worker")),
    )


def _worker(table: _Table) -> WorkerSettings:
    table.only(("max_jobs",))
    return WorkerSettings(
        max_jobs=table.integer("max_jobs", DEFAULT_MAX_JOBS, between=(1, MAX_MAX_JOBS))
    )


def _metrics(table: _Table) -> MetricsSettings | None:
    table.only(("listen",))
    listen = table.optional("listen")
    if listen is None:
        return None
    host, sep, port = listen.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")  # [::1]:9464
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        table.fail("listen", f"expected host:port (e.g. 127.0.0.1:9464), got {listen!r}")
    return MetricsSettings(host=host, port=int(port))


def _toml_problem(message: str) -> str:
    where = _TOML_WHERE.match(message)
    if where:
        return f"invalid TOML at line {where['line']}: {where['msg']} (column {where['col']})"
    return f"invalid TOML: {message}"


def _type_name(value: object) -> str:
    names = {bool: "boolean", int: "integer", float: "float", str: "string"}
    names |= {list: "array", dict: "table"}
    return names.get(type(value), "date/time")


@dataclass(frozen=True, slots=True)
class _Table:
    """One TOML table at a key path; every accessor fails with that path."""

    path: str
    data: Mapping[str, Any]
    environ: Mapping[str, str]

    def fail(self, key: str, problem: str) -> NoReturn:
        raise ConfigError(f"{self.path}.{key}: {problem}" if self.path else f"{key}: {problem}")

    def only(self, allowed: Collection[str]) -> None:
        for key in self.data:
            if key not in allowed:
                from difflib import get_close_matches

                close = get_close_matches(key, list(allowed), n=1)
                self.fail(key, "unknown key" + (f" (did you mean {close[0]!r}?)" if close else ""))

    def forbid(self, key: str, kind: DestinationType) -> None:
        if key in self.data:
            self.fail(key, f"not allowed for type {kind.value!r}")

    def table(self, key: str) -> _Table:
        value = self.data.get(key, {})
        if not isinstance(value, dict):
            self.fail(key, f"expected a table, got {_type_name(value)}")
        return _Table(key, value, self.environ)

    def tables(self, key: str) -> list[_Table]:
        items = self.array(key) or []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                self.fail(f"{key}[{i}]", f"expected a table, got {_type_name(item)}")
        return [_Table(f"{key}[{i}]", item, self.environ) for i, item in enumerate(items)]

    def array(self, key: str) -> list[Any] | None:
        value = self.data.get(key)
        if value is not None and not isinstance(value, list):
            self.fail(key, f"expected an array, got {_type_name(value)}")
        return value

    def string(self, key: str, raw: object) -> str:
        """Type-check one string value (at `key`) and resolve an env: reference."""
        if not isinstance(raw, str):
            self.fail(key, f"expected a string, got {_type_name(raw)}")
        if not raw.startswith("env:"):
            return raw
        var = raw.removeprefix("env:")
        if not _ENV_NAME.fullmatch(var):
            self.fail(key, "invalid environment reference (expected env:NAME)")
        if var not in self.environ:
            self.fail(key, f"environment variable {var} is not set")
        return self.environ[var]

    def optional(self, key: str) -> str | None:
        """A string where empty (or an empty env variable) means omitted."""
        if key not in self.data:
            return None
        return self.string(key, self.data[key]) or None

    def required(self, key: str) -> str:
        if key not in self.data:
            self.fail(key, "required key is missing")
        return self.nonempty(key, self.data[key])

    def nonempty(self, key: str, raw: object) -> str:
        value = self.string(key, raw)
        if not value and isinstance(raw, str):
            env = f" (environment variable {raw[4:]} is empty)" if raw != value else ""
            self.fail(key, "must not be empty" + env)
        return value

    def number(
        self, key: str, default: float, *, minimum: float = 0.0, positive: bool = False
    ) -> float:
        value = self.optional_number(key, minimum=minimum, positive=positive)
        return default if value is None else value

    def optional_number(
        self, key: str, *, minimum: float = 0.0, positive: bool = False
    ) -> float | None:
        if key not in self.data:
            return None
        raw = self.data[key]
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            self.fail(key, f"expected a number, got {_type_name(raw)}")
        value = float(raw)
        if not math.isfinite(value):
            self.fail(key, "expected a finite number")
        if positive and value <= 0:
            self.fail(key, "must be greater than 0")
        if value < minimum:
            self.fail(key, f"must be at least {minimum:g}")
        return value

    def integer(self, key: str, default: int, *, between: tuple[int, int]) -> int:
        raw = self.data.get(key, default)
        if isinstance(raw, bool) or not isinstance(raw, int):
            self.fail(key, f"expected an integer, got {_type_name(raw)}")
        low, high = between
        if not low <= raw <= high:
            self.fail(key, f"must be between {low} and {high}")
        return raw

    def boolean(self, key: str) -> bool:
        raw = self.data.get(key, False)
        if not isinstance(raw, bool):
            self.fail(key, f"expected a boolean, got {_type_name(raw)}")
        return raw


def _redis(table: _Table, *, base: Path) -> RedisSettings:
    table.only(("url", "data_dir"))
    url = table.optional("url")
    if url is not None and _split(url, ("redis", "rediss", "unix")) is None:
        table.fail("url", "expected a redis://, rediss:// or unix:// URL")
    data_dir = Path(table.optional("data_dir") or ".seqwatch").expanduser()
    return RedisSettings(url=Secret(url) if url else None, data_dir=base / data_dir)


def _name(table: _Table) -> str:
    name = table.required("name")
    if not _NAME.fullmatch(name):
        table.fail("name", f"invalid name {name!r} (use 1-64 of A-Z a-z 0-9 _ . -)")
    return name


_Named = TypeVar("_Named", SourceSettings, DestinationSettings)


def _unique(items: tuple[_Named, ...], section: str) -> tuple[_Named, ...]:
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item.name in seen:
            raise ConfigError(f"{section}[{i}].name: duplicate name {item.name!r}")
        seen.add(item.name)
    return items


def _split(url: str, schemes: tuple[str, ...]) -> SplitResult | None:
    """urlsplit(url) when it has one of `schemes` and a host (unix: a path), else None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return None
    if parts.scheme not in schemes or any(c.isspace() for c in url):
        return None
    if parts.scheme == "unix":
        return parts if parts.path else None
    return parts if parts.hostname else None


def _base_url(table: _Table, url: str) -> str:
    parts = _split(url, ("http", "https"))
    if parts is None or "?" in url or "#" in url or "@" in parts.netloc:
        table.fail(
            "base_url",
            "expected scheme://host[:port][/prefix] with http or https "
            "(no query, fragment or credentials)",
        )
    return url.rstrip("/")


_SOURCE_KEYS = (
    *("name", "provider", "api_key", "base_url", "poll_interval", "sequences"),
    *("full_sync_interval", "requests_per_minute", "timeout", "failure_threshold"),
    *("label", "record_url", "api_version"),
)
# Keys only some providers take: key -> (providers, accepted values).
_PROVIDER_KEYS: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "api_version": (("replyio",), ("auto", "v3", "v4")),
}
_RECORD_URL_FIELDS = frozenset({"sequence_id", "contact_id", "enrollment_id"})


def _record_url(table: _Table) -> str | None:
    template = table.optional("record_url")
    if template is None:
        return None
    if _split(template, ("http", "https")) is None:
        table.fail("record_url", "expected an http:// or https:// URL template")
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError:
        table.fail("record_url", "unbalanced { } in the template")
    unknown = sorted(names - _RECORD_URL_FIELDS)
    if unknown:
        allowed = " ".join(f"{{{n}}}" for n in sorted(_RECORD_URL_FIELDS))
        table.fail("record_url", f"unknown placeholder {{{unknown[0]}}} (allowed: {allowed})")
    return template


def _source(table: _Table, providers: Collection[str]) -> SourceSettings:
    table.only(_SOURCE_KEYS)
    name = _name(table)
    provider = table.required("provider")
    if provider not in providers:
        expected = ", ".join(sorted(providers))
        table.fail("provider", f"unknown provider {provider!r} (expected one of: {expected})")
    api_key = Secret(table.required("api_key"))
    base_url = table.optional("base_url")
    threshold = table.number("failure_threshold", 3, minimum=1)
    if threshold != int(threshold):
        table.fail("failure_threshold", "expected a whole number")
    return SourceSettings(
        name=name,
        provider=provider,
        api_key=api_key,
        base_url=None if base_url is None else _base_url(table, base_url),
        poll_interval=table.number("poll_interval", 300.0, minimum=1),
        sequences=_sequences(table),
        full_sync_interval=table.number("full_sync_interval", 86400.0, minimum=60),
        requests_per_minute=table.optional_number("requests_per_minute", positive=True),
        timeout=table.number("timeout", 30.0, positive=True),
        failure_threshold=int(threshold),
        label=table.optional("label"),
        record_url=_record_url(table),
        api_version=_provider_key(table, "api_version", provider) or "auto",
    )


def _provider_key(table: _Table, key: str, provider: str) -> str | None:
    value = table.optional(key)
    if value is None:
        return None
    providers, accepted = _PROVIDER_KEYS[key]
    if provider not in providers:
        table.fail(key, f"only allowed for provider {' or '.join(map(repr, providers))}")
    if value not in accepted:
        table.fail(key, f"expected one of {', '.join(map(repr, accepted))}, got {value!r}")
    return value


def _sequences(table: _Table) -> tuple[str, ...]:
    ids: dict[str, None] = {}  # ordered, de-duplicated
    for i, raw in enumerate(table.array("sequences") or []):
        key = f"sequences[{i}]"
        if isinstance(raw, int) and not isinstance(raw, bool):
            ids[str(raw)] = None
        elif isinstance(raw, str):
            ids[table.nonempty(key, raw)] = None
        else:
            table.fail(key, f"expected an integer or string, got {_type_name(raw)}")
    return tuple(ids)


_DESTINATION_KEYS = (
    *("name", "type", "url", "secret", "events", "sources"),
    *("allow_private_network", "allow_http", "json_lines", "concurrency"),
)


def _destination(table: _Table, source_names: tuple[str, ...]) -> DestinationSettings:
    table.only(_DESTINATION_KEYS)
    name = _name(table)
    raw_type = table.required("type")
    try:
        kind = DestinationType(raw_type)
    except ValueError:
        expected = ", ".join(DestinationType)
        table.fail("type", f"unknown type {raw_type!r} (expected one of: {expected})")
    url = table.optional("url")
    if kind is DestinationType.CONSOLE:
        for key in ("url", "allow_private_network", "allow_http"):
            table.forbid(key, kind)
    else:
        table.forbid("json_lines", kind)
        if url is None:
            table.fail("url", f"required for type {kind.value!r}")
        split = _split(url, ("http", "https"))
        if split is None:
            table.fail("url", "expected an http:// or https:// URL")
        # Plain http is for local receivers (which already opt in) or an explicit choice.
        insecure_ok = table.boolean("allow_private_network") or table.boolean("allow_http")
        if split.scheme == "http" and not insecure_ok:
            table.fail("url", "https is required (set allow_http = true to send over plain http)")
    if kind is not DestinationType.WEBHOOK:
        table.forbid("secret", kind)
        table.forbid("concurrency", kind)
    return DestinationSettings(
        name=name,
        type=kind,
        url=None if url is None else Secret(url),
        secrets=_webhook_secrets(table) if kind is DestinationType.WEBHOOK else (),
        events=_events(table),
        sources=_destination_sources(table, source_names),
        allow_private_network=table.boolean("allow_private_network"),
        json_lines=table.boolean("json_lines"),
        concurrency=_concurrency(table),
    )


def _concurrency(table: _Table) -> int:
    return table.integer("concurrency", DEFAULT_CONCURRENCY, between=(1, MAX_CONCURRENCY))


def _webhook_secrets(table: _Table) -> tuple[Secret, ...]:
    raw = table.data.get("secret")
    if raw is None:
        table.fail("secret", "required for type 'webhook'")
    if isinstance(raw, list):
        if not 1 <= len(raw) <= 2:
            table.fail("secret", "expected one secret, or a list of 2 while rotating")
        items = [(f"secret[{i}]", item) for i, item in enumerate(raw)]
    else:
        items = [("secret", raw)]
    secrets = []
    for key, item in items:
        value = table.nonempty(key, item)
        if not _is_whsec(value):
            table.fail(key, "expected 'whsec_' followed by base64 of at least 16 bytes")
        secrets.append(Secret(value))
    return tuple(secrets)


def _is_whsec(value: str) -> bool:
    if not value.startswith("whsec_"):
        return False
    import base64  # only webhook destinations pay for it
    import binascii

    try:
        return len(base64.b64decode(value.removeprefix("whsec_"), validate=True)) >= 16
    except (binascii.Error, ValueError):
        return False


def _events(table: _Table) -> tuple[str, ...]:
    raw = table.array("events")
    if raw is None:
        return ("*",)
    from worker.events import ALL_EVENT_TYPES  # the event model only when a list names types

    if not raw:
        table.fail("events", "expected at least one event type or pattern ('*' for all)")
    patterns: dict[str, None] = {}
    for i, item in enumerate(raw):
        key = f"events[{i}]"
        pattern = table.nonempty(key, item)
        if not any(fnmatchcase(t, pattern) for t in ALL_EVENT_TYPES):
            what = "pattern" if any(c in pattern for c in "*?[") else "event type"
            known = ", ".join(ALL_EVENT_TYPES)
            table.fail(key, f"unknown {what} {pattern!r} (known types: {known})")
        patterns[pattern] = None
    return tuple(patterns)


def _destination_sources(table: _Table, source_names: tuple[str, ...]) -> tuple[str, ...]:
    names: dict[str, None] = {}
    for i, item in enumerate(table.array("sources") or []):
        name = table.nonempty(f"sources[{i}]", item)
        if name not in source_names:
            expected = ", ".join(source_names)
            table.fail(f"sources[{i}]", f"unknown source {name!r} (expected one of: {expected})")
        names[name] = None
    return tuple(names)
