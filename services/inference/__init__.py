"""Inference workers: ONNX classification of frames from Redis Streams."""
