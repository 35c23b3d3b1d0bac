"""What every ``owc bench`` prints besides its numbers: the machine, and percentiles."""

from __future__ import annotations

import contextlib
import math
import os
import platform
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine(**extra: Any) -> dict[str, Any]:
    """CPU, cores, versions and the load average *before* the bench adds its own."""
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "os": platform.platform(),
    }
    with contextlib.suppress(OSError):
        info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    info.update(extra)
    return info


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear between closest ranks; NaN when empty."""
    ordered = sorted(float(v) for v in values)
    if not ordered:
        return math.nan
    k = (len(ordered) - 1) * q / 100.0
    lo = math.floor(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)
