"""Synthetic data, training, export and evaluation of the banner classifier.

Only :mod:`training.train` / :mod:`training.evaluate` / :mod:`training.export`
need PyTorch (the ``train`` extra). The generator (:mod:`training.synth`), the
demo clip (:mod:`training.demo_clip`) and ``owc collect`` (:mod:`training.cli`)
need only numpy, OpenCV, Pillow and onnxruntime.
"""
