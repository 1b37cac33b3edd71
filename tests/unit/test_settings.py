"""config.settings: env: references, defaults, and one clear line per configuration error."""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import fields
from pathlib import Path

import orjson
import pytest

from config.settings import (
    DestinationType,
    Secret,
    Settings,
    SourceSettings,
    load_settings,
    resolve_config_path,
)
from worker.errors import ConfigError

PROVIDERS = ("replyio", "unify", "zendesk_sell", "whippy")
EXAMPLE = Path(__file__).parents[2] / "config" / "seqwatch.example.toml"
API_KEY = "rk_live_TOPSECRET_4242"
WHSEC = "whsec_" + base64.b64encode(b"0123456789abcdef0123").decode()
SLACK_URL = "https://hooks.slack.com/services/T0/B0/SECRETSLACKTOKEN"
ENV = {"API_KEY": API_KEY, "WHSEC": WHSEC, "SLACK_URL": SLACK_URL, "EMPTY": ""}
SECRETS = (API_KEY, WHSEC, SLACK_URL, "SECRETSLACKTOKEN", "hunter2")
SOURCE = '[[sources]]\nname = "a"\nprovider = "replyio"\napi_key = "env:API_KEY"\n'


def load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> Settings:
    path = tmp_path / "seqwatch.toml"
    path.write_text(text)
    return load_settings(path, environ=ENV if environ is None else environ, providers=PROVIDERS)


def error(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, environ)
    message = str(caught.value)
    assert "\n" not in message
    for secret in SECRETS:
        assert secret not in message
    return message


def test_minimal_config_gets_documented_defaults(tmp_path: Path) -> None:
    settings = load(tmp_path, SOURCE)
    (source,) = settings.sources
    assert source == SourceSettings(name="a", provider="replyio", api_key=Secret(API_KEY))
    assert (source.poll_interval, source.full_sync_interval, source.timeout) == (300, 86400, 30)
    assert (source.base_url, source.sequences, source.requests_per_minute) == (None, (), None)
    assert settings.redis.url is None  # embedded
    assert settings.redis.data_dir == tmp_path.resolve() / ".seqwatch"
    assert settings.destinations == ()
    assert settings.config_path == (tmp_path / "seqwatch.toml").resolve()


def test_full_config_resolves_env_references_and_normalizes(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        '[redis]\nurl = "env:REDIS"\ndata_dir = "/var/lib/sw"\n'
        + SOURCE
        + 'base_url = "https://api.reply.io:8443/v4/"\nsequences = [100, "200", 100]\n'
        + "poll_interval = 1.5\nfull_sync_interval = 60\nrequests_per_minute = 50\ntimeout = 5\n"
        + '[[destinations]]\nname = "s"\ntype = "slack"\nurl = "env:SLACK_URL"\n'
        + 'events = ["enrollment.*", "enrollment.replied"]\nsources = ["a"]\n'
        + '[[destinations]]\nname = "w"\ntype = "webhook"\nurl = "http://127.0.0.1:9000/h?x=1"\n'
        + 'secret = ["env:WHSEC", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]\n'
        + "allow_private_network = true\n"
        + '[[destinations]]\nname = "c"\ntype = "console"\njson_lines = true\n',
        {**ENV, "REDIS": "redis://:hunter2@127.0.0.1:6390/2"},
    )
    assert settings.redis.url == Secret("redis://:hunter2@127.0.0.1:6390/2")
    assert settings.redis.data_dir == Path("/var/lib/sw")
    (source,) = settings.sources
    assert source.base_url == "https://api.reply.io:8443/v4"
    assert source.sequences == ("100", "200")
    assert (source.poll_interval, source.full_sync_interval) == (1.5, 60)
    assert (source.requests_per_minute, source.timeout) == (50, 5)
    slack, webhook, console = settings.destinations
    assert slack.type is DestinationType.SLACK
    assert slack.url == Secret(SLACK_URL)
    assert slack.events == ("enrollment.*", "enrollment.replied")
    assert slack.sources == ("a",)
    assert (slack.secrets, slack.allow_private_network, slack.json_lines) == ((), False, False)
    assert webhook.secrets == (Secret(WHSEC), Secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
    assert webhook.events == ("*",)
    assert webhook.allow_private_network is True
    assert console.url is None
    assert console.json_lines is True
    for secret in SECRETS:
        assert secret not in repr(settings)


def test_empty_redis_url_means_embedded(tmp_path: Path) -> None:
    assert load(tmp_path, '[redis]\nurl = "env:EMPTY"\n' + SOURCE).redis.url is None
    assert load(tmp_path, '[redis]\nurl = ""\n' + SOURCE).redis.url is None


def test_data_dir_is_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "etc").mkdir()
    monkeypatch.chdir(tmp_path)
    path = Path("etc/seqwatch.toml")
    path.write_text('[redis]\ndata_dir = "state"\n' + SOURCE)
    settings = load_settings(path, environ=ENV, providers=PROVIDERS)
    assert settings.redis.data_dir == tmp_path.resolve() / "etc" / "state"


def test_settings_source_lookup(tmp_path: Path) -> None:
    settings = load(tmp_path, SOURCE)
    assert settings.source("a").provider == "replyio"
    with pytest.raises(ConfigError, match=r"^unknown source 'b' \(expected one of: a\)$"):
        settings.source("b")


WEBHOOK = '[[destinations]]\nname = "w"\ntype = "webhook"\nurl = "https://x.example/h"\n'
SHORT_SECRET = "whsec_" + base64.b64encode(b"short").decode()

ERROR_CASES = [
    ("[metrics]\nlisten = 9464\n" + SOURCE, "metrics.listen: expected a string, got integer"),
    (
        '[metrics]\nlisten = "localhost"\n' + SOURCE,
        "metrics.listen: expected host:port (e.g. 127.0.0.1:9464), got 'localhost'",
    ),
    ("[metrics]\nport = 1\n" + SOURCE, "metrics.port: unknown key"),
    (
        SOURCE + 'record_url = "https://x.example/{contact}"\n',
        "sources[0].record_url: unknown placeholder {contact} (allowed: {contact_id} "
        "{enrollment_id} {sequence_id})",
    ),
    (
        SOURCE + 'record_url = "ftp://x.example/{contact_id}"\n',
        "sources[0].record_url: expected an http:// or https:// URL template",
    ),
    (SOURCE + "api_token = 1\n", "sources[0].api_token: unknown key (did you mean 'api_key'?)"),
    (
        SOURCE + '[[destinations]]\nname = "d"\nkind = "slack"\n',
        "destinations[0].kind: unknown key",
    ),
    (
        SOURCE + SOURCE.replace('"a"', '"b"').replace("API_KEY", "REPLY_API_KEY"),
        "sources[1].api_key: environment variable REPLY_API_KEY is not set",
    ),
    (
        SOURCE.replace("env:API_KEY", "env:EMPTY"),
        "sources[0].api_key: must not be empty (environment variable EMPTY is empty)",
    ),
    (
        SOURCE.replace("env:API_KEY", "env:not-a-name"),
        "sources[0].api_key: invalid environment reference (expected env:NAME)",
    ),
    (
        SOURCE.replace('"replyio"', '"hubspot"'),
        "sources[0].provider: unknown provider 'hubspot' "
        "(expected one of: replyio, unify, whippy, zendesk_sell)",
    ),
    (SOURCE * 2, "sources[1].name: duplicate name 'a'"),
    (
        SOURCE + '[[destinations]]\nname = "c"\ntype = "console"\n' * 2,
        "destinations[1].name: duplicate name 'c'",
    ),
    (
        SOURCE.replace('"a"', '"a b"'),
        "sources[0].name: invalid name 'a b' (use 1-64 of A-Z a-z 0-9 _ . -)",
    ),
    (
        SOURCE.replace('"a"', '"' + "x" * 65 + '"'),
        f"sources[0].name: invalid name '{'x' * 65}' (use 1-64 of A-Z a-z 0-9 _ . -)",
    ),
    (SOURCE.replace('name = "a"\n', ""), "sources[0].name: required key is missing"),
    (SOURCE.replace('"env:API_KEY"', "42"), "sources[0].api_key: expected a string, got integer"),
    (SOURCE + 'poll_interval = "5"\n', "sources[0].poll_interval: expected a number, got string"),
    (SOURCE + "failure_threshold = 2.5\n", "sources[0].failure_threshold: expected a whole number"),
    (SOURCE + "failure_threshold = 0\n", "sources[0].failure_threshold: must be at least 1"),
    (SOURCE + "poll_interval = true\n", "sources[0].poll_interval: expected a number, got boolean"),
    (SOURCE + "poll_interval = 0.5\n", "sources[0].poll_interval: must be at least 1"),
    (SOURCE + "poll_interval = nan\n", "sources[0].poll_interval: expected a finite number"),
    (SOURCE + "full_sync_interval = 59\n", "sources[0].full_sync_interval: must be at least 60"),
    (SOURCE + "timeout = 0\n", "sources[0].timeout: must be greater than 0"),
    (
        SOURCE + "requests_per_minute = -1\n",
        "sources[0].requests_per_minute: must be greater than 0",
    ),
    (SOURCE + 'sequences = "100"\n', "sources[0].sequences: expected an array, got string"),
    (
        SOURCE + "sequences = [1, 2.5]\n",
        "sources[0].sequences[1]: expected an integer or string, got float",
    ),
    ('redis = "x"\n' + SOURCE, "redis: expected a table, got string"),
    (
        '[redis]\nurl = "http://:hunter2@h:1"\n' + SOURCE,
        "redis.url: expected a redis://, rediss:// or unix:// URL",
    ),
    ('sources = "x"\n', "sources: expected an array, got string"),
    ("sources = [1]\n", "sources[0]: expected a table, got integer"),
    ("", "sources: at least one [[sources]] table is required"),
    (
        SOURCE + '[[destinations]]\nname = "e"\ntype = "email"\n',
        "destinations[0].type: unknown type 'email' (expected one of: slack, webhook, console)",
    ),
    (
        SOURCE + '[[destinations]]\nname = "s"\ntype = "slack"\n',
        "destinations[0].url: required for type 'slack'",
    ),
    (
        SOURCE + '[[destinations]]\nname = "s"\ntype = "slack"\nurl = "ftp://hooks.slack.com/x"\n',
        "destinations[0].url: expected an http:// or https:// URL",
    ),
    (
        SOURCE + '[[destinations]]\nname = "c"\ntype = "console"\nurl = "env:SLACK_URL"\n',
        "destinations[0].url: not allowed for type 'console'",
    ),
    (
        SOURCE + '[[destinations]]\nname = "c"\ntype = "console"\nallow_private_network = true\n',
        "destinations[0].allow_private_network: not allowed for type 'console'",
    ),
    (
        SOURCE + '[[destinations]]\nname = "s"\ntype = "slack"\nurl = "env:SLACK_URL"\n'
        'secret = "env:WHSEC"\n',
        "destinations[0].secret: not allowed for type 'slack'",
    ),
    (
        SOURCE + WEBHOOK + 'secret = "env:WHSEC"\njson_lines = true\n',
        "destinations[0].json_lines: not allowed for type 'webhook'",
    ),
    (
        SOURCE + WEBHOOK + 'secret = "env:WHSEC"\nallow_private_network = "yes"\n',
        "destinations[0].allow_private_network: expected a boolean, got string",
    ),
    (SOURCE + WEBHOOK, "destinations[0].secret: required for type 'webhook'"),
    (
        SOURCE + WEBHOOK + 'secret = "env:API_KEY"\n',
        "destinations[0].secret: expected 'whsec_' followed by base64 of at least 16 bytes",
    ),
    (
        SOURCE + WEBHOOK + 'secret = "whsec_hunter2!!"\n',
        "destinations[0].secret: expected 'whsec_' followed by base64 of at least 16 bytes",
    ),
    (
        SOURCE + WEBHOOK + f'secret = ["env:WHSEC", "{SHORT_SECRET}"]\n',
        "destinations[0].secret[1]: expected 'whsec_' followed by base64 of at least 16 bytes",
    ),
    (
        SOURCE + WEBHOOK + 'secret = ["env:WHSEC", "env:WHSEC", "env:WHSEC"]\n',
        "destinations[0].secret: expected one secret, or a list of 2 while rotating",
    ),
    (
        SOURCE + WEBHOOK + 'secret = "env:WHSEC"\nevents = []\n',
        "destinations[0].events: expected at least one event type or pattern ('*' for all)",
    ),
    (
        SOURCE + WEBHOOK + 'secret = "env:WHSEC"\nsources = ["a", "b"]\n',
        "destinations[0].sources[1]: unknown source 'b' (expected one of: a)",
    ),
]


@pytest.mark.parametrize(("text", "expected"), ERROR_CASES)
def test_each_error_is_one_line_naming_the_key_and_no_secret(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert error(tmp_path, text) == expected


@pytest.mark.parametrize(
    ("pattern", "what"),
    [("enrollment.clicked", "event type"), ("order.*", "pattern")],
)
def test_events_must_match_a_known_type(tmp_path: Path, pattern: str, what: str) -> None:
    text = SOURCE + WEBHOOK + f'secret = "env:WHSEC"\nevents = ["*", "{pattern}"]\n'
    message = error(tmp_path, text)
    assert message.startswith(f"destinations[0].events[1]: unknown {what} '{pattern}'")
    assert "enrollment.step_advanced" in message  # lists the known types


@pytest.mark.parametrize(
    "base_url",
    [
        "ftp://api.reply.io",
        "https://api.reply.io/v4?x=1",
        "https://api.reply.io/#frag",
        "https://user:hunter2@api.reply.io",
        "https:///v4",
        "https://api.reply.io:99999",
        "api.reply.io",
        "https://api reply.io",
    ],
)
def test_base_url_must_be_a_plain_http_url(tmp_path: Path, base_url: str) -> None:
    message = error(tmp_path, SOURCE + f'base_url = "{base_url}"\n')
    assert message.startswith("sources[0].base_url: expected scheme://host[:port][/prefix]")
    assert base_url not in message


def test_invalid_toml_names_the_line(tmp_path: Path) -> None:
    message = error(tmp_path, SOURCE + "poll_interval = = 3\n")
    assert message.startswith("invalid TOML at line 5: ")


def test_unreadable_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"^config file not found: .*nope\.toml$"):
        load_settings(missing, environ={}, providers=PROVIDERS)
    (tmp_path / "latin1.toml").write_bytes(b"# caf\xe9\n" + SOURCE.encode())
    with pytest.raises(ConfigError, match=r"is not UTF-8 text$"):
        load_settings(tmp_path / "latin1.toml", environ=ENV, providers=PROVIDERS)
    with pytest.raises(ConfigError, match=r"^cannot read config file "):
        load_settings(tmp_path, environ=ENV, providers=PROVIDERS)


def test_resolve_config_path_precedence() -> None:
    env = {"SEQWATCH_CONFIG": "/etc/sw.toml"}
    assert resolve_config_path("/x/cli.toml", env) == Path("/x/cli.toml")
    assert resolve_config_path(None, env) == Path("/etc/sw.toml")
    assert resolve_config_path(None, {}) == Path("seqwatch.toml")
    assert resolve_config_path(None, {"SEQWATCH_CONFIG": ""}) == Path("seqwatch.toml")


def test_secret_is_masked_equal_by_value_and_not_serializable() -> None:
    secret = Secret(API_KEY)
    assert repr(secret) == str(secret) == f"{secret}" == "Secret('**********')"
    assert secret.reveal() == API_KEY
    assert secret == Secret(API_KEY)
    assert secret != Secret("other")
    assert secret != API_KEY
    assert len({secret, Secret(API_KEY)}) == 1
    with pytest.raises(TypeError):
        json.dumps({"k": secret})
    with pytest.raises(TypeError):
        orjson.dumps({"k": secret})
    assert copy.deepcopy(secret) is secret
    with pytest.raises(AttributeError):
        secret._value = "x"


def test_example_config_is_valid_and_documents_every_key(tmp_path: Path) -> None:
    environ = {
        "REDIS_URL": "redis://127.0.0.1:6390/0",
        "REPLY_API_KEY": "k1",
        "UNIFY_API_KEY": "k2",
        "SLACK_WEBHOOK_URL": SLACK_URL,
        "SEQWATCH_WEBHOOK_SECRET": WHSEC,
    }
    settings = load_settings(EXAMPLE, environ=environ, providers=PROVIDERS)
    assert [s.provider for s in settings.sources] == ["replyio", "unify"]
    assert [d.type for d in settings.destinations] == ["slack", "webhook", "console"]
    assert settings.redis.data_dir == EXAMPLE.parent.resolve() / ".seqwatch"
    text = EXAMPLE.read_text()
    keys = {f.name for f in fields(SourceSettings)} | {"url", "data_dir", "type", "secret"}
    keys |= {"events", "sources", "allow_private_network", "json_lines", "listen"}
    for key in keys:
        assert f"\n{key} = " in text, key
    assert settings.metrics is not None
    assert (settings.metrics.host, settings.metrics.port) == ("127.0.0.1", 9464)
    assert settings.sources[0].label == "Reply EMEA"
    assert settings.sources[0].record_url is not None
    with pytest.raises(
        ConfigError, match=r"^redis\.url: environment variable REDIS_URL is not set$"
    ):
        load_settings(EXAMPLE, environ={}, providers=PROVIDERS)


@pytest.mark.parametrize(
    ("extra", "ok"),
    [("", False), ("allow_http = true\n", True), ("allow_private_network = true\n", True)],
)
def test_plain_http_destinations_need_an_opt_in(tmp_path: Path, extra: str, ok: bool) -> None:
    text = (
        '[[sources]]\nname = "a"\nprovider = "replyio"\napi_key = "k"\n'
        '[[destinations]]\nname = "d"\ntype = "slack"\nurl = "env:HOOK"\n' + extra
    )
    env = {"HOOK": "http://hooks.example.com/T0/B0/xyzSECRET"}
    if ok:
        assert load(tmp_path, text, env).destinations[0].url is not None
    else:
        message = error(tmp_path, text, env)
        assert message.startswith("destinations[0].url: https is required")
        assert "xyzSECRET" not in message


@pytest.mark.parametrize("version", ["auto", "v3", "v4"])
def test_replyio_api_version_is_chosen_per_source(tmp_path: Path, version: str) -> None:
    (source,) = load(tmp_path, SOURCE + f'api_version = "{version}"\n').sources
    assert source.api_version == version
    (default,) = load(tmp_path, SOURCE).sources
    assert default.api_version == "auto"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            SOURCE + 'api_version = "v5"\n',
            "sources[0].api_version: expected one of 'auto', 'v3', 'v4', got 'v5'",
        ),
        (
            SOURCE.replace("replyio", "unify") + 'api_version = "v3"\n',
            "sources[0].api_version: only allowed for provider 'replyio'",
        ),
        (SOURCE + "api_version = 3\n", "sources[0].api_version: expected a string, got integer"),
    ],
)
def test_api_version_errors_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    assert error(tmp_path, text) == expected


def _webhook(extra: str, *, kind: str = "webhook") -> str:
    secret = f'secret = "{WHSEC}"\n' if kind == "webhook" else ""
    return (
        '[[sources]]\nname = "a"\nprovider = "replyio"\napi_key = "k"\n'
        f'[[destinations]]\nname = "d"\ntype = "{kind}"\nurl = "https://hooks.example.com/x"\n'
        + secret
        + extra
    )


def test_webhook_concurrency_defaults_to_8_and_is_configurable(tmp_path: Path) -> None:
    assert load(tmp_path, _webhook(""), {}).destinations[0].concurrency == 8
    assert load(tmp_path, _webhook("concurrency = 32\n"), {}).destinations[0].concurrency == 32


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("0", "must be between 1 and 100"),
        ("101", "must be between 1 and 100"),
        ("2.5", "expected an integer, got float"),
        ("true", "expected an integer, got boolean"),
        ('"8"', "expected an integer, got string"),
    ],
)
def test_bad_concurrency_names_the_key(tmp_path: Path, value: str, problem: str) -> None:
    message = error(tmp_path, _webhook(f"concurrency = {value}\n"), {})
    assert message == f"destinations[0].concurrency: {problem}"


def test_concurrency_is_for_webhooks_only(tmp_path: Path) -> None:
    message = error(tmp_path, _webhook("concurrency = 4\n", kind="slack"), {})
    assert message == "destinations[0].concurrency: not allowed for type 'slack'"


def test_worker_max_jobs_defaults_to_100_and_is_configurable(tmp_path: Path) -> None:
    assert load(tmp_path, SOURCE).worker.max_jobs == 100
    assert load(tmp_path, SOURCE + "[worker]\nmax_jobs = 250\n").worker.max_jobs == 250


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("max_jobs = 0", "max_jobs: must be between 1 and 1000"),
        ("max_jobs = 1001", "max_jobs: must be between 1 and 1000"),
        ("max_jobs = 2.5", "max_jobs: expected an integer, got float"),
        ('max_jobs = "many"', "max_jobs: expected an integer, got string"),
        ("max_jobs = true", "max_jobs: expected an integer, got boolean"),
        ("max_job = 10", "max_job: unknown key (did you mean 'max_jobs'?)"),
    ],
)
def test_bad_worker_table_names_the_key(tmp_path: Path, line: str, problem: str) -> None:
    assert error(tmp_path, SOURCE + f"[worker]\n{line}\n") == f"worker.{problem}"


def test_worker_must_be_a_table(tmp_path: Path) -> None:
    assert error(tmp_path, SOURCE.replace("[[sources]]", "worker = 3\n[[sources]]")) == (
        "worker: expected a table, got integer"
    )
