"""Free ports for what the tests start (one helper for the product, the benches and the tests)."""

from services.common.infra.ports import free_port

__all__ = ["free_port"]
