"""``owc config show`` and ``owc config save``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import tomli_w

from services.common.cli.cliargs import add_command, fail, load_from_args
from services.common.config.settings import unflatten
from services.common.config.settings_rows import leaf_items


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    config = sub.add_parser("config", help="show or save the effective configuration")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION")
    show = add_command(config_sub, "show", _show, help="print every setting with where its value came from")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    save = add_command(config_sub, "save", _save, help="write the effective configuration as TOML")
    save.add_argument("path", help="file to write (e.g. owc.toml)")
    save.add_argument("--force", action="store_true", help="overwrite an existing file")
    def _usage(_args: argparse.Namespace) -> int:
        config.print_help()
        return 2

    config.set_defaults(handler=_usage)


def _toml_value(value: Any) -> str:
    return tomli_w.dumps({"v": value}).strip()[4:]


def _show(args: argparse.Namespace) -> int:
    loaded = load_from_args(args)
    items = leaf_items(loaded.settings)
    if args.json:
        print(json.dumps({k: {"value": v, "source": loaded.sources.get(k, "default")} for k, v in items}, indent=2))
        return 0
    print(f"# effective configuration (config file: {loaded.config_file or 'none'})")
    section = None
    for key, value in items:
        head, _, leaf = key.rpartition(".")
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for table in value:  # [[actions.webhooks]]: an array of tables
                print(f"\n[[{key}]]  # {loaded.sources.get(key, 'default')}")
                for name, item in table.items():
                    print(f"{name} = {_toml_value(item)}")
            section = key
            continue
        if head != section:
            section = head
            print(f"\n[{section}]")
        shown = "(unset)" if value is None else _toml_value(value)
        print(f"{leaf} = {shown}  # {loaded.sources.get(key, 'default')}")
    return 0


def _save(args: argparse.Namespace) -> int:
    loaded = load_from_args(args)
    path = Path(args.path)
    if path.exists() and not args.force:
        fail(f"{path} exists; pass --force to overwrite it")
    items = leaf_items(loaded.settings, reveal_secrets=True)
    # any value that masking changes is a secret (passwords, tokens, webhook URLs and secrets)
    has_secret = items != leaf_items(loaded.settings)
    data = unflatten({k: v for k, v in items if v is not None})
    text = "# OW Victory Counter configuration, written by `owc config save`\n" + tomli_w.dumps(data)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if has_secret else 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    print(f"wrote {path}" + (" (contains secrets: readable by you only)" if has_secret else ""), file=sys.stderr)
    return 0
