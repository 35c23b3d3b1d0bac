"""Regenerate the configuration reference table in README.md from the settings models.

    .venv/bin/python scripts/config_reference.py        # rewrite README.md in place
    .venv/bin/python scripts/config_reference.py --check  # exit 1 if README is stale
"""

from __future__ import annotations

import sys
from pathlib import Path

from services.common.config.settings_rows import describe_fields

BEGIN = "<!-- config-reference:begin -->"
END = "<!-- config-reference:end -->"


def table() -> str:
    rows = ["| key | environment variable | default | meaning |", "|---|---|---|---|"]
    for dotted, env, default, desc in describe_fields():
        shown = f"`{default}`" if default != "" else ""
        env_shown = f"`{env}`" if env else "(in the list's JSON)"
        rows.append(f"| `{dotted}` | {env_shown} | {shown} | {desc.replace('|', '/')} |")
    return "\n".join(rows)


def main() -> int:
    readme = Path(__file__).resolve().parents[1] / "README.md"
    text = readme.read_text(encoding="utf-8")
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    new = f"{head}{BEGIN}\n{table()}\n{END}{tail}"
    if "--check" in sys.argv:
        return 0 if new == text else 1
    readme.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
