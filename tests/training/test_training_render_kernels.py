"""Rendering runs the same kernels whatever the CPU (training/kernels.py): forcing other ISA levels, and OpenCV
without IPP, through the environment changes no byte of a training frame, its model input, a held-out frame, a
pool scene, a live frame of the false-positive run or an episode."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from training import kernels
from training.config import PROJECT_ROOT

# frames of each kind that another CPU renders otherwise when rendering is not pinned (measured on an AVX-512
# machine: of 40 of each, these differ between its own kernels and the x86-64-v2 kernels without IPP below)
_RENDER = """
import hashlib, json
from training import kernels
kernels.pin_render()  # what `python -m training.…` does when it imports training (this is `python -c`)
from training import synth
from training import episode_eval, fp_run, frames
from training.config import preprocess_meta
from training.dataset import to_uint8
from services.inference.vision import preprocess_bytes

def h(b):
    return hashlib.sha256(b).hexdigest()

meta = preprocess_meta()
out = {"state": kernels.render_state()}
for kind, seed, render, indices in (("train", 1, synth.render_sample, (2, 33)), ("val", 2, synth.render_sample, (7,)),
                                    ("hard", 3, synth.render_hard_sample, (0, 7))):
    for i in indices:  # as training.dataset renders the training arrays: the JPEG and its model input
        with kernels.rendering():
            data, w, hh, info = render(seed, i, synth.TRAIN)
            u = to_uint8(preprocess_bytes(data, meta, w, hh), meta)
        out[f"{kind}{i}"] = h(data) + h(u.tobytes())
out["heldout26"] = h(frames._render((1001, 26, "eval", None, None, 0, 100)).data)
pool = [frames._render((2001, i, "eval", "none", (640, 360), 0, 100)) for i in (18, 30)]
out["pool"] = [h(r.data) for r in pool]
out["live"] = h(b"".join(f[0] for _, f in fp_run.timeline(pool, [fp_run.Segment(i, 0, 4, 7) for i in (0, 1)])))
out["episode21"] = h(b"".join(r.data for r in episode_eval._render((4001, 21, 0, "eval"))))
print(json.dumps(out))
"""

# the same without the pin: NumPy imported first keeps its own dispatch, OpenCV its optimised kernels and IPP
_UNPINNED = "import contextlib, numpy\nimport training.kernels as k\nk.rendering = contextlib.nullcontext\n"

_VARS = ("NPY_DISABLE_CPU_FEATURES", "OPENCV_IPP", "OPENCV_CPU_DISABLE")

# what another CPU would pick by itself: this one's widest kernels, or an x86-64-v2 CPU's (SSE4.2) with OpenCV
# built without IPP
_FORCED = {
    "widest": {},
    "x86-64-v2 without IPP": {"OPENCV_IPP": "disabled", "OPENCV_CPU_DISABLE": "AVX512-SKX,AVX2,FP16,AVX",
                              "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR"},
}


def _render(forced: dict[str, str], pinned: bool = True) -> dict[str, object]:
    code = _RENDER if pinned else _UNPINNED + _RENDER
    env = {k: v for k, v in os.environ.items() if k not in _VARS}
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], cwd=PROJECT_ROOT, env={**env, **forced},
                         capture_output=True, text=True, timeout=300, check=True)
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_every_kind_of_frame_renders_the_same_bytes_whatever_isa_the_environment_forces() -> None:
    runs = [_render(forced) for forced in _FORCED.values()]
    assert runs[0] == runs[1]
    assert runs[0]["state"] == "numpy baseline, opencv unoptimised without IPP"


def test_without_the_pin_the_same_frames_differ() -> None:
    """So the test above can fail: NumPy and OpenCV left to pick their kernels render other bytes."""
    env = {k: v for k, v in os.environ.items() if k not in _VARS}
    probe = "import numpy, training.kernels as k; print(' '.join(k.numpy_dispatch()))"
    dispatch = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_ROOT, env=env, capture_output=True,
                              text=True, timeout=120, check=True).stdout.split()
    if not dispatch:
        pytest.skip("NumPy has no kernels wider than x86-64-v2 here: forcing them off is forcing nothing")
    runs = [_render(forced, pinned=False) for forced in _FORCED.values()]
    differ = sorted(k for k in runs[0] if k != "state" and runs[0][k] != runs[1][k])
    assert differ, "the two settings render the same bytes without the pin"
    assert runs[0]["state"] != runs[1]["state"]  # the render caches key on it


def test_only_a_process_started_as_python_m_training_pins_numpy() -> None:
    """``owc`` imports ``training.cli`` before NumPy too: its commands and the services keep NumPy's kernels."""
    assert kernels.training_entry(["python", "-m", "training.train", "--no-eval"])
    assert kernels.training_entry(["python", "-W", "ignore", "-m", "training.evaluate", "--quick"])
    assert kernels.training_entry(["python", "-u", "-mtraining.fp_run"])
    assert not kernels.training_entry(["owc", "scan", "match.mp4"])
    assert not kernels.training_entry(["python", "-m", "pytest", "tests"])
    assert not kernels.training_entry(["python", "-c", "import training", "-m", "training.train"])
    assert not kernels.training_entry(["python", "script.py", "-m", "training.train"])
