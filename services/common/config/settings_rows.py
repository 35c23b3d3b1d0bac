"""Every setting as rows: ``(key, value)`` for ``owc config show``, ``(key, env, default, doc)`` for the docs."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, SecretStr

from services.common.config.redact import mask_credentials
from services.common.config.settings import PROJECT_ROOT, Settings, env_var_name


def _table(model: BaseModel, reveal_secrets: bool) -> dict[str, Any]:
    """A model inside a list as a TOML-able dict (unset values left out)."""
    out: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value() if reveal_secrets else "**********"
        elif isinstance(value, Path):
            value = str(value)
        out[name] = value
    return out


def leaf_items(settings: Settings, *, reveal_secrets: bool = False) -> list[tuple[str, Any]]:
    """Every setting as ``(dotted key, JSON-able value)``, secrets masked unless asked.

    Secrets are the ``SecretStr`` settings and credentials inside URLs (``redis.url``).
    """
    items: list[tuple[str, Any]] = []

    def walk(model: BaseModel, prefix: str) -> None:
        for name in type(model).model_fields:
            value = getattr(model, name)
            dotted = f"{prefix}{name}"
            if isinstance(value, BaseModel):
                walk(value, dotted + ".")
            elif isinstance(value, SecretStr):
                items.append((dotted, value.get_secret_value() if reveal_secrets else "**********"))
            elif isinstance(value, list) and any(isinstance(v, BaseModel) for v in value):
                # [[actions.webhooks]]: a list of tables, secrets masked like any other
                items.append((dotted, [_table(v, reveal_secrets) for v in value]))
            elif isinstance(value, Path):
                items.append((dotted, str(value)))
            elif isinstance(value, str) and not reveal_secrets:
                items.append((dotted, mask_credentials(value)))
            else:
                items.append((dotted, value))

    walk(settings, "")
    return items


def describe_fields() -> list[tuple[str, str, str, str]]:
    """``(dotted key, env var, default, description)`` for every setting (docs)."""
    rows: list[tuple[str, str, str, str]] = []

    def walk(model_cls: type[BaseModel], prefix: str, in_list: bool = False) -> None:
        for name, info in model_cls.model_fields.items():
            dotted = f"{prefix}{name}"
            ann = info.annotation
            env = "" if in_list else env_var_name(dotted)  # a table in a list has no variable of its own
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, dotted + ".", in_list)
                continue
            item = get_args(ann)[0] if get_origin(ann) is list and get_args(ann) else None
            if isinstance(item, type) and issubclass(item, BaseModel):
                # a list of tables ([[actions.webhooks]]): one row for the list, one per table key
                rows.append((dotted, env_var_name(dotted), "", (info.description or "") + " Environment: a JSON list."))
                walk(item, dotted + "[].", True)
                continue
            if info.is_required():
                rows.append((dotted, env, "required", info.description or ""))
                continue
            default = info.get_default(call_default_factory=True)
            if isinstance(default, Path):
                with contextlib.suppress(ValueError):
                    default = default.relative_to(PROJECT_ROOT)
            shown = "" if default is None else str(default)
            rows.append((dotted, env, shown, info.description or ""))

    walk(Settings, "")
    return rows
