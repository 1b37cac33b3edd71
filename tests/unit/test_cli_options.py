"""The command line itself: --version, global options anywhere, schema without config."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from worker.app.cli import PROVIDER_SLUGS, build_parser, main
from worker.sources.registry import PROVIDERS
from worker.wording import duration, plural

ROOT = Path(__file__).resolve().parents[2]


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == "seqwatch 0.1.0\n"


@pytest.mark.parametrize(
    ("argv", "level", "config"),
    [
        (["status"], None, None),
        (["--log-level", "debug", "status"], "DEBUG", None),
        (["status", "--log-level", "Warning"], "WARNING", None),
        (["--log-level", "error", "poll", "--log-level", "INFO"], "INFO", None),
        (["--config", "a.toml", "status", "--json"], None, "a.toml"),
        (["status", "--config", "b.toml"], None, "b.toml"),
        (["--config", "a.toml", "--log-level", "debug", "status"], "DEBUG", "a.toml"),
    ],
)
def test_global_options_before_or_after_the_command(
    argv: list[str], level: str | None, config: str | None
) -> None:
    args = build_parser().parse_args(argv)
    assert (args.log_level, args.config) == (level, config)


def test_an_unknown_log_level_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["status", "--log-level", "loud"])
    assert done.value.code == 2
    assert (
        "invalid level 'loud' (choose from debug, info, warning, error)" in capsys.readouterr().err
    )


def test_schema_needs_no_config_and_is_a_valid_2020_12_schema(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "worker.app.cli", "schema"], cwd=tmp_path, capture_output=True,
        text=True, check=False, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    schema = json.loads(done.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    assert not validator.is_valid({"type": "enrollment.replied", "timestamp": "x", "data": {}})
    assert not validator.is_valid({"type": "enrollment.nope", "timestamp": "x", "data": {}})


def test_the_cli_knows_every_provider_without_importing_them() -> None:
    assert set(PROVIDER_SLUGS) == set(PROVIDERS)


@pytest.mark.parametrize(
    ("count", "text"), [(0, "0 pages"), (1, "1 page"), (2, "2 pages"), (1200, "1,200 pages")]
)
def test_plural(count: int, text: str) -> None:
    assert plural(count, "page") == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (89, "89 s"), (90, "2 min"), (3600, "60 min"), (7200, "2 h"), (7500, "2 h 5 min"),
     (3 * 86400, "3 d"), (-30, "30 s")],
)  # fmt: skip
def test_duration(seconds: float, text: str) -> None:
    assert duration(seconds) == text
