"""What docs/architecture.md says about the imports, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

SERVICES = Path(__file__).resolve().parents[2] / "services"
PIPELINE = ("capture", "inference", "state", "gateway", "actions")


def imported_modules(package: str) -> dict[str, set[str]]:
    """Every ``services.*`` / ``training`` / ``tools`` module the package's files import, by file."""
    out: dict[str, set[str]] = {}
    for path in sorted((SERVICES / package).rglob("*.py")):
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            found |= {n for n in names if n.split(".")[0] in ("services", "training", "tools")}
        out[str(path.relative_to(SERVICES.parent))] = found
    return out


def test_the_services_share_only_services_common() -> None:
    for package in PIPELINE:
        for path, modules in imported_modules(package).items():
            foreign = {m for m in modules if not m.startswith((f"services.{package}", "services.common"))}
            assert not foreign, f"{path} imports {sorted(foreign)}: services share only services/common"


def test_common_holds_no_service_and_no_counting_domain() -> None:
    for path, modules in imported_modules("common").items():
        foreign = {m for m in modules if not m.startswith("services.common")}
        assert not foreign, f"{path} imports {sorted(foreign)}"
    # the counting domain (machine, fold, summaries from the log) is the state service's own
    for name in ("machine.py", "fold.py", "history.py"):
        assert not (SERVICES / "common" / name).exists() and (SERVICES / "state" / name).exists()


def test_the_gateway_reads_session_summaries_and_never_folds_the_log() -> None:
    for path, modules in imported_modules("gateway").items():
        assert not any(m.startswith("services.state") for m in modules), path
        text = (SERVICES.parent / path).read_text(encoding="utf-8")
        assert "summarize_sessions" not in text and "fold(" not in text, path


# services/common's folders, each importing only those before it (docs/architecture.md)
COMMON_ORDER = ("contracts", "config", "infra", "cli")
# action_records describes the configured actions for the admin page from the actions settings
COMMON_EXCEPTIONS = {("services/common/contracts/action_records.py", "services.common.config.sections")}


def test_common_is_folders_each_importing_only_those_before_it() -> None:
    common = SERVICES / "common"
    assert sorted(p.name for p in common.glob("*.py")) == ["__init__.py"], "a module of common belongs in a folder"
    assert sorted(p.name for p in common.iterdir() if (p / "__init__.py").exists()) == sorted(COMMON_ORDER)
    for rank, folder in enumerate(COMMON_ORDER):
        allowed = tuple(f"services.common.{f}" for f in COMMON_ORDER[: rank + 1])
        for path, modules in imported_modules(f"common/{folder}").items():
            later = {m for m in modules if not m.startswith(allowed) and (path, m) not in COMMON_EXCEPTIONS}
            assert not later, f"{path} imports {sorted(later)}: {folder}/ imports none of {COMMON_ORDER[rank + 1 :]}"
