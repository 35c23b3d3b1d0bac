"""A real redis-server for the tests: random port, temporary directory, AOF on.

The process handling lives in :mod:`tools.redisproc` (the benches use it
too); this keeps the tests' name and API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis

from tests.support.ports import free_port
from tools.redisproc import RedisProcess


class RedisServer(RedisProcess):
    def __init__(self, workdir: Path, port: int | None = None) -> None:
        try:
            super().__init__(workdir, port or free_port())
        except RuntimeError:
            raise RuntimeError(
                "redis-server is not installed: run `make test` (it installs it) "
                "or `apt-get install redis-server`"
            ) from None


def counting_pipelines(client: redis.Redis) -> list[object]:
    """Every pipeline the client makes from now on (each is one round trip)."""
    made: list[object] = []
    real = client.pipeline

    def pipeline(*args: Any, **kwargs: Any) -> Any:
        made.append(args)
        return real(*args, **kwargs)

    client.pipeline = pipeline  # type: ignore[method-assign]
    return made
