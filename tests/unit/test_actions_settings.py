"""[actions] settings: [[actions.webhooks]] tables from TOML and the environment, shown masked, saved whole."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from services.common.config.settings import load_settings

TOML = """
[[actions.webhooks]]
url = "https://discord.com/api/webhooks/123/DISCORDTOKEN"
preset = "discord"
events = ["detected", "undone"]

[[actions.webhooks]]
name = "sb"
url = "http://127.0.0.1:7474/DoAction"
preset = "streamerbot"
streamerbot_action = "OW result"
secret = "HMACSECRET"

[actions.chat]
enabled = true
nick = "mybot"
token = "oauth:CHATTOKEN"
"""
SECRETS = ("DISCORDTOKEN", "HMACSECRET", "CHATTOKEN")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.upper().startswith("OWC_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def owc(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.upper().startswith("OWC_")} | (env or {})
    return subprocess.run([sys.executable, "-m", "services", *args], capture_output=True, text=True, cwd=cwd,
                          env=full)


def test_webhook_tables_from_toml(tmp_path: Path) -> None:
    (tmp_path / "owc.toml").write_text(TOML)
    s = load_settings().settings
    discord, sb = s.actions.webhooks
    assert (discord.name, discord.preset, discord.events) == ("webhook-1", "discord", ["detected", "undone"])
    assert discord.url.get_secret_value().endswith("DISCORDTOKEN")
    assert (sb.name, sb.streamerbot_action, sb.timeout_s) == ("sb", "OW result", 5.0)
    assert sb.secret is not None and sb.secret.get_secret_value() == "HMACSECRET"
    assert s.actions.chat.enabled and s.actions.chat.nick == "mybot"


def test_webhooks_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OWC_ACTIONS__WEBHOOKS", '[{"url": "http://127.0.0.1:9/x", "events": ["detected"]}]')
    monkeypatch.setenv("OWC_ACTIONS__CHAT__TOKEN", "abc")
    s = load_settings().settings
    assert [w.events for w in s.actions.webhooks] == [["detected"]]
    assert s.actions.chat.token is not None and s.actions.chat.token.get_secret_value() == "abc"


def test_config_show_masks_every_actions_secret_and_stays_toml(tmp_path: Path) -> None:
    (tmp_path / "owc.toml").write_text(TOML)
    result = owc("config", "show", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not any(secret in result.stdout for secret in SECRETS)
    # the [actions] part reads back as TOML: the tables come after every plain key of the section
    shown = tomllib.loads(result.stdout[result.stdout.index("\n[actions]\n"):])
    assert [w["preset"] for w in shown["actions"]["webhooks"]] == ["discord", "streamerbot"]
    assert shown["actions"]["webhooks"][0]["url"] == "**********"


def test_config_save_keeps_the_webhooks_and_is_owner_only(tmp_path: Path) -> None:
    (tmp_path / "owc.toml").write_text(TOML)
    result = owc("config", "save", "saved.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    saved = tmp_path / "saved.toml"
    assert saved.stat().st_mode & 0o077 == 0
    assert load_settings(config=saved).settings == load_settings().settings


def test_config_save_without_secrets_stays_readable(tmp_path: Path) -> None:
    result = owc("config", "save", "plain.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "plain.toml").stat().st_mode & 0o044 == 0o044


def test_chat_enabled_without_a_token_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "owc.toml").write_text('[actions.chat]\nenabled = true\nnick = "bot"\n')
    result = owc("actions", "--set", "redis.url=redis://127.0.0.1:1/0", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "owc: actions.chat.enabled is true but actions.chat.token (the bot account's user token) is empty"
    ]
