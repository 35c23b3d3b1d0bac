"""Which CPU kernels the fit runs on: the same on every x86-64 CPU, so ``make train`` gives the same bytes anywhere.

PyTorch picks its CPU kernels by the CPU it runs on, and kernels of different widths sum in different orders:

- ATen (element-wise ops, reductions: batch norm, the loss, the optimiser) dispatches on the CPU capability
  (``default`` / ``avx2`` / ``avx512``): ``default`` is the code every x86-64 CPU runs;
- oneDNN (the convolutions while ``torch.backends.mkldnn`` is on) generates its kernels for the widest ISA the CPU
  has (``ONEDNN_MAX_CPU_ISA`` caps it); with it off the convolutions are im2col + a matrix product in MKL;
- MKL (those matrix products, the linear layer) takes another code branch on another CPU (and vendor) unless its
  conditional numerical reproducibility is set: ``MKL_CBWR=COMPATIBLE`` is the branch every x86-64 CPU runs.

Measured in docs/training.md#reproducibility (a one-epoch fit on 2560 frames, its weights' sha256 under every
forced ISA level). :func:`pin` must run before torch is imported: ATen, oneDNN and MKL read their settings once.
No torch here.
"""

from __future__ import annotations

import os
import sys
from typing import Any

# set over whatever the environment says: another value is another training
PINNED_ENV: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "default",
    "ONEDNN_MAX_CPU_ISA": "SSE41",
    "MKL_CBWR": "COMPATIBLE",
}
MKLDNN = True  # torch.backends.mkldnn.enabled during the fit


class KernelPinError(RuntimeError):
    pass


def pin() -> bool:
    """Set :data:`PINNED_ENV` in this process (and its children); False when torch was imported already and may
    not see it (:func:`check` then fails the training)."""
    late = "torch" in sys.modules and any(os.environ.get(k) != v for k, v in PINNED_ENV.items())
    os.environ.update(PINNED_ENV)
    return not late


def check(torch: Any) -> str:
    """Apply the runtime switches and verify the pins took; returns their description for the model's JSON."""
    torch.backends.mkldnn.enabled = MKLDNN
    capability = str(torch.backends.cpu.get_cpu_capability())
    if capability != PINNED_ENV["ATEN_CPU_CAPABILITY"].upper():
        raise KernelPinError(f"ATen runs its {capability} kernels, not {PINNED_ENV['ATEN_CPU_CAPABILITY']}: "
                             "torch was imported before training.kernels.pin()")
    return describe()


def describe() -> str:
    env = ", ".join(f"{k}={v}" for k, v in PINNED_ENV.items())
    return f"{env}, oneDNN {'on' if MKLDNN else 'off'}"
