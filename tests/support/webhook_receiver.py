"""The webhook receiver the tests use lives in :mod:`tools.webhook_receiver` (the benches start it too)."""

from tools.webhook_receiver import Received, Receiver

__all__ = ["Received", "Receiver"]
