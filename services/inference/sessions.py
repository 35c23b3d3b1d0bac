"""onnxruntime session options shared by the gate and the reader."""

from __future__ import annotations

import os
from typing import Any


def onnxruntime() -> Any:
    """The onnxruntime module, with its usage telemetry off unless the user set the variable themselves.

    onnxruntime (1.29 on) reports usage to Microsoft from Linux and macOS too — a thread, a DNS lookup and
    an upload attempt every few seconds, a device id in ~/.cache/Microsoft — unless
    ``ORT_DISABLE_TELEMETRY=1`` is set before it initialises. Every session of the product, the benches
    and training is made through here.
    """
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime as ort

    return ort


def session_options(intra_op_threads: int) -> Any:
    """Options for a small model on a shared PC: few threads, no busy-waiting."""
    ort = onnxruntime()

    so = ort.SessionOptions()
    so.intra_op_num_threads = intra_op_threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # spinning threads burn a core while waiting for work: bad next to a game and OBS
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    so.log_severity_level = 3
    return so
