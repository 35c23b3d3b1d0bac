from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from services.common.config.settings import ConfigError, load_settings
from services.common.config.settings_rows import describe_fields


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.upper().startswith("OWC_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def _owc(*args: str, env: dict[str, str] | None = None, cwd: Path) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {k: v for k, v in os.environ.items() if not k.upper().startswith("OWC_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "services", *args], capture_output=True, text=True, env=full_env, cwd=cwd
    )


def test_defaults() -> None:
    s = load_settings().settings
    assert s.capture.interval_ms == 250
    assert (s.capture.image_format, s.capture.width, s.capture.height) == ("jpg", 640, 360)
    assert s.state.required_consecutive == 2 and s.state.cooldown_s == 180
    assert s.gateway.host == "127.0.0.1" and s.gateway.port == 3000


def test_precedence_toml_env_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "owc.toml").write_text("[capture]\ninterval_ms = 500\nfps = 2.0\n")
    loaded = load_settings()
    assert loaded.settings.capture.interval_ms == 500
    assert loaded.sources["capture.interval_ms"].endswith("owc.toml")
    monkeypatch.setenv("OWC_CAPTURE__INTERVAL_MS", "300")
    loaded = load_settings()
    assert loaded.settings.capture.interval_ms == 300
    assert loaded.sources["capture.interval_ms"] == "environment variable OWC_CAPTURE__INTERVAL_MS"
    assert loaded.settings.capture.fps == 2.0  # untouched keys keep their layer
    loaded = load_settings(overrides={"capture.interval_ms": 100})
    assert loaded.settings.capture.interval_ms == 100
    assert loaded.sources["capture.interval_ms"] == "command line"
    assert loaded.sources["capture.quality"] == "default"


def test_config_show_reflects_each_layer(tmp_path: Path) -> None:
    (tmp_path / "owc.toml").write_text('[capture]\ninterval_ms = 500\n[obs]\npassword = "hunter2"\n')
    out = _owc("config", "show", cwd=tmp_path).stdout
    assert "interval_ms = 500" in out and "hunter2" not in out and "**********" in out
    out = _owc("config", "show", cwd=tmp_path, env={"OWC_CAPTURE__INTERVAL_MS": "300"}).stdout
    assert "interval_ms = 300  # environment variable OWC_CAPTURE__INTERVAL_MS" in out
    out = _owc(
        "config", "show", "--set", "capture.interval_ms=100", cwd=tmp_path, env={"OWC_CAPTURE__INTERVAL_MS": "300"}
    ).stdout
    assert "interval_ms = 100  # command line" in out


@pytest.mark.parametrize(
    ("env", "toml", "args", "expected"),
    [
        ({"OWC_CAPTURE__INTERVAL_MS": "abc"}, None, [],
         "capture.interval_ms = 'abc' (from environment variable OWC_CAPTURE__INTERVAL_MS): "
         "Input should be a valid integer"),
        ({}, "[capture]\nquality = 300\n", [], "capture.quality = 300 (from "),
        ({}, "[capture]\nintervall_ms = 5\n", [],
         "owc.toml); did you mean 'capture.interval_ms'?"),
        # one underscore: pydantic-settings would drop it in silence; it is an unknown key like in TOML
        ({"OWC_OBS_PASSWORD": "s3cret-pw"}, None, [],
         "unknown key 'obs_password' (from environment variable OWC_OBS_PASSWORD); did you mean OWC_OBS__PASSWORD?"),
        ({"OWC_GATEWAY__PROT": "3010"}, None, [],
         "unknown key 'gateway.prot' (from environment variable OWC_GATEWAY__PROT); did you mean OWC_GATEWAY__PORT?"),
        ({"OWC_ZZZ": "1"}, None, [], "unknown key 'zzz' (from environment variable OWC_ZZZ); a section and its key"),
        ({}, None, ["--set", "capture.image_format=webp"], "(from command line): Input should be 'jpg' or 'png'"),
        ({}, "not = [valid", [], "is not valid TOML"),
        ({"OWC_OBS__PORT": "0"}, None, [], "obs.port = '0' (from environment variable OWC_OBS__PORT)"),
    ],
)
def test_bad_values_exit_2_with_one_line(
    tmp_path: Path, env: dict[str, str], toml: str | None, args: list[str], expected: str
) -> None:
    if toml is not None:
        (tmp_path / "owc.toml").write_text(toml)
    result = _owc("config", "show", *args, cwd=tmp_path, env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("owc: ")
    assert expected in lines[0]
    assert "Traceback" not in result.stderr
    assert "s3cret-pw" not in result.stderr


def test_owc_variables_that_are_not_settings_are_accepted(tmp_path: Path) -> None:
    """OWC_HOME, OWC_CONFIG and compose's .env variables (OWC_ADMIN_TOKEN, …) are no unknown keys."""
    result = _owc("config", "show", cwd=tmp_path, env={"OWC_HOME": str(tmp_path), "OWC_ADMIN_TOKEN": "x",
                                                       "OWC_HTTP_BIND": "127.0.0.1", "OWC_OBS__PORT": "4456"})
    assert result.returncode == 0, result.stderr
    assert "port = 4456  # environment variable OWC_OBS__PORT" in result.stdout


def test_missing_config_file_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(config="nope.toml")


def test_secret_never_in_error_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OWC_GATEWAY__ADMIN_TOKEN", "s3cret")
    monkeypatch.setenv("OWC_GATEWAY__PORT", "x")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "s3cret" not in str(err.value)


def test_config_save_round_trips(tmp_path: Path) -> None:
    env = {"OWC_OBS__PASSWORD": "hunter2", "OWC_CAPTURE__INTERVAL_MS": "400"}
    result = _owc("config", "save", "saved.toml", "--set", "state.cooldown_s=90", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    path = tmp_path / "saved.toml"
    assert path.stat().st_mode & 0o077 == 0  # has a secret: owner-only
    tomllib.loads(path.read_text())
    again = load_settings(config=path).settings
    original = load_settings(overrides={"obs.password": "hunter2", "capture.interval_ms": 400, "state.cooldown_s": 90})
    assert again == original.settings
    assert again.obs.password is not None and again.obs.password.get_secret_value() == "hunter2"


def test_every_setting_is_documented_in_readme() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for dotted, env, _default, _desc in describe_fields():
        assert f"`{dotted}`" in readme, f"README configuration reference lacks {dotted}"
        assert f"`{env}`" in readme, f"README configuration reference lacks {env}"


def test_set_values_are_text_unless_json_lists(tmp_path: Path) -> None:
    from services.common.cli.cliargs import _parse_value

    assert _parse_value("500") == "500" and _parse_value('["cuda", "cpu"]') == ["cuda", "cpu"]
    loaded = load_settings(overrides={
        "obs.password": _parse_value("123456"),
        "capture.channel": _parse_value("2024"),
        "capture.interval_ms": _parse_value("500"),
        "capture.loop": _parse_value("true"),
        "inference.providers": _parse_value('["cpu"]'),
    }).settings
    assert loaded.obs.password is not None and loaded.obs.password.get_secret_value() == "123456"
    assert loaded.capture.channel == "2024" and loaded.capture.interval_ms == 500 and loaded.capture.loop is True
    out = _owc("config", "show", "--set", "obs.password=123456", "--set", "capture.channel=2024", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert 'channel = "2024"  # command line' in out.stdout


def test_credentials_in_urls_are_masked() -> None:
    from services.common.config.redact import mask_credentials

    assert mask_credentials("redis://:hunter2@db:6379/0") == "redis://:***@db:6379/0"
    assert mask_credentials("rediss://owc:p@ss@db/1") == "rediss://owc:***@db/1"
    assert mask_credentials("connect to redis://tok3n@db:6379 failed") == "connect to redis://***@db:6379 failed"
    assert mask_credentials("redis://127.0.0.1:6390/0 and mail@example.com") == (
        "redis://127.0.0.1:6390/0 and mail@example.com"
    )


def test_config_show_masks_a_password_in_redis_url(tmp_path: Path) -> None:
    import json

    env = {"OWC_REDIS__URL": "redis://owc:Hunter2pw@db.lan:6379/0"}
    out = _owc("config", "show", cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert "Hunter2pw" not in out.stdout + out.stderr
    assert 'url = "redis://owc:***@db.lan:6379/0"' in out.stdout
    shown = json.loads(_owc("config", "show", "--json", cwd=tmp_path, env=env).stdout)
    assert shown["redis.url"]["value"] == "redis://owc:***@db.lan:6379/0"
    # `config save` writes the real URL (it is a config file), readable by its owner only
    assert _owc("config", "save", "saved.toml", cwd=tmp_path, env=env).returncode == 0
    saved = tmp_path / "saved.toml"
    assert saved.stat().st_mode & 0o077 == 0
    assert tomllib.loads(saved.read_text())["redis"]["url"] == env["OWC_REDIS__URL"]


def test_log_lines_mask_credentials_in_urls(capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    from services.common.infra.logs import setup_logging

    setup_logging("INFO")
    log = logging.getLogger("owc.test")
    log.info("using Redis at %s", "redis://:Hunter2pw@db:6379/0")
    try:
        raise ConnectionError("Error connecting to redis://admin:Hunter2pw@db:6379/0")
    except ConnectionError:
        log.exception("Redis is not reachable")
    err = capsys.readouterr().err
    assert "Hunter2pw" not in err
    assert "redis://:***@db:6379/0" in err and "redis://admin:***@db:6379/0" in err


def test_settings_for_child_processes_travel_in_the_environment() -> None:
    from services.common.cli.cliargs import child_environment

    argv, env = child_environment(
        ["--config", "owc.toml", "--set", "gateway.admin_token=s3cret", "--set", "Inference.Providers=[\"cpu\"]",
         "--log-level", "DEBUG", "--set", "obs.password=a=b"]
    )
    assert argv == ["--config", "owc.toml", "--log-level", "DEBUG"]
    assert env == {
        "OWC_GATEWAY__ADMIN_TOKEN": "s3cret",
        "OWC_INFERENCE__PROVIDERS": '["cpu"]',
        "OWC_OBS__PASSWORD": "a=b",
    }


def test_owc_home_holds_the_config_and_the_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """OWC_HOME, else the current folder: owc.toml is found there and relative paths are taken from there."""
    from services.common.config.settings import home, resolve_config_path, under_home

    (tmp_path / "owc.toml").write_text("[capture]\nchannel = \"from-home\"\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert home({}) == elsewhere and resolve_config_path(None, {}) is None
    assert resolve_config_path(None, {"OWC_HOME": str(tmp_path)}) == tmp_path / "owc.toml"
    monkeypatch.setenv("OWC_HOME", str(tmp_path))
    assert under_home(Path("data")) == tmp_path / "data" and under_home(Path("/abs")) == Path("/abs")
    assert load_settings().settings.capture.channel == "from-home"
