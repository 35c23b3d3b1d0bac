"""The ``owc`` CLI builds from every command module, and from ``services/`` alone (the Docker image)."""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

import pytest

from services import cli

SERVICE_COMMANDS = {"capture", "inference", "state", "gateway", "run", "demo", "config", "bench"}


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_every_command_module_imports_and_registers() -> None:
    for name in [*cli.COMMAND_MODULES, *cli.OPTIONAL_COMMAND_MODULES]:
        module = importlib.import_module(name)  # a broken module fails here, never skipped
        assert callable(module.register), name
    commands = _commands(cli.build_parser())
    assert set(commands) >= SERVICE_COMMANDS
    for _, wanted in cli.OPTIONAL_COMMAND_MODULES.values():
        assert set(wanted) <= set(commands)
    # in a checkout the real `owc collect` is there (with its own options), not the stand-in
    assert "--from-redis" in commands["collect"].format_help()


def test_without_training_the_service_commands_work_and_collect_explains(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # what the image has: services/ only (None in sys.modules makes `import training…` fail)
    for name in [m for m in sys.modules if m == "training" or m.startswith("training.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "training", None)
    parser = cli.build_parser()
    assert SERVICE_COMMANDS | {"collect"} <= set(_commands(parser))
    for name in ("capture", "inference", "state", "gateway"):
        assert callable(parser.parse_args([name]).handler)
    assert cli.main(["collect", "some.mp4", "--label", "victory"]) == 2
    err = capsys.readouterr().err
    assert "`training` package is not installed" in err and "make setup" in err


def test_a_broken_import_inside_an_optional_module_is_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def fake(name: str, package: str | None = None) -> ModuleType:
        if name == "training.cli":
            raise ModuleNotFoundError("No module named 'cv2'", name="cv2")
        return real(name, package)

    monkeypatch.setattr(cli.importlib, "import_module", fake)
    with pytest.raises(ModuleNotFoundError, match="cv2"):
        cli.build_parser()
