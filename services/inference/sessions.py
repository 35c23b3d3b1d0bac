"""onnxruntime session options shared by the gate and the reader."""

from __future__ import annotations

from typing import Any


def session_options(intra_op_threads: int) -> Any:
    """Options for a small model on a shared PC: few threads, no busy-waiting."""
    import onnxruntime as ort

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
