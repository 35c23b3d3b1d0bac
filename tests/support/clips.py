"""Replay clips for the end-to-end tests (the generator ships in training/clips.py for the benches)."""

from training.clips import FPS, evening

__all__ = ["FPS", "evening"]
