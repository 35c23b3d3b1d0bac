"""Capture: frames from OBS (obs-websocket 5) or from a replay, published to ``owc:frames``."""
