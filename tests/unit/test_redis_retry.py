"""core.clients.once_more_on_connection_error: a worker's best-effort write run once more after a connection
error only (pure: the write is a stand-in)."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.clients import once_more_on_connection_error


def attempts(failures: list[Exception]) -> tuple[int, object]:
    """Run a write that raises `failures` in turn, then answers "done": its calls, and its answer or error."""
    calls = 0

    async def write() -> str:
        nonlocal calls
        calls += 1
        if failures:
            raise failures.pop(0)
        return "done"

    outcome: object
    try:
        outcome = asyncio.run(once_more_on_connection_error(write))
    except Exception as exc:  # noqa: BLE001 - what the helper let through is the result
        outcome = type(exc)
    return calls, outcome


@pytest.mark.parametrize(("failures", "calls", "outcome"), [
    ([], 1, "done"),
    ([RedisConnectionError("Connection lost")], 2, "done"),  # a pooled connection found dead: once more
    ([RedisConnectionError("lost"), RedisConnectionError("refused")], 2, RedisConnectionError),  # only once more
    ([RedisTimeoutError("slow")], 1, RedisTimeoutError),  # not retried: it would double the wait
    ([ResponseError("OOM")], 1, ResponseError),  # Redis answered: nothing to retry
])
def test_a_write_is_run_once_more_after_a_connection_error_only(
        failures: list[Exception], calls: int, outcome: object) -> None:
    assert attempts(failures) == (calls, outcome)
