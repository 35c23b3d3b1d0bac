"""Synthetic data, training, export and evaluation of the banner classifier.

Only :mod:`training.train` / :mod:`training.evaluate` / :mod:`training.export`
need PyTorch (the ``train`` extra). The generator (:mod:`training.synth`), the
demo clip (:mod:`training.demo_clip`) and ``owc collect`` (:mod:`training.cli`)
need only numpy, OpenCV, Pillow and onnxruntime.
"""

from training import kernels as _kernels

# before NumPy is imported (`python -m training.…` imports this package first): NumPy's kernels then are the same
# on every x86-64 CPU, so every rendered frame is (training/kernels.py)
if _kernels.training_entry():
    _kernels.pin_render()
