"""Which CPU kernels the fit and the rendering run on: the same on every x86-64 CPU, so ``make train`` gives the same
bytes anywhere.

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

Rendering (the frames, their model inputs, the held-out frames, the pools and the episodes) depends on the CPU too:
OpenCV dispatches to IPP and to SIMD kernels of the CPU's width, NumPy its ufuncs. :func:`pin_render` holds NumPy to
its baseline (set before NumPy is imported, by ``training/__init__`` in a ``python -m training.…`` process),
:func:`rendering` OpenCV to its unoptimised kernels while a frame is drawn. The services and ``owc`` pin nothing:
the detector keeps the kernels it ships with.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
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


# ---------------------------------------------------------------- rendering: the same pixels on every x86-64 CPU

# NumPy dispatches its ufuncs (exp, sin, float loops…) to its widest compiled target the CPU has, read once when
# NumPy is imported: held to its baseline (x86-64-v2) with every dispatched target off
RENDER_ENV: dict[str, str] = {"NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR"}


def pin_render() -> bool:
    """Set :data:`RENDER_ENV` unless NumPy was imported already (it would not see it: then this process renders
    with NumPy's own dispatch, which :func:`render_state` says and the render caches are keyed on). True when
    NumPy will import pinned."""
    if "numpy" in sys.modules:
        return numpy_pinned()
    os.environ.update(RENDER_ENV)
    return True


def training_entry(argv: list[str] | None = None) -> bool:
    """Whether this process was started as ``python -m training.…`` (``make train``, ``make eval``, the tools):
    only those pin NumPy when ``training`` is imported. ``owc`` imports ``training.cli`` before NumPy too, and its
    commands and the services keep NumPy's own kernels."""
    args = list(getattr(sys, "orig_argv", [])) if argv is None else argv
    rest = iter(args[1:])
    for a in rest:
        if a in ("-W", "-X"):  # the interpreter's options that take a value
            next(rest, None)
        elif a.startswith("-m"):
            return (a[2:] or next(rest, "")).startswith("training.")
        elif not a.startswith("-"):  # a script, or -c's code
            return False
    return False


def numpy_dispatch() -> list[str]:
    """The dispatched targets NumPy runs on in this process (empty: its baseline only)."""
    import importlib

    umath: Any = importlib.import_module("numpy._core._multiarray_umath")  # where NumPy reports its dispatch
    return [str(t) for t in umath.__cpu_dispatch__ if umath.__cpu_features__.get(t)]


def numpy_pinned() -> bool:
    return not numpy_dispatch()


def check_render() -> str:
    """Raise unless NumPy runs its baseline only (:func:`pin_render` came after NumPy's import); returns the
    rendering pin's description for the model's JSON."""
    if not numpy_pinned():
        raise KernelPinError(f"NumPy dispatches to {numpy_dispatch()}: it was imported before "
                             "training.kernels.pin_render()")
    return describe_render()


def render_state() -> str:
    """What renders in this process: the part of it that can differ between processes and CPUs (NumPy's
    dispatch), for the render caches' keys. OpenCV is pinned inside :func:`rendering` always."""
    numpy = "numpy baseline" if numpy_pinned() else "numpy " + "+".join(numpy_dispatch())
    return f"{numpy}, opencv unoptimised without IPP"


def describe_render() -> str:
    env = ", ".join(f"{k}={v}" for k, v in RENDER_ENV.items())
    return f"{env}, OpenCV setUseOptimized(False) and IPP off while rendering"


@contextmanager
def rendering() -> Iterator[None]:
    """OpenCV held to its baseline (SSE3) kernels, IPP off, while drawing, resizing and encoding a frame; the
    detector's own OpenCV calls outside keep the optimised kernels the service runs. The flags are per process
    (and IPP's per thread), restored on exit."""
    import cv2

    optimized, ipp, ocl = cv2.useOptimized(), cv2.ipp.useIPP(), cv2.ocl.useOpenCL()
    cv2.setUseOptimized(False)
    cv2.ipp.setUseIPP(False)
    try:
        yield
    finally:
        cv2.setUseOptimized(optimized)  # turns IPP and OpenCL on again with it: restore them as they were
        cv2.ipp.setUseIPP(ipp)
        cv2.ocl.setUseOpenCL(ocl)
