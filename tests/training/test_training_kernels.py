"""The fit runs the same CPU kernels whatever the CPU (training/kernels.py): forcing other ISA levels through the
environment changes no byte of the weights (needs torch)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from training import kernels
from training.config import PROJECT_ROOT

pytest.importorskip("torch")

# two steps of training.train.fit on 64 seeded random frames; prints the sha256 of the weights and the kernels
_FIT = """
import hashlib
import training.train as train
import numpy as np
import torch
from training import dataset
from training.model import BannerNet
which = train.setup_torch()
train.seed_everything(0)
rng = np.random.default_rng(0)
arr = dataset.Arrays(rng.integers(0, 256, (64, 3, 48, 96), dtype=np.uint8), rng.integers(0, 4, 64), ["x"] * 64)
model = BannerNet(4, 48, 96)
train.fit(model, arr, arr, max_epochs=1, patience=1, batch_size=32)
h = hashlib.sha256()
for v in model.state_dict().values():
    h.update(v.contiguous().numpy().tobytes())
print(h.hexdigest(), which)
"""

# what another CPU would pick by itself: the widest kernels, or AVX2 ones; oneDNN on; MKL's own branch
_FORCED = {
    "avx512": {"ATEN_CPU_CAPABILITY": "avx512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE", "MKL_CBWR": "AUTO"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"},
}


# the same without the pin: each library then picks its kernels by the CPU (and the environment)
_UNPINNED = "import training.kernels as k\nk.pin = lambda: True\nk.check = lambda torch: 'unpinned'\n"


def _fit(forced: dict[str, str], pinned: bool = True) -> str:
    code = _FIT if pinned else _UNPINNED + _FIT
    env = {k: v for k, v in os.environ.items() if k not in kernels.PINNED_ENV}
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], cwd=PROJECT_ROOT, env={**env, **forced},
                         capture_output=True, text=True, timeout=300, check=True)
    return out.stdout.strip().splitlines()[-1]


def test_the_fit_gives_the_same_weights_whatever_isa_the_environment_forces() -> None:
    runs = {name: _fit(forced) for name, forced in _FORCED.items()}
    assert runs["avx512"] == runs["avx2"]
    assert runs["avx2"].endswith(kernels.describe())


def test_without_the_pin_the_same_fit_differs() -> None:
    """So the test above can fail: each library left to pick its kernels gives other bytes on another ISA."""
    env = {k: v for k, v in os.environ.items() if k not in kernels.PINNED_ENV}
    probe = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    capability = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120,
                                check=True).stdout.strip()
    if capability != "AVX512":
        pytest.skip(f"this CPU's widest kernels are {capability}: forcing AVX-512 is forcing nothing")
    assert _fit(_FORCED["avx512"], pinned=False) != _fit(_FORCED["avx2"], pinned=False)
