"""Pure parts of the gateway: origin checks, stream ids, error sentences."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, ReadOnlyError, ResponseError

from services.common.contracts.streamids import parse_id
from services.common.infra.redisio import persistence_problem, write_refusal
from services.gateway.errors import describe_error, redis_problem
from services.gateway.hub import newer, valid_last_event_id
from services.gateway.security import is_loopback_bind, is_loopback_host, same_origin, security_headers


@pytest.mark.parametrize(
    ("origin", "host", "scheme", "expected"),
    [
        ("http://127.0.0.1:3000", "127.0.0.1:3000", "http", True),
        ("http://localhost:3000", "localhost:3000", "http", True),
        ("http://LOCALHOST:3000", "localhost:3000", "http", True),
        ("http://example.com", "example.com:80", "http", True),
        ("https://example.com", "example.com", "https", True),
        ("http://127.0.0.1:3001", "127.0.0.1:3000", "http", False),
        ("http://localhost:3000", "127.0.0.1:3000", "http", False),
        ("https://127.0.0.1:3000", "127.0.0.1:3000", "http", True),  # TLS proxy: same host and port
        ("https://owc.example", "owc.example", "http", True),  # TLS proxy on 443
        ("http://owc.example:8080", "owc.example", "http", False),
        ("null", "127.0.0.1:3000", "http", False),
        ("", "127.0.0.1:3000", "http", False),
        ("file://", "127.0.0.1:3000", "http", False),
        ("http://127.0.0.1:3000.evil.com", "127.0.0.1:3000", "http", False),
        ("http://[::1]:3000", "[::1]:3000", "http", True),
    ],
)
def test_same_origin(origin: str, host: str, scheme: str, expected: bool) -> None:
    assert same_origin(origin, host, scheme) is expected


def test_loopback_bind() -> None:
    assert is_loopback_bind("127.0.0.1") and is_loopback_bind("::1") and is_loopback_bind("localhost")
    assert is_loopback_bind("127.0.0.2")
    assert not is_loopback_bind("0.0.0.0") and not is_loopback_bind("192.168.1.5")


def test_stream_ids() -> None:
    assert parse_id("1700000000000-3") == (1700000000000, 3)
    assert parse_id("5") == (5, 0)
    for bad in ("", "-", "a-1", "1-", "1-2-3", "1-x", "9" * 50):
        with pytest.raises(ValueError):
            parse_id(bad)
    assert newer("10-1", "10-0") and newer("11-0", "10-9") and not newer("10-0", "10-0")
    assert not newer("9-0", "10-0")
    # ordered numerically, not as text
    assert newer("100-0", "99-0") and newer("5-10", "5-9")
    assert valid_last_event_id(" 12-3 ") == "12-3"
    assert valid_last_event_id("nope") is None and valid_last_event_id(None) is None


def test_error_sentences() -> None:
    assert describe_error({"type": "json_invalid", "loc": ("body", 1), "msg": "x"}) == "the body is not valid JSON"
    assert describe_error({"type": "missing", "loc": ("body",), "msg": "Field required"}) == "a JSON body is required"
    assert describe_error({"type": "extra_forbidden", "loc": ("body", "x"), "msg": "?"}) == "unknown field 'x'"
    assert describe_error({"type": "literal_error", "loc": ("body", "outcome"), "msg": "Input should be"}) == (
        "outcome: Input should be"
    )


def test_a_client_that_falls_behind_is_dropped_not_blocking() -> None:
    import asyncio

    from services.gateway.hub import CLIENT_QUEUE, Client, Message

    async def scenario() -> None:
        client = Client()
        for i in range(CLIENT_QUEUE):
            client.offer(Message(f"{i}-0", "{}"))
        assert not client.dropped
        client.offer(Message("overflow-0", "{}"))  # never blocks the hub
        assert client.dropped
        items = [client.queue.get_nowait() for _ in range(client.queue.qsize())]
        assert items[-1] is None  # the end marker is there: the client's stream ends, the browser resumes
        client.offer(Message("later-0", "{}"))
        assert client.queue.empty()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("127.0.0.1:3000", True),
        ("localhost:3000", True),
        ("LOCALHOST", True),
        ("[::1]:3000", True),
        ("127.0.0.2:3000", True),  # the whole 127/8 is loopback
        ("", False),
        ("evil.example:3000", False),
        ("127.0.0.1.nip.io:3000", False),  # a name that merely resolves to loopback: rebinding
        ("localhost.evil.example", False),
        ("192.168.1.10:3000", False),
    ],
)
def test_loopback_host(host: str, ok: bool) -> None:
    assert is_loopback_host(host) is ok


def test_only_the_overlay_may_be_framed_and_every_answer_has_a_policy() -> None:
    def headers(path: str) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in security_headers(path)}

    for path in ("/admin", "/api/v1/channels/default/status", "/docs", "/static/admin.js", "/metrics"):
        h = headers(path)
        assert h["x-frame-options"] == "DENY" and h["content-security-policy"].endswith("frame-ancestors 'none'")
        assert h["x-content-type-options"] == "nosniff"
    for path in ("/overlay", "/"):
        h = headers(path)
        assert "x-frame-options" not in h and "frame-ancestors" not in h["content-security-policy"]
        assert "script-src 'self';" in h["content-security-policy"]
    assert headers("/api/status")["content-security-policy"].startswith("default-src 'none'")
    assert "unsafe-inline" not in headers("/admin")["content-security-policy"]


def test_the_api_docs_load_nothing_from_elsewhere_and_run_no_inline_script() -> None:
    for path in ("/docs", "/redoc"):
        policy = dict(security_headers(path))[b"content-security-policy"].decode()
        assert "http" not in policy and "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert "script-src 'self';" in policy and "connect-src 'self';" in policy


# ----------------------------------------------------------------------------- Redis errors in words (issue 13.4)

MISCONF = "MISCONF Errors writing to the AOF file: No space left on device"


@pytest.mark.parametrize(
    ("exc", "cause"),
    [
        (ResponseError(MISCONF), "disk full (MISCONF)"),
        (ResponseError(f"Command # 1 (XADD s * x 1) of pipeline caused error: {MISCONF}"), "disk full (MISCONF)"),
        (ResponseError("MISCONF Errors writing to the AOF file: Permission denied script: fb53, on @user_script:1."),
         "it cannot save to disk (MISCONF: Errors writing to the AOF file: Permission denied)"),
        (OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
         "out of memory, maxmemory reached (OOM)"),
        (ReadOnlyError("You can't write against a read only replica."), "it is a read-only replica (READONLY)"),
        (ResponseError("ERR invalid end ID for the interval"), None),
        (RedisConnectionError("Connection refused"), None),
    ],
)
def test_write_refusals_in_words(exc: Exception, cause: str | None) -> None:
    assert write_refusal(exc) == cause


def test_gateway_tells_cannot_write_from_not_reachable() -> None:
    detail, code = redis_problem(ResponseError(MISCONF))
    assert code == "redis_write" and detail.startswith("Redis cannot write: disk full (MISCONF)")
    assert "nothing is lost" in detail and "not reachable" not in detail
    detail, code = redis_problem(RedisConnectionError("Connection refused"))
    assert code == "redis" and "not reachable" in detail
    detail, code = redis_problem(ResponseError("ERR invalid end ID for the interval"))
    assert "not reachable" not in detail and "invalid end ID" in detail


@pytest.mark.parametrize(
    ("info", "problem"),
    [
        ({"aof_enabled": 1, "aof_last_write_status": "ok", "rdb_last_bgsave_status": "ok"}, None),
        ({"aof_enabled": 1, "aof_last_write_status": "err", "rdb_last_bgsave_status": "ok"}, "AOF"),
        ({"aof_enabled": 0, "aof_last_write_status": "err", "rdb_last_bgsave_status": "ok"}, None),
        ({"aof_enabled": 0, "aof_last_write_status": "ok", "rdb_last_bgsave_status": "err"}, "RDB"),
    ],
)
def test_persistence_problems_from_info(info: dict[str, object], problem: str | None) -> None:
    found = persistence_problem(info)
    assert (found is None) if problem is None else (found is not None and problem in found)
