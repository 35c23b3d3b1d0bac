"""The ``owc`` CLI builds from every command module, and from ``services/`` alone (the Docker image)."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

from services import cli

SERVICE_COMMANDS = {"capture", "inference", "state", "gateway", "run", "demo", "config", "bench"}
BENCHES = ["e2e", "resources", "capture", "inference", "gateway"]  # today's order in `owc bench -h`


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_every_command_module_imports_and_registers() -> None:
    for name in [*cli.COMMAND_MODULES, *cli.OPTIONAL_COMMAND_MODULES]:
        module = importlib.import_module(name)  # a broken module fails here, never skipped
        assert callable(getattr(module, "register", None)) or callable(getattr(module, "register_bench", None)), name
    commands = _commands(cli.build_parser())
    assert set(commands) >= SERVICE_COMMANDS
    benches = _commands(commands["bench"])
    for _, wanted in cli.OPTIONAL_COMMAND_MODULES.values():
        for command in wanted:
            assert command.removeprefix("bench ") in (benches if command.startswith("bench ") else commands)
    assert list(benches) == BENCHES
    # in a checkout the real `owc collect` and benches are there (with their own options), not the stand-ins
    assert "--from-redis" in commands["collect"].format_help()
    assert "--frames" in benches["inference"].format_help()


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


def test_without_training_demo_explains_and_starts_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`owc demo` in the image (services/ only): a sentence and exit 2, not a ModuleNotFoundError."""
    for name in [m for m in sys.modules if m == "training" or m.startswith("training.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "training", None)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        cli.main(["demo", "--once"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "`training` package" in err and "make demo" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # no clip, no Redis data: nothing was started


def test_a_broken_import_inside_an_optional_module_is_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def fake(name: str, package: str | None = None) -> ModuleType:
        if name == "training.cli":
            raise ModuleNotFoundError("No module named 'cv2'", name="cv2")
        return real(name, package)

    monkeypatch.setattr(cli.importlib, "import_module", fake)
    with pytest.raises(ModuleNotFoundError, match="cv2"):
        cli.build_parser()


def test_without_tools_the_service_commands_work_and_the_benches_explain(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # the image has no tools/ either: `owc bench X` is listed and says where it runs
    for name in [m for m in sys.modules if m == "tools" or m.startswith("tools.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tools", None)
    parser = cli.build_parser()
    commands = _commands(parser)
    assert set(commands) >= SERVICE_COMMANDS
    assert list(_commands(commands["bench"])) == BENCHES
    for name in ("capture", "inference", "state", "gateway"):
        assert callable(parser.parse_args([name]).handler)
    assert cli.main(["bench", "inference", "--frames", "200"]) == 2
    err = capsys.readouterr().err
    assert "owc bench inference: the `tools` package is not installed" in err and "make setup" in err


def test_a_broken_import_inside_tools_is_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def fake(name: str, package: str | None = None) -> ModuleType:
        if name == "tools.cli":
            raise ModuleNotFoundError("No module named 'onnx'", name="onnx")
        return real(name, package)

    monkeypatch.setattr(cli.importlib, "import_module", fake)
    with pytest.raises(ModuleNotFoundError, match="onnx"):
        cli.build_parser()


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.build_parser().parse_args(["--version"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("owc ") and "detector vc-" in out


VISION = ("cv2", "numpy", "onnxruntime")

# what each entrypoint loads before it runs (a process that never decodes a frame must not load the
# vision stack: +80 MB RSS each); `owc run`'s keeper loads the standard library alone
_PROBE = """
import contextlib, io, json, sys
from services import cli
entry = sys.argv[1]
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    if entry in ("--version", "--help"):
        cli.main([entry])
    else:
        args = cli.build_parser().parse_args([entry] if entry != "keeper" else [])
        import importlib
        for module in {
            "state": ["services.state.worker"],
            "gateway": ["services.gateway.app", "uvicorn"],
            "actions": ["services.actions.worker", "services.actions.webhooks", "services.actions.obs",
                        "services.actions.chat"],
            "run": ["services.runner.stack", "services.runner.supervisor", "services.runner.embedded_redis"],
        }.get(entry, []):
            importlib.import_module(module)
print(json.dumps(sorted(sys.modules)))
"""


@pytest.mark.parametrize("entry", ["--version", "--help", "state", "gateway", "actions", "run"])
def test_entrypoints_that_decode_no_frame_load_no_vision_stack(entry: str) -> None:
    import json
    import subprocess

    out = subprocess.run([sys.executable, "-c", _PROBE, entry], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    assert not loaded & set(VISION), f"`owc {entry}` loads {sorted(loaded & set(VISION))}"


def test_the_keeper_of_one_process_mode_imports_the_standard_library_only() -> None:
    import json
    import subprocess

    code = ("import json, sys; import services.runner.keeper; "
            "print(json.dumps([m for m in sys.modules if m.split('.')[0] not in sys.stdlib_module_names]))")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(cli.__file__).rsplit("/services/", 1)[0]})
    assert {m.split(".")[0] for m in json.loads(out.stdout)} <= {"services", "__main__"}, out.stdout
