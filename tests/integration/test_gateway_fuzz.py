"""Schema fuzzing: schemathesis generates requests from the gateway's own OpenAPI and checks the answers.

Every documented operation except the two SSE streams (they never end) is called with a
bounded number of generated requests — valid and invalid bodies, query strings and path
parameters — against a real gateway, a real redis-server and the real `owc state`. A test
fails on any 5xx and on any answer that does not match the schema the OpenAPI documents
for its status code (so the documentation cannot drift from the code either).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error, response_schema_conformance

from services.common.config.settings import Settings
from services.common.contracts.keys import Keys
from services.gateway.app import create_app
from tests.support.gateway import GatewayThread, ServiceProcess, settings_for, start_state
from tests.support.redis_proc import RedisServer

# Examples per operation: 29 operations (31 less the two event streams); the run stays under a minute.
MAX_EXAMPLES = 40
CHANNEL = "fuzzed"
ACTION = "fuzzhook"  # a configured action, so retry/test reach their real code (nothing runs it)


@pytest.fixture(scope="module")
def fuzz_prefix() -> str:
    return f"fz{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def fuzz_state(
    redis_server: RedisServer, fuzz_prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    proc = start_state(tmp_path_factory.mktemp("state"), redis_server.url, fuzz_prefix)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def fuzz_gateway(
    redis_server: RedisServer, fuzz_prefix: str, fuzz_state: ServiceProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayThread]:
    client = redis.Redis.from_url(redis_server.url)
    client.sadd(Keys(fuzz_prefix).channels, CHANNEL)  # a known channel besides `default`
    client.close()
    gw = GatewayThread(
        settings_for(redis_server.url, fuzz_prefix, **{
            "gateway.command_timeout_s": 10,
            "actions.webhooks": [{"url": "http://127.0.0.1:9/hook", "name": ACTION}],
            "actions.twitch.enabled": True,  # the Twitch card routes reach their real code (nothing runs it)
        }),
        tmp_path_factory.mktemp("cfg"),
    ).start()
    yield gw
    gw.stop()


def _flatmap_path_parameters(_ctx: Any, path_parameters: dict[str, Any] | None) -> Any:
    # random channel / action names are all "unknown" (404): reach the real code most of the time
    if path_parameters and "name" in path_parameters:
        return st.sampled_from([path_parameters, {**path_parameters, "name": ACTION}])
    if not path_parameters or "ch" not in path_parameters:
        return st.just(path_parameters)
    known = [{**path_parameters, "ch": "default"}, {**path_parameters, "ch": CHANNEL}]
    return st.sampled_from([path_parameters, *known])


def _schema() -> Any:
    """The OpenAPI of the app itself (building the app does no I/O: Redis opens in its lifespan)."""
    spec = create_app(Settings()).openapi()
    loaded = schemathesis.openapi.from_dict(spec).exclude(path_regex=r"/events$")
    loaded.hook("flatmap_path_parameters")(_flatmap_path_parameters)
    return loaded


schema = _schema()


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_every_operation_answers_per_its_schema_and_never_5xx(case: Any, fuzz_gateway: GatewayThread) -> None:
    case.call_and_validate(
        base_url=fuzz_gateway.url, checks=[not_a_server_error, response_schema_conformance], timeout=30
    )
